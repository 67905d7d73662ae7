//! A world as plain data: [`WorldState`] holds every object of a [`Tenant`] and what its rules
//! remember (the schedule, meter usage and identifiers, alerts' firings, the id generator), and
//! none of its indexes. [`Tenant::export_state`] writes it out under the world's lock;
//! [`Tenant::from_state`] checks it and builds a complete new world from it, rebuilding every
//! index, so that [`Tenant::check_indexes`] holds.
//!
//! Every list is in key order when written out (the schedule in time order, usage events in the
//! order received), so the same world always gives the same data.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;

use super::{
    Alert, AlertMemory, AlertRule, Applicability, Application, ApplicationStatus, Customer, Domain,
    Entry, Event, GrantRule, Invoice, InvoiceItem, Lot, LotOrigin, Meter, MeterEventRecord,
    MeterStatus, Plan, Price, PricedSubscription, Product, Subscription, SubscriptionItem, Tenant,
    TenantClock, TestClock, Wallet, WebhookEndpoint,
};
use crate::ids::{encode, IdGen, IdState, Key};
use crate::time::Nanos;

/// The largest amount (in minor units) or credit figure a document may hold, in absolute value:
/// 10^18, so that the sums the ledger forms over billions of entries stay far inside `Decimal`'s
/// 28 digits.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000_000;

/// The most keys a document may say were handed out: far more than any world makes, far from
/// the counter's overflow.
const MAX_ISSUED: u64 = 1 << 62;

/// A tenant's whole world as plain data (see the module documentation).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldState {
    /// The id generator: new objects get keys after every key here.
    pub ids: IdState,
    /// How many keys have been handed out (zero: nothing was ever created, and the tenant clock
    /// may still start anywhere).
    pub issued: u64,
    /// The tenant clock: `"real"` or `{"frozen": nanos}`.
    pub clock: TenantClock,
    /// How long a cycle invoice stays a draft, in nanoseconds.
    pub invoice_grace: Nanos,
    /// Customers, deleted ones (tombstones) included.
    pub customers: Vec<Customer>,
    /// Test clocks.
    pub test_clocks: Vec<TestClock>,
    /// Lots (credit grants and applied applications).
    pub lots: Vec<Lot>,
    /// The ledger.
    pub entries: Vec<Entry>,
    /// What is due later, in time order.
    pub schedule: Vec<Scheduled>,
    /// Invoices.
    pub invoices: Vec<Invoice>,
    /// Native plans.
    pub plans: Vec<Plan>,
    /// Native (plan) subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// Grant rules.
    pub grant_rules: Vec<GrantRule>,
    /// Grant rules' applications.
    pub applications: Vec<Application>,
    /// Wallets.
    pub wallets: Vec<Wallet>,
    /// The wallet each application's lot was put in (lots granted directly are in their
    /// customer's first wallet of their currency, and not listed).
    pub lot_wallets: Vec<LotWallet>,
    /// Products.
    pub products: Vec<Product>,
    /// Prices.
    pub prices: Vec<Price>,
    /// Meters.
    pub meters: Vec<Meter>,
    /// Usage events, in the order received.
    pub meter_events: Vec<MeterEventRecord>,
    /// Subscriptions billed for prices (Stripe's).
    pub priced_subscriptions: Vec<PricedSubscription>,
    /// Their items.
    pub subscription_items: Vec<SubscriptionItem>,
    /// Invoice items.
    pub invoice_items: Vec<InvoiceItem>,
    /// Webhook endpoints, with their secrets.
    pub webhook_endpoints: Vec<WebhookEndpoint>,
    /// Billing alerts.
    pub alerts: Vec<Alert>,
    /// What the alerts remember.
    pub alert_memory: AlertMemory,
}

/// One scheduled event: due at `at` on the tenant clock (`clock: null`) or on a test clock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduled {
    /// The test clock whose time it waits for, or `None` for the tenant clock.
    #[serde(with = "crate::ids::text::opt")]
    pub clock: Option<Key>,
    /// When it is due.
    pub at: Nanos,
    /// Its own key (it orders events due at the same instant).
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// What happens then.
    pub event: Event,
}

/// A lot put in a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotWallet {
    /// The lot.
    #[serde(with = "crate::ids::text")]
    pub lot: Key,
    /// Its wallet.
    #[serde(with = "crate::ids::text")]
    pub wallet: Key,
}

/// Why a [`WorldState`] cannot become a world: where (a path from the state, such as
/// `lots[3].customer`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    /// The place in the state.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl StateError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        StateError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for StateError {}

impl Tenant {
    /// The world as plain data, as it is now (the caller holds the world's lock, so this is one
    /// consistent moment).
    pub fn export_state(&self) -> WorldState {
        let b = &self.billing;
        let (alerts, alert_memory) = self.alert_records();
        WorldState {
            ids: self.ids.state(),
            issued: self.issued,
            clock: self.clock,
            invoice_grace: self.invoice_grace,
            customers: self.customers.values().cloned().collect(),
            test_clocks: self.test_clocks.values().cloned().collect(),
            lots: self.lots.values().map(|l| (**l).clone()).collect(),
            entries: self.entries.values().map(|e| (**e).clone()).collect(),
            schedule: self
                .schedule
                .iter()
                .map(|(&(domain, at, key), event)| Scheduled {
                    clock: match domain {
                        Domain::Tenant => None,
                        Domain::Clock(k) => Some(k),
                    },
                    at,
                    key,
                    event: event.clone(),
                })
                .collect(),
            invoices: self.invoices.values().cloned().collect(),
            plans: b.plans.values().cloned().collect(),
            subscriptions: b.subscriptions.values().cloned().collect(),
            grant_rules: b.rules.values().cloned().collect(),
            applications: b.applications.values().cloned().collect(),
            wallets: b.wallets.values().cloned().collect(),
            lot_wallets: b
                .lot_wallet
                .iter()
                .map(|(&lot, &wallet)| LotWallet { lot, wallet })
                .collect(),
            products: self.catalog.products.values().cloned().collect(),
            prices: self.catalog.prices.values().cloned().collect(),
            meters: self.metering.meters.values().cloned().collect(),
            meter_events: self.meter_event_records(),
            priced_subscriptions: self.priced.subscriptions.values().cloned().collect(),
            subscription_items: self.priced.items.values().cloned().collect(),
            invoice_items: self.invoice_items.items.values().cloned().collect(),
            webhook_endpoints: self.webhook_endpoints.values().cloned().collect(),
            alerts,
            alert_memory,
        }
    }

    /// A new world named `name` made from `state`, with every index rebuilt; refused, with the
    /// first problem found, when `state` names objects it does not hold, holds a key twice, holds
    /// a lot whose remaining balance is not what its entries sum to, or anything else no world of
    /// the model could hold.
    pub fn from_state(name: &str, state: WorldState) -> Result<Tenant, StateError> {
        let ids = IdGen::from_state(state.ids).ok_or_else(|| {
            StateError::at(
                "ids",
                "last_ms and counter must fit in 48 bits (at most 281474976710655)",
            )
        })?;
        if state.ids.counter >= crate::ids::MAX_48 {
            // The next key would wrap the counter round to keys already handed out.
            return Err(StateError::at(
                "ids.counter",
                "is at the end of its 48 bits: the next key would repeat an old one",
            ));
        }
        if state.issued > MAX_ISSUED {
            return Err(StateError::at(
                "issued",
                format!("is more keys than a world hands out (at most {MAX_ISSUED})"),
            ));
        }
        let mut t = Tenant::new(name, None);
        t.ids = ids;
        t.issued = state.issued;
        t.clock = state.clock;
        if !(0..=super::MAX_GRACE).contains(&state.invoice_grace) {
            return Err(StateError::at(
                "invoice_grace",
                format!(
                    "must be from 0 to {} nanoseconds (72 hours)",
                    super::MAX_GRACE
                ),
            ));
        }
        t.invoice_grace = state.invoice_grace;
        let mut keys = KeyCheck::new(t.ids.last());
        t.restore_objects(state, &mut keys)?;
        if t.issued == 0 && keys.any {
            return Err(StateError::at(
                "issued",
                "is 0 (nothing ever created) but the world holds objects",
            ));
        }
        t.check_indexes().map_err(|why| {
            StateError::at("", format!("the world does not hold together: {why}"))
        })?;
        Ok(t)
    }

    /// Puts every object of `s` in place, checking as it goes.
    fn restore_objects(&mut self, s: WorldState, keys: &mut KeyCheck) -> Result<(), StateError> {
        for (i, c) in s.test_clocks.into_iter().enumerate() {
            let path = Place("test_clocks", i);
            keys.check(&path, c.key)?;
            if self.test_clocks.insert(c.key, c).is_some() {
                return Err(duplicate(&path));
            }
        }
        let mut external_ids = HashSet::new();
        for (i, c) in s.customers.into_iter().enumerate() {
            let path = Place("customers", i);
            keys.check(&path, c.key)?;
            if !c.deleted {
                if let Some(clock) = c.test_clock {
                    self.need(
                        &path,
                        "test_clock",
                        self.test_clocks.contains_key(&clock),
                        clock,
                    )?;
                }
                if let Some(id) = &c.external_id {
                    if !external_ids.insert(id.clone()) {
                        return Err(StateError::at(
                            format!("{path}.external_id"),
                            format!("{id:?} is the external id of another live customer"),
                        ));
                    }
                }
                self.index_customer(&c, true);
            }
            if self.customers.insert(c.key, c).is_some() {
                return Err(duplicate(&path));
            }
        }
        let mut lot_order = Vec::with_capacity(s.lots.len());
        for (i, lot) in s.lots.into_iter().enumerate() {
            let path = Place("lots", i);
            lot_order.push(lot.key);
            keys.check(&path, lot.key)?;
            let c = lot.customer;
            self.need(&path, "customer", self.customers.contains_key(&c), c)?;
            amount(&path, "amount", lot.amount, false)?;
            amount(&path, "remaining", lot.remaining, false)?;
            self.lots_by_customer.entry(c).or_default().add(lot.key);
            if self
                .lots
                .insert(lot.key, std::sync::Arc::new(lot))
                .is_some()
            {
                return Err(duplicate(&path));
            }
        }
        self.rebuild_spend_order();
        self.restore_entries(s.entries, &lot_order, keys)?;
        self.restore_billing(s.plans, s.subscriptions, s.grant_rules, keys)?;
        self.restore_applications(s.applications, &lot_order, keys)?;
        for (i, e) in s.schedule.into_iter().enumerate() {
            let path = Place("schedule", i);
            keys.check(&path, e.key)?;
            let domain = match e.clock {
                None => Domain::Tenant,
                Some(k) => {
                    self.need(&path, "clock", self.test_clocks.contains_key(&k), k)?;
                    Domain::Clock(k)
                }
            };
            let handle = (domain, e.at, e.key);
            match e.event {
                Event::Effective(lot) | Event::Expire(lot) => {
                    let held = self.lots.get_mut(&lot).map(std::sync::Arc::make_mut);
                    let found = held.is_some();
                    if let Some(l) = held {
                        l.pending.push(handle);
                    }
                    self.need(&path, "event", found, lot)?;
                }
                Event::Application(a) => {
                    let held = self.billing.applications.get_mut(&a);
                    let found = held.is_some();
                    if let Some(app) = held.filter(|app| app.status == ApplicationStatus::Pending) {
                        app.set_pending(Some(handle));
                    }
                    self.need(&path, "event", found, a)?;
                }
                // What an invoice's finalization or a subscription's cycle names may be gone (a
                // deleted draft): the event then does nothing when due.
                Event::FinalizeInvoice(_) | Event::SubscriptionCycle(_) => {}
            }
            if self.schedule.insert(handle, e.event).is_some() {
                return Err(duplicate(&path));
            }
        }
        self.restore_wallets(s.wallets, s.lot_wallets, keys)?;
        self.restore_catalog(s.products, s.prices, s.meters, keys)?;
        self.restore_meter_events(&s.meter_events)
            .map_err(|(i, why)| StateError::at(format!("meter_events[{i}]"), why))?;
        self.restore_priced(s.priced_subscriptions, s.subscription_items, keys)?;
        self.restore_invoices(s.invoices, s.invoice_items, keys)?;
        for (i, w) in s.webhook_endpoints.into_iter().enumerate() {
            let path = Place("webhook_endpoints", i);
            keys.check(&path, w.key)?;
            if self.webhook_endpoints.insert(w.key, w).is_some() {
                return Err(duplicate(&path));
            }
        }
        let mut alerts = HashSet::new();
        for (i, a) in s.alerts.into_iter().enumerate() {
            let path = Place("alerts", i);
            keys.check(&path, a.key)?;
            match &a.rule {
                AlertRule::Usage {
                    meter, customer, ..
                } => {
                    self.need(&path, "rule.meter", self.meter(*meter).is_some(), *meter)?;
                    if let Some(c) = customer {
                        self.need(&path, "rule.customer", self.customers.contains_key(c), *c)?;
                    }
                }
                AlertRule::CreditBalance { customer, .. } => {
                    let c = *customer;
                    self.need(&path, "rule.customer", self.customers.contains_key(&c), c)?;
                }
            }
            if !alerts.insert(a.key) {
                return Err(duplicate(&path));
            }
            self.restore_alert(a);
        }
        for (i, f) in s.alert_memory.fired.iter().enumerate() {
            let path = format!("alert_memory.fired[{i}]");
            self.need(&path, "alert", alerts.contains(&f.alert), f.alert)?;
        }
        for (i, k) in s.alert_memory.tripped.iter().enumerate() {
            let path = format!("alert_memory.tripped[{i}]");
            if !alerts.contains(k) {
                return Err(missing(&path, *k));
            }
        }
        self.restore_alert_memory(&s.alert_memory);
        Ok(())
    }

    /// The ledger: each entry against a lot of the document, of that lot's customer and currency;
    /// then every lot's remaining balance must be what its entries sum to.
    fn restore_entries(
        &mut self,
        entries: Vec<Entry>,
        lot_order: &[Key],
        keys: &mut KeyCheck,
    ) -> Result<(), StateError> {
        let mut sums: HashMap<Key, Decimal> = HashMap::with_capacity(self.lots.len());
        for (i, e) in entries.into_iter().enumerate() {
            let path = Place("entries", i);
            keys.check(&path, e.key)?;
            let Some(lot) = self.lots.get(&e.lot) else {
                return Err(missing(&format!("{path}.lot"), e.lot));
            };
            if lot.customer != e.customer {
                return Err(StateError::at(
                    format!("{path}.customer"),
                    format!(
                        "is {}, but its lot {} belongs to {}",
                        encode(e.customer),
                        encode(e.lot),
                        encode(lot.customer)
                    ),
                ));
            }
            if lot.currency != e.currency {
                return Err(StateError::at(
                    format!("{path}.currency"),
                    format!("is {}, but its lot's is {}", e.currency, lot.currency),
                ));
            }
            amount(&path, "amount", e.amount, false)?;
            let sum = sums.entry(e.lot).or_default();
            *sum = if e.kind.is_credit() {
                sum.checked_add(e.amount)
            } else {
                sum.checked_sub(e.amount)
            }
            .ok_or_else(|| StateError::at(format!("{path}.amount"), "the lot's sum overflows"))?;
            self.entries_by_customer
                .entry(e.customer)
                .or_default()
                .add(e.key);
            self.entries_by_lot.entry(e.lot).or_default().add(e.key);
            if self.entries.insert(e.key, std::sync::Arc::new(e)).is_some() {
                return Err(duplicate(&path));
            }
        }
        for (i, key) in lot_order.iter().enumerate() {
            let Some(lot) = self.lots.get(key) else {
                continue;
            };
            let sum = sums.get(key).copied().unwrap_or_default();
            if sum != lot.remaining {
                return Err(StateError::at(
                    format!("lots[{i}].remaining"),
                    format!("is {}, but the lot's entries sum to {sum}", lot.remaining),
                ));
            }
            if lot.applicability.intersects(&Applicability::Metered) {
                let total = self
                    .metered_remaining
                    .entry(lot.customer)
                    .or_default()
                    .entry(lot.currency)
                    .or_default();
                *total = total.checked_add(lot.remaining).ok_or_else(|| {
                    StateError::at(
                        format!("lots[{i}].remaining"),
                        "the customer's sum overflows",
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Plans, native subscriptions and grant rules.
    fn restore_billing(
        &mut self,
        plans: Vec<Plan>,
        subscriptions: Vec<Subscription>,
        rules: Vec<GrantRule>,
        keys: &mut KeyCheck,
    ) -> Result<(), StateError> {
        for (i, p) in plans.into_iter().enumerate() {
            let path = Place("plans", i);
            keys.check(&path, p.key)?;
            if self.billing.plans.insert(p.key, p).is_some() {
                return Err(duplicate(&path));
            }
        }
        for (i, s) in subscriptions.into_iter().enumerate() {
            let path = Place("subscriptions", i);
            keys.check(&path, s.key)?;
            self.need(
                &path,
                "customer",
                self.customers.contains_key(&s.customer),
                s.customer,
            )?;
            self.need(
                &path,
                "plan",
                self.billing.plans.contains_key(&s.plan),
                s.plan,
            )?;
            self.billing
                .subscriptions_by_customer
                .entry(s.customer)
                .or_default()
                .insert(s.key);
            if self.billing.subscriptions.insert(s.key, s).is_some() {
                return Err(duplicate(&path));
            }
        }
        for (i, r) in rules.into_iter().enumerate() {
            let path = Place("grant_rules", i);
            keys.check(&path, r.key)?;
            amount(&path, "credits", r.credits, false)?;
            let b = &mut self.billing;
            if let Some(plan) = r.plan {
                if !b.plans.contains_key(&plan) {
                    return Err(missing(&format!("{path}.plan"), plan));
                }
                b.rules_by_plan.entry(plan).or_default().insert(r.key);
            }
            if let Some(sub) = r.subscription {
                if !b.subscriptions.contains_key(&sub) {
                    return Err(missing(&format!("{path}.subscription"), sub));
                }
                b.rules_by_subscription
                    .entry(sub)
                    .or_default()
                    .insert(r.key);
            }
            if b.rules.insert(r.key, r).is_some() {
                return Err(duplicate(&path));
            }
        }
        Ok(())
    }

    /// Grant rules' applications, each found again by the schedule's event while it waits.
    fn restore_applications(
        &mut self,
        applications: Vec<Application>,
        lot_order: &[Key],
        keys: &mut KeyCheck,
    ) -> Result<(), StateError> {
        for (i, a) in applications.into_iter().enumerate() {
            let path = Place("applications", i);
            keys.check(&path, a.key)?;
            let b = &mut self.billing;
            if !b.rules.contains_key(&a.grant) {
                return Err(missing(&format!("{path}.grant"), a.grant));
            }
            if !b.subscriptions.contains_key(&a.subscription) {
                return Err(missing(&format!("{path}.subscription"), a.subscription));
            }
            amount(&path, "credits", a.credits, false)?;
            b.applications_by_rule
                .entry(a.grant)
                .or_default()
                .insert(a.key);
            if a.status.is_open() {
                b.open_applications_by_subscription
                    .entry(a.subscription)
                    .or_default()
                    .insert(a.key);
            }
            if b.applications.insert(a.key, a).is_some() {
                return Err(duplicate(&path));
            }
        }
        // A lot an application applied names both.
        for (i, key) in lot_order.iter().enumerate() {
            let Some(lot) = self.lots.get(key) else {
                continue;
            };
            if let LotOrigin::Application { grant, application } = lot.origin {
                let path = format!("lots[{i}].origin");
                self.need(
                    &path,
                    "grant",
                    self.billing.rules.contains_key(&grant),
                    grant,
                )?;
                let found = self.billing.applications.contains_key(&application);
                self.need(&path, "application", found, application)?;
            }
        }
        Ok(())
    }

    /// Wallets and the lots put in them.
    fn restore_wallets(
        &mut self,
        wallets: Vec<Wallet>,
        lot_wallets: Vec<LotWallet>,
        keys: &mut KeyCheck,
    ) -> Result<(), StateError> {
        for (i, w) in wallets.into_iter().enumerate() {
            let path = Place("wallets", i);
            keys.check(&path, w.key)?;
            self.need(
                &path,
                "customer",
                self.customers.contains_key(&w.customer),
                w.customer,
            )?;
            amount(&path, "conversion_rate", w.conversion_rate, true)?;
            amount(
                &path,
                "topup_conversion_rate",
                w.topup_conversion_rate,
                true,
            )?;
            let b = &mut self.billing;
            b.wallets_by_customer
                .entry(w.customer)
                .or_default()
                .insert(w.key);
            if b.wallets.insert(w.key, w).is_some() {
                return Err(duplicate(&path));
            }
        }
        for (i, lw) in lot_wallets.into_iter().enumerate() {
            let path = Place("lot_wallets", i);
            let fits = match (self.lots.get(&lw.lot), self.billing.wallets.get(&lw.wallet)) {
                (None, _) => return Err(missing(&format!("{path}.lot"), lw.lot)),
                (_, None) => return Err(missing(&format!("{path}.wallet"), lw.wallet)),
                (Some(l), Some(w)) => l.customer == w.customer && l.currency == w.currency,
            };
            if !fits {
                return Err(StateError::at(
                    path.to_string(),
                    "the wallet is not of the lot's customer and currency",
                ));
            }
            if self.billing.lot_wallet.insert(lw.lot, lw.wallet).is_some() {
                return Err(StateError::at(
                    path.to_string(),
                    "the lot is put in a wallet twice",
                ));
            }
        }
        Ok(())
    }

    /// Products, prices and meters.
    fn restore_catalog(
        &mut self,
        products: Vec<Product>,
        prices: Vec<Price>,
        meters: Vec<Meter>,
        keys: &mut KeyCheck,
    ) -> Result<(), StateError> {
        for (i, m) in meters.into_iter().enumerate() {
            let path = Place("meters", i);
            keys.check(&path, m.key)?;
            let mt = &mut self.metering;
            match m.status {
                MeterStatus::Active => {
                    if let Some(other) = mt.by_event_name.insert(m.event_name.clone(), m.key) {
                        return Err(StateError::at(
                            format!("{path}.event_name"),
                            format!(
                                "{:?} is the event name of another active meter, {}",
                                m.event_name,
                                encode(other)
                            ),
                        ));
                    }
                    mt.active.insert(m.key);
                }
                MeterStatus::Inactive => {
                    mt.inactive.insert(m.key);
                }
            }
            if mt.meters.insert(m.key, m).is_some() {
                return Err(duplicate(&path));
            }
        }
        let mut custom_ids = HashSet::new();
        for (i, p) in products.into_iter().enumerate() {
            let path = Place("products", i);
            keys.check(&path, p.key)?;
            if let Some(id) = &p.custom_id {
                if !custom_ids.insert(id.clone()) {
                    return Err(StateError::at(
                        format!("{path}.custom_id"),
                        format!("{id:?} is the id of another product"),
                    ));
                }
            }
            self.index_product(&p, true);
            if self.catalog.products.insert(p.key, p).is_some() {
                return Err(duplicate(&path));
            }
        }
        let mut lookup_keys = HashSet::new();
        for (i, p) in prices.into_iter().enumerate() {
            let path = Place("prices", i);
            keys.check(&path, p.key)?;
            let product = p.product;
            self.need(
                &path,
                "product",
                self.catalog.products.contains_key(&product),
                product,
            )?;
            if let Some(meter) = p.recurring.as_ref().and_then(|r| r.meter) {
                self.need(&path, "recurring.meter", self.meter(meter).is_some(), meter)?;
            }
            if let Some(k) = &p.lookup_key {
                if !lookup_keys.insert(k.clone()) {
                    return Err(StateError::at(
                        format!("{path}.lookup_key"),
                        format!("{k:?} is the lookup key of another price"),
                    ));
                }
            }
            self.index_price(&p, true);
            if self.catalog.prices.insert(p.key, p).is_some() {
                return Err(duplicate(&path));
            }
        }
        Ok(())
    }

    /// Subscriptions billed for prices, and their items.
    fn restore_priced(
        &mut self,
        subscriptions: Vec<PricedSubscription>,
        items: Vec<SubscriptionItem>,
        keys: &mut KeyCheck,
    ) -> Result<(), StateError> {
        for (i, item) in items.into_iter().enumerate() {
            let path = Place("subscription_items", i);
            keys.check(&path, item.key)?;
            let price = item.price;
            self.need(
                &path,
                "price",
                self.catalog.prices.contains_key(&price),
                price,
            )?;
            if self.priced.items.insert(item.key, item).is_some() {
                return Err(duplicate(&path));
            }
        }
        for (i, s) in subscriptions.into_iter().enumerate() {
            let path = Place("priced_subscriptions", i);
            keys.check(&path, s.key)?;
            self.need(
                &path,
                "customer",
                self.customers.contains_key(&s.customer),
                s.customer,
            )?;
            for (j, k) in s.items.iter().enumerate() {
                let own = self.priced.items.get(k).map(|item| item.subscription);
                if own != Some(s.key) {
                    return Err(StateError::at(
                        format!("{path}.items[{j}]"),
                        match own {
                            None => format!("no subscription item {} in the document", encode(*k)),
                            Some(other) => format!(
                                "item {} belongs to subscription {}",
                                encode(*k),
                                encode(other)
                            ),
                        },
                    ));
                }
            }
            if self.priced.subscriptions.contains_key(&s.key) {
                return Err(duplicate(&path));
            }
            self.index_priced(&s, true);
            self.priced.subscriptions.insert(s.key, s);
        }
        Ok(())
    }

    /// Invoices (their lists) and invoice items.
    fn restore_invoices(
        &mut self,
        invoices: Vec<Invoice>,
        items: Vec<InvoiceItem>,
        keys: &mut KeyCheck,
    ) -> Result<(), StateError> {
        for (i, inv) in invoices.into_iter().enumerate() {
            let path = Place("invoices", i);
            keys.check(&path, inv.key)?;
            let c = inv.customer;
            self.need(&path, "customer", self.customers.contains_key(&c), c)?;
            if let Some(sub) = inv.subscription {
                let found = self.priced.subscriptions.contains_key(&sub);
                self.need(&path, "subscription", found, sub)?;
            }
            for (j, line) in inv.lines.iter().enumerate() {
                let at = format!("{path}.lines[{j}]");
                keys.check(&at, line.key)?;
                if let Some(price) = line.price_key {
                    let found = self.catalog.prices.contains_key(&price);
                    self.need(&at, "price_key", found, price)?;
                }
                if let Some(usage) = &line.usage {
                    self.need(
                        &at,
                        "usage.meter",
                        self.meter(usage.meter).is_some(),
                        usage.meter,
                    )?;
                    let found = self.catalog.prices.contains_key(&usage.price);
                    self.need(&at, "usage.price", found, usage.price)?;
                }
                for (n, (entry, _)) in line.credits.iter().enumerate() {
                    if !self.entries.contains_key(entry) {
                        return Err(missing(&format!("{path}.lines[{j}].credits[{n}]"), *entry));
                    }
                }
            }
            for place in inv.list_entries() {
                self.invoice_lists.insert(place);
            }
            if self.invoices.insert(inv.key, inv).is_some() {
                return Err(duplicate(&path));
            }
        }
        for (i, item) in items.into_iter().enumerate() {
            let path = Place("invoice_items", i);
            keys.check(&path, item.key)?;
            let c = item.customer;
            self.need(&path, "customer", self.customers.contains_key(&c), c)?;
            if let Some(sub) = item.subscription {
                let ours = self
                    .priced
                    .subscriptions
                    .get(&sub)
                    .is_some_and(|s| s.customer == c);
                self.need(&path, "subscription", ours, sub)?;
            }
            let ii = &mut self.invoice_items;
            ii.by_customer.entry(c).or_default().insert(item.key);
            match item.invoice {
                None => {
                    ii.pending.entry(c).or_default().insert(item.key);
                }
                Some(inv) => {
                    if !self.invoices.contains_key(&inv) {
                        return Err(missing(&format!("{path}.invoice"), inv));
                    }
                }
            }
            if self.invoice_items.items.insert(item.key, item).is_some() {
                return Err(duplicate(&path));
            }
        }
        Ok(())
    }

    /// `Ok` when `found`, else the error that `path.field` names `key`, which is not there.
    fn need(
        &self,
        path: &impl std::fmt::Display,
        field: &str,
        found: bool,
        key: Key,
    ) -> Result<(), StateError> {
        if found {
            Ok(())
        } else {
            Err(missing(&format!("{path}.{field}"), key))
        }
    }
}

/// Every key of a document must come before the id generator's next one: a key after it could be
/// handed out again, and a new object would take an old one's place.
struct KeyCheck {
    last: Key,
    /// Whether any object was seen.
    any: bool,
}

impl KeyCheck {
    fn new(last: Key) -> Self {
        KeyCheck { last, any: false }
    }

    fn check(&mut self, path: &impl std::fmt::Display, key: Key) -> Result<(), StateError> {
        self.any = true;
        if key > self.last {
            return Err(StateError::at(
                format!("{path}.key"),
                format!(
                    "{} comes after the id generator's last key {}: a new object could be given it",
                    encode(key),
                    encode(self.last)
                ),
            ));
        }
        Ok(())
    }
}

/// The place of an object in the document: its list and its index there, spelled out only when
/// something is wrong with it.
#[derive(Debug, Clone, Copy)]
struct Place(&'static str, usize);

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// The error for a second object with the same key.
fn duplicate(path: &impl std::fmt::Display) -> StateError {
    StateError::at(
        format!("{path}.key"),
        "another object of its kind has this key",
    )
}

/// The error for a reference to an object the document does not hold.
fn missing(path: &impl std::fmt::Display, key: Key) -> StateError {
    StateError::at(
        path.to_string(),
        format!("no object {} in the document", encode(key)),
    )
}

/// Checks an amount: at most [`MAX_AMOUNT`] in absolute value, and positive or zero (strictly
/// positive when `positive`).
fn amount(
    path: &impl std::fmt::Display,
    field: &str,
    value: Decimal,
    positive: bool,
) -> Result<(), StateError> {
    let limit = Decimal::from(MAX_AMOUNT);
    let ok = value <= limit
        && if positive {
            value > Decimal::ZERO
        } else {
            value >= Decimal::ZERO
        };
    if ok {
        Ok(())
    } else {
        Err(StateError::at(
            format!("{path}.{field}"),
            format!(
                "{value} is out of range: {} to 10^18",
                if positive { "above 0" } else { "0" }
            ),
        ))
    }
}
