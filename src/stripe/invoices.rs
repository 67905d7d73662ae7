//! Invoices that spend credits, rendered as Stripe's `invoice` object.
//!
//! The emulator has no billing engine: invoices are made, already finalized, by the emulator's own
//! `POST /_emulator/invoices` ([`CreateFinalized`]): form-encoded, with the tenant's Stripe key,
//! errors in Stripe's envelope. Stripe's own routes here list and read them, page their lines and
//! void them (which reinstates their credits).

use serde::Serialize;

use super::list::{self, ListJson, PageRequest, TimeRange};
use super::op::{pretty, Body, EmptyObject, Expand, Input, Null, Operation, EMPTY_LIST, NULL};
use super::{customers, ids};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::{
    Currency, Invoice, InvoiceError, InvoiceLine, InvoiceList, InvoiceStatus, NewInvoiceLine,
    Tenant,
};
use crate::time::{to_secs, Nanos};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    currency, get_int, get_str, in_range, list_items, opt, req, validate, Field, Spec, EXPAND,
    LIST_FIELDS,
};
use crate::wire::versions::Version;

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

/// An invoice as Stripe's `invoice`, fields in Stripe's order. Amounts are fixed at finalization:
/// voiding changes the status, not what the invoice says it applied.
#[derive(Serialize)]
pub struct InvoiceView<'a> {
    id: &'a str,
    object: &'static str,
    account_country: Null,
    account_name: Null,
    account_tax_ids: Null,
    amount_due: i64,
    amount_overpaid: i64,
    amount_paid: i64,
    /// Stripe defines it as amount_due - amount_paid, whatever the status.
    amount_remaining: i64,
    amount_shipping: i64,
    application: Null,
    attempt_count: i64,
    attempted: bool,
    auto_advance: bool,
    automatic_tax: AutomaticTax,
    automatically_finalizes_at: Null,
    billing_reason: &'static str,
    collection_method: &'static str,
    confirmation_secret: Null,
    created: i64,
    currency: &'a str,
    custom_fields: Null,
    customer: String,
    customer_account: Null,
    customer_address: Null,
    customer_email: Option<&'a str>,
    customer_name: Option<&'a str>,
    customer_phone: Option<&'a str>,
    customer_shipping: Null,
    customer_tax_exempt: &'static str,
    customer_tax_ids: [(); 0],
    default_payment_method: Null,
    default_source: Null,
    default_tax_rates: [(); 0],
    description: Null,
    discounts: [(); 0],
    due_date: Null,
    effective_at: i64,
    ending_balance: i64,
    footer: Null,
    from_invoice: Null,
    hosted_invoice_url: Null,
    invoice_pdf: Null,
    issuer: Issuer,
    last_finalization_error: Null,
    latest_revision: Null,
    lines: ListJson<'a, LineView<'a>>,
    livemode: bool,
    metadata: EmptyObject,
    next_payment_attempt: Null,
    number: Null,
    on_behalf_of: Null,
    parent: Null,
    payment_settings: PaymentSettings,
    period_end: i64,
    period_start: i64,
    post_payment_credit_notes_amount: i64,
    pre_payment_credit_notes_amount: i64,
    receipt_number: Null,
    rendering: Null,
    shipping_cost: Null,
    shipping_details: Null,
    starting_balance: i64,
    statement_descriptor: Null,
    status: &'static str,
    status_transitions: StatusTransitions,
    subtotal: i64,
    subtotal_excluding_tax: i64,
    test_clock: Option<String>,
    threshold_reason: Null,
    total: i64,
    total_discount_amounts: [(); 0],
    total_excluding_tax: i64,
    total_pretax_credit_amounts: Vec<PretaxCredit>,
    total_taxes: [(); 0],
    webhooks_delivered_at: i64,
}

#[derive(Serialize)]
struct AutomaticTax {
    disabled_reason: Null,
    enabled: bool,
    liability: Null,
    provider: Null,
    status: Null,
}

#[derive(Serialize)]
struct Issuer {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct PaymentSettings {
    default_mandate: Null,
    payment_method_options: Null,
    payment_method_types: Null,
}

#[derive(Serialize)]
struct StatusTransitions {
    finalized_at: i64,
    marked_uncollectible_at: Null,
    paid_at: Null,
    voided_at: Option<i64>,
}

/// One credit applied to a line: `{amount, credit_balance_transaction, discount, type}`.
#[derive(Serialize)]
struct PretaxCredit {
    amount: i64,
    credit_balance_transaction: String,
    discount: Null,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl PretaxCredit {
    fn of(&(entry, amount): &(Key, i64)) -> Self {
        PretaxCredit {
            amount,
            credit_balance_transaction: ids::render(ids::TRANSACTION, entry),
            discount: NULL,
            kind: "credit_balance_transaction",
        }
    }
}

/// One line as a `line_item`.
#[derive(Serialize)]
pub struct LineView<'a> {
    id: String,
    object: &'static str,
    amount: i64,
    currency: &'a str,
    description: Option<&'a str>,
    discount_amounts: [(); 0],
    discountable: bool,
    discounts: [(); 0],
    invoice: &'a str,
    livemode: bool,
    metadata: EmptyObject,
    parent: Null,
    period: Period,
    pretax_credit_amounts: Vec<PretaxCredit>,
    pricing: Option<Pricing<'a>>,
    quantity: i64,
    quantity_decimal: &'static str,
    subtotal: i64,
    taxes: [(); 0],
}

#[derive(Serialize)]
struct Period {
    end: i64,
    start: i64,
}

/// What the line is priced by. The emulator has no price catalogue, so the product behind a price
/// is unknown (empty).
#[derive(Serialize)]
struct Pricing<'a> {
    price_details: PriceDetails<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    unit_amount_decimal: String,
}

#[derive(Serialize)]
struct PriceDetails<'a> {
    price: &'a str,
    product: &'static str,
}

impl<'a> LineView<'a> {
    /// The view of `line` of `inv`, whose id is `invoice`.
    pub fn of(inv: &'a Invoice, line: &'a InvoiceLine, invoice: &'a str) -> Self {
        LineView {
            id: ids::render(ids::INVOICE_LINE, line.key),
            object: "line_item",
            amount: line.amount,
            currency: inv.currency.as_str(),
            description: line.description.as_deref(),
            discount_amounts: EMPTY_LIST,
            discountable: true,
            discounts: EMPTY_LIST,
            invoice,
            livemode: false,
            metadata: EmptyObject {},
            parent: NULL,
            period: Period {
                end: to_secs(inv.period_end),
                start: to_secs(inv.period_start),
            },
            pretax_credit_amounts: line.credits.iter().map(PretaxCredit::of).collect(),
            pricing: line.price.as_deref().map(|price| Pricing {
                price_details: PriceDetails { price, product: "" },
                kind: "price_details",
                unit_amount_decimal: line.amount.to_string(),
            }),
            quantity: 1,
            quantity_decimal: "1",
            subtotal: line.amount,
            taxes: EMPTY_LIST,
        }
    }
}

/// `/v1/invoices/{id}/lines`.
fn lines_url(invoice: &str) -> String {
    format!("/v1/invoices/{invoice}/lines")
}

/// What an invoice view borrows besides the model: its id and its lines' URL, rendered once.
pub struct InvoiceIds {
    id: String,
    lines_url: String,
}

impl InvoiceIds {
    /// The rendered ids of `inv`.
    pub fn of(inv: &Invoice) -> Self {
        let id = ids::render(ids::INVOICE, inv.key);
        InvoiceIds {
            lines_url: lines_url(&id),
            id,
        }
    }
}

impl<'a> InvoiceView<'a> {
    /// The view of `inv` of `tenant`, with its ids as `rendered`.
    pub fn of(tenant: &'a Tenant, inv: &'a Invoice, rendered: &'a InvoiceIds) -> Self {
        let subtotal = inv.subtotal();
        let total = subtotal - inv.credited();
        let customer = tenant.live_customer(inv.customer);
        let created = to_secs(inv.created);
        InvoiceView {
            id: &rendered.id,
            object: "invoice",
            account_country: NULL,
            account_name: NULL,
            account_tax_ids: NULL,
            amount_due: total,
            amount_overpaid: 0,
            amount_paid: 0,
            amount_remaining: total,
            amount_shipping: 0,
            application: NULL,
            attempt_count: 0,
            attempted: false,
            auto_advance: false,
            automatic_tax: AutomaticTax {
                disabled_reason: NULL,
                enabled: false,
                liability: NULL,
                provider: NULL,
                status: NULL,
            },
            automatically_finalizes_at: NULL,
            billing_reason: "manual",
            collection_method: "charge_automatically",
            confirmation_secret: NULL,
            created,
            currency: inv.currency.as_str(),
            custom_fields: NULL,
            customer: ids::render(ids::CUSTOMER, inv.customer),
            customer_account: NULL,
            customer_address: NULL,
            customer_email: customer.and_then(|c| c.email.as_deref()),
            customer_name: customer.and_then(|c| c.name.as_deref()),
            customer_phone: customer.and_then(|c| c.phone.as_deref()),
            customer_shipping: NULL,
            customer_tax_exempt: "none",
            customer_tax_ids: EMPTY_LIST,
            default_payment_method: NULL,
            default_source: NULL,
            default_tax_rates: EMPTY_LIST,
            description: NULL,
            discounts: EMPTY_LIST,
            due_date: NULL,
            effective_at: created,
            ending_balance: 0,
            footer: NULL,
            from_invoice: NULL,
            hosted_invoice_url: NULL,
            invoice_pdf: NULL,
            issuer: Issuer { kind: "self" },
            last_finalization_error: NULL,
            latest_revision: NULL,
            lines: ListJson::new(
                inv.lines
                    .iter()
                    .take(EMBEDDED_LINES)
                    .map(|l| LineView::of(inv, l, &rendered.id))
                    .collect(),
                inv.lines.len() > EMBEDDED_LINES,
                &rendered.lines_url,
            ),
            livemode: false,
            metadata: EmptyObject {},
            next_payment_attempt: NULL,
            number: NULL,
            on_behalf_of: NULL,
            parent: NULL,
            payment_settings: PaymentSettings {
                default_mandate: NULL,
                payment_method_options: NULL,
                payment_method_types: NULL,
            },
            period_end: to_secs(inv.period_end),
            period_start: to_secs(inv.period_start),
            post_payment_credit_notes_amount: 0,
            pre_payment_credit_notes_amount: 0,
            receipt_number: NULL,
            rendering: NULL,
            shipping_cost: NULL,
            shipping_details: NULL,
            starting_balance: 0,
            statement_descriptor: NULL,
            status: match inv.status {
                InvoiceStatus::Open => "open",
                InvoiceStatus::Void => "void",
            },
            status_transitions: StatusTransitions {
                finalized_at: created,
                marked_uncollectible_at: NULL,
                paid_at: NULL,
                voided_at: inv.voided_at.map(to_secs),
            },
            subtotal,
            subtotal_excluding_tax: subtotal,
            test_clock: inv.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k)),
            threshold_reason: NULL,
            total,
            total_discount_amounts: EMPTY_LIST,
            total_excluding_tax: total,
            total_pretax_credit_amounts: inv
                .lines
                .iter()
                .flat_map(|l| l.credits.iter())
                .map(PretaxCredit::of)
                .collect(),
            total_taxes: EMPTY_LIST,
            webhooks_delivered_at: created,
        }
    }
}

/// The invoice `key` as the answer, with `expand`.
fn respond(t: &Tenant, key: Key, expand: Expand) -> Body {
    let inv = t.invoice(key).expect("looked up above");
    let ids = InvoiceIds::of(inv);
    Body::of(
        &InvoiceView::of(t, inv, &ids),
        expand,
        4096 + 1536 * inv.lines.len().min(EMBEDDED_LINES),
    )
}

/// The invoice named by a path id, or Stripe's 404.
fn lookup(tenant: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::INVOICE)
        .filter(|k| tenant.invoice(*k).is_some())
        .ok_or_else(|| StripeError::no_such("invoice", id, "id", 404))
}

/// `POST /_emulator/invoices`: creates an invoice at the customer's now, finalizes it and applies
/// credits line by line in Stripe's order.
pub struct CreateFinalized {
    customer: String,
    currency: Currency,
    lines: Vec<NewInvoiceLine>,
    expand: Expand,
}

impl Operation for CreateFinalized {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, CREATE, "")?;
        let expand = Expand::read(p, EXPANDABLE, Version::NEWEST)?;
        let customer = get_str(p, "customer")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| StripeError::missing_param("customer"))?;
        Ok(CreateFinalized {
            customer: customer.to_string(),
            currency: currency(get_str(p, "currency").unwrap_or(""), "currency")?,
            lines: read_lines(p)?,
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let customer = customers::lookup_param(t, &self.customer, "customer")?;
        let key = t.create_invoice(customer, self.currency, self.lines);
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `GET /v1/invoices/{id}`.
pub struct Retrieve {
    id: String,
    expand: Expand,
}

impl Operation for Retrieve {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, ONLY_EXPAND, "")?;
        Ok(Retrieve {
            id: input.id().to_string(),
            expand: Expand::read(input.params, EXPANDABLE, Version::NEWEST)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        Ok((lookup(t, &self.id)?, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `POST /v1/invoices/{id}/void`: reinstates every credit the invoice applied.
pub struct Void {
    id: String,
    expand: Expand,
}

impl Operation for Void {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, ONLY_EXPAND, "")?;
        Ok(Void {
            id: input.id().to_string(),
            expand: Expand::read(input.params, EXPANDABLE, Version::NEWEST)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        match t.void_invoice(key) {
            Ok(()) => Ok((key, self.expand)),
            Err(InvoiceError::NotFound) => {
                Err(StripeError::no_such("invoice", &self.id, "id", 404))
            }
            Err(InvoiceError::NotOpen) => Err(StripeError::invalid(format!(
                "You can only void an invoice whose status is open or uncollectible; invoice {} is void.",
                shorten(&self.id)
            ))
            .executed()),
        }
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `GET /v1/invoices/{id}/lines`: the lines in invoice order (not newest first: an invoice's lines
/// are a document, not a feed).
pub struct Lines {
    id: String,
    /// Read once the invoice is found.
    page: StripeResult<PageRequest>,
}

impl Operation for Lines {
    type Output = (Key, std::ops::Range<usize>, bool);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, &LIST_FIELDS, "")?;
        Expand::read(input.params, &[], Version::NEWEST)?;
        Ok(Lines {
            id: input.id().to_string(),
            page: PageRequest::read(input.params),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        let inv = t.invoice(key).expect("looked up above");
        // Line keys grow in invoice order, so a cursor is found by binary search.
        let position = |k: Key| inv.lines.binary_search_by_key(&k, |l| l.key).ok();
        let page = self.page?.resolve("invoice line item", |c| {
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
        Ok((key, range, more))
    }

    fn render((key, range, more): Self::Output, t: &Tenant) -> Body {
        let inv = t.invoice(key).expect("looked up above");
        let ids = InvoiceIds::of(inv);
        let data: Vec<LineView> = inv.lines[range]
            .iter()
            .map(|l| LineView::of(inv, l, &ids.id))
            .collect();
        let capacity = 1536 * (data.len() + 1);
        Body::Json(pretty(&ListJson::new(data, more, &ids.lines_url), capacity))
    }
}

/// `GET /v1/invoices`: newest first. Without `customer`, invoices written on a test clock are left
/// out, as Stripe leaves a clock's objects out of its unfiltered lists; with it, all of that
/// customer's invoices are listed, clock or not.
pub struct List {
    page: PageRequest,
    customer: Option<String>,
    /// `None`: every status; `Some(None)`: a status the emulator never gives an invoice.
    status: Option<Option<InvoiceStatus>>,
    send_invoice: bool,
    window: Option<(Nanos, Option<Nanos>)>,
    expand: Expand,
}

impl Operation for List {
    type Output = (Vec<Key>, bool, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        let fields = match p.get("created") {
            Some(Node::Map(_)) => LIST_CREATED_RANGE,
            _ => LIST_CREATED_INT,
        };
        validate(p, fields, "")?;
        let expand = Expand::read(p, LIST_EXPANDABLE, Version::NEWEST)?;
        Ok(List {
            page: PageRequest::read(p)?,
            customer: get_str(p, "customer")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            status: get_str(p, "status").map(|s| match s {
                "open" => Some(InvoiceStatus::Open),
                "void" => Some(InvoiceStatus::Void),
                // Draft, paid and uncollectible invoices are never made here.
                _ => None,
            }),
            // Every invoice here is charged automatically.
            send_invoice: get_str(p, "collection_method") == Some("send_invoice"),
            window: TimeRange::read(p, "created")
                .unwrap_or(TimeRange::ALL)
                .window(),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("invoice", |id| {
            ids::key_of(id, ids::INVOICE).filter(|k| t.invoice(*k).is_some())
        })?;
        let customer = match &self.customer {
            Some(id) => Some(customers::ledger_owner(t, id)?),
            None => None,
        };
        // A status the emulator never gives, `send_invoice`, or a window no instant is in.
        let (status, window) = match (self.status, self.send_invoice, self.window) {
            (Some(None), _, _) | (_, true, _) | (_, _, None) => {
                return Ok((Vec::new(), false, self.expand))
            }
            (status, false, Some(window)) => (status.flatten(), window),
        };
        let which = match customer {
            Some(c) => InvoiceList::Customer(c, status),
            None => InvoiceList::Unclocked(status),
        };
        // A cursor is a position in (created, key) order, the order every invoice list is kept in.
        let position = |k: Key| (t.invoice(k).expect("a cursor names an invoice").created, k);
        let (keys, more) = list::paginate(
            |after, before| {
                t.invoices_listed(which, window, after.map(position), before.map(position))
            },
            &page,
            |_| true,
        );
        Ok((keys, more, self.expand))
    }

    fn render((keys, more, expand): Self::Output, t: &Tenant) -> Body {
        let ids: Vec<InvoiceIds> = keys
            .iter()
            .filter_map(|k| t.invoice(*k).map(InvoiceIds::of))
            .collect();
        let data: Vec<InvoiceView> = keys
            .iter()
            .zip(&ids)
            .filter_map(|(k, ids)| t.invoice(*k).map(|inv| InvoiceView::of(t, inv, ids)))
            .collect();
        Body::of(
            &ListJson::new(data, more, URL),
            expand,
            6144 * (keys.len() + 1),
        )
    }
}

/// The list `url`.
const URL: &str = "/v1/invoices";

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
