//! Meters: what usage is counted and how, and the usage events reported against them.
//!
//! A meter aggregates the events named by its `event_name`, per customer, by its formula. A metered
//! [`super::Price`] bills what its meter aggregated over a billing period
//! ([`Tenant::meter_usage`]).
//!
//! ## Rules
//!
//! - At most one **active** meter per event name: a meter cannot be created, nor reactivated, while
//!   another active meter has its event name. Inactive meters keep their event name but do not
//!   reserve it, so a deactivated meter can be replaced by a new one.
//! - An event is judged on its **customer's clock** ([`Tenant::now_for`]): its timestamp defaults to
//!   that now, and must be at most [`MAX_EVENT_AGE`] before it and [`MAX_EVENT_LEAD`] after it. A
//!   customer on a test clock therefore reports usage at the clock's frozen time.
//! - An identifier is refused while it is remembered: for [`IDENTIFIER_LIFETIME`] of the clock its
//!   first event was received on (its customer's clock then). After that it is forgotten, and with
//!   it the means to cancel its event.
//!
//! ## How usage is stored
//!
//! Every accepted event is one fixed-size record (timestamp, value, series, a link; 32 bytes) in a
//! chunked array, in the order received, so an event's index is its receipt order. A *series* is
//! one (meter, customer) pair; it holds one bucket per UTC hour that has events: the sum and count
//! of the hour's live events, its latest event by timestamp, its most recently received event, and
//! the head of a list, threaded through the records, of the hour's events. Usage over a range adds
//! the buckets of the whole hours inside it and reads the records of only the one or two hours the
//! range cuts; cancelling an event subtracts it from its bucket and reads that hour's records again
//! only when the event was one of the bucket's two marks.
//!
//! Identifiers are kept for deduplication and cancelling only while remembered: their text once, in
//! a chunked arena, with the receiving clock and instant; a hash table of arena offsets finds them by
//! text, and a queue per clock, in receipt order, forgets them when their time is up. The arena is
//! compacted once forgotten text outweighs the rest, so memory follows the last 24 hours of events.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::ops::RangeBounds;

use hashbrown::HashTable;
use rust_decimal::Decimal;

use super::index::{values_in, KeyIndex};
use super::{ChangeKind, Domain, Tenant};
use crate::ids::{encode, Key};
use crate::time::{Nanos, NANOS_PER_SEC};

/// The hasher of the maps every event looks up: names and keys chosen by the tenant's own caller,
/// so a fast hash will do (SipHash was a visible share of an event's cost).
type FastHash = foldhash::fast::RandomState;

/// One hour: the width of a usage bucket.
pub const HOUR: Nanos = 3_600 * NANOS_PER_SEC;
/// One day (of UTC; no leap seconds in Unix time).
pub const DAY: Nanos = 24 * HOUR;
/// How far before its customer's now an event's timestamp may be: 35 days.
pub const MAX_EVENT_AGE: Nanos = 35 * DAY;
/// How far after its customer's now an event's timestamp may be: 5 minutes.
pub const MAX_EVENT_LEAD: Nanos = 5 * 60 * NANOS_PER_SEC;
/// How long an identifier is remembered, on the clock its event was received on: 24 hours.
pub const IDENTIFIER_LIFETIME: Nanos = DAY;
/// The most decimal places an event's value may have.
pub const MAX_VALUE_SCALE: u32 = 12;
/// An event's value must be smaller than 10^15 in absolute value. With at most 2^32 events and 12
/// decimal places, every sum the model forms stays exact, far inside `Decimal`'s 28 digits.
pub const MAX_VALUE_DIGITS: u32 = 15;

/// How a meter combines event values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Formula {
    /// The sum of values.
    Sum,
    /// The number of events.
    Count,
    /// The value of the latest event (by timestamp).
    Last,
}

/// Whether a meter takes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterStatus {
    /// Takes events, may be attached to prices.
    Active,
    /// Refuses events and new prices.
    Inactive,
}

/// Pre-aggregation window of a meter: within each window of UTC time, only the most recently
/// received event counts (a newer one overwrites the older).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventTimeWindow {
    /// Per day.
    Day,
    /// Per hour.
    Hour,
}

impl EventTimeWindow {
    /// The window's length.
    pub fn length(self) -> Nanos {
        match self {
            EventTimeWindow::Day => DAY,
            EventTimeWindow::Hour => HOUR,
        }
    }
}

/// A meter.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meter {
    /// Identity.
    #[serde(with = "crate::ids::text")]
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
    /// When it was last deactivated, while it is inactive.
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

/// Why a meter command was refused. Nothing has changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterError {
    /// No meter has that key.
    NotFound,
    /// Another active meter, `by`, has the event name.
    EventNameTaken {
        /// The active meter holding the name.
        by: Key,
    },
    /// Deactivating a meter that is inactive.
    AlreadyInactive,
    /// Reactivating a meter that is active.
    AlreadyActive,
}

/// One usage event, as the facade read it.
#[derive(Debug, Clone, Copy)]
pub struct NewMeterEvent<'a> {
    /// The meter it counts towards (the active meter of its event name).
    pub meter: Key,
    /// Whose usage it is.
    pub customer: Key,
    /// Its value; ignored by a `count` meter.
    pub value: Decimal,
    /// When the usage happened; `None` is the customer's now.
    pub timestamp: Option<Nanos>,
    /// The caller's identifier; `None` makes one.
    pub identifier: Option<&'a str>,
}

/// What recording an event decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// When the usage happened.
    pub timestamp: Nanos,
    /// When the event was received (its customer's now).
    pub created: Nanos,
    /// The identifier made for an event sent without one.
    pub generated_identifier: Option<String>,
}

/// Why an event was refused. Nothing has changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterEventError {
    /// The meter does not exist or is inactive.
    NotActive,
    /// The customer does not exist or was deleted.
    NoSuchCustomer,
    /// The timestamp is more than [`MAX_EVENT_AGE`] before the customer's `now`.
    TooOld {
        /// The customer's now.
        now: Nanos,
    },
    /// The timestamp is more than [`MAX_EVENT_LEAD`] after the customer's `now`.
    TooFarAhead {
        /// The customer's now.
        now: Nanos,
    },
    /// The value has more than [`MAX_VALUE_SCALE`] decimal places or [`MAX_VALUE_DIGITS`] digits
    /// before the point.
    ValueOutOfRange,
    /// An event with this identifier is still remembered.
    Duplicate,
    /// The tenant holds as many events (2^32 − 1), series (2^31) or remembered identifiers (4 GiB
    /// of text) as the storage can address.
    Full,
}

/// Why a cancellation was refused. Nothing has changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelError {
    /// No remembered event of a meter of that event name has that identifier.
    NotFound,
    /// The event was cancelled before.
    AlreadyCancelled,
}

/// Meters and their usage, for one tenant.
#[derive(Debug, Default)]
pub(super) struct Metering {
    /// Every meter by key.
    pub(super) meters: BTreeMap<Key, Meter>,
    /// The active meter of each event name (looked up by every event: foldhash, not SipHash).
    pub(super) by_event_name: HashMap<String, Key, FastHash>,
    /// Active meters (the list's `status` filter).
    pub(super) active: BTreeSet<Key>,
    /// Inactive meters.
    pub(super) inactive: BTreeSet<Key>,
    /// Events, their buckets and their identifiers.
    usage: Usage,
}

impl Tenant {
    /// A meter.
    pub fn meter(&self, key: Key) -> Option<&Meter> {
        self.metering.meters.get(&key)
    }

    /// The meters whose keys are in `range`, oldest first.
    pub fn meters_in(
        &self,
        range: impl RangeBounds<Key>,
    ) -> impl DoubleEndedIterator<Item = &Meter> {
        values_in(&self.metering.meters, range)
    }

    /// The keys of the meters with `status`.
    pub fn meter_keys_with_status(&self, status: MeterStatus) -> KeyIndex<'_> {
        KeyIndex::of(Some(match status {
            MeterStatus::Active => &self.metering.active,
            MeterStatus::Inactive => &self.metering.inactive,
        }))
    }

    /// The active meter of `event_name`, if there is one.
    pub fn active_meter_named(&self, event_name: &str) -> Option<&Meter> {
        self.metering
            .by_event_name
            .get(event_name)
            .and_then(|k| self.metering.meters.get(k))
    }

    /// Creates a meter, active, unless another active meter has its event name.
    pub fn try_create_meter(&mut self, new: NewMeter) -> Result<Key, MeterError> {
        if let Some(&by) = self.metering.by_event_name.get(&new.event_name) {
            return Err(MeterError::EventNameTaken { by });
        }
        Ok(self.insert_meter(new, MeterStatus::Active))
    }

    /// Creates a meter. It is active, unless another active meter has its event name: then it is
    /// created inactive (deactivated at its creation), so that an event name never names two active
    /// meters. [`Tenant::try_create_meter`] refuses instead.
    pub fn create_meter(&mut self, new: NewMeter) -> Key {
        let status = if self.metering.by_event_name.contains_key(&new.event_name) {
            MeterStatus::Inactive
        } else {
            MeterStatus::Active
        };
        self.insert_meter(new, status)
    }

    fn insert_meter(&mut self, new: NewMeter, status: MeterStatus) -> Key {
        let key = self.next_key();
        let now = self.tenant_now();
        let m = &mut self.metering;
        match status {
            MeterStatus::Active => {
                m.by_event_name.insert(new.event_name.clone(), key);
                m.active.insert(key);
            }
            MeterStatus::Inactive => {
                m.inactive.insert(key);
            }
        }
        m.meters.insert(
            key,
            Meter {
                key,
                display_name: new.display_name,
                event_name: new.event_name,
                formula: new.formula,
                customer_key: new.customer_key,
                value_key: new.value_key,
                event_time_window: new.event_time_window,
                status,
                deactivated_at: (status == MeterStatus::Inactive).then_some(now),
                created: now,
                updated: now,
            },
        );
        let after = self.meter_snapshot(key);
        self.record_some(ChangeKind::Created, now, after, None);
        key
    }

    /// Changes a meter's display name (the one thing about a meter that changes).
    pub fn rename_meter(&mut self, key: Key, display_name: String) -> Result<(), MeterError> {
        let now = self.tenant_now();
        let before = self.meter_snapshot(key);
        let meter = self
            .metering
            .meters
            .get_mut(&key)
            .ok_or(MeterError::NotFound)?;
        meter.display_name = display_name;
        meter.updated = now;
        let after = self.meter_snapshot(key);
        self.record_some(ChangeKind::Updated, now, after, before);
        Ok(())
    }

    /// Deactivates a meter: it takes no more events and frees its event name. Its usage stays.
    pub fn deactivate_meter(&mut self, key: Key) -> Result<(), MeterError> {
        let now = self.tenant_now();
        let m = &mut self.metering;
        let meter = m.meters.get_mut(&key).ok_or(MeterError::NotFound)?;
        if meter.status == MeterStatus::Inactive {
            return Err(MeterError::AlreadyInactive);
        }
        meter.status = MeterStatus::Inactive;
        meter.deactivated_at = Some(now);
        meter.updated = now;
        m.by_event_name.remove(&meter.event_name);
        m.active.remove(&key);
        m.inactive.insert(key);
        let after = self.meter_snapshot(key);
        self.record_some(ChangeKind::Deactivated, now, after, None);
        Ok(())
    }

    /// Reactivates a meter, unless another active meter has taken its event name meanwhile.
    pub fn reactivate_meter(&mut self, key: Key) -> Result<(), MeterError> {
        let now = self.tenant_now();
        let m = &mut self.metering;
        let meter = m.meters.get_mut(&key).ok_or(MeterError::NotFound)?;
        if meter.status == MeterStatus::Active {
            return Err(MeterError::AlreadyActive);
        }
        if let Some(&by) = m.by_event_name.get(&meter.event_name) {
            return Err(MeterError::EventNameTaken { by });
        }
        meter.status = MeterStatus::Active;
        meter.deactivated_at = None;
        meter.updated = now;
        m.by_event_name.insert(meter.event_name.clone(), key);
        m.inactive.remove(&key);
        m.active.insert(key);
        let after = self.meter_snapshot(key);
        self.record_some(ChangeKind::Reactivated, now, after, None);
        Ok(())
    }

    /// Records one usage event, in this order of checks: the meter is active, the customer is
    /// live, the value is in range (unless the meter counts), the timestamp is within the window
    /// of the customer's clock, the identifier is not remembered.
    pub fn record_meter_event(
        &mut self,
        new: NewMeterEvent<'_>,
    ) -> Result<RecordedEvent, MeterEventError> {
        let formula = self
            .metering
            .meters
            .get(&new.meter)
            .filter(|m| m.status == MeterStatus::Active)
            .ok_or(MeterEventError::NotActive)?
            .formula;
        if self.live_customer(new.customer).is_none() {
            return Err(MeterEventError::NoSuchCustomer);
        }
        let value = match formula {
            // A count ignores the value: each event adds one.
            Formula::Count => Decimal::ONE,
            Formula::Sum | Formula::Last => {
                if !value_in_range(new.value) {
                    return Err(MeterEventError::ValueOutOfRange);
                }
                new.value
            }
        };
        let domain = self.domain_of(new.customer);
        let now = self.now_in(domain);
        let timestamp = new.timestamp.unwrap_or(now);
        if timestamp < now.saturating_sub(MAX_EVENT_AGE) {
            return Err(MeterEventError::TooOld { now });
        }
        if timestamp > now.saturating_add(MAX_EVENT_LEAD) {
            return Err(MeterEventError::TooFarAhead { now });
        }
        if let Some(identifier) = new.identifier {
            self.refuse_remembered(identifier)?;
        }
        self.metering.usage.ensure_room()?;
        let generated = match new.identifier {
            Some(_) => None,
            // Keys are unique and time-ordered, so a made identifier is never remembered already
            // unless a caller chose that very text.
            None => Some(encode(self.next_key())),
        };
        let identifier = new.identifier.or(generated.as_deref()).unwrap_or_default();
        if generated.is_some() {
            self.refuse_remembered(identifier)?;
        }
        self.metering.usage.append(Arrival {
            meter: new.meter,
            customer: new.customer,
            domain,
            received: now,
            timestamp,
            value,
            identifier,
        })?;
        self.check_usage_alerts(new.meter, new.customer);
        Ok(RecordedEvent {
            timestamp,
            created: now,
            generated_identifier: generated,
        })
    }

    /// `Err(Duplicate)` if `identifier` is remembered; an identifier whose time is up is forgotten
    /// here (its clock may have moved on since its queue was last purged).
    fn refuse_remembered(&mut self, identifier: &str) -> Result<(), MeterEventError> {
        match self.remembered(identifier) {
            Some(_) => Err(MeterEventError::Duplicate),
            None => Ok(()),
        }
    }

    /// The arena offset of `identifier` if it is still remembered; forgets it if its time is up.
    fn remembered(&mut self, identifier: &str) -> Option<u32> {
        let ids = &self.metering.usage.identifiers;
        let offset = ids.find(identifier.as_bytes())?;
        let domain = ids.domain_of(offset);
        let received = ids.received_of(offset);
        if received.saturating_add(IDENTIFIER_LIFETIME) > self.now_in(domain) {
            return Some(offset);
        }
        self.metering.usage.identifiers.forget(offset);
        None
    }

    /// Cancels the remembered event with `identifier` of a meter of `event_name` (active or not):
    /// it no longer counts anywhere.
    pub fn cancel_meter_event(
        &mut self,
        event_name: &str,
        identifier: &str,
    ) -> Result<(), CancelError> {
        let offset = self.remembered(identifier).ok_or(CancelError::NotFound)?;
        let usage = &self.metering.usage;
        let event = usage.identifiers.event_of(offset);
        let series = usage.events.get(event).series();
        let meter = usage.series[series as usize].meter;
        if self
            .metering
            .meters
            .get(&meter)
            .is_none_or(|m| m.event_name != event_name)
        {
            return Err(CancelError::NotFound);
        }
        let customer = usage.series[series as usize].customer;
        self.metering.usage.cancel(event)?;
        // A cancellation lowers a sum or a count, but may raise a meter's last value.
        self.check_usage_alerts(meter, customer);
        Ok(())
    }

    /// What `meter` aggregated for `customer` over events timestamped in `[from, to)`, by the
    /// meter's formula (zero when there were none). Cancelled events do not count. With an event
    /// time window, each window's most recently received event stands for the window, and counts
    /// when its timestamp is in range.
    ///
    /// Costs O(log n) per hour of the range that has events, plus the events of the hours the
    /// range cuts (at most two), never a walk over the range's events.
    pub fn meter_usage(&self, meter: Key, customer: Key, from: Nanos, to: Nanos) -> Decimal {
        let Some(m) = self.metering.meters.get(&meter) else {
            return Decimal::ZERO;
        };
        let usage = &self.metering.usage;
        let Some(&series) = usage.series_of.get(&(meter, customer)) else {
            return Decimal::ZERO;
        };
        if from >= to {
            return Decimal::ZERO;
        }
        let series = &usage.series[series as usize];
        let total = match m.event_time_window {
            None => usage.raw_total(series, from, to),
            Some(w) => usage.windowed_total(series, w.length(), from, to),
        };
        total.by(m.formula)
    }

    /// How many usage events the tenant holds, cancelled ones included.
    pub fn meter_event_count(&self) -> usize {
        self.metering.usage.events.len as usize
    }

    /// Checks that the meter indexes and the usage buckets agree with the meters and the events
    /// they summarize (see [`Tenant::check_indexes`]).
    pub(super) fn check_meter_indexes(&self) -> Result<(), String> {
        let m = &self.metering;
        for meter in m.meters.values() {
            let (listed, other) = match meter.status {
                MeterStatus::Active => (&m.active, &m.inactive),
                MeterStatus::Inactive => (&m.inactive, &m.active),
            };
            if !listed.contains(&meter.key) || other.contains(&meter.key) {
                return Err(format!("meter {} in the wrong status list", meter.key));
            }
            let named = m.by_event_name.get(&meter.event_name) == Some(&meter.key);
            if named != (meter.status == MeterStatus::Active) {
                return Err(format!("meter {} and its event name disagree", meter.key));
            }
        }
        if m.active.len() + m.inactive.len() != m.meters.len()
            || m.by_event_name.len() != m.active.len()
        {
            return Err("the meter lists hold meters that do not exist".into());
        }
        m.usage.check()
    }
}

/// One usage event as a world's document holds it: the events in the order they were received,
/// each with its identifier while that is remembered. The buckets are rebuilt from these.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterEventRecord {
    /// The meter it counts towards.
    #[serde(with = "crate::ids::text")]
    pub meter: Key,
    /// Whose usage it is.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
    /// When the usage happened.
    pub timestamp: Nanos,
    /// Its value (1 for a `count` meter).
    pub value: Decimal,
    /// Whether it was cancelled.
    pub cancelled: bool,
    /// Its identifier, while remembered (for deduplication and cancelling); `None` once forgotten.
    pub identifier: Option<MeterIdentifier>,
}

/// A remembered identifier: its text, and the clock and instant its event was received at, from
/// which its [`IDENTIFIER_LIFETIME`] runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterIdentifier {
    /// The identifier.
    pub text: String,
    /// The test clock it was received on, or `None` for the tenant clock.
    #[serde(with = "crate::ids::text::opt")]
    pub clock: Option<Key>,
    /// When it was received, on that clock.
    pub received: Nanos,
}

/// The longest identifier the facades accept, in bytes (100 characters of up to four bytes).
pub const MAX_IDENTIFIER_BYTES: usize = 400;

impl Tenant {
    /// Every usage event in the order received, with the identifiers still remembered at each
    /// clock's now.
    pub(super) fn meter_event_records(&self) -> Vec<MeterEventRecord> {
        let usage = &self.metering.usage;
        let ids = &usage.identifiers;
        let mut remembered: HashMap<u32, MeterIdentifier> = HashMap::new();
        for queue in &ids.queues {
            for &o in queue {
                let event = ids.event_of(o);
                if event == NONE {
                    continue;
                }
                let domain = ids.domain_of(o);
                let received = ids.received_of(o);
                if received.saturating_add(IDENTIFIER_LIFETIME) <= self.now_in(domain) {
                    continue;
                }
                remembered.insert(
                    event,
                    MeterIdentifier {
                        text: String::from_utf8_lossy(ids.text_of(o)).into_owned(),
                        clock: match domain {
                            Domain::Tenant => None,
                            Domain::Clock(k) => Some(k),
                        },
                        received,
                    },
                );
            }
        }
        (0..usage.events.len)
            .map(|i| {
                let e = usage.events.get(i);
                let series = &usage.series[e.series() as usize];
                MeterEventRecord {
                    meter: series.meter,
                    customer: series.customer,
                    timestamp: e.timestamp,
                    value: e.value,
                    cancelled: !e.live(),
                    identifier: remembered.remove(&i),
                }
            })
            .collect()
    }

    /// Stores `records` as this world's usage, which must be empty: every event in its bucket, the
    /// cancelled ones taken out again, and the identifiers remembered. The meters and customers
    /// they name must be in place. Refuses, with the place of the first record that cannot be
    /// stored, a value out of range, an identifier remembered twice or one too long, and more
    /// events than the storage can address.
    pub(super) fn restore_meter_events(
        &mut self,
        records: &[MeterEventRecord],
    ) -> Result<(), (usize, String)> {
        if records.len() >= (NONE - 1) as usize {
            return Err((
                records.len(),
                "more usage events than a world can hold".into(),
            ));
        }
        let mut cancelled = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let formula = match self.metering.meters.get(&r.meter) {
                Some(m) => m.formula,
                None => return Err((i, format!("no meter {} in the document", encode(r.meter)))),
            };
            if !self.customers.contains_key(&r.customer) {
                return Err((
                    i,
                    format!("no customer {} in the document", encode(r.customer)),
                ));
            }
            let fits = match formula {
                Formula::Count => r.value == Decimal::ONE,
                Formula::Sum | Formula::Last => value_in_range(r.value),
            };
            if !fits {
                return Err((
                    i,
                    format!(
                        "value {} out of range: at most {MAX_VALUE_SCALE} decimal places and below 10^{MAX_VALUE_DIGITS} (exactly 1 for a count meter)",
                        r.value
                    ),
                ));
            }
            let usage = &mut self.metering.usage;
            if usage.series.len() as u32 >= CANCELLED - 1 {
                return Err((i, "more usage series than a world can hold".into()));
            }
            let event = usage.store(r.meter, r.customer, r.timestamp, r.value);
            if r.cancelled {
                cancelled.push(event);
            }
            if let Some(id) = &r.identifier {
                if id.text.is_empty() || id.text.len() > MAX_IDENTIFIER_BYTES {
                    return Err((
                        i,
                        format!(
                            "identifier of {} bytes: from 1 to {MAX_IDENTIFIER_BYTES}",
                            id.text.len()
                        ),
                    ));
                }
                let ids = &mut usage.identifiers;
                if ids.find(id.text.as_bytes()).is_some() {
                    return Err((i, format!("identifier {:?} is remembered twice", id.text)));
                }
                let domain = ids.domain_index(match id.clock {
                    None => Domain::Tenant,
                    Some(k) => Domain::Clock(k),
                });
                if ids
                    .remember(id.text.as_bytes(), event, domain, id.received)
                    .is_none()
                {
                    return Err((i, "more identifier text than a world can hold".into()));
                }
            }
        }
        for event in cancelled {
            // Each event is cancelled once: the records are distinct.
            let _ = self.metering.usage.cancel(event);
        }
        Ok(())
    }
}

/// Whether `value` has at most [`MAX_VALUE_SCALE`] decimal places and is below 10^15.
fn value_in_range(value: Decimal) -> bool {
    let v = value.normalize();
    v.scale() <= MAX_VALUE_SCALE && v.abs() < Decimal::from(10i64.pow(MAX_VALUE_DIGITS))
}

/// "No event": the end of a bucket's list, an empty mark, a forgotten identifier.
const NONE: u32 = u32::MAX;
/// The bit of [`RawEvent::series`] that marks a cancelled event.
const CANCELLED: u32 = 1 << 31;

/// One event: 32 bytes.
#[derive(Debug, Clone, Copy)]
struct RawEvent {
    /// When the usage happened.
    timestamp: Nanos,
    /// Its value (1 for a `count` meter).
    value: Decimal,
    /// Its series, with [`CANCELLED`] set once cancelled.
    series: u32,
    /// The event received before it in the same hour bucket, or [`NONE`].
    next: u32,
}

impl RawEvent {
    fn series(&self) -> u32 {
        self.series & !CANCELLED
    }

    fn live(&self) -> bool {
        self.series & CANCELLED == 0
    }
}

/// Events per chunk: chunks are allocated whole and never moved, so a million events cost no
/// reallocation copies (under the tenant's lock) and leave no freed copies behind.
const EVENT_CHUNK: usize = 1 << 14;

/// Every event in the order received.
#[derive(Debug, Default)]
struct Events {
    chunks: Vec<Vec<RawEvent>>,
    len: u32,
}

impl Events {
    fn get(&self, i: u32) -> &RawEvent {
        let i = i as usize;
        &self.chunks[i / EVENT_CHUNK][i % EVENT_CHUNK]
    }

    fn get_mut(&mut self, i: u32) -> &mut RawEvent {
        let i = i as usize;
        &mut self.chunks[i / EVENT_CHUNK][i % EVENT_CHUNK]
    }

    fn push(&mut self, e: RawEvent) -> u32 {
        if self.len as usize % EVENT_CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(EVENT_CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(e);
        }
        self.len += 1;
        self.len - 1
    }

    /// The events of a bucket's list, starting at `head`, most recently received first.
    fn list(&self, head: u32) -> impl Iterator<Item = (u32, &RawEvent)> {
        let mut at = head;
        std::iter::from_fn(move || {
            if at == NONE {
                return None;
            }
            let (i, e) = (at, self.get(at));
            at = e.next;
            Some((i, e))
        })
    }
}

/// An event standing for a bucket: its timestamp, value and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    timestamp: Nanos,
    value: Decimal,
    event: u32,
}

impl Mark {
    const EMPTY: Mark = Mark {
        timestamp: 0,
        value: Decimal::ZERO,
        event: NONE,
    };

    fn of(event: u32, e: &RawEvent) -> Mark {
        Mark {
            timestamp: e.timestamp,
            value: e.value,
            event,
        }
    }

    fn is_empty(&self) -> bool {
        self.event == NONE
    }

    /// Whether `self` is later than `other` by timestamp, then by receipt.
    fn later_than(&self, other: &Mark) -> bool {
        other.is_empty() || (self.timestamp, self.event) > (other.timestamp, other.event)
    }
}

/// One UTC hour of one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// Sum of the live events' values.
    sum: Decimal,
    /// Live events.
    count: u32,
    /// The most recently received event of the hour (live or cancelled), head of its list.
    head: u32,
    /// The live event with the latest timestamp (ties: the later received).
    last: Mark,
    /// The live event received last.
    newest: Mark,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sum: Decimal::ZERO,
        count: 0,
        head: NONE,
        last: Mark::EMPTY,
        newest: Mark::EMPTY,
    };
}

/// The usage of one (meter, customer) pair, by hour.
#[derive(Debug)]
struct Series {
    meter: Key,
    customer: Key,
    hours: BTreeMap<i64, Bucket>,
}

/// The hour an instant falls in, as a number of hours since the epoch.
fn hour_of(t: Nanos) -> i64 {
    t.div_euclid(HOUR)
}

/// A running aggregate of events.
#[derive(Debug, Clone, Copy)]
struct Total {
    sum: Decimal,
    count: u64,
    last: Mark,
}

impl Total {
    const ZERO: Total = Total {
        sum: Decimal::ZERO,
        count: 0,
        last: Mark::EMPTY,
    };

    fn add_event(&mut self, event: u32, e: &RawEvent) {
        self.sum += e.value;
        self.count += 1;
        let mark = Mark::of(event, e);
        if mark.later_than(&self.last) {
            self.last = mark;
        }
    }

    fn add_bucket(&mut self, b: &Bucket) {
        if b.count == 0 {
            return;
        }
        self.sum += b.sum;
        self.count += u64::from(b.count);
        if b.last.later_than(&self.last) {
            self.last = b.last;
        }
    }

    fn by(&self, formula: Formula) -> Decimal {
        match formula {
            Formula::Sum => self.sum,
            Formula::Count => Decimal::from(self.count),
            // No usage: zero.
            Formula::Last => self.last.value,
        }
    }
}

/// What [`Usage::append`] stores.
struct Arrival<'a> {
    meter: Key,
    customer: Key,
    domain: Domain,
    received: Nanos,
    timestamp: Nanos,
    value: Decimal,
    identifier: &'a str,
}

/// Events, series and identifiers of one tenant.
#[derive(Debug, Default)]
struct Usage {
    events: Events,
    series: Vec<Series>,
    series_of: HashMap<(Key, Key), u32, FastHash>,
    identifiers: Identifiers,
}

impl Usage {
    /// `Err(Full)` when one more event (and a new series) could not be addressed.
    fn ensure_room(&self) -> Result<(), MeterEventError> {
        if self.events.len >= NONE - 1 || self.series.len() as u32 >= CANCELLED - 1 {
            return Err(MeterEventError::Full);
        }
        Ok(())
    }

    /// Stores an event whose checks have passed, and remembers its identifier.
    fn append(&mut self, a: Arrival<'_>) -> Result<(), MeterEventError> {
        self.ensure_room()?;
        let event = self.events.len;
        let domain = self.identifiers.domain_index(a.domain);
        self.identifiers.purge(domain, a.received);
        self.identifiers
            .remember(a.identifier.as_bytes(), event, domain, a.received)
            .ok_or(MeterEventError::Full)?;
        self.store(a.meter, a.customer, a.timestamp, a.value);
        Ok(())
    }

    /// Stores an event in its series' bucket (its identifier is remembered apart); returns its
    /// index.
    fn store(&mut self, meter: Key, customer: Key, timestamp: Nanos, value: Decimal) -> u32 {
        let event = self.events.len;
        let next_series = self.series.len() as u32;
        let series = *self
            .series_of
            .entry((meter, customer))
            .or_insert(next_series);
        if series == next_series {
            self.series.push(Series {
                meter,
                customer,
                hours: BTreeMap::new(),
            });
        }
        let bucket = self.series[series as usize]
            .hours
            .entry(hour_of(timestamp))
            .or_insert(Bucket::EMPTY);
        let raw = RawEvent {
            timestamp,
            value,
            series,
            next: bucket.head,
        };
        bucket.head = event;
        bucket.sum += value;
        bucket.count += 1;
        let mark = Mark::of(event, &raw);
        if mark.later_than(&bucket.last) {
            bucket.last = mark;
        }
        bucket.newest = mark;
        self.events.push(raw);
        event
    }

    /// Takes event `event` out of its bucket.
    fn cancel(&mut self, event: u32) -> Result<(), CancelError> {
        let raw = *self.events.get(event);
        if !raw.live() {
            return Err(CancelError::AlreadyCancelled);
        }
        self.events.get_mut(event).series |= CANCELLED;
        let series = &mut self.series[raw.series() as usize];
        let Some(bucket) = series.hours.get_mut(&hour_of(raw.timestamp)) else {
            return Ok(());
        };
        bucket.sum -= raw.value;
        bucket.count -= 1;
        if bucket.last.event == event || bucket.newest.event == event {
            // Only the hour's own events can say which one stands for it now.
            let (mut last, mut newest) = (Mark::EMPTY, Mark::EMPTY);
            for (i, e) in self.events.list(bucket.head).filter(|(_, e)| e.live()) {
                let mark = Mark::of(i, e);
                if mark.later_than(&last) {
                    last = mark;
                }
                if newest.is_empty() || i > newest.event {
                    newest = mark;
                }
            }
            bucket.last = last;
            bucket.newest = newest;
        }
        Ok(())
    }

    /// The live events of hour `hour` timestamped in `[from, to)`.
    fn cut(&self, series: &Series, hour: i64, from: Nanos, to: Nanos, total: &mut Total) {
        if let Some(b) = series.hours.get(&hour) {
            for (i, e) in self.events.list(b.head) {
                if e.live() && from <= e.timestamp && e.timestamp < to {
                    total.add_event(i, e);
                }
            }
        }
    }

    /// Every live event of `series` timestamped in `[from, to)` (`from < to`).
    fn raw_total(&self, series: &Series, from: Nanos, to: Nanos) -> Total {
        let mut total = Total::ZERO;
        let (first, last) = (hour_of(from), hour_of(to - 1));
        if first == last {
            self.cut(series, first, from, to, &mut total);
            return total;
        }
        // Whole hours come from their buckets; the hours the range cuts, from their events.
        let whole_from = if from.rem_euclid(HOUR) == 0 {
            first
        } else {
            self.cut(series, first, from, to, &mut total);
            first + 1
        };
        let whole_to = if to.rem_euclid(HOUR) == 0 {
            last
        } else {
            self.cut(series, last, from, to, &mut total);
            last - 1
        };
        if whole_from <= whole_to {
            for b in series.hours.range(whole_from..=whole_to).map(|(_, b)| b) {
                total.add_bucket(b);
            }
        }
        total
    }

    /// The events standing for each window of `length` that overlaps `[from, to)` (each window's
    /// most recently received live event), those timestamped in `[from, to)`.
    fn windowed_total(&self, series: &Series, length: Nanos, from: Nanos, to: Nanos) -> Total {
        let mut total = Total::ZERO;
        let per_window = length / HOUR;
        let first_window = from.div_euclid(length);
        let last_window = (to - 1).div_euclid(length);
        let hours = first_window * per_window..=(last_window + 1) * per_window - 1;
        let mut current: Option<(i64, Mark)> = None;
        let close = |window: Option<(i64, Mark)>, total: &mut Total| {
            if let Some((_, m)) = window {
                if !m.is_empty() && from <= m.timestamp && m.timestamp < to {
                    total.add_event(m.event, self.events.get(m.event));
                }
            }
        };
        for (&hour, b) in series.hours.range(hours) {
            if b.count == 0 {
                continue;
            }
            let window = hour.div_euclid(per_window);
            match &mut current {
                Some((w, m)) if *w == window => {
                    if b.newest.event > m.event {
                        *m = b.newest;
                    }
                }
                _ => {
                    close(current.take(), &mut total);
                    current = Some((window, b.newest));
                }
            }
        }
        close(current, &mut total);
        total
    }

    /// Every bucket equals what its events sum to, every event is in its bucket's list, and the
    /// identifier table holds exactly the remembered identifiers.
    fn check(&self) -> Result<(), String> {
        let mut listed = 0u64;
        for (s, series) in self.series.iter().enumerate() {
            if self.series_of.get(&(series.meter, series.customer)) != Some(&(s as u32)) {
                return Err(format!("series {s} is not found by its meter and customer"));
            }
            for (&hour, b) in &series.hours {
                let mut want = Bucket {
                    head: b.head,
                    ..Bucket::EMPTY
                };
                for (i, e) in self.events.list(b.head) {
                    listed += 1;
                    if e.series() as usize != s || hour_of(e.timestamp) != hour {
                        return Err(format!("event {i} is listed in the wrong bucket"));
                    }
                    if !e.live() {
                        continue;
                    }
                    want.sum += e.value;
                    want.count += 1;
                    let mark = Mark::of(i, e);
                    if mark.later_than(&want.last) {
                        want.last = mark;
                    }
                    if want.newest.is_empty() || i > want.newest.event {
                        want.newest = mark;
                    }
                }
                if *b != want {
                    return Err(format!(
                        "bucket {hour} of series {s} holds {b:?}, its events make {want:?}"
                    ));
                }
            }
        }
        if listed != u64::from(self.events.len) || self.series.len() != self.series_of.len() {
            return Err(format!(
                "{listed} events in bucket lists, {} events",
                self.events.len
            ));
        }
        self.identifiers.check(self.events.len)
    }
}

/// Bytes per arena chunk. A record never spans two chunks; its offset is its chunk's number
/// times this, plus its place in the chunk, in 32 bits (4 GiB of remembered text).
const ARENA_CHUNK_BITS: u32 = 18;
const ARENA_CHUNK: usize = 1 << ARENA_CHUNK_BITS;
const MAX_ARENA_CHUNKS: usize = 1 << (32 - ARENA_CHUNK_BITS);
/// A record: event (u32), clock (u32), received (i64), text length (u16), then the text.
const HEADER: usize = 18;
/// The arena is compacted once it holds more than this many bytes and forgotten text is at least
/// half of them.
const COMPACT_FROM: usize = 1 << 20;

/// The identifiers of the events received within their [`IDENTIFIER_LIFETIME`].
#[derive(Debug, Default)]
struct Identifiers {
    /// Hashes identifier text for `table`; randomly seeded, so chosen identifiers cannot be made
    /// to collide.
    hasher: foldhash::fast::RandomState,
    /// The records, in chunks of [`ARENA_CHUNK`] bytes.
    chunks: Vec<Vec<u8>>,
    /// Bytes written to the arena.
    used: usize,
    /// Bytes of forgotten records.
    dead: usize,
    /// The offset of every remembered record, found by the hash of its text.
    table: HashTable<u32>,
    /// The clocks events were received on; a record names its clock by its place here.
    domains: Vec<Domain>,
    /// The place of each clock in `domains`.
    domain_places: HashMap<Domain, u32, FastHash>,
    /// Per clock (same places as `domains`), the offsets of its records in the order received
    /// (forgotten ones may linger until they reach the front).
    queues: Vec<VecDeque<u32>>,
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

impl Identifiers {
    fn record(&self, offset: u32) -> &[u8] {
        let chunk = &self.chunks[(offset >> ARENA_CHUNK_BITS) as usize];
        &chunk[(offset as usize & (ARENA_CHUNK - 1))..]
    }

    /// The event a record names ([`NONE`] once forgotten).
    fn event_of(&self, offset: u32) -> u32 {
        read_u32(self.record(offset), 0)
    }

    /// The clock the record's event was received on.
    fn domain_of(&self, offset: u32) -> Domain {
        self.domains[read_u32(self.record(offset), 4) as usize]
    }

    /// When the record's event was received, on its clock.
    fn received_of(&self, offset: u32) -> Nanos {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.record(offset)[8..16]);
        Nanos::from_le_bytes(a)
    }

    fn text_of(&self, offset: u32) -> &[u8] {
        let r = self.record(offset);
        let len = usize::from(u16::from_le_bytes([r[16], r[17]]));
        &r[HEADER..HEADER + len]
    }

    fn hash(&self, text: &[u8]) -> u64 {
        self.hasher.hash_one(text)
    }

    /// The offset of the remembered record of `text`.
    fn find(&self, text: &[u8]) -> Option<u32> {
        self.table
            .find(self.hash(text), |&o| self.text_of(o) == text)
            .copied()
    }

    /// The place of `domain` in `domains`, added if new.
    fn domain_index(&mut self, domain: Domain) -> u32 {
        if let Some(&i) = self.domain_places.get(&domain) {
            return i;
        }
        let i = self.domains.len() as u32;
        self.domains.push(domain);
        self.queues.push(VecDeque::new());
        self.domain_places.insert(domain, i);
        i
    }

    /// Writes a record for `text` and remembers it; `None` when the arena is full.
    fn remember(&mut self, text: &[u8], event: u32, domain: u32, received: Nanos) -> Option<u32> {
        let len = HEADER + text.len();
        let room = self
            .chunks
            .last()
            .is_some_and(|c| ARENA_CHUNK - c.len() >= len);
        if !room {
            if self.chunks.len() >= MAX_ARENA_CHUNKS {
                return None;
            }
            self.chunks.push(Vec::with_capacity(ARENA_CHUNK));
        }
        let chunk_no = self.chunks.len() - 1;
        let chunk = self.chunks.last_mut()?;
        let offset = ((chunk_no as u32) << ARENA_CHUNK_BITS) | chunk.len() as u32;
        chunk.extend_from_slice(&event.to_le_bytes());
        chunk.extend_from_slice(&domain.to_le_bytes());
        chunk.extend_from_slice(&received.to_le_bytes());
        // Identifiers are at most 100 characters, 400 bytes: the length fits.
        chunk.extend_from_slice(&(text.len() as u16).to_le_bytes());
        chunk.extend_from_slice(text);
        self.used += len;
        let hash = self.hash(text);
        let Identifiers {
            hasher,
            chunks,
            table,
            ..
        } = self;
        table.insert_unique(hash, offset, |&o| hasher.hash_one(text_in(chunks, o)));
        self.queues[domain as usize].push_back(offset);
        Some(offset)
    }

    /// Forgets the record at `offset` (it stays in its queue, marked, until it reaches the front).
    fn forget(&mut self, offset: u32) {
        if self.event_of(offset) == NONE {
            return;
        }
        let hash = self.hash(self.text_of(offset));
        if let Ok(entry) = self.table.find_entry(hash, |&o| o == offset) {
            entry.remove();
        }
        self.dead += HEADER + self.text_of(offset).len();
        let chunk = &mut self.chunks[(offset >> ARENA_CHUNK_BITS) as usize];
        let at = offset as usize & (ARENA_CHUNK - 1);
        chunk[at..at + 4].copy_from_slice(&NONE.to_le_bytes());
    }

    /// Forgets the records of clock `domain` whose time is up at `now`, oldest first.
    fn purge(&mut self, domain: u32, now: Nanos) {
        while let Some(&offset) = self.queues[domain as usize].front() {
            if self.event_of(offset) != NONE {
                if self.received_of(offset).saturating_add(IDENTIFIER_LIFETIME) > now {
                    break;
                }
                self.forget(offset);
            }
            self.queues[domain as usize].pop_front();
        }
        if self.used > COMPACT_FROM && self.dead * 2 >= self.used {
            self.compact();
        }
    }

    /// Copies the remembered records into a fresh arena, in queue order, and rebuilds the table:
    /// O(remembered), paid for by at least as many forgotten bytes.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.chunks);
        let text = |o: u32| text_in(&old, o);
        self.table.clear();
        self.used = 0;
        self.dead = 0;
        for q in 0..self.queues.len() {
            let offsets = std::mem::take(&mut self.queues[q]);
            for o in offsets {
                let r = record_in(&old, o);
                let event = read_u32(r, 0);
                if event == NONE {
                    continue;
                }
                let mut received = [0u8; 8];
                received.copy_from_slice(&r[8..16]);
                // The new arena is no larger than the old one, so there is room.
                let _ = self.remember(text(o), event, q as u32, Nanos::from_le_bytes(received));
            }
        }
    }

    /// The table finds exactly the records that are not forgotten, each by its own text.
    fn check(&self, events: u32) -> Result<(), String> {
        let mut remembered = 0;
        for queue in &self.queues {
            for &o in queue {
                let event = self.event_of(o);
                if event == NONE {
                    continue;
                }
                remembered += 1;
                if event >= events || self.find(self.text_of(o)) != Some(o) {
                    return Err(format!("identifier record {o} is not found by its text"));
                }
            }
        }
        if remembered != self.table.len() {
            return Err(format!(
                "{} identifiers in the table, {remembered} remembered",
                self.table.len()
            ));
        }
        Ok(())
    }
}

fn record_in(chunks: &[Vec<u8>], offset: u32) -> &[u8] {
    &chunks[(offset >> ARENA_CHUNK_BITS) as usize][(offset as usize & (ARENA_CHUNK - 1))..]
}

fn text_in(chunks: &[Vec<u8>], offset: u32) -> &[u8] {
    let r = record_in(chunks, offset);
    let len = usize::from(u16::from_le_bytes([r[16], r[17]]));
    &r[HEADER..HEADER + len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewCustomer;
    use crate::time::parse_rfc3339;

    const S: Nanos = NANOS_PER_SEC;

    fn at(s: &str) -> Nanos {
        parse_rfc3339(s).unwrap()
    }

    /// A tenant frozen at 2033-05-18T12:00:00Z with one customer.
    fn world() -> (Tenant, Key, Nanos) {
        let mut t = Tenant::new("sk_test_meters", Some(11));
        let t0 = at("2033-05-18T12:00:00Z");
        t.freeze_clock(t0).unwrap();
        let customer = t.create_customer(NewCustomer::default());
        (t, customer, t0)
    }

    fn meter(t: &mut Tenant, name: &str, formula: Formula, w: Option<EventTimeWindow>) -> Key {
        t.try_create_meter(NewMeter {
            display_name: name.into(),
            event_name: name.into(),
            formula,
            customer_key: "stripe_customer_id".into(),
            value_key: "value".into(),
            event_time_window: w,
        })
        .unwrap()
    }

    fn event(
        t: &mut Tenant,
        meter: Key,
        customer: Key,
        ts: Nanos,
        value: i64,
        id: &str,
    ) -> Result<RecordedEvent, MeterEventError> {
        t.record_meter_event(NewMeterEvent {
            meter,
            customer,
            value: Decimal::from(value),
            timestamp: Some(ts),
            identifier: Some(id),
        })
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn sum_count_and_last_over_whole_and_cut_hours() {
        let (mut t, c, t0) = world();
        let sum = meter(&mut t, "sum", Formula::Sum, None);
        let count = meter(&mut t, "count", Formula::Count, None);
        let last = meter(&mut t, "last", Formula::Last, None);
        let h = |n: i64| t0 - 10 * HOUR + n * HOUR;
        // (offset from the start of hour 0, value): spread over hours 0, 1 and 3.
        let events = [
            (h(0) + 10 * S, 5),
            (h(0) + 50 * 60 * S, 7),
            (h(1), 11),
            (h(3) + S, 13),
        ];
        for (i, (ts, v)) in events.iter().enumerate() {
            for m in [sum, count, last] {
                event(&mut t, m, c, *ts, *v, &format!("{m}-{i}")).unwrap();
            }
        }
        assert_eq!(t.check_indexes(), Ok(()));
        let usage = |t: &Tenant, m, from, to| t.meter_usage(m, c, from, to);
        // The whole range, whole hours only.
        assert_eq!(usage(&t, sum, h(0), h(4)), dec("36"));
        assert_eq!(usage(&t, count, h(0), h(4)), dec("4"));
        assert_eq!(usage(&t, last, h(0), h(4)), dec("13"));
        // Cut at both ends: from inside hour 0 to inside hour 3.
        assert_eq!(usage(&t, sum, h(0) + 11 * S, h(3) + S), dec("18"));
        assert_eq!(usage(&t, count, h(0) + 11 * S, h(3) + S), dec("2"));
        assert_eq!(usage(&t, last, h(0) + 11 * S, h(3) + S), dec("11"));
        assert_eq!(usage(&t, last, h(0) + 11 * S, h(3) + 2 * S), dec("13"));
        // Within one hour; start inclusive, end exclusive.
        assert_eq!(usage(&t, sum, h(0) + 10 * S, h(0) + 50 * 60 * S), dec("5"));
        assert_eq!(
            usage(&t, sum, h(0) + 10 * S + 1, h(0) + 50 * 60 * S + 1),
            dec("7")
        );
        // Nothing in range, an empty range, another customer, an unknown meter: zero.
        assert_eq!(usage(&t, last, h(2), h(3)), Decimal::ZERO);
        assert_eq!(usage(&t, sum, h(3), h(0)), Decimal::ZERO);
        let other = t.create_customer(NewCustomer::default());
        assert_eq!(t.meter_usage(sum, other, h(0), h(4)), Decimal::ZERO);
        assert_eq!(t.meter_usage(7, c, h(0), h(4)), Decimal::ZERO);
    }

    #[test]
    fn last_is_the_latest_timestamp_then_the_latest_received() {
        let (mut t, c, t0) = world();
        let last = meter(&mut t, "last", Formula::Last, None);
        event(&mut t, last, c, t0 - 5 * S, 1, "a").unwrap();
        event(&mut t, last, c, t0 - 2 * HOUR, 2, "b").unwrap(); // received later, earlier in time
        assert_eq!(t.meter_usage(last, c, t0 - DAY, t0), dec("1"));
        event(&mut t, last, c, t0 - 5 * S, 3, "c").unwrap(); // same timestamp as "a", received later
        assert_eq!(t.meter_usage(last, c, t0 - DAY, t0), dec("3"));
        t.cancel_meter_event("last", "c").unwrap();
        assert_eq!(t.meter_usage(last, c, t0 - DAY, t0), dec("1"));
        t.cancel_meter_event("last", "a").unwrap();
        assert_eq!(t.meter_usage(last, c, t0 - DAY, t0), dec("2"));
        t.cancel_meter_event("last", "b").unwrap();
        assert_eq!(t.meter_usage(last, c, t0 - DAY, t0), Decimal::ZERO);
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn cancelled_events_leave_every_total() {
        let (mut t, c, t0) = world();
        let sum = meter(&mut t, "sum", Formula::Sum, None);
        event(&mut t, sum, c, t0 - 90 * S, 4, "x").unwrap();
        event(&mut t, sum, c, t0 - 30 * S, 6, "y").unwrap();
        assert_eq!(t.cancel_meter_event("sum", "x"), Ok(()));
        assert_eq!(t.meter_usage(sum, c, t0 - HOUR, t0), dec("6"));
        assert_eq!(
            t.meter_usage(sum, c, t0 - 100 * S, t0 - 60 * S),
            Decimal::ZERO
        );
        assert_eq!(
            t.cancel_meter_event("sum", "x"),
            Err(CancelError::AlreadyCancelled)
        );
        // Another event name, or an identifier never sent: not found.
        assert_eq!(
            t.cancel_meter_event("other", "y"),
            Err(CancelError::NotFound)
        );
        assert_eq!(t.cancel_meter_event("sum", "z"), Err(CancelError::NotFound));
        // A cancelled identifier is still taken.
        assert_eq!(
            event(&mut t, sum, c, t0, 1, "x"),
            Err(MeterEventError::Duplicate)
        );
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn a_window_keeps_the_most_recently_received_event_of_each_hour_or_day() {
        let (mut t, c, t0) = world();
        let day0 = t0.div_euclid(DAY) * DAY - 3 * DAY;
        let hourly = meter(&mut t, "hourly", Formula::Sum, Some(EventTimeWindow::Hour));
        let daily = meter(&mut t, "daily", Formula::Sum, Some(EventTimeWindow::Day));
        let daily_count = meter(&mut t, "dc", Formula::Count, Some(EventTimeWindow::Day));
        let daily_last = meter(&mut t, "dl", Formula::Last, Some(EventTimeWindow::Day));
        // Day 0: 10 at 01:30, then 20 at 01:10 (received later, same hour), then 30 at 05:00.
        // Day 1: 40 at 23:00.
        let sent = [
            (day0 + 90 * 60 * S, 10),
            (day0 + 70 * 60 * S, 20),
            (day0 + 5 * HOUR, 30),
            (day0 + DAY + 23 * HOUR, 40),
        ];
        for (i, (ts, v)) in sent.iter().enumerate() {
            for m in [hourly, daily, daily_count, daily_last] {
                event(&mut t, m, c, *ts, *v, &format!("{m}-{i}")).unwrap();
            }
        }
        let all = (day0, day0 + 2 * DAY);
        assert_eq!(t.meter_usage(hourly, c, all.0, all.1), dec("90")); // 20 + 30 + 40
        assert_eq!(t.meter_usage(daily, c, all.0, all.1), dec("70")); // 30 + 40
        assert_eq!(t.meter_usage(daily_count, c, all.0, all.1), dec("2"));
        assert_eq!(t.meter_usage(daily_last, c, all.0, all.1), dec("40"));
        // A window's event counts only if its timestamp is in range.
        assert_eq!(
            t.meter_usage(daily, c, day0, day0 + 4 * HOUR),
            Decimal::ZERO
        );
        assert_eq!(t.meter_usage(hourly, c, day0, day0 + 4 * HOUR), dec("20"));
        // Cancelling the event standing for a window brings back the one it overwrote.
        t.cancel_meter_event("daily", &format!("{daily}-2"))
            .unwrap();
        assert_eq!(t.meter_usage(daily, c, all.0, all.1), dec("60")); // 20 + 40
        t.cancel_meter_event("hourly", &format!("{hourly}-1"))
            .unwrap();
        assert_eq!(t.meter_usage(hourly, c, all.0, all.1), dec("80")); // 10 + 30 + 40
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn timestamps_are_judged_on_the_customers_clock() {
        let (mut t, c, t0) = world();
        let sum = meter(&mut t, "sum", Formula::Sum, None);
        let past = t0 - MAX_EVENT_AGE;
        assert!(event(&mut t, sum, c, past, 1, "a").is_ok());
        assert_eq!(
            event(&mut t, sum, c, past - 1, 1, "b"),
            Err(MeterEventError::TooOld { now: t0 })
        );
        assert!(event(&mut t, sum, c, t0 + MAX_EVENT_LEAD, 1, "c").is_ok());
        assert_eq!(
            event(&mut t, sum, c, t0 + MAX_EVENT_LEAD + 1, 1, "d"),
            Err(MeterEventError::TooFarAhead { now: t0 })
        );
        // A customer on a test clock a year back reports at the clock's time, by default too.
        let frozen = t0 - 365 * DAY;
        let clock = t.create_test_clock(frozen, None);
        let on_clock = t.create_customer(NewCustomer {
            test_clock: Some(clock),
            ..NewCustomer::default()
        });
        assert_eq!(
            event(&mut t, sum, on_clock, t0, 1, "e"),
            Err(MeterEventError::TooFarAhead { now: frozen })
        );
        let made = t
            .record_meter_event(NewMeterEvent {
                meter: sum,
                customer: on_clock,
                value: Decimal::from(2),
                timestamp: None,
                identifier: None,
            })
            .unwrap();
        assert_eq!((made.timestamp, made.created), (frozen, frozen));
        let generated = made.generated_identifier.unwrap();
        assert_eq!(generated.len(), crate::ids::ENCODED_LEN);
        assert_eq!(t.meter_usage(sum, on_clock, frozen, frozen + 1), dec("2"));
        assert_eq!(t.cancel_meter_event("sum", &generated), Ok(()));
    }

    #[test]
    fn identifiers_are_forgotten_after_a_day_of_their_clock() {
        let (mut t, c, t0) = world();
        let sum = meter(&mut t, "sum", Formula::Sum, None);
        let clock = t.create_test_clock(t0, None);
        let on_clock = t.create_customer(NewCustomer {
            test_clock: Some(clock),
            ..NewCustomer::default()
        });
        event(&mut t, sum, c, t0, 1, "tenant").unwrap();
        event(&mut t, sum, on_clock, t0, 1, "clock").unwrap();
        // A day of the tenant clock forgets the tenant customer's identifier only.
        t.freeze_clock(t0 + DAY - 1).unwrap();
        assert_eq!(
            event(&mut t, sum, c, t0, 1, "tenant"),
            Err(MeterEventError::Duplicate)
        );
        t.freeze_clock(t0 + DAY).unwrap();
        assert_eq!(
            t.cancel_meter_event("sum", "tenant"),
            Err(CancelError::NotFound)
        );
        assert!(event(&mut t, sum, c, t0 + DAY, 1, "tenant").is_ok());
        assert_eq!(
            event(&mut t, sum, c, t0 + DAY, 1, "clock"),
            Err(MeterEventError::Duplicate)
        );
        t.advance_test_clock(clock, t0 + DAY).unwrap();
        assert!(event(&mut t, sum, on_clock, t0 + DAY, 1, "clock").is_ok());
        assert_eq!(t.meter_usage(sum, c, t0, t0 + 2 * DAY), dec("2"));
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn remembered_identifiers_follow_the_last_day_of_events() {
        let (mut t, c, t0) = world();
        let count = meter(&mut t, "count", Formula::Count, None);
        // Four days of 20,000 events each, an event every 4.32 seconds.
        let mut now = t0;
        for i in 0..80_000u32 {
            now += 4_320_000_000;
            t.freeze_clock(now).unwrap();
            let id = format!("{i:08}-2f0c-4d4e-9a55-{i:012}");
            event(&mut t, count, c, now, 1, &id).unwrap();
        }
        let ids = &t.metering.usage.identifiers;
        assert_eq!(ids.table.len(), 20_000);
        // The arena holds about a day of records (54 bytes each) plus what is not compacted yet.
        assert!(
            ids.used - ids.dead <= 20_001 * 54,
            "{} bytes live",
            ids.used - ids.dead
        );
        assert!(
            ids.used <= 2 * 20_001 * 54 + ARENA_CHUNK,
            "{} bytes",
            ids.used
        );
        assert!(ids.chunks.len() <= 2 * 20_001 * 54 / ARENA_CHUNK + 2);
        assert_eq!(t.meter_usage(count, c, t0, now + 1), dec("80000"));
        // Compaction kept every remembered identifier findable.
        assert_eq!(
            event(
                &mut t,
                count,
                c,
                now,
                1,
                "00079999-2f0c-4d4e-9a55-000000079999"
            ),
            Err(MeterEventError::Duplicate)
        );
        assert_eq!(t.check_indexes(), Ok(()));
    }

    #[test]
    fn values_are_checked_unless_the_meter_counts() {
        let (mut t, c, t0) = world();
        let sum = meter(&mut t, "sum", Formula::Sum, None);
        let count = meter(&mut t, "count", Formula::Count, None);
        let with = |t: &mut Tenant, m, v: &str, id: &str| {
            t.record_meter_event(NewMeterEvent {
                meter: m,
                customer: c,
                value: dec(v),
                timestamp: Some(t0),
                identifier: Some(id),
            })
        };
        assert!(with(&mut t, sum, "999999999999999.999999999999", "a").is_ok());
        assert!(with(&mut t, sum, "-2.500000000000000", "b").is_ok());
        assert_eq!(
            with(&mut t, sum, "1000000000000000", "c"),
            Err(MeterEventError::ValueOutOfRange)
        );
        assert_eq!(
            with(&mut t, sum, "0.0000000000001", "d"),
            Err(MeterEventError::ValueOutOfRange)
        );
        assert!(with(&mut t, count, "1000000000000000", "e").is_ok());
        assert_eq!(
            t.meter_usage(sum, c, t0, t0 + 1),
            dec("999999999999997.499999999999")
        );
        assert_eq!(t.meter_usage(count, c, t0, t0 + 1), dec("1"));
    }

    #[test]
    fn one_active_meter_per_event_name() {
        let (mut t, c, t0) = world();
        let first = meter(&mut t, "api", Formula::Sum, None);
        let new = |name: &str| NewMeter {
            display_name: "Second".into(),
            event_name: name.into(),
            formula: Formula::Count,
            customer_key: "stripe_customer_id".into(),
            value_key: "value".into(),
            event_time_window: None,
        };
        assert_eq!(
            t.try_create_meter(new("api")),
            Err(MeterError::EventNameTaken { by: first })
        );
        // The unchecked command makes it inactive instead.
        let shadow = t.create_meter(new("api"));
        assert_eq!(t.meter(shadow).unwrap().status, MeterStatus::Inactive);
        assert_eq!(t.meter(shadow).unwrap().deactivated_at, Some(t0));
        assert_eq!(
            t.reactivate_meter(shadow),
            Err(MeterError::EventNameTaken { by: first })
        );
        event(&mut t, first, c, t0, 3, "one").unwrap();
        t.deactivate_meter(first).unwrap();
        assert_eq!(t.deactivate_meter(first), Err(MeterError::AlreadyInactive));
        assert_eq!(
            event(&mut t, first, c, t0, 3, "two"),
            Err(MeterEventError::NotActive)
        );
        assert!(t.active_meter_named("api").is_none());
        // Its usage stays, and its events can still be cancelled.
        assert_eq!(t.meter_usage(first, c, t0, t0 + 1), dec("3"));
        t.reactivate_meter(shadow).unwrap();
        assert_eq!(t.reactivate_meter(shadow), Err(MeterError::AlreadyActive));
        assert_eq!(t.active_meter_named("api").map(|m| m.key), Some(shadow));
        assert_eq!(t.meter(shadow).unwrap().deactivated_at, None);
        assert_eq!(t.cancel_meter_event("api", "one"), Ok(()));
        assert_eq!(t.meter_usage(first, c, t0, t0 + 1), Decimal::ZERO);
        let fresh = t.try_create_meter(new("other")).unwrap();
        assert_eq!(
            t.meter_keys_with_status(MeterStatus::Active)
                .iter()
                .collect::<Vec<_>>(),
            vec![shadow, fresh]
        );
        assert_eq!(t.rename_meter(first, "Renamed".into()), Ok(()));
        assert_eq!(t.meter(first).unwrap().display_name, "Renamed");
        assert_eq!(t.rename_meter(1, "x".into()), Err(MeterError::NotFound));
        assert_eq!(t.check_indexes(), Ok(()));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// An event of the reference model: what was sent, and whether it was cancelled since.
        #[derive(Debug, Clone)]
        struct Sent {
            meter: usize,
            ts: Nanos,
            value: Decimal,
            live: bool,
        }

        /// What `meter_usage` must answer, worked out from every event sent.
        fn expected(
            sent: &[Sent],
            meter: usize,
            formula: Formula,
            window: Option<Nanos>,
            from: Nanos,
            to: Nanos,
        ) -> Decimal {
            let live: Vec<(usize, &Sent)> = sent
                .iter()
                .enumerate()
                .filter(|(_, e)| e.live && e.meter == meter)
                .collect();
            let chosen: Vec<(usize, &Sent)> = match window {
                None => live
                    .into_iter()
                    .filter(|(_, e)| from <= e.ts && e.ts < to)
                    .collect(),
                Some(w) => {
                    let mut newest: BTreeMap<i64, (usize, &Sent)> = BTreeMap::new();
                    for (i, e) in live {
                        newest.insert(e.ts.div_euclid(w), (i, e));
                    }
                    newest
                        .into_values()
                        .filter(|(_, e)| from <= e.ts && e.ts < to)
                        .collect()
                }
            };
            match formula {
                Formula::Sum => chosen.iter().map(|(_, e)| e.value).sum(),
                Formula::Count => Decimal::from(chosen.len()),
                Formula::Last => chosen
                    .iter()
                    .max_by_key(|(i, e)| (e.ts, *i))
                    .map_or(Decimal::ZERO, |(_, e)| e.value),
            }
        }

        #[derive(Debug, Clone)]
        enum Op {
            Send {
                meter: usize,
                minutes: i64,
                cents: i64,
            },
            Cancel(usize),
            Query {
                from_minutes: i64,
                len_minutes: i64,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0usize..9, 0i64..4 * 24 * 60, -500i64..5000)
                    .prop_map(|(meter, minutes, cents)| Op::Send { meter, minutes, cents }),
                1 => (0usize..200).prop_map(Op::Cancel),
                2 => (-60i64..4 * 24 * 60, 0i64..3 * 24 * 60)
                    .prop_map(|(from_minutes, len_minutes)| Op::Query { from_minutes, len_minutes }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn usage_equals_a_walk_over_every_event(ops in proptest::collection::vec(op(), 1..120)) {
                let (mut t, c, t0) = world();
                // Every formula with every window; events within the last four days.
                let mut meters = Vec::new();
                for (f, formula) in [Formula::Sum, Formula::Count, Formula::Last].into_iter().enumerate() {
                    for (w, window) in [None, Some(EventTimeWindow::Hour), Some(EventTimeWindow::Day)].into_iter().enumerate() {
                        meters.push((meter(&mut t, &format!("m{f}{w}"), formula, window), formula, window));
                    }
                }
                let base = t0 - 4 * DAY;
                let mut sent: Vec<Sent> = Vec::new();
                for op in ops {
                    match op {
                        Op::Send { meter, minutes, cents } => {
                            let (key, formula, _) = meters[meter];
                            let ts = base + minutes * 60 * S + (cents.rem_euclid(7)) * S;
                            let value = Decimal::new(cents, 2);
                            let id = format!("e{}", sent.len());
                            event_value(&mut t, key, c, ts, value, &id);
                            sent.push(Sent {
                                meter,
                                ts,
                                value: if formula == Formula::Count { Decimal::ONE } else { value },
                                live: true,
                            });
                        }
                        Op::Cancel(i) => {
                            if let Some(e) = sent.get_mut(i) {
                                let name = format!("m{}{}", e.meter / 3, e.meter % 3);
                                let got = t.cancel_meter_event(&name, &format!("e{i}"));
                                prop_assert_eq!(got.is_ok(), e.live);
                                e.live = false;
                            }
                        }
                        Op::Query { from_minutes, len_minutes } => {
                            let from = base + from_minutes * 60 * S - 17 * S;
                            let to = from + len_minutes * 60 * S + 3 * S;
                            for (m, &(key, formula, window)) in meters.iter().enumerate() {
                                let want = expected(&sent, m, formula, window.map(EventTimeWindow::length), from, to);
                                prop_assert_eq!(t.meter_usage(key, c, from, to), want, "meter {} [{}, {})", m, from, to);
                            }
                        }
                    }
                    prop_assert_eq!(t.check_indexes(), Ok(()));
                }
            }
        }

        fn event_value(
            t: &mut Tenant,
            meter: Key,
            customer: Key,
            ts: Nanos,
            value: Decimal,
            id: &str,
        ) {
            t.record_meter_event(NewMeterEvent {
                meter,
                customer,
                value,
                timestamp: Some(ts),
                identifier: Some(id),
            })
            .unwrap();
        }
    }
}
