//! `/v1/subscriptions`: a customer on a plan in one currency, anniversary billing, status `active`
//! until cancelled. Creating one copies the plan's published grant rules onto it (or uses the rules
//! given in `credit_grants`), and anything already due is applied before the response.

use serde::Serialize;
use serde_json::json;

use super::customers::CustomerView;
use super::error::{self, field_failed, request_validation_failed, NativeError, NativeResult};
use super::find;
use super::grant_rules::{self, GrantBody, GrantInput, PendingSubscription};
use super::ids::{self, key_of};
use super::json::{self, json_object, Sent};
use super::list::{Page, Rows};
use super::names;
use super::op::{with_next_key, Input, Operation};
use super::plans::PlanView;
use super::view::{Id, SortedMap, Stamp, Time};
use crate::ids::Key;
use crate::model::periods::Period;
use crate::model::{
    BillingCadence, Currency, Metadata, NewGrantRule, NewSubscription, Subscription,
    SubscriptionStatus, Tenant,
};
use crate::time::Nanos;

/// Flexprice's `SubscriptionResponse`, with its plan and customer.
#[derive(Debug, Serialize)]
pub struct SubscriptionView<'a> {
    id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    lookup_key: Option<&'a str>,
    customer_id: Id,
    plan_id: Id,
    subscription_status: &'static str,
    currency: &'a str,
    billing_anchor: Time,
    billing_cycle: &'static str,
    start_date: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_date: Option<Time>,
    current_period_start: Time,
    current_period_end: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled_at: Option<Time>,
    cancel_at: (),
    cancel_at_period_end: bool,
    trial_start: (),
    trial_end: (),
    billing_cadence: &'static str,
    billing_period: &'static str,
    billing_period_count: u32,
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<SortedMap<'a>>,
    environment_id: &'a str,
    pause_status: &'static str,
    payment_behavior: &'static str,
    collection_method: &'static str,
    customer_timezone: &'static str,
    proration_behavior: &'static str,
    enable_true_up: bool,
    #[serde(flatten)]
    stamp: Stamp,
    plan: Option<PlanView<'a>>,
    customer: Option<CustomerView<'a>>,
}

impl<'a> SubscriptionView<'a> {
    /// The view of a subscription; its current period is the one containing its customer's now.
    pub fn new(env: &'a str, t: &'a Tenant, s: &'a Subscription) -> Self {
        let now = t.now_for(s.customer);
        let (period_start, period_end) = s.current_period(now);
        SubscriptionView {
            id: Id(ids::SUBSCRIPTION, s.key),
            lookup_key: s.lookup_key.as_deref(),
            customer_id: Id(ids::CUSTOMER, s.customer),
            plan_id: Id(ids::PLAN, s.plan),
            subscription_status: names::subscription_status(s.status),
            currency: s.currency.as_str(),
            billing_anchor: Time(s.start),
            billing_cycle: "anniversary",
            start_date: Time(s.start),
            end_date: s.end.map(Time),
            current_period_start: Time(period_start),
            current_period_end: Time(period_end),
            cancelled_at: s.cancelled_at.map(Time),
            cancel_at: (),
            cancel_at_period_end: false,
            trial_start: (),
            trial_end: (),
            billing_cadence: names::billing_cadence(s.cadence),
            billing_period: names::period(s.period),
            billing_period_count: s.period_count,
            version: 1,
            metadata: (!s.metadata.is_empty()).then_some(SortedMap(&s.metadata)),
            environment_id: env,
            pause_status: "none",
            payment_behavior: "default_active",
            collection_method: "charge_automatically",
            customer_timezone: "UTC",
            proration_behavior: "none",
            enable_true_up: false,
            stamp: Stamp::new("published", s.created, s.updated),
            plan: t.plan(s.plan).map(|p| PlanView::new(env, p)),
            customer: t.customer(s.customer).map(|c| CustomerView::new(env, c)),
        }
    }
}

/// A subscription to show, with the world it lives in.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'t> {
    t: &'t Tenant,
    s: &'t Subscription,
}

json_object! {
    /// `CreateSubscriptionRequest`.
    pub struct CreateBody {
        /// The customer, by native id.
        customer_id: json::Str,
        /// The customer, by its `external_id`.
        external_customer_id: json::Str,
        /// Required.
        plan_id: json::Str,
        /// Required, three letters.
        currency: json::Str,
        /// `lookup_key`.
        lookup_key: json::Str,
        /// Default: the customer's now.
        start_date: json::Time,
        /// `end_date`.
        end_date: json::Time,
        /// RECURRING (default) or ONETIME.
        billing_cadence: json::Str,
        /// Required.
        billing_period: json::Str,
        /// Default 1.
        billing_period_count: json::Int,
        /// `metadata`.
        metadata: json::Map,
        /// Only `anniversary`.
        billing_cycle: json::Str,
        /// Only `active`.
        subscription_status: json::Str,
        /// Grant rules for this subscription instead of the plan's.
        credit_grants: json::List<GrantBody>,
        /// Documented, not modelled.
        trial_start: json::Any,
        /// Documented, not modelled.
        trial_end: json::Any,
        /// Documented, not modelled.
        commitment_amount: json::Any,
        /// Documented, not modelled.
        commitment_duration: json::Any,
        /// Documented, not modelled.
        overage_factor: json::Any,
        /// Documented, not modelled.
        coupons: json::Any,
        /// Documented, not modelled.
        line_item_coupons: json::Any,
        /// Documented, not modelled.
        line_item_commitments: json::Any,
        /// Documented, not modelled.
        override_line_items: json::Any,
        /// Documented, not modelled.
        override_entitlements: json::Any,
        /// Documented, not modelled.
        addons: json::Any,
        /// Documented, not modelled.
        line_items: json::Any,
        /// Documented, not modelled.
        phases: json::Any,
        /// Documented, not modelled.
        tax_rate_overrides: json::Any,
        /// Documented, not modelled.
        invoicing_customer_id: json::Any,
        /// Documented, not modelled.
        invoicing_customer_external_id: json::Any,
        /// Documented, not modelled.
        invoice_billing: json::Any,
        /// Documented, not modelled.
        parent_subscription_id: json::Any,
        /// Documented, not modelled.
        payment_terms: json::Any,
        /// Documented, not modelled.
        gateway_payment_method_id: json::Any,
    }
}

impl CreateBody {
    /// The documented fields the emulator does not model, in upstream's order, with what was sent.
    fn unsupported(&self) -> [(&'static str, Option<Sent>); 20] {
        [
            ("trial_start", self.trial_start),
            ("trial_end", self.trial_end),
            ("commitment_amount", self.commitment_amount),
            ("commitment_duration", self.commitment_duration),
            ("overage_factor", self.overage_factor),
            ("coupons", self.coupons),
            ("line_item_coupons", self.line_item_coupons),
            ("line_item_commitments", self.line_item_commitments),
            ("override_line_items", self.override_line_items),
            ("override_entitlements", self.override_entitlements),
            ("addons", self.addons),
            ("line_items", self.line_items),
            ("phases", self.phases),
            ("tax_rate_overrides", self.tax_rate_overrides),
            ("invoicing_customer_id", self.invoicing_customer_id),
            (
                "invoicing_customer_external_id",
                self.invoicing_customer_external_id,
            ),
            ("invoice_billing", self.invoice_billing),
            ("parent_subscription_id", self.parent_subscription_id),
            ("payment_terms", self.payment_terms),
            ("gateway_payment_method_id", self.gateway_payment_method_id),
        ]
    }
}

/// Who the subscription is for, as the request names them.
#[derive(Debug)]
enum CustomerRef {
    /// `customer_id`.
    Id(String),
    /// `external_customer_id`.
    External(String),
}

/// `POST /v1/subscriptions` (201).
#[derive(Debug)]
pub struct Create {
    customer: CustomerRef,
    plan_id: String,
    currency: Currency,
    cadence: BillingCadence,
    period: Period,
    count: u32,
    start: Option<Nanos>,
    end: Option<Nanos>,
    lookup_key: String,
    metadata: Metadata,
    grants: Option<Vec<GrantInput>>,
}

impl Operation for Create {
    const STATUS: u16 = 201;
    type Done<'t> = Shown<'t>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        // gin binds the whole body, nested grants included, before any rule runs.
        let body: CreateBody = input.body()?;
        check_unsupported(&body)?;
        let customer_id = body.customer_id.unwrap_or_default();
        let external_customer_id = body.external_customer_id.unwrap_or_default();
        let customer = match (customer_id.is_empty(), external_customer_id.is_empty()) {
            (true, true) => {
                return Err(NativeError::validation(
                    "Please provide either customer_id or external_customer_id",
                ))
            }
            (false, _) => CustomerRef::Id(customer_id),
            (true, false) => CustomerRef::External(external_customer_id),
        };
        let plan_id = body.plan_id.unwrap_or_default();
        let currency = body.currency.unwrap_or_default();
        let period = body.billing_period.unwrap_or_default();
        check_required(&plan_id, &currency, &period)?;
        let currency = Currency::parse(&currency).ok_or_else(|| {
            NativeError::validation("Invalid currency code")
                .details(vec![("currency", json!(currency))])
        })?;
        let cadence = cadence_of(body.billing_cadence.unwrap_or_default())?;
        let period = names::parse_period(&period).ok_or_else(|| {
            NativeError::validation("Invalid billing period")
                .details(vec![("billing_period", json!(period))])
        })?;
        check_cycle_and_status(
            body.billing_cycle.as_deref().unwrap_or_default(),
            body.subscription_status.as_deref().unwrap_or_default(),
        )?;
        let count = body.billing_period_count.unwrap_or(0);
        if count < 0 {
            return Err(
                NativeError::validation("Billing Period must be a valid positive number")
                    .details(vec![("billing_period_count", json!(count))]),
            );
        }
        Ok(Create {
            customer,
            plan_id,
            currency,
            cadence,
            period,
            count: u32::try_from(count.max(1)).unwrap_or(u32::MAX),
            start: body.start_date,
            end: body.end_date,
            lookup_key: body.lookup_key.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
            grants: body
                .credit_grants
                .map(|items| items.into_iter().map(GrantInput::from).collect()),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Shown<'_>> {
        let customer = match &self.customer {
            CustomerRef::Id(id) => find::live_customer(t, id)?,
            CustomerRef::External(external) => find::customer_by_external_id(t, external)
                .ok_or_else(|| {
                    NativeError::not_found(format!(
                        "Customer with lookup key {external} was not found"
                    ))
                    .details(vec![("lookup_key", json!(external))])
                })?,
        };
        let start: Nanos = self.start.unwrap_or_else(|| t.now_for(customer));
        if let Some(e) = self.end.filter(|e| *e < start) {
            return Err(
                NativeError::validation("End date must be after start date").details(vec![
                    ("start_date", json!(Time(start))),
                    ("end_date", json!(Time(e))),
                ]),
            );
        }
        let plan = find::published_plan(t, &self.plan_id)?;
        // The plan's rules are copied only when no rules are given; one bound to another currency
        // could put its credits in none of the subscription's wallets.
        if self.grants.is_none() {
            if let Some(g) = t.plan_rule_in_other_currency(plan, self.currency) {
                let own = g.currency.unwrap_or(self.currency);
                return Err(grant_rules::currency_mismatch(
                    Some(ids::render(ids::CREDIT_GRANT, g.key)),
                    own,
                    self.currency,
                ));
            }
        }
        // The subscription's key is taken now so that rules given with it can name it (and given
        // back if one of them is refused).
        let key = with_next_key(t, |tenant, key| {
            let pending = PendingSubscription {
                key,
                start,
                end: self.end,
                currency: self.currency,
            };
            let rules = match self.grants {
                None => None,
                Some(items) => Some(inline_rules(tenant, items, pending)?),
            };
            tenant.create_subscription_with_key(
                key,
                NewSubscription {
                    customer,
                    plan,
                    currency: self.currency,
                    cadence: self.cadence,
                    period: self.period,
                    period_count: self.count,
                    start: Some(start),
                    end: self.end,
                    lookup_key: (!self.lookup_key.is_empty()).then_some(self.lookup_key),
                    metadata: self.metadata,
                    grants: rules,
                },
            );
            Ok(key)
        })?;
        let t = &*t;
        Ok(Shown {
            t,
            s: t.subscription(key).expect("looked up above"),
        })
    }

    fn render<'a>(done: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        SubscriptionView::new(env, done.t, done.s)
    }
}

/// A documented field the emulator does not model is refused when given (an empty string, array
/// or object is as good as absent).
fn check_unsupported(body: &CreateBody) -> NativeResult<()> {
    for (field, sent) in body.unsupported() {
        let given = match sent {
            Some(Sent::Str { empty } | Sent::Array { empty } | Sent::Object { empty }) => !empty,
            Some(Sent::Other) => true,
            None => false,
        };
        if given {
            return Err(error::unsupported(
                field,
                "subscriptions support customer_id or external_customer_id, plan_id, currency, billing_cadence, billing_period, billing_period_count, start_date, end_date, lookup_key, metadata and credit_grants",
            ));
        }
    }
    Ok(())
}

/// go-playground's `required` tags on `PlanID`, `Currency` (also `len=3`) and `BillingPeriod`,
/// all reported at once.
fn check_required(plan_id: &str, currency: &str, period: &str) -> NativeResult<()> {
    const REQUEST: &str = "CreateSubscriptionRequest";
    let mut failed = Vec::new();
    if plan_id.is_empty() {
        failed.push(("PlanID", error::required(REQUEST, "PlanID")));
    }
    if currency.is_empty() {
        failed.push(("Currency", error::required(REQUEST, "Currency")));
    } else if currency.chars().count() != 3 {
        failed.push(("Currency", field_failed(REQUEST, "Currency", "len")));
    }
    if period.is_empty() {
        failed.push(("BillingPeriod", error::required(REQUEST, "BillingPeriod")));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(request_validation_failed(failed))
    }
}

fn cadence_of(cadence: String) -> NativeResult<BillingCadence> {
    match cadence.as_str() {
        "" | "RECURRING" => Ok(BillingCadence::Recurring),
        "ONETIME" => Ok(BillingCadence::OneTime),
        _ => Err(NativeError::validation("Invalid billing cadence")
            .details(vec![("billing_cadence", json!(cadence))])),
    }
}

/// Anniversary billing only, and subscriptions are created active.
fn check_cycle_and_status(cycle: &str, status: &str) -> NativeResult<()> {
    match cycle {
        "" | "anniversary" => {}
        "calendar" => {
            return Err(NativeError::validation(
                "The billing_cycle calendar is not supported by the credit emulator (subscriptions bill on the anniversary of their start)",
            ))
        }
        _ => {
            return Err(NativeError::validation("Invalid billing cycle")
                .details(vec![("billing_cycle", json!(cycle))]))
        }
    }
    if !matches!(status, "" | "active") {
        return Err(NativeError::validation(format!(
            "The subscription_status {status} is not supported by the credit emulator (subscriptions are created active)"
        )));
    }
    Ok(())
}

/// The rules given with a new subscription, each checked like `POST /v1/creditgrants` with scope
/// SUBSCRIPTION, this subscription, and its dates unless the rule has its own.
fn inline_rules(
    t: &Tenant,
    items: Vec<GrantInput>,
    pending: PendingSubscription,
) -> NativeResult<Vec<NewGrantRule>> {
    let mut rules = Vec::with_capacity(items.len());
    for mut input in items {
        input.scope = "SUBSCRIPTION".to_string();
        input.subscription_id = Some(ids::render(ids::SUBSCRIPTION, pending.key));
        input.start = input.start.or(Some(pending.start));
        input.end = input.end.or(pending.end);
        let checked = grant_rules::validate(&input)?;
        let refs = grant_rules::check_references(t, &input, &checked, None, Some(pending))?;
        grant_rules::check_storage(&input, &checked)?;
        rules.push(grant_rules::to_new(input, &checked, refs));
    }
    Ok(rules)
}

/// `GET /v1/subscriptions/{id}`.
#[derive(Debug)]
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Done<'t> = Shown<'t>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(Retrieve {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Shown<'_>> {
        let t = &*t;
        let key = find::subscription(t, &self.id)?;
        Ok(Shown {
            t,
            s: t.subscription(key).expect("looked up above"),
        })
    }

    fn render<'a>(done: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        SubscriptionView::new(env, done.t, done.s)
    }
}

/// `GET /v1/subscriptions`: newest first; filters `customer_id`, `plan_id`, `subscription_status`.
#[derive(Debug)]
pub struct List {
    page: Page,
    /// A given id that does not parse (`Some(None)`) matches nothing.
    customer: Option<Option<Key>>,
    plan: Option<Option<Key>>,
    status: Option<String>,
}

impl Operation for List {
    type Done<'t> = (&'t Tenant, Rows<&'t Subscription>);

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        let q = input.query;
        let page = Page::read(q)?;
        let given = |name: &str| q.first(name).filter(|s| !s.is_empty());
        Ok(List {
            page,
            customer: given("customer_id").map(|c| key_of(c, ids::CUSTOMER)),
            plan: given("plan_id").map(|p| key_of(p, ids::PLAN)),
            status: given("subscription_status").map(str::to_string),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<(&Tenant, Rows<&Subscription>)> {
        let t = &*t;
        let walk: Box<dyn Iterator<Item = &Subscription>> = if self.page.ascending {
            Box::new(t.subscriptions())
        } else {
            Box::new(t.subscriptions().rev())
        };
        let rows: Vec<&Subscription> = walk
            .filter(|s| {
                self.customer.is_none_or(|c| c == Some(s.customer))
                    && self.plan.is_none_or(|p| p == Some(s.plan))
                    && self
                        .status
                        .as_deref()
                        .is_none_or(|x| x == names::subscription_status(s.status))
            })
            .collect();
        Ok((t, self.page.rows(rows)))
    }

    fn render<'a>(done: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        let (t, rows) = done;
        rows.view(|s| SubscriptionView::new(env, t, s))
    }
}

json_object! {
    /// `CancelSubscriptionRequest`.
    pub struct CancelBody {
        /// Only `immediate`.
        cancellation_type: json::Str,
        /// Shown back in the answer.
        reason: json::Str,
    }
}

/// `POST /v1/subscriptions/{id}/cancel`: `cancellation_type` `immediate` ends it now; its grant
/// rules end and their pending applications are cancelled (credits already given stay).
#[derive(Debug)]
pub struct Cancel {
    id: String,
    reason: String,
}

/// Flexprice's `CancelSubscriptionResponse`.
#[derive(Debug, Serialize)]
pub struct CancelView<'a> {
    subscription_id: Id,
    cancellation_type: &'static str,
    effective_date: Time,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    proration_details: [(); 0],
    total_credit_amount: &'static str,
    message: &'static str,
    processed_at: Time,
}

impl Operation for Cancel {
    type Done<'t> = (String, &'t Subscription);

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        // Upstream binds the body with `ShouldBindJSON` whatever its length, so an empty one fails.
        let body: CancelBody = input.body()?;
        let kind = body.cancellation_type.unwrap_or_default();
        match kind.as_str() {
            "immediate" => {}
            "end_of_period" | "scheduled_date" => {
                return Err(NativeError::validation(format!(
                    "The cancellation_type {kind} is not supported by the credit emulator (use immediate)"
                )))
            }
            "" => {
                return Err(request_validation_failed(vec![(
                    "CancellationType",
                    error::required("CancelSubscriptionRequest", "CancellationType"),
                )]))
            }
            _ => {
                return Err(NativeError::validation("Invalid cancellation type")
                    .details(vec![("cancellation_type", json!(kind))]))
            }
        }
        Ok(Cancel {
            id: input.id.to_string(),
            reason: body.reason.unwrap_or_default(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<(String, &Subscription)> {
        let key = find::subscription(t, &self.id)?;
        if t.subscription(key).expect("looked up above").status == SubscriptionStatus::Cancelled {
            return Err(NativeError::validation("Subscription is already cancelled")
                .details(vec![("subscription_id", json!(self.id))]));
        }
        t.cancel_subscription(key);
        Ok((self.reason, t.subscription(key).expect("looked up above")))
    }

    fn render<'a>(done: &'a Self::Done<'_>, _: &'a str) -> impl Serialize + 'a {
        let (reason, s) = done;
        let at = s.cancelled_at.unwrap_or(s.updated);
        CancelView {
            subscription_id: Id(ids::SUBSCRIPTION, s.key),
            cancellation_type: "immediate",
            effective_date: Time(at),
            status: names::subscription_status(s.status),
            reason,
            proration_details: [],
            total_credit_amount: "0",
            message: "subscription cancelled successfully",
            processed_at: Time(at),
        }
    }
}
