//! Settings shared by the server and the facades, with the defaults the CLI documents.

use std::time::Duration;

use crate::form::FormLimits;

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
        }
    }
}
