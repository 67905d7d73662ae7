//! The emulator as a library: started inside a test or a program on the caller's tokio runtime,
//! reached over HTTP like the binary, and steered from Rust (reset a tenant, move its clock)
//! without a request.
//!
//! A handle owns its server: dropping it, or awaiting [`Emulator::shutdown`], stops accepting,
//! closes idle keep-alive connections and lets requests in flight finish (see [`crate::serve`]).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Config;
use crate::model::{TenantClockError, TenantLimit};
use crate::server::serve;
use crate::time::{from_secs, real_now, to_rfc3339, Nanos};
use crate::webhooks::RetrySchedule;

/// A running emulator, serving on a loopback port (or wherever its builder said) until the handle
/// is dropped or [`shutdown`](Emulator::shutdown) is awaited.
///
/// Every method that names a tenant takes its API key (`sk_test_…` or `rk_test_…`), exactly the
/// key an HTTP client sends, and acts on that tenant alone.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts an emulator with the default settings on a free port of 127.0.0.1, on the current
    /// tokio runtime.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound, or when called outside a tokio runtime. Use
    /// [`Emulator::builder`] and its [`start`](EmulatorBuilder::start) to get these as an error.
    pub async fn start() -> Emulator {
        match Emulator::builder().start().await {
            Ok(emulator) => emulator,
            Err(e) => panic!("the credit emulator could not start: {e}"),
        }
    }

    /// A builder with the default settings: no seed, the command line's default limits, and a free
    /// port of 127.0.0.1.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            config: Config::default(),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            listener: None,
        }
    }

    /// The base URL to give clients, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state it serves, for reading the model directly.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The secret forwarded deliveries are signed with, when forwarding.
    pub fn webhook_secret(&self) -> Option<&str> {
        self.app.webhooks.forward_secret()
    }

    /// Empties the world of `key`, as `POST /_emulator/reset` does: the next use of the key starts
    /// from nothing (a real-time clock included). Returns whether the tenant existed.
    pub fn reset(&self, key: &str) -> Result<bool, EmulatorError> {
        check_key(key)?;
        Ok(self.app.reset(key))
    }

    /// The tenant clock's now (reading it never makes the world).
    pub fn now(&self, key: &str) -> Result<DateTime<Utc>, EmulatorError> {
        check_key(key)?;
        Ok(self.app.store.read_tenant(key, |t| date(t.tenant_now())))
    }

    /// Freezes the tenant clock at `at` (a [`DateTime<Utc>`], a [`SystemTime`] or unix seconds as
    /// an `i64`), or moves it there, posting everything that comes due on the way, as
    /// `POST /_emulator/clock` with `frozen_time` does. The clock never goes backwards, except in a
    /// tenant where nothing has been created yet. Returns the clock's new now.
    pub fn set_clock(
        &self,
        key: &str,
        at: impl ClockInstant,
    ) -> Result<DateTime<Utc>, EmulatorError> {
        check_key(key)?;
        let to = at.unix_nanos().ok_or(EmulatorError::OutOfRange)?;
        self.app.store.try_with_tenant(key, |t| {
            t.freeze_clock(to).map_err(|e| refused(e, to))?;
            Ok(date(t.tenant_now()))
        })?
    }

    /// Moves the tenant clock `by` forward from its now, posting everything that comes due on the
    /// way. A clock on real time is frozen at real time plus `by`. Returns the clock's new now.
    pub fn advance(&self, key: &str, by: Duration) -> Result<DateTime<Utc>, EmulatorError> {
        check_key(key)?;
        let by = Nanos::try_from(by.as_nanos()).map_err(|_| EmulatorError::OutOfRange)?;
        self.app.store.try_with_tenant(key, |t| {
            let to = t
                .tenant_now()
                .checked_add(by)
                .ok_or(EmulatorError::OutOfRange)?;
            t.freeze_clock(to).map_err(|e| refused(e, to))?;
            Ok(date(t.tenant_now()))
        })?
    }

    /// Returns the tenant clock to real time, as `POST /_emulator/clock` with `real_time=true`
    /// does; refused while the clock is frozen later than real time. Returns the clock's now.
    pub fn resume_real_time(&self, key: &str) -> Result<DateTime<Utc>, EmulatorError> {
        check_key(key)?;
        self.app.store.try_with_tenant(key, |t| {
            t.unfreeze_clock().map_err(|e| match e {
                TenantClockError::Backwards { now } => EmulatorError::AheadOfRealTime {
                    now: date(now),
                    real: date(real_now()),
                },
            })?;
            Ok(date(t.tenant_now()))
        })?
    }

    /// Stops the server and waits until it has stopped: the port is closed, idle keep-alive
    /// connections are closed, and requests in flight have been answered.
    pub async fn shutdown(mut self) {
        self.stop_accepting();
        if let Some(served) = self.served.take() {
            if let Err(e) = served.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }

    fn stop_accepting(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Emulator {
    /// Tells the server to shut down, as [`Emulator::shutdown`] does, without waiting: the server
    /// finishes the requests in flight on its own.
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

/// Settings for an [`Emulator`], from [`Emulator::builder`].
#[derive(Debug)]
pub struct EmulatorBuilder {
    config: Config,
    addr: SocketAddr,
    listener: Option<Listener>,
}

impl EmulatorBuilder {
    /// Makes ids deterministic: with the same seed, the same API key and the same sequence of
    /// requests, every id is the same from run to run (as `--seed` on the command line).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Replaces every setting (seed and limits) with `config`.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How long a subscription's cycle invoice stays a draft before it finalizes by itself
    /// (Stripe's grace period; zero finalizes at once). Default one hour.
    pub fn invoice_grace(mut self, grace: Duration) -> Self {
        self.config.invoice_grace = grace;
        self
    }

    /// When failed webhook deliveries are retried, as `--webhook-retry-schedule`. Default
    /// [`RetrySchedule::compressed`].
    pub fn webhook_retry_schedule(mut self, schedule: RetrySchedule) -> Self {
        self.config.webhooks.retry = schedule;
        self
    }

    /// Also sends every world's events to `url`, signed, as `--forward-to` (call it once per
    /// address). An address that is not an absolute http or https URL is an `InvalidInput` error
    /// from `start`.
    pub fn forward_to(mut self, url: impl Into<String>) -> Self {
        self.config.webhooks.forward_to.push(url.into());
        self
    }

    /// The event types forwarded, as `--forward-events` (`*` for all, the default). A type that is
    /// not one of Stripe's (those an endpoint's `enabled_events[]` takes) is an `InvalidInput`
    /// error from `start`.
    pub fn forward_events<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.config.webhooks.forward_events = types.into_iter().map(Into::into).collect();
        self
    }

    /// The secret forwarded deliveries are signed with, as `--webhook-secret`; one is made up
    /// when forwarding without it (read it with [`Emulator::webhook_secret`]).
    pub fn webhook_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.webhooks.forward_secret = Some(secret.into());
        self
    }

    /// How many deliveries may wait for one destination before the oldest is dropped. Default
    /// 1000.
    pub fn webhook_queue_capacity(mut self, capacity: usize) -> Self {
        self.config.webhooks.queue_capacity = capacity;
        self
    }

    /// Most worlds (one per API key, and one per connected account) that exist at once, as
    /// `--max-tenants` (at least 1): a request that would make one more is refused, and so is
    /// [`Emulator::set_clock`] on a new key ([`EmulatorError::TooManyTenants`]); a reset frees a
    /// place. Default 10,000.
    pub fn max_tenants(mut self, tenants: usize) -> Self {
        self.config.max_tenants = tenants;
        self
    }

    /// Most `Idempotency-Key`s one world remembers, as `--max-idempotency-keys` (at least 1);
    /// past it, the oldest answered key is forgotten first. Default 10,000.
    pub fn max_idempotency_keys(mut self, keys: usize) -> Self {
        self.config.max_idempotency_keys = keys;
        self
    }

    /// Largest accepted request body, in bytes (larger bodies get a 413). Default 1 MiB.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Most form parameters in one request, query and body together (1 to 1,000,000). Default 1000.
    pub fn max_params(mut self, params: usize) -> Self {
        self.config.form.max_params = params;
        self
    }

    /// Most levels of bracket nesting in one parameter name (1 to 64). Default 8.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.config.form.max_depth = depth;
        self
    }

    /// Deepest accepted nesting of native JSON bodies (1 to 128). Default 32.
    pub fn max_json_depth(mut self, depth: usize) -> Self {
        self.config.max_json_depth = depth;
        self
    }

    /// How long a client has to send its request head before the connection is closed (more than
    /// zero). Default 10 seconds.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_read_timeout = timeout;
        self
    }

    /// How long a client has, once its head is in, to send the whole body, else a 408 (more than
    /// zero). Default 30 seconds.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_read_timeout = timeout;
        self
    }

    /// Most connections served at once; further clients wait to be accepted (at least 1).
    /// Default 1024.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.config.max_connections = connections;
        self
    }

    /// Largest accepted request head, request line and headers, in bytes (larger heads get a 431).
    /// Default 64 KiB.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.config.max_header_bytes = bytes;
        self
    }

    /// The address to listen on. Default 127.0.0.1; `0.0.0.0` accepts other hosts too.
    pub fn host(mut self, host: impl Into<IpAddr>) -> Self {
        self.addr.set_ip(host.into());
        self
    }

    /// The port to listen on. Default 0, a free port chosen by the system.
    pub fn port(mut self, port: u16) -> Self {
        self.addr.set_port(port);
        self
    }

    /// Keeps every world in an SQLite file in `dir` across restarts (see the README's
    /// "Persistence"); the emulator loads what `dir` holds before it serves.
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }

    /// The address and port to listen on.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Serves on a listener bound beforehand (a [`std::net::TcpListener`] or a
    /// [`tokio::net::TcpListener`]), for callers that must know the port before the emulator
    /// starts. It takes precedence over [`host`](Self::host), [`port`](Self::port) and
    /// [`addr`](Self::addr).
    pub fn listener(mut self, listener: impl Into<Listener>) -> Self {
        self.listener = Some(listener.into());
        self
    }

    /// Binds (unless given a listener) and starts serving on the current tokio runtime, which needs
    /// its IO and time drivers (`#[tokio::test]` and `#[tokio::main]` enable both).
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] when a limit is out of its range, and with the
    /// system's error when the address cannot be bound or a given listener cannot be used.
    pub async fn start(self) -> io::Result<Emulator> {
        self.config
            .validate()
            .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "the credit emulator runs on a tokio runtime: start it from inside one",
            ));
        }
        let listener = match self.listener {
            None => tokio::net::TcpListener::bind(self.addr).await?,
            Some(Listener(Bound::Tokio(listener))) => listener,
            Some(Listener(Bound::Std(listener))) => {
                // tokio polls the socket: a blocking one would stall a worker thread.
                listener.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(listener)?
            }
        };
        let addr = listener.local_addr()?;
        let app = App::new(self.config);
        let loading = app.clone();
        tokio::task::spawn_blocking(move || crate::persist::attach(&loading))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(serve(listener, app.clone(), async move {
            // A dropped sender stops the server as well as a sent stop.
            let _ = stopped.await;
        }));
        Ok(Emulator {
            addr,
            app,
            stop: Some(stop),
            served: Some(served),
        })
    }
}

/// A listener bound beforehand, for [`EmulatorBuilder::listener`]: made from a
/// [`std::net::TcpListener`] or a [`tokio::net::TcpListener`] with `.into()`.
#[derive(Debug)]
pub struct Listener(Bound);

#[derive(Debug)]
enum Bound {
    Std(std::net::TcpListener),
    Tokio(tokio::net::TcpListener),
}

impl From<std::net::TcpListener> for Listener {
    fn from(listener: std::net::TcpListener) -> Self {
        Listener(Bound::Std(listener))
    }
}

impl From<tokio::net::TcpListener> for Listener {
    fn from(listener: tokio::net::TcpListener) -> Self {
        Listener(Bound::Tokio(listener))
    }
}

/// An instant a tenant clock can be set to: a [`DateTime<Utc>`], a [`SystemTime`], or unix seconds
/// as an `i64`.
pub trait ClockInstant {
    /// Nanoseconds since the Unix epoch, or `None` outside the range the model keeps time in
    /// (1677-09-21 to 2262-04-11).
    fn unix_nanos(self) -> Option<i64>;
}

impl ClockInstant for DateTime<Utc> {
    fn unix_nanos(self) -> Option<i64> {
        self.timestamp_nanos_opt()
    }
}

/// Unix seconds, as `frozen_time` takes them over HTTP.
impl ClockInstant for i64 {
    fn unix_nanos(self) -> Option<i64> {
        from_secs(self)
    }
}

impl ClockInstant for SystemTime {
    fn unix_nanos(self) -> Option<i64> {
        match self.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).ok(),
            Err(before) => i64::try_from(before.duration().as_nanos()).ok().map(|n| -n),
        }
    }
}

/// Why the emulator refused a call on its handle. Each case is one the HTTP routes refuse too,
/// with the same reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The key names no world the emulator serves (a live key, a publishable key, anything but
    /// `sk_test_…` or `rk_test_…`); the message is the one of the API's 401.
    InvalidKey(String),
    /// The instant is outside the range the model keeps time in (1677-09-21 to 2262-04-11).
    OutOfRange,
    /// The tenant clock only moves forward: it is at `now`, later than `to`, and something has
    /// been created in the tenant already.
    Backwards {
        /// The clock's now.
        now: DateTime<Utc>,
        /// Where it was asked to go.
        to: DateTime<Utc>,
    },
    /// The tenant clock is frozen later than real time, so returning to real time would move it
    /// backwards.
    AheadOfRealTime {
        /// The clock's now.
        now: DateTime<Utc>,
        /// Real time when the call was made.
        real: DateTime<Utc>,
    },
    /// The key has no world yet and the emulator holds as many as it may (`max`, see
    /// [`EmulatorBuilder::max_tenants`]); resetting a world frees a place.
    TooManyTenants {
        /// The most worlds the emulator holds at once.
        max: usize,
    },
}

impl fmt::Display for EmulatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmulatorError::InvalidKey(message) => f.write_str(message),
            EmulatorError::OutOfRange => f.write_str(
                "Invalid timestamp: the tenant clock keeps time between 1677-09-21 and 2262-04-11.",
            ),
            EmulatorError::Backwards { now, to } => write!(
                f,
                "The tenant clock only moves forward: it is at {} and cannot go back to {}. Only a tenant in which nothing has been created yet may start earlier (reset starts over).",
                rfc3339(now),
                rfc3339(to)
            ),
            EmulatorError::AheadOfRealTime { now, real } => write!(
                f,
                "The tenant clock only moves forward: it is frozen at {}, later than real time ({}), so it cannot return to real time yet.",
                rfc3339(now),
                rfc3339(real)
            ),
            EmulatorError::TooManyTenants { max } => TenantLimit { max: *max }.fmt(f),
        }
    }
}

impl std::error::Error for EmulatorError {}

impl From<TenantLimit> for EmulatorError {
    fn from(limit: TenantLimit) -> Self {
        EmulatorError::TooManyTenants { max: limit.max }
    }
}

/// The key check every route makes, with the API's own 401 message.
fn check_key(key: &str) -> Result<(), EmulatorError> {
    crate::wire::keys::check_key(key).map_err(|e| EmulatorError::InvalidKey(e.message))
}

/// A refused move of the tenant clock to `to`.
fn refused(e: TenantClockError, to: Nanos) -> EmulatorError {
    match e {
        TenantClockError::Backwards { now } => EmulatorError::Backwards {
            now: date(now),
            to: date(to),
        },
    }
}

fn date(t: Nanos) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(t)
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    // Every instant this type holds came from the model's nanoseconds, so this never falls back.
    t.timestamp_nanos_opt()
        .map(to_rfc3339)
        .unwrap_or_else(|| t.to_rfc3339())
}
