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
