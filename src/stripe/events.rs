//! Stripe's events: every change of the model becomes an `event` (`customer.created`,
//! `invoice.finalized`, …), stored with its world, listed and retrieved at `/v1/events`.
//!
//! The model records its changes in its own words ([`Change`]); [`Recorder`], the store's hook,
//! turns each into its Stripe type and renders `data.object` with the resource's own view, as the
//! world's API version shows it, at the instant the change happened. The rendered event is kept as
//! compact JSON in the world's [`EventLog`] (the world's attachment), and handed to the
//! application's [`Outbox`] for delivery.
//!
//! Events are kept for 30 days of the tenant clock after they were stored, as Stripe keeps them:
//! older ones are dropped when the log is next touched.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use super::alerts::TriggeredView;
use super::credit_grants::GrantJson;
use super::customers::CustomerView;
use super::ids;
use super::invoice_items::ItemView;
use super::invoices::{InvoiceIds, InvoiceView};
use super::list::{self, ListJson, PageRequest, TimeRange};
use super::meters::MeterView;
use super::op::{pretty, Body, Expand, Input, Operation};
use super::prices::price_view;
use super::products::ProductView;
use super::subscriptions::SubscriptionView;
use super::test_clocks::TestClockView;
use super::transactions::TransactionView;
use crate::ids::{IdGen, Key};
use crate::model::{Attachment, Change, ChangeHook, ChangeKind, Snapshot, Tenant};
use crate::time::{to_millis, to_secs, Nanos, NANOS_PER_SEC};
use crate::webhooks::Pending;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::{get_str, list_items, opt, validate, Field, Spec, LIST_FIELDS};
use crate::wire::versions::Version;

/// How long an event is kept: Stripe lists and retrieves events of the last 30 days.
pub const RETENTION: Nanos = 30 * 24 * 3600 * NANOS_PER_SEC;

/// How many events one world keeps at most: the oldest go first. Stripe keeps 30 days whatever
/// their number; a bound here keeps a load of millions of grants from holding twice as many events
/// as it holds grants (a grant's two events take about 250 bytes each; events of objects that are
/// copied, such as invoices, more).
pub const MAX_EVENTS: usize = 100_000;

/// How many names `types[]` may hold.
pub const MAX_TYPES: usize = 20;

/// One stored event.
#[derive(Debug)]
struct StoredEvent {
    /// Its type (`invoice.paid`).
    kind: &'static str,
    /// `created`, in seconds.
    created: i64,
    /// The tenant clock's instant when it was stored, from which its 30 days run.
    stored_at: Nanos,
    /// Endpoints that have not yet acknowledged it, counted down by its deliveries.
    pending_webhooks: Pending,
    /// The event itself.
    body: EventBody,
}

/// A stored event's content.
#[derive(Debug)]
enum EventBody {
    /// Rendered when it happened: compact JSON, its `pending_webhooks` as of then. The same bytes
    /// are what webhook delivery sends and signs: shared, not copied.
    Json(Bytes),
    /// Not rendered yet: an event that no endpoint receives and whose object's view depends only
    /// on the object (a grant, a ledger entry, a customer, …) is rendered when it is read, the
    /// same then as at the time it happened. Most events are never read.
    Later(Box<Later>),
}

/// What an event rendered on reading is made from.
#[derive(Debug)]
struct Later {
    change: Change,
    version: Version,
    /// The request that made the change, shared by every event it made.
    cause: Option<Arc<CauseCopy>>,
}

/// A request's id and idempotency key, as its events name them.
#[derive(Debug)]
struct CauseCopy {
    request: Box<str>,
    idempotency_key: Option<Box<str>>,
}

impl Later {
    /// The head of the event this renders.
    fn head(&self) -> Head<'_> {
        let cause = self.cause.as_deref();
        Head {
            version: self.version,
            request: cause.map(|c| &*c.request),
            idempotency_key: cause.and_then(|c| c.idempotency_key.as_deref()),
            pending_webhooks: 0,
        }
    }
}

/// A world's events, oldest first: the world's [`Attachment`].
#[derive(Debug)]
pub struct EventLog {
    ids: IdGen,
    events: Events,
}

/// A log's events in the order of their keys. A deque, not a tree: each new event's key comes
/// after every other (the log's id generator only moves on), and the oldest go first, so both
/// ends are where the work is, and a lookup is a binary search. A B-tree spent about a thousand
/// instructions on each insertion, and half-filled its nodes, appended to as they were.
#[derive(Debug, Default)]
struct Events {
    items: VecDeque<(Key, StoredEvent)>,
}

impl Events {
    fn position(&self, key: Key) -> Result<usize, usize> {
        self.items.binary_search_by_key(&key, |(k, _)| *k)
    }

    fn get(&self, key: &Key) -> Option<&StoredEvent> {
        let i = self.position(*key).ok()?;
        Some(&self.items[i].1)
    }

    fn contains_key(&self, key: &Key) -> bool {
        self.position(*key).is_ok()
    }

    /// Stores `event` under `key`; an event already there is replaced and given back.
    fn insert(&mut self, key: Key, event: StoredEvent) -> Option<StoredEvent> {
        if self.items.back().is_none_or(|(last, _)| *last < key) {
            self.items.push_back((key, event));
            return None;
        }
        match self.position(key) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, event)),
            Err(i) => {
                self.items.insert(i, (key, event));
                None
            }
        }
    }

    fn first(&self) -> Option<&StoredEvent> {
        self.items.front().map(|(_, e)| e)
    }

    fn pop_first(&mut self) {
        self.items.pop_front();
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The events whose keys are in `range`, oldest first.
    fn range(
        &self,
        (from, to): (Bound<Key>, Bound<Key>),
    ) -> impl DoubleEndedIterator<Item = &(Key, StoredEvent)> {
        let start = match from {
            Bound::Included(k) => self.items.partition_point(|(x, _)| *x < k),
            Bound::Excluded(k) => self.items.partition_point(|(x, _)| *x <= k),
            Bound::Unbounded => 0,
        };
        let end = match to {
            Bound::Included(k) => self.items.partition_point(|(x, _)| *x <= k),
            Bound::Excluded(k) => self.items.partition_point(|(x, _)| *x < k),
            Bound::Unbounded => self.items.len(),
        };
        self.items.range(start..end.max(start))
    }

    fn iter(&self) -> impl Iterator<Item = &(Key, StoredEvent)> {
        self.items.iter()
    }
}

impl EventLog {
    /// An empty log whose ids depend only on `seed` and the world's name when `seed` is given,
    /// and whose salt comes from the store's `salt` as the world's does when it has one.
    fn new(seed: Option<u64>, salt: Option<u64>, world: &str) -> Self {
        // Apart from the model's generator, so that events leave the ids of objects as they were.
        let name = format!("{world}\u{0}events");
        EventLog {
            ids: IdGen::of(seed, salt, &name),
            events: Events::default(),
        }
    }

    /// Drops the events stored more than [`RETENTION`] before `now`. The tenant clock never goes
    /// back, so they are the oldest ones.
    fn prune(&mut self, now: Nanos) {
        let horizon = now.saturating_sub(RETENTION);
        while let Some(first) = self.events.first() {
            if first.stored_at >= horizon {
                break;
            }
            self.events.pop_first();
        }
        while self.events.len() > MAX_EVENTS {
            self.events.pop_first();
        }
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The event `key` as the API shows it now. An event kept as a copy is rendered here, with
    /// `tenant` for the objects its view looks up (an invoice's customer).
    fn show(&self, key: Key, tenant: &Tenant) -> Option<Value> {
        let event = self.events.get(&key)?;
        let mut value: Value = match &event.body {
            EventBody::Json(json) => serde_json::from_slice(json).ok()?,
            EventBody::Later(later) => {
                let head = later.head();
                let id = ids::render(ids::EVENT, key);
                let json = render_event(&id, event.kind, &later.change, &head, Some(tenant));
                serde_json::from_slice(&json).ok()?
            }
        };
        if let Some(o) = value.as_object_mut() {
            o.insert(
                "pending_webhooks".into(),
                event.pending_webhooks.get().into(),
            );
        }
        Some(value)
    }
}

/// Every event type [`event_type`] gives, so that an event read back from a document keeps its
/// type as the others do.
pub(crate) const KINDS: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "billing.credit_grant.created",
    "billing.credit_grant.updated",
    "billing.credit_balance_transaction.created",
    "test_helpers.test_clock.created",
    "test_helpers.test_clock.advancing",
    "test_helpers.test_clock.ready",
    "test_helpers.test_clock.deleted",
    "invoice.created",
    "invoice.updated",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.sent",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.deleted",
    "invoiceitem.created",
    "invoiceitem.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "billing.meter.created",
    "billing.meter.updated",
    "billing.meter.deactivated",
    "billing.meter.reactivated",
    "product.created",
    "product.updated",
    "product.deleted",
    "price.created",
    "price.updated",
    "billing.alert.triggered",
];

/// A world's events as its document holds them: the log's id generator, and every event kept,
/// oldest first, as rendered when it happened (deliveries are not part of a world: an imported
/// event's `pending_webhooks` reads 0).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLogState {
    /// The event ids' generator.
    pub ids: crate::ids::IdState,
    /// The events, oldest first.
    pub events: Vec<EventState>,
}

/// One event of an [`EventLogState`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventState {
    /// The tenant clock's instant when it was stored, from which its 30 days run.
    pub stored_at: Nanos,
    /// The event as `GET /v1/events/{id}` shows it, as compact JSON text: kept as text, so that a
    /// world's hundred thousand events are copied, not parsed and rebuilt, on the way out and in.
    pub event: String,
}

/// What an event read back from a document must say about itself.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    created: i64,
}

impl EventLog {
    /// The log as a document holds it; events kept as copies are rendered now, with `tenant`.
    pub fn export(&self, tenant: &Tenant) -> EventLogState {
        EventLogState {
            ids: self.ids.state(),
            events: self
                .events
                .iter()
                .map(|&(key, ref e)| {
                    // As rendered when it happened (`pending_webhooks` the endpoints it went to, or
                    // 0): deliveries are not part of a world, and a document's events are shown
                    // with their count at 0 once imported.
                    let json = match &e.body {
                        EventBody::Json(json) => String::from_utf8_lossy(json).into_owned(),
                        EventBody::Later(later) => {
                            let head = later.head();
                            let id = ids::render(ids::EVENT, key);
                            let json =
                                render_event(&id, e.kind, &later.change, &head, Some(tenant));
                            String::from_utf8(json).unwrap_or_default()
                        }
                    };
                    EventState {
                        stored_at: e.stored_at,
                        event: json,
                    }
                })
                .collect(),
        }
    }

    /// A log made from `state`. Refused, with the place (`events[3].event`) and what is wrong,
    /// when an event is not a JSON object with a Stripe event id (`evt_…`, of a key after none of
    /// the id generator's), a known `type` and a whole `created`, or an id is given twice.
    pub fn import(state: EventLogState) -> Result<EventLog, (String, String)> {
        let ids = crate::ids::IdGen::from_state(state.ids).ok_or_else(|| {
            (
                "ids".to_string(),
                "last_ms and counter must fit in 48 bits".to_string(),
            )
        })?;
        let last = ids.last();
        let mut log = EventLog {
            ids,
            events: Events::default(),
        };
        for (i, e) in state.events.into_iter().enumerate() {
            let at = |field: &str| format!("events[{i}].event{field}");
            let head: EventHead = serde_json::from_str(&e.event).map_err(|why| {
                (
                    at(""),
                    format!("must be an event's JSON text, with id, type and created: {why}"),
                )
            })?;
            let key = ids::key_of(&head.id, ids::EVENT)
                .ok_or_else(|| (at(".id"), "must be an event id, evt_ and a key".into()))?;
            if key > last {
                return Err((
                    at(".id"),
                    "comes after the id generator's last key: a new event could be given it".into(),
                ));
            }
            let kind = KINDS
                .iter()
                .find(|k| **k == head.kind)
                .copied()
                .ok_or_else(|| {
                    (
                        at(".type"),
                        "must be a type of event the emulator makes".into(),
                    )
                })?;
            let stored = StoredEvent {
                kind,
                created: head.created,
                stored_at: e.stored_at,
                pending_webhooks: Pending::default(),
                body: EventBody::Json(Bytes::from(e.event.into_bytes())),
            };
            if log.events.insert(key, stored).is_some() {
                return Err((at(".id"), "another event has this id".into()));
            }
        }
        Ok(log)
    }
}

/// What the application tells the events about, and what it takes from them: the world's API
/// version, and webhook delivery. Called under the world's lock: an implementation must not lock
/// the world again.
pub trait Outbox: Send + Sync {
    /// The API version a world's events are rendered in (its default).
    fn version_of(&self, world: &str) -> Version;

    /// How many forwarding addresses an event of type `kind` is sent to, besides its world's
    /// endpoints (called under the world's lock).
    fn webhook_forwards(&self, kind: &str) -> u32;

    /// Takes the events of `tenant`'s world just stored that some destination receives, in the
    /// order they happened, and counts each one's [`EventRef::pending`] up by the endpoints it
    /// goes to (called under the world's lock, which it must not take again).
    fn events_produced(&self, tenant: &Tenant, events: &[EventRef]);
}

/// An event just stored, as [`Outbox::events_produced`] receives it.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// `evt_…`.
    pub id: &'a str,
    /// Its type.
    pub kind: &'static str,
    /// `created`, in seconds.
    pub created: i64,
    /// The whole event, compact JSON, as delivered (`pending_webhooks` in it is the number of
    /// endpoints it goes to: none has acknowledged it yet). The stored bytes themselves: a
    /// delivery holds them by reference count.
    pub json: &'a Bytes,
    /// The same event rendered at the other API versions its endpoints ask for (an endpoint's
    /// `api_version`, where it differs from the world's): Stripe renders a delivery's `data` at
    /// the endpoint's version.
    pub variants: &'a [(Version, Bytes)],
    /// Its `pending_webhooks` as the log keeps it, which its deliveries count.
    pub pending: &'a Pending,
}

impl EventRef<'_> {
    /// The rendering an endpoint with `api_version` receives instead of [`EventRef::json`], if
    /// its version is not the world's.
    pub fn variant_for(&self, api_version: Option<&str>) -> Option<&Bytes> {
        let name = api_version?;
        self.variants
            .iter()
            .find(|(v, _)| v.as_str() == name)
            .map(|(_, json)| json)
    }
}

/// An event rendered at the versions other than its world's that its endpoints ask for.
type Renderings = Vec<(Version, Bytes)>;

/// The API versions, other than `world`, that the world's enabled endpoints receiving events of
/// `kind` ask for, each once.
fn endpoint_versions(tenant: &Tenant, kind: &str, world: Version) -> Vec<Version> {
    let mut versions: Vec<Version> = Vec::new();
    for e in tenant.webhook_endpoints_receiving(kind) {
        let Some(v) = e.api_version.as_deref().and_then(Version::parse) else {
            continue;
        };
        if v != world && !versions.contains(&v) {
            versions.push(v);
        }
    }
    versions
}

/// The store's hook: renders and keeps each world's events.
#[derive(Debug)]
pub struct Recorder {
    /// The application, for the world's default version and the delivery hand-off. Weak: the
    /// application owns the store that owns this.
    pub app: Weak<dyn Outbox>,
    /// The id seed (`--seed`).
    pub seed: Option<u64>,
}

/// `request` of an event.
#[derive(Serialize)]
struct RequestJson<'a> {
    id: Option<&'a str>,
    idempotency_key: Option<&'a str>,
}

/// `data` of an event.
#[derive(Serialize)]
struct DataJson<'a, O> {
    object: O,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_attributes: Option<&'a Map<String, Value>>,
}

/// An event, fields in Stripe's order.
#[derive(Serialize)]
struct EventJson<'a, O> {
    id: &'a str,
    object: &'static str,
    api_version: &'static str,
    created: i64,
    data: DataJson<'a, O>,
    livemode: bool,
    pending_webhooks: u32,
    request: RequestJson<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// What every event of one drain shares.
struct Head<'a> {
    version: Version,
    request: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    /// `pending_webhooks` in the rendering: the endpoints that receive it, for the copy that is
    /// delivered (none of them has acknowledged it yet as it is sent); reading it from the log
    /// shows the live count instead.
    pending_webhooks: u32,
}

/// Stripe's type for a change, if Stripe has an event for it.
pub fn event_type(kind: ChangeKind, object: &Snapshot) -> Option<&'static str> {
    use ChangeKind as K;
    Some(match (object, kind) {
        (Snapshot::Customer(_), K::Created) => "customer.created",
        (Snapshot::Customer(_), K::Updated) => "customer.updated",
        (Snapshot::Customer(_), K::Deleted) => "customer.deleted",
        (Snapshot::Lot(_), K::Created) => "billing.credit_grant.created",
        (Snapshot::Lot(_), K::Updated) => "billing.credit_grant.updated",
        (Snapshot::Entry(_), K::Created) => "billing.credit_balance_transaction.created",
        (Snapshot::TestClock(_), K::Created) => "test_helpers.test_clock.created",
        (Snapshot::TestClock(_), K::Advancing) => "test_helpers.test_clock.advancing",
        (Snapshot::TestClock(_), K::Ready) => "test_helpers.test_clock.ready",
        (Snapshot::TestClock(_), K::Deleted) => "test_helpers.test_clock.deleted",
        (Snapshot::Invoice(_), K::Created) => "invoice.created",
        (Snapshot::Invoice(_), K::Updated) => "invoice.updated",
        (Snapshot::Invoice(_), K::Finalized) => "invoice.finalized",
        (Snapshot::Invoice(_), K::Paid) => "invoice.paid",
        (Snapshot::Invoice(_), K::PaymentSucceeded) => "invoice.payment_succeeded",
        (Snapshot::Invoice(_), K::PaymentFailed) => "invoice.payment_failed",
        (Snapshot::Invoice(_), K::Sent) => "invoice.sent",
        (Snapshot::Invoice(_), K::Voided) => "invoice.voided",
        (Snapshot::Invoice(_), K::MarkedUncollectible) => "invoice.marked_uncollectible",
        (Snapshot::Invoice(_), K::Deleted) => "invoice.deleted",
        (Snapshot::InvoiceItem(_), K::Created) => "invoiceitem.created",
        (Snapshot::InvoiceItem(_), K::Deleted) => "invoiceitem.deleted",
        (Snapshot::Subscription(_), K::Created) => "customer.subscription.created",
        (Snapshot::Subscription(_), K::Updated) => "customer.subscription.updated",
        (Snapshot::Subscription(_), K::Deleted) => "customer.subscription.deleted",
        (Snapshot::Meter(_), K::Created) => "billing.meter.created",
        (Snapshot::Meter(_), K::Updated) => "billing.meter.updated",
        (Snapshot::Meter(_), K::Deactivated) => "billing.meter.deactivated",
        (Snapshot::Meter(_), K::Reactivated) => "billing.meter.reactivated",
        (Snapshot::Product(_), K::Created) => "product.created",
        (Snapshot::Product(_), K::Updated) => "product.updated",
        (Snapshot::Product(_), K::Deleted) => "product.deleted",
        (Snapshot::Price(_), K::Created) => "price.created",
        (Snapshot::Price(_), K::Updated) => "price.updated",
        (Snapshot::AlertTrigger(_), K::Triggered) => "billing.alert.triggered",
        _ => return None,
    })
}

/// The object of `snapshot` as a tree, as the resource's view shows it under `version`.
fn object_value(snapshot: &Snapshot, tenant: Option<&Tenant>, version: Version) -> Value {
    let value = |view: &dyn erased::Ser| view.to_value();
    // Only the views that read other objects need the world (invoices, subscriptions, prices).
    let Some(tenant) = tenant else {
        return match snapshot {
            Snapshot::Customer(c) => {
                let id = ids::render(ids::CUSTOMER, c.key);
                value(&CustomerView::of(c, &id))
            }
            Snapshot::Lot(lot) => value(&GrantJson::of(lot, version)),
            Snapshot::Entry(e) => value(&TransactionView::of(e)),
            Snapshot::TestClock(c) => value(&TestClockView::of(c)),
            Snapshot::Meter(m) => value(&MeterView::of(m)),
            Snapshot::Product(p) => value(&ProductView::of(p)),
            Snapshot::AlertTrigger(a) => value(&TriggeredView::of(a)),
            _ => Value::Null,
        };
    };
    match snapshot {
        Snapshot::Customer(c) => {
            let id = ids::render(ids::CUSTOMER, c.key);
            value(&CustomerView::of(c, &id))
        }
        Snapshot::Lot(lot) => value(&GrantJson::of(lot, version)),
        Snapshot::Entry(e) => value(&TransactionView::of(e)),
        Snapshot::TestClock(c) => value(&TestClockView::of(c)),
        Snapshot::Invoice(inv) => {
            let rendered = InvoiceIds::of(inv);
            value(&InvoiceView::of(tenant, inv, &rendered))
        }
        Snapshot::InvoiceItem(item) => value(&ItemView::of(tenant, item)),
        Snapshot::Subscription(s) => value(&SubscriptionView::with_items(
            tenant,
            &s.subscription,
            s.items.iter(),
        )),
        Snapshot::Meter(m) => value(&MeterView::of(m)),
        Snapshot::Product(p) => value(&ProductView::of(p)),
        Snapshot::Price(p) => value(&price_view(p, tenant)),
        Snapshot::AlertTrigger(a) => value(&TriggeredView::of(a)),
    }
}

/// A view behind a reference, turned into a tree.
mod erased {
    /// Anything serializable, as a tree.
    pub trait Ser {
        /// The tree.
        fn to_value(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Ser for T {
        fn to_value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// Whether an event about `snapshot` may be kept as the copy and rendered when read. The copy
/// holds the object as it was; what its view looks up elsewhere is read then: for an invoice, its
/// customer's name, email and phone, its lines' prices (which do not change what they charge) and
/// the subscription its invoice items were made for (which does not change either).
/// A subscription's, a price's and an invoice item's views read more of the world (items,
/// products, the customer's test clock), so their events are rendered at once.
fn self_contained(snapshot: &Snapshot) -> bool {
    !matches!(
        snapshot,
        Snapshot::Subscription(_) | Snapshot::Price(_) | Snapshot::InvoiceItem(_)
    )
}

/// The top-level fields of `after` whose values differ in `before`, with their values in `before`
/// (a field `after` lacks is shown as it was too).
fn previous_attributes(before: &Value, after: &Value) -> Map<String, Value> {
    let mut changed = Map::new();
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        for (k, old) in b {
            if a.get(k) != Some(old) {
                changed.insert(k.clone(), old.clone());
            }
        }
    }
    changed
}

/// Renders `change` as the event `id`. A creation (the common case: every grant and ledger entry)
/// is serialized straight from the view; only an update, which compares two renderings, and a
/// clock's `advancing`, whose status the model does not hold, go through a tree.
fn render_event(
    id: &str,
    kind: &'static str,
    change: &Change,
    head: &Head,
    tenant: Option<&Tenant>,
) -> Vec<u8> {
    if change.kind != ChangeKind::Updated && change.kind != ChangeKind::Advancing {
        match &change.after {
            Snapshot::Lot(lot) => {
                let view = GrantJson::of(lot, head.version);
                return serialize(id, kind, change, head, view, None);
            }
            Snapshot::Entry(e) => {
                return serialize(id, kind, change, head, TransactionView::of(e), None)
            }
            Snapshot::Customer(c) => {
                let customer = ids::render(ids::CUSTOMER, c.key);
                let view = CustomerView::of(c, &customer);
                return serialize(id, kind, change, head, view, None);
            }
            _ => {}
        }
    }
    let object = object_value(&change.after, tenant, head.version);
    let previous = match (&change.before, change.kind) {
        (Some(before), ChangeKind::Updated) => Some(previous_attributes(
            &object_value(before, tenant, head.version),
            &object,
        )),
        _ => None,
    };
    serialize(id, kind, change, head, object, previous.as_ref())
}

/// The event `id` of type `kind` for `change`, with `object` and `previous`, as compact JSON.
fn serialize<O: Serialize>(
    id: &str,
    kind: &'static str,
    change: &Change,
    head: &Head,
    object: O,
    previous: Option<&Map<String, Value>>,
) -> Vec<u8> {
    let event = EventJson {
        id,
        object: "event",
        api_version: head.version.as_str(),
        created: to_secs(change.at),
        data: DataJson {
            object,
            previous_attributes: previous,
        },
        livemode: false,
        pending_webhooks: head.pending_webhooks,
        request: RequestJson {
            id: head.request,
            idempotency_key: head.idempotency_key,
        },
        kind,
    };
    // The same bytes as `serde_json::to_vec`, with strings checked for escapes eight bytes at a
    // time (see `crate::pretty`): an event is rendered for every endpoint that receives it.
    crate::pretty::to_vec_compact(&event, 2048)
}

impl ChangeHook for Recorder {
    fn changed(
        &self,
        world: &str,
        tenant: &Tenant,
        attachment: &mut Option<Attachment>,
        changes: Vec<Change>,
    ) {
        let Some(app) = self.app.upgrade() else {
            return;
        };
        let slot = attachment
            .get_or_insert_with(|| Box::new(EventLog::new(self.seed, tenant.world_salt(), world)));
        let Some(log) = slot.downcast_mut::<EventLog>() else {
            return;
        };
        let now = tenant.tenant_now();
        let version = app.version_of(world);
        let cause = tenant.cause();
        // The events some endpoint receives, rendered now for delivery.
        let mut delivered: Vec<(String, Key, Renderings)> = Vec::new();
        // One copy of the request's id and key for all the events it made (a create makes two).
        let mut shared: Option<Arc<CauseCopy>> = None;
        for change in changes {
            let Some(kind) = event_type(change.kind, &change.after) else {
                continue;
            };
            let key = log.ids.next(to_millis(crate::time::real_now()));
            let (request, idempotency_key) = match cause.filter(|_| change.by_request) {
                Some(c) => (Some(c.request.as_str()), c.idempotency_key.as_deref()),
                None => (None, None),
            };
            let created = to_secs(change.at);
            // The world's endpoints for the type, counted once: the delivered copy shows them.
            let endpoints =
                u32::try_from(tenant.webhook_endpoints_receiving(kind).count()).unwrap_or(u32::MAX);
            let receivers = endpoints.saturating_add(app.webhook_forwards(kind));
            let body = if receivers == 0 && self_contained(&change.after) {
                EventBody::Later(Box::new(Later {
                    change,
                    version,
                    cause: request.map(|request| {
                        shared
                            .get_or_insert_with(|| {
                                Arc::new(CauseCopy {
                                    request: request.into(),
                                    idempotency_key: idempotency_key.map(Box::from),
                                })
                            })
                            .clone()
                    }),
                }))
            } else {
                let head = Head {
                    version,
                    request,
                    idempotency_key,
                    pending_webhooks: endpoints,
                };
                let id = ids::render(ids::EVENT, key);
                let json = render_event(&id, kind, &change, &head, Some(tenant));
                if receivers > 0 {
                    let variants = endpoint_versions(tenant, kind, version)
                        .into_iter()
                        .map(|v| {
                            let head = Head { version: v, ..head };
                            let json = render_event(&id, kind, &change, &head, Some(tenant));
                            (v, Bytes::from(json))
                        })
                        .collect();
                    delivered.push((id, key, variants));
                }
                // Shrunk to its length first: the log keeps it for 30 days.
                EventBody::Json(Bytes::from(json.into_boxed_slice()))
            };
            log.events.insert(
                key,
                StoredEvent {
                    kind,
                    created,
                    stored_at: now,
                    pending_webhooks: if receivers > 0 {
                        Pending::counting()
                    } else {
                        Pending::default()
                    },
                    body,
                },
            );
        }
        log.prune(now);
        if delivered.is_empty() {
            return;
        }
        let refs: Vec<EventRef> = delivered
            .iter()
            .filter_map(|(id, key, variants)| {
                let e = log.events.get(key)?;
                let EventBody::Json(json) = &e.body else {
                    return None;
                };
                Some(EventRef {
                    id,
                    kind: e.kind,
                    created: e.created,
                    json,
                    variants,
                    pending: &e.pending_webhooks,
                })
            })
            .collect();
        app.events_produced(tenant, &refs);
    }
}

/// The log of `t`, pruned to the last 30 days of its clock, if it has one.
fn log_of(t: &mut Tenant) -> Option<&EventLog> {
    let now = t.tenant_now();
    let log = t.attachment_mut::<EventLog>()?;
    log.prune(now);
    Some(log)
}

/// `GET /v1/events/{id}`.
pub struct Retrieve {
    id: String,
}

const RETRIEVE: &[Field] = &[crate::wire::params::EXPAND];

impl Operation for Retrieve {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, RETRIEVE, "")?;
        Expand::read(input.params, &[], input.version)?;
        Ok(Retrieve {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        let missing = || StripeError::no_such("event", &self.id, "id", 404);
        let key = ids::key_of(&self.id, ids::EVENT).ok_or_else(missing)?;
        log_of(t)
            .filter(|log| log.events.contains_key(&key))
            .map(|_| key)
            .ok_or_else(missing)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        let shown = t
            .attachment::<EventLog>()
            .and_then(|log| log.show(key, t))
            .unwrap_or(Value::Null);
        Body::Json(pretty(&shown, 2048))
    }
}

const LIST: [Field; 8] = [
    LIST_FIELDS[0],
    LIST_FIELDS[1],
    LIST_FIELDS[2],
    LIST_FIELDS[3],
    opt("created", Spec::Range),
    opt("delivery_success", Spec::Bool),
    opt("type", Spec::Str(5000)),
    opt("types", Spec::Array(&Spec::Str(5000), MAX_TYPES)),
];

/// `GET /v1/events`: newest first, filtered by `type` (with `*` wildcards) or `types[]`,
/// `created` and `delivery_success`.
pub struct List {
    page: PageRequest,
    types: Vec<String>,
    created: Option<TimeRange>,
    delivery_success: Option<bool>,
}

impl Operation for List {
    type Output = (Vec<Key>, bool);

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, &LIST, "")?;
        Expand::read(p, &[], input.version)?;
        let one = get_str(p, "type").map(str::to_string);
        let many: Option<Vec<String>> = p.get("types").map(|node| {
            list_items(node)
                .into_iter()
                .filter_map(|n| match n {
                    crate::form::Node::Value(v) => Some(v.clone()),
                    _ => None,
                })
                .collect()
        });
        let types = match (one, many) {
            (Some(_), Some(_)) => {
                return Err(StripeError::invalid(
                    "You may pass either `type` or `types`, but not both.",
                )
                .param("types"))
            }
            (Some(t), None) => vec![t],
            (None, Some(ts)) => ts,
            (None, None) => Vec::new(),
        };
        let delivery_success = get_str(p, "delivery_success").map(|v| v == "true");
        Ok(List {
            page: PageRequest::read(p)?,
            types,
            created: TimeRange::read(p, "created"),
            delivery_success,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let empty;
        let log = match log_of(t) {
            Some(log) => log,
            None => {
                // A world that never changed has no log yet: its cursors name no event.
                empty = EventLog::new(None, None, "");
                &empty
            }
        };
        let page = self.page.resolve("event", |id| {
            ids::key_of(id, ids::EVENT).filter(|k| log.events.contains_key(k))
        })?;
        let keep = |k: Key| {
            let Some(e) = log.events.get(&k) else {
                return false;
            };
            (self.types.is_empty() || self.types.iter().any(|p| matches(p, e.kind)))
                && self
                    .created
                    .is_none_or(|r| r.contains(e.created.saturating_mul(NANOS_PER_SEC)))
                && self
                    .delivery_success
                    .is_none_or(|ok| ok == (e.pending_webhooks.get() == 0))
        };
        let (keys, more) = list::paginate(
            |a, b| log.events.range((a, b)).map(|(k, _)| *k),
            &page,
            keep,
        );
        Ok((keys, more))
    }

    fn render((keys, more): Self::Output, t: &Tenant) -> Body {
        let data: Vec<Value> = match t.attachment::<EventLog>() {
            Some(log) => keys.iter().filter_map(|k| log.show(*k, t)).collect(),
            None => Vec::new(),
        };
        let capacity = 2048 * (data.len() + 1);
        Body::Json(pretty(&ListJson::new(data, more, "/v1/events"), capacity))
    }
}

/// Whether the event type `kind` matches `pattern`, in which `*` stands for any run of characters
/// (`invoice.*`, `*.created`).
pub fn matches(pattern: &str, kind: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = kind.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(stored_at: Nanos) -> StoredEvent {
        StoredEvent {
            kind: "customer.created",
            created: 0,
            stored_at,
            pending_webhooks: Pending::default(),
            body: EventBody::Json(Bytes::new()),
        }
    }

    #[test]
    fn a_log_keeps_thirty_days_and_at_most_its_bound() {
        let mut log = EventLog::new(Some(1), None, "w");
        for i in 0..(MAX_EVENTS as u128 + 5) {
            log.events.insert(i, stored(RETENTION));
        }
        log.prune(RETENTION);
        assert_eq!(log.len(), MAX_EVENTS);
        assert_eq!(
            log.events.iter().next().map(|(k, _)| *k),
            Some(5),
            "the oldest went first"
        );
        log.prune(2 * RETENTION);
        assert_eq!(log.len(), MAX_EVENTS, "stored exactly 30 days ago: kept");
        log.prune(2 * RETENTION + 1);
        assert!(log.is_empty());
    }

    #[test]
    fn events_stay_in_key_order_whatever_order_they_come_in() {
        let mut events = Events::default();
        for k in [10, 20, 30, 25, 5, 40] {
            assert!(events.insert(k, stored(k as Nanos)).is_none());
        }
        let keys = |r: (Bound<Key>, Bound<Key>)| -> Vec<Key> {
            events.range(r).map(|(k, _)| *k).collect()
        };
        use Bound::{Excluded, Included, Unbounded};
        assert_eq!(keys((Unbounded, Unbounded)), [5, 10, 20, 25, 30, 40]);
        assert_eq!(keys((Excluded(10), Included(30))), [20, 25, 30]);
        assert_eq!(keys((Included(10), Excluded(30))), [10, 20, 25]);
        assert_eq!(keys((Excluded(26), Unbounded)), [30, 40]);
        assert_eq!(keys((Unbounded, Excluded(5))), Vec::<Key>::new());
        assert_eq!(
            keys((Included(30), Included(20))),
            Vec::<Key>::new(),
            "crossed"
        );
        let newest_first: Vec<Key> = events
            .range((Unbounded, Included(25)))
            .rev()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(newest_first, [25, 20, 10, 5]);
        assert_eq!(events.get(&25).map(|e| e.stored_at), Some(25));
        assert!(events.get(&26).is_none() && !events.contains_key(&26));
        // A key given twice replaces the event, and says so.
        let old = events.insert(20, stored(99)).expect("there was one");
        assert_eq!((old.stored_at, events.len()), (20, 6));
        events.pop_first();
        assert_eq!(events.first().map(|e| e.stored_at), Some(10));
    }

    #[test]
    fn wildcards_match_any_run_of_characters() {
        assert!(matches("invoice.*", "invoice.paid"));
        assert!(matches("invoice.paid", "invoice.paid"));
        assert!(!matches("invoice.paid", "invoice.paid2"));
        assert!(!matches("invoice.*", "customer.created"));
        assert!(matches("*.created", "customer.created"));
        assert!(matches("billing.*.created", "billing.credit_grant.created"));
        assert!(!matches(
            "billing.*.updated",
            "billing.credit_grant.created"
        ));
        assert!(matches("*", "customer.created"));
        assert!(!matches("customer.*.*", "customer.created"));
        assert!(matches("customer.*.*", "customer.subscription.created"));
    }
}
