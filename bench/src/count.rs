//! `--count ROW`: what one request costs the processor, counted instead of timed.
//!
//! On a small machine shared with other work, a request's time moves by more than most changes
//! to it. Counts do not: each server runs under valgrind's callgrind with its cache simulation,
//! uninstrumented while the tenant is set up and the load warms up, then counted over `--secs`
//! seconds of the row's load (`callgrind_control -i on`, then a dump). Dividing by the requests
//! answered in that window gives, per request, the instructions run, the first-level instruction
//! and data cache misses, and the writes that missed every simulated cache (memory the process
//! had not touched, or not for a long time). The emulator and the baseline are counted the same
//! way in the same run, so the figures stand side by side; run to run they agree within a few
//! percent, whatever else the machine does.
//!
//! Both servers are user-space code only here: the kernel's share (the sockets) is not counted,
//! and under valgrind a server runs on one core at a time, some 50 times slower, so the counts say
//! nothing of how threads contend. The simulated processor does not offer the SHA extensions
//! either, so `create_webhook`'s signing runs `sha2`'s portable rounds: its share there (about
//! 50,000 instructions a delivery) is far larger than natively, where the crate uses them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::load::Make;
use crate::proc::Server;
use crate::receiver::Receiver;
use crate::{Bench, Opts};

/// The events the cache simulation counts, in callgrind's order.
const EVENTS: [&str; 9] = [
    "Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw",
];

/// Uninstrumented load before counting: the server's caches, maps and connections warm.
const WARM: Duration = Duration::from_secs(3);

/// How long no delivery must come in for the sender to count as caught up, and the longest wait.
const SETTLE_QUIET: Duration = Duration::from_secs(2);
const SETTLE_LIMIT: Duration = Duration::from_secs(300);

/// One server's counts per request.
struct Counted {
    requests: u64,
    /// With an endpoint: the deliveries it answered while the server was counted.
    delivered: Option<u64>,
    /// Per request, in [`EVENTS`] order.
    per_request: [f64; 9],
}

/// Runs `--count ROW` (`create`, `create_webhook`, `retrieve`, `native` or `meter_events`) with
/// the emulator binary `emu_bin` and this program (`me`) as the baseline.
pub async fn run(o: &Opts, emu_bin: &Path, me: &Path, row: &str) -> Result<(), String> {
    for tool in ["valgrind", "callgrind_control"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !found {
            return Err(format!(
                "--count needs valgrind's callgrind and {tool} (Debian: apt install valgrind)"
            ));
        }
    }
    let dir = o.keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("credit-emulator-count-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let emu_out = dir.join("emulator.out");
    let base_out = dir.join("baseline.out");
    let emu_cmd = || {
        let mut c = under_callgrind(&emu_out, emu_bin);
        c.args(["--port", "0"]);
        c
    };
    let base_cmd = || {
        let mut c = under_callgrind(&base_out, me);
        c.arg("baseline-server");
        c
    };
    eprintln!("starting both servers under callgrind (slow)");
    let b = Bench::start(o, &emu_cmd, &base_cmd, None).await?;
    let (make, receiver) = setup(&b, row).await?;
    let emulator = count(&b, &b.emu, &emu_out, &make, "emulator", receiver.as_ref()).await;
    let baseline = count(&b, &b.base, &base_out, &make, "baseline", None).await;
    drop(b);
    match &o.keep {
        Some(_) => eprintln!(
            "callgrind's files: {0}/emulator.out.1 and {0}/baseline.out.1",
            dir.display()
        ),
        None => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let (emulator, baseline) = (emulator?, baseline?);
    print(row, o.secs, &emulator, &baseline);
    if let Some(delivered) = emulator.delivered {
        println!(
            "\nThe emulator's figures include the webhook deliveries of the creates counted: {delivered} answered by the local endpoint ({:.2} a create); the baseline has no endpoint.",
            delivered as f64 / emulator.requests.max(1) as f64
        );
    }
    Ok(())
}

/// The command that runs `program` under callgrind, instrumentation off until switched on, its
/// counts dumped to `out` (a dump is written as `out.1`).
fn under_callgrind(out: &Path, program: &Path) -> Command {
    let mut c = Command::new("valgrind");
    c.arg("--tool=callgrind")
        .arg("--cache-sim=yes")
        .arg("--instr-atstart=no")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(program);
    c
}

/// Sets up the tenant `row` needs on the emulator and gives the row's requests, and for
/// `create_webhook` the local endpoint receiving every event.
async fn setup(b: &Bench, row: &str) -> Result<(Make, Option<Receiver>), String> {
    match row {
        "create" | "create_webhook" => {
            let key = "sk_test_bench_count";
            let customer = b.customers(key, 1).await?.remove(0);
            let prices = crate::scope_prices_at(b.emu.addr, key).await?;
            let receiver = match row {
                // As row 1w: one endpoint, every event, answered at once.
                "create_webhook" => Some(crate::endpoint_receiving_every_event(b, key).await?),
                _ => None,
            };
            Ok((crate::create_make(key, customer, prices), receiver))
        }
        "retrieve" => {
            // As row 2: a tenant of 1,000 grants, each retrieved in turn.
            let key = "sk_test_bench_count_retrieve";
            let customer = b.customers(key, 1).await?.remove(0);
            let prices = crate::scope_prices_at(b.emu.addr, key).await?;
            let (ids, _) = b
                .load("count tenant", 1_000, 1, {
                    Arc::new(move |_| {
                        crate::stripe_post_plain(
                            key,
                            "/v1/billing/credit_grants",
                            crate::realistic_grant_form(&customer, &prices),
                        )
                    })
                })
                .await?;
            Ok((crate::retrieve_make(key, Arc::new(ids)), None))
        }
        "native" => {
            // As row 5: grants on a subscription.
            let key = "sk_test_bench_count_native";
            let subscription = crate::native_setup(b, key).await.0?;
            let body = crate::native_subscription_grant_body(&subscription);
            let make: Make = Arc::new(move |_| {
                crate::native_request(
                    hyper::Method::POST,
                    key,
                    "/v1/creditgrants",
                    Some(body.clone()),
                )
            });
            Ok((make, None))
        }
        "meter_events" => {
            let key = "sk_test_bench_count_events";
            let customers = Arc::new(crate::meter_setup(b, key, 100).await?);
            Ok((crate::meter_events_make(key, customers), None))
        }
        other => Err(format!(
            "--count takes create, create_webhook, retrieve, native or meter_events, not {other}"
        )),
    }
}

/// Warms `server` up with `make`'s requests, then counts `--secs` seconds of them. With a
/// `receiver` (an endpoint receiving the server's events), the deliveries of the warm-up are
/// finished before counting starts, and those of the counted requests before it ends, so that
/// the count holds every delivery of the requests counted and no other.
async fn count(
    b: &Bench,
    server: &Server,
    out: &Path,
    make: &Make,
    side: &str,
    receiver: Option<&Receiver>,
) -> Result<Counted, String> {
    eprintln!("  {side}: warming up");
    let warm = b.load_for(server, WARM, make).await;
    if warm.ok == 0 {
        return Err(format!(
            "{side}: no request answered while warming up ({})",
            warm.first_failure.unwrap_or_default()
        ));
    }
    if let Some(r) = receiver {
        eprintln!("  {side}: waiting for the warm-up's deliveries");
        r.settle(SETTLE_QUIET, SETTLE_LIMIT).await;
    }
    let mark = receiver.map(Receiver::mark);
    control(server.pid(), "-i", Some("on"))?;
    eprintln!("  {side}: counting for {} s", b.o.secs);
    let counted = b
        .load_for(server, Duration::from_secs_f64(b.o.secs), make)
        .await;
    if let Some(r) = receiver {
        eprintln!("  {side}: waiting for the counted requests' deliveries");
        r.settle(SETTLE_QUIET, SETTLE_LIMIT).await;
    }
    let delivered = receiver.zip(mark).map(|(r, m)| r.since(m).0);
    control(server.pid(), "-d", None)?;
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let totals = read_totals(&dump)?;
    if counted.ok == 0 {
        return Err(format!("{side}: no request answered while counting"));
    }
    let n = counted.ok as f64;
    Ok(Counted {
        requests: counted.ok,
        delivered,
        per_request: totals.map(|t| t as f64 / n),
    })
}

/// `callgrind_control FLAG [VALUE] PID`.
fn control(pid: u32, flag: &str, value: Option<&str>) -> Result<(), String> {
    let mut c = Command::new("callgrind_control");
    c.arg(flag);
    if let Some(v) = value {
        c.arg(v);
    }
    let out = c
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {flag} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The `totals:` line of a callgrind dump, once it is written whole.
fn read_totals(path: &Path) -> Result<[u64; 9], String> {
    for _ in 0..600 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(totals) = parse_totals(&text) {
                return Ok(totals);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{}: no callgrind totals within a minute",
        path.display()
    ))
}

/// The counts of the `totals:` line, in [`EVENTS`] order, if the `events:` line names them so.
fn parse_totals(text: &str) -> Option<[u64; 9]> {
    let events: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))?
        .split_whitespace()
        .collect();
    if events != EVENTS {
        return None;
    }
    let totals: Vec<u64> = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))?
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    totals.try_into().ok()
}

fn print(row: &str, secs: f64, emulator: &Counted, baseline: &Counted) {
    println!(
        "Per request, {row} ({} emulator and {} baseline requests counted over {secs} s each):",
        emulator.requests, baseline.requests
    );
    println!();
    println!("| Per request | Emulator | Baseline | Emulator ÷ baseline |");
    println!("|---|---:|---:|---:|");
    let rows = [
        ("Instructions", &[0][..]),
        ("L1 instruction misses", &[3][..]),
        ("L1 data misses (reads + writes)", &[4, 5][..]),
        ("Writes missing the last-level cache", &[8][..]),
    ];
    for (what, events) in rows {
        let e: f64 = events.iter().map(|&i| emulator.per_request[i]).sum();
        let b: f64 = events.iter().map(|&i| baseline.per_request[i]).sum();
        let ratio = if b > 0.0 {
            format!("{:.2}", e / b)
        } else {
            "–".to_string()
        };
        println!("| {what} | {} | {} | {ratio} |", figure(e), figure(b));
    }
}

/// `78,400`, or `0.2` below ten.
fn figure(x: f64) -> String {
    if x < 10.0 {
        return format!("{x:.1}");
    }
    crate::thousands(x.round() as u64)
}
