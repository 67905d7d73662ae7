//! The request log over real sockets (`GET /_emulator/requests`): what each world records, newest
//! first, from both APIs and the emulator's own routes, errors summarized from either envelope;
//! what is never recorded (the log itself, the inspector, requests without a usable key, requests
//! of a world that does not exist); `Stripe-Account` worlds; pages and their refusals; the bound,
//! reset, bodies refused before any API, long paths and panics.

use crate::support;

use credit_emulator::Config;
use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::{Emu, Resp, T0};

const LOG: &str = "/_emulator/requests";

/// The `Request-Id` a response carries.
fn request_id(r: &Resp) -> String {
    r.header("request-id")
        .expect("every answer has a Request-Id")
        .to_string()
}

/// Reads the whole log of `key`'s world (at most 100 entries) with `headers`.
async fn log_with(emu: &Emu, key: &str, headers: &[(&str, &str)]) -> Vec<Value> {
    let r = emu
        .stripe_with("GET", key, &format!("{LOG}?limit=100"), "", headers)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

async fn log(emu: &Emu, key: &str) -> Vec<Value> {
    log_with(emu, key, &[]).await
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The entries with what changes from run to run replaced, once checked: `created` is the real
/// time of the request (within the test's own run), `duration_us` a number, and `id` the
/// `Request-Id` the client received (`expected`, newest first), shown as `req_1`, `req_2`, … in
/// the order the requests were sent.
fn normalized(entries: &[Value], expected: &[String], since: i64) -> Value {
    assert_eq!(
        ids(entries),
        expected,
        "the log's ids are the Request-Ids sent back"
    );
    let until = chrono::Utc::now().timestamp();
    let n = entries.len();
    Value::Array(
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let created = e["created"].as_i64().expect("created is unix seconds");
                assert!(
                    (since..=until).contains(&created),
                    "created {created} is the request's real time"
                );
                assert!(e["duration_us"].is_u64(), "duration_us: {e}");
                let mut e = e.clone();
                e["id"] = json!(format!("req_{}", n - i));
                e["created"] = json!("[real time]");
                e["duration_us"] = json!("[µs]");
                e
            })
            .collect(),
    )
}

/// Health's count of worlds.
async fn worlds(emu: &Emu) -> u64 {
    let r = emu.raw("GET", "/_emulator/health", &[], "").await;
    r.body["tenants"].as_u64().expect("tenants")
}

#[tokio::test]
async fn records_both_apis_newest_first_with_their_errors() {
    let emu = Emu::start().await;
    let since = chrono::Utc::now().timestamp();
    let key = "sk_test_log_apis";
    let mut sent = Vec::new();

    let r = emu
        .post(key, "/_emulator/clock", &format!("frozen_time={T0}"))
        .await;
    assert_eq!(r.status, 200);
    sent.push(request_id(&r));
    let idem = [("idempotency-key", "create-ada")];
    for form in ["name=Ada", "name=Ada", "name=Grace"] {
        let r = emu
            .stripe_with("POST", key, "/v1/customers", form, &idem)
            .await;
        sent.push(request_id(&r));
    }
    for path in [
        "/v1/customers?limit=2&email=ada%40example.com",
        "/v1/billing/credit_grants/credgr_test_nope",
    ] {
        sent.push(request_id(&emu.get(key, path).await));
    }
    let r = emu
        .post(key, "/v1/billing/credit_grants", "amount[type]=monetary")
        .await;
    assert_eq!(r.status, 400);
    sent.push(request_id(&r));
    for path in ["/v1/creditgrants/cg_nope", "/v1/nothing/here"] {
        let r = emu.native("GET", key, path, None).await;
        assert_eq!(r.status, 404);
        sent.push(request_id(&r));
    }
    sent.push(request_id(&emu.get(key, "/_emulator/clock").await));
    sent.reverse();

    let entries = log(&emu, key).await;
    assert_json_snapshot!("both_apis", normalized(&entries, &sent, since));
}

#[tokio::test]
async fn looking_and_unusable_keys_are_not_recorded_and_make_no_world() {
    let emu = Emu::start().await;
    let key = "sk_test_log_quiet";

    // A world that does not exist has an empty log, and reading it makes no world.
    assert!(log(&emu, key).await.is_empty());
    // A request refused before it reached its world is not recorded: it would make one.
    let r = emu.get(key, "/v1/customers?limit=0").await;
    assert_eq!(r.status, 400);
    assert!(log(&emu, key).await.is_empty());
    assert_eq!(
        worlds(&emu).await,
        0,
        "neither the log nor reading it makes a world"
    );

    let first = emu
        .post(key, "/_emulator/clock", &format!("frozen_time={T0}"))
        .await;
    assert_eq!(worlds(&emu).await, 1);

    // The inspector's files, its own reads, and the log itself are not recorded.
    for path in [
        "/_emulator/ui",
        "/_emulator/ui/app.js",
        "/_emulator/ui/style.css",
    ] {
        assert_eq!(emu.get(key, path).await.status, 200, "{path}");
    }
    let inspector = [("x-emulator-inspector", "1")];
    let r = emu
        .stripe_with("GET", key, "/v1/customers", "", &inspector)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(log(&emu, key).await.len(), 1);
    // Nor are requests whose key no API accepts, in any world.
    for auth in [
        None,
        Some("Bearer sk_live_log_quiet"),
        Some("Bearer pk_test_1"),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = emu.raw("GET", "/v1/customers", &headers, "").await;
        assert_eq!(r.status, 401);
    }
    let r = emu
        .native("GET", "sk_live_log_quiet", "/v1/creditgrants", None)
        .await;
    assert_eq!(r.status, 401);
    // A connected account's requests are its own world's, not the platform's.
    let account = [("stripe-account", "acct_log_1")];
    let connected = emu
        .stripe_with("POST", key, "/v1/customers", "name=Connected", &account)
        .await;
    assert_eq!(connected.status, 200);
    let refused = [("stripe-account", "not-an-account")];
    let r = emu
        .stripe_with("POST", key, "/v1/customers", "name=Nobody", &refused)
        .await;
    assert_eq!(r.status, 403);

    assert_eq!(ids(&log(&emu, key).await), [request_id(&first)]);
    assert_eq!(
        ids(&log_with(&emu, key, &account).await),
        [request_id(&connected)]
    );
    assert_eq!(worlds(&emu).await, 2);
}

#[tokio::test]
async fn pages_newest_first_and_refuses_what_stripe_lists_refuse() {
    let emu = Emu::start().await;
    let key = emu.tenant("log_pages").await;
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.push(request_id(&emu.get(&key, "/_emulator/clock").await));
    }
    sent.reverse();

    let page = |query: String| {
        let emu = &emu;
        let key = key.clone();
        async move {
            let r = emu.get(&key, &format!("{LOG}?{query}")).await;
            assert_eq!(r.status, 200, "{}", r.text);
            (
                ids(r.body["data"].as_array().unwrap()),
                r.body["has_more"].as_bool().unwrap(),
            )
        }
    };
    assert_eq!(page("limit=2".into()).await, (sent[0..2].to_vec(), true));
    let after = &sent[1];
    assert_eq!(
        page(format!("limit=2&starting_after={after}")).await,
        (sent[2..4].to_vec(), true)
    );
    let last = &sent[3];
    // The freeze of `emu.tenant` is the oldest entry.
    let (rest, more) = page(format!("limit=2&starting_after={last}")).await;
    assert_eq!(
        (rest.len(), rest[0].clone(), more),
        (2, sent[4].clone(), false)
    );
    let before = &sent[3];
    assert_eq!(
        page(format!("limit=2&ending_before={before}")).await,
        (sent[1..3].to_vec(), true)
    );
    assert_eq!(
        page(format!("ending_before={}", sent[1])).await,
        (sent[0..1].to_vec(), false)
    );
    // Ten by default.
    assert_eq!(page(String::new()).await.0.len(), 6);

    let mut refusals = Vec::new();
    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "starting_after=req_a&ending_before=req_b",
        "starting_after=req_unknown",
        "ending_before=req_unknown",
        "customer=cus_1",
    ] {
        let r = emu.get(&key, &format!("{LOG}?{query}")).await;
        refusals.push(json!({"query": query, "status": r.status, "body": r.body}));
    }
    let r = emu.raw("GET", LOG, &[], "").await;
    refusals.push(json!({"query": "(no key)", "status": r.status, "body": r.body}));
    let r = emu.post(&key, LOG, "").await;
    refusals.push(json!({"query": "(POST)", "status": r.status, "body": r.body}));
    assert_json_snapshot!("refusals", refusals);
}

#[tokio::test]
async fn keeps_the_newest_of_each_world_and_forgets_on_reset() {
    let emu = Emu::with_config(Config {
        seed: Some(42),
        request_log: 3,
        ..Config::default()
    })
    .await;
    let key = emu.tenant("log_bound").await;
    let mut sent = Vec::new();
    for _ in 0..4 {
        sent.push(request_id(&emu.get(&key, "/_emulator/clock").await));
    }
    sent.reverse();
    assert_eq!(ids(&log(&emu, &key).await), sent[..3]);
    let dropped = &sent[3];
    let r = emu
        .get(&key, &format!("{LOG}?starting_after={dropped}"))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("resource_missing"))
    );
    // Another world's log is its own.
    let other = emu.tenant("log_bound_other").await;
    assert_eq!(log(&emu, &other).await.len(), 1);

    // Reset forgets the world, its log with it; the reset itself leaves no world to record it in.
    let r = emu.post(&key, "/_emulator/reset", "").await;
    assert_eq!(r.status, 200);
    assert!(log(&emu, &key).await.is_empty());
    let again = emu.tenant("log_bound").await;
    assert_eq!(log(&emu, &again).await.len(), 1);
    assert_eq!(log(&emu, &other).await.len(), 1);

    // A log of size 0 records nothing.
    let off = Emu::with_config(Config {
        seed: Some(42),
        request_log: 0,
        ..Config::default()
    })
    .await;
    let key = off.tenant("log_off").await;
    off.get(&key, "/v1/customers").await;
    assert!(log(&off, &key).await.is_empty());
}

#[tokio::test]
async fn records_bodies_refused_long_paths_and_panics() {
    let emu = Emu::with_config(Config {
        seed: Some(42),
        max_body_bytes: 1024,
        panic_trigger: true,
        ..Config::default()
    })
    .await;
    let key = emu.tenant("log_edges").await;
    let since = chrono::Utc::now().timestamp();
    let mut sent = Vec::new();

    let big = format!("name={}", "a".repeat(2000));
    let r = emu.post(&key, "/v1/customers", &big).await;
    assert_eq!(r.status, 413);
    sent.push(request_id(&r));
    let long = format!("/v1/customers?email={}", "é".repeat(1500));
    let r = emu.get(&key, &long).await;
    sent.push(request_id(&r));
    let r = emu
        .stripe_with(
            "POST",
            &key,
            "/_emulator/invoices",
            "customer=cus_x&currency=usd&lines[0][amount]=1",
            &[("x-emulator-panic", "1"), ("idempotency-key", "boom")],
        )
        .await;
    assert_eq!(r.status, 500);
    sent.push(request_id(&r));
    sent.reverse();

    let mut entries = log(&emu, &key).await;
    entries.truncate(3);
    let path = entries[1]["path"].as_str().unwrap().to_string();
    assert!(path.len() <= 2048 && path.ends_with('…'), "{}", path.len());
    entries[1]["path"] = json!(format!("[{} bytes]", path.len()));
    assert_json_snapshot!("edges", normalized(&entries, &sent, since));
}
