//! The cycle engine's figures: N customers on the tenant clock, frozen, each with a monthly metered
//! subscription, two grants and 30 meter events a month, and the tenant clock moved through twelve
//! months with `POST /_emulator/clock`. The figure is the clock moves, summed: what a test pays to
//! bill a year, every period end making a draft per subscription and every draft finalizing an
//! hour later with credits applied.
//!
//! An event may be at most 35 days old on its customer's clock and at most 5 minutes ahead of it,
//! so a year of usage cannot be loaded up front: each month's events are reported when the clock
//! reaches the end of that month, between two timed moves, and are not part of the figure.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load;
use crate::{json_id, stripe_post_plain, stripe_request, thousands, Bench, Opts, SETTLE};
use hyper::Method;

/// 2025-01-01T00:00:00Z: where the tenant clock starts, and so every subscription's anchor.
const START: i64 = 1_735_689_600;
/// The lengths of 2025's months, in days: the subscriptions' periods.
const MONTH_DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// Meter events per customer and month.
const EVENTS_PER_MONTH: u64 = 30;
/// The meter the subscriptions' price bills.
const EVENT_NAME: &str = "cycle_requests";
/// The sizes measured side by side.
pub const SIZES: [u64; 2] = [100, 1_000];

/// What one size measured.
pub struct Figures {
    /// Customers, each with one subscription.
    pub customers: u64,
    /// The twenty-four clock moves, summed: wall time as the client saw it.
    pub moves: Duration,
    /// Of those, the twelve across a month end and the drafts' finalization an hour later.
    pub boundary_moves: Duration,
    /// The slowest single move.
    pub slowest: Duration,
    /// The emulator's CPU time during the moves (all its threads).
    pub move_cpu: Option<Duration>,
    /// Customers, grants and subscriptions made over HTTP.
    pub setup: Duration,
    /// Meter events reported over HTTP, and the time that took.
    pub events: (u64, Duration),
    /// The first customer's invoices after the year, and how many of them are paid.
    pub invoices: (usize, usize),
    /// Resident memory after the year.
    pub rss_kib: u64,
}

/// One size, in a fresh emulator of its own.
pub async fn measure(
    o: &Opts,
    emu_cmd: &dyn Fn() -> Command,
    base_cmd: &dyn Fn() -> Command,
    n: u64,
) -> Result<Figures, String> {
    // The baseline started beside it stays idle: with no state, it has no cycle to compare.
    let b = Bench::start(o, emu_cmd, base_cmd, Some(SETTLE)).await?;
    let key = "sk_test_bench_cycle";
    let post = |uri: &str, form: String| stripe_post_plain(key, uri, form);
    // A world where nothing was made yet may start at any instant.
    b.probe(post("/_emulator/clock", format!("frozen_time={START}")))
        .await?;
    let meter = b
        .probe(post(
            "/v1/billing/meters",
            format!(
                "display_name=Requests&event_name={EVENT_NAME}&default_aggregation[formula]=sum"
            ),
        ))
        .await?;
    let meter = json_id(&meter).ok_or("a meter without an id")?;
    let price = b
        .probe(post(
            "/v1/prices",
            format!(
                "currency=usd&unit_amount=5&product_data[name]=Requests&recurring[interval]=month\
                 &recurring[usage_type]=metered&recurring[meter]={meter}"
            ),
        ))
        .await?;
    let price = json_id(&price).ok_or("a price without an id")?;

    eprintln!("  cycle: {n} customers, two grants each, a subscription each");
    let t0 = Instant::now();
    let customers = Arc::new(b.customers(key, n).await?);
    let cs = customers.clone();
    // $100 paid, never expiring; $20 promotional, expiring after half a year (spent first).
    let promo_expiry = START + 182 * DAY;
    b.load(
        "cycle grants",
        2 * n,
        u64::MAX,
        Arc::new(move |i| {
            let c = &cs[(i / 2) as usize];
            let form = if i % 2 == 0 {
                format!(
                    "customer={c}&amount[type]=monetary&amount[monetary][currency]=usd\
                     &amount[monetary][value]=10000&applicability_config[scope][price_type]=metered\
                     &category=paid"
                )
            } else {
                format!(
                    "customer={c}&amount[type]=monetary&amount[monetary][currency]=usd\
                     &amount[monetary][value]=2000&applicability_config[scope][price_type]=metered\
                     &category=promotional&expires_at={promo_expiry}"
                )
            };
            stripe_post_plain(key, "/v1/billing/credit_grants", form)
        }),
    )
    .await?;
    let cs = customers.clone();
    let p = price.clone();
    b.load(
        "cycle subscriptions",
        n,
        u64::MAX,
        Arc::new(move |i| {
            let c = &cs[i as usize];
            stripe_post_plain(
                key,
                "/v1/subscriptions",
                format!("customer={c}&items[0][price]={p}"),
            )
        }),
    )
    .await?;
    let setup = t0.elapsed();

    let mut f = Figures {
        customers: n,
        moves: Duration::ZERO,
        boundary_moves: Duration::ZERO,
        slowest: Duration::ZERO,
        move_cpu: Some(Duration::ZERO),
        setup,
        events: (0, Duration::ZERO),
        invoices: (0, 0),
        rss_kib: 0,
    };
    let mut month_start = START;
    for days in MONTH_DAYS {
        let month_end = month_start + days * DAY;
        // Late in the month; nothing falls due on the way.
        let late = month_end - 60;
        f.add_move(move_clock(&b, key, late).await?, false);
        // The month's usage, spread over it from after the last finalization to now.
        let first = month_start + 2 * HOUR;
        let span = late - first;
        let cs = customers.clone();
        let count = EVENTS_PER_MONTH * n;
        let (_, took) = b
            .load(
                "cycle events",
                count,
                u64::MAX,
                Arc::new(move |i| {
                    let c = &cs[(i % n) as usize];
                    let k = (i / n) as i64;
                    let at = first + span * k / EVENTS_PER_MONTH as i64;
                    stripe_post_plain(
                        key,
                        "/v1/billing/meter_events",
                        format!(
                            "event_name={EVENT_NAME}&payload[stripe_customer_id]={c}\
                             &payload[value]={}&timestamp={at}",
                            1 + i % 10
                        ),
                    )
                }),
            )
            .await?;
        f.events.0 += count;
        f.events.1 += took;
        // Across the month end (a draft per subscription) and the grace hour (each finalized,
        // credits applied, paid).
        f.add_move(move_clock(&b, key, month_end + 2 * HOUR).await?, true);
        month_start = month_end;
    }
    f.rss_kib = b.emu.rss_kib().unwrap_or(0);

    // The work was done: the first customer has its first invoice and twelve cycle invoices.
    let (status, body) = load::once(
        b.emu.addr,
        stripe_request(
            Method::GET,
            key,
            &format!("/v1/invoices?customer={}&limit=100", customers[0]),
            None,
        ),
    )
    .await?;
    if status != 200 {
        return Err(format!("listing invoices answered {status}"));
    }
    let list: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let data = list["data"].as_array().cloned().unwrap_or_default();
    f.invoices = (
        data.len(),
        data.iter().filter(|i| i["status"] == "paid").count(),
    );
    Ok(f)
}

impl Figures {
    fn add_move(&mut self, (took, cpu): (Duration, Option<Duration>), across: bool) {
        self.moves += took;
        if across {
            self.boundary_moves += took;
        }
        self.slowest = self.slowest.max(took);
        self.move_cpu = self.move_cpu.zip(cpu).map(|(a, b)| a + b);
    }
}

/// Moves the tenant clock to `to`: the wall time of the request, and the emulator's CPU time
/// during it.
async fn move_clock(b: &Bench, key: &str, to: i64) -> Result<(Duration, Option<Duration>), String> {
    let req = stripe_post_plain(key, "/_emulator/clock", format!("frozen_time={to}"));
    let cpu0 = b.emu.cpu_ns();
    let t0 = Instant::now();
    let (status, body) = load::once(b.emu.addr, req).await?;
    let took = t0.elapsed();
    let cpu = cpu0
        .zip(b.emu.cpu_ns())
        .map(|(a, c)| Duration::from_nanos(c.saturating_sub(a)));
    if status != 200 {
        return Err(format!(
            "moving the clock answered {status}: {}",
            load::snippet(&body)
        ));
    }
    Ok((took, cpu))
}

/// The section, sizes side by side.
pub fn print(figures: &[Figures]) {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let head: Vec<String> = figures
        .iter()
        .map(|f| format!("{} customers", thousands(f.customers)))
        .collect();
    println!(
        "Each customer on the tenant clock, frozen, with a monthly metered subscription (5 cents a \
         unit), two metered grants ($100 paid; $20 promotional, expiring after six months) and \
         {EVENTS_PER_MONTH} meter events a month. The clock moves twice a month with \
         `POST /_emulator/clock`: to a minute before the month ends, then, after that month's \
         events are reported over HTTP (not timed), to two hours past it, across the period end \
         (a draft per subscription) and the hour of grace (each finalized, credits applied, paid). \
         Fresh emulator per size.\n"
    );
    println!("| Figure | {} | Growth |", head.join(" | "));
    println!(
        "|---|{}---:|",
        figures.iter().map(|_| "---:|").collect::<String>()
    );
    let growth =
        |a: Duration, b: Duration| format!("×{:.1}", b.as_secs_f64() / a.as_secs_f64().max(1e-9));
    let row = |name: &str, cell: &dyn Fn(&Figures) -> String, g: Option<String>| {
        let cells: Vec<String> = figures.iter().map(cell).collect();
        println!(
            "| {name} | {} | {} |",
            cells.join(" | "),
            g.unwrap_or_else(|| "–".into())
        );
    };
    let pair = |get: &dyn Fn(&Figures) -> Duration| match figures {
        [a, .., b] => Some(growth(get(a), get(b))),
        _ => None,
    };
    row(
        "Twelve months of clock moves (24 moves, summed)",
        &|f| ms(f.moves),
        pair(&|f| f.moves),
    );
    row(
        "… of which the 12 across a month end",
        &|f| ms(f.boundary_moves),
        pair(&|f| f.boundary_moves),
    );
    row(
        "Per subscription and month (all moves ÷ customers ÷ 12)",
        &|f| {
            format!(
                "{:.1} µs",
                f.moves.as_secs_f64() * 1e6 / (f.customers as f64 * 12.0)
            )
        },
        None,
    );
    row(
        "Emulator CPU during the moves",
        &|f| f.move_cpu.map(ms).unwrap_or_else(|| "–".into()),
        match figures {
            [a, .., b] => a.move_cpu.zip(b.move_cpu).map(|(x, y)| growth(x, y)),
            _ => None,
        },
    );
    row("Slowest single move", &|f| ms(f.slowest), None);
    row(
        "Meter events reported over HTTP (not in the figure)",
        &|f| {
            format!(
                "{} in {:.1} s",
                thousands(f.events.0),
                f.events.1.as_secs_f64()
            )
        },
        None,
    );
    row(
        "Setup over HTTP: customers, grants, subscriptions",
        &|f| format!("{:.2} s", f.setup.as_secs_f64()),
        None,
    );
    row(
        "First customer's invoices after the year (paid)",
        &|f| format!("{} ({})", f.invoices.0, f.invoices.1),
        None,
    );
    row(
        "Resident memory after the year",
        &|f| format!("{:.1} MiB", f.rss_kib as f64 / 1024.0),
        None,
    );
}

/// The checks the section answers: the year of 1,000 subscriptions within 2 s, growth about
/// linear, and the invoices there to show the work was done.
pub fn checks(figures: &[Figures]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for f in figures {
        out.push((
            format!(
                "Cycle engine, {} customers: {} invoices for the first, all paid (13 expected)",
                thousands(f.customers),
                f.invoices.0
            ),
            f.invoices == (13, 13),
        ));
    }
    if let Some(big) = figures.iter().find(|f| f.customers == 1_000) {
        out.push((
            format!(
                "Cycle engine: twelve months of 1,000 subscriptions in {:.2} s ≤ 2 s",
                big.moves.as_secs_f64()
            ),
            big.moves <= Duration::from_secs(2),
        ));
    }
    if let [a, .., b] = figures {
        let ratio = b.moves.as_secs_f64() / a.moves.as_secs_f64().max(1e-9);
        let sizes = b.customers as f64 / a.customers as f64;
        out.push((
            format!(
                "Cycle engine grows ×{ratio:.1} from {} to {} customers (linear: ×{sizes:.0}; ≤ ×{:.0})",
                thousands(a.customers),
                thousands(b.customers),
                sizes * 1.5
            ),
            ratio <= sizes * 1.5,
        ));
    }
    out
}
