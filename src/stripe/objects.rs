//! The objects `expand[]` can put in place of an id: every expandable field names one of these.

use serde_json::Value;

use super::credit_grants::GrantJson;
use super::customers::CustomerView;
use super::invoices::{InvoiceIds, InvoiceView};
use super::meters::MeterView;
use super::op::Expand;
use super::prices::price_view;
use super::products::ProductView;
use super::subscriptions::SubscriptionView;
use super::test_clocks::TestClockView;
use super::transactions::TransactionView;
use super::{catalog, expand, ids};
use crate::model::Tenant;
use crate::wire::versions::Version;

/// Renders the object behind an expandable field's id as `version` shows it, if it exists.
pub fn resolve(tenant: &Tenant, field: &str, id: &str, version: Version) -> Option<Value> {
    match field {
        "customer" => ids::key_of(id, ids::CUSTOMER)
            .and_then(|k| tenant.customer(k))
            .map(|c| value(&CustomerView::of(c, &ids::render(ids::CUSTOMER, c.key)))),
        "test_clock" => ids::key_of(id, ids::TEST_CLOCK)
            .and_then(|k| tenant.test_clock(k))
            .map(|c| value(&TestClockView::of(c))),
        "credit_grant" => ids::key_of(id, ids::CREDIT_GRANT)
            .and_then(|k| tenant.lot(k))
            .map(|lot| value(&GrantJson::of(lot, version))),
        "invoice" | "latest_invoice" => ids::key_of(id, ids::INVOICE)
            .and_then(|k| tenant.invoice(k))
            .map(|inv| {
                let rendered = InvoiceIds::of(inv);
                value(&InvoiceView::of(tenant, inv, &rendered))
            }),
        "product" => catalog::find_product(tenant, id)
            .and_then(|k| tenant.product(k))
            .map(|p| value(&ProductView::of(p))),
        "default_price" => catalog::find_price(tenant, id)
            .and_then(|k| tenant.price(k))
            .map(|p| value(&price_view(p, tenant))),
        "meter" => ids::key_of(id, ids::METER)
            .and_then(|k| tenant.meter(k))
            .map(|m| value(&MeterView::of(m))),
        "subscription" => ids::key_of(id, ids::SUBSCRIPTION)
            .and_then(|k| tenant.priced_subscription(k))
            .map(|s| value(&SubscriptionView::of(tenant, s))),
        "credit_balance_transaction" => ids::key_of(id, ids::TRANSACTION)
            .and_then(|k| tenant.entry(k))
            .map(|e| value(&TransactionView::of(e))),
        _ => None,
    }
}

/// Replaces, in `value`, the ids that `expand` names with the objects they name.
pub fn expand_in(tenant: &Tenant, value: &mut Value, expand: &Expand) {
    expand::apply(value, &expand.paths, &|field, id| {
        resolve(tenant, field, id, expand.version)
    });
}

/// A view as a tree.
fn value(view: &impl serde::Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}
