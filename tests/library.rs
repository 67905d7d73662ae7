//! The emulator as a Rust library: the handle's start, reset and clock methods, each checked over
//! real HTTP, the builder's settings, and how the server stops when its handle goes.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use credit_emulator::{Emulator, EmulatorError};
use insta::assert_json_snapshot;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 2025-06-15T00:00:00Z: where the tests pin their tenants' clocks.
const T0: i64 = 1_749_945_600;
const HOUR: i64 = 3_600;

/// Longest a test waits for the server to do something before calling it a hang (a failure, never
/// a measure of speed).
const GUARD: Duration = Duration::from_secs(60);

const SUMMARY: &str = "/v1/billing/credit_balance_summary?filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered&customer=";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("a valid instant")
}

/// One request with Stripe's authentication and a form body; status and JSON body together.
async fn call(emu: &Emulator, method: &str, key: &str, path: &str, form: &str) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", emu.uri()))
        .bearer_auth(key);
    if !form.is_empty() {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string());
    }
    let response = request.send().await.expect("the emulator answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    json!({"status": status, "body": body})
}

/// Creates a customer and returns its id.
async fn customer(emu: &Emulator, key: &str) -> String {
    let created = call(emu, "POST", key, "/v1/customers", "email=ada%40example.com").await;
    assert_eq!(created["status"], 200, "{created}");
    created["body"]["id"].as_str().expect("an id").to_string()
}

/// Sends a request on `conn` and reads one answer, leaving the connection open.
async fn keep_alive_health(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET /_emulator/health HTTP/1.1\r\nHost: emulator\r\n\r\n")
        .await
        .expect("the request is sent");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // The health body is one JSON object: the answer is whole once its closing brace is in.
    while !answer.ends_with(b"}") {
        let n = conn.read(&mut chunk).await.expect("the answer is read");
        assert_ne!(n, 0, "the connection closed before the answer was whole");
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether the server has closed `conn`: a read sees the end of the stream (or a reset).
async fn closed_by_server(conn: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 64];
    let read = tokio::time::timeout(GUARD, conn.read(&mut chunk))
        .await
        .expect("the server closes the connection");
    matches!(read, Ok(0) | Err(_))
}

/// Whether nothing answers at `addr` any more. The connection is refused, or, while the kernel has
/// not yet let go of a listening socket the server has closed, it is taken into that socket's
/// queue and reset when the socket goes: never answered.
async fn not_served(addr: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect(addr).await else {
        return true;
    };
    let _ = conn
        .write_all(b"GET /_emulator/health HTTP/1.1\r\nHost: emulator\r\n\r\n")
        .await;
    closed_by_server(&mut conn).await
}

#[tokio::test]
async fn starts_on_a_free_loopback_port() {
    let emu = Emulator::start().await;
    let addr = emu.addr();
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(addr.port(), 0);
    assert_eq!(emu.uri(), format!("http://127.0.0.1:{}", addr.port()));
    let health = call(&emu, "GET", "sk_test_any", "/_emulator/health", "").await;
    assert_eq!(health["status"], 200);
    assert_eq!(health["body"]["status"], "ok");
}

#[tokio::test]
async fn moving_the_clock_makes_a_future_grant_effective() {
    let emu = Emulator::builder().seed(42).start().await.unwrap();
    let key = "sk_test_library_clock";
    assert_eq!(emu.set_clock(key, T0), Ok(at(T0)));
    assert_json_snapshot!(
        "clock_set_from_rust",
        call(&emu, "GET", key, "/_emulator/clock", "").await
    );

    let cus = customer(&emu, key).await;
    let grant = call(
        &emu,
        "POST",
        key,
        "/v1/billing/credit_grants",
        &format!(
            "customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1000\
             &applicability_config[scope][price_type]=metered&effective_at={}",
            T0 + HOUR
        ),
    )
    .await;
    assert_eq!(grant["status"], 200, "{grant}");
    let before = call(&emu, "GET", key, &format!("{SUMMARY}{cus}"), "").await;
    assert_json_snapshot!("summary_before_advance", before);

    assert_eq!(
        emu.advance(key, Duration::from_secs(HOUR as u64)),
        Ok(at(T0 + HOUR))
    );
    assert_eq!(emu.now(key), Ok(at(T0 + HOUR)));
    let after = call(&emu, "GET", key, &format!("{SUMMARY}{cus}"), "").await;
    assert_json_snapshot!("summary_after_advance", after);
    let transactions = call(
        &emu,
        "GET",
        key,
        &format!("/v1/billing/credit_balance_transactions?customer={cus}"),
        "",
    )
    .await;
    assert_json_snapshot!("transactions_after_advance", transactions);

    // A DateTime, with its fraction of a second, moves it as well; Stripe renders whole seconds.
    let later = at(T0 + 2 * HOUR) + chrono::Duration::milliseconds(250);
    assert_eq!(emu.set_clock(key, later), Ok(later));
    let clock = call(&emu, "GET", key, "/_emulator/clock", "").await;
    assert_eq!(clock["body"]["now"], T0 + 2 * HOUR);
    assert_eq!(clock["body"]["now_rfc3339"], "2025-06-15T02:00:00.25Z");
    // Another tenant's clock is not this one.
    assert_ne!(emu.now("sk_test_library_other"), Ok(later));
}

#[tokio::test]
async fn clock_refusals_are_the_admin_routes_refusals() {
    let emu = Emulator::builder().seed(42).start().await.unwrap();
    let key = "sk_test_library_refusals";
    emu.set_clock(key, T0).unwrap();
    customer(&emu, key).await;

    let backwards = emu.set_clock(key, T0 - HOUR).unwrap_err();
    assert_eq!(
        backwards,
        EmulatorError::Backwards {
            now: at(T0),
            to: at(T0 - HOUR)
        }
    );
    let out_of_range = emu.set_clock(key, i64::MAX).unwrap_err();
    assert_eq!(out_of_range, EmulatorError::OutOfRange);
    assert_eq!(
        emu.advance(key, Duration::from_secs(u64::MAX)),
        Err(EmulatorError::OutOfRange)
    );
    assert_json_snapshot!(
        "clock_refusals",
        json!({
            "backwards": {
                "rust": backwards.to_string(),
                "http": call(&emu, "POST", key, "/_emulator/clock", &format!("frozen_time={}", T0 - HOUR)).await,
            },
            "out_of_range": {
                "rust": out_of_range.to_string(),
                "http": call(&emu, "POST", key, "/_emulator/clock", &format!("frozen_time={}", i64::MAX)).await,
            },
        })
    );
    // Nothing moved.
    assert_eq!(emu.now(key), Ok(at(T0)));

    // Frozen later than real time, the clock cannot return to it.
    let future = at(4_102_444_800);
    emu.set_clock(key, future).unwrap();
    let refused = emu.resume_real_time(key).unwrap_err();
    assert!(
        matches!(refused, EmulatorError::AheadOfRealTime { now, .. } if now == future),
        "{refused:?}"
    );
    let http = call(&emu, "POST", key, "/_emulator/clock", "real_time=true").await;
    assert_eq!(http["status"], 400);
    assert_eq!(http["body"]["error"]["param"], "real_time");

    // A key no API accepts is refused with the API's own message, and creates no tenant.
    let tenants = emu.app().store.tenant_count();
    for bad in ["sk_live_123", "pk_test_123", "sk_test_", "not a key"] {
        let err = emu.now(bad).unwrap_err();
        let http = call(&emu, "GET", bad, "/_emulator/clock", "").await;
        assert_eq!(http["status"], 401, "{bad}");
        assert_eq!(
            EmulatorError::InvalidKey(http["body"]["error"]["message"].as_str().unwrap().into()),
            err,
            "{bad}"
        );
        assert_eq!(emu.set_clock(bad, T0), Err(err.clone()));
        assert_eq!(emu.reset(bad), Err(err));
    }
    assert_eq!(emu.app().store.tenant_count(), tenants);
}

#[tokio::test]
async fn reset_empties_one_world_only() {
    let emu = Emulator::builder().seed(42).start().await.unwrap();
    let (gone, kept) = ("sk_test_library_gone", "sk_test_library_kept");
    for key in [gone, kept] {
        emu.set_clock(key, T0).unwrap();
        customer(&emu, key).await;
    }
    assert_eq!(emu.reset(gone), Ok(true));
    assert_eq!(emu.reset(gone), Ok(false));
    let listed = call(&emu, "GET", gone, "/v1/customers", "").await;
    assert_eq!(listed["body"]["data"], json!([]), "{listed}");
    let listed = call(&emu, "GET", kept, "/v1/customers", "").await;
    assert_eq!(listed["body"]["data"].as_array().map(Vec::len), Some(1));
    // The emptied world starts over on real time, so it may be pinned to the past again.
    assert!(emu.now(gone).unwrap() > at(T0));
    assert_eq!(emu.set_clock(gone, T0 - HOUR), Ok(at(T0 - HOUR)));
}

#[tokio::test]
async fn shutdown_closes_keep_alive_connections_and_the_port() {
    let emu = Emulator::start().await;
    let addr = emu.addr();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert!(keep_alive_health(&mut conn)
        .await
        .starts_with("HTTP/1.1 200"));
    let pooled = reqwest::Client::new();
    let health = format!("{}/_emulator/health", emu.uri());
    assert_eq!(pooled.get(&health).send().await.unwrap().status(), 200);

    emu.shutdown().await;

    assert!(closed_by_server(&mut conn).await);
    assert!(not_served(addr).await);
    assert!(pooled.get(&health).send().await.is_err());
}

#[tokio::test]
async fn a_dropped_handle_stops_serving() {
    let emu = Emulator::start().await;
    let addr = emu.addr();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert!(keep_alive_health(&mut conn)
        .await
        .starts_with("HTTP/1.1 200"));

    drop(emu);

    assert!(closed_by_server(&mut conn).await);
    assert!(not_served(addr).await);
}

#[tokio::test]
async fn a_request_in_flight_is_answered_during_shutdown() {
    let emu = Emulator::builder().seed(42).start().await.unwrap();
    let key = "sk_test_library_in_flight";
    emu.set_clock(key, T0).unwrap();
    let addr = emu.addr();
    let body = "email=ada%40example.com&name=Ada";
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        format!(
            "POST /v1/customers HTTP/1.1\r\nHost: emulator\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // `100 Continue` comes once the server is reading the body: the request is in flight.
    let mut chunk = [0u8; 64];
    let n = conn.read(&mut chunk).await.unwrap();
    assert!(chunk[..n].starts_with(b"HTTP/1.1 100 Continue"), "{n}");

    let stopping = tokio::spawn(emu.shutdown());
    // Once the port refuses connections, shutdown has begun.
    tokio::time::timeout(GUARD, async {
        while let Ok(other) = TcpStream::connect(addr).await {
            drop(other);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the port closes");

    conn.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(GUARD, conn.read_to_end(&mut answer))
        .await
        .expect("the answer comes and the connection closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let (head, json) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let created: Value = serde_json::from_str(json).unwrap();
    assert_json_snapshot!("created_during_shutdown", created);
    tokio::time::timeout(GUARD, stopping)
        .await
        .expect("shutdown ends once the answer is sent")
        .unwrap();
}

#[tokio::test]
async fn the_seed_makes_ids_deterministic() {
    async fn first_customer(emu: Emulator) -> String {
        customer(&emu, "sk_test_library_seed").await
    }
    let seeded = first_customer(Emulator::builder().seed(7).start().await.unwrap()).await;
    let again = first_customer(Emulator::builder().seed(7).start().await.unwrap()).await;
    let other = first_customer(Emulator::builder().seed(8).start().await.unwrap()).await;
    let unseeded = first_customer(Emulator::start().await).await;
    let unseeded_again = first_customer(Emulator::start().await).await;
    assert_eq!(seeded, again);
    assert_json_snapshot!("seeded_customer_id", seeded);
    assert_ne!(seeded, other);
    assert_ne!(unseeded, unseeded_again);
}

#[tokio::test]
async fn the_builder_binds_where_it_is_told() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bound = std_listener.local_addr().unwrap();
    let emu = Emulator::builder()
        .port(1) // a listener given beforehand wins
        .listener(std_listener)
        .start()
        .await
        .unwrap();
    assert_eq!(emu.addr(), bound);
    assert_eq!(
        call(&emu, "GET", "", "/_emulator/health", "").await["status"],
        200
    );

    let tokio_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound = tokio_listener.local_addr().unwrap();
    let emu = Emulator::builder()
        .listener(tokio_listener)
        .start()
        .await
        .unwrap();
    assert_eq!(emu.addr(), bound);
    assert_eq!(
        call(&emu, "GET", "", "/_emulator/health", "").await["status"],
        200
    );

    let emu = Emulator::builder()
        .host(Ipv4Addr::LOCALHOST)
        .port(0)
        .start()
        .await
        .unwrap();
    assert_eq!(emu.addr().ip(), Ipv4Addr::LOCALHOST);
    assert_eq!(
        call(&emu, "GET", "", "/_emulator/health", "").await["status"],
        200
    );

    // A port in use is the system's error, not a panic.
    let taken = emu.addr();
    let refused = Emulator::builder().addr(taken).start().await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::AddrInUse);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    assert!(Emulator::builder().addr(any).start().await.is_ok());
}

#[tokio::test]
async fn the_builders_limits_apply_and_are_checked() {
    let emu = Emulator::builder()
        .seed(42)
        .max_body_bytes(64)
        .max_params(3)
        .start()
        .await
        .unwrap();
    let key = "sk_test_library_limits";
    let too_large = call(&emu, "POST", key, "/v1/customers", &"a".repeat(65)).await;
    let too_many = call(&emu, "POST", key, "/v1/customers", "a=1&b=2&c=3&d=4").await;
    assert_json_snapshot!(
        "limits",
        json!({"max_body_bytes": too_large, "max_params": too_many})
    );

    let mut refusals = Vec::new();
    for (name, builder) in [
        ("max_params 0", Emulator::builder().max_params(0)),
        ("max_depth 65", Emulator::builder().max_depth(65)),
        ("max_json_depth 0", Emulator::builder().max_json_depth(0)),
        (
            "max_json_depth 129",
            Emulator::builder().max_json_depth(129),
        ),
        ("max_connections 0", Emulator::builder().max_connections(0)),
        (
            "header_read_timeout 0",
            Emulator::builder().header_read_timeout(Duration::ZERO),
        ),
        (
            "body_read_timeout 0",
            Emulator::builder().body_read_timeout(Duration::ZERO),
        ),
    ] {
        let err = builder.start().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{name}");
        refusals.push(json!({"builder": name, "error": err.to_string()}));
    }
    assert_json_snapshot!("invalid_limits", refusals);
}

#[tokio::test]
async fn the_start_function_is_the_same_server() {
    let config = credit_emulator::Config {
        seed: Some(42),
        ..credit_emulator::Config::default()
    };
    let running = credit_emulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    assert_eq!(running.url(), running.emulator().uri());
    assert_eq!(running.addr, running.emulator().addr());
    let key = "sk_test_library_running";
    running.emulator().set_clock(key, T0).unwrap();
    let clock = reqwest::Client::new()
        .get(format!("{}/_emulator/clock", running.url()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(clock["now"], T0);
    let addr = running.addr;
    running.shutdown().await;
    assert!(not_served(addr).await);
}
