//! What native grants hang on, over a real socket: customers, plans, subscriptions (with plan
//! grants copied onto them), applications over time with each expiry rule, and wallets.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::native::*;
use support::{Emu, T0};

#[tokio::test]
async fn customers() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_customers").await;
    let created = post(
        &emu,
        &key,
        "/v1/customers",
        json!({"external_id": "ext-ada", "name": "Ada", "email": "ada@example.com",
               "metadata": {"team": "ci"}, "unknown_field": true}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_json_snapshot!("customer_created", created.body);
    let id = created.id();
    assert_eq!(
        get(&emu, &key, &format!("/v1/customers/{id}")).await.body,
        created.body
    );
    let second = customer(&emu, &key, "ext-bob").await;

    let out = json!({
        "duplicate_external_id": outcome(&post(&emu, &key, "/v1/customers", json!({"external_id": "ext-ada"})).await),
        "missing_external_id": outcome(&post(&emu, &key, "/v1/customers", json!({"name": "x"})).await),
        "bad_email": outcome(&post(&emu, &key, "/v1/customers", json!({"external_id": "e", "email": "nope"})).await),
        "address_not_modelled": outcome(&post(&emu, &key, "/v1/customers", json!({"external_id": "e", "address_city": "Paris"})).await),
        "unknown_id": outcome(&get(&emu, &key, "/v1/customers/cust_nope").await),
        "stripe_spelling_is_not_native": outcome(&get(&emu, &key, &format!("/v1/customers/{}", stripe_customer(&id))).await),
    });
    assert_json_snapshot!("customer_errors", out);

    let list = get(&emu, &key, "/v1/customers").await;
    let ids: Vec<Value> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(second), json!(id)]);
    assert_eq!(
        list.body["pagination"],
        json!({"total": 2, "limit": 50, "offset": 50})
    );
    let filtered = get(&emu, &key, "/v1/customers?external_id=ext-ada").await;
    assert_eq!(filtered.body["items"][0]["id"], json!(id));
    assert_eq!(filtered.body["pagination"]["total"], 1);
}

#[tokio::test]
async fn plans_with_inline_grants() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_plans").await;
    let monthly = json!({"name": "Monthly", "credits": "10", "cadence": "RECURRING",
                         "period": "MONTHLY", "period_count": 1, "expiration_type": "NEVER"});
    let created = post(
        &emu,
        &key,
        "/v1/plans",
        json!({"name": "Pro", "lookup_key": "pro", "description": "The pro plan",
               "metadata": {"k": "v"}, "credit_grants": [monthly]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_json_snapshot!("plan_created", created.body);
    let p = created.id();
    let grants = get(&emu, &key, &format!("/v1/plans/{p}/creditgrants")).await;
    assert_eq!(grants.body["pagination"]["total"], 1);
    assert_eq!(grants.body["items"][0]["plan_id"], json!(p));
    assert_eq!(grants.body["items"][0]["scope"], "PLAN");

    let out = json!({
        "name_missing": outcome(&post(&emu, &key, "/v1/plans", json!({"lookup_key": "x"})).await),
        "inline_grant_invalid": outcome(&post(&emu, &key, "/v1/plans",
            json!({"name": "Bad", "credit_grants": [{"name": "g", "credits": "1", "cadence": "ONETIME"}]})).await),
        "inline_grants_rates_differ": outcome(&post(&emu, &key, "/v1/plans",
            json!({"name": "Bad", "credit_grants": [
                {"name": "g1", "credits": "1", "cadence": "ONETIME", "expiration_type": "NEVER"},
                {"name": "g2", "credits": "1", "cadence": "ONETIME", "expiration_type": "NEVER", "conversion_rate": "2"},
            ]})).await),
        "prices_not_modelled": outcome(&post(&emu, &key, "/v1/plans", json!({"name": "P", "prices": [{}]})).await),
        "unknown_plan": outcome(&get(&emu, &key, "/v1/plans/plan_nope").await),
        "delete_unknown_plan": outcome(&call(&emu, "DELETE", &key, "/v1/plans/plan_nope", None).await),
    });
    assert_json_snapshot!("plan_errors", out);
    // Nothing of the failed requests was created.
    let plans = get(&emu, &key, "/v1/plans").await;
    assert_eq!(plans.body["pagination"]["total"], 1, "{}", plans.text);
    assert_eq!(
        get(&emu, &key, "/v1/creditgrants").await.body["pagination"]["total"],
        1
    );

    let del = call(&emu, "DELETE", &key, &format!("/v1/plans/{p}"), None).await;
    assert_eq!(
        del.body,
        json!({"message": "plan deleted successfully"}),
        "{}",
        del.text
    );
    assert_eq!(
        get(&emu, &key, &format!("/v1/plans/{p}")).await.body["status"],
        "archived"
    );
}

#[tokio::test]
async fn subscriptions_copy_plan_grants_and_apply_them() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_subscriptions").await;
    let c = customer(&emu, &key, "ext-1").await;
    let p = plan(&emu, &key, "Pro").await;
    grant(
        &emu,
        &key,
        json!({"name": "Monthly", "scope": "PLAN", "plan_id": p, "credits": "10",
               "cadence": "RECURRING", "period": "MONTHLY", "period_count": 1,
               "expiration_type": "BILLING_CYCLE", "priority": 2}),
    )
    .await;
    grant(
        &emu,
        &key,
        json!({"name": "Welcome", "scope": "PLAN", "plan_id": p, "credits": "5",
               "cadence": "ONETIME", "expiration_type": "DURATION",
               "expiration_duration": 1, "expiration_duration_unit": "WEEK"}),
    )
    .await;
    let created = post(
        &emu,
        &key,
        "/v1/subscriptions",
        json!({"customer_id": c, "plan_id": p, "currency": "USD", "billing_period": "MONTHLY",
               "lookup_key": "sub-1", "metadata": {"m": "1"}}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_json_snapshot!("subscription_created", created.body);
    let sub = created.id();
    assert_eq!(
        get(&emu, &key, &format!("/v1/subscriptions/{sub}"))
            .await
            .body,
        created.body
    );

    // Both plan grants were copied onto the subscription and applied at its start.
    let copies = get(
        &emu,
        &key,
        &format!("/v1/creditgrants?subscription_ids={sub}&order=asc"),
    )
    .await;
    assert_json_snapshot!("subscription_grant_copies", copies.body);
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    assert_json_snapshot!("wallets_at_start", wallets.body);
    let wallet = wallets.body[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        get(&emu, &key, &format!("/v1/wallets/{wallet}")).await.body,
        wallets.body[0]
    );
    let upcoming = get(&emu, &key, &format!("/v1/customers/{c}/grants/upcoming")).await;
    assert_eq!(
        upcoming.body["pagination"]["total"], 1,
        "the next monthly one"
    );
    assert_eq!(
        upcoming.body["items"][0]["scheduled_for"],
        json!(at(30 * DAY))
    );

    // Ten days on: the welcome credits expired after a week; the monthly ones remain.
    emu.freeze(&key, T0 + 10 * DAY).await;
    let balance = get(
        &emu,
        &key,
        &format!("/v1/wallets/{wallet}/balance/real-time"),
    )
    .await;
    assert_json_snapshot!("balance_after_ten_days", balance.body);

    // Two months on: each month's credits expired with its billing cycle, the third applied.
    emu.freeze(&key, T0 + 62 * DAY).await;
    let txns = get(
        &emu,
        &key,
        &format!("/v1/wallets/{wallet}/transactions?order=asc"),
    )
    .await;
    assert_json_snapshot!("transactions_after_two_months", txns.body);
    let balance = get(
        &emu,
        &key,
        &format!("/v1/wallets/{wallet}/balance/real-time"),
    )
    .await;
    assert_eq!(balance.body["real_time_credit_balance"], "10");
    let page = get(
        &emu,
        &key,
        &format!("/v1/wallets/{wallet}/transactions?limit=2&offset=1"),
    )
    .await;
    assert_eq!(
        page.body["pagination"],
        json!({"total": 7, "limit": 2, "offset": 3})
    );
    assert_eq!(page.body["items"][0]["id"], txns.body["items"][5]["id"]);

    // Cancelling ends the subscription's grants; nothing more is applied.
    let cancel = post(
        &emu,
        &key,
        &format!("/v1/subscriptions/{sub}/cancel"),
        json!({"cancellation_type": "immediate", "reason": "churn"}),
    )
    .await;
    assert_json_snapshot!("subscription_cancelled", cancel.body);
    emu.freeze(&key, T0 + 200 * DAY).await;
    let after = get(&emu, &key, &format!("/v1/wallets/{wallet}/transactions")).await;
    assert_eq!(
        after.body["pagination"]["total"], 8,
        "only the last month's expiry"
    );
    let out = json!({
        "upcoming_of_cancelled": outcome(&get(&emu, &key, &format!("/v1/subscriptions/{sub}/grants/upcoming")).await),
        "upcoming_of_unknown": outcome(&get(&emu, &key, "/v1/subscriptions/subs_nope/grants/upcoming").await),
        "customer_upcoming_of_unknown": outcome(&get(&emu, &key, "/v1/customers/cust_nope/grants/upcoming").await),
        "cancel_again": outcome(&post(&emu, &key, &format!("/v1/subscriptions/{sub}/cancel"), json!({"cancellation_type": "immediate"})).await),
        "cancel_end_of_period": outcome(&post(&emu, &key, &format!("/v1/subscriptions/{sub}/cancel"), json!({"cancellation_type": "end_of_period"})).await),
        "cancel_without_type": outcome(&post(&emu, &key, &format!("/v1/subscriptions/{sub}/cancel"), json!({})).await),
        "unknown_subscription": outcome(&get(&emu, &key, "/v1/subscriptions/subs_nope").await),
        "unknown_wallet": outcome(&get(&emu, &key, "/v1/wallets/wallet_nope").await),
        "unknown_wallet_balance": outcome(&get(&emu, &key, "/v1/wallets/wallet_nope/balance/real-time").await),
        "wallets_of_unknown_customer": outcome(&get(&emu, &key, "/v1/customers/cust_nope/wallets").await),
    });
    assert_json_snapshot!("subscription_errors_after_cancel", out);
}

#[tokio::test]
async fn a_top_up_is_priced_at_the_top_up_rate_and_a_write_off_is_keyed_by_its_lot() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_rates").await;
    let c = customer(&emu, &key, "ext-rates").await;
    let p = plan(&emu, &key, "Rates").await;
    grant(
        &emu,
        &key,
        json!({"name": "Week", "scope": "PLAN", "plan_id": p, "credits": "10",
               "conversion_rate": "2", "topup_conversion_rate": "4",
               "cadence": "ONETIME", "expiration_type": "DURATION",
               "expiration_duration": 1, "expiration_duration_unit": "WEEK"}),
    )
    .await;
    let created = post(
        &emu,
        &key,
        "/v1/subscriptions",
        json!({"customer_id": c, "plan_id": p, "currency": "USD", "billing_period": "MONTHLY"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    let wallet = wallets.body[0]["id"].as_str().unwrap().to_string();
    assert_eq!(wallets.body[0]["conversion_rate"], "2");
    assert_eq!(wallets.body[0]["topup_conversion_rate"], "4");
    // The wallet is worth what its credits buy (10 × 2); the top-up cost 10 × 4.
    assert_eq!(wallets.body[0]["balance"], "20");

    emu.freeze(&key, T0 + 8 * DAY).await;
    let txns = get(
        &emu,
        &key,
        &format!("/v1/wallets/{wallet}/transactions?order=asc"),
    )
    .await;
    let items = txns.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", txns.text);
    let (top_up, expiry) = (&items[0], &items[1]);
    assert_eq!(top_up["transaction_reason"], "SUBSCRIPTION_CREDIT_GRANT");
    assert_eq!(top_up["credit_amount"], "10");
    assert_eq!(top_up["amount"], "40");
    assert_eq!(expiry["transaction_reason"], "CREDIT_EXPIRED");
    assert_eq!(expiry["credit_amount"], "10");
    assert_eq!(expiry["amount"], "20");
    assert_eq!(expiry["idempotency_key"], top_up["id"]);
    assert_ne!(expiry["id"], top_up["id"]);
}

#[tokio::test]
async fn subscription_validation() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_sub_validation").await;
    let c = customer(&emu, &key, "ext-1").await;
    let p = plan(&emu, &key, "Pro").await;
    let ok = |extra: Value| {
        let mut b = json!({"customer_id": c, "plan_id": p, "currency": "usd",
                           "billing_cadence": "RECURRING", "billing_period": "MONTHLY"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases: Vec<(&str, Value)> = vec![
        ("no_customer", ok(json!({"customer_id": null}))),
        (
            "required_fields",
            ok(json!({"plan_id": null, "currency": null, "billing_period": null})),
        ),
        ("currency_length", ok(json!({"currency": "dollars"}))),
        ("currency_unknown", ok(json!({"currency": "xyz"}))),
        (
            "cadence_unknown",
            ok(json!({"billing_cadence": "SOMETIMES"})),
        ),
        ("period_unknown", ok(json!({"billing_period": "YEARLY"}))),
        ("calendar_billing", ok(json!({"billing_cycle": "calendar"}))),
        ("negative_count", ok(json!({"billing_period_count": -1}))),
        ("draft_status", ok(json!({"subscription_status": "draft"}))),
        ("trial_not_modelled", ok(json!({"trial_end": at(DAY)}))),
        (
            "customer_not_found",
            ok(json!({"customer_id": "cust_nope"})),
        ),
        (
            "external_customer_not_found",
            ok(json!({"customer_id": null, "external_customer_id": "nope"})),
        ),
        ("plan_not_found", ok(json!({"plan_id": "plan_nope"}))),
        (
            "end_before_start",
            ok(json!({"start_date": at(DAY), "end_date": T0_RFC})),
        ),
        (
            "inline_grant_before_start",
            ok(
                json!({"credit_grants": [{"name": "g", "credits": "1", "cadence": "ONETIME",
                                         "expiration_type": "NEVER", "start_date": at(-DAY)}]}),
            ),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, body) in cases {
        let r = post(&emu, &key, "/v1/subscriptions", body).await;
        assert_ne!(r.status, 201, "{name} was accepted: {}", r.text);
        out.insert(name.to_string(), outcome(&r));
    }
    assert_json_snapshot!("subscription_validation", Value::Object(out));
    assert_eq!(
        get(&emu, &key, "/v1/subscriptions").await.body["pagination"]["total"],
        0
    );

    // By external id, with inline grants instead of the plan's.
    let r = post(
        &emu,
        &key,
        "/v1/subscriptions",
        ok(json!({"customer_id": null, "external_customer_id": "ext-1",
                  "credit_grants": [{"name": "Inline", "credits": "3", "cadence": "ONETIME",
                                     "expiration_type": "NEVER"}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sub = r.id();
    let grants = get(
        &emu,
        &key,
        &format!("/v1/creditgrants?subscription_ids={sub}"),
    )
    .await;
    assert_eq!(grants.body["pagination"]["total"], 1);
    assert_eq!(grants.body["items"][0]["name"], "Inline");
    assert_eq!(grants.body["items"][0]["start_date"], json!(T0_RFC));
    let list = get(&emu, &key, &format!("/v1/subscriptions?customer_id={c}")).await;
    assert_eq!(list.body["items"][0]["id"], json!(sub));
}

#[tokio::test]
async fn back_dated_grant_skips_what_already_expired() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_back_dated").await;
    let c = customer(&emu, &key, "ext-1").await;
    let p = plan(&emu, &key, "Pro").await;
    let sub = subscription(&emu, &key, &c, &p, Some(&at(-70 * DAY))).await;
    let g = post(
        &emu,
        &key,
        "/v1/creditgrants",
        json!({"name": "Monthly", "scope": "SUBSCRIPTION", "subscription_id": sub,
               "credits": "3", "cadence": "RECURRING", "period": "MONTHLY", "period_count": 1,
               "expiration_type": "DURATION", "expiration_duration": 45,
               "expiration_duration_unit": "DAY", "start_date": at(-70 * DAY)}),
    )
    .await;
    assert_eq!(g.status, 201, "{}", g.text);
    // The first period's credits (45 days from 70 days ago) would have expired: skipped. The next two apply now.
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    assert_eq!(wallets.body[0]["credit_balance"], "6");
    let wallet = wallets.body[0]["id"].as_str().unwrap();
    let txns = get(
        &emu,
        &key,
        &format!("/v1/wallets/{wallet}/transactions?order=asc"),
    )
    .await;
    let summary: Vec<Value> = txns.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            json!([
                t["type"],
                t["credit_amount"],
                t["expiry_date"],
                t["created_at"]
            ])
        })
        .collect();
    assert_json_snapshot!("back_dated_transactions", summary);
    let upcoming = get(
        &emu,
        &key,
        &format!("/v1/subscriptions/{sub}/grants/upcoming"),
    )
    .await;
    assert_eq!(
        upcoming.body["items"][0]["scheduled_for"],
        json!(at(21 * DAY))
    );
}
