//! `bench`: the emulator side by side with a bare hyper server, measured in one run.
//!
//! ```text
//! cargo run --release -p credit-emulator-bench [-- --grants 1000000 --secs 2 --rounds 3 --conns 64]
//! ```
//!
//! It builds and starts the real `credit-emulator` binary (release) and a baseline server (this same
//! program, `bench baseline-server`) as child processes, so start-up, memory and CPU are real. Every
//! row alternates baseline and emulator windows (B E, E B, B E, …) on the same load generator, so a
//! machine that gets busier or quieter during the run shifts both sides alike. Tables go to stdout in
//! Markdown; progress goes to stderr.

mod baseline;
mod count;
mod cycle;
mod inproc;
mod load;
mod memory;
mod persist;
mod proc;
mod receiver;
mod state;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request};

use load::{Make, Outcome, Until};
use proc::Server;

const HELP: &str = "\
bench: credit-emulator side by side with a bare hyper server

USAGE: cargo run --release -p credit-emulator-bench [-- OPTIONS]

OPTIONS:
  --grants N      grants in the large tenant (default 1000000)
  --secs S        length of one measured window, seconds (default 2)
  --rounds R      windows per side and row, alternating (default 3)
  --conns C       keep-alive connections (default 64)
  --startups K    starts timed per server (default 20)
  --emulator P    use this credit-emulator binary instead of building one
  --events N      meter events stored by --soak event-memory (default 1000000)
  --memory        the memory of a shared instance, in one fresh emulator: 20,000 reads and
                  20,000 writes with new keys (past --max-tenants), their resets, a world of
                  --grants grants (480,000 unless given) and its reset, and a world's
                  Idempotency-Key store filled to its cap
  --only ROW      measure one part alone, in fresh processes: create (row 1), create_webhook (row 1
                  with one local webhook endpoint receiving every event), meter_events or cycle
                  (row 7), alternating with the baseline, or cycle (the cycle engine's year of
                  billing, 100 and 1,000 customers), or state (export and import of a tenant of
                  100,000 and of --grants grants), create_persisted (row 1 with --data-dir beside
                  row 1 in memory), or restart (start-up with --grants grants stored, after
                  kill -9 and after a clean stop); a quick check while working on that path
  --soak ROW      for profiling: start the emulator, print its pid, and load it with one
                  kind of request (create, retrieve, list, invoice, native: row 5's native
                  create, meter_events: row 7's events, or create_webhook: row 1w's creates
                  with one endpoint receiving every event) for --secs seconds, or
                  (memory) load --grants grants and report bytes per grant, or
                  (event-memory) store --events meter events and report bytes per event
  --train         for a profile-guided build (scripts/pgo-build.sh): run every --soak load
                  that serves requests (create, retrieve, list, invoice, native, meter_events,
                  create_webhook) for --secs seconds each, then a year of billing for 100
                  customers (as --only cycle), against --emulator, stopping each emulator with
                  SIGTERM so that an instrumented binary writes its profile
  --inproc ROW    the handler's time per request for one kind of request (create, native,
                  invoice, meter_events), in this process on one thread, no sockets, --secs ×
                  50,000 requests: the figure a change to the request path moves, without the network's
                  and the scheduler's noise
  --count ROW     instructions, cache misses and cold writes per request (create, create_webhook:
                  row 1w's creates with one endpoint receiving every event, retrieve, native or
                  meter_events),
                  the emulator and the baseline each under valgrind's callgrind, counted over --secs
                  seconds of load after a warm-up (needs valgrind; use --secs 10 or more): the
                  release binary as shipped, through real sockets, and steady from run to run
  --keep DIR      with --count: write callgrind's files (emulator.out.1, baseline.out.1) to DIR
                  and keep them, for callgrind_annotate
";

#[derive(Debug, Clone)]
struct Opts {
    grants: u64,
    secs: f64,
    rounds: u32,
    conns: usize,
    startups: usize,
    warmup: f64,
    emulator: Option<PathBuf>,
    soak: Option<String>,
    /// `--inproc ROW`: the handler alone, in this process.
    inproc: Option<String>,
    /// `--count ROW`: instructions and cache misses per request, under callgrind.
    count: Option<String>,
    /// `--keep DIR`: where `--count` leaves callgrind's files (otherwise a temporary directory,
    /// removed).
    keep: Option<PathBuf>,
    /// `--only ROW`: one fresh-process row alone (`create`, `meter_events` or `cycle`).
    only: Option<String>,
    /// Meter events stored by `--soak event-memory`.
    events: u64,
    /// `--memory`: the shared-instance memory figures.
    memory: bool,
    /// `--train`: every request-serving soak load in turn, each emulator stopped gently.
    train: bool,
    /// Whether `--grants` was given (`--memory` has its own default).
    grants_given: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("baseline-server") {
        let port = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        baseline::main(port);
        return;
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n\n{HELP}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(opts)) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        grants: 1_000_000,
        secs: 2.0,
        rounds: 3,
        conns: 64,
        startups: 20,
        warmup: 0.3,
        emulator: None,
        soak: None,
        inproc: None,
        count: None,
        keep: None,
        only: None,
        events: 1_000_000,
        memory: false,
        train: false,
        grants_given: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            print!("{HELP}");
            std::process::exit(0);
        }
        if flag == "--memory" {
            o.memory = true;
            continue;
        }
        if flag == "--train" {
            o.train = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--grants" => {
                o.grants_given = true;
                o.grants = value
                    .parse()
                    .map_err(|e: std::num::ParseIntError| bad(e.to_string()))?
            }
            "--secs" => {
                o.secs = value
                    .parse()
                    .map_err(|e: std::num::ParseFloatError| bad(e.to_string()))?
            }
            "--rounds" => {
                o.rounds = value
                    .parse()
                    .map_err(|e: std::num::ParseIntError| bad(e.to_string()))?
            }
            "--conns" => {
                o.conns = value
                    .parse()
                    .map_err(|e: std::num::ParseIntError| bad(e.to_string()))?
            }
            "--startups" => {
                o.startups = value
                    .parse()
                    .map_err(|e: std::num::ParseIntError| bad(e.to_string()))?
            }
            "--events" => {
                o.events = value
                    .parse()
                    .map_err(|e: std::num::ParseIntError| bad(e.to_string()))?
            }
            "--emulator" => o.emulator = Some(PathBuf::from(value)),
            "--soak" => o.soak = Some(value.clone()),
            "--inproc" => o.inproc = Some(value.clone()),
            "--count" => o.count = Some(value.clone()),
            "--keep" => o.keep = Some(PathBuf::from(value)),
            "--only"
                if [
                    "create",
                    "create_webhook",
                    "create_persisted",
                    "restart",
                    "meter_events",
                    "cycle",
                    "state",
                ]
                .contains(&value.as_str()) =>
            {
                o.only = Some(value.clone())
            }
            "--only" => {
                return Err(format!(
                    "--only takes create, create_webhook, create_persisted, restart, meter_events, cycle or state, not {value}"
                ))
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.events == 0
        || o.grants < 20_000
        || o.rounds == 0
        || o.conns == 0
        || o.startups == 0
        || o.secs <= 0.0
    {
        return Err(
            "need --grants ≥ 20000 and positive --events, --secs, --rounds, --conns, --startups"
                .into(),
        );
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// The wire: what stripe-python 16.1.0 and the flexprice SDK send.

const STRIPE_VERSION: &str = "2026-10-28.endive";
const STRIPE_UA: &str = "Stripe/v1 PythonBindings/16.1.0";
const STRIPE_CLIENT_UA: &str = r#"{"bindings_version": "16.1.0", "lang": "python", "publisher": "stripe", "httplib": "requests", "lang_version": "3.12.3", "platform": "Linux-6.1.0-amd64-x86_64-with-glibc2.36", "uname": "Linux bench 6.1.0-amd64 #1 SMP PREEMPT_DYNAMIC x86_64 GNU/Linux"}"#;
const NATIVE_UA: &str = "speakeasy-sdk/python 2.1.43 2.948.4 1.0 flexprice";

/// Unique numbers across the whole run (idempotency keys must never repeat between windows).
static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn stripe_request(
    method: Method,
    key: &str,
    uri: &str,
    form: Option<String>,
) -> Request<Full<Bytes>> {
    let idempotency_key = method == Method::POST;
    stripe_request_with(method, key, uri, form, idempotency_key)
}

/// A POST without an idempotency key (bulk loading: a million stored replies would swamp the
/// per-grant memory figure).
fn stripe_post_plain(key: &str, uri: &str, form: String) -> Request<Full<Bytes>> {
    stripe_request_with(Method::POST, key, uri, Some(form), false)
}

/// A request with stripe-python's headers; a POST also gets its form content type and, when
/// `idempotency_key` is set, a fresh Idempotency-Key.
fn stripe_request_with(
    method: Method,
    key: &str,
    uri: &str,
    form: Option<String>,
    idempotency_key: bool,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .header("stripe-version", STRIPE_VERSION)
        .header(USER_AGENT, STRIPE_UA)
        .header("x-stripe-client-user-agent", STRIPE_CLIENT_UA);
    if method == Method::POST {
        b = b.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    if idempotency_key {
        // stripe-python sends a fresh key with every POST: 32 hex digits as 8-4-4-4-12.
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let nonce = std::process::id();
        b = b.header(
            "idempotency-key",
            format!(
                "{nonce:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                (n >> 40) & 0xffff,
                (n >> 28) & 0xfff,
                (n >> 16) & 0xfff,
                n & 0xffff_ffff_ffff
            ),
        );
    }
    b.body(Full::new(form.map(Bytes::from).unwrap_or_default()))
        .expect("valid request")
}

fn native_request(
    method: Method,
    key: &str,
    uri: &str,
    json: Option<String>,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(HOST, "127.0.0.1")
        .header("x-api-key", key)
        .header(USER_AGENT, NATIVE_UA)
        .header("accept", "application/json")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(json.map(Bytes::from).unwrap_or_default()))
        .expect("valid request")
}

/// The create body of the stripe-python wire capture (reference §16.1), without its `expand[]`
/// (which would add a whole customer to every answer) and with a `name`, scoped to the world's two
/// metered prices (see [`scope_prices`]): 350 bytes or so.
fn realistic_grant_form(customer: &str, prices: &ScopePrices) -> String {
    let [a, b] = &**prices;
    format!(
        "customer={customer}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1000\
         &applicability_config[scope][prices][0][id]={a}&applicability_config[scope][prices][1][id]={b}\
         &category=promotional&metadata[order]=42&metadata[note]=a+b%26c&name=Bench+credits"
    )
}

/// The ids of the two metered prices a world's realistic grants are scoped to.
type ScopePrices = Arc<[String; 2]>;

/// Makes the two metered prices (on one meter) that [`realistic_grant_form`] names in world `key`:
/// a grant's price scope must name existing metered prices. `send` sends one request and answers
/// the id of the object it made. Once per world (a meter's event name is the world's only one).
async fn scope_prices<F, Fut>(key: &str, send: F) -> Result<ScopePrices, String>
where
    F: Fn(Request<Full<Bytes>>) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let meter = send(stripe_post_plain(
        key,
        "/v1/billing/meters",
        "display_name=Bench&event_name=bench_scope&default_aggregation[formula]=sum".into(),
    ))
    .await?;
    let price = |name: &str| {
        stripe_post_plain(
            key,
            "/v1/prices",
            format!(
                "currency=usd&unit_amount=5&product_data[name]={name}&recurring[interval]=month\
                 &recurring[usage_type]=metered&recurring[meter]={meter}"
            ),
        )
    };
    let a = send(price("Bench+A")).await?;
    let b = send(price("Bench+B")).await?;
    Ok(Arc::new([a, b]))
}

/// [`scope_prices`] over HTTP, against the server at `addr`.
async fn scope_prices_at(addr: std::net::SocketAddr, key: &str) -> Result<ScopePrices, String> {
    scope_prices(key, |req| async move {
        let (status, body) = load::once(addr, req).await?;
        json_id(&body).ok_or_else(|| {
            format!(
                "making the scoped prices: {status} {}",
                String::from_utf8_lossy(&body)
            )
        })
    })
    .await
}

/// A grant on metered prices, which a balance summary filtered on `price_type=metered` counts and an
/// invoice line without a price can spend.
fn metered_grant_form(customer: &str, value: u64, priority: u64) -> String {
    format!(
        "customer={customer}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]={value}\
         &applicability_config[scope][price_type]=metered&category=paid&priority={priority}"
    )
}

/// Row 6's setup: the `i`th of the customer's 100 eligible grants (ten priorities, each far more than
/// the invoices of a run spend).
fn invoice_grant_request(key: &str, customer: &str, i: u64) -> Request<Full<Bytes>> {
    stripe_post_plain(
        key,
        "/v1/billing/credit_grants",
        metered_grant_form(customer, 99_999_999, i % 10),
    )
}

/// Row 6's request: a one-line invoice of 100 for the customer, made, finalized and paid with
/// credits by the emulator's invoice helper.
fn invoice_request(key: &str, customer: &str) -> Request<Full<Bytes>> {
    stripe_request(
        Method::POST,
        key,
        "/_emulator/invoices",
        Some(format!(
            "customer={customer}&currency=usd&lines[0][amount]=100"
        )),
    )
}

fn summary_uri(customer: &str) -> String {
    format!(
        "/v1/billing/credit_balance_summary?customer={customer}&filter[type]=applicability_scope\
         &filter[applicability_scope][price_type]=metered"
    )
}

fn json_id(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("id")?.as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// One side of a row.
#[derive(Debug, Clone)]
struct Side {
    failed: u64,
    rps: f64,
    p50_us: u32,
    p99_us: u32,
    cpu_us_per_req: Option<f64>,
    failure: Option<String>,
}

impl Side {
    fn from(mut out: Outcome, ticks: Option<u64>) -> Side {
        out.latencies_us.sort_unstable();
        let secs = out.elapsed.as_secs_f64().max(1e-9);
        let answered = out.ok + out.failed;
        Side {
            failed: out.failed,
            rps: out.ok as f64 / secs,
            p50_us: load::quantile(&out.latencies_us, 0.50),
            p99_us: load::quantile(&out.latencies_us, 0.99),
            cpu_us_per_req: ticks
                .filter(|_| answered > 0)
                .map(|t| t as f64 / proc::TICKS_PER_SEC * 1e6 / answered as f64),
            failure: out.first_failure,
        }
    }
}

/// What a row found.
enum Found {
    Measured { emu: Side, base: Option<Side> },
    NotAvailable(String),
}

struct Row {
    name: String,
    found: Found,
    /// The emulator must reach this share of the baseline's requests per second.
    target_ratio: Option<f64>,
}

struct Bench {
    o: Opts,
    emu: Server,
    base: Server,
}

/// How long freshly started (or freshly loaded) servers are left alone before their memory is read
/// or they are measured.
const SETTLE: Duration = Duration::from_millis(300);

impl Bench {
    /// Starts the emulator, then the baseline; waits `settle` (if any) before handing them over.
    async fn start(
        o: &Opts,
        emu_cmd: &dyn Fn() -> Command,
        base_cmd: &dyn Fn() -> Command,
        settle: Option<Duration>,
    ) -> Result<Bench, String> {
        let (emu, _) = Server::start(emu_cmd(), "/_emulator/health")?;
        let (base, _) = Server::start(base_cmd(), "/")?;
        if let Some(d) = settle {
            tokio::time::sleep(d).await;
        }
        Ok(Bench {
            o: o.clone(),
            emu,
            base,
        })
    }

    /// `make`'s requests on `server` for `span`, over `--conns` keep-alive connections.
    async fn load_for(&self, server: &Server, span: Duration, make: &Make) -> Outcome {
        load::run(
            server.addr,
            self.o.conns,
            Until::Elapsed(span),
            make.clone(),
            None,
        )
        .await
    }

    /// One warmed-up window on `server`: its outcome and the server's CPU ticks during it.
    async fn window(&self, server: &Server, make: &Make) -> (Outcome, Option<u64>) {
        self.load_for(server, Duration::from_secs_f64(self.o.warmup), make)
            .await;
        let c0 = server.cpu_ticks();
        let out = self
            .load_for(server, Duration::from_secs_f64(self.o.secs), make)
            .await;
        let c1 = server.cpu_ticks();
        (out, c0.zip(c1).map(|(a, b)| b.saturating_sub(a)))
    }

    /// The emulator alone, `rounds` windows.
    async fn emulator_only(&self, what: &str, make: Make) -> Side {
        eprintln!("  measuring {what}");
        let mut all = Outcome::default();
        let mut ticks = Some(0);
        for _ in 0..self.o.rounds {
            let (out, t) = self.window(&self.emu, &make).await;
            all.absorb(out);
            ticks = ticks.zip(t).map(|(a, b)| a + b);
        }
        Side::from(all, ticks)
    }

    /// Baseline and emulator in alternating windows: B E, E B, B E, …
    async fn compare(&self, what: &str, emu_make: Make, base_make: Make) -> (Side, Side) {
        eprintln!("  measuring {what} (alternating with the baseline)");
        let (mut e_all, mut b_all) = (Outcome::default(), Outcome::default());
        let (mut e_ticks, mut b_ticks) = (Some(0), Some(0));
        for round in 0..self.o.rounds {
            for emulator_turn in [round % 2 == 1, round % 2 == 0] {
                if emulator_turn {
                    let (out, t) = self.window(&self.emu, &emu_make).await;
                    e_all.absorb(out);
                    e_ticks = e_ticks.zip(t).map(|(a, b)| a + b);
                } else {
                    let (out, t) = self.window(&self.base, &base_make).await;
                    b_all.absorb(out);
                    b_ticks = b_ticks.zip(t).map(|(a, b)| a + b);
                }
            }
        }
        (Side::from(e_all, e_ticks), Side::from(b_all, b_ticks))
    }

    /// Sends `req` once to the emulator; 2xx is fine, 404 means the route is not in this build.
    async fn probe(&self, req: Request<Full<Bytes>>) -> Result<Bytes, String> {
        match load::once(self.emu.addr, req).await {
            Ok((s, body)) if (200..300).contains(&s) => Ok(body),
            Ok((404, _)) => Err("n/a (route not available in this build)".into()),
            Ok((s, body)) => Err(format!("n/a (answered {s}: {})", load::snippet(&body))),
            Err(e) => Err(format!("n/a ({e})")),
        }
    }

    /// Makes `n` objects with POSTs built by `make(i)`, 64 connections at a time, in chunks so that
    /// progress shows; keeps the ids of every `sample`-th answer.
    async fn load(
        &self,
        what: &str,
        n: u64,
        sample: u64,
        make: Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>,
    ) -> Result<(Vec<String>, Duration), String> {
        let ids = Arc::new(Mutex::new(Vec::new()));
        let chunk = 50_000u64;
        let t0 = Instant::now();
        let mut done = 0;
        while done < n {
            let count = chunk.min(n - done);
            let base = done;
            let m = make.clone();
            let on_ids = ids.clone();
            let out = load::run(
                self.emu.addr,
                self.o.conns,
                Until::Count(count),
                Arc::new(move |seq| m(base + seq)),
                Some(Arc::new(move |seq, body: &Bytes| {
                    if (base + seq) % sample == 0 {
                        if let (Some(id), Ok(mut v)) = (json_id(body), on_ids.lock()) {
                            v.push(id);
                        }
                    }
                })),
            )
            .await;
            if out.failed > 0 {
                return Err(format!(
                    "loading {what}: {} of {count} requests failed, first: {}",
                    out.failed,
                    out.first_failure.unwrap_or_default()
                ));
            }
            done += count;
            if n > chunk {
                let secs = t0.elapsed().as_secs_f64();
                eprintln!(
                    "  {what}: {done}/{n} in {secs:.0} s ({:.0}/s), RSS {} MiB",
                    done as f64 / secs,
                    self.emu.rss_kib().unwrap_or(0) / 1024
                );
            }
        }
        let ids = ids.lock().map(|v| v.clone()).unwrap_or_default();
        Ok((ids, t0.elapsed()))
    }

    /// Creates `n` Stripe customers in tenant `key`; their ids in order.
    async fn customers(&self, key: &str, n: u64) -> Result<Vec<String>, String> {
        let ids = Arc::new(Mutex::new(vec![String::new(); n as usize]));
        let k = key.to_string();
        let sink = ids.clone();
        let out = load::run(
            self.emu.addr,
            self.o.conns.min(n as usize),
            Until::Count(n),
            Arc::new(move |i| {
                stripe_post_plain(
                    &k,
                    "/v1/customers",
                    format!("email=bench{i}%40example.com&name=Bench+{i}"),
                )
            }),
            Some(Arc::new(move |seq, body: &Bytes| {
                if let (Some(id), Ok(mut v)) = (json_id(body), sink.lock()) {
                    v[seq as usize] = id;
                }
            })),
        )
        .await;
        if out.failed > 0 {
            return Err(format!(
                "creating customers: {}",
                out.first_failure.unwrap_or_default()
            ));
        }
        let ids = ids.lock().map(|v| v.clone()).unwrap_or_default();
        Ok(ids)
    }
}

/// Builds the same request for both servers.
fn both(f: impl Fn(u64) -> Request<Full<Bytes>> + Send + Sync + 'static) -> (Make, Make) {
    let f: Make = Arc::new(f);
    (f.clone(), f)
}

/// Stripe create of a grant for `customer` with the SDK's body (a fresh Idempotency-Key each time).
fn create_make(key: &'static str, customer: String, prices: ScopePrices) -> Make {
    Arc::new(move |_| {
        stripe_request(
            Method::POST,
            key,
            "/v1/billing/credit_grants",
            Some(realistic_grant_form(&customer, &prices)),
        )
    })
}

/// Stripe retrieve; request `i` asks for `ids[i × 7919 mod len]`, striding over the whole list.
fn retrieve_make(key: &'static str, ids: Arc<Vec<String>>) -> Make {
    Arc::new(move |i| {
        let id = &ids[(i as usize * 7919) % ids.len()];
        stripe_request(
            Method::GET,
            key,
            &format!("/v1/billing/credit_grants/{id}"),
            None,
        )
    })
}

/// Stripe list, first page of 100.
fn list_make(key: &'static str) -> Make {
    Arc::new(move |_| {
        stripe_request(
            Method::GET,
            key,
            "/v1/billing/credit_grants?limit=100",
            None,
        )
    })
}

// ---------------------------------------------------------------------------------------------

async fn run(o: Opts) -> Result<(), String> {
    if let Some(row) = &o.inproc {
        return inproc::run(row, o.secs).await;
    }
    let started = Instant::now();
    let load_before = loadavg();
    let emu_bin = emulator_binary(&o)?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let emu_cmd = || {
        let mut c = Command::new(&emu_bin);
        // A body limit above a million grants' state document, for `PUT /_emulator/state`; no
        // other row sends large bodies.
        c.args(["--port", "0", "--max-body-bytes", state::MAX_BODY]);
        c
    };
    let base_cmd = || {
        let mut c = Command::new(&me);
        c.arg("baseline-server");
        c
    };
    if o.memory {
        return memory::figures(&o, &emu_cmd).await;
    }
    if let Some(row) = &o.count {
        return count::run(&o, &emu_bin, &me, row).await;
    }
    if let Some(row) = &o.soak {
        let b = Bench::start(&o, &emu_cmd, &base_cmd, None).await?;
        return soak(b, row).await;
    }
    if o.train {
        // A profile is written when the instrumented process exits normally; SIGKILL, the
        // usual end of a child server here, would lose it.
        proc::stop_gently();
        for row in TRAINING {
            println!("== training: {row}");
            let b = Bench::start(&o, &emu_cmd, &base_cmd, None).await?;
            soak(b, row).await?;
        }
        // The cycle engine too: code no load runs is laid out as cold, and a year of billing
        // measured slower after a build trained without it.
        println!("== training: cycle");
        cycle::measure(&o, &emu_cmd, &base_cmd, cycle::SIZES[0]).await?;
        return Ok(());
    }

    match o.only.as_deref() {
        Some("create") => {
            let (row, _) = create_row(&o, &emu_cmd, &base_cmd).await?;
            print_rows(&[row]);
            return Ok(());
        }
        Some("create_webhook") => {
            let row = create_webhook_row(&o, &emu_cmd, &base_cmd).await?;
            print_rows(&[row]);
            return Ok(());
        }
        Some("create_persisted") => {
            let rows = create_persisted_rows(&o, &emu_cmd, &base_cmd).await?;
            print_rows(&rows);
            return Ok(());
        }
        Some("restart") => {
            return restart_figures(&o, &emu_cmd, &base_cmd).await;
        }
        Some("cycle") => {
            let figures = cycle_figures(&o, &emu_cmd, &base_cmd).await?;
            cycle::print(&figures);
            println!();
            for (what, ok) in cycle::checks(&figures) {
                println!("- {} {what}", if ok { "[x]" } else { "[ ]" });
            }
            return Ok(());
        }
        Some("state") => {
            let b = Bench::start(&o, &emu_cmd, &base_cmd, None).await?;
            let small =
                state::measure(&b, "sk_test_bench_state_small", state::SMALL, false).await?;
            let big = state::measure(&b, "sk_test_bench_state_big", o.grants, false).await?;
            state::print(&[small, big]);
            return Ok(());
        }
        Some(_) => {
            let row = meter_events_row(&o, &emu_cmd, &base_cmd).await?;
            print_rows(&[row]);
            return Ok(());
        }
        None => {}
    }

    eprintln!("start-up: {} starts of each server", o.startups);
    let emu_starts = startups(&emu_cmd, "/_emulator/health", o.startups)?;
    let base_starts = startups(&base_cmd, "/", o.startups)?;

    let b = Bench::start(&o, &emu_cmd, &base_cmd, Some(SETTLE)).await?;
    let idle_emu = b.emu.rss_kib().unwrap_or(0);
    let idle_base = b.base.rss_kib().unwrap_or(0);
    let mut rows: Vec<Row> = Vec::new();

    // 1. Create, against a fresh emulator and a fresh baseline of their own (see `create_row`).
    eprintln!("row: Stripe create (fresh processes)");
    let (create_row, create_small) = create_row(&o, &emu_cmd, &base_cmd).await?;
    rows.push(create_row);

    // The small tenant: 1,000 grants of one customer.
    eprintln!("loading the 1,000-grant tenant");
    let key_small = "sk_test_bench_small";
    let cus_small = b.customers(key_small, 1).await?.remove(0);
    let prices_small = scope_prices_at(b.emu.addr, key_small).await?;
    let (small_ids, _) = b
        .load("1k tenant", 1_000, 1, {
            let c = cus_small.clone();
            Arc::new(move |_| {
                stripe_post_plain(
                    key_small,
                    "/v1/billing/credit_grants",
                    realistic_grant_form(&c, &prices_small),
                )
            })
        })
        .await?;
    let rss_small = b.emu.rss_kib().unwrap_or(0);

    eprintln!("row: Stripe retrieve");
    let make = retrieve_make(key_small, Arc::new(small_ids));
    let (retrieve_small, base_s) = b.compare("retrieve", make.clone(), make).await;
    rows.push(Row {
        name: "2. Stripe retrieve credit grant (1,000 grants in tenant)".into(),
        found: Found::Measured {
            emu: retrieve_small.clone(),
            base: Some(base_s),
        },
        target_ratio: Some(1.0),
    });

    eprintln!("row: Stripe list at 1,000");
    let make = list_make(key_small);
    let (list_small, base_s) = b.compare("list at 1,000", make.clone(), make).await;
    rows.push(Row {
        name: "3a. Stripe list limit=100, 1,000 grants in tenant".into(),
        found: Found::Measured {
            emu: list_small.clone(),
            base: Some(base_s),
        },
        target_ratio: None,
    });

    // The ledger tenant: one customer with 10,000 entries (one `credits_granted` per grant).
    eprintln!("loading the 10,000-entry customer");
    let key_ledger = "sk_test_bench_ledger";
    let cus_ledger = b.customers(key_ledger, 1).await?.remove(0);
    b.load("ledger tenant", 10_000, u64::MAX, {
        let c = cus_ledger.clone();
        Arc::new(move |_| {
            stripe_post_plain(
                key_ledger,
                "/v1/billing/credit_grants",
                metered_grant_form(&c, 1000, 50),
            )
        })
    })
    .await?;
    let summary_probe = b
        .probe(stripe_request(
            Method::GET,
            key_ledger,
            &summary_uri(&cus_ledger),
            None,
        ))
        .await;
    let summary_small = match &summary_probe {
        Ok(_) => {
            let uri = summary_uri(&cus_ledger);
            Some(
                b.emulator_only(
                    "summary in a 10,000-grant tenant",
                    Arc::new(move |_| stripe_request(Method::GET, key_ledger, &uri, None)),
                )
                .await,
            )
        }
        Err(_) => None,
    };

    // 5. Native create (printed after row 4, see below).
    eprintln!("row: native create");
    let native = native_row(&b).await;

    // 6. The invoice helper, for a customer with 100 metered grants.
    eprintln!("row: invoice helper");
    let key_inv = "sk_test_bench_invoice";
    let cus_inv = b.customers(key_inv, 1).await?.remove(0);
    b.load("invoice tenant", 100, u64::MAX, {
        let c = cus_inv.clone();
        Arc::new(move |i| invoice_grant_request(key_inv, &c, i))
    })
    .await?;
    let inv_row = match b.probe(invoice_request(key_inv, &cus_inv)).await {
        Err(why) => Found::NotAvailable(why),
        Ok(_) => {
            let c = cus_inv.clone();
            let (e, base_m) = both(move |_| invoice_request(key_inv, &c));
            let (emu_s, base_s) = b.compare("invoice helper", e, base_m).await;
            Found::Measured {
                emu: emu_s,
                base: Some(base_s),
            }
        }
    };
    let invoice_row = Row {
        name: "6. Invoice helper POST /_emulator/invoices, 100 eligible grants".into(),
        found: inv_row,
        target_ratio: Some(0.5),
    };

    // The large tenant: every 100th grant goes to one customer (10,000 of a million, metered), the
    // rest spread over customers holding about 1,000 grants each.
    let n = o.grants;
    let key_big = "sk_test_bench_big";
    let others = ((n - n / 100) / 1_000).max(1);
    eprintln!(
        "loading the large tenant: {n} grants over {} customers",
        others + 1
    );
    let big_customers = Arc::new(b.customers(key_big, others + 1).await?);
    let prices_big = scope_prices_at(b.emu.addr, key_big).await?;
    let rss_before_big = b.emu.rss_kib().unwrap_or(0);
    let (big_ids, load_time) = b
        .load("large tenant", n, 997, {
            let cs = big_customers.clone();
            let prices = prices_big.clone();
            Arc::new(move |i| {
                let form = if i % 100 == 0 {
                    metered_grant_form(&cs[0], 1000, 50)
                } else {
                    realistic_grant_form(&cs[1 + ((i / 100) % others) as usize], &prices)
                };
                stripe_post_plain(key_big, "/v1/billing/credit_grants", form)
            })
        })
        .await?;
    tokio::time::sleep(SETTLE).await;
    let rss_big = b.emu.rss_kib().unwrap_or(0);
    let bytes_per_grant = (rss_big.saturating_sub(rss_before_big)) as f64 * 1024.0 / n as f64;

    eprintln!("row: Stripe list at {n}");
    let make = list_make(key_big);
    let (list_big, base_s) = b.compare("list at 1,000,000", make.clone(), make).await;
    rows.push(Row {
        name: format!(
            "3b. Stripe list limit=100, {} grants in tenant",
            thousands(n)
        ),
        found: Found::Measured {
            emu: list_big.clone(),
            base: Some(base_s),
        },
        target_ratio: None,
    });

    eprintln!("row: balance summary");
    let summary_big = match b
        .probe(stripe_request(
            Method::GET,
            key_big,
            &summary_uri(&big_customers[0]),
            None,
        ))
        .await
    {
        Err(why) => {
            rows.push(Row {
                name: "4. Credit balance summary, customer with 10,000 entries".into(),
                found: Found::NotAvailable(why),
                target_ratio: None,
            });
            None
        }
        Ok(_) => {
            let uri = summary_uri(&big_customers[0]);
            let (e, base_m) = both(move |_| stripe_request(Method::GET, key_big, &uri, None));
            let (emu_s, base_s) = b.compare("summary", e, base_m).await;
            rows.push(Row {
                name: format!(
                    "4. Credit balance summary, customer with {} entries, {} grants in tenant",
                    thousands(n / 100),
                    thousands(n)
                ),
                found: Found::Measured {
                    emu: emu_s.clone(),
                    base: Some(base_s),
                },
                target_ratio: None,
            });
            Some(emu_s)
        }
    };

    let retrieve_big = b
        .emulator_only(
            "retrieve at 1,000,000",
            retrieve_make(key_big, Arc::new(big_ids)),
        )
        .await;
    // Keep the table in row order: 1, 2, 3a, 3b, 4, 5, 6, 7.
    rows.push(native);
    rows.push(invoice_row);
    eprintln!("row: meter events (fresh processes)");
    rows.push(meter_events_row(&o, &emu_cmd, &base_cmd).await?);
    eprintln!("the cycle engine (fresh processes)");
    let cycles = cycle_figures(&o, &emu_cmd, &base_cmd).await?;
    eprintln!("state export and import");
    let states = vec![
        state::measure(&b, "sk_test_bench_state_small", state::SMALL, false).await?,
        state::measure(&b, key_big, n, true).await?,
    ];

    let create_big = b
        .emulator_only(
            "create at 1,000,000",
            create_make(key_big, big_customers[1].clone(), prices_big),
        )
        .await;

    // ------------------------------------------------------------------ report
    let load_after = loadavg();
    println!("## Side by side (one run, alternating windows)\n");
    println!(
        "{} keep-alive connections, closed loop; {} × {} s windows per side and row, after {} s warm-up each; \
         load generator, emulator and baseline share the machine's cores.\n",
        o.conns, o.rounds, o.secs, o.warmup
    );
    print_rows(&rows);

    let emu_med = median(&emu_starts);
    println!("\n## Start-up and memory\n");
    println!("| Figure | Emulator | Baseline |");
    println!("|---|---:|---:|");
    println!(
        "| Exec to first 200 on health, median of {} (min–max) | {:.1} ms ({:.1}–{:.1}) | {:.1} ms ({:.1}–{:.1}) |",
        o.startups,
        emu_med,
        min(&emu_starts),
        max(&emu_starts),
        median(&base_starts),
        min(&base_starts),
        max(&base_starts)
    );
    println!(
        "| Resident memory, idle | {:.1} MiB | {:.1} MiB |",
        mib(idle_emu),
        mib(idle_base)
    );
    println!(
        "| Resident memory with {} grants (+ the smaller tenants) | {:.1} MiB | – |",
        thousands(n),
        mib(rss_big)
    );
    println!(
        "| Memory per stored grant at {} (RSS growth ÷ grants) | {:.0} bytes | – |",
        thousands(n),
        bytes_per_grant
    );
    println!(
        "| Loading {} grants over HTTP ({} connections, no Idempotency-Key) | {:.1} s ({}/s) | – |",
        thousands(n),
        o.conns,
        load_time.as_secs_f64(),
        rate(n as f64 / load_time.as_secs_f64())
    );

    println!(
        "\n## Growth from 1,000 to {} grants (emulator)\n",
        thousands(n)
    );
    println!(
        "| Figure | 1,000 grants | {} grants | Growth |",
        thousands(n)
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| Resident memory of the process | {:.1} MiB | {:.1} MiB ({:.0} B per added grant) | ×{:.1} |",
        mib(rss_small),
        mib(rss_big),
        bytes_per_grant,
        rss_big as f64 / rss_small.max(1) as f64
    );
    growth("List limit=100", &list_small, &list_big);
    growth("Retrieve", &retrieve_small, &retrieve_big);
    growth(
        "Create (Idempotency-Key; empty tenant vs large tenant)",
        &create_small,
        &create_big,
    );
    match (&summary_small, &summary_big) {
        (Some(s), Some(l)) => growth(
            "Balance summary, 10,000-entry customer (10,000-grant tenant vs large tenant)",
            s,
            l,
        ),
        _ => println!("| Balance summary | n/a (route not available in this build) | | |"),
    }

    println!("\n## The cycle engine: a year of usage billing\n");
    cycle::print(&cycles);

    println!("\n## State export and import\n");
    state::print(&states);

    // ------------------------------------------------------------------ targets
    println!("\n## Targets\n");
    let mut checks: Vec<(String, bool)> = Vec::new();
    for r in &rows {
        if let (
            Found::Measured {
                emu,
                base: Some(bs),
            },
            Some(t),
        ) = (&r.found, r.target_ratio)
        {
            let ratio = emu.rps / bs.rps.max(1e-9);
            checks.push((
                format!("{}: {ratio:.2} × baseline ≥ {t}", short(&r.name)),
                ratio >= t,
            ));
        }
    }
    checks.push((format!("Start-up {emu_med:.1} ms ≤ 50 ms"), emu_med <= 50.0));
    checks.push((
        format!("Idle RSS {:.1} MiB ≤ 16 MB", mib(idle_emu)),
        idle_emu as f64 * 1024.0 <= 16e6,
    ));
    checks.push((
        format!("{bytes_per_grant:.0} bytes per grant ≤ 1.5 KiB"),
        bytes_per_grant <= 1536.0,
    ));
    let list_growth = list_big.p50_us as f64 / list_small.p50_us.max(1) as f64;
    checks.push((
        format!(
            "List p50 at {} = {list_growth:.2} × at 1,000 (≤ 2)",
            thousands(n)
        ),
        list_growth <= 2.0,
    ));
    if let (Some(s), Some(l)) = (&summary_small, &summary_big) {
        let g = l.p50_us as f64 / s.p50_us.max(1) as f64;
        checks.push((format!("Summary p50 in the large tenant = {g:.2} × in a 10,000-grant tenant (no tenant scan; ≤ 2)"), g <= 2.0));
    }
    let mut worst = (0u32, String::new());
    for r in &rows {
        if let Found::Measured { emu, .. } = &r.found {
            if emu.p99_us > worst.0 {
                worst = (emu.p99_us, short(&r.name));
            }
        }
    }
    checks.push((
        format!("Worst p99 {} ({}) ≤ 50 ms", ms(worst.0), worst.1),
        worst.0 <= 50_000,
    ));
    checks.extend(cycle::checks(&cycles));
    for (what, ok) in &checks {
        println!("- {} {what}", if *ok { "[x]" } else { "[ ]" });
    }

    println!("\n## Conditions\n");
    println!("- Date: {}", utc_now());
    println!("- Machine: {}", machine());
    println!(
        "- Load average (1, 5, 15 min) at start: {load_before}; at end: {load_after} (other work on the machine shows here)"
    );
    println!("- Whole run: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The side-by-side table of `rows`, and the first failure of any row that had one.
fn print_rows(rows: &[Row]) {
    println!("| Row | Emulator req/s | p50 | p99 | CPU/req | Baseline req/s | p50 | p99 | CPU/req | Ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        match &r.found {
            Found::NotAvailable(why) => println!("| {} | {why} | | | | | | | | |", r.name),
            Found::Measured { emu, base } => {
                let (bs, ratio) = match base {
                    Some(bs) => (
                        format!(
                            "{} | {} | {} | {}",
                            rate(bs.rps),
                            ms(bs.p50_us),
                            ms(bs.p99_us),
                            cpu(bs.cpu_us_per_req)
                        ),
                        format!(
                            "{:.2}{}",
                            emu.rps / bs.rps.max(1e-9),
                            r.target_ratio
                                .map(|t| format!(" (target ≥ {t})"))
                                .unwrap_or_default()
                        ),
                    ),
                    None => ("– | – | – | –".into(), "–".into()),
                };
                println!(
                    "| {} | {}{} | {} | {} | {} | {bs} | {ratio} |",
                    r.name,
                    rate(emu.rps),
                    if emu.failed > 0 {
                        format!(" ({} failed)", emu.failed)
                    } else {
                        String::new()
                    },
                    ms(emu.p50_us),
                    ms(emu.p99_us),
                    cpu(emu.cpu_us_per_req),
                );
            }
        }
    }
    for r in rows {
        if let Found::Measured { emu, .. } = &r.found {
            if let Some(f) = &emu.failure {
                println!("\n{}: first failure: {f}", r.name);
            }
        }
    }
}

/// Row 1, Stripe create, against a fresh emulator and a fresh baseline of its own, started for this
/// row and stopped after it: a test double in CI is a small, young process, and grants created here
/// must neither be freed into the heap the large tenant is measured in (hiding its memory) nor pay for
/// that heap. The same load in the million-grant process is "create at 1,000,000" in the growth table.
async fn create_row(
    o: &Opts,
    emu_cmd: &dyn Fn() -> Command,
    base_cmd: &dyn Fn() -> Command,
) -> Result<(Row, Side), String> {
    let fresh = Bench::start(o, emu_cmd, base_cmd, Some(SETTLE)).await?;
    let key = "sk_test_bench_create";
    let cus = fresh.customers(key, 1).await?.remove(0);
    let prices = scope_prices_at(fresh.emu.addr, key).await?;
    let make = create_make(key, cus, prices);
    let (emu_s, base_s) = fresh.compare("create", make.clone(), make).await;
    let row = Row {
        name:
            "1. Stripe create credit grant (SDK body + headers, Idempotency-Key; fresh processes)"
                .into(),
        found: Found::Measured {
            emu: emu_s.clone(),
            base: Some(base_s),
        },
        target_ratio: Some(0.85),
    };
    Ok((row, emu_s))
}

/// Row 1 with persistence on (`--data-dir` in a fresh temporary directory), beside row 1 in memory:
/// what committing every create to SQLite before answering costs. Both against the same baseline,
/// so the ratio of their ratios is persisted ÷ in-memory.
async fn create_persisted_rows(
    o: &Opts,
    emu_cmd: &dyn Fn() -> Command,
    base_cmd: &dyn Fn() -> Command,
) -> Result<Vec<Row>, String> {
    let (memory, memory_side) = create_row(o, emu_cmd, base_cmd).await?;
    let dir = persist::TempDir::new("create")?;
    let persisted_cmd = || {
        let mut c = emu_cmd();
        c.arg("--data-dir").arg(dir.path());
        c
    };
    let (mut row, side) = create_row(o, &persisted_cmd, base_cmd).await?;
    let share = side.rps / memory_side.rps.max(1e-9);
    eprintln!(
        "persisted create: {:.0} req/s, in memory {:.0} req/s: {share:.2} of in-memory (target 0.5)",
        side.rps, memory_side.rps
    );
    row.name = format!(
        "1p. Stripe create credit grant with --data-dir (SQLite, committed before answering): {share:.2}× the in-memory create (target 0.5)"
    );
    row.target_ratio = None;
    Ok(vec![memory, row])
}

/// Restart time with `--grants` grants stored (1,000 customers): after `kill -9` (the journal is
/// replayed) and after a clean stop (the worlds are loaded from their snapshots).
async fn restart_figures(
    o: &Opts,
    emu_cmd: &dyn Fn() -> Command,
    base_cmd: &dyn Fn() -> Command,
) -> Result<(), String> {
    let dir = persist::TempDir::new("restart")?;
    let with_dir = || {
        let mut c = emu_cmd();
        c.arg("--data-dir").arg(dir.path());
        c
    };
    let b = Bench::start(o, &with_dir, base_cmd, None).await?;
    let key = "sk_test_bench_restart";
    let customers = Arc::new(b.customers(key, 1_000).await?);
    let prices = scope_prices_at(b.emu.addr, key).await?;
    eprintln!("storing {} grants", o.grants);
    let (_, took) = b
        .load("restart world", o.grants, u64::MAX, {
            let c = customers.clone();
            Arc::new(move |i| {
                stripe_post_plain(
                    key,
                    "/v1/billing/credit_grants",
                    realistic_grant_form(&c[(i % 1_000) as usize], &prices),
                )
            })
        })
        .await?;
    let rss_loaded = b.emu.rss_kib().unwrap_or(0);
    drop(b); // SIGKILL
    let journal_bytes = dir.size();
    eprintln!("restarting after kill -9");
    let (after_kill, replayed) = Server::start(with_dir(), "/_emulator/health")?;
    let rss_replayed = after_kill.rss_kib().unwrap_or(0);
    let stop = persist::terminate(after_kill.pid());
    drop(after_kill);
    let snapshot_bytes = dir.size();
    eprintln!("restarting after a clean stop");
    let (after_stop, loaded) = Server::start(with_dir(), "/_emulator/health")?;
    let rss_snapshot = after_stop.rss_kib().unwrap_or(0);
    drop(after_stop);
    println!(
        "| Restart with {} grants stored (1,000 customers) | Figure |",
        o.grants
    );
    println!("|---|---:|");
    println!(
        "| storing them (create over HTTP, committed before each answer) | {:.1} s |",
        took.as_secs_f64()
    );
    println!(
        "| data directory after the writes (journal) | {:.0} MB |",
        journal_bytes as f64 / 1e6
    );
    println!(
        "| start after `kill -9`, to the first 200 (journal replayed) | {:.2} s |",
        replayed.as_secs_f64()
    );
    println!(
        "| clean stop (SIGTERM: snapshots written) | {:.2} s |",
        stop.as_secs_f64()
    );
    println!(
        "| data directory after the clean stop (snapshots) | {:.0} MB |",
        snapshot_bytes as f64 / 1e6
    );
    println!(
        "| start after a clean stop, to the first 200 (snapshots loaded) | {:.2} s |",
        loaded.as_secs_f64()
    );
    println!(
        "| resident memory: loaded by requests / replayed / from snapshots | {} / {} / {} MB |",
        rss_loaded / 1024,
        rss_replayed / 1024,
        rss_snapshot / 1024
    );
    Ok(())
}

/// Row 1 again with one webhook endpoint of the tenant receiving every event (`enabled_events[]=*`)
/// at a local receiver that answers 200 at once: what producing, rendering, signing and delivering
/// every event costs the create path. The baseline serves the same requests as in row 1.
async fn create_webhook_row(
    o: &Opts,
    emu_cmd: &dyn Fn() -> Command,
    base_cmd: &dyn Fn() -> Command,
) -> Result<Row, String> {
    let fresh = Bench::start(o, emu_cmd, base_cmd, Some(SETTLE)).await?;
    let key = "sk_test_bench_create_webhook";
    let receiver = endpoint_receiving_every_event(&fresh, key).await?;
    let cus = fresh.customers(key, 1).await?.remove(0);
    let prices = scope_prices_at(fresh.emu.addr, key).await?;
    let make = create_make(key, cus, prices);
    let mark = receiver.mark();
    let (emu_s, base_s) = fresh
        .compare(
            "create, one endpoint receiving every event",
            make.clone(),
            make,
        )
        .await;
    // The receiver's share of the machine: what the deliveries cost the application that gets
    // them, on the same two cores as the emulator and the load.
    if let (answered, Some(per)) = receiver.since(mark) {
        eprintln!("  receiver: {answered} requests answered, {per:.1} µs of its CPU per request");
    }
    // What became of the deliveries: the drops of the endpoint's full queue, and where the last
    // ones stand (the queue drains while this is asked).
    if let Ok(body) = fresh
        .probe(stripe_request(
            Method::GET,
            key,
            "/_emulator/webhook_deliveries?limit=1000",
            None,
        ))
        .await
    {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let dropped: u64 = v["dropped"]
            .as_array()
            .map(|d| d.iter().filter_map(|x| x["count"].as_u64()).sum())
            .unwrap_or(0);
        let mut by_status = std::collections::BTreeMap::<String, u64>::new();
        for d in v["data"].as_array().into_iter().flatten() {
            *by_status
                .entry(d["status"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        eprintln!(
            "  webhook deliveries: {dropped} dropped from the full queue; the last {} by status: {by_status:?}",
            v["data"].as_array().map_or(0, Vec::len)
        );
    }
    Ok(Row {
        name: "1w. Stripe create credit grant, one local webhook endpoint receiving every event \
               (fresh processes)"
            .into(),
        found: Found::Measured {
            emu: emu_s,
            base: Some(base_s),
        },
        target_ratio: Some(0.7),
    })
}

/// A local receiver, started on a thread of its own, and an endpoint of tenant `key` that sends it
/// every event (`enabled_events[]=*`): row 1w's setup.
async fn endpoint_receiving_every_event(
    b: &Bench,
    key: &str,
) -> Result<receiver::Receiver, String> {
    let receiver = receiver::start().await?;
    b.probe(stripe_post_plain(
        key,
        "/v1/webhook_endpoints",
        format!("url=http://{}/hook&enabled_events[]=*", receiver.addr),
    ))
    .await?;
    Ok(receiver)
}

/// The cycle engine's figures for each of [`cycle::SIZES`], each in a fresh emulator.
async fn cycle_figures(
    o: &Opts,
    emu_cmd: &dyn Fn() -> Command,
    base_cmd: &dyn Fn() -> Command,
) -> Result<Vec<cycle::Figures>, String> {
    let mut out = Vec::new();
    for n in cycle::SIZES {
        out.push(cycle::measure(o, emu_cmd, base_cmd, n).await?);
    }
    Ok(out)
}

/// The meter every meter-event row counts: a sum over `payload[value]`.
const METER_EVENT_NAME: &str = "api_requests";

/// Row 7's setup in tenant `key`: `customers` customers and the meter. The customers' ids, or why
/// the route is not there.
async fn meter_setup(b: &Bench, key: &'static str, customers: u64) -> Result<Vec<String>, String> {
    b.probe(meter_request(key)).await?;
    b.customers(key, customers).await
}

/// Row 7's meter, a sum over `METER_EVENT_NAME`, made in tenant `key`.
fn meter_request(key: &str) -> Request<Full<Bytes>> {
    stripe_post_plain(
        key,
        "/v1/billing/meters",
        format!(
            "display_name=API+requests&event_name={METER_EVENT_NAME}&default_aggregation[formula]=sum"
        ),
    )
}

/// What stripe-python sends for `MeterEvent.create(event_name=…, payload={…}, identifier=…)`:
/// a UUID-like identifier (36 characters), fresh for every event, and no timestamp (now).
fn meter_event_form(customer: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!(
        "event_name={METER_EVENT_NAME}&payload[stripe_customer_id]={customer}&payload[value]=1\
         &identifier={:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        std::process::id(),
        (n >> 40) & 0xffff,
        (n >> 28) & 0xfff,
        (n >> 16) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// Meter events spread over `customers`, with the SDK's headers and a fresh Idempotency-Key.
fn meter_events_make(key: &'static str, customers: Arc<Vec<String>>) -> Make {
    Arc::new(move |i| {
        let c = &customers[i as usize % customers.len()];
        stripe_request(
            Method::POST,
            key,
            "/v1/billing/meter_events",
            Some(meter_event_form(c)),
        )
    })
}

/// Row 7, `POST /v1/billing/meter_events`, against fresh processes of its own (as row 1): 100
/// customers of one meter, each event a new identifier. The baseline answers the same form with
/// a `billing.meter_event` echoing it, the same wire work without the dedupe and the buckets.
async fn meter_events_row(
    o: &Opts,
    emu_cmd: &dyn Fn() -> Command,
    base_cmd: &dyn Fn() -> Command,
) -> Result<Row, String> {
    let name = "7. Stripe POST /v1/billing/meter_events (SDK body + headers, Idempotency-Key; fresh processes)";
    let fresh = Bench::start(o, emu_cmd, base_cmd, Some(SETTLE)).await?;
    let key = "sk_test_bench_meter_events";
    let customers = match meter_setup(&fresh, key, 100).await {
        Ok(c) => Arc::new(c),
        Err(why) => {
            return Ok(Row {
                name: name.into(),
                found: Found::NotAvailable(why),
                target_ratio: None,
            })
        }
    };
    let make = meter_events_make(key, customers);
    let (emu_s, base_s) = fresh.compare("meter events", make.clone(), make).await;
    Ok(Row {
        name: name.into(),
        found: Found::Measured {
            emu: emu_s,
            base: Some(base_s),
        },
        target_ratio: Some(0.85),
    })
}

/// `--soak meter_events` (row 7's load, for a profiler) and `--soak event-memory` (store
/// `--events` events without Idempotency-Key, and report the resident memory they added).
async fn soak_meter_events(b: &Bench, row: &str) -> Result<(), String> {
    let key = "sk_test_bench_soak_events";
    let customers = Arc::new(meter_setup(b, key, 100).await?);
    if row == "meter_events" {
        return soak_load(b, row, meter_events_make(key, customers)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let before = b.emu.rss_kib().unwrap_or(0);
    let n = b.o.events;
    let (_, took) = b
        .load("event memory", n, u64::MAX, {
            let cs = customers.clone();
            Arc::new(move |i| {
                let c = &cs[i as usize % cs.len()];
                stripe_post_plain(key, "/v1/billing/meter_events", meter_event_form(c))
            })
        })
        .await?;
    tokio::time::sleep(SETTLE).await;
    let after = b.emu.rss_kib().unwrap_or(0);
    println!(
        "event-memory: {n} meter events (100 customers, 36-character identifiers) in {:.1} s ({}/s), RSS {:.1} → {:.1} MiB, {:.0} bytes per event",
        took.as_secs_f64(),
        rate(n as f64 / took.as_secs_f64()),
        mib(before),
        mib(after),
        after.saturating_sub(before) as f64 * 1024.0 / n as f64
    );
    Ok(())
}

/// The loads `--train` runs, in order: every `--soak` row that serves requests (the memory rows
/// only store, which the create row already does).
const TRAINING: [&str; 7] = [
    "create",
    "retrieve",
    "list",
    "invoice",
    "native",
    "meter_events",
    "create_webhook",
];

/// `--soak ROW`: one kind of request against the emulator alone, for a profiler to watch.
async fn soak(b: Bench, row: &str) -> Result<(), String> {
    let key = "sk_test_bench_soak";
    let cus = b.customers(key, 1).await?.remove(0);
    let prices = scope_prices_at(b.emu.addr, key).await?;
    if row == "memory" {
        let before = b.emu.rss_kib().unwrap_or(0);
        let n = b.o.grants;
        b.load("memory", n, u64::MAX, {
            let (c, prices) = (cus.clone(), prices.clone());
            Arc::new(move |_| {
                stripe_post_plain(
                    key,
                    "/v1/billing/credit_grants",
                    realistic_grant_form(&c, &prices),
                )
            })
        })
        .await?;
        let after = b.emu.rss_kib().unwrap_or(0);
        println!(
            "memory: {n} grants, RSS {:.1} → {:.1} MiB, {:.0} bytes per grant",
            mib(before),
            mib(after),
            after.saturating_sub(before) as f64 * 1024.0 / n as f64
        );
        return Ok(());
    }
    if row == "meter_events" || row == "event-memory" {
        return soak_meter_events(&b, row).await;
    }
    if row == "create_webhook" {
        // As row 1w: the tenant's one endpoint receives every event at a local receiver.
        let receiver = endpoint_receiving_every_event(&b, key).await?;
        let mark = receiver.mark();
        soak_load(&b, row, create_make(key, cus, prices)).await?;
        if let (answered, Some(per)) = receiver.since(mark) {
            println!(
                "receiver: {answered} deliveries answered, {per:.1} µs of its CPU per delivery"
            );
        }
        return Ok(());
    }
    if row == "invoice" {
        // As row 6: a customer with 100 metered grants, each invoice a line of 100 cents.
        b.load("soak invoice tenant", 100, u64::MAX, {
            let c = cus.clone();
            Arc::new(move |i| {
                stripe_post_plain(
                    key,
                    "/v1/billing/credit_grants",
                    metered_grant_form(&c, 99_999_999, i % 10),
                )
            })
        })
        .await?;
    }
    if row == "native" {
        // As row 5: grants on a subscription, in a tenant of their own.
        let key = "sk_test_bench_soak_native";
        let subscription = native_setup(&b, key).await.0?;
        let body = native_subscription_grant_body(&subscription);
        let make: Make = Arc::new(move |_| {
            native_request(Method::POST, key, "/v1/creditgrants", Some(body.clone()))
        });
        return soak_load(&b, row, make).await;
    }
    let ids = if row == "invoice" {
        Vec::new()
    } else {
        b.load("soak tenant", 1_000, 1, {
            let (c, prices) = (cus.clone(), prices.clone());
            Arc::new(move |_| {
                stripe_post_plain(
                    key,
                    "/v1/billing/credit_grants",
                    realistic_grant_form(&c, &prices),
                )
            })
        })
        .await?
        .0
    };
    let make = match row {
        "create" => create_make(key, cus, prices),
        "retrieve" => retrieve_make(key, Arc::new(ids)),
        "list" => list_make(key),
        "invoice" => {
            let form = format!("customer={cus}&currency=usd&lines[0][amount]=100");
            Arc::new(move |_| {
                stripe_request(Method::POST, key, "/_emulator/invoices", Some(form.clone()))
            })
        }
        other => {
            return Err(format!(
                "--soak takes create, retrieve, list, invoice, native, meter_events, create_webhook, memory or event-memory, not {other}"
            ))
        }
    };
    soak_load(&b, row, make).await
}

/// Loads the emulator with `make`'s requests for `--secs` and prints what it managed.
async fn soak_load(b: &Bench, row: &str, make: Make) -> Result<(), String> {
    eprintln!("emulator pid {}: {row} for {} s", b.emu.pid(), b.o.secs);
    let c0 = b.emu.cpu_ticks();
    let out = b
        .load_for(&b.emu, Duration::from_secs_f64(b.o.secs), &make)
        .await;
    let ticks = c0.zip(b.emu.cpu_ticks()).map(|(a, c)| c.saturating_sub(a));
    let s = Side::from(out, ticks);
    println!(
        "{row}: {} req/s, p50 {}, p99 {}, CPU/req {}, RSS {:.1} MiB",
        rate(s.rps),
        ms(s.p50_us),
        ms(s.p99_us),
        cpu(s.cpu_us_per_req),
        mib(b.emu.rss_kib().unwrap_or(0))
    );
    Ok(())
}

/// When row 5's subscription and grants start (in the past, so grants are effective at once).
const NATIVE_START: &str = "2025-01-01T00:00:00Z";

/// Row 5's setup in the tenant `key`: a customer, a plan and a subscription to hang grants on.
/// Returns the subscription and the plan, or why each could not be made.
async fn native_setup(
    b: &Bench,
    key: &'static str,
) -> (Result<String, String>, Result<String, String>) {
    // The documented setup: customer, plan, subscription; then grants on the subscription.
    let customer = b
        .probe(native_setup_request(key, NativeSetup::Customer))
        .await
        .map(|body| json_id(&body).unwrap_or_default());
    let plan = b
        .probe(native_setup_request(key, NativeSetup::Plan))
        .await
        .map(|body| json_id(&body).unwrap_or_default());
    let subscription = match (&customer, &plan) {
        (Ok(c), Ok(p)) => b
            .probe(native_setup_request(key, NativeSetup::Subscription(c, p)))
            .await
            .map(|body| json_id(&body).unwrap_or_default()),
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    };
    (subscription, plan)
}

/// One step of row 5's setup.
enum NativeSetup<'a> {
    /// The customer.
    Customer,
    /// The plan.
    Plan,
    /// The subscription of the customer to the plan (their ids), from `NATIVE_START`.
    Subscription(&'a str, &'a str),
}

/// The request that makes `step` of row 5's setup in tenant `key`.
fn native_setup_request(key: &str, step: NativeSetup) -> Request<Full<Bytes>> {
    let (uri, body) = match step {
        NativeSetup::Customer => (
            "/v1/customers",
            serde_json::json!({"external_id": "bench-1", "name": "Bench"}),
        ),
        NativeSetup::Plan => (
            "/v1/plans",
            serde_json::json!({"name": "Bench plan", "lookup_key": "bench-plan"}),
        ),
        NativeSetup::Subscription(customer, plan) => (
            "/v1/subscriptions",
            serde_json::json!({"customer_id": customer, "plan_id": plan, "currency": "usd",
                "billing_cadence": "RECURRING", "billing_period": "MONTHLY",
                "billing_period_count": 1, "start_date": NATIVE_START}),
        ),
    };
    native_request(Method::POST, key, uri, Some(body.to_string()))
}

/// Row 5's grant body: a grant on the subscription `subscription`, from `NATIVE_START`.
fn native_subscription_grant_body(subscription: &str) -> String {
    native_grant_body(serde_json::json!({"scope": "SUBSCRIPTION",
        "subscription_id": subscription, "start_date": NATIVE_START}))
}

/// Row 5's grant body, with `scope`'s fields added.
fn native_grant_body(scope: serde_json::Value) -> String {
    let mut body = serde_json::json!({"name": "Bench credits", "credits": "100", "cadence": "ONETIME",
        "expiration_type": "NEVER", "priority": 1, "metadata": {"order": "42"}});
    if let (Some(b), Some(s)) = (body.as_object_mut(), scope.as_object()) {
        b.extend(s.clone());
    }
    body.to_string()
}

/// Row 5: native create, or whatever native route this build has.
async fn native_row(b: &Bench) -> Row {
    let key = "sk_test_bench_native";
    let name = "5. Native POST /v1/creditgrants".to_string();
    let (subscription, plan) = native_setup(b, key).await;
    let grant = native_grant_body;
    let (label, body): (String, String) = match (&subscription, &plan) {
        (Ok(s), _) => (
            "SUBSCRIPTION scope".into(),
            native_subscription_grant_body(s),
        ),
        (Err(why), Ok(p)) => (
            format!("PLAN scope; subscription setup {why}"),
            grant(serde_json::json!({"scope": "PLAN", "plan_id": p})),
        ),
        (Err(why), Err(_)) => {
            // Nothing to hang a grant on: measure the native list if it exists.
            return match b
                .probe(native_request(
                    Method::GET,
                    key,
                    "/v1/creditgrants?limit=10",
                    None,
                ))
                .await
            {
                Ok(_) => {
                    let (e, base_m) = both(move |_| {
                        native_request(Method::GET, key, "/v1/creditgrants?limit=10", None)
                    });
                    let (emu, base) = b.compare("native list", e, base_m).await;
                    Row {
                        name: format!("5. Native GET /v1/creditgrants?limit=10 (create needs a plan or subscription: {why})"),
                        found: Found::Measured { emu, base: Some(base) },
                        target_ratio: None,
                    }
                }
                Err(why) => Row {
                    name,
                    found: Found::NotAvailable(why),
                    target_ratio: None,
                },
            };
        }
    };
    match b
        .probe(native_request(
            Method::POST,
            key,
            "/v1/creditgrants",
            Some(body.clone()),
        ))
        .await
    {
        Err(why) => Row {
            name,
            found: Found::NotAvailable(why),
            target_ratio: None,
        },
        Ok(_) => {
            let (e, base_m) = both(move |_| {
                native_request(Method::POST, key, "/v1/creditgrants", Some(body.clone()))
            });
            let (emu, base) = b.compare("native create", e, base_m).await;
            Row {
                name: format!("{name} ({label})"),
                found: Found::Measured {
                    emu,
                    base: Some(base),
                },
                target_ratio: Some(0.7),
            }
        }
    }
}

fn growth(what: &str, small: &Side, big: &Side) {
    println!(
        "| {what}: req/s, p50 | {}, {} | {}, {} | p50 ×{:.2} |",
        rate(small.rps),
        ms(small.p50_us),
        rate(big.rps),
        ms(big.p50_us),
        big.p50_us as f64 / small.p50_us.max(1) as f64
    );
}

/// Times `k` starts of a server: exec to first 200 on `health`, in milliseconds.
fn startups(cmd: &dyn Fn() -> Command, health: &str, k: usize) -> Result<Vec<f64>, String> {
    let mut v = Vec::with_capacity(k);
    for _ in 0..k {
        let (server, t) = Server::start(cmd(), health)?;
        v.push(t.as_secs_f64() * 1e3);
        drop(server);
    }
    Ok(v)
}

/// The release `credit-emulator` next to this program, built first unless `--emulator` names one.
fn emulator_binary(o: &Opts) -> Result<PathBuf, String> {
    if let Some(p) = &o.emulator {
        return Ok(p.clone());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building credit-emulator (release)");
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "credit-emulator",
            "--bin",
            "credit-emulator",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building credit-emulator failed".into());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = me.with_file_name("credit-emulator");
    if !bin.exists() {
        return Err(format!("{} not found; pass --emulator PATH", bin.display()));
    }
    Ok(bin)
}

fn rate(r: f64) -> String {
    thousands(r.round() as u64)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(us: u32) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn cpu(us: Option<f64>) -> String {
    us.map(|u| format!("{u:.0} µs"))
        .unwrap_or_else(|| "–".into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn short(name: &str) -> String {
    name.split(" (").next().unwrap_or(name).to_string()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem}, Linux {}", kernel.trim())
}

/// Now in UTC as `YYYY-MM-DD HH:MM`, without a date library.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
