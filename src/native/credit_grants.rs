//! `/v1/creditgrants`, the grant lists of plans and addons, and upcoming grant applications.
//!
//! Validation follows Flexprice's order exactly: gin's binding (types; `name`, `scope`, `cadence`
//! required) → the request's own rules ([`validate`], steps 1–11 of the reference) → references to
//! plans, addons and subscriptions ([`check_references`], steps 12–19) → what the database would
//! refuse to store ([`check_storage`], step 20). The first failure wins.
//!
//! The older create form Flexprice's published page still shows (`amount`, `currency`,
//! `expire_in_days`) is read too. Each older field is checked where its newer counterpart is:
//! `amount` with `credits` (step 4), `currency` right after them, `expire_in_days` with
//! `expiration_type` (step 6) and the duration (step 10), and a grant's currency against its
//! subscription's after the other subscription checks (step 19).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};

use super::error::{NativeError, NativeResult};
use super::ids::{self, key_of, render as id};
use super::json::{dec, metadata_value, ts, Body, Obj};
use super::list::{self as pages, invalid_filter, Page};
use super::{base, customers, plans, Ctx};
use crate::ids::{fnv1a64, Key};
use crate::model::periods::{DurationUnit, Period};
use crate::model::{
    Application, ApplicationReason, ApplicationStatus, Cadence, Currency, ExpiryRule, GrantRule,
    GrantScope, GrantStatus, KeyIndex, Metadata, NewGrantRule, SkipReason, SubscriptionStatus,
    Tenant,
};
use crate::time::{parse_rfc3339, Nanos};

const SCOPES: &str = "[PLAN SUBSCRIPTION ADDON]";
const CADENCES: &str = "[ONETIME RECURRING]";
const EXPIRY_TYPES: &str = "[NEVER DURATION BILLING_CYCLE]";
const PERIODS: &str = "[DAILY WEEKLY MONTHLY ANNUAL QUARTERLY HALF_YEARLY]";
const UNITS: &str = "[DAY WEEK MONTH YEAR]";

/// A create request as bound from JSON, before any rule is checked.
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
    /// `amount`, the older name of `credits`, and its text as shopspring prints it.
    pub amount: Option<(Decimal, String)>,
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

/// Binds a create body as gin does: every field's JSON type first, then `binding:"required"` on
/// `name`, `scope` and `cadence` (empty counts as missing).
pub fn bind(body: &Body) -> NativeResult<GrantInput> {
    let input = bind_fields(body)?;
    if input.name.is_empty() || input.scope.is_empty() || input.cadence.is_empty() {
        return Err(NativeError::invalid_format());
    }
    Ok(input)
}

/// Binds the fields' JSON types only (grants nested in a plan or subscription request, which gin
/// does not validate field by field).
pub fn bind_fields(body: &Body) -> NativeResult<GrantInput> {
    let sent = body.decimal_shown("credits")?;
    let credits_sent = sent.is_some();
    let (credits, credits_shown) = sent.unwrap_or((Decimal::ZERO, "0".to_string()));
    Ok(GrantInput {
        name: body.string("name")?,
        scope: body.string("scope")?,
        plan_id: body.str("plan_id")?,
        subscription_id: body.str("subscription_id")?,
        addon_id: body.str("addon_id")?,
        credits,
        credits_shown,
        credits_sent,
        amount: body.decimal_shown("amount")?,
        currency: body.str("currency")?,
        expire_in_days: body.int("expire_in_days")?,
        cadence: body.string("cadence")?,
        period: body.str("period")?,
        period_count: body.int("period_count")?,
        expiration_type: body.string("expiration_type")?,
        expiration_duration: body.int("expiration_duration")?,
        expiration_duration_unit: body.str("expiration_duration_unit")?,
        priority: body.int("priority")?,
        metadata: body.metadata("metadata")?.unwrap_or_default(),
        start: body.time("start_date")?,
        end: body.time("end_date")?,
        conversion_rate: body.decimal("conversion_rate")?,
        topup_conversion_rate: body.decimal("topup_conversion_rate")?,
    })
}

fn scope_detail(scope: &str) -> Vec<(&'static str, Value)> {
    vec![("scope", json!(scope))]
}

/// The credits of a request: `credits`, or `amount` (its older name) when only that was sent. Both
/// may be sent only with the same value. Returns the value, the field it came from and its text.
fn credits_of(r: &GrantInput) -> NativeResult<(Decimal, &'static str, &str)> {
    match &r.amount {
        None => Ok((r.credits, "credits", &r.credits_shown)),
        Some((amount, shown)) if !r.credits_sent => Ok((*amount, "amount", shown)),
        // Texts are compared, not values: they are exact (no range limit) and carry no
        // trailing zeros, so equal texts are equal numbers.
        Some((_, shown)) if *shown == r.credits_shown => {
            Ok((r.credits, "credits", &r.credits_shown))
        }
        Some((_, shown)) => Err(NativeError::validation(
            "Credits and amount (the older name of credits) differ; please provide only one of them",
        )
        .details(vec![
            ("amount", json!(shown)),
            ("credits", json!(r.credits_shown)),
        ])),
    }
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

/// The request's own rules, in Flexprice's order (steps 1–11).
pub fn validate(r: &GrantInput) -> NativeResult<Checked> {
    if r.name.is_empty() {
        return Err(NativeError::validation(
            "Please provide a name for the credit grant",
        ));
    }
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
    let dated = r.start.is_some() || r.end.is_some();
    match scope {
        ScopeIn::Plan => {
            if blank(&r.plan_id) {
                return Err(NativeError::validation("Please provide a valid plan ID")
                    .details(scope_detail(&r.scope)));
            }
            if dated {
                return Err(NativeError::validation(
                    "Start date and end date are not allowed for PLAN-scoped grants",
                )
                .details(scope_detail(&r.scope)));
            }
        }
        ScopeIn::Subscription => {
            if blank(&r.subscription_id) {
                return Err(
                    NativeError::validation("Please provide a valid subscription ID")
                        .details(scope_detail(&r.scope)),
                );
            }
            let Some(start) = r.start else {
                return Err(NativeError::validation(
                    "Please provide a start date for the credit grant",
                )
                .details(scope_detail(&r.scope)));
            };
            if let Some(end) = r.end.filter(|e| *e < start) {
                return Err(NativeError::validation(
                    "Credit grant end date must be on or after the start date",
                )
                .details(vec![("start_date", ts(start)), ("end_date", ts(end))]));
            }
        }
        ScopeIn::Addon => {
            if blank(&r.addon_id) {
                return Err(NativeError::validation("Please provide a valid addon ID")
                    .details(scope_detail(&r.scope)));
            }
            if dated {
                return Err(NativeError::validation(
                    "Start date and end date are not allowed for ADDON-scoped grants",
                )
                .details(scope_detail(&r.scope)));
            }
        }
    }
    let (credits, credits_field, credits_shown) = credits_of(r)?;
    if credits <= Decimal::ZERO {
        // The older form's own message when the value came from `amount`.
        let message = match credits_field {
            "amount" => "Please provide a positive amount",
            _ => "Please provide a positive credits",
        };
        return Err(
            NativeError::validation(message).details(vec![(credits_field, json!(credits_shown))])
        );
    }
    let currency = match r.currency.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(code) => Some(Currency::parse(code).ok_or_else(|| {
            NativeError::validation("Please provide a valid currency code")
                .details(vec![("currency", json!(code))])
        })?),
    };
    let recurring = match r.cadence.as_str() {
        "ONETIME" => false,
        "RECURRING" => true,
        _ => {
            return Err(NativeError::validation(format!(
                "Credit grant cadence must be one of: {CADENCES}"
            )))
        }
    };
    let expiry_kind = match r.expiration_type.as_str() {
        "" if r.expire_in_days.is_some() => "DURATION",
        "NEVER" | "DURATION" | "BILLING_CYCLE" => r.expiration_type.as_str(),
        _ => {
            return Err(NativeError::validation(format!(
                "Credit grant expiry type must be one of: {EXPIRY_TYPES}"
            )))
        }
    };
    if let Some(days) = r.expire_in_days.filter(|_| expiry_kind != "DURATION") {
        return Err(expire_in_days_conflict(
            days,
            "expiration_type",
            json!(expiry_kind),
        ));
    }
    let cadence = if recurring {
        let Some(p) = r.period.as_deref().filter(|p| !p.is_empty()) else {
            return Err(NativeError::validation(
                "Please provide a valid period (e.g., MONTHLY, YEARLY)",
            )
            .details(vec![("cadence", json!("RECURRING"))]));
        };
        let period = parse_period(p).ok_or_else(|| {
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
        Cadence::Recurring { period, count }
    } else {
        Cadence::OneTime
    };
    let expiry = match expiry_kind {
        "NEVER" => ExpiryRule::Never,
        "BILLING_CYCLE" => ExpiryRule::BillingCycle,
        _ => {
            let days = r.expire_in_days;
            let duration_detail = || {
                let mut d = vec![("expiration_type", json!("DURATION"))];
                d.extend(days.map(|n| ("expire_in_days", json!(n))));
                d
            };
            // `expire_in_days` supplies the unit (DAY) and the duration unless they are sent.
            let Some(u) = r
                .expiration_duration_unit
                .as_deref()
                .or(days.map(|_| "DAY"))
            else {
                return Err(NativeError::validation(
                    "Please provide a valid expiration duration unit",
                )
                .details(duration_detail()));
            };
            let unit = unit_of(u).ok_or_else(|| {
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
            let count = match duration {
                Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
                _ => {
                    return Err(NativeError::validation(
                        "Please provide a valid expiration duration",
                    )
                    .details(duration_detail()))
                }
            };
            ExpiryRule::Duration { unit, count }
        }
    };
    // Rates are stored with 5 decimals; one that would be stored as 0 is not positive either.
    if r.conversion_rate
        .is_some_and(|c| stored(c, 5) <= Decimal::ZERO)
    {
        return Err(NativeError::validation(
            "Please provide a positive conversion rate",
        ));
    }
    if r.topup_conversion_rate
        .is_some_and(|c| stored(c, 5) <= Decimal::ZERO)
    {
        return Err(NativeError::validation(
            "Please provide a positive topup conversion rate",
        ));
    }
    Ok(Checked {
        scope,
        credits,
        currency,
        older_form: r.amount.is_some() || r.expire_in_days.is_some(),
        cadence,
        expiry,
    })
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
        let key = match new_plan {
            Some(k) => k,
            None => plans::published(t, plan_id)?,
        };
        refs.plan = Some(key);
    }
    if let Some(addon_id) = r.addon_id.as_deref().filter(|s| !s.is_empty()) {
        // The emulator has no addons, so every addon is unknown.
        return Err(
            NativeError::not_found(format!("Addon with ID {addon_id} was not found"))
                .details(vec![("addon_id", json!(addon_id))]),
        );
    }
    match c.scope {
        ScopeIn::Plan => {
            // Every published rule of a plan was checked against all the others when it was
            // made, so they all share one pair of rates: comparing with one of them is enough.
            let plan = refs.plan.unwrap_or_default();
            let clash = t
                .grant_rule_keys_of_plan(plan)
                .into_iter()
                .filter_map(|k| t.grant_rule(k))
                .find(|g| g.scope == GrantScope::Plan && g.status == GrantStatus::Published)
                .is_some_and(|g| {
                    g.conversion_rate != r.conversion_rate
                        || g.topup_conversion_rate != r.topup_conversion_rate
                });
            if clash {
                return Err(same_rates_error());
            }
        }
        ScopeIn::Subscription => {
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
                    ("credit_grant_start_date", ts(grant_start)),
                    ("subscription_start_date", ts(start)),
                ]));
            }
            if let (Some(ge), Some(se)) = (r.end, end) {
                if ge > se {
                    return Err(NativeError::validation(
                        "Credit grant end date cannot be after subscription end date",
                    )
                    .details(vec![
                        ("credit_grant_end_date", ts(ge)),
                        ("subscription_end_date", ts(se)),
                    ]));
                }
            }
            if let Some(se) = end.filter(|se| grant_start > *se) {
                return Err(NativeError::validation(
                    "Credit grant anchor cannot be after subscription end date",
                )
                .details(vec![
                    ("credit_grant_anchor", ts(grant_start)),
                    ("subscription_end_date", ts(se)),
                ]));
            }
            if let Some(own) = c.currency.filter(|own| *own != currency) {
                return Err(currency_mismatch(None, own, currency));
            }
            refs.subscription = Some(key);
        }
        ScopeIn::Addon => {}
    }
    Ok(refs)
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

/// A period from its native spelling.
pub fn parse_period(s: &str) -> Option<Period> {
    Some(match s {
        "DAILY" => Period::Daily,
        "WEEKLY" => Period::Weekly,
        "MONTHLY" => Period::Monthly,
        "ANNUAL" => Period::Annual,
        "QUARTERLY" => Period::Quarterly,
        "HALF_YEARLY" => Period::HalfYearly,
        _ => return None,
    })
}

/// The native spelling of a period.
pub fn period_name(p: Period) -> &'static str {
    match p {
        Period::Daily => "DAILY",
        Period::Weekly => "WEEKLY",
        Period::Monthly => "MONTHLY",
        Period::Annual => "ANNUAL",
        Period::Quarterly => "QUARTERLY",
        Period::HalfYearly => "HALF_YEARLY",
    }
}

fn unit_of(s: &str) -> Option<DurationUnit> {
    Some(match s {
        "DAY" => DurationUnit::Day,
        "WEEK" => DurationUnit::Week,
        "MONTH" => DurationUnit::Month,
        "YEAR" => DurationUnit::Year,
        _ => return None,
    })
}

fn unit_name(u: DurationUnit) -> &'static str {
    match u {
        DurationUnit::Day => "DAY",
        DurationUnit::Week => "WEEK",
        DurationUnit::Month => "MONTH",
        DurationUnit::Year => "YEAR",
    }
}

fn scope_name(s: GrantScope) -> &'static str {
    match s {
        GrantScope::Plan => "PLAN",
        GrantScope::Subscription => "SUBSCRIPTION",
    }
}

fn status_name(s: GrantStatus) -> &'static str {
    match s {
        GrantStatus::Published => "published",
        GrantStatus::Archived => "archived",
    }
}

/// Renders a grant rule as Flexprice's `CreditGrantResponse`.
pub fn render(env: &str, g: &GrantRule) -> Value {
    let (period, count) = match g.cadence {
        Cadence::OneTime => (None, None),
        Cadence::Recurring { period, count } => (Some(period_name(period)), Some(count)),
    };
    let (expiry, duration, unit) = match g.expiry {
        ExpiryRule::Never => ("NEVER", None, None),
        ExpiryRule::BillingCycle => ("BILLING_CYCLE", None, None),
        ExpiryRule::Duration { unit, count } => ("DURATION", Some(count), Some(unit_name(unit))),
    };
    // A grant made with the older form is also shown in it: `amount` always, `expire_in_days` when
    // the expiry is counted in days. `currency` is shown whenever the grant has one, whatever the
    // form (the older form required it, so it never answered an empty one).
    let older = g.older_form;
    let expire_in_days = match g.expiry {
        ExpiryRule::Duration {
            unit: DurationUnit::Day,
            count,
        } if older => Some(count),
        _ => None,
    };
    let o = Obj::new()
        .put("id", id(ids::CREDIT_GRANT, g.key))
        .put("name", g.name.clone())
        .put("scope", scope_name(g.scope))
        .opt("plan_id", g.plan.map(|k| id(ids::PLAN, k)))
        .opt(
            "subscription_id",
            g.subscription.map(|k| id(ids::SUBSCRIPTION, k)),
        )
        .put("credits", dec(g.credits))
        .opt("amount", older.then(|| dec(g.credits)))
        .opt("currency", g.currency.map(|c| c.as_str().to_string()))
        .put(
            "cadence",
            match g.cadence {
                Cadence::OneTime => "ONETIME",
                Cadence::Recurring { .. } => "RECURRING",
            },
        )
        .opt("period", period)
        .opt("period_count", count)
        .put("expiration_type", expiry)
        .opt("expiration_duration", duration)
        .opt("expiration_duration_unit", unit)
        .opt("expire_in_days", expire_in_days)
        .opt("priority", g.priority)
        .opt(
            "metadata",
            (!g.metadata.is_empty()).then(|| metadata_value(&g.metadata)),
        )
        .opt("start_date", g.start.map(ts))
        .opt("end_date", g.end.map(ts))
        .opt("credit_grant_anchor", g.anchor.map(ts))
        .opt("conversion_rate", g.conversion_rate.map(dec))
        .opt("topup_conversion_rate", g.topup_conversion_rate.map(dec))
        .put("environment_id", env);
    base(o, status_name(g.status), g.created, g.updated).done()
}

fn lookup(t: &Tenant, id_: &str) -> NativeResult<Key> {
    key_of(id_, ids::CREDIT_GRANT)
        .filter(|k| t.grant_rule(*k).is_some())
        .ok_or_else(|| {
            NativeError::not_found("Credit grant not found").details(vec![("id", json!(id_))])
        })
}

/// `POST /v1/creditgrants` (201).
pub fn create(ctx: &mut Ctx) -> NativeResult<Value> {
    let body = ctx.body()?;
    let input = bind(&body)?;
    let checked = validate(&input)?;
    let refs = check_references(ctx.tenant, &input, &checked, None, None)?;
    check_storage(&input, &checked)?;
    let key = ctx.tenant.create_grant_rule(to_new(input, &checked, refs));
    Ok(render(
        &ctx.env,
        ctx.tenant.grant_rule(key).expect("made above"),
    ))
}

/// `GET /v1/creditgrants/{id}`: any status.
pub fn retrieve(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let key = lookup(ctx.tenant, id_)?;
    Ok(render(
        &ctx.env,
        ctx.tenant.grant_rule(key).expect("looked up above"),
    ))
}

/// The now a rule lives by: its customer's clock for a subscription rule, the tenant's otherwise.
fn now_of(t: &Tenant, g: &GrantRule) -> Nanos {
    match g.subscription.and_then(|s| t.subscription(s)) {
        Some(sub) => t.now_for(sub.customer),
        None => t.tenant_now(),
    }
}

/// `PUT /v1/creditgrants/{id}`: `name`, `metadata` (replaced whole), `end_date` (runs the delete
/// logic at that date). Answers the rule as it was before that delete step, as upstream does.
pub fn update(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let body = ctx.body()?;
    let name = body.str("name")?;
    let metadata = body.metadata("metadata")?;
    let end = body.time("end_date")?;
    let existing = key_of(id_, ids::CREDIT_GRANT).and_then(|k| ctx.tenant.grant_rule(k));
    let now = existing.map_or_else(|| ctx.tenant.tenant_now(), |g| now_of(ctx.tenant, g));
    if let Some(e) = end.filter(|e| *e < now) {
        return Err(NativeError::validation("Please provide a valid end date")
            .details(vec![("end_date", ts(e))]));
    }
    let key = lookup(ctx.tenant, id_)?;
    if name.as_deref() == Some("") {
        return Err(NativeError::validation(
            "Please provide a name for the credit grant",
        ));
    }
    ctx.tenant.update_grant_rule(key, name, metadata);
    let snapshot = render(
        &ctx.env,
        ctx.tenant.grant_rule(key).expect("looked up above"),
    );
    if let Some(e) = end {
        end_grant(ctx, key, id_, Some(e))?;
    }
    Ok(snapshot)
}

/// `DELETE /v1/creditgrants/{id}`: a plan rule is archived; a subscription rule ends at
/// `effective_date` (default now) and stays published.
pub fn delete(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let body = ctx.optional_body()?;
    let effective = body.time("effective_date")?;
    let key = lookup(ctx.tenant, id_)?;
    end_grant(ctx, key, id_, effective)?;
    Ok(json!({"message": "credit grant deleted successfully"}))
}

fn end_grant(ctx: &mut Ctx, key: Key, id_: &str, effective: Option<Nanos>) -> NativeResult<()> {
    let g = ctx.tenant.grant_rule(key).expect("looked up by the caller");
    if g.status != GrantStatus::Published {
        return Err(
            NativeError::validation("Credit grant is already archived").details(vec![
                ("credit_grant_id", json!(id_)),
                ("status", json!(status_name(g.status))),
            ]),
        );
    }
    match g.scope {
        GrantScope::Plan => {
            ctx.tenant.archive_grant_rule(key);
        }
        GrantScope::Subscription => {
            let at = effective.unwrap_or_else(|| now_of(ctx.tenant, g));
            ctx.tenant.end_grant_rule(key, at);
        }
    }
    Ok(())
}

/// A sortable value; `None` sorts after every value ascending (Postgres' NULLS LAST).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortVal {
    Int(i64),
    Text(String),
    Dec(Decimal),
}

fn sort_value(env: &str, g: &GrantRule, column: &str) -> Option<Option<SortVal>> {
    use SortVal::*;
    let time = |t: Option<Nanos>| t.map(Int);
    let text = |s: &str| Some(Text(s.to_string()));
    Some(match column {
        "id" => text(&id(ids::CREDIT_GRANT, g.key)),
        "created_at" => time(Some(g.created)),
        "updated_at" => time(Some(g.updated)),
        "tenant_id" | "created_by" | "updated_by" => text(ids::TENANT_ID),
        "environment_id" => text(env),
        "status" => text(status_name(g.status)),
        "name" => text(&g.name),
        "scope" => text(scope_name(g.scope)),
        "plan_id" => g.plan.map(|k| Text(id(ids::PLAN, k))),
        "subscription_id" => g.subscription.map(|k| Text(id(ids::SUBSCRIPTION, k))),
        "addon_id" => None,
        "credits" => Some(Dec(g.credits)),
        "currency" => g.currency.map(|c| Text(c.as_str().to_string())),
        "conversion_rate" => g.conversion_rate.map(Dec),
        "topup_conversion_rate" => g.topup_conversion_rate.map(Dec),
        "cadence" => text(match g.cadence {
            Cadence::OneTime => "ONETIME",
            Cadence::Recurring { .. } => "RECURRING",
        }),
        "period" => match g.cadence {
            Cadence::Recurring { period, .. } => text(period_name(period)),
            Cadence::OneTime => None,
        },
        "period_count" => match g.cadence {
            Cadence::Recurring { count, .. } => Some(Int(count as i64)),
            Cadence::OneTime => None,
        },
        "expiration_type" => text(match g.expiry {
            ExpiryRule::Never => "NEVER",
            ExpiryRule::BillingCycle => "BILLING_CYCLE",
            ExpiryRule::Duration { .. } => "DURATION",
        }),
        "expiration_duration" => match g.expiry {
            ExpiryRule::Duration { count, .. } => Some(Int(count as i64)),
            _ => None,
        },
        "expiration_duration_unit" => match g.expiry {
            ExpiryRule::Duration { unit, .. } => text(unit_name(unit)),
            _ => None,
        },
        "priority" => g.priority.map(Int),
        "metadata" => {
            (!g.metadata.is_empty()).then(|| Text(metadata_value(&g.metadata).to_string()))
        }
        "start_date" => time(g.start),
        "end_date" => time(g.end),
        "credit_grant_anchor" => time(g.anchor),
        _ => return None,
    })
}

/// `GET /v1/creditgrants`: filters, sort, offset pagination (see [`super::list`]).
pub fn list(ctx: &Ctx) -> NativeResult<Value> {
    let q = &ctx.query;
    let page = Page::read(q)?;
    let time = |name: &str| -> NativeResult<Option<Nanos>> {
        match q.first(name).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_rfc3339(s).map(Some).ok_or_else(invalid_filter),
        }
    };
    let (from, to) = (time("start_time")?, time("end_time")?);
    let t = &*ctx.tenant;
    // Every column of the table can be sorted on; anything else is an SQL error upstream.
    if sort_value(&ctx.env, &dummy_grant(), &page.sort).is_none() {
        return Err(NativeError::database("Failed to list credit grants"));
    }
    let keys_of = |name: &str, prefix: &str| -> Option<Vec<Key>> {
        let v = q.all(name);
        (!v.is_empty()).then(|| v.iter().filter_map(|s| key_of(s, prefix)).collect())
    };
    let plan_ids = keys_of("plan_ids", ids::PLAN);
    let sub_ids = keys_of("subscription_ids", ids::SUBSCRIPTION);
    let grant_ids = keys_of("credit_grant_ids", ids::CREDIT_GRANT);
    let addon_filter = !q.all("addon_ids").is_empty();
    let scope = q.first("scope").filter(|s| !s.is_empty());
    let keep = |g: &GrantRule| {
        let status_ok = match page.status.as_deref() {
            None => true,
            Some(s) => s == status_name(g.status),
        };
        status_ok
            && !addon_filter
            && scope.is_none_or(|s| s == scope_name(g.scope))
            && from.is_none_or(|f| g.created >= f)
            && to.is_none_or(|e| g.created <= e)
            && plan_ids
                .as_ref()
                .is_none_or(|v| g.plan.is_some_and(|p| v.contains(&p)))
            && sub_ids
                .as_ref()
                .is_none_or(|v| g.subscription.is_some_and(|s| v.contains(&s)))
            && grant_ids.as_ref().is_none_or(|v| v.contains(&g.key))
    };
    // Creation order is key order, so `created_at` and `id` sorts are walks of the ordered map;
    // with no filter the page costs O(offset + limit) and the total is the map's size.
    let key_ordered = matches!(page.sort.as_str(), "created_at" | "id");
    let unfiltered = page.status.is_none()
        && !addon_filter
        && scope.is_none()
        && from.is_none()
        && to.is_none()
        && plan_ids.is_none()
        && sub_ids.is_none()
        && grant_ids.is_none();
    if key_ordered && unfiltered {
        let walk: Box<dyn Iterator<Item = &GrantRule>> = if page.ascending {
            Box::new(t.grant_rules())
        } else {
            Box::new(t.grant_rules().rev())
        };
        let rows: Vec<&GrantRule> = match page.needed() {
            Some(n) => walk.take(n).collect(),
            None => walk.collect(),
        };
        let items = page
            .slice(rows)
            .into_iter()
            .map(|g| render(&ctx.env, g))
            .collect();
        return Ok(page.render(items, t.grant_rule_count()));
    }
    let candidates: Box<dyn Iterator<Item = &GrantRule>> = match (&grant_ids, &plan_ids, &sub_ids) {
        (Some(v), _, _) => Box::new(
            v.iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter_map(|k| t.grant_rule(*k))
                .collect::<Vec<_>>()
                .into_iter(),
        ),
        (None, Some(v), _) => Box::new(union(t, v, |p| t.grant_rule_keys_of_plan(*p))),
        (None, None, Some(v)) => Box::new(union(t, v, |s| t.grant_rule_keys_of_subscription(*s))),
        (None, None, None) => Box::new(t.grant_rules()),
    };
    let mut rows: Vec<&GrantRule> = candidates.filter(|g| keep(g)).collect();
    let env = ctx.env.as_str();
    let directed = |ord: Ordering| if page.ascending { ord } else { ord.reverse() };
    if key_ordered {
        rows.sort_by(|a, b| directed(a.key.cmp(&b.key)));
    } else {
        // Each row's sort value is computed once, not on every comparison.
        let mut valued: Vec<(Option<SortVal>, &GrantRule)> = rows
            .into_iter()
            .map(|g| (sort_value(env, g, &page.sort).flatten(), g))
            .collect();
        valued.sort_by(|(x, a), (y, b)| directed(nulls_last(x, y).then(a.key.cmp(&b.key))));
        rows = valued.into_iter().map(|(_, g)| g).collect();
    }
    Ok(page.render_rows(rows, |g| render(env, g)))
}

fn nulls_last(a: &Option<SortVal>, b: &Option<SortVal>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn union<'a>(
    t: &'a Tenant,
    targets: &[Key],
    index: impl Fn(&Key) -> KeyIndex<'a>,
) -> std::vec::IntoIter<&'a GrantRule> {
    let mut keys = BTreeSet::new();
    for k in targets {
        keys.extend(index(k));
    }
    keys.into_iter()
        .filter_map(|k| t.grant_rule(k))
        .collect::<Vec<_>>()
        .into_iter()
}

/// A rule used only to ask whether a sort column exists.
fn dummy_grant() -> GrantRule {
    GrantRule {
        key: 0,
        name: String::new(),
        scope: GrantScope::Plan,
        plan: None,
        subscription: None,
        credits: Decimal::ZERO,
        currency: None,
        older_form: false,
        cadence: Cadence::OneTime,
        expiry: ExpiryRule::Never,
        priority: None,
        metadata: Metadata::new(),
        start: None,
        end: None,
        anchor: None,
        conversion_rate: None,
        topup_conversion_rate: None,
        status: GrantStatus::Published,
        created: 0,
        updated: 0,
    }
}

/// `GET /v1/plans/{id}/creditgrants`: the plan's published rules, newest first, unpaginated; an
/// unknown plan is an empty list, not a 404.
pub fn of_plan(ctx: &mut Ctx, plan_id: &str) -> NativeResult<Value> {
    let t = &*ctx.tenant;
    let items: Vec<Value> = key_of(plan_id, ids::PLAN)
        .map(|p| t.grant_rule_keys_of_plan(p))
        .into_iter()
        .flatten()
        .rev()
        .filter_map(|k| t.grant_rule(k))
        .filter(|g| g.scope == GrantScope::Plan && g.status == GrantStatus::Published)
        .map(|g| render(&ctx.env, g))
        .collect();
    let total = items.len();
    Ok(pages::list(items, total, 0, 0))
}

/// `GET /v1/addons/{id}/creditgrants`: the emulator has no addons, so always empty.
pub fn of_addon(_ctx: &mut Ctx, _addon_id: &str) -> NativeResult<Value> {
    Ok(pages::list(Vec::new(), 0, 0, 0))
}

fn application_status_name(s: ApplicationStatus) -> &'static str {
    match s {
        ApplicationStatus::Pending => "pending",
        ApplicationStatus::Applied => "applied",
        ApplicationStatus::Failed => "failed",
        ApplicationStatus::Skipped => "skipped",
        ApplicationStatus::Cancelled => "cancelled",
    }
}

/// The native spelling of a subscription status.
pub fn subscription_status_name(s: SubscriptionStatus) -> &'static str {
    match s {
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::Cancelled => "cancelled",
    }
}

fn rfc3339_seconds(t: Nanos) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(t)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A stable key for one period of one rule (upstream hashes the same three values).
fn idempotency_key(a: &Application) -> String {
    let period_end = a.period_end.unwrap_or(i64::MIN);
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&a.grant.to_le_bytes());
    bytes[16..24].copy_from_slice(&a.period_start.to_le_bytes());
    bytes[24..].copy_from_slice(&period_end.to_le_bytes());
    let h = fnv1a64(0xcbf2_9ce4_8422_2325, &bytes);
    let g = fnv1a64(0x8422_2325_cbf2_9ce4, &bytes);
    format!("{h:016x}{g:016x}")
}

/// Renders an application as Flexprice's `CreditGrantApplicationResponse`.
pub fn render_application(env: &str, a: &Application) -> Value {
    let failure = a.skip.map(|s| match s {
        SkipReason::ExpiredBeforeApplication { expiry, at } => format!(
            "Credit grant expired before application. Expiry date: {}, Current time: {}",
            rfc3339_seconds(expiry),
            rfc3339_seconds(at)
        ),
    });
    let o = Obj::new()
        .put("id", id(ids::APPLICATION, a.key))
        .put("credit_grant_id", id(ids::CREDIT_GRANT, a.grant))
        .put("subscription_id", id(ids::SUBSCRIPTION, a.subscription))
        .put("scheduled_for", ts(a.scheduled_for))
        .opt("applied_at", a.applied_at.map(ts))
        .put("period_start", ts(a.period_start))
        .opt("period_end", a.period_end.map(ts))
        .put("application_status", application_status_name(a.status))
        .put("credits", dec(a.credits))
        .put(
            "application_reason",
            match a.reason {
                ApplicationReason::OneTime => "onetime_credit_grant",
                ApplicationReason::FirstRecurring => "first_time_recurring_credit_grant",
                ApplicationReason::Recurring => "recurring_credit_grant",
            },
        )
        .put(
            "subscription_status_at_application",
            subscription_status_name(a.subscription_status),
        )
        .put("retry_count", a.retry_count)
        .opt("failure_reason", failure)
        .put("idempotency_key", idempotency_key(a))
        .put("environment_id", env);
    base(o, "published", a.created, a.updated).done()
}

fn upcoming(ctx: &Ctx, subscriptions: &[Key]) -> Value {
    let t = &*ctx.tenant;
    let mut apps: Vec<&Application> = subscriptions
        .iter()
        .flat_map(|s| t.open_application_keys_of(*s))
        .filter_map(|k| t.application(k))
        .collect();
    apps.sort_by_key(|a| (a.scheduled_for, a.key));
    let items: Vec<Value> = apps
        .into_iter()
        .map(|a| render_application(&ctx.env, a))
        .collect();
    let total = items.len();
    pages::list(items, total, 0, 0)
}

/// `GET /v1/subscriptions/{id}/grants/upcoming`: pending and failed applications of an active
/// subscription, soonest first.
pub fn upcoming_of_subscription(ctx: &mut Ctx, sub_id: &str) -> NativeResult<Value> {
    let key = key_of(sub_id, ids::SUBSCRIPTION)
        .filter(|k| {
            ctx.tenant
                .subscription(*k)
                .is_some_and(|s| s.status == SubscriptionStatus::Active)
        })
        .ok_or_else(|| NativeError::not_found("Please verify the subscription ID is correct"))?;
    Ok(upcoming(ctx, &[key]))
}

/// `GET /v1/customers/{id}/grants/upcoming`: the same over the customer's active subscriptions.
pub fn upcoming_of_customer(ctx: &mut Ctx, customer_id: &str) -> NativeResult<Value> {
    let customer = customers::lookup(ctx.tenant, customer_id)?;
    let t = &*ctx.tenant;
    let subs: Vec<Key> = t
        .subscription_keys_of(customer)
        .into_iter()
        .filter(|k| {
            t.subscription(*k)
                .is_some_and(|s| s.status == SubscriptionStatus::Active)
        })
        .collect();
    Ok(upcoming(ctx, &subs))
}
