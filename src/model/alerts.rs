//! Billing alerts: thresholds on a customer's usage of a meter or on its credit balance, checked
//! when what they watch changes, each crossing recorded as a [`ChangeKind::Triggered`] change.
//!
//! A usage alert watches one meter, for one customer or for every customer, over the customer's
//! current billing period: the current period of its priced subscription that bills the meter,
//! or, without one, the calendar month (UTC) on the customer's clock. It fires once per customer,
//! ever (`one_time`), when the period's aggregated value reaches the threshold.
//!
//! A credit balance alert watches one customer's available balance in one currency (over the
//! lots of a scope, or all of them): it fires when the balance falls to or under the threshold,
//! then stays quiet until the balance rises above it again (it re-arms), so each crossing fires
//! once.
//!
//! A world without alerts pays one emptiness check per meter event and per ledger entry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::{Applicability, ChangeKind, Currency, KeyIndex, Lot, Snapshot, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// Whether an alert can fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// It fires.
    Active,
    /// It does not fire until activated again.
    Inactive,
    /// Gone from lists, never fires again, cannot be activated.
    Archived,
}

/// What an alert watches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    /// A meter's aggregated value for a customer's current period reaching `gte`.
    Usage {
        /// The meter.
        #[serde(with = "crate::ids::text")]
        meter: Key,
        /// The threshold (≥ 1).
        gte: i64,
        /// Only this customer, or every customer.
        #[serde(with = "crate::ids::text::opt")]
        customer: Option<Key>,
    },
    /// A customer's available credit balance falling to or under `value`.
    CreditBalance {
        /// The customer.
        #[serde(with = "crate::ids::text")]
        customer: Key,
        /// Only the lots whose scope intersects this one, or every lot.
        scope: Option<Applicability>,
        /// The balance's currency.
        currency: Currency,
        /// The threshold, in minor units.
        value: i64,
    },
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Identity.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Its title.
    pub title: String,
    /// Whether it fires.
    pub status: AlertStatus,
    /// What it watches.
    pub rule: AlertRule,
    /// When it was made (the tenant clock).
    pub created: Nanos,
}

/// One firing: the alert as it was, whom it fired for, and the value that crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTrigger {
    /// The alert.
    pub alert: Alert,
    /// The customer whose value crossed the threshold.
    pub customer: Key,
    /// The value: usage in the meter's units, or a balance in minor units.
    pub value: Decimal,
    /// When it fired, on the customer's clock.
    pub at: Nanos,
}

/// What is new in an alert.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// Its title.
    pub title: String,
    /// What it watches.
    pub rule: AlertRule,
}

/// Why an alert command refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertError {
    /// No alert has that key.
    NotFound,
    /// The meter does not exist.
    NoSuchMeter,
    /// The customer does not exist (or was deleted).
    NoSuchCustomer,
    /// The alert is archived: nothing changes it any more.
    Archived,
}

/// The alerts of a world and their indexes.
#[derive(Debug, Default)]
pub(super) struct Alerts {
    /// Every alert, archived ones included, by key.
    alerts: BTreeMap<Key, Alert>,
    /// Usage alerts by meter.
    by_meter: HashMap<Key, BTreeSet<Key>>,
    /// Credit balance alerts by customer.
    by_customer: HashMap<Key, BTreeSet<Key>>,
    /// Alerts not archived, for the list.
    listed: BTreeSet<Key>,
    /// `(alert, customer)` pairs a one-time usage alert has fired for.
    fired: HashSet<(Key, Key)>,
    /// Credit balance alerts whose balance is at or under the threshold (fired, not re-armed).
    tripped: HashSet<Key>,
}

/// The calendar month (UTC) that contains `at`, as `[start, end)`.
fn month_of(at: Nanos) -> (Nanos, Nanos) {
    let date = DateTime::from_timestamp_nanos(at).date_naive();
    let start = NaiveDate::from_ymd_opt(date.year(), date.month(), 1);
    let next = start.and_then(|s| s.checked_add_months(chrono::Months::new(1)));
    let nanos = |d: Option<NaiveDate>| {
        d.and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|t| t.and_utc().timestamp_nanos_opt())
    };
    (
        nanos(start).unwrap_or(Nanos::MIN),
        nanos(next).unwrap_or(Nanos::MAX),
    )
}

impl Tenant {
    /// The alert `key`, archived or not.
    pub fn alert(&self, key: Key) -> Option<&Alert> {
        self.alerts.alerts.get(&key)
    }

    /// The keys of the alerts that are not archived, oldest first.
    pub fn listed_alert_keys(&self) -> KeyIndex<'_> {
        KeyIndex::of(Some(&self.alerts.listed))
    }

    /// Makes an alert, active. Its meter must exist, and its customer be live.
    pub fn create_alert(&mut self, new: NewAlert) -> Result<Key, AlertError> {
        match &new.rule {
            AlertRule::Usage {
                meter, customer, ..
            } => {
                if self.meter(*meter).is_none() {
                    return Err(AlertError::NoSuchMeter);
                }
                if customer.is_some_and(|c| self.live_customer(c).is_none()) {
                    return Err(AlertError::NoSuchCustomer);
                }
            }
            AlertRule::CreditBalance { customer, .. } => {
                if self.live_customer(*customer).is_none() {
                    return Err(AlertError::NoSuchCustomer);
                }
            }
        }
        let key = self.next_key();
        let alert = Alert {
            key,
            title: new.title,
            status: AlertStatus::Active,
            rule: new.rule,
            created: self.tenant_now(),
        };
        match &alert.rule {
            AlertRule::Usage { meter, .. } => {
                self.alerts.by_meter.entry(*meter).or_default().insert(key);
            }
            AlertRule::CreditBalance { customer, .. } => {
                self.alerts
                    .by_customer
                    .entry(*customer)
                    .or_default()
                    .insert(key);
            }
        }
        self.alerts.listed.insert(key);
        let customer = match alert.rule {
            AlertRule::CreditBalance { customer, .. } => Some(customer),
            AlertRule::Usage { .. } => None,
        };
        self.alerts.alerts.insert(key, alert);
        // A balance already under the threshold counts as crossed now: it fires at once.
        if let Some(customer) = customer {
            let now = self.now_for(customer);
            self.check_credit_alert(key, now);
        }
        Ok(key)
    }

    /// Sets an alert's status: activating or deactivating one, or archiving it for good.
    pub fn set_alert_status(&mut self, key: Key, status: AlertStatus) -> Result<(), AlertError> {
        let alert = self
            .alerts
            .alerts
            .get_mut(&key)
            .ok_or(AlertError::NotFound)?;
        if alert.status == AlertStatus::Archived {
            return Err(AlertError::Archived);
        }
        alert.status = status;
        if status == AlertStatus::Archived {
            self.alerts.listed.remove(&key);
        }
        Ok(())
    }

    /// The `[start, end)` a usage alert on `meter` measures for `customer` at `now`: the current
    /// period of the customer's subscription that bills the meter, else the calendar month.
    fn alert_period(&self, meter: Key, customer: Key, now: Nanos) -> (Nanos, Nanos) {
        for sub in self.priced_subscriptions_of(customer).iter() {
            let Some(s) = self
                .priced_subscription(sub)
                .filter(|s| !s.status.is_ended())
            else {
                continue;
            };
            let bills = self
                .priced_subscription_items(sub)
                .any(|i| self.price(i.price).and_then(|p| p.meter()) == Some(meter));
            if bills {
                return (s.current_period_start, s.current_period_end);
            }
        }
        month_of(now)
    }

    /// Checks the usage alerts on `meter` for `customer` (after its usage changed, or its
    /// period rolled). Free when no alert watches the meter.
    pub(super) fn check_usage_alerts(&mut self, meter: Key, customer: Key) {
        if self.alerts.by_meter.is_empty() {
            return;
        }
        let Some(keys) = self.alerts.by_meter.get(&meter) else {
            return;
        };
        let due: Vec<(Key, i64)> = keys
            .iter()
            .filter_map(|k| self.alerts.alerts.get(k))
            .filter(|a| a.status == AlertStatus::Active)
            .filter(|a| !self.alerts.fired.contains(&(a.key, customer)))
            .filter_map(|a| match a.rule {
                AlertRule::Usage {
                    gte, customer: c, ..
                } if c.is_none_or(|c| c == customer) => Some((a.key, gte)),
                _ => None,
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let now = self.now_for(customer);
        let (from, to) = self.alert_period(meter, customer, now);
        let value = self.meter_usage(meter, customer, from, to);
        for (key, gte) in due {
            if value >= Decimal::from(gte) {
                self.alerts.fired.insert((key, customer));
                self.record_trigger(key, customer, value, now);
            }
        }
    }

    /// Checks the usage alerts of the meters a subscription bills, when its period rolled.
    pub(super) fn check_usage_alerts_of_subscription(&mut self, sub: Key) {
        if self.alerts.by_meter.is_empty() {
            return;
        }
        let Some(customer) = self.priced_subscription(sub).map(|s| s.customer) else {
            return;
        };
        let meters: Vec<Key> = self
            .priced_subscription_items(sub)
            .filter_map(|i| self.price(i.price).and_then(|p| p.meter()))
            .collect();
        for meter in meters {
            self.check_usage_alerts(meter, customer);
        }
    }

    /// Checks a customer's credit balance alerts at `at`, after its ledger moved. Free when the
    /// world has no credit balance alert.
    pub(super) fn check_credit_alerts(&mut self, customer: Key, at: Nanos) {
        if self.alerts.by_customer.is_empty() {
            return;
        }
        let Some(keys) = self.alerts.by_customer.get(&customer) else {
            return;
        };
        let keys: Vec<Key> = keys.iter().copied().collect();
        for key in keys {
            self.check_credit_alert(key, at);
        }
    }

    /// Fires the credit balance alert `key` if its balance is at or under the threshold and it
    /// has not fired since the balance was last above it; re-arms it when the balance is above.
    fn check_credit_alert(&mut self, key: Key, at: Nanos) {
        let Some(alert) = self.alerts.alerts.get(&key) else {
            return;
        };
        let AlertRule::CreditBalance {
            customer,
            ref scope,
            currency,
            value,
        } = alert.rule
        else {
            return;
        };
        let active = alert.status == AlertStatus::Active;
        let keep = |l: &Lot| {
            l.currency == currency && scope.as_ref().is_none_or(|s| l.applicability.intersects(s))
        };
        let mut balance = super::Balance::default();
        for lot in self.lots_of(customer).filter(|l| keep(l)) {
            balance.add(lot, at);
        }
        let under = balance.available <= Decimal::from(value);
        if !under {
            self.alerts.tripped.remove(&key);
        } else if self.alerts.tripped.insert(key) && active {
            // The armed state follows the balance while the alert is inactive too, so that
            // activating it never reports a crossing that happened while it was off.
            self.record_trigger(key, customer, balance.available, at);
        }
    }

    /// Records that the alert `key` fired for `customer` with `value` at `at`.
    fn record_trigger(&mut self, key: Key, customer: Key, value: Decimal, at: Nanos) {
        let Some(alert) = self.alerts.alerts.get(&key).cloned() else {
            return;
        };
        let trigger = AlertTrigger {
            alert,
            customer,
            value,
            at,
        };
        self.record(
            ChangeKind::Triggered,
            at,
            Snapshot::AlertTrigger(Box::new(trigger)),
            None,
        );
    }

    /// Checks that the alert indexes agree with the alerts (see [`Tenant::check_indexes`]).
    pub(super) fn check_alert_indexes(&self) -> Result<(), String> {
        let a = &self.alerts;
        for alert in a.alerts.values() {
            if (alert.status != AlertStatus::Archived) != a.listed.contains(&alert.key) {
                return Err(format!("alert {} listed wrongly", alert.key));
            }
            let indexed = match alert.rule {
                AlertRule::Usage { meter, .. } => a.by_meter.get(&meter),
                AlertRule::CreditBalance { customer, .. } => a.by_customer.get(&customer),
            };
            if !indexed.is_some_and(|s| s.contains(&alert.key)) {
                return Err(format!("alert {} missing from its index", alert.key));
            }
        }
        let count = a.by_meter.values().map(BTreeSet::len).sum::<usize>()
            + a.by_customer.values().map(BTreeSet::len).sum::<usize>();
        if count != a.alerts.len() || a.listed.iter().any(|k| !a.alerts.contains_key(k)) {
            return Err("an alert index names a missing alert".into());
        }
        Ok(())
    }
}

/// What a world's alerts hold besides the alerts themselves, as its document holds it: the
/// customers each one-time usage alert has fired for, and the credit balance alerts waiting to
/// re-arm.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertMemory {
    /// `[alert, customer]` pairs a usage alert has fired for, in key order.
    pub fired: Vec<AlertFiring>,
    /// Credit balance alerts whose balance is at or under the threshold, in key order.
    #[serde(with = "crate::ids::text::list")]
    pub tripped: Vec<Key>,
}

/// A usage alert's firing for one customer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct AlertFiring {
    /// The alert.
    #[serde(with = "crate::ids::text")]
    pub alert: Key,
    /// The customer it fired for.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
}

impl Tenant {
    /// Every alert in key order, and what they remember.
    pub(super) fn alert_records(&self) -> (Vec<Alert>, AlertMemory) {
        let a = &self.alerts;
        let mut fired: Vec<AlertFiring> = a
            .fired
            .iter()
            .map(|&(alert, customer)| AlertFiring { alert, customer })
            .collect();
        fired.sort_unstable();
        let mut tripped: Vec<Key> = a.tripped.iter().copied().collect();
        tripped.sort_unstable();
        (
            a.alerts.values().cloned().collect(),
            AlertMemory { fired, tripped },
        )
    }

    /// Puts an alert, as a document holds it, in place with its indexes (its meter or customer
    /// is already there).
    pub(super) fn restore_alert(&mut self, alert: Alert) {
        let a = &mut self.alerts;
        match &alert.rule {
            AlertRule::Usage { meter, .. } => {
                a.by_meter.entry(*meter).or_default().insert(alert.key);
            }
            AlertRule::CreditBalance { customer, .. } => {
                a.by_customer
                    .entry(*customer)
                    .or_default()
                    .insert(alert.key);
            }
        }
        if alert.status != AlertStatus::Archived {
            a.listed.insert(alert.key);
        }
        a.alerts.insert(alert.key, alert);
    }

    /// Restores what the alerts remember.
    pub(super) fn restore_alert_memory(&mut self, memory: &AlertMemory) {
        let a = &mut self.alerts;
        a.fired = memory.fired.iter().map(|f| (f.alert, f.customer)).collect();
        a.tripped = memory.tripped.iter().copied().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::month_of;

    #[test]
    fn month_bounds() {
        // 2026-02-15T12:00:00Z lies in [2026-02-01, 2026-03-01).
        let (s, e) = month_of(1_771_156_800 * 1_000_000_000);
        assert_eq!(s, 1_769_904_000 * 1_000_000_000);
        assert_eq!(e, 1_772_323_200 * 1_000_000_000);
    }
}
