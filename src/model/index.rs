//! Read-only views of a tenant's ordered indexes, and the key ranges lists walk them with.
//!
//! The tenant keeps its objects in maps by key and groups them in ordered sets of keys (a
//! customer's lots, the customers on one test clock, a lot's ledger entries, …). Keys are
//! time-ordered, so every such set is also in creation order and a page of a list is a range walk:
//! O(log n + limit). Facades read a set through a [`KeyIndex`], which can be walked over any key
//! range in either direction but never changed, so that the model alone keeps its indexes in step
//! with its objects.

use std::collections::{btree_set, BTreeMap, BTreeSet, HashMap};
use std::ops::{Bound, RangeBounds};

use rust_decimal::Decimal;

use super::keyed::Keyed;
use super::{Applicability, Currency, Lot, Tenant};
use crate::ids::Key;

/// A range of keys as `(lower, upper)` bounds.
pub(super) type KeyRange = (Bound<Key>, Bound<Key>);

/// The bounds of `range`, or an empty range where they cross: a B-tree's `range` panics on a start
/// past the end (or an empty range excluded at both ends), which a cursor and a filter together
/// can ask for.
pub(super) fn bounds(range: impl RangeBounds<Key>) -> KeyRange {
    let lo = range.start_bound().cloned();
    let hi = range.end_bound().cloned();
    let empty = match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    };
    if empty {
        (Bound::Included(0), Bound::Excluded(0))
    } else {
        (lo, hi)
    }
}

/// The objects of `map` whose keys are in `range`, in key order; a crossed range is empty.
pub(super) fn values_in<V>(
    map: &BTreeMap<Key, V>,
    range: impl RangeBounds<Key>,
) -> impl DoubleEndedIterator<Item = &V> {
    map.range(bounds(range)).map(|(_, v)| v)
}

/// One group of keys of a tenant (a customer's lots, the live customers on a test clock, a lot's
/// ledger entries, …) in key order, which is creation order. Copying it is free; it borrows the
/// tenant, so it cannot outlive a change.
#[derive(Debug, Clone, Copy)]
pub struct KeyIndex<'a>(Group<'a>);

#[derive(Debug, Clone, Copy)]
enum Group<'a> {
    /// No set holds the group: it is empty.
    Empty,
    /// A set of its own.
    Set(&'a BTreeSet<Key>),
    /// A sorted vector of its own.
    Keyed(&'a Keyed<()>),
    /// The second halves of the pairs `(owner, key)` of one owner, in a set shared by all owners.
    Pairs(&'a BTreeSet<(Key, Key)>, Key),
}

impl<'a> KeyIndex<'a> {
    /// A group held in a set of its own (none: the group is empty).
    pub(super) fn of(set: Option<&'a BTreeSet<Key>>) -> Self {
        KeyIndex(set.map_or(Group::Empty, Group::Set))
    }

    /// A group held in a sorted vector of its own (none: the group is empty).
    pub(super) fn of_keyed(set: Option<&'a Keyed<()>>) -> Self {
        KeyIndex(set.map_or(Group::Empty, Group::Keyed))
    }

    /// The group of `owner` in a set of `(owner, key)` pairs.
    pub(super) fn of_pairs(set: &'a BTreeSet<(Key, Key)>, owner: Key) -> Self {
        KeyIndex(Group::Pairs(set, owner))
    }

    /// Every key of the group, oldest first (walk it backwards for newest first).
    pub fn iter(&self) -> KeyIter<'a> {
        self.range(..)
    }

    /// The keys of the group within `range`, oldest first. A crossed range is empty, never a panic.
    pub fn range(&self, range: impl RangeBounds<Key>) -> KeyIter<'a> {
        let (lo, hi) = bounds(range);
        KeyIter(match self.0 {
            Group::Empty => Walk::Empty,
            Group::Set(set) => Walk::Set(set.range((lo, hi))),
            Group::Keyed(set) => Walk::Keyed(set.range((lo, hi)).iter()),
            Group::Pairs(set, owner) => {
                let pair = |b: Bound<Key>, unbounded: Key| match b {
                    Bound::Included(k) => Bound::Included((owner, k)),
                    Bound::Excluded(k) => Bound::Excluded((owner, k)),
                    Bound::Unbounded => Bound::Included((owner, unbounded)),
                };
                Walk::Pairs(set.range((pair(lo, Key::MIN), pair(hi, Key::MAX))))
            }
        })
    }

    /// Whether `key` is in the group.
    pub fn contains(&self, key: Key) -> bool {
        match self.0 {
            Group::Empty => false,
            Group::Set(set) => set.contains(&key),
            Group::Keyed(set) => set.contains(&key),
            Group::Pairs(set, owner) => set.contains(&(owner, key)),
        }
    }

    /// How many keys the group holds.
    pub fn len(&self) -> usize {
        match self.0 {
            Group::Empty => 0,
            Group::Set(set) => set.len(),
            Group::Keyed(set) => set.len(),
            Group::Pairs(..) => self.iter().count(),
        }
    }

    /// Whether the group holds no key.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl<'a> IntoIterator for KeyIndex<'a> {
    type Item = Key;
    type IntoIter = KeyIter<'a>;

    fn into_iter(self) -> KeyIter<'a> {
        self.iter()
    }
}

/// A walk over part of a [`KeyIndex`], in either direction.
#[derive(Debug, Clone)]
pub struct KeyIter<'a>(Walk<'a>);

#[derive(Debug, Clone)]
enum Walk<'a> {
    Empty,
    Set(btree_set::Range<'a, Key>),
    Keyed(std::slice::Iter<'a, (Key, ())>),
    Pairs(btree_set::Range<'a, (Key, Key)>),
}

impl Iterator for KeyIter<'_> {
    type Item = Key;

    fn next(&mut self) -> Option<Key> {
        match &mut self.0 {
            Walk::Empty => None,
            Walk::Set(r) => r.next().copied(),
            Walk::Keyed(r) => r.next().map(|&(k, _)| k),
            Walk::Pairs(r) => r.next().map(|&(_, k)| k),
        }
    }
}

impl DoubleEndedIterator for KeyIter<'_> {
    fn next_back(&mut self) -> Option<Key> {
        match &mut self.0 {
            Walk::Empty => None,
            Walk::Set(r) => r.next_back().copied(),
            Walk::Keyed(r) => r.next_back().map(|&(k, _)| k),
            Walk::Pairs(r) => r.next_back().map(|&(_, k)| k),
        }
    }
}

impl Tenant {
    /// Checks that every index agrees with the objects it indexes: each object is in exactly the
    /// groups its fields place it in, no group names an object that is not there, and the running
    /// sums equal what they sum. The first disagreement found is described in the error.
    ///
    /// Nothing in the emulator needs this at run time (the commands keep the indexes in step); it
    /// is the check property tests and fuzzers run after every step.
    pub fn check_indexes(&self) -> Result<(), String> {
        self.check_customer_indexes()?;
        self.check_ledger_indexes()?;
        self.check_invoice_lists()?;
        self.check_billing_indexes()?;
        self.check_catalog_indexes()?;
        self.check_priced_indexes()?;
        self.check_meter_indexes()?;
        self.check_alert_indexes()?;
        self.check_invoice_item_indexes()
    }

    fn check_customer_indexes(&self) -> Result<(), String> {
        let (mut listed, mut emailed, mut identified) = (0, 0, 0);
        for c in self.customers.values().filter(|c| !c.deleted) {
            let on_clock = match c.test_clock {
                Some(clock) => self.customers_on_clock(clock),
                None => self.customers_off_clocks(),
            };
            ensure(on_clock.contains(c.key), || {
                format!("customer {} missing from its clock's list", c.key)
            })?;
            listed += 1;
            if let Some(email) = &c.email {
                ensure(self.customers_with_email(email).contains(c.key), || {
                    format!("customer {} missing from its email's list", c.key)
                })?;
                emailed += 1;
            }
            if let Some(id) = &c.external_id {
                ensure(self.customer_with_external_id(id) == Some(c.key), || {
                    format!("customer {} not found by its external id", c.key)
                })?;
                identified += 1;
            }
        }
        let on_clocks: usize = self.customers_by_clock.values().map(BTreeSet::len).sum();
        let by_email: usize = self.customers_by_email.values().map(BTreeSet::len).sum();
        ensure(self.customers_unclocked.len() + on_clocks == listed, || {
            "the clock lists hold customers that are not live".into()
        })?;
        ensure(by_email == emailed, || {
            "the email lists hold customers that are not live".into()
        })?;
        ensure(self.customers_by_external_id.len() == identified, || {
            "the external ids name customers that are not live".into()
        })
    }

    fn check_ledger_indexes(&self) -> Result<(), String> {
        let lots_by_customer: usize = self.lots_by_customer.values().map(Keyed::len).sum();
        ensure(lots_by_customer == self.lots.len(), || {
            format!(
                "{lots_by_customer} lots listed per customer, {} lots",
                self.lots.len()
            )
        })?;
        let mut metered: super::tenant::KeyMap<BTreeMap<Currency, Decimal>> = Default::default();
        for lot in self.lots.values() {
            ensure(self.lot_keys_of(lot.customer).contains(lot.key), || {
                format!("lot {} missing from its customer's lots", lot.key)
            })?;
            if lot.applicability.intersects(&Applicability::Metered) {
                *metered
                    .entry(lot.customer)
                    .or_default()
                    .entry(lot.currency)
                    .or_default() += lot.remaining;
            }
        }
        let ordered: usize = self.spend_order.values().map(Vec::len).sum();
        ensure(ordered == self.lots.len(), || {
            format!("{ordered} lots in spending order, {} lots", self.lots.len())
        })?;
        for (customer, order) in &self.spend_order {
            for key in order {
                ensure(
                    self.lot(*key).is_some_and(|l| l.customer == *customer),
                    || format!("lot {key} in the spending order of {customer}, not theirs"),
                )?;
            }
            for pair in order.windows(2) {
                let (a, b) = (&self.lots[&pair[0]], &self.lots[&pair[1]]);
                ensure(Lot::spend_order(a, b) == std::cmp::Ordering::Less, || {
                    format!("lots {} and {} out of spending order", a.key, b.key)
                })?;
            }
        }
        // Both ways round: a sum kept for nothing, and lots whose sum is not kept.
        let sum_of =
            |sums: &super::tenant::KeyMap<BTreeMap<Currency, Decimal>>, c: &Key, cur: &Currency| {
                sums.get(c)
                    .and_then(|m| m.get(cur))
                    .copied()
                    .unwrap_or_default()
            };
        for (customer, currency) in self
            .metered_remaining
            .iter()
            .chain(&metered)
            .flat_map(|(c, sums)| sums.keys().map(move |cur| (c, cur)))
        {
            let kept = sum_of(&self.metered_remaining, customer, currency);
            let held = sum_of(&metered, customer, currency);
            ensure(kept == held, || {
                format!("metered remaining of {customer} in {currency}: {kept}, lots hold {held}")
            })?;
        }
        let by_customer: usize = self.entries_by_customer.values().map(Keyed::len).sum();
        ensure(by_customer == self.entries.len(), || {
            format!(
                "{by_customer} entries listed per customer, {} entries",
                self.entries.len()
            )
        })?;
        let by_lot: usize = self.entries_by_lot.values().map(Keyed::len).sum();
        ensure(by_lot == self.entries.len(), || {
            format!(
                "{by_lot} entries listed per lot, {} entries",
                self.entries.len()
            )
        })?;
        for e in self.entries.values() {
            ensure(self.entry_keys_of_lot(e.lot).contains(e.key), || {
                format!("entry {} missing from its lot's entries", e.key)
            })?;
            ensure(self.entry_keys_of(e.customer).contains(e.key), || {
                format!("entry {} missing from its customer's entries", e.key)
            })?;
        }
        Ok(())
    }

    fn check_invoice_lists(&self) -> Result<(), String> {
        let mut places = 0;
        for inv in self.invoices.values() {
            for place in inv.list_entries() {
                ensure(self.invoice_lists.contains(&place), || {
                    format!("invoice {} missing from {:?}", inv.key, place.0)
                })?;
                places += 1;
            }
        }
        ensure(places == self.invoice_lists.len(), || {
            format!(
                "{} places in the invoice lists, {places} held by invoices",
                self.invoice_lists.len()
            )
        })
    }

    fn check_billing_indexes(&self) -> Result<(), String> {
        let b = &self.billing;
        let count = |index: &HashMap<Key, BTreeSet<Key>>| -> usize {
            index.values().map(BTreeSet::len).sum()
        };
        for s in b.subscriptions.values() {
            ensure(
                self.subscription_keys_of(s.customer).contains(s.key),
                || format!("subscription {} missing from its customer's", s.key),
            )?;
        }
        ensure(
            count(&b.subscriptions_by_customer) == b.subscriptions.len(),
            || "the customers' subscriptions name unknown ones".into(),
        )?;
        let (mut of_plans, mut of_subscriptions) = (0, 0);
        for r in b.rules.values() {
            if let Some(plan) = r.plan {
                ensure(self.grant_rule_keys_of_plan(plan).contains(r.key), || {
                    format!("grant rule {} missing from its plan's", r.key)
                })?;
                of_plans += 1;
            }
            if let Some(sub) = r.subscription {
                ensure(
                    self.grant_rule_keys_of_subscription(sub).contains(r.key),
                    || format!("grant rule {} missing from its subscription's", r.key),
                )?;
                of_subscriptions += 1;
            }
        }
        ensure(count(&b.rules_by_plan) == of_plans, || {
            "the plans' grant rules name unknown ones".into()
        })?;
        ensure(count(&b.rules_by_subscription) == of_subscriptions, || {
            "the subscriptions' grant rules name unknown ones".into()
        })?;
        let mut open = 0;
        for a in b.applications.values() {
            ensure(
                self.application_keys_of_rule(a.grant).contains(a.key),
                || format!("application {} missing from its rule's", a.key),
            )?;
            let listed = self
                .open_application_keys_of(a.subscription)
                .contains(a.key);
            ensure(listed == a.status.is_open(), || {
                format!(
                    "application {} is {:?} but listed open: {listed}",
                    a.key, a.status
                )
            })?;
            open += usize::from(listed);
        }
        ensure(
            b.applications_by_rule
                .values()
                .map(BTreeSet::len)
                .sum::<usize>()
                == b.applications.len(),
            || "the rules' applications name unknown ones".into(),
        )?;
        ensure(count(&b.open_applications_by_subscription) == open, || {
            "the open applications name unknown ones".into()
        })?;
        for w in b.wallets.values() {
            ensure(
                b.wallets_by_customer
                    .get(&w.customer)
                    .is_some_and(|s| s.contains(&w.key)),
                || format!("wallet {} missing from its customer's", w.key),
            )?;
        }
        ensure(count(&b.wallets_by_customer) == b.wallets.len(), || {
            "the customers' wallets name unknown ones".into()
        })?;
        for (lot, wallet) in &b.lot_wallet {
            let fits = match (self.lots.get(lot), b.wallets.get(wallet)) {
                (Some(l), Some(w)) => l.customer == w.customer && l.currency == w.currency,
                _ => false,
            };
            ensure(fits, || {
                format!("lot {lot} is put in wallet {wallet}, which cannot hold it")
            })?;
        }
        Ok(())
    }
}

/// `Ok` when `holds`, else the error `why` describes.
fn ensure(holds: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if holds {
        Ok(())
    } else {
        Err(why())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::periods::Period;
    use crate::model::{
        BillingCadence, Cadence, Category, ExpiryRule, GrantScope, Metadata, NewCustomer,
        NewGrantRule, NewInvoiceLine, NewLot, NewPlan, NewSubscription,
    };
    use crate::time::Nanos;
    use std::ops::Bound::{Excluded, Included, Unbounded};

    #[test]
    fn a_group_walks_any_range_and_never_panics_on_a_crossed_one() {
        let set: BTreeSet<Key> = [2, 4, 6, 8].into_iter().collect();
        let group = KeyIndex::of(Some(&set));
        let walk = |r: KeyRange| group.range(r).collect::<Vec<_>>();
        assert_eq!(walk((Excluded(2), Included(6))), [4, 6]);
        assert_eq!(group.range(..).rev().collect::<Vec<_>>(), [8, 6, 4, 2]);
        assert_eq!(walk((Included(6), Included(4))), Vec::<Key>::new());
        assert_eq!(walk((Excluded(4), Excluded(4))), Vec::<Key>::new());
        assert!(group.contains(4) && !group.contains(5));
        assert_eq!((group.len(), group.is_empty()), (4, false));
        let none = KeyIndex::of(None);
        assert_eq!(
            (none.len(), none.is_empty(), none.contains(2)),
            (0, true, false)
        );
        assert_eq!(none.iter().next(), None);
    }

    #[test]
    fn an_owners_pairs_are_a_group_of_their_own() {
        let pairs: BTreeSet<(Key, Key)> = [(1, 5), (1, 9), (2, 0), (2, 3), (2, Key::MAX), (3, 1)]
            .into_iter()
            .collect();
        let two = KeyIndex::of_pairs(&pairs, 2);
        assert_eq!(two.iter().collect::<Vec<_>>(), [0, 3, Key::MAX]);
        assert_eq!(
            two.range((Excluded(0), Unbounded)).collect::<Vec<_>>(),
            [3, Key::MAX]
        );
        assert_eq!(two.range((Unbounded, Excluded(3))).collect::<Vec<_>>(), [0]);
        assert_eq!(two.range((Excluded(Key::MAX), Unbounded)).next(), None);
        assert_eq!(two.range((Included(4), Included(1))).next(), None);
        assert!(two.contains(3) && !two.contains(5));
        assert_eq!(two.len(), 3);
        assert!(KeyIndex::of_pairs(&pairs, 4).is_empty());
    }

    #[test]
    fn values_in_a_crossed_range_are_none() {
        let map: BTreeMap<Key, &str> = [(1, "a"), (2, "b"), (3, "c")].into_iter().collect();
        let got: Vec<&&str> = values_in(&map, (Included(2), Unbounded)).collect();
        assert_eq!(got, [&"b", &"c"]);
        assert_eq!(values_in(&map, (Included(3), Excluded(1))).next(), None);
    }

    /// A world with a customer, a lot granted directly, a plan with a monthly rule that a
    /// subscription copied and applied once (a lot in a wallet, the next application open), and an
    /// invoice, whose indexes agree.
    fn world() -> (Tenant, Key) {
        let mut t = Tenant::new("sk_test_indexes", Some(3));
        let usd = Currency::parse("usd").expect("a currency");
        let customer = t.create_customer(NewCustomer {
            email: Some("ada@example.com".into()),
            external_id: Some("ada".into()),
            ..NewCustomer::default()
        });
        t.create_lot(NewLot::plain(customer, usd, 500.into(), Category::Paid));
        let line = NewInvoiceLine {
            amount: 200,
            price: None,
            description: None,
        };
        let plan = t.create_plan(NewPlan {
            name: "Pro".into(),
            ..NewPlan::default()
        });
        t.create_grant_rule(NewGrantRule {
            name: "Monthly".into(),
            scope: GrantScope::Plan,
            plan: Some(plan),
            subscription: None,
            credits: 3.into(),
            currency: None,
            older_form: false,
            cadence: Cadence::Recurring {
                period: Period::Monthly,
                count: 1,
            },
            expiry: ExpiryRule::Never,
            priority: None,
            metadata: Metadata::new(),
            start: None,
            end: None,
            conversion_rate: Some(2.into()),
            topup_conversion_rate: None,
        });
        t.create_subscription(NewSubscription {
            customer,
            plan,
            currency: usd,
            cadence: BillingCadence::Recurring,
            period: Period::Monthly,
            period_count: 1,
            start: None,
            end: None,
            lookup_key: None,
            metadata: Metadata::new(),
            grants: None,
        });
        t.create_invoice(customer, usd, vec![line]);
        (t, customer)
    }

    #[test]
    fn every_index_that_drifts_from_its_objects_is_found() {
        let (t, customer) = world();
        assert_eq!(t.check_indexes(), Ok(()));
        // Everything the breaks below undo is there to undo.
        assert_eq!(t.lot_keys_of(customer).len(), 2);
        assert_eq!(t.wallets_of(customer).len(), 1);
        assert_eq!(t.subscription_keys_of(customer).len(), 1);
        let sub = t
            .subscription_keys_of(customer)
            .iter()
            .next()
            .unwrap_or_default();
        assert_eq!(t.open_application_keys_of(sub).len(), 1);
        /// A named way to make one index disagree with the objects.
        type Break = (&'static str, fn(&mut Tenant));
        let breaks: Vec<Break> = vec![
            ("email", |t| t.customers_by_email.clear()),
            ("clock", |t| t.customers_unclocked.clear()),
            ("external id", |t| t.customers_by_external_id.clear()),
            ("lots", |t| t.lots_by_customer.clear()),
            ("spending order", |t| t.spend_order.clear()),
            ("entries per lot", |t| t.entries_by_lot.clear()),
            ("entries per customer", |t| t.entries_by_customer.clear()),
            ("invoice lists", |t| t.invoice_lists.clear()),
            ("metered sums", |t| t.metered_remaining.clear()),
            ("subscriptions", |t| {
                t.billing.subscriptions_by_customer.clear()
            }),
            ("plan rules", |t| t.billing.rules_by_plan.clear()),
            ("subscription rules", |t| {
                t.billing.rules_by_subscription.clear()
            }),
            ("applications", |t| t.billing.applications_by_rule.clear()),
            ("open applications", |t| {
                t.billing.open_applications_by_subscription.clear()
            }),
            ("wallets", |t| t.billing.wallets_by_customer.clear()),
            ("lot wallets", |t| {
                let wallet = t.billing.wallets.keys().next().copied().unwrap_or_default();
                t.billing.lot_wallet.insert(Key::MAX, wallet);
            }),
        ];
        for (what, break_it) in breaks {
            let (mut t, _) = world();
            break_it(&mut t);
            assert!(t.check_indexes().is_err(), "{what} drifted unnoticed");
        }
    }

    #[test]
    fn the_spending_order_follows_expiries_as_they_change() {
        let (mut t, customer) = world();
        let usd = Currency::parse("usd").expect("a currency");
        let now = t.tenant_now();
        let lot = |t: &mut Tenant, expires_at: Option<Nanos>| {
            t.create_lot(new_lot(customer, usd, expires_at))
        };
        let day = 86_400 * 1_000_000_000;
        let late = lot(&mut t, Some(now + 3 * day));
        let early = lot(&mut t, Some(now + day));
        let never = lot(&mut t, None);
        let order = |t: &Tenant| t.lots_in_spend_order(customer, |l| l.key != 0);
        let first_two = order(&t)[..2].to_vec();
        assert_eq!(
            first_two,
            vec![early, late],
            "the earlier expiry first, inserted second"
        );
        assert_eq!(t.check_indexes(), Ok(()));
        // The lot that never expired now expires first; the earliest no longer expires.
        t.set_lot_expiry(never, Some(now + day / 2))
            .expect("open lot");
        t.set_lot_expiry(early, None).expect("open lot");
        assert_eq!(order(&t)[..2].to_vec(), vec![never, late]);
        assert_eq!(
            t.first_in_spend_order(customer, |l| l.key != never),
            Some(late)
        );
        t.expire_lot(late).expect("open lot");
        assert_eq!(order(&t)[0], late, "expired now: the earliest expiry");
        assert_eq!(t.check_indexes(), Ok(()));
        let unsorted = order(&t);
        let mut sorted = unsorted.clone();
        sorted.sort_by(|a, b| Lot::spend_order(&t.lots[a], &t.lots[b]));
        assert_eq!(unsorted, sorted);
    }

    #[test]
    fn a_new_lot_takes_its_place_at_any_distance_from_the_end() {
        let (mut t, customer) = world();
        let usd = Currency::parse("usd").expect("a currency");
        let now = t.tenant_now();
        let day = 86_400 * 1_000_000_000;
        // Lots expiring on days 100, 200, …, 2000; then one expiring between each pair, from the
        // last pair (one place before the end) to before the first (39 places), so that the
        // new lot is placed both by the walk from the end and by the binary search behind it.
        let mut expected = Vec::new();
        for i in 1..=20 {
            expected.push((
                i * 100,
                t.create_lot(new_lot(customer, usd, Some(now + i * 100 * day))),
            ));
        }
        for i in (0..20).rev() {
            let at = i * 100 + 50;
            expected.push((
                at,
                t.create_lot(new_lot(customer, usd, Some(now + at * day))),
            ));
        }
        expected.sort();
        let keys: Vec<Key> = expected.into_iter().map(|(_, k)| k).collect();
        // The world's own lots never expire: they come after these.
        let ours = t.lots_in_spend_order(customer, |l| keys.contains(&l.key));
        assert_eq!(ours, keys);
        assert_eq!(t.check_indexes(), Ok(()));
    }

    fn new_lot(customer: Key, currency: Currency, expires_at: Option<Nanos>) -> NewLot {
        NewLot {
            expires_at,
            ..NewLot::plain(customer, currency, 100.into(), Category::Promotional)
        }
    }

    #[test]
    fn a_deleted_customer_leaves_every_customer_index() {
        let (mut t, customer) = world();
        assert_eq!(t.customer_with_external_id("ada"), Some(customer));
        assert!(t.delete_customer(customer));
        assert_eq!(t.customer_with_external_id("ada"), None);
        assert!(t.customers_with_email("ada@example.com").is_empty());
        assert!(t.customers_off_clocks().is_empty());
        assert!(t.customer(customer).is_some_and(|c| c.deleted));
        assert_eq!(t.check_indexes(), Ok(()));
    }
}
