//! Invoice items: one-off charges waiting for an invoice (a credit pack a customer buys, say). A
//! pending item is swept into the customer's next invoice that includes pending items; deleting
//! that draft makes it pending again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;

use super::invoice::{DraftLine, LineSource};
use super::{Currency, Metadata, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// An invoice item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceItem {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Who will be billed.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
    /// Total amount in minor units (quantity × unit amount).
    pub amount: i64,
    /// Currency.
    pub currency: Currency,
    /// The catalog price billed, if any.
    #[serde(with = "crate::ids::text::opt")]
    pub price: Option<Key>,
    /// That price's product.
    #[serde(with = "crate::ids::text::opt")]
    pub product: Option<Key>,
    /// Units.
    pub quantity: u64,
    /// Per unit, minor units (possibly fractional).
    pub unit_amount: Decimal,
    /// Free text.
    pub description: Option<String>,
    /// Key–value metadata.
    pub metadata: Metadata,
    /// The invoice it was swept into, if any.
    #[serde(with = "crate::ids::text::opt")]
    pub invoice: Option<Key>,
    /// Creation time (the customer's clock).
    pub created: Nanos,
}

/// What a new invoice item is made of; the facade has checked it.
#[derive(Debug, Clone)]
pub struct NewInvoiceItem {
    /// See [`InvoiceItem`].
    pub customer: Key,
    /// See [`InvoiceItem`].
    pub currency: Currency,
    /// See [`InvoiceItem`].
    pub price: Option<Key>,
    /// See [`InvoiceItem`].
    pub product: Option<Key>,
    /// See [`InvoiceItem`].
    pub quantity: u64,
    /// See [`InvoiceItem`].
    pub unit_amount: Decimal,
    /// See [`InvoiceItem`].
    pub description: Option<String>,
    /// See [`InvoiceItem`].
    pub metadata: Metadata,
}

/// Why an invoice item refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceItemError {
    /// No such item.
    NotFound,
    /// It is on a finalized invoice.
    Invoiced,
}

/// Invoice items of one tenant.
#[derive(Debug, Default)]
pub(super) struct InvoiceItems {
    /// Every item by key.
    pub(super) items: BTreeMap<Key, InvoiceItem>,
    /// Items per customer.
    pub(super) by_customer: HashMap<Key, BTreeSet<Key>>,
    /// Items per customer not yet on an invoice.
    pub(super) pending: HashMap<Key, BTreeSet<Key>>,
}

impl Tenant {
    /// An invoice item.
    pub fn invoice_item(&self, key: Key) -> Option<&InvoiceItem> {
        self.invoice_items.items.get(&key)
    }

    /// The invoice items whose keys are in `range`, oldest first.
    pub fn invoice_items_in(
        &self,
        range: impl std::ops::RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &InvoiceItem> {
        super::index::values_in(&self.invoice_items.items, range)
    }

    /// The keys of a customer's invoice items (all, or only those still pending).
    pub fn invoice_item_keys_of(&self, customer: Key, pending: bool) -> Vec<Key> {
        let map = if pending {
            &self.invoice_items.pending
        } else {
            &self.invoice_items.by_customer
        };
        map.get(&customer)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Creates a pending invoice item at the customer's now.
    pub fn create_invoice_item(&mut self, new: NewInvoiceItem) -> Key {
        let key = self.next_key();
        let created = self.now_for(new.customer);
        let amount = super::invoice::minor_units(new.unit_amount * Decimal::from(new.quantity));
        self.invoice_items
            .by_customer
            .entry(new.customer)
            .or_default()
            .insert(key);
        self.invoice_items
            .pending
            .entry(new.customer)
            .or_default()
            .insert(key);
        self.invoice_items.items.insert(
            key,
            InvoiceItem {
                key,
                customer: new.customer,
                amount,
                currency: new.currency,
                price: new.price,
                product: new.product,
                quantity: new.quantity,
                unit_amount: new.unit_amount,
                description: new.description,
                metadata: new.metadata,
                invoice: None,
                created,
            },
        );
        key
    }

    /// Deletes an item that is pending or on a draft (taking it off the draft).
    pub fn delete_invoice_item(&mut self, key: Key) -> Result<(), InvoiceItemError> {
        let item = self
            .invoice_items
            .items
            .get(&key)
            .ok_or(InvoiceItemError::NotFound)?;
        if let Some(inv) = item.invoice {
            if !self.remove_draft_line(inv, LineSource::InvoiceItem(key)) {
                return Err(InvoiceItemError::Invoiced);
            }
        }
        let item = self.invoice_items.items.remove(&key).expect("found above");
        if let Some(s) = self.invoice_items.by_customer.get_mut(&item.customer) {
            s.remove(&key);
        }
        if let Some(s) = self.invoice_items.pending.get_mut(&item.customer) {
            s.remove(&key);
        }
        Ok(())
    }

    /// Takes a customer's pending items in `currency` onto invoice `invoice`, as draft lines.
    pub(super) fn take_pending_items(
        &mut self,
        customer: Key,
        currency: Currency,
        invoice: Key,
        now: Nanos,
    ) -> Vec<DraftLine> {
        let keys: Vec<Key> = self
            .invoice_items
            .pending
            .get(&customer)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let mut lines = Vec::new();
        // Stripe lists pending items newest first on the invoice.
        for key in keys.into_iter().rev() {
            let Some(item) = self.invoice_items.items.get_mut(&key) else {
                continue;
            };
            if item.currency != currency {
                continue;
            }
            item.invoice = Some(invoice);
            lines.push(DraftLine {
                amount: item.amount,
                price_key: item.price,
                product: item.product,
                quantity: Decimal::from(item.quantity),
                description: item.description.clone(),
                period: (item.created, now),
                source: LineSource::InvoiceItem(key),
                usage: None,
                creditable: false,
                metadata: item.metadata.clone(),
            });
            if let Some(s) = self.invoice_items.pending.get_mut(&customer) {
                s.remove(&key);
            }
        }
        lines
    }

    /// Makes an item pending again (its draft was deleted).
    pub(super) fn release_invoice_item(&mut self, key: Key) {
        if let Some(item) = self.invoice_items.items.get_mut(&key) {
            item.invoice = None;
            self.invoice_items
                .pending
                .entry(item.customer)
                .or_default()
                .insert(key);
        }
    }

    /// Checks that every item is listed under its customer, pending exactly when it is on no
    /// invoice, and that an invoiced item's invoice exists and has its line (see
    /// [`Tenant::check_indexes`]).
    pub(super) fn check_invoice_item_indexes(&self) -> Result<(), String> {
        let ii = &self.invoice_items;
        let listed: usize = ii.by_customer.values().map(|s| s.len()).sum();
        if listed != ii.items.len() {
            return Err(format!(
                "{listed} items listed by customer, {} exist",
                ii.items.len()
            ));
        }
        for item in ii.items.values() {
            let by_customer = ii
                .by_customer
                .get(&item.customer)
                .is_some_and(|s| s.contains(&item.key));
            let pending = ii
                .pending
                .get(&item.customer)
                .is_some_and(|s| s.contains(&item.key));
            if !by_customer || pending != item.invoice.is_none() {
                return Err(format!("invoice item {} misindexed", item.key));
            }
            if let Some(inv) = item.invoice {
                let on_it = self.invoices.get(&inv).is_some_and(|i| {
                    i.lines
                        .iter()
                        .any(|l| l.source == LineSource::InvoiceItem(item.key))
                });
                if !on_it {
                    return Err(format!("invoice item {} not on its invoice", item.key));
                }
            }
        }
        Ok(())
    }
}
