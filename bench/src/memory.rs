//! `--memory`: what one emulator shared by many clients holds, in resident memory of a fresh
//! process. Reads with keys never seen before; writes with as many new keys (up to and past
//! `--max-tenants`), then their resets; one world of `--grants` grants (480,000 unless given) and
//! its reset; a world's `Idempotency-Key` store filled to its cap and kept there.
//!
//! Every figure is the process's `VmRSS`. After a reset, the figure is read once it has stopped
//! moving: the emulator frees a reset world on a background thread, then hands the pages back.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::Method;

use super::load::{self, Until};
use super::proc::Server;
use super::{
    mib, realistic_grant_form, scope_prices_at, stripe_post_plain, stripe_request_with, thousands,
    Opts, SETTLE,
};

/// Reads and writes with new keys.
const NEW_KEYS: u64 = 20_000;

/// Creates per step of the idempotency figures: the emulator's default cap on a world's keys.
const KEYS: u64 = 10_000;

/// Grants in the large world unless `--grants` says otherwise.
const DEFAULT_GRANTS: u64 = 480_000;

/// Prints the figures of a fresh emulator started by `emu_cmd`.
pub async fn figures(o: &Opts, emu_cmd: &dyn Fn() -> Command) -> Result<(), String> {
    let grants = if o.grants_given {
        o.grants
    } else {
        DEFAULT_GRANTS
    };
    let (emu, _) = Server::start(emu_cmd(), "/_emulator/health")?;
    tokio::time::sleep(SETTLE).await;
    let mut rows: Vec<(String, u64, String)> = Vec::new();
    let idle = rss(&emu);
    rows.push(("Idle, just started".into(), idle, String::new()));

    // Keys no run has used before, so that a second run against the same process still meets
    // new keys.
    let salt = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let new_key = move |i: u64| format!("sk_test_m{salt:x}x{i}");

    eprintln!("memory: {NEW_KEYS} reads with new keys");
    let before = rss(&emu);
    let out = load::run(
        emu.addr,
        o.conns,
        Until::Count(NEW_KEYS),
        Arc::new(move |i| {
            stripe_request_with(Method::GET, &new_key(i), "/v1/customers", None, false)
        }),
        None,
    )
    .await;
    let after = rss(&emu);
    rows.push((
        format!(
            "After {} `GET /v1/customers`, each with a new key",
            thousands(NEW_KEYS)
        ),
        after,
        format!(
            "{} (worlds: {}; {} answered 200)",
            delta(before, after),
            worlds(&emu).await,
            thousands(out.ok)
        ),
    ));

    eprintln!("memory: {NEW_KEYS} writes with new keys");
    let writer = move |i: u64| format!("sk_test_w{salt:x}x{i}");
    let before = rss(&emu);
    let out = load::run(
        emu.addr,
        o.conns,
        Until::Count(NEW_KEYS),
        Arc::new(move |i| stripe_post_plain(&writer(i), "/v1/customers", "name=Ada".into())),
        None,
    )
    .await;
    let after = rss(&emu);
    rows.push((
        format!(
            "After {} `POST /v1/customers`, each with a new key",
            thousands(NEW_KEYS)
        ),
        after,
        format!(
            "{} (worlds: {}; {} made, {} refused)",
            delta(before, after),
            worlds(&emu).await,
            thousands(out.ok),
            thousands(out.failed)
        ),
    ));
    let before = after;
    load::run(
        emu.addr,
        o.conns,
        Until::Count(NEW_KEYS),
        Arc::new(move |i| stripe_post_plain(&writer(i), "/_emulator/reset", String::new())),
        None,
    )
    .await;
    let after = settled(&emu).await;
    rows.push((
        "After resetting those worlds".into(),
        after,
        format!("{} (worlds: {})", delta(before, after), worlds(&emu).await),
    ));

    eprintln!("memory: a world of {grants} grants");
    let key = "sk_test_memory_large";
    let customer = customer(&emu, key).await?;
    let prices = scope_prices_at(emu.addr, key).await?;
    let before = rss(&emu);
    let t0 = Instant::now();
    let out = load::run(
        emu.addr,
        o.conns,
        Until::Count(grants),
        Arc::new(move |_| {
            stripe_post_plain(
                key,
                "/v1/billing/credit_grants",
                realistic_grant_form(&customer, &prices),
            )
        }),
        None,
    )
    .await;
    if out.failed > 0 {
        return Err(format!(
            "loading grants: {} failed, first: {}",
            out.failed,
            out.first_failure.unwrap_or_default()
        ));
    }
    eprintln!("  loaded in {:.0} s", t0.elapsed().as_secs_f64());
    let large = rss(&emu);
    rows.push((
        format!("One world of {} grants", thousands(grants)),
        large,
        delta(before, large),
    ));
    let t0 = Instant::now();
    let (status, _) = load::once(
        emu.addr,
        stripe_post_plain(key, "/_emulator/reset", String::new()),
    )
    .await?;
    let answered = t0.elapsed();
    let after = settled(&emu).await;
    rows.push((
        "After its reset".into(),
        after,
        format!(
            "{} (the reset answered {status} in {:.1} ms)",
            delta(large, after),
            answered.as_secs_f64() * 1e3
        ),
    ));

    eprintln!("memory: idempotency keys");
    let plain = "sk_test_memory_plain";
    let keyed = "sk_test_memory_keyed";
    let before = rss(&emu);
    creates(&emu, o, plain, false).await?;
    let without = rss(&emu);
    rows.push((
        format!(
            "{} customer creates without `Idempotency-Key`, in a world of their own",
            thousands(KEYS)
        ),
        without,
        delta(before, without),
    ));
    creates(&emu, o, keyed, true).await?;
    let full = rss(&emu);
    let store = full.saturating_sub(without) as i64 - without.saturating_sub(before) as i64;
    rows.push((
        format!(
            "{} creates with a key each, in another world: its key store fills to its cap",
            thousands(KEYS)
        ),
        full,
        format!(
            "{}; the store ≈ {:+.1} MiB, {:.0} bytes a key",
            delta(without, full),
            store as f64 / 1024.0,
            store as f64 * 1024.0 / KEYS as f64
        ),
    ));
    creates(&emu, o, keyed, true).await?;
    let kept = rss(&emu);
    rows.push((
        format!(
            "{} more creates with new keys in that world: the store stays at its cap",
            thousands(KEYS)
        ),
        kept,
        delta(full, kept),
    ));

    println!("\n## Memory for a shared instance (pid {})\n", emu.pid());
    println!("| Step | Resident memory | Change |");
    println!("|---|---|---|");
    for (step, kib, note) in rows {
        println!("| {step} | {:.1} MiB | {note} |", mib(kib));
    }
    Ok(())
}

fn rss(emu: &Server) -> u64 {
    emu.rss_kib().unwrap_or(0)
}

/// The resident memory once it has stopped moving for a second (at most 30 seconds).
async fn settled(emu: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = rss(emu);
    let mut still = 0;
    while still < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rss(emu);
        still = if now.abs_diff(last) * 200 <= last {
            still + 1
        } else {
            0
        };
        last = now;
    }
    last
}

fn delta(before: u64, after: u64) -> String {
    format!("{:+.1} MiB", (after as f64 - before as f64) / 1024.0)
}

/// The worlds the emulator holds, from `/_emulator/health`.
async fn worlds(emu: &Server) -> String {
    let req = hyper::Request::builder()
        .uri("/_emulator/health")
        .header(hyper::header::HOST, "127.0.0.1")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("valid request");
    match load::once(emu.addr, req).await {
        Ok((200, body)) => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["tenants"].as_u64())
            .map(thousands)
            .unwrap_or_else(|| "?".into()),
        _ => "?".into(),
    }
}

/// One customer of `key`'s world; its id.
async fn customer(emu: &Server, key: &str) -> Result<String, String> {
    let (status, body) = load::once(
        emu.addr,
        stripe_post_plain(key, "/v1/customers", "name=Ada".into()),
    )
    .await?;
    super::json_id(&body).ok_or_else(|| format!("creating a customer: {status}"))
}

/// [`KEYS`] customer creates in `key`'s world, each with a fresh `Idempotency-Key` when `keyed`.
async fn creates(emu: &Server, o: &Opts, key: &'static str, keyed: bool) -> Result<(), String> {
    let out = load::run(
        emu.addr,
        o.conns,
        Until::Count(KEYS),
        Arc::new(move |_| {
            stripe_request_with(
                Method::POST,
                key,
                "/v1/customers",
                Some("name=Ada&email=ada%40example.com".into()),
                keyed,
            )
        }),
        None,
    )
    .await;
    match out.failed {
        0 => Ok(()),
        n => Err(format!(
            "{n} creates failed, first: {}",
            out.first_failure.unwrap_or_default()
        )),
    }
}
