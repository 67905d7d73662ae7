//! Settings shared by the server and the facades, with the defaults the CLI documents.

use std::time::Duration;

use crate::form::FormLimits;
use crate::webhooks::WebhookConfig;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Makes ids deterministic per tenant (for snapshot tests).
    pub seed: Option<u64>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Bounds on form-encoded parameters.
    pub form: FormLimits,
    /// Deepest accepted JSON nesting in native bodies.
    pub max_json_depth: usize,
    /// A client must send its request head within this time.
    pub header_read_timeout: Duration,
    /// A client must send its whole body within this time once its head has arrived.
    pub body_read_timeout: Duration,
    /// Most connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Largest accepted request head (request line and headers).
    pub max_header_bytes: usize,
    /// Lets a request carrying `X-Emulator-Panic` panic on purpose, to show that a panic costs one
    /// request and never the server or a tenant. Off unless asked for (hidden CLI flag
    /// `--enable-panic-trigger`); tests turn it on.
    pub panic_trigger: bool,
    /// How long a subscription's cycle invoice stays a draft before it finalizes by itself
    /// (Stripe's one hour by default; zero finalizes at once). A world may set its own
    /// (`POST /_emulator/invoice_grace_period`).
    pub invoice_grace: Duration,
    /// Webhook delivery: the retry schedule, queue bound and forwarding.
    pub webhooks: WebhookConfig,
    /// Where worlds are stored across restarts (`--data-dir`); `None` keeps them in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// Most worlds (one per API key, and one per connected account) that exist at once. A request
    /// that would make one more is refused in its API's envelope; a reset frees a place. Requests
    /// that only read never make a world.
    pub max_tenants: usize,
    /// Most `Idempotency-Key`s one world remembers; past it, the oldest answered key is forgotten
    /// first.
    pub max_idempotency_keys: usize,
    /// How long a world remembers an `Idempotency-Key`, on real time (not the tenant clock):
    /// Stripe's 24 hours. Tests shorten it.
    pub idempotency_key_lifetime: Duration,
    /// Gives memory the heap holds but no longer uses back to the system; called once a reset has
    /// dropped a large world (see [`crate::memory`]). The default trims glibc's heap; the command,
    /// whose allocator is jemalloc, purges jemalloc's arenas instead.
    pub release_memory: fn(),
    /// How many recent requests each world's request log keeps (`GET /_emulator/requests`);
    /// 0 records none. At most [`crate::request_log::MAX_CAPACITY`].
    pub request_log: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: None,
            max_body_bytes: 1024 * 1024,
            form: FormLimits::default(),
            max_json_depth: 32,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
            panic_trigger: false,
            invoice_grace: Duration::from_secs(3600),
            webhooks: WebhookConfig::default(),
            data_dir: None,
            max_tenants: DEFAULT_MAX_TENANTS,
            max_idempotency_keys: DEFAULT_MAX_IDEMPOTENCY_KEYS,
            idempotency_key_lifetime: Duration::from_secs(24 * 3600),
            release_memory: crate::memory::trim_system_heap,
            request_log: crate::request_log::DEFAULT_CAPACITY,
        }
    }
}

impl Config {
    /// Checks the limits against the same bounds the command line enforces, so that a program
    /// embedding the emulator gets a readable refusal instead of a server that cannot work (a zero
    /// connection cap would accept nobody, a zero timeout would close every connection).
    pub fn validate(&self) -> Result<(), String> {
        fn within(name: &str, value: usize, low: usize, high: usize) -> Result<(), String> {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be between {low} and {high}, not {value}"
                ))
            }
        }
        within("max_params", self.form.max_params, 1, MAX_PARAMS)?;
        within("max_depth", self.form.max_depth, 1, MAX_DEPTH)?;
        within("max_json_depth", self.max_json_depth, 1, MAX_JSON_DEPTH)?;
        within(
            "request_log",
            self.request_log,
            0,
            crate::request_log::MAX_CAPACITY,
        )?;
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1, not 0".to_string());
        }
        // The connection cap is a semaphore's permit count, which has a ceiling of its own.
        within(
            "max_connections",
            self.max_connections,
            1,
            tokio::sync::Semaphore::MAX_PERMITS,
        )?;
        for (name, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be longer than zero"));
            }
        }
        for (name, value) in [
            ("max_tenants", self.max_tenants),
            ("max_idempotency_keys", self.max_idempotency_keys),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1, not 0"));
            }
        }
        if self.webhooks.queue_capacity == 0 {
            return Err("webhook queue_capacity must be at least 1, not 0".to_string());
        }
        for url in &self.webhooks.forward_to {
            crate::webhooks::check_url(url).map_err(|e| format!("forward_to {url}: {e}"))?;
        }
        // The same list an endpoint's `enabled_events[]` is checked against.
        if let Some(kind) = self
            .webhooks
            .forward_events
            .iter()
            .find(|k| !crate::stripe::event_types::is_event_type(k))
        {
            return Err(format!(
                "forward_events {kind}: not one of Stripe's event types (`*` for all)"
            ));
        }
        Ok(())
    }
}

/// The world that `--fixtures` files are applied to when `--fixtures-key` does not name one.
pub const DEFAULT_FIXTURES_KEY: &str = "sk_test_fixtures";
/// Worlds that may exist at once unless configured otherwise (`--max-tenants`): far more than a
/// CI fleet sharing one instance uses, and few enough that as many small worlds stay near a
/// hundred megabytes (a world of one customer costs about 11 KB; ROBUSTNESS.md).
pub const DEFAULT_MAX_TENANTS: usize = 10_000;

/// `Idempotency-Key`s one world remembers unless configured otherwise
/// (`--max-idempotency-keys`): about 11 MB of stored answers the size of a customer's per world.
pub const DEFAULT_MAX_IDEMPOTENCY_KEYS: usize = 10_000;

/// The longest invoice grace period, in seconds: Stripe allows up to 72 hours.
pub const MAX_GRACE_SECS: u64 = 72 * 3600;

/// Most form parameters one request may be allowed.
pub const MAX_PARAMS: usize = 1_000_000;

/// Deepest bracket nesting that may be allowed: every recursive walk of a parameter tree stays far
/// from the stack's end.
pub const MAX_DEPTH: usize = 64;

/// Deepest JSON nesting that may be allowed: the JSON parser's own bound.
pub const MAX_JSON_DEPTH: usize = 128;
