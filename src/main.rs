//! The `credit-emulator` command (feature `cli`, on by default).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use std::path::PathBuf;

use credit_emulator::admin::fixtures::apply_at_start;
use credit_emulator::config::{
    DEFAULT_FIXTURES_KEY, DEFAULT_MAX_IDEMPOTENCY_KEYS, DEFAULT_MAX_TENANTS, MAX_DEPTH,
    MAX_GRACE_SECS, MAX_JSON_DEPTH, MAX_PARAMS,
};
use credit_emulator::form::FormLimits;
use credit_emulator::request_log::MAX_CAPACITY as MAX_REQUEST_LOG;
use credit_emulator::stripe::event_types::is_event_type;
use credit_emulator::webhooks::{check_url, RetrySchedule, WebhookConfig};
use credit_emulator::{serve, App, Config};

/// jemalloc instead of the system allocator, where it builds. An emulator only grows while it is
/// used, and glibc's per-thread arenas grow a page at a time with an `mprotect` call each: on a create
/// run that was one system call for nearly every request, and heap growth about a tenth of the
/// server's CPU. jemalloc maps larger extents, and packs small records tighter (fewer bytes per
/// grant). Figures in BENCHMARKS.md.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A stateful, in-memory emulator of Stripe Billing Credits and Flexprice-style credit grants.
///
/// Point Stripe's SDKs at http://HOST:PORT (only the base URL changes); each test API key
/// (sk_test_…) is its own isolated world.
#[derive(Debug, Parser)]
#[command(name = "credit-emulator", version)]
struct Cli {
    /// Address to listen on (0.0.0.0 to accept connections from other hosts or containers).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// Port to listen on; 0 picks a free port (the chosen one is printed).
    #[arg(long, env = "PORT", default_value_t = 12111)]
    port: u16,

    /// Make ids deterministic per API key (useful for snapshot tests).
    #[arg(long)]
    seed: Option<u64>,

    /// Largest accepted request body, in bytes (larger bodies get a 413).
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,

    /// Most form parameters in one request (query and body together).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_PARAMS as u64))]
    max_params: u64,

    /// Most levels of bracket nesting in one parameter name (at most 64, which keeps every
    /// recursive walk of a parameter tree far from the stack's end).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=MAX_DEPTH as u64))]
    max_depth: u64,

    /// Deepest accepted nesting of native JSON bodies (at most 128, the JSON parser's own bound).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=MAX_JSON_DEPTH as u64))]
    max_json_depth: u64,

    /// Seconds a client has to send its request head before the connection is closed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,

    /// Seconds a client has, once its head is in, to send the whole body (else a 408).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout: u64,

    /// Most connections served at once; further clients wait to be accepted.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,

    /// Largest accepted request head (request line and headers), in bytes (larger heads get a 431).
    #[arg(long, default_value_t = 64 * 1024)]
    max_header_bytes: usize,

    /// Seconds a subscription's cycle invoice stays a draft before it finalizes by itself (Stripe's
    /// grace period; 0 finalizes at once, at most 72 hours). A world may set its own with
    /// `POST /_emulator/invoice_grace_period`.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(0..=MAX_GRACE_SECS))]
    invoice_grace_period: u64,

    /// When failed webhook deliveries are retried: `compressed` (after 1, 2, 4, 8 and 16 seconds),
    /// `stripe` (exponential, up to 3 days), or pauses in seconds separated by commas (`0.5,1,2`).
    #[arg(long, default_value = "compressed", value_parser = RetrySchedule::parse)]
    webhook_retry_schedule: RetrySchedule,

    /// Also send every world's events to URL, signed, as `stripe listen --forward-to` does
    /// (repeatable).
    #[arg(long, value_name = "URL", value_parser = forward_url)]
    forward_to: Vec<String>,

    /// The event types forwarded, separated by commas (`*` for all); each must be one of the
    /// types a webhook endpoint's `enabled_events[]` takes.
    #[arg(
        long,
        value_name = "TYPES",
        default_value = "*",
        value_delimiter = ',',
        value_parser = forward_event
    )]
    forward_events: Vec<String>,

    /// The secret forwarded deliveries are signed with (`whsec_…`); one is made up and printed
    /// when absent.
    #[arg(long, value_name = "SECRET", value_parser = webhook_secret)]
    webhook_secret: Option<String>,

    /// A fixture file in the Stripe CLI's format (`stripe fixtures FILE`) to apply at start, before
    /// the server answers anyone (repeatable: applied in order). A file that fails stops the start.
    #[arg(long, value_name = "FILE")]
    fixtures: Vec<PathBuf>,

    /// The API key whose world `--fixtures` files are applied to.
    #[arg(long, value_name = "KEY", env = "CREDIT_EMULATOR_FIXTURES_KEY", default_value = DEFAULT_FIXTURES_KEY, value_parser = test_key)]
    fixtures_key: String,
    /// Most worlds (one per API key, and one per connected account) at once; a request that would
    /// make one more is refused (400) until a reset frees a place. Reads never make a world.
    #[arg(long, env = "CREDIT_EMULATOR_MAX_TENANTS", default_value_t = DEFAULT_MAX_TENANTS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_tenants: u64,

    /// Most Idempotency-Keys one world remembers (each for 24 hours); past it, the oldest is
    /// forgotten first.
    #[arg(long, env = "CREDIT_EMULATOR_MAX_IDEMPOTENCY_KEYS", default_value_t = DEFAULT_MAX_IDEMPOTENCY_KEYS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_idempotency_keys: u64,

    /// How many recent requests each world's request log keeps (`GET /_emulator/requests`, the
    /// inspector at /_emulator/ui); 0 turns the log off.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=MAX_REQUEST_LOG as u64))]
    request_log: u64,

    /// Lets requests carrying `X-Emulator-Panic` panic on purpose (for testing panic containment).
    #[arg(long, hide = true)]
    enable_panic_trigger: bool,

    /// Keep every world across restarts in an SQLite file in this directory (created if
    /// missing); every acknowledged write survives a crash. Off by default: worlds live in memory.
    #[arg(long, env = "CREDIT_EMULATOR_DATA_DIR", value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,

    /// Log filter, e.g. `info` or `credit_emulator=debug` (also RUST_LOG).
    #[arg(long, env = "RUST_LOG", default_value = "warn")]
    log: String,
}

/// How a reset hands the pages it freed back to the system: jemalloc's, not glibc's, since
/// jemalloc holds them ([`Config::release_memory`]).
fn release_memory() -> fn() {
    #[cfg(not(target_env = "msvc"))]
    return purge_jemalloc;
    #[cfg(target_env = "msvc")]
    return credit_emulator::memory::trim_system_heap;
}

/// Purges every jemalloc arena (`arena.<MALLCTL_ARENAS_ALL>.purge`, 4096 being
/// `MALLCTL_ARENAS_ALL`): their unused pages go back to the system at once. jemalloc would
/// return them on its own as they decay, but its decay only moves while the process allocates,
/// and an emulator left idle after a reset allocates nothing.
#[cfg(not(target_env = "msvc"))]
fn purge_jemalloc() {
    let name = c"arena.4096.purge";
    // SAFETY: the name is a NUL-terminated string of jemalloc's own namespace; "purge" reads and
    // writes no value, so every pointer is null and the length zero, as jemalloc documents.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let config = Config {
        seed: cli.seed,
        max_body_bytes: cli.max_body_bytes,
        form: FormLimits {
            max_params: cli.max_params as usize,
            max_depth: cli.max_depth as usize,
        },
        max_json_depth: cli.max_json_depth as usize,
        header_read_timeout: Duration::from_secs(cli.header_read_timeout),
        body_read_timeout: Duration::from_secs(cli.body_read_timeout),
        max_connections: cli.max_connections.max(1),
        max_header_bytes: cli.max_header_bytes,
        panic_trigger: cli.enable_panic_trigger,
        invoice_grace: Duration::from_secs(cli.invoice_grace_period),
        webhooks: WebhookConfig {
            retry: cli.webhook_retry_schedule,
            forward_to: cli.forward_to,
            forward_events: cli
                .forward_events
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            forward_secret: cli.webhook_secret,
            ..WebhookConfig::default()
        },
        data_dir: cli.data_dir,
        max_tenants: usize::try_from(cli.max_tenants).unwrap_or(usize::MAX),
        max_idempotency_keys: usize::try_from(cli.max_idempotency_keys).unwrap_or(usize::MAX),
        release_memory: release_memory(),
        request_log: cli.request_log as usize,
        ..Config::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("credit-emulator: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        let addr = SocketAddr::new(cli.host, cli.port);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("credit-emulator: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        };
        // Signal handlers are installed before the address is announced, so a SIGTERM sent as soon
        // as a client has seen the server up always means "stop cleanly", never the default kill.
        let shutdown = shutdown_signal();
        let local = listener.local_addr().unwrap_or(addr);
        let app = App::new(config);
        let loading = app.clone();
        let loaded = match tokio::task::spawn_blocking(move || credit_emulator::persist::attach(&loading)).await {
            Ok(Ok(Some(opened))) => Some(format!(
                "data directory {}: {} world snapshot(s) and {} stored request(s) loaded in {:.3} s",
                app.config.data_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
                opened.snapshots,
                opened.replayed,
                opened.elapsed.as_secs_f64()
            )),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                eprintln!("credit-emulator: {e}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("credit-emulator: cannot load the data directory: {e}");
                std::process::exit(1);
            }
        };
        // The worlds are ready before the address is announced: a client that has seen it finds
        // every fixture applied.
        let mut applied = Vec::with_capacity(cli.fixtures.len());
        for path in &cli.fixtures {
            if app.config.data_dir.is_some() && app.store.get(&cli.fixtures_key).is_some() {
                // Applied at an earlier start and stored: applying it again would duplicate it.
                applied.push(format!(
                    "fixtures from {} not applied: the world of {} is in the data directory already",
                    path.display(),
                    cli.fixtures_key
                ));
                continue;
            }
            let (loading, file, key) = (app.clone(), path.clone(), cli.fixtures_key.clone());
            let result = tokio::task::spawn_blocking(move || load_fixtures(&loading, &file, &key))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match result {
                Ok(n) => applied.push(format!(
                    "applied {n} fixtures from {} to {}",
                    path.display(),
                    cli.fixtures_key
                )),
                Err(e) => {
                    eprintln!("credit-emulator: --fixtures {}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        // Printed once the stored worlds are loaded: the first line still means "ready".
        say(&format!("listening on http://{local}"));
        if let Some(loaded) = loaded {
            say(&loaded);
        }
        if let Some(secret) = app.webhooks.forward_secret() {
            // As `stripe listen` does: the receiver needs the secret to verify what it gets.
            say(&format!(
                "forwarding events to {}; webhook signing secret {secret}",
                app.config.webhooks.forward_to.join(", ")
            ));
        }
        for line in applied {
            say(&line);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        serve(listener, app, shutdown).await;
    });
}

/// Prints a line on standard output. A reader that has gone away (a test that read the first line
/// and closed the pipe) must not stop the server, as `println!` would by panicking.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reads a `--fixtures` file (at most `--max-body-bytes`, the bound a file sent over HTTP has) and
/// applies it to the world of `key`: how many fixtures were applied, or why not.
fn load_fixtures(app: &App, path: &std::path::Path, key: &str) -> Result<usize, String> {
    let limit = app.config.max_body_bytes;
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > limit as u64 {
        return Err(format!(
            "the file is {size} bytes, more than --max-body-bytes ({limit})"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    apply_at_start(app, key, bytes)
}

/// A `--fixtures-key`: a test key, as every request's key must be.
fn test_key(s: &str) -> Result<String, String> {
    credit_emulator::wire::keys::check_key(s)
        .map(|()| s.to_string())
        .map_err(|e| e.message)
}

/// A `--forward-to` address: an absolute http or https URL.
fn forward_url(s: &str) -> Result<String, String> {
    check_url(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

/// One `--forward-events` type: any of Stripe's event types, as an endpoint's `enabled_events[]`
/// takes them, so that a misspelt type is refused at start rather than silently forwarding nothing.
/// Blanks around it are dropped (an empty entry is ignored later).
fn forward_event(s: &str) -> Result<String, String> {
    let kind = s.trim();
    if kind.is_empty() || is_event_type(kind) {
        Ok(kind.to_string())
    } else {
        Err(format!(
            "{kind} is not one of Stripe's event types (`*` for all)"
        ))
    }
}

/// A `--webhook-secret`: `whsec_` and something after it, as Stripe's SDKs expect.
fn webhook_secret(s: &str) -> Result<String, String> {
    match s.strip_prefix("whsec_") {
        Some(rest) if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_graphic()) => {
            Ok(s.to_string())
        }
        _ => Err("a webhook secret starts with whsec_ (printable characters, no spaces)".into()),
    }
}

/// Installs the Ctrl-C and SIGTERM handlers now and returns a future that completes on either.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    async move {
        async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(term.as_mut()) => {},
            _ = recv(int.as_mut()) => {},
        }
    }
}

/// Returns a future that completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
