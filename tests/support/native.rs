//! Helpers shared by the native black-box tests: JSON requests with `x-api-key`, and the common
//! setup of a customer, a plan and a subscription.

use credit_emulator::model::Currency;
use serde_json::{json, Value};

use super::{Emu, Resp, T0};

/// `T0` in RFC 3339, as the native API renders it.
pub const T0_RFC: &str = "2025-06-15T00:00:00Z";

/// An RFC 3339 time `secs` after `T0`.
pub fn at(secs: i64) -> String {
    chrono::DateTime::from_timestamp(T0 + secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub const DAY: i64 = 86_400;

/// A native request.
pub async fn call(emu: &Emu, method: &str, key: &str, path: &str, body: Option<Value>) -> Resp {
    emu.native(method, key, path, body.as_ref()).await
}

pub async fn get(emu: &Emu, key: &str, path: &str) -> Resp {
    call(emu, "GET", key, path, None).await
}

pub async fn post(emu: &Emu, key: &str, path: &str, body: Value) -> Resp {
    call(emu, "POST", key, path, Some(body)).await
}

/// Status and body together, for snapshots of errors.
pub fn outcome(r: &Resp) -> Value {
    json!({"status": r.status, "body": if r.body.is_null() { json!(r.text) } else { r.body.clone() }})
}

/// Creates a native customer and returns its `cust_` id.
pub async fn customer(emu: &Emu, key: &str, external_id: &str) -> String {
    let r = post(
        emu,
        key,
        "/v1/customers",
        json!({"external_id": external_id, "name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    assert_eq!(r.status, 201, "create customer: {}", r.text);
    r.id()
}

/// Creates a plan and returns its id.
pub async fn plan(emu: &Emu, key: &str, name: &str) -> String {
    let r = post(emu, key, "/v1/plans", json!({"name": name})).await;
    assert_eq!(r.status, 201, "create plan: {}", r.text);
    r.id()
}

/// Starts a monthly usd subscription (at `T0` unless `start` is given) and returns its id.
pub async fn subscription(
    emu: &Emu,
    key: &str,
    customer: &str,
    plan: &str,
    start: Option<&str>,
) -> String {
    let mut body = json!({
        "customer_id": customer, "plan_id": plan, "currency": "usd",
        "billing_cadence": "RECURRING", "billing_period": "MONTHLY",
    });
    if let Some(s) = start {
        body["start_date"] = json!(s);
    }
    let r = post(emu, key, "/v1/subscriptions", body).await;
    assert_eq!(r.status, 201, "create subscription: {}", r.text);
    r.id()
}

/// Creates a grant and returns its id.
pub async fn grant(emu: &Emu, key: &str, body: Value) -> String {
    let r = post(emu, key, "/v1/creditgrants", body).await;
    assert_eq!(r.status, 201, "create grant: {}", r.text);
    r.id()
}

/// A tenant with a customer subscribed (at `T0`) to an empty plan: (customer, plan, subscription).
pub async fn subscribed(emu: &Emu, key: &str) -> (String, String, String) {
    let c = customer(emu, key, "ext-1").await;
    let p = plan(emu, key, "Pro").await;
    let s = subscription(emu, key, &c, &p, None).await;
    (c, p, s)
}

/// The Stripe spelling of a native customer id.
pub fn stripe_customer(native: &str) -> String {
    format!("cus_{}", native.trim_start_matches("cust_"))
}

/// The native spelling of a Stripe customer id.
pub fn native_customer(stripe: &str) -> String {
    format!("cust_{}", stripe.trim_start_matches("cus_"))
}

/// The Stripe credit grant an application became.
pub fn stripe_grant(application: &str) -> String {
    format!("credgr_test_{}", application.trim_start_matches("cga_"))
}

/// Stripe's available balance for a customer in usd, in cents, straight from the model (what the
/// Stripe balance summary renders).
pub fn stripe_available(emu: &Emu, key: &str, customer: &str) -> i64 {
    let suffix = customer
        .trim_start_matches("cust_")
        .trim_start_matches("cus_");
    let k = credit_emulator::ids::decode(suffix).expect("customer id");
    let cell = emu.running.app.store.tenant(key);
    cell.peek(|t| {
        let b = t
            .balances(k, |_| true)
            .get(&Currency::parse("usd").unwrap())
            .copied()
            .unwrap_or_default();
        assert_eq!(b.available, b.ledger, "nothing pending in these scenarios");
        use rust_decimal::prelude::ToPrimitive;
        b.available.to_i64().expect("whole cents")
    })
}

/// The native real-time balance of every usd wallet of a customer, summed, in cents.
pub async fn native_available(emu: &Emu, key: &str, customer: &str) -> i64 {
    let native = if customer.starts_with("cus_") {
        native_customer(customer)
    } else {
        customer.to_string()
    };
    let wallets = get(emu, key, &format!("/v1/customers/{native}/wallets")).await;
    assert_eq!(wallets.status, 200, "{}", wallets.text);
    let mut cents = 0i64;
    for w in wallets.body.as_array().unwrap() {
        if w["currency"] != "usd" {
            continue;
        }
        let id = w["id"].as_str().unwrap();
        let b = get(emu, key, &format!("/v1/wallets/{id}/balance/real-time")).await;
        let dollars: rust_decimal::Decimal = b.body["real_time_balance"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        use rust_decimal::prelude::ToPrimitive;
        cents += (dollars * rust_decimal::Decimal::from(100))
            .to_i64()
            .expect("whole cents");
    }
    cents
}
