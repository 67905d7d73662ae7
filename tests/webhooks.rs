//! Webhook endpoints over real sockets (`/v1/webhook_endpoints`), and delivery to real local
//! receivers: the signature recomputed here, retries after failures, order after an endpoint comes
//! back, a dead endpoint that holds up nobody else, the bounded queue, forwarding, and
//! `GET /_emulator/webhook_deliveries`. Events are handed to the delivery side directly through
//! `App::deliver`, as the event log does through `App::events_produced`.

use crate::support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use credit_emulator::webhooks::{EventRef, RetrySchedule, WebhookConfig};
use credit_emulator::{Config, Emulator};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use insta::assert_json_snapshot;
use serde_json::{json, Value};
use sha2::Sha256;
use support::{Emu, Resp};
use tokio::sync::watch;

const ENDPOINTS: &str = "/v1/webhook_endpoints";

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Hit {
    headers: hyper::HeaderMap,
    body: Bytes,
    /// What the receiver answered (0: it never answers).
    status: u16,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn event_id(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body).expect("a JSON body");
        v["id"].as_str().unwrap_or_default().to_string()
    }
}

/// How a receiver answers.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// 500 to its first `n` requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

/// A local HTTP server that records every request it gets.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    count: watch::Receiver<usize>,
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let (tx, count) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let recorded = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (hits, tx) = (recorded.clone(), tx.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (hits, tx) = (hits.clone(), tx.clone());
                        async move {
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let status = {
                                let mut hits = hits.lock().unwrap();
                                let status = match mode {
                                    Mode::FailFirst(n) if hits.len() < n => 500,
                                    Mode::FailFirst(_) => 200,
                                    Mode::Hang => 0,
                                };
                                hits.push(Hit {
                                    headers,
                                    body,
                                    status,
                                });
                                tx.send_replace(hits.len());
                                status
                            };
                            if status == 0 {
                                std::future::pending::<()>().await;
                            }
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, hits, count }
    }

    /// Waits until `n` requests have arrived (a minute at most, so that a broken sender fails the
    /// test instead of hanging it) and returns all of them.
    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let mut count = self.count.clone();
        tokio::time::timeout(Duration::from_secs(60), count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} requests did not arrive at {}", self.url))
            .unwrap();
        self.hits.lock().unwrap().clone()
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// An emulator whose retries come after 50 ms each (three of them), and which queues at most
/// `capacity` deliveries per destination.
async fn emu_with(capacity: usize) -> Emu {
    Emu::with_config(Config {
        seed: Some(42),
        webhooks: WebhookConfig {
            retry: RetrySchedule::parse("0.05,0.05,0.05").unwrap(),
            queue_capacity: capacity,
            ..WebhookConfig::default()
        },
        ..Config::default()
    })
    .await
}

fn event(id: &str, kind: &str) -> EventRef {
    EventRef {
        id: id.to_string(),
        kind: kind.to_string(),
        created: support::T0,
        json: Bytes::from(
            serde_json::to_vec(&json!({"id": id, "object": "event", "type": kind})).unwrap(),
        ),
        pending: Default::default(),
    }
}

/// Makes an endpoint at `url` for `events` and returns its id and secret.
async fn endpoint(emu: &Emu, key: &str, url: &str, events: &[&str]) -> (String, String) {
    let mut form = format!("url={url}");
    for e in events {
        form.push_str(&format!("&enabled_events[]={e}"));
    }
    let r = emu.post(key, ENDPOINTS, &form).await;
    assert_eq!(r.status, 200, "create endpoint: {}", r.text);
    (r.id(), r.body["secret"].as_str().unwrap().to_string())
}

/// Checks a `Stripe-Signature` header against `body` and `secret` the way Stripe's SDKs do: every
/// `v1` entry is compared with HMAC-SHA256 of `"{t}.{body}"` keyed with the whole secret string.
fn verify(header: &str, body: &[u8], secret: &str) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1.push(x.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    v1.contains(&expected)
}

async fn deliveries(emu: &Emu, key: &str, query: &str) -> Resp {
    let r = emu
        .get(key, &format!("/_emulator/webhook_deliveries{query}"))
        .await;
    assert_eq!(r.status, 200, "deliveries: {}", r.text);
    r
}

/// `(event, status, attempts, response_code)` of each delivery, newest first.
fn summary(r: &Resp) -> Vec<(String, String, i64, Value)> {
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["event"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
                d["attempts"].as_i64().unwrap(),
                d["response_code"].clone(),
            )
        })
        .collect()
}

/// Waits until every delivery of the world has settled (succeeded, failed or dropped).
async fn settled(emu: &Emu, key: &str) -> Resp {
    for _ in 0..600 {
        let r = deliveries(emu, key, "").await;
        let busy = summary(&r)
            .iter()
            .any(|(_, s, _, _)| s == "pending" || s == "retrying");
        if !busy {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries did not settle");
}

#[tokio::test]
async fn endpoint_create_retrieve_update_list_delete() {
    let emu = Emu::start().await;
    let key = emu.tenant("wh_crud").await;

    let created = emu
        .post(
            &key,
            ENDPOINTS,
            "url=http://127.0.0.1:4242/webhook&enabled_events[]=invoice.finalized&enabled_events[]=billing.credit_grant.created&description=local&metadata[team]=billing&api_version=2025-03-31.basil",
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let secret = created.body["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 20,
        "{secret}"
    );
    assert_json_snapshot!("endpoint_created", created.body, {".secret" => "[secret]"});
    let id = created.id();

    let retrieved = emu.get(&key, &format!("{ENDPOINTS}/{id}")).await;
    assert_eq!(retrieved.status, 200);
    assert!(
        retrieved.body.get("secret").is_none(),
        "the secret is shown once"
    );
    assert_json_snapshot!("endpoint_retrieved", retrieved.body);

    let updated = emu
        .post(
            &key,
            &format!("{ENDPOINTS}/{id}"),
            "url=https://example.com/hooks&enabled_events[]=*&disabled=true&description=&metadata[team]=&metadata[env]=dev",
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_json_snapshot!("endpoint_updated", updated.body);

    let enabled = emu
        .post(&key, &format!("{ENDPOINTS}/{id}"), "disabled=false")
        .await;
    assert_eq!(enabled.body["status"], "enabled");

    let (second, _) = endpoint(&emu, &key, "http://127.0.0.1:9/b", &["customer.created"]).await;
    let page = emu.get(&key, &format!("{ENDPOINTS}?limit=1")).await;
    assert_eq!(page.body["data"][0]["id"], second.as_str(), "newest first");
    assert_eq!(page.body["has_more"], true);
    let rest = emu
        .get(
            &key,
            &format!("{ENDPOINTS}?limit=1&starting_after={second}"),
        )
        .await;
    assert_eq!(rest.body["data"][0]["id"], id.as_str());
    assert_eq!(rest.body["has_more"], false);
    assert_json_snapshot!("endpoint_list", emu.get(&key, ENDPOINTS).await.body);

    let deleted = emu.delete(&key, &format!("{ENDPOINTS}/{id}")).await;
    assert_eq!(deleted.status, 200);
    assert_json_snapshot!("endpoint_deleted", deleted.body);
    let gone = emu.get(&key, &format!("{ENDPOINTS}/{id}")).await;
    assert_eq!(gone.status, 404);
    assert_json_snapshot!("endpoint_gone", gone.body);

    // Another world sees none of them.
    let other = emu.tenant("wh_crud_other").await;
    let none = emu.get(&other, &format!("{ENDPOINTS}/{second}")).await;
    assert_eq!(none.status, 404);
}

/// `enabled_events[]` takes every value of Stripe's enum, including types the emulator never emits
/// (they are kept, and simply never delivered).
#[tokio::test]
async fn endpoint_takes_every_stripe_event_type() {
    let emu = Emu::start().await;
    let key = emu.tenant("wh_every_type").await;
    let all = credit_emulator::stripe::event_types::EVENT_TYPES;
    assert_eq!(all.len(), 276);
    let (id, _) = endpoint(&emu, &key, "http://127.0.0.1:1/x", all).await;
    let got = emu.get(&key, &format!("{ENDPOINTS}/{id}")).await;
    assert_eq!(got.body["enabled_events"].as_array().unwrap().len(), 276);

    let never_emitted = [
        "payment_intent.succeeded",
        "issuing_card.created",
        "checkout.session.completed",
        "invoice_payment.paid",
        "treasury.received_debit.created",
    ];
    let mut form = String::new();
    for e in never_emitted {
        form.push_str(&format!("&enabled_events[]={e}"));
    }
    let updated = emu
        .post(&key, &format!("{ENDPOINTS}/{id}"), &form[1..])
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["enabled_events"], json!(never_emitted));
    let misspelt = emu
        .post(
            &key,
            &format!("{ENDPOINTS}/{id}"),
            "enabled_events[]=payment_intent.succeded",
        )
        .await;
    assert_eq!(misspelt.status, 400);
    assert_eq!(misspelt.body["error"]["param"], "enabled_events[0]");
}

#[tokio::test]
async fn endpoint_refusals() {
    let emu = Emu::start().await;
    let key = emu.tenant("wh_refusals").await;
    let cases = [
        ("missing_url", "enabled_events[]=*"),
        ("missing_events", "url=http://127.0.0.1:1/x"),
        ("ftp_url", "url=ftp://example.com/x&enabled_events[]=*"),
        ("relative_url", "url=/hooks&enabled_events[]=*"),
        (
            "unknown_event",
            "url=http://127.0.0.1:1/x&enabled_events[]=customer.created&enabled_events[]=customer.exploded",
        ),
        ("empty_events", "url=http://127.0.0.1:1/x&enabled_events="),
        (
            "bad_api_version",
            "url=http://127.0.0.1:1/x&enabled_events[]=*&api_version=2020-01-01.nope",
        ),
        ("unknown_param", "url=http://127.0.0.1:1/x&enabled_events[]=*&colour=red"),
    ];
    let mut answers = serde_json::Map::new();
    for (name, form) in cases {
        let r = emu.post(&key, ENDPOINTS, form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        answers.insert(name.to_string(), r.body);
    }
    let (id, _) = endpoint(&emu, &key, "http://127.0.0.1:1/x", &["*"]).await;
    for (name, form) in [
        ("update_api_version", "api_version=2025-03-31.basil"),
        ("update_bad_disabled", "disabled=maybe"),
        ("update_bad_url", "url=mailto:ops@example.com"),
    ] {
        let r = emu.post(&key, &format!("{ENDPOINTS}/{id}"), form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        answers.insert(name.to_string(), r.body);
    }
    let missing = emu.post(&key, &format!("{ENDPOINTS}/we_nope"), "").await;
    assert_eq!(missing.status, 404);
    answers.insert("update_missing".into(), missing.body);
    assert_json_snapshot!("endpoint_refusals", answers);
    assert_eq!(
        emu.get(&key, ENDPOINTS).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "no refused create made anything"
    );
}

#[tokio::test]
async fn deliveries_are_signed_as_stripes_sdks_verify() {
    let emu = emu_with(1000).await;
    let key = emu.tenant("wh_signed").await;
    let rx = Receiver::start(Mode::FailFirst(0)).await;
    let (id, secret) = endpoint(&emu, &key, &rx.url, &["customer.created"]).await;
    let app = &emu.running.app;

    let counts = app.deliver(
        &key,
        &[
            event("evt_1", "customer.created"),
            event("evt_2", "customer.updated"),
        ],
    );
    assert_eq!(counts, [1, 0], "only the enabled type goes to the endpoint");

    let hits = rx.wait_for(1).await;
    let hit = &hits[0];
    let sent = event("evt_1", "customer.created");
    assert_eq!(
        hit.body, sent.json,
        "the body is the event's JSON, byte for byte"
    );
    assert_eq!(
        hit.header("content-type"),
        "application/json; charset=utf-8"
    );
    assert_eq!(
        hit.header("user-agent"),
        "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
    );
    let signature = hit.header("stripe-signature");
    assert!(signature.starts_with("t="), "{signature}");
    assert!(verify(signature, &hit.body, &secret), "{signature}");
    assert!(!verify(signature, b"{}", &secret), "another body fails");
    assert!(
        !verify(signature, &hit.body, "whsec_other"),
        "another secret fails"
    );

    let r = settled(&emu, &key).await;
    assert_eq!(
        summary(&r),
        [("evt_1".into(), "succeeded".into(), 1, json!(200))]
    );
    assert_eq!(r.body["data"][0]["endpoint"], id.as_str());
    assert_eq!(r.body["data"][0]["url"], rx.url.as_str());

    // A disabled endpoint receives nothing; `*` receives everything.
    emu.post(&key, &format!("{ENDPOINTS}/{id}"), "disabled=true")
        .await;
    let rx_all = Receiver::start(Mode::FailFirst(0)).await;
    endpoint(&emu, &key, &rx_all.url, &["*"]).await;
    let counts = app.deliver(&key, &[event("evt_3", "customer.created")]);
    assert_eq!(counts, [1]);
    assert_eq!(rx_all.wait_for(1).await[0].event_id(), "evt_3");
    settled(&emu, &key).await;
    assert_eq!(rx.hits().len(), 1, "the disabled endpoint got nothing more");

    // A world without endpoints (or never seen) queues nothing.
    assert_eq!(
        app.deliver("sk_test_nobody", &[event("evt_4", "customer.created")]),
        [0]
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_the_rest_follow_in_order() {
    let emu = emu_with(1000).await;
    let key = emu.tenant("wh_retries").await;
    let rx = Receiver::start(Mode::FailFirst(2)).await;
    let (_, secret) = endpoint(&emu, &key, &rx.url, &["*"]).await;

    emu.running.app.deliver(
        &key,
        &[
            event("evt_a", "invoice.created"),
            event("evt_b", "invoice.finalized"),
            event("evt_c", "invoice.paid"),
        ],
    );
    let hits = rx.wait_for(5).await;
    let order: Vec<(String, u16)> = hits.iter().map(|h| (h.event_id(), h.status)).collect();
    assert_eq!(
        order,
        [
            ("evt_a".into(), 500),
            ("evt_a".into(), 500),
            ("evt_a".into(), 200),
            ("evt_b".into(), 200),
            ("evt_c".into(), 200),
        ],
        "the first event is retried until it succeeds; the others wait for it, in order"
    );
    for h in &hits {
        assert!(verify(h.header("stripe-signature"), &h.body, &secret));
    }

    let r = settled(&emu, &key).await;
    assert_json_snapshot!("deliveries_after_retries", r.body, {
        ".data[].created" => "[created]",
        ".data[].url" => "[url]",
        ".data[].endpoint" => "[endpoint]",
    });
}

#[tokio::test]
async fn a_delivery_that_always_fails_ends_failed_after_its_attempts() {
    let emu = emu_with(1000).await;
    let key = emu.tenant("wh_failed").await;
    let rx = Receiver::start(Mode::FailFirst(usize::MAX)).await;
    endpoint(&emu, &key, &rx.url, &["*"]).await;
    // Nothing listens on port 1 (a port released by this process could be taken by another test's
    // server before the attempt): every attempt is refused.
    endpoint(&emu, &key, "http://127.0.0.1:1/x", &["*"]).await;

    emu.running
        .app
        .deliver(&key, &[event("evt_x", "price.created")]);
    assert_eq!(
        rx.wait_for(4).await.len(),
        4,
        "one attempt and three retries"
    );
    let r = settled(&emu, &key).await;
    let rows = r.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["status"], "failed");
        assert_eq!(row["attempts"], 4);
        assert!(row["next_retry_at"].is_null());
    }
    let by_code: Vec<Value> = rows.iter().map(|r| r["response_code"].clone()).collect();
    assert!(
        by_code.contains(&json!(500)) && by_code.contains(&Value::Null),
        "{rows:?}"
    );
    let refused = rows.iter().find(|r| r["response_code"].is_null()).unwrap();
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("connection failed"),
        "{refused}"
    );
    let answered = rows.iter().find(|r| r["response_code"] == 500).unwrap();
    assert_eq!(answered["error"], "the endpoint answered 500");
}

#[tokio::test]
async fn a_dead_endpoint_does_not_hold_up_another() {
    let emu = emu_with(1000).await;
    let key = emu.tenant("wh_dead").await;
    let dead = Receiver::start(Mode::Hang).await;
    let live = Receiver::start(Mode::FailFirst(0)).await;
    let (dead_id, _) = endpoint(&emu, &key, &dead.url, &["*"]).await;
    let (live_id, _) = endpoint(&emu, &key, &live.url, &["*"]).await;
    // Another world's endpoint at the same live receiver's address.
    let other = emu.tenant("wh_dead_other").await;
    endpoint(&emu, &other, &live.url, &["*"]).await;

    let events: Vec<EventRef> = (0..5)
        .map(|i| event(&format!("evt_{i}"), "customer.created"))
        .collect();
    assert_eq!(emu.running.app.deliver(&key, &events), [2; 5]);
    assert_eq!(
        emu.running
            .app
            .deliver(&other, &[event("evt_o", "customer.created")]),
        [1]
    );
    let got: Vec<String> = live.wait_for(6).await.iter().map(Hit::event_id).collect();
    let mine: Vec<&str> = got
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "evt_o")
        .collect();
    assert_eq!(mine, ["evt_0", "evt_1", "evt_2", "evt_3", "evt_4"]);
    assert!(got.contains(&"evt_o".to_string()));

    // The dead endpoint has the first event in flight and the rest waiting behind it.
    assert_eq!(dead.wait_for(1).await.len(), 1);
    let r = deliveries(&emu, &key, &format!("?endpoint={dead_id}")).await;
    let rows = summary(&r);
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|(_, s, _, _)| s == "pending"), "{rows:?}");
    assert_eq!(rows[4], ("evt_0".into(), "pending".into(), 1, Value::Null));
    // Every delivery to the live endpoint succeeds. Its receiver counts a request before its
    // answer is back with the emulator (several answers at once when requests are pipelined), so
    // the records are read until they settle.
    let mut live_rows = Vec::new();
    for _ in 0..600 {
        let r = deliveries(&emu, &key, &format!("?endpoint={live_id}")).await;
        live_rows = summary(&r);
        if live_rows.iter().all(|(_, s, _, _)| s == "succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live_rows.len(), 5);
    assert!(
        live_rows.iter().all(|(_, s, _, _)| s == "succeeded"),
        "{live_rows:?}"
    );
}

#[tokio::test]
async fn a_full_queue_drops_its_oldest_waiting_delivery() {
    let emu = emu_with(2).await;
    let key = emu.tenant("wh_full").await;
    let dead = Receiver::start(Mode::Hang).await;
    let (id, _) = endpoint(&emu, &key, &dead.url, &["*"]).await;
    let app = &emu.running.app;
    app.deliver(&key, &[event("evt_0", "customer.created")]);
    // The first delivery is in flight (and never answered) before the others come.
    dead.wait_for(1).await;
    let more: Vec<EventRef> = (1..5)
        .map(|i| event(&format!("evt_{i}"), "customer.created"))
        .collect();
    app.deliver(&key, &more);

    let r = deliveries(&emu, &key, "").await;
    let rows: Vec<(String, String)> = summary(&r).into_iter().map(|(e, s, _, _)| (e, s)).collect();
    assert_eq!(
        rows,
        [
            ("evt_4".into(), "pending".into()),
            ("evt_3".into(), "pending".into()),
            ("evt_2".into(), "dropped".into()),
            ("evt_1".into(), "dropped".into()),
            ("evt_0".into(), "pending".into()),
        ]
    );
    assert_eq!(
        r.body["dropped"],
        json!([{"endpoint": id, "url": dead.url, "count": 2}])
    );
    // Filters.
    let one = deliveries(&emu, &key, "?event=evt_3").await;
    assert_eq!(summary(&one).len(), 1);
    let limited = deliveries(&emu, &key, "?limit=2").await;
    assert_eq!(summary(&limited).len(), 2);
    let nobody = deliveries(&emu, &key, "?endpoint=we_nobody").await;
    assert_eq!(nobody.body["data"], json!([]));
    assert_eq!(nobody.body["dropped"], json!([]));

    // Reset forgets the world's deliveries.
    emu.post(&key, "/_emulator/reset", "").await;
    assert_eq!(deliveries(&emu, &key, "").await.body["data"], json!([]));
}

#[tokio::test]
async fn the_deliveries_route_checks_its_caller_and_parameters() {
    let emu = Emu::start().await;
    let no_key = emu
        .raw("GET", "/_emulator/webhook_deliveries", &[], "")
        .await;
    assert_eq!(no_key.status, 401);
    let key = emu.tenant("wh_route").await;
    let bad = emu.get(&key, "/_emulator/webhook_deliveries?limit=0").await;
    assert_eq!(bad.status, 400);
    let unknown = emu
        .get(&key, "/_emulator/webhook_deliveries?status=failed")
        .await;
    assert_eq!(unknown.status, 400);
    let empty = deliveries(&emu, &key, "").await;
    assert_json_snapshot!(
        "deliveries_refusals",
        json!({"no_key": no_key.body, "limit": bad.body, "unknown": unknown.body, "empty": empty.body})
    );
}

#[tokio::test]
async fn forwarding_sends_every_worlds_events_signed_with_the_fixed_secret() {
    let rx = Receiver::start(Mode::FailFirst(0)).await;
    let emulator = Emulator::builder()
        .seed(1)
        .forward_to(rx.url.clone())
        .forward_events(["customer.created", "invoice.paid"])
        .webhook_secret("whsec_local")
        .webhook_retry_schedule(RetrySchedule::parse("0.05").unwrap())
        .start()
        .await
        .unwrap();
    assert_eq!(emulator.webhook_secret(), Some("whsec_local"));
    let app = emulator.app();
    // Forwarding addresses are not endpoints: they do not count in pending_webhooks.
    assert_eq!(
        app.deliver(
            "sk_test_fw_a",
            &[
                event("evt_a", "customer.created"),
                event("evt_skip", "customer.updated")
            ]
        ),
        [0, 0]
    );
    app.deliver("sk_test_fw_b", &[event("evt_b", "invoice.paid")]);
    let hits = rx.wait_for(2).await;
    let mut ids: Vec<String> = hits.iter().map(Hit::event_id).collect();
    ids.sort();
    assert_eq!(ids, ["evt_a", "evt_b"]);
    for h in &hits {
        assert!(verify(h.header("stripe-signature"), &h.body, "whsec_local"));
    }
    // Each world lists its own forwarded deliveries, without an endpoint.
    let r = reqwest::Client::new()
        .get(format!("{}/_emulator/webhook_deliveries", emulator.uri()))
        .bearer_auth("sk_test_fw_a")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    assert_eq!(r["data"][0]["event"], "evt_a");
    assert_eq!(r["data"][0]["endpoint"], Value::Null);
    assert_eq!(r["data"][0]["url"], rx.url.as_str());

    // Without a secret one is made up.
    let made_up = Emulator::builder()
        .forward_to(rx.url.clone())
        .start()
        .await
        .unwrap();
    assert!(made_up.webhook_secret().unwrap().starts_with("whsec_"));
    // Without forwarding there is none; a bad address is refused at start.
    assert_eq!(Emulator::start().await.webhook_secret(), None);
    let refused = Emulator::builder().forward_to("ftp://x/y").start().await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    // So is an event type that is not Stripe's; one the emulator never emits is fine.
    let misspelt = Emulator::builder()
        .forward_to(rx.url.clone())
        .forward_events(["invoice.paid", "invoice.payed"])
        .start()
        .await;
    assert_eq!(
        misspelt.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let never_emitted = Emulator::builder()
        .forward_to(rx.url.clone())
        .forward_events(["issuing_card.created"])
        .start()
        .await;
    assert!(never_emitted.is_ok());
}

#[tokio::test]
async fn each_success_to_an_endpoint_is_reported_once_and_forwards_are_not() {
    let rx = Receiver::start(Mode::FailFirst(1)).await;
    let forwarded = Receiver::start(Mode::FailFirst(0)).await;
    let webhooks = credit_emulator::webhooks::Webhooks::new(WebhookConfig {
        retry: RetrySchedule::parse("0.05").unwrap(),
        forward_to: vec![forwarded.url.clone()],
        forward_secret: Some("whsec_fw".into()),
        ..WebhookConfig::default()
    });
    let reported: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = reported.clone();
    webhooks.on_delivered(move |world, events| {
        let mut log = log.lock().unwrap();
        for event in events {
            log.push((world.to_string(), event.to_string()));
        }
    });
    let target = credit_emulator::model::WebhookTarget {
        endpoint: 7,
        url: rx.url.clone(),
        secret: "whsec_ep".into(),
    };
    let counts = webhooks.enqueue(
        "world_a",
        &[
            event("evt_1", "invoice.paid"),
            event("evt_2", "invoice.paid"),
        ],
        vec![vec![target.clone()], vec![target]],
    );
    assert_eq!(counts, [1, 1], "forwarding addresses are not counted");
    // evt_1 fails once and succeeds on its retry; evt_2 follows.
    rx.wait_for(3).await;
    forwarded.wait_for(2).await;
    for _ in 0..600 {
        if reported.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (records, _) = webhooks.deliveries("world_a", None, None, 100);
    assert_eq!(records.len(), 4);
    assert_eq!(
        *reported.lock().unwrap(),
        [
            ("world_a".to_string(), "evt_1".to_string()),
            ("world_a".to_string(), "evt_2".to_string())
        ],
        "one report per successful endpoint delivery, none for failures or forwards"
    );
    webhooks.stop();
}

#[tokio::test]
async fn real_events_reach_an_endpoint_and_count_down_their_pending_webhooks() {
    let emu = emu_with(1000).await;
    let key = emu.tenant("wh_real_events").await;
    let rx = Receiver::start(Mode::FailFirst(1)).await;
    let (_, secret) = endpoint(
        &emu,
        &key,
        &rx.url,
        &["billing.credit_grant.created", "customer.created"],
    )
    .await;
    let cus = emu.customer(&key, "name=Ada").await;
    emu.grant(&key, &cus, 500, "").await;

    // The first attempt fails, the retry succeeds; the grant's event follows in order.
    let hits = rx.wait_for(3).await;
    let ids: Vec<String> = hits.iter().map(Hit::event_id).collect();
    assert_eq!(ids[0], ids[1], "the failed delivery is retried first");
    let types: Vec<String> = hits
        .iter()
        .map(|h| {
            serde_json::from_slice::<Value>(&h.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        types,
        [
            "customer.created",
            "customer.created",
            "billing.credit_grant.created"
        ]
    );
    for hit in &hits {
        assert!(verify(hit.header("stripe-signature"), &hit.body, &secret));
    }
    let grant_event: Value = serde_json::from_slice(&hits[2].body).unwrap();
    assert_eq!(grant_event["data"]["object"]["customer"], cus.as_str());

    // Once delivered, the event has nothing pending; events no endpoint takes never had any.
    settled(&emu, &key).await;
    let id = grant_event["id"].as_str().unwrap();
    let stored = emu.get(&key, &format!("/v1/events/{id}")).await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(stored.body["pending_webhooks"], 0);
    assert_eq!(stored.body["data"], grant_event["data"]);
    let txns = emu
        .get(
            &key,
            "/v1/events?type=billing.credit_balance_transaction.created",
        )
        .await;
    assert_eq!(txns.body["data"][0]["pending_webhooks"], 0);
    assert_eq!(rx.hits().len(), 3, "no other type was sent");
}

/// `pending_webhooks` counts the endpoints that have not acknowledged an event yet: one that
/// answered is counted off, one that hangs is not, and `delivery_success=false` lists the event.
#[tokio::test]
async fn an_event_counts_the_endpoints_that_have_not_acknowledged_it() {
    let emu = emu_with(1000).await;
    let key = emu.tenant("wh_pending_count").await;
    let dead = Receiver::start(Mode::Hang).await;
    let live = Receiver::start(Mode::FailFirst(0)).await;
    endpoint(&emu, &key, &dead.url, &["customer.created"]).await;
    endpoint(&emu, &key, &live.url, &["customer.created"]).await;
    emu.customer(&key, "name=Ada").await;
    let hit = live.wait_for(1).await[0].clone();
    let id = hit.event_id();
    assert_eq!(dead.wait_for(1).await[0].event_id(), id);
    // The copy each endpoint receives counts both: neither had acknowledged it as it was sent.
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["pending_webhooks"], 2, "{body}");

    // The live endpoint's answer is counted once it is back with the emulator.
    let mut pending = Value::Null;
    for _ in 0..600 {
        let event = emu.get(&key, &format!("/v1/events/{id}")).await;
        assert_eq!(event.status, 200, "{}", event.text);
        pending = event.body["pending_webhooks"].clone();
        if pending == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pending, 1, "two endpoints, one acknowledged");
    let waiting = emu.get(&key, "/v1/events?delivery_success=false").await;
    assert_eq!(waiting.status, 200, "{}", waiting.text);
    assert_eq!(waiting.body["data"][0]["id"], id.as_str());
    let done = emu.get(&key, "/v1/events?delivery_success=true").await;
    assert_eq!(done.body["data"], json!([]));
}

#[tokio::test]
async fn invoice_item_events_reach_an_endpoint_that_enables_them() {
    let emu = emu_with(1000).await;
    let key = emu.tenant("wh_invoice_items").await;
    let rx = Receiver::start(Mode::FailFirst(0)).await;
    let (_, secret) = endpoint(
        &emu,
        &key,
        &rx.url,
        &["invoiceitem.created", "invoiceitem.deleted"],
    )
    .await;
    let cus = emu.customer(&key, "name=Ada").await;
    let created = emu
        .post(
            &key,
            "/v1/invoiceitems",
            &format!("customer={cus}&amount=300&currency=usd&description=Setup"),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.id();
    let deleted = emu.delete(&key, &format!("/v1/invoiceitems/{id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);

    let hits = rx.wait_for(2).await;
    let events: Vec<Value> = hits
        .iter()
        .map(|h| serde_json::from_slice(&h.body).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["invoiceitem.created", "invoiceitem.deleted"]);
    for (event, request) in events.iter().zip([&created, &deleted]) {
        assert_eq!(event["data"]["object"], created.body, "the whole item");
        assert_eq!(
            event["request"]["id"],
            request.header("request-id").unwrap()
        );
    }
    for hit in &hits {
        assert!(verify(hit.header("stripe-signature"), &hit.body, &secret));
    }
    settled(&emu, &key).await;
    assert_eq!(rx.hits().len(), 2, "no other type was sent");
}

#[tokio::test]
async fn an_endpoint_with_its_own_api_version_receives_events_rendered_at_it() {
    let emu = emu_with(1000).await;
    let key = emu.tenant("wh_endpoint_version").await;
    // Before 2025-02-24.acacia a grant's price scope is not shown; the world's version shows it.
    let old = Receiver::start(Mode::FailFirst(0)).await;
    let r = emu
        .post(
            &key,
            ENDPOINTS,
            &format!(
                "url={}&enabled_events[]=billing.credit_grant.created&api_version=2024-12-18.acacia",
                old.url
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let old_secret = r.body["secret"].as_str().unwrap().to_string();
    let new = Receiver::start(Mode::FailFirst(0)).await;
    let (_, new_secret) = endpoint(&emu, &key, &new.url, &["billing.credit_grant.created"]).await;

    let cus = emu.customer(&key, "name=Ada").await;
    let price = emu.metered_price(&key, "calls").await;
    emu.grant(
        &key,
        &cus,
        500,
        &format!("applicability_config[scope][prices][0][id]={price}"),
    )
    .await;
    let (old_hit, new_hit) = (
        old.wait_for(1).await.remove(0),
        new.wait_for(1).await.remove(0),
    );
    assert!(verify(
        old_hit.header("stripe-signature"),
        &old_hit.body,
        &old_secret
    ));
    assert!(verify(
        new_hit.header("stripe-signature"),
        &new_hit.body,
        &new_secret
    ));
    let old_event: Value = serde_json::from_slice(&old_hit.body).unwrap();
    let new_event: Value = serde_json::from_slice(&new_hit.body).unwrap();
    assert_eq!(
        old_event["id"], new_event["id"],
        "one event, two renderings"
    );
    assert_eq!(old_event["api_version"], "2024-12-18.acacia");
    assert_ne!(new_event["api_version"], "2024-12-18.acacia");
    let scope = |e: &Value| e["data"]["object"]["applicability_config"]["scope"].clone();
    assert_eq!(scope(&old_event), json!({}));
    assert_eq!(scope(&new_event), json!({"prices": [{"id": price}]}));

    // The event as the API lists it is the world's rendering.
    settled(&emu, &key).await;
    let id = new_event["id"].as_str().unwrap();
    let stored = emu.get(&key, &format!("/v1/events/{id}")).await;
    assert_eq!(stored.body["data"], new_event["data"]);
    assert_eq!(stored.body["api_version"], new_event["api_version"]);
}
