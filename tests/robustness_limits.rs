//! Every request limit, checked over a real socket: what a client sees at the limit, just over it,
//! and far over it, in both APIs' envelopes; slow and idle clients; the connection cap; and the CLI
//! flags that set them.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use credit_emulator::form::FormLimits;
use credit_emulator::Config;
use serde_json::Value;
use support::robustness::{self as rs, exchange, RawRequest};
use support::Emu;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
/// How long a test waits for something that must happen long before (a guard against hangs, not a
/// measurement).
const GUARD: Duration = Duration::from_secs(30);

async fn emu_with(config: Config) -> Emu {
    Emu::with_config(Config {
        seed: Some(42),
        ..config
    })
    .await
}

fn form_post(path: &str, key: &str, body: Vec<u8>) -> RawRequest {
    RawRequest::new("POST", path)
        .header("authorization", &format!("Bearer {key}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// The whole answer as a snapshot-friendly value: status, `Connection`, body.
fn summary(raw: &rs::Raw) -> Value {
    serde_json::json!({
        "status": raw.status,
        "connection": raw.header("connection"),
        "content_type": raw.header("content-type"),
        "body": raw.json().unwrap_or_else(|| Value::String(raw.text())),
    })
}

/// A connection to `addr` after one complete exchange (a health check), kept alive and idle.
async fn kept_alive(addr: std::net::SocketAddr) -> TcpStream {
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /_emulator/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 15];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK");
    idle
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(GUARD, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_holds_at_one_mib_in_both_envelopes() {
    let emu = Emu::start().await;
    let addr = emu.running.addr;
    let key = rs::tenant(&emu, "limits_body").await;
    let cus = emu.customer(&key, "").await;
    let path = format!("/v1/customers/{cus}");

    // Exactly 1 MiB is read and judged on its content.
    let mut body = b"name=".to_vec();
    body.resize(MIB, b'n');
    let at = exchange(addr, form_post(&path, &key, body.clone()).bytes(), false)
        .await
        .unwrap();
    assert_eq!(at.status, 400, "{}", at.text());
    assert_eq!(at.json().unwrap()["error"]["param"], "name");

    // One byte more is a 413, with Content-Length and with chunked framing alike.
    body.push(b'n');
    let over = exchange(addr, form_post(&path, &key, body.clone()).bytes(), false)
        .await
        .unwrap();
    let mut chunked = form_post(&path, &key, body.clone());
    chunked.chunked = Some(16 * 1024);
    let over_chunked = exchange(addr, chunked.bytes(), false).await.unwrap();
    let native = RawRequest::new("POST", "/v1/creditgrants")
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body(body.clone());
    let over_native = exchange(addr, native.bytes(), false).await.unwrap();
    let admin = form_post("/_emulator/clock", &key, body.clone());
    let over_admin = exchange(addr, admin.bytes(), false).await.unwrap();
    assert_eq!(summary(&over), summary(&over_chunked));
    assert_eq!(summary(&over), summary(&over_admin));
    insta::assert_json_snapshot!("body_413_stripe", summary(&over));
    insta::assert_json_snapshot!("body_413_native", summary(&over_native));

    // Nothing was changed by any of it.
    let r = emu.get(&key, &path).await;
    assert_eq!(r.body["name"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_client_sees_the_413_while_still_sending() {
    // reqwest writes the whole body before it reads; the server reads on (and discards) so that the
    // answer is not lost to a reset.
    let emu = Emu::start().await;
    let key = rs::tenant(&emu, "limits_reqwest").await;
    for size in [MIB + 1, 5 * MIB] {
        let r = emu
            .client
            .post(emu.url("/v1/customers"))
            .bearer_auth(&key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![b'a'; size])
            .send()
            .await
            .expect("the client gets an answer, not a reset");
        assert_eq!(r.status().as_u16(), 413);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_gets_its_413_without_sending_the_body() {
    let emu = Emu::start().await;
    let mut s = TcpStream::connect(emu.running.addr).await.unwrap();
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk_test_expect\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        2 * MIB
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let raw = rs::parse_response(&read_until_closed(&mut s).await).unwrap();
    assert_eq!(raw.status, 413);
    assert_eq!(raw.header("connection"), Some("close"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bracket_depth_and_parameter_count_are_configurable() {
    let emu = emu_with(Config {
        form: FormLimits {
            max_params: 5,
            max_depth: 2,
        },
        ..Config::default()
    })
    .await;
    let key = rs::tenant(&emu, "limits_form").await;
    // Five parameters are fine, a sixth is not, whether in the query or the body.
    let ok = emu
        .get(
            &key,
            "/v1/customers?limit=1&limit=2&limit=3&limit=4&limit=5",
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let many = emu
        .get(
            &key,
            "/v1/customers?limit=1&limit=2&limit=3&limit=4&limit=5&limit=6",
        )
        .await;
    let split = emu
        .stripe(
            "GET",
            &key,
            "/v1/customers?limit=1&limit=2&limit=3",
            "limit=4&limit=5&limit=6",
        )
        .await;
    // Two levels of brackets are parsed (and refused by the schema); three are too deep.
    let two = emu.post(&key, "/v1/customers", "metadata[a][b]=1").await;
    let three = emu.post(&key, "/v1/customers", "metadata[a][b][c]=1").await;
    assert_eq!(many.body, split.body);
    insta::assert_json_snapshot!(
        "form_limits",
        serde_json::json!({
            "seven_params": [many.status, many.body],
            "two_levels": [two.status, two.body],
            "three_levels": [three.status, three.body],
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_limit_answers_431_in_the_envelope_then_at_the_http_layer() {
    let emu = emu_with(Config {
        max_header_bytes: 8192,
        ..Config::default()
    })
    .await;
    let addr = emu.running.addr;
    let key = rs::tenant(&emu, "limits_head").await;
    let get = |pad: usize, native: bool| {
        let r = if native {
            RawRequest::new("GET", "/v1/creditgrants").header("x-api-key", &key)
        } else {
            RawRequest::new("GET", "/v1/customers")
                .header("authorization", &format!("Bearer {key}"))
        };
        r.header("x-pad", &"p".repeat(pad)).bytes()
    };
    let within = exchange(addr, get(7000, false), false).await.unwrap();
    assert_eq!(within.status, 200);
    let over = exchange(addr, get(8200, false), false).await.unwrap();
    let over_native = exchange(addr, get(8200, true), false).await.unwrap();
    let far = exchange(addr, get(40_000, false), false).await.unwrap();
    let many =
        RawRequest::new("GET", "/v1/customers").header("authorization", &format!("Bearer {key}"));
    let many = (0..150).fold(many, |r, i| r.header(&format!("x-h{i}"), "v"));
    let many = exchange(addr, many.bytes(), false).await.unwrap();
    insta::assert_json_snapshot!(
        "head_431",
        serde_json::json!({
            "stripe": summary(&over),
            "native": summary(&over_native),
            "far_over": summary(&far),
            "too_many_lines": summary(&many),
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_by_the_header_read_timeout() {
    let emu = emu_with(Config {
        header_read_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let addr = emu.running.addr;

    // Connected and silent.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Half a request head, then nothing.
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET /v1/customers HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // One header line at a time, forever (slowloris): the deadline covers the whole head.
    let trickle = TcpStream::connect(addr).await.unwrap();
    let (mut trickle_rd, mut trickle_wr) = trickle.into_split();
    let trickler = tokio::spawn(async move {
        let _ = trickle_wr
            .write_all(b"GET /v1/customers HTTP/1.1\r\n")
            .await;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if trickle_wr.write_all(b"x-slow: 1\r\n").await.is_err() {
                return;
            }
        }
    });
    // Kept alive after a complete exchange, then idle.
    let mut idle = kept_alive(addr).await;

    // Others are served meanwhile.
    assert!(rs::healthy(addr).await);

    assert!(read_until_closed(&mut silent).await.is_empty());
    assert!(read_until_closed(&mut partial).await.is_empty());
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(GUARD, trickle_rd.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the trickling client was not cut off");
    assert!(rest.is_empty(), "no answer for an unfinished head");
    let _ = read_until_closed(&mut idle).await;
    trickler.abort();
    assert!(rs::healthy(addr).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_a_408_in_its_envelope() {
    let emu = emu_with(Config {
        body_read_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let addr = emu.running.addr;
    let key = rs::tenant(&emu, "limits_stall").await;
    let mut answers = Vec::new();
    for (path, auth) in [
        ("/v1/customers", format!("authorization: Bearer {key}")),
        ("/v1/creditgrants", format!("x-api-key: {key}")),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\n{auth}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nemail=a"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        answers.push(summary(
            &rs::parse_response(&read_until_closed(&mut s).await).unwrap(),
        ));
    }
    insta::assert_json_snapshot!("body_408", answers);
    let list = emu.get(&key, "/v1/customers").await;
    assert_eq!(list.body["data"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_still_gets_its_answer() {
    let emu = Emu::start().await;
    let key = rs::tenant(&emu, "limits_half").await;
    let req =
        RawRequest::new("GET", "/v1/customers").header("authorization", &format!("Bearer {key}"));
    let raw = exchange(emu.running.addr, req.bytes(), true).await.unwrap();
    assert_eq!(raw.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_to_be_accepted() {
    let emu = emu_with(Config {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(120),
        ..Config::default()
    })
    .await;
    let addr = emu.running.addr;
    let health = b"GET /_emulator/health HTTP/1.1\r\nhost: x\r\n\r\n";
    async fn round_trip(s: &mut TcpStream, req: &[u8]) {
        s.write_all(req).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n")
            || rs::parse_response(&got).is_none_or(|r| r.body.is_empty())
        {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
    }
    // Two kept-alive connections hold both places.
    let mut a = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut a, health).await;
    let mut b = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut b, health).await;
    // A third client's request sits in the accept queue...
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /_emulator/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..5 {
        round_trip(&mut a, health).await;
        round_trip(&mut b, health).await;
    }
    let mut probe = [0u8; 1];
    assert!(
        matches!(c.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a third connection was served while two held the cap"
    );
    // ...and is served as soon as a place frees up.
    drop(a);
    let answer = read_until_closed(&mut c).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// The real binary, started with every limit flag set low.
struct Binary {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Binary {
    fn start(args: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
            .args(["--port", "0", "--seed", "1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Binary { child, addr }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_flags_set_every_limit() {
    let bin = Binary::start(&[
        "--max-body-bytes",
        "64",
        "--max-params",
        "3",
        "--max-depth",
        "2",
        "--max-header-bytes",
        "8192",
        "--body-read-timeout",
        "1",
        "--header-read-timeout",
        "1",
        "--max-connections",
        "8",
    ]);
    let addr = bin.addr;
    let key = "sk_test_cli";
    let auth = format!("Bearer {key}");
    let msg = |raw: &rs::Raw| {
        raw.json().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let send = |req: RawRequest| exchange(addr, req.bytes(), false);

    let body = send(form_post("/v1/customers", key, vec![b'a'; 65]))
        .await
        .unwrap();
    assert_eq!(
        (body.status, msg(&body).contains("at most 64 bytes")),
        (413, true)
    );
    let params = send(
        RawRequest::new("GET", "/v1/customers?a=1&b=2&c=3&d=4").header("authorization", &auth),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            params.status,
            msg(&params).contains("at most 3 per request")
        ),
        (400, true)
    );
    let depth = send(form_post(
        "/v1/customers",
        key,
        b"metadata[a][b][c]=1".to_vec(),
    ))
    .await
    .unwrap();
    assert_eq!(
        (depth.status, msg(&depth).contains("at most 2 levels")),
        (400, true)
    );
    let head = send(
        RawRequest::new("GET", "/v1/customers")
            .header("authorization", &auth)
            .header("x-pad", &"p".repeat(8200)),
    )
    .await
    .unwrap();
    assert_eq!(head.status, 431);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("POST /v1/customers HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ncontent-length: 10\r\n\r\nab").as_bytes(),
    )
    .await
    .unwrap();
    let stalled = rs::parse_response(&read_until_closed(&mut s).await).unwrap();
    assert_eq!(stalled.status, 408);
    assert!(
        msg(&stalled).contains("within 1 second."),
        "{}",
        msg(&stalled)
    );
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
    // The panic trigger is off unless asked for.
    let quiet = send(
        RawRequest::new("GET", "/v1/customers")
            .header("authorization", &auth)
            .header("x-emulator-panic", "1"),
    )
    .await
    .unwrap();
    assert_eq!(quiet.status, 200);
}

#[test]
fn the_cli_refuses_limits_that_would_be_unsafe_and_documents_the_rest() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_credit-emulator"))
            .args(args)
            .output()
            .expect("the binary runs")
    };
    for bad in [
        &["--max-depth", "1000"][..],
        &["--max-depth", "0"],
        &["--max-json-depth", "129"],
        &["--max-params", "0"],
        &["--header-read-timeout", "0"],
        &["--body-read-timeout", "0"],
    ] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?} was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid value"),
            "{bad:?}"
        );
    }
    let help = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    for flag in [
        "--max-body-bytes",
        "--max-params",
        "--max-depth",
        "--max-json-depth",
        "--header-read-timeout",
        "--body-read-timeout",
        "--max-connections",
        "--max-header-bytes",
    ] {
        assert!(help.contains(flag), "--help does not list {flag}");
    }
    assert!(
        !help.contains("panic"),
        "the panic trigger is not advertised"
    );
}

/// A server whose future is dropped (not shut down) closes its idle keep-alive connections too,
/// long before their head read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_server_closes_its_idle_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = credit_emulator::app::App::new(Config {
        header_read_timeout: Duration::from_secs(120),
        ..Config::default()
    });
    let server = tokio::spawn(credit_emulator::serve(
        listener,
        app,
        std::future::pending::<()>(),
    ));
    let mut idle = kept_alive(addr).await;
    server.abort();
    let _ = server.await;
    // Well within the 120 s head timeout: `read_until_closed` gives up after 30.
    let _ = read_until_closed(&mut idle).await;
}
