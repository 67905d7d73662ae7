//! The request log: each world's most recent requests, newest first, for `GET /_emulator/requests`
//! and the inspector.
//!
//! The server records a request once its reply is built ([`RequestLogs::record`]), in the world
//! the request acted in. Recording is cheap: one map lookup and one short lock, no allocation once
//! the world's log is full (its oldest entry is refilled in place), and a successful reply's body
//! is never looked at (only an error's body is read, for its type and message). The log sits
//! beside the model, like the stored idempotent answers: recording never takes a world's lock, and
//! never makes a world (a request whose world does not exist once it is answered is not recorded).

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use serde::Serialize;

use crate::http::Reply;
use crate::time::{to_secs, Nanos};

/// How many requests a world keeps by default; older ones are dropped.
pub const DEFAULT_CAPACITY: usize = 1000;

/// The largest capacity that may be configured.
pub const MAX_CAPACITY: usize = 100_000;

/// The longest path (with its query) kept, in bytes; a longer one is cut and ends with `…`.
pub const MAX_PATH: usize = 2048;

/// The longest idempotency key or error message kept, in bytes.
pub const MAX_TEXT: usize = 1000;

/// The request header the inspector sends with its own reads, which are not recorded.
pub const INSPECTOR_HEADER: &str = "x-emulator-inspector";

/// Whether requests to `path` are recorded at all: reading the log itself and fetching the
/// inspector's files are not, so that looking never changes what is seen.
pub fn records_path(path: &str) -> bool {
    path != "/_emulator/requests" && path != "/_emulator/ui" && !path.starts_with("/_emulator/ui/")
}

/// One recorded request, as `GET /_emulator/requests` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The request's `Request-Id`.
    pub id: String,
    /// `"emulator.request"`.
    pub object: &'static str,
    /// When it arrived (unix seconds, real time).
    pub created: i64,
    /// `GET`, `POST`, …
    pub method: Cow<'static, str>,
    /// The path as sent, with its query string (cut at [`MAX_PATH`] bytes).
    pub path: String,
    /// Which API answered it: `stripe`, `native` or `emulator`.
    pub api: &'static str,
    /// The reply's status code.
    pub status: u16,
    /// From arrival to the reply being built, body reading included, in microseconds.
    pub duration_us: u64,
    /// The `Idempotency-Key` header as sent, if any.
    pub idempotency_key: Option<String>,
    /// Whether the reply was a stored answer replayed for that key.
    pub idempotent_replayed: bool,
    /// For a reply of 400 or more, what its error envelope says.
    pub error: Option<Box<ErrorSummary>>,
}

/// The parts of an error reply worth a glance: Stripe's `error.type`, `error.code`, `error.param`
/// and `error.message`; the native envelope's `code` (as `type`) and `message`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorSummary {
    /// Stripe's `error.type` (`invalid_request_error`, …), or the native `code`
    /// (`validation_error`, `not_found`, …).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Stripe's `error.code` (`resource_missing`, `parameter_unknown`, …).
    pub code: Option<String>,
    /// Stripe's `error.param`.
    pub param: Option<String>,
    /// The message (for a plain-text reply, its text).
    pub message: Option<String>,
}

/// What a request was, for [`Entry::new`]: the parts the server still has once it has answered.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Its `Request-Id`.
    pub id: &'a str,
    /// When it arrived (the system clock, nanoseconds).
    pub at: Nanos,
    /// Its method.
    pub method: &'a str,
    /// Its path, as sent.
    pub path: &'a str,
    /// Its query string, if any.
    pub query: Option<&'a str>,
    /// `stripe`, `native` or `emulator`.
    pub api: &'static str,
    /// Its `Idempotency-Key` header, if any.
    pub idempotency_key: Option<&'a str>,
    /// How long it took.
    pub took: Duration,
}

/// What a reply said, read before the log is locked.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its status code.
    pub status: u16,
    /// Whether it was a stored answer replayed for an idempotency key.
    pub replayed: bool,
    /// For a status of 400 or more, what its error envelope says.
    pub error: Option<Box<ErrorSummary>>,
}

impl Outcome {
    /// Reads `reply`: its headers, and its body only when it is an error.
    pub fn of(reply: &Reply) -> Outcome {
        Outcome {
            status: reply.status,
            replayed: reply
                .headers
                .iter()
                .any(|(name, value)| *name == "idempotent-replayed" && value == "true"),
            error: (reply.status >= 400).then(|| Box::new(error_summary(reply))),
        }
    }
}

impl Entry {
    /// The entry for a request and its reply.
    pub fn new(seen: Seen<'_>, reply: &Reply) -> Entry {
        let mut entry = Entry::empty();
        entry.fill(seen, Outcome::of(reply));
        entry
    }

    /// An entry to fill.
    fn empty() -> Entry {
        Entry {
            id: String::new(),
            object: "emulator.request",
            created: 0,
            method: Cow::Borrowed(""),
            path: String::new(),
            api: "",
            status: 0,
            duration_us: 0,
            idempotency_key: None,
            idempotent_replayed: false,
            error: None,
        }
    }

    /// Makes this entry describe another request, reusing its buffers: a full log recycles its
    /// oldest entry, so that recording allocates nothing once the log is full.
    fn fill(&mut self, seen: Seen<'_>, outcome: Outcome) {
        set(&mut self.id, seen.id, MAX_TEXT);
        self.created = to_secs(seen.at);
        self.method = method(seen.method);
        match seen.query {
            None => set(&mut self.path, seen.path, MAX_PATH),
            Some(query) => {
                self.path.clear();
                self.path.push_str(seen.path);
                self.path.push('?');
                self.path.push_str(query);
                if self.path.len() > MAX_PATH {
                    let end = boundary(&self.path, MAX_PATH);
                    self.path.truncate(end);
                    self.path.push('…');
                }
            }
        }
        self.api = seen.api;
        self.status = outcome.status;
        self.duration_us = u64::try_from(seen.took.as_micros()).unwrap_or(u64::MAX);
        match (seen.idempotency_key, &mut self.idempotency_key) {
            (None, kept) => *kept = None,
            (Some(key), Some(kept)) => set(kept, key, MAX_TEXT),
            (Some(key), kept) => *kept = Some(cut(key, MAX_TEXT)),
        }
        self.idempotent_replayed = outcome.replayed;
        self.error = outcome.error;
    }
}

/// Replaces `buf`'s text with `s` cut to `max` bytes, in place.
fn set(buf: &mut String, s: &str, max: usize) {
    buf.clear();
    if s.len() <= max {
        buf.push_str(s);
    } else {
        buf.push_str(&s[..boundary(s, max)]);
        buf.push('…');
    }
}

/// The method's name, without an allocation for the common ones.
fn method(name: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 7] = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"];
    match KNOWN.iter().find(|m| **m == name) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(cut(name, MAX_TEXT)),
    }
}

/// The error a reply's body describes, in either API's envelope (or a plain-text body).
pub fn error_summary(reply: &Reply) -> ErrorSummary {
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| cut(s, MAX_TEXT))
    };
    match serde_json::from_slice::<serde_json::Value>(&reply.body) {
        Ok(body) => match body.get("error") {
            // Stripe's envelope: {"error": {"type", "code", "param", "message", …}}.
            Some(e) if e.is_object() => ErrorSummary {
                kind: text(e.get("type")),
                code: text(e.get("code")),
                param: text(e.get("param")),
                message: text(e.get("message")),
            },
            // The native API's 401: {"error": "Unauthorized"}.
            Some(e) => ErrorSummary {
                message: text(Some(e)),
                ..ErrorSummary::default()
            },
            // The native envelope: {"code", "message", "http_status_code", "details"}.
            None => ErrorSummary {
                kind: text(body.get("code")),
                message: text(body.get("message")),
                ..ErrorSummary::default()
            },
        },
        // A bare text answer (the native API's unknown route).
        Err(_) => ErrorSummary {
            message: std::str::from_utf8(&reply.body)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| cut(s, MAX_TEXT)),
            ..ErrorSummary::default()
        },
    }
}

/// `s` cut to at most `max` bytes on a character boundary, ending with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let end = boundary(s, max);
    let mut out = String::with_capacity(end + '…'.len_utf8());
    out.push_str(&s[..end]);
    out.push('…');
    out
}

/// Where to cut `s` so that it and a closing `…` fit in `max` bytes.
fn boundary(s: &str, max: usize) -> usize {
    let mut end = max.saturating_sub('…'.len_utf8()).min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// One world's log behind its own lock, oldest first. The lock does not poison.
#[derive(Debug, Default)]
pub struct WorldLog(Mutex<Ring>);

/// A world's entries in a ring: once it holds as many as it may, the oldest is refilled where it
/// lies and the next one becomes the oldest. Nothing moves: taking the oldest out of a queue and
/// putting it back at the end copied the whole entry out of memory written long ago and into
/// another such place, on every request.
#[derive(Debug, Default)]
struct Ring {
    entries: Vec<Entry>,
    /// Where the oldest entry lies (0 until the ring has gone round).
    oldest: usize,
}

impl Ring {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The `i`-th oldest entry.
    fn get(&self, i: usize) -> &Entry {
        &self.entries[(self.oldest + i) % self.entries.len()]
    }

    /// Where the entry with this id is, counted from the oldest.
    fn position(&self, id: &str) -> Option<usize> {
        (0..self.len()).rev().find(|&i| self.get(i).id == id)
    }

    /// Entries `from..to` (counted from the oldest), newest first.
    fn newest_first(&self, from: usize, to: usize) -> Vec<Entry> {
        (from..to).rev().map(|i| self.get(i).clone()).collect()
    }
}

impl WorldLog {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a request, recycling the oldest entry when `capacity` are kept.
    fn push(&self, capacity: usize, seen: Seen<'_>, outcome: Outcome) {
        let mut ring = self.lock();
        let oldest = ring.oldest;
        if ring.len() >= capacity {
            if let Some(entry) = ring.entries.get_mut(oldest) {
                entry.fill(seen, outcome);
                ring.oldest = (oldest + 1) % ring.entries.len();
                return;
            }
        }
        let mut entry = Entry::empty();
        entry.fill(seen, outcome);
        // The newest lies just before the oldest (at the end until the ring has gone round).
        if oldest == 0 {
            ring.entries.push(entry);
        } else {
            ring.entries.insert(oldest, entry);
            ring.oldest += 1;
        }
    }
}

/// Where a page of the log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor<'a> {
    /// At the newest entry.
    Newest,
    /// Just older than the entry with this id.
    StartingAfter(&'a str),
    /// Just newer than the entry with this id.
    EndingBefore(&'a str),
}

/// A page of a world's log, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The entries.
    pub data: Vec<Entry>,
    /// Whether more lie beyond them (older ones, or with [`Cursor::EndingBefore`], newer ones).
    pub has_more: bool,
}

/// Every world's log, named as the model's worlds are (the key, or the key and a connected
/// account).
#[derive(Debug)]
pub struct RequestLogs {
    capacity: usize,
    /// foldhash, not SipHash: every request recorded looks its world up.
    worlds: DashMap<String, Arc<WorldLog>, foldhash::fast::RandomState>,
}

impl Default for RequestLogs {
    fn default() -> Self {
        RequestLogs::new(DEFAULT_CAPACITY)
    }
}

impl RequestLogs {
    /// Logs keeping the newest `capacity` requests of each world (0 records nothing).
    pub fn new(capacity: usize) -> RequestLogs {
        RequestLogs {
            capacity: capacity.min(MAX_CAPACITY),
            worlds: DashMap::default(),
        }
    }

    /// How many requests each world keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records a request and its reply in the log of the world named `world`, dropping the
    /// oldest request when the log is full. A world without a log yet gets one only if `exists`
    /// says the world exists: the log never stands for a world that is not there.
    pub fn record(
        &self,
        world: &str,
        seen: Seen<'_>,
        reply: &Reply,
        exists: impl FnOnce() -> bool,
    ) {
        if self.capacity == 0 {
            return;
        }
        let outcome = Outcome::of(reply);
        // The common case: one lookup, the world's log held by the map's read guard.
        if let Some(log) = self.worlds.get(world) {
            log.push(self.capacity, seen, outcome);
            return;
        }
        if exists() {
            let log = self.worlds.entry(world.to_string()).or_default().clone();
            log.push(self.capacity, seen, outcome);
        }
    }

    /// A page of the world's log, newest first: up to `limit` entries from `cursor`. `None` when
    /// the cursor names no entry the log holds.
    pub fn page(&self, world: &str, limit: usize, cursor: Cursor<'_>) -> Option<Page> {
        let Some(log) = self.worlds.get(world).map(|l| l.clone()) else {
            return match cursor {
                Cursor::Newest => Some(Page::default()),
                _ => None,
            };
        };
        let entries = log.lock();
        let position = |id: &str| entries.position(id);
        // Entries are oldest first: newest first is a walk down from the back.
        Some(match cursor {
            Cursor::Newest => walk_down(&entries, entries.len(), limit),
            Cursor::StartingAfter(id) => walk_down(&entries, position(id)?, limit),
            Cursor::EndingBefore(id) => {
                let from = position(id)? + 1;
                let to = entries.len().min(from.saturating_add(limit));
                Page {
                    data: entries.newest_first(from, to),
                    has_more: to < entries.len(),
                }
            }
        })
    }

    /// Forgets the world's log. Returns whether it had one.
    pub fn reset(&self, world: &str) -> bool {
        self.worlds.remove(world).is_some()
    }
}

/// Up to `limit` entries older than index `before`, newest first.
fn walk_down(entries: &Ring, before: usize, limit: usize) -> Page {
    let from = before.saturating_sub(limit);
    Page {
        data: entries.newest_first(from, before),
        has_more: from > 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str) -> Seen<'_> {
        Seen {
            id,
            at: 0,
            method: "GET",
            path: "/v1/customers",
            query: Some("limit=3"),
            api: "stripe",
            idempotency_key: None,
            took: Duration::from_micros(5),
        }
    }

    fn record(logs: &RequestLogs, world: &str, id: &str) {
        logs.record(world, seen(id), &Reply::text(200, "{}"), || true);
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.data.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn keeps_the_newest_and_pages_newest_first() {
        let logs = RequestLogs::new(3);
        for id in ["a", "b", "c", "d"] {
            record(&logs, "w", id);
        }
        let all = logs.page("w", 10, Cursor::Newest).unwrap();
        assert_eq!(ids(&all), ["d", "c", "b"]);
        assert!(!all.has_more);
        let first = logs.page("w", 2, Cursor::Newest).unwrap();
        assert_eq!((ids(&first), first.has_more), (vec!["d", "c"], true));
        let next = logs.page("w", 2, Cursor::StartingAfter("c")).unwrap();
        assert_eq!((ids(&next), next.has_more), (vec!["b"], false));
        let back = logs.page("w", 1, Cursor::EndingBefore("b")).unwrap();
        assert_eq!((ids(&back), back.has_more), (vec!["c"], true));
        // "a" was dropped: it is no cursor any more.
        assert!(logs.page("w", 2, Cursor::StartingAfter("a")).is_none());
        assert!(logs.page("other", 2, Cursor::StartingAfter("a")).is_none());
        assert!(logs
            .page("other", 2, Cursor::Newest)
            .unwrap()
            .data
            .is_empty());
        assert!(logs.reset("w"));
        assert!(logs.page("w", 2, Cursor::Newest).unwrap().data.is_empty());
    }

    #[test]
    fn a_full_log_goes_round_and_keeps_its_order() {
        let logs = RequestLogs::new(3);
        let ids_sent = ["a", "b", "c", "d", "e", "f", "g", "h"];
        for (n, id) in ids_sent.iter().enumerate() {
            record(&logs, "w", id);
            let page = logs.page("w", 10, Cursor::Newest).unwrap();
            let newest: Vec<&str> = ids_sent[n.saturating_sub(2)..=n]
                .iter()
                .rev()
                .copied()
                .collect();
            assert_eq!(ids(&page), newest, "after {id}");
        }
        let back = logs.page("w", 1, Cursor::EndingBefore("f")).unwrap();
        assert_eq!((ids(&back), back.has_more), (vec!["g"], true));
        let next = logs.page("w", 5, Cursor::StartingAfter("g")).unwrap();
        assert_eq!((ids(&next), next.has_more), (vec!["f"], false));
    }

    #[test]
    fn zero_capacity_records_nothing() {
        let logs = RequestLogs::new(0);
        record(&logs, "w", "a");
        assert!(!logs.reset("w"));
    }

    #[test]
    fn a_world_that_does_not_exist_gets_no_log() {
        let logs = RequestLogs::new(3);
        logs.record("w", seen("a"), &Reply::text(200, ""), || false);
        assert!(!logs.reset("w"));
    }

    #[test]
    fn a_recycled_entry_says_only_what_its_new_request_was() {
        let logs = RequestLogs::new(1);
        let mut first = seen("req_first_with_a_long_id");
        first.idempotency_key = Some("key-1");
        first.method = "PURGE";
        let error = Reply::json(
            400,
            &serde_json::json!({"error": {"type": "invalid_request_error", "message": "No."}}),
        );
        logs.record("w", first, &error, || true);
        let mut second = seen("b");
        second.query = None;
        logs.record("w", second, &Reply::text(200, "{}"), || true);
        let page = logs.page("w", 10, Cursor::Newest).unwrap();
        let fresh = Entry::new(second, &Reply::text(200, "{}"));
        assert_eq!(
            serde_json::to_value(&page.data[0]).unwrap(),
            serde_json::to_value(&fresh).unwrap()
        );
        assert_eq!(page.data[0].path, "/v1/customers");
    }

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcdef", 5), "ab…");
        assert_eq!(cut("ééé", 5), "é…");
        assert!(cut(&"é".repeat(1000), MAX_TEXT).len() <= MAX_TEXT);
    }

    #[test]
    fn reads_both_envelopes() {
        let stripe = Reply::json(
            400,
            &serde_json::json!({"error": {"type": "invalid_request_error", "code": "parameter_missing", "param": "customer", "message": "Missing required param: customer."}}),
        );
        assert_eq!(
            error_summary(&stripe),
            ErrorSummary {
                kind: Some("invalid_request_error".into()),
                code: Some("parameter_missing".into()),
                param: Some("customer".into()),
                message: Some("Missing required param: customer.".into()),
            }
        );
        let native = Reply::json(
            404,
            &serde_json::json!({"code": "not_found", "message": "Customer not found", "http_status_code": 404}),
        );
        assert_eq!(error_summary(&native).kind.as_deref(), Some("not_found"));
        let text = Reply::text(404, "404 page not found");
        assert_eq!(
            error_summary(&text).message.as_deref(),
            Some("404 page not found")
        );
    }
}
