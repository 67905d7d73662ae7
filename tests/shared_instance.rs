//! One emulator shared by many clients keeps bounded memory: requests that only read never make a
//! world, `--max-tenants` refuses a world past the limit (in each API's envelope) until a reset
//! frees a place, and each world remembers a bounded number of `Idempotency-Key`s for a bounded
//! time.

use crate::support;

use std::time::Duration;

use credit_emulator::stripe::routes::{Origin, Verb, ROUTES as STRIPE_ROUTES};
use credit_emulator::{Config, EmulatorError};
use serde_json::{json, Value};
use support::{Emu, Resp, T0};

/// Every `GET` the emulator answers, with `{id}`s filled in: Stripe's rows, the native rows (with
/// `x-api-key`) and the emulator's own. `(api, path)`, `api` being `stripe`, `native` or `admin`.
fn every_read() -> Vec<(&'static str, String)> {
    let mut reads: Vec<(&'static str, String)> = STRIPE_ROUTES
        .iter()
        .filter(|r| r.verb == Verb::Get && r.origin == Origin::Stripe)
        .map(|r| ("stripe", r.pattern.replace("{id}", "x_1")))
        .collect();
    reads.extend(
        credit_emulator::native::ROUTES
            .iter()
            .filter(|r| r.method == "GET")
            .map(|r| ("native", r.pattern.replace("{id}", "x_1"))),
    );
    // A few with the parameters they need, so that they get past their checks to the world.
    reads.extend([
        ("stripe", "/v1/customers?limit=3".to_string()),
        ("stripe", "/v1/customers/search?query=email:'a@b.c'".to_string()),
        (
            "stripe",
            "/v1/billing/credit_balance_summary?customer=cus_x&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered".to_string(),
        ),
        (
            "stripe",
            "/v1/billing/credit_balance_transactions?customer=cus_x".to_string(),
        ),
        ("native", "/v1/creditgrants?limit=5&offset=0".to_string()),
    ]);
    for path in [
        "/_emulator/health",
        "/_emulator/clock",
        "/_emulator/stripe_version",
        "/_emulator/invoice_grace_period",
        "/_emulator/webhook_deliveries",
    ] {
        reads.push(("admin", path.to_string()));
    }
    reads
}

async fn read(emu: &Emu, api: &str, key: &str, path: &str) -> Resp {
    match api {
        "native" => emu.native("GET", key, path, None).await,
        _ => emu.get(key, path).await,
    }
}

async fn health(emu: &Emu) -> Value {
    emu.raw("GET", "/_emulator/health", &[], "").await.body
}

#[tokio::test]
async fn reads_make_no_world_and_answer_as_the_empty_world_does() {
    let emu = Emu::start().await;
    // A world that exists and is empty: made by a write that creates nothing in it.
    let empty = "sk_test_shared_empty";
    let made = emu.post(empty, "/_emulator/clock", "real_time=true").await;
    assert_eq!(made.status, 200, "{}", made.text);
    assert_eq!(emu.running.app.store.tenant_count(), 1);

    let fresh = "sk_test_shared_fresh";
    let reads = every_read();
    assert!(reads.len() > 40, "{} reads", reads.len());
    for (api, path) in &reads {
        let new = read(&emu, api, fresh, path).await;
        let old = read(&emu, api, empty, path).await;
        assert!(new.status < 500, "{api} GET {path}: {}", new.text);
        if path == "/_emulator/health" {
            continue;
        }
        if path == "/_emulator/clock" {
            // Both on real time; the seconds may have moved between the two requests.
            assert_eq!(new.body["mode"], "real", "{}", new.text);
            assert_eq!((new.status, &old.body["mode"]), (200, &json!("real")));
            continue;
        }
        assert_eq!(
            (new.status, &new.text),
            (old.status, &old.text),
            "{api} GET {path}: a key with no world answers as an empty world"
        );
    }
    // A connected account's world, read through its platform's key, is not made either.
    let connected = emu
        .stripe_with(
            "GET",
            fresh,
            "/v1/customers",
            "",
            &[("stripe-account", "acct_1Shared")],
        )
        .await;
    assert_eq!(connected.status, 200, "{}", connected.text);
    // Nor by the library handle's read of the clock.
    emu.running.emulator().now(fresh).unwrap();

    assert_eq!(
        emu.running.app.store.tenant_count(),
        1,
        "a read made a world"
    );
    assert_eq!(health(&emu).await["tenants"], 1);
    assert_eq!(
        emu.post(fresh, "/_emulator/reset", "").await.body["existed"],
        false
    );

    // A few of those answers, as a client sees them.
    let answers = json!({
        "customers": read(&emu, "stripe", fresh, "/v1/customers").await.body,
        "customer": read(&emu, "stripe", fresh, "/v1/customers/cus_x").await.body,
        "grace": read(&emu, "admin", fresh, "/_emulator/invoice_grace_period").await.body,
        "native_grants": read(&emu, "native", fresh, "/v1/creditgrants").await.body,
        "native_customer": read(&emu, "native", fresh, "/v1/customers/cust_x").await.body,
    });
    insta::assert_json_snapshot!("fresh_key_reads", answers);

    // The first write makes the world, and reads see it from then on.
    let customer = emu.customer(fresh, "name=Ada").await;
    assert_eq!(emu.running.app.store.tenant_count(), 2);
    let list = emu.get(fresh, "/v1/customers").await;
    assert_eq!(list.body["data"][0]["id"], customer.as_str());
}

#[tokio::test]
async fn the_cap_refuses_a_new_world_in_each_envelope_and_a_reset_frees_a_place() {
    let emu = Emu::with_config(Config {
        seed: Some(42),
        max_tenants: 2,
        ..Config::default()
    })
    .await;
    let (a, b, c) = ("sk_test_cap_a", "sk_test_cap_b", "sk_test_cap_c");
    emu.freeze(a, T0).await;
    let native = emu
        .native(
            "POST",
            b,
            "/v1/customers",
            Some(&json!({"external_id": "b-1", "name": "Bea"})),
        )
        .await;
    assert_eq!(native.status, 201, "{}", native.text);
    let h = health(&emu).await;
    assert_eq!(
        (&h["tenants"], &h["max_tenants"]),
        (&json!(2), &json!(2)),
        "{h}"
    );

    // A third world is refused by every kind of write, in the envelope of the API asked.
    let stripe = emu.post(c, "/v1/customers", "name=Cy").await;
    let native = emu
        .native(
            "POST",
            c,
            "/v1/customers",
            Some(&json!({"external_id": "c-1", "name": "Cy"})),
        )
        .await;
    let refusals = json!({
        "stripe": {"status": stripe.status, "body": stripe.body},
        "native": {"status": native.status, "body": native.body},
    });
    insta::assert_json_snapshot!("cap_refusals", refusals);
    for (what, r) in [
        (
            "admin clock",
            emu.post(c, "/_emulator/clock", &format!("frozen_time={T0}"))
                .await,
        ),
        (
            "admin version",
            emu.post(c, "/_emulator/stripe_version", "version=2025-03-31.basil")
                .await,
        ),
        (
            "admin grace",
            emu.post(c, "/_emulator/invoice_grace_period", "seconds=0")
                .await,
        ),
        (
            "emulator invoices",
            emu.post(
                c,
                "/_emulator/invoices",
                "customer=cus_x&currency=usd&lines[0][amount]=1",
            )
            .await,
        ),
        ("delete", emu.delete(c, "/v1/customers/cus_x").await),
        (
            "idempotent",
            emu.stripe_with(
                "POST",
                c,
                "/v1/customers",
                "name=Cy",
                &[("idempotency-key", "c1")],
            )
            .await,
        ),
    ] {
        assert_eq!((r.status, &r.body), (400, &stripe.body), "{what}");
    }
    // Refused before its key was claimed: the world it would belong to has no stored answers.
    assert!(emu.running.app.idempotency.get(c).is_none());
    let err = emu.running.emulator().set_clock(c, T0).unwrap_err();
    assert_eq!(err, EmulatorError::TooManyTenants { max: 2 });
    assert_eq!(
        Some(err.to_string().as_str()),
        stripe.body["error"]["message"].as_str()
    );
    // Reads are never refused, and existing worlds keep writing.
    assert_eq!(emu.get(c, "/v1/customers").await.status, 200);
    assert_eq!(emu.post(a, "/v1/customers", "name=Ada").await.status, 200);
    assert_eq!(emu.running.app.store.tenant_count(), 2);

    // A reset frees a place: the third world is made, and the reset one cannot come back.
    assert_eq!(
        emu.post(a, "/_emulator/reset", "").await.body["existed"],
        true
    );
    assert_eq!(emu.post(c, "/v1/customers", "name=Cy").await.status, 200);
    assert_eq!(emu.post(a, "/v1/customers", "name=Ada").await.status, 400);
    assert_eq!(emu.running.emulator().reset(b), Ok(true));
    assert_eq!(emu.running.emulator().set_clock(a, T0).map(|_| ()), Ok(()));
    assert_eq!(health(&emu).await["tenants"], 2);
}

/// A customer create with `Idempotency-Key`.
async fn create(emu: &Emu, key: &str, name: &str, idempotency_key: &str) -> Resp {
    emu.stripe_with(
        "POST",
        key,
        "/v1/customers",
        &format!("name={name}"),
        &[("idempotency-key", idempotency_key)],
    )
    .await
}

#[tokio::test]
async fn past_its_cap_a_world_forgets_its_oldest_idempotency_key_first() {
    let emu = Emu::with_config(Config {
        seed: Some(42),
        max_idempotency_keys: 2,
        ..Config::default()
    })
    .await;
    let key = emu.tenant("idem_cap").await;
    let mut ids = Vec::new();
    for k in ["k1", "k2", "k3"] {
        let r = create(&emu, &key, "Ada", k).await;
        assert_eq!((r.status, r.header("idempotent-replayed")), (200, None));
        ids.push(r.id());
    }
    // The two newest keys are remembered...
    for (k, id) in [("k3", &ids[2]), ("k2", &ids[1])] {
        let r = create(&emu, &key, "Ada", k).await;
        assert_eq!(r.header("idempotent-replayed"), Some("true"), "{k}");
        assert_eq!(&r.id(), id, "{k}");
    }
    // ...and the oldest was forgotten: it is a new request, with other parameters too.
    let again = create(&emu, &key, "Grace", "k1").await;
    assert_eq!(
        (again.status, again.header("idempotent-replayed")),
        (200, None)
    );
    assert!(!ids.contains(&again.id()), "{}", again.text);
    assert_eq!(again.body["name"], "Grace");
    let world = emu
        .running
        .app
        .idempotency
        .get(&key)
        .expect("the world's keys");
    assert_eq!(world.lock().len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_past_its_lifetime_is_a_new_request() {
    // A lifetime of zero: every key is past it by the next request (real time, never the tenant
    // clock, ages keys, so the clock frozen at T0 keeps none alive).
    let emu = Emu::with_config(Config {
        seed: Some(42),
        idempotency_key_lifetime: Duration::ZERO,
        ..Config::default()
    })
    .await;
    let key = emu.tenant("idem_lifetime").await;
    let first = create(&emu, &key, "Ada", "k1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    // With a day's lifetime this is Stripe's idempotency_error (see stripe_operations.rs).
    let second = create(&emu, &key, "Grace", "k1").await;
    assert_eq!(
        (second.status, second.header("idempotent-replayed")),
        (200, None),
        "{}",
        second.text
    );
    assert_ne!(second.id(), first.id());

    // The default lifetime keeps it.
    let emu = Emu::start().await;
    let key = emu.tenant("idem_lifetime_default").await;
    assert_eq!(create(&emu, &key, "Ada", "k1").await.status, 200);
    let reused = create(&emu, &key, "Grace", "k1").await;
    assert_eq!(
        reused.body["error"]["type"], "idempotency_error",
        "{}",
        reused.text
    );
}
