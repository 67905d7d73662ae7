//! Stripe test clocks: time domains that move only when advanced.

use super::tenant::due;
use super::{Domain, Tenant};
use crate::ids::Key;
use crate::time::{Nanos, NANOS_PER_SEC};

/// A test clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestClock {
    /// Identity.
    pub key: Key,
    /// Display name.
    pub name: Option<String>,
    /// The clock's now.
    pub frozen_time: Nanos,
    /// Creation time (tenant clock).
    pub created: Nanos,
    /// When Stripe would delete it (30 days after creation).
    pub deletes_after: Nanos,
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

/// Stripe deletes test clocks 30 days after creation.
const LIFETIME: Nanos = 30 * 24 * 3600 * NANOS_PER_SEC;

impl Tenant {
    /// Creates a clock frozen at `frozen_time`.
    pub fn create_test_clock(&mut self, frozen_time: Nanos, name: Option<String>) -> Key {
        let key = self.next_key();
        let created = self.tenant_now();
        self.test_clocks.insert(
            key,
            TestClock {
                key,
                name,
                frozen_time,
                created,
                deletes_after: created.saturating_add(LIFETIME),
            },
        );
        key
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
        }
        Ok(())
    }

    /// Deletes a clock and, as Stripe does, the customers on it. Their ledger stays readable; nothing
    /// more is ever posted for them.
    pub fn delete_test_clock(&mut self, key: Key) -> Result<(), TestClockError> {
        if self.test_clocks.remove(&key).is_none() {
            return Err(TestClockError::NotFound);
        }
        let customers: Vec<Key> = self
            .customers_by_clock
            .get(&key)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        for c in customers {
            self.delete_customer(c);
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
