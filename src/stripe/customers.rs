//! `/v1/customers`: the customer object with the fields SDK users set up (addresses, invoice
//! settings, tax status, balances), list filters including `created`, and search. What needs payment
//! methods, tax calculation or cash balances is refused clearly.

use std::ops::Bound;

use serde::Serialize;

use super::ids;
use super::list::{self, ListJson, PageRequest, TimeRange};
use super::op::{Body, Deleted, EmptyObject, Expand, Input, Null, Operation, NULL};
use super::search::{self, Found, Kind, Schema};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::{
    Address, Customer, CustomerChanges, InvoiceSettings, Metadata, NewCustomer, Profile,
    RenderingOptions, Shipping, TaxExempt, Tenant,
};
use crate::time::to_secs;
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    apply_metadata, cannot_unset, get_int, get_metadata, get_nullable_str, get_obj, get_str,
    in_range, join, list_items, new_metadata, opt, req, validate, Field, MetadataUpdate, Spec,
    EXPAND, LIST_FIELDS,
};
use crate::wire::versions::Version;

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
/// Stripe's limit on the customers of one test clock.
const MAX_CUSTOMERS_ON_CLOCK: usize = 3;
const LIST_EXPANDABLE: &[&str] = &["data.test_clock"];
const SEARCH_EXPANDABLE: &[&str] = &["data.test_clock", "total_count"];
const SEARCH_URL: &str = "/v1/customers/search";

/// A customer as Stripe shows it: the whole object, or the `deleted: true` stub of a deleted one.
#[derive(Serialize)]
#[serde(untagged)]
pub enum CustomerView<'a> {
    /// A live customer.
    Live(Box<LiveView<'a>>),
    /// A deleted one.
    Deleted(Deleted<'a>),
}

/// A live customer, fields in Stripe's order. `business_name` and `individual_name` appear only
/// when set, as in Stripe's own examples.
#[derive(Serialize)]
pub struct LiveView<'a> {
    id: &'a str,
    object: &'static str,
    address: Option<AddressView<'a>>,
    balance: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    business_name: Option<&'a str>,
    created: i64,
    currency: Null,
    customer_account: Null,
    default_source: Null,
    delinquent: bool,
    description: Option<&'a str>,
    discount: Null,
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    individual_name: Option<&'a str>,
    invoice_credit_balance: EmptyObject,
    invoice_prefix: &'a str,
    invoice_settings: InvoiceSettingsView<'a>,
    livemode: bool,
    metadata: &'a Metadata,
    name: Option<&'a str>,
    next_invoice_sequence: i64,
    phone: Option<&'a str>,
    preferred_locales: &'a [String],
    shipping: Option<ShippingView<'a>>,
    tax_exempt: &'static str,
    test_clock: Option<String>,
}

#[derive(Serialize)]
struct AddressView<'a> {
    city: Option<&'a str>,
    country: Option<&'a str>,
    line1: Option<&'a str>,
    line2: Option<&'a str>,
    postal_code: Option<&'a str>,
    state: Option<&'a str>,
}

impl<'a> AddressView<'a> {
    fn of(a: &'a Address) -> Self {
        AddressView {
            city: a.city.as_deref(),
            country: a.country.as_deref(),
            line1: a.line1.as_deref(),
            line2: a.line2.as_deref(),
            postal_code: a.postal_code.as_deref(),
            state: a.state.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct ShippingView<'a> {
    address: AddressView<'a>,
    name: &'a str,
    phone: Option<&'a str>,
}

#[derive(Serialize)]
struct InvoiceSettingsView<'a> {
    custom_fields: Option<Vec<CustomFieldView<'a>>>,
    default_payment_method: Option<&'a str>,
    footer: Option<&'a str>,
    rendering_options: Option<RenderingOptionsView<'a>>,
}

#[derive(Serialize)]
struct CustomFieldView<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct RenderingOptionsView<'a> {
    amount_tax_display: Option<&'a str>,
    template: Option<&'a str>,
}

impl<'a> CustomerView<'a> {
    /// The view of `c`, whose id is `id` (rendered by the caller, who owns the string).
    pub fn of(c: &'a Customer, id: &'a str) -> Self {
        if c.deleted {
            return CustomerView::Deleted(Deleted::new(id, "customer"));
        }
        let p = &c.profile;
        let s = &p.invoice_settings;
        CustomerView::Live(Box::new(LiveView {
            id,
            object: "customer",
            address: p.address.as_ref().map(AddressView::of),
            balance: p.balance,
            business_name: p.business_name.as_deref(),
            created: to_secs(c.created),
            currency: NULL,
            customer_account: NULL,
            default_source: NULL,
            delinquent: false,
            description: c.description.as_deref(),
            discount: NULL,
            email: c.email.as_deref(),
            individual_name: p.individual_name.as_deref(),
            invoice_credit_balance: EmptyObject {},
            invoice_prefix: &p.invoice_prefix,
            invoice_settings: InvoiceSettingsView {
                custom_fields: s.custom_fields.as_ref().map(|fields| {
                    fields
                        .iter()
                        .map(|(name, value)| CustomFieldView { name, value })
                        .collect()
                }),
                default_payment_method: s.default_payment_method.as_deref(),
                footer: s.footer.as_deref(),
                rendering_options: s.rendering_options.as_ref().map(|r| RenderingOptionsView {
                    amount_tax_display: r.amount_tax_display.as_deref(),
                    template: r.template.as_deref(),
                }),
            },
            livemode: false,
            metadata: &c.metadata,
            name: c.name.as_deref(),
            next_invoice_sequence: p.next_invoice_sequence,
            phone: c.phone.as_deref(),
            preferred_locales: &p.preferred_locales,
            shipping: p.shipping.as_ref().map(|s| ShippingView {
                address: AddressView::of(&s.address),
                name: &s.name,
                phone: s.phone.as_deref(),
            }),
            tax_exempt: match p.tax_exempt {
                TaxExempt::None => "none",
                TaxExempt::Exempt => "exempt",
                TaxExempt::Reverse => "reverse",
            },
            test_clock: c.test_clock.map(|k| ids::render(ids::TEST_CLOCK, k)),
        }))
    }
}

/// The customer `key` of `t` as the answer, with `expand`.
fn respond(t: &Tenant, key: Key, expand: Expand) -> Body {
    let c = t.customer(key).expect("looked up above");
    let id = ids::render(ids::CUSTOMER, c.key);
    Body::of(&CustomerView::of(c, &id), expand, 1536)
}

/// A page of customers as a list's or a search's `data`; the ids are rendered into `ids` first,
/// which the views borrow.
fn page_views<'a>(t: &'a Tenant, keys: &[Key], ids: &'a [String]) -> Vec<CustomerView<'a>> {
    keys.iter()
        .zip(ids)
        .filter_map(|(k, id)| t.customer(*k).map(|c| CustomerView::of(c, id)))
        .collect()
}

/// The ids of `keys`, rendered.
fn rendered_ids(keys: &[Key]) -> Vec<String> {
    keys.iter()
        .map(|k| ids::render(ids::CUSTOMER, *k))
        .collect()
}

/// The profile parameters of a validated create or update, read before the tenant is locked:
/// `None` leaves a field as it is, `Some(None)` clears it. Hashes given whole (`address`,
/// `shipping`, `invoice_settings[rendering_options]`) replace what was there; `invoice_settings`
/// changes only the settings it names.
#[derive(Debug, Default)]
struct ProfileChanges {
    address: Option<Option<Address>>,
    shipping: Option<Option<Shipping>>,
    preferred_locales: Option<Vec<String>>,
    invoice_prefix: Option<String>,
    invoice_settings: Option<InvoiceSettingsChanges>,
    tax_exempt: Option<TaxExempt>,
    balance: Option<i64>,
    next_invoice_sequence: Option<i64>,
    business_name: Option<Option<String>>,
    individual_name: Option<Option<String>>,
}

/// What `invoice_settings` asks for.
#[derive(Debug)]
enum InvoiceSettingsChanges {
    /// `invoice_settings=`: back to the defaults.
    Reset,
    /// The settings named, each set or cleared.
    Merge {
        custom_fields: Option<Option<Vec<(String, String)>>>,
        default_payment_method: Option<Option<String>>,
        footer: Option<Option<String>>,
        rendering_options: Option<Option<RenderingOptions>>,
    },
}

impl ProfileChanges {
    /// Reads the profile parameters; `""` clears where Stripe allows it, and is refused where it
    /// does not (`shipping[name]`, `invoice_prefix`).
    fn read(p: &Params) -> StripeResult<ProfileChanges> {
        let mut c = ProfileChanges::default();
        if let Some(node) = p.get("address") {
            c.address = Some(match node {
                Node::Map(m) => Some(address_of(m)),
                _ => None,
            });
        }
        if let Some(node) = p.get("shipping") {
            c.shipping = Some(match node {
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
            });
        }
        if let Some(node) = p.get("preferred_locales") {
            c.preferred_locales = Some(
                list_items(node)
                    .into_iter()
                    .filter_map(|n| match n {
                        Node::Value(s) if !s.is_empty() => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            );
        }
        if let Some(prefix) = get_str(p, "invoice_prefix") {
            c.invoice_prefix = Some(invoice_prefix(prefix)?);
        }
        c.invoice_settings = match p.get("invoice_settings") {
            Some(Node::Map(m)) => Some(invoice_settings_changes(m)),
            Some(_) => Some(InvoiceSettingsChanges::Reset),
            None => None,
        };
        c.tax_exempt = get_str(p, "tax_exempt").map(|v| match v {
            "exempt" => TaxExempt::Exempt,
            "reverse" => TaxExempt::Reverse,
            _ => TaxExempt::None,
        });
        c.balance = get_int(p, "balance");
        if let Some(n) = get_int(p, "next_invoice_sequence") {
            c.next_invoice_sequence = Some(in_range(n, 1, i64::MAX, "next_invoice_sequence")?);
        }
        c.business_name = get_nullable_str(p, "business_name");
        c.individual_name = get_nullable_str(p, "individual_name");
        Ok(c)
    }

    /// Applies the changes to `profile`.
    fn apply(self, profile: &mut Profile) {
        if let Some(v) = self.address {
            profile.address = v;
        }
        if let Some(v) = self.shipping {
            profile.shipping = v;
        }
        if let Some(v) = self.preferred_locales {
            profile.preferred_locales = v;
        }
        if let Some(v) = self.invoice_prefix {
            profile.invoice_prefix = v;
        }
        match self.invoice_settings {
            Some(InvoiceSettingsChanges::Reset) => {
                profile.invoice_settings = InvoiceSettings::default()
            }
            Some(InvoiceSettingsChanges::Merge {
                custom_fields,
                default_payment_method,
                footer,
                rendering_options,
            }) => {
                let s = &mut profile.invoice_settings;
                if let Some(v) = custom_fields {
                    s.custom_fields = v;
                }
                if let Some(v) = default_payment_method {
                    s.default_payment_method = v;
                }
                if let Some(v) = footer {
                    s.footer = v;
                }
                if let Some(v) = rendering_options {
                    s.rendering_options = v;
                }
            }
            None => {}
        }
        if let Some(v) = self.tax_exempt {
            profile.tax_exempt = v;
        }
        if let Some(v) = self.balance {
            profile.balance = v;
        }
        if let Some(v) = self.next_invoice_sequence {
            profile.next_invoice_sequence = v;
        }
        if let Some(v) = self.business_name {
            profile.business_name = v;
        }
        if let Some(v) = self.individual_name {
            profile.individual_name = v;
        }
    }
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

fn invoice_settings_changes(m: &Params) -> InvoiceSettingsChanges {
    InvoiceSettingsChanges::Merge {
        custom_fields: m.get("custom_fields").map(|node| match node {
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
        }),
        default_payment_method: get_nullable_str(m, "default_payment_method"),
        footer: get_nullable_str(m, "footer"),
        rendering_options: m.get("rendering_options").map(|node| match node {
            Node::Map(r) => Some(RenderingOptions {
                amount_tax_display: get_nullable_str(r, "amount_tax_display").flatten(),
                template: get_nullable_str(r, "template").flatten(),
            }),
            _ => None,
        }),
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
            shorten(prefix)
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

/// The `customer` a ledger read is about (credit balance summary, transactions, a filter of grants
/// or invoices), as sent: required.
pub fn ledger_owner_id(id: Option<&str>) -> StripeResult<&str> {
    id.filter(|s| !s.is_empty())
        .ok_or_else(|| StripeError::missing_param("customer"))
}

/// The customer named `id` in parameter `customer` of a ledger read: it must have existed (a
/// deleted customer's ledger stays readable, as its grants do).
pub fn ledger_owner(t: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::CUSTOMER)
        .filter(|k| t.customer(*k).is_some())
        .ok_or_else(|| StripeError::no_such("customer", id, "customer", 400))
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
            return Err(
                StripeError::invalid(format!("Invalid email address: {}", shorten(e)))
                    .param("email")
                    .code("email_invalid"),
            );
        }
    }
    Ok(())
}

/// `POST /v1/customers`.
pub struct Create {
    new: NewCustomer,
    test_clock: Option<String>,
    /// Metadata and profile, whose errors Stripe reports after the test clock is found.
    rest: StripeResult<(Metadata, Profile)>,
    expand: Expand,
}

impl Operation for Create {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, CREATE, HINT)?;
        let expand = Expand::read(p, EXPANDABLE, Version::NEWEST)?;
        let email = get_nullable_str(p, "email").flatten();
        check_email(&email)?;
        let rest = (|| {
            let metadata = new_metadata(p, "metadata", "metadata")?;
            let mut profile = Profile::default();
            ProfileChanges::read(p)?.apply(&mut profile);
            Ok((metadata, profile))
        })();
        Ok(Create {
            new: NewCustomer {
                email,
                name: get_nullable_str(p, "name").flatten(),
                description: get_nullable_str(p, "description").flatten(),
                phone: get_nullable_str(p, "phone").flatten(),
                external_id: None,
                metadata: Metadata::new(),
                test_clock: None,
            },
            test_clock: get_str(p, "test_clock")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            rest,
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let mut new = self.new;
        new.test_clock = match &self.test_clock {
            Some(id) => Some(
                ids::key_of(id, ids::TEST_CLOCK)
                    .filter(|k| t.test_clock(*k).is_some())
                    .ok_or_else(|| StripeError::no_such("test clock", id, "test_clock", 400))?,
            ),
            None => None,
        };
        if let Some(clock) = new.test_clock {
            if t.customers_on_clock(clock).len() >= MAX_CUSTOMERS_ON_CLOCK {
                return Err(StripeError::invalid(format!(
                    "A test clock can have at most {MAX_CUSTOMERS_ON_CLOCK} customers, and {} already has {MAX_CUSTOMERS_ON_CLOCK}.",
                    self.test_clock.as_deref().unwrap_or_default()
                ))
                .param("test_clock"));
            }
        }
        let (metadata, profile) = self.rest?;
        new.metadata = metadata;
        let key = t.create_customer_with(new, profile);
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `GET /v1/customers/{id}`.
pub struct Retrieve {
    id: String,
    expand: Expand,
}

impl Operation for Retrieve {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, RETRIEVE, HINT)?;
        Ok(Retrieve {
            id: input.id().to_string(),
            expand: Expand::read(input.params, EXPANDABLE, Version::NEWEST)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        Ok((lookup_path(t, &self.id)?, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `POST /v1/customers/{id}`.
pub struct Update {
    id: String,
    /// Checked only once the customer is found.
    email: StripeResult<Option<Option<String>>>,
    name: Option<Option<String>>,
    description: Option<Option<String>>,
    phone: Option<Option<String>>,
    metadata: Option<MetadataUpdate>,
    /// Checked after the metadata, which needs the customer.
    profile: StripeResult<ProfileChanges>,
    expand: Expand,
}

impl Operation for Update {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, UPDATE, HINT)?;
        let expand = Expand::read(p, EXPANDABLE, Version::NEWEST)?;
        let email = get_nullable_str(p, "email");
        let email_checked = email.as_ref().map_or(Ok(()), check_email);
        Ok(Update {
            id: input.id().to_string(),
            email: email_checked.map(|()| email),
            name: get_nullable_str(p, "name"),
            description: get_nullable_str(p, "description"),
            phone: get_nullable_str(p, "phone"),
            metadata: get_metadata(p, "metadata"),
            profile: ProfileChanges::read(p),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup_path(t, &self.id)?;
        let (existing, mut profile) = match t.live_customer(key) {
            Some(c) => (c.metadata.clone(), c.profile.clone()),
            None => return Err(StripeError::no_such("customer", &self.id, "id", 404)),
        };
        let email = self.email?;
        let metadata = match self.metadata {
            Some(u) => Some(apply_metadata(&existing, u, "metadata")?),
            None => None,
        };
        self.profile?.apply(&mut profile);
        t.update_customer(
            key,
            CustomerChanges {
                email,
                name: self.name,
                description: self.description,
                phone: self.phone,
                external_id: None,
                metadata,
                profile: Some(profile),
            },
        );
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `DELETE /v1/customers/{id}`.
pub struct Delete {
    id: String,
}

impl Operation for Delete {
    type Output = String;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, &[], HINT)?;
        Ok(Delete {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<String> {
        let key = ids::key_of(&self.id, ids::CUSTOMER)
            .filter(|k| t.live_customer(*k).is_some())
            .ok_or_else(|| StripeError::no_such("customer", &self.id, "id", 404))?;
        t.delete_customer(key);
        Ok(self.id)
    }

    fn render(id: String, _: &Tenant) -> Body {
        Body::Json(super::op::pretty(&Deleted::new(&id, "customer"), 96))
    }
}

/// `GET /v1/customers`: live customers, newest first; those on a test clock only with `test_clock`.
pub struct List {
    page: PageRequest,
    test_clock: Option<String>,
    created: Option<TimeRange>,
    email: Option<String>,
    expand: Expand,
}

impl Operation for List {
    type Output = (Vec<Key>, bool, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, LIST, HINT)?;
        let expand = Expand::read(p, LIST_EXPANDABLE, Version::NEWEST)?;
        Ok(List {
            page: PageRequest::read(p)?,
            test_clock: get_str(p, "test_clock")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            created: TimeRange::read(p, "created"),
            email: get_str(p, "email").map(str::to_string),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("customer", |id| {
            ids::key_of(id, ids::CUSTOMER).filter(|k| t.customer(*k).is_some())
        })?;
        let index = match &self.test_clock {
            Some(id) => match ids::key_of(id, ids::TEST_CLOCK) {
                Some(k) if t.test_clock(k).is_some() => t.customers_on_clock(k),
                _ => return Err(StripeError::no_such("test clock", id, "test_clock", 400)),
            },
            None => t.customers_off_clocks(),
        };
        let created = self.created;
        let created_of = |k: Key| t.customer(k).map_or(i64::MIN, |c| c.created);
        // Every customer of one index lives on one clock and got a fresh key when it was made, so
        // `created` grows with the key: the filter is a key range. The check along the walk only
        // guards that reasoning.
        let page = match created {
            Some(r) => page.within(r.keys(|a, b| index.range((a, b)), created_of)),
            None => page,
        };
        let in_range = |k: Key| created.is_none_or(|r| r.contains(created_of(k)));
        let by_email = self.email.as_deref().map(|e| t.customers_with_email(e));
        let (keys, more) = match by_email {
            Some(set) => list::paginate(
                |a, b| set.range((a, b)),
                &page,
                |k| index.contains(k) && in_range(k),
            ),
            None => list::paginate(|a, b| index.range((a, b)), &page, in_range),
        };
        Ok((keys, more, self.expand))
    }

    fn render((keys, more, expand): Self::Output, t: &Tenant) -> Body {
        let ids = rendered_ids(&keys);
        let data = page_views(t, &keys, &ids);
        Body::of(
            &ListJson::new(data, more, "/v1/customers"),
            expand,
            1536 * (keys.len() + 1),
        )
    }
}

/// `GET /v1/customers/search`: live customers, on test clocks or not (see [`search::Search`]).
pub struct Searched;

impl search::Searchable for Searched {
    const SCHEMA: Schema = SEARCH_SCHEMA;
    const URL: &'static str = SEARCH_URL;
    const EXPANDABLE: &'static [&'static str] = SEARCH_EXPANDABLE;

    fn newest_first(t: &Tenant, before: Bound<Key>) -> impl Iterator<Item = Key> + '_ {
        t.customers_in((Bound::Unbounded, before))
            .rev()
            .filter(|c| !c.deleted)
            .map(|c| c.key)
    }

    fn field<'t>(t: &'t Tenant, key: Key, f: &search::Field) -> Found<'t> {
        t.customer(key).map_or(Found::Missing, |c| field_of(c, f))
    }

    fn render(t: &Tenant, hits: search::Hits) -> Body {
        let ids = rendered_ids(&hits.keys);
        let data = page_views(t, &hits.keys, &ids);
        hits.body(data, SEARCH_URL, 1536)
    }
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
        search::Field::Metadata(k) => c.metadata.get(k).map_or(Found::Missing, Found::Str),
    }
}
