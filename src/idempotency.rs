//! Stored responses for idempotent requests, one store per world.
//!
//! A key is remembered with a fingerprint of the request (method, path and the decoded parameters in
//! a canonical order) and, once the request is done, its status and body. Records live 24 hours.
//!
//! The stores sit beside the model, not in it: idempotency is a convention of Stripe's wire, and
//! a replay never waits for the world's lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;

/// How long a key is remembered.
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
        /// Body.
        body: Bytes,
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
    },
    /// The key was used for a different request.
    Mismatch,
    /// The key's first request is still being served.
    InFlight,
}

/// The store.
#[derive(Debug, Default)]
pub struct IdempotencyStore {
    /// foldhash, not SipHash: every POST with a key looks it up twice.
    records: HashMap<String, Record, foldhash::fast::RandomState>,
    /// Insertion order, for expiry.
    order: VecDeque<(Instant, String)>,
}

impl IdempotencyStore {
    /// Looks `key` up for a request with `fingerprint`, claiming it if unused.
    pub fn claim(&mut self, key: &str, fingerprint: u64) -> Claim {
        let now = Instant::now();
        self.expire(now);
        match self.records.get(key) {
            None => {
                self.records
                    .insert(key.to_string(), Record::InFlight { fingerprint });
                self.order.push_back((now, key.to_string()));
                Claim::Proceed
            }
            Some(Record::InFlight { .. }) => Claim::InFlight,
            Some(Record::Done {
                fingerprint: f,
                status,
                body,
            }) => {
                if *f == fingerprint {
                    Claim::Replay {
                        status: *status,
                        body: body.clone(),
                    }
                } else {
                    Claim::Mismatch
                }
            }
        }
    }

    /// Stores the answer of a claimed key.
    pub fn finish(&mut self, key: &str, status: u16, body: Bytes) {
        if let Some(rec) = self.records.get_mut(key) {
            if let Record::InFlight { fingerprint } = *rec {
                *rec = Record::Done {
                    fingerprint,
                    status,
                    body,
                };
            }
        }
    }

    /// Forgets a claimed key whose answer is not to be stored (validation errors, panics).
    pub fn abandon(&mut self, key: &str) {
        if let Some(Record::InFlight { .. }) = self.records.get(key) {
            self.records.remove(key);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < KEY_LIFETIME {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.records.remove(&key);
            }
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
}

/// Nanoseconds in a second.
const SECOND: u128 = 1_000_000_000;

impl IdempotencyStore {
    /// The finished answers still remembered, oldest first; `wall` is the wall clock's now, to
    /// which each record's age is referred.
    pub fn answers(&self, wall: crate::time::Nanos) -> Vec<StoredAnswer> {
        let now = Instant::now();
        self.order
            .iter()
            .filter(|(at, _)| now.duration_since(*at) < KEY_LIFETIME)
            .filter_map(|(at, key)| match self.records.get(key)? {
                Record::Done {
                    fingerprint,
                    status,
                    body,
                } => {
                    let age = now.duration_since(*at).as_nanos();
                    // To the second, so that reading a record back and writing it out again
                    // gives the same figure whatever the two clocks did meanwhile.
                    let created = (u128::try_from(wall).unwrap_or(0).saturating_sub(age)
                        + SECOND / 2)
                        / SECOND
                        * SECOND;
                    Some(StoredAnswer {
                        key: key.clone(),
                        fingerprint: format!("{fingerprint:016x}"),
                        created: i64::try_from(created).unwrap_or(0),
                        status: *status,
                        body: String::from_utf8_lossy(body).into_owned(),
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
        let now = Instant::now();
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
            if !seen.insert(a.key.clone()) {
                return Err((i, "key", format!("{:?} is given twice", a.key)));
            }
            let age =
                Duration::from_nanos(u64::try_from(wall.saturating_sub(a.created)).unwrap_or(0));
            if age >= KEY_LIFETIME {
                continue;
            }
            // A clock that started less than `age` ago cannot go back that far: the record
            // then counts from now.
            let at = now.checked_sub(age).unwrap_or(now);
            let record = Record::Done {
                fingerprint,
                status: a.status,
                body: Bytes::from(a.body),
            };
            store.records.insert(a.key.clone(), record);
            store.order.push_back((at, a.key));
        }
        Ok(store)
    }
}

/// One world's store behind its own lock. The lock does not poison: a request that panics while
/// holding it leaves the records as they were, and the next request uses them.
#[derive(Debug, Default)]
pub struct WorldStore(Mutex<IdempotencyStore>);

impl WorldStore {
    /// Waits for the lock; a poisoned lock is taken as it is.
    pub fn lock(&self) -> MutexGuard<'_, IdempotencyStore> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Every world's store, named as the model's tenants are (the key, or the key and a connected
/// account), created on first use.
#[derive(Debug, Default)]
pub struct IdempotencyStores {
    worlds: DashMap<String, Arc<WorldStore>>,
}

impl IdempotencyStores {
    /// The store of the world named `world`, created empty if this is its first key.
    pub fn of(&self, world: &str) -> Arc<WorldStore> {
        if let Some(s) = self.worlds.get(world) {
            return s.clone();
        }
        self.worlds.entry(world.to_string()).or_default().clone()
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
        self.worlds.remove(world).is_some()
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
        s.finish("k", 200, Bytes::from_static(b"{}"));
        assert!(matches!(s.claim("k", 1), Claim::Replay { status: 200, .. }));
        assert!(matches!(s.claim("k", 2), Claim::Mismatch));
        assert!(matches!(s.claim("j", 1), Claim::Proceed));
        s.abandon("j");
        assert!(matches!(s.claim("j", 2), Claim::Proceed));
    }
}
