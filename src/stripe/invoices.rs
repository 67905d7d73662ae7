//! `/v1/invoices`: the invoices that spend credits, rendered as Stripe's `invoice` object.
//!
//! The emulator has no billing engine: invoices are made by `POST /_emulator/invoices` (see
//! `admin::invoices`), already finalized. Stripe's own routes here list and read them, page their
//! lines and void them (which reinstates their credits).

use serde_json::{json, Value};

use super::error::{StripeError, StripeResult};
use super::params::{
    get_expand, get_int, get_obj, get_str, opt, validate, Field, Spec, EXPAND, LIST_FIELDS,
};
use super::{expand, ids, list, Ctx};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::{Invoice, InvoiceError, InvoiceLine, InvoiceList, InvoiceStatus, Tenant};
use crate::time::{to_secs, Nanos, NANOS_PER_SEC};

const ONLY_EXPAND: &[Field] = &[EXPAND];
/// Paths `expand[]` accepts on an invoice.
pub const EXPANDABLE: &[&str] = &["customer", "test_clock"];
const LIST_EXPANDABLE: &[&str] = &["data.customer", "data.test_clock"];

/// Every status Stripe's invoices can have; the emulator's are only ever `open` or `void`.
const STATUSES: &[&str] = &["draft", "open", "paid", "uncollectible", "void"];

/// `created[gt]` and its siblings.
const CREATED_RANGE: &[Field] = &[
    opt("gt", Spec::Int),
    opt("gte", Spec::Int),
    opt("lt", Spec::Int),
    opt("lte", Spec::Int),
];

/// The list's parameters, in Stripe's (alphabetical) order, with `created` given as `spec`: an
/// integer or a range hash, whichever the request sent, so that one validator reports either.
const fn list_fields(created: Spec) -> [Field; 11] {
    [
        opt(
            "collection_method",
            Spec::Enum(&["charge_automatically", "send_invoice"]),
        ),
        opt("created", created),
        opt("customer", Spec::Str(5000)),
        opt("customer_account", Spec::Unsupported),
        opt("due_date", Spec::Unsupported),
        LIST_FIELDS[2],
        LIST_FIELDS[3],
        LIST_FIELDS[0],
        LIST_FIELDS[1],
        opt("status", Spec::Enum(STATUSES)),
        opt("subscription", Spec::Unsupported),
    ]
}
const LIST_CREATED_INT: &[Field] = &list_fields(Spec::Int);
const LIST_CREATED_RANGE: &[Field] = &list_fields(Spec::Obj(CREATED_RANGE));

/// How many lines an invoice object embeds; the rest are paged through `/v1/invoices/{id}/lines`,
/// as Stripe does.
const EMBEDDED_LINES: usize = 10;

/// Renders one line as an `line_item`.
pub fn render_line(inv: &Invoice, line: &InvoiceLine) -> Value {
    let credits: Vec<Value> = line
        .credits
        .iter()
        .map(|(entry, amount)| pretax_credit(*entry, *amount))
        .collect();
    // The emulator has no price catalogue, so the product behind a price is unknown (empty).
    let pricing = line.price.as_ref().map(|p| {
        json!({
            "price_details": {"price": p, "product": ""},
            "type": "price_details",
            "unit_amount_decimal": line.amount.to_string(),
        })
    });
    json!({
        "id": ids::render(ids::INVOICE_LINE, line.key),
        "object": "line_item",
        "amount": line.amount,
        "currency": inv.currency.as_str(),
        "description": line.description,
        "discount_amounts": [],
        "discountable": true,
        "discounts": [],
        "invoice": ids::render(ids::INVOICE, inv.key),
        "livemode": false,
        "metadata": {},
        "parent": null,
        "period": {"end": to_secs(inv.period_end), "start": to_secs(inv.period_start)},
        "pretax_credit_amounts": credits,
        "pricing": pricing,
        "quantity": 1,
        "quantity_decimal": "1",
        "subtotal": line.amount,
        "taxes": [],
    })
}

fn pretax_credit(entry: Key, amount: i64) -> Value {
    json!({
        "amount": amount,
        "credit_balance_transaction": ids::render(ids::TRANSACTION, entry),
        "discount": null,
        "type": "credit_balance_transaction",
    })
}

fn lines_url(inv: &Invoice) -> String {
    format!("/v1/invoices/{}/lines", ids::render(ids::INVOICE, inv.key))
}

/// Renders an invoice as Stripe's `invoice`. Amounts are fixed at finalization: voiding changes the
/// status, not what the invoice says it applied.
pub fn render(tenant: &Tenant, inv: &Invoice) -> Value {
    let subtotal = inv.subtotal();
    let total = subtotal - inv.credited();
    let status = match inv.status {
        InvoiceStatus::Open => "open",
        InvoiceStatus::Void => "void",
    };
    let totals: Vec<Value> = inv
        .lines
        .iter()
        .flat_map(|l| l.credits.iter())
        .map(|(entry, amount)| pretax_credit(*entry, *amount))
        .collect();
    let lines: Vec<Value> = inv
        .lines
        .iter()
        .take(EMBEDDED_LINES)
        .map(|l| render_line(inv, l))
        .collect();
    let customer = tenant.live_customer(inv.customer);
    let created = to_secs(inv.created);
    // Built as pairs: one `json!` with this many fields exceeds the macro recursion limit.
    let fields: Vec<(&str, Value)> = vec![
        ("id", json!(ids::render(ids::INVOICE, inv.key))),
        ("object", json!("invoice")),
        ("account_country", json!(null)),
        ("account_name", json!(null)),
        ("account_tax_ids", json!(null)),
        ("amount_due", json!(total)),
        ("amount_overpaid", json!(0)),
        ("amount_paid", json!(0)),
        // Stripe defines it as amount_due - amount_paid, whatever the status.
        ("amount_remaining", json!(total)),
        ("amount_shipping", json!(0)),
        ("application", json!(null)),
        ("attempt_count", json!(0)),
        ("attempted", json!(false)),
        ("auto_advance", json!(false)),
        (
            "automatic_tax",
            json!({
                "disabled_reason": null,
                "enabled": false,
                "liability": null,
                "provider": null,
                "status": null,
            }),
        ),
        ("automatically_finalizes_at", json!(null)),
        ("billing_reason", json!("manual")),
        ("collection_method", json!("charge_automatically")),
        ("confirmation_secret", json!(null)),
        ("created", json!(created)),
        ("currency", json!(inv.currency.as_str())),
        ("custom_fields", json!(null)),
        ("customer", json!(ids::render(ids::CUSTOMER, inv.customer))),
        ("customer_account", json!(null)),
        ("customer_address", json!(null)),
        (
            "customer_email",
            json!(customer.and_then(|c| c.email.clone())),
        ),
        (
            "customer_name",
            json!(customer.and_then(|c| c.name.clone())),
        ),
        (
            "customer_phone",
            json!(customer.and_then(|c| c.phone.clone())),
        ),
        ("customer_shipping", json!(null)),
        ("customer_tax_exempt", json!("none")),
        ("customer_tax_ids", json!([])),
        ("default_payment_method", json!(null)),
        ("default_source", json!(null)),
        ("default_tax_rates", json!([])),
        ("description", json!(null)),
        ("discounts", json!([])),
        ("due_date", json!(null)),
        ("effective_at", json!(created)),
        ("ending_balance", json!(0)),
        ("footer", json!(null)),
        ("from_invoice", json!(null)),
        ("hosted_invoice_url", json!(null)),
        ("invoice_pdf", json!(null)),
        ("issuer", json!({"type": "self"})),
        ("last_finalization_error", json!(null)),
        ("latest_revision", json!(null)),
        (
            "lines",
            json!({
                "object": "list",
                "data": lines,
                "has_more": inv.lines.len() > EMBEDDED_LINES,
                "url": lines_url(inv),
            }),
        ),
        ("livemode", json!(false)),
        ("metadata", json!({})),
        ("next_payment_attempt", json!(null)),
        ("number", json!(null)),
        ("on_behalf_of", json!(null)),
        ("parent", json!(null)),
        (
            "payment_settings",
            json!({
                "default_mandate": null,
                "payment_method_options": null,
                "payment_method_types": null,
            }),
        ),
        ("period_end", json!(to_secs(inv.period_end))),
        ("period_start", json!(to_secs(inv.period_start))),
        ("post_payment_credit_notes_amount", json!(0)),
        ("pre_payment_credit_notes_amount", json!(0)),
        ("receipt_number", json!(null)),
        ("rendering", json!(null)),
        ("shipping_cost", json!(null)),
        ("shipping_details", json!(null)),
        ("starting_balance", json!(0)),
        ("statement_descriptor", json!(null)),
        ("status", json!(status)),
        (
            "status_transitions",
            json!({
                "finalized_at": created,
                "marked_uncollectible_at": null,
                "paid_at": null,
                "voided_at": inv.voided_at.map(to_secs),
            }),
        ),
        ("subtotal", json!(subtotal)),
        ("subtotal_excluding_tax", json!(subtotal)),
        (
            "test_clock",
            json!(inv.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k))),
        ),
        ("threshold_reason", json!(null)),
        ("total", json!(total)),
        ("total_discount_amounts", json!([])),
        ("total_excluding_tax", json!(total)),
        ("total_pretax_credit_amounts", json!(totals)),
        ("total_taxes", json!([])),
        ("webhooks_delivered_at", json!(created)),
    ];
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// The invoice named by a path id, or Stripe's 404.
fn lookup(tenant: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::INVOICE)
        .filter(|k| tenant.invoice(*k).is_some())
        .ok_or_else(|| StripeError::no_such("invoice", id, "id", 404))
}

/// The rendered invoice with the request's `expand[]` applied.
pub fn respond(ctx: &Ctx, key: Key) -> Value {
    let mut v = render(
        ctx.tenant,
        ctx.tenant.invoice(key).expect("looked up by the caller"),
    );
    super::expand_in(ctx.tenant, &mut v, &get_expand(ctx.params));
    v
}

/// `GET /v1/invoices/{id}`.
pub fn retrieve(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, ONLY_EXPAND, "")?;
    expand::check(&get_expand(ctx.params), EXPANDABLE)?;
    let key = lookup(ctx.tenant, id)?;
    Ok(respond(ctx, key))
}

/// `POST /v1/invoices/{id}/void`: reinstates every credit the invoice applied.
pub fn void(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, ONLY_EXPAND, "")?;
    expand::check(&get_expand(ctx.params), EXPANDABLE)?;
    let key = lookup(ctx.tenant, id)?;
    match ctx.tenant.void_invoice(key) {
        Ok(()) => Ok(respond(ctx, key)),
        Err(InvoiceError::NotFound) => Err(StripeError::no_such("invoice", id, "id", 404)),
        Err(InvoiceError::NotOpen) => Err(StripeError::invalid(format!(
            "You can only void an invoice whose status is open or uncollectible; invoice {} is void.",
            super::error::shorten(id)
        ))
        .executed()),
    }
}

/// `GET /v1/invoices/{id}/lines`: the lines in invoice order (not newest first: an invoice's lines
/// are a document, not a feed).
pub fn lines(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, &LIST_FIELDS, "")?;
    expand::check(&get_expand(ctx.params), &[])?;
    let key = lookup(ctx.tenant, id)?;
    let inv = ctx.tenant.invoice(key).expect("looked up above");
    // Line keys grow in invoice order, so a cursor is found by binary search.
    let position = |k: Key| inv.lines.binary_search_by_key(&k, |l| l.key).ok();
    let page = list::page(ctx.params, "invoice line item", |c| {
        ids::key_of(c, ids::INVOICE_LINE).filter(|k| position(*k).is_some())
    })?;
    let n = inv.lines.len();
    let (range, more) = match (page.starting_after, page.ending_before) {
        (_, Some(eb)) => {
            let end = position(eb).unwrap_or(0);
            let start = end.saturating_sub(page.limit);
            (start..end, start > 0)
        }
        (Some(sa), None) => {
            let start = position(sa).map_or(n, |p| p + 1);
            let end = (start + page.limit).min(n);
            (start..end, end < n)
        }
        (None, None) => {
            let end = page.limit.min(n);
            (0..end, end < n)
        }
    };
    let data = inv.lines[range]
        .iter()
        .map(|l| render_line(inv, l))
        .collect();
    Ok(list::render(data, more, &lines_url(inv)))
}

/// `GET /v1/invoices`: newest first. Without `customer`, invoices written on a test clock are left
/// out, as Stripe leaves a clock's objects out of its unfiltered lists; with it, all of that
/// customer's invoices are listed, clock or not.
pub fn list(ctx: &mut Ctx) -> StripeResult<Value> {
    let p = ctx.params;
    let fields = match p.get("created") {
        Some(Node::Map(_)) => LIST_CREATED_RANGE,
        _ => LIST_CREATED_INT,
    };
    validate(p, fields, "")?;
    let expand_paths = get_expand(p);
    expand::check(&expand_paths, LIST_EXPANDABLE)?;
    let t = &*ctx.tenant;
    let page = list::page(p, "invoice", |id| {
        ids::key_of(id, ids::INVOICE).filter(|k| t.invoice(*k).is_some())
    })?;
    let customer = match get_str(p, "customer").filter(|s| !s.is_empty()) {
        Some(id) => Some(super::transactions::customer_param(t, Some(id))?),
        None => None,
    };
    let status = match get_str(p, "status") {
        Some("open") => Some(InvoiceStatus::Open),
        Some("void") => Some(InvoiceStatus::Void),
        // Draft, paid and uncollectible invoices are never made here.
        Some(_) => return Ok(empty_list()),
        None => None,
    };
    // Every invoice here is charged automatically.
    if get_str(p, "collection_method") == Some("send_invoice") {
        return Ok(empty_list());
    }
    let which = match customer {
        Some(c) => InvoiceList::Customer(c, status),
        None => InvoiceList::Unclocked(status),
    };
    let Some(window) = created_window(p) else {
        return Ok(empty_list());
    };
    // A cursor is a position in (created, key) order, the order every invoice list is kept in.
    let position = |k: Key| (t.invoice(k).expect("a cursor names an invoice").created, k);
    let (keys, more) = list::paginate(
        |after, before| t.invoices_listed(which, window, after.map(position), before.map(position)),
        &page,
        |_| true,
    );
    let data = keys
        .iter()
        .filter_map(|k| t.invoice(*k))
        .map(|inv| render(t, inv))
        .collect();
    let mut v = list::render(data, more, URL);
    super::expand_in(t, &mut v, &expand_paths);
    Ok(v)
}

/// The list `url`.
const URL: &str = "/v1/invoices";

fn empty_list() -> Value {
    list::render(Vec::new(), false, URL)
}

/// The validated `created` filter as a window `[from, until)` of model time (`until` `None`: no
/// end), or `None` when no instant can match. `created=N` is the whole second N; `gt`, `gte`,
/// `lt` and `lte` combine, each narrowing the window.
fn created_window(p: &Params) -> Option<(Nanos, Option<Nanos>)> {
    // Seconds to nanoseconds without overflow: a bound past the model's range is past every invoice.
    let at = |secs: i64| i128::from(secs) * i128::from(NANOS_PER_SEC);
    let second = i128::from(NANOS_PER_SEC);
    let (mut from, mut until) = (i128::from(Nanos::MIN), i128::from(Nanos::MAX) + 1);
    if let Some(exact) = get_int(p, "created") {
        from = at(exact);
        until = at(exact) + second;
    }
    if let Some(range) = get_obj(p, "created") {
        let bound = |name| get_int(range, name).map(at);
        if let Some(b) = bound("gt") {
            from = from.max(b + second);
        }
        if let Some(b) = bound("gte") {
            from = from.max(b);
        }
        if let Some(b) = bound("lt") {
            until = until.min(b);
        }
        if let Some(b) = bound("lte") {
            until = until.min(b + second);
        }
    }
    if from >= until || from > i128::from(Nanos::MAX) || until <= i128::from(Nanos::MIN) {
        return None;
    }
    let from = Nanos::try_from(from).unwrap_or(Nanos::MIN);
    let until = Nanos::try_from(until).ok();
    Some((from, until))
}
