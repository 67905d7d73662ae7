//! The state every request reaches: the model's worlds, the Stripe facade's stored idempotent
//! answers, webhook delivery, and the settings.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::config::Config;
use crate::http::Reply;
use crate::idempotency::{IdempotencyStores, WorldStore};
use crate::memory::Reclaimer;
use crate::model::{Store, Tenant, TenantLimit};
use crate::request_log::{RequestLogs, Seen};
use crate::stripe::events::{EventRef, Outbox, Recorder};
use crate::webhooks::{self, Webhooks};
use crate::wire::versions::{self, Version};

/// What the server asks of a journal of requests (persistence, `--data-dir`): told when a request
/// starts and ends on a thread, it stores the requests that changed a world. A trait, so that the
/// application does not depend on how requests are stored.
pub trait Journaling: Send + Sync + std::fmt::Debug {
    /// A request starts on this thread (`read`: a `GET` or `HEAD`).
    fn begin(&self, read: bool);

    /// The request served on this thread ends: when it must be stored, what tells once it is
    /// committed (or why it could not be).
    fn finish(
        &self,
        request: &crate::http::Request,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<(), String>>>;

    /// Stores what a clean stop stores, and closes.
    fn close(&self, app: &App);
}

/// Everything a request can reach.
#[derive(Debug)]
pub struct App {
    /// All tenants (worlds), each locked on its own.
    pub store: Store,
    /// Stored answers for `Idempotency-Key`, per world, named as the tenants are.
    pub idempotency: IdempotencyStores,
    /// Settings.
    pub config: Config,
    /// When the server started.
    pub started: Instant,
    /// Webhook delivery: queues, workers and their records.
    pub webhooks: Webhooks,
    /// Where requests that change a world are stored (`--data-dir`), once the stored worlds are
    /// loaded (`persist::attach`).
    pub journal: std::sync::OnceLock<Arc<dyn Journaling>>,
    /// Where the worlds a reset drops are freed, away from the request.
    reclaimer: Reclaimer,
    /// Each world's most recent requests, beside the model.
    pub requests: RequestLogs,
    /// Who is at each world and what waits for it (see [`crate::turns`]), beside the model.
    pub turns: crate::turns::WorldTurns,
    /// Meter event sessions by token, beside the model.
    pub meter_sessions: crate::meter_sessions::MeterSessions,
}

impl App {
    /// A fresh application with `config`.
    pub fn new(config: Config) -> Arc<App> {
        Arc::new_cyclic(|app: &Weak<App>| {
            let outbox: Weak<dyn Outbox> = app.clone();
            let recorder = Recorder {
                app: outbox,
                seed: config.seed,
            };
            let store = Store::new(config.seed)
                .with_invoice_grace(config.invoice_grace)
                .with_max_tenants(config.max_tenants)
                .with_hook(Arc::new(recorder));
            App {
                store,
                journal: std::sync::OnceLock::new(),
                idempotency: IdempotencyStores::new(
                    config.max_idempotency_keys,
                    config.idempotency_key_lifetime,
                ),
                webhooks: Webhooks::new(config.webhooks.clone()),
                reclaimer: Reclaimer::new(config.release_memory),
                requests: RequestLogs::new(config.request_log),
                turns: crate::turns::WorldTurns::default(),
                meter_sessions: crate::meter_sessions::MeterSessions::default(),
                config,
                started: Instant::now(),
            }
        })
    }

    /// How many forwarding addresses (`--forward-to`) an event of type `kind` is sent to, besides
    /// the world's own endpoints, which the world counts itself. Asked for every event as it is
    /// stored, under the world's lock: an event that nothing receives is rendered only when read.
    pub fn webhook_forwards(&self, kind: &str) -> u32 {
        if self.webhooks.forwarded(kind) {
            u32::try_from(self.config.webhooks.forward_to.len()).unwrap_or(u32::MAX)
        } else {
            0
        }
    }

    /// Queues the webhook deliveries of `events`, just stored in `tenant`'s world, in the order
    /// they happened: one per (event, enabled endpoint whose `enabled_events` match its type),
    /// plus one per forwarding address, counting each one's `pending_webhooks` up by the
    /// endpoints it goes to (forwards do not count). Only enqueues, under the world's lock, which
    /// the deliveries never take.
    pub fn events_produced(&self, tenant: &Tenant, events: &[EventRef]) {
        if crate::tape::is_replaying() {
            // A stored request replayed at start-up: its webhooks were sent when it was served.
            // The same count the queue would make: the endpoints, not the forwards.
            for e in events {
                let endpoints = tenant.webhook_endpoints_receiving(e.kind).count();
                e.pending.add(u32::try_from(endpoints).unwrap_or(u32::MAX));
            }
            return;
        }
        for e in events {
            let event = webhooks::EventRef {
                id: e.id.to_string(),
                kind: e.kind.to_string(),
                created: e.created,
                // The log's own bytes and count, shared.
                json: e.json.clone(),
                pending: e.pending.clone(),
            };
            // Read in place (asked for every event a world stores, so addresses and secrets
            // are not copied); an endpoint with a version of its own gets the event rendered
            // at it.
            let targets = tenant
                .webhook_endpoints_receiving(e.kind)
                .map(|w| webhooks::TargetRef {
                    endpoint: w.key,
                    url: &w.url,
                    secret: &w.secret,
                    json: e.variant_for(w.api_version.as_deref()).cloned(),
                });
            self.webhooks.enqueue_event(tenant.name(), event, targets);
        }
    }

    /// Queues the deliveries of `events`, already rendered, for the world named `world`, as
    /// [`App::events_produced`] does, from outside the world's lock (it takes the lock to read the
    /// world's endpoints): for a program that makes its own events. Returns each one's count of
    /// endpoints.
    pub fn deliver(&self, world: &str, events: &[webhooks::EventRef]) -> Vec<u32> {
        let targets = match self.store.get(world) {
            Some(cell) => cell.peek(|tenant| {
                events
                    .iter()
                    .map(|e| tenant.webhook_targets(&e.kind))
                    .collect()
            }),
            None => Vec::new(),
        };
        self.webhooks.enqueue(world, events, targets)
    }

    /// Records a request in the request log of the world named `world`, if that world exists: the
    /// log never makes a world (a request refused before it reached its world, on a key never
    /// used, leaves no trace).
    pub fn record_request(&self, world: &str, seen: Seen<'_>, reply: &Reply) {
        self.requests
            .record(world, seen, reply, || self.store.get(world).is_some());
    }

    /// The stored answers of the world named `world`, for a request that carries an
    /// `Idempotency-Key`: the key belongs to the world, so the world is made first if it is new
    /// (and refused, like any write, when the store holds as many worlds as it may).
    pub fn idempotency_of(&self, world: &str) -> Result<Arc<WorldStore>, TenantLimit> {
        self.store.create(world)?;
        Ok(self.idempotency.of(world))
    }

    /// Forgets the world named `world` entirely, its model, its stored idempotent answers, its
    /// webhook deliveries (waiting ones included) and its request log, so
    /// that its next request starts from nothing, and frees its place among the
    /// `--max-tenants` worlds. Returns whether it existed. `POST
    /// /_emulator/reset` and [`crate::Emulator::reset`] both come here.
    ///
    /// The world is freed on the reclaimer's thread, not the caller's: dropping a world of a
    /// million records takes a while. Once what was dropped is large enough, the allocator gives
    /// its free pages back to the system (see [`crate::memory`]).
    pub fn reset(&self, world: &str) -> bool {
        let stored = self.idempotency.remove(world);
        self.webhooks.reset(world);
        self.requests.reset(world);
        self.turns.remove(world);
        self.meter_sessions.reset(world);
        let existed = self.store.remove(world);
        let found = existed.is_some() || stored.is_some();
        if let Some(keys) = stored {
            self.reclaimer.discard(move || {
                let weight = keys.lock().len() as u64;
                drop(keys);
                weight
            });
        }
        if let Some(cell) = existed {
            self.reclaimer.discard(move || {
                // A request still holding the world finishes with it first; the last one out
                // frees it.
                let weight = cell.peek(|tenant| tenant.weight());
                drop(cell);
                weight
            });
        }
        found
    }
}

/// The Stripe events' view of the application: the inherent methods above.
impl Outbox for App {
    fn version_of(&self, world: &str) -> Version {
        versions::default_for(&self.store, world).0
    }

    fn webhook_forwards(&self, kind: &str) -> u32 {
        App::webhook_forwards(self, kind)
    }

    fn events_produced(&self, tenant: &Tenant, events: &[EventRef]) {
        App::events_produced(self, tenant, events)
    }
}
