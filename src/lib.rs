//! # credit-emulator
//!
//! A fast, stateful, in-memory emulator of billing-credit APIs: Stripe's Billing Credits
//! (form-encoded, as Stripe's SDKs send it) and a native JSON API modelled on Flexprice's credit
//! grants, both served from **one** model and **one** ledger, so a grant made through one API is seen,
//! and spent, through the other.
//!
//! ## Layout
//!
//! Data flows down, answers flow up:
//!
//! ```text
//! main.rs        CLI: flags, logging, bind, serve until Ctrl-C / SIGTERM
//! server.rs      hyper accept loop, connection cap, body limit, Request-Id, panic containment,
//!                dispatch by path to one of the facades
//! http.rs        the owned Request / Reply the facades see (no hyper types past server.rs)
//! form.rs        form decoding with bracket nesting, strict about encoding, bounded
//! idempotency.rs stored answers for Idempotency-Key, per tenant
//! stripe/        the Stripe facade: auth (keys, Stripe-Account worlds), versions (the API version
//!                table), params (schemas as data), errors, lists, expand,
//!                one file per resource (customers, credit_grants, test_clocks, ...)
//! native/        the native (Flexprice-style) facade: auth, JSON binding, errors, offset lists,
//!                one file per resource (credit_grants, customers, plans, subscriptions, wallets)
//! admin/         /_emulator/*: health, reset, tenant clock, invoices that spend credits
//! model/         canonical state and rules, knowing nothing of HTTP or either API's words:
//!                tenant, customer, lot (a grant's allotment), ledger, test clocks, invoices,
//!                plans, subscriptions, grant rules and their applications, wallets (views of lots)
//! ids.rs         time-ordered 128-bit keys and their prefixed spellings
//! time.rs        nanosecond time and its renderings
//! ```
//!
//! Rules of the house: the model never imports a facade, and facades never reach into each other;
//! parsing and rendering happen once, at the edge; every list is an ordered index, so a page costs
//! O(log n + limit).

pub mod admin;
pub mod config;
pub mod form;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod model;
pub mod native;
pub mod server;
pub mod stripe;
pub mod time;

pub use config::Config;
pub use server::{serve, App};

use std::net::SocketAddr;
use std::sync::Arc;

/// A running emulator on a background task, for tests and embedding.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `addr` (port 0 picks a free port) and serves on the current tokio runtime until the returned
/// handle is dropped.
pub async fn start(addr: SocketAddr, config: Config) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = App::new(config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = app.clone();
    tokio::spawn(async move {
        serve(listener, served, async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(Running {
        addr,
        app,
        stop: Some(tx),
    })
}
