//! What is sold: products, and the prices that say how much and how often.
//!
//! A price belongs to one product and is immutable in what it charges (amounts, tiers, recurrence,
//! meter); only its bookkeeping (active, lookup key, nickname, metadata) changes. A recurring price
//! is `licensed` (billed in advance for a quantity) or `metered` (billed in arrears for what a
//! [`super::Meter`] aggregated over the period).

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::{Currency, Metadata, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// A product.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// Identity.
    pub key: Key,
    /// The id the caller chose at creation, when it did (else the id is rendered from the key).
    pub custom_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Whether it can be bought.
    pub active: bool,
    /// Free text.
    pub description: Option<String>,
    /// The price shown by default.
    pub default_price: Option<Key>,
    /// Label of one unit (`"seat"`).
    pub unit_label: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// Creation time (the tenant's clock).
    pub created: Nanos,
    /// Last change (the tenant's clock).
    pub updated: Nanos,
}

/// How often a recurring price bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// What a recurring price bills for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageType {
    /// A quantity, in advance.
    Licensed,
    /// Metered usage, in arrears.
    Metered,
}

/// The recurrence of a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recurring {
    /// The step.
    pub interval: Interval,
    /// Steps per period.
    pub interval_count: u32,
    /// Licensed or metered.
    pub usage_type: UsageType,
    /// The meter whose usage a metered price bills.
    pub meter: Option<Key>,
}

/// How tiers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TiersMode {
    /// Each unit priced by the tier it falls in.
    Graduated,
    /// Every unit priced by the tier the total falls in.
    Volume,
}

/// One tier of a tiered price; amounts in minor units, possibly fractional.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// The last quantity in this tier; `None` is unbounded.
    pub up_to: Option<u64>,
    /// Per unit.
    pub unit_amount: Option<Decimal>,
    /// Once for the tier.
    pub flat_amount: Option<Decimal>,
}

/// How a price turns a quantity into an amount.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Towards +∞.
    Up,
    /// Towards 0.
    Down,
}

/// Divides the quantity before pricing (bill per 1000 calls, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformQuantity {
    /// Divisor, at least 1.
    pub divide_by: u64,
    /// How the quotient is rounded.
    pub round: Round,
}

/// A price.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// Identity.
    pub key: Key,
    /// What it prices.
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
}

impl Price {
    /// Whether this is a recurring metered price.
    pub fn is_metered(&self) -> bool {
        self.recurring
            .is_some_and(|r| r.usage_type == UsageType::Metered)
    }

    /// The meter a metered price bills.
    pub fn meter(&self) -> Option<Key> {
        self.recurring.and_then(|r| r.meter)
    }

    /// The amount, in minor units before rounding, for `quantity` units over one period.
    pub fn amount_for(&self, quantity: Decimal) -> Decimal {
        let q = match self.transform_quantity {
            Some(t) => {
                let d = quantity / Decimal::from(t.divide_by.max(1));
                match t.round {
                    Round::Up => d.ceil(),
                    Round::Down => d.floor(),
                }
            }
            None => quantity,
        };
        match &self.scheme {
            Scheme::PerUnit { unit_amount } => q * unit_amount,
            // Filled in with the tier rules.
            Scheme::Tiered { .. } => Decimal::ZERO,
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

/// Products and prices of one tenant.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    /// Every product by key.
    pub(super) products: BTreeMap<Key, Product>,
    /// Every price by key.
    pub(super) prices: BTreeMap<Key, Price>,
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

    /// Creates a product named `name`.
    pub fn create_product(&mut self, name: String, metadata: Metadata) -> Key {
        let key = self.next_key();
        let now = self.tenant_now();
        self.catalog.products.insert(
            key,
            Product {
                key,
                custom_id: None,
                name,
                active: true,
                description: None,
                default_price: None,
                unit_label: None,
                metadata,
                created: now,
                updated: now,
            },
        );
        key
    }

    /// Creates a price.
    pub fn create_price(&mut self, new: NewPrice) -> Key {
        let key = self.next_key();
        let now = self.tenant_now();
        self.catalog.prices.insert(
            key,
            Price {
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
                created: now,
            },
        );
        key
    }
}
