//! A panic inside a request costs that request and nothing else: the server keeps serving, the tenant
//! it held locked stays usable and unchanged, and an idempotency key it had claimed is released. The
//! panic is triggered on purpose with `X-Emulator-Panic`, which only works when
//! `Config::panic_trigger` (hidden CLI flag `--enable-panic-trigger`) is on.

use crate::support;

use credit_emulator::Config;
use serde_json::Value;
use support::robustness::{self as rs, exchange, RawRequest};
use support::Emu;

async fn panicky() -> Emu {
    Emu::with_config(Config {
        seed: Some(42),
        panic_trigger: true,
        ..Config::default()
    })
    .await
}

const GRANT: &str = "amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=250&applicability_config[scope][price_type]=metered";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_costs_one_request_and_nothing_else() {
    let emu = panicky().await;
    let key = rs::tenant(&emu, "panic_one").await;
    let cus = emu.customer(&key, "email=p@example.com").await;
    let grant = emu.grant(&key, &cus, 1000, "").await;
    let form = format!("customer={cus}&{GRANT}");
    let list = "/v1/billing/credit_grants?limit=100";
    let before = emu.get(&key, list).await.body;

    let boom = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/billing/credit_grants",
            &form,
            &[("x-emulator-panic", "1"), ("idempotency-key", "retry-me")],
        )
        .await;
    insta::assert_json_snapshot!("panic_500", [Value::from(boom.status), boom.body.clone()]);
    assert!(boom
        .header("request-id")
        .is_some_and(|v| v.starts_with("req_")));

    // The server and the tenant it held locked still serve, and nothing was written.
    assert!(rs::healthy(emu.running.addr).await);
    assert_eq!(emu.get(&key, list).await.body, before);
    let r = emu
        .get(&key, &format!("/v1/billing/credit_grants/{grant}"))
        .await;
    assert_eq!(r.status, 200);

    // The claimed key was released: the retry runs once, then replays.
    let retry = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/billing/credit_grants",
            &form,
            &[("idempotency-key", "retry-me")],
        )
        .await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.header("idempotent-replayed"), None);
    let again = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/billing/credit_grants",
            &form,
            &[("idempotency-key", "retry-me")],
        )
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.id(), retry.id());
    let after = emu.get(&key, list).await.body;
    assert_eq!(after["data"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn panics_in_parallel_with_real_work_leave_every_write_in_place() {
    let emu = std::sync::Arc::new(panicky().await);
    let key = rs::tenant(&emu, "panic_many").await;
    let cus = emu.customer(&key, "").await;
    let form = format!("customer={cus}&{GRANT}");
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (emu, key, form) = (emu.clone(), key.clone(), form.clone());
        tasks.push(tokio::spawn(async move {
            let headers: &[(&str, &str)] = if i % 2 == 0 {
                &[("x-emulator-panic", "1")]
            } else {
                &[]
            };
            let r = emu
                .stripe_with("POST", &key, "/v1/billing/credit_grants", &form, headers)
                .await;
            (i % 2 == 0, r.status, r.id())
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        let (panicked, status, id) = t.await.unwrap();
        if panicked {
            assert_eq!(status, 500);
        } else {
            assert_eq!(status, 200);
            created.push(id);
        }
    }
    let list = emu.get(&key, "/v1/billing/credit_grants?limit=100").await;
    let mut listed: Vec<String> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    created.sort();
    assert_eq!(listed, created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_keeps_serving_after_the_worst_inputs_found() {
    // The heaviest corpus inputs (deepest, longest, most numerous), each sent 8 times at once, with
    // panics mixed in; afterwards the server answers and the tenant is as it was.
    let emu = panicky().await;
    let addr = emu.running.addr;
    let key = rs::tenant(&emu, "panic_worst").await;
    let cus = emu.customer(&key, "").await;
    emu.grant(&key, &cus, 1000, "").await;
    let before = emu.get(&key, "/v1/billing/credit_grants").await.body;
    let auth = format!("Bearer {key}");
    let form = |path: &str, body: Vec<u8>| {
        RawRequest::new("POST", path)
            .header("authorization", &auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let mut worst = vec![
        form(
            "/v1/billing/credit_grants",
            [b"amount".to_vec(), b"[]".repeat(100_000), b"=1".to_vec()].concat(),
        ),
        form("/v1/customers", b"a=1&".repeat(100_000)),
        form(
            "/v1/customers",
            [b"a".to_vec(), b"[".repeat(500_000), b"=1".to_vec()].concat(),
        ),
        form(
            &format!("/v1/customers/{cus}"),
            [b"metadata[k]=".to_vec(), b"%E2%82%AC".repeat(110_000)].concat(),
        ),
        form("/v1/customers", vec![b'a'; 5 * 1024 * 1024]),
        RawRequest::new("GET", "/v1/customers")
            .header("authorization", &auth)
            .header("x-big", &"b".repeat(300_000)),
        form("/v1/billing/credit_grants", b"x".to_vec()).header("x-emulator-panic", "1"),
    ];
    let mut chunked = form("/v1/billing/credit_grants", vec![b'z'; 3 * 1024 * 1024]);
    chunked.chunked = Some(1000);
    worst.push(chunked);
    let mut tasks = Vec::new();
    for req in &worst {
        for _ in 0..8 {
            let bytes = req.bytes();
            tasks.push(tokio::spawn(
                async move { exchange(addr, bytes, false).await },
            ));
        }
    }
    for t in tasks {
        let raw = t.await.unwrap().expect("every hostile request is answered");
        assert!(raw.status >= 400, "{}", raw.status);
    }
    assert!(rs::healthy(addr).await);
    assert_eq!(
        emu.get(&key, "/v1/billing/credit_grants").await.body,
        before
    );
    let other = emu.customer(&key, "email=after@example.com").await;
    assert!(other.starts_with("cus_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_does_nothing_unless_enabled() {
    let emu = Emu::start().await;
    let key = rs::tenant(&emu, "panic_off").await;
    let r = emu
        .stripe_with(
            "GET",
            &key,
            "/v1/customers",
            "",
            &[("x-emulator-panic", "1")],
        )
        .await;
    assert_eq!(r.status, 200);
    let raw = exchange(
        emu.running.addr,
        RawRequest::new("GET", "/v1/customers")
            .header("authorization", &format!("Bearer {key}"))
            .header("x-emulator-panic", "1")
            .bytes(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(raw.status, 200);
}
