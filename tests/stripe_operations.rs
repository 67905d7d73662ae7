//! The pipeline around Stripe's operations, over real sockets: idempotent answers are stored per
//! world beside the model and forgotten with it on reset, and the emulator's own
//! `POST /_emulator/invoices`, a row of the Stripe facade's route table, stays outside the
//! idempotency layer and the version header.

use crate::support;

use serde_json::json;
use support::{Emu, T0};

/// A customer create with `Idempotency-Key`.
async fn create(emu: &Emu, key: &str, form: &str, idempotency_key: &str) -> support::Resp {
    emu.stripe_with(
        "POST",
        key,
        "/v1/customers",
        form,
        &[("idempotency-key", idempotency_key)],
    )
    .await
}

#[tokio::test]
async fn reset_forgets_the_worlds_idempotency_keys() {
    let emu = Emu::start().await;
    let key = emu.tenant("ops_reset").await;
    let first = create(&emu, &key, "name=Ada", "k1").await;
    assert_eq!(first.status, 200, "{}", first.text);

    // Before the reset the key belongs to the first request: other parameters are refused.
    let reused = create(&emu, &key, "name=Grace", "k1").await;
    assert_eq!(reused.status, 400);
    insta::assert_json_snapshot!("reused_before_reset", reused.body);

    let reset = emu.post(&key, "/_emulator/reset", "").await;
    assert_eq!(reset.body, json!({"reset": true, "existed": true}));

    // After it, the key is new to the world: the request runs, and is not a replay.
    emu.freeze(&key, T0).await;
    let again = create(&emu, &key, "name=Grace", "k1").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), None);
    assert_eq!(again.body["name"], "Grace");
    // The world itself starts over too: its only customer is the new one.
    let list = emu.get(&key, "/v1/customers").await;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_library_reset_forgets_idempotency_keys_too() {
    let emu = Emu::start().await;
    let key = emu.tenant("ops_library_reset").await;
    assert_eq!(create(&emu, &key, "name=Ada", "k1").await.status, 200);
    let replay = create(&emu, &key, "name=Ada", "k1").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    assert_eq!(emu.running.emulator().reset(&key), Ok(true));
    let again = create(&emu, &key, "name=Grace", "k1").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), None);
    // A request refused while its parameters were checked reached no model, but its key was
    // claimed (and released) in that world, which therefore exists until reset.
    let other = "sk_test_ops_library_reset_other";
    let refused = create(&emu, other, "bogus=1", "k2").await;
    assert_eq!(refused.status, 400);
    assert_eq!(emu.running.emulator().reset(other), Ok(true));
    assert_eq!(emu.running.emulator().reset(other), Ok(false));
}

#[tokio::test]
async fn idempotency_keys_are_per_world() {
    let emu = Emu::start().await;
    let a = emu.tenant("ops_world_a").await;
    let b = emu.tenant("ops_world_b").await;
    assert_eq!(create(&emu, &a, "name=Ada", "shared").await.status, 200);
    // The same key in another world, and in a connected account's world, is another key.
    let other = create(&emu, &b, "name=Grace", "shared").await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(other.header("idempotent-replayed"), None);
    let connected = emu
        .stripe_with(
            "POST",
            &a,
            "/v1/customers",
            "name=Linus",
            &[
                ("idempotency-key", "shared"),
                ("stripe-account", "acct_ops"),
            ],
        )
        .await;
    assert_eq!(connected.status, 200, "{}", connected.text);
    assert_eq!(connected.body["name"], "Linus");
}

#[tokio::test]
async fn emulator_invoices_stay_outside_idempotency_and_versions() {
    let emu = Emu::start().await;
    let key = emu.tenant("ops_invoices").await;
    let customer = emu.customer(&key, "email=ada@example.com").await;
    emu.grant(&key, &customer, 1000, "").await;
    let form = format!("customer={customer}&currency=usd&lines[0][amount]=300");
    let headers = [
        ("idempotency-key", "same"),
        ("stripe-version", "not-a-version"),
    ];

    let first = emu
        .stripe_with("POST", &key, "/_emulator/invoices", &form, &headers)
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = emu
        .stripe_with("POST", &key, "/_emulator/invoices", &form, &headers)
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    // Two invoices: the key is neither replayed nor echoed, and the version header is not read.
    assert_ne!(first.id(), second.id());
    for r in [&first, &second] {
        assert_eq!(r.header("idempotent-replayed"), None);
        assert_eq!(r.header("idempotency-key"), None);
        assert_eq!(r.header("stripe-version"), None);
    }
    assert_eq!(second.body["total"], 0);
    insta::assert_json_snapshot!("second_invoice", second.body);

    // The native API's key header reaches it as well, with Stripe's errors.
    let native_key = emu
        .raw(
            "POST",
            "/_emulator/invoices",
            &[
                ("x-api-key", key.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "currency=usd&lines[0][amount]=1",
        )
        .await;
    assert_eq!(native_key.status, 400);
    insta::assert_json_snapshot!("missing_customer_with_x_api_key", native_key.body);

    // Another method on the path is no route, answered before any key is read.
    let get = emu.raw("GET", "/_emulator/invoices", &[], "").await;
    assert_eq!(get.status, 404);
    insta::assert_json_snapshot!("get_is_no_route", get.body);
}
