//! Stored responses for idempotent requests, one store per world.
//!
//! A key is remembered with a fingerprint of the request (method, path and the decoded parameters in
//! a canonical order) and, once the request is done, its status and body. Records live 24 hours of
//! real time, as Stripe's do (the tenant clock does not age them), and a world keeps at most a
//! bounded number of them: past it, the oldest answered key is forgotten first. A key's age is
//! read through [`crate::time::real_now`], like every read of the clock, so that a stored request
//! replays with the instants it saw.
//!
//! The stores sit beside the model, not in it: idempotency is a convention of Stripe's wire, and
//! a replay never waits for the world's lock.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use hashbrown::HashTable;

use crate::time::{real_now, Nanos};

/// How long a key is remembered unless configured otherwise: Stripe's 24 hours.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The state of one key.
#[derive(Debug, Clone)]
pub enum Record {
    /// A request with this key is being served.
    InFlight {
        /// Its fingerprint.
        fingerprint: u64,
    },
    /// A request with this key finished; this is what it answered.
    Done {
        /// Its fingerprint.
        fingerprint: u64,
        /// Status code.
        status: u16,
        /// Body: a copy of exactly the answer's bytes, owned by the store alone, so that
        /// forgetting it frees it without reading it (a shared buffer's count would be read).
        body: Bytes,
        /// The `Request-Id` of the request that ran, which a replay names in `Original-Request`
        /// (empty when not known: a replay then names none).
        request: Box<str>,
    },
}

/// What to do with an incoming request that carries a key.
#[derive(Debug, Clone)]
pub enum Claim {
    /// First use: serve it, then [`IdempotencyStore::finish`] or [`IdempotencyStore::abandon`].
    Proceed,
    /// Same request again: answer this.
    Replay {
        /// Stored status.
        status: u16,
        /// Stored body.
        body: Bytes,
        /// The `Request-Id` of the request that ran (empty when not known).
        request: String,
    },
    /// The key was used for a different request.
    Mismatch,
    /// The key's first request is still being served.
    InFlight,
}

/// One remembered key.
#[derive(Debug)]
struct Slot {
    /// When the key was first used (real time).
    created: Nanos,
    /// The hash of the key in the store's index, kept so that forgetting the key finds its place
    /// there without reading its text.
    hash: u64,
    key: Box<str>,
    record: Record,
}

/// One world's keys.
///
/// The keys sit in a queue in the order they were first used, each numbered once and for good;
/// the index finds a key's number by the hash of its text. Past the cap every new key forgets the
/// oldest, whose memory was written long ago: the queue reaches it in order, and the index drops
/// it by number, so forgetting reads only the queue's front and a slot of the index (a map from
/// key text to record read the old key's text and its record's place, two cold reads a request).
#[derive(Debug)]
pub struct IdempotencyStore {
    /// Every key kept, oldest first. A key forgotten out of turn (abandoned, or answered while
    /// an older one is still in flight at the cap) leaves `None` until it reaches the front.
    slots: VecDeque<Option<Slot>>,
    /// The number of `slots[0]`.
    first: u64,
    /// The number of every key kept, by the hash of its text.
    index: HashTable<u64>,
    /// foldhash, not SipHash: every POST with a key looks it up twice. Randomly seeded, so chosen
    /// keys cannot be made to collide.
    hasher: foldhash::fast::RandomState,
    /// Keys kept (the `Some`s of `slots`).
    live: usize,
    /// Most keys kept at once.
    cap: usize,
    /// How long a key is kept, in nanoseconds of real time.
    lifetime: Nanos,
}

impl Default for IdempotencyStore {
    /// A store with the defaults of the command line: 10,000 keys, kept 24 hours.
    fn default() -> Self {
        Self::new(crate::config::DEFAULT_MAX_IDEMPOTENCY_KEYS, KEY_LIFETIME)
    }
}

impl IdempotencyStore {
    /// An empty store that keeps at most `cap` keys (at least one), each for `lifetime`.
    pub fn new(cap: usize, lifetime: Duration) -> Self {
        IdempotencyStore {
            slots: VecDeque::new(),
            first: 0,
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            live: 0,
            cap: cap.max(1),
            lifetime: Nanos::try_from(lifetime.as_nanos()).unwrap_or(Nanos::MAX),
        }
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Looks `key` up for a request with `fingerprint`, claiming it if unused.
    pub fn claim(&mut self, key: &str, fingerprint: u64) -> Claim {
        self.claim_at(key, fingerprint, real_now())
    }

    /// [`IdempotencyStore::claim`] at the instant `now`: keys older than the lifetime are forgotten
    /// first, and a new key past the cap makes room by forgetting the oldest answered one.
    pub fn claim_at(&mut self, key: &str, fingerprint: u64, now: Nanos) -> Claim {
        self.expire(now);
        let hash = self.hasher.hash_one(key);
        let Some(number) = self.find(hash, key) else {
            self.make_room();
            self.push(now, hash, key.into(), Record::InFlight { fingerprint });
            return Claim::Proceed;
        };
        match self.slot(number).map(|s| &s.record) {
            None | Some(Record::InFlight { .. }) => Claim::InFlight,
            Some(Record::Done {
                fingerprint: f,
                status,
                body,
                request,
            }) => {
                if *f == fingerprint {
                    Claim::Replay {
                        status: *status,
                        body: body.clone(),
                        request: request.to_string(),
                    }
                } else {
                    Claim::Mismatch
                }
            }
        }
    }

    /// Stores the answer of a claimed key, given by the request whose `Request-Id` is `request`.
    /// The store keeps its own copy of exactly `body`'s bytes.
    pub fn finish(&mut self, key: &str, status: u16, body: &[u8], request: &str) {
        let hash = self.hasher.hash_one(key);
        let Some(number) = self.find(hash, key) else {
            return;
        };
        if let Some(slot) = self.slot_mut(number) {
            if let Record::InFlight { fingerprint } = slot.record {
                slot.record = Record::Done {
                    fingerprint,
                    status,
                    body: Bytes::copy_from_slice(body),
                    request: request.into(),
                };
            }
        }
    }

    /// Forgets a claimed key whose answer is not to be stored (validation errors, panics). Its
    /// place in the order goes too, or a later claim of the same key would be forgotten when this
    /// one's day is up.
    pub fn abandon(&mut self, key: &str) {
        let hash = self.hasher.hash_one(key);
        let Some(number) = self.find(hash, key) else {
            return;
        };
        if matches!(
            self.slot(number).map(|s| &s.record),
            Some(Record::InFlight { .. })
        ) {
            self.forget(number);
        }
    }

    /// The number of the kept key `key`, whose hash is `hash`.
    fn find(&self, hash: u64, key: &str) -> Option<u64> {
        self.index
            .find(hash, |&n| self.slot(n).is_some_and(|s| &*s.key == key))
            .copied()
    }

    /// Where the key numbered `number` lies in `slots`, if it is not before the front.
    fn place(&self, number: u64) -> Option<usize> {
        usize::try_from(number.checked_sub(self.first)?).ok()
    }

    /// The key numbered `number`, if it is kept.
    fn slot(&self, number: u64) -> Option<&Slot> {
        self.slots.get(self.place(number)?)?.as_ref()
    }

    fn slot_mut(&mut self, number: u64) -> Option<&mut Slot> {
        let at = self.place(number)?;
        self.slots.get_mut(at)?.as_mut()
    }

    /// Keeps `key` as the newest key.
    fn push(&mut self, created: Nanos, hash: u64, key: Box<str>, record: Record) {
        let number = self.first + self.slots.len() as u64;
        self.slots.push_back(Some(Slot {
            created,
            hash,
            key,
            record,
        }));
        self.live += 1;
        let IdempotencyStore {
            slots,
            first,
            index,
            ..
        } = self;
        // Growing the index rehashes from the hashes kept in the slots, not from the keys.
        index.insert_unique(hash, number, |&n| {
            slots[(n - *first) as usize].as_ref().map_or(0, |s| s.hash)
        });
    }

    /// Forgets the key numbered `number`, then drops the queue's forgotten front.
    fn forget(&mut self, number: u64) {
        let Some(slot) = self
            .place(number)
            .and_then(|at| self.slots.get_mut(at))
            .and_then(Option::take)
        else {
            return;
        };
        if let Ok(entry) = self.index.find_entry(slot.hash, |&n| n == number) {
            entry.remove();
        }
        self.live -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// Forgets the keys `lifetime` old or older at `now`.
    fn expire(&mut self, now: Nanos) {
        while let Some(Some(oldest)) = self.slots.front() {
            if now.saturating_sub(oldest.created) < self.lifetime {
                break;
            }
            self.forget(self.first);
        }
    }

    /// Below the cap, nothing; at it, forgets the oldest key whose request has finished. A key
    /// still being served is never forgotten (its answer could not be stored, and a retry would
    /// run the request twice), so the store passes its cap by at most the requests in flight.
    fn make_room(&mut self) {
        while self.live >= self.cap {
            // Nearly always the oldest key is answered; otherwise the oldest answered one goes.
            let oldest_done = self.slots.iter().position(|s| {
                matches!(
                    s,
                    Some(Slot {
                        record: Record::Done { .. },
                        ..
                    })
                )
            });
            let Some(at) = oldest_done else { return };
            self.forget(self.first + at as u64);
        }
    }
}

/// A finished answer as a world's document holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredAnswer {
    /// The `Idempotency-Key`.
    pub key: String,
    /// The request's fingerprint, 16 hexadecimal digits.
    pub fingerprint: String,
    /// When the key was first used, in nanoseconds since the Unix epoch, to the second: its 24
    /// hours run from then.
    pub created: crate::time::Nanos,
    /// The answer's status code.
    pub status: u16,
    /// The answer's body.
    pub body: String,
    /// The `Request-Id` of the request that gave the answer, which a replay names in its
    /// `Original-Request` header. May be left out: a replay then names none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request: String,
}

/// Nanoseconds in a second.
const SECOND: u128 = 1_000_000_000;

impl IdempotencyStore {
    /// The finished answers still remembered, oldest first; `wall` is the wall clock's now, to
    /// which each record's age is referred.
    pub fn answers(&self, wall: crate::time::Nanos) -> Vec<StoredAnswer> {
        self.slots
            .iter()
            .flatten()
            .filter(|s| wall.saturating_sub(s.created) < self.lifetime)
            .filter_map(|s| match &s.record {
                Record::Done {
                    fingerprint,
                    status,
                    body,
                    request,
                } => {
                    // To the second, so that reading a record back and writing it out again
                    // gives the same figure.
                    let second = SECOND as Nanos;
                    let created = (s.created.max(0) + second / 2) / second * second;
                    Some(StoredAnswer {
                        key: s.key.to_string(),
                        fingerprint: format!("{fingerprint:016x}"),
                        created,
                        status: *status,
                        body: String::from_utf8_lossy(body).into_owned(),
                        request: request.to_string(),
                    })
                }
                Record::InFlight { .. } => None,
            })
            .collect()
    }

    /// A store holding `answers` (`wall` is the wall clock's now); those older than
    /// [`KEY_LIFETIME`] are left out. Refused, with the place of the first bad answer, for a key
    /// that is empty, longer than 255 characters or given twice, a fingerprint that is not 16
    /// hexadecimal digits, or a status that is not one.
    pub fn from_answers(
        answers: Vec<StoredAnswer>,
        wall: crate::time::Nanos,
    ) -> Result<IdempotencyStore, (usize, &'static str, String)> {
        let mut store = IdempotencyStore::default();
        let mut seen = std::collections::HashSet::new();
        for (i, a) in answers.into_iter().enumerate() {
            if a.key.is_empty() || a.key.len() > 255 {
                return Err((i, "key", "must be 1 to 255 characters long".into()));
            }
            let fingerprint = match u64::from_str_radix(&a.fingerprint, 16) {
                Ok(f) if a.fingerprint.len() == 16 => f,
                _ => return Err((i, "fingerprint", "must be 16 hexadecimal digits".into())),
            };
            if !(100..=599).contains(&a.status) {
                return Err((i, "status", "must be an HTTP status, 100 to 599".into()));
            }
            if a.request.len() > 255 || !a.request.bytes().all(|b| b.is_ascii_graphic()) {
                return Err((
                    i,
                    "request",
                    "must be at most 255 visible ASCII characters".into(),
                ));
            }
            if !seen.insert(a.key.clone()) {
                return Err((i, "key", format!("{:?} is given twice", a.key)));
            }
            if wall.saturating_sub(a.created) >= store.lifetime {
                continue;
            }
            let at = a.created;
            let record = Record::Done {
                fingerprint,
                status: a.status,
                body: Bytes::from(a.body),
                request: a.request.into(),
            };
            let hash = store.hasher.hash_one(&*a.key);
            store.push(at, hash, a.key.into(), record);
        }
        Ok(store)
    }
}

/// One world's store behind its own lock. The lock does not poison: a request that panics while
/// holding it leaves the records as they were, and the next request uses them.
#[derive(Debug, Default)]
pub struct WorldStore(Mutex<IdempotencyStore>);

impl WorldStore {
    /// A world's store that keeps at most `cap` keys, each for `lifetime`.
    pub fn new(cap: usize, lifetime: Duration) -> Self {
        WorldStore(Mutex::new(IdempotencyStore::new(cap, lifetime)))
    }

    /// Waits for the lock; a poisoned lock is taken as it is.
    pub fn lock(&self) -> MutexGuard<'_, IdempotencyStore> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Every world's store, named as the model's tenants are (the key, or the key and a connected
/// account), created on first use.
#[derive(Debug)]
pub struct IdempotencyStores {
    /// foldhash, not SipHash: every POST with an Idempotency-Key looks its world up.
    worlds: DashMap<String, Arc<WorldStore>, foldhash::fast::RandomState>,
    /// Most keys one world keeps.
    cap: usize,
    /// How long a key is kept.
    lifetime: Duration,
}

impl Default for IdempotencyStores {
    /// Stores with the defaults of the command line: 10,000 keys a world, kept 24 hours.
    fn default() -> Self {
        Self::new(crate::config::DEFAULT_MAX_IDEMPOTENCY_KEYS, KEY_LIFETIME)
    }
}

impl IdempotencyStores {
    /// No store yet; each world's, once made, keeps at most `cap` keys, each for `lifetime`.
    pub fn new(cap: usize, lifetime: Duration) -> Self {
        IdempotencyStores {
            worlds: DashMap::default(),
            cap,
            lifetime,
        }
    }

    /// The store of the world named `world`, created empty if this is its first key.
    pub fn of(&self, world: &str) -> Arc<WorldStore> {
        if let Some(s) = self.worlds.get(world) {
            return s.clone();
        }
        self.worlds
            .entry(world.to_string())
            .or_insert_with(|| Arc::new(WorldStore::new(self.cap, self.lifetime)))
            .clone()
    }

    /// The store of the world named `world`, if it has one (never creates one).
    pub fn get(&self, world: &str) -> Option<Arc<WorldStore>> {
        self.worlds.get(world).map(|s| s.clone())
    }

    /// A world's finished answers (see [`IdempotencyStore::answers`]); none for a world without
    /// a store.
    pub fn answers(&self, world: &str, wall: crate::time::Nanos) -> Vec<StoredAnswer> {
        self.worlds
            .get(world)
            .map(|s| s.lock().answers(wall))
            .unwrap_or_default()
    }

    /// Replaces a world's records with `store`'s.
    pub fn replace(&self, world: &str, store: IdempotencyStore) {
        *self.of(world).lock() = store;
    }

    /// Forgets a world's records. Returns whether it had a store.
    pub fn reset(&self, world: &str) -> bool {
        self.remove(world).is_some()
    }

    /// Forgets a world's records, as [`IdempotencyStores::reset`] does, and hands them over to be
    /// dropped where the caller chooses.
    pub fn remove(&self, world: &str) -> Option<Arc<WorldStore>> {
        self.worlds.remove(world).map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let mut s = IdempotencyStore::default();
        assert!(matches!(s.claim("k", 1), Claim::Proceed));
        assert!(matches!(s.claim("k", 1), Claim::InFlight));
        s.finish("k", 200, b"{}", "req_first");
        assert!(
            matches!(s.claim("k", 1), Claim::Replay { status: 200, request, .. } if &*request == "req_first")
        );
        assert!(matches!(s.claim("k", 2), Claim::Mismatch));
        assert!(matches!(s.claim("j", 1), Claim::Proceed));
        s.abandon("j");
        assert!(matches!(s.claim("j", 2), Claim::Proceed));
    }

    const HOUR: Nanos = 3600 * 1_000_000_000;

    fn done(s: &mut IdempotencyStore, key: &str, now: Nanos) {
        assert!(matches!(s.claim_at(key, 1, now), Claim::Proceed), "{key}");
        s.finish(key, 200, key.as_bytes(), "req_1");
    }

    fn replays(s: &mut IdempotencyStore, key: &str, now: Nanos) -> bool {
        matches!(s.claim_at(key, 1, now), Claim::Replay { body, .. } if body == key)
    }

    #[test]
    fn keys_expire_after_their_lifetime_of_real_time() {
        let mut s = IdempotencyStore::new(100, KEY_LIFETIME);
        let t0 = 1_750_000_000 * 1_000_000_000;
        done(&mut s, "a", t0);
        done(&mut s, "b", t0 + HOUR);
        assert!(replays(&mut s, "a", t0 + 24 * HOUR - 1));
        // A day after it was first used, "a" is a new key; "b" is an hour younger and stays.
        assert!(matches!(s.claim_at("a", 2, t0 + 24 * HOUR), Claim::Proceed));
        assert!(replays(&mut s, "b", t0 + 24 * HOUR));
        assert!(matches!(s.claim_at("b", 2, t0 + 25 * HOUR), Claim::Proceed));
        assert_eq!(s.len(), 2, "the two fresh claims");
    }

    #[test]
    fn past_the_cap_the_oldest_answered_key_goes_first() {
        let mut s = IdempotencyStore::new(3, KEY_LIFETIME);
        let t0 = 1_750_000_000 * 1_000_000_000;
        // "a" is still being served: it is never the one forgotten.
        assert!(matches!(s.claim_at("a", 1, t0), Claim::Proceed));
        done(&mut s, "b", t0 + 1);
        done(&mut s, "c", t0 + 2);
        assert_eq!(s.len(), 3);
        done(&mut s, "d", t0 + 3);
        assert_eq!(s.len(), 3);
        assert!(matches!(s.claim_at("a", 1, t0 + 4), Claim::InFlight));
        assert!(replays(&mut s, "c", t0 + 4));
        assert!(replays(&mut s, "d", t0 + 4));
        // "b" was forgotten: it runs again, and makes room by forgetting "c", now the oldest
        // answered key.
        assert!(matches!(s.claim_at("b", 2, t0 + 5), Claim::Proceed));
        assert_eq!(s.len(), 3);
        assert!(replays(&mut s, "d", t0 + 6));
        assert!(matches!(s.claim_at("c", 2, t0 + 6), Claim::Proceed));
        // With every key in flight there is nothing to forget: the store goes past its cap by
        // the requests in flight.
        let mut busy = IdempotencyStore::new(1, KEY_LIFETIME);
        assert!(matches!(busy.claim_at("x", 1, t0), Claim::Proceed));
        assert!(matches!(busy.claim_at("y", 1, t0), Claim::Proceed));
        assert_eq!(busy.len(), 2);
    }

    #[test]
    fn an_abandoned_key_leaves_no_trace_that_could_expire_its_next_use() {
        let mut s = IdempotencyStore::new(10, KEY_LIFETIME);
        let t0 = 1_750_000_000 * 1_000_000_000;
        assert!(matches!(s.claim_at("k", 1, t0), Claim::Proceed));
        s.abandon("k");
        assert!(s.is_empty());
        done(&mut s, "k", t0 + 2 * HOUR);
        // The abandoned claim's day is up; the answered one's is not.
        assert!(replays(&mut s, "k", t0 + 25 * HOUR));
        assert_eq!(s.slots.len(), 1);
    }

    /// The rules, written as plainly as possible: the keys in the order first used, each with
    /// when, its fingerprint and its answer (`None` while in flight).
    #[derive(Default)]
    struct Plain {
        keys: Vec<(String, Nanos, u64, Option<u16>)>,
    }

    impl Plain {
        fn claim(&mut self, cap: usize, key: &str, fp: u64, now: Nanos) -> String {
            self.keys.retain(|k| now.saturating_sub(k.1) < HOUR);
            match self.keys.iter().find(|k| k.0 == key) {
                Some((_, _, _, None)) => "in flight".into(),
                Some((_, _, f, Some(status))) if *f == fp => format!("replay {status}"),
                Some(_) => "mismatch".into(),
                None => {
                    while self.keys.len() >= cap {
                        let Some(at) = self.keys.iter().position(|k| k.3.is_some()) else {
                            break;
                        };
                        self.keys.remove(at);
                    }
                    self.keys.push((key.to_string(), now, fp, None));
                    "proceed".into()
                }
            }
        }

        fn finish(&mut self, key: &str, status: u16) {
            if let Some(k) = self.keys.iter_mut().find(|k| k.0 == key && k.3.is_none()) {
                k.3 = Some(status);
            }
        }

        fn abandon(&mut self, key: &str) {
            self.keys.retain(|k| !(k.0 == key && k.3.is_none()));
        }
    }

    fn said(claim: Claim) -> String {
        match claim {
            Claim::Proceed => "proceed".into(),
            Claim::InFlight => "in flight".into(),
            Claim::Mismatch => "mismatch".into(),
            Claim::Replay { status, .. } => format!("replay {status}"),
        }
    }

    proptest::proptest! {
        /// Claims, answers and abandons of a few keys, at a small cap and with an hour's
        /// lifetime, as the store and as the plain rules see them: the same answers, the same
        /// keys kept, in the same order.
        #[test]
        fn the_store_keeps_what_the_plain_rules_keep(
            cap in 1usize..5,
            steps in proptest::collection::vec((0u8..3, 0u8..8, 0u64..2, 0i64..20), 0..200),
        ) {
            let mut store = IdempotencyStore::new(cap, Duration::from_secs(3600));
            let mut plain = Plain::default();
            let mut now: Nanos = 1_750_000_000 * 1_000_000_000;
            for (what, key, fp, minutes) in steps {
                now += minutes * 60 * 1_000_000_000;
                let key = format!("key-{key}");
                match what {
                    0 => proptest::prop_assert_eq!(
                        said(store.claim_at(&key, fp, now)),
                        plain.claim(cap, &key, fp, now)
                    ),
                    1 => {
                        let status = 200 + u16::from(fp as u8);
                        store.finish(&key, status, key.as_bytes(), "req_1");
                        plain.finish(&key, status);
                    }
                    _ => {
                        store.abandon(&key);
                        plain.abandon(&key);
                    }
                }
                let kept: Vec<&str> = store.slots.iter().flatten().map(|s| &*s.key).collect();
                let expected: Vec<&str> = plain.keys.iter().map(|k| k.0.as_str()).collect();
                proptest::prop_assert_eq!(kept, expected);
                proptest::prop_assert_eq!(store.len(), plain.keys.len());
                proptest::prop_assert_eq!(store.index.len(), plain.keys.len());
            }
        }
    }
}
