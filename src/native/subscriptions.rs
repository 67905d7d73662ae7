//! `/v1/subscriptions`: a customer on a plan in one currency, anniversary billing, status `active`
//! until cancelled. Creating one copies the plan's published grant rules onto it (or uses the rules
//! given in `credit_grants`), and anything already due is applied before the response.

use serde_json::{json, Value};

use super::credit_grants::{self, parse_period, period_name, subscription_status_name};
use super::customers::{self, request_validation_failed, required_detail};
use super::error::{NativeError, NativeResult};
use super::ids::{self, key_of, render as id};
use super::json::{metadata_value, ts, Obj};
use super::list::Page;
use super::{base, plans, Ctx};
use crate::ids::Key;
use crate::model::{
    BillingCadence, Currency, NewSubscription, Subscription, SubscriptionStatus, Tenant,
};
use crate::time::Nanos;

/// Documented subscription fields the emulator does not model; sending one is a clear 400.
const UNSUPPORTED: [&str; 20] = [
    "trial_start",
    "trial_end",
    "commitment_amount",
    "commitment_duration",
    "overage_factor",
    "coupons",
    "line_item_coupons",
    "line_item_commitments",
    "override_line_items",
    "override_entitlements",
    "addons",
    "line_items",
    "phases",
    "tax_rate_overrides",
    "invoicing_customer_id",
    "invoicing_customer_external_id",
    "invoice_billing",
    "parent_subscription_id",
    "payment_terms",
    "gateway_payment_method_id",
];

fn unsupported(field: &str) -> NativeError {
    NativeError::validation(format!(
        "The field {field} is not supported by the credit emulator (subscriptions support customer_id or external_customer_id, plan_id, currency, billing_cadence, billing_period, billing_period_count, start_date, end_date, lookup_key, metadata and credit_grants)"
    ))
}

fn cadence_name(c: BillingCadence) -> &'static str {
    match c {
        BillingCadence::Recurring => "RECURRING",
        BillingCadence::OneTime => "ONETIME",
    }
}

/// Renders a subscription as Flexprice's `SubscriptionResponse`, with its plan and customer.
pub fn render(env: &str, t: &Tenant, s: &Subscription) -> Value {
    let now = t.now_for(s.customer);
    let (period_start, period_end) = s.current_period(now);
    let o = Obj::new()
        .put("id", id(ids::SUBSCRIPTION, s.key))
        .opt("lookup_key", s.lookup_key.clone())
        .put("customer_id", id(ids::CUSTOMER, s.customer))
        .put("plan_id", id(ids::PLAN, s.plan))
        .put("subscription_status", subscription_status_name(s.status))
        .put("currency", s.currency.as_str())
        .put("billing_anchor", ts(s.start))
        .put("billing_cycle", "anniversary")
        .put("start_date", ts(s.start))
        .opt("end_date", s.end.map(ts))
        .put("current_period_start", ts(period_start))
        .put("current_period_end", ts(period_end))
        .opt("cancelled_at", s.cancelled_at.map(ts))
        .put("cancel_at", Value::Null)
        .put("cancel_at_period_end", false)
        .put("trial_start", Value::Null)
        .put("trial_end", Value::Null)
        .put("billing_cadence", cadence_name(s.cadence))
        .put("billing_period", period_name(s.period))
        .put("billing_period_count", s.period_count)
        .put("version", 1)
        .opt(
            "metadata",
            (!s.metadata.is_empty()).then(|| metadata_value(&s.metadata)),
        )
        .put("environment_id", env)
        .put("pause_status", "none")
        .put("payment_behavior", "default_active")
        .put("collection_method", "charge_automatically")
        .put("customer_timezone", "UTC")
        .put("proration_behavior", "none")
        .put("enable_true_up", false);
    let o = base(o, "published", s.created, s.updated);
    let plan = t
        .plan(s.plan)
        .map_or(Value::Null, |p| plans::render(env, p));
    let customer = t
        .customer(s.customer)
        .map_or(Value::Null, |c| customers::render(env, c));
    o.put("plan", plan).put("customer", customer).done()
}

fn lookup(t: &Tenant, id_: &str) -> NativeResult<Key> {
    key_of(id_, ids::SUBSCRIPTION)
        .filter(|k| t.subscription(*k).is_some())
        .ok_or_else(|| NativeError::not_found("Subscription not found"))
}

/// `POST /v1/subscriptions` (201).
pub fn create(ctx: &mut Ctx) -> NativeResult<Value> {
    let body = ctx.body()?;
    let customer_id = body.string("customer_id")?;
    let external_customer_id = body.string("external_customer_id")?;
    let plan_id = body.string("plan_id")?;
    let currency = body.string("currency")?;
    let lookup_key = body.string("lookup_key")?;
    let start = body.time("start_date")?;
    let end = body.time("end_date")?;
    let cadence = body.string("billing_cadence")?;
    let period = body.string("billing_period")?;
    let count = body.int("billing_period_count")?.unwrap_or(0);
    let metadata = body.metadata("metadata")?.unwrap_or_default();
    let cycle = body.string("billing_cycle")?;
    let status = body.string("subscription_status")?;
    // gin binds the whole body, nested grants included, before any rule runs.
    let grants = match body.objects("credit_grants")? {
        None => None,
        Some(items) => Some(
            items
                .iter()
                .map(credit_grants::bind_fields)
                .collect::<NativeResult<Vec<_>>>()?,
        ),
    };
    for field in UNSUPPORTED {
        let given = match body.get(field) {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
            None => false,
        };
        if given {
            return Err(unsupported(field));
        }
    }
    if customer_id.is_empty() && external_customer_id.is_empty() {
        return Err(NativeError::validation(
            "Please provide either customer_id or external_customer_id",
        ));
    }
    let mut failed = Vec::new();
    if plan_id.is_empty() {
        failed.push(required_detail("CreateSubscriptionRequest", "PlanID"));
    }
    if currency.is_empty() {
        failed.push(required_detail("CreateSubscriptionRequest", "Currency"));
    } else if currency.chars().count() != 3 {
        failed.push((
            "Currency".to_string(),
            json!("Key: 'CreateSubscriptionRequest.Currency' Error:Field validation for 'Currency' failed on the 'len' tag"),
        ));
    }
    if period.is_empty() {
        failed.push(required_detail(
            "CreateSubscriptionRequest",
            "BillingPeriod",
        ));
    }
    if !failed.is_empty() {
        return Err(request_validation_failed(failed));
    }
    let currency = Currency::parse(&currency).ok_or_else(|| {
        NativeError::validation("Invalid currency code")
            .details(vec![("currency", json!(currency))])
    })?;
    let cadence = match cadence.as_str() {
        "" | "RECURRING" => BillingCadence::Recurring,
        "ONETIME" => BillingCadence::OneTime,
        _ => {
            return Err(NativeError::validation("Invalid billing cadence")
                .details(vec![("billing_cadence", json!(cadence))]))
        }
    };
    let period = parse_period(&period).ok_or_else(|| {
        NativeError::validation("Invalid billing period")
            .details(vec![("billing_period", json!(period))])
    })?;
    match cycle.as_str() {
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
    if !matches!(status.as_str(), "" | "active") {
        return Err(NativeError::validation(format!(
            "The subscription_status {status} is not supported by the credit emulator (subscriptions are created active)"
        )));
    }
    if count < 0 {
        return Err(
            NativeError::validation("Billing Period must be a valid positive number")
                .details(vec![("billing_period_count", json!(count))]),
        );
    }
    let count = u32::try_from(count.max(1)).unwrap_or(u32::MAX);
    let t = &*ctx.tenant;
    let customer = if !customer_id.is_empty() {
        key_of(&customer_id, ids::CUSTOMER)
            .filter(|k| t.live_customer(*k).is_some())
            .ok_or_else(|| customers::not_found(&customer_id))?
    } else {
        customers::by_external_id(t, &external_customer_id).ok_or_else(|| {
            NativeError::not_found(format!(
                "Customer with lookup key {external_customer_id} was not found"
            ))
            .details(vec![("lookup_key", json!(external_customer_id))])
        })?
    };
    let start: Nanos = start.unwrap_or_else(|| t.now_for(customer));
    if let Some(e) = end.filter(|e| *e < start) {
        return Err(NativeError::validation("End date must be after start date")
            .details(vec![("start_date", ts(start)), ("end_date", ts(e))]));
    }
    let plan = plans::published(t, &plan_id)?;
    // The plan's rules are copied only when no rules are given; one bound to another currency
    // could put its credits in none of the subscription's wallets.
    if grants.is_none() {
        if let Some(g) = t.plan_rule_in_other_currency(plan, currency) {
            let own = g.currency.unwrap_or(currency);
            return Err(credit_grants::currency_mismatch(
                Some(id(ids::CREDIT_GRANT, g.key)),
                own,
                currency,
            ));
        }
    }
    // The subscription's key is taken now so that rules given with it can name it (and given back
    // if one of them is refused).
    let env = ctx.env.clone();
    super::with_next_key(ctx.tenant, |tenant, key| {
        let rules = match grants {
            None => None,
            Some(items) => {
                let pending = credit_grants::PendingSubscription {
                    key,
                    start,
                    end,
                    currency,
                };
                let mut rules = Vec::with_capacity(items.len());
                for mut input in items {
                    input.scope = "SUBSCRIPTION".to_string();
                    input.subscription_id = Some(id(ids::SUBSCRIPTION, key));
                    input.start = input.start.or(Some(start));
                    input.end = input.end.or(end);
                    let checked = credit_grants::validate(&input)?;
                    let refs = credit_grants::check_references(
                        tenant,
                        &input,
                        &checked,
                        None,
                        Some(pending),
                    )?;
                    credit_grants::check_storage(&input, &checked)?;
                    rules.push(credit_grants::to_new(input, &checked, refs));
                }
                Some(rules)
            }
        };
        tenant.create_subscription_with_key(
            key,
            NewSubscription {
                customer,
                plan,
                currency,
                cadence,
                period,
                period_count: count,
                start: Some(start),
                end,
                lookup_key: (!lookup_key.is_empty()).then_some(lookup_key),
                metadata,
                grants: rules,
            },
        );
        Ok(render(
            &env,
            tenant,
            tenant.subscription(key).expect("made above"),
        ))
    })
}

/// `GET /v1/subscriptions/{id}`.
pub fn retrieve(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let key = lookup(ctx.tenant, id_)?;
    let t = &*ctx.tenant;
    Ok(render(
        &ctx.env,
        t,
        t.subscription(key).expect("looked up above"),
    ))
}

/// `GET /v1/subscriptions`: newest first; filters `customer_id`, `plan_id`, `subscription_status`.
pub fn list(ctx: &mut Ctx) -> NativeResult<Value> {
    let page = Page::read(&ctx.query)?;
    let q = &ctx.query;
    // Parsed once; a given id that does not parse (`Some(None)`) matches nothing.
    let customer = q
        .first("customer_id")
        .filter(|s| !s.is_empty())
        .map(|c| key_of(c, ids::CUSTOMER));
    let plan = q
        .first("plan_id")
        .filter(|s| !s.is_empty())
        .map(|p| key_of(p, ids::PLAN));
    let status = q.first("subscription_status").filter(|s| !s.is_empty());
    let t = &*ctx.tenant;
    let walk: Box<dyn Iterator<Item = &Subscription>> = if page.ascending {
        Box::new(t.subscriptions())
    } else {
        Box::new(t.subscriptions().rev())
    };
    let rows: Vec<&Subscription> = walk
        .filter(|s| {
            customer.is_none_or(|c| c == Some(s.customer))
                && plan.is_none_or(|p| p == Some(s.plan))
                && status.is_none_or(|x| x == subscription_status_name(s.status))
        })
        .collect();
    Ok(page.render_rows(rows, |s| render(&ctx.env, t, s)))
}

/// `POST /v1/subscriptions/{id}/cancel`: `cancellation_type` `immediate` ends it now; its grant
/// rules end and their pending applications are cancelled (credits already given stay).
pub fn cancel(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    // Upstream binds the body with `ShouldBindJSON` whatever its length, so an empty one fails.
    let body = ctx.body()?;
    let kind = body.string("cancellation_type")?;
    let reason = body.string("reason")?;
    match kind.as_str() {
        "immediate" => {}
        "end_of_period" | "scheduled_date" => {
            return Err(NativeError::validation(format!(
            "The cancellation_type {kind} is not supported by the credit emulator (use immediate)"
        )))
        }
        "" => {
            return Err(request_validation_failed(vec![required_detail(
                "CancelSubscriptionRequest",
                "CancellationType",
            )]))
        }
        _ => {
            return Err(NativeError::validation("Invalid cancellation type")
                .details(vec![("cancellation_type", json!(kind))]))
        }
    }
    let key = lookup(ctx.tenant, id_)?;
    if ctx
        .tenant
        .subscription(key)
        .is_some_and(|s| s.status == SubscriptionStatus::Cancelled)
    {
        return Err(NativeError::validation("Subscription is already cancelled")
            .details(vec![("subscription_id", json!(id_))]));
    }
    ctx.tenant.cancel_subscription(key);
    let s = ctx.tenant.subscription(key).expect("looked up above");
    let at = s.cancelled_at.unwrap_or(s.updated);
    let mut out = json!({
        "subscription_id": id(ids::SUBSCRIPTION, key),
        "cancellation_type": kind,
        "effective_date": ts(at),
        "status": subscription_status_name(s.status),
    });
    if let Some(o) = out.as_object_mut() {
        if !reason.is_empty() {
            o.insert("reason".into(), json!(reason));
        }
        o.insert("proration_details".into(), json!([]));
        o.insert("total_credit_amount".into(), json!("0"));
        o.insert(
            "message".into(),
            json!("subscription cancelled successfully"),
        );
        o.insert("processed_at".into(), ts(at));
    }
    Ok(out)
}
