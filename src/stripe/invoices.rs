//! Invoices, rendered as Stripe's `invoice` object: made by subscriptions' cycles, by the caller
//! (`POST /v1/invoices`, one-off drafts from pending invoice items), or already finalized by the
//! emulator's own `POST /_emulator/invoices` ([`CreateFinalized`]). Drafts are finalized (which
//! spends credits), paid, voided (which reinstates them), marked uncollectible or deleted.

use serde::Serialize;

use super::list::{self, ListJson, PageRequest, TimeRange};
use super::op::{pretty, Body, Expand, Input, Null, Operation, EMPTY_LIST, NULL};
use super::{customers, ids, invoice_items, search, subscriptions};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::{
    BillingReason, CollectionMethod, Currency, Invoice, InvoiceError, InvoiceLine, InvoiceList,
    InvoiceStatus, LineSource, Metadata, NewInvoice, NewInvoiceLine, PreviewChanges, Tenant,
};
use crate::time::{to_secs, Nanos};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    apply_metadata, currency, get_int, get_metadata, get_nullable_str, get_str, in_range,
    list_items, new_metadata, opt, req, timestamp, validate, Field, MetadataUpdate, Spec, EXPAND,
    LIST_FIELDS,
};
use crate::wire::versions::Version;

const ONLY_EXPAND: &[Field] = &[EXPAND];
/// Paths `expand[]` accepts on an invoice.
pub const EXPANDABLE: &[&str] = super::expand::INVOICE;
const LIST_EXPANDABLE: &[&str] = &[
    "data.customer",
    "data.test_clock",
    "data.total_pretax_credit_amounts.credit_balance_transaction",
];

/// Every status Stripe's invoices can have.
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
        opt("subscription", Spec::Str(5000)),
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
    attempt_count: u32,
    attempted: bool,
    auto_advance: bool,
    automatic_tax: AutomaticTax,
    automatically_finalizes_at: Option<i64>,
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
    description: Option<&'a str>,
    discounts: [(); 0],
    due_date: Option<i64>,
    effective_at: Option<i64>,
    ending_balance: Option<i64>,
    footer: Null,
    from_invoice: Null,
    hosted_invoice_url: Option<String>,
    invoice_pdf: Option<String>,
    issuer: Issuer,
    last_finalization_error: Null,
    latest_revision: Null,
    lines: ListJson<'a, LineView<'a>>,
    livemode: bool,
    metadata: &'a Metadata,
    next_payment_attempt: Null,
    number: Option<&'a str>,
    on_behalf_of: Null,
    parent: Option<InvoiceParent>,
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
    webhooks_delivered_at: Option<i64>,
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
    finalized_at: Option<i64>,
    marked_uncollectible_at: Option<i64>,
    paid_at: Option<i64>,
    voided_at: Option<i64>,
}

/// `parent` of an invoice a subscription made.
#[derive(Serialize)]
struct InvoiceParent {
    quote_details: Null,
    subscription_details: SubscriptionDetails,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct SubscriptionDetails {
    metadata: Null,
    subscription: String,
}

/// One credit applied to a line: `{amount, credit_balance_transaction, discount, type}`.
#[derive(Serialize)]
struct PretaxCredit {
    amount: i64,
    /// `null` on a preview: projected credits have no transactions.
    credit_balance_transaction: Option<String>,
    discount: Null,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl PretaxCredit {
    fn of(&(entry, amount): &(Key, i64), inv: &Invoice) -> Self {
        PretaxCredit {
            amount,
            credit_balance_transaction: (inv.billing_reason != BillingReason::Upcoming)
                .then(|| ids::render(ids::TRANSACTION, entry)),
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
    metadata: &'a Metadata,
    parent: Option<LineParent>,
    period: Period,
    pretax_credit_amounts: Vec<PretaxCredit>,
    pricing: Option<Pricing<'a>>,
    quantity: i64,
    quantity_decimal: String,
    /// The subscription the line bills, as its parent names it.
    subscription: Option<String>,
    subtotal: i64,
    taxes: [(); 0],
}

#[derive(Serialize)]
struct Period {
    end: i64,
    start: i64,
}

/// `parent` of a line: the subscription item or invoice item that made it.
#[derive(Serialize)]
struct LineParent {
    invoice_item_details: Option<InvoiceItemDetails>,
    subscription_item_details: Option<SubscriptionItemDetails>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct InvoiceItemDetails {
    invoice_item: String,
    proration: bool,
    proration_details: ProrationDetails,
    /// The subscription the item was made for (`subscription` on its creation), if any.
    subscription: Option<String>,
}

#[derive(Serialize)]
struct ProrationDetails {
    credited_items: Null,
}

#[derive(Serialize)]
struct SubscriptionItemDetails {
    invoice_item: Null,
    proration: bool,
    proration_details: ProrationDetails,
    subscription: String,
    subscription_item: String,
}

/// What the line is priced by.
#[derive(Serialize)]
struct Pricing<'a> {
    price_details: PriceDetails<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    unit_amount_decimal: Option<String>,
}

#[derive(Serialize)]
struct PriceDetails<'a> {
    price: std::borrow::Cow<'a, str>,
    product: String,
}

/// Stripe's spelling of a decimal: no exponent, no trailing zeros.
fn decimal_text(d: rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}

impl<'a> LineView<'a> {
    /// The view of `line` of `inv`, whose id is `invoice`.
    pub fn of(t: &'a Tenant, inv: &'a Invoice, line: &'a InvoiceLine, invoice: &'a str) -> Self {
        let pricing = match (line.price_key, line.price.as_deref()) {
            (Some(price), _) => Some(Pricing {
                price_details: PriceDetails {
                    price: ids::render(ids::PRICE, price).into(),
                    product: line
                        .product
                        .map(|p| super::catalog::product_id_of(t, p))
                        .unwrap_or_default(),
                },
                kind: "price_details",
                unit_amount_decimal: t.price(price).and_then(|p| match &p.scheme {
                    crate::model::Scheme::PerUnit { unit_amount } => {
                        Some(decimal_text(*unit_amount))
                    }
                    crate::model::Scheme::Tiered { .. } => None,
                }),
            }),
            // A helper line names a price the catalog may not have: its product is unknown.
            (None, Some(price)) => Some(Pricing {
                price_details: PriceDetails {
                    price: price.into(),
                    product: String::new(),
                },
                kind: "price_details",
                unit_amount_decimal: Some(line.amount.to_string()),
            }),
            (None, None) => None,
        };
        let no_proration = || ProrationDetails {
            credited_items: NULL,
        };
        let parent = match line.source {
            LineSource::Direct => None,
            LineSource::SubscriptionItem { subscription, item } => Some(LineParent {
                invoice_item_details: None,
                subscription_item_details: Some(SubscriptionItemDetails {
                    invoice_item: NULL,
                    proration: false,
                    proration_details: no_proration(),
                    subscription: ids::render(ids::SUBSCRIPTION, subscription),
                    subscription_item: ids::render(ids::SUBSCRIPTION_ITEM, item),
                }),
                kind: "subscription_item_details",
            }),
            LineSource::InvoiceItem(item) => Some(LineParent {
                invoice_item_details: Some(InvoiceItemDetails {
                    invoice_item: ids::render(ids::INVOICE_ITEM, item),
                    proration: false,
                    proration_details: no_proration(),
                    subscription: t
                        .invoice_item(item)
                        .and_then(|i| i.subscription)
                        .map(|sub| ids::render(ids::SUBSCRIPTION, sub)),
                }),
                subscription_item_details: None,
                kind: "invoice_item_details",
            }),
        };
        let subscription = parent
            .as_ref()
            .and_then(|p| match &p.subscription_item_details {
                Some(d) => Some(d.subscription.clone()),
                None => p.invoice_item_details.as_ref()?.subscription.clone(),
            });
        use rust_decimal::prelude::ToPrimitive;
        LineView {
            id: if inv.billing_reason == BillingReason::Upcoming {
                ids::render(ids::PREVIEW_LINE, line.key)
            } else {
                ids::render(ids::INVOICE_LINE, line.key)
            },
            object: "line_item",
            amount: line.amount,
            currency: inv.currency.as_str(),
            description: line.description.as_deref(),
            discount_amounts: EMPTY_LIST,
            discountable: true,
            discounts: EMPTY_LIST,
            invoice,
            livemode: false,
            metadata: &line.metadata,
            parent,
            period: Period {
                end: to_secs(line.period.1),
                start: to_secs(line.period.0),
            },
            pretax_credit_amounts: line
                .credits
                .iter()
                .map(|c| PretaxCredit::of(c, inv))
                .collect(),
            pricing,
            quantity: line.quantity.trunc().to_i64().unwrap_or(i64::MAX),
            quantity_decimal: decimal_text(line.quantity),
            subscription,
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

    /// The rendered ids of a preview, which is never stored (`upcoming_in_…`).
    pub fn preview(inv: &Invoice) -> Self {
        let id = ids::render(ids::UPCOMING_INVOICE, inv.key);
        InvoiceIds {
            lines_url: lines_url(&id),
            id,
        }
    }
}

/// Stripe's word for a status.
pub fn status_word(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Draft => "draft",
        InvoiceStatus::Open => "open",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Uncollectible => "uncollectible",
        InvoiceStatus::Void => "void",
    }
}

/// A finalized invoice's `hosted_invoice_url`, in the shape of Stripe's test-mode pages. The
/// emulator serves neither the page nor the PDF: an application stores, sends or shows these links,
/// and a test can check that it does; following one leads nowhere.
fn hosted_url(id: &str) -> String {
    format!("https://invoice.stripe.com/i/acct_emulator/test_{id}?s=ap")
}

/// A finalized invoice's `invoice_pdf` (see [`hosted_url`]).
fn pdf_url(id: &str) -> String {
    format!("https://pay.stripe.com/invoice/acct_emulator/test_{id}/pdf?s=ap")
}

impl<'a> InvoiceView<'a> {
    /// The view of `inv` of `tenant`, with its ids as `rendered`.
    pub fn of(tenant: &'a Tenant, inv: &'a Invoice, rendered: &'a InvoiceIds) -> Self {
        let subtotal = inv.subtotal();
        let total = subtotal - inv.credited();
        let customer = tenant.live_customer(inv.customer);
        let created = to_secs(inv.created);
        let finalized = inv.finalized_at.map(to_secs);
        InvoiceView {
            id: &rendered.id,
            object: "invoice",
            account_country: NULL,
            account_name: NULL,
            account_tax_ids: NULL,
            amount_due: inv.amount_due(),
            amount_overpaid: 0,
            amount_paid: inv.amount_paid,
            amount_remaining: inv.amount_remaining(),
            amount_shipping: 0,
            application: NULL,
            attempt_count: inv.attempt_count,
            attempted: inv.attempt_count > 0,
            auto_advance: inv.auto_advance,
            automatic_tax: AutomaticTax {
                disabled_reason: NULL,
                enabled: false,
                liability: NULL,
                provider: NULL,
                status: NULL,
            },
            automatically_finalizes_at: inv.finalizes_at.map(to_secs),
            billing_reason: match inv.billing_reason {
                BillingReason::Manual => "manual",
                BillingReason::SubscriptionCreate => "subscription_create",
                BillingReason::SubscriptionCycle => "subscription_cycle",
                BillingReason::SubscriptionUpdate => "subscription_update",
                BillingReason::Upcoming => "upcoming",
            },
            collection_method: match inv.collection_method {
                CollectionMethod::ChargeAutomatically => "charge_automatically",
                CollectionMethod::SendInvoice => "send_invoice",
            },
            confirmation_secret: NULL,
            created,
            currency: inv.currency.as_str(),
            custom_fields: NULL,
            customer: ids::render(ids::CUSTOMER, inv.customer),
            customer_account: NULL,
            customer_address: NULL,
            customer_email: match &inv.customer_details {
                Some(d) => d.email.as_deref(),
                None => customer.and_then(|c| c.email.as_deref()),
            },
            customer_name: match &inv.customer_details {
                Some(d) => d.name.as_deref(),
                None => customer.and_then(|c| c.name.as_deref()),
            },
            customer_phone: match &inv.customer_details {
                Some(d) => d.phone.as_deref(),
                None => customer.and_then(|c| c.phone.as_deref()),
            },
            customer_shipping: NULL,
            customer_tax_exempt: "none",
            customer_tax_ids: EMPTY_LIST,
            default_payment_method: NULL,
            default_source: NULL,
            default_tax_rates: EMPTY_LIST,
            description: inv.description.as_deref(),
            discounts: EMPTY_LIST,
            due_date: inv.due_date.map(to_secs),
            effective_at: finalized,
            ending_balance: finalized.map(|_| 0),
            footer: NULL,
            from_invoice: NULL,
            hosted_invoice_url: finalized.map(|_| hosted_url(&rendered.id)),
            invoice_pdf: finalized.map(|_| pdf_url(&rendered.id)),
            issuer: Issuer { kind: "self" },
            last_finalization_error: NULL,
            latest_revision: NULL,
            lines: ListJson::new(
                inv.lines
                    .iter()
                    .take(EMBEDDED_LINES)
                    .map(|l| LineView::of(tenant, inv, l, &rendered.id))
                    .collect(),
                inv.lines.len() > EMBEDDED_LINES,
                &rendered.lines_url,
            ),
            livemode: false,
            metadata: &inv.metadata,
            next_payment_attempt: NULL,
            number: inv.number.as_deref(),
            on_behalf_of: NULL,
            parent: inv.subscription.map(|sub| InvoiceParent {
                quote_details: NULL,
                subscription_details: SubscriptionDetails {
                    metadata: NULL,
                    subscription: ids::render(ids::SUBSCRIPTION, sub),
                },
                kind: "subscription_details",
            }),
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
            status: status_word(inv.status),
            status_transitions: StatusTransitions {
                finalized_at: finalized,
                marked_uncollectible_at: inv.uncollectible_at.map(to_secs),
                paid_at: inv.paid_at.map(to_secs),
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
                .map(|c| PretaxCredit::of(c, inv))
                .collect(),
            total_taxes: EMPTY_LIST,
            webhooks_delivered_at: finalized.map(|_| created),
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

const UPDATE: &[Field] = &[
    opt("account_tax_ids", Spec::Unsupported),
    opt("application_fee_amount", Spec::Unsupported),
    opt("auto_advance", Spec::Bool),
    opt("automatic_tax", Spec::Unsupported),
    opt("automatically_finalizes_at", Spec::Int),
    opt(
        "collection_method",
        Spec::Enum(&["charge_automatically", "send_invoice"]),
    ),
    opt("custom_fields", Spec::Unsupported),
    // An integer, or `""` to clear it.
    opt("days_until_due", Spec::TsOrEmpty),
    opt("default_payment_method", Spec::Unsupported),
    opt("default_source", Spec::Unsupported),
    opt("default_tax_rates", Spec::Unsupported),
    opt("description", Spec::Str(1500)),
    opt("discounts", Spec::Unsupported),
    opt("due_date", Spec::Unsupported),
    opt("effective_at", Spec::Unsupported),
    EXPAND,
    opt("footer", Spec::Unsupported),
    opt("issuer", Spec::Unsupported),
    opt("metadata", Spec::Metadata),
    opt("number", Spec::Unsupported),
    opt("on_behalf_of", Spec::Unsupported),
    opt("payment_settings", Spec::Unsupported),
    opt("rendering", Spec::Unsupported),
    opt("shipping_cost", Spec::Unsupported),
    opt("shipping_details", Spec::Unsupported),
    opt("statement_descriptor", Spec::Unsupported),
    opt("transfer_data", Spec::Unsupported),
];

/// `POST /v1/invoices/{id}`: a draft's `auto_advance`, `automatically_finalizes_at`,
/// `collection_method`, `days_until_due`, `description` and `metadata`; a finalized invoice's
/// `metadata` and `auto_advance` only (anything else is Stripe's `Finalized invoices can't be
/// updated in this way`, naming the first such parameter). `invoice.updated` when anything
/// changed.
pub struct Update {
    id: String,
    /// The parameters sent that only a draft takes, in name order.
    draft_only: Vec<&'static str>,
    update: crate::model::InvoiceUpdate,
    metadata: Option<MetadataUpdate>,
    expand: Expand,
}

impl Operation for Update {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, UPDATE, "")?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        let draft_only: Vec<&'static str> = [
            "automatically_finalizes_at",
            "collection_method",
            "days_until_due",
            "description",
        ]
        .into_iter()
        .filter(|n| p.get(n).is_some())
        .collect();
        let collection_method = get_str(p, "collection_method").map(|v| match v {
            "send_invoice" => CollectionMethod::SendInvoice,
            _ => CollectionMethod::ChargeAutomatically,
        });
        let days_until_due = match get_str(p, "days_until_due") {
            None => None,
            Some("") => Some(None),
            Some(_) => Some(Some(in_range(
                get_int(p, "days_until_due").unwrap_or(0),
                0,
                730,
                "days_until_due",
            )? as u32)),
        };
        let finalizes_at = get_int(p, "automatically_finalizes_at")
            .map(|s| timestamp(s, "automatically_finalizes_at"))
            .transpose()?;
        Ok(Update {
            id: input.id().to_string(),
            draft_only,
            update: crate::model::InvoiceUpdate {
                auto_advance: get_str(p, "auto_advance").map(|v| v == "true"),
                finalizes_at,
                collection_method,
                days_until_due,
                description: get_nullable_str(p, "description"),
                metadata: None,
            },
            metadata: get_metadata(p, "metadata"),
            expand,
        })
    }

    fn apply(mut self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        let inv = t.invoice(key).expect("looked up above");
        if inv.status != InvoiceStatus::Draft {
            if let Some(first) = self.draft_only.first() {
                return Err(StripeError::invalid(
                    "Finalized invoices can't be updated in this way",
                )
                .param(*first));
            }
        }
        let u = &self.update;
        let collection = u.collection_method.unwrap_or(inv.collection_method);
        if collection == CollectionMethod::ChargeAutomatically
            && matches!(u.days_until_due, Some(Some(_)))
        {
            return Err(StripeError::invalid(
                "You can only set `days_until_due` when `collection_method` is `send_invoice`.",
            )
            .param("days_until_due"));
        }
        let now = t.now_for(inv.customer);
        if u.finalizes_at.is_some_and(|at| at <= now) {
            return Err(StripeError::invalid(
                "Invalid automatically_finalizes_at: it must be a time in the future.",
            )
            .param("automatically_finalizes_at"));
        }
        self.update.metadata = self
            .metadata
            .map(|m| apply_metadata(&inv.metadata, m, "metadata"))
            .transpose()?;
        let grace = match inv.subscription {
            Some(_) => t.invoice_grace(),
            None => ONE_OFF_GRACE,
        };
        t.update_invoice(key, self.update, grace)
            .map_err(|e| refusal(e, &self.id))?;
        Ok((key, self.expand))
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
            Err(e) => Err(refusal(e, &self.id)),
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
            .map(|l| LineView::of(t, inv, l, &ids.id))
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
    /// `None`: every status; `Some(None)`: no status at all (refused by validation first).
    status: Option<Option<InvoiceStatus>>,
    collection_method: Option<CollectionMethod>,
    subscription: Option<String>,
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
                "draft" => Some(InvoiceStatus::Draft),
                "open" => Some(InvoiceStatus::Open),
                "paid" => Some(InvoiceStatus::Paid),
                "uncollectible" => Some(InvoiceStatus::Uncollectible),
                "void" => Some(InvoiceStatus::Void),
                _ => None,
            }),
            collection_method: get_str(p, "collection_method").map(|m| match m {
                "send_invoice" => CollectionMethod::SendInvoice,
                _ => CollectionMethod::ChargeAutomatically,
            }),
            subscription: get_str(p, "subscription")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
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
        // A subscription that does not exist has no invoices (Stripe answers an empty list).
        let subscription = self
            .subscription
            .as_deref()
            .map(|id| ids::key_of(id, ids::SUBSCRIPTION));
        // No status, or a window no instant is in.
        let (status, window) = match (self.status, self.window, subscription) {
            (Some(None), _, _) | (_, None, _) | (_, _, Some(None)) => {
                return Ok((Vec::new(), false, self.expand))
            }
            (status, Some(window), _) => (status.flatten(), window),
        };
        let which = match (subscription.flatten(), customer) {
            (Some(s), _) => InvoiceList::Subscription(s, status),
            (None, Some(c)) => InvoiceList::Customer(c, status),
            (None, None) => InvoiceList::Unclocked(status),
        };
        let method = self.collection_method;
        let keep = |k: Key| {
            t.invoice(k).is_some_and(|inv| {
                method.is_none_or(|m| inv.collection_method == m)
                    && customer.is_none_or(|c| inv.customer == c)
            })
        };
        // A cursor is a position in (created, key) order, the order every invoice list is kept in.
        let position = |k: Key| (t.invoice(k).expect("a cursor names an invoice").created, k);
        let (keys, more) = list::paginate(
            |after, before| {
                t.invoices_listed(which, window, after.map(position), before.map(position))
            },
            &page,
            keep,
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

/// Stripe's error for a change an invoice refused.
fn refusal(e: InvoiceError, id: &str) -> StripeError {
    let id = shorten(id);
    match e {
        InvoiceError::NotFound => StripeError::no_such("invoice", &id, "id", 404),
        InvoiceError::NotOpen(status) => StripeError::invalid(format!(
            "You can only void an invoice whose status is open or uncollectible; invoice {id} is {}.",
            status_word(status)
        )),
        InvoiceError::NotDraft(_) => StripeError::invalid(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
        ),
        InvoiceError::NotPayable(InvoiceStatus::Paid) => {
            StripeError::invalid("Invoice is already paid")
        }
        InvoiceError::NotPayable(status) => StripeError::invalid(format!(
            "You can only pay an invoice whose status is open or uncollectible; invoice {id} is {}.",
            status_word(status)
        )),
        InvoiceError::FromSubscription => StripeError::invalid(
            "You can only delete draft invoices that were not created by a subscription; void it once it is finalized.",
        ),
        InvoiceError::NotSendInvoice => StripeError::invalid(
            "You can only manually send an invoice if its collection method is 'send_invoice'.",
        ),
        InvoiceError::NotSendable(status) => StripeError::invalid(format!(
            "You can only send an invoice whose status is draft, open, paid or uncollectible; invoice {id} is {}.",
            status_word(status)
        )),
        InvoiceError::PaymentFailed => {
            let mut e = StripeError::invalid("Your card was declined.")
                .code("card_declined")
                .status(402);
            e.kind = "card_error";
            e
        }
    }
    .executed()
}

/// `expand[]` only, for the invoice named in the path.
fn one_invoice(input: &Input) -> StripeResult<(String, Expand)> {
    Ok((
        input.id().to_string(),
        Expand::read(input.params, EXPANDABLE, Version::NEWEST)?,
    ))
}

const FINALIZE: &[Field] = &[opt("auto_advance", Spec::Bool), EXPAND];

/// `POST /v1/invoices/{id}/finalize`: a draft becomes open (or paid), spending credits.
pub struct Finalize {
    id: String,
    auto_advance: Option<bool>,
    expand: Expand,
}

impl Operation for Finalize {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, FINALIZE, "")?;
        let (id, expand) = one_invoice(input)?;
        Ok(Finalize {
            id,
            auto_advance: get_str(input.params, "auto_advance").map(|v| v == "true"),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        if let Some(auto) = self.auto_advance {
            t.set_invoice_auto_advance(key, auto);
        }
        t.finalize_invoice(key).map_err(|e| refusal(e, &self.id))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

const PAY: &[Field] = &[
    EXPAND,
    opt("forgive", Spec::Bool),
    opt("mandate", Spec::Unsupported),
    opt("off_session", Spec::Bool),
    opt("paid_out_of_band", Spec::Bool),
    opt("payment_method", Spec::Str(5000)),
    opt("source", Spec::Unsupported),
];

/// `POST /v1/invoices/{id}/pay`: paid out of band, or charged to the customer's payment method
/// (`payment_method` overrides it for this attempt).
pub struct Pay {
    id: String,
    out_of_band: bool,
    payment_method: Option<String>,
    expand: Expand,
}

impl Operation for Pay {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, PAY, "")?;
        let (id, expand) = one_invoice(input)?;
        Ok(Pay {
            id,
            out_of_band: get_str(input.params, "paid_out_of_band") == Some("true"),
            payment_method: get_str(input.params, "payment_method")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        t.pay_invoice(key, self.out_of_band, self.payment_method.as_deref())
            .map_err(|e| refusal(e, &self.id))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `POST /v1/invoices/{id}/mark_uncollectible`.
pub struct MarkUncollectible {
    id: String,
    expand: Expand,
}

impl Operation for MarkUncollectible {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, ONLY_EXPAND, "")?;
        let (id, expand) = one_invoice(input)?;
        Ok(MarkUncollectible { id, expand })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        t.mark_invoice_uncollectible(key).map_err(|e| match e {
            InvoiceError::NotPayable(_) => StripeError::invalid(
                "You can only mark an invoice as uncollectible if its status is open.",
            )
            .executed(),
            e => refusal(e, &self.id),
        })?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `POST /v1/invoices/{id}/send`: a `send_invoice` invoice sent to its customer (a draft is
/// finalized first); no email leaves the emulator, the invoice gets an `invoice.sent` event.
pub struct Send {
    id: String,
    expand: Expand,
}

impl Operation for Send {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, ONLY_EXPAND, "")?;
        let (id, expand) = one_invoice(input)?;
        Ok(Send { id, expand })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        t.send_invoice(key).map_err(|e| refusal(e, &self.id))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `DELETE /v1/invoices/{id}`: one-off drafts only.
pub struct Delete {
    id: String,
}

impl Operation for Delete {
    type Output = String;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, &[], "")?;
        Ok(Delete {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup(t, &self.id)?;
        t.delete_draft_invoice(key).map_err(|e| match e {
            InvoiceError::NotDraft(_) => {
                StripeError::invalid("You can only delete draft invoices.").executed()
            }
            e => refusal(e, &self.id),
        })?;
        Ok(self.id)
    }

    fn render(id: Self::Output, _: &Tenant) -> Body {
        Body::Json(pretty(&super::op::Deleted::new(&id, "invoice"), 128))
    }
}

const CREATE_ONE_OFF: &[Field] = &[
    opt("auto_advance", Spec::Bool),
    opt(
        "collection_method",
        Spec::Enum(&["charge_automatically", "send_invoice"]),
    ),
    opt("currency", Spec::Str(5000)),
    req("customer", Spec::Str(5000)),
    opt("days_until_due", Spec::Int),
    opt("description", Spec::Str(1500)),
    opt("due_date", Spec::Unsupported),
    EXPAND,
    opt("metadata", Spec::Metadata),
    opt(
        "pending_invoice_items_behavior",
        Spec::Enum(&["exclude", "include"]),
    ),
    opt("subscription", Spec::Unsupported),
];

/// The grace period before a draft the caller made with `auto_advance` finalizes by itself.
const ONE_OFF_GRACE: Nanos = 3600 * 1_000_000_000;

/// `POST /v1/invoices`: a one-off draft for a customer, with its pending invoice items when
/// `pending_invoice_items_behavior=include`.
pub struct Create {
    customer: String,
    auto_advance: bool,
    collection_method: CollectionMethod,
    currency: Option<Currency>,
    days_until_due: Option<u32>,
    description: Option<String>,
    metadata: Metadata,
    include_pending: bool,
    expand: Expand,
}

impl Operation for Create {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, CREATE_ONE_OFF, "")?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        let customer = get_str(p, "customer")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| StripeError::missing_param("customer"))?;
        let collection_method = match get_str(p, "collection_method") {
            Some("send_invoice") => CollectionMethod::SendInvoice,
            _ => CollectionMethod::ChargeAutomatically,
        };
        let days_until_due = match get_int(p, "days_until_due") {
            Some(_) if collection_method == CollectionMethod::ChargeAutomatically => {
                return Err(StripeError::invalid(
                    "You can only set `days_until_due` when `collection_method` is `send_invoice`.",
                )
                .param("days_until_due"))
            }
            Some(d) => Some(in_range(d, 0, 730, "days_until_due")? as u32),
            None => None,
        };
        let metadata = new_metadata(p, "metadata", "metadata")?;
        Ok(Create {
            customer: customer.to_string(),
            auto_advance: get_str(p, "auto_advance") == Some("true"),
            collection_method,
            currency: match get_str(p, "currency") {
                Some(c) => Some(currency(c, "currency")?),
                None => None,
            },
            days_until_due,
            description: get_str(p, "description")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            metadata,
            include_pending: get_str(p, "pending_invoice_items_behavior") == Some("include"),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let customer = customers::lookup_param(t, &self.customer, "customer")?;
        let usd = Currency::parse("usd").expect("usd is a currency");
        let key = t.create_one_off_invoice(
            NewInvoice {
                customer,
                currency: usd,
                subscription: None,
                billing_reason: BillingReason::Manual,
                collection_method: self.collection_method,
                auto_advance: self.auto_advance,
                days_until_due: self.days_until_due,
                period: None,
                lines: Vec::new(),
                description: self.description,
                metadata: self.metadata,
            },
            self.currency,
            usd,
            self.include_pending,
            ONE_OFF_GRACE,
        );
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// One of a preview's `invoice_items[]`: a charge as an invoice item would make it.
const PREVIEW_ITEM: &[Field] = &[
    opt("amount", Spec::Int),
    opt("currency", Spec::Str(5000)),
    opt("description", Spec::Str(5000)),
    opt("discountable", Spec::Bool),
    opt("discounts", Spec::Unsupported),
    opt("invoiceitem", Spec::Unsupported),
    opt("metadata", Spec::Metadata),
    opt("period", Spec::Unsupported),
    opt("price", Spec::Str(5000)),
    opt("price_data", Spec::Unsupported),
    opt("quantity", Spec::Int),
    opt("tax_behavior", Spec::Unsupported),
    opt("tax_code", Spec::Unsupported),
    opt("tax_rates", Spec::Unsupported),
    opt("unit_amount", Spec::Int),
    opt("unit_amount_decimal", Spec::Str(5000)),
];

/// At most this many `invoice_items[]` on a preview, as Stripe.
const MAX_PREVIEW_ITEMS: usize = 250;

const PREVIEW: &[Field] = &[
    opt("automatic_tax", Spec::Unsupported),
    opt("currency", Spec::Str(5000)),
    opt("customer", Spec::Str(5000)),
    opt("customer_account", Spec::Unsupported),
    opt("customer_details", Spec::Unsupported),
    opt("discounts", Spec::Unsupported),
    EXPAND,
    opt(
        "invoice_items",
        Spec::Array(&Spec::Obj(PREVIEW_ITEM), MAX_PREVIEW_ITEMS),
    ),
    opt("issuer", Spec::Unsupported),
    opt("on_behalf_of", Spec::Unsupported),
    opt("preview_mode", Spec::Enum(&["next", "recurring"])),
    opt("schedule", Spec::Unsupported),
    opt("schedule_details", Spec::Unsupported),
    opt("subscription", Spec::Str(5000)),
    opt(
        "subscription_details",
        Spec::Obj(subscriptions::PREVIEW_DETAILS),
    ),
];

/// `POST /v1/invoices/create_preview`: the invoice a customer would get next, never stored
/// (`upcoming_in_…`, lines `il_tmp_…`), with the credits it would take projected onto its lines
/// (no `credit_balance_transaction`s). Which invoice:
///
/// - with `subscription`: that subscription's next one (at its period end, or when it ends):
///   metered usage reported so far, licensed items for the next period;
/// - with `customer` and `subscription_details[items]`: the first invoice of a subscription of
///   those items;
/// - with `customer` alone: its subscription whose period ends first, or without one, a one-off
///   invoice of its pending invoice items.
///
/// `subscription_details` imagines an update first (items, `cancel_at`, `cancel_at_period_end`,
/// `cancel_now`), checked as the update would be; `invoice_items[]` adds one-off charges, which
/// come first, newest first, as pending invoice items do. Nothing is kept.
pub struct CreatePreview {
    customer: Option<String>,
    subscription: Option<String>,
    details: Option<subscriptions::SentDetails>,
    charges: Vec<invoice_items::SentCharge>,
    currency: Option<Currency>,
    expand: Expand,
}

/// `invoice_items[i][field]`.
fn preview_item(i: usize, field: &str) -> String {
    format!("invoice_items[{i}][{field}]")
}

impl Operation for CreatePreview {
    type Output = (crate::model::Invoice, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, PREVIEW, "")?;
        let text = |n: &str| get_str(p, n).filter(|s| !s.is_empty()).map(str::to_string);
        let (customer, subscription) = (text("customer"), text("subscription"));
        if customer.is_none() && subscription.is_none() {
            return Err(StripeError::missing_param("customer"));
        }
        let details = subscriptions::SentDetails::read(p)?;
        let nodes = p.get("invoice_items").map(list_items).unwrap_or_default();
        let mut charges = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.into_iter().enumerate() {
            let Node::Map(item) = node else {
                return Err(
                    StripeError::invalid("Invalid hash").param(format!("invoice_items[{i}]"))
                );
            };
            charges.push(invoice_items::read_charge(
                item,
                &|f| preview_item(i, f),
                "amount, price, unit_amount, unit_amount_decimal",
            )?);
        }
        Ok(CreatePreview {
            customer,
            subscription,
            details,
            charges,
            currency: text("currency")
                .map(|c| currency(&c, "currency"))
                .transpose()?,
            expand: Expand::read(p, EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let customer_id = self.customer.as_deref().unwrap_or_default();
        let customer = match &self.customer {
            Some(id) => Some(customers::lookup_param(t, id, "customer")?),
            None => None,
        };
        let sub = match &self.subscription {
            Some(id) => {
                let s = subscriptions::param_lookup(t, id)?;
                let key = s.key;
                if customer.is_some_and(|c| c != s.customer) {
                    return Err(StripeError::invalid(format!(
                        "The subscription {id} does not belong to the customer {customer_id}."
                    ))
                    .param("subscription"));
                }
                if s.status.is_ended() {
                    return Err(StripeError::invalid(format!(
                        "No upcoming invoices for subscription: {id}"
                    ))
                    .code("invoice_upcoming_none")
                    .status(404));
                }
                Some(key)
            }
            // A subscription to make is previewed as its first invoice.
            None if self.details.as_ref().is_some_and(|d| d.has_items()) => None,
            None => t.next_invoicing_subscription(customer.expect("checked in parse")),
        };
        let owner = match sub {
            Some(key) => t.priced_subscription(key).map(|s| s.customer),
            None => customer,
        }
        .ok_or_else(StripeError::internal)?;
        let mut charges = Vec::with_capacity(self.charges.len());
        // Each charge's currency and the parameter to name if it is not the invoice's.
        let mut currencies = Vec::with_capacity(self.charges.len());
        for (i, sent) in self.charges.into_iter().enumerate() {
            let param = sent.currency_param(&|f| preview_item(i, f));
            let charge = invoice_items::resolve_charge(t, owner, sent)?;
            currencies.push((charge.currency, param));
            charges.push(charge);
        }
        let invoice = match (sub, self.details) {
            (Some(key), details) => {
                let mut changes = match details {
                    Some(d) => d.changes_of(t, key)?,
                    None => PreviewChanges::default(),
                };
                changes.charges = charges;
                t.preview_subscription_invoice(key, &changes)
                    .map_err(|e| subscriptions::preview_error(e, customer_id))?
            }
            (None, Some(d)) if d.has_items() => {
                let new = d.new_for(t, owner)?;
                t.preview_new_subscription(&new, &charges)
                    .map_err(|e| subscriptions::preview_error(e, customer_id))?
            }
            (None, _) => t
                .preview_one_off_invoice(owner, self.currency, &charges)
                .ok_or_else(|| {
                    StripeError::invalid(format!(
                        "No upcoming invoices for customer: {customer_id}"
                    ))
                    .code("invoice_upcoming_none")
                    .status(404)
                })?,
        };
        if let Some(c) = self.currency.filter(|c| *c != invoice.currency) {
            return Err(StripeError::invalid(format!(
                "The currency {} does not match the currency of the invoice being previewed ({}).",
                c.as_str(),
                invoice.currency.as_str()
            ))
            .param("currency"));
        }
        if let Some((c, param)) = currencies.into_iter().find(|(c, _)| *c != invoice.currency) {
            return Err(StripeError::invalid(format!(
                "The invoice item's currency ({}) must be the currency of the invoice being previewed ({}).",
                c.as_str(),
                invoice.currency.as_str()
            ))
            .param(param));
        }
        Ok((invoice, self.expand))
    }

    fn render((invoice, expand): Self::Output, t: &Tenant) -> Body {
        let ids = InvoiceIds::preview(&invoice);
        Body::of(
            &InvoiceView::of(t, &invoice, &ids),
            expand,
            4096 + 1536 * invoice.lines.len().min(EMBEDDED_LINES),
        )
    }
}

// ---- search ----

/// `GET /v1/invoices/search`: by `created`, `currency`, `customer`, `metadata`, `number`,
/// `status`, `subscription` and `total`, on test clocks or not (see [`search::Search`]). Stripe's
/// `receipt_number` and `last_finalization_error_*` are never set here.
pub struct Searched;

impl search::Searchable for Searched {
    const SCHEMA: search::Schema = search::Schema {
        resource: "invoices",
        fields: &[
            ("created", search::Kind::Numeric),
            ("currency", search::Kind::Token),
            ("customer", search::Kind::Token),
            ("last_finalization_error_code", search::Kind::Token),
            ("last_finalization_error_type", search::Kind::Token),
            ("number", search::Kind::String),
            ("receipt_number", search::Kind::String),
            ("status", search::Kind::Token),
            ("subscription", search::Kind::Token),
            ("total", search::Kind::Numeric),
        ],
        metadata: true,
    };
    const URL: &'static str = "/v1/invoices/search";
    const EXPANDABLE: &'static [&'static str] = &[
        "data.customer",
        "data.test_clock",
        "data.total_pretax_credit_amounts.credit_balance_transaction",
        "total_count",
    ];

    fn newest_first(t: &Tenant, before: std::ops::Bound<Key>) -> impl Iterator<Item = Key> + '_ {
        t.invoices_in((std::ops::Bound::Unbounded, before))
            .rev()
            .map(|i| i.key)
    }

    fn field<'t>(t: &'t Tenant, key: Key, f: &search::Field) -> search::Found<'t> {
        use search::Found;
        let Some(inv) = t.invoice(key) else {
            return Found::Missing;
        };
        match f {
            search::Field::Named("created") => Found::Num(to_secs(inv.created)),
            search::Field::Named("currency") => Found::Str(inv.currency.as_str()),
            search::Field::Named("customer") => {
                Found::Owned(ids::render(ids::CUSTOMER, inv.customer))
            }
            search::Field::Named("number") => {
                inv.number.as_deref().map_or(Found::Missing, Found::Str)
            }
            search::Field::Named("status") => Found::Str(status_word(inv.status)),
            search::Field::Named("subscription") => inv.subscription.map_or(Found::Missing, |s| {
                Found::Owned(ids::render(ids::SUBSCRIPTION, s))
            }),
            search::Field::Named("total") => {
                Found::Num(inv.subtotal().saturating_sub(inv.credited()))
            }
            search::Field::Named(_) => Found::Missing,
            search::Field::Metadata(k) => inv.metadata.get(k).map_or(Found::Missing, Found::Str),
        }
    }

    fn render(t: &Tenant, hits: search::Hits) -> Body {
        let ids: Vec<InvoiceIds> = hits
            .keys
            .iter()
            .filter_map(|k| t.invoice(*k).map(InvoiceIds::of))
            .collect();
        let data: Vec<InvoiceView> = hits
            .keys
            .iter()
            .zip(&ids)
            .filter_map(|(k, ids)| t.invoice(*k).map(|inv| InvoiceView::of(t, inv, ids)))
            .collect();
        hits.body(data, Self::URL, 6144)
    }
}
