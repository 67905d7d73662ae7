//! `/v1/customers` (native): the same customers the Stripe facade serves, spelled `cust_<k>`.
//!
//! The native API knows `external_id`, `name`, `email` and `metadata`; a customer created through
//! Stripe has an empty `external_id` here, and one created here is a Stripe customer `cus_<k>` with
//! that name, email and metadata.

use serde_json::{json, Value};

use super::error::{NativeError, NativeResult};
use super::ids::{self, key_of, render as id};
use super::json::{metadata_value, Obj};
use super::list::Page;
use super::{base, Ctx};
use crate::ids::Key;
use crate::model::{Customer, NewCustomer, Tenant};

/// Documented customer fields the emulator does not model; sending one is a clear 400.
const UNSUPPORTED: [&str; 9] = [
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_postal_code",
    "address_country",
    "tax_rate_overrides",
    "integration_entity_mapping",
    "contact",
];

/// go-playground's text for a failed `required` tag, which upstream puts in `details`.
pub fn required_detail(request: &str, field: &str) -> (String, Value) {
    (
        field.to_string(),
        json!(format!(
            "Key: '{request}.{field}' Error:Field validation for '{field}' failed on the 'required' tag"
        )),
    )
}

/// `Request validation failed` with go-playground's per-field texts.
pub fn request_validation_failed(fields: Vec<(String, Value)>) -> NativeError {
    let mut e = NativeError::validation("Request validation failed");
    let pairs: Vec<(&str, Value)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    e = e.details(pairs);
    e
}

/// A clear 400 for a documented field the emulator does not model.
pub fn unsupported(field: &str, what: &str) -> NativeError {
    NativeError::validation(format!(
        "The field {field} is not supported by the credit emulator ({what} support {})",
        match what {
            "customers" => "external_id, name, email and metadata",
            "plans" => "name, lookup_key, description, metadata and credit_grants",
            _ => "the fields listed in the README",
        }
    ))
}

/// A customer named by a native id (`cust_<k>`), deleted ones included.
pub fn lookup(t: &Tenant, id_: &str) -> NativeResult<Key> {
    key_of(id_, ids::CUSTOMER)
        .filter(|k| t.customer(*k).is_some())
        .ok_or_else(|| not_found(id_))
}

/// `Customer with ID … was not found`.
pub fn not_found(id_: &str) -> NativeError {
    NativeError::not_found(format!("Customer with ID {id_} was not found"))
        .details(vec![("customer_id", json!(id_))])
}

/// A live customer by `external_id`.
pub fn by_external_id(t: &Tenant, external_id: &str) -> Option<Key> {
    t.customer_with_external_id(external_id)
}

/// Renders a customer as Flexprice's `CustomerResponse`. A deleted customer is `archived`.
pub fn render(env: &str, c: &Customer) -> Value {
    let o = Obj::new()
        .put("id", id(ids::CUSTOMER, c.key))
        .put("external_id", c.external_id.clone().unwrap_or_default())
        .put("name", c.name.clone().unwrap_or_default())
        .put("email", c.email.clone().unwrap_or_default())
        .put("address_line1", "")
        .put("address_line2", "")
        .put("address_city", "")
        .put("address_state", "")
        .put("address_postal_code", "")
        .put("address_country", "")
        .put("timezone", "UTC")
        .put("metadata", metadata_value(&c.metadata))
        .put("environment_id", env);
    let status = if c.deleted { "archived" } else { "published" };
    base(o, status, c.created, c.updated).done()
}

fn check_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// `POST /v1/customers` (201).
pub fn create(ctx: &mut Ctx) -> NativeResult<Value> {
    let body = ctx.body()?;
    let external_id = body.string("external_id")?;
    let name = body.string("name")?;
    let email = body.string("email")?;
    let metadata = body.metadata("metadata")?.unwrap_or_default();
    for field in UNSUPPORTED {
        let given = match body.get(field) {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
            None => false,
        };
        if given {
            return Err(unsupported(field, "customers"));
        }
    }
    if external_id.is_empty() {
        return Err(request_validation_failed(vec![required_detail(
            "CreateCustomerRequest",
            "ExternalID",
        )]));
    }
    if !email.is_empty() && !check_email(&email) {
        return Err(request_validation_failed(vec![(
            "Email".to_string(),
            json!("Key: 'CreateCustomerRequest.Email' Error:Field validation for 'Email' failed on the 'email' tag"),
        )]));
    }
    if by_external_id(ctx.tenant, &external_id).is_some() {
        return Err(
            NativeError::already_exists("A customer with this identifier already exists")
                .details(vec![("external_id", json!(external_id))]),
        );
    }
    let key = ctx.tenant.create_customer(NewCustomer {
        email: (!email.is_empty()).then_some(email),
        name: (!name.is_empty()).then_some(name),
        description: None,
        phone: None,
        external_id: Some(external_id),
        metadata,
        test_clock: None,
    });
    Ok(render(
        &ctx.env,
        ctx.tenant.customer(key).expect("made above"),
    ))
}

/// `GET /v1/customers/{id}`.
pub fn retrieve(ctx: &mut Ctx, id_: &str) -> NativeResult<Value> {
    let key = lookup(ctx.tenant, id_)?;
    Ok(render(
        &ctx.env,
        ctx.tenant.customer(key).expect("looked up above"),
    ))
}

/// `GET /v1/customers`: every customer of the tenant (both APIs'), newest first, with
/// `external_id` and `email` filters and offset pagination.
pub fn list(ctx: &mut Ctx) -> NativeResult<Value> {
    let page = Page::read(&ctx.query)?;
    let t = &*ctx.tenant;
    let external = ctx.query.first("external_id").filter(|s| !s.is_empty());
    let email = ctx.query.first("email").filter(|s| !s.is_empty());
    let keep = |c: &Customer| {
        let status = if c.deleted { "archived" } else { "published" };
        page.status.as_deref().is_none_or(|s| s == status)
            && external.is_none_or(|e| c.external_id.as_deref() == Some(e))
            && email.is_none_or(|e| c.email.as_deref() == Some(e))
    };
    let mut rows: Vec<&Customer> = t.customers().filter(|c| keep(c)).collect();
    let sort = page.sort.as_str();
    rows.sort_by(|a, b| {
        let ord = match sort {
            "name" => a.name.cmp(&b.name),
            "email" => a.email.cmp(&b.email),
            "external_id" => a.external_id.cmp(&b.external_id),
            "updated_at" => a.updated.cmp(&b.updated),
            _ => a.created.cmp(&b.created),
        }
        .then(a.key.cmp(&b.key));
        if page.ascending {
            ord
        } else {
            ord.reverse()
        }
    });
    Ok(page.render_rows(rows, |c| render(&ctx.env, c)))
}
