//! `/v1/prices`: how much a product costs and how often, including tiered and metered prices.
//!
//! A price is immutable in what it charges; update changes only its bookkeeping (`active`,
//! `lookup_key`, `nickname`, `metadata`, `tax_behavior`), and every other parameter is unknown
//! there. Prices cannot be deleted. The list shows active prices unless `active=false` is sent.
//!
//! `tiers` is an includable field, as in Stripe: a tiered price shows its tiers only with
//! `expand[]=tiers` (`data.tiers` on the list).

use rust_decimal::Decimal;
use serde::Serialize;

use super::catalog::{
    self as shared, amount_pair, catalog_error, find_price, find_product, get_bool, interval,
    interval_name, no_such_price, no_such_product, only_one, product_id_of, shown_amount,
    tax_behavior, tax_behavior_name, INTERVALS, TAX_BEHAVIORS,
};
use super::ids;
use super::list::{self, ListJson, PageRequest, TimeRange};
use super::op::{Body, Expand, Input, Null, Operation, NULL};
use super::{products, search};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::{
    FirstPrice, Metadata, NewPrice, NewProduct, Price, PriceChanges, PriceTerms, Recurring, Round,
    Scheme, TaxBehavior, Tenant, Tier, TiersMode, TransformQuantity, UsageType,
};
use crate::time::to_secs;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::{
    apply_metadata, currency, get_int, get_metadata, get_nullable_str, get_obj, get_str, in_range,
    list_items, new_metadata, opt, parse_int, req, validate_at, Field, MetadataUpdate, Spec,
    EXPAND, LIST_FIELDS,
};
use crate::wire::versions::Change;

const HINT: &str =
    " (the emulator prices in one currency, at amounts fixed when the price is made)";

const TIER: &[Field] = &[
    opt("flat_amount", Spec::Int),
    opt("flat_amount_decimal", Spec::Str(5000)),
    opt("unit_amount", Spec::Int),
    opt("unit_amount_decimal", Spec::Str(5000)),
    req("up_to", Spec::Str(5000)),
];
const RECURRING: &[Field] = &[
    req("interval", Spec::Enum(INTERVALS)),
    opt("interval_count", Spec::Int),
    opt("meter", Spec::Str(5000)),
    opt("trial_period_days", Spec::Int),
    opt("usage_type", Spec::Enum(&["licensed", "metered"])),
];
const TRANSFORM: &[Field] = &[
    req("divide_by", Spec::Int),
    req("round", Spec::Enum(&["down", "up"])),
];

/// Stripe documents no bound on the number of tiers; this one keeps a request reasonable.
pub const MAX_TIERS: usize = 250;

/// The most trial days a price may offer.
const MAX_TRIAL_DAYS: i64 = 730;

const CREATE: &[Field] = &[
    opt("active", Spec::Bool),
    opt("billing_scheme", Spec::Enum(&["per_unit", "tiered"])),
    req("currency", Spec::Str(5000)),
    opt("currency_options", Spec::Unsupported),
    opt("custom_unit_amount", Spec::Unsupported),
    EXPAND,
    opt("lookup_key", Spec::Str(200)),
    opt("metadata", Spec::Metadata),
    opt("nickname", Spec::Str(5000)),
    opt("product", Spec::Str(5000)),
    opt("product_data", Spec::Obj(products::PRODUCT_DATA)),
    opt("recurring", Spec::Obj(RECURRING)),
    opt("tax_behavior", Spec::Enum(TAX_BEHAVIORS)),
    opt("tiers", Spec::Array(&Spec::Obj(TIER), MAX_TIERS)),
    opt("tiers_mode", Spec::Enum(&["graduated", "volume"])),
    opt("transfer_lookup_key", Spec::Bool),
    opt("transform_quantity", Spec::Obj(TRANSFORM)),
    opt("unit_amount", Spec::Int),
    opt("unit_amount_decimal", Spec::Str(5000)),
];

const UPDATE: &[Field] = &[
    opt("active", Spec::Bool),
    opt("currency_options", Spec::Unsupported),
    EXPAND,
    opt("lookup_key", Spec::Str(200)),
    opt("metadata", Spec::Metadata),
    opt("nickname", Spec::Str(5000)),
    opt("tax_behavior", Spec::Enum(TAX_BEHAVIORS)),
    opt("transfer_lookup_key", Spec::Bool),
];

const LIST_RECURRING: &[Field] = &[
    opt("interval", Spec::Enum(INTERVALS)),
    opt("meter", Spec::Str(5000)),
    opt("usage_type", Spec::Enum(&["licensed", "metered"])),
];

/// Stripe's bound on `lookup_keys[]`.
const MAX_LOOKUP_KEYS: usize = 10;

const LIST: &[Field] = &[
    opt("active", Spec::Bool),
    opt("created", Spec::Range),
    opt("currency", Spec::Str(5000)),
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    LIST_FIELDS[0],
    opt("lookup_keys", Spec::Array(&Spec::Str(200), MAX_LOOKUP_KEYS)),
    opt("product", Spec::Str(5000)),
    opt("recurring", Spec::Obj(LIST_RECURRING)),
    LIST_FIELDS[1],
    opt("type", Spec::Enum(&["one_time", "recurring"])),
];

const RETRIEVE: &[Field] = &[EXPAND];
const EXPANDABLE: &[&str] = &["product", "tiers"];
const LIST_EXPANDABLE: &[&str] = &["data.product", "data.tiers"];

/// A price as Stripe shows it, fields in Stripe's order. `tiers` only when asked for.
#[derive(Serialize)]
pub struct PriceView<'a> {
    id: String,
    object: &'static str,
    active: bool,
    billing_scheme: &'static str,
    created: i64,
    currency: &'a str,
    custom_unit_amount: Null,
    livemode: bool,
    lookup_key: Option<&'a str>,
    metadata: &'a Metadata,
    nickname: Option<&'a str>,
    product: String,
    recurring: Option<RecurringView>,
    tax_behavior: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tiers: Option<Vec<TierView>>,
    tiers_mode: Option<&'static str>,
    transform_quantity: Option<TransformView>,
    #[serde(rename = "type")]
    kind: &'static str,
    unit_amount: Option<i64>,
    unit_amount_decimal: Option<String>,
}

#[derive(Serialize)]
struct RecurringView {
    interval: &'static str,
    interval_count: u32,
    meter: Option<String>,
    trial_period_days: Option<u32>,
    usage_type: &'static str,
}

/// One tier: `up_to` null is the unbounded last tier.
#[derive(Serialize)]
struct TierView {
    flat_amount: Option<i64>,
    flat_amount_decimal: Option<String>,
    unit_amount: Option<i64>,
    unit_amount_decimal: Option<String>,
    up_to: Option<u64>,
}

#[derive(Serialize)]
struct TransformView {
    divide_by: u64,
    round: &'static str,
}

/// The pair an amount is shown as, or two nulls.
fn pair(amount: Option<Decimal>) -> (Option<i64>, Option<String>) {
    match amount.map(shown_amount) {
        Some((whole, text)) => (whole, Some(text)),
        None => (None, None),
    }
}

/// The view of `price` as embedded in other objects (subscription items, invoice lines): the
/// whole price, without its includable `tiers`.
pub fn price_view<'a>(price: &'a Price, tenant: &Tenant) -> PriceView<'a> {
    price_view_with(price, tenant, false)
}

/// The view of `price`, with its tiers when `with_tiers` (and it has any).
pub fn price_view_with<'a>(price: &'a Price, tenant: &Tenant, with_tiers: bool) -> PriceView<'a> {
    let (unit_amount, unit_amount_decimal, tiers, tiers_mode) = match &price.scheme {
        Scheme::PerUnit { unit_amount } => {
            let (whole, text) = pair(Some(*unit_amount));
            (whole, text, None, None)
        }
        Scheme::Tiered { mode, tiers } => {
            let shown = with_tiers.then(|| {
                tiers
                    .iter()
                    .map(|t| {
                        let (flat_amount, flat_amount_decimal) = pair(t.flat_amount);
                        let (unit_amount, unit_amount_decimal) = pair(t.unit_amount);
                        TierView {
                            flat_amount,
                            flat_amount_decimal,
                            unit_amount,
                            unit_amount_decimal,
                            up_to: t.up_to,
                        }
                    })
                    .collect()
            });
            let mode = match mode {
                TiersMode::Graduated => "graduated",
                TiersMode::Volume => "volume",
            };
            (None, None, shown, Some(mode))
        }
    };
    PriceView {
        id: ids::render(ids::PRICE, price.key),
        object: "price",
        active: price.active,
        billing_scheme: match price.scheme {
            Scheme::PerUnit { .. } => "per_unit",
            Scheme::Tiered { .. } => "tiered",
        },
        created: to_secs(price.created),
        currency: price.currency.as_str(),
        custom_unit_amount: NULL,
        livemode: false,
        lookup_key: price.lookup_key.as_deref(),
        metadata: &price.metadata,
        nickname: price.nickname.as_deref(),
        product: product_id_of(tenant, price.product),
        recurring: price.recurring.map(|r| RecurringView {
            interval: interval_name(r.interval),
            interval_count: r.interval_count,
            meter: r.meter.map(|k| ids::render(ids::METER, k)),
            trial_period_days: price.trial_period_days,
            usage_type: match r.usage_type {
                UsageType::Licensed => "licensed",
                UsageType::Metered => "metered",
            },
        }),
        tax_behavior: price.tax_behavior.map(tax_behavior_name),
        tiers,
        tiers_mode,
        transform_quantity: price.transform_quantity.map(|t| TransformView {
            divide_by: t.divide_by,
            round: match t.round {
                Round::Up => "up",
                Round::Down => "down",
            },
        }),
        kind: if price.recurring.is_some() {
            "recurring"
        } else {
            "one_time"
        },
        unit_amount,
        unit_amount_decimal,
    }
}

/// The price `key` of `t` as the answer, with `expand`.
fn respond(t: &Tenant, key: Key, expand: Expand) -> Body {
    match t.price(key) {
        Some(p) => Body::of(&price_view_with(p, t, expand.wants("tiers")), expand, 1024),
        None => Body::Json(b"{}".to_vec()),
    }
}

fn lookup_path(t: &Tenant, id: &str) -> StripeResult<Key> {
    find_price(t, id).ok_or_else(|| no_such_price(id, "id", 404))
}

/// Where a new price's product comes from.
enum ProductRef {
    /// An existing product, by id.
    Id(String),
    /// A product made with the price (`product_data`).
    Data(Box<NewProduct>),
}

/// What a create or a product's `default_price_data` makes: the price (its product still
/// unknown) and its terms, with the meter still an id.
pub struct PriceData {
    /// The price.
    pub price: NewPrice,
    /// Its terms.
    pub terms: PriceTerms,
    /// The meter id sent, resolved under the lock.
    pub meter: Option<String>,
}

/// `POST /v1/prices`.
pub struct Create {
    product: ProductRef,
    data: PriceData,
    transfer_lookup_key: bool,
    expand: Expand,
}

/// The tiers of a validated `tiers` array: each with an `up_to` above the one before, only the
/// last unbounded, each with an amount.
fn tiers(node: &Node) -> StripeResult<Vec<Tier>> {
    let items = list_items(node);
    let mut out: Vec<Tier> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Node::Map(t) = item else {
            return Err(StripeError::invalid("Invalid hash").param(format!("tiers[{i}]")));
        };
        let prefix = format!("tiers[{i}]");
        let up_param = format!("{prefix}[up_to]");
        let raw = get_str(t, "up_to").unwrap_or("");
        let up_to = match raw {
            "inf" => None,
            s => Some(
                parse_int(s)
                    .filter(|n| *n >= 1)
                    .map(|n| n as u64)
                    .ok_or_else(|| StripeError::invalid_integer(&up_param, s))?,
            ),
        };
        let unit_amount = amount_pair(t, "unit_amount", &prefix)?;
        let flat_amount = amount_pair(t, "flat_amount", &prefix)?;
        if unit_amount.is_none() && flat_amount.is_none() {
            return Err(
                StripeError::invalid("An entry in the tiers array is missing an amount.")
                    .param("amount"),
            );
        }
        if let Some(previous) = out.last() {
            match (previous.up_to, up_to) {
                (None, _) => {
                    return Err(StripeError::invalid(format!(
                        "Only the last tier may have up_to=inf; tiers[{}] is unbounded and tiers[{i}] follows it.",
                        i - 1
                    ))
                    .param(format!("tiers[{}][up_to]", i - 1)))
                }
                (Some(a), Some(b)) if b <= a => {
                    return Err(StripeError::invalid(format!(
                        "Tiers must be in ascending order of up_to: {up_param} ({b}) is not greater than tiers[{}][up_to] ({a}).",
                        i - 1
                    ))
                    .param(up_param))
                }
                _ => {}
            }
        }
        out.push(Tier {
            up_to,
            unit_amount,
            flat_amount,
        });
    }
    match out.last() {
        None => Err(StripeError::missing_param("tiers")),
        Some(t) if t.up_to.is_some() => Err(StripeError::invalid(
            "The last tier must have up_to=inf, so that every quantity falls in a tier.",
        )
        .param(format!("tiers[{}][up_to]", out.len() - 1))),
        Some(_) => Ok(out),
    }
}

/// How a validated create prices a quantity: `unit_amount` / `unit_amount_decimal`, or
/// `billing_scheme=tiered` with `tiers` and `tiers_mode`; and the quantity transform.
fn scheme(p: &Params) -> StripeResult<(Scheme, Option<TransformQuantity>)> {
    only_one(p, "unit_amount", "unit_amount_decimal", "")?;
    let tiered = get_str(p, "billing_scheme") == Some("tiered");
    let transform = match get_obj(p, "transform_quantity") {
        Some(t) => Some(TransformQuantity {
            divide_by: in_range(
                get_int(t, "divide_by").unwrap_or(0),
                1,
                i64::MAX,
                "transform_quantity[divide_by]",
            )? as u64,
            round: match get_str(t, "round") {
                Some("up") => Round::Up,
                _ => Round::Down,
            },
        }),
        None => None,
    };
    if !tiered {
        for name in ["tiers", "tiers_mode"] {
            if p.contains_key(name) {
                return Err(StripeError::invalid(format!(
                    "{name} can only be used with billing_scheme=tiered."
                ))
                .param(name));
            }
        }
        let unit_amount = amount_pair(p, "unit_amount", "")?
            .ok_or_else(|| StripeError::missing_param("unit_amount"))?;
        return Ok((Scheme::PerUnit { unit_amount }, transform));
    }
    for name in ["unit_amount", "unit_amount_decimal"] {
        if p.contains_key(name) {
            return Err(StripeError::invalid(format!(
                "{name} cannot be used with billing_scheme=tiered; give each tier its own amounts in tiers."
            ))
            .param(name));
        }
    }
    let Some(node) = p.get("tiers") else {
        return Err(StripeError::missing_param("tiers"));
    };
    let mode = match get_str(p, "tiers_mode") {
        Some("graduated") => TiersMode::Graduated,
        Some(_) => TiersMode::Volume,
        None => return Err(StripeError::missing_param("tiers_mode")),
    };
    if transform.is_some() {
        return Err(StripeError::invalid(
            "You may only specify one of these parameters: tiers, transform_quantity.",
        )
        .param("tiers"));
    }
    Ok((
        Scheme::Tiered {
            mode,
            tiers: tiers(node)?,
        },
        None,
    ))
}

impl Create {
    /// The recurrence of a validated create: interval and count, usage type, meter (required for
    /// a metered price from the version that removed legacy usage-based billing), trial days.
    fn recurring(
        p: &Params,
        input: &Input,
    ) -> StripeResult<(Option<Recurring>, Option<String>, Option<u32>)> {
        let Some(r) = get_obj(p, "recurring") else {
            return Ok((None, None, None));
        };
        let mut recurring = shared::recurring(r, "recurring")?;
        let metered = get_str(r, "usage_type") == Some("metered");
        let meter = get_str(r, "meter")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if metered {
            recurring.usage_type = UsageType::Metered;
        } else if meter.is_some() {
            return Err(StripeError::invalid(
                "recurring[meter] can only be set on a price with recurring[usage_type]=metered.",
            )
            .param("recurring[meter]"));
        }
        if metered && meter.is_none() && input.version.has(Change::MeteredPriceMeter) {
            return Err(StripeError::invalid(
                "A metered price must name the meter that measures its usage: set recurring[meter] to the id of an active billing meter.",
            )
            .param("recurring[meter]"));
        }
        let trial = match get_int(r, "trial_period_days") {
            Some(n) => Some(in_range(n, 0, MAX_TRIAL_DAYS, "recurring[trial_period_days]")? as u32),
            None => None,
        };
        Ok((Some(recurring), meter, trial))
    }
}

impl Operation for Create {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, CREATE, HINT, input.version)?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        let currency = currency(get_str(p, "currency").unwrap_or(""), "currency")?;
        let product = match (
            get_str(p, "product").filter(|s| !s.is_empty()),
            get_obj(p, "product_data"),
        ) {
            (Some(_), Some(_)) => {
                return Err(StripeError::invalid(
                    "You may only specify one of these parameters: product, product_data.",
                )
                .param("product"))
            }
            (None, None) => return Err(StripeError::missing_param("product")),
            (Some(id), None) => ProductRef::Id(id.to_string()),
            (None, Some(d)) => ProductRef::Data(Box::new(products::product_data(d)?)),
        };
        let (scheme, transform_quantity) = scheme(p)?;
        let (recurring, meter, trial_period_days) = Create::recurring(p, input)?;
        let metadata = new_metadata(p, "metadata", "metadata")?;
        Ok(Create {
            product,
            data: PriceData {
                price: NewPrice {
                    product: 0,
                    active: get_bool(p, "active").unwrap_or(true),
                    currency,
                    recurring,
                    scheme,
                    transform_quantity,
                    lookup_key: get_nullable_str(p, "lookup_key").flatten(),
                    nickname: get_nullable_str(p, "nickname").flatten(),
                    metadata,
                },
                terms: PriceTerms {
                    tax_behavior: get_str(p, "tax_behavior").map(tax_behavior),
                    trial_period_days,
                },
                meter,
            },
            transfer_lookup_key: get_bool(p, "transfer_lookup_key").unwrap_or(false),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let product = match &self.product {
            ProductRef::Id(id) => {
                Some(find_product(t, id).ok_or_else(|| no_such_product(id, "product", 400))?)
            }
            ProductRef::Data(_) => None,
        };
        let data = resolve_meter(t, self.data)?;
        let meter_id = data.meter.clone().unwrap_or_default();
        let key = match (product, self.product) {
            (Some(product), _) => {
                let mut price = data.price;
                price.product = product;
                t.add_price(price, data.terms, self.transfer_lookup_key)
                    .map_err(|e| catalog_error(e, &meter_id))?
            }
            (None, ProductRef::Data(new)) => {
                products::check_chosen_id(t, new.custom_id.as_deref(), "product_data[id]")?;
                let first = FirstPrice {
                    price: data.price,
                    terms: data.terms,
                    transfer_lookup_key: self.transfer_lookup_key,
                    default: false,
                };
                let (_, price) = t.add_product(*new, Some(first)).map_err(|e| {
                    let err = catalog_error(e, &meter_id);
                    if e == crate::model::CatalogError::ProductIdTaken {
                        err.param("product_data[id]")
                    } else {
                        err
                    }
                })?;
                price.ok_or_else(StripeError::internal)?
            }
            (None, ProductRef::Id(_)) => return Err(StripeError::internal()),
        };
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// Resolves the meter id of `data` in `t`: it must name an existing meter (whether it is active
/// is the model's rule, checked as the price is made).
pub fn resolve_meter(t: &Tenant, mut data: PriceData) -> StripeResult<PriceData> {
    if let (Some(id), Some(r)) = (&data.meter, data.price.recurring.as_mut()) {
        let key = ids::key_of(id, ids::METER)
            .filter(|k| t.meter(*k).is_some())
            .ok_or_else(|| catalog_error(crate::model::CatalogError::NoSuchMeter, id))?;
        r.meter = Some(key);
    }
    Ok(data)
}

/// `GET /v1/prices/{id}`.
pub struct Retrieve {
    id: String,
    expand: Expand,
}

impl Operation for Retrieve {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, RETRIEVE, HINT, input.version)?;
        Ok(Retrieve {
            id: input.id().to_string(),
            expand: Expand::read(input.params, EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        Ok((lookup_path(t, &self.id)?, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `POST /v1/prices/{id}`: only the bookkeeping changes.
pub struct Update {
    id: String,
    active: Option<bool>,
    lookup_key: Option<Option<String>>,
    nickname: Option<Option<String>>,
    metadata: Option<MetadataUpdate>,
    tax_behavior: Option<TaxBehavior>,
    transfer_lookup_key: bool,
    expand: Expand,
}

impl Operation for Update {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, UPDATE, HINT, input.version)?;
        Ok(Update {
            id: input.id().to_string(),
            active: get_bool(p, "active"),
            lookup_key: get_nullable_str(p, "lookup_key"),
            nickname: get_nullable_str(p, "nickname"),
            metadata: get_metadata(p, "metadata"),
            tax_behavior: get_str(p, "tax_behavior").map(tax_behavior),
            transfer_lookup_key: get_bool(p, "transfer_lookup_key").unwrap_or(false),
            expand: Expand::read(p, EXPANDABLE, input.version)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup_path(t, &self.id)?;
        let existing = t.price(key).map(|p| p.metadata.clone()).unwrap_or_default();
        let metadata = match self.metadata {
            Some(u) => Some(apply_metadata(&existing, u, "metadata")?),
            None => None,
        };
        let changes = PriceChanges {
            active: self.active,
            lookup_key: self.lookup_key,
            nickname: self.nickname,
            metadata,
            tax_behavior: self.tax_behavior,
        };
        t.update_price(key, changes, self.transfer_lookup_key)
            .map_err(|e| catalog_error(e, ""))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `recurring[…]` filters of the list.
#[derive(Default)]
struct RecurringFilter {
    interval: Option<crate::model::Interval>,
    meter: Option<String>,
    usage_type: Option<UsageType>,
}

/// `GET /v1/prices`: active prices unless `active=false`, newest first.
pub struct List {
    page: PageRequest,
    active: bool,
    created: Option<TimeRange>,
    currency: Option<crate::model::Currency>,
    lookup_keys: Option<Vec<String>>,
    product: Option<String>,
    recurring: Option<RecurringFilter>,
    kind: Option<bool>,
    expand: Expand,
}

impl Operation for List {
    type Output = (Vec<Key>, bool, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, LIST, HINT, input.version)?;
        let expand = Expand::read(p, LIST_EXPANDABLE, input.version)?;
        let currency = match get_str(p, "currency").filter(|s| !s.is_empty()) {
            Some(c) => Some(currency(c, "currency")?),
            None => None,
        };
        let lookup_keys = p.get("lookup_keys").map(|n| {
            list_items(n)
                .into_iter()
                .filter_map(|k| match k {
                    Node::Value(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        });
        let recurring = get_obj(p, "recurring").map(|r| RecurringFilter {
            interval: get_str(r, "interval").map(interval),
            meter: get_str(r, "meter").map(str::to_string),
            usage_type: get_str(r, "usage_type").map(|u| {
                if u == "metered" {
                    UsageType::Metered
                } else {
                    UsageType::Licensed
                }
            }),
        });
        Ok(List {
            page: PageRequest::read(p)?,
            active: get_bool(p, "active").unwrap_or(true),
            created: TimeRange::read(p, "created"),
            currency,
            lookup_keys,
            product: get_str(p, "product")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            recurring,
            kind: get_str(p, "type").map(|t| t == "recurring"),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("price", |id| find_price(t, id))?;
        let product = match &self.product {
            Some(id) => {
                Some(find_product(t, id).ok_or_else(|| no_such_product(id, "product", 400))?)
            }
            None => None,
        };
        let created_of = |k: Key| t.price(k).map_or(i64::MIN, |p| p.created);
        let by_active = t.prices_with_active(self.active);
        let page = match self.created {
            Some(r) => page.within(r.keys(|a, b| t.prices_in((a, b)).map(|p| p.key), created_of)),
            None => page,
        };
        let meter = self.recurring.as_ref().and_then(|r| r.meter.as_deref());
        let meter_key = meter.map(|id| ids::key_of(id, ids::METER));
        let keep = |k: Key| {
            let Some(p) = t.price(k) else {
                return false;
            };
            let recurring_ok = match &self.recurring {
                None => true,
                Some(f) => p.recurring.is_some_and(|r| {
                    f.interval.is_none_or(|i| i == r.interval)
                        && f.usage_type.is_none_or(|u| u == r.usage_type)
                        && meter_key.is_none_or(|m| m.is_some() && m == r.meter)
                }),
            };
            p.active == self.active
                && self.created.is_none_or(|r| r.contains(p.created))
                && self.currency.is_none_or(|c| c == p.currency)
                && self.kind.is_none_or(|rec| rec == p.recurring.is_some())
                && product.is_none_or(|k| k == p.product)
                && recurring_ok
        };
        let (keys, more) = if let Some(lookup_keys) = &self.lookup_keys {
            let set: std::collections::BTreeSet<Key> = lookup_keys
                .iter()
                .filter_map(|k| t.price_with_lookup_key(k))
                .collect();
            list::paginate(|a, b| set.range((a, b)).copied(), &page, keep)
        } else if let Some(product) = product {
            let index = t.price_keys_of(product);
            list::paginate(|a, b| index.range((a, b)), &page, keep)
        } else {
            list::paginate(|a, b| by_active.range((a, b)), &page, keep)
        };
        Ok((keys, more, self.expand))
    }

    fn render((keys, more, expand): Self::Output, t: &Tenant) -> Body {
        let with_tiers = expand.wants("data.tiers");
        let data: Vec<PriceView> = keys
            .iter()
            .filter_map(|k| t.price(*k))
            .map(|p| price_view_with(p, t, with_tiers))
            .collect();
        Body::of(
            &ListJson::new(data, more, "/v1/prices"),
            expand,
            1024 * (keys.len() + 1),
        )
    }
}

// ---- search ----

/// `GET /v1/prices/search`: by `active`, `currency`, `lookup_key`, `metadata`, `product` and
/// `type` (see [`search::Search`]).
pub struct Searched;

impl search::Searchable for Searched {
    const SCHEMA: search::Schema = search::Schema {
        resource: "prices",
        fields: &[
            ("active", search::Kind::Token),
            ("currency", search::Kind::Token),
            ("lookup_key", search::Kind::String),
            ("product", search::Kind::Token),
            ("type", search::Kind::Token),
        ],
        metadata: true,
    };
    const URL: &'static str = "/v1/prices/search";
    const EXPANDABLE: &'static [&'static str] = &["data.product", "data.tiers", "total_count"];

    fn newest_first(t: &Tenant, before: std::ops::Bound<Key>) -> impl Iterator<Item = Key> + '_ {
        t.prices_in((std::ops::Bound::Unbounded, before))
            .rev()
            .map(|p| p.key)
    }

    fn field<'t>(t: &'t Tenant, key: Key, f: &search::Field) -> search::Found<'t> {
        use search::Found;
        let Some(p) = t.price(key) else {
            return Found::Missing;
        };
        match f {
            search::Field::Named("active") => Found::Str(if p.active { "true" } else { "false" }),
            search::Field::Named("currency") => Found::Str(p.currency.as_str()),
            search::Field::Named("lookup_key") => {
                p.lookup_key.as_deref().map_or(Found::Missing, Found::Str)
            }
            search::Field::Named("product") => Found::Owned(product_id_of(t, p.product)),
            search::Field::Named("type") => Found::Str(match p.recurring {
                Some(_) => "recurring",
                None => "one_time",
            }),
            search::Field::Named(_) => Found::Missing,
            search::Field::Metadata(k) => p.metadata.get(k).map_or(Found::Missing, Found::Str),
        }
    }

    fn render(t: &Tenant, hits: search::Hits) -> Body {
        let with_tiers = hits.wants("data.tiers");
        let data: Vec<PriceView> = hits
            .keys
            .iter()
            .filter_map(|k| t.price(*k))
            .map(|p| price_view_with(p, t, with_tiers))
            .collect();
        hits.body(data, Self::URL, 1024)
    }
}
