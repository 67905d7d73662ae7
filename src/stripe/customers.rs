//! `/v1/customers`: the customer object with the fields SDK users set up (addresses, invoice
//! settings, tax status, balances), list filters including `created`, and search. What needs payment
//! methods, tax calculation or cash balances is refused clearly.

use std::ops::Bound;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::error::{StripeError, StripeResult};
use super::list::TimeRange;
use super::params::{
    apply_metadata, cannot_unset, get_expand, get_int, get_metadata, get_nullable_str, get_obj,
    get_str, in_range, join, list_items, opt, req, validate, Field, Spec, EXPAND, LIST_FIELDS,
};
use super::search::{self, Found, Kind, Schema};
use super::{expand, ids, list, Ctx};
use crate::form::{Node, Params};
use crate::ids::{fnv1a64, Key};
use crate::model::{
    Address, Customer, CustomerChanges, InvoiceSettings, Metadata, NewCustomer, Profile,
    RenderingOptions, Shipping, TaxExempt, Tenant,
};
use crate::time::to_secs;

const HINT: &str =
    " (it needs payment methods, tax calculation or cash balances, which the emulator does not model)";

const ADDRESS: &[Field] = &[
    opt("city", Spec::Str(5000)),
    opt("country", Spec::Str(5000)),
    opt("line1", Spec::Str(5000)),
    opt("line2", Spec::Str(5000)),
    opt("postal_code", Spec::Str(5000)),
    opt("state", Spec::Str(5000)),
];
const SHIPPING: &[Field] = &[
    req("address", Spec::Obj(ADDRESS)),
    req("name", Spec::Str(5000)),
    opt("phone", Spec::Str(5000)),
];
const CUSTOM_FIELD: &[Field] = &[req("name", Spec::Str(40)), req("value", Spec::Str(140))];
const RENDERING_OPTIONS: &[Field] = &[
    opt(
        "amount_tax_display",
        Spec::Enum(&["", "exclude_tax", "include_inclusive_tax"]),
    ),
    opt("template", Spec::Str(5000)),
];
const INVOICE_SETTINGS: &[Field] = &[
    opt("custom_fields", Spec::Array(&Spec::Obj(CUSTOM_FIELD), 4)),
    opt("default_payment_method", Spec::Str(5000)),
    opt("footer", Spec::Str(5000)),
    opt("rendering_options", Spec::Obj(RENDERING_OPTIONS)),
];

/// Stripe documents no bound on `preferred_locales`; this one keeps a request's list reasonable.
const MAX_LOCALES: usize = 100;

/// What both create and update accept, in Stripe's (alphabetical) order.
const EDITABLE: [Field; 19] = [
    opt("address", Spec::Obj(ADDRESS)),
    opt("balance", Spec::Int),
    opt("business_name", Spec::Str(150)),
    opt("cash_balance", Spec::Unsupported),
    opt("description", Spec::Str(5000)),
    opt("email", Spec::Str(512)),
    EXPAND,
    opt("individual_name", Spec::Str(150)),
    opt("invoice_prefix", Spec::Str(5000)),
    opt("invoice_settings", Spec::Obj(INVOICE_SETTINGS)),
    opt("metadata", Spec::Metadata),
    opt("name", Spec::Str(256)),
    opt("next_invoice_sequence", Spec::Int),
    opt("phone", Spec::Str(20)),
    opt(
        "preferred_locales",
        Spec::Array(&Spec::Str(5000), MAX_LOCALES),
    ),
    opt("shipping", Spec::Obj(SHIPPING)),
    opt("source", Spec::Unsupported),
    opt("tax", Spec::Unsupported),
    opt("tax_exempt", Spec::Enum(&["", "exempt", "none", "reverse"])),
];

const CREATE: &[Field] = &join::<19, 3, 22>(
    EDITABLE,
    [
        opt("payment_method", Spec::Unsupported),
        opt("tax_id_data", Spec::Unsupported),
        opt("test_clock", Spec::Str(5000)),
    ],
);

const UPDATE: &[Field] = &join::<19, 1, 20>(EDITABLE, [opt("default_source", Spec::Unsupported)]);

const LIST: &[Field] = &[
    opt("created", Spec::Range),
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    opt("email", Spec::Str(512)),
    opt("test_clock", Spec::Str(5000)),
];

const SEARCH: &[Field] = &[
    EXPAND,
    opt("limit", Spec::Int),
    opt("page", Spec::Str(5000)),
    req("query", Spec::Str(5000)),
];

/// The fields Stripe lets customers be searched on.
const SEARCH_SCHEMA: Schema = Schema {
    resource: "customers",
    fields: &[
        ("created", Kind::Numeric),
        ("email", Kind::String),
        ("name", Kind::String),
        ("phone", Kind::String),
    ],
    metadata: true,
};

const RETRIEVE: &[Field] = &[EXPAND];
const EXPANDABLE: &[&str] = &["test_clock"];
const LIST_EXPANDABLE: &[&str] = &["data.test_clock"];
const SEARCH_EXPANDABLE: &[&str] = &["data.test_clock", "total_count"];
const SEARCH_URL: &str = "/v1/customers/search";

/// Renders a customer (or the `deleted: true` stub of a deleted one), fields in Stripe's order.
/// `business_name` and `individual_name` appear only when set, as in Stripe's own examples.
pub fn render(tenant: &Tenant, c: &Customer) -> Value {
    let _ = tenant;
    let id = ids::render(ids::CUSTOMER, c.key);
    if c.deleted {
        return json!({"id": id, "object": "customer", "deleted": true});
    }
    let p = &c.profile;
    let mut v = Map::new();
    let mut put = |k: &str, x: Value| {
        v.insert(k.to_string(), x);
    };
    put("id", json!(id));
    put("object", json!("customer"));
    put(
        "address",
        p.address.as_ref().map_or(Value::Null, address_json),
    );
    put("balance", json!(p.balance));
    if let Some(b) = &p.business_name {
        put("business_name", json!(b));
    }
    put("created", json!(to_secs(c.created)));
    put("currency", Value::Null);
    put("customer_account", Value::Null);
    put("default_source", Value::Null);
    put("delinquent", json!(false));
    put("description", json!(c.description));
    put("discount", Value::Null);
    put("email", json!(c.email));
    if let Some(n) = &p.individual_name {
        put("individual_name", json!(n));
    }
    put("invoice_credit_balance", json!({}));
    put("invoice_prefix", json!(p.invoice_prefix));
    put(
        "invoice_settings",
        invoice_settings_json(&p.invoice_settings),
    );
    put("livemode", json!(false));
    put("metadata", json!(c.metadata));
    put("name", json!(c.name));
    put("next_invoice_sequence", json!(p.next_invoice_sequence));
    put("phone", json!(c.phone));
    put("preferred_locales", json!(p.preferred_locales));
    put(
        "shipping",
        p.shipping.as_ref().map_or(
            Value::Null,
            |s| json!({"address": address_json(&s.address), "name": s.name, "phone": s.phone}),
        ),
    );
    put(
        "tax_exempt",
        json!(match p.tax_exempt {
            TaxExempt::None => "none",
            TaxExempt::Exempt => "exempt",
            TaxExempt::Reverse => "reverse",
        }),
    );
    put(
        "test_clock",
        json!(c.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k))),
    );
    Value::Object(v)
}

fn address_json(a: &Address) -> Value {
    json!({
        "city": a.city,
        "country": a.country,
        "line1": a.line1,
        "line2": a.line2,
        "postal_code": a.postal_code,
        "state": a.state,
    })
}

fn invoice_settings_json(s: &InvoiceSettings) -> Value {
    json!({
        "custom_fields": s.custom_fields.as_ref().map(|fields| {
            fields
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect::<Vec<_>>()
        }),
        "default_payment_method": s.default_payment_method,
        "footer": s.footer,
        "rendering_options": s.rendering_options.as_ref().map(|r| {
            json!({"amount_tax_display": r.amount_tax_display, "template": r.template})
        }),
    })
}

/// Applies the profile parameters of a validated create or update to `profile`. Hashes given
/// whole (`address`, `shipping`, `invoice_settings[rendering_options]`) replace what was there;
/// `invoice_settings` changes only the settings it names; `""` clears where Stripe allows it.
fn apply_profile(p: &Params, profile: &mut Profile) -> StripeResult<()> {
    if let Some(node) = p.get("address") {
        profile.address = match node {
            Node::Map(m) => Some(address_of(m)),
            _ => None,
        };
    }
    if let Some(node) = p.get("shipping") {
        profile.shipping = match node {
            Node::Map(m) => {
                let name = get_str(m, "name").unwrap_or("");
                if name.is_empty() {
                    return Err(cannot_unset("shipping[name]"));
                }
                Some(Shipping {
                    address: get_obj(m, "address").map(address_of).unwrap_or_default(),
                    name: name.to_string(),
                    phone: get_nullable_str(m, "phone").flatten(),
                })
            }
            _ => None,
        };
    }
    if let Some(node) = p.get("preferred_locales") {
        profile.preferred_locales = list_items(node)
            .into_iter()
            .filter_map(|n| match n {
                Node::Value(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
            .collect();
    }
    if let Some(prefix) = get_str(p, "invoice_prefix") {
        profile.invoice_prefix = invoice_prefix(prefix)?;
    }
    match p.get("invoice_settings") {
        Some(Node::Map(m)) => apply_invoice_settings(m, &mut profile.invoice_settings),
        Some(_) => profile.invoice_settings = InvoiceSettings::default(),
        None => {}
    }
    match get_str(p, "tax_exempt") {
        Some("exempt") => profile.tax_exempt = TaxExempt::Exempt,
        Some("reverse") => profile.tax_exempt = TaxExempt::Reverse,
        Some(_) => profile.tax_exempt = TaxExempt::None,
        None => {}
    }
    if let Some(n) = get_int(p, "balance") {
        profile.balance = n;
    }
    if let Some(n) = get_int(p, "next_invoice_sequence") {
        profile.next_invoice_sequence = in_range(n, 1, i64::MAX, "next_invoice_sequence")?;
    }
    if let Some(v) = get_nullable_str(p, "business_name") {
        profile.business_name = v;
    }
    if let Some(v) = get_nullable_str(p, "individual_name") {
        profile.individual_name = v;
    }
    Ok(())
}

fn address_of(m: &Params) -> Address {
    let part = |name| get_nullable_str(m, name).flatten();
    Address {
        city: part("city"),
        country: part("country"),
        line1: part("line1"),
        line2: part("line2"),
        postal_code: part("postal_code"),
        state: part("state"),
    }
}

fn apply_invoice_settings(m: &Params, s: &mut InvoiceSettings) {
    if let Some(node) = m.get("custom_fields") {
        s.custom_fields = match node {
            Node::Value(_) => None,
            _ => Some(
                list_items(node)
                    .into_iter()
                    .filter_map(|item| match item {
                        Node::Map(f) => Some((
                            get_str(f, "name").unwrap_or("").to_string(),
                            get_str(f, "value").unwrap_or("").to_string(),
                        )),
                        _ => None,
                    })
                    .collect(),
            ),
        };
    }
    if let Some(v) = get_nullable_str(m, "default_payment_method") {
        s.default_payment_method = v;
    }
    if let Some(v) = get_nullable_str(m, "footer") {
        s.footer = v;
    }
    if let Some(node) = m.get("rendering_options") {
        s.rendering_options = match node {
            Node::Map(r) => Some(RenderingOptions {
                amount_tax_display: get_nullable_str(r, "amount_tax_display").flatten(),
                template: get_nullable_str(r, "template").flatten(),
            }),
            _ => None,
        };
    }
}

/// A chosen invoice prefix: 3 to 12 upper-case letters or digits; it cannot be cleared.
fn invoice_prefix(prefix: &str) -> StripeResult<String> {
    if prefix.is_empty() {
        return Err(cannot_unset("invoice_prefix"));
    }
    let ok = (3..=12).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ok {
        return Err(StripeError::invalid(format!(
            "Invalid invoice_prefix: {}; must be 3-12 uppercase letters or numbers",
            super::error::shorten(prefix)
        ))
        .param("invoice_prefix"));
    }
    Ok(prefix.to_string())
}

/// A live customer named by `id` in parameter `param` (400), or Stripe's `No such customer`.
pub fn lookup_param(tenant: &Tenant, id: &str, param: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::CUSTOMER)
        .filter(|k| tenant.live_customer(*k).is_some())
        .ok_or_else(|| StripeError::no_such("customer", id, param, 400))
}

fn lookup_path(tenant: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::CUSTOMER)
        .filter(|k| tenant.customer(*k).is_some())
        .ok_or_else(|| StripeError::no_such("customer", id, "id", 404))
}

fn check_email(email: &Option<String>) -> StripeResult<()> {
    if let Some(e) = email {
        let ok = match e.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && !domain.is_empty() && !e.contains(char::is_whitespace)
            }
            None => false,
        };
        if !ok {
            return Err(StripeError::invalid(format!(
                "Invalid email address: {}",
                super::error::shorten(e)
            ))
            .param("email")
            .code("email_invalid"));
        }
    }
    Ok(())
}

fn respond(ctx: &Ctx, key: Key) -> Value {
    let expand = get_expand(ctx.params);
    let mut v = render(
        ctx.tenant,
        ctx.tenant.customer(key).expect("looked up by the caller"),
    );
    super::expand_in(ctx.tenant, &mut v, &expand);
    v
}

/// `POST /v1/customers`.
pub fn create(ctx: &mut Ctx) -> StripeResult<Value> {
    validate(ctx.params, CREATE, HINT)?;
    expand::check(&get_expand(ctx.params), EXPANDABLE)?;
    let p = ctx.params;
    let email = get_nullable_str(p, "email").flatten();
    check_email(&email)?;
    let test_clock = match get_str(p, "test_clock").filter(|s| !s.is_empty()) {
        Some(id) => Some(
            ids::key_of(id, ids::TEST_CLOCK)
                .filter(|k| ctx.tenant.test_clock(*k).is_some())
                .ok_or_else(|| StripeError::no_such("test clock", id, "test_clock", 400))?,
        ),
        None => None,
    };
    let metadata = match get_metadata(p, "metadata") {
        Some(u) => apply_metadata(&Metadata::new(), u, "metadata")?,
        None => Metadata::new(),
    };
    let mut profile = Profile::default();
    apply_profile(p, &mut profile)?;
    let key = ctx.tenant.create_customer_with(
        NewCustomer {
            email,
            name: get_nullable_str(p, "name").flatten(),
            description: get_nullable_str(p, "description").flatten(),
            phone: get_nullable_str(p, "phone").flatten(),
            external_id: None,
            metadata,
            test_clock,
        },
        profile,
    );
    Ok(respond(ctx, key))
}

/// `GET /v1/customers/{id}`.
pub fn retrieve(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, RETRIEVE, HINT)?;
    expand::check(&get_expand(ctx.params), EXPANDABLE)?;
    let key = lookup_path(ctx.tenant, id)?;
    Ok(respond(ctx, key))
}

/// `POST /v1/customers/{id}`.
pub fn update(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, UPDATE, HINT)?;
    expand::check(&get_expand(ctx.params), EXPANDABLE)?;
    let key = lookup_path(ctx.tenant, id)?;
    let (existing, mut profile) = match ctx.tenant.live_customer(key) {
        Some(c) => (c.metadata.clone(), c.profile.clone()),
        None => return Err(StripeError::no_such("customer", id, "id", 404)),
    };
    let p = ctx.params;
    let email = get_nullable_str(p, "email");
    if let Some(e) = &email {
        check_email(e)?;
    }
    let metadata = match get_metadata(p, "metadata") {
        Some(u) => Some(apply_metadata(&existing, u, "metadata")?),
        None => None,
    };
    apply_profile(p, &mut profile)?;
    ctx.tenant.update_customer(
        key,
        CustomerChanges {
            email,
            name: get_nullable_str(p, "name"),
            description: get_nullable_str(p, "description"),
            phone: get_nullable_str(p, "phone"),
            external_id: None,
            metadata,
            profile: Some(profile),
        },
    );
    Ok(respond(ctx, key))
}

/// `DELETE /v1/customers/{id}`.
pub fn delete(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, &[], HINT)?;
    let key = ids::key_of(id, ids::CUSTOMER)
        .filter(|k| ctx.tenant.live_customer(*k).is_some())
        .ok_or_else(|| StripeError::no_such("customer", id, "id", 404))?;
    ctx.tenant.delete_customer(key);
    Ok(json!({"id": id, "object": "customer", "deleted": true}))
}

/// `GET /v1/customers`: live customers, newest first; those on a test clock only with `test_clock`.
pub fn list(ctx: &mut Ctx) -> StripeResult<Value> {
    validate(ctx.params, LIST, HINT)?;
    let expand_paths = get_expand(ctx.params);
    expand::check(&expand_paths, LIST_EXPANDABLE)?;
    let t = &*ctx.tenant;
    let page = list::page(ctx.params, "customer", |id| {
        ids::key_of(id, ids::CUSTOMER).filter(|k| t.customer(*k).is_some())
    })?;
    let index = match get_str(ctx.params, "test_clock").filter(|s| !s.is_empty()) {
        Some(id) => match ids::key_of(id, ids::TEST_CLOCK) {
            Some(k) if t.test_clock(k).is_some() => t.customers_on_clock(k),
            _ => return Err(StripeError::no_such("test clock", id, "test_clock", 400)),
        },
        None => t.customers_off_clocks(),
    };
    let created = TimeRange::read(ctx.params, "created");
    let created_of = |k: Key| t.customer(k).map_or(i64::MIN, |c| c.created);
    // Every customer of one index lives on one clock and got a fresh key when it was made, so
    // `created` grows with the key: the filter is a key range. The check along the walk only
    // guards that reasoning.
    let page = match created {
        Some(r) => page.within(r.keys(|a, b| index.range((a, b)), created_of)),
        None => page,
    };
    let in_range = |k: Key| created.is_none_or(|r| r.contains(created_of(k)));
    let email = get_str(ctx.params, "email");
    let by_email = email.map(|e| t.customers_with_email(e));
    let (keys, more) = match by_email {
        Some(set) => list::paginate(
            |a, b| set.range((a, b)),
            &page,
            |k| index.contains(k) && in_range(k),
        ),
        None => list::paginate(|a, b| index.range((a, b)), &page, in_range),
    };
    let data = keys
        .iter()
        .filter_map(|k| t.customer(*k))
        .map(|c| render(t, c))
        .collect();
    let mut v = list::render(data, more, "/v1/customers");
    super::expand_in(t, &mut v, &expand_paths);
    Ok(v)
}

/// `GET /v1/customers/search`: live customers matching a query in Stripe's search language
/// (see [`search`]), newest first, on test clocks or not. Each page walks the customers from the
/// cursor down until it has `limit + 1` matches.
pub fn search(ctx: &mut Ctx) -> StripeResult<Value> {
    validate(ctx.params, SEARCH, HINT)?;
    let expand_paths = get_expand(ctx.params);
    expand::check(&expand_paths, SEARCH_EXPANDABLE)?;
    let p = ctx.params;
    let text = get_str(p, "query").unwrap_or("");
    if text.is_empty() {
        return Err(StripeError::missing_param("query"));
    }
    let query = search::parse(text, &SEARCH_SCHEMA)
        .map_err(|e| StripeError::invalid(e.to_string()).param("query"))?;
    let limit = match get_int(p, "limit") {
        None => 10,
        Some(n) => in_range(n, 1, 100, "limit")? as usize,
    };
    let after = match get_str(p, "page").filter(|s| !s.is_empty()) {
        Some(token) => Bound::Excluded(page_cursor(token, text)?),
        None => Bound::Unbounded,
    };
    let t = &*ctx.tenant;
    let hit = |c: &Customer| !c.deleted && query.matches(|f| field_of(c, f));
    let mut keys = Vec::with_capacity(limit);
    let mut more = false;
    for c in t.customers_in((Bound::Unbounded, after)).rev() {
        if hit(c) {
            if keys.len() == limit {
                more = true;
                break;
            }
            keys.push(c.key);
        }
    }
    let next_page = match (more, keys.last()) {
        (true, Some(last)) => json!(page_token(*last, text)),
        _ => Value::Null,
    };
    let data: Vec<Value> = keys
        .iter()
        .filter_map(|k| t.customer(*k))
        .map(|c| render(t, c))
        .collect();
    let mut v = Map::new();
    v.insert("object".into(), json!("search_result"));
    v.insert("data".into(), Value::Array(data));
    v.insert("has_more".into(), json!(more));
    v.insert("next_page".into(), next_page);
    if expand_paths.iter().any(|e| e == "total_count") {
        let total = t.customers().filter(|c| hit(c)).count();
        v.insert("total_count".into(), json!(total));
    }
    v.insert("url".into(), json!(SEARCH_URL));
    let mut v = Value::Object(v);
    super::expand_in(t, &mut v, &expand_paths);
    Ok(v)
}

/// A customer's value for a search field.
fn field_of<'a>(c: &'a Customer, f: &search::Field) -> Found<'a> {
    let text = |s: &'a Option<String>| s.as_deref().map_or(Found::Missing, Found::Str);
    match f {
        search::Field::Named("email") => text(&c.email),
        search::Field::Named("name") => text(&c.name),
        search::Field::Named("phone") => text(&c.phone),
        search::Field::Named("created") => Found::Num(to_secs(c.created)),
        search::Field::Named(_) => Found::Missing,
        search::Field::Metadata(k) => c.metadata.get(k).map_or(Found::Missing, |v| Found::Str(v)),
    }
}

/// `next_page`: the last key shown and a hash of the query, so that a cursor is only taken back
/// by the search that made it.
fn page_token(last: Key, query: &str) -> String {
    let mut bytes = [0u8; 24];
    bytes[..16].copy_from_slice(&last.to_be_bytes());
    bytes[16..].copy_from_slice(&query_hash(query).to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key a `page` cursor continues after.
fn page_cursor(token: &str, query: &str) -> StripeResult<Key> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .filter(|b| b.len() == 24);
    let key = bytes.and_then(|b| {
        let mut key = [0u8; 16];
        let mut hash = [0u8; 8];
        key.copy_from_slice(&b[..16]);
        hash.copy_from_slice(&b[16..]);
        (u64::from_be_bytes(hash) == query_hash(query)).then(|| Key::from_be_bytes(key))
    });
    key.ok_or_else(|| {
        StripeError::invalid(format!(
            "Invalid page: {} is not a cursor of this search. Pass the next_page of the previous page, with the same query.",
            super::error::shorten(token)
        ))
        .param("page")
    })
}

fn query_hash(query: &str) -> u64 {
    fnv1a64(0xcbf2_9ce4_8422_2325, query.as_bytes())
}
