//! Persistence (`--data-dir`): every world survives a restart, and every write acknowledged to a
//! client survives the emulator being killed.
//!
//! The store is a journal of requests in an SQLite file ([`db`]). A request that changes a world is
//! stored, with everything it read from outside itself (its [`crate::tape`]: the instants of the
//! system clock, random words and names, environment variables), and committed before its answer is
//! sent; concurrent requests share one commit. At start-up the journal is replayed through the same
//! router, on the same tapes, which makes the same worlds, ids and timestamps included.
//!
//! Records are numbered under the world's lock (the [`crate::model::Sequencer`] the store calls
//! at the end of every locked section), so two requests to one world replay in the order they were
//! applied, and the writer acknowledges a record only once every record numbered before it is
//! committed: what a client was told is always a prefix of the journal.
//!
//! Which requests are stored: every request other than `GET`/`HEAD` that reached a world, and a
//! `GET` that changed one (a read posts what is due on the world's clock first). Deliveries of
//! webhooks are not requests: their attempts and `pending_webhooks` counts are not stored, and
//! replayed requests send no webhooks.

pub mod db;
mod snapshot;

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::http::{Reply, Request};
use crate::model::Sequencer;
use crate::tape;

/// A request as stored in the journal.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredRequest {
    /// The world it was applied to (the first one it locked).
    pub world: String,
    /// HTTP method.
    pub method: String,
    /// Path, still percent-encoded.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Headers, names and raw values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body bytes.
    #[serde(with = "serde_bytes_compat")]
    pub body: Vec<u8>,
    /// Its `Request-Id`.
    pub request_id: String,
    /// What it read from outside itself.
    pub tape: Vec<tape::Item>,
}

/// Bodies as one binary value rather than a list of numbers.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// What this thread's request has done to the worlds so far.
#[derive(Debug, Default)]
struct Context {
    /// A request is being served on this thread with the journal on.
    active: bool,
    /// It is a `GET` or `HEAD`: stored only if it changed a world.
    read: bool,
    /// It changed a world (or made one).
    changed: bool,
    /// The first world it locked.
    world: Option<String>,
    /// Its number in the journal, once it has one.
    seq: Option<u64>,
    /// Numbers it took for earlier sections and gave up for a later one's: the writer is told,
    /// so that it does not wait for them.
    skipped: Vec<u64>,
}

thread_local! {
    static CONTEXT: RefCell<Context> = RefCell::new(Context::default());
}

/// The journal's numbering: the store's sequencer, which numbers each request's record under the
/// world's lock, so that records replay in the order their requests were applied.
#[derive(Debug, Default)]
pub struct Numbering {
    next: AtomicU64,
}

impl Numbering {
    fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }
}

impl Sequencer for Numbering {
    fn section(&self, world: &str, changed: bool) {
        CONTEXT.with(|c| {
            let mut c = c.borrow_mut();
            if !c.active {
                return;
            }
            c.changed |= changed;
            if c.world.is_none() {
                c.world = Some(world.to_string());
            }
            // The number of the last locked section that makes the request worth storing: the one
            // whose order against other requests' sections matters.
            if !c.read || c.changed {
                let seq = self.take();
                if let Some(earlier) = c.seq.replace(seq) {
                    c.skipped.push(earlier);
                }
            }
        })
    }
}

/// The open journal of a running emulator.
#[derive(Debug)]
pub struct Journal {
    numbering: Arc<Numbering>,
    jobs: Mutex<Option<std::sync::mpsc::Sender<db::Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What opening a data directory found and did.
#[derive(Debug, Clone, Default)]
pub struct Opened {
    /// Worlds loaded from snapshots.
    pub snapshots: usize,
    /// Requests replayed from the journal.
    pub replayed: u64,
    /// Replayed requests that panicked (each is logged; the world is as the panic left it, as it
    /// was when the request was first served).
    pub failed: u64,
    /// How long loading took.
    pub elapsed: std::time::Duration,
}

impl Journal {
    /// Opens the store in `dir`, loads every world it holds into `app` (which must be fresh), and
    /// starts the writer.
    pub fn open(app: &Arc<App>, dir: &Path) -> Result<(Journal, Opened), String> {
        let started = std::time::Instant::now();
        let numbering = Arc::new(Numbering::default());
        let conn = db::open(dir)?;
        // Before any world is made, by a snapshot or a replayed request.
        if let Some(salt) = db::world_salt(&conn)? {
            if !app.store.set_world_salt(salt) {
                return Err("the application's worlds already have a salt".into());
            }
        }
        let mut opened = Opened::default();
        let mut covered = std::collections::HashMap::new();
        for (world, seq, document) in db::snapshots(&conn)? {
            snapshot::load(app, &world, &document)
                .map_err(|e| format!("the stored snapshot of a world cannot be read: {e}"))?;
            covered.insert(world, seq);
            opened.snapshots += 1;
        }
        let mut bad: Option<String> = None;
        db::each_record(&conn, &covered, |seq, record| {
            if bad.is_some() {
                return;
            }
            match rmp_serde::from_slice::<StoredRequest>(record) {
                Ok(stored) => {
                    opened.replayed += 1;
                    if !replay(app, stored) {
                        opened.failed += 1;
                    }
                }
                Err(e) => bad = Some(format!("journal record {seq} cannot be read: {e}")),
            }
        })?;
        if let Some(bad) = bad {
            return Err(bad);
        }
        let last = db::last_seq(&conn)?;
        let next = last + 1;
        numbering.next.store(next, Ordering::SeqCst);
        // From now on (not during the replay above), every locked section is numbered.
        if !app.store.set_sequencer(numbering.clone()) {
            return Err("the application's worlds are already journaled".into());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || db::writer(conn, rx, next))
            .map_err(|e| format!("cannot start the journal writer: {e}"))?;
        opened.elapsed = started.elapsed();
        Ok((
            Journal {
                numbering,
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
            },
            opened,
        ))
    }

    fn send(&self, job: db::Job) -> bool {
        match self.jobs.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    /// Waits until every record sent so far is committed.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.send(db::Job::Flush(tx)) {
            let _ = rx.recv();
        }
    }

    /// Stores a snapshot of every world whose journal is longer than nothing, then stops the
    /// writer. Called at a clean shutdown, so that the next start loads snapshots instead of
    /// replaying requests.
    pub fn close(&self, app: &App) {
        self.flush();
        for world in app.store.world_names() {
            if let Err(e) = self.snapshot(app, &world) {
                tracing::warn!("could not store a snapshot of a world: {e}");
            }
        }
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }

    /// Stores the world named `world` as a snapshot covering every record applied to it so far,
    /// and drops those records.
    pub fn snapshot(&self, app: &App, world: &str) -> Result<(), String> {
        // Taken under the world's lock: no record of this world can be numbered meanwhile, so the
        // snapshot holds exactly the records numbered before `seq`.
        let Some((seq, document)) = snapshot::save(app, world, || {
            self.numbering.next.load(Ordering::SeqCst).saturating_sub(1)
        })?
        else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        if !self.send(db::Job::Snapshot {
            world: world.to_string(),
            seq,
            document: Some(document),
            done: tx,
        }) {
            return Err("the journal is closed".into());
        }
        rx.recv()
            .unwrap_or_else(|_| Err("the journal writer stopped".into()))
    }
}

/// Opens the data directory of `app`'s configuration, if it has one, loading its worlds into
/// `app` (which must be fresh) before any request is served.
pub fn attach(app: &Arc<App>) -> Result<Option<Opened>, String> {
    let Some(dir) = app.config.data_dir.clone() else {
        return Ok(None);
    };
    let (journal, opened) = Journal::open(app, &dir)?;
    app.journal
        .set(Arc::new(journal))
        .map_err(|_| "the application's journal is already open".to_string())?;
    Ok(Some(opened))
}

/// Closes `app`'s journal, if it has one (see [`Journal::close`]).
pub fn detach(app: &App) {
    if let Some(journal) = app.journal.get() {
        journal.close(app);
    }
}

impl crate::app::Journaling for Journal {
    fn begin(&self, read: bool) {
        begin(read)
    }

    fn finish(
        &self,
        request: &Request,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<(), String>>> {
        finish(self, request)
    }

    fn close(&self, app: &App) {
        Journal::close(self, app)
    }
}

/// Starts watching what the request about to be served on this thread does to the worlds.
fn begin(read: bool) {
    tape::record();
    CONTEXT.with(|c| {
        *c.borrow_mut() = Context {
            active: true,
            read,
            ..Context::default()
        }
    });
}

/// Ends the request served on this thread: when it must be stored, sends its record to the writer
/// and returns what tells when it is committed.
fn finish(
    journal: &Journal,
    request: &Request,
) -> Option<tokio::sync::oneshot::Receiver<Result<(), String>>> {
    let items = tape::stop();
    let context = CONTEXT.with(|c| std::mem::take(&mut *c.borrow_mut()));
    for seq in context.skipped {
        journal.send(db::Job::Skip(seq));
    }
    // Every locked section of a request that writes numbers it, and so does a section of a read
    // that changed its world: a request without a number changed nothing.
    let seq = context.seq?;
    let world = context.world?;
    let stored = StoredRequest {
        world: world.clone(),
        method: request.method.as_str().to_string(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: request.body.to_vec(),
        request_id: request.request_id.clone(),
        tape: items,
    };
    let record = match rmp_serde::to_vec(&stored) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("could not encode a request for the journal: {e}");
            Vec::new()
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Sent even when encoding failed (as an empty record, skipped at replay): the writer must see
    // every number, or it would wait for the gap forever.
    let row = db::Row { seq, world, record };
    if journal.send(db::Job::Append(row, tx)) {
        Some(rx)
    } else {
        None
    }
}

/// What tells, once a stored request is committed, whether it could be.
pub type Commit = tokio::sync::oneshot::Receiver<Result<(), String>>;

/// Serves `request` through the router, as the journal of `app` (if it has one) sees it: the
/// facade's answer, or the panic it raised (which costs this request only), and, when the request
/// changed a world and must be stored, what tells once it is committed. The server and
/// [`dispatch_stored`] both serve requests so.
pub fn dispatch(
    app: &App,
    api: crate::router::Api,
    request: &Request,
) -> (std::thread::Result<Reply>, Option<Commit>) {
    let journal = app.journal.get();
    if let Some(journal) = journal {
        journal
            .begin(request.method == hyper::Method::GET || request.method == hyper::Method::HEAD);
    }
    // Without a journal nothing is recorded, and the request is one instant.
    let held = journal.is_none().then(tape::hold_clock);
    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::router::dispatch(app, api, request)
    }));
    drop(held);
    (reply, journal.and_then(|j| j.finish(request)))
}

/// Reads `request` as far as its facade can without its world ([`crate::router::prepare`], given
/// the `world` that [`crate::router::world_of`] read), for a server that keeps the world's turn
/// for the rest ([`finish_prepared`]): the reading, or the panic it raised. `None` when `app` has
/// a journal: a request is recorded whole, so it is served whole by [`dispatch`] in its world's
/// turn, in the order the journal keeps.
pub fn prepare(
    app: &App,
    api: crate::router::Api,
    world: Option<&str>,
    request: &Request,
) -> Option<std::thread::Result<crate::router::Prepared>> {
    if app.journal.get().is_some() {
        return None;
    }
    Some(one_instant(|| {
        crate::router::prepare(app, api, world, request)
    }))
}

/// Serves what is left of `request`, read by [`prepare`] (so with no journal), as [`dispatch`]
/// would: the answer, or the panic it raised.
pub fn finish_prepared(
    app: &App,
    api: crate::router::Api,
    request: &Request,
    prepared: crate::router::Prepared,
) -> std::thread::Result<Reply> {
    one_instant(|| prepared.finish(app, api, request))
}

/// Runs `f` with the clock held (one instant, as a request without a journal is) and its panic
/// contained.
fn one_instant<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let _held = tape::hold_clock();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

/// Serves `request` from inside the emulator (not from a client), stored as a request from a
/// client is when the worlds are: the answer comes once the request is committed. Blocks: call it
/// from a thread that may block.
pub fn dispatch_stored(
    app: &App,
    api: crate::router::Api,
    request: &Request,
) -> Result<Reply, String> {
    let (reply, stored) = dispatch(app, api, request);
    let reply = reply.map_err(|_| "the request panicked".to_string())?;
    match stored {
        None => Ok(reply),
        // Polled rather than `blocking_recv`, which refuses to run on a runtime's thread: the
        // writer is a thread of its own, so waiting here cannot hold it up.
        Some(mut done) => loop {
            match done.try_recv() {
                Ok(Ok(())) => break Ok(reply),
                Ok(Err(e)) => break Err(format!("the request could not be stored: {e}")),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                    std::thread::sleep(std::time::Duration::from_micros(200))
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    break Err("the journal writer stopped".to_string())
                }
            }
        },
    }
}

/// Replays one stored request on `app`; false when it panicked.
fn replay(app: &App, stored: StoredRequest) -> bool {
    if stored.method.is_empty() {
        return true;
    }
    let mut headers = hyper::HeaderMap::new();
    for (name, value) in &stored.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    let request = Request {
        method: hyper::Method::from_bytes(stored.method.as_bytes()).unwrap_or(hyper::Method::POST),
        path: stored.path,
        query: stored.query,
        headers,
        body: Bytes::from(stored.body),
        request_id: stored.request_id,
    };
    let api = crate::router::api_of(&request.path, &request.headers);
    tape::replay(stored.tape);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::router::dispatch(app, api, &request)
    }));
    tape::stop();
    result.is_ok()
}

/// The answer a request gets when it was applied but could not be stored.
pub fn not_stored(api: crate::router::Api, why: &str) -> Reply {
    crate::router::refusal(
        api,
        500,
        &format!("The emulator applied this request but could not store it in its data directory ({why}); it will not survive a restart."),
    )
}
