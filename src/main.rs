//! The `credit-emulator` command (feature `cli`, on by default).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use credit_emulator::config::{MAX_DEPTH, MAX_GRACE_SECS, MAX_JSON_DEPTH, MAX_PARAMS};
use credit_emulator::form::FormLimits;
use credit_emulator::request_log::MAX_CAPACITY as MAX_REQUEST_LOG;
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

    /// The event types forwarded, separated by commas (`*` for all).
    #[arg(long, value_name = "TYPES", default_value = "*", value_delimiter = ',')]
    forward_events: Vec<String>,

    /// The secret forwarded deliveries are signed with (`whsec_…`); one is made up and printed
    /// when absent.
    #[arg(long, value_name = "SECRET", value_parser = webhook_secret)]
    webhook_secret: Option<String>,

    /// How many recent requests each world's request log keeps (`GET /_emulator/requests`, the
    /// inspector at /_emulator/ui); 0 turns the log off.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=MAX_REQUEST_LOG as u64))]
    request_log: u64,

    /// Lets requests carrying `X-Emulator-Panic` panic on purpose (for testing panic containment).
    #[arg(long, hide = true)]
    enable_panic_trigger: bool,

    /// Log filter, e.g. `info` or `credit_emulator=debug` (also RUST_LOG).
    #[arg(long, env = "RUST_LOG", default_value = "warn")]
    log: String,
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
        request_log: cli.request_log as usize,
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
        println!("listening on http://{local}");
        if let Some(secret) = app.webhooks.forward_secret() {
            // As `stripe listen` does: the receiver needs the secret to verify what it gets.
            println!(
                "forwarding events to {}; webhook signing secret {secret}",
                app.config.webhooks.forward_to.join(", ")
            );
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        serve(listener, app, shutdown).await;
    });
}

/// A `--forward-to` address: an absolute http or https URL.
fn forward_url(s: &str) -> Result<String, String> {
    check_url(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
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
