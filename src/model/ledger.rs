//! The ledger: append-only entries against lots, the events that post them when due, and balances.

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use rust_decimal::Decimal;

use super::{Applicability, ChangeKind, Currency, KeyIndex, Lot, Snapshot, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Credit: the lot became effective.
    Granted,
    /// Credit: an invoice that had spent from the lot was voided.
    InvoiceVoided,
    /// Debit: an invoice spent from the lot.
    Applied,
    /// Debit: the rest of the lot expired.
    Expired,
    /// Debit: the rest of the lot was voided.
    Voided,
}

impl EntryKind {
    /// Credits add to the lot, debits take from it.
    pub fn is_credit(self) -> bool {
        matches!(self, EntryKind::Granted | EntryKind::InvoiceVoided)
    }
}

/// One movement of credit. Entries are never changed or removed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Identity (time-ordered).
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// The lot it moves.
    #[serde(with = "crate::ids::text")]
    pub lot: Key,
    /// The lot's owner.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
    /// The owner's test clock, if any.
    #[serde(with = "crate::ids::text::opt")]
    pub test_clock: Option<Key>,
    /// What it records.
    pub kind: EntryKind,
    /// Always positive; the kind says which way it goes.
    pub amount: Decimal,
    /// The lot's currency.
    pub currency: Currency,
    /// When it was written, on the owner's clock.
    pub created: Nanos,
    /// When it takes effect.
    pub effective_at: Nanos,
    /// For `Applied` and `InvoiceVoided`: the invoice and its line.
    #[serde(with = "crate::ids::text::opt_pair")]
    pub invoice: Option<(Key, Key)>,
}

/// Something due at a time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The lot's credit becomes effective.
    Effective(#[serde(with = "crate::ids::text")] Key),
    /// The lot's remaining credit expires.
    Expire(#[serde(with = "crate::ids::text")] Key),
    /// A grant rule's application is due (handled in `grant_rules.rs`).
    Application(#[serde(with = "crate::ids::text")] Key),
    /// A draft invoice finalizes by itself (see `invoice.rs`).
    FinalizeInvoice(#[serde(with = "crate::ids::text")] Key),
    /// A subscription's period ends (the cycle, see `cycles.rs`).
    SubscriptionCycle(#[serde(with = "crate::ids::text")] Key),
}

/// One currency's balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// Sum of committed entries.
    pub ledger: Decimal,
    /// What can be spent now.
    pub available: Decimal,
}

impl Balance {
    /// Counts a lot in at `now`: what remains is in the ledger balance, and also available while the
    /// lot is granted, not voided and not expired.
    pub(super) fn add(&mut self, lot: &Lot, now: Nanos) {
        self.ledger += lot.remaining;
        if lot.granted && lot.voided_at.is_none() && !lot.is_expired(now) {
            self.available += lot.remaining;
        }
    }
}

impl Tenant {
    /// A ledger entry.
    pub fn entry(&self, key: Key) -> Option<&Entry> {
        self.entries.get(&key).map(|e| &**e)
    }

    /// The entries whose keys are in `range`, oldest first (walk it backwards for newest first).
    pub fn entries_in(
        &self,
        range: impl RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.values_in(range).map(|e| &**e)
    }

    /// The keys of a customer's entries, oldest first: in `created` order too, since entries are
    /// written in time order for each customer.
    pub fn entry_keys_of(&self, customer: Key) -> KeyIndex<'_> {
        KeyIndex::of_keyed(self.entries_by_customer.get(&customer))
    }

    /// The keys of a lot's entries, oldest first.
    pub fn entry_keys_of_lot(&self, lot: Key) -> KeyIndex<'_> {
        KeyIndex::of_keyed(self.entries_by_lot.get(&lot))
    }

    /// Appends an entry written when it takes effect (or, for a back-dated lot, when the lot was
    /// made): see [`Tenant::post_written`].
    pub(super) fn post(
        &mut self,
        lot_key: Key,
        kind: EntryKind,
        amount: Decimal,
        effective_at: Nanos,
        invoice: Option<(Key, Key)>,
    ) -> Key {
        // Entries due earlier than the lot existed (a back-dated grant) are written at creation.
        let created = effective_at.max(self.lots[&lot_key].created);
        self.post_written(lot_key, kind, amount, effective_at, created, invoice)
    }

    /// Appends an entry written at `created` and moves the lot's remaining balance with it. This is
    /// the only writer of `Lot::remaining`; a debit larger than what remains is a bug and is clamped,
    /// never negative. Callers keep `created` from going backwards for a customer, so that key order
    /// (what lists walk) and `created` agree.
    pub(super) fn post_written(
        &mut self,
        lot_key: Key,
        kind: EntryKind,
        amount: Decimal,
        effective_at: Nanos,
        created: Nanos,
        invoice: Option<(Key, Key)>,
    ) -> Key {
        let key = self.next_key();
        let lot = self.lot_mut(lot_key);
        let amount = if kind.is_credit() {
            amount
        } else {
            amount.min(lot.remaining)
        };
        if kind.is_credit() {
            lot.remaining += amount;
        } else {
            lot.remaining -= amount;
        }
        let entry = Entry {
            key,
            lot: lot_key,
            customer: lot.customer,
            test_clock: lot.test_clock,
            kind,
            amount,
            currency: lot.currency,
            created,
            effective_at,
            invoice,
        };
        if lot.applicability.intersects(&Applicability::Metered) {
            let sum = self
                .metered_remaining
                .entry(entry.customer)
                .or_default()
                .entry(entry.currency)
                .or_default();
            if kind.is_credit() {
                *sum += amount;
            } else {
                *sum -= amount;
            }
        }
        self.entries_by_customer
            .entry(entry.customer)
            .or_default()
            .add(key);
        self.entries_by_lot.entry(lot_key).or_default().add(key);
        let customer = entry.customer;
        let entry = std::sync::Arc::new(entry);
        self.record(
            ChangeKind::Created,
            created,
            Snapshot::Entry(entry.clone()),
            None,
        );
        self.entries.insert(key, entry);
        self.check_credit_alerts(customer, created);
        key
    }

    /// Writes off what remains of a lot with a debit of `kind`, if anything remains.
    pub(super) fn write_off(&mut self, lot: Key, kind: EntryKind, at: Nanos) {
        let remaining = self.lots[&lot].remaining;
        if remaining > Decimal::ZERO {
            self.post(lot, kind, remaining, at, None);
        }
    }

    /// Carries out one due event.
    pub(super) fn fire(&mut self, event: Event, at: Nanos) {
        match event {
            Event::Effective(key) => {
                let Some(lot) = self.lots.get_mut(&key).map(std::sync::Arc::make_mut) else {
                    return;
                };
                if lot.granted || lot.voided_at.is_some() || lot.is_expired(at) {
                    return;
                }
                lot.granted = true;
                let amount = lot.amount;
                self.post(key, EntryKind::Granted, amount, at, None);
            }
            Event::Expire(key) => {
                if !self.lots.contains_key(&key) {
                    return;
                }
                self.write_off(key, EntryKind::Expired, at);
            }
            // A grant application is due: the grant rules apply it (see `grant_rules`).
            Event::Application(key) => self.run_application(key, at),
            // Only a draft still due at this instant: an update may have moved its finalization
            // or turned it off.
            Event::FinalizeInvoice(key) => {
                if self
                    .invoice(key)
                    .is_some_and(|i| i.finalizes_at.is_some_and(|due| due <= at))
                {
                    let _ = self.finalize_invoice_at(key, at);
                }
            }
            Event::SubscriptionCycle(key) => self.run_cycle(key, at),
        }
    }

    /// Balances per currency over a customer's lots that a `price_type=metered` filter selects (those
    /// whose scope intersects `Metered`): what `balances` gives for them, read from the running sums
    /// instead of visiting every lot.
    pub fn metered_balances(&self, customer: Key) -> BTreeMap<Currency, Balance> {
        // Credit left on a dead lot is written off as soon as it is due, so what remains is all
        // available.
        self.metered_remaining
            .get(&customer)
            .into_iter()
            .flatten()
            .map(|(c, r)| {
                (
                    *c,
                    Balance {
                        ledger: *r,
                        available: *r,
                    },
                )
            })
            .collect()
    }

    /// Balances per currency over a customer's lots that `keep` selects, at the customer's now.
    pub fn balances(
        &self,
        customer: Key,
        keep: impl Fn(&Lot) -> bool,
    ) -> BTreeMap<Currency, Balance> {
        let now = self.now_for(customer);
        let mut out: BTreeMap<Currency, Balance> = BTreeMap::new();
        for lot in self.lots_of(customer).filter(|l| keep(l)) {
            out.entry(lot.currency).or_default().add(lot, now);
        }
        out
    }
}
