//! Meter event sessions (`POST /v2/billing/meter_event_session`): each session's authentication
//! token, the world that made it and when it expires, beside the model. The token is the
//! stream's credential (`POST /v2/billing/meter_event_stream`), so its world must be found from it
//! before the request takes its turn, as a key's world is found from the key.

use std::collections::HashMap;

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::time::Nanos;

/// The most live sessions one world keeps; making one more forgets the one expiring first.
pub const MAX_SESSIONS_PER_WORLD: usize = 1_000;

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

    /// Remembers `token` as a session of `world` until `expires_at`, made at `made_at` on the
    /// world's clock. The world's sessions that expired by then are forgotten, and past
    /// [`MAX_SESSIONS_PER_WORLD`] live ones the one expiring first goes, so a client that makes
    /// sessions in a loop cannot grow the map without bound.
    pub fn insert(&self, token: String, world: String, made_at: Nanos, expires_at: Nanos) {
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.world != world || s.expires_at > made_at);
        let live = sessions.values().filter(|s| s.world == world).count();
        if live >= MAX_SESSIONS_PER_WORLD {
            let first = sessions
                .iter()
                .filter(|(_, s)| s.world == world)
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(t, _)| t.clone());
            if let Some(first) = first {
                sessions.remove(&first);
            }
        }
        sessions.insert(token, Session { world, expires_at });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_sessions_go_and_a_world_keeps_at_most_its_share() {
        let sessions = MeterSessions::default();
        sessions.insert("t_old".into(), "a".into(), 0, 10);
        sessions.insert("t_other".into(), "b".into(), 0, 10);
        // At 10, "a"'s first session has expired: making another forgets it, not "b"'s.
        sessions.insert("t_new".into(), "a".into(), 10, 20);
        assert_eq!(sessions.get("t_old"), None);
        assert!(sessions.get("t_other").is_some());
        assert!(sessions.get("t_new").is_some());
        for i in 0..MAX_SESSIONS_PER_WORLD as i64 {
            sessions.insert(format!("t{i}"), "a".into(), 10, 100 + i);
        }
        // The cap dropped the one expiring first ("t_new"), and only it.
        assert_eq!(sessions.get("t_new"), None);
        assert!(sessions.get("t0").is_some());
        assert_eq!(
            sessions.lock().values().filter(|s| s.world == "a").count(),
            MAX_SESSIONS_PER_WORLD
        );
        assert!(sessions.get("t_other").is_some());
    }
}
