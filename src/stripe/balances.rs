//! `GET /v1/billing/credit_balance_summary`: one customer's balances per currency, over the grants a
//! filter selects.
//!
//! Only the customer's own lots are visited (the per-customer lot index), never the whole tenant.

use serde_json::{json, Value};

use super::credit_grants::amount_json;
use super::error::{StripeError, StripeResult};
use super::params::{get_expand, get_obj, get_str, opt, req, validate_at, Field, Spec, EXPAND};
use super::transactions::customer_param;
use super::versions::Change;
use super::{expand, ids, Ctx};
use crate::form::Params;
use crate::model::{Applicability, Lot};

const PRICE: &[Field] = &[req("id", Spec::Str(5000))];
const SCOPE: &[Field] = &[
    opt("price_type", Spec::Enum(&["metered"])).required_before(Change::PriceScope),
    opt("prices", Spec::Array(&Spec::Obj(PRICE), 100)).since(Change::PriceScope),
];
const FILTER: &[Field] = &[
    opt("applicability_scope", Spec::Obj(SCOPE)),
    opt("credit_grant", Spec::Str(5000)),
    req("type", Spec::Enum(&["applicability_scope", "credit_grant"])),
];
const SUMMARY: &[Field] = &[
    opt("customer", Spec::Str(5000)).required_before(Change::CustomerAccount),
    opt("customer_account", Spec::Unsupported).since(Change::CustomerAccount),
    EXPAND,
    req("filter", Spec::Obj(FILTER)),
];
/// `balances` is expandable in Stripe's schema but holds no ids, so expanding it changes nothing.
const EXPANDABLE: &[&str] = &["balances", "customer"];

/// Which of the customer's lots the summary covers.
enum Filter {
    /// Lots whose scope shares a line with this one.
    Scope(Applicability),
    /// Exactly one lot.
    Grant(crate::ids::Key),
}

impl Filter {
    fn keeps(&self, lot: &Lot) -> bool {
        match self {
            Filter::Scope(scope) => lot.applicability.intersects(scope),
            Filter::Grant(key) => lot.key == *key,
        }
    }
}

/// `GET /v1/billing/credit_balance_summary`.
pub fn retrieve(ctx: &mut Ctx) -> StripeResult<Value> {
    validate_at(ctx.params, SUMMARY, "", ctx.version)?;
    let paths = get_expand(ctx.params);
    expand::check(&paths, EXPANDABLE)?;
    let t = &*ctx.tenant;
    let customer = customer_param(t, get_str(ctx.params, "customer"))?;
    let filter =
        get_obj(ctx.params, "filter").ok_or_else(|| StripeError::missing_param("filter"))?;
    let filter = match get_str(filter, "type") {
        Some("credit_grant") => {
            if filter.contains_key("applicability_scope") {
                return Err(StripeError::invalid(
                    "filter[applicability_scope] can only be used when filter[type] is applicability_scope.",
                )
                .param("filter[applicability_scope]"));
            }
            let id = get_str(filter, "credit_grant")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| StripeError::missing_param("filter[credit_grant]"))?;
            // A grant of another customer is as good as missing: the summary is about this one.
            let key = ids::key_of(id, ids::CREDIT_GRANT)
                .filter(|k| t.lot(*k).is_some_and(|l| l.customer == customer))
                .ok_or_else(|| {
                    StripeError::no_such("credit grant", id, "filter[credit_grant]", 400)
                })?;
            Filter::Grant(key)
        }
        _ => {
            if filter.contains_key("credit_grant") {
                return Err(StripeError::invalid(
                    "filter[credit_grant] can only be used when filter[type] is credit_grant.",
                )
                .param("filter[credit_grant]"));
            }
            Filter::Scope(scope(filter)?)
        }
    };
    let sums = match &filter {
        Filter::Scope(Applicability::Metered) => t.metered_balances(customer),
        _ => t.balances(customer, |l| filter.keeps(l)),
    };
    let balances: Vec<Value> = sums
        .into_iter()
        .map(|(currency, b)| {
            json!({
                "available_balance": amount_json(currency, b.available),
                "ledger_balance": amount_json(currency, b.ledger),
            })
        })
        .collect();
    let mut v = json!({
        "object": "billing.credit_balance_summary",
        "balances": balances,
        "customer": ids::render(ids::CUSTOMER, customer),
        "customer_account": null,
        "livemode": false,
    });
    // The field came with Accounts v2; older versions never had it.
    if !ctx.version.has(Change::CustomerAccount) {
        if let Some(o) = v.as_object_mut() {
            o.shift_remove("customer_account");
        }
    }
    super::expand_at(t, &mut v, &paths, ctx.version);
    Ok(v)
}

/// `filter[applicability_scope]`: exactly one of `price_type` and `prices`, as on a grant.
fn scope(filter: &Params) -> StripeResult<Applicability> {
    super::credit_grants::scope_param(
        get_obj(filter, "applicability_scope"),
        "filter[applicability_scope]",
    )
}
