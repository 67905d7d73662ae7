//! `/v1/subscription_items`: reading the items of priced subscriptions (list by subscription,
//! retrieve). Items change through their subscription: `POST /v1/subscriptions/{id}` with
//! `items[N]`, or the item endpoints (create, update, delete), whose operations live with the
//! subscription's in `super::subscriptions`, since each is a change of the subscription.

use serde::Serialize;

use super::ids;
use super::list::{ListJson, PageRequest};
use super::op::{pretty, Body, Expand, Input, Null, Operation, EMPTY_LIST, NULL};
use crate::ids::Key;
use crate::model::{Interval, Metadata, Price, Round, Scheme, SubscriptionItem, Tenant, TiersMode};
use crate::time::to_secs;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::{get_str, req, validate, Field, Spec, EXPAND, LIST_FIELDS};
use crate::wire::versions::Version;

const LIST: &[Field] = &[
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    req("subscription", Spec::Str(5000)),
];
const RETRIEVE: &[Field] = &[EXPAND];

/// The `url` of a subscription's item list, as its embedded `items` and the list endpoint show it.
pub fn items_url(subscription: &str) -> String {
    format!("/v1/subscription_items?subscription={subscription}")
}

/// A subscription item as Stripe shows it, with its whole price and the legacy plan that mirrors
/// it. `quantity` is left out for a metered item, as Stripe leaves it out.
#[derive(Serialize)]
pub struct ItemView<'a> {
    id: String,
    object: &'static str,
    billing_thresholds: Null,
    created: i64,
    current_period_end: i64,
    current_period_start: i64,
    current_trial: Null,
    discounts: [(); 0],
    metadata: &'a Metadata,
    plan: Option<PlanView<'a>>,
    price: Option<super::prices::PriceView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<u64>,
    subscription: String,
    tax_rates: [(); 0],
}

impl<'a> ItemView<'a> {
    /// The view of `item`, with its price read from `t`.
    pub fn of(t: &'a Tenant, item: &'a SubscriptionItem) -> Self {
        let price = t.price(item.price);
        ItemView {
            id: ids::render(ids::SUBSCRIPTION_ITEM, item.key),
            object: "subscription_item",
            billing_thresholds: NULL,
            created: to_secs(item.created),
            current_period_end: to_secs(item.current_period_end),
            current_period_start: to_secs(item.current_period_start),
            current_trial: NULL,
            discounts: EMPTY_LIST,
            metadata: &item.metadata,
            plan: price.map(|p| PlanView::of(t, p)),
            price: price.map(|p| super::prices::price_view(p, t)),
            quantity: item.quantity,
            subscription: ids::render(ids::SUBSCRIPTION, item.subscription),
            tax_rates: EMPTY_LIST,
        }
    }
}

/// The parts of a price both its views show.
struct PriceParts {
    id: String,
    product: String,
    billing_scheme: &'static str,
    tiers_mode: Option<&'static str>,
    /// Whole minor units, when the amount is one.
    unit_amount: Option<i64>,
    unit_amount_decimal: Option<String>,
    transform: Option<TransformView>,
}

impl PriceParts {
    fn of(t: &Tenant, p: &Price) -> Self {
        let (billing_scheme, tiers_mode, amount) = match &p.scheme {
            Scheme::PerUnit { unit_amount } => ("per_unit", None, Some(*unit_amount)),
            Scheme::Tiered { mode, .. } => (
                "tiered",
                Some(match mode {
                    TiersMode::Graduated => "graduated",
                    TiersMode::Volume => "volume",
                }),
                None,
            ),
        };
        PriceParts {
            id: ids::render(ids::PRICE, p.key),
            product: super::catalog::product_id_of(t, p.product),
            billing_scheme,
            tiers_mode,
            unit_amount: amount.filter(|a| a.fract().is_zero()).and_then(|a| {
                use rust_decimal::prelude::ToPrimitive;
                a.to_i64()
            }),
            unit_amount_decimal: amount.map(|a| a.normalize().to_string()),
            transform: p.transform_quantity.map(|t| TransformView {
                divide_by: t.divide_by,
                round: match t.round {
                    Round::Up => "up",
                    Round::Down => "down",
                },
            }),
        }
    }
}

#[derive(Serialize)]
struct TransformView {
    divide_by: u64,
    round: &'static str,
}

fn interval_name(i: Interval) -> &'static str {
    match i {
        Interval::Day => "day",
        Interval::Week => "week",
        Interval::Month => "month",
        Interval::Year => "year",
    }
}

fn usage_name(p: &Price) -> &'static str {
    if p.is_metered() {
        "metered"
    } else {
        "licensed"
    }
}

/// The legacy `plan` Stripe still shows beside an item's price: the same price in the older
/// object's words (`amount`, `transform_usage`, `interval` at the top level). Tiers are left out,
/// as a plan shows them only when expanded.
#[derive(Serialize)]
struct PlanView<'a> {
    id: String,
    object: &'static str,
    active: bool,
    amount: Option<i64>,
    amount_decimal: Option<String>,
    billing_scheme: &'static str,
    created: i64,
    currency: &'a str,
    interval: &'static str,
    interval_count: u32,
    livemode: bool,
    metadata: &'a Metadata,
    meter: Option<String>,
    nickname: Option<&'a str>,
    product: String,
    tiers_mode: Option<&'static str>,
    transform_usage: Option<TransformView>,
    trial_period_days: Null,
    usage_type: &'static str,
}

impl<'a> PlanView<'a> {
    fn of(t: &Tenant, p: &'a Price) -> Self {
        let parts = PriceParts::of(t, p);
        let recurring = p.recurring;
        PlanView {
            id: parts.id,
            object: "plan",
            active: p.active,
            amount: parts.unit_amount,
            amount_decimal: parts.unit_amount_decimal,
            billing_scheme: parts.billing_scheme,
            created: to_secs(p.created),
            currency: p.currency.as_str(),
            interval: recurring.map_or("month", |r| interval_name(r.interval)),
            interval_count: recurring.map_or(1, |r| r.interval_count),
            livemode: false,
            metadata: &p.metadata,
            meter: p.meter().map(|m| ids::render(ids::METER, m)),
            nickname: p.nickname.as_deref(),
            product: parts.product,
            tiers_mode: parts.tiers_mode,
            transform_usage: parts.transform,
            trial_period_days: NULL,
            usage_type: usage_name(p),
        }
    }
}

/// `GET /v1/subscription_items?subscription=…`: a subscription's items in the order they were
/// added, the order its embedded `items` shows (`starting_after` pages towards newer items).
pub struct List {
    subscription: String,
    page: PageRequest,
}

impl Operation for List {
    type Output = (Key, Vec<Key>, bool);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, LIST, "")?;
        Expand::read(p, &[], Version::NEWEST)?;
        let subscription = get_str(p, "subscription").unwrap_or("");
        if subscription.is_empty() {
            return Err(StripeError::missing_param("subscription"));
        }
        Ok(List {
            subscription: subscription.to_string(),
            page: PageRequest::read(p)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let sub = ids::key_of(&self.subscription, ids::SUBSCRIPTION)
            .and_then(|k| t.priced_subscription(k))
            .ok_or_else(|| {
                StripeError::no_such("subscription", &self.subscription, "subscription", 400)
            })?;
        let items = &sub.items;
        let position = |k: Key| items.iter().position(|i| *i == k);
        let page = self.page.resolve("subscription item", |id| {
            ids::key_of(id, ids::SUBSCRIPTION_ITEM).filter(|k| position(*k).is_some())
        })?;
        let n = items.len();
        let range = match (page.starting_after, page.ending_before) {
            (_, Some(before)) => {
                let end = position(before).unwrap_or(0);
                end.saturating_sub(page.limit)..end
            }
            (Some(after), None) => {
                let start = position(after).map_or(n, |p| p + 1);
                start..(start + page.limit).min(n)
            }
            (None, None) => 0..page.limit.min(n),
        };
        let more = match page.ending_before {
            Some(_) => range.start > 0,
            None => range.end < n,
        };
        Ok((sub.key, items[range].to_vec(), more))
    }

    fn render((sub, keys, more): Self::Output, t: &Tenant) -> Body {
        let data: Vec<ItemView> = keys
            .iter()
            .filter_map(|k| t.subscription_item(*k))
            .map(|i| ItemView::of(t, i))
            .collect();
        let url = items_url(&ids::render(ids::SUBSCRIPTION, sub));
        Body::Json(pretty(
            &ListJson::new(data, more, &url),
            2048 * (keys.len() + 1),
        ))
    }
}

/// `GET /v1/subscription_items/{id}`.
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, RETRIEVE, "")?;
        Expand::read(input.params, &[], Version::NEWEST)?;
        Ok(Retrieve {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        ids::key_of(&self.id, ids::SUBSCRIPTION_ITEM)
            .filter(|k| t.subscription_item(*k).is_some())
            .ok_or_else(|| StripeError::no_such("subscription item", &self.id, "id", 404))
    }

    fn render(key: Key, t: &Tenant) -> Body {
        let item = t.subscription_item(key).expect("looked up above");
        Body::Json(pretty(&ItemView::of(t, item), 2048))
    }
}
