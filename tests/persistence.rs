//! `--data-dir`: worlds survive a restart exactly, acknowledged writes survive `kill -9`, and a
//! store the emulator cannot read is refused with a clear message instead of starting empty.

use crate::support;

// The tests below `spawn` run the binary itself, which only the `cli` feature builds.
#[cfg(feature = "cli")]
use std::io::{BufRead, BufReader};
#[cfg(feature = "cli")]
use std::process::{Child, Command, Stdio};
#[cfg(feature = "cli")]
use std::time::Duration;

use credit_emulator::{start, Config};
use serde_json::Value;
use support::{Emu, T0};

const DAY: i64 = 86_400;

async fn emu_on(dir: &std::path::Path) -> Emu {
    let running = start(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            seed: Some(42),
            data_dir: Some(dir.to_path_buf()),
            ..Config::default()
        },
    )
    .await
    .expect("emulator starts on the data directory");
    Emu {
        running,
        client: reqwest::Client::new(),
    }
}

fn ok(r: support::Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

/// Builds a world with a bit of everything: customers, grants, a test clock moved across a billing
/// period, a metered subscription with usage, an invoice that spent credits, a webhook endpoint, an
/// alert, events, and an idempotent request.
async fn build(emu: &Emu, key: &str) -> String {
    emu.freeze(key, T0).await;
    let clock = ok(
        emu.post(
            key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={T0}"),
        )
        .await,
        "clock",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let customer = emu
        .customer(
            key,
            &format!("test_clock={clock}&name=Ada&email=ada@example.com"),
        )
        .await;
    emu.grant(key, &customer, 5_000, "name=Launch").await;
    let other = emu.customer(key, "name=Grace").await;
    emu.grant(key, &other, 700, "category=promotional").await;
    let meter = ok(
        emu.post(
            key,
            "/v1/billing/meters",
            "display_name=API+calls&event_name=api_calls&default_aggregation[formula]=sum",
        )
        .await,
        "meter",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let price = ok(
        emu.post(
            key,
            "/v1/prices",
            &format!("currency=usd&unit_amount=5&product_data[name]=API&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={meter}"),
        )
        .await,
        "price",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        emu.post(
            key,
            "/v1/subscriptions",
            &format!("customer={customer}&items[0][price]={price}"),
        )
        .await,
        "subscription",
    );
    ok(
        emu.post(
            key,
            "/v1/billing/meter_events",
            &format!(
                "event_name=api_calls&payload[stripe_customer_id]={customer}&payload[value]=320"
            ),
        )
        .await,
        "meter event",
    );
    ok(
        emu.post(
            key,
            "/v1/webhook_endpoints",
            "url=http://127.0.0.1:9/hook&enabled_events[]=*",
        )
        .await,
        "endpoint",
    );
    ok(
        emu.post(
            key,
            "/v1/billing/alerts",
            &format!("alert_type=credit_balance_threshold&title=Low&credit_balance_threshold[filters][0][type]=customer&credit_balance_threshold[filters][0][customer]={other}&credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=usd&credit_balance_threshold[lte][monetary][value]=100"),
        )
        .await,
        "alert",
    );
    // Past the period end and the grace period: the cycle invoice is finalized and spends credits.
    ok(
        emu.post(
            key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={}", T0 + 32 * DAY),
        )
        .await,
        "advance",
    );
    let created = emu
        .stripe_with(
            "POST",
            key,
            "/v1/customers",
            "name=Idem",
            &[("idempotency-key", "persist-1")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    customer
}

/// What a client can read of the world: the lists and objects a restart must leave as they were.
async fn read(emu: &Emu, key: &str, customer: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in [
        "/v1/customers?limit=100".to_string(),
        "/v1/billing/credit_grants?limit=100".to_string(),
        format!("/v1/billing/credit_balance_transactions?customer={customer}&limit=100"),
        format!("/v1/billing/credit_balance_summary?customer={customer}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
        "/v1/test_helpers/test_clocks".to_string(),
        "/v1/subscriptions?status=all".to_string(),
        format!("/v1/invoices?customer={customer}&limit=100"),
        "/v1/events?limit=100".to_string(),
        "/v1/billing/alerts".to_string(),
        "/v1/billing/meters".to_string(),
        "/v1/webhook_endpoints".to_string(),
        "/_emulator/clock".to_string(),
    ] {
        let r = emu.get(key, &path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        out.push((path, r.body));
    }
    out
}

#[tokio::test]
async fn a_world_reads_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = "sk_test_persist_world";
    let emu = emu_on(dir.path()).await;
    let customer = build(&emu, key).await;
    let before = read(&emu, key, &customer).await;
    let invoices = before
        .iter()
        .find(|(p, _)| p.starts_with("/v1/invoices"))
        .unwrap();
    assert!(
        !invoices.1["data"].as_array().unwrap().is_empty(),
        "the world has an invoice to compare"
    );
    emu.running.shutdown().await;

    let emu = emu_on(dir.path()).await;
    let after = read(&emu, key, &customer).await;
    for ((path, a), (_, b)) in before.iter().zip(&after) {
        // Delivery state is not part of a world: a snapshot keeps events with nothing pending.
        let (mut a, mut b) = (a.clone(), b.clone());
        if path.starts_with("/v1/events") {
            for list in [&mut a, &mut b] {
                for e in list["data"].as_array_mut().unwrap() {
                    e["pending_webhooks"] = Value::Null;
                }
            }
        }
        assert_eq!(a, b, "{path} differs after the restart");
    }
    // The stored answer of an idempotent request is part of the world.
    let again = emu
        .stripe_with(
            "POST",
            key,
            "/v1/customers",
            "name=Idem",
            &[("idempotency-key", "persist-1")],
        )
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // New objects continue the sequence: no id is handed out twice.
    let ids: Vec<String> = before[0].1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let fresh = emu.customer(key, "name=Later").await;
    assert!(!ids.contains(&fresh), "{fresh} was handed out before");
    emu.running.shutdown().await;

    // A snapshot, then more requests, then a snapshot again: each start takes up where the last
    // one stopped.
    let emu = emu_on(dir.path()).await;
    let later = ok(
        emu.get(key, &format!("/v1/customers/{fresh}")).await,
        "later",
    );
    assert_eq!(later["name"], "Later");
    let summary = read(&emu, key, &customer).await;
    assert_eq!(summary[3], after[3], "the balance summary moved");
    emu.running.shutdown().await;
}

#[tokio::test]
async fn a_reset_and_a_clock_move_are_stored_too() {
    let dir = tempfile::tempdir().unwrap();
    let key = "sk_test_persist_reset";
    let emu = emu_on(dir.path()).await;
    emu.freeze(key, T0).await;
    emu.customer(key, "name=Gone").await;
    assert_eq!(
        emu.post(key, "/_emulator/reset", "").await.status,
        200,
        "reset"
    );
    emu.freeze(key, T0 + DAY).await;
    let kept = emu.customer(key, "name=Kept").await;
    emu.running.shutdown().await;

    let emu = emu_on(dir.path()).await;
    let list = ok(emu.get(key, "/v1/customers").await, "list");
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Kept"]);
    assert_eq!(list["data"][0]["id"], kept.as_str());
    assert_eq!(list["data"][0]["created"], T0 + DAY);
    emu.running.shutdown().await;
}

/// A running emulator binary, killed when dropped, so that a failed assertion leaves none behind.
#[cfg(feature = "cli")]
struct Running(Child);

#[cfg(feature = "cli")]
impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

#[cfg(feature = "cli")]
impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

#[cfg(feature = "cli")]
impl Drop for Running {
    fn drop(&mut self) {
        // Already killed and reaped by most tests: both then fail harmlessly.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary on `dir`, and the URL it listens on.
#[cfg(feature = "cli")]
fn spawn(dir: &std::path::Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_string();
    (Running(child), url)
}

/// What the binary says when it refuses to start on `dir`.
#[cfg(feature = "cli")]
fn refusal(dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir)
        .output()
        .expect("binary runs");
    assert!(!out.status.success(), "it started on {}", dir.display());
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[cfg(feature = "cli")]
#[test]
fn a_store_it_cannot_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credit-emulator.sqlite3");
    {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '99');",
        )
        .unwrap();
    }
    let said = refusal(dir.path());
    assert!(
        said.contains("schema version 99") && said.contains("reads schema version 1"),
        "{said}"
    );

    let foreign = tempfile::tempdir().unwrap();
    {
        let conn =
            rusqlite::Connection::open(foreign.path().join("credit-emulator.sqlite3")).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT);")
            .unwrap();
    }
    let said = refusal(foreign.path());
    assert!(said.contains("did not write"), "{said}");

    let garbage = tempfile::tempdir().unwrap();
    std::fs::write(
        garbage.path().join("credit-emulator.sqlite3"),
        b"this is not a database, but it is long enough to have a header.......",
    )
    .unwrap();
    let said = refusal(garbage.path());
    assert!(said.contains("not an SQLite database"), "{said}");
}

#[cfg(feature = "cli")]
#[test]
fn a_second_emulator_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = spawn(dir.path());
    let said = refusal(dir.path());
    assert!(said.contains("in use"), "{said}");
    first.kill().unwrap();
    first.wait().unwrap();
}

/// Creates customers and grants from several clients until `stop`, returning every grant whose
/// creation was acknowledged, with its customer.
#[cfg(feature = "cli")]
async fn write_until(
    url: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut acked = Vec::new();
    let key = "sk_test_crash";
    while !*stop.borrow() {
        let Ok(r) = client
            .post(format!("{url}/v1/customers"))
            .bearer_auth(key)
            .form(&[("name", "Crash")])
            .send()
            .await
        else {
            break;
        };
        let Ok(customer) = r.json::<Value>().await else {
            break;
        };
        let customer = customer["id"].as_str().unwrap_or_default().to_string();
        for _ in 0..3 {
            let sent = client
                .post(format!("{url}/v1/billing/credit_grants"))
                .bearer_auth(key)
                .form(&[
                    ("customer", customer.as_str()),
                    ("amount[type]", "monetary"),
                    ("amount[monetary][currency]", "usd"),
                    ("amount[monetary][value]", "250"),
                    ("applicability_config[scope][price_type]", "metered"),
                ])
                .send()
                .await;
            let Ok(r) = sent else { return acked };
            if r.status() != 200 {
                return acked;
            }
            let Ok(grant) = r.json::<Value>().await else {
                return acked;
            };
            acked.push((grant["id"].as_str().unwrap().to_string(), customer.clone()));
        }
    }
    acked
}

/// Under concurrent writes, `kill -9` at a random moment, restart on the same directory, and check
/// that every acknowledged grant is there with its ledger entry and that each customer's balance is
/// the sum of its entries; again and again, with the world growing across rounds.
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let rounds: u32 = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(String, String)> = Vec::new();
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let (mut child, url) = spawn(dir.path());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let writers: Vec<_> = (0..4)
            .map(|_| tokio::spawn(write_until(url.clone(), stopped.clone())))
            .collect();
        let wait = 40 + (rand_ms(round) % 260);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let _ = stop.send(true);
        for w in writers {
            all.extend(w.await.unwrap());
        }

        let (mut child, url) = spawn(dir.path());
        let key = "sk_test_crash";
        // Every grant ever acknowledged, in any round, is in the world.
        let mut stored = std::collections::HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let mut page = format!("{url}/v1/billing/credit_grants?limit=100");
            if let Some(a) = &after {
                page.push_str(&format!("&starting_after={a}"));
            }
            let body: Value = get_json(&client, key, page).await;
            for g in body["data"].as_array().unwrap() {
                stored.insert(
                    g["id"].as_str().unwrap().to_string(),
                    g["customer"].as_str().unwrap().to_string(),
                );
            }
            after = body["data"]
                .as_array()
                .unwrap()
                .last()
                .map(|g| g["id"].as_str().unwrap().to_string());
            if body["has_more"] != true {
                break;
            }
        }
        for (grant, customer) in &all {
            assert_eq!(
                stored.get(grant),
                Some(customer),
                "round {round}: acknowledged {grant} is gone"
            );
        }
        // Every customer's ledger agrees with its grants and its balance.
        let mut customers: Vec<&String> = all.iter().map(|(_, c)| c).collect();
        customers.sort();
        customers.dedup();
        for customer in customers.iter().rev().take(20) {
            let entries: Value = get_json(
                &client,
                key,
                format!(
                    "{url}/v1/billing/credit_balance_transactions?customer={customer}&limit=100"
                ),
            )
            .await;
            let credited: i64 = entries["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    e["credit"]["amount"]["monetary"]["value"]
                        .as_i64()
                        .unwrap_or(0)
                })
                .sum();
            let grants: Value = get_json(
                &client,
                key,
                format!("{url}/v1/billing/credit_grants?customer={customer}&limit=100"),
            )
            .await;
            let granted = grants["data"].as_array().unwrap().len() as i64 * 250;
            assert_eq!(credited, granted, "{customer}: entries and grants disagree");
            let summary: Value = get_json(&client, key, format!("{url}/v1/billing/credit_balance_summary?customer={customer}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered")).await;
            assert_eq!(
                summary["balances"][0]["available_balance"]["monetary"]["value"], credited,
                "{customer}: the balance is not the sum of its entries"
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    println!(
        "{rounds} kill -9 rounds, {} acknowledged grants all found, in {:.1} s",
        all.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(!all.is_empty(), "no write was acknowledged at all");
}

/// A form POST of `name` to `/v1/customers` with `key`, as a client sends it.
fn customer_post(key: &str, name: &str) -> credit_emulator::http::Request {
    let mut headers = hyper::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
    headers.insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    credit_emulator::http::Request {
        method: hyper::Method::POST,
        path: "/v1/customers".into(),
        query: None,
        headers,
        body: format!("name={name}").into(),
        request_id: format!("req_{name}"),
    }
}

/// The request that makes a world is not always the first to lock it: two requests can reach a
/// new world at once, and the other one take the lock first, so that its journal record, not the
/// maker's, is the first one replayed. Made here in that order on purpose (the maker makes the
/// world, then another request is served whole, then the maker goes on): after a restart, the
/// world holds both customers under the ids they were given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_made_by_one_request_and_first_locked_by_another_replays_as_it_was() {
    use credit_emulator::router::{self, Api};
    use credit_emulator::{app::App, persist};
    let dir = tempfile::tempdir().unwrap();
    let config = || Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..Config::default()
    };
    let key = "sk_test_maker";
    let id_of = |body: &[u8]| -> String {
        let v: Value = serde_json::from_slice(body).unwrap();
        v["id"].as_str().unwrap().to_string()
    };

    let app = App::new(config());
    persist::attach(&app).unwrap();
    let journal = app.journal.get().unwrap().clone();
    let maker = customer_post(key, "Maker");
    journal.begin(false);
    app.store.create(key).unwrap();
    let other = {
        let app = app.clone();
        std::thread::spawn(move || {
            let (reply, commit) =
                persist::dispatch(&app, Api::Stripe, &customer_post(key, "Other"));
            (reply.unwrap(), commit.unwrap())
        })
        .join()
        .unwrap()
    };
    let maker_reply = router::dispatch(&app, Api::Stripe, &maker);
    let maker_commit = journal.finish(&maker).unwrap();
    assert_eq!((maker_reply.status, other.0.status), (200, 200));
    other.1.await.unwrap().unwrap();
    maker_commit.await.unwrap().unwrap();
    let mut made = vec![id_of(&maker_reply.body), id_of(&other.0.body)];
    made.sort();
    // A stop that stores no snapshot, as `kill -9` leaves the directory: the journal alone.
    drop(journal);
    drop(app);

    // The journal's writer lets go of the file once it has seen its channel close.
    let mut attempts = 0;
    let again = loop {
        let again = App::new(config());
        match persist::attach(&again) {
            Ok(_) => break again,
            Err(e) if e.contains("in use") && attempts < 200 => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let mut list = customer_post(key, "List");
    list.method = hyper::Method::GET;
    list.body = Default::default();
    let listed = router::dispatch(&again, Api::Stripe, &list);
    let listed: Value = serde_json::from_slice(&listed.body).unwrap();
    let mut found: Vec<String> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    assert_eq!(
        found, made,
        "the replayed world differs from the one acknowledged"
    );
}

/// `GET url` with `key`, its JSON body.
#[cfg(feature = "cli")]
async fn get_json(client: &reqwest::Client, key: &str, url: String) -> Value {
    client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A cheap, varying delay without a random number generator of the test's own.
#[cfg(feature = "cli")]
fn rand_ms(round: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos
        .wrapping_mul(2_654_435_761)
        .wrapping_add(round as u64 * 97)
        >> 7
}
