//! The state every request reaches: the model's worlds, the Stripe facade's stored idempotent
//! answers, webhook delivery, and the settings.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::config::Config;
use crate::http::Reply;
use crate::idempotency::IdempotencyStores;
use crate::model::{Store, Tenant};
use crate::request_log::{RequestLogs, Seen};
use crate::stripe::events::{EventLog, EventRef, Outbox, Recorder};
use crate::webhooks::{self, Webhooks};
use crate::wire::versions::{self, Version};

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
    /// Each world's most recent requests, beside the model.
    pub requests: RequestLogs,
}

impl App {
    /// A fresh application with `config`.
    pub fn new(config: Config) -> Arc<App> {
        let app = Arc::new_cyclic(|app: &Weak<App>| {
            let outbox: Weak<dyn Outbox> = app.clone();
            let recorder = Recorder {
                app: outbox,
                seed: config.seed,
            };
            App {
                store: Store::new(config.seed)
                    .with_invoice_grace(config.invoice_grace)
                    .with_hook(Arc::new(recorder)),
                idempotency: IdempotencyStores::default(),
                webhooks: Webhooks::new(config.webhooks.clone()),
                requests: RequestLogs::new(config.request_log),
                config,
                started: Instant::now(),
            }
        });
        // Weak: the application owns the deliveries, whose tasks may outlive a request.
        let weak = Arc::downgrade(&app);
        app.webhooks.on_delivered(move |world, event| {
            if let Some(app) = weak.upgrade() {
                app.webhook_delivered(world, event);
            }
        });
        app
    }

    /// How many destinations (the world's enabled endpoints whose `enabled_events` match, and
    /// forwarding addresses) an event of type `kind` is sent to. Asked for every event as it is
    /// stored, under the world's lock: an event that none receives is rendered only when read.
    pub fn webhook_receivers(&self, tenant: &Tenant, kind: &str) -> u32 {
        let endpoints = tenant.webhook_targets(kind).len();
        let forwards = if self.webhooks.forwarded(kind) {
            self.config.webhooks.forward_to.len()
        } else {
            0
        };
        u32::try_from(endpoints + forwards).unwrap_or(u32::MAX)
    }

    /// Queues the webhook deliveries of `events`, just stored in `tenant`'s world, in the order
    /// they happened: one per (event, enabled endpoint whose `enabled_events` match its type),
    /// plus one per forwarding address. Returns, per event, how many endpoints will receive it
    /// (its `pending_webhooks`; forwards do not count). Only enqueues, under the world's lock,
    /// which it never takes again.
    pub fn events_produced(&self, tenant: &Tenant, events: &[EventRef]) -> Vec<u32> {
        let owned: Vec<webhooks::EventRef> = events
            .iter()
            .map(|e| webhooks::EventRef {
                id: e.id.to_string(),
                kind: e.kind.to_string(),
                created: e.created,
                json: bytes::Bytes::copy_from_slice(e.json),
            })
            .collect();
        let targets = events
            .iter()
            .map(|e| tenant.webhook_targets(e.kind))
            .collect();
        self.webhooks.enqueue(tenant.name(), &owned, targets)
    }

    /// Queues the deliveries of `events`, already rendered, for the world named `world`, as
    /// [`App::events_produced`] does, from outside the world's lock (it takes the lock to read the
    /// world's endpoints): for a program that makes its own events. Returns each one's count of
    /// endpoints.
    pub fn deliver(&self, world: &str, events: &[webhooks::EventRef]) -> Vec<u32> {
        let targets = match self.store.get(world) {
            Some(cell) => {
                let tenant = cell.state.lock();
                events
                    .iter()
                    .map(|e| tenant.webhook_targets(&e.kind))
                    .collect()
            }
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

    /// Counts one successful delivery of the event `event_id` of the world `world`: its
    /// `pending_webhooks` goes down by one. False when there is no such event or nothing was
    /// pending. Locks the world: the delivery workers call it, outside every lock.
    pub fn webhook_delivered(&self, world: &str, event_id: &str) -> bool {
        let Some(cell) = self.store.get(world) else {
            return false;
        };
        let mut tenant = cell.state.lock();
        tenant
            .attachment_mut::<EventLog>()
            .is_some_and(|log| log.delivered(event_id))
    }

    /// Forgets the world named `world` entirely, its model, its stored idempotent answers, its
    /// webhook deliveries (waiting ones included) and its request log, so
    /// that its next request starts from nothing. Returns whether it existed. `POST
    /// /_emulator/reset` and [`crate::Emulator::reset`] both come here.
    pub fn reset(&self, world: &str) -> bool {
        let stored = self.idempotency.reset(world);
        self.webhooks.reset(world);
        self.requests.reset(world);
        self.store.reset(world) || stored
    }
}

/// The Stripe events' view of the application: the inherent methods above.
impl Outbox for App {
    fn version_of(&self, world: &str) -> Version {
        // A connected account's world is named `key account`; its platform's default applies when
        // it has none of its own.
        let platform = world.split_once(' ').map(|(key, _)| key);
        versions::default_for(&self.store, world, platform).0
    }

    fn webhook_receivers(&self, tenant: &Tenant, kind: &str) -> u32 {
        App::webhook_receivers(self, tenant, kind)
    }

    fn events_produced(&self, tenant: &Tenant, events: &[EventRef]) -> Vec<u32> {
        App::events_produced(self, tenant, events)
    }
}
