//! `/v1/products`: what is sold. A product may carry the id its creator chose (`id` on create),
//! may be made with its first price (`default_price_data`), and can be deleted only while it has no
//! prices.

use std::collections::BTreeSet;

use serde::Serialize;

use super::catalog::{
    amount_pair, catalog_error, chosen_product_id, find_price, find_product, get_bool,
    no_such_price, no_such_product, product_id, recurring, statement_descriptor, tax_behavior,
    INTERVALS, TAX_BEHAVIORS,
};
use super::list::{self, ListJson, PageRequest, TimeRange};
use super::op::{pretty, Body, Deleted, Expand, Input, Null, Operation, NULL};
use super::{ids, search};
use crate::form::{Node, Params};
use crate::ids::Key;
use crate::model::{
    CatalogError, FirstPrice, Metadata, NewPrice, NewProduct, PriceTerms, Product, ProductChanges,
    ProductType, Scheme, Tenant,
};
use crate::time::to_secs;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::{
    apply_metadata, cannot_unset, currency, get_metadata, get_nullable_str, get_obj, get_str,
    list_items, new_metadata, opt, req, validate_at, Field, MetadataUpdate, Spec, EXPAND,
    LIST_FIELDS,
};

const HINT: &str = " (it needs tax calculation or shipping, which the emulator does not model)";

/// Stripe's bound on `images`.
const MAX_IMAGES: usize = 8;
/// Stripe's bound on `marketing_features`.
const MAX_FEATURES: usize = 15;

const FEATURE: &[Field] = &[req("name", Spec::Str(80))];

const DEFAULT_PRICE_RECURRING: &[Field] = &[
    req("interval", Spec::Enum(INTERVALS)),
    opt("interval_count", Spec::Int),
];

const DEFAULT_PRICE_DATA: &[Field] = &[
    req("currency", Spec::Str(5000)),
    opt("currency_options", Spec::Unsupported),
    opt("custom_unit_amount", Spec::Unsupported),
    opt("metadata", Spec::Metadata),
    opt("recurring", Spec::Obj(DEFAULT_PRICE_RECURRING)),
    opt("tax_behavior", Spec::Enum(TAX_BEHAVIORS)),
    opt("unit_amount", Spec::Int),
    opt("unit_amount_decimal", Spec::Str(5000)),
];

/// `product_data` of a price create: the product made with the price.
pub const PRODUCT_DATA: &[Field] = &[
    opt("active", Spec::Bool),
    opt("id", Spec::Str(5000)),
    opt("metadata", Spec::Metadata),
    req("name", Spec::Str(5000)),
    opt("statement_descriptor", Spec::Str(22)),
    opt("tax_code", Spec::Str(5000)),
    opt("tax_details", Spec::Unsupported),
    opt("unit_label", Spec::Str(12)),
];

const CREATE: &[Field] = &[
    opt("active", Spec::Bool),
    opt("default_price_data", Spec::Obj(DEFAULT_PRICE_DATA)),
    opt("description", Spec::Str(40000)),
    EXPAND,
    opt("id", Spec::Str(5000)),
    opt("images", Spec::Array(&Spec::Str(2048), MAX_IMAGES)),
    opt(
        "marketing_features",
        Spec::Array(&Spec::Obj(FEATURE), MAX_FEATURES),
    ),
    opt("metadata", Spec::Metadata),
    req("name", Spec::Str(5000)),
    opt("package_dimensions", Spec::Unsupported),
    opt("shippable", Spec::Bool),
    opt("statement_descriptor", Spec::Str(22)),
    opt("tax_code", Spec::Str(5000)),
    opt("tax_details", Spec::Unsupported),
    opt("type", Spec::Enum(&["good", "service"])),
    opt("unit_label", Spec::Str(12)),
    opt("url", Spec::Str(2048)),
];

const UPDATE: &[Field] = &[
    opt("active", Spec::Bool),
    opt("default_price", Spec::Str(5000)),
    opt("description", Spec::Str(40000)),
    EXPAND,
    opt("images", Spec::Array(&Spec::Str(2048), MAX_IMAGES)),
    opt(
        "marketing_features",
        Spec::Array(&Spec::Obj(FEATURE), MAX_FEATURES),
    ),
    opt("metadata", Spec::Metadata),
    opt("name", Spec::Str(5000)),
    opt("package_dimensions", Spec::Unsupported),
    opt("shippable", Spec::Bool),
    opt("statement_descriptor", Spec::Str(22)),
    opt("tax_code", Spec::Str(5000)),
    opt("tax_details", Spec::Unsupported),
    opt("unit_label", Spec::Str(12)),
    opt("url", Spec::Str(2048)),
];

/// The most ids `ids[]` may name.
const MAX_IDS: usize = 100;

const LIST: &[Field] = &[
    opt("active", Spec::Bool),
    opt("created", Spec::Range),
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    opt("ids", Spec::Array(&Spec::Str(5000), MAX_IDS)),
    LIST_FIELDS[0],
    opt("shippable", Spec::Bool),
    LIST_FIELDS[1],
    opt("type", Spec::Enum(&["good", "service"])),
    opt("url", Spec::Str(5000)),
];

const RETRIEVE: &[Field] = &[EXPAND];
const EXPANDABLE: &[&str] = &["default_price"];
const LIST_EXPANDABLE: &[&str] = &["data.default_price"];

/// A product as Stripe shows it, fields in Stripe's order.
#[derive(Serialize)]
pub struct ProductView<'a> {
    id: String,
    object: &'static str,
    active: bool,
    created: i64,
    default_price: Option<String>,
    description: Option<&'a str>,
    images: &'a [String],
    livemode: bool,
    marketing_features: Vec<FeatureView<'a>>,
    metadata: &'a Metadata,
    name: &'a str,
    package_dimensions: Null,
    shippable: Option<bool>,
    statement_descriptor: Option<&'a str>,
    tax_code: Option<&'a str>,
    tax_details: Null,
    #[serde(rename = "type")]
    kind: &'static str,
    unit_label: Option<&'a str>,
    updated: i64,
    url: Option<&'a str>,
}

#[derive(Serialize)]
struct FeatureView<'a> {
    name: &'a str,
}

impl<'a> ProductView<'a> {
    /// The view of `p`.
    pub fn of(p: &'a Product) -> Self {
        ProductView {
            id: product_id(p),
            object: "product",
            active: p.active,
            created: to_secs(p.created),
            default_price: p.default_price.map(|k| ids::render(ids::PRICE, k)),
            description: p.description.as_deref(),
            images: &p.images,
            livemode: false,
            marketing_features: p
                .marketing_features
                .iter()
                .map(|name| FeatureView { name })
                .collect(),
            metadata: &p.metadata,
            name: &p.name,
            package_dimensions: NULL,
            shippable: p.shippable,
            statement_descriptor: p.statement_descriptor.as_deref(),
            tax_code: p.tax_code.as_deref(),
            tax_details: NULL,
            kind: match p.kind {
                ProductType::Good => "good",
                ProductType::Service => "service",
            },
            unit_label: p.unit_label.as_deref(),
            updated: to_secs(p.updated),
            url: p.url.as_deref(),
        }
    }
}

/// The product `key` of `t` as the answer, with `expand`.
fn respond(t: &Tenant, key: Key, expand: Expand) -> Body {
    match t.product(key) {
        Some(p) => Body::of(&ProductView::of(p), expand, 1024),
        None => Body::Json(b"{}".to_vec()),
    }
}

fn lookup_path(t: &Tenant, id: &str) -> StripeResult<Key> {
    find_product(t, id).ok_or_else(|| no_such_product(id, "id", 404))
}

/// Refuses a chosen id another product has (or spells, as its generated id).
pub fn check_chosen_id(t: &Tenant, id: Option<&str>, param: &str) -> StripeResult<()> {
    match id {
        Some(id) if find_product(t, id).is_some() => {
            Err(catalog_error(CatalogError::ProductIdTaken, "").param(param))
        }
        _ => Ok(()),
    }
}

/// A name that must not be empty.
fn name(p: &Params, param: &str) -> StripeResult<Option<String>> {
    match get_str(p, "name") {
        Some("") => Err(cannot_unset(param)),
        other => Ok(other.map(str::to_string)),
    }
}

/// A statement descriptor: `""` cannot unset it, and Stripe's characters rules apply.
fn descriptor(p: &Params, param: &str) -> StripeResult<Option<String>> {
    match get_str(p, "statement_descriptor") {
        Some("") => Err(cannot_unset(param)),
        Some(s) => statement_descriptor(s, param).map(Some),
        None => Ok(None),
    }
}

/// The strings of a validated array parameter (`""`: none).
fn strings(p: &Params, name: &str) -> Option<Vec<String>> {
    p.get(name).map(|n| {
        list_items(n)
            .into_iter()
            .filter_map(|v| match v {
                Node::Value(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
            .collect()
    })
}

/// The feature names of a validated `marketing_features` array (`""`: none).
fn features(p: &Params) -> Option<Vec<String>> {
    p.get("marketing_features").map(|n| {
        list_items(n)
            .into_iter()
            .filter_map(|f| match f {
                Node::Map(m) => get_str(m, "name").map(str::to_string),
                _ => None,
            })
            .collect()
    })
}

/// The product a price create's validated `product_data` makes.
pub fn product_data(d: &Params) -> StripeResult<NewProduct> {
    let custom_id = match get_str(d, "id") {
        Some(id) => Some(chosen_product_id(id, "product_data[id]")?),
        None => None,
    };
    Ok(NewProduct {
        custom_id,
        name: name(d, "product_data[name]")?.unwrap_or_default(),
        active: get_bool(d, "active").unwrap_or(true),
        unit_label: get_nullable_str(d, "unit_label").flatten(),
        metadata: new_metadata(d, "metadata", "product_data[metadata]")?,
        statement_descriptor: descriptor(d, "product_data[statement_descriptor]")?,
        tax_code: get_nullable_str(d, "tax_code").flatten(),
        ..NewProduct::default()
    })
}

/// The default price of a validated `default_price_data`: per unit, licensed if recurring.
fn default_price(d: &Params) -> StripeResult<FirstPrice> {
    const P: &str = "default_price_data";
    let currency = currency(
        get_str(d, "currency").unwrap_or(""),
        &format!("{P}[currency]"),
    )?;
    let unit_amount = amount_pair(d, "unit_amount", P)?
        .ok_or_else(|| StripeError::missing_param(&format!("{P}[unit_amount]")))?;
    let recurring = match get_obj(d, "recurring") {
        Some(r) => Some(recurring(r, &format!("{P}[recurring]"))?),
        None => None,
    };
    Ok(FirstPrice {
        price: NewPrice {
            product: 0,
            active: true,
            currency,
            recurring,
            scheme: Scheme::PerUnit { unit_amount },
            transform_quantity: None,
            lookup_key: None,
            nickname: None,
            metadata: new_metadata(d, "metadata", &format!("{P}[metadata]"))?,
        },
        terms: PriceTerms {
            tax_behavior: get_str(d, "tax_behavior").map(tax_behavior),
            trial_period_days: None,
        },
        transfer_lookup_key: false,
        default: true,
    })
}

/// `POST /v1/products`.
pub struct Create {
    new: NewProduct,
    default_price: Option<FirstPrice>,
    expand: Expand,
}

impl Operation for Create {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, CREATE, HINT, input.version)?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        let custom_id = match get_str(p, "id") {
            Some(id) => Some(chosen_product_id(id, "id")?),
            None => None,
        };
        let new = NewProduct {
            custom_id,
            name: name(p, "name")?.unwrap_or_default(),
            active: get_bool(p, "active").unwrap_or(true),
            description: get_nullable_str(p, "description").flatten(),
            unit_label: get_nullable_str(p, "unit_label").flatten(),
            metadata: new_metadata(p, "metadata", "metadata")?,
            kind: match get_str(p, "type") {
                Some("good") => ProductType::Good,
                _ => ProductType::Service,
            },
            images: strings(p, "images").unwrap_or_default(),
            marketing_features: features(p).unwrap_or_default(),
            shippable: get_bool(p, "shippable"),
            statement_descriptor: descriptor(p, "statement_descriptor")?,
            tax_code: get_nullable_str(p, "tax_code").flatten(),
            url: get_nullable_str(p, "url").flatten(),
        };
        let default_price = match get_obj(p, "default_price_data") {
            Some(d) => Some(default_price(d)?),
            None => None,
        };
        Ok(Create {
            new,
            default_price,
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        check_chosen_id(t, self.new.custom_id.as_deref(), "id")?;
        let (key, _) = t
            .add_product(self.new, self.default_price)
            .map_err(|e| catalog_error(e, ""))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `GET /v1/products/{id}`.
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

/// `POST /v1/products/{id}`.
pub struct Update {
    id: String,
    changes: ProductChanges,
    /// The default price's id (`Some(None)`: clear it), found under the lock.
    default_price: Option<Option<String>>,
    metadata: Option<MetadataUpdate>,
    expand: Expand,
}

impl Operation for Update {
    type Output = (Key, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, UPDATE, HINT, input.version)?;
        let expand = Expand::read(p, EXPANDABLE, input.version)?;
        let changes = ProductChanges {
            name: name(p, "name")?,
            active: get_bool(p, "active"),
            description: get_nullable_str(p, "description"),
            default_price: None,
            unit_label: get_nullable_str(p, "unit_label"),
            metadata: None,
            images: strings(p, "images"),
            marketing_features: features(p),
            shippable: get_bool(p, "shippable"),
            statement_descriptor: descriptor(p, "statement_descriptor")?.map(Some),
            tax_code: get_nullable_str(p, "tax_code"),
            url: get_nullable_str(p, "url"),
        };
        Ok(Update {
            id: input.id().to_string(),
            changes,
            default_price: get_nullable_str(p, "default_price"),
            metadata: get_metadata(p, "metadata"),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let key = lookup_path(t, &self.id)?;
        let mut changes = self.changes;
        changes.default_price = match &self.default_price {
            Some(Some(id)) => Some(Some(
                find_price(t, id).ok_or_else(|| no_such_price(id, "default_price", 400))?,
            )),
            Some(None) => Some(None),
            None => None,
        };
        if let Some(u) = self.metadata {
            let existing = t
                .product(key)
                .map(|p| p.metadata.clone())
                .unwrap_or_default();
            changes.metadata = Some(apply_metadata(&existing, u, "metadata")?);
        }
        t.update_product(key, changes)
            .map_err(|e| catalog_error(e, ""))?;
        Ok((key, self.expand))
    }

    fn render((key, expand): Self::Output, t: &Tenant) -> Body {
        respond(t, key, expand)
    }
}

/// `DELETE /v1/products/{id}`: only a product without prices.
pub struct Delete {
    id: String,
}

impl Operation for Delete {
    type Output = String;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate_at(input.params, &[], HINT, input.version)?;
        Ok(Delete {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<String> {
        let key = lookup_path(t, &self.id)?;
        t.delete_product(key).map_err(|e| catalog_error(e, ""))?;
        Ok(self.id)
    }

    fn render(id: String, _: &Tenant) -> Body {
        Body::Json(pretty(&Deleted::new(&id, "product"), 96))
    }
}

/// `GET /v1/products`: newest first, with Stripe's filters.
pub struct List {
    page: PageRequest,
    active: Option<bool>,
    created: Option<TimeRange>,
    ids: Option<Vec<String>>,
    shippable: Option<bool>,
    good: Option<bool>,
    url: Option<String>,
    expand: Expand,
}

impl Operation for List {
    type Output = (Vec<Key>, bool, Expand);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate_at(p, LIST, HINT, input.version)?;
        let expand = Expand::read(p, LIST_EXPANDABLE, input.version)?;
        let page = PageRequest::read(p)?;
        let ids = strings(p, "ids");
        if ids.is_some() && (page.starting_after.is_some() || page.ending_before.is_some()) {
            return Err(StripeError::invalid(
                "ids cannot be used with starting_after or ending_before.",
            )
            .param("ids"));
        }
        Ok(List {
            page,
            active: get_bool(p, "active"),
            created: TimeRange::read(p, "created"),
            ids,
            shippable: get_bool(p, "shippable"),
            good: get_str(p, "type").map(|t| t == "good"),
            url: get_str(p, "url").map(str::to_string),
            expand,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("product", |id| find_product(t, id))?;
        let created_of = |k: Key| t.product(k).map_or(i64::MIN, |p| p.created);
        // Products are made on the tenant clock with fresh keys, so `created` grows with the key
        // and the filter is a key range; the check along the walk only guards that reasoning.
        let page = match self.created {
            Some(r) => page.within(r.keys(|a, b| t.products_in((a, b)).map(|p| p.key), created_of)),
            None => page,
        };
        let keep = |k: Key| {
            t.product(k).is_some_and(|p| {
                self.active.is_none_or(|a| a == p.active)
                    && self.created.is_none_or(|r| r.contains(p.created))
                    && self.shippable.is_none_or(|s| p.shippable == Some(s))
                    && self.good.is_none_or(|g| g == (p.kind == ProductType::Good))
                    && self
                        .url
                        .as_deref()
                        .is_none_or(|u| p.url.as_deref() == Some(u))
            })
        };
        let (keys, more) = match (&self.ids, self.active) {
            (Some(ids), _) => {
                let set: BTreeSet<Key> = ids.iter().filter_map(|id| find_product(t, id)).collect();
                list::paginate(|a, b| set.range((a, b)).copied(), &page, keep)
            }
            (None, Some(active)) => {
                let index = t.products_with_active(active);
                list::paginate(|a, b| index.range((a, b)), &page, keep)
            }
            (None, None) => {
                list::paginate(|a, b| t.products_in((a, b)).map(|p| p.key), &page, keep)
            }
        };
        Ok((keys, more, self.expand))
    }

    fn render((keys, more, expand): Self::Output, t: &Tenant) -> Body {
        let data: Vec<ProductView> = keys
            .iter()
            .filter_map(|k| t.product(*k))
            .map(ProductView::of)
            .collect();
        Body::of(
            &ListJson::new(data, more, "/v1/products"),
            expand,
            1024 * (keys.len() + 1),
        )
    }
}

// ---- search ----

/// `GET /v1/products/search`: by `active`, `description`, `metadata`, `name`, `shippable` and
/// `url` (see [`search::Search`]).
pub struct Searched;

impl search::Searchable for Searched {
    const SCHEMA: search::Schema = search::Schema {
        resource: "products",
        fields: &[
            ("active", search::Kind::Token),
            ("description", search::Kind::String),
            ("name", search::Kind::String),
            ("shippable", search::Kind::Token),
            ("url", search::Kind::String),
        ],
        metadata: true,
    };
    const URL: &'static str = "/v1/products/search";
    const EXPANDABLE: &'static [&'static str] = &["data.default_price", "total_count"];

    fn newest_first(t: &Tenant, before: std::ops::Bound<Key>) -> impl Iterator<Item = Key> + '_ {
        t.products_in((std::ops::Bound::Unbounded, before))
            .rev()
            .map(|p| p.key)
    }

    fn field<'t>(t: &'t Tenant, key: Key, f: &search::Field) -> search::Found<'t> {
        use search::Found;
        let Some(p) = t.product(key) else {
            return Found::Missing;
        };
        let flag = |b: bool| Found::Str(if b { "true" } else { "false" });
        match f {
            search::Field::Named("active") => flag(p.active),
            search::Field::Named("description") => {
                p.description.as_deref().map_or(Found::Missing, Found::Str)
            }
            search::Field::Named("name") => Found::Str(&p.name),
            search::Field::Named("shippable") => p.shippable.map_or(Found::Missing, flag),
            search::Field::Named("url") => p.url.as_deref().map_or(Found::Missing, Found::Str),
            search::Field::Named(_) => Found::Missing,
            search::Field::Metadata(k) => p.metadata.get(k).map_or(Found::Missing, Found::Str),
        }
    }

    fn render(t: &Tenant, hits: search::Hits) -> Body {
        let data: Vec<ProductView> = hits
            .keys
            .iter()
            .filter_map(|k| t.product(*k))
            .map(ProductView::of)
            .collect();
        hits.body(data, Self::URL, 1024)
    }
}
