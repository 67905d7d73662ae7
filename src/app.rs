//! The state every request reaches: the model's worlds, the Stripe facade's stored idempotent
//! answers, and the settings.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::idempotency::IdempotencyStores;
use crate::model::Store;

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
        Arc::new(App {
            store: Store::new(config.seed).with_invoice_grace(config.invoice_grace),
            idempotency: IdempotencyStores::default(),
            config,
            started: Instant::now(),
        })
    }

    /// Forgets the world named `world` entirely, its model and its stored idempotent answers, so
    /// that its next request starts from nothing. Returns whether it existed. `POST
    /// /_emulator/reset` and [`crate::Emulator::reset`] both come here.
    pub fn reset(&self, world: &str) -> bool {
        let stored = self.idempotency.reset(world);
        self.store.reset(world) || stored
    }
}
