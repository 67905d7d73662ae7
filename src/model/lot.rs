//! Lots: one allotment of spendable credit for one customer in one currency.
//!
//! A Stripe credit grant is exactly one lot. A native subscription grant produces one lot per applied
//! period. Whatever made it, a lot is spent, expired and voided the same way, which is why both APIs
//! agree on balances.

use std::cmp::Ordering;
use std::ops::RangeBounds;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::{ChangeKind, Currency, Domain, EntryKind, Event, KeyIndex, Metadata, Snapshot, Tenant};
use crate::ids::Key;
use crate::time::Nanos;

/// Stripe's grant category; it orders spending (promotional first on ties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Bought credits.
    Paid,
    /// Free credits.
    Promotional,
}

/// Which invoice lines a lot may pay for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applicability {
    /// Every metered line (Stripe `price_type=metered`; native wallets' `USAGE`).
    Metered,
    /// Only lines whose price is in the list (shared: a copy of a lot, for an event, copies no list).
    Prices(std::sync::Arc<[ScopedPrice]>),
}

impl From<&str> for ScopedPrice {
    /// A price named only by its id (no catalog price).
    fn from(id: &str) -> Self {
        ScopedPrice {
            id: id.to_string(),
            key: None,
        }
    }
}

/// A price a lot's scope names: its id as the caller wrote it, and the catalog price it names when
/// it names one (the facade resolves that), so that lines billed from the catalog match by key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedPrice {
    /// As written.
    pub id: String,
    /// The catalog price, if `id` names one.
    #[serde(with = "crate::ids::text::opt")]
    pub key: Option<crate::ids::Key>,
}

impl Applicability {
    /// Whether a line with this price (named `price`, or the catalog price `key`; or none) is
    /// covered.
    pub fn covers(&self, price: Option<&str>, key: Option<crate::ids::Key>) -> bool {
        match self {
            Applicability::Metered => true,
            Applicability::Prices(list) => list
                .iter()
                .any(|x| (key.is_some() && x.key == key) || price.is_some_and(|p| p == x.id)),
        }
    }

    /// Whether two scopes share any line (the balance-summary filter). A price list names metered
    /// prices, so it lies inside `Metered`: the two overlap whenever the list is not empty.
    pub fn intersects(&self, other: &Applicability) -> bool {
        match (self, other) {
            (Applicability::Metered, Applicability::Metered) => true,
            (Applicability::Prices(a), Applicability::Prices(b)) => {
                a.iter().any(|p| b.iter().any(|q| p.id == q.id))
            }
            (Applicability::Metered, Applicability::Prices(p))
            | (Applicability::Prices(p), Applicability::Metered) => !p.is_empty(),
        }
    }
}

/// Where a lot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotOrigin {
    /// Granted directly, on its own (a Stripe credit grant is one).
    Direct,
    /// Applied by a grant rule for one period (`grant` made it through application `application`).
    Application {
        /// The grant rule.
        #[serde(with = "crate::ids::text")]
        grant: Key,
        /// The credit-grant application that applied it.
        #[serde(with = "crate::ids::text")]
        application: Key,
    },
}

/// One allotment of credit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lot {
    /// Identity; a Stripe grant's id is this key.
    #[serde(with = "crate::ids::text")]
    pub key: Key,
    /// Owner.
    #[serde(with = "crate::ids::text")]
    pub customer: Key,
    /// The owner's test clock when the lot was made.
    #[serde(with = "crate::ids::text::opt")]
    pub test_clock: Option<Key>,
    /// Currency of the amounts.
    pub currency: Currency,
    /// Original amount, in minor units.
    pub amount: Decimal,
    /// Spending order category.
    pub category: Category,
    /// Which lines it may pay.
    pub applicability: Applicability,
    /// Lower spends first; `None` spends after every number.
    pub priority: Option<i64>,
    /// Display name.
    pub name: Option<std::sync::Arc<str>>,
    /// Key–value metadata.
    pub metadata: std::sync::Arc<Metadata>,
    /// When the credit becomes usable.
    pub effective_at: Nanos,
    /// When the rest of it stops being usable; `None` is never.
    pub expires_at: Option<Nanos>,
    /// When it was voided.
    pub voided_at: Option<Nanos>,
    /// Creation time on the owner's clock.
    pub created: Nanos,
    /// Last change on the owner's clock.
    pub updated: Nanos,
    /// What made it.
    pub origin: LotOrigin,
    /// What is left: the sum of this lot's ledger entries, maintained by the ledger's `post`.
    pub remaining: Decimal,
    /// Whether the `credits_granted` entry has been posted.
    pub granted: bool,
    /// Whether an invoice has ever spent from it (a Stripe grant then cannot be voided).
    pub applied: bool,
    /// Scheduled entries not yet due, so that changes can cancel them.
    #[serde(skip)]
    pub(super) pending: Vec<(Domain, Nanos, Key)>,
}

impl Lot {
    /// Expired at `now` (expiry is inclusive: at `expires_at` the credit is gone).
    pub fn is_expired(&self, now: Nanos) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Usable at `now` for an invoice whose period ends at `period_end`.
    pub fn is_spendable(&self, period_end: Nanos) -> bool {
        self.granted
            && self.voided_at.is_none()
            && self.effective_at <= period_end
            && !self.is_expired(period_end)
            && self.remaining > Decimal::ZERO
    }

    /// The spending order: priority (none last), expiry (never last), promotional before paid,
    /// effective_at, then creation (the key).
    pub fn spend_order(a: &Lot, b: &Lot) -> Ordering {
        fn opt<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
            match (a, b) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
        let cat = |l: &Lot| (l.category == Category::Paid) as u8;
        opt(a.priority, b.priority)
            .then_with(|| opt(a.expires_at, b.expires_at))
            .then_with(|| cat(a).cmp(&cat(b)))
            .then_with(|| a.effective_at.cmp(&b.effective_at))
            .then_with(|| a.key.cmp(&b.key))
    }
}

/// What a new lot is made of; the customer must exist (the facade checks).
#[derive(Debug, Clone)]
pub struct NewLot {
    /// Owner.
    pub customer: Key,
    /// Currency.
    pub currency: Currency,
    /// Amount in minor units, positive.
    pub amount: Decimal,
    /// See [`Lot`].
    pub category: Category,
    /// See [`Lot`].
    pub applicability: Applicability,
    /// See [`Lot`].
    pub priority: Option<i64>,
    /// See [`Lot`].
    pub name: Option<String>,
    /// See [`Lot`].
    pub metadata: Metadata,
    /// Defaults to the owner's now.
    pub effective_at: Option<Nanos>,
    /// See [`Lot`].
    pub expires_at: Option<Nanos>,
    /// See [`Lot`].
    pub origin: LotOrigin,
}

#[cfg(test)]
impl NewLot {
    /// A grant made directly to `customer` of `amount` of `currency`, for metered prices, effective
    /// now, never expiring, with no name, priority or metadata: what the model's tests start from.
    pub(crate) fn plain(
        customer: Key,
        currency: Currency,
        amount: Decimal,
        category: Category,
    ) -> NewLot {
        NewLot {
            customer,
            currency,
            amount,
            category,
            applicability: Applicability::Metered,
            priority: None,
            name: None,
            metadata: Metadata::new(),
            effective_at: None,
            expires_at: None,
            origin: LotOrigin::Direct,
        }
    }
}

/// Why a lot refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LotError {
    /// No such lot.
    NotFound,
    /// Already voided.
    AlreadyVoided,
    /// Already expired.
    AlreadyExpired,
    /// Spent by an invoice, so it cannot be voided.
    AppliedToInvoice,
}

/// How many lots, from the end of a customer's spending order, a new lot is compared with before a
/// binary search places it.
const TAIL_WALK: usize = 8;

impl Tenant {
    /// A lot.
    pub fn lot(&self, key: Key) -> Option<&Lot> {
        self.lots.get(&key).map(|l| &**l)
    }

    /// The lots whose keys are in `range`, oldest first (walk it backwards for newest first).
    pub fn lots_in(&self, range: impl RangeBounds<Key>) -> impl DoubleEndedIterator<Item = &Lot> {
        self.lots.values_in(range).map(|l| &**l)
    }

    /// The keys of a customer's lots, oldest first.
    pub fn lot_keys_of(&self, customer: Key) -> KeyIndex<'_> {
        KeyIndex::of_keyed(self.lots_by_customer.get(&customer))
    }

    /// Creates a lot, schedules its grant and expiry, and posts whatever is already due.
    pub fn create_lot(&mut self, new: NewLot) -> Key {
        let key = self.next_key();
        self.create_lot_with_key(key, new)
    }

    /// As [`Tenant::create_lot`], with a key chosen by the caller (an application's lot has the
    /// application's key).
    pub(super) fn create_lot_with_key(&mut self, key: Key, new: NewLot) -> Key {
        let domain = self.domain_of(new.customer);
        let now = self.now_in(domain);
        let test_clock = match domain {
            Domain::Clock(c) => Some(c),
            Domain::Tenant => None,
        };
        let effective_at = new.effective_at.unwrap_or(now);
        if new.applicability.intersects(&Applicability::Metered) {
            // A currency the customer has metered credit in shows in its summary even at zero.
            self.metered_remaining
                .entry(new.customer)
                .or_default()
                .entry(new.currency)
                .or_default();
        }
        let lot = Lot {
            key,
            customer: new.customer,
            test_clock,
            currency: new.currency,
            amount: new.amount,
            category: new.category,
            applicability: self.shared_scope(new.applicability),
            priority: new.priority,
            name: new.name.map(std::sync::Arc::from),
            metadata: std::sync::Arc::new(new.metadata),
            effective_at,
            expires_at: new.expires_at,
            voided_at: None,
            created: now,
            updated: now,
            origin: new.origin,
            remaining: Decimal::ZERO,
            granted: false,
            applied: false,
            pending: Vec::new(),
        };
        self.lots_by_customer
            .entry(new.customer)
            .or_default()
            .add(key);
        // Its creation is recorded in this place, before what its grant posts, but once the steps
        // below are done (see `record_lot_created`).
        let mark = self.change_mark();
        self.lots.insert(key, Arc::new(lot));
        self.index_spend_order(key);
        // The common case, a lot effective now with nothing else due in its domain, is granted on
        // the spot: scheduling its Effective event only to find and remove it again at once was a
        // tenth of a create. Anything else (a future start, an expiry already due, other events due
        // that must run in time order with it) goes through the schedule.
        let grant_now = effective_at <= now
            && new.expires_at.is_none_or(|at| at > now)
            && !self.any_due(domain, now);
        if grant_now {
            // The key the event's handle would have used is drawn all the same, so that ids stay
            // as they were.
            self.next_key();
        } else {
            let h = self.schedule_event(domain, effective_at, Event::Effective(key));
            self.lot_mut(key).pending.push(h);
        }
        if let Some(at) = new.expires_at {
            let h = self.schedule_event(domain, at, Event::Expire(key));
            self.lot_mut(key).pending.push(h);
        }
        if grant_now {
            self.fire(Event::Effective(key), effective_at);
        } else {
            self.run_due(domain, now);
        }
        // Handles of events already posted are dead weight: a lot that became effective at once
        // would otherwise keep a four-slot Vec (256 bytes) for the rest of its life.
        let schedule = &self.schedule;
        if let Some(lot) = self.lots.get_mut(&key).map(Arc::make_mut) {
            lot.pending.retain(|h| schedule.contains_key(h));
            lot.pending.shrink_to_fit();
        }
        self.record_lot_created(mark, key, now);
        key
    }

    /// Sets or clears the expiry of a lot that is neither voided nor expired.
    pub fn set_lot_expiry(&mut self, key: Key, expires_at: Option<Nanos>) -> Result<(), LotError> {
        let (domain, now) = self.lot_domain_now(key)?;
        self.check_open(key, now)?;
        let before = self.lot_snapshot(key);
        self.cancel_events(key, |e| matches!(e, Event::Expire(_)));
        self.unindex_spend_order(key);
        let lot = self.lot_mut(key);
        lot.expires_at = expires_at;
        lot.updated = now;
        self.index_spend_order(key);
        self.record_lot_update(key, now, before);
        match expires_at {
            // Already past: written off now, effective when it expired. Scheduling it in the past
            // would write an entry older than entries already posted.
            Some(at) if at <= now => {
                let remaining = self.lots[&key].remaining;
                if remaining > Decimal::ZERO {
                    self.post_written(key, EntryKind::Expired, remaining, at, now, None);
                }
            }
            Some(at) => {
                let h = self.schedule_event(domain, at, Event::Expire(key));
                self.lot_mut(key).pending.push(h);
            }
            None => {}
        }
        Ok(())
    }

    /// Replaces a lot's metadata.
    pub fn set_lot_metadata(&mut self, key: Key, metadata: Metadata) -> Result<(), LotError> {
        let (_, now) = self.lot_domain_now(key)?;
        let before = self.lot_snapshot(key);
        let lot = self.lot_mut(key);
        lot.metadata = std::sync::Arc::new(metadata);
        lot.updated = now;
        self.record_lot_update(key, now, before);
        Ok(())
    }

    /// Expires a lot now: what remains is written off with an expiry entry. A voided lot may still be
    /// expired (it has nothing left, so no entry is written).
    pub fn expire_lot(&mut self, key: Key) -> Result<(), LotError> {
        let (_, now) = self.lot_domain_now(key)?;
        if self.lots[&key].is_expired(now) {
            return Err(LotError::AlreadyExpired);
        }
        // Nothing further is due for this lot: it never becomes effective if it has not yet.
        let before = self.lot_snapshot(key);
        self.cancel_events(key, |_| true);
        self.unindex_spend_order(key);
        let lot = self.lot_mut(key);
        lot.expires_at = Some(now);
        lot.updated = now;
        self.index_spend_order(key);
        self.record_lot_update(key, now, before);
        self.write_off(key, EntryKind::Expired, now);
        Ok(())
    }

    /// Voids a lot now: what remains is written off with a void entry and nothing more is granted.
    pub fn void_lot(&mut self, key: Key) -> Result<(), LotError> {
        let (_, now) = self.lot_domain_now(key)?;
        let lot = &self.lots[&key];
        if lot.voided_at.is_some() {
            return Err(LotError::AlreadyVoided);
        }
        if lot.applied {
            return Err(LotError::AppliedToInvoice);
        }
        let before = self.lot_snapshot(key);
        self.cancel_events(key, |_| true);
        let lot = self.lot_mut(key);
        lot.voided_at = Some(now);
        lot.updated = now;
        self.record_lot_update(key, now, before);
        self.write_off(key, EntryKind::Voided, now);
        Ok(())
    }

    /// Fails unless the lot can still change: not voided, not expired.
    fn check_open(&self, key: Key, now: Nanos) -> Result<(), LotError> {
        let lot = self.lots.get(&key).ok_or(LotError::NotFound)?;
        if lot.voided_at.is_some() {
            return Err(LotError::AlreadyVoided);
        }
        if lot.is_expired(now) {
            return Err(LotError::AlreadyExpired);
        }
        Ok(())
    }

    /// The lot's clock domain and its now, after posting anything due there.
    fn lot_domain_now(&mut self, key: Key) -> Result<(Domain, Nanos), LotError> {
        let lot = self.lots.get(&key).ok_or(LotError::NotFound)?;
        let domain = match lot.test_clock {
            Some(c) if self.test_clocks.contains_key(&c) => Domain::Clock(c),
            _ => Domain::Tenant,
        };
        let now = self.now_in(domain);
        self.run_due(domain, now);
        Ok((domain, now))
    }

    /// The lot `key`, which exists, as it is now.
    fn lot_snapshot(&self, key: Key) -> Snapshot {
        Snapshot::Lot(self.lots[&key].clone())
    }

    /// Records that the lot `key` was updated at `at` from `before`.
    fn record_lot_update(&mut self, key: Key, at: Nanos, before: Snapshot) {
        let after = self.lot_snapshot(key);
        self.record(ChangeKind::Updated, at, after, Some(before));
    }

    /// `scope`, sharing the price list of the last grant scoped to the same prices. Grants are
    /// mostly scoped to a handful of a catalogue's prices, and a list of two prices of their own
    /// was about a fifth of a grant's memory; the copy made for this grant is dropped while it is
    /// still fresh, where a kept one would have been fresh memory every grant.
    fn shared_scope(&mut self, scope: Applicability) -> Applicability {
        let Applicability::Prices(list) = scope else {
            return scope;
        };
        match &self.last_scope {
            Some(last) if **last == *list => Applicability::Prices(last.clone()),
            _ => {
                self.last_scope = Some(list.clone());
                Applicability::Prices(list)
            }
        }
    }

    /// The lot `key`, which exists, to change: copied first if a snapshot still holds it.
    pub(super) fn lot_mut(&mut self, key: Key) -> &mut Lot {
        Arc::make_mut(
            self.lots
                .get_mut(&key)
                .expect("lot exists: callers look it up first"),
        )
    }

    /// Removes scheduled events of a lot that match `which`.
    fn cancel_events(&mut self, key: Key, which: impl Fn(&Event) -> bool) {
        let handles = std::mem::take(&mut self.lot_mut(key).pending);
        let mut keep = Vec::new();
        for h in handles {
            match self.schedule.get(&h) {
                Some(e) if which(e) => {
                    self.schedule.remove(&h);
                }
                Some(_) => keep.push(h),
                None => {}
            }
        }
        self.lot_mut(key).pending = keep;
    }

    /// A customer's lots, in key (creation) order.
    pub fn lots_of(&self, customer: Key) -> impl DoubleEndedIterator<Item = &Lot> {
        self.lot_keys_of(customer)
            .into_iter()
            .filter_map(|k| self.lot(k))
    }

    /// The first of a customer's lots in spending order among those `keep` accepts: what
    /// [`Tenant::lots_in_spend_order`] would put first, found in one pass without collecting or
    /// sorting (an invoice line is usually covered by its first lot).
    pub fn first_in_spend_order(&self, customer: Key, keep: impl Fn(&Lot) -> bool) -> Option<Key> {
        self.spending(customer).find(|l| keep(l)).map(|l| l.key)
    }

    /// Lots of a customer sorted in spending order, filtered by `keep`.
    pub fn lots_in_spend_order(&self, customer: Key, keep: impl Fn(&Lot) -> bool) -> Vec<Key> {
        self.spending(customer)
            .filter(|l| keep(l))
            .map(|l| l.key)
            .collect()
    }

    /// A customer's lots in spending order.
    fn spending(&self, customer: Key) -> impl Iterator<Item = &Lot> {
        self.spend_order
            .get(&customer)
            .into_iter()
            .flatten()
            .filter_map(|k| self.lot(*k))
    }

    /// Where the lot `lot` stands in `order` (`Err`: where it would).
    fn spend_position(&self, order: &[Key], lot: &Lot) -> Result<usize, usize> {
        order.binary_search_by(|k| Lot::spend_order(&self.lots[k], lot))
    }

    /// Puts the lot `key` in its customer's spending order (it must not be there).
    fn index_spend_order(&mut self, key: Key) {
        let lot = &self.lots[&key];
        let order = self
            .spend_order
            .get(&lot.customer)
            .map_or(&[][..], Vec::as_slice);
        // A new lot nearly always sorts last, or a few places before it (requests that read the
        // clock in one order and reach the world in another), among lots still in the cache: those
        // are walked; a binary search would visit lots long cold.
        let mut at = order.len();
        while at > 0
            && order.len() - at < TAIL_WALK
            && Lot::spend_order(&self.lots[&order[at - 1]], lot) == Ordering::Greater
        {
            at -= 1;
        }
        if order.len() - at == TAIL_WALK {
            at = self.spend_position(&order[..at], lot).unwrap_or_else(|i| i);
        }
        let customer = lot.customer;
        self.spend_order
            .entry(customer)
            .or_default()
            .insert(at, key);
    }

    /// Takes the lot `key` out of its customer's spending order, before what orders it changes.
    fn unindex_spend_order(&mut self, key: Key) {
        let lot = &self.lots[&key];
        let customer = lot.customer;
        let order = self
            .spend_order
            .get(&customer)
            .map_or(&[][..], Vec::as_slice);
        if let Ok(at) = self.spend_position(order, lot) {
            if let Some(order) = self.spend_order.get_mut(&customer) {
                order.remove(at);
            }
        }
    }

    /// Rebuilds every customer's spending order from the lots (a world read from a document).
    pub(super) fn rebuild_spend_order(&mut self) {
        let mut orders: super::tenant::KeyMap<Vec<Key>> = Default::default();
        for lot in self.lots.values() {
            orders.entry(lot.customer).or_default().push(lot.key);
        }
        for order in orders.values_mut() {
            order.sort_by(|a, b| Lot::spend_order(&self.lots[a], &self.lots[b]));
        }
        self.spend_order = orders;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewCustomer;

    fn scoped(ids: &[&str]) -> Applicability {
        Applicability::Prices(ids.iter().map(|&id| ScopedPrice::from(id)).collect())
    }

    fn prices(t: &Tenant, key: Key) -> Arc<[ScopedPrice]> {
        match &t.lot(key).expect("the lot").applicability {
            Applicability::Prices(list) => list.clone(),
            Applicability::Metered => panic!("a lot scoped to prices"),
        }
    }

    #[test]
    fn grants_scoped_to_the_same_prices_share_one_list() {
        let mut t = Tenant::new("sk_test_scopes", Some(1));
        let usd = Currency::parse("usd").expect("a currency");
        let customer = t.create_customer(NewCustomer::default());
        let mut grant = |scope| {
            t.create_lot(NewLot {
                applicability: scope,
                ..NewLot::plain(customer, usd, 100.into(), Category::Paid)
            })
        };
        let first = grant(scoped(&["price_a", "price_b"]));
        let same = grant(scoped(&["price_a", "price_b"]));
        let reversed = grant(scoped(&["price_b", "price_a"]));
        let metered = grant(Applicability::Metered);
        let reversed_again = grant(scoped(&["price_b", "price_a"]));
        let ids = |list: &[ScopedPrice]| list.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert!(Arc::ptr_eq(&prices(&t, first), &prices(&t, same)));
        // Another order is another scope: its own list, in its own order.
        assert!(!Arc::ptr_eq(&prices(&t, first), &prices(&t, reversed)));
        assert_eq!(ids(&prices(&t, first)), ["price_a", "price_b"]);
        assert_eq!(ids(&prices(&t, reversed)), ["price_b", "price_a"]);
        // A grant for every metered price in between does not stop the next from sharing.
        assert!(matches!(
            t.lot(metered).expect("the lot").applicability,
            Applicability::Metered
        ));
        assert!(Arc::ptr_eq(
            &prices(&t, reversed),
            &prices(&t, reversed_again)
        ));
        assert_eq!(t.check_indexes(), Ok(()));
    }
}
