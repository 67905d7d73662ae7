//! `POST /_emulator/invoices`: the emulator's stand-in for Stripe's billing engine.
//!
//! Stripe spends credits only when it finalizes a subscription invoice; the emulator has no
//! subscriptions, so a test makes the invoice directly: form-encoded, with the tenant's Stripe key,
//! errors in Stripe's envelope. The invoice is created and finalized at the customer's now, credits
//! are applied in Stripe's order, and the answer is the Stripe `invoice` object.

use serde_json::Value;

use crate::form::{Node, Params};
use crate::model::NewInvoiceLine;
use crate::stripe::customers;
use crate::stripe::error::{StripeError, StripeResult};
use crate::stripe::expand;
use crate::stripe::invoices::{self, EXPANDABLE};
use crate::stripe::params::{
    currency, get_expand, get_int, get_str, in_range, list_items, opt, req, validate, Field, Spec,
    EXPAND,
};
use crate::stripe::Ctx;

/// Stripe's limit on the items of one invoice.
const MAX_LINES: usize = 250;
/// Per-line ceiling, far above any real charge, so that sums over 250 lines cannot overflow.
const MAX_AMOUNT: i64 = 999_999_999_999;

const LINE: &[Field] = &[
    req("amount", Spec::Int),
    opt("description", Spec::Str(5000)),
    opt("price", Spec::Str(5000)),
];
const CREATE: &[Field] = &[
    req("currency", Spec::Str(5000)),
    req("customer", Spec::Str(5000)),
    EXPAND,
    req("lines", Spec::Array(&Spec::Obj(LINE), MAX_LINES)),
];

/// Creates, finalizes and renders an invoice for `ctx`'s tenant.
pub fn create(ctx: &mut Ctx) -> StripeResult<Value> {
    validate(ctx.params, CREATE, "")?;
    let p = ctx.params;
    expand::check(&get_expand(p), EXPANDABLE)?;
    let customer_id = get_str(p, "customer")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| StripeError::missing_param("customer"))?;
    let currency = currency(get_str(p, "currency").unwrap_or(""), "currency")?;
    let lines = read_lines(p)?;
    let customer = customers::lookup_param(ctx.tenant, customer_id, "customer")?;
    let key = ctx.tenant.create_invoice(customer, currency, lines);
    Ok(invoices::respond(ctx, key))
}

fn read_lines(p: &Params) -> StripeResult<Vec<NewInvoiceLine>> {
    let items = p.get("lines").map(list_items).unwrap_or_default();
    if items.is_empty() {
        return Err(StripeError::missing_param("lines"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Node::Map(line) = item else {
            return Err(StripeError::invalid("Invalid hash").param(format!("lines[{i}]")));
        };
        let amount = in_range(
            get_int(line, "amount").unwrap_or(0),
            0,
            MAX_AMOUNT,
            &format!("lines[{i}][amount]"),
        )?;
        let text = |name: &str| {
            get_str(line, name)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        out.push(NewInvoiceLine {
            amount,
            price: text("price"),
            description: text("description"),
        });
    }
    Ok(out)
}
