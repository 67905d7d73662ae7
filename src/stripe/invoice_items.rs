//! Invoice items (`/v1/invoiceitems`): one-off charges that wait, pending, for the customer's next
//! invoice: the next one a subscription of the customer makes (or, with `subscription`, the next
//! one that subscription makes), or a one-off invoice that takes pending items (`POST /v1/invoices`
//! with `pending_invoice_items_behavior=include`). This is how a customer buys a credit pack: an
//! item for the pack's one-time price, an invoice, finalized and paid; the application then grants
//! `paid` credits, reading `pricing.price_details.product` off the paid invoice's lines. Creating
//! and deleting an item give `invoiceitem.created` and `invoiceitem.deleted`.

use rust_decimal::Decimal;
use serde::Serialize;

use super::list::{self, ListJson, PageRequest, TimeRange};
use super::op::{pretty, Body, Deleted, Expand, Input, Null, Operation, EMPTY_LIST, NULL};
use super::{customers, ids, subscriptions};
use crate::form::Params;
use crate::ids::Key;
use crate::model::{
    Currency, InvoiceItem, InvoiceItemError, Metadata, NewInvoiceItem, Scheme, Tenant,
};
use crate::time::to_secs;
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    currency, get_int, get_obj, get_str, in_range, new_metadata, opt, req, validate, Field, Spec,
    EXPAND, LIST_FIELDS,
};

/// Paths `expand[]` accepts on an invoice item.
const EXPANDABLE: &[&str] = &["customer", "invoice"];
const LIST_EXPANDABLE: &[&str] = &["data.customer", "data.invoice"];

/// Per-item ceiling, as on invoice lines, so that sums cannot overflow.
const MAX_AMOUNT: i64 = 999_999_999_999;

const PRICING: &[Field] = &[opt("price", Spec::Str(5000))];
const CREATE: &[Field] = &[
    opt("amount", Spec::Int),
    opt("currency", Spec::Str(5000)),
    req("customer", Spec::Str(5000)),
    opt("customer_account", Spec::Unsupported),
    opt("description", Spec::Str(5000)),
    opt("discountable", Spec::Bool),
    opt("discounts", Spec::Unsupported),
    EXPAND,
    opt("invoice", Spec::Unsupported),
    opt("metadata", Spec::Metadata),
    opt("period", Spec::Unsupported),
    opt("price", Spec::Str(5000)),
    opt("price_data", Spec::Unsupported),
    opt("pricing", Spec::Obj(PRICING)),
    opt("quantity", Spec::Int),
    opt("subscription", Spec::Str(5000)),
    opt("tax_behavior", Spec::Unsupported),
    opt("tax_code", Spec::Unsupported),
    opt("tax_rates", Spec::Unsupported),
    opt("unit_amount_decimal", Spec::Str(5000)),
];
const LIST: &[Field] = &[
    opt("created", Spec::Range),
    opt("customer", Spec::Str(5000)),
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    opt("invoice", Spec::Str(5000)),
    LIST_FIELDS[0],
    opt("pending", Spec::Bool),
    LIST_FIELDS[1],
];
const ONLY_EXPAND: &[Field] = &[EXPAND];

/// An invoice item as Stripe's `invoiceitem`.
#[derive(Serialize)]
pub struct ItemView<'a> {
    id: String,
    object: &'static str,
    amount: i64,
    currency: &'a str,
    customer: String,
    customer_account: Null,
    date: i64,
    description: Option<&'a str>,
    discountable: bool,
    discounts: [(); 0],
    invoice: Option<String>,
    livemode: bool,
    metadata: &'a Metadata,
    net_amount: i64,
    parent: Option<ItemParent>,
    period: Period,
    pricing: Option<Pricing>,
    proration: bool,
    quantity: u64,
    quantity_decimal: String,
    tax_rates: [(); 0],
    test_clock: Option<String>,
}

/// `parent` of an item made for a subscription's next invoice.
#[derive(Serialize)]
struct ItemParent {
    subscription_details: ItemSubscriptionDetails,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct ItemSubscriptionDetails {
    subscription: String,
}

#[derive(Serialize)]
struct Period {
    end: i64,
    start: i64,
}

#[derive(Serialize)]
struct Pricing {
    price_details: PriceDetails,
    #[serde(rename = "type")]
    kind: &'static str,
    unit_amount_decimal: String,
}

#[derive(Serialize)]
struct PriceDetails {
    price: String,
    product: String,
}

impl<'a> ItemView<'a> {
    /// The view of `item`, reading its customer's test clock and its price's product in `t`.
    pub fn of(t: &Tenant, item: &'a InvoiceItem) -> Self {
        let date = to_secs(item.created);
        ItemView {
            id: ids::render(ids::INVOICE_ITEM, item.key),
            object: "invoiceitem",
            amount: item.amount,
            currency: item.currency.as_str(),
            customer: ids::render(ids::CUSTOMER, item.customer),
            customer_account: NULL,
            date,
            description: item.description.as_deref(),
            discountable: true,
            discounts: EMPTY_LIST,
            invoice: item.invoice.map(|k| ids::render(ids::INVOICE, k)),
            livemode: false,
            metadata: &item.metadata,
            net_amount: item.amount,
            parent: item.subscription.map(|sub| ItemParent {
                subscription_details: ItemSubscriptionDetails {
                    subscription: ids::render(ids::SUBSCRIPTION, sub),
                },
                kind: "subscription_details",
            }),
            period: Period {
                end: date,
                start: date,
            },
            pricing: item.price.map(|price| Pricing {
                price_details: PriceDetails {
                    price: ids::render(ids::PRICE, price),
                    product: item
                        .product
                        .map(|p| super::catalog::product_id_of(t, p))
                        .unwrap_or_default(),
                },
                kind: "price_details",
                unit_amount_decimal: item.unit_amount.normalize().to_string(),
            }),
            proration: false,
            quantity: item.quantity,
            quantity_decimal: item.quantity.to_string(),
            tax_rates: EMPTY_LIST,
            test_clock: t
                .customer(item.customer)
                .and_then(|c| c.test_clock)
                .map(|k| ids::render(ids::TEST_CLOCK, k)),
        }
    }
}

fn respond(t: &Tenant, key: Key, expand: Expand) -> Body {
    let item = t.invoice_item(key).expect("looked up above");
    Body::of(&ItemView::of(t, item), expand, 2048)
}

fn lookup(t: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::INVOICE_ITEM)
        .filter(|k| t.invoice_item(*k).is_some())
        .ok_or_else(|| StripeError::no_such("invoiceitem", id, "id", 404))
}

/// How the item is priced, as sent.
enum Priced {
    /// A total in minor units, in a currency.
    Amount(i64),
    /// Units of a catalog price, and the parameter that named it.
    Price(String, String),
    /// Units at a decimal unit amount.
    UnitAmount(Decimal),
}

/// A one-off charge as sent: to `POST /v1/invoiceitems`, or as one of a preview's
/// `invoice_items[]`.
pub(super) struct SentCharge {
    currency: Option<Currency>,
    priced: Priced,
    quantity: Option<u64>,
    description: Option<String>,
    metadata: Metadata,
}

/// How `POST /v1/invoiceitems` names the ways to price a charge, in its errors.
pub(super) const ITEM_PRICINGS: &str = "amount, pricing[price], unit_amount_decimal";

/// Reads a charge from `p`, each field's name spelled by `param` (`amount`, or
/// `invoice_items[0][amount]`); `pricings` names the ways to price it when none or several are
/// sent. `unit_amount` (whole minor units) is a preview's; the item endpoint's table refuses it
/// before this runs.
pub(super) fn read_charge(
    p: &Params,
    param: &dyn Fn(&str) -> String,
    pricings: &str,
) -> StripeResult<SentCharge> {
    let price = match (
        get_str(p, "price"),
        get_obj(p, "pricing").and_then(|o| get_str(o, "price")),
    ) {
        (Some(_), Some(_)) => {
            return Err(StripeError::invalid(
                "You may only specify one of these parameters: price, pricing[price].",
            ))
        }
        (Some(id), None) => Some((id.to_string(), param("price"))),
        (None, Some(id)) => Some((id.to_string(), param("pricing[price]"))),
        (None, None) => None,
    };
    let amount = get_int(p, "amount");
    let unit =
        match (get_str(p, "unit_amount_decimal"), get_int(p, "unit_amount")) {
            (Some(_), Some(_)) => return Err(StripeError::invalid(
                "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
            )),
            (Some(u), None) => Some(read_unit_decimal(u, &param("unit_amount_decimal"))?),
            (None, Some(u)) => Some(Decimal::from(in_range(
                u,
                0,
                MAX_AMOUNT,
                &param("unit_amount"),
            )?)),
            (None, None) => None,
        };
    let quantity = match get_int(p, "quantity") {
        Some(q) => Some(in_range(q, 0, 1_000_000_000, &param("quantity"))? as u64),
        None => None,
    };
    let priced = match (amount, price, unit) {
        (Some(a), None, None) => {
            if quantity.is_some() {
                return Err(StripeError::invalid(
                    "You may only specify one of these parameters: amount, quantity.",
                ));
            }
            Priced::Amount(in_range(a, -MAX_AMOUNT, MAX_AMOUNT, &param("amount"))?)
        }
        (None, Some((id, param)), None) => Priced::Price(id, param),
        (None, None, Some(u)) => {
            // The item's amount has the same ceiling as `amount`, so that a sum cannot overflow.
            let total = u.checked_mul(Decimal::from(quantity.unwrap_or(1)));
            if total.is_none_or(|t| t > Decimal::from(MAX_AMOUNT)) {
                return Err(StripeError::invalid(format!(
                    "The amount of the item (quantity * unit amount) must be no more than {MAX_AMOUNT}."
                ))
                .param(match quantity {
                    Some(_) => param("quantity"),
                    None if get_int(p, "unit_amount").is_some() => param("unit_amount"),
                    None => param("unit_amount_decimal"),
                }));
            }
            Priced::UnitAmount(u)
        }
        (None, None, None) => {
            return Err(StripeError::invalid(format!(
                "You must specify one of these parameters: {pricings}."
            )))
        }
        _ => {
            return Err(StripeError::invalid(format!(
                "You may only specify one of these parameters: {pricings}."
            )))
        }
    };
    let currency = match get_str(p, "currency") {
        Some(c) => Some(currency(c, &param("currency"))?),
        None if !matches!(priced, Priced::Price(..)) => {
            return Err(StripeError::missing_param(&param("currency")))
        }
        None => None,
    };
    Ok(SentCharge {
        currency,
        priced,
        quantity,
        description: get_str(p, "description")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        metadata: new_metadata(p, "metadata", &param("metadata"))?,
    })
}

/// `unit_amount_decimal`: digits with at most one point (no sign, exponent or spaces), at most
/// twelve decimals.
fn read_unit_decimal(u: &str, param: &str) -> StripeResult<Decimal> {
    let plain = !u.is_empty()
        && u.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && u.bytes().filter(|b| *b == b'.').count() <= 1;
    plain
        .then(|| u.parse::<Decimal>().ok())
        .flatten()
        .filter(|d| *d >= Decimal::ZERO && d.scale() <= 12)
        .ok_or_else(|| StripeError::invalid(format!("Invalid decimal: {u}")).param(param))
}

/// The item a charge makes for `customer`: a catalog price must exist, be one-time, active and
/// in the charge's currency. `subscription` is left for the caller.
pub(super) fn resolve_charge(
    t: &Tenant,
    customer: Key,
    sent: SentCharge,
) -> StripeResult<NewInvoiceItem> {
    let quantity = sent.quantity.unwrap_or(1);
    let (currency, price, product, unit_amount) = match &sent.priced {
        Priced::Amount(a) => (sent.currency, None, None, Decimal::from(*a)),
        Priced::UnitAmount(u) => (sent.currency, None, None, *u),
        Priced::Price(id, param) => {
            let price = super::catalog::find_price(t, id)
                .and_then(|k| t.price(k))
                .ok_or_else(|| super::catalog::no_such_price(id, param, 400))?;
            if price.recurring.is_some() {
                return Err(StripeError::invalid(
                    "The price specified is set to `type=recurring` but this field only accepts prices with `type=one_time`.",
                )
                .param(param.as_str()));
            }
            if !price.active {
                return Err(StripeError::invalid(format!(
                    "The price specified ({id}) is inactive. This field only accepts active prices."
                ))
                .param(param.as_str()));
            }
            if sent.currency.is_some_and(|c| c != price.currency) {
                return Err(StripeError::invalid(format!(
                    "The price specified ({id}) is in {}, but the invoice item's currency is {}.",
                    price.currency.as_str(),
                    sent.currency
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_default()
                ))
                .param(param.as_str()));
            }
            let unit = match &price.scheme {
                Scheme::PerUnit { unit_amount } => *unit_amount,
                Scheme::Tiered { .. } => {
                    price.amount_for(Decimal::from(quantity)) / Decimal::from(quantity.max(1))
                }
            };
            (
                Some(price.currency),
                Some(price.key),
                Some(price.product),
                unit,
            )
        }
    };
    Ok(NewInvoiceItem {
        customer,
        currency: currency.expect("checked in read_charge or taken from the price"),
        price,
        product,
        quantity,
        unit_amount,
        description: sent.description,
        metadata: sent.metadata,
        subscription: None,
    })
}

impl SentCharge {
    /// The parameter to name when the charge's currency does not fit: `currency` when it was
    /// sent, else the price's.
    pub(super) fn currency_param(&self, param: &dyn Fn(&str) -> String) -> String {
        match &self.priced {
            Priced::Price(_, name) if self.currency.is_none() => name.clone(),
            _ => param("currency"),
        }
    }
}

/// `POST /v1/invoiceitems`.
pub struct Create {
    customer: String,
    charge: SentCharge,
    subscription: Option<String>,
    expand: Expand,
}

impl Operation for Create {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, CREATE, "")?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        let customer = get_str(p, "customer")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| StripeError::missing_param("customer"))?;
        Ok(Create {
            customer: customer.to_string(),
            charge: read_charge(p, &|f| f.to_string(), ITEM_PRICINGS)?,
            subscription: get_str(p, "subscription")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let customer = customers::lookup_param(t, &self.customer, "customer")?;
        let subscription = match &self.subscription {
            Some(id) => Some(subscription_of(t, id, customer, &self.customer)?),
            None => None,
        };
        let plain = |f: &str| f.to_string();
        let currency_param = self.charge.currency_param(&plain);
        let mut item = resolve_charge(t, customer, self.charge)?;
        if let Some((key, sub_currency)) = subscription {
            if sub_currency != item.currency {
                return Err(StripeError::invalid(format!(
                    "The invoice item's currency ({}) must be the currency of the subscription {} ({}): it is added to that subscription's next invoice.",
                    item.currency.as_str(),
                    self.subscription.as_deref().unwrap_or_default(),
                    sub_currency.as_str()
                ))
                .param(currency_param));
            }
            item.subscription = Some(key);
        }
        let key = t.create_invoice_item(item);
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// The subscription named `id` in parameter `subscription`, and its currency: one of `customer`'s
/// (sent as `customer_id`) that has not ended, whose next invoice the item waits for.
fn subscription_of(
    t: &Tenant,
    id: &str,
    customer: Key,
    customer_id: &str,
) -> StripeResult<(Key, Currency)> {
    let sub = subscriptions::param_lookup(t, id)?;
    if sub.customer != customer {
        return Err(StripeError::invalid(format!(
            "The subscription {} does not belong to the customer {}.",
            shorten(id),
            shorten(customer_id)
        ))
        .param("subscription"));
    }
    if sub.status.is_ended() {
        return Err(StripeError::invalid(format!(
            "The subscription {} has ended: it makes no more invoices, so no invoice item can be added to it.",
            shorten(id)
        ))
        .param("subscription"));
    }
    Ok((sub.key, sub.currency))
}

/// `GET /v1/invoiceitems/{id}`.
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
            expand: Expand::read(input.params, EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        Ok((lookup(t, &self.id)?, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `DELETE /v1/invoiceitems/{id}`: while pending or on a draft.
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
        t.delete_invoice_item(key).map_err(|e| match e {
            InvoiceItemError::NotFound => StripeError::no_such("invoiceitem", &self.id, "id", 404),
            InvoiceItemError::Invoiced => StripeError::invalid(
                "This invoice item has already been invoiced and cannot be deleted. You can only delete invoice items that are pending or attached to a draft invoice.",
            )
            .executed(),
        })?;
        Ok(self.id)
    }

    fn render(id: Self::Output, _: &Tenant) -> Body {
        Body::Json(pretty(&Deleted::new(&id, "invoiceitem"), 128))
    }
}

/// `GET /v1/invoiceitems`: newest first, filtered on customer, pending, invoice and created.
pub struct List {
    page: PageRequest,
    customer: Option<String>,
    pending: Option<bool>,
    invoice: Option<String>,
    created: TimeRange,
    expand: Expand,
}

impl Operation for List {
    type Output = (Vec<Key>, bool, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, LIST, "")?;
        let text = |n: &str| get_str(p, n).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(List {
            page: PageRequest::read(p)?,
            customer: text("customer"),
            pending: get_str(p, "pending").map(|v| v == "true"),
            invoice: text("invoice"),
            created: TimeRange::read(p, "created").unwrap_or(TimeRange::ALL),
            expand: Expand::read(p, LIST_EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("invoiceitem", |id| {
            ids::key_of(id, ids::INVOICE_ITEM).filter(|k| t.invoice_item(*k).is_some())
        })?;
        let customer = match &self.customer {
            Some(id) => Some(customers::ledger_owner(t, id)?),
            None => None,
        };
        let invoice = self
            .invoice
            .as_deref()
            .map(|id| ids::key_of(id, ids::INVOICE));
        let keep = |k: Key| {
            t.invoice_item(k).is_some_and(|i| {
                customer.is_none_or(|c| i.customer == c)
                    && self.pending.is_none_or(|p| p == i.invoice.is_none())
                    && invoice.is_none_or(|inv| inv.is_some() && i.invoice == inv)
                    && self.created.contains(i.created)
            })
        };
        let (keys, more) = list::paginate(
            |a, b| t.invoice_items_in((a, b)).map(|i| i.key),
            &page,
            keep,
        );
        Ok((keys, more, self.expand))
    }

    fn render((keys, more, expand): Self::Output, t: &Tenant) -> Body {
        let data: Vec<ItemView> = keys
            .iter()
            .filter_map(|k| t.invoice_item(*k))
            .map(|i| ItemView::of(t, i))
            .collect();
        Body::of(
            &ListJson::new(data, more, "/v1/invoiceitems"),
            expand,
            2048 * (keys.len() + 1),
        )
    }
}
