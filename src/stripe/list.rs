//! Stripe's cursor pagination over ordered indexes, and the `created` filter lists share.
//!
//! Keys are time-ordered, so "newest first" is a reverse walk of a `BTreeSet`/`BTreeMap` range and a
//! page costs O(log n + limit), however large the collection.
//!
//! A `created` filter ([`TimeRange`]) is a key range too wherever an index's keys and `created`
//! times grow together (every object of one time domain made with a fresh key): [`TimeRange::keys`]
//! finds the bounding keys by bisection and [`Page::within`] confines the walk to them. Where they do
//! not grow together, the list checks `created` along its walk instead.

use std::ops::Bound;

use crate::form::{Node, Params};
use crate::ids::Key;
use crate::time::{Nanos, NANOS_PER_SEC};
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::{get_int, get_str, in_range, parse_int, RANGE_KEYS};

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// 1..=100.
    pub limit: usize,
    /// Objects older than this one.
    pub starting_after: Option<Key>,
    /// Objects newer than this one.
    pub ending_before: Option<Key>,
    /// Only keys in this range are walked (everything by default; see [`Page::within`]).
    pub window: (Bound<Key>, Bound<Key>),
}

impl Page {
    /// The same page confined to `keys` (a filter's key range, such as [`TimeRange::keys`]).
    pub fn within(mut self, keys: (Bound<Key>, Bound<Key>)) -> Page {
        self.window = clamp(self.window, keys);
        self
    }
}

/// `limit`, `starting_after` and `ending_before` as sent, checked as far as they can be without
/// the tenant: the cursors are still ids.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// 1..=100.
    pub limit: usize,
    /// The id of `starting_after`, if sent and not empty.
    pub starting_after: Option<String>,
    /// The id of `ending_before`, if sent and not empty.
    pub ending_before: Option<String>,
}

impl PageRequest {
    /// Reads `limit` (default 10) and the cursors; both cursors at once is Stripe's 400.
    pub fn read(params: &Params) -> StripeResult<PageRequest> {
        let limit = match get_int(params, "limit") {
            None => 10,
            Some(n) => in_range(n, 1, 100, "limit")? as usize,
        };
        let cursor = |name| {
            get_str(params, name)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let (starting_after, ending_before) = (cursor("starting_after"), cursor("ending_before"));
        if starting_after.is_some() && ending_before.is_some() {
            return Err(StripeError::invalid(
                "You may only specify one of these parameters: ending_before, starting_after.",
            ));
        }
        Ok(PageRequest {
            limit,
            starting_after,
            ending_before,
        })
    }

    /// The page, with its cursors resolved: `cursor` turns a cursor id into a key if it names an
    /// existing object of the listed kind; `object` names that kind in the error.
    pub fn resolve(
        &self,
        object: &str,
        cursor: impl Fn(&str) -> Option<Key>,
    ) -> StripeResult<Page> {
        let resolve = |id: &Option<String>, param: &str| {
            id.as_deref()
                .map(|id| cursor(id).ok_or_else(|| StripeError::no_such(object, id, param, 400)))
                .transpose()
        };
        Ok(Page {
            limit: self.limit,
            starting_after: resolve(&self.starting_after, "starting_after")?,
            ending_before: resolve(&self.ending_before, "ending_before")?,
            window: (Bound::Unbounded, Bound::Unbounded),
        })
    }
}

/// One page of keys, newest first, from an index that can be walked over a key range, keeping only
/// keys that `keep` accepts. Returns the keys and `has_more`.
pub fn paginate<I>(
    range: impl Fn(Bound<Key>, Bound<Key>) -> I,
    page: &Page,
    keep: impl Fn(Key) -> bool,
) -> (Vec<Key>, bool)
where
    I: DoubleEndedIterator<Item = Key>,
{
    let want = page.limit + 1;
    let range = |a, b| {
        let (lo, hi) = clamp(page.window, (a, b));
        range(lo, hi)
    };
    // Newest first: `ending_before` walks up from its cursor and turns the page around at the end;
    // otherwise the walk goes down, from `starting_after` or from the newest key.
    let (mut keys, turn): (Vec<Key>, bool) = match page.ending_before {
        Some(eb) => (
            range(Bound::Excluded(eb), Bound::Unbounded)
                .filter(|k| keep(*k))
                .take(want)
                .collect(),
            true,
        ),
        None => {
            let below = page
                .starting_after
                .map_or(Bound::Unbounded, Bound::Excluded);
            let keys = range(Bound::Unbounded, below)
                .rev()
                .filter(|k| keep(*k))
                .take(want)
                .collect();
            (keys, false)
        }
    };
    let more = keys.len() > page.limit;
    keys.truncate(page.limit);
    if turn {
        keys.reverse();
    }
    (keys, more)
}

/// The intersection of two key ranges. An empty intersection is spelled `[0, 0)`, which every
/// ordered collection accepts (`BTreeMap::range` panics on a start above its end).
fn clamp(a: (Bound<Key>, Bound<Key>), b: (Bound<Key>, Bound<Key>)) -> (Bound<Key>, Bound<Key>) {
    use Bound::{Excluded, Included, Unbounded};
    let lo = match (a.0, b.0) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(x), Included(y)) => Included(x.max(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.max(y)),
        (Included(i), Excluded(e)) | (Excluded(e), Included(i)) => {
            if i > e {
                Included(i)
            } else {
                Excluded(e)
            }
        }
    };
    let hi = match (a.1, b.1) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(x), Included(y)) => Included(x.min(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.min(y)),
        (Included(i), Excluded(e)) | (Excluded(e), Included(i)) => {
            if i < e {
                Included(i)
            } else {
                Excluded(e)
            }
        }
    };
    let empty = match (lo, hi) {
        (Included(l), Included(h)) => l > h,
        (Included(l), Excluded(h)) | (Excluded(l), Included(h)) | (Excluded(l), Excluded(h)) => {
            l >= h
        }
        _ => false,
    };
    if empty {
        (Included(0), Excluded(0))
    } else {
        (lo, hi)
    }
}

/// A `created` filter: the instants `[from, until)` in nanoseconds, kept wider than [`Nanos`] so
/// that any 64-bit timestamp a client sends is a valid bound (one beyond the model's years simply
/// matches nothing, or everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// The first instant in range.
    pub from: i128,
    /// The first instant past the range.
    pub until: i128,
}

impl TimeRange {
    /// Every instant.
    pub const ALL: TimeRange = TimeRange {
        from: i128::MIN,
        until: i128::MAX,
    };

    /// Reads a validated [`Spec::Range`](crate::wire::params::Spec::Range) parameter: `name=T` is the
    /// second `T`, and `gt`, `gte`, `lt`, `lte` bound it in whole seconds as Stripe compares them
    /// (`lte=T` takes all of second `T`). Absent: `None`.
    pub fn read(params: &Params, name: &str) -> Option<TimeRange> {
        let secs = |s: &str| parse_int(s).map(|n| n as i128 * NANOS_PER_SEC as i128);
        let second = NANOS_PER_SEC as i128;
        let mut r = TimeRange::ALL;
        match params.get(name)? {
            Node::Value(v) => {
                let t = secs(v)?;
                r.from = t;
                r.until = t + second;
            }
            Node::Map(m) => {
                for op in RANGE_KEYS {
                    let Some(t) = get_str(m, op).and_then(secs) else {
                        continue;
                    };
                    match op {
                        "gt" => r.from = r.from.max(t + second),
                        "gte" => r.from = r.from.max(t),
                        "lt" => r.until = r.until.min(t),
                        _ => r.until = r.until.min(t + second),
                    }
                }
            }
            Node::List(_) => {}
        }
        Some(r)
    }

    /// The range as a window `[from, until)` of model time (`until` `None`: no end), or `None`
    /// when no instant of the model can be in it.
    pub fn window(&self) -> Option<(Nanos, Option<Nanos>)> {
        if self.from >= self.until
            || self.from > i128::from(Nanos::MAX)
            || self.until <= i128::from(Nanos::MIN)
        {
            return None;
        }
        let from = Nanos::try_from(self.from).unwrap_or(Nanos::MIN);
        Some((from, Nanos::try_from(self.until).ok()))
    }

    /// Whether `t` is in range.
    pub fn contains(&self, t: Nanos) -> bool {
        let t = t as i128;
        self.from <= t && t < self.until
    }

    /// The keys of an index whose `created` times are in range, as a key range. Only for an index
    /// whose `created` never decreases as its keys grow; `range` walks the index and `created`
    /// reads a key's time. Each bound is found by bisecting the key space, one index lookup per
    /// step: O(log n) lookups, at most 128 of them.
    pub fn keys<I>(
        &self,
        range: impl Fn(Bound<Key>, Bound<Key>) -> I,
        created: impl Fn(Key) -> Nanos,
    ) -> (Bound<Key>, Bound<Key>)
    where
        I: DoubleEndedIterator<Item = Key>,
    {
        let first_at = |t: i128| first_at_or_after(&range, &created, t);
        let lo = match self.from {
            i128::MIN => Bound::Unbounded,
            t => match first_at(t) {
                Some(k) => Bound::Included(k),
                // Nothing is that recent: an empty range.
                None => return (Bound::Included(0), Bound::Excluded(0)),
            },
        };
        let hi = match self.until {
            i128::MAX => Bound::Unbounded,
            t => first_at(t).map_or(Bound::Unbounded, Bound::Excluded),
        };
        (lo, hi)
    }
}

/// The smallest key of a monotone index whose `created` is at least `t`.
fn first_at_or_after<I>(
    range: &impl Fn(Bound<Key>, Bound<Key>) -> I,
    created: &impl Fn(Key) -> Nanos,
    t: i128,
) -> Option<Key>
where
    I: DoubleEndedIterator<Item = Key>,
{
    let reached = |k: Key| created(k) as i128 >= t;
    let last = range(Bound::Unbounded, Bound::Unbounded).next_back()?;
    if !reached(last) {
        return None;
    }
    let first = range(Bound::Unbounded, Bound::Unbounded).next()?;
    if reached(first) {
        return Some(first);
    }
    // `first` is below `t` and `best` reaches it; the answer is `best` or a key in `[lo, hi)`.
    // Each step at least halves `[lo, hi)`.
    let mut best = last;
    let (mut lo, mut hi) = (first + 1, last);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match range(Bound::Included(mid), Bound::Excluded(hi)).next() {
            // No key in [mid, hi): look below mid.
            None => hi = mid,
            Some(k) if reached(k) => {
                best = k;
                hi = mid;
            }
            // k is still early, and so is every key below it.
            Some(k) => lo = k + 1,
        }
    }
    Some(best)
}

/// `{object: "list", data, has_more, url}`, serialized without an intermediate `Value`.
#[derive(Debug, serde::Serialize)]
pub struct ListJson<'a, T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
    url: &'a str,
}

impl<'a, T: serde::Serialize> ListJson<'a, T> {
    /// A page of `data`.
    pub fn new(data: Vec<T>, has_more: bool, url: &'a str) -> Self {
        ListJson {
            object: "list",
            data,
            has_more,
            url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::{parse, FormLimits};
    use std::collections::BTreeMap;
    use std::ops::RangeBounds;

    const S: i128 = NANOS_PER_SEC as i128;

    fn range(q: &str) -> Option<TimeRange> {
        TimeRange::read(&parse(q, &FormLimits::default()).unwrap(), "created")
    }

    #[test]
    fn created_bounds_are_whole_seconds() {
        assert_eq!(range("limit=1"), None);
        assert_eq!(
            range("created=5"),
            Some(TimeRange {
                from: 5 * S,
                until: 6 * S
            })
        );
        assert_eq!(
            range("created[gt]=5&created[lte]=9"),
            Some(TimeRange {
                from: 6 * S,
                until: 10 * S
            })
        );
        // Two lower bounds: the stricter wins.
        let r = range("created[gte]=7&created[gt]=5&created[lt]=9").unwrap();
        assert_eq!((r.from, r.until), (7 * S, 9 * S));
        assert!(r.contains(7 * NANOS_PER_SEC) && r.contains(9 * NANOS_PER_SEC - 1));
        assert!(!r.contains(9 * NANOS_PER_SEC) && !r.contains(7 * NANOS_PER_SEC - 1));
        // Any 64-bit timestamp is a bound, even far outside the model's years.
        let far = range(&format!("created[lt]={}", i64::MAX)).unwrap();
        assert!(far.contains(i64::MAX));
        assert!(range(&format!("created[gt]={}", i64::MAX)).is_some_and(|r| !r.contains(i64::MAX)));
    }

    #[test]
    fn clamping_never_builds_a_range_a_btree_refuses() {
        use Bound::{Excluded, Included, Unbounded};
        let set: std::collections::BTreeSet<Key> = (0..10).collect();
        let bounds = [
            Unbounded,
            Included(3),
            Excluded(3),
            Included(5),
            Excluded(5),
        ];
        for a0 in bounds {
            for a1 in bounds {
                for b0 in bounds {
                    for b1 in bounds {
                        let (lo, hi) = clamp((a0, a1), (b0, b1));
                        let got: Vec<Key> = set.range((lo, hi)).copied().collect();
                        let want: Vec<Key> = set
                            .iter()
                            .copied()
                            .filter(|k| (a0, a1).contains(k) && (b0, b1).contains(k))
                            .collect();
                        assert_eq!(got, want, "{a0:?}..{a1:?} ∩ {b0:?}..{b1:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn bisection_finds_the_key_range_of_a_time_range() {
        // Sparse keys whose times never decrease, with runs of equal times.
        let times: BTreeMap<Key, Nanos> = [
            (3u128, 10i64),
            (40, 10),
            (41, 20),
            (1 << 70, 20),
            ((1 << 70) + 5, 30),
            (u128::MAX - 1, 40),
        ]
        .into_iter()
        .map(|(k, t)| (k, t * NANOS_PER_SEC))
        .collect();
        let walk = |a, b| times.range((a, b)).map(|(k, _)| *k);
        let created = |k: Key| times[&k];
        for from in 5..45 {
            for until in from..46 {
                let r = TimeRange {
                    from: from as i128 * S,
                    until: until as i128 * S,
                };
                let keys = r.keys(walk, created);
                let got: Vec<Key> = times.keys().copied().filter(|k| keys.contains(k)).collect();
                let want: Vec<Key> = times
                    .iter()
                    .filter(|(_, t)| r.contains(**t))
                    .map(|(k, _)| *k)
                    .collect();
                assert_eq!(got, want, "[{from}, {until})");
            }
        }
        let empty: BTreeMap<Key, Nanos> = BTreeMap::new();
        let keys = TimeRange { from: 0, until: S }
            .keys(|a, b| empty.range((a, b)).map(|(k, _)| *k), |_| 0);
        assert_eq!(keys, (Bound::Included(0), Bound::Excluded(0)));
    }
}
