//! The cycle engine: what happens when a subscription's period ends, driven by the schedule and
//! clocks every timed change uses.

use super::Tenant;
use crate::ids::Key;
use crate::time::Nanos;

impl Tenant {
    /// A subscription's period ended at `at`.
    pub(super) fn run_cycle(&mut self, subscription: Key, at: Nanos) {
        let _ = (subscription, at);
    }

    /// An invoice of `subscription` was paid.
    pub(super) fn subscription_payment_settled(&mut self, subscription: Key) {
        let _ = subscription;
    }

    /// A payment of an invoice of `subscription` was declined.
    pub(super) fn subscription_payment_failed(&mut self, subscription: Key) {
        let _ = subscription;
    }
}
