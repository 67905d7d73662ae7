//! # credit-emulator
//!
//! A fast, stateful, in-memory emulator of billing-credit APIs: Stripe's Billing Credits
//! (form-encoded, as Stripe's SDKs send it) and a native JSON API modelled on Flexprice's credit
//! grants, both served from **one** model and **one** ledger, so a grant made through one API is seen,
//! and spent, through the other.
//!
//! ## As a library
//!
//! [`Emulator`] starts a server on the caller's tokio runtime, on a free loopback port; clients
//! reach it over HTTP at [`Emulator::uri`], and the handle resets tenants and moves their clocks
//! from Rust. Dropping the handle stops the server.
//!
//! ```
//! use credit_emulator::Emulator;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::builder().seed(7).start().await?;
//! emulator.set_clock("sk_test_docs", 1_767_225_600)?; // 2026-01-01T00:00:00Z
//!
//! let customer: serde_json::Value = reqwest::Client::new()
//!     .post(format!("{}/v1/customers", emulator.uri()))
//!     .bearer_auth("sk_test_docs")
//!     .form(&[("email", "ada@example.com")])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(customer["created"], 1_767_225_600);
//!
//! assert_eq!(emulator.reset("sk_test_docs"), Ok(true)); // that world is empty again
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! Data flows down, answers flow up:
//!
//! ```text
//! main.rs        CLI: flags, logging, bind, serve until Ctrl-C / SIGTERM (feature `cli`)
//! emulator.rs    the library handle: start on the caller's runtime, reset, move clocks, shut down
//! server.rs      the hyper layer: accept loop, connection cap, head and body limits, Request-Id,
//!                panic containment, graceful shutdown; hands an owned Request to the router,
//!                waits for a stored request's commit (--data-dir), and records the answered
//!                request in its world's request log
//! connections.rs the open connections: how long each has waited for a request head (one sweeper
//!                task cuts off those past --header-read-timeout), and shutdown's orders to them
//! turns.rs       taking turns at one world: a request whose world is busy leaves its work to the
//!                task already at it (same core, warm cache) and waits without holding a thread;
//!                each world's turns are kept beside the model, in App
//! router.rs      which facade answers a request, from its path and headers, and which world it
//!                names (for the request log); `prepare` reads what needs no world before the
//!                request takes its turn, `Prepared::finish` serves the rest
//! app.rs         App: the worlds (model::Store, at most --max-tenants of them; reads never make
//!                one), stored idempotent answers, settings; App::reset; the hand-off of events to
//!                webhook delivery
//! http.rs        the owned Request / Reply the facades see (no hyper types past server.rs)
//! form.rs        form decoding with bracket nesting, strict about encoding, bounded
//! pretty.rs      pretty JSON, as every answer of both APIs is written
//! idempotency.rs stored answers for Idempotency-Key, one store per world, beside the model;
//!                each expires after a day and holds a bounded number of keys
//! meter_sessions.rs  each meter event session's token, world and expiry, beside the model: the
//!                stream's credential names its world before the request takes its turn
//! memory.rs      worlds a reset drops are dropped on a background thread, and the allocator then
//!                gives their memory back to the system
//! request_log.rs each world's recent requests, recorded by server.rs once a reply is built,
//!                beside the model; read by GET /_emulator/requests
//! wire/          Stripe's wire conventions, shared by stripe/ and admin/: the error envelope, API
//!                keys and worlds, query + body decoding, parameter schemas (Field, Spec,
//!                validate, getters), API versions
//! stripe/        the Stripe facade: op.rs (the Operation trait), routes.rs (the route table),
//!                mod.rs (the pipeline around operations), one file per resource (customers,
//!                credit_grants, balances, transactions, invoices, invoice_items, test_clocks,
//!                products, prices (with catalog.rs for what the two share), subscriptions,
//!                subscription_items, meters, meter_events, alerts, webhook_endpoints), event_types.rs (all
//!                of Stripe's event types, as `enabled_events[]` and `--forward-events` take them), events.rs (the
//!                model's changes as Stripe events, stored per world; /v1/events), lists, expand,
//!                search (the query language, and the one search operation of every
//!                resource that has `…/search`)
//! native/        the native (Flexprice-style) facade: auth, JSON binding, errors, offset lists,
//!                one file per resource (credit_grants, customers, plans, subscriptions, wallets)
//! admin/         /_emulator/*: health, reset, tenant clock, default Stripe version, webhook
//!                deliveries, fixture files in the Stripe CLI's format (fixtures.rs: each fixture
//!                sent through router::dispatch as its own request), the request log
//!                (requests.rs), and the inspector's page (ui.rs: the files under ui/, built in), the world's state as a document
//!                (state.rs)
//! persist/       --data-dir: a journal of requests (with their tapes) in SQLite, committed before
//!                each answer and replayed at start-up; snapshots of worlds
//! webhooks/      webhook delivery: per-destination queues and tasks, retries, signatures,
//!                forwarding; outside every lock
//! model/         canonical state and rules, knowing nothing of HTTP or either API's words:
//!                tenant, customer, lot (a grant's allotment), ledger, test clocks, invoices,
//!                plans, subscriptions, grant rules and their applications, wallets (views of lots),
//!                the catalogue (products, prices, tiered amounts), meters and their usage
//!                (events in hourly buckets), priced subscriptions (Stripe's) and their items,
//!                invoice items, the cycle engine, previews (the next invoice after changes it
//!                imagines, never stored), webhook endpoints, billing alerts, metadata (pairs
//!                packed in one string); changes.rs (what each command
//!                changed, handed by Store::with_tenant to the application's hook);
//!                closed: facades read through queries and read-only index views (index.rs) and
//!                change it only through commands
//! ids.rs         time-ordered 128-bit keys and their prefixed spellings
//! time.rs        nanosecond time and its renderings
//! state.rs       a world's whole state as one versioned document: App::export_world and
//!                App::import_world (GET and PUT /_emulator/state)
//! tape.rs        every read of the clock, randomness and the environment, recorded per request so
//!                that a stored request replays to the same world
//! ```
//!
//! Rules of the house: the model never imports a facade, and facades never reach into each other
//! (nor into the server); parsing and rendering happen once, at the edge; every list is an ordered
//! index, so a page costs O(log n + limit); the model is reached only through the store's
//! `with_tenant` family (`try_with_tenant` for requests that write, `read_tenant` for those that
//! only read, which never makes a world), which locks a world and posts what is due on its clock.
//! Nothing outside the model takes a world's lock: bookkeeping that must not move the clock (a
//! dropped world's size, an event's endpoints) goes through `TenantCell::peek`, which locks
//! without catching up. Webhook deliveries never lock a world: an event's `pending_webhooks` is a
//! count its log shares with its deliveries (`webhooks::Pending`).
//!
//! ### A Stripe request
//!
//! Every Stripe endpoint is an operation (`stripe::op::Operation`) in three phases: **parse** the
//! path ids and the decoded parameters without any lock, in Stripe's error order (a check Stripe
//! reports after a lookup is kept as a result for later); **apply** it to the world, locked;
//! **render** typed `Serialize` views of what changed. `stripe::routes::ROUTES` maps
//! `(method, path pattern)` to operations, one row each. The pipeline in `stripe/mod.rs` does what
//! is common: key, `Stripe-Account`, version, decoding, `Idempotency-Key`, the route's operation,
//! `expand[]`, headers.
//!
//! To add a Stripe resource: a model file (`model/`, its state and rules as `Tenant` methods), a
//! facade file (`stripe/`, one type per operation with its parameter table and views), its rows in
//! `stripe/routes.rs` (and its object in `stripe/objects.rs` if fields can expand to it, with the
//! paths that go on through it in `stripe/expand.rs`), and a test
//! file over real sockets (`tests/stripe_<resource>.rs`, with snapshots, named by a `mod` line in
//! `tests/suite.rs`).

pub mod admin;
pub mod app;
pub mod config;
pub mod connections;
pub mod emulator;
pub mod form;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod memory;
pub mod meter_sessions;
pub mod model;
pub mod native;
pub mod persist;
pub mod pretty;
pub mod request_log;
pub mod router;
pub mod server;
pub mod state;
pub mod stripe;
pub mod tape;
pub mod time;
pub mod turns;
pub mod webhooks;
pub mod wire;

pub use app::App;
pub use config::Config;
pub use emulator::{ClockInstant, Emulator, EmulatorBuilder, EmulatorError, Listener};
pub use server::serve;
pub use state::{ImportError, WorldDocument};

use std::net::SocketAddr;
use std::sync::Arc;

/// A running emulator with its address and state as fields: what [`start`] returns. It is an
/// [`Emulator`] underneath (reach it with [`Running::emulator`]) and stops the same way, on drop.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub app: Arc<App>,
    emulator: Emulator,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.emulator.uri()
    }

    /// The handle underneath, for resetting tenants and moving their clocks.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Stops the server and waits until it has stopped (see [`Emulator::shutdown`]).
    pub async fn shutdown(self) {
        self.emulator.shutdown().await
    }
}

impl From<Emulator> for Running {
    fn from(emulator: Emulator) -> Self {
        Running {
            addr: emulator.addr(),
            app: emulator.app().clone(),
            emulator,
        }
    }
}

/// Binds `addr` (port 0 picks a free port) and serves with `config` on the current tokio runtime
/// until the returned handle is dropped: [`Emulator::builder`] with `.config(config).addr(addr)`.
pub async fn start(addr: SocketAddr, config: Config) -> std::io::Result<Running> {
    Emulator::builder()
        .config(config)
        .addr(addr)
        .start()
        .await
        .map(Running::from)
}
