//! Invoice items: one-off charges waiting for an invoice (a credit pack a customer buys, say). A
//! pending item goes onto the customer's next invoice made at or after its creation, in its
//! currency: an invoice of one of the customer's subscriptions (its first, each cycle's, a
//! cancellation's last), or a one-off invoice that includes pending items. An item tied to a
//! subscription waits for that subscription's next invoice. Deleting a one-off draft makes its
//! items pending again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;

use super::invoice::{DraftLine, LineSource};
use super::{ChangeKind, Currency, Metadata, Snapshot, Tenant};
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
    /// The customer's subscription whose next invoice it waits for; `None`: the customer's next
    /// invoice, whichever makes it.
    #[serde(default, with = "crate::ids::text::opt")]
    pub subscription: Option<Key>,
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
    /// See [`InvoiceItem`]; the facade has checked that it is the customer's and has not ended.
    pub subscription: Option<Key>,
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
        let amount = super::invoice::minor_units(
            new.unit_amount.saturating_mul(Decimal::from(new.quantity)),
        );
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
                subscription: new.subscription,
                created,
            },
        );
        let after = self.invoice_item_snapshot(key);
        self.record_some(ChangeKind::Created, created, after, None);
        key
    }

    /// A copy of the invoice item `key`, if it exists.
    fn invoice_item_snapshot(&self, key: Key) -> Option<Snapshot> {
        Some(Snapshot::InvoiceItem(Box::new(
            self.invoice_item(key)?.clone(),
        )))
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
        let at = self.now_for(item.customer);
        self.record(
            ChangeKind::Deleted,
            at,
            Snapshot::InvoiceItem(Box::new(item)),
            None,
        );
        Ok(())
    }

    /// The currency of `customer`'s newest pending invoice item that waits for no subscription in
    /// particular, if it has one.
    pub(super) fn newest_pending_currency(&self, customer: Key) -> Option<super::Currency> {
        let pending = self.invoice_items.pending.get(&customer)?;
        pending
            .iter()
            .rev()
            .filter_map(|key| self.invoice_items.items.get(key))
            .find(|item| item.subscription.is_none())
            .map(|item| item.currency)
    }

    /// The lines a new invoice of `customer` in `currency`, made at `at` by `subscription` (`None`:
    /// a one-off invoice), takes from the customer's pending items, newest first (Stripe lists
    /// them so, ahead of the subscription's lines), each with its item's key. An invoice takes the
    /// items in its currency made at or before its creation, that wait for any invoice or for
    /// this subscription's.
    pub(super) fn pending_item_lines(
        &self,
        customer: Key,
        currency: Currency,
        subscription: Option<Key>,
        at: Nanos,
    ) -> Vec<(Key, DraftLine)> {
        let Some(pending) = self.invoice_items.pending.get(&customer) else {
            return Vec::new();
        };
        pending
            .iter()
            .rev()
            .filter_map(|key| self.invoice_items.items.get(key))
            .filter(|item| {
                item.currency == currency
                    && item.created <= at
                    && item.subscription.is_none_or(|s| Some(s) == subscription)
            })
            .map(|item| {
                let line = DraftLine {
                    amount: item.amount,
                    price_key: item.price,
                    product: item.product,
                    quantity: Decimal::from(item.quantity),
                    description: item.description.clone(),
                    period: (item.created, at),
                    source: LineSource::InvoiceItem(item.key),
                    usage: None,
                    // Billing credits never pay one-off charges.
                    creditable: false,
                    metadata: item.metadata.clone(),
                };
                (item.key, line)
            })
            .collect()
    }

    /// Takes the pending items [`Tenant::pending_item_lines`] selects onto invoice `invoice`: they
    /// name it and are no longer pending. Returns their lines.
    pub(super) fn take_pending_items(
        &mut self,
        customer: Key,
        currency: Currency,
        subscription: Option<Key>,
        invoice: Key,
        at: Nanos,
    ) -> Vec<DraftLine> {
        let taken = self.pending_item_lines(customer, currency, subscription, at);
        for (key, _) in &taken {
            if let Some(s) = self.invoice_items.pending.get_mut(&customer) {
                s.remove(key);
            }
            if let Some(item) = self.invoice_items.items.get_mut(key) {
                item.invoice = Some(invoice);
            }
        }
        taken.into_iter().map(|(_, line)| line).collect()
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
    /// invoice, tied (if at all) to a subscription of its customer, and that an invoiced item's
    /// invoice exists and has its line (see
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
            if let Some(sub) = item.subscription {
                let ours = self
                    .priced_subscription(sub)
                    .is_some_and(|s| s.customer == item.customer);
                if !ours {
                    return Err(format!(
                        "invoice item {} waits for a subscription not its customer's",
                        item.key
                    ));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Interval, NewCustomer, NewPrice, NewPricedSubscription, Recurring, Scheme, TenantClock,
        UsageType,
    };
    use crate::time::parse_rfc3339;

    fn at(s: &str) -> Nanos {
        parse_rfc3339(s).expect("a time")
    }

    fn usd() -> Currency {
        Currency::parse("usd").expect("a currency")
    }

    /// A clock that runs by itself posts what fell due at the next request, so an item can be made
    /// at an instant past a period end whose invoice is not made yet. That invoice is dated at the
    /// period end, before the item existed: the item waits for the next one.
    #[test]
    fn an_item_made_past_a_period_end_not_yet_run_waits_for_the_next_invoice() {
        let mut t = Tenant::new("sk_test_items", Some(5));
        t.freeze_clock(at("2026-01-01T00:00:00Z"))
            .expect("a fresh world starts anywhere");
        let customer = t.create_customer(NewCustomer::default());
        let product = t.create_product("Seat".into(), Metadata::new());
        let price = t.create_price(NewPrice {
            product,
            active: true,
            currency: usd(),
            recurring: Some(Recurring {
                interval: Interval::Month,
                interval_count: 1,
                usage_type: UsageType::Licensed,
                meter: None,
            }),
            scheme: Scheme::PerUnit {
                unit_amount: 900.into(),
            },
            transform_quantity: None,
            lookup_key: None,
            nickname: None,
            metadata: Metadata::new(),
        });
        let sub = t
            .create_priced_subscription(NewPricedSubscription::of(customer, &[price]))
            .expect("made");
        let latest = |t: &Tenant| {
            let key = t
                .priced_subscription(sub)
                .and_then(|s| s.latest_invoice)
                .expect("an invoice");
            t.invoice(key).expect("stored").clone()
        };

        // Five seconds past the first period end, nothing due posted yet.
        t.clock = TenantClock::Frozen(at("2026-02-01T00:00:05Z"));
        let item = t.create_invoice_item(NewInvoiceItem {
            customer,
            currency: usd(),
            price: None,
            product: None,
            quantity: 1,
            unit_amount: 300.into(),
            description: Some("Fee".into()),
            metadata: Metadata::new(),
            subscription: None,
        });
        t.catch_up();
        let cycle = latest(&t);
        assert_eq!(cycle.created, at("2026-02-01T00:00:00Z"));
        assert_eq!(cycle.lines.len(), 1);
        assert!(matches!(
            cycle.lines[0].source,
            LineSource::SubscriptionItem { .. }
        ));
        assert_eq!(t.invoice_item(item).and_then(|i| i.invoice), None);

        t.freeze_clock(at("2026-03-01T00:00:00Z")).expect("forward");
        let next = latest(&t);
        assert_eq!(next.created, at("2026-03-01T00:00:00Z"));
        assert_eq!(next.lines[0].source, LineSource::InvoiceItem(item));
        assert!(!next.lines[0].creditable);
        assert_eq!(next.subtotal(), 1_200);
        assert_eq!(t.invoice_item(item).and_then(|i| i.invoice), Some(next.key));
        assert_eq!(t.check_indexes(), Ok(()));
    }
}
