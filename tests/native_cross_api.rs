//! One model, two views: objects made through one API observed through the other, with the Stripe
//! available balance and the native real-time wallet balance equal at every step.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::native::*;
use support::{Emu, T0};

const GRANTS: &str = "/v1/billing/credit_grants";

/// Asserts that both views agree and returns the common balance in cents.
async fn agree(emu: &Emu, key: &str, customer: &str) -> i64 {
    let stripe = stripe_available(emu, key, customer);
    let native = native_available(emu, key, customer).await;
    assert_eq!(stripe, native, "Stripe and native balances differ");
    stripe
}

#[tokio::test]
async fn a_customer_is_one_entity() {
    let emu = Emu::start().await;
    let key = emu.tenant("cross_customers").await;
    let from_stripe = emu
        .customer(
            &key,
            "email=grace%40example.com&name=Grace&metadata[team]=navy",
        )
        .await;
    let seen_natively = get(
        &emu,
        &key,
        &format!("/v1/customers/{}", native_customer(&from_stripe)),
    )
    .await;
    assert_eq!(seen_natively.status, 200, "{}", seen_natively.text);
    assert_json_snapshot!("stripe_customer_seen_natively", seen_natively.body);

    let from_native = post(
        &emu,
        &key,
        "/v1/customers",
        json!({"external_id": "ext-ada", "name": "Ada", "email": "ada@example.com",
               "metadata": {"team": "ci"}}),
    )
    .await
    .id();
    let seen_by_stripe = emu
        .get(
            &key,
            &format!("/v1/customers/{}", stripe_customer(&from_native)),
        )
        .await;
    assert_eq!(seen_by_stripe.status, 200, "{}", seen_by_stripe.text);
    assert_json_snapshot!("native_customer_seen_by_stripe", seen_by_stripe.body);

    // Both lists hold both customers.
    let native_list = get(&emu, &key, "/v1/customers").await;
    assert_eq!(native_list.body["pagination"]["total"], 2);
    let stripe_list = emu.get(&key, "/v1/customers").await;
    assert_eq!(stripe_list.body["data"].as_array().unwrap().len(), 2);

    // Deleted through Stripe, the customer is archived natively.
    let del = emu
        .delete(&key, &format!("/v1/customers/{from_stripe}"))
        .await;
    assert_eq!(del.status, 200);
    let after = get(
        &emu,
        &key,
        &format!("/v1/customers/{}", native_customer(&from_stripe)),
    )
    .await;
    assert_eq!(after.body["status"], "archived");
}

#[tokio::test]
async fn stripe_grants_are_wallet_credits_and_stripe_voids_and_expiries_drain_the_wallet() {
    let emu = Emu::start().await;
    let key = emu.tenant("cross_stripe_to_native").await;
    let cus = emu.customer(&key, "name=Grace").await;
    let paid = emu
        .grant(
            &key,
            &cus,
            1000,
            &format!("priority=10&expires_at={}&name=Paid", T0 + 5 * 86_400),
        )
        .await;
    let promo = emu
        .grant(&key, &cus, 250, "category=promotional&name=Promo")
        .await;
    assert_eq!(agree(&emu, &key, &cus).await, 1250);

    let wallets = get(
        &emu,
        &key,
        &format!("/v1/customers/{}/wallets", native_customer(&cus)),
    )
    .await;
    assert_eq!(
        wallets.body.as_array().unwrap().len(),
        1,
        "{}",
        wallets.text
    );
    assert_eq!(wallets.body[0]["credit_balance"], "12.5");
    let wallet = wallets.body[0]["id"].as_str().unwrap().to_string();

    // Expire one through Stripe, void the other: both views drop together.
    let r = emu.post(&key, &format!("{GRANTS}/{paid}/expire"), "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(agree(&emu, &key, &cus).await, 250);
    let r = emu.post(&key, &format!("{GRANTS}/{promo}/void"), "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(agree(&emu, &key, &cus).await, 0);

    let txns = get(
        &emu,
        &key,
        &format!("/v1/wallets/{wallet}/transactions?order=asc"),
    )
    .await;
    assert_json_snapshot!("stripe_grants_as_wallet_transactions", txns.body);
}

#[tokio::test]
async fn native_applications_are_stripe_credit_grants() {
    let emu = Emu::start().await;
    let key = emu.tenant("cross_native_to_stripe").await;
    let (c, _, sub) = subscribed(&emu, &key).await;
    let g = grant(
        &emu,
        &key,
        json!({"name": "Monthly", "scope": "SUBSCRIPTION", "subscription_id": sub,
               "credits": "12.345", "cadence": "RECURRING", "period": "MONTHLY", "period_count": 1,
               "expiration_type": "DURATION", "expiration_duration": 10,
               "expiration_duration_unit": "DAY", "priority": 3, "start_date": T0_RFC,
               "metadata": {"campaign": "spring"}}),
    )
    .await;
    let cus = stripe_customer(&c);
    let listed = emu.get(&key, &format!("{GRANTS}?customer={cus}")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_json_snapshot!("application_as_stripe_grant", listed.body);
    // Stripe renders whole cents; the ledger keeps the exact 1234.5 cents.
    assert_eq!(listed.body["data"][0]["amount"]["monetary"]["value"], 1235);
    let first = listed.body["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(stripe_available(&emu, &key, &cus), 1234);
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    assert_eq!(wallets.body[0]["credit_balance"], "12.345");

    // A month on: the first application expired after ten days; a second one applied.
    emu.freeze(&key, T0 + 31 * DAY).await;
    let listed = emu.get(&key, &format!("{GRANTS}?customer={cus}")).await;
    let ids: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], first);
    let second = ids[0].to_string();
    assert_eq!(listed.body["data"][1]["expires_at"], json!(T0 + 10 * DAY));
    assert_eq!(listed.body["data"][0]["effective_at"], json!(T0 + 30 * DAY));
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    assert_eq!(wallets.body[0]["credit_balance"], "12.345");

    // The application id and the Stripe grant id are one key.
    let upcoming = get(
        &emu,
        &key,
        &format!("/v1/subscriptions/{sub}/grants/upcoming"),
    )
    .await;
    let third = upcoming.body["items"][0]["id"].as_str().unwrap();
    assert_eq!(upcoming.body["items"][0]["credit_grant_id"], json!(g));
    let not_yet = emu
        .get(&key, &format!("{GRANTS}/{}", stripe_grant(third)))
        .await;
    assert_eq!(not_yet.status, 404, "a pending application is no grant yet");

    // Voiding the application's grant through Stripe empties the wallet; expiring a spent one is
    // refused as already expired.
    let voided = emu.post(&key, &format!("{GRANTS}/{second}/void"), "").await;
    assert_eq!(voided.status, 200, "{}", voided.text);
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    assert_eq!(wallets.body[0]["credit_balance"], "0");
    assert_eq!(stripe_available(&emu, &key, &cus), 0);
    let expired = emu
        .post(&key, &format!("{GRANTS}/{first}/expire"), "")
        .await;
    assert_eq!(expired.status, 400);
    // Updating the Stripe view of an application moves its expiry natively too.
    emu.freeze(&key, T0 + 62 * DAY).await;
    let listed = emu
        .get(&key, &format!("{GRANTS}?customer={cus}&limit=1"))
        .await;
    let third_grant = listed.body["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(third_grant, stripe_grant(third));
    let later = T0 + 100 * DAY;
    let r = emu
        .post(
            &key,
            &format!("{GRANTS}/{third_grant}"),
            &format!("expires_at={later}"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wallet = wallets.body[0]["id"].as_str().unwrap();
    let txns = get(
        &emu,
        &key,
        &format!("/v1/wallets/{wallet}/transactions?limit=1"),
    )
    .await;
    assert_eq!(
        txns.body["items"][0]["transaction_reason"],
        "SUBSCRIPTION_CREDIT_GRANT"
    );
    assert_eq!(
        txns.body["items"][0]["expiry_date"],
        json!(at(100 * DAY)),
        "{}",
        txns.text
    );
}

#[tokio::test]
async fn moving_the_clock_keeps_both_views_equal() {
    let emu = Emu::start().await;
    let key = emu.tenant("cross_clock").await;
    let (c, p, _) = subscribed(&emu, &key).await;
    let cus = stripe_customer(&c);
    // Native: a weekly grant expiring with each monthly billing cycle, and a plan grant copied
    // onto a second subscription that starts in ten days.
    let sub2 = subscription(&emu, &key, &c, &p, Some(&at(10 * DAY))).await;
    grant(
        &emu,
        &key,
        json!({"name": "Weekly", "scope": "SUBSCRIPTION", "subscription_id": sub2,
               "credits": "1.5", "cadence": "RECURRING", "period": "WEEKLY", "period_count": 1,
               "expiration_type": "BILLING_CYCLE", "start_date": at(10 * DAY)}),
    )
    .await;
    // Stripe: a grant that becomes effective in three days and expires in twenty.
    emu.grant(
        &key,
        &cus,
        700,
        &format!(
            "effective_at={}&expires_at={}",
            T0 + 3 * 86_400,
            T0 + 20 * 86_400
        ),
    )
    .await;
    let mut seen = Vec::new();
    for day in [0, 3, 10, 17, 20, 24, 31, 40, 41, 45, 70] {
        if day > 0 {
            emu.freeze(&key, T0 + day * DAY).await;
        }
        seen.push(json!([day, agree(&emu, &key, &c).await]));
    }
    assert_json_snapshot!("balances_by_day", seen);
}

#[tokio::test]
async fn a_stripe_test_clock_drives_native_applications() {
    let emu = Emu::start().await;
    let key = emu.tenant("cross_test_clock").await;
    let clock = emu
        .post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={}", T0 - 30 * 86_400),
        )
        .await
        .id();
    let cus = emu.customer(&key, &format!("test_clock={clock}")).await;
    let c = native_customer(&cus);
    let p = plan(&emu, &key, "Pro").await;
    grant(
        &emu,
        &key,
        json!({"name": "Monthly", "scope": "PLAN", "plan_id": p, "credits": "4",
               "cadence": "RECURRING", "period": "MONTHLY", "period_count": 1,
               "expiration_type": "NEVER"}),
    )
    .await;
    // The subscription starts at the clock's now, a month before the tenant's.
    let sub = subscription(&emu, &key, &c, &p, None).await;
    let s = get(&emu, &key, &format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(s.body["start_date"], json!(at(-30 * DAY)));
    assert_eq!(agree(&emu, &key, &c).await, 400);
    // Moving the tenant clock does not move the customer's.
    emu.freeze(&key, T0 + 90 * DAY).await;
    assert_eq!(agree(&emu, &key, &c).await, 400);
    // Advancing the test clock three months applies three more months.
    let r = emu
        .post(
            &key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={}", T0 + 62 * 86_400),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(agree(&emu, &key, &c).await, 1600);
    let listed = emu.get(&key, &format!("{GRANTS}?customer={cus}")).await;
    let effective: Vec<Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| json!([g["effective_at"], g["test_clock"] == json!(clock)]))
        .collect();
    assert_json_snapshot!("test_clock_applications", effective);
}

#[tokio::test]
async fn conversion_rates_split_wallets_but_not_the_balance() {
    let emu = Emu::start().await;
    let key = emu.tenant("cross_rates").await;
    let (c, _, sub) = subscribed(&emu, &key).await;
    let cus = stripe_customer(&c);
    grant(
        &emu,
        &key,
        json!({"name": "Rated", "scope": "SUBSCRIPTION", "subscription_id": sub,
               "credits": "10", "cadence": "ONETIME", "expiration_type": "NEVER",
               "start_date": T0_RFC, "conversion_rate": "2"}),
    )
    .await;
    // A Stripe grant lands in the customer's first usd wallet, whose rate is 2.
    emu.grant(&key, &cus, 300, "").await;
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    let w = &wallets.body[0];
    assert_eq!(
        (&w["conversion_rate"], &w["balance"], &w["credit_balance"]),
        (&json!("2"), &json!("23"), &json!("11.5"))
    );
    assert_eq!(agree(&emu, &key, &c).await, 2300);
    let listed = emu.get(&key, &format!("{GRANTS}?customer={cus}")).await;
    let values: Vec<Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["amount"]["monetary"]["value"].clone())
        .collect();
    assert_eq!(values, vec![json!(300), json!(2000)]);
    // A rule with another explicit rate gets a wallet of its own.
    grant(
        &emu,
        &key,
        json!({"name": "Other rate", "scope": "SUBSCRIPTION", "subscription_id": sub,
               "credits": "1", "cadence": "ONETIME", "expiration_type": "NEVER",
               "start_date": T0_RFC, "conversion_rate": "0.5"}),
    )
    .await;
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    assert_eq!(wallets.body.as_array().unwrap().len(), 2);
    assert_eq!(wallets.body[1]["balance"], "0.5");
    assert_eq!(agree(&emu, &key, &c).await, 2350);
}

/// A native priority outside Stripe's 0–100 shows as the nearer end in the Stripe view, and the
/// ledger still spends by the grant's own value.
#[tokio::test]
async fn native_priorities_outside_stripes_range_show_as_its_ends() {
    let emu = Emu::start().await;
    let key = emu.tenant("cross_priority_clamp").await;
    let (c, _, sub) = subscribed(&emu, &key).await;
    for (name, priority) in [("Low", 200), ("High", -5)] {
        grant(
            &emu,
            &key,
            json!({"name": name, "scope": "SUBSCRIPTION", "subscription_id": sub,
                   "credits": "5", "cadence": "ONETIME", "expiration_type": "NEVER",
                   "priority": priority, "start_date": T0_RFC}),
        )
        .await;
    }
    let cus = stripe_customer(&c);
    let listed = emu.get(&key, &format!("{GRANTS}?customer={cus}")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let shown: Vec<(String, i64)> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown, [("High".to_string(), 0), ("Low".to_string(), 100)]);
}
