//! Webhook delivery: every event a world produces goes, signed, to each of the world's enabled
//! endpoints that want its type, and to the forwarding addresses the emulator was started with.
//!
//! Nothing here runs under a world's lock, and nothing here blocks a request: producing an event
//! only enqueues. Each destination (an endpoint of one world, or a forwarding address for one
//! world) has its own bounded queue and its own task, started when something is queued and ended
//! once the queue has stayed empty for a few seconds, so a slow or dead destination holds up
//! nobody else. A destination's deliveries are sent in the order their events were produced, over
//! one kept-alive connection: several at once (pipelined) to a destination that
//! answers them all with success, one at a time to any other. A failed delivery is retried on its
//! schedule before anything more is sent to its destination, so a destination that comes back
//! gets what it missed, in order, each event with its original id (at least once). A full queue
//! drops its oldest waiting delivery, with a warning and a count.
//!
//! Every attempt is recorded per world (bounded), for `GET /_emulator/webhook_deliveries`.

mod sender;
pub mod signature;

use std::collections::{HashMap, VecDeque};
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::ids::Key;
use crate::model::WebhookTarget;
use crate::time::{real_now, to_secs};
use sender::{Outcome, Sender};

/// One event as the event log rendered it, ready to send: what [`crate::App::events_produced`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    /// `evt_…`.
    pub id: String,
    /// The event's type (`customer.created`, …).
    pub kind: String,
    /// When it happened, in unix seconds.
    pub created: i64,
    /// The body to send: the event's JSON, byte for byte what is signed.
    pub json: Bytes,
    /// Its `pending_webhooks`, counted up as it is queued for each endpoint and down as each
    /// endpoint acknowledges it (forwards count neither way).
    pub pending: Pending,
}

/// An event's `pending_webhooks`, shared by the world's event log and the event's deliveries.
///
/// A success is counted down here, by the delivery's task, without the world's lock: a sender
/// that waited for that lock behind a request (or held a request up behind it) slept on the
/// lock, and with it the worker thread it ran on and every connection of that worker. The
/// default counts nothing and reads 0 (an event no endpoint receives, or one read back from a
/// document: deliveries are not part of a world).
#[derive(Debug, Clone, Default)]
pub struct Pending(Option<Arc<AtomicU32>>);

impl Pending {
    /// A count at 0 that deliveries move.
    pub fn counting() -> Self {
        Pending(Some(Arc::new(AtomicU32::new(0))))
    }

    /// The count now.
    pub fn get(&self) -> u32 {
        self.0.as_ref().map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Counts `n` more endpoints the event is queued for (nothing for a count of nothing).
    pub fn add(&self, n: u32) {
        if let Some(count) = &self.0 {
            count.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts one acknowledgement; never below 0.
    pub fn count_down(&self) {
        if let Some(count) = &self.0 {
            let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

/// Two counts are equal when they read the same.
impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Pending {}

/// The `User-Agent` Stripe's deliveries carry.
pub const USER_AGENT: &str = "Stripe/1.0 (+https://stripe.com/docs/webhooks)";

/// When a failed delivery is tried again: the pause before each retry, and how long one attempt
/// may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The pause before retry 1, 2, …; a delivery gets one attempt more than there are pauses.
    pub delays: Vec<Duration>,
    /// How long an attempt may take before it counts as failed.
    pub timeout: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::compressed()
    }
}

impl RetrySchedule {
    /// The default, for tests and local work: retries after 1, 2, 4, 8 and 16 seconds (six
    /// attempts within about half a minute), each attempt given 10 seconds.
    pub fn compressed() -> Self {
        RetrySchedule {
            delays: [1, 2, 4, 8, 16].map(Duration::from_secs).to_vec(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Stripe's live-mode shape: exponential back-off for up to three days. Retries after 1, 3, 9,
    /// 27, 81 and 243 minutes, then every 12 hours, the last one 72 hours after the first attempt
    /// (13 attempts); each attempt given 30 seconds.
    pub fn stripe() -> Self {
        let mut delays: Vec<u64> = vec![60, 180, 540, 1620, 4860, 14580];
        delays.extend([43_200; 5]);
        // The remainder up to exactly three days.
        delays.push(72 * 3600 - delays.iter().sum::<u64>());
        RetrySchedule {
            delays: delays.into_iter().map(Duration::from_secs).collect(),
            timeout: Duration::from_secs(30),
        }
    }

    /// `compressed`, `stripe`, or the pauses in seconds separated by commas (`0.5,1,2`; an empty
    /// list, `none`, means a single attempt), with the compressed schedule's timeout.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "compressed" => return Ok(Self::compressed()),
            "stripe" => return Ok(Self::stripe()),
            "none" => {
                return Ok(RetrySchedule {
                    delays: Vec::new(),
                    ..Self::compressed()
                })
            }
            _ => {}
        }
        let delays = s
            .split(',')
            .map(|d| {
                d.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && (0.0..=MAX_DELAY_SECS).contains(x))
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        format!("`{d}` is not a pause in seconds (0 to {MAX_DELAY_SECS})")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.len() > MAX_RETRIES {
            return Err(format!("at most {MAX_RETRIES} retries"));
        }
        Ok(RetrySchedule {
            delays,
            ..Self::compressed()
        })
    }

    /// How many attempts a delivery gets.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }
}

/// Why an address cannot receive deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    /// Not an absolute URL with a host.
    Malformed,
    /// A scheme other than `http` or `https`.
    Scheme,
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlError::Malformed => "not an absolute URL with a host",
            UrlError::Scheme => "only http and https URLs can receive webhooks",
        })
    }
}

/// Whether `url` can receive deliveries: an absolute `http` or `https` URL with a host.
pub fn check_url(url: &str) -> Result<(), UrlError> {
    let uri: hyper::Uri = url.parse().map_err(|_| UrlError::Malformed)?;
    let scheme = uri.scheme_str().ok_or(UrlError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(UrlError::Scheme);
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(UrlError::Malformed),
    }
}

/// The longest pause a custom schedule may have: three days.
const MAX_DELAY_SECS: f64 = 3.0 * 86_400.0;
/// The most retries a custom schedule may have.
const MAX_RETRIES: usize = 100;

/// Webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// When failed deliveries are tried again.
    pub retry: RetrySchedule,
    /// How many deliveries may wait for one destination; past it the oldest is dropped.
    pub queue_capacity: usize,
    /// Addresses that receive every world's events (`--forward-to`).
    pub forward_to: Vec<String>,
    /// The event types forwarded (`*` for all).
    pub forward_events: Vec<String>,
    /// The secret forwarded deliveries are signed with; one is made up when forwarding without one.
    pub forward_secret: Option<String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            retry: RetrySchedule::compressed(),
            queue_capacity: 1000,
            forward_to: Vec::new(),
            forward_events: vec!["*".to_string()],
            forward_secret: None,
        }
    }
}

/// How many delivery records a world keeps; the oldest go first.
pub const MAX_RECORDS: usize = 1000;

/// The most deliveries a destination that takes them pipelined has on the wire at once.
/// On a loaded machine an answer's round trip is a few milliseconds, however small; at a few
/// thousand events a second a smaller window would let the queue overflow.
const WINDOW: usize = 256;
/// The most body bytes one batch carries (a batch holds at least one delivery, whatever its size).
const WINDOW_BYTES: usize = 1024 * 1024;

/// Where one delivery goes, within a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Destination {
    /// A webhook endpoint, by key.
    Endpoint(Key),
    /// A forwarding address, by its place in the list.
    Forward(usize),
}

/// An endpoint an event goes to, borrowed from its world: what [`Deliveries::enqueue_event`]
/// takes.
#[derive(Debug, Clone)]
pub struct TargetRef<'a> {
    /// The endpoint.
    pub endpoint: Key,
    /// Its address.
    pub url: &'a str,
    /// Its signing secret.
    pub secret: &'a str,
    /// The body this endpoint receives when it is not the event's own (the event rendered at the
    /// endpoint's API version).
    pub json: Option<Bytes>,
}

/// Where a destination's deliveries go and how they are signed: made once per destination and
/// shared by its deliveries and their records, until the endpoint's address or secret changes.
#[derive(Debug)]
struct Target {
    /// `we_…`; none for a forwarding address.
    endpoint: Option<String>,
    url: String,
    secret: String,
    signer: signature::Signer,
}

impl Target {
    fn new(endpoint: Option<String>, url: &str, secret: &str) -> Self {
        Target {
            endpoint,
            url: url.to_string(),
            secret: secret.to_string(),
            signer: signature::Signer::new(secret),
        }
    }
}

/// One (event, destination) delivery.
#[derive(Debug)]
struct Delivery {
    /// Where its record stands, shared with the world's log.
    progress: Arc<Mutex<Progress>>,
    event: Arc<EventRef>,
    target: Arc<Target>,
    /// Attempts made so far.
    attempts: u32,
}

/// What one destination has waiting.
#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Delivery>,
    /// Whether a task is working through it.
    running: bool,
    /// Where its deliveries go now.
    target: Option<Arc<Target>>,
}

/// A destination's queue, shared by the producers and its task, how producers wake the task, and
/// its world's delivery records.
#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    /// The records of every destination of the world, reached through the queue rather than
    /// looked up by the world's name under a lock over every world's records.
    log: Arc<Mutex<WorldLog>>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Queued, or its attempt is under way.
    Pending,
    /// A 2xx answered it.
    Succeeded,
    /// Every attempt failed.
    Failed,
    /// An attempt failed; another is due at `next_retry_at`.
    Retrying,
    /// Pushed out of a full queue before it was sent.
    Dropped,
}

/// One delivery as `GET /_emulator/webhook_deliveries` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    /// `whdel_…`, in the order deliveries were queued.
    pub id: String,
    /// `"emulator.webhook_delivery"`.
    pub object: &'static str,
    /// The event's id.
    pub event: String,
    /// The event's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The endpoint's id (`null` for a forwarding address).
    pub endpoint: Option<String>,
    /// Where it goes.
    pub url: String,
    /// Where it stands.
    pub status: Status,
    /// How many attempts have been made (one under way included).
    pub attempts: u32,
    /// The last attempt's HTTP status, if it got an answer.
    pub response_code: Option<u16>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When the next attempt is due (unix seconds, real time).
    pub next_retry_at: Option<i64>,
    /// When it was queued (unix seconds, real time).
    pub created: i64,
}

/// A delivery's record as kept: the event and the target shared, not copied, as every delivery
/// makes one; a [`Record`] is made of it when read.
#[derive(Debug)]
struct Entry {
    event: Arc<EventRef>,
    target: Arc<Target>,
    created: i64,
    progress: Arc<Mutex<Progress>>,
}

/// What changes in a delivery's record as its attempts are made. Its own lock, shared by the
/// world's log and the delivery: the delivery's task updates it without the log's lock, which the
/// requests whose events are queued take (a task that waited on it, or held it while a request
/// waited, slept on the lock with the worker thread it ran on).
#[derive(Debug)]
struct Progress {
    status: Status,
    attempts: u32,
    response_code: Option<u16>,
    error: Option<String>,
    next_retry_at: Option<i64>,
}

impl Entry {
    /// The record of a delivery just queued (pending, no attempt made), and its progress.
    fn pending(
        event: Arc<EventRef>,
        target: Arc<Target>,
        created: i64,
    ) -> (Self, Arc<Mutex<Progress>>) {
        let progress = Arc::new(Mutex::new(Progress {
            status: Status::Pending,
            attempts: 0,
            response_code: None,
            error: None,
            next_retry_at: None,
        }));
        let entry = Entry {
            event,
            target,
            created,
            progress: progress.clone(),
        };
        (entry, progress)
    }

    fn record(&self, seq: u64) -> Record {
        let progress = lock(&self.progress);
        Record {
            id: format!("whdel_{seq:08}"),
            object: "emulator.webhook_delivery",
            event: self.event.id.clone(),
            kind: self.event.kind.clone(),
            endpoint: self.target.endpoint.clone(),
            url: self.target.url.clone(),
            status: progress.status,
            attempts: progress.attempts,
            response_code: progress.response_code,
            error: progress.error.clone(),
            next_retry_at: progress.next_retry_at,
            created: self.created,
        }
    }
}

/// One world's delivery records, and the deliveries dropped per destination.
#[derive(Debug, Default)]
struct WorldLog {
    records: Records,
    dropped: HashMap<Destination, (Option<String>, String, u64)>,
}

/// A world's newest [`MAX_RECORDS`] delivery records, oldest first, by number.
///
/// Numbers are handed out under the lock of the world's log, so each world's records arrive in
/// increasing order: a record is added at the back and the oldest leaves from the front. Every
/// delivery adds a record, and an ordered tree's node splits and merges cost more than that on
/// the path of a create that delivers.
#[derive(Debug, Default)]
struct Records(VecDeque<(u64, Entry)>);

impl Records {
    /// Adds the record numbered `seq`, newer than any kept, and forgets the oldest past the cap.
    fn push(&mut self, seq: u64, entry: Entry) {
        debug_assert!(self.0.back().is_none_or(|(last, _)| *last < seq));
        self.0.push_back((seq, entry));
        while self.0.len() > MAX_RECORDS {
            self.0.pop_front();
        }
    }

    /// The records, newest first.
    fn newest_first(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.0.iter().rev().map(|(n, e)| (*n, e))
    }
}

/// The deliveries one destination lost to a full queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Dropped {
    /// The endpoint's id (`null` for a forwarding address).
    pub endpoint: Option<String>,
    /// Its address.
    pub url: String,
    /// How many deliveries were dropped.
    pub count: u64,
}

/// The delivery machinery of one server: a shared handle to its [`Deliveries`].
#[derive(Debug)]
pub struct Webhooks(Arc<Deliveries>);

impl Deref for Webhooks {
    type Target = Deliveries;

    fn deref(&self) -> &Deliveries {
        &self.0
    }
}

/// Called with each batch's successful deliveries to endpoints: the world and the events' ids.
type OnDelivered = Box<dyn Fn(&str, &[&str]) + Send + Sync>;

/// Queues, their records and the settings; the tasks hold it too.
pub struct Deliveries {
    /// Itself, for the tasks it starts.
    me: Weak<Deliveries>,
    config: WebhookConfig,
    /// The forwarding secret, fixed or made up.
    forward_secret: Option<Arc<str>>,
    /// One target per forwarding address, shared by every world.
    forward_targets: Vec<Arc<Target>>,
    /// Per world, its destinations' queues.
    queues: Mutex<HashMap<String, HashMap<Destination, Arc<Shared>>>>,
    /// Per world, its delivery records: each world's behind a lock of its own.
    logs: Mutex<HashMap<String, Arc<Mutex<WorldLog>>>>,
    next_record: std::sync::atomic::AtomicU64,
    /// Told of each success to an endpoint, for a program that watches them (the events'
    /// `pending_webhooks` count down through [`EventRef::pending`]).
    on_delivered: OnceLock<OnDelivered>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex; a panic elsewhere never makes delivery state unusable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Webhooks {
    /// The machinery for `config`; nothing runs until something is queued.
    pub fn new(config: WebhookConfig) -> Self {
        Webhooks(Arc::new_cyclic(|me| Deliveries::new(me.clone(), config)))
    }
}

impl Deliveries {
    fn new(me: Weak<Deliveries>, config: WebhookConfig) -> Self {
        let forward_secret: Option<Arc<str>> = (!config.forward_to.is_empty()).then(|| {
            config
                .forward_secret
                .clone()
                .unwrap_or_else(signature::new_secret)
                .into()
        });
        let forward_targets = match &forward_secret {
            Some(secret) => config
                .forward_to
                .iter()
                .map(|url| Arc::new(Target::new(None, url, secret)))
                .collect(),
            None => Vec::new(),
        };
        Deliveries {
            me,
            config,
            forward_secret,
            forward_targets,
            queues: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            next_record: std::sync::atomic::AtomicU64::new(1),
            on_delivered: OnceLock::new(),
            stop: watch::channel(false).0,
        }
    }

    /// Sets what is told of the successful deliveries to endpoints, a batch's at once: the world
    /// and the events' ids, in the order they were delivered (once; later calls are ignored).
    pub fn on_delivered(&self, f: impl Fn(&str, &[&str]) + Send + Sync + 'static) {
        let _ = self.on_delivered.set(Box::new(f));
    }

    /// The secret forwarded deliveries are signed with, when forwarding.
    pub fn forward_secret(&self) -> Option<&str> {
        self.forward_secret.as_deref()
    }

    /// The settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Stops every delivery task: attempts under way are abandoned and nothing more is sent.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Queues the deliveries of `events`, produced in `world`, to `targets` (the endpoints of each
    /// event, in the same order) and to every forwarding address whose types match. Returns, per
    /// event, how many endpoints (forwarding addresses not counted) will receive it.
    pub fn enqueue(
        &self,
        world: &str,
        events: &[EventRef],
        targets: Vec<Vec<WebhookTarget>>,
    ) -> Vec<u32> {
        let mut targets = targets.into_iter();
        events
            .iter()
            .map(|event| {
                let endpoints = targets.next().unwrap_or_default();
                self.enqueue_event(
                    world,
                    event.clone(),
                    endpoints.iter().map(|t| TargetRef {
                        endpoint: t.endpoint,
                        url: &t.url,
                        secret: &t.secret,
                        json: None,
                    }),
                )
            })
            .collect()
    }

    /// Queues the deliveries of one event produced in `world` to `endpoints` and to every
    /// forwarding address whose types match; how many endpoints will receive it. The event log's
    /// path: the endpoints are read in place, nothing of theirs is copied unless their address or
    /// secret changed since the last event.
    pub fn enqueue_event<'a>(
        &self,
        world: &str,
        event: EventRef,
        endpoints: impl IntoIterator<Item = TargetRef<'a>>,
    ) -> u32 {
        let event = Arc::new(event);
        let mut count = 0u32;
        for mut t in endpoints {
            count = count.saturating_add(1);
            let own = t.json.take().map(|json| {
                Arc::new(EventRef {
                    id: event.id.clone(),
                    kind: event.kind.clone(),
                    created: event.created,
                    json,
                    pending: event.pending.clone(),
                })
            });
            // Counted before it is queued: its task may count the success down at once.
            event.pending.add(1);
            self.push(
                world,
                Destination::Endpoint(t.endpoint),
                own.as_ref().unwrap_or(&event),
                Want::Endpoint(t),
            );
        }
        if self.forward_secret.is_some() && self.forwards(&event.kind) {
            for (i, target) in self.forward_targets.iter().enumerate() {
                self.push(
                    world,
                    Destination::Forward(i),
                    &event,
                    Want::Forward(target),
                );
            }
        }
        count
    }

    /// Whether events of `kind` go to the forwarding addresses (there are some, and
    /// `--forward-events` takes the type).
    pub fn forwarded(&self, kind: &str) -> bool {
        self.forward_secret.is_some() && !self.config.forward_to.is_empty() && self.forwards(kind)
    }

    /// Whether events of `kind` are forwarded.
    fn forwards(&self, kind: &str) -> bool {
        self.config
            .forward_events
            .iter()
            .any(|e| e == "*" || e == kind)
    }

    /// The queue of `to` in `world`, made if new.
    fn shared(&self, world: &str, to: Destination) -> Arc<Shared> {
        let mut queues = lock(&self.queues);
        let of_world = match queues.get_mut(world) {
            Some(q) => q,
            None => queues.entry(world.to_string()).or_default(),
        };
        of_world
            .entry(to)
            .or_insert_with(|| {
                Arc::new(Shared {
                    queue: Mutex::default(),
                    wake: Notify::new(),
                    log: self.world_log(world),
                })
            })
            .clone()
    }

    /// The records of `world`, made if new.
    fn world_log(&self, world: &str) -> Arc<Mutex<WorldLog>> {
        let mut logs = lock(&self.logs);
        match logs.get(world) {
            Some(log) => log.clone(),
            None => logs.entry(world.to_string()).or_default().clone(),
        }
    }

    fn push(&self, world: &str, to: Destination, event: &Arc<EventRef>, want: Want) {
        let shared = self.shared(world, to);
        let start = {
            let mut q = lock(&shared.queue);
            let target = match want {
                Want::Forward(t) => t.clone(),
                Want::Endpoint(t) => match &q.target {
                    Some(current) if current.url == t.url && current.secret == t.secret => {
                        current.clone()
                    }
                    _ => {
                        let id = crate::stripe::ids::render(
                            crate::stripe::ids::WEBHOOK_ENDPOINT,
                            t.endpoint,
                        );
                        let made = Arc::new(Target::new(Some(id), t.url, t.secret));
                        q.target = Some(made.clone());
                        made
                    }
                },
            };
            // The record first: the task may take the delivery as soon as it is queued. Its number
            // is drawn under the world's log's lock, so that a world's records arrive in order.
            let (entry, progress) =
                Entry::pending(event.clone(), target.clone(), to_secs(real_now()));
            {
                let mut log = lock(&shared.log);
                let seq = self.next_record.fetch_add(1, Ordering::Relaxed);
                log.records.push(seq, entry);
            }
            q.waiting.push_back(Delivery {
                progress,
                event: event.clone(),
                target,
                attempts: 0,
            });
            if q.waiting.len() > self.config.queue_capacity.max(1) {
                if let Some(old) = q.waiting.pop_front() {
                    self.dropped(world, &shared.log, to, old);
                }
            }
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            self.start_worker(world, shared);
        } else {
            shared.wake.notify_one();
        }
    }

    /// Notes a delivery pushed out of a full queue. The log is told of a destination's first drop
    /// and then of its 10th, 100th, …: a destination that falls behind drops thousands a second,
    /// and a line (a write) for each would slow the emulator down further.
    fn dropped(&self, world: &str, log: &Mutex<WorldLog>, to: Destination, d: Delivery) {
        let count = {
            let mut log = lock(log);
            {
                let mut r = lock(&d.progress);
                r.status = Status::Dropped;
                r.next_retry_at = None;
            }
            let entry = log
                .dropped
                .entry(to)
                .or_insert_with(|| (d.target.endpoint.clone(), d.target.url.clone(), 0));
            entry.2 += 1;
            entry.2
        };
        if count == 1 || (count % 10 == 0 && 10u64.pow(count.ilog10()) == count) {
            tracing::warn!(
                world = %world,
                event = %d.event.id,
                url = %d.target.url,
                dropped = count,
                "webhook queue full: the oldest waiting delivery was dropped"
            );
        }
    }

    fn start_worker(&self, world: &str, shared: Arc<Shared>) {
        let Some(me) = self.me.upgrade() else {
            lock(&shared.queue).running = false;
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(work(me, shared, world.into()));
            }
            Err(_) => {
                tracing::warn!("webhook deliveries queued outside a tokio runtime wait until the next is queued inside one");
                lock(&shared.queue).running = false;
            }
        }
    }

    /// The delivery records of `world`, newest first, at most `limit`, only those of `event` and
    /// of `endpoint` when given; and the drops per destination.
    pub fn deliveries(
        &self,
        world: &str,
        event: Option<&str>,
        endpoint: Option<&str>,
        limit: usize,
    ) -> (Vec<Record>, Vec<Dropped>) {
        let Some(log) = lock(&self.logs).get(world).cloned() else {
            return (Vec::new(), Vec::new());
        };
        let log = lock(&log);
        let records = log
            .records
            .newest_first()
            .filter(|(_, r)| event.is_none_or(|e| r.event.id == e))
            .filter(|(_, r)| endpoint.is_none_or(|e| r.target.endpoint.as_deref() == Some(e)))
            .take(limit)
            .map(|(seq, r)| r.record(seq))
            .collect();
        let mut dropped: Vec<Dropped> = log
            .dropped
            .values()
            .filter(|(e, _, _)| endpoint.is_none_or(|want| e.as_deref() == Some(want)))
            .map(|(endpoint, url, count)| Dropped {
                endpoint: endpoint.clone(),
                url: url.clone(),
                count: *count,
            })
            .collect();
        dropped.sort_by(|a, b| (&a.endpoint, &a.url).cmp(&(&b.endpoint, &b.url)));
        (records, dropped)
    }

    /// Forgets a world's records and its waiting deliveries (a reset world starts over). Its
    /// queues go too, with their connections once their tasks end; an attempt under way is
    /// finished.
    pub fn reset(&self, world: &str) {
        lock(&self.logs).remove(world);
        let removed = lock(&self.queues).remove(world);
        for shared in removed.into_iter().flat_map(HashMap::into_values) {
            lock(&shared.queue).waiting.clear();
        }
    }
}

/// The target a delivery is queued for: an endpoint as its world holds it (its target made again
/// only when its address or secret changed), or a forwarding address's.
enum Want<'a> {
    Endpoint(TargetRef<'a>),
    Forward(&'a Arc<Target>),
}

/// Whether `d` joins `batch`: a batch goes to one target, within the window.
fn fits(batch: &[Delivery], bytes: usize, window: usize, d: &Delivery) -> bool {
    match batch.first() {
        None => true,
        Some(first) => {
            batch.len() < window
                && bytes + d.event.json.len() <= WINDOW_BYTES
                && Arc::ptr_eq(&first.target, &d.target)
        }
    }
}

/// Works through one destination's queue, in batches over one kept-alive connection, until it has
/// been empty for `sender::IDLE` (then the connection is closed) or the server stops.
///
/// A destination that answered its last batch in full, every answer a success, on a connection it
/// keeps open, takes up to [`WINDOW`] deliveries at once, written together (pipelined) and
/// answered in order; any other gets one at a time. A failed delivery is retried on its schedule
/// before anything more is sent, the deliveries behind it waiting; those already sent behind it in
/// the same batch keep their own answers.
async fn work(me: Arc<Deliveries>, shared: Arc<Shared>, world: Arc<str>) {
    let mut stop = me.stop.subscribe();
    let retry = &me.config.retry;
    let mut sender: Option<(Arc<Target>, Sender)> = None;
    // Taken from the queue and not done: those of a batch that failed or went unanswered, oldest
    // first. They go before anything still waiting, and a full queue cannot drop them.
    let mut held: VecDeque<Delivery> = VecDeque::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let window = match &sender {
            Some((_, s)) if s.pipelining => WINDOW,
            _ => 1,
        };
        let mut batch: Vec<Delivery> = Vec::new();
        let mut bytes = 0;
        while let Some(d) = held.front() {
            if !fits(&batch, bytes, window, d) {
                break;
            }
            bytes += d.event.json.len();
            batch.extend(held.pop_front());
        }
        if held.is_empty() {
            let mut q = lock(&shared.queue);
            while let Some(d) = q.waiting.front() {
                if !fits(&batch, bytes, window, d) {
                    break;
                }
                bytes += d.event.json.len();
                batch.extend(q.waiting.pop_front());
            }
        }
        if batch.is_empty() {
            // Nothing waiting: wait for more, and end after a while without any.
            let woken = tokio::select! {
                _ = shared.wake.notified() => true,
                _ = tokio::time::sleep(sender::IDLE) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if !woken {
                let mut q = lock(&shared.queue);
                if q.waiting.is_empty() {
                    q.running = false;
                    return;
                }
            } else {
                // Woken by the first event of a burst: the requests queued on this worker run
                // first, so that their events join one batch rather than one write each.
                tokio::task::yield_now().await;
            }
            continue;
        }

        let target = batch[0].target.clone();
        let s = match &mut sender {
            Some((t, s)) if Arc::ptr_eq(t, &target) => s,
            _ => {
                let s = Sender::new(sender::Address::parse(&target.url));
                &mut sender.insert((target.clone(), s)).1
            }
        };
        let t = to_secs(real_now());
        out.clear();
        if let Ok(address) = s.address() {
            for d in &batch {
                let body = &d.event.json;
                address.write_request(&mut out, body, |o| target.signer.write_header(t, body, o));
            }
        }
        // Each record under its own lock, not the world's log's: the producers take that one.
        for d in &batch {
            let mut r = lock(&d.progress);
            r.attempts = d.attempts + 1;
            r.status = Status::Pending;
            r.next_retry_at = None;
        }
        let outcomes = tokio::select! {
            o = s.send(&out, batch.len(), retry.timeout) => o,
            _ = stop.wait_for(|s| *s) => break,
        };

        let mut again: Vec<Delivery> = Vec::new();
        // Kept only for a program that watches the successes: the counts need none of it.
        let watcher = me.on_delivered.get();
        let mut succeeded: Vec<Arc<EventRef>> = Vec::new();
        let mut pause: Option<Duration> = None;
        let now = to_secs(real_now());
        for (mut d, outcome) in batch.into_iter().zip(outcomes) {
            let (code, error) = match outcome {
                Outcome::Answered(code) if (200..300).contains(&code) => {
                    {
                        let mut r = lock(&d.progress);
                        r.status = Status::Succeeded;
                        r.response_code = Some(code);
                        r.error = None;
                    }
                    if d.target.endpoint.is_some() {
                        d.event.pending.count_down();
                        if watcher.is_some() {
                            succeeded.push(d.event);
                        }
                    }
                    continue;
                }
                Outcome::Answered(code) => (Some(code), format!("the endpoint answered {code}")),
                Outcome::Failed(e) => (None, e),
                Outcome::Unsent => {
                    lock(&d.progress).attempts = d.attempts;
                    again.push(d);
                    continue;
                }
            };
            d.attempts += 1;
            let delay = retry.delays.get(d.attempts as usize - 1).copied();
            {
                let mut r = lock(&d.progress);
                r.response_code = code;
                r.error = Some(error);
                match delay {
                    Some(delay) => {
                        r.status = Status::Retrying;
                        r.next_retry_at =
                            Some(now + i64::try_from(delay.as_secs()).unwrap_or(i64::MAX / 2));
                    }
                    None => r.status = Status::Failed,
                }
            }
            if let Some(delay) = delay {
                if again.is_empty() {
                    pause = Some(delay);
                }
                again.push(d);
            }
        }
        // One call per batch, for whoever watches the successes.
        if let (Some(f), false) = (watcher, succeeded.is_empty()) {
            let ids: Vec<&str> = succeeded.iter().map(|e| e.id.as_str()).collect();
            f(&world, &ids);
        }
        for d in again.into_iter().rev() {
            held.push_front(d);
        }
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }
    lock(&shared.queue).running = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(RetrySchedule::compressed().attempts(), 6);
        let stripe = RetrySchedule::stripe();
        assert_eq!(stripe.attempts(), 13);
        assert_eq!(
            stripe.delays.iter().map(Duration::as_secs).sum::<u64>(),
            72 * 3600
        );
        assert_eq!(
            RetrySchedule::parse("0.5, 1").map(|s| s.delays),
            Ok(vec![Duration::from_millis(500), Duration::from_secs(1)])
        );
        assert_eq!(RetrySchedule::parse("none").map(|s| s.attempts()), Ok(1));
        assert!(RetrySchedule::parse("soon").is_err());
        assert!(RetrySchedule::parse("-1").is_err());
        assert!(RetrySchedule::parse("1,,2").is_err());
        assert!(RetrySchedule::parse("1e9").is_err());
    }

    /// A count is shared by its clones, never goes below 0, and one of nothing stays at 0.
    #[test]
    fn pending_counts_are_shared_and_stop_at_zero() {
        let log = Pending::counting();
        let delivery = log.clone();
        log.add(2);
        delivery.count_down();
        assert_eq!((log.get(), delivery.get()), (1, 1));
        delivery.count_down();
        delivery.count_down();
        assert_eq!(log.get(), 0);
        let nothing = Pending::default();
        nothing.add(3);
        nothing.count_down();
        assert_eq!(nothing.get(), 0);
    }

    #[test]
    fn urls() {
        assert_eq!(check_url("http://127.0.0.1:4242/hook"), Ok(()));
        assert_eq!(check_url("HTTPS://example.com"), Ok(()));
        assert_eq!(check_url("ftp://example.com/x"), Err(UrlError::Scheme));
        assert_eq!(check_url("example.com/x"), Err(UrlError::Malformed));
        assert_eq!(check_url("http://"), Err(UrlError::Malformed));
        assert_eq!(check_url("not a url"), Err(UrlError::Malformed));
    }

    /// A world's records: numbered in increasing order with gaps (the numbers are shared by every
    /// world), the newest kept, each showing its delivery's progress.
    #[test]
    fn records_keep_the_newest_and_show_their_progress() {
        let target = Arc::new(Target::new(None, "http://127.0.0.1:1/", "whsec_x"));
        let entry = |n: u64| {
            let event = Arc::new(EventRef {
                id: format!("evt_{n}"),
                kind: "customer.created".into(),
                created: 0,
                json: Bytes::new(),
                pending: Pending::default(),
            });
            Entry::pending(event, target.clone(), 0)
        };
        let mut records = Records::default();
        // Odd numbers only: the even ones went to another world.
        let last = 2 * MAX_RECORDS as u64 + 41;
        let mut newest = None;
        for n in (1..=last).step_by(2) {
            let (e, progress) = entry(n);
            records.push(n, e);
            newest = Some(progress);
        }
        let kept: Vec<u64> = records.newest_first().map(|(n, _)| n).collect();
        assert_eq!(kept.len(), MAX_RECORDS);
        assert_eq!(kept[0], last);
        assert_eq!(kept[MAX_RECORDS - 1], last - 2 * (MAX_RECORDS as u64 - 1));
        assert!(kept.windows(2).all(|w| w[0] == w[1] + 2));
        // The delivery moves its record without the log.
        {
            let mut p = lock(newest.as_ref().expect("made"));
            p.attempts = 1;
            p.status = Status::Succeeded;
        }
        let (seq, first) = records.newest_first().next().expect("kept");
        let shown = first.record(seq);
        assert_eq!(shown.id, format!("whdel_{last:08}"));
        assert_eq!((shown.status, shown.attempts), (Status::Succeeded, 1));
        assert_eq!(shown.event, format!("evt_{last}"));
    }
}
