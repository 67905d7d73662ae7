//! The state every request reaches: the model's worlds, the Stripe facade's stored idempotent
//! answers, and the settings.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::config::Config;
use crate::idempotency::IdempotencyStores;
use crate::model::Store;
use crate::stripe::events::{EventLog, EventRef, Outbox, Recorder};
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
            App {
                store: Store::new(config.seed)
                    .with_invoice_grace(config.invoice_grace)
                    .with_hook(Arc::new(recorder)),
                idempotency: IdempotencyStores::default(),
                config,
                started: Instant::now(),
            }
        })
    }

    /// How many webhook endpoints of the world named `world` will be sent an event of type `kind`.
    /// Asked for every event as it is stored, under the world's lock (so it must not lock the world
    /// again): an event that none receives is rendered only when it is read. None, for now.
    pub fn webhook_receivers(&self, world: &str, kind: &str) -> u32 {
        let _ = (world, kind);
        0
    }

    /// Takes the events just stored in the world named `world` that [`App::webhook_receivers`]
    /// said some endpoint receives, in the order they happened, and answers, for each, how many
    /// endpoints it is queued for (its `pending_webhooks`).
    ///
    /// Called under the world's lock, right after the events are stored: it must not lock the
    /// world again (no `store.with_tenant` for `world`), and should only queue what it delivers.
    /// No endpoint receives anything yet: every event is pending nowhere.
    pub fn events_produced(&self, world: &str, events: &[EventRef]) -> Vec<u32> {
        let _ = world;
        vec![0; events.len()]
    }

    /// Counts one successful delivery of the event `event_id` of the world `world`: its
    /// `pending_webhooks` goes down by one. False when there is no such event or nothing was
    /// pending. Locks the world: call it outside [`App::events_produced`].
    pub fn webhook_delivered(&self, world: &str, event_id: &str) -> bool {
        let Some(cell) = self.store.get(world) else {
            return false;
        };
        let mut tenant = cell.state.lock();
        tenant
            .attachment_mut::<EventLog>()
            .is_some_and(|log| log.delivered(event_id))
    }

    /// Forgets the world named `world` entirely, its model and its stored idempotent answers, so
    /// that its next request starts from nothing. Returns whether it existed. `POST
    /// /_emulator/reset` and [`crate::Emulator::reset`] both come here.
    pub fn reset(&self, world: &str) -> bool {
        let stored = self.idempotency.reset(world);
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

    fn webhook_receivers(&self, world: &str, kind: &str) -> u32 {
        App::webhook_receivers(self, world, kind)
    }

    fn events_produced(&self, world: &str, events: &[EventRef]) -> Vec<u32> {
        App::events_produced(self, world, events)
    }
}
