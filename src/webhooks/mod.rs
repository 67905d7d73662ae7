//! Webhook delivery: every event a world produces goes, signed, to each of the world's enabled
//! endpoints that want its type, and to the forwarding addresses the emulator was started with.
//!
//! Nothing here runs under a world's lock, and nothing here blocks a request: producing an event
//! only enqueues. Each destination (an endpoint of one world, or a forwarding address for one
//! world) has its own bounded queue and its own task, started when something is queued and ended
//! when the queue is empty, so a slow or dead destination holds up nobody else. A destination's
//! deliveries go out one at a time, in the order their events were produced: the first one retries
//! on its schedule before the next is tried, so a destination that comes back gets what it missed,
//! in order, each event with its original id (at least once). A full queue drops its oldest waiting
//! delivery, with a warning and a count.
//!
//! Every attempt is recorded per world (bounded), for `GET /_emulator/webhook_deliveries`.

pub mod signature;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::model::WebhookTarget;
use crate::time::{real_now, to_secs};

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
}

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

/// Where one delivery goes, within a world.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Destination {
    /// A webhook endpoint, by id.
    Endpoint(String),
    /// A forwarding address, by its place in the list.
    Forward(usize),
}

/// One (event, destination) delivery.
#[derive(Debug)]
struct Delivery {
    record: u64,
    world: String,
    event: Arc<EventRef>,
    endpoint: Option<String>,
    url: String,
    secret: Arc<str>,
}

/// What one destination has waiting.
#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Delivery>,
    /// Whether a task is working through it.
    running: bool,
}

/// A destination's queue, shared by the producers and its task.
type SharedQueue = Arc<Mutex<Queue>>;

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
    /// How many attempts have been made.
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

/// One world's delivery records, and the deliveries dropped per destination.
#[derive(Debug, Default)]
struct WorldLog {
    records: BTreeMap<u64, Record>,
    dropped: HashMap<Destination, (Option<String>, String, u64)>,
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

/// Called on each successful delivery to an endpoint, with the world and the event's id.
type OnDelivered = Box<dyn Fn(&str, &str) + Send + Sync>;

/// Queues, their records, the HTTP client and the settings; the tasks hold it too.
pub struct Deliveries {
    /// Itself, for the tasks it starts.
    me: Weak<Deliveries>,
    config: WebhookConfig,
    /// The forwarding secret, fixed or made up.
    forward_secret: Option<Arc<str>>,
    queues: Mutex<HashMap<(String, Destination), SharedQueue>>,
    logs: Mutex<HashMap<String, WorldLog>>,
    next_record: std::sync::atomic::AtomicU64,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Told of each success to an endpoint (where `pending_webhooks` counts down).
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
        let forward_secret = (!config.forward_to.is_empty()).then(|| {
            config
                .forward_secret
                .clone()
                .unwrap_or_else(signature::new_secret)
                .into()
        });
        Deliveries {
            me,
            config,
            forward_secret,
            queues: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            next_record: std::sync::atomic::AtomicU64::new(1),
            client: Client::builder(TokioExecutor::new()).build_http(),
            on_delivered: OnceLock::new(),
            stop: watch::channel(false).0,
        }
    }

    /// Sets what is told of each successful delivery to an endpoint (once; later calls are
    /// ignored).
    pub fn on_delivered(&self, f: impl Fn(&str, &str) + Send + Sync + 'static) {
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
        let mut counts = Vec::with_capacity(events.len());
        let mut targets = targets.into_iter();
        for event in events {
            let event = Arc::new(event.clone());
            let endpoints = targets.next().unwrap_or_default();
            counts.push(u32::try_from(endpoints.len()).unwrap_or(u32::MAX));
            for t in endpoints {
                let id =
                    crate::stripe::ids::render(crate::stripe::ids::WEBHOOK_ENDPOINT, t.endpoint);
                self.push(
                    world,
                    Destination::Endpoint(id.clone()),
                    &event,
                    Some(id),
                    t.url,
                    t.secret.into(),
                );
            }
            if let Some(secret) = &self.forward_secret {
                if self.forwards(&event.kind) {
                    for (i, url) in self.config.forward_to.iter().enumerate() {
                        self.push(
                            world,
                            Destination::Forward(i),
                            &event,
                            None,
                            url.clone(),
                            secret.clone(),
                        );
                    }
                }
            }
        }
        counts
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

    fn push(
        &self,
        world: &str,
        to: Destination,
        event: &Arc<EventRef>,
        endpoint: Option<String>,
        url: String,
        secret: Arc<str>,
    ) {
        let seq = self
            .next_record
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.log(world, |log| {
            log.records.insert(
                seq,
                Record {
                    id: format!("whdel_{seq:08}"),
                    object: "emulator.webhook_delivery",
                    event: event.id.clone(),
                    kind: event.kind.clone(),
                    endpoint: endpoint.clone(),
                    url: url.clone(),
                    status: Status::Pending,
                    attempts: 0,
                    response_code: None,
                    error: None,
                    next_retry_at: None,
                    created: to_secs(real_now()),
                },
            );
            while log.records.len() > MAX_RECORDS {
                log.records.pop_first();
            }
        });
        let queue = lock(&self.queues)
            .entry((world.to_string(), to.clone()))
            .or_default()
            .clone();
        let delivery = Delivery {
            record: seq,
            world: world.to_string(),
            event: event.clone(),
            endpoint,
            url,
            secret,
        };
        let start = {
            let mut q = lock(&queue);
            q.waiting.push_back(delivery);
            if q.waiting.len() > self.config.queue_capacity.max(1) {
                if let Some(old) = q.waiting.pop_front() {
                    self.dropped(&to, old);
                }
            }
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            self.start_worker(queue);
        }
    }

    /// Notes a delivery pushed out of a full queue.
    fn dropped(&self, to: &Destination, d: Delivery) {
        tracing::warn!(
            world = %d.world,
            event = %d.event.id,
            url = %d.url,
            "webhook queue full: the oldest waiting delivery was dropped"
        );
        self.log(&d.world, |log| {
            if let Some(r) = log.records.get_mut(&d.record) {
                r.status = Status::Dropped;
                r.next_retry_at = None;
            }
            log.dropped
                .entry(to.clone())
                .or_insert_with(|| (d.endpoint.clone(), d.url.clone(), 0))
                .2 += 1;
        });
    }

    fn start_worker(&self, queue: Arc<Mutex<Queue>>) {
        let Some(me) = self.me.upgrade() else {
            lock(&queue).running = false;
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(work(me, queue));
            }
            Err(_) => {
                tracing::warn!("webhook deliveries queued outside a tokio runtime wait until the next is queued inside one");
                lock(&queue).running = false;
            }
        }
    }

    fn log(&self, world: &str, f: impl FnOnce(&mut WorldLog)) {
        let mut logs = lock(&self.logs);
        if let Some(log) = logs.get_mut(world) {
            f(log);
        } else {
            f(logs.entry(world.to_string()).or_default());
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
        let logs = lock(&self.logs);
        let Some(log) = logs.get(world) else {
            return (Vec::new(), Vec::new());
        };
        let records = log
            .records
            .values()
            .rev()
            .filter(|r| event.is_none_or(|e| r.event == e))
            .filter(|r| endpoint.is_none_or(|e| r.endpoint.as_deref() == Some(e)))
            .take(limit)
            .cloned()
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

    /// Forgets a world's records and its waiting deliveries (a reset world starts over).
    pub fn reset(&self, world: &str) {
        lock(&self.logs).remove(world);
        let queues = lock(&self.queues);
        for ((w, _), q) in queues.iter() {
            if w == world {
                lock(q).waiting.clear();
            }
        }
    }

    fn update(&self, d: &Delivery, f: impl FnOnce(&mut Record)) {
        self.log(&d.world, |log| {
            if let Some(r) = log.records.get_mut(&d.record) {
                f(r);
            }
        });
    }

    /// One attempt: the POST, signed now, within the timeout. `Ok(status)` for any answer.
    async fn attempt(&self, d: &Delivery) -> Result<u16, String> {
        if d.url.starts_with("https:") {
            return Err("https is not supported by the emulator's sender; use an http:// address for a local receiver".into());
        }
        let t = to_secs(real_now());
        let request = hyper::Request::post(d.url.as_str())
            .header("content-type", "application/json; charset=utf-8")
            .header("user-agent", USER_AGENT)
            .header("accept", "*/*")
            .header(
                "stripe-signature",
                signature::header(&d.secret, t, &d.event.json),
            )
            .body(Full::new(d.event.json.clone()))
            .map_err(|e| format!("invalid request: {e}"))?;
        match tokio::time::timeout(self.config.retry.timeout, self.client.request(request)).await {
            Err(_) => Err(format!(
                "timed out after {} s",
                self.config.retry.timeout.as_secs_f64()
            )),
            Ok(Err(e)) => Err(format!("connection failed: {}", error_chain(&e))),
            Ok(Ok(response)) => Ok(response.status().as_u16()),
        }
    }

    /// Sends one delivery with its retries; returns early, unsent, when the server stops.
    async fn deliver(&self, d: Delivery, stop: &mut watch::Receiver<bool>) {
        let attempts = self.config.retry.attempts();
        for n in 1..=attempts {
            self.update(&d, |r| {
                r.attempts = n;
                r.status = Status::Pending;
                r.next_retry_at = None;
            });
            let outcome = tokio::select! {
                o = self.attempt(&d) => o,
                _ = stop.wait_for(|s| *s) => return,
            };
            let (code, error) = match outcome {
                Ok(code) if (200..300).contains(&code) => {
                    self.update(&d, |r| {
                        r.status = Status::Succeeded;
                        r.response_code = Some(code);
                        r.error = None;
                    });
                    if let (Some(_), Some(f)) = (&d.endpoint, self.on_delivered.get()) {
                        f(&d.world, &d.event.id);
                    }
                    return;
                }
                Ok(code) => (Some(code), format!("the endpoint answered {code}")),
                Err(e) => (None, e),
            };
            let delay = self.config.retry.delays.get(n as usize - 1).copied();
            self.update(&d, |r| {
                r.response_code = code;
                r.error = Some(error);
                match delay {
                    Some(delay) => {
                        r.status = Status::Retrying;
                        r.next_retry_at = Some(
                            to_secs(real_now())
                                + i64::try_from(delay.as_secs()).unwrap_or(i64::MAX / 2),
                        );
                    }
                    None => r.status = Status::Failed,
                }
            });
            let Some(delay) = delay else { return };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// Works through one destination's queue, one delivery at a time, until it is empty.
async fn work(deliveries: Arc<Deliveries>, queue: Arc<Mutex<Queue>>) {
    let mut stop = deliveries.stop.subscribe();
    loop {
        if *stop.borrow() {
            lock(&queue).running = false;
            return;
        }
        let next = {
            let mut q = lock(&queue);
            let next = q.waiting.pop_front();
            if next.is_none() {
                q.running = false;
            }
            next
        };
        let Some(d) = next else { return };
        deliveries.deliver(d, &mut stop).await;
    }
}

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
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

    #[test]
    fn urls() {
        assert_eq!(check_url("http://127.0.0.1:4242/hook"), Ok(()));
        assert_eq!(check_url("HTTPS://example.com"), Ok(()));
        assert_eq!(check_url("ftp://example.com/x"), Err(UrlError::Scheme));
        assert_eq!(check_url("example.com/x"), Err(UrlError::Malformed));
        assert_eq!(check_url("http://"), Err(UrlError::Malformed));
        assert_eq!(check_url("not a url"), Err(UrlError::Malformed));
    }
}
