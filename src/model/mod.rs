//! The canonical model: tenants, customers, grants, lots, the ledger, clocks and invoices.
//!
//! Nothing here knows HTTP, forms, JSON field names, or either API's words for things. Facades
//! (`stripe`, `native`) parse requests into calls on a [`Tenant`] and render what it returns.
//!
//! The shape, in one paragraph: a [`Tenant`] is one isolated world named by an API key. A
//! [`Customer`] can hold [`Lot`]s: one allotment of credit each (a Stripe credit grant is exactly one
//! lot). Every movement of credit is an append-only [`Entry`] against a lot; a lot's remaining balance
//! is the sum of its entries, kept up to date by the single function that appends them. Entries that
//! are due at a time (credits becoming effective, expiring) sit in a schedule per time [`Domain`] and
//! are posted in time order when that domain's clock reaches them.
//!
//! The subscription side: a [`Plan`] carries grant rules ([`GrantRule`]) that a [`Subscription`]
//! copies; a subscription rule makes one [`Application`] per period, scheduled like any other timed
//! entry, and an applied application is a lot with the application's key. A [`Wallet`] is a view of
//! a customer's lots in one currency, never a store. A [`PricedSubscription`] is the other kind of
//! subscription: a customer billed every period for [`SubscriptionItem`]s, each a [`Price`].
//!
//! The model is closed: a [`Tenant`]'s maps and indexes are private to this module. Facades read
//! through query methods (an object by key, such as [`Tenant::lot`] or [`Tenant::customer`]; ordered
//! walks over a key range, such as [`Tenant::lots_in`]; the keys of one group, such as
//! [`Tenant::lot_keys_of`], as a [`KeyIndex`] they can page through in O(log n + limit)) and change
//! the world only through command methods ([`Tenant::create_lot`], [`Tenant::void_invoice`], …),
//! which keep every index and the ledger in step. [`Tenant::check_indexes`] verifies that they are.
//!
//! One file per kind of object, each holding the object's types and the `impl Tenant` block of its
//! queries and commands: `customer`, `lot`, `ledger` (entries, events, balances), `test_clock`,
//! `invoice`, `plans`, `subscriptions`, `grant_rules` (rules and applications), `wallets`,
//! `catalog` (products and prices), `meters` (meters and their usage), `priced_subscriptions`
//! (subscriptions billed for items that are prices, and their items), `webhook_endpoints` (where
//! a world's events are sent), `alerts` (usage and credit balance thresholds);
//! `tenant` holds the world and its clocks, `billing` the subscription side's maps, `index` the
//! read-only index views, `periods` calendar arithmetic and `money` currencies.

mod alerts;
mod billing;
mod catalog;
mod changes;
mod customer;
mod cycles;
mod document;
mod grant_rules;
mod index;
mod invoice;
mod invoice_items;
mod keyed;
mod ledger;
mod lot;
mod metadata;
mod meters;
pub mod money;
pub mod periods;
mod plans;
mod previews;
mod priced_subscriptions;
mod subscriptions;
mod tenant;
mod test_clock;
mod wallets;
mod webhook_endpoints;

use alerts::Alerts;
pub use alerts::{
    Alert, AlertError, AlertFiring, AlertMemory, AlertRule, AlertStatus, AlertTrigger, NewAlert,
};
use billing::Billing;
use catalog::Catalog;
pub use catalog::{
    CatalogError, FirstPrice, Interval, NewPrice, NewProduct, Price, PriceChanges, PriceTerms,
    Product, ProductChanges, ProductType, Recurring, Round, Scheme, TaxBehavior, Tier, TiersMode,
    TransformQuantity, UsageType,
};
pub use changes::{
    Attachment, Cause, Change, ChangeHook, ChangeKind, Snapshot, SubscriptionSnapshot,
};
pub use customer::{
    default_invoice_prefix, Address, Customer, CustomerChanges, InvoiceSettings, NewCustomer,
    Profile, RenderingOptions, Shipping, TaxExempt,
};
pub use document::{LotWallet, Scheduled, StateError, WorldState, MAX_AMOUNT};
pub use grant_rules::{
    credits_to_minor, minor_to_credits, Application, ApplicationReason, ApplicationStatus, Cadence,
    ExpiryRule, GrantRule, GrantScope, GrantStatus, NewGrantRule, SkipReason,
};
pub use index::{KeyIndex, KeyIter};
use invoice::InvoiceListEntry;
pub use invoice::{
    declines, minor_units, BillingReason, CollectionMethod, CustomerDetails, DraftLine, Invoice,
    InvoiceError, InvoiceLine, InvoiceList, InvoiceStatus, InvoiceUpdate, LineSource, NewInvoice,
    NewInvoiceLine, Usage,
};
use invoice_items::InvoiceItems;
pub use invoice_items::{InvoiceItem, InvoiceItemError, NewInvoiceItem};
pub use ledger::{Balance, Entry, EntryKind, Event};
pub use lot::{Applicability, Category, Lot, LotError, LotOrigin, NewLot, ScopedPrice};
use meters::Metering;
pub use meters::{
    CancelError, EventTimeWindow, Formula, Meter, MeterError, MeterEventError, MeterEventRecord,
    MeterIdentifier, MeterStatus, NewMeter, NewMeterEvent, RecordedEvent, DAY, HOUR,
    IDENTIFIER_LIFETIME, MAX_EVENT_AGE, MAX_EVENT_LEAD, MAX_VALUE_DIGITS, MAX_VALUE_SCALE,
};
pub use money::Currency;
pub use plans::{NewPlan, Plan, PlanStatus};
pub use previews::PreviewChanges;
use priced_subscriptions::PricedBilling;
pub use priced_subscriptions::{
    BillingMode, CancellationDetails, CancellationFeedback, CancellationReason, End, ItemChange,
    ItemProblem, NewItem, NewPricedSubscription, PricedError, PricedStatus, PricedSubscription,
    PricedUpdate, SubscriptionItem, MAX_ITEMS, MAX_ITEM_AMOUNT, MAX_OPEN_ON_CLOCK,
    MAX_OPEN_PER_CUSTOMER,
};
pub use subscriptions::{BillingCadence, NewSubscription, Subscription, SubscriptionStatus};
pub use tenant::{Domain, Tenant, TenantClock, TenantClockError};
pub use test_clock::{AttachError, TestClock, TestClockError};
pub use wallets::Wallet;
pub use webhook_endpoints::{
    NewWebhookEndpoint, WebhookEndpoint, WebhookEndpointChanges, WebhookTarget, ALL_EVENTS,
};

use dashmap::DashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

/// Stripe's default grace period between a cycle invoice's creation and its finalization.
pub const DEFAULT_GRACE: crate::time::Nanos = 3600 * 1_000_000_000;

/// The longest grace period Stripe allows (72 hours).
pub const MAX_GRACE: crate::time::Nanos = 72 * DEFAULT_GRACE;

pub use metadata::Metadata;

/// One tenant's state behind its lock, and the default version read without it.
#[derive(Debug)]
pub struct TenantCell {
    /// The world itself. Requests lock it through [`Store`] (which catches its clock up first);
    /// nothing outside the model takes the lock except through the two narrow ways below.
    state: Mutex<Tenant>,
    /// The API version the Stripe facade applies to this world's requests that name none, as that
    /// facade numbers its versions; 0 when none was set. Outside the state lock, so that a request
    /// knows its version (and checks its parameters by it) before it waits for the model.
    pub default_version: AtomicU16,
}

impl TenantCell {
    /// Runs `f` on the world as it stands, locked, without catching its clock up: nothing falls
    /// due and nothing is posted. For bookkeeping that must not move time (how large a dropped
    /// world was, which endpoints receive an event) and for checks that look at the model without
    /// changing it. Requests reach their world through [`Store`], never here.
    pub fn peek<R>(&self, f: impl FnOnce(&Tenant) -> R) -> R {
        f(&self.state.lock())
    }
}

/// A mutex that does not poison: a request that panics while holding it costs that request only
/// (the server answers it with a 500), and the next request finds the state as the panic left it.
///
/// It is the standard library's futex mutex. A waiter spins briefly and then sleeps, where
/// `parking_lot` spins and then yields its time slice up to a handful of times: with the load
/// generator, the emulator's workers and a lock holder sharing two cores, those yields cost about
/// a system call per request.
#[derive(Debug)]
pub struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    /// A mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    /// Waits for the lock; a poisoned lock is taken as it is.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Every tenant, created by the first request that writes with its key. A request that only
/// reads never creates one: it sees the empty world a new key would get ([`Store::read_tenant`]).
#[derive(Debug)]
pub struct Store {
    seed: Option<u64>,
    /// The grace period new worlds start with (see [`Tenant::invoice_grace`]).
    invoice_grace: crate::time::Nanos,
    /// foldhash, not SipHash: every request that reaches a world looks it up here.
    tenants: DashMap<String, Arc<TenantCell>, foldhash::fast::RandomState>,
    /// How many worlds `tenants` holds, counted apart so that two requests making worlds at once
    /// cannot both take the last place ([`Store::create`] reserves a place before it inserts).
    live: AtomicUsize,
    /// Most worlds [`Store::create`] lets exist at once.
    max_tenants: usize,
    /// Where each world's changes go (none: they are dropped).
    hook: Option<Arc<dyn ChangeHook>>,
    /// Told of every locked section and every world made (persistence orders its journal by it).
    sequencer: std::sync::OnceLock<Arc<dyn Sequencer>>,
    /// The salt new worlds take their ids' from (a journaled store's; see
    /// [`crate::ids::IdGen::salted`]).
    world_salt: std::sync::OnceLock<u64>,
}

/// What a journal of requests needs to know of the worlds: told, under the world's lock, at the
/// end of every [`Store::with_tenant`] (whether it changed the world), and when a world is made.
/// The lock is what orders two requests to one world, so a journal that numbers its records here
/// replays them in the order they were applied.
pub trait Sequencer: Send + Sync + std::fmt::Debug {
    /// A locked section on the world named `world` ends; `changed` says whether it changed it
    /// (made an object or an entry, or recorded a change).
    fn section(&self, world: &str, changed: bool);
}

/// Why a world could not be made: the store already holds as many as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimit {
    /// The most worlds the store holds at once.
    pub max: usize,
}

impl std::fmt::Display for TenantLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "This request would make a new world (one per API key, and one per connected account), but the emulator already holds as many as it may (--max-tenants {}). Reset a world that is no longer used (POST /_emulator/reset with its key) to free a place, or start the emulator with a larger --max-tenants.",
            self.max
        )
    }
}

impl std::error::Error for TenantLimit {}

impl Store {
    /// An empty store. With `seed`, ids are deterministic per tenant.
    pub fn new(seed: Option<u64>) -> Self {
        Store {
            seed,
            invoice_grace: DEFAULT_GRACE,
            tenants: DashMap::default(),
            live: AtomicUsize::new(0),
            max_tenants: usize::MAX,
            hook: None,
            sequencer: std::sync::OnceLock::new(),
            world_salt: std::sync::OnceLock::new(),
        }
    }

    /// New worlds take the salt of their ids from `salt` and their name from now on, unless ids are
    /// seeded ([`crate::ids::IdGen::salted`]); false when a salt was set already.
    pub fn set_world_salt(&self, salt: u64) -> bool {
        self.world_salt.set(salt).is_ok()
    }

    /// Tells `sequencer` of every locked section from now on; false when one was set already.
    pub fn set_sequencer(&self, sequencer: Arc<dyn Sequencer>) -> bool {
        self.sequencer.set(sequencer).is_ok()
    }

    /// This store, handing every world's changes to `hook`.
    pub fn with_hook(mut self, hook: Arc<dyn ChangeHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// This store, with new worlds starting with `grace` as their invoice grace period.
    pub fn with_invoice_grace(mut self, grace: std::time::Duration) -> Self {
        self.invoice_grace = i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX);
        self
    }

    /// This store, refusing to make a world while it holds `max` (see [`Store::create`]).
    pub fn with_max_tenants(mut self, max: usize) -> Self {
        self.max_tenants = max;
        self
    }

    /// The most worlds [`Store::create`] lets exist at once.
    pub fn max_tenants(&self) -> usize {
        self.max_tenants
    }

    /// An empty world named `key`, as a new key gets it.
    fn blank(&self, key: &str) -> Tenant {
        let mut tenant = Tenant::made(key, self.seed, self.world_salt.get().copied());
        tenant.set_invoice_grace(self.invoice_grace);
        tenant
    }

    /// The tenant named `key`, made empty if it does not exist yet, unless the store already
    /// holds [`Store::max_tenants`] worlds. Every request that writes reaches its world here.
    pub fn create(&self, key: &str) -> Result<Arc<TenantCell>, TenantLimit> {
        self.get_or_make(key, || {
            // Reserved before the insert: worlds made at once in other shards of the map each
            // take a place of their own, so the count never passes the limit.
            self.live
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.max_tenants).then_some(n + 1)
                })
                .map(|_| ())
                .map_err(|_| TenantLimit {
                    max: self.max_tenants,
                })
        })
    }

    /// The tenant named `key`, created empty if this is the first time it is seen, whatever the
    /// limit on worlds: for a program that holds the store itself (a test reading the model).
    /// Requests go through [`Store::create`], which keeps to the limit.
    pub fn tenant(&self, key: &str) -> Arc<TenantCell> {
        let Ok(cell) = self.get_or_make::<Infallible>(key, || {
            self.live.fetch_add(1, Ordering::AcqRel);
            Ok(())
        });
        cell
    }

    /// The world named `key`; when there is none, `reserve` takes a place for it (under the map
    /// shard's lock, so that one key never gets two worlds) and an empty world is made.
    fn get_or_make<E>(
        &self,
        key: &str,
        reserve: impl FnOnce() -> Result<(), E>,
    ) -> Result<Arc<TenantCell>, E> {
        if let Some(t) = self.tenants.get(key) {
            return Ok(t.clone());
        }
        match self.tenants.entry(key.to_string()) {
            dashmap::Entry::Occupied(found) => Ok(found.get().clone()),
            dashmap::Entry::Vacant(place) => {
                reserve()?;
                let cell = TenantCell {
                    state: Mutex::new(self.blank(key)),
                    default_version: AtomicU16::new(0),
                };
                let cell = Arc::new(cell);
                place.insert(cell.clone());
                if let Some(sequencer) = self.sequencer.get() {
                    sequencer.section(key, true);
                }
                Ok(cell)
            }
        }
    }

    /// Runs `f` on the tenant named `key` (created empty if new, whatever the limit on worlds:
    /// for a program that holds the store itself; requests use [`Store::try_with_tenant`] or
    /// [`Store::read_tenant`]) the way a request sees it: its state locked, and everything due on
    /// its clock posted first. What changed (the catch-up first, then what `f` did) goes to the
    /// store's hook before the lock is released, and `f`'s [`Cause`] is forgotten.
    pub fn with_tenant<R>(&self, key: &str, f: impl FnOnce(&mut Tenant) -> R) -> R {
        self.locked(key, &self.tenant(key), f)
    }

    /// Runs `f` as [`Store::with_tenant`] does, on the tenant named `key`, made empty if new
    /// unless the store already holds [`Store::max_tenants`] worlds: how a request that writes
    /// reaches its world.
    pub fn try_with_tenant<R>(
        &self,
        key: &str,
        f: impl FnOnce(&mut Tenant) -> R,
    ) -> Result<R, TenantLimit> {
        let cell = self.create(key)?;
        Ok(self.locked(key, &cell, f))
    }

    /// Runs `f` the way a request that only reads sees its world: an existing world as
    /// [`Store::with_tenant`] runs it, and for a key that has none, an empty world made for `f`
    /// alone and dropped afterwards, so that reading makes no world (and is never refused by the
    /// limit on worlds) yet answers exactly what the new, empty world would.
    pub fn read_tenant<R>(&self, key: &str, f: impl FnOnce(&mut Tenant) -> R) -> R {
        if let Some(cell) = self.get(key) {
            return self.locked(key, &cell, f);
        }
        // Nothing outlives this world, so whatever it records as changed is nobody's news.
        let mut tenant = self.blank(key);
        tenant.catch_up();
        f(&mut tenant)
    }

    fn locked<R>(&self, key: &str, cell: &TenantCell, f: impl FnOnce(&mut Tenant) -> R) -> R {
        let mut tenant = cell.state.lock();
        // A request that panicked may have left its cause behind: time's changes have none.
        tenant.clear_cause();
        let issued = tenant.issued;
        tenant.catch_up();
        let result = f(&mut tenant);
        let changed = tenant.has_changes() || tenant.issued != issued;
        if tenant.has_changes() {
            tenant.drain_changes(key, self.hook.as_deref());
        }
        tenant.clear_cause();
        if let Some(sequencer) = self.sequencer.get() {
            sequencer.section(key, changed);
        }
        result
    }

    /// The tenant named `key`, if it exists (never creates one).
    pub fn get(&self, key: &str) -> Option<Arc<TenantCell>> {
        self.tenants.get(key).map(|t| t.clone())
    }

    /// Puts `tenant` in the place of the world named `key` (created if new) in one step, under
    /// the world's lock; `also` runs under that lock too, with the world's cell, so that what
    /// lives beside the world (its default version, …) changes with it. Requests waiting for the
    /// lock find the new world.
    pub fn replace_tenant(&self, key: &str, tenant: Tenant, also: impl FnOnce(&TenantCell)) {
        let cell = self.tenant(key);
        let mut state = cell.state.lock();
        let old = std::mem::replace(&mut *state, tenant);
        also(&cell);
        drop(state);
        // A large world takes a while to free: not while others wait for the lock.
        drop(old);
    }

    /// Forgets a tenant entirely; the next request with its key starts from nothing.
    pub fn reset(&self, key: &str) -> bool {
        self.remove(key).is_some()
    }

    /// Forgets a tenant entirely, as [`Store::reset`] does, and hands it over: the caller decides
    /// where the world's memory is freed (dropping a large world takes a while).
    pub fn remove(&self, key: &str) -> Option<Arc<TenantCell>> {
        if let Some(sequencer) = self.sequencer.get() {
            // A reset is stored even when the world does not exist: replaying it is harmless.
            sequencer.section(key, true);
        }
        let (_, cell) = self.tenants.remove(key)?;
        self.live.fetch_sub(1, Ordering::AcqRel);
        Some(cell)
    }

    /// The names of the worlds that exist.
    pub fn world_names(&self) -> Vec<String> {
        self.tenants.iter().map(|e| e.key().clone()).collect()
    }

    /// Number of tenants that exist.
    pub fn tenant_count(&self) -> usize {
        self.tenants.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::{self, Item};

    fn salt_of(cell: &TenantCell) -> u32 {
        cell.state.lock().ids.state().salt
    }

    #[test]
    fn a_world_of_a_salted_store_is_made_without_a_draw_and_the_same_each_time() {
        let made = |salt: Option<u64>| {
            let store = Store::new(None);
            if let Some(salt) = salt {
                assert!(store.set_world_salt(salt));
                assert!(!store.set_world_salt(salt), "set once");
            }
            tape::record();
            let cell = store.create("sk_test_w").unwrap();
            (salt_of(&cell), tape::stop())
        };
        let (first, drawn) = made(Some(42));
        assert_eq!(
            drawn,
            Vec::<Item>::new(),
            "making the world drew from the tape"
        );
        assert_eq!(
            made(Some(42)).0,
            first,
            "the same salt and name, the same world"
        );
        assert_ne!(made(Some(43)).0, first);
        // Without a salt, making a world draws its salt: the request that made it records it.
        let (unsalted, drawn) = made(None);
        assert!(
            matches!(drawn[..], [Item::Word(w)] if w as u32 == unsalted),
            "{drawn:?}"
        );
    }
}
