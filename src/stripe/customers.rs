//! `/v1/customers`: the fields a credits user needs; other documented fields are refused clearly.

use serde_json::{json, Value};

use super::error::{StripeError, StripeResult};
use super::params::{
    apply_metadata, get_expand, get_metadata, get_nullable_str, get_str, join, opt, validate,
    Field, Spec, EXPAND, LIST_FIELDS,
};
use super::{expand, ids, list, Ctx};
use crate::ids::{fnv1a64, Key};
use crate::model::{Customer, CustomerChanges, Metadata, NewCustomer, Tenant};
use crate::time::to_secs;

const HINT: &str = " (customers support email, name, description, phone, metadata and test_clock)";

const UNSUPPORTED_COMMON: [Field; 13] = [
    opt("address", Spec::Unsupported),
    opt("balance", Spec::Unsupported),
    opt("business_name", Spec::Unsupported),
    opt("cash_balance", Spec::Unsupported),
    opt("individual_name", Spec::Unsupported),
    opt("invoice_prefix", Spec::Unsupported),
    opt("invoice_settings", Spec::Unsupported),
    opt("next_invoice_sequence", Spec::Unsupported),
    opt("preferred_locales", Spec::Unsupported),
    opt("shipping", Spec::Unsupported),
    opt("source", Spec::Unsupported),
    opt("tax", Spec::Unsupported),
    opt("tax_exempt", Spec::Unsupported),
];

/// What both create and update accept.
const EDITABLE: [Field; 6] = [
    opt("description", Spec::Str(5000)),
    opt("email", Spec::Str(512)),
    EXPAND,
    opt("metadata", Spec::Metadata),
    opt("name", Spec::Str(256)),
    opt("phone", Spec::Str(20)),
];

const CREATE: &[Field] = &join::<9, 13, 22>(
    join::<6, 3, 9>(
        EDITABLE,
        [
            opt("test_clock", Spec::Str(5000)),
            opt("payment_method", Spec::Unsupported),
            opt("tax_id_data", Spec::Unsupported),
        ],
    ),
    UNSUPPORTED_COMMON,
);

const UPDATE: &[Field] = &join::<7, 13, 20>(
    join::<6, 1, 7>(EDITABLE, [opt("default_source", Spec::Unsupported)]),
    UNSUPPORTED_COMMON,
);

const LIST: &[Field] = &[
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    opt("email", Spec::Str(512)),
    opt("test_clock", Spec::Str(5000)),
    opt("created", Spec::Unsupported),
];

const RETRIEVE: &[Field] = &[EXPAND];
const EXPANDABLE: &[&str] = &["test_clock"];
const LIST_EXPANDABLE: &[&str] = &["data.test_clock"];

/// Renders a customer (or the `deleted: true` stub of a deleted one).
pub fn render(tenant: &Tenant, c: &Customer) -> Value {
    let _ = tenant;
    let id = ids::render(ids::CUSTOMER, c.key);
    if c.deleted {
        return json!({"id": id, "object": "customer", "deleted": true});
    }
    json!({
        "id": id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": to_secs(c.created),
        "currency": null,
        "customer_account": null,
        "default_source": null,
        "delinquent": false,
        "description": c.description,
        "discount": null,
        "email": c.email,
        "invoice_credit_balance": {},
        "invoice_prefix": invoice_prefix(c.key),
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null,
        },
        "livemode": false,
        "metadata": c.metadata,
        "name": c.name,
        "next_invoice_sequence": 1,
        "phone": c.phone,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": c.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k)),
    })
}

/// Stripe gives each customer a random 8-character prefix for invoice numbers; this one is derived
/// from the key so that it is stable (and deterministic with `--seed`).
fn invoice_prefix(key: Key) -> String {
    let h = fnv1a64(0xcbf2_9ce4_8422_2325, &key.to_le_bytes());
    format!("{:08X}", h as u32)
}

/// A live customer named by `id` in parameter `param` (400), or Stripe's `No such customer`.
pub fn lookup_param(tenant: &Tenant, id: &str, param: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::CUSTOMER)
        .filter(|k| tenant.live_customer(*k).is_some())
        .ok_or_else(|| StripeError::no_such("customer", id, param, 400))
}

fn lookup_path(tenant: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::CUSTOMER)
        .filter(|k| tenant.customers.contains_key(k))
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
    let mut v = render(ctx.tenant, &ctx.tenant.customers[&key]);
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
                .filter(|k| ctx.tenant.test_clocks.contains_key(k))
                .ok_or_else(|| StripeError::no_such("test clock", id, "test_clock", 400))?,
        ),
        None => None,
    };
    let metadata = match get_metadata(p, "metadata") {
        Some(u) => apply_metadata(&Metadata::new(), u, "metadata")?,
        None => Metadata::new(),
    };
    let key = ctx.tenant.create_customer(NewCustomer {
        email,
        name: get_nullable_str(p, "name").flatten(),
        description: get_nullable_str(p, "description").flatten(),
        phone: get_nullable_str(p, "phone").flatten(),
        external_id: None,
        metadata,
        test_clock,
    });
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
    let existing = match ctx.tenant.live_customer(key) {
        Some(c) => c.metadata.clone(),
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
    ctx.tenant.update_customer(
        key,
        CustomerChanges {
            email,
            name: get_nullable_str(p, "name"),
            description: get_nullable_str(p, "description"),
            phone: get_nullable_str(p, "phone"),
            external_id: None,
            metadata,
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
        ids::key_of(id, ids::CUSTOMER).filter(|k| t.customers.contains_key(k))
    })?;
    let empty = std::collections::BTreeSet::new();
    let index = match get_str(ctx.params, "test_clock").filter(|s| !s.is_empty()) {
        Some(id) => match ids::key_of(id, ids::TEST_CLOCK) {
            Some(k) if t.test_clocks.contains_key(&k) => {
                t.customers_by_clock.get(&k).unwrap_or(&empty)
            }
            _ => return Err(StripeError::no_such("test clock", id, "test_clock", 400)),
        },
        None => &t.customers_unclocked,
    };
    let email = get_str(ctx.params, "email");
    let by_email = email.map(|e| t.customers_by_email.get(e).unwrap_or(&empty));
    let (keys, more) = match by_email {
        Some(set) => list::paginate(
            |a, b| set.range((a, b)).copied(),
            &page,
            |k| index.contains(&k),
        ),
        None => list::paginate(|a, b| index.range((a, b)).copied(), &page, |_| true),
    };
    let data = keys.iter().map(|k| render(t, &t.customers[k])).collect();
    let mut v = list::render(data, more, "/v1/customers");
    super::expand_in(t, &mut v, &expand_paths);
    Ok(v)
}
