//! `/v1/billing/credit_balance_transactions`: the ledger's entries, one transaction each.
//!
//! Lists walk the per-customer or per-grant entry index backwards from the cursor, so a page costs
//! O(log n + limit) however long the ledger is.

use serde_json::{json, Value};

use super::credit_grants::amount_json;
use super::error::{StripeError, StripeResult};
use super::params::{get_expand, get_str, opt, validate_at, Field, Spec, EXPAND, LIST_FIELDS};
use super::versions::Change;
use super::{expand, ids, list, Ctx};
use crate::ids::Key;
use crate::model::{Entry, EntryKind, Tenant};
use crate::time::to_secs;

const LIST: &[Field] = &[
    opt("credit_grant", Spec::Str(5000)),
    opt("customer", Spec::Str(5000)).required_before(Change::CustomerAccount),
    opt("customer_account", Spec::Unsupported).since(Change::CustomerAccount),
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    LIST_FIELDS[2],
    LIST_FIELDS[3],
];
const ONLY_EXPAND: &[Field] = &[EXPAND];

/// Paths `expand[]` accepts on one transaction.
const EXPANDABLE: &[&str] = &[
    "credit_grant",
    "test_clock",
    "credit.credits_application_invoice_voided.invoice",
    "debit.credits_applied.invoice",
];
/// The same paths under `data.` for lists.
const LIST_EXPANDABLE: &[&str] = &[
    "data.credit_grant",
    "data.test_clock",
    "data.credit.credits_application_invoice_voided.invoice",
    "data.debit.credits_applied.invoice",
];

/// The list `url` (the spec's pattern names the grants path, which is a copy-paste slip there).
const URL: &str = "/v1/billing/credit_balance_transactions";

/// Renders a ledger entry as a `billing.credit_balance_transaction`.
pub fn render(e: &Entry) -> Value {
    let amount = amount_json(e.currency, e.amount);
    let invoice_ref = e.invoice.map(|(invoice, line)| {
        json!({
            "invoice": ids::render(ids::INVOICE, invoice),
            "invoice_line_item": ids::render(ids::INVOICE_LINE, line),
        })
    });
    let (kind, credit, debit) = match e.kind {
        EntryKind::Granted => (
            "credit",
            json!({"amount": amount, "credits_application_invoice_voided": null, "type": "credits_granted"}),
            Value::Null,
        ),
        EntryKind::InvoiceVoided => (
            "credit",
            json!({
                "amount": amount,
                "credits_application_invoice_voided": invoice_ref,
                "type": "credits_application_invoice_voided",
            }),
            Value::Null,
        ),
        EntryKind::Applied => (
            "debit",
            Value::Null,
            json!({"amount": amount, "credits_applied": invoice_ref, "type": "credits_applied"}),
        ),
        EntryKind::Expired => (
            "debit",
            Value::Null,
            json!({"amount": amount, "credits_applied": null, "type": "credits_expired"}),
        ),
        EntryKind::Voided => (
            "debit",
            Value::Null,
            json!({"amount": amount, "credits_applied": null, "type": "credits_voided"}),
        ),
    };
    json!({
        "id": ids::render(ids::TRANSACTION, e.key),
        "object": "billing.credit_balance_transaction",
        "created": to_secs(e.created),
        "credit": credit,
        "credit_grant": ids::render(ids::CREDIT_GRANT, e.lot),
        "debit": debit,
        "effective_at": to_secs(e.effective_at),
        "livemode": false,
        "test_clock": e.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k)),
        "type": kind,
    })
}

/// `GET /v1/billing/credit_balance_transactions/{id}`.
pub fn retrieve(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate_at(ctx.params, ONLY_EXPAND, "", ctx.version)?;
    let paths = get_expand(ctx.params);
    expand::check(&paths, EXPANDABLE)?;
    let t = &*ctx.tenant;
    let entry = ids::key_of(id, ids::TRANSACTION)
        .and_then(|k| t.entry(k))
        .ok_or_else(|| StripeError::no_such("credit balance transaction", id, "id", 404))?;
    let mut v = render(entry);
    super::expand_at(t, &mut v, &paths, ctx.version);
    Ok(v)
}

/// `GET /v1/billing/credit_balance_transactions`: a customer's transactions, optionally of one
/// grant, newest first.
pub fn list(ctx: &mut Ctx) -> StripeResult<Value> {
    validate_at(ctx.params, LIST, "", ctx.version)?;
    let paths = get_expand(ctx.params);
    expand::check(&paths, LIST_EXPANDABLE)?;
    let t = &*ctx.tenant;
    let customer = customer_param(t, get_str(ctx.params, "customer"))?;
    let grant = match get_str(ctx.params, "credit_grant").filter(|s| !s.is_empty()) {
        Some(id) => Some(
            ids::key_of(id, ids::CREDIT_GRANT)
                .filter(|k| t.lot(*k).is_some_and(|l| l.customer == customer))
                .ok_or_else(|| StripeError::no_such("credit grant", id, "credit_grant", 400))?,
        ),
        None => None,
    };
    let page = list::page(ctx.params, "credit balance transaction", |id| {
        ids::key_of(id, ids::TRANSACTION).filter(|k| t.entry(*k).is_some())
    })?;
    let (keys, more) = match grant {
        // A lot's entries are one range of the (lot, entry) pairs.
        Some(lot) => {
            let entries = t.entry_keys_of_lot(lot);
            list::paginate(|a, b| entries.range((a, b)), &page, |_| true)
        }
        None => {
            let entries = t.entry_keys_of(customer);
            list::paginate(|a, b| entries.range((a, b)), &page, |_| true)
        }
    };
    let data = keys
        .iter()
        .filter_map(|k| t.entry(*k))
        .map(render)
        .collect();
    let mut v = list::render(data, more, URL);
    super::expand_at(t, &mut v, &paths, ctx.version);
    Ok(v)
}

/// The `customer` a ledger read is about: required, and it must have existed (a deleted customer's
/// ledger stays readable, as its grants do).
pub fn customer_param(t: &Tenant, id: Option<&str>) -> StripeResult<Key> {
    let id = id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| StripeError::missing_param("customer"))?;
    ids::key_of(id, ids::CUSTOMER)
        .filter(|k| t.customer(*k).is_some())
        .ok_or_else(|| StripeError::no_such("customer", id, "customer", 400))
}
