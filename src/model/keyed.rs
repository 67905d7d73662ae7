//! Objects by key in one vector sorted by key: the store for what a world only ever adds, in key
//! order (lots, ledger entries, a customer's lots and entries).
//!
//! Keys are handed out in ascending order, so a new object nearly always goes at the end: a push,
//! where a B-tree walks down to its rightmost leaf and moves or splits it (about 800 instructions
//! an insert at a few hundred thousand objects), and leaves its leaves half full. Lookups start at
//! the end too, galloping back a little way before they search, because what a request looks up
//! is mostly what it has just made: those probes stay in lines the request has touched, where a
//! binary search would visit lines far from them. Nothing is ever removed, except all
//! at once when the world is dropped.

use std::ops::{Bound, Index, RangeBounds};

use crate::ids::Key;

/// How far back from the end a lookup gallops (in items, doubling from one) before it searches
/// the rest: a request's own objects are within it.
const GALLOP: usize = 64;

/// Values by [`Key`], in key order. `Keyed<()>` is a set of keys.
#[derive(Debug, Clone)]
pub struct Keyed<V> {
    items: Vec<(Key, V)>,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed { items: Vec::new() }
    }
}

impl<V> Keyed<V> {
    /// Where `key` is (`Ok`), or where it would go (`Err`).
    fn find(&self, key: Key) -> Result<usize, usize> {
        let items = &self.items;
        // Every item at `hi` or after has a key above `key`.
        let mut hi = items.len();
        let mut step = 1;
        let lo = loop {
            // Far back: a plain binary search over the rest, whose first probes fall on the same
            // few lines every time (a B-tree's upper levels, in effect), where galloping on would
            // probe lines that move with the end.
            if hi == 0 || step > GALLOP {
                break 0;
            }
            let probe = hi.saturating_sub(step);
            if items[probe].0 <= key {
                break probe;
            }
            hi = probe;
            step *= 2;
        };
        match items[lo..hi].binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => Ok(lo + i),
            Err(i) => Err(lo + i),
        }
    }

    /// Adds `value` under `key`; returns the value it replaces, if `key` was there.
    pub fn insert(&mut self, key: Key, value: V) -> Option<V> {
        if self.items.last().is_none_or(|(last, _)| *last < key) {
            self.items.push((key, value));
            return None;
        }
        match self.find(key) {
            Ok(at) => Some(std::mem::replace(&mut self.items[at].1, value)),
            Err(at) => {
                self.items.insert(at, (key, value));
                None
            }
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &Key) -> Option<&V> {
        self.find(*key).ok().map(|at| &self.items[at].1)
    }

    /// The value under `key`, to change.
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        self.find(*key).ok().map(|at| &mut self.items[at].1)
    }

    /// Whether `key` is there.
    pub fn contains_key(&self, key: &Key) -> bool {
        self.find(*key).is_ok()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Key> + ExactSizeIterator {
        self.items.iter().map(|(k, _)| k)
    }

    /// Every value, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.items.iter().map(|(_, v)| v)
    }

    /// The items whose keys are in `range`, in key order; a crossed range is empty.
    pub fn range(&self, range: impl RangeBounds<Key>) -> &[(Key, V)] {
        let start = match range.start_bound() {
            Bound::Included(k) => self.items.partition_point(|(x, _)| x < k),
            Bound::Excluded(k) => self.items.partition_point(|(x, _)| x <= k),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(k) => self.items.partition_point(|(x, _)| x <= k),
            Bound::Excluded(k) => self.items.partition_point(|(x, _)| x < k),
            Bound::Unbounded => self.items.len(),
        };
        &self.items[start..end.max(start)]
    }

    /// The values whose keys are in `range`, in key order; a crossed range is empty.
    pub fn values_in(&self, range: impl RangeBounds<Key>) -> impl DoubleEndedIterator<Item = &V> {
        self.range(range).iter().map(|(_, v)| v)
    }
}

impl Keyed<()> {
    /// Adds `key` to the set; whether it was new.
    pub fn add(&mut self, key: Key) -> bool {
        self.insert(key, ()).is_none()
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: &Key) -> bool {
        self.contains_key(key)
    }
}

impl<V> Index<&Key> for Keyed<V> {
    type Output = V;

    /// The value under `key`, which must be there.
    fn index(&self, key: &Key) -> &V {
        self.get(key).expect("no value under this key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_added_in_any_order_are_found_and_walked_in_order() {
        let mut map = Keyed::default();
        for k in [5, 1, 9, 3, 7, 11, 2] {
            assert_eq!(map.insert(k, k * 10), None);
        }
        assert_eq!(map.insert(7, 71), Some(70), "a second insert replaces");
        assert_eq!(
            map.keys().copied().collect::<Vec<_>>(),
            [1, 2, 3, 5, 7, 9, 11]
        );
        for k in 0..13 {
            let want = [1, 2, 3, 5, 7, 9, 11].contains(&k);
            assert_eq!(map.contains_key(&k), want, "key {k}");
            assert_eq!(map.get(&k).is_some(), want, "key {k}");
        }
        assert_eq!(map[&7], 71);
        *map.get_mut(&9).unwrap() += 1;
        assert_eq!(map[&9], 91);
    }

    #[test]
    fn ranges_match_a_b_tree_s_and_crossed_ones_are_empty() {
        let keys: [Key; 10] = [2, 4, 6, 8, 10, 12, 14, 16, 18, 20];
        let mut map = Keyed::default();
        let mut tree = std::collections::BTreeMap::new();
        for k in keys {
            map.insert(k, ());
            tree.insert(k, ());
        }
        let bounds = |k: Key| [Bound::Included(k), Bound::Excluded(k), Bound::Unbounded];
        for lo in 0..23 {
            for hi in 0..23 {
                for (a, b) in bounds(lo)
                    .into_iter()
                    .flat_map(|a| bounds(hi).map(move |b| (a, b)))
                {
                    let ours: Vec<Key> = map.range((a, b)).iter().map(|(k, _)| *k).collect();
                    let crossed = match (a, b) {
                        (Bound::Included(x), Bound::Included(y)) => x > y,
                        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
                        (
                            Bound::Included(x) | Bound::Excluded(x),
                            Bound::Included(y) | Bound::Excluded(y),
                        ) => x >= y,
                    };
                    let theirs: Vec<Key> = if crossed {
                        Vec::new()
                    } else {
                        tree.range((a, b)).map(|(k, _)| *k).collect()
                    };
                    assert_eq!(ours, theirs, "{a:?}..{b:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn it_answers_as_a_b_tree_does(
            ops in proptest::collection::vec((0u8..4, 0u128..512, 0u128..512), 0..600)
        ) {
            let mut map = Keyed::default();
            let mut tree = std::collections::BTreeMap::new();
            for (n, (op, a, b)) in ops.into_iter().enumerate() {
                match op {
                    0 | 1 => proptest::prop_assert_eq!(map.insert(a, n), tree.insert(a, n)),
                    2 => {
                        proptest::prop_assert_eq!(map.get(&a), tree.get(&a));
                        proptest::prop_assert_eq!(map.contains_key(&a), tree.contains_key(&a));
                    }
                    _ => {
                        let (lo, hi) = (a.min(b), a.max(b));
                        let ours: Vec<_> = map.values_in(lo..=hi).copied().collect();
                        let theirs: Vec<_> = tree.range(lo..=hi).map(|(_, v)| *v).collect();
                        proptest::prop_assert_eq!(ours, theirs);
                    }
                }
            }
            proptest::prop_assert_eq!(map.len(), tree.len());
            let keys: Vec<_> = map.keys().copied().collect();
            proptest::prop_assert_eq!(keys, tree.keys().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_set_of_keys_adds_each_once() {
        let mut set = Keyed::default();
        assert!(set.add(3));
        assert!(set.add(1));
        assert!(!set.add(3));
        assert_eq!(set.len(), 2);
        assert!(set.contains(&1) && !set.contains(&2));
    }
}
