//! Property test of the server itself over a real socket: request lines, headers, framing and bodies
//! assembled from hostile pieces. Whatever arrives, the server answers with a status (never a 5xx
//! of its own making) or closes the connection, and keeps serving. A long run:
//!
//! ```sh
//! PROPTEST_CASES=20000 cargo test --release --test suite fuzz_http::
//! ```

use crate::support;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use credit_emulator::{start, Config, Running};
use proptest::prelude::*;
use proptest::test_runner::{contextualize_config, Config as PropConfig};
use support::robustness::{exchange, healthy};

/// One emulator for every case, on its own runtime.
fn server() -> SocketAddr {
    static SERVER: OnceLock<(tokio::runtime::Runtime, Running)> = OnceLock::new();
    let (_, running) = SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt
            .block_on(start(
                "127.0.0.1:0".parse().unwrap(),
                Config {
                    seed: Some(3),
                    header_read_timeout: Duration::from_secs(2),
                    body_read_timeout: Duration::from_secs(2),
                    ..Config::default()
                },
            ))
            .unwrap();
        (rt, running)
    });
    running.addr
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn piece(options: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(options).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(prop::sample::select(b"/%?#[]=&+:; a0Zz\x00\x7f\x80\xc3\xff\t".to_vec()), 0..24),
    ]
}

const METHODS: &[&str] = &[
    "GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "get", "CONNECT", "X",
];
const TARGETS: &[&str] = &[
    "/v1/customers",
    "/v1/billing/credit_grants",
    "/v1/billing/credit_grants/credgr_test_x/void",
    "/v1/test_helpers/test_clocks",
    "/v1/creditgrants",
    "/_emulator/clock",
    "/_emulator/health",
    "*",
    "http://x/v1/customers",
    "/v1/customers?limit=%zz",
    "/v1/customers?expand[]=x&expand[0]=y",
];
const VERSIONS: &[&str] = &["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""];
const NAMES: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "transfer-encoding",
    "idempotency-key",
    "x-api-key",
    "expect",
    "connection",
    "stripe-version",
    "x-emulator-panic",
];
const VALUES: &[&str] = &[
    "Bearer sk_test_fuzzhttp",
    "Bearer sk_live_x",
    "Basic !!",
    "application/x-www-form-urlencoded",
    "application/json",
    "chunked",
    "gzip, chunked",
    "0",
    "5",
    "-1",
    "99999999999999999999",
    "100-continue",
    "close",
    "keep-alive",
    "sk_test_fuzzhttp",
    "",
    " ",
];

fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        piece(METHODS),
        piece(TARGETS),
        piece(VERSIONS),
        prop::collection::vec((piece(NAMES), piece(VALUES)), 0..8),
        prop_oneof![
            Just(Vec::new()),
            Just(b"email=a%40b.co&metadata[a]=b".to_vec()),
            Just(b"5\r\nab=cd\r\n0\r\n\r\n".to_vec()),
            Just(b"{\"name\":\"x\"}".to_vec()),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
    )
        .prop_map(|(method, target, version, headers, body)| {
            let mut out = method;
            out.push(b' ');
            out.extend(target);
            out.push(b' ');
            out.extend(version);
            out.extend(b"\r\n");
            for (k, v) in headers {
                out.extend(k);
                out.extend(b": ");
                out.extend(v);
                out.extend(b"\r\n");
            }
            out.extend(b"\r\n");
            out.extend(body);
            out
        })
}

proptest! {
    #![proptest_config(contextualize_config(PropConfig { cases: 96, ..PropConfig::default() }))]

    #[test]
    fn any_request_is_answered_or_closed_and_the_server_keeps_serving(bytes in request()) {
        let addr = server();
        let answer = block_on(exchange(addr, bytes.clone(), true));
        if let Some(raw) = answer {
            // 505 is hyper's answer to an HTTP version it does not speak.
            prop_assert!(raw.status < 500 || raw.status == 505, "{} for {:?}", raw.status, String::from_utf8_lossy(&bytes));
            if !raw.body.is_empty() && raw.body != b"404 page not found" {
                prop_assert!(raw.json().is_some(), "a body that is not JSON: {:?}", raw.text());
                prop_assert!(raw.header("request-id").is_some_and(|v| v.starts_with("req_")));
            }
        }
        prop_assert!(block_on(healthy(addr)), "unhealthy after {:?}", String::from_utf8_lossy(&bytes));
    }
}
