//! `GET /v1/billing/credit_balance_summary`: one customer's balances per currency, over the grants a
//! filter selects.
//!
//! Only the customer's own lots are visited (the per-customer lot index), never the whole tenant.

use serde::Serialize;

use super::credit_grants::{check_scope_prices, scope_param, AmountJson, Shown};
use super::op::{Body, Expand, Input, Null, Operation, NULL};
use super::{customers, ids};
use crate::form::Params;
use crate::ids::Key;
use crate::model::{Applicability, Balance, Currency, Lot, Tenant};
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::{get_obj, get_str, opt, req, validate_at, Field, Spec, EXPAND};
use crate::wire::versions::{Change, Version};

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

/// Which of the customer's lots the summary covers, as the request names them.
enum Filter {
    /// Lots whose scope shares a line with this one.
    Scope(Applicability),
    /// Exactly one lot, by its id.
    Grant(String),
}

/// `GET /v1/billing/credit_balance_summary`.
pub struct Retrieve {
    customer: String,
    /// Checked once the customer is found.
    filter: StripeResult<Filter>,
    version: Version,
    expand: Expand,
}

/// The sums, per currency.
pub struct Summary {
    customer: Key,
    sums: Vec<(Currency, Balance)>,
    version: Version,
    expand: Expand,
}

/// `billing.credit_balance_summary`.
#[derive(Serialize)]
struct SummaryView {
    object: &'static str,
    balances: Vec<BalanceView>,
    customer: String,
    /// The field came with Accounts v2; older versions never had it.
    #[serde(skip_serializing_if = "Shown::hidden")]
    customer_account: Shown<Null>,
    livemode: bool,
}

#[derive(Serialize)]
struct BalanceView {
    available_balance: AmountJson,
    ledger_balance: AmountJson,
}

impl Operation for Retrieve {
    type Output = Summary;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, SUMMARY, "", input.version)?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        Ok(Retrieve {
            customer: customers::ledger_owner_id(get_str(p, "customer"))?.to_string(),
            filter: filter(p),
            version: input.version,
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Summary> {
        let t = &*t;
        let customer = customers::ledger_owner(t, &self.customer)?;
        let sums = match self.filter? {
            Filter::Scope(Applicability::Metered) => t.metered_balances(customer),
            Filter::Scope(scope) => {
                check_scope_prices(t, &scope, "filter[applicability_scope]")?;
                t.balances(customer, |l: &Lot| l.applicability.intersects(&scope))
            }
            Filter::Grant(id) => {
                // A grant of another customer is as good as missing: the summary is about this one.
                let key = ids::key_of(&id, ids::CREDIT_GRANT)
                    .filter(|k| t.lot(*k).is_some_and(|l| l.customer == customer))
                    .ok_or_else(|| {
                        StripeError::no_such("credit grant", &id, "filter[credit_grant]", 400)
                    })?;
                t.balances(customer, |l: &Lot| l.key == key)
            }
        };
        Ok(Summary {
            customer,
            sums: sums.into_iter().collect(),
            version: self.version,
            expand: self.expand,
        })
    }

    fn render(s: Summary, _: &Tenant) -> Body {
        let view = SummaryView {
            object: "billing.credit_balance_summary",
            balances: s
                .sums
                .into_iter()
                .map(|(currency, b)| BalanceView {
                    available_balance: AmountJson::new(currency, b.available),
                    ledger_balance: AmountJson::new(currency, b.ledger),
                })
                .collect(),
            customer: ids::render(ids::CUSTOMER, s.customer),
            customer_account: Shown::from(NULL, s.version, Change::CustomerAccount),
            livemode: false,
        };
        Body::of(&view, s.expand, 512)
    }
}

/// `filter`: a type, and the scope or the grant it names.
fn filter(p: &Params) -> StripeResult<Filter> {
    let filter = get_obj(p, "filter").ok_or_else(|| StripeError::missing_param("filter"))?;
    match get_str(filter, "type") {
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
            Ok(Filter::Grant(id.to_string()))
        }
        _ => {
            if filter.contains_key("credit_grant") {
                return Err(StripeError::invalid(
                    "filter[credit_grant] can only be used when filter[type] is credit_grant.",
                )
                .param("filter[credit_grant]"));
            }
            // Exactly one of `price_type` and `prices`, as on a grant.
            scope_param(
                get_obj(filter, "applicability_scope"),
                "filter[applicability_scope]",
            )
            .map(Filter::Scope)
        }
    }
}
