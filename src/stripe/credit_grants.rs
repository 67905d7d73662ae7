//! `/v1/billing/credit_grants`: a credit grant is one lot of the model.
//!
//! Parameters and fields follow the request's API version ([`super::versions`]): `priority` and
//! price scopes from 2025-02-24.acacia, `category` optional from 2025-10-29.clover,
//! `customer_account` from 2025-12-15.clover.

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::error::{StripeError, StripeResult};
use super::params::{
    apply_metadata, currency, get_expand, get_int, get_metadata, get_obj, get_str, in_range,
    list_items, opt, req, timestamp, validate_at, Field, Spec, EXPAND, LIST_FIELDS,
};
use super::versions::{Change, Version};
use super::{customers, expand, ids, list, Body, Ctx};
use crate::form::Node;
use crate::ids::Key;
use crate::model::money::to_minor_i64;
use crate::model::{
    Applicability, Category, Currency, Lot, LotError, LotOrigin, Metadata, NewLot, Tenant,
};
use crate::time::to_secs;

const HINT: &str = "";

const MONETARY: &[Field] = &[req("currency", Spec::Str(5000)), req("value", Spec::Int)];
const AMOUNT: &[Field] = &[
    opt("monetary", Spec::Obj(MONETARY)),
    req("type", Spec::Enum(&["monetary"])),
];
const PRICE: &[Field] = &[req("id", Spec::Str(5000))];
const SCOPE: &[Field] = &[
    opt("price_type", Spec::Enum(&["metered"])).required_before(Change::PriceScope),
    opt("prices", Spec::Array(&Spec::Obj(PRICE), 20)).since(Change::PriceScope),
];
const APPLICABILITY: &[Field] = &[req("scope", Spec::Obj(SCOPE))];

const CREATE: &[Field] = &[
    req("amount", Spec::Obj(AMOUNT)),
    req("applicability_config", Spec::Obj(APPLICABILITY)),
    opt("category", Spec::Enum(&["paid", "promotional"])).required_before(Change::OptionalCategory),
    opt("customer", Spec::Str(5000)).required_before(Change::CustomerAccount),
    opt("customer_account", Spec::Unsupported).since(Change::CustomerAccount),
    opt("effective_at", Spec::Int),
    EXPAND,
    opt("expires_at", Spec::Int),
    opt("metadata", Spec::Metadata),
    opt("name", Spec::Str(100)),
    opt("priority", Spec::Int).since(Change::Priority),
];

const UPDATE: &[Field] = &[
    EXPAND,
    opt("expires_at", Spec::TsOrEmpty),
    opt("metadata", Spec::Metadata),
];

const LIST: &[Field] = &[
    opt("created", Spec::Range),
    opt("customer", Spec::Str(5000)),
    opt("customer_account", Spec::Unsupported).since(Change::CustomerAccount),
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    LIST_FIELDS[2],
    LIST_FIELDS[3],
];

const ONLY_EXPAND: &[Field] = &[EXPAND];
const EXPANDABLE: &[&str] = &["customer", "test_clock"];
const LIST_EXPANDABLE: &[&str] = &["data.customer", "data.test_clock"];

/// The `{monetary: {currency, value}, type: "monetary"}` object for an amount in minor units.
pub fn amount_json(currency: Currency, minor: Decimal) -> Value {
    serde_json::to_value(AmountJson::new(currency, minor)).unwrap_or(Value::Null)
}

/// `{monetary: {currency, value}, type: "monetary"}`, serialized without an intermediate `Value`.
#[derive(Serialize)]
pub struct AmountJson {
    monetary: MonetaryJson,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct MonetaryJson {
    #[serde(serialize_with = "currency_code")]
    currency: Currency,
    value: i64,
}

fn currency_code<S: serde::Serializer>(c: &Currency, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.as_str())
}

impl AmountJson {
    /// An amount in minor units.
    pub fn new(currency: Currency, minor: Decimal) -> AmountJson {
        AmountJson {
            monetary: MonetaryJson {
                currency,
                value: to_minor_i64(minor),
            },
            kind: "monetary",
        }
    }
}

/// Renders a lot as a `billing.credit_grant` value as `version` shows it (for `expand[]`, which
/// edits the tree).
pub fn render(lot: &Lot, version: Version) -> Value {
    serde_json::to_value(GrantJson::of(lot, version)).unwrap_or(Value::Null)
}

/// A lot as Stripe's `billing.credit_grant`, field by field in Stripe's order. Answers without
/// `expand[]` are serialized straight from it: building a `Value` tree first (a hash map and a
/// string per key) cost more than the rest of a retrieve put together. Fields a version does not
/// have are left out of its answers.
#[derive(Serialize)]
pub struct GrantJson<'a> {
    id: String,
    object: &'static str,
    amount: AmountJson,
    applicability_config: ApplicabilityJson<'a>,
    category: &'static str,
    created: i64,
    customer: String,
    #[serde(skip_serializing_if = "Shown::hidden")]
    customer_account: Shown<Option<&'static str>>,
    effective_at: i64,
    expires_at: Option<i64>,
    livemode: bool,
    metadata: &'a Metadata,
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Shown::hidden")]
    priority: Shown<Option<i64>>,
    test_clock: Option<String>,
    updated: i64,
    voided_at: Option<i64>,
}

/// A field that the request's version may not have: serialized as its value, or left out.
pub struct Shown<T> {
    value: T,
    shown: bool,
}

impl<T> Shown<T> {
    /// `value`, shown when `version` has `change`.
    pub fn from(value: T, version: Version, change: Change) -> Self {
        Shown {
            value,
            shown: version.has(change),
        }
    }

    /// Whether it is left out (for `skip_serializing_if`).
    pub fn hidden(&self) -> bool {
        !self.shown
    }
}

impl<T: Serialize> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

#[derive(Serialize)]
struct ApplicabilityJson<'a> {
    scope: ScopeJson<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ScopeJson<'a> {
    Metered {
        price_type: &'static str,
    },
    Prices {
        prices: Vec<PriceJson<'a>>,
    },
    /// A price scope, for a version before price scopes: none of the fields it knows is set.
    Unknown {},
}

#[derive(Serialize)]
struct PriceJson<'a> {
    id: &'a str,
}

impl<'a> GrantJson<'a> {
    /// The view of `lot` as `version` shows it.
    pub fn of(lot: &'a Lot, version: Version) -> Self {
        let scope = match &lot.applicability {
            Applicability::Metered => ScopeJson::Metered {
                price_type: "metered",
            },
            Applicability::Prices(_) if !version.has(Change::PriceScope) => ScopeJson::Unknown {},
            Applicability::Prices(prices) => ScopeJson::Prices {
                prices: prices.iter().map(|id| PriceJson { id }).collect(),
            },
        };
        GrantJson {
            id: ids::render(ids::CREDIT_GRANT, lot.key),
            object: "billing.credit_grant",
            amount: AmountJson::new(lot.currency, lot.amount),
            applicability_config: ApplicabilityJson { scope },
            category: match lot.category {
                Category::Paid => "paid",
                Category::Promotional => "promotional",
            },
            created: to_secs(lot.created),
            customer: ids::render(ids::CUSTOMER, lot.customer),
            customer_account: Shown::from(None, version, Change::CustomerAccount),
            effective_at: to_secs(lot.effective_at),
            expires_at: lot.expires_at.map(to_secs),
            livemode: false,
            metadata: &lot.metadata,
            name: lot.name.as_deref(),
            priority: Shown::from(lot.priority, version, Change::Priority),
            test_clock: lot.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k)),
            updated: to_secs(lot.updated),
            voided_at: lot.voided_at.map(to_secs),
        }
    }
}

fn lookup(tenant: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::CREDIT_GRANT)
        .filter(|k| tenant.lot(*k).is_some())
        .ok_or_else(|| StripeError::no_such("credit grant", id, "id", 404))
}

fn respond(ctx: &mut Ctx, key: Key) -> Body {
    let expand = get_expand(ctx.params);
    let lot = ctx.tenant.lot(key).expect("looked up above");
    if expand.is_empty() {
        return Body::Json(super::pretty(&GrantJson::of(lot, ctx.version), 1024));
    }
    let mut v = render(lot, ctx.version);
    super::expand_at(ctx.tenant, &mut v, &expand, ctx.version);
    Body::Value(v)
}

fn lot_error(e: LotError, id: &str) -> StripeError {
    let message = match e {
        LotError::NotFound => return StripeError::no_such("credit grant", id, "id", 404),
        LotError::AlreadyVoided => "This credit grant has already been voided.",
        LotError::AlreadyExpired => "This credit grant has already expired.",
        LotError::AppliedToInvoice => {
            "This credit grant has been applied to an invoice and cannot be voided. You can only void a credit grant that hasn't been applied to any invoice."
        }
    };
    StripeError::invalid(message).executed()
}

/// A create request, checked as far as it can be without the tenant.
///
/// Stripe reports the first error in a fixed order: the parameter checks, then the customer (which
/// needs the tenant), then timestamps. [`draft`] runs everything before the customer lookup and
/// stops at the first error; the timestamps need no tenant either and are worked out here too, but
/// kept as results, so that [`create`] reports them only after the lookup succeeded.
pub struct Draft<'p> {
    customer_id: &'p str,
    currency: Currency,
    value: i64,
    applicability: Applicability,
    priority: i64,
    effective_at: StripeResult<Option<i64>>,
    expires_at: StripeResult<Option<i64>>,
    metadata: Metadata,
    category: Category,
    name: Option<String>,
}

/// Checks a create's parameters (everything but the customer's existence and the times that depend
/// on its clock) as `version` knows them. Runs before the tenant is locked.
pub fn draft(p: &crate::form::Params, version: Version) -> StripeResult<Draft<'_>> {
    validate_at(p, CREATE, HINT, version)?;
    expand::check(&get_expand(p), EXPANDABLE)?;

    let amount = get_obj(p, "amount").ok_or_else(|| StripeError::missing_param("amount"))?;
    let monetary = get_obj(amount, "monetary")
        .ok_or_else(|| StripeError::missing_param("amount[monetary]"))?;
    let currency = currency(
        get_str(monetary, "currency").unwrap_or(""),
        "amount[monetary][currency]",
    )?;
    let value = in_range(
        get_int(monetary, "value").unwrap_or(0),
        1,
        i64::MAX,
        "amount[monetary][value]",
    )?;

    let applicability = applicability(p)?;

    let priority = in_range(get_int(p, "priority").unwrap_or(50), 0, 100, "priority")?;

    let customer_id = get_str(p, "customer")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| StripeError::missing_param("customer"))?;

    Ok(Draft {
        customer_id,
        currency,
        value,
        applicability,
        priority,
        effective_at: get_int(p, "effective_at")
            .map(|s| timestamp(s, "effective_at"))
            .transpose(),
        expires_at: get_int(p, "expires_at")
            .map(|s| timestamp(s, "expires_at"))
            .transpose(),
        // Parameter checks already limit the keys, so merging them into nothing cannot fail.
        metadata: match get_metadata(p, "metadata") {
            Some(u) => apply_metadata(&Metadata::new(), u, "metadata")?,
            None => Metadata::new(),
        },
        category: match get_str(p, "category") {
            Some("promotional") => Category::Promotional,
            _ => Category::Paid,
        },
        name: get_str(p, "name")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    })
}

/// `POST /v1/billing/credit_grants`, with its parameters checked by [`draft`].
pub fn create(ctx: &mut Ctx, d: Draft) -> StripeResult<Body> {
    let customer = customers::lookup_param(ctx.tenant, d.customer_id, "customer")?;
    let effective_at = d.effective_at?;
    let expires_at = d.expires_at?;
    let effective = effective_at.unwrap_or_else(|| ctx.tenant.now_for(customer));
    if let Some(exp) = expires_at {
        if exp <= effective {
            return Err(StripeError::invalid(
                "The expires_at timestamp must be after the effective_at timestamp.",
            )
            .param("expires_at"));
        }
    }
    let key = ctx.tenant.create_lot(NewLot {
        customer,
        currency: d.currency,
        amount: Decimal::from(d.value),
        category: d.category,
        applicability: d.applicability,
        priority: Some(d.priority),
        name: d.name,
        metadata: d.metadata,
        effective_at,
        expires_at,
        origin: LotOrigin::Direct,
    });
    Ok(respond(ctx, key))
}

/// Reads `applicability_config[scope]`: exactly one of `price_type` and `prices`.
fn applicability(p: &crate::form::Params) -> StripeResult<Applicability> {
    let scope = get_obj(p, "applicability_config").and_then(|a| get_obj(a, "scope"));
    scope_param(scope, "applicability_config[scope]")
}

/// A validated scope hash (`{price_type}` or `{prices: [{id}]}`) named `param`: exactly one of the
/// two, as on a grant's `applicability_config[scope]` and the summary's `filter[applicability_scope]`.
pub fn scope_param(
    scope: Option<&crate::form::Params>,
    param: &str,
) -> StripeResult<Applicability> {
    let scope = scope.ok_or_else(|| StripeError::missing_param(param))?;
    let price_type = get_str(scope, "price_type").filter(|s| !s.is_empty());
    let prices: Vec<String> = scope
        .get("prices")
        .map(|n| {
            list_items(n)
                .into_iter()
                .filter_map(|item| match item {
                    Node::Map(m) => get_str(m, "id").map(str::to_string),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    match (price_type, prices.is_empty()) {
        (Some(_), false) => Err(StripeError::invalid(
            "You may only specify one of these parameters: price_type, prices.",
        )
        .param(param)),
        (Some(_), true) => Ok(Applicability::Metered),
        (None, false) => {
            if let Some(bad) = prices.iter().position(|id| id.is_empty()) {
                return Err(StripeError::missing_param(&format!(
                    "{param}[prices][{bad}][id]"
                )));
            }
            Ok(Applicability::Prices(prices))
        }
        (None, true) => Err(StripeError::invalid(
            "You must specify exactly one of these parameters: price_type, prices.",
        )
        .param(param)),
    }
}

/// `GET /v1/billing/credit_grants/{id}`.
pub fn retrieve(ctx: &mut Ctx, id: &str) -> StripeResult<Body> {
    validate_at(ctx.params, ONLY_EXPAND, HINT, ctx.version)?;
    expand::check(&get_expand(ctx.params), EXPANDABLE)?;
    let key = lookup(ctx.tenant, id)?;
    Ok(respond(ctx, key))
}

/// `POST /v1/billing/credit_grants/{id}`: only `expires_at` and `metadata` change.
pub fn update(ctx: &mut Ctx, id: &str) -> StripeResult<Body> {
    validate_at(ctx.params, UPDATE, HINT, ctx.version)?;
    let p = ctx.params;
    expand::check(&get_expand(p), EXPANDABLE)?;
    let key = lookup(ctx.tenant, id)?;
    let lot = ctx.tenant.lot(key).expect("looked up above");
    if lot.voided_at.is_some() {
        return Err(StripeError::invalid(
            "This credit grant has been voided and cannot be updated.",
        )
        .executed());
    }
    let metadata = match get_metadata(p, "metadata") {
        Some(u) => Some(apply_metadata(&lot.metadata, u, "metadata")?),
        None => None,
    };
    let expiry = match get_str(p, "expires_at") {
        None => None,
        Some("") => Some(None),
        Some(_) => {
            let at = timestamp(get_int(p, "expires_at").unwrap_or(0), "expires_at")?;
            if at <= lot.effective_at {
                return Err(StripeError::invalid(
                    "The expires_at timestamp must be after the effective_at timestamp.",
                )
                .param("expires_at"));
            }
            Some(Some(at))
        }
    };
    if let Some(expiry) = expiry {
        ctx.tenant
            .set_lot_expiry(key, expiry)
            .map_err(|e| lot_error(e, id))?;
    }
    if let Some(m) = metadata {
        ctx.tenant
            .set_lot_metadata(key, m)
            .map_err(|e| lot_error(e, id))?;
    }
    Ok(respond(ctx, key))
}

/// `POST /v1/billing/credit_grants/{id}/expire`.
pub fn expire(ctx: &mut Ctx, id: &str) -> StripeResult<Body> {
    validate_at(ctx.params, ONLY_EXPAND, HINT, ctx.version)?;
    expand::check(&get_expand(ctx.params), EXPANDABLE)?;
    let key = lookup(ctx.tenant, id)?;
    ctx.tenant.expire_lot(key).map_err(|e| lot_error(e, id))?;
    Ok(respond(ctx, key))
}

/// `POST /v1/billing/credit_grants/{id}/void`.
pub fn void(ctx: &mut Ctx, id: &str) -> StripeResult<Body> {
    validate_at(ctx.params, ONLY_EXPAND, HINT, ctx.version)?;
    expand::check(&get_expand(ctx.params), EXPANDABLE)?;
    let key = lookup(ctx.tenant, id)?;
    ctx.tenant.void_lot(key).map_err(|e| lot_error(e, id))?;
    Ok(respond(ctx, key))
}

/// `GET /v1/billing/credit_grants`, optionally for one customer and a `created` range.
pub fn list(ctx: &mut Ctx) -> StripeResult<Body> {
    validate_at(ctx.params, LIST, HINT, ctx.version)?;
    let expand_paths = get_expand(ctx.params);
    expand::check(&expand_paths, LIST_EXPANDABLE)?;
    let t = &*ctx.tenant;
    let version = ctx.version;
    let page = list::page(ctx.params, "credit grant", |id| {
        ids::key_of(id, ids::CREDIT_GRANT).filter(|k| t.lot(*k).is_some())
    })?;
    let created = list::TimeRange::read(ctx.params, "created");
    let created_of = |k: Key| t.lot(k).map_or(i64::MIN, |l| l.created);
    let in_range = |k: Key| created.is_none_or(|r| r.contains(created_of(k)));
    let (keys, more) = match get_str(ctx.params, "customer").filter(|s| !s.is_empty()) {
        Some(id) => {
            let customer = super::transactions::customer_param(t, Some(id))?;
            let set = t.lot_keys_of(customer);
            // One customer's grants live on its one clock and, unless a native subscription
            // applied some of them later under older keys, got fresh keys as they were made: then
            // `created` grows with the key and the filter is a key range. Otherwise it is checked
            // along the walk.
            let fresh_keys = !t.has_subscriptions(customer);
            let page = match created {
                Some(r) if fresh_keys => page.within(r.keys(|a, b| set.range((a, b)), created_of)),
                _ => page,
            };
            list::paginate(|a, b| set.range((a, b)), &page, in_range)
        }
        // Grants of customers on different clocks are not in `created` order across the tenant,
        // so the whole list checks the filter along its walk.
        None => list::paginate(|a, b| t.lots_in((a, b)).map(|l| l.key), &page, in_range),
    };
    let url = "/v1/billing/credit_grants";
    if expand_paths.is_empty() {
        let data: Vec<GrantJson> = keys
            .iter()
            .filter_map(|k| t.lot(*k))
            .map(|lot| GrantJson::of(lot, version))
            .collect();
        let body = super::pretty(
            &list::ListJson::new(data, more, url),
            1024 * (keys.len() + 1),
        );
        return Ok(Body::Json(body));
    }
    let data = keys
        .iter()
        .filter_map(|k| t.lot(*k))
        .map(|lot| render(lot, version))
        .collect();
    let mut v = list::render(data, more, url);
    super::expand_at(t, &mut v, &expand_paths, version);
    Ok(Body::Value(v))
}
