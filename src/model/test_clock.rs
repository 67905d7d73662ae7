//! Stripe test clocks: time domains that move only when advanced.

use std::ops::{RangeBounds, RangeInclusive};

use super::index::values_in;
use super::tenant::due;
use super::{ChangeKind, Domain, InvoiceList, InvoiceListEntry, Snapshot, Tenant};
use crate::ids::Key;
use crate::time::{Nanos, NANOS_PER_SEC};

/// Every invoice of one customer in [`Tenant::invoice_lists`].
fn customer_invoices(customer: Key) -> RangeInclusive<InvoiceListEntry> {
    let list = InvoiceList::Customer(customer, None);
    (list, Nanos::MIN, Key::MIN)..=(list, Nanos::MAX, Key::MAX)
}

/// A test clock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestClock {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Display name.
    pub name: Option<String>,
    /// The clock's now.
    pub frozen_time: Nanos,
    /// Creation time (tenant clock).
    pub created: Nanos,
    /// When Stripe would delete it (30 days after creation).
    pub deletes_after: Nanos,
    /// Where an advance under way is taking it. Only the snapshot an advance records as it starts
    /// (the `test_helpers.test_clock.advancing` event) carries it: an advance finishes inside its
    /// request, so a stored clock is always ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advancing_to: Option<Nanos>,
}

/// Why a clock refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestClockError {
    /// No such clock.
    NotFound,
    /// Advance must move forward; `frozen_time` is where it is.
    NotForward {
        /// Current time.
        frozen_time: Nanos,
    },
}

/// Why a new clock could not take an existing customer with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachError {
    /// No live customer has this key (never created, or deleted).
    NoSuchCustomer,
    /// The customer already lives on a test clock, this one.
    OnClock(Key),
    /// The customer has subscriptions (native or priced, ended ones included), whose periods
    /// are anchored in the time it lives in now.
    HasSubscriptions,
    /// The clock would start before `last`, the latest instant of the customer's credit history
    /// (a grant made, granted, expired or voided, a ledger entry, an invoice made or voided).
    BeforeHistory {
        /// The latest such instant.
        last: Nanos,
    },
}

/// Stripe deletes test clocks 30 days after creation.
const LIFETIME: Nanos = 30 * 24 * 3600 * NANOS_PER_SEC;

impl Tenant {
    /// A test clock.
    pub fn test_clock(&self, key: Key) -> Option<&TestClock> {
        self.test_clocks.get(&key)
    }

    /// The test clocks whose keys are in `range`, oldest first (walk it backwards for newest
    /// first).
    pub fn test_clocks_in(
        &self,
        range: impl RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &TestClock> {
        values_in(&self.test_clocks, range)
    }

    /// Creates a clock frozen at `frozen_time`.
    pub fn create_test_clock(&mut self, frozen_time: Nanos, name: Option<String>) -> Key {
        let key = self.next_key();
        let created = self.tenant_now();
        let clock = TestClock {
            key,
            name,
            frozen_time,
            created,
            deletes_after: created.saturating_add(LIFETIME),
            advancing_to: None,
        };
        self.record(
            ChangeKind::Created,
            created,
            Snapshot::TestClock(Box::new(clock.clone())),
            None,
        );
        self.test_clocks.insert(key, clock);
        key
    }

    /// Creates a clock frozen at `frozen_time` with an existing customer on it, which moves there
    /// with everything it has: from now on its grants are made, become effective, expire and are
    /// spent on the clock's time, and the events its grants still have due wait for the clock.
    ///
    /// A customer's time only moves forward where it has a history, so the clock may not start
    /// before the latest instant of it ([`AttachError::BeforeHistory`]); the API gives whole
    /// seconds, so an instant within the second `frozen_time` names is accepted and the clock
    /// starts at that instant. A customer with no credit history may go to any time. When the
    /// clock starts later than the tenant's now, what falls due in between is posted in time order,
    /// as an advance would.
    pub fn create_test_clock_with(
        &mut self,
        frozen_time: Nanos,
        name: Option<String>,
        customer: Key,
    ) -> Result<Key, AttachError> {
        let c = self
            .live_customer(customer)
            .ok_or(AttachError::NoSuchCustomer)?;
        if let Some(clock) = c.test_clock {
            return Err(AttachError::OnClock(clock));
        }
        if self.has_subscriptions(customer) || !self.priced_subscriptions_of(customer).is_empty() {
            return Err(AttachError::HasSubscriptions);
        }
        let last = self.credit_history_end(customer);
        if let Some(last) = last {
            if last.div_euclid(NANOS_PER_SEC) > frozen_time.div_euclid(NANOS_PER_SEC) {
                return Err(AttachError::BeforeHistory { last });
            }
        }
        // Everything due in the tenant's domain up to now has been posted, so the customer is
        // consistent at any instant from `last` to now: start there, then advance if asked to go on.
        let now = self.tenant_now();
        let start = frozen_time.min(now).max(last.unwrap_or(Nanos::MIN));
        let key = self.create_test_clock(start, name);
        self.move_to_clock(customer, key);
        if frozen_time > start {
            // The clock was made just above and has not been moved: neither refusal can happen.
            let _ = self.advance_test_clock(key, frozen_time);
        }
        Ok(key)
    }

    /// The latest instant at which anything happened to the customer's credit: its lots made,
    /// changed, granted, voided or past their expiry, its ledger entries, its invoices made or
    /// voided. `None` when it has none of these.
    pub fn credit_history_end(&self, customer: Key) -> Option<Nanos> {
        let now = self.now_for(customer);
        let lots = self.lots_of(customer).flat_map(|l| {
            [
                Some(l.created),
                Some(l.updated),
                l.voided_at,
                l.granted.then_some(l.effective_at),
                // An expiry that found nothing left wrote no entry, but it has happened.
                l.expires_at.filter(|&e| e <= now),
            ]
        });
        let entries = self
            .entry_keys_of(customer)
            .into_iter()
            .filter_map(|k| self.entry(k))
            .map(|e| Some(e.created));
        let invoices = self
            .invoice_lists
            .range(customer_invoices(customer))
            .filter_map(|(_, _, k)| self.invoices.get(k))
            .flat_map(|i| [Some(i.created), i.voided_at]);
        lots.chain(entries).chain(invoices).flatten().max()
    }

    /// Puts a customer and its lots on `clock`, and moves the lots' scheduled events into the
    /// clock's domain (same instants, same order). Ledger entries and invoices keep the clock they
    /// were written with: they record what happened before.
    fn move_to_clock(&mut self, customer: Key, clock: Key) {
        let Some(c) = self.customers.get(&customer).cloned() else {
            return;
        };
        self.index_customer(&c, false);
        let mut moved = c;
        moved.test_clock = Some(clock);
        self.index_customer(&moved, true);
        self.customers.insert(customer, moved);
        let lots: Vec<Key> = self.lot_keys_of(customer).into_iter().collect();
        for key in lots {
            let Some(lot) = self.lots.get_mut(&key).map(std::sync::Arc::make_mut) else {
                continue;
            };
            lot.test_clock = Some(clock);
            let handles = std::mem::take(&mut lot.pending);
            let mut pending = Vec::with_capacity(handles.len());
            for h in handles {
                if let Some(event) = self.schedule.remove(&h) {
                    let moved = (Domain::Clock(clock), h.1, h.2);
                    self.schedule.insert(moved, event);
                    pending.push(moved);
                }
            }
            self.lot_mut(key).pending = pending;
        }
    }

    /// Moves a clock forward to `to`, posting every entry due on it up to then, in time order. When
    /// this returns, the clock is ready.
    pub fn advance_test_clock(&mut self, key: Key, to: Nanos) -> Result<(), TestClockError> {
        let clock = self
            .test_clocks
            .get_mut(&key)
            .ok_or(TestClockError::NotFound)?;
        if to <= clock.frozen_time {
            return Err(TestClockError::NotForward {
                frozen_time: clock.frozen_time,
            });
        }
        let start = clock.frozen_time;
        let snapshot = Snapshot::TestClock(Box::new(TestClock {
            advancing_to: Some(to),
            ..clock.clone()
        }));
        self.record(ChangeKind::Advancing, start, snapshot, None);
        // Post due events one instant at a time so that each sees the clock at its own time.
        loop {
            let next = self
                .schedule
                .range(due(Domain::Clock(key), to))
                .next()
                .map(|(k, _)| k.1);
            let Some(at) = next else { break };
            if let Some(c) = self.test_clocks.get_mut(&key) {
                c.frozen_time = c.frozen_time.max(at);
            }
            self.run_due(Domain::Clock(key), at);
        }
        if let Some(c) = self.test_clocks.get_mut(&key) {
            c.frozen_time = to;
            let snapshot = Snapshot::TestClock(Box::new(c.clone()));
            self.record(ChangeKind::Ready, to, snapshot, None);
        }
        Ok(())
    }

    /// Deletes a clock and, as Stripe does, the customers on it. Their ledger stays readable; nothing
    /// more is ever posted for them.
    pub fn delete_test_clock(&mut self, key: Key) -> Result<(), TestClockError> {
        if !self.test_clocks.contains_key(&key) {
            return Err(TestClockError::NotFound);
        }
        // The customers go first, while the clock still gives their time (their subscriptions end
        // at the clock's frozen time).
        let customers: Vec<Key> = self.customers_on_clock(key).into_iter().collect();
        for c in customers {
            self.delete_customer(c);
        }
        if let Some(clock) = self.test_clocks.remove(&key) {
            let at = self.tenant_now();
            self.record(
                ChangeKind::Deleted,
                at,
                Snapshot::TestClock(Box::new(clock)),
                None,
            );
        }
        self.customers_by_clock.remove(&key);
        let handles: Vec<_> = self
            .schedule
            .range(due(Domain::Clock(key), Nanos::MAX))
            .map(|(k, _)| *k)
            .collect();
        for h in handles {
            self.schedule.remove(&h);
        }
        Ok(())
    }
}
