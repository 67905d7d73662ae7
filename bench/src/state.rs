//! State export and import: a tenant of N grants written out with `GET /_emulator/state` and read
//! into a fresh key with `PUT /_emulator/state`, both over HTTP on one connection, timed as the
//! client sees them (transfer included). The emulator must run with a `--max-body-bytes` above
//! the document's size ([`MAX_BODY`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};

use crate::{
    load, mib, realistic_grant_form, scope_prices_at, stripe_post_plain, thousands, Bench,
};

/// The body limit the emulator runs with here: 4 GiB, above a million grants' document.
pub const MAX_BODY: &str = "4294967296";

/// The sizes measured: a tenant of 100,000 grants, and one of `--grants`.
pub const SMALL: u64 = 100_000;

/// What one size measured.
pub struct Figures {
    /// Grants in the tenant.
    pub grants: u64,
    /// The document's size, bytes.
    pub bytes: usize,
    /// `GET /_emulator/state`, answer read whole.
    pub export: Duration,
    /// `PUT /_emulator/state` into a fresh key, answer read.
    pub import: Duration,
    /// The emulator's resident memory after the import (both worlds held).
    pub rss_kib: u64,
}

fn request(method: Method, key: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/_emulator/state")
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("valid request")
}

/// Loads `n` grants (over about `n / 1000` customers) into tenant `key` unless it holds them
/// already (`loaded`), then exports it and imports the document into `{key}_copy`.
pub async fn measure(
    b: &Bench,
    key: &'static str,
    n: u64,
    loaded: bool,
) -> Result<Figures, String> {
    if !loaded {
        let customers = Arc::new(b.customers(key, (n / 1_000).max(1)).await?);
        let prices = scope_prices_at(b.emu.addr, key).await?;
        let count = customers.len() as u64;
        b.load("state tenant", n, u64::MAX, {
            let cs = customers.clone();
            Arc::new(move |i| {
                stripe_post_plain(
                    key,
                    "/v1/billing/credit_grants",
                    realistic_grant_form(&cs[(i % count) as usize], &prices),
                )
            })
        })
        .await?;
    }
    eprintln!("  exporting {} grants", thousands(n));
    let t0 = Instant::now();
    let (status, doc) = load::once(b.emu.addr, request(Method::GET, key, Bytes::new())).await?;
    let export = t0.elapsed();
    if status != 200 {
        return Err(format!("export: {status} {}", load::snippet(&doc)));
    }
    let bytes = doc.len();
    eprintln!("  importing {:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    let copy = format!("{key}_copy");
    let t0 = Instant::now();
    let (status, answer) = load::once(b.emu.addr, request(Method::PUT, &copy, doc)).await?;
    let import = t0.elapsed();
    if status != 200 {
        return Err(format!("import: {status} {}", load::snippet(&answer)));
    }
    Ok(Figures {
        grants: n,
        bytes,
        export,
        import,
        rss_kib: b.emu.rss_kib().unwrap_or(0),
    })
}

/// The table.
pub fn print(figures: &[Figures]) {
    println!("| Grants in tenant | Document | Export (GET) | Import (PUT, fresh key) | Resident memory after |");
    println!("|---:|---:|---:|---:|---:|");
    for f in figures {
        println!(
            "| {} | {:.1} MiB ({:.0} B per grant) | {:.2} s | {:.2} s | {:.0} MiB |",
            thousands(f.grants),
            f.bytes as f64 / (1024.0 * 1024.0),
            f.bytes as f64 / f.grants as f64,
            f.export.as_secs_f64(),
            f.import.as_secs_f64(),
            mib(f.rss_kib)
        );
    }
}
