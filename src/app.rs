//! The state every request reaches: the model's worlds, the Stripe facade's stored idempotent
//! answers, webhook delivery, and the settings.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::idempotency::IdempotencyStores;
use crate::model::{Store, Tenant};
use crate::webhooks::{EventRef, Webhooks};

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
}

impl App {
    /// A fresh application with `config`.
    pub fn new(config: Config) -> Arc<App> {
        let app = Arc::new(App {
            store: Store::new(config.seed).with_invoice_grace(config.invoice_grace),
            idempotency: IdempotencyStores::default(),
            webhooks: Webhooks::new(config.webhooks.clone()),
            config,
            started: Instant::now(),
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

    /// Queues the webhook deliveries of `events`, just produced in the world named `world`: one per
    /// (event, enabled endpoint of that world whose `enabled_events` match its type), plus one per
    /// forwarding address. Returns, per event, how many endpoints will receive it (its
    /// `pending_webhooks`). Only enqueues: never waits for a delivery.
    ///
    /// It locks the world to read its endpoints, so it must be called with that lock released;
    /// under the lock, call [`App::events_produced_in`].
    pub fn events_produced(&self, world: &str, events: &[EventRef]) -> Vec<u32> {
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

    /// [`App::events_produced`] for a caller that holds the world's lock already.
    pub fn events_produced_in(&self, tenant: &Tenant, events: &[EventRef]) -> Vec<u32> {
        let targets = events
            .iter()
            .map(|e| tenant.webhook_targets(&e.kind))
            .collect();
        self.webhooks.enqueue(tenant.name(), events, targets)
    }

    /// Called once for each (event, endpoint) delivery that succeeded, outside every lock: the
    /// place where an event's `pending_webhooks` counts down. Events are not stored yet, so there
    /// is nothing to count down.
    pub fn webhook_delivered(&self, world: &str, event_id: &str) {
        tracing::debug!(world, event_id, "webhook delivered");
    }

    /// Forgets the world named `world` entirely, its model, its stored idempotent answers and its
    /// webhook deliveries (waiting ones included), so
    /// that its next request starts from nothing. Returns whether it existed. `POST
    /// /_emulator/reset` and [`crate::Emulator::reset`] both come here.
    pub fn reset(&self, world: &str) -> bool {
        let stored = self.idempotency.reset(world);
        self.webhooks.reset(world);
        self.store.reset(world) || stored
    }
}
