//! One isolated world: its objects, their indexes, and its clocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::keyed::Keyed;
use super::{
    Alerts, Billing, Catalog, Currency, Customer, Entry, Event, Invoice, InvoiceItems,
    InvoiceListEntry, Lot, Metering, PricedBilling, TestClock, WebhookEndpoint,
};
use crate::ids::{IdGen, Key};
use crate::time::{real_now, to_millis, Nanos};

/// A hash map keyed by object keys, hashed with foldhash rather than SipHash: a create looks up
/// several of them, and keys are made by the world, not chosen by clients.
pub(super) type KeyMap<V> = HashMap<Key, V, foldhash::fast::RandomState>;

/// Which clock a customer lives on: the tenant's own, or one Stripe test clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Domain {
    /// The tenant's clock ([`TenantClock`]).
    Tenant,
    /// A test clock; time only moves when the clock is advanced.
    Clock(Key),
}

/// The tenant's own notion of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantClock {
    /// The operating system's clock.
    Real,
    /// Stopped at this instant until moved.
    Frozen(Nanos),
}

/// Why the tenant clock refused to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantClockError {
    /// Time only goes forward; `now` is where it is.
    Backwards { now: Nanos },
}

/// One tenant's world. Its objects and indexes are reached through query methods (an object by key,
/// the keys of a group as a [`super::KeyIndex`], ordered walks over key ranges) and changed only through
/// command methods, so that indexes and the ledger stay consistent.
#[derive(Debug)]
pub struct Tenant {
    /// What names this world: an API key, or an API key and a connected account.
    pub(super) name: String,
    pub(super) ids: IdGen,
    /// The store's salt the world was made with, if it has one (see [`Tenant::world_salt`]).
    pub(super) world_salt: Option<u64>,
    /// The tenant's clock.
    pub(super) clock: TenantClock,
    /// Every customer, deleted ones included (as tombstones), by key.
    pub(super) customers: BTreeMap<Key, Customer>,
    /// Live customers not on a test clock (the default customer list shows only these).
    pub(super) customers_unclocked: BTreeSet<Key>,
    /// Live customers per test clock.
    pub(super) customers_by_clock: KeyMap<BTreeSet<Key>>,
    /// Live customers per exact email.
    pub(super) customers_by_email: HashMap<String, BTreeSet<Key>>,
    /// Live customers by their caller-given identifier (unique among live customers: the facade
    /// that sets it refuses a second one).
    pub(super) customers_by_external_id: HashMap<String, Key>,
    /// Every lot by key, in key order (see [`Keyed`]). Behind a pointer: the vector moves as it
    /// grows, and 288 bytes a slot would be a lot to move. Shared, not boxed: a change's
    /// [`Snapshot`] of a lot is the lot itself until the lot changes again ([`Arc::make_mut`]
    /// copies it then), so that the events of a create keep no copy of the grant (the `Arc`'s
    /// counts fit in the slack of the allocation's size class).
    pub(super) lots: Keyed<Arc<Lot>>,
    /// Lots per customer, in key order.
    pub(super) lots_by_customer: KeyMap<Keyed<()>>,
    /// Each customer's lots in spending order ([`Lot::spend_order`]), so that spending finds the
    /// first lot it may use without visiting them all. A sorted vector, not a B-tree: a new lot
    /// nearly always sorts last, and a B-tree filled in order is half empty (16 bytes a lot here
    /// against about 60).
    pub(super) spend_order: KeyMap<Vec<Key>>,
    /// The ledger: every entry by key (keys are time-ordered; see [`Keyed`]). Shared, as lots
    /// are: an entry never changes, so its snapshot is always the entry itself.
    pub(super) entries: Keyed<Arc<Entry>>,
    /// Entries per customer, in key order.
    pub(super) entries_by_customer: KeyMap<Keyed<()>>,
    /// Entries per lot, in key order. A sorted vector per lot holds the one or two entries most
    /// lots have in 16 bytes each, where a B-tree set per lot took a node of about 200 bytes.
    pub(super) entries_by_lot: KeyMap<Keyed<()>>,
    /// What remains of each customer's lots whose scope intersects `Metered`, per currency: the
    /// running sum that `post` (the only writer of `Lot::remaining`) keeps, so that a balance
    /// filtered on metered lines costs one lookup however many lots the customer holds.
    pub(super) metered_remaining: KeyMap<BTreeMap<Currency, Decimal>>,
    /// Entries not yet due, per time domain, in time order.
    pub(super) schedule: BTreeMap<(Domain, Nanos, Key), Event>,
    /// Test clocks.
    pub(super) test_clocks: BTreeMap<Key, TestClock>,
    /// Invoices that spent credits.
    pub(super) invoices: BTreeMap<Key, Invoice>,
    /// Every invoice's place in each list it belongs to (see [`super::InvoiceList`]).
    pub(super) invoice_lists: BTreeSet<InvoiceListEntry>,
    /// How many keys have been handed out: zero means nothing has ever been created here, so the
    /// tenant clock may start at any instant without moving any object's time backwards.
    pub(super) issued: u64,
    /// Plans, subscriptions, grant rules, their applications, and wallets.
    pub(super) billing: Billing,
    /// Products and prices.
    pub(super) catalog: Catalog,
    /// Meters and their usage.
    pub(super) metering: Metering,
    /// One-off charges waiting for an invoice.
    pub(super) invoice_items: InvoiceItems,
    /// How long a cycle invoice stays a draft before it finalizes by itself.
    pub(super) invoice_grace: Nanos,
    /// Subscriptions billed for prices, and their items.
    pub(super) priced: PricedBilling,
    /// Where this world's events are sent, by key.
    pub(super) webhook_endpoints: BTreeMap<Key, WebhookEndpoint>,
    /// Billing alerts and what they have fired for.
    pub(super) alerts: Alerts,
    /// The price list of the last grant scoped to prices, which the next grant scoped to the same
    /// prices shares (see [`Tenant::shared_scope`]).
    pub(super) last_scope: Option<Arc<[super::ScopedPrice]>>,
    /// Changes not yet handed to the store's hook, oldest first.
    pub(super) changes: Vec<super::Change>,
    /// Who is asking for the changes being made (none while time moves things).
    pub(super) cause: super::changes::CauseSlot,
    /// What the application keeps with this world and lives and dies with it (the Stripe facade's
    /// events), opaque to the model.
    pub(super) attachment: Option<super::Attachment>,
}

impl Tenant {
    /// The store's salt this world was made with ([`IdGen::of`]), if any: what else keeps ids for
    /// the world (its events) salts them the same way.
    pub fn world_salt(&self) -> Option<u64> {
        self.world_salt
    }

    /// An empty world named `name`.
    pub fn new(name: &str, seed: Option<u64>) -> Self {
        Tenant::made(name, seed, None)
    }

    /// An empty world named `name` in a store whose ids are seeded by `seed`, or whose worlds take
    /// their ids' salt from `salt` (see [`IdGen::of`]): then making it draws nothing random.
    pub(super) fn made(name: &str, seed: Option<u64>, salt: Option<u64>) -> Self {
        Tenant {
            world_salt: salt,
            name: name.to_string(),
            ids: IdGen::of(seed, salt, name),
            clock: TenantClock::Real,
            customers: BTreeMap::new(),
            customers_unclocked: BTreeSet::new(),
            customers_by_clock: KeyMap::default(),
            customers_by_email: HashMap::new(),
            customers_by_external_id: HashMap::new(),
            lots: Keyed::default(),
            lots_by_customer: KeyMap::default(),
            spend_order: KeyMap::default(),
            entries: Keyed::default(),
            entries_by_customer: KeyMap::default(),
            entries_by_lot: KeyMap::default(),
            metered_remaining: KeyMap::default(),
            schedule: BTreeMap::new(),
            test_clocks: BTreeMap::new(),
            invoices: BTreeMap::new(),
            invoice_lists: BTreeSet::new(),
            issued: 0,
            billing: Billing::default(),
            catalog: Catalog::default(),
            metering: Metering::default(),
            invoice_items: InvoiceItems::default(),
            invoice_grace: super::DEFAULT_GRACE,
            priced: PricedBilling::default(),
            webhook_endpoints: BTreeMap::new(),
            alerts: Alerts::default(),
            last_scope: None,
            changes: Vec::new(),
            cause: super::changes::CauseSlot::default(),
            attachment: None,
        }
    }

    /// What names this world: an API key, or an API key and a connected account.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh key for a new object.
    pub(super) fn next_key(&mut self) -> Key {
        self.issued += 1;
        self.ids.next(to_millis(real_now()))
    }

    /// The keys the next `n` objects would get, changing nothing: what a preview names the
    /// objects it imagines by.
    pub(super) fn peek_keys(&self, n: usize) -> Vec<Key> {
        let mut ids = self.ids.clone();
        let now = to_millis(real_now());
        (0..n).map(|_| ids.next(now)).collect()
    }

    /// Runs `make` with the key the next object will get, for an object whose parts are checked
    /// against its key before it exists. When `make` refuses, the key is given back: the world is
    /// left exactly as it was, the keys later objects get and whether it counts as untouched (see
    /// [`Tenant::is_pristine`]) included. `make` must change nothing before it refuses.
    pub fn try_with_next_key<T, E>(
        &mut self,
        make: impl FnOnce(&mut Tenant, Key) -> Result<T, E>,
    ) -> Result<T, E> {
        let saved = (self.ids.clone(), self.issued);
        let key = self.next_key();
        let made = make(self, key);
        if made.is_err() {
            (self.ids, self.issued) = saved;
        }
        made
    }

    /// How long a subscription's cycle invoice stays a draft before it finalizes by itself.
    pub fn invoice_grace(&self) -> Nanos {
        self.invoice_grace
    }

    /// Sets the grace period for cycle invoices made from now on (drafts already scheduled keep
    /// theirs), clamped to Stripe's 0 to 72 hours.
    pub fn set_invoice_grace(&mut self, grace: Nanos) {
        self.invoice_grace = grace.clamp(0, super::MAX_GRACE);
    }

    /// Roughly how many records this world holds: every key it has handed out (customers, grants,
    /// ledger entries, invoices, scheduled events, …) and every meter event. The memory a dropped
    /// world gives back grows with it.
    pub fn weight(&self) -> u64 {
        self.issued + self.meter_event_count() as u64
    }

    /// Whether nothing has been created in this world yet.
    pub fn is_pristine(&self) -> bool {
        self.issued == 0
    }

    /// How the tenant clock runs: on real time, or frozen at an instant.
    pub fn clock(&self) -> TenantClock {
        self.clock
    }

    /// The tenant clock's now.
    pub fn tenant_now(&self) -> Nanos {
        match self.clock {
            TenantClock::Real => real_now(),
            TenantClock::Frozen(t) => t,
        }
    }

    /// Now, in a domain.
    pub fn now_in(&self, domain: Domain) -> Nanos {
        match domain {
            Domain::Tenant => self.tenant_now(),
            Domain::Clock(k) => self
                .test_clocks
                .get(&k)
                .map(|c| c.frozen_time)
                .unwrap_or_else(|| self.tenant_now()),
        }
    }

    /// The domain a customer lives in.
    pub fn domain_of(&self, customer: Key) -> Domain {
        match self.customers.get(&customer).and_then(|c| c.test_clock) {
            Some(clock) => Domain::Clock(clock),
            None => Domain::Tenant,
        }
    }

    /// Posts what fell due on `customer`'s clock up to its now, and returns that now: a command on
    /// the customer's objects acts after everything time owed them.
    pub(super) fn caught_up_for(&mut self, customer: Key) -> Nanos {
        let domain = self.domain_of(customer);
        let now = self.now_in(domain);
        self.run_due(domain, now);
        now
    }

    /// Now, for a customer.
    pub fn now_for(&self, customer: Key) -> Nanos {
        self.now_in(self.domain_of(customer))
    }

    /// Posts everything due on the tenant clock. [`super::Store::with_tenant`] calls this before a
    /// request sees the world, so the state it reads is the state at "now" even though nothing runs
    /// in the background.
    pub fn catch_up(&mut self) {
        let now = self.tenant_now();
        self.run_due(Domain::Tenant, now);
    }

    /// Freezes the tenant clock at `to`, or moves it there; never backwards. A world in which nothing
    /// has been created yet has no time to contradict, so it may start at any instant (this is how a
    /// test pins a fresh tenant to a fixed date in the past).
    pub fn freeze_clock(&mut self, to: Nanos) -> Result<(), TenantClockError> {
        let now = self.tenant_now();
        if to < now && !self.is_pristine() {
            return Err(TenantClockError::Backwards { now });
        }
        self.clock = TenantClock::Frozen(to);
        self.run_due(Domain::Tenant, to);
        Ok(())
    }

    /// Returns the tenant clock to real time, if that does not move it backwards.
    pub fn unfreeze_clock(&mut self) -> Result<(), TenantClockError> {
        let now = self.tenant_now();
        if real_now() < now {
            return Err(TenantClockError::Backwards { now });
        }
        self.clock = TenantClock::Real;
        self.catch_up();
        Ok(())
    }

    /// Adds `event` to the schedule of `domain` at `at`; returns its handle for cancelling.
    pub(super) fn schedule_event(
        &mut self,
        domain: Domain,
        at: Nanos,
        event: Event,
    ) -> (Domain, Nanos, Key) {
        let handle = (domain, at, self.next_key());
        self.schedule.insert(handle, event);
        handle
    }

    /// Whether any event of `domain` is due at or before `until`.
    pub(super) fn any_due(&self, domain: Domain, until: Nanos) -> bool {
        self.schedule.range(due(domain, until)).next().is_some()
    }

    /// Posts every event of `domain` due at or before `until`, in time order. An event may schedule
    /// further events; those inside the window are posted in the same call.
    /// What falls due is time's doing, not a request's, even when a request moved time: its changes
    /// have no cause.
    pub(super) fn run_due(&mut self, domain: Domain, until: Nanos) {
        let caused = std::mem::replace(&mut self.cause.caused, false);
        while let Some(handle) = self
            .schedule
            .range(due(domain, until))
            .next()
            .map(|(k, _)| *k)
        {
            if let Some(event) = self.schedule.remove(&handle) {
                self.fire(event, handle.1);
            }
        }
        self.cause.caused = caused;
    }
}

impl Tenant {
    /// The events still to come, by time domain and then in time order, with the instant each is
    /// due. Everything due at or before a domain's now has been posted once the world is at rest
    /// (after [`Tenant::catch_up`]).
    pub fn scheduled(&self) -> impl Iterator<Item = (Domain, Nanos, &Event)> {
        self.schedule.iter().map(|(&(d, at, _), e)| (d, at, e))
    }
}

/// The schedule handles of `domain` due at or before `until`: a range of [`Tenant::schedule`].
pub(super) fn due(domain: Domain, until: Nanos) -> RangeInclusive<(Domain, Nanos, Key)> {
    (domain, Nanos::MIN, 0)..=(domain, until, Key::MAX)
}
