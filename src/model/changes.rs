//! What changed in a world, in the model's own words: every command that changes an object
//! records a [`Change`] with a copy of the object as it became (and, for an update, as it was), at
//! the instant it happened on the object's clock.
//!
//! The changes wait in the tenant until [`super::Store::with_tenant`] hands them, in the order they
//! happened, to the [`ChangeHook`] the application installed. Nothing here knows how a facade names
//! or renders them.

use super::{
    AlertTrigger, Customer, Entry, Invoice, InvoiceItem, Lot, Meter, Price, PricedSubscription,
    Product, SubscriptionItem, Tenant, TestClock,
};
use crate::time::Nanos;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// It came to exist.
    Created,
    /// Some of its fields changed (`before` holds the old object).
    Updated,
    /// It was deleted (`after` holds it as it was).
    Deleted,
    /// A draft invoice became open.
    Finalized,
    /// An invoice was paid.
    Paid,
    /// An invoice was paid by a payment (charged, or nothing was due), not marked paid outside
    /// the emulator: recorded right after its [`ChangeKind::Paid`].
    PaymentSucceeded,
    /// A payment attempt of an invoice was declined.
    PaymentFailed,
    /// An invoice was sent to its customer.
    Sent,
    /// An invoice was voided.
    Voided,
    /// An open invoice was marked uncollectible (recorded right after its [`ChangeKind::Updated`]).
    MarkedUncollectible,
    /// A test clock started moving.
    Advancing,
    /// A test clock finished moving.
    Ready,
    /// A meter stopped accepting events.
    Deactivated,
    /// A meter accepts events again.
    Reactivated,
    /// An alert's threshold was crossed.
    Triggered,
}

/// An object as of one moment. A copy, boxed so that a change costs one allocation whatever the
/// object; for lots and ledger entries, the most numerous, the stored object itself, shared (the
/// tenant copies a lot before changing it while a snapshot still holds it).
#[derive(Debug, Clone)]
pub enum Snapshot {
    /// A customer.
    Customer(Box<Customer>),
    /// A lot (a credit grant).
    Lot(std::sync::Arc<Lot>),
    /// A ledger entry.
    Entry(std::sync::Arc<Entry>),
    /// A test clock.
    TestClock(Box<TestClock>),
    /// An invoice.
    Invoice(Box<Invoice>),
    /// An invoice item.
    InvoiceItem(Box<InvoiceItem>),
    /// A meter.
    Meter(Box<Meter>),
    /// A product.
    Product(Box<Product>),
    /// A price.
    Price(Box<Price>),
    /// A priced subscription and its items.
    Subscription(Box<SubscriptionSnapshot>),
    /// An alert's firing.
    AlertTrigger(Box<AlertTrigger>),
}

impl Snapshot {
    /// Which object this copies: its kind and key (an alert's firing is not an object that
    /// changes).
    fn object(&self) -> Option<(std::mem::Discriminant<Snapshot>, crate::ids::Key)> {
        let key = match self {
            Snapshot::Customer(c) => c.key,
            Snapshot::Lot(l) => l.key,
            Snapshot::Entry(e) => e.key,
            Snapshot::TestClock(c) => c.key,
            Snapshot::Invoice(i) => i.key,
            Snapshot::InvoiceItem(i) => i.key,
            Snapshot::Meter(m) => m.key,
            Snapshot::Product(p) => p.key,
            Snapshot::Price(p) => p.key,
            Snapshot::Subscription(s) => s.subscription.key,
            Snapshot::AlertTrigger(_) => return None,
        };
        Some((std::mem::discriminant(self), key))
    }
}

/// A priced subscription with its items, as of one moment.
#[derive(Debug, Clone)]
pub struct SubscriptionSnapshot {
    /// The subscription.
    pub subscription: PricedSubscription,
    /// Its items, in order.
    pub items: Vec<SubscriptionItem>,
}

/// Who asked for the changes being made: the request's id and its idempotency key, as the facade
/// that serves it names them. Changes made by time passing have none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cause {
    /// The request's id.
    pub request: String,
    /// The key the request was sent with, if any.
    pub idempotency_key: Option<String>,
}

/// The tenant's cause: buffers reused by every request, and whether they apply now. Shown (in the
/// tenant's `Debug`) as the cause that applies, so that a world at rest reads the same whichever
/// requests it has served.
#[derive(Default)]
pub(super) struct CauseSlot {
    cause: Cause,
    /// Whether `cause` applies (a request is being served) rather than time.
    pub(super) caused: bool,
}

impl std::fmt::Debug for CauseSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.caused.then_some(&self.cause).fmt(f)
    }
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// When, on the object's clock.
    pub at: Nanos,
    /// Whether a request made it (the tenant had a [`Cause`] then), rather than time passing.
    pub by_request: bool,
    /// The object as it is after the change.
    pub after: Snapshot,
    /// For an update, the object as it was before.
    pub before: Option<Snapshot>,
}

/// Data the application keeps with a world, opaque to the model: it lives and dies with the world.
pub type Attachment = Box<dyn std::any::Any + Send>;

/// What the application does with a world's changes: called under the world's lock, after each
/// locked section that changed something, with the changes in the order they happened.
pub trait ChangeHook: Send + Sync + std::fmt::Debug {
    /// Takes the changes `changes` made in the world named `world`, now as `tenant` shows it;
    /// `attachment` is the world's [`Attachment`], for the hook to fill in.
    fn changed(
        &self,
        world: &str,
        tenant: &Tenant,
        attachment: &mut Option<Attachment>,
        changes: Vec<Change>,
    );
}

impl Tenant {
    /// Records a change of `kind` at `at`.
    pub(super) fn record(
        &mut self,
        kind: ChangeKind,
        at: Nanos,
        after: Snapshot,
        before: Option<Snapshot>,
    ) {
        let by_request = self.cause.caused;
        // A request changes an object once, as Stripe tells it: an update made in steps (a
        // grant's expiry, then its metadata) is one update, from the object as it was before the
        // request to the object as it became. What time changes stays one change per step.
        if let Some(object) = after
            .object()
            .filter(|_| kind == ChangeKind::Updated && by_request)
        {
            // Not compared on `at`: a clock that runs moves on between the steps of one request.
            let same = |c: &Change| {
                c.kind == ChangeKind::Updated && c.by_request && c.after.object() == Some(object)
            };
            if let Some(earlier) = self.changes.iter_mut().rev().find(|c| same(c)) {
                earlier.after = after;
                return;
            }
        }
        self.changes.push(Change {
            kind,
            at,
            by_request,
            after,
            before,
        });
    }

    /// A copy of the meter `key`, if it exists.
    pub(super) fn meter_snapshot(&self, key: crate::ids::Key) -> Option<Snapshot> {
        Some(Snapshot::Meter(Box::new(self.meter(key)?.clone())))
    }

    /// A copy of the product `key`, if it exists.
    pub(super) fn product_snapshot(&self, key: crate::ids::Key) -> Option<Snapshot> {
        Some(Snapshot::Product(Box::new(self.product(key)?.clone())))
    }

    /// A copy of the price `key`, if it exists.
    pub(super) fn price_snapshot(&self, key: crate::ids::Key) -> Option<Snapshot> {
        Some(Snapshot::Price(Box::new(self.price(key)?.clone())))
    }

    /// Records a change of `kind` of the object `after` copies (when it exists) at `at`.
    pub(super) fn record_some(
        &mut self,
        kind: ChangeKind,
        at: Nanos,
        after: Option<Snapshot>,
        before: Option<Snapshot>,
    ) {
        if let Some(after) = after {
            self.record(kind, at, after, before);
        }
    }

    /// A copy of the priced subscription `key` and its items, if it exists.
    pub(super) fn subscription_snapshot(&self, key: crate::ids::Key) -> Option<Snapshot> {
        let subscription = self.priced_subscription(key)?.clone();
        let items = self.priced_subscription_items(key).cloned().collect();
        Some(Snapshot::Subscription(Box::new(SubscriptionSnapshot {
            subscription,
            items,
        })))
    }

    /// Records that the priced subscription `key` changed at `at` from `before`. Parts of one step
    /// (a period rolled and its invoice made the latest, a subscription made with its first
    /// invoice, a cancellation with its final invoice) are one change: a creation, update or end
    /// of the same subscription at the same instant among the last few changes takes the new copy
    /// instead.
    pub(super) fn record_subscription(
        &mut self,
        key: crate::ids::Key,
        at: Nanos,
        before: Option<Snapshot>,
    ) {
        let Some(after) = self.subscription_snapshot(key) else {
            return;
        };
        let same = |c: &Change| {
            c.at == at
                && matches!(
                    c.kind,
                    ChangeKind::Created | ChangeKind::Updated | ChangeKind::Deleted
                )
                && matches!(&c.after, Snapshot::Subscription(s) if s.subscription.key == key)
        };
        if let Some(c) = self.changes.iter_mut().rev().take(8).find(|c| same(c)) {
            c.after = after;
            return;
        }
        self.record(ChangeKind::Updated, at, after, before);
    }

    /// Sets who is asking for the changes made from now on: the request `request`, sent with
    /// `idempotency_key`. The strings are copied into buffers the tenant keeps, so that a request
    /// allocates nothing for this.
    pub fn set_cause(&mut self, request: &str, idempotency_key: Option<&str>) {
        let cause = &mut self.cause.cause;
        cause.request.clear();
        cause.request.push_str(request);
        match idempotency_key {
            Some(k) => {
                let key = cause.idempotency_key.get_or_insert_with(String::new);
                key.clear();
                key.push_str(k);
            }
            None => cause.idempotency_key = None,
        }
        self.cause.caused = true;
    }

    /// Forgets the cause: the changes made from now on are time's.
    pub fn clear_cause(&mut self) {
        self.cause.caused = false;
    }

    /// Who is asking for the changes being made, if a request is.
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.caused.then_some(&self.cause.cause)
    }

    /// How many changes are waiting: a mark for [`Tenant::discard_changes_since`].
    pub fn change_mark(&self) -> usize {
        self.changes.len()
    }

    /// Forgets the changes recorded after `mark`: an operation that refused leaves nothing to
    /// report (the model's commands change nothing when they refuse).
    pub fn discard_changes_since(&mut self, mark: usize) {
        self.changes.truncate(mark);
    }

    /// Records the creation at `at` of the lot `key`, in its place at `mark` (the
    /// [`Tenant::change_mark`] of when it was made), with the lot as it is now. A lot's creation
    /// is recorded once its own steps (its grant, its schedule) are done, so that the snapshot is
    /// the stored lot itself: taken before them, it would make the first of them copy the lot.
    /// Those steps change nothing a grant shows (only the commands of `lot.rs` do, each recording
    /// an update, and none runs inside a creation).
    pub(super) fn record_lot_created(&mut self, mark: usize, key: crate::ids::Key, at: Nanos) {
        let mark = mark.min(self.changes.len());
        debug_assert!(
            !self.changes[mark..]
                .iter()
                .any(|c| c.kind == ChangeKind::Updated
                    && matches!(&c.after, Snapshot::Lot(l) if l.key == key)),
            "a lot changed what it shows while it was being made"
        );
        let change = Change {
            kind: ChangeKind::Created,
            at,
            by_request: self.cause.caused,
            after: Snapshot::Lot(self.lots[&key].clone()),
            before: None,
        };
        self.changes.insert(mark, change);
    }

    /// Replaces the copy in the change at `index` (a draft's creation, say, whose later parts
    /// are made in the same step).
    pub(super) fn retake(&mut self, index: usize, after: Snapshot) {
        if let Some(change) = self.changes.get_mut(index) {
            change.after = after;
        }
    }

    /// The world's [`Attachment`], if it is a `T`.
    pub fn attachment<T: 'static>(&self) -> Option<&T> {
        self.attachment.as_ref()?.downcast_ref()
    }

    /// The world's [`Attachment`], if it is a `T`, to change.
    pub fn attachment_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.attachment.as_mut()?.downcast_mut()
    }

    /// Replaces the world's [`Attachment`] (a world read back from a document gets its own).
    pub fn set_attachment(&mut self, attachment: Option<Attachment>) {
        self.attachment = attachment;
    }

    /// Hands the waiting changes to `hook`, with the world's attachment.
    pub(super) fn drain_changes(&mut self, world: &str, hook: Option<&dyn ChangeHook>) {
        let changes = std::mem::take(&mut self.changes);
        if let Some(hook) = hook {
            let mut attachment = self.attachment.take();
            hook.changed(world, self, &mut attachment, changes);
            self.attachment = attachment;
        }
    }

    /// Whether any change is waiting.
    pub(super) fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Category, Currency, Metadata, NewCustomer, NewLot};
    use std::sync::Arc;

    #[test]
    fn a_lots_creation_shares_the_stored_lot_until_the_lot_changes() {
        let mut t = Tenant::new("sk_test_snapshots", Some(3));
        let customer = t.create_customer(NewCustomer::default());
        let mark = t.change_mark();
        let usd = Currency::parse("usd").expect("a currency");
        let lot = t.create_lot(NewLot::plain(customer, usd, 500.into(), Category::Paid));
        // The creation comes first, before the entry its grant posted, though it was recorded
        // last; both snapshots are the stored objects, not copies.
        let made: Vec<(ChangeKind, Snapshot)> = t.changes[mark..]
            .iter()
            .map(|c| (c.kind, c.after.clone()))
            .collect();
        let [(ChangeKind::Created, Snapshot::Lot(created)), (ChangeKind::Created, Snapshot::Entry(entry))] =
            &made[..]
        else {
            panic!("a lot's creation, then its grant's entry: {made:?}");
        };
        assert_eq!(created.key, lot);
        assert!(Arc::ptr_eq(created, &t.lots[&lot]));
        assert!(Arc::ptr_eq(entry, &t.entries[&entry.key]));
        // A change copies the lot first: the snapshot keeps the lot as it was made.
        let mut metadata = Metadata::new();
        metadata.insert("tier".into(), "gold".into());
        t.set_lot_metadata(lot, metadata).expect("an open lot");
        assert!(!Arc::ptr_eq(created, &t.lots[&lot]));
        assert_eq!(created.metadata.get("tier"), None);
        assert_eq!(t.lot(lot).expect("made").metadata.get("tier"), Some("gold"));
        // Once the changes are handed on and their events gone, the lot is the tenant's alone
        // again: what changes it without a snapshot (a spend) changes it in place.
        t.changes.clear();
        drop(made);
        assert_eq!(Arc::strong_count(&t.lots[&lot]), 1);
    }
}
