//! A grant rule as a request describes it, and Flexprice's rules for one, shared by
//! `POST /v1/creditgrants` and the grants given inline with a plan or a subscription.
//!
//! The order is Flexprice's, first failure wins: gin's binding ([`GrantBody`]: types; `name`,
//! `scope`, `cadence` required on the grant route) → the request's own rules ([`validate`], steps
//! 1–11 of the reference) → references to plans, addons and subscriptions ([`check_references`],
//! steps 12–19) → what the database would refuse to store ([`check_storage`], step 20).
//!
//! The older create form Flexprice's published page still shows (`amount`, `currency`,
//! `expire_in_days`) is read too. Each older field is checked where its newer counterpart is:
//! `amount` with `credits` (step 4), `currency` right after them, `expire_in_days` with
//! `expiration_type` (step 6) and the duration (step 10), and a grant's currency against its
//! subscription's after the other subscription checks (step 19).

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};

use super::error::{NativeError, NativeResult};
use super::find;
use super::ids::{self, key_of};
use super::json::{self, json_object, DecimalText};
use super::names::{self, CADENCES, EXPIRY_TYPES, PERIODS, SCOPES, UNITS};
use super::view::Time;
use crate::ids::Key;
use crate::model::periods::DurationUnit;
use crate::model::{
    Cadence, Currency, ExpiryRule, GrantScope, GrantStatus, Metadata, NewGrantRule,
    SubscriptionStatus, Tenant,
};
use crate::time::Nanos;

json_object! {
    /// `CreateCreditGrantRequest` as gin binds it (every field's JSON type, nothing else).
    pub struct GrantBody {
        /// `name`.
        name: json::Str,
        /// `scope`: PLAN, SUBSCRIPTION or ADDON.
        scope: json::Str,
        /// `plan_id`.
        plan_id: json::Str,
        /// `subscription_id`.
        subscription_id: json::Str,
        /// `addon_id`.
        addon_id: json::Str,
        /// `credits`.
        credits: json::Dec,
        /// `amount`, the older name of `credits`.
        amount: json::Dec,
        /// `currency` (older form, optional everywhere).
        currency: json::Str,
        /// `expire_in_days`, the older spelling of a DURATION expiry in days.
        expire_in_days: json::Int,
        /// `cadence`: ONETIME or RECURRING.
        cadence: json::Str,
        /// `period` (RECURRING).
        period: json::Str,
        /// `period_count` (RECURRING).
        period_count: json::Int,
        /// `expiration_type`.
        expiration_type: json::Str,
        /// `expiration_duration` (DURATION).
        expiration_duration: json::Int,
        /// `expiration_duration_unit` (DURATION).
        expiration_duration_unit: json::Str,
        /// `priority`.
        priority: json::Int,
        /// `metadata`.
        metadata: json::Map,
        /// `start_date` (SUBSCRIPTION).
        start_date: json::Time,
        /// `end_date` (SUBSCRIPTION).
        end_date: json::Time,
        /// `conversion_rate`.
        conversion_rate: json::Dec,
        /// `topup_conversion_rate`.
        topup_conversion_rate: json::Dec,
    }
}

/// A grant request as bound, before any rule is checked: Go's zero values where nothing was sent.
#[derive(Debug, Clone, Default)]
pub struct GrantInput {
    /// `name`.
    pub name: String,
    /// `scope`, as sent.
    pub scope: String,
    /// `plan_id`.
    pub plan_id: Option<String>,
    /// `subscription_id`.
    pub subscription_id: Option<String>,
    /// `addon_id`.
    pub addon_id: Option<String>,
    /// `credits` (zero when absent, as a Go decimal is).
    pub credits: Decimal,
    /// `credits` as sent, printed as shopspring prints it.
    pub credits_shown: String,
    /// Whether `credits` was sent at all (`amount` may stand in for it).
    pub credits_sent: bool,
    /// `amount`, the older name of `credits`.
    pub amount: Option<DecimalText>,
    /// `currency`, as sent (`""` counts as absent).
    pub currency: Option<String>,
    /// `expire_in_days`, the older spelling of a DURATION expiry counted in days.
    pub expire_in_days: Option<i64>,
    /// `cadence`, as sent.
    pub cadence: String,
    /// `period`, as sent.
    pub period: Option<String>,
    /// `period_count`.
    pub period_count: Option<i64>,
    /// `expiration_type`, as sent (`""` when absent).
    pub expiration_type: String,
    /// `expiration_duration`.
    pub expiration_duration: Option<i64>,
    /// `expiration_duration_unit`, as sent.
    pub expiration_duration_unit: Option<String>,
    /// `priority`.
    pub priority: Option<i64>,
    /// `metadata`.
    pub metadata: Metadata,
    /// `start_date`.
    pub start: Option<Nanos>,
    /// `end_date`.
    pub end: Option<Nanos>,
    /// `conversion_rate`.
    pub conversion_rate: Option<Decimal>,
    /// `topup_conversion_rate`.
    pub topup_conversion_rate: Option<Decimal>,
}

impl From<GrantBody> for GrantInput {
    fn from(b: GrantBody) -> Self {
        let credits_sent = b.credits.is_some();
        let credits = b.credits.unwrap_or_else(|| DecimalText {
            value: Decimal::ZERO,
            shown: "0".to_string(),
        });
        GrantInput {
            name: b.name.unwrap_or_default(),
            scope: b.scope.unwrap_or_default(),
            plan_id: b.plan_id,
            subscription_id: b.subscription_id,
            addon_id: b.addon_id,
            credits: credits.value,
            credits_shown: credits.shown,
            credits_sent,
            amount: b.amount,
            currency: b.currency,
            expire_in_days: b.expire_in_days,
            cadence: b.cadence.unwrap_or_default(),
            period: b.period,
            period_count: b.period_count,
            expiration_type: b.expiration_type.unwrap_or_default(),
            expiration_duration: b.expiration_duration,
            expiration_duration_unit: b.expiration_duration_unit,
            priority: b.priority,
            metadata: b.metadata.unwrap_or_default(),
            start: b.start_date,
            end: b.end_date,
            conversion_rate: b.conversion_rate.map(|d| d.value),
            topup_conversion_rate: b.topup_conversion_rate.map(|d| d.value),
        }
    }
}

impl GrantInput {
    /// A body bound for `POST /v1/creditgrants`, whose `binding:"required"` tags on `name`, `scope`
    /// and `cadence` fail binding when empty. (Grants nested in a plan or a subscription request
    /// are not validated field by field by gin; they start from [`GrantInput::from`].)
    pub fn required(body: GrantBody) -> NativeResult<GrantInput> {
        let input = GrantInput::from(body);
        if input.name.is_empty() || input.scope.is_empty() || input.cadence.is_empty() {
            return Err(NativeError::invalid_format());
        }
        Ok(input)
    }
}

/// The scope a request names (ADDON passes validation but never finds an addon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeIn {
    /// `PLAN`.
    Plan,
    /// `SUBSCRIPTION`.
    Subscription,
    /// `ADDON`.
    Addon,
}

/// A request that passed [`validate`]: its enums, parsed, and the older form's fields merged
/// into the newer ones.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    /// Scope.
    pub scope: ScopeIn,
    /// Credits, from `credits` or `amount`, as sent (not yet rounded to the column's scale).
    pub credits: Decimal,
    /// The currency the grant is bound to.
    pub currency: Option<Currency>,
    /// The request used `amount` or `expire_in_days`, so answers show them too.
    pub older_form: bool,
    /// Cadence (period fields dropped for ONETIME).
    pub cadence: Cadence,
    /// Expiry (duration fields dropped unless DURATION).
    pub expiry: ExpiryRule,
}

/// The request's own rules, in Flexprice's order (steps 1–11).
pub fn validate(r: &GrantInput) -> NativeResult<Checked> {
    if r.name.is_empty() {
        return Err(NativeError::validation(
            "Please provide a name for the credit grant",
        ));
    }
    let scope = scope_rules(r)?;
    let credits = credits_rules(r)?;
    let currency = currency_rules(r)?;
    let recurring = cadence_kind(r)?;
    let expiry_kind = expiry_kind(r)?;
    let cadence = cadence_rules(r, recurring)?;
    let expiry = expiry_rules(r, expiry_kind)?;
    rate_rules(r)?;
    Ok(Checked {
        scope,
        credits,
        currency,
        older_form: r.amount.is_some() || r.expire_in_days.is_some(),
        cadence,
        expiry,
    })
}

fn scope_detail(scope: &str) -> Vec<(&'static str, Value)> {
    vec![("scope", json!(scope))]
}

/// Steps 2–3: the scope, and the ids and dates it needs or forbids.
fn scope_rules(r: &GrantInput) -> NativeResult<ScopeIn> {
    let scope = match r.scope.as_str() {
        "PLAN" => ScopeIn::Plan,
        "SUBSCRIPTION" => ScopeIn::Subscription,
        "ADDON" => ScopeIn::Addon,
        _ => {
            return Err(NativeError::validation(format!(
                "Credit grant scope must be one of: {SCOPES}"
            )))
        }
    };
    let blank = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    let refused = |message: &str| NativeError::validation(message).details(scope_detail(&r.scope));
    let dated = r.start.is_some() || r.end.is_some();
    match scope {
        ScopeIn::Plan if blank(&r.plan_id) => Err(refused("Please provide a valid plan ID")),
        ScopeIn::Plan if dated => Err(refused(
            "Start date and end date are not allowed for PLAN-scoped grants",
        )),
        ScopeIn::Subscription if blank(&r.subscription_id) => {
            Err(refused("Please provide a valid subscription ID"))
        }
        ScopeIn::Subscription => match r.start {
            None => Err(refused("Please provide a start date for the credit grant")),
            Some(start) => match r.end.filter(|e| *e < start) {
                Some(end) => Err(NativeError::validation(
                    "Credit grant end date must be on or after the start date",
                )
                .details(vec![
                    ("start_date", json!(Time(start))),
                    ("end_date", json!(Time(end))),
                ])),
                None => Ok(scope),
            },
        },
        ScopeIn::Addon if blank(&r.addon_id) => Err(refused("Please provide a valid addon ID")),
        ScopeIn::Addon if dated => Err(refused(
            "Start date and end date are not allowed for ADDON-scoped grants",
        )),
        ScopeIn::Plan | ScopeIn::Addon => Ok(scope),
    }
}

/// The credits of a request: `credits`, or `amount` (its older name) when only that was sent. Both
/// may be sent only with the same value. Returns the value, the field it came from and its text.
fn credits_of(r: &GrantInput) -> NativeResult<(Decimal, &'static str, &str)> {
    match &r.amount {
        None => Ok((r.credits, "credits", &r.credits_shown)),
        Some(amount) if !r.credits_sent => Ok((amount.value, "amount", &amount.shown)),
        // Texts are compared, not values: they are exact (no range limit) and carry no
        // trailing zeros, so equal texts are equal numbers.
        Some(amount) if amount.shown == r.credits_shown => {
            Ok((r.credits, "credits", &r.credits_shown))
        }
        Some(amount) => Err(NativeError::validation(
            "Credits and amount (the older name of credits) differ; please provide only one of them",
        )
        .details(vec![
            ("amount", json!(amount.shown)),
            ("credits", json!(r.credits_shown)),
        ])),
    }
}

/// Step 4: credits agree with `amount` and are positive.
fn credits_rules(r: &GrantInput) -> NativeResult<Decimal> {
    let (credits, field, shown) = credits_of(r)?;
    if credits <= Decimal::ZERO {
        // The older form's own message when the value came from `amount`.
        let message = match field {
            "amount" => "Please provide a positive amount",
            _ => "Please provide a positive credits",
        };
        return Err(NativeError::validation(message).details(vec![(field, json!(shown))]));
    }
    Ok(credits)
}

/// The older form's `currency`, a valid code when given.
fn currency_rules(r: &GrantInput) -> NativeResult<Option<Currency>> {
    match r.currency.as_deref().filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(code) => Currency::parse(code).map(Some).ok_or_else(|| {
            NativeError::validation("Please provide a valid currency code")
                .details(vec![("currency", json!(code))])
        }),
    }
}

/// Step 5: the cadence is one of the two; `true` for RECURRING.
fn cadence_kind(r: &GrantInput) -> NativeResult<bool> {
    match r.cadence.as_str() {
        "ONETIME" => Ok(false),
        "RECURRING" => Ok(true),
        _ => Err(NativeError::validation(format!(
            "Credit grant cadence must be one of: {CADENCES}"
        ))),
    }
}

/// Step 6: the expiry type (DURATION when only `expire_in_days` says so), agreeing with
/// `expire_in_days`.
fn expiry_kind(r: &GrantInput) -> NativeResult<&str> {
    let kind = match r.expiration_type.as_str() {
        "" if r.expire_in_days.is_some() => "DURATION",
        "NEVER" | "DURATION" | "BILLING_CYCLE" => r.expiration_type.as_str(),
        _ => {
            return Err(NativeError::validation(format!(
                "Credit grant expiry type must be one of: {EXPIRY_TYPES}"
            )))
        }
    };
    if let Some(days) = r.expire_in_days.filter(|_| kind != "DURATION") {
        return Err(expire_in_days_conflict(
            days,
            "expiration_type",
            json!(kind),
        ));
    }
    Ok(kind)
}

/// `expire_in_days` with a newer expiry field that says something else.
fn expire_in_days_conflict(days: i64, field: &'static str, given: Value) -> NativeError {
    let message = match field {
        "expiration_type" => {
            "expire_in_days means an expiration_type of DURATION; please provide only one of them"
        }
        "expiration_duration_unit" => {
            "expire_in_days counts days; please provide only one of expire_in_days and expiration_duration_unit"
        }
        _ => "expire_in_days and expiration_duration differ; please provide only one of them",
    };
    NativeError::validation(message).details(vec![(field, given), ("expire_in_days", json!(days))])
}

/// Steps 7–8: a RECURRING grant's period and count (a ONETIME grant's are dropped).
fn cadence_rules(r: &GrantInput, recurring: bool) -> NativeResult<Cadence> {
    if !recurring {
        return Ok(Cadence::OneTime);
    }
    let Some(p) = r.period.as_deref().filter(|p| !p.is_empty()) else {
        return Err(NativeError::validation(
            "Please provide a valid period (e.g., MONTHLY, YEARLY)",
        )
        .details(vec![("cadence", json!("RECURRING"))]));
    };
    let period = names::parse_period(p).ok_or_else(|| {
        NativeError::validation(format!("Credit grant period must be one of: {PERIODS}"))
    })?;
    let count = match r.period_count {
        Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
        other => {
            return Err(
                NativeError::validation("Please provide a valid period_count")
                    .details(vec![("period_count", json!(other.unwrap_or(0)))]),
            )
        }
    };
    Ok(Cadence::Recurring { period, count })
}

/// Steps 9–10: a DURATION expiry's unit and count, `expire_in_days` supplying them (in days) unless
/// they are sent, and agreeing with them when they are.
fn expiry_rules(r: &GrantInput, kind: &str) -> NativeResult<ExpiryRule> {
    match kind {
        "NEVER" => return Ok(ExpiryRule::Never),
        "BILLING_CYCLE" => return Ok(ExpiryRule::BillingCycle),
        _ => {}
    }
    let days = r.expire_in_days;
    let duration_detail = || {
        let mut d = vec![("expiration_type", json!("DURATION"))];
        d.extend(days.map(|n| ("expire_in_days", json!(n))));
        d
    };
    let Some(u) = r
        .expiration_duration_unit
        .as_deref()
        .or(days.map(|_| "DAY"))
    else {
        return Err(
            NativeError::validation("Please provide a valid expiration duration unit")
                .details(duration_detail()),
        );
    };
    let unit = names::parse_unit(u).ok_or_else(|| {
        NativeError::validation(format!(
            "Credit grant expiry duration unit must be one of: {UNITS}"
        ))
    })?;
    if let Some(n) = days.filter(|_| unit != DurationUnit::Day) {
        return Err(expire_in_days_conflict(
            n,
            "expiration_duration_unit",
            json!(u),
        ));
    }
    let duration = match (r.expiration_duration, days) {
        (Some(d), Some(n)) if d != n => {
            return Err(expire_in_days_conflict(n, "expiration_duration", json!(d)))
        }
        (d, n) => n.or(d),
    };
    match duration {
        Some(n) if n > 0 => Ok(ExpiryRule::Duration {
            unit,
            count: u32::try_from(n).unwrap_or(u32::MAX),
        }),
        _ => Err(
            NativeError::validation("Please provide a valid expiration duration")
                .details(duration_detail()),
        ),
    }
}

/// Step 11: rates are positive as stored (5 decimals: one that would be stored as 0 is not).
fn rate_rules(r: &GrantInput) -> NativeResult<()> {
    let not_positive = |rate: Option<Decimal>| rate.is_some_and(|c| stored(c, 5) <= Decimal::ZERO);
    if not_positive(r.conversion_rate) {
        return Err(NativeError::validation(
            "Please provide a positive conversion rate",
        ));
    }
    if not_positive(r.topup_conversion_rate) {
        return Err(NativeError::validation(
            "Please provide a positive topup conversion rate",
        ));
    }
    Ok(())
}

/// What the references of a request resolved to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refs {
    /// The plan (target or provenance).
    pub plan: Option<Key>,
    /// The subscription.
    pub subscription: Option<Key>,
}

/// A subscription that is about to exist (grants given with a new subscription).
#[derive(Debug, Clone, Copy)]
pub struct PendingSubscription {
    /// Its key.
    pub key: Key,
    /// Its start.
    pub start: Nanos,
    /// Its end.
    pub end: Option<Nanos>,
    /// Its currency.
    pub currency: Currency,
}

/// Checks plans, addons and subscriptions the request names (steps 12–19). `new_plan` is a plan
/// being created with the grant (no lookup); `new_subscription` likewise for subscriptions.
pub fn check_references(
    t: &Tenant,
    r: &GrantInput,
    c: &Checked,
    new_plan: Option<Key>,
    new_subscription: Option<PendingSubscription>,
) -> NativeResult<Refs> {
    let mut refs = Refs::default();
    if let Some(plan_id) = r.plan_id.as_deref().filter(|s| !s.is_empty()) {
        refs.plan = Some(match new_plan {
            Some(k) => k,
            None => find::published_plan(t, plan_id)?,
        });
    }
    if let Some(addon_id) = r.addon_id.as_deref().filter(|s| !s.is_empty()) {
        // The emulator has no addons, so every addon is unknown.
        return Err(
            NativeError::not_found(format!("Addon with ID {addon_id} was not found"))
                .details(vec![("addon_id", json!(addon_id))]),
        );
    }
    match c.scope {
        ScopeIn::Plan => plan_rates_agree(t, refs.plan.unwrap_or_default(), r)?,
        ScopeIn::Subscription => {
            refs.subscription = Some(subscription_fits(t, r, c, new_subscription)?);
        }
        ScopeIn::Addon => {}
    }
    Ok(refs)
}

/// Step 16: a plan's rules share one pair of rates.
fn plan_rates_agree(t: &Tenant, plan: Key, r: &GrantInput) -> NativeResult<()> {
    // Every published rule of a plan was checked against all the others when it was made, so
    // they all share one pair of rates: comparing with one of them is enough.
    let clash = t
        .grant_rule_keys_of_plan(plan)
        .iter()
        .filter_map(|k| t.grant_rule(k))
        .find(|g| g.scope == GrantScope::Plan && g.status == GrantStatus::Published)
        .is_some_and(|g| {
            g.conversion_rate != r.conversion_rate
                || g.topup_conversion_rate != r.topup_conversion_rate
        });
    if clash {
        return Err(same_rates_error());
    }
    Ok(())
}

/// Steps 17–19: the subscription exists and is not cancelled, contains the grant's dates, and is
/// in the grant's currency. Returns its key.
fn subscription_fits(
    t: &Tenant,
    r: &GrantInput,
    c: &Checked,
    new_subscription: Option<PendingSubscription>,
) -> NativeResult<Key> {
    let sub_id = r.subscription_id.as_deref().unwrap_or_default();
    let (key, start, end, currency) = match new_subscription {
        Some(p) => (p.key, p.start, p.end, p.currency),
        None => {
            let key = key_of(sub_id, ids::SUBSCRIPTION)
                .filter(|k| t.subscription(*k).is_some())
                .ok_or_else(|| NativeError::not_found("Subscription not found"))?;
            let sub = t.subscription(key).expect("looked up above");
            if sub.status == SubscriptionStatus::Cancelled {
                return Err(NativeError::validation("Subscription is cancelled")
                    .details(vec![("subscription_id", json!(sub_id))]));
            }
            (key, sub.start, sub.end, sub.currency)
        }
    };
    let grant_start = r.start.unwrap_or(start);
    if grant_start < start {
        return Err(NativeError::validation(
            "Credit grant start date cannot be before subscription start date",
        )
        .details(vec![
            ("credit_grant_start_date", json!(Time(grant_start))),
            ("subscription_start_date", json!(Time(start))),
        ]));
    }
    if let (Some(ge), Some(se)) = (r.end, end) {
        if ge > se {
            return Err(NativeError::validation(
                "Credit grant end date cannot be after subscription end date",
            )
            .details(vec![
                ("credit_grant_end_date", json!(Time(ge))),
                ("subscription_end_date", json!(Time(se))),
            ]));
        }
    }
    if let Some(se) = end.filter(|se| grant_start > *se) {
        return Err(NativeError::validation(
            "Credit grant anchor cannot be after subscription end date",
        )
        .details(vec![
            ("credit_grant_anchor", json!(Time(grant_start))),
            ("subscription_end_date", json!(Time(se))),
        ]));
    }
    if let Some(own) = c.currency.filter(|own| *own != currency) {
        return Err(currency_mismatch(None, own, currency));
    }
    Ok(key)
}

/// A grant bound to one currency meeting a subscription in another: its credits could go into no
/// wallet of the subscription's. `grant` names a grant that already exists (a plan's, about to be
/// copied).
pub fn currency_mismatch(
    grant: Option<String>,
    own: Currency,
    subscription: Currency,
) -> NativeError {
    let mut details = vec![
        ("credit_grant_currency", json!(own.as_str())),
        ("subscription_currency", json!(subscription.as_str())),
    ];
    details.extend(grant.map(|g| ("credit_grant_id", json!(g))));
    NativeError::validation("Credit grant currency must match the subscription currency")
        .details(details)
}

/// `All credit grants for a plan must have the same conversion rates`.
pub fn same_rates_error() -> NativeError {
    NativeError::validation("All credit grants for a plan must have the same conversion rates")
}

/// What the database would refuse (step 20): a name over 255 characters, more than 12 integer
/// digits of credits (`numeric(20,8)`), more than 5 of a rate (`numeric(10,5)`).
pub fn check_storage(r: &GrantInput, c: &Checked) -> NativeResult<()> {
    let too_wide = |d: Decimal, digits: u32| stored(d, 8).abs() >= Decimal::from(10i64.pow(digits));
    let bad = r.name.chars().count() > 255
        || too_wide(c.credits, 12)
        || r.conversion_rate.is_some_and(|d| too_wide(d, 5))
        || r.topup_conversion_rate.is_some_and(|d| too_wide(d, 5));
    if !bad {
        return Ok(());
    }
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    let (plan, sub) = match c.scope {
        ScopeIn::Plan => (opt(&r.plan_id), Value::Null),
        ScopeIn::Subscription => (opt(&r.plan_id), opt(&r.subscription_id)),
        ScopeIn::Addon => (Value::Null, Value::Null),
    };
    Err(
        NativeError::database("Failed to create credit grant").details(vec![
            ("scope", json!(r.scope)),
            ("plan_id", plan),
            ("subscription_id", sub),
        ]),
    )
}

/// A decimal as a `numeric(_, scale)` column stores it (rounded half away from zero).
fn stored(d: Decimal, scale: u32) -> Decimal {
    d.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// The model's new rule for a checked request.
pub fn to_new(r: GrantInput, c: &Checked, refs: Refs) -> NewGrantRule {
    let subscription = c.scope == ScopeIn::Subscription;
    NewGrantRule {
        name: r.name,
        scope: if subscription {
            GrantScope::Subscription
        } else {
            GrantScope::Plan
        },
        plan: refs.plan,
        subscription: refs.subscription,
        credits: stored(c.credits, 8),
        currency: c.currency,
        older_form: c.older_form,
        cadence: c.cadence,
        expiry: c.expiry,
        priority: r.priority,
        metadata: r.metadata,
        start: if subscription { r.start } else { None },
        end: if subscription { r.end } else { None },
        conversion_rate: r.conversion_rate.map(|d| stored(d, 5)),
        topup_conversion_rate: r.topup_conversion_rate.map(|d| stored(d, 5)),
    }
}
