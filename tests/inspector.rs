//! The inspector (`GET /_emulator/ui`): its files and their headers, and the page itself in
//! Debian's headless Chromium against a world made through the API: a customer whose name is an
//! HTML tag, two grants, usage billed by a subscription's cycle invoice and one-off invoices, so
//! that the balance moves. The page must show the grants and the balance, show the hostile name as
//! text, and show nothing of another key's world.
//!
//! Without `/usr/bin/chromium` the browser test says it was skipped, unless
//! `CREDIT_EMULATOR_REQUIRE_BROWSER=1` makes that a failure (CI sets it). With
//! `CREDIT_EMULATOR_SCREENSHOT=PATH` it also saves a screenshot of the page there (the README's
//! `docs/inspector.png`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Emu, T0};

const CHROMIUM: &str = "/usr/bin/chromium";
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const DAY: i64 = 86_400;

#[tokio::test]
async fn the_page_and_its_files_are_served_with_strict_headers() {
    let emu = Emu::start().await;
    for (path, content_type) in [
        ("/_emulator/ui", "text/html; charset=utf-8"),
        ("/_emulator/ui/", "text/html; charset=utf-8"),
        ("/_emulator/ui/app.js", "text/javascript; charset=utf-8"),
        ("/_emulator/ui/style.css", "text/css; charset=utf-8"),
        ("/_emulator/ui/icon.svg", "image/svg+xml"),
    ] {
        // No key is needed to load the page: it asks for one.
        let r = emu.raw("GET", path, &[], "").await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    }
    let r = emu.raw("GET", "/_emulator/ui/nothing.js", &[], "").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["error"]["message"],
        "Unrecognized request URL (GET: /_emulator/ui/nothing.js). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
    );
}

#[tokio::test]
async fn the_page_has_no_inline_script_no_html_from_data_and_no_network_beyond_the_emulator() {
    let emu = Emu::start().await;
    let html = emu.raw("GET", "/_emulator/ui", &[], "").await.text;
    let js = emu.raw("GET", "/_emulator/ui/app.js", &[], "").await.text;
    let css = emu
        .raw("GET", "/_emulator/ui/style.css", &[], "")
        .await
        .text;
    // Every script has a source of its own (the policy would refuse inline code anyway), and no
    // element carries an event handler attribute or a style attribute.
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1);
    assert!(scripts[0].starts_with(r#" type="module" src="/_emulator/ui/app.js"></script>"#));
    assert!(!has_handler_attribute(&html), "an inline event handler");
    assert!(!html.contains("javascript:"));
    assert!(!html.contains("style=") && !html.contains("<style"));
    // Data becomes text, never markup.
    for word in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ] {
        assert!(!js.contains(word), "app.js uses {word}");
    }
    // Everything is the emulator's own: no other origin is named (the SVG namespace is a name,
    // not an address that is fetched).
    for (name, text) in [("index.html", &html), ("app.js", &js), ("style.css", &css)] {
        let outside: Vec<&str> = text
            .match_indices("http")
            .map(|(i, _)| &text[i..(i + 40).min(text.len())])
            .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
            .collect();
        assert!(outside.is_empty(), "{name} names {outside:?}");
        assert!(!text.contains("@import"), "{name}");
    }
}

/// Whether some element of `html` has an `on…=` attribute.
fn has_handler_attribute(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}

/// What a world made for the browser holds.
struct World {
    key: String,
    customer: String,
    grants: Vec<String>,
}

/// A world with a hostile customer name, two grants, usage billed by a subscription's cycle
/// invoice, and one-off invoices: the balance steps down from $70.00 to $24.50.
async fn hostile_world(emu: &Emu, key: &str) -> World {
    let key = emu.tenant(key).await;
    emu.customer(&key, "name=Ada%20Lovelace&email=ada%40example.com")
        .await;
    let customer = emu
        .customer(
            &key,
            &format!("name={}&email=hostile%40example.com", urlencode(HOSTILE)),
        )
        .await;
    let grants = vec![
        emu.grant(
            &key,
            &customer,
            5000,
            &format!(
                "name=Starter%20credits&category=paid&expires_at={}",
                T0 + 90 * DAY
            ),
        )
        .await,
        emu.grant(
            &key,
            &customer,
            2000,
            "name=Welcome%20bonus&category=promotional&priority=10",
        )
        .await,
    ];
    let meter = emu
        .post(
            &key,
            "/v1/billing/meters",
            "display_name=API%20calls&event_name=api_call&default_aggregation[formula]=sum",
        )
        .await
        .id();
    let product = emu.post(&key, "/v1/products", "name=API").await.id();
    let price = emu
        .post(
            &key,
            "/v1/prices",
            &format!(
                "product={product}&currency=usd&unit_amount=5&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={meter}"
            ),
        )
        .await
        .id();
    let sub = emu
        .post(
            &key,
            "/v1/subscriptions",
            &format!("customer={customer}&items[0][price]={price}"),
        )
        .await;
    assert_eq!(sub.status, 200, "{}", sub.text);
    let at = |days: i64, hours: i64| T0 + days * DAY + hours * 3600;
    let usage = |calls: i64| {
        format!("event_name=api_call&payload[stripe_customer_id]={customer}&payload[value]={calls}")
    };
    emu.freeze(&key, at(2, 0)).await;
    let r = emu
        .post(&key, "/v1/billing/meter_events", &usage(300))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    emu.freeze(&key, at(5, 0)).await;
    spend(emu, &key, &customer, 1200, "Support plan").await;
    emu.freeze(&key, at(10, 0)).await;
    let r = emu
        .post(&key, "/v1/billing/meter_events", &usage(200))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The cycle invoice for 500 calls at 5 cents: made at the period's end, finalized an hour on.
    emu.freeze(&key, at(30, 2)).await;
    emu.freeze(&key, at(40, 0)).await;
    spend(emu, &key, &customer, 850, "Data export").await;
    World {
        key,
        customer,
        grants,
    }
}

/// An invoice of one line of `amount` cents, paid from the customer's credits.
async fn spend(emu: &Emu, key: &str, customer: &str, amount: i64, description: &str) {
    let r = emu
        .post(
            key,
            "/_emulator/invoices",
            &format!(
                "customer={customer}&currency=usd&lines[0][amount]={amount}&lines[0][description]={}",
                urlencode(description)
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs headless Chromium on `url` and returns what it prints (`--dump-dom`), or writes a
/// screenshot to `screenshot`. Virtual time lets the page's requests finish before the DOM is read.
fn chromium(url: &str, screenshot: Option<&Path>) -> String {
    let dir = scratch_dir();
    let out = dir.join("stdout.html");
    let mut command = Command::new(CHROMIUM);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1400,1000",
        "--virtual-time-budget=15000",
    ]);
    command.arg(format!("--user-data-dir={}", dir.join("profile").display()));
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    command.arg(url);
    let child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("a file for Chromium's output"))
        .stderr(Stdio::null())
        .spawn();
    let mut child = child.expect("Chromium starts");
    // Chromium stops by itself once the page's virtual time is spent; a hung browser fails the
    // test instead of holding it forever.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("Chromium's status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish within 120 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "Chromium failed on {url}: {status}");
    let dom = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    dom
}

fn scratch_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "credit-emulator-inspector-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Chromium, from the test's runtime: on a thread of its own, so the emulator keeps serving.
async fn browse(url: String, screenshot: Option<PathBuf>) -> String {
    tokio::task::spawn_blocking(move || chromium(&url, screenshot.as_deref()))
        .await
        .expect("the browser thread")
}

/// Whether the browser test can run here; panics when it must and cannot.
fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var("CREDIT_EMULATOR_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{CHROMIUM} is missing and CREDIT_EMULATOR_REQUIRE_BROWSER=1: install Debian's chromium package");
    }
    eprintln!("inspector browser test skipped: {CHROMIUM} not found (apt-get install chromium)");
    false
}

/// The text of the element with `id`, from a dumped DOM (which escapes text as HTML does).
fn text_of<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let open = format!("id=\"{id}\">");
    let start = dom.find(&open)? + open.len();
    let end = start + dom[start..].find('<')?;
    Some(&dom[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_one_world_in_a_headless_browser() {
    if !browser_available() {
        return;
    }
    let emu = Emu::start().await;
    let world = hostile_world(&emu, "inspector_world").await;
    let other = emu.tenant("inspector_other").await;
    let other_customer = emu.customer(&other, "name=Other%20Tenant%20Co").await;
    let other_grant = emu
        .grant(&other, &other_customer, 9900, "name=Other%20tenant%20grant")
        .await;

    // The balance the API reports is the one the page must show.
    let summary = emu
        .get(
            &world.key,
            &format!(
                "/v1/billing/credit_balance_summary?customer={}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered",
                world.customer
            ),
        )
        .await;
    assert_eq!(
        summary.body["balances"][0]["available_balance"]["monetary"]["value"], 2450,
        "{}",
        summary.text
    );

    let url = format!("{}#key={}", emu.url("/_emulator/ui"), world.key);
    let dom = browse(url.clone(), None).await;
    assert!(
        dom.contains("id=\"panel-customer\""),
        "the page loaded: {dom}"
    );
    // The newest customer is shown, its name as text: escaped in the DOM, never an element.
    assert!(
        !dom.to_ascii_lowercase().contains("<img"),
        "an <img> element from data"
    );
    let escaped = "&lt;img src=x onerror=alert(1)&gt;";
    assert!(
        dom.contains(&format!("<h2 class=\"customer-title\">{escaped}</h2>")),
        "the hostile name as the customer's title"
    );
    assert!(dom.contains(&world.customer));
    // Its grants, and the balance after every spend.
    for grant in &world.grants {
        assert!(
            dom.contains(&format!("data-grant=\"{grant}\"")),
            "grant {grant} is listed"
        );
    }
    assert!(dom.contains("Starter credits") && dom.contains("Welcome bonus"));
    assert_eq!(text_of(&dom, "available-usd"), Some("$24.50"));
    // The chart is drawn from the ledger: a step per entry.
    assert!(
        dom.contains("<svg") && dom.contains("class=\"line\""),
        "a chart"
    );
    assert!(
        dom.matches("class=\"dot ").count() >= 5,
        "a point per ledger entry"
    );
    // The invoices' credits, the events and the request log are there too.
    assert!(dom.contains("subscription_cycle"), "the cycle invoice");
    assert!(dom.contains("$25.00"), "the cycle invoice of 500 calls");
    assert!(dom.contains("invoice.finalized"), "events");
    assert!(dom.contains("/v1/billing/meter_events"), "the request log");
    // Nothing of the other world.
    for absent in [
        "Other Tenant Co",
        "Other tenant grant",
        &other_customer,
        &other_grant,
        "$99.00",
    ] {
        assert!(!dom.contains(absent), "{absent} is another world's");
    }

    // The other key sees its own world only.
    let dom = browse(format!("{}#key={other}", emu.url("/_emulator/ui")), None).await;
    assert!(dom.contains("Other Tenant Co") && dom.contains(&other_grant));
    assert_eq!(text_of(&dom, "available-usd"), Some("$99.00"));
    for absent in [
        "onerror",
        "Starter credits",
        &world.customer,
        &world.grants[0],
    ] {
        assert!(!dom.contains(absent), "{absent} is another world's");
    }

    // The page's own reads are not in the world's request log: only what the test sent.
    let log = emu.get(&world.key, "/_emulator/requests?limit=100").await;
    let entries = log.body["data"].as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty());
    let gets: Vec<&Value> = entries.iter().filter(|e| e["method"] == "GET").collect();
    assert_eq!(gets.len(), 1, "only the test's balance summary: {gets:?}");

    // A key the emulator never accepts is refused on the page, before any request.
    let dom = browse(
        format!("{}#key=sk_live_nope", emu.url("/_emulator/ui")),
        None,
    )
    .await;
    assert!(dom.contains("never accepts live keys"));

    if let Ok(path) = std::env::var("CREDIT_EMULATOR_SCREENSHOT") {
        let path = PathBuf::from(path);
        browse(url, Some(path.clone())).await;
        assert!(path.exists(), "a screenshot at {}", path.display());
        eprintln!("screenshot saved to {}", path.display());
    }
}
