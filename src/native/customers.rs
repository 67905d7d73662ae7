//! `/v1/customers` (native): the same customers the Stripe facade serves, spelled `cust_<k>`.
//!
//! The native API knows `external_id`, `name`, `email` and `metadata`; a customer created through
//! Stripe has an empty `external_id` here, and one created here is a Stripe customer `cus_<k>` with
//! that name, email and metadata.

use serde::Serialize;
use serde_json::json;

use super::error::{self, field_failed, request_validation_failed, NativeError, NativeResult};
use super::find;
use super::ids;
use super::json::{self, json_object, Sent};
use super::list::{Page, Rows};
use super::op::{Input, Operation};
use super::view::{Id, SortedMap, Stamp};
use crate::model::{Customer, Metadata, NewCustomer, Tenant};

/// Flexprice's `CustomerResponse`. A deleted customer is `archived`.
#[derive(Debug, Serialize)]
pub struct CustomerView<'a> {
    id: Id,
    external_id: &'a str,
    name: &'a str,
    email: &'a str,
    address_line1: &'static str,
    address_line2: &'static str,
    address_city: &'static str,
    address_state: &'static str,
    address_postal_code: &'static str,
    address_country: &'static str,
    timezone: &'static str,
    metadata: SortedMap<'a>,
    environment_id: &'a str,
    #[serde(flatten)]
    stamp: Stamp,
}

impl<'a> CustomerView<'a> {
    /// The view of a customer.
    pub fn new(env: &'a str, c: &'a Customer) -> Self {
        CustomerView {
            id: Id(ids::CUSTOMER, c.key),
            external_id: c.external_id.as_deref().unwrap_or_default(),
            name: c.name.as_deref().unwrap_or_default(),
            email: c.email.as_deref().unwrap_or_default(),
            address_line1: "",
            address_line2: "",
            address_city: "",
            address_state: "",
            address_postal_code: "",
            address_country: "",
            timezone: "UTC",
            metadata: SortedMap(&c.metadata),
            environment_id: env,
            stamp: Stamp::new(status(c), c.created, c.updated),
        }
    }
}

fn status(c: &Customer) -> &'static str {
    if c.deleted {
        "archived"
    } else {
        "published"
    }
}

json_object! {
    /// `CreateCustomerRequest`.
    pub struct CreateBody {
        /// The caller's identifier, required and unique among live customers.
        external_id: json::Str,
        /// `name`.
        name: json::Str,
        /// `email`.
        email: json::Str,
        /// `metadata`.
        metadata: json::Map,
        /// Documented, not modelled.
        address_line1: json::Any,
        /// Documented, not modelled.
        address_line2: json::Any,
        /// Documented, not modelled.
        address_city: json::Any,
        /// Documented, not modelled.
        address_state: json::Any,
        /// Documented, not modelled.
        address_postal_code: json::Any,
        /// Documented, not modelled.
        address_country: json::Any,
        /// Documented, not modelled.
        tax_rate_overrides: json::Any,
        /// Documented, not modelled.
        integration_entity_mapping: json::Any,
        /// Documented, not modelled.
        contact: json::Any,
    }
}

impl CreateBody {
    /// The documented fields the emulator does not model, in upstream's order, with what was sent.
    fn unsupported(&self) -> [(&'static str, Option<Sent>); 9] {
        [
            ("address_line1", self.address_line1),
            ("address_line2", self.address_line2),
            ("address_city", self.address_city),
            ("address_state", self.address_state),
            ("address_postal_code", self.address_postal_code),
            ("address_country", self.address_country),
            ("tax_rate_overrides", self.tax_rate_overrides),
            (
                "integration_entity_mapping",
                self.integration_entity_mapping,
            ),
            ("contact", self.contact),
        ]
    }
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
#[derive(Debug)]
pub struct Create {
    external_id: String,
    name: String,
    email: String,
    metadata: Metadata,
}

impl Operation for Create {
    const STATUS: u16 = 201;
    type Done<'t> = &'t Customer;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        let body: CreateBody = input.body()?;
        for (field, sent) in body.unsupported() {
            // An empty string or array is as good as absent; anything else is a request for
            // something the emulator does not do.
            let given = match sent {
                Some(Sent::Str { empty } | Sent::Array { empty }) => !empty,
                Some(Sent::Object { .. } | Sent::Other) => true,
                None => false,
            };
            if given {
                return Err(error::unsupported(
                    field,
                    "customers support external_id, name, email and metadata",
                ));
            }
        }
        let external_id = body.external_id.unwrap_or_default();
        let email = body.email.unwrap_or_default();
        if external_id.is_empty() {
            return Err(request_validation_failed(vec![(
                "ExternalID",
                error::required("CreateCustomerRequest", "ExternalID"),
            )]));
        }
        if !email.is_empty() && !check_email(&email) {
            return Err(request_validation_failed(vec![(
                "Email",
                field_failed("CreateCustomerRequest", "Email", "email"),
            )]));
        }
        Ok(Create {
            external_id,
            name: body.name.unwrap_or_default(),
            email,
            metadata: body.metadata.unwrap_or_default(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<&Customer> {
        let Create {
            external_id,
            name,
            email,
            metadata,
        } = self;
        if find::customer_by_external_id(t, &external_id).is_some() {
            return Err(NativeError::already_exists(
                "A customer with this identifier already exists",
            )
            .details(vec![("external_id", json!(external_id))]));
        }
        let key = t.create_customer(NewCustomer {
            email: (!email.is_empty()).then_some(email),
            name: (!name.is_empty()).then_some(name),
            description: None,
            phone: None,
            external_id: Some(external_id),
            metadata,
            test_clock: None,
        });
        Ok(t.customer(key).expect("looked up above"))
    }

    fn render<'a>(c: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        CustomerView::new(env, c)
    }
}

/// `GET /v1/customers/{id}`.
#[derive(Debug)]
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Done<'t> = &'t Customer;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        Ok(Retrieve {
            id: input.id.to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<&Customer> {
        let key = find::customer(t, &self.id)?;
        Ok(t.customer(key).expect("looked up above"))
    }

    fn render<'a>(c: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        CustomerView::new(env, c)
    }
}

/// `GET /v1/customers`: every customer of the tenant (both APIs'), newest first, with
/// `external_id` and `email` filters and offset pagination.
#[derive(Debug)]
pub struct List {
    page: Page,
    external_id: Option<String>,
    email: Option<String>,
}

impl Operation for List {
    type Done<'t> = Rows<&'t Customer>;

    fn parse(input: &Input<'_>) -> NativeResult<Self> {
        let q = input.query;
        let given = |name: &str| q.first(name).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(List {
            page: Page::read(q)?,
            external_id: given("external_id"),
            email: given("email"),
        })
    }

    fn apply(self, t: &mut Tenant) -> NativeResult<Rows<&Customer>> {
        let t = &*t;
        let page = &self.page;
        let keep = |c: &Customer| {
            page.status.as_deref().is_none_or(|s| s == status(c))
                && self
                    .external_id
                    .as_deref()
                    .is_none_or(|e| c.external_id.as_deref() == Some(e))
                && self
                    .email
                    .as_deref()
                    .is_none_or(|e| c.email.as_deref() == Some(e))
        };
        let mut rows: Vec<&Customer> = t.customers().filter(|c| keep(c)).collect();
        rows.sort_by(|a, b| {
            let ord = match page.sort.as_str() {
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
        Ok(page.rows(rows))
    }

    fn render<'a>(rows: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a {
        rows.view(|c| CustomerView::new(env, c))
    }
}
