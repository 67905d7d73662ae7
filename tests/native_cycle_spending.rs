//! Credits a subscription's cycle invoice applies, seen through the native API over HTTP: they are
//! wallet transactions exactly like the spending of the emulator's invoice helper (a
//! `CREDIT_ADJUSTMENT` debit per grant spent, referencing the invoice as `inv_…`), and the wallet
//! balance follows Stripe's available balance.

use crate::support;

use serde_json::{json, Value};
use support::native::{at, get, grant, native_available, native_customer, plan, subscription};
use support::{Emu, T0};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// 2025-07-15T00:00:00Z: the end of a monthly subscription's first period from T0.
const T1: i64 = 1_752_537_600;

async fn ok(r: support::Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Stripe's available usd balance of a customer, in cents.
async fn stripe_cents(emu: &Emu, key: &str, cus: &str) -> i64 {
    let s = ok(
        emu.get(
            key,
            &format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
        )
        .await,
        "summary",
    )
    .await;
    s["balances"][0]["available_balance"]["monetary"]["value"]
        .as_i64()
        .unwrap()
}

/// The native id of a Stripe invoice: the same key, another prefix.
fn native_invoice(stripe: &str) -> String {
    format!("inv_{}", stripe.trim_start_matches("in_"))
}

#[tokio::test]
async fn a_cycle_invoice_spends_credits_that_the_native_wallet_shows_like_the_helper_invoice() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_cycle_spending").await;

    // A customer on a test clock with a Stripe grant ($3, spent first) and a native grant (10
    // credits, $10) on a native subscription.
    let clock = id(&ok(
        emu.post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={T0}"),
        )
        .await,
        "clock",
    )
    .await);
    let cus = emu
        .customer(&key, &format!("name=Ada&test_clock={clock}"))
        .await;
    emu.grant(&key, &cus, 300, "priority=10").await;
    let p = plan(&emu, &key, "Pro").await;
    let native_sub = subscription(&emu, &key, &native_customer(&cus), &p, None).await;
    grant(
        &emu,
        &key,
        json!({"name": "Welcome", "scope": "SUBSCRIPTION", "subscription_id": native_sub, "credits": "10",
               "cadence": "ONETIME", "expiration_type": "NEVER", "priority": 20, "start_date": at(0)}),
    )
    .await;
    assert_eq!(stripe_cents(&emu, &key, &cus).await, 1_300);
    assert_eq!(native_available(&emu, &key, &cus).await, 1_300);

    // The helper's invoice: $2 from the Stripe grant.
    let helper = ok(
        emu.post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=200"),
        )
        .await,
        "helper invoice",
    )
    .await;
    assert_eq!(helper["amount_due"], 0);

    // A Stripe subscription to a metered price of 5 cents a call; 100 calls in the first period.
    let meter = id(&ok(
        emu.post(
            &key,
            "/v1/billing/meters",
            "display_name=API+calls&event_name=api_calls&default_aggregation[formula]=sum",
        )
        .await,
        "meter",
    )
    .await);
    let price = id(&ok(
        emu.post(
            &key,
            "/v1/prices",
            &format!("currency=usd&unit_amount=5&product_data[name]=API&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={meter}"),
        )
        .await,
        "price",
    )
    .await);
    let sub = id(&ok(
        emu.post(
            &key,
            "/v1/subscriptions",
            &format!("customer={cus}&items[0][price]={price}"),
        )
        .await,
        "subscription",
    )
    .await);
    let advance = |to: i64| emu.advance_clock(&key, &clock, to);
    advance(T0 + DAY).await;
    ok(
        emu.post(
            &key,
            "/v1/billing/meter_events",
            &format!("event_name=api_calls&payload[stripe_customer_id]={cus}&payload[value]=100"),
        )
        .await,
        "meter event",
    )
    .await;

    // The cycle invoice finalizes after the grace period: $5, $1 from the Stripe grant and $4
    // from the native one.
    advance(T1 + 2 * HOUR).await;
    let invoices = ok(
        emu.get(&key, &format!("/v1/invoices?subscription={sub}"))
            .await,
        "invoices",
    )
    .await;
    let cycle = &invoices["data"][0];
    assert_eq!(cycle["billing_reason"], "subscription_cycle");
    assert_eq!(cycle["status"], "paid");
    assert_eq!(cycle["subtotal"], 500);
    assert_eq!(cycle["total"], 0);
    let credits: Vec<i64> = cycle["total_pretax_credit_amounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(credits, [100, 400]);

    // Both views agree on what is left.
    assert_eq!(stripe_cents(&emu, &key, &cus).await, 600);
    assert_eq!(native_available(&emu, &key, &cus).await, 600);

    // The wallet's transactions: one debit per grant spent by each invoice, the same reason and
    // reference kind whichever invoice spent them.
    let wallets = get(
        &emu,
        &key,
        &format!("/v1/customers/{}/wallets", native_customer(&cus)),
    )
    .await;
    assert_eq!(wallets.status, 200, "{}", wallets.text);
    assert_eq!(
        wallets.body.as_array().unwrap().len(),
        1,
        "{}",
        wallets.text
    );
    let wallet = wallets.body[0]["id"].as_str().unwrap().to_string();
    let txns = get(&emu, &key, &format!("/v1/wallets/{wallet}/transactions")).await;
    assert_eq!(txns.status, 200, "{}", txns.text);
    insta::assert_json_snapshot!("native_cycle_spending_transactions", txns.body);
    let debits: Vec<(String, &str, &str, &str, &str)> = txns.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "debit")
        .map(|t| {
            (
                t["reference_id"].as_str().unwrap().to_string(),
                t["reference_type"].as_str().unwrap(),
                t["transaction_reason"].as_str().unwrap(),
                t["amount"].as_str().unwrap(),
                t["created_at"].as_str().unwrap(),
            )
        })
        .collect();
    let (helper_ref, cycle_ref) = (native_invoice(&id(&helper)), native_invoice(&id(cycle)));
    let finalized = chrono::DateTime::from_timestamp(T1 + HOUR, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let helper_at = at(0);
    assert_eq!(
        debits,
        [
            // Newest first: the cycle invoice's two debits, at its finalization.
            (
                cycle_ref.clone(),
                "INVOICE",
                "CREDIT_ADJUSTMENT",
                "4",
                finalized.as_str()
            ),
            (
                cycle_ref,
                "INVOICE",
                "CREDIT_ADJUSTMENT",
                "1",
                finalized.as_str()
            ),
            (
                helper_ref,
                "INVOICE",
                "CREDIT_ADJUSTMENT",
                "2",
                helper_at.as_str()
            ),
        ],
        "{}",
        txns.text
    );
}
