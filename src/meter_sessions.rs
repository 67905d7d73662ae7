//! Meter event sessions (`POST /v2/billing/meter_event_session`): each session's authentication
//! token, the world that made it and when it expires, beside the model. The token is the
//! stream's credential (`POST /v2/billing/meter_event_stream`), so its world must be found from it
//! before the request takes its turn, as a key's world is found from the key.

use std::collections::HashMap;

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::time::Nanos;

/// A session's world and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The world (the API key, or the key and a connected account) that made the session.
    pub world: String,
    /// When the token stops being accepted, on that world's clock.
    pub expires_at: Nanos,
}

/// Every live world's sessions, by token.
#[derive(Debug, Default)]
pub struct MeterSessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl MeterSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // Nothing panics while holding the lock; a poisoned map is still whole.
        self.by_token.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `token` as a session of `world` until `expires_at`.
    pub fn insert(&self, token: String, world: String, expires_at: Nanos) {
        self.lock().insert(token, Session { world, expires_at });
    }

    /// The session of `token`, if one was made.
    pub fn get(&self, token: &str) -> Option<Session> {
        self.lock().get(token).cloned()
    }

    /// Forgets the sessions of `world` (it was reset).
    pub fn reset(&self, world: &str) {
        self.lock().retain(|_, s| s.world != world);
    }
}
