//! What is sold: products, and the prices that say how much and how often.
//!
//! A price belongs to one product and is immutable in what it charges (amounts, tiers, recurrence,
//! meter); only its bookkeeping (active, lookup key, nickname, metadata, tax behaviour) changes. A
//! recurring price is `licensed` (billed in advance for a quantity) or `metered` (billed in arrears
//! for what a [`super::Meter`] aggregated over the period).
//!
//! Products and prices live on the tenant clock, and every one gets a fresh key when it is made, so
//! their `created` times grow with their keys: each list of them is a walk over an ordered set of
//! keys, and a `created` filter is a key range.
//!
//! Amounts are in minor units as exact decimals ([`Price::amount_for`]): a unit amount may carry up
//! to twelve decimal places, so an amount is rounded only where a line of an invoice is made.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeBounds;

use rust_decimal::Decimal;

use super::index::values_in;
use super::{money, ChangeKind, Currency, KeyIndex, Metadata, MeterStatus, Snapshot, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// What kind of thing a product is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductType {
    /// A physical good.
    Good,
    /// A service (the kind subscriptions sell).
    #[default]
    Service,
}

/// A product.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// The id the caller chose at creation, when it did (else the id is rendered from the key).
    pub custom_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Whether it can be bought.
    pub active: bool,
    /// Free text.
    pub description: Option<String>,
    /// The price shown by default; always one of this product's prices.
    #[serde(with = "crate::ids::text::opt")]
    pub default_price: Option<Key>,
    /// Label of one unit (`"seat"`).
    pub unit_label: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// Creation time (the tenant's clock).
    pub created: Nanos,
    /// Last change (the tenant's clock).
    pub updated: Nanos,
    /// Good or service.
    pub kind: ProductType,
    /// Image URLs, in order.
    pub images: Vec<String>,
    /// The names of its marketing features, in order.
    pub marketing_features: Vec<String>,
    /// Whether it is shipped; unset when never said.
    pub shippable: Option<bool>,
    /// Text for the customer's statement.
    pub statement_descriptor: Option<String>,
    /// A tax category's id (stored only: nothing computes tax).
    pub tax_code: Option<String>,
    /// A web page about it.
    pub url: Option<String>,
}

/// How often a recurring price bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// Days.
    Day,
    /// Weeks.
    Week,
    /// Calendar months.
    Month,
    /// Calendar years.
    Year,
}

impl Interval {
    /// The most steps of this interval one period may have: three years' worth.
    pub fn max_count(self) -> u32 {
        match self {
            Interval::Day => 3 * 365,
            Interval::Week => 156,
            Interval::Month => 36,
            Interval::Year => 3,
        }
    }
}

/// What a recurring price bills for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageType {
    /// A quantity, in advance.
    Licensed,
    /// Metered usage, in arrears.
    Metered,
}

/// The recurrence of a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurring {
    /// The step.
    pub interval: Interval,
    /// Steps per period.
    pub interval_count: u32,
    /// Licensed or metered.
    pub usage_type: UsageType,
    /// The meter whose usage a metered price bills.
    #[serde(with = "crate::ids::text::opt")]
    pub meter: Option<Key>,
}

/// How tiers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TiersMode {
    /// Each unit priced by the tier it falls in.
    Graduated,
    /// Every unit priced by the tier the total falls in.
    Volume,
}

/// One tier of a tiered price; amounts in minor units, possibly fractional.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The last quantity in this tier; `None` is unbounded.
    pub up_to: Option<u64>,
    /// Per unit.
    pub unit_amount: Option<Decimal>,
    /// Once for the tier.
    pub flat_amount: Option<Decimal>,
}

/// How a price turns a quantity into an amount.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Quantity × a unit amount (minor units, possibly fractional).
    PerUnit {
        /// Per unit.
        unit_amount: Decimal,
    },
    /// By tiers.
    Tiered {
        /// How tiers combine.
        mode: TiersMode,
        /// In ascending `up_to` order, the last unbounded.
        tiers: Vec<Tier>,
    },
}

/// Rounding of a transformed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Round {
    /// Towards +∞.
    Up,
    /// Towards −∞ (towards 0 for the non-negative quantities usage produces).
    Down,
}

/// Divides the quantity before pricing (bill per 1000 calls, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformQuantity {
    /// Divisor, at least 1.
    pub divide_by: u64,
    /// How the quotient is rounded.
    pub round: Round,
}

/// Whether a price's amounts include tax. Stored and shown; nothing computes tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxBehavior {
    /// Tax is added on top.
    Exclusive,
    /// Tax is part of the amount.
    Inclusive,
    /// Not decided yet; may still become either of the others.
    Unspecified,
}

/// A price.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// What it prices.
    #[serde(with = "crate::ids::text")]
    pub product: Key,
    /// Whether new subscriptions and invoice items may use it.
    pub active: bool,
    /// Currency of its amounts.
    pub currency: Currency,
    /// `None` for a one-time price.
    pub recurring: Option<Recurring>,
    /// How a quantity becomes an amount.
    pub scheme: Scheme,
    /// Applied to the quantity first.
    pub transform_quantity: Option<TransformQuantity>,
    /// The caller's handle, unique among the tenant's prices.
    pub lookup_key: Option<String>,
    /// Display name.
    pub nickname: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// Creation time (the tenant's clock).
    pub created: Nanos,
    /// Whether its amounts include tax.
    pub tax_behavior: Option<TaxBehavior>,
    /// Trial days a subscription to it starts with by default (recurring prices).
    pub trial_period_days: Option<u32>,
}

impl Price {
    /// Stripe's description of an invoice line billing `quantity` of this price for a product
    /// named `product`: `3 × Seats (at $10.00 / month)` (the unit amount and interval only for a
    /// price per unit).
    pub fn line_description(&self, product: &str, quantity: Decimal) -> String {
        let quantity = quantity.normalize();
        let Scheme::PerUnit { unit_amount } = &self.scheme else {
            return format!("{quantity} × {product}");
        };
        let exponent = self.currency.exponent();
        let major = (*unit_amount / Decimal::from(10u64.pow(exponent))).normalize();
        // At least the currency's decimals ($10.00), more when the amount has them ($0.005).
        let shown = if major.scale() < exponent {
            format!("{:.*}", exponent as usize, major)
        } else {
            major.to_string()
        };
        let amount = match self.currency.as_str() {
            "usd" => format!("${shown}"),
            "eur" => format!("€{shown}"),
            "gbp" => format!("£{shown}"),
            other => format!("{shown} {}", other.to_uppercase()),
        };
        let every = self.recurring.map_or(String::new(), |r| {
            let unit = match r.interval {
                Interval::Day => "day",
                Interval::Week => "week",
                Interval::Month => "month",
                Interval::Year => "year",
            };
            if r.interval_count == 1 {
                format!(" / {unit}")
            } else {
                format!(" / every {} {unit}s", r.interval_count)
            }
        });
        format!("{quantity} × {product} (at {amount}{every})")
    }

    /// Whether this is a recurring metered price.
    pub fn is_metered(&self) -> bool {
        self.recurring
            .is_some_and(|r| r.usage_type == UsageType::Metered)
    }

    /// The meter a metered price bills.
    pub fn meter(&self) -> Option<Key> {
        self.recurring.and_then(|r| r.meter)
    }

    /// The quantity the scheme prices: `quantity` divided and rounded by the transform, if any.
    pub fn billed_quantity(&self, quantity: Decimal) -> Decimal {
        match self.transform_quantity {
            Some(t) => {
                let d = quantity / Decimal::from(t.divide_by.max(1));
                match t.round {
                    Round::Up => d.ceil(),
                    Round::Down => d.floor(),
                }
            }
            None => quantity,
        }
    }

    /// The amount, in minor units before rounding, for `quantity` units over one period.
    ///
    /// Per unit: quantity × unit amount. Volume: every unit at the unit amount of the first tier
    /// whose `up_to` the quantity does not exceed, plus that tier's flat amount. Graduated: each
    /// tier prices the units that fall in it (from the previous tier's `up_to`, exclusive, to its
    /// own, inclusive), plus its flat amount when any unit falls in it. A quantity of zero costs
    /// nothing in either mode: a flat amount is charged only for a tier that holds units.
    pub fn amount_for(&self, quantity: Decimal) -> Decimal {
        let q = self.billed_quantity(quantity);
        match &self.scheme {
            // Saturating: a meter's sum times a price can pass what a decimal holds.
            Scheme::PerUnit { unit_amount } => q.saturating_mul(*unit_amount),
            Scheme::Tiered { mode, tiers } => tiered_amount(*mode, tiers, q),
        }
    }

    /// [`Price::amount_for`] rounded to whole minor units, half away from zero: how a line of an
    /// invoice is charged.
    pub fn minor_amount_for(&self, quantity: Decimal) -> i64 {
        money::to_minor_i64(self.amount_for(quantity))
    }
}

/// The amount of tiered pricing for quantity `q` (already transformed).
fn tiered_amount(mode: TiersMode, tiers: &[Tier], q: Decimal) -> Decimal {
    if q <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let unit = |t: &Tier| t.unit_amount.unwrap_or_default();
    let flat = |t: &Tier| t.flat_amount.unwrap_or_default();
    let bound = |t: &Tier| t.up_to.map(Decimal::from);
    match mode {
        TiersMode::Volume => tiers
            .iter()
            .find(|t| bound(t).is_none_or(|b| q <= b))
            .or(tiers.last())
            .map_or(Decimal::ZERO, |t| {
                q.saturating_mul(unit(t)).saturating_add(flat(t))
            }),
        TiersMode::Graduated => {
            let mut total = Decimal::ZERO;
            let mut lower = Decimal::ZERO;
            for t in tiers {
                let upper = bound(t);
                let top = upper.map_or(q, |b| q.min(b));
                let units = top - lower;
                if units > Decimal::ZERO {
                    total =
                        total.saturating_add(units.saturating_mul(unit(t)).saturating_add(flat(t)));
                }
                match upper {
                    Some(b) if q > b => lower = b,
                    _ => break,
                }
            }
            total
        }
    }
}

/// What a new price is made of; the facade has checked it.
#[derive(Debug, Clone)]
pub struct NewPrice {
    /// See [`Price`].
    pub product: Key,
    /// See [`Price`].
    pub active: bool,
    /// See [`Price`].
    pub currency: Currency,
    /// See [`Price`].
    pub recurring: Option<Recurring>,
    /// See [`Price`].
    pub scheme: Scheme,
    /// See [`Price`].
    pub transform_quantity: Option<TransformQuantity>,
    /// See [`Price`].
    pub lookup_key: Option<String>,
    /// See [`Price`].
    pub nickname: Option<String>,
    /// See [`Price`].
    pub metadata: Metadata,
}

/// The terms of a new price beyond what it charges: stored and shown, read by no rule yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct PriceTerms {
    /// See [`Price`].
    pub tax_behavior: Option<TaxBehavior>,
    /// See [`Price`].
    pub trial_period_days: Option<u32>,
}

/// What a new product is made of; the facade has checked it.
#[derive(Debug, Clone, Default)]
pub struct NewProduct {
    /// The id the caller chose, if any; unique among the tenant's products.
    pub custom_id: Option<String>,
    /// See [`Product`].
    pub name: String,
    /// See [`Product`].
    pub active: bool,
    /// See [`Product`].
    pub description: Option<String>,
    /// See [`Product`].
    pub unit_label: Option<String>,
    /// See [`Product`].
    pub metadata: Metadata,
    /// See [`Product`].
    pub kind: ProductType,
    /// See [`Product`].
    pub images: Vec<String>,
    /// See [`Product`].
    pub marketing_features: Vec<String>,
    /// See [`Product`].
    pub shippable: Option<bool>,
    /// See [`Product`].
    pub statement_descriptor: Option<String>,
    /// See [`Product`].
    pub tax_code: Option<String>,
    /// See [`Product`].
    pub url: Option<String>,
}

/// A partial update of a product. `Some(None)` clears a field; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct ProductChanges {
    /// See [`Product`].
    pub name: Option<String>,
    /// See [`Product`].
    pub active: Option<bool>,
    /// See [`Product`].
    pub description: Option<Option<String>>,
    /// Must name one of the product's prices.
    pub default_price: Option<Option<Key>>,
    /// See [`Product`].
    pub unit_label: Option<Option<String>>,
    /// Replaces the whole map when set.
    pub metadata: Option<Metadata>,
    /// See [`Product`].
    pub images: Option<Vec<String>>,
    /// See [`Product`].
    pub marketing_features: Option<Vec<String>>,
    /// See [`Product`].
    pub shippable: Option<bool>,
    /// See [`Product`].
    pub statement_descriptor: Option<Option<String>>,
    /// See [`Product`].
    pub tax_code: Option<Option<String>>,
    /// See [`Product`].
    pub url: Option<Option<String>>,
}

/// A partial update of a price: only its bookkeeping can change. `Some(None)` clears a field.
#[derive(Debug, Clone, Default)]
pub struct PriceChanges {
    /// See [`Price`].
    pub active: Option<bool>,
    /// See [`Price`]; a key another price holds needs `transfer_lookup_key`.
    pub lookup_key: Option<Option<String>>,
    /// See [`Price`].
    pub nickname: Option<Option<String>>,
    /// Replaces the whole map when set.
    pub metadata: Option<Metadata>,
    /// See [`Price`]; once inclusive or exclusive, it stays.
    pub tax_behavior: Option<TaxBehavior>,
}

/// Why the catalogue refused a command. Nothing has changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogError {
    /// No product has that key.
    NoSuchProduct,
    /// No price has that key.
    NoSuchPrice,
    /// Another product already has the id the caller chose.
    ProductIdTaken,
    /// The default price named belongs to another product.
    PriceOfOtherProduct,
    /// A product with prices cannot be deleted.
    ProductHasPrices,
    /// This price (the key) holds the lookup key, and no transfer was asked for.
    LookupKeyTaken(Key),
    /// The price is its product's default, so it cannot be archived.
    DefaultPriceArchived,
    /// An inclusive or exclusive tax behaviour cannot change.
    TaxBehaviorFixed,
    /// The price names a meter that does not exist.
    NoSuchMeter,
    /// The price names a meter that takes no events (deactivated).
    MeterInactive,
}

/// The first price of a new product (see [`Tenant::add_product`]).
#[derive(Debug, Clone)]
pub struct FirstPrice {
    /// The price; its `product` is ignored.
    pub price: NewPrice,
    /// Its terms.
    pub terms: PriceTerms,
    /// Whether its lookup key may be taken from the price that holds it.
    pub transfer_lookup_key: bool,
    /// Whether it becomes the product's default price.
    pub default: bool,
}

/// Products and prices of one tenant, with the indexes their lists walk.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    /// Every product by key.
    pub(super) products: BTreeMap<Key, Product>,
    /// Active products.
    pub(super) products_active: BTreeSet<Key>,
    /// Archived products.
    pub(super) products_inactive: BTreeSet<Key>,
    /// Products by the id their caller chose.
    pub(super) product_ids: HashMap<String, Key>,
    /// Every price by key.
    pub(super) prices: BTreeMap<Key, Price>,
    /// Active prices.
    pub(super) prices_active: BTreeSet<Key>,
    /// Archived prices.
    pub(super) prices_inactive: BTreeSet<Key>,
    /// `(product, price)` pairs: a product's prices are one range.
    pub(super) prices_by_product: BTreeSet<(Key, Key)>,
    /// The price holding each lookup key, active or not.
    pub(super) lookup_keys: HashMap<String, Key>,
}

impl Tenant {
    /// A product.
    pub fn product(&self, key: Key) -> Option<&Product> {
        self.catalog.products.get(&key)
    }

    /// A price.
    pub fn price(&self, key: Key) -> Option<&Price> {
        self.catalog.prices.get(&key)
    }

    /// The product whose caller-chosen id is `id`.
    pub fn product_with_custom_id(&self, id: &str) -> Option<Key> {
        self.catalog.product_ids.get(id).copied()
    }

    /// The products whose keys are in `range`, oldest first.
    pub fn products_in(
        &self,
        range: impl RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &Product> {
        values_in(&self.catalog.products, range)
    }

    /// The products that are active (or, with `false`, archived).
    pub fn products_with_active(&self, active: bool) -> KeyIndex<'_> {
        KeyIndex::of(Some(if active {
            &self.catalog.products_active
        } else {
            &self.catalog.products_inactive
        }))
    }

    /// The prices whose keys are in `range`, oldest first.
    pub fn prices_in(
        &self,
        range: impl RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &Price> {
        values_in(&self.catalog.prices, range)
    }

    /// The prices that are active (or, with `false`, archived).
    pub fn prices_with_active(&self, active: bool) -> KeyIndex<'_> {
        KeyIndex::of(Some(if active {
            &self.catalog.prices_active
        } else {
            &self.catalog.prices_inactive
        }))
    }

    /// The prices of `product`.
    pub fn price_keys_of(&self, product: Key) -> KeyIndex<'_> {
        KeyIndex::of_pairs(&self.catalog.prices_by_product, product)
    }

    /// The price holding lookup key `lookup_key`, active or not.
    pub fn price_with_lookup_key(&self, lookup_key: &str) -> Option<Key> {
        self.catalog.lookup_keys.get(lookup_key).copied()
    }

    /// Creates an active service product named `name`.
    pub fn create_product(&mut self, name: String, metadata: Metadata) -> Key {
        let new = NewProduct {
            name,
            active: true,
            metadata,
            ..NewProduct::default()
        };
        // Without a chosen id and a first price nothing can be refused.
        self.add_product(new, None).map_or(0, |(key, _)| key)
    }

    /// Creates a product and, with `first`, its first price in the same step (the price's
    /// `product` is ignored); returns both keys. Refused, with nothing made, when the chosen id is
    /// taken or the first price would be refused by [`Tenant::add_price`].
    pub fn add_product(
        &mut self,
        new: NewProduct,
        first: Option<FirstPrice>,
    ) -> Result<(Key, Option<Key>), CatalogError> {
        if let Some(id) = &new.custom_id {
            if self.catalog.product_ids.contains_key(id) {
                return Err(CatalogError::ProductIdTaken);
            }
        }
        if let Some(f) = &first {
            self.check_new_price(&f.price, f.transfer_lookup_key)?;
        }
        let key = self.next_key();
        let now = self.tenant_now();
        let product = Product {
            key,
            custom_id: new.custom_id,
            name: new.name,
            active: new.active,
            description: new.description,
            default_price: None,
            unit_label: new.unit_label,
            metadata: new.metadata,
            created: now,
            updated: now,
            kind: new.kind,
            images: new.images,
            marketing_features: new.marketing_features,
            shippable: new.shippable,
            statement_descriptor: new.statement_descriptor,
            tax_code: new.tax_code,
            url: new.url,
        };
        self.index_product(&product, true);
        self.catalog.products.insert(key, product);
        let created = self.change_mark();
        let after = self.product_snapshot(key);
        self.record_some(ChangeKind::Created, now, after, None);
        let Some(first) = first else {
            return Ok((key, None));
        };
        let mut price = first.price;
        price.product = key;
        let price = self.insert_price(price, first.terms);
        if first.default {
            if let Some(p) = self.catalog.products.get_mut(&key) {
                p.default_price = Some(price);
            }
            // The product is made with its default price in one step: its creation shows it.
            if let Some(after) = self.product_snapshot(key) {
                self.retake(created, after);
            }
        }
        Ok((key, Some(price)))
    }

    /// Applies `changes` to a product.
    pub fn update_product(
        &mut self,
        key: Key,
        changes: ProductChanges,
    ) -> Result<(), CatalogError> {
        if !self.catalog.products.contains_key(&key) {
            return Err(CatalogError::NoSuchProduct);
        }
        if let Some(Some(price)) = changes.default_price {
            match self.price(price) {
                None => return Err(CatalogError::NoSuchPrice),
                Some(p) if p.product != key => return Err(CatalogError::PriceOfOtherProduct),
                Some(_) => {}
            }
        }
        let now = self.tenant_now();
        let before = self.product_snapshot(key);
        let Some(mut p) = self.catalog.products.remove(&key) else {
            return Err(CatalogError::NoSuchProduct);
        };
        self.index_product(&p, false);
        if let Some(v) = changes.name {
            p.name = v;
        }
        if let Some(v) = changes.active {
            p.active = v;
        }
        if let Some(v) = changes.description {
            p.description = v;
        }
        if let Some(v) = changes.default_price {
            p.default_price = v;
        }
        if let Some(v) = changes.unit_label {
            p.unit_label = v;
        }
        if let Some(v) = changes.metadata {
            p.metadata = v;
        }
        if let Some(v) = changes.images {
            p.images = v;
        }
        if let Some(v) = changes.marketing_features {
            p.marketing_features = v;
        }
        if let Some(v) = changes.shippable {
            p.shippable = Some(v);
        }
        if let Some(v) = changes.statement_descriptor {
            p.statement_descriptor = v;
        }
        if let Some(v) = changes.tax_code {
            p.tax_code = v;
        }
        if let Some(v) = changes.url {
            p.url = v;
        }
        p.updated = now;
        self.index_product(&p, true);
        self.catalog.products.insert(key, p);
        let after = self.product_snapshot(key);
        self.record_some(ChangeKind::Updated, now, after, before);
        Ok(())
    }

    /// Deletes a product that has no prices (a price can never be deleted, so a product that ever
    /// had one stays). Its chosen id is free again.
    pub fn delete_product(&mut self, key: Key) -> Result<(), CatalogError> {
        if !self.catalog.products.contains_key(&key) {
            return Err(CatalogError::NoSuchProduct);
        }
        if !self.price_keys_of(key).is_empty() {
            return Err(CatalogError::ProductHasPrices);
        }
        if let Some(p) = self.catalog.products.remove(&key) {
            self.index_product(&p, false);
            let now = self.tenant_now();
            self.record(
                ChangeKind::Deleted,
                now,
                Snapshot::Product(Box::new(p)),
                None,
            );
        }
        Ok(())
    }

    /// Creates a price of an existing product, with no terms. A lookup key another price holds is
    /// moved to the new price.
    pub fn create_price(&mut self, new: NewPrice) -> Key {
        self.insert_price(new, PriceTerms::default())
    }

    /// Creates a price. Refused when its product does not exist, its meter does not exist or is
    /// inactive, or its lookup key is held by another price and `transfer_lookup_key` is false (with
    /// it, the key moves to the new price in the same step).
    pub fn add_price(
        &mut self,
        new: NewPrice,
        terms: PriceTerms,
        transfer_lookup_key: bool,
    ) -> Result<Key, CatalogError> {
        if !self.catalog.products.contains_key(&new.product) {
            return Err(CatalogError::NoSuchProduct);
        }
        self.check_new_price(&new, transfer_lookup_key)?;
        Ok(self.insert_price(new, terms))
    }

    /// What refuses a new price whatever its product: a meter that does not exist or is inactive,
    /// a lookup key held by another price (unless transferred).
    fn check_new_price(
        &self,
        new: &NewPrice,
        transfer_lookup_key: bool,
    ) -> Result<(), CatalogError> {
        if let Some(meter) = new.recurring.and_then(|r| r.meter) {
            match self.meter(meter) {
                None => return Err(CatalogError::NoSuchMeter),
                Some(m) if m.status != MeterStatus::Active => {
                    return Err(CatalogError::MeterInactive)
                }
                Some(_) => {}
            }
        }
        self.check_lookup_key(new.lookup_key.as_deref(), None, transfer_lookup_key)
    }

    /// Applies `changes` to a price's bookkeeping.
    pub fn update_price(
        &mut self,
        key: Key,
        changes: PriceChanges,
        transfer_lookup_key: bool,
    ) -> Result<(), CatalogError> {
        let Some(price) = self.catalog.prices.get(&key) else {
            return Err(CatalogError::NoSuchPrice);
        };
        if changes.active == Some(false)
            && price.active
            && self.product(price.product).and_then(|p| p.default_price) == Some(key)
        {
            return Err(CatalogError::DefaultPriceArchived);
        }
        if let Some(new) = changes.tax_behavior {
            if matches!(
                price.tax_behavior,
                Some(old @ (TaxBehavior::Inclusive | TaxBehavior::Exclusive)) if old != new
            ) {
                return Err(CatalogError::TaxBehaviorFixed);
            }
        }
        if let Some(Some(lookup_key)) = &changes.lookup_key {
            self.check_lookup_key(Some(lookup_key), Some(key), transfer_lookup_key)?;
        }
        let before = self.price_snapshot(key);
        let Some(mut price) = self.catalog.prices.remove(&key) else {
            return Err(CatalogError::NoSuchPrice);
        };
        self.index_price(&price, false);
        if let Some(v) = changes.active {
            price.active = v;
        }
        if let Some(v) = changes.lookup_key {
            if let Some(k) = &v {
                self.take_lookup_key(k);
            }
            price.lookup_key = v;
        }
        if let Some(v) = changes.nickname {
            price.nickname = v;
        }
        if let Some(v) = changes.metadata {
            price.metadata = v;
        }
        if let Some(v) = changes.tax_behavior {
            price.tax_behavior = Some(v);
        }
        self.index_price(&price, true);
        self.catalog.prices.insert(key, price);
        let now = self.tenant_now();
        let after = self.price_snapshot(key);
        self.record_some(ChangeKind::Updated, now, after, before);
        Ok(())
    }

    /// Whether `lookup_key` may go to the price `to` (`None`: a new one): free, already `to`'s, or
    /// held by another price and transferred.
    fn check_lookup_key(
        &self,
        lookup_key: Option<&str>,
        to: Option<Key>,
        transfer: bool,
    ) -> Result<(), CatalogError> {
        match lookup_key.and_then(|k| self.price_with_lookup_key(k)) {
            Some(holder) if Some(holder) != to && !transfer => {
                Err(CatalogError::LookupKeyTaken(holder))
            }
            _ => Ok(()),
        }
    }

    /// Clears `lookup_key` from whichever price holds it.
    fn take_lookup_key(&mut self, lookup_key: &str) {
        if let Some(holder) = self.catalog.lookup_keys.remove(lookup_key) {
            if let Some(p) = self.catalog.prices.get_mut(&holder) {
                p.lookup_key = None;
            }
        }
    }

    /// Stores a new price, moving its lookup key from any price that holds it.
    fn insert_price(&mut self, new: NewPrice, terms: PriceTerms) -> Key {
        if let Some(k) = &new.lookup_key {
            self.take_lookup_key(k);
        }
        let key = self.next_key();
        let price = Price {
            key,
            product: new.product,
            active: new.active,
            currency: new.currency,
            recurring: new.recurring,
            scheme: new.scheme,
            transform_quantity: new.transform_quantity,
            lookup_key: new.lookup_key,
            nickname: new.nickname,
            metadata: new.metadata,
            created: self.tenant_now(),
            tax_behavior: terms.tax_behavior,
            trial_period_days: terms.trial_period_days,
        };
        let at = price.created;
        self.index_price(&price, true);
        self.catalog.prices.insert(key, price);
        let after = self.price_snapshot(key);
        self.record_some(ChangeKind::Created, at, after, None);
        key
    }

    pub(super) fn index_product(&mut self, p: &Product, add: bool) {
        let c = &mut self.catalog;
        let set = if p.active {
            &mut c.products_active
        } else {
            &mut c.products_inactive
        };
        if add {
            set.insert(p.key);
            if let Some(id) = &p.custom_id {
                c.product_ids.insert(id.clone(), p.key);
            }
        } else {
            set.remove(&p.key);
            if let Some(id) = &p.custom_id {
                c.product_ids.remove(id);
            }
        }
    }

    pub(super) fn index_price(&mut self, p: &Price, add: bool) {
        let c = &mut self.catalog;
        let set = if p.active {
            &mut c.prices_active
        } else {
            &mut c.prices_inactive
        };
        if add {
            set.insert(p.key);
            c.prices_by_product.insert((p.product, p.key));
            if let Some(k) = &p.lookup_key {
                c.lookup_keys.insert(k.clone(), p.key);
            }
        } else {
            set.remove(&p.key);
            c.prices_by_product.remove(&(p.product, p.key));
            if let Some(k) = &p.lookup_key {
                if c.lookup_keys.get(k) == Some(&p.key) {
                    c.lookup_keys.remove(k);
                }
            }
        }
    }

    /// Checks that the catalogue's indexes agree with its products and prices (see
    /// [`Tenant::check_indexes`]).
    pub(super) fn check_catalog_indexes(&self) -> Result<(), String> {
        let c = &self.catalog;
        let fail = |why: String| Err(why);
        for p in c.products.values() {
            let (mine, other) = if p.active {
                (&c.products_active, &c.products_inactive)
            } else {
                (&c.products_inactive, &c.products_active)
            };
            if !mine.contains(&p.key) || other.contains(&p.key) {
                return fail(format!("product {} is in the wrong active list", p.key));
            }
            if let Some(id) = &p.custom_id {
                if c.product_ids.get(id) != Some(&p.key) {
                    return fail(format!("product {} not found by its chosen id", p.key));
                }
            }
            if let Some(d) = p.default_price {
                if c.prices.get(&d).map(|x| x.product) != Some(p.key) {
                    return fail(format!("product {} has a default price not its own", p.key));
                }
            }
        }
        if c.products_active.len() + c.products_inactive.len() != c.products.len() {
            return fail("the product lists name unknown products".into());
        }
        if c.product_ids.values().any(|k| !c.products.contains_key(k)) {
            return fail("a chosen id names an unknown product".into());
        }
        let mut named = 0;
        for p in c.prices.values() {
            let (mine, other) = if p.active {
                (&c.prices_active, &c.prices_inactive)
            } else {
                (&c.prices_inactive, &c.prices_active)
            };
            if !mine.contains(&p.key) || other.contains(&p.key) {
                return fail(format!("price {} is in the wrong active list", p.key));
            }
            if !c.prices_by_product.contains(&(p.product, p.key)) {
                return fail(format!("price {} missing from its product's", p.key));
            }
            if let Some(k) = &p.lookup_key {
                if c.lookup_keys.get(k) != Some(&p.key) {
                    return fail(format!("price {} not found by its lookup key", p.key));
                }
                named += 1;
            }
        }
        if c.prices_active.len() + c.prices_inactive.len() != c.prices.len()
            || c.prices_by_product.len() != c.prices.len()
        {
            return fail("the price lists name unknown prices".into());
        }
        if c.lookup_keys.len() != named {
            return fail("a lookup key names a price that does not hold it".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tenant;

    fn d(s: &str) -> Decimal {
        s.parse().expect("a decimal")
    }

    fn price(scheme: Scheme, transform: Option<TransformQuantity>) -> Price {
        Price {
            key: 1,
            product: 2,
            active: true,
            currency: Currency::parse("usd").expect("usd"),
            recurring: None,
            scheme,
            transform_quantity: transform,
            lookup_key: None,
            nickname: None,
            metadata: Metadata::new(),
            created: 0,
            tax_behavior: None,
            trial_period_days: None,
        }
    }

    fn tier(up_to: Option<u64>, unit: &str, flat: &str) -> Tier {
        let amount = |s: &str| (!s.is_empty()).then(|| d(s));
        Tier {
            up_to,
            unit_amount: amount(unit),
            flat_amount: amount(flat),
        }
    }

    #[test]
    fn amounts_past_what_a_decimal_holds_saturate() {
        let huge = Decimal::MAX / Decimal::from(10);
        let per_unit = price(
            Scheme::PerUnit {
                unit_amount: d("99999999"),
            },
            None,
        );
        assert_eq!(per_unit.amount_for(huge), Decimal::MAX);
        assert_eq!(per_unit.minor_amount_for(huge), i64::MAX);
        for mode in [TiersMode::Volume, TiersMode::Graduated] {
            let tiered = price(
                Scheme::Tiered {
                    mode,
                    tiers: vec![tier(Some(5), "10", "100"), tier(None, "99999999", "1")],
                },
                None,
            );
            assert_eq!(tiered.amount_for(huge), Decimal::MAX, "{mode:?}");
        }
    }

    /// 0–5 at 10 (flat 100), 6–10 at 5 (flat 50), above at 1.
    fn three_tiers(mode: TiersMode) -> Price {
        price(
            Scheme::Tiered {
                mode,
                tiers: vec![
                    tier(Some(5), "10", "100"),
                    tier(Some(10), "5", "50"),
                    tier(None, "1", ""),
                ],
            },
            None,
        )
    }

    #[test]
    fn per_unit_keeps_fractions_of_a_minor_unit() {
        let p = price(
            Scheme::PerUnit {
                unit_amount: d("0.125"),
            },
            None,
        );
        assert_eq!(p.amount_for(d("3")), d("0.375"));
        assert_eq!(p.minor_amount_for(d("3")), 0);
        assert_eq!(
            p.minor_amount_for(d("4")),
            1,
            "0.5 rounds half away from zero"
        );
        assert_eq!(p.amount_for(d("2.5")), d("0.3125"));
        assert_eq!(p.amount_for(Decimal::ZERO), Decimal::ZERO);
    }

    #[test]
    fn graduated_prices_each_unit_in_its_tier() {
        let p = three_tiers(TiersMode::Graduated);
        assert_eq!(p.amount_for(d("0")), d("0"), "no units, no flat amount");
        assert_eq!(p.amount_for(d("1")), d("110"));
        assert_eq!(p.amount_for(d("5")), d("150"));
        // 5 × 10 + 100, then 1 × 5 + 50.
        assert_eq!(p.amount_for(d("6")), d("205"));
        assert_eq!(p.amount_for(d("10")), d("225"));
        // … then 2 × 1 in the unbounded tier, which has no flat amount.
        assert_eq!(p.amount_for(d("12")), d("227"));
        // Fractional usage splits at the bounds too.
        assert_eq!(p.amount_for(d("5.5")), d("202.5"));
    }

    #[test]
    fn volume_prices_every_unit_by_the_tier_of_the_total() {
        let p = three_tiers(TiersMode::Volume);
        assert_eq!(p.amount_for(d("0")), d("0"));
        assert_eq!(p.amount_for(d("5")), d("150"), "5 × 10 + 100");
        assert_eq!(p.amount_for(d("6")), d("80"), "6 × 5 + 50");
        assert_eq!(p.amount_for(d("10")), d("100"));
        assert_eq!(p.amount_for(d("11")), d("11"), "11 × 1");
        assert_eq!(p.amount_for(d("5.5")), d("77.5"));
    }

    #[test]
    fn flat_only_and_decimal_tiers() {
        let p = price(
            Scheme::Tiered {
                mode: TiersMode::Graduated,
                tiers: vec![tier(Some(1000), "", "2000"), tier(None, "0.05", "")],
            },
            None,
        );
        assert_eq!(p.amount_for(d("1")), d("2000"));
        assert_eq!(p.amount_for(d("1000")), d("2000"));
        assert_eq!(p.amount_for(d("1001")), d("2000.05"));
        assert_eq!(p.minor_amount_for(d("1010")), 2001, "2000.5 rounds up");
    }

    #[test]
    fn transform_divides_then_rounds() {
        let per_1000 = |round| {
            price(
                Scheme::PerUnit {
                    unit_amount: d("30"),
                },
                Some(TransformQuantity {
                    divide_by: 1000,
                    round,
                }),
            )
        };
        let up = per_1000(Round::Up);
        assert_eq!(up.amount_for(d("0")), d("0"));
        assert_eq!(up.amount_for(d("1")), d("30"));
        assert_eq!(up.amount_for(d("1000")), d("30"));
        assert_eq!(up.amount_for(d("1001")), d("60"));
        let down = per_1000(Round::Down);
        assert_eq!(down.amount_for(d("999")), d("0"));
        assert_eq!(down.amount_for(d("1999.9")), d("30"));
        assert_eq!(down.billed_quantity(d("2000")), d("2"));
    }

    fn new_price(product: Key, lookup_key: Option<&str>) -> NewPrice {
        NewPrice {
            product,
            active: true,
            currency: Currency::parse("usd").expect("usd"),
            recurring: None,
            scheme: Scheme::PerUnit {
                unit_amount: d("100"),
            },
            transform_quantity: None,
            lookup_key: lookup_key.map(str::to_string),
            nickname: None,
            metadata: Metadata::new(),
        }
    }

    #[test]
    fn lookup_keys_are_unique_and_move_only_when_asked() {
        let mut t = Tenant::new("sk_test_catalog", Some(1));
        let product = t.create_product("Widget".into(), Metadata::new());
        let first = t
            .add_price(
                new_price(product, Some("std")),
                PriceTerms::default(),
                false,
            )
            .expect("free key");
        assert_eq!(
            t.add_price(
                new_price(product, Some("std")),
                PriceTerms::default(),
                false
            ),
            Err(CatalogError::LookupKeyTaken(first))
        );
        let second = t
            .add_price(new_price(product, Some("std")), PriceTerms::default(), true)
            .expect("transferred");
        assert_eq!(t.price_with_lookup_key("std"), Some(second));
        assert_eq!(t.price(first).and_then(|p| p.lookup_key.clone()), None);
        // Back again by update, and a price may keep its own key.
        t.update_price(
            first,
            PriceChanges {
                lookup_key: Some(Some("std".into())),
                ..PriceChanges::default()
            },
            true,
        )
        .expect("transferred back");
        assert_eq!(t.price_with_lookup_key("std"), Some(first));
        t.update_price(
            first,
            PriceChanges {
                lookup_key: Some(Some("std".into())),
                ..PriceChanges::default()
            },
            false,
        )
        .expect("its own key");
        t.check_indexes().expect("indexes in step");
    }

    #[test]
    fn products_with_prices_stay_and_default_prices_stay_active() {
        let mut t = Tenant::new("sk_test_catalog", Some(1));
        let product = t
            .add_product(
                NewProduct {
                    custom_id: Some("gold".into()),
                    name: "Gold".into(),
                    active: true,
                    ..NewProduct::default()
                },
                Some(FirstPrice {
                    price: new_price(0, None),
                    terms: PriceTerms::default(),
                    transfer_lookup_key: false,
                    default: true,
                }),
            )
            .expect("made")
            .0;
        let default = t
            .product(product)
            .and_then(|p| p.default_price)
            .expect("default");
        assert_eq!(t.price(default).map(|p| p.product), Some(product));
        assert_eq!(t.product_with_custom_id("gold"), Some(product));
        assert_eq!(
            t.add_product(
                NewProduct {
                    custom_id: Some("gold".into()),
                    ..NewProduct::default()
                },
                None
            ),
            Err(CatalogError::ProductIdTaken)
        );
        assert_eq!(
            t.delete_product(product),
            Err(CatalogError::ProductHasPrices)
        );
        let archive = PriceChanges {
            active: Some(false),
            ..PriceChanges::default()
        };
        assert_eq!(
            t.update_price(default, archive.clone(), false),
            Err(CatalogError::DefaultPriceArchived)
        );
        t.update_product(
            product,
            ProductChanges {
                default_price: Some(None),
                ..ProductChanges::default()
            },
        )
        .expect("cleared");
        t.update_price(default, archive, false).expect("archived");
        assert!(t.prices_with_active(false).contains(default));
        let bare = t.create_product("Bare".into(), Metadata::new());
        t.delete_product(bare).expect("no prices");
        assert!(t.product(bare).is_none());
        t.check_indexes().expect("indexes in step");
    }

    #[test]
    fn a_metered_price_needs_an_existing_active_meter() {
        use crate::model::{Formula, NewMeter};
        let mut t = Tenant::new("sk_test_catalog", Some(1));
        let product = t.create_product("Calls".into(), Metadata::new());
        let meter = t.create_meter(NewMeter {
            display_name: "Calls".into(),
            event_name: "calls".into(),
            formula: Formula::Sum,
            customer_key: "stripe_customer_id".into(),
            value_key: "value".into(),
            event_time_window: None,
        });
        let metered = |meter| NewPrice {
            recurring: Some(Recurring {
                interval: Interval::Month,
                interval_count: 1,
                usage_type: UsageType::Metered,
                meter: Some(meter),
            }),
            ..new_price(product, None)
        };
        assert_eq!(
            t.add_price(metered(meter + 1_000), PriceTerms::default(), false),
            Err(CatalogError::NoSuchMeter)
        );
        let key = t
            .add_price(metered(meter), PriceTerms::default(), false)
            .expect("an active meter");
        assert!(t.price(key).is_some_and(Price::is_metered));
        assert_eq!(t.price(key).and_then(Price::meter), Some(meter));
        // A deactivated meter takes no new prices.
        t.deactivate_meter(meter).expect("an active meter");
        assert_eq!(
            t.add_price(metered(meter), PriceTerms::default(), false),
            Err(CatalogError::MeterInactive)
        );
        t.check_indexes().expect("indexes in step");
    }
}
