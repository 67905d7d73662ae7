//! `/v1/billing/credit_grants`: a credit grant is one lot of the model.
//!
//! Parameters and fields follow the request's API version ([`crate::wire::versions`]): `priority`
//! and price scopes from 2025-02-24.acacia, `category` optional from 2025-10-29.clover,
//! `customer_account` from 2025-12-15.clover.

use rust_decimal::Decimal;
use serde::Serialize;

use super::catalog::no_such_price;
use super::list::{self, ListJson, PageRequest, TimeRange};
use super::op::{Body, Expand, Input, Operation};
use super::{customers, ids};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::money::to_minor_i64;
use crate::model::{
    Applicability, Category, Currency, Lot, LotError, LotOrigin, Metadata, NewLot, ScopedPrice,
    Tenant,
};
use crate::time::{to_secs, Nanos};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    apply_metadata, currency, get_int, get_metadata, get_obj, get_str, in_range, list_items,
    new_metadata, opt, req, timestamp, validate_at, Field, MetadataUpdate, Spec, EXPAND,
    LIST_FIELDS,
};
use crate::wire::versions::{Change, Version};

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

/// `{monetary: {currency, value}, type: "monetary"}`, serialized without an intermediate `Value`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AmountJson {
    monetary: MonetaryJson,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Clone, Copy, Serialize)]
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

/// A lot as Stripe's `billing.credit_grant`, field by field in Stripe's order. Answers without
/// `expand[]` are serialized straight from it: building a `Value` tree first (a hash map and a
/// string per key) cost more than the rest of a retrieve put together. Fields a version does not
/// have are left out of its answers.
#[derive(Serialize)]
pub struct GrantJson<'a> {
    id: ids::IdText,
    object: &'static str,
    amount: AmountJson,
    applicability_config: ApplicabilityJson<'a>,
    category: &'static str,
    created: i64,
    customer: ids::IdText,
    #[serde(skip_serializing_if = "Shown::hidden")]
    customer_account: Shown<Option<&'static str>>,
    effective_at: i64,
    expires_at: Option<i64>,
    livemode: bool,
    metadata: &'a Metadata,
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Shown::hidden")]
    priority: Shown<Option<i64>>,
    test_clock: Option<ids::IdText>,
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
                prices: prices.iter().map(|p| PriceJson { id: &p.id }).collect(),
            },
        };
        GrantJson {
            id: ids::text_of(ids::CREDIT_GRANT, lot.key),
            object: "billing.credit_grant",
            amount: AmountJson::new(lot.currency, lot.amount),
            applicability_config: ApplicabilityJson { scope },
            category: match lot.category {
                Category::Paid => "paid",
                Category::Promotional => "promotional",
            },
            created: to_secs(lot.created),
            customer: ids::text_of(ids::CUSTOMER, lot.customer),
            customer_account: Shown::from(None, version, Change::CustomerAccount),
            effective_at: to_secs(lot.effective_at),
            expires_at: lot.expires_at.map(to_secs),
            livemode: false,
            metadata: &lot.metadata,
            name: lot.name.as_deref(),
            // A native grant's priority may be any integer; Stripe's are 0–100, so the Stripe view
            // shows the nearest (the ledger still orders by the real value).
            priority: Shown::from(
                lot.priority.map(|p| p.clamp(0, 100)),
                version,
                Change::Priority,
            ),
            test_clock: lot.test_clock.map(|k| ids::text_of(ids::TEST_CLOCK, k)),
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

/// What the operations on one grant answer: the grant, as the request's version shows it.
pub struct Answer {
    key: Key,
    version: Version,
    expand: Expand,
}

/// The grant of `out` as the answer.
fn respond(out: Answer, t: &Tenant) -> Body {
    Body::of(
        &GrantJson::of(
            t.lot(out.key).expect("made or looked up above"),
            out.version,
        ),
        out.expand,
        1024,
    )
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

/// `POST /v1/billing/credit_grants`.
///
/// Stripe reports the first error in a fixed order: the parameter checks, then the customer (which
/// needs the tenant), then timestamps. `parse` runs everything before the customer lookup and
/// stops at the first error; the timestamps need no tenant either and are worked out there too, but
/// kept as results, so that `apply` reports them only after the lookup succeeded.
pub struct Create {
    customer_id: String,
    currency: Currency,
    value: i64,
    applicability: Applicability,
    priority: i64,
    effective_at: StripeResult<Option<Nanos>>,
    expires_at: StripeResult<Option<Nanos>>,
    metadata: Metadata,
    category: Category,
    name: Option<String>,
    version: Version,
    expand: Expand,
}

impl Operation for Create {
    type Output = Answer;

    /// Checks a create's parameters (everything but the customer's existence and the times that
    /// depend on its clock) as the request's version knows them.
    fn parse(input: &Input) -> StripeResult<Self> {
        let (p, version) = (input.params, input.version);
        validate_at(p, CREATE, HINT, version)?;
        let expand = Expand::read(p, EXPANDABLE, version)?;

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

        Ok(Create {
            customer_id: customer_id.to_string(),
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
            metadata: new_metadata(p, "metadata", "metadata")?,
            category: match get_str(p, "category") {
                Some("promotional") => Category::Promotional,
                _ => Category::Paid,
            },
            name: get_str(p, "name")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            version,
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Answer> {
        let customer = customers::lookup_param(t, &self.customer_id, "customer")?;
        check_scope_prices(t, &self.applicability, "applicability_config[scope]")?;
        let effective_at = self.effective_at?;
        let expires_at = self.expires_at?;
        let effective = effective_at.unwrap_or_else(|| t.now_for(customer));
        if let Some(exp) = expires_at {
            if exp <= effective {
                return Err(StripeError::invalid(
                    "The expires_at timestamp must be after the effective_at timestamp.",
                )
                .param("expires_at"));
            }
        }
        let key = t.create_lot(NewLot {
            customer,
            currency: self.currency,
            amount: Decimal::from(self.value),
            category: self.category,
            applicability: self.applicability,
            priority: Some(self.priority),
            name: self.name,
            metadata: self.metadata,
            effective_at,
            expires_at,
            origin: LotOrigin::Direct,
        });
        Ok(Answer {
            key,
            version: self.version,
            expand: self.expand,
        })
    }

    fn render(out: Answer, t: &Tenant) -> Body {
        respond(out, t)
    }
}

/// Reads `applicability_config[scope]`: exactly one of `price_type` and `prices`.
fn applicability(p: &Params) -> StripeResult<Applicability> {
    let scope = get_obj(p, "applicability_config").and_then(|a| get_obj(a, "scope"));
    scope_param(scope, "applicability_config[scope]")
}

/// A validated scope hash (`{price_type}` or `{prices: [{id}]}`) named `param`: exactly one of the
/// two, as on a grant's `applicability_config[scope]` and the summary's `filter[applicability_scope]`.
pub fn scope_param(scope: Option<&Params>, param: &str) -> StripeResult<Applicability> {
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
            Ok(Applicability::Prices(
                prices
                    .into_iter()
                    .map(|id| ScopedPrice {
                        key: ids::key_of(&id, ids::PRICE),
                        id,
                    })
                    .collect(),
            ))
        }
        (None, true) => Err(StripeError::invalid(
            "You must specify exactly one of these parameters: price_type, prices.",
        )
        .param(param)),
    }
}

/// Checks a scope's prices against the catalogue, in the order they were sent: each must exist
/// (`No such price`, 400) and be metered with a meter, as only such prices bill the invoice lines
/// credits pay. `param` names the scope hash; errors name the price's own `[prices][N][id]`.
pub fn check_scope_prices(t: &Tenant, scope: &Applicability, param: &str) -> StripeResult<()> {
    let Applicability::Prices(prices) = scope else {
        return Ok(());
    };
    // The path is spelled only for an error: a create's scope is checked on every request.
    let at = |i: usize| format!("{param}[prices][{i}][id]");
    for (i, scoped) in prices.iter().enumerate() {
        let price = scoped
            .key
            .and_then(|k| t.price(k))
            .ok_or_else(|| no_such_price(&scoped.id, &at(i), 400))?;
        if !price.is_metered() || price.meter().is_none() {
            return Err(StripeError::invalid(format!(
                "The price specified ({}) is not a metered price with a billing meter. Credit grants currently only apply to metered prices that have a Billing Meter attached to them.",
                shorten(&scoped.id)
            ))
            .param(at(i)));
        }
    }
    Ok(())
}

/// A request about one grant named in the path, with only `expand[]` as parameters.
struct OneGrant {
    id: String,
    version: Version,
    expand: Expand,
}

impl OneGrant {
    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, ONLY_EXPAND, HINT, input.version)?;
        Ok(OneGrant {
            id: input.id().to_string(),
            version: input.version,
            expand: Expand::read(input.params, EXPANDABLE, input.version)?,
        })
    }

    fn shown(self, key: Key) -> Answer {
        Answer {
            key,
            version: self.version,
            expand: self.expand,
        }
    }
}

/// `GET /v1/billing/credit_grants/{id}`.
pub struct Retrieve(OneGrant);

impl Operation for Retrieve {
    type Output = Answer;

    fn parse(input: &Input) -> StripeResult<Self> {
        OneGrant::parse(input).map(Retrieve)
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Answer> {
        let key = lookup(t, &self.0.id)?;
        Ok(self.0.shown(key))
    }

    fn render(out: Answer, t: &Tenant) -> Body {
        respond(out, t)
    }
}

/// `POST /v1/billing/credit_grants/{id}`: only `expires_at` and `metadata` change.
pub struct Update {
    id: String,
    metadata: Option<MetadataUpdate>,
    /// `None`: unchanged; `Some(Ok(None))`: never expires; `Some(Ok(Some(at)))`: a new expiry.
    /// Checked after the grant is found.
    expires_at: Option<StripeResult<Option<Nanos>>>,
    version: Version,
    expand: Expand,
}

impl Operation for Update {
    type Output = Answer;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, UPDATE, HINT, input.version)?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        Ok(Update {
            id: input.id().to_string(),
            metadata: get_metadata(p, "metadata"),
            expires_at: match get_str(p, "expires_at") {
                None => None,
                Some("") => Some(Ok(None)),
                Some(_) => {
                    Some(timestamp(get_int(p, "expires_at").unwrap_or(0), "expires_at").map(Some))
                }
            },
            version: input.version,
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Answer> {
        let id = &self.id;
        let key = lookup(t, id)?;
        let lot = t.lot(key).expect("looked up above");
        if lot.voided_at.is_some() {
            return Err(StripeError::invalid(
                "This credit grant has been voided and cannot be updated.",
            )
            .executed());
        }
        let metadata = match self.metadata {
            Some(u) => Some(apply_metadata(&lot.metadata, u, "metadata")?),
            None => None,
        };
        let expiry = match self.expires_at {
            None => None,
            Some(at) => {
                let at = at?;
                if at.is_some_and(|at| at <= lot.effective_at) {
                    return Err(StripeError::invalid(
                        "The expires_at timestamp must be after the effective_at timestamp.",
                    )
                    .param("expires_at"));
                }
                Some(at)
            }
        };
        if let Some(expiry) = expiry {
            t.set_lot_expiry(key, expiry)
                .map_err(|e| lot_error(e, id))?;
        }
        if let Some(m) = metadata {
            t.set_lot_metadata(key, m).map_err(|e| lot_error(e, id))?;
        }
        Ok(Answer {
            key,
            version: self.version,
            expand: self.expand,
        })
    }

    fn render(out: Answer, t: &Tenant) -> Body {
        respond(out, t)
    }
}

/// `POST /v1/billing/credit_grants/{id}/expire`.
pub struct Expire(OneGrant);

impl Operation for Expire {
    type Output = Answer;

    fn parse(input: &Input) -> StripeResult<Self> {
        OneGrant::parse(input).map(Expire)
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Answer> {
        let key = lookup(t, &self.0.id)?;
        t.expire_lot(key).map_err(|e| lot_error(e, &self.0.id))?;
        Ok(self.0.shown(key))
    }

    fn render(out: Answer, t: &Tenant) -> Body {
        respond(out, t)
    }
}

/// `POST /v1/billing/credit_grants/{id}/void`.
pub struct Void(OneGrant);

impl Operation for Void {
    type Output = Answer;

    fn parse(input: &Input) -> StripeResult<Self> {
        OneGrant::parse(input).map(Void)
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Answer> {
        let key = lookup(t, &self.0.id)?;
        t.void_lot(key).map_err(|e| lot_error(e, &self.0.id))?;
        Ok(self.0.shown(key))
    }

    fn render(out: Answer, t: &Tenant) -> Body {
        respond(out, t)
    }
}

/// `GET /v1/billing/credit_grants`, optionally for one customer and a `created` range.
pub struct List {
    page: PageRequest,
    created: Option<TimeRange>,
    customer: Option<String>,
    version: Version,
    expand: Expand,
}

/// A page of grants, as the request's version shows them.
pub struct GrantPage {
    keys: Vec<Key>,
    more: bool,
    version: Version,
    expand: Expand,
}

impl Operation for List {
    type Output = GrantPage;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, LIST, HINT, input.version)?;
        let expand = Expand::read(p, LIST_EXPANDABLE, input.version)?;
        Ok(List {
            page: PageRequest::read(p)?,
            created: TimeRange::read(p, "created"),
            customer: get_str(p, "customer")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            version: input.version,
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<GrantPage> {
        let t = &*t;
        let page = self.page.resolve("credit grant", |id| {
            ids::key_of(id, ids::CREDIT_GRANT).filter(|k| t.lot(*k).is_some())
        })?;
        let created = self.created;
        let created_of = |k: Key| t.lot(k).map_or(i64::MIN, |l| l.created);
        let in_range = |k: Key| created.is_none_or(|r| r.contains(created_of(k)));
        let (keys, more) = match &self.customer {
            Some(id) => {
                let customer = customers::ledger_owner(t, id)?;
                let set = t.lot_keys_of(customer);
                // One customer's grants live on its one clock and, unless a native subscription
                // applied some of them later under older keys, got fresh keys as they were made:
                // then `created` grows with the key and the filter is a key range. Otherwise it is
                // checked along the walk.
                let fresh_keys = !t.has_subscriptions(customer);
                let page = match created {
                    Some(r) if fresh_keys => {
                        page.within(r.keys(|a, b| set.range((a, b)), created_of))
                    }
                    _ => page,
                };
                list::paginate(|a, b| set.range((a, b)), &page, in_range)
            }
            // As Stripe's lists of everything, the whole list leaves out what belongs to a test
            // clock (the `customer` filter shows it). Grants of customers on different clocks are
            // not in `created` order across the tenant, so it checks the filter along its walk.
            None => list::paginate(
                |a, b| {
                    t.lots_in((a, b))
                        .filter(|l| l.test_clock.is_none())
                        .map(|l| l.key)
                },
                &page,
                in_range,
            ),
        };
        Ok(GrantPage {
            keys,
            more,
            version: self.version,
            expand: self.expand,
        })
    }

    fn render(page: GrantPage, t: &Tenant) -> Body {
        let data: Vec<GrantJson> = page
            .keys
            .iter()
            .filter_map(|k| t.lot(*k))
            .map(|lot| GrantJson::of(lot, page.version))
            .collect();
        Body::of(
            &ListJson::new(data, page.more, "/v1/billing/credit_grants"),
            page.expand,
            1024 * (page.keys.len() + 1),
        )
    }
}
