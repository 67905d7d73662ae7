//! Spending through the invoice helper, seen through both APIs over HTTP: for one customer and
//! currency, Stripe's `available_balance` (in cents) and the native real-time wallet balance (in
//! dollars, conversion rate 1) agree after every step.

use crate::support;

use serde_json::json;
use support::native::{at, get, grant, native_customer, plan, subscription, DAY};
use support::{Emu, T0};

/// Stripe's available usd balance in cents (0 when there is no usd balance).
async fn stripe_cents(emu: &Emu, key: &str, cus: &str) -> i64 {
    let r = emu
        .get(
            key,
            &format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["balances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["available_balance"]["monetary"]["currency"] == "usd")
        .map(|b| {
            b["available_balance"]["monetary"]["value"]
                .as_i64()
                .unwrap()
        })
        .sum()
}

/// The native real-time balance over the customer's usd wallets, in cents.
async fn native_cents(emu: &Emu, key: &str, cus: &str) -> i64 {
    let wallets = get(
        emu,
        key,
        &format!("/v1/customers/{}/wallets", native_customer(cus)),
    )
    .await;
    assert_eq!(wallets.status, 200, "{}", wallets.text);
    let mut total = rust_decimal::Decimal::ZERO;
    for w in wallets.body.as_array().unwrap() {
        if w["currency"] != "usd" {
            continue;
        }
        let id = w["id"].as_str().unwrap();
        let b = get(emu, key, &format!("/v1/wallets/{id}/balance/real-time")).await;
        assert_eq!(b.status, 200, "{}", b.text);
        let v: rust_decimal::Decimal = b.body["real_time_balance"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        total += v;
    }
    use rust_decimal::prelude::ToPrimitive;
    (total * rust_decimal::Decimal::from(100)).to_i64().unwrap()
}

async fn agree(emu: &Emu, key: &str, cus: &str, expected_cents: i64, step: &str) {
    let s = stripe_cents(emu, key, cus).await;
    let n = native_cents(emu, key, cus).await;
    assert_eq!(
        (s, n),
        (expected_cents, expected_cents),
        "after {step}: stripe {s}, native {n}"
    );
}

#[tokio::test]
async fn a_grant_from_each_api_spent_voided_and_expired_with_both_views_in_step() {
    let emu = Emu::start().await;
    let key = emu.tenant("cross_spend").await;

    // One customer, created through Stripe, subscribed natively.
    let cus = emu.customer(&key, "email=ada%40example.com").await;
    let p = plan(&emu, &key, "Pro").await;
    let sub = subscription(&emu, &key, &native_customer(&cus), &p, None).await;
    agree(&emu, &key, &cus, 0, "nothing granted").await;

    // Stripe: $10, priority 10, expires in 5 days. Native: 20 credits ($20), priority 20, never expires.
    let stripe_grant = emu
        .grant(
            &key,
            &cus,
            1_000,
            &format!("priority=10&expires_at={}", T0 + 5 * DAY),
        )
        .await;
    grant(
        &emu,
        &key,
        json!({"name": "Welcome", "scope": "SUBSCRIPTION", "subscription_id": sub, "credits": "20",
               "cadence": "ONETIME", "expiration_type": "NEVER", "priority": 20, "start_date": at(0)}),
    )
    .await;
    agree(&emu, &key, &cus, 3_000, "both grants").await;

    // $15 of metered usage: the Stripe grant (priority 10) is spent first, then $5 of the native one.
    let invoice = emu
        .post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=1500"),
        )
        .await;
    assert_eq!(invoice.status, 200, "{}", invoice.text);
    assert_eq!(invoice.body["amount_due"], json!(0));
    let credits: Vec<i64> = invoice.body["total_pretax_credit_amounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(credits, [1_000, 500]);
    agree(&emu, &key, &cus, 1_500, "spending $15").await;

    // The native wallet shows the debit as a wallet transaction.
    let wallets = get(
        &emu,
        &key,
        &format!("/v1/customers/{}/wallets", native_customer(&cus)),
    )
    .await;
    let wallet = wallets.body[0]["id"].as_str().unwrap().to_string();
    let txns = get(&emu, &key, &format!("/v1/wallets/{wallet}/transactions")).await;
    assert_eq!(txns.status, 200, "{}", txns.text);
    let debits: Vec<&str> = txns.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "debit" && t["transaction_reason"] == "CREDIT_ADJUSTMENT")
        .map(|t| t["amount"].as_str().unwrap())
        .collect();
    assert_eq!(debits.len(), 2, "one debit per grant spent: {}", txns.text);
    let mut debits = debits;
    debits.sort();
    assert_eq!(debits, ["10", "5"]);

    // Voiding the invoice puts every cent back, on both sides.
    let id = invoice.id();
    let void = emu.post(&key, &format!("/v1/invoices/{id}/void"), "").await;
    assert_eq!(void.status, 200, "{}", void.text);
    agree(&emu, &key, &cus, 3_000, "voiding the invoice").await;

    // Expiring the Stripe grant takes its $10 off both views.
    let expired = emu
        .post(
            &key,
            &format!("/v1/billing/credit_grants/{stripe_grant}/expire"),
            "",
        )
        .await;
    assert_eq!(expired.status, 200);
    agree(&emu, &key, &cus, 2_000, "expiring the Stripe grant").await;

    // A second invoice larger than what is left: $20 of credit applies, $5 is due.
    let big = emu
        .post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=2500"),
        )
        .await;
    assert_eq!(big.body["amount_due"], json!(500));
    agree(&emu, &key, &cus, 0, "spending everything").await;

    // Time passing changes nothing that is already spent.
    emu.freeze(&key, T0 + 30 * DAY).await;
    agree(&emu, &key, &cus, 0, "a month later").await;
}
