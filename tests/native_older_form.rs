//! The older create form of `POST /v1/creditgrants` (`amount`, `currency`, `expire_in_days`), as
//! Flexprice's published page still shows it, over a real socket: the documented body against a real
//! plan, what every read answers, each conflict with the newer fields, where the new checks sit in
//! Flexprice's order, and what a grant's currency means for the subscriptions it is copied into and
//! the wallets its credits land in.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::native::*;
use support::{Emu, T0};

/// The body of Flexprice's published `POST /v1/creditgrants` example, byte for byte but for the
/// plan id.
const DOCUMENTED: &str = r#"{"amount": 123, "cadence": "ONETIME", "currency": "usd", "expire_in_days": 30, "metadata": {},
 "name": "Welcome credits", "period": "DAILY", "period_count": 1, "plan_id": "{plan}", "priority": 1, "scope": "PLAN"}"#;

/// A POST of raw JSON text, as a client copying the page would send it.
async fn post_text(emu: &Emu, key: &str, path: &str, body: &str) -> support::Resp {
    emu.raw(
        "POST",
        path,
        &[("x-api-key", key), ("content-type", "application/json")],
        body,
    )
    .await
}

/// `base` with `extra`'s fields set (a `null` removes the field).
fn with(base: &Value, extra: Value) -> Value {
    let mut b = base.clone();
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v.clone();
        }
    }
    b
}

/// The grants of a list answer, reduced to the fields this file is about.
fn currencies(r: &support::Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    let items: Vec<Value> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let mut o = serde_json::Map::new();
            for f in [
                "name",
                "scope",
                "credits",
                "amount",
                "currency",
                "expiration_type",
                "expiration_duration",
                "expiration_duration_unit",
                "expire_in_days",
            ] {
                if let Some(v) = g.get(f) {
                    o.insert(f.to_string(), v.clone());
                }
            }
            Value::Object(o)
        })
        .collect();
    json!({"items": items, "total": r.body["pagination"]["total"]})
}

#[tokio::test]
async fn the_documented_body_is_accepted_and_read_back_as_sent() {
    let emu = Emu::start().await;
    let key = emu.tenant("older_documented").await;
    let p = plan(&emu, &key, "Pro").await;
    let created = post_text(
        &emu,
        &key,
        "/v1/creditgrants",
        &DOCUMENTED.replace("{plan}", &p),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_json_snapshot!("documented_body_created", created.body);
    // What was sent comes back under the names it was sent with, and under the newer ones.
    assert_eq!(created.body["amount"], "123");
    assert_eq!(created.body["credits"], "123");
    assert_eq!(created.body["currency"], "usd");
    assert_eq!(created.body["expire_in_days"], 30);
    assert_eq!(created.body["expiration_type"], "DURATION");
    let id = created.id();

    // Every read answers the same object: retrieve, the grant list, the plan's list.
    let got = get(&emu, &key, &format!("/v1/creditgrants/{id}")).await;
    assert_eq!(got.body, created.body);
    let listed = get(&emu, &key, "/v1/creditgrants").await;
    assert_eq!(listed.body["items"], json!([created.body]));
    let on_plan = get(&emu, &key, &format!("/v1/plans/{p}/creditgrants")).await;
    assert_eq!(on_plan.body["items"], json!([created.body]));
    // A rename keeps the older fields.
    let put = call(
        &emu,
        "PUT",
        &key,
        &format!("/v1/creditgrants/{id}"),
        Some(json!({"name": "Welcome"})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(
        (
            &put.body["amount"],
            &put.body["currency"],
            &put.body["expire_in_days"]
        ),
        (&json!("123"), &json!("usd"), &json!(30))
    );

    // A usd subscription copies it; the copy keeps its currency and its form, and its 123 credits
    // land in the usd wallet, where both APIs see them.
    let c = customer(&emu, &key, "ext-1").await;
    let sub = subscription(&emu, &key, &c, &p, None).await;
    let copies = get(
        &emu,
        &key,
        &format!("/v1/creditgrants?subscription_ids={sub}"),
    )
    .await;
    assert_eq!(copies.body["pagination"]["total"], 1, "{}", copies.text);
    assert_json_snapshot!("documented_body_copied", copies.body["items"][0]);
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    let wallet_currencies: Vec<&Value> = wallets
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["currency"])
        .collect();
    assert_eq!(wallet_currencies, vec!["usd"]);
    assert_eq!(native_available(&emu, &key, &c).await, 12_300);
    assert_eq!(stripe_available(&emu, &key, &c), 12_300);
    // The credits expire 30 days after the subscription's start.
    let lots = emu
        .get(
            &key,
            &format!("/v1/billing/credit_grants?customer={}", stripe_customer(&c)),
        )
        .await;
    assert_eq!(lots.body["data"][0]["expires_at"], json!(T0 + 30 * DAY));

    // A subscription in another currency cannot take it.
    let eur = post(
        &emu,
        &key,
        "/v1/subscriptions",
        json!({"customer_id": c, "plan_id": p, "currency": "eur", "billing_period": "MONTHLY"}),
    )
    .await;
    assert_json_snapshot!("documented_body_eur_subscription", outcome(&eur));
}

#[tokio::test]
async fn reads_and_lists_show_the_currency() {
    let emu = Emu::start().await;
    let key = emu.tenant("older_reads").await;
    let p = plan(&emu, &key, "Pro").await;
    let newer = json!({"name": "newer", "scope": "PLAN", "plan_id": p, "credits": "10",
                       "cadence": "ONETIME", "expiration_type": "NEVER"});
    let mut made = serde_json::Map::new();
    let bodies = [
        ("newer_without_currency", newer.clone()),
        (
            "newer_with_currency",
            with(&newer, json!({"name": "newer eur", "currency": "EUR"})),
        ),
        (
            "older_amount_without_currency",
            with(
                &newer,
                json!({"name": "older amount", "credits": null, "amount": "2.50"}),
            ),
        ),
        (
            "older_amount_equal_to_credits",
            with(
                &newer,
                json!({"name": "older both", "credits": 7, "amount": "7.000", "currency": "usd"}),
            ),
        ),
        (
            "older_expire_in_days_with_credits",
            with(
                &newer,
                json!({"name": "older days", "expiration_type": null, "expire_in_days": 5,
                       "currency": "jpy"}),
            ),
        ),
        (
            "older_expire_in_days_spelled_out_too",
            with(
                &newer,
                json!({"name": "older days spelled", "expiration_type": "DURATION",
                       "expiration_duration": 5, "expiration_duration_unit": "DAY",
                       "expire_in_days": 5}),
            ),
        ),
        (
            "empty_currency_is_no_currency",
            with(&newer, json!({"name": "empty currency", "currency": ""})),
        ),
    ];
    for (name, body) in bodies {
        emu.freeze(&key, T0 + 1 + made.len() as i64).await;
        let r = post(&emu, &key, "/v1/creditgrants", body).await;
        assert_eq!(r.status, 201, "{name}: {}", r.text);
        let got = get(&emu, &key, &format!("/v1/creditgrants/{}", r.id())).await;
        assert_eq!(
            got.body, r.body,
            "{name}: a read answers what the create did"
        );
        made.insert(name.to_string(), r.body);
    }
    assert_json_snapshot!("created", Value::Object(made));
    let out = json!({
        "list": currencies(&get(&emu, &key, "/v1/creditgrants?order=asc").await),
        "plan_list": currencies(&get(&emu, &key, &format!("/v1/plans/{p}/creditgrants")).await),
        "sort_by_currency_nulls_last": currencies(&get(&emu, &key, "/v1/creditgrants?sort=currency&order=asc").await),
    });
    assert_json_snapshot!("lists", out);
}

#[tokio::test]
async fn conflicts_bad_values_and_the_order_of_checks() {
    let emu = Emu::start().await;
    let key = emu.tenant("older_validation").await;
    let (_, p, sub) = subscribed(&emu, &key).await;
    let older = json!({"name": "g", "scope": "PLAN", "plan_id": p, "amount": 123,
                       "currency": "usd", "cadence": "ONETIME", "expire_in_days": 30});
    let older_sub = with(
        &older,
        json!({"scope": "SUBSCRIPTION", "plan_id": null, "subscription_id": sub,
               "start_date": T0_RFC}),
    );
    let cases: Vec<(&str, Value)> = vec![
        // Binding: the older fields have types too.
        (
            "0_amount_not_a_decimal",
            with(&older, json!({"amount": "lots"})),
        ),
        (
            "0_amount_an_object",
            with(&older, json!({"amount": {"v": 1}})),
        ),
        (
            "0_currency_a_number",
            with(&older, json!({"currency": 840})),
        ),
        (
            "0_expire_in_days_a_string",
            with(&older, json!({"expire_in_days": "30"})),
        ),
        (
            "0_expire_in_days_a_fraction",
            with(&older, json!({"expire_in_days": 1.5})),
        ),
        // Step 4: amount stands in for credits.
        (
            "4_amount_and_credits_differ",
            with(&older, json!({"credits": "124"})),
        ),
        (
            "4_amount_and_credits_differ_beyond_any_range",
            with(&older, json!({"credits": "1e+30", "amount": "1e+31"})),
        ),
        ("4_amount_zero", with(&older, json!({"amount": "0.00"}))),
        ("4_amount_negative", with(&older, json!({"amount": -1}))),
        (
            "4_amount_beyond_any_range",
            with(&older, json!({"amount": "-1e+30"})),
        ),
        (
            "4_neither_amount_nor_credits",
            with(&older, json!({"amount": null})),
        ),
        (
            "4_both_zero_names_credits",
            with(&older, json!({"amount": 0, "credits": "0"})),
        ),
        // Step 4, then the currency.
        (
            "4b_currency_unknown",
            with(&older, json!({"currency": "xyz"})),
        ),
        (
            "4b_currency_not_a_code",
            with(&older, json!({"currency": "dollars"})),
        ),
        (
            "4b_currency_with_spaces",
            with(&older, json!({"currency": " usd"})),
        ),
        // Step 6: expire_in_days is an expiration_type of DURATION.
        (
            "6_expire_in_days_with_never",
            with(&older, json!({"expiration_type": "NEVER"})),
        ),
        (
            "6_expire_in_days_with_billing_cycle",
            with(&older, json!({"expiration_type": "BILLING_CYCLE"})),
        ),
        (
            "6_expire_in_days_with_an_unknown_type",
            with(&older, json!({"expiration_type": "SOMETIMES"})),
        ),
        (
            "6_no_expiry_at_all",
            with(&older, json!({"expire_in_days": null})),
        ),
        // Step 10: its unit is DAY and its duration N.
        (
            "10_expire_in_days_with_another_unit",
            with(
                &older,
                json!({"expiration_type": "DURATION", "expiration_duration_unit": "WEEK"}),
            ),
        ),
        (
            "10_expire_in_days_with_an_unknown_unit",
            with(&older, json!({"expiration_duration_unit": "HOUR"})),
        ),
        (
            "10_expire_in_days_with_another_duration",
            with(&older, json!({"expiration_duration": 7})),
        ),
        (
            "10_expire_in_days_zero",
            with(&older, json!({"expire_in_days": 0})),
        ),
        (
            "10_expire_in_days_negative",
            with(&older, json!({"expire_in_days": -30})),
        ),
        // Steps 19: the currency against the subscription's, after Flexprice's own checks.
        (
            "19_currency_differs_from_the_subscription",
            with(&older_sub, json!({"currency": "eur"})),
        ),
        // The first failure wins.
        (
            "order_3a_plan_id_before_4_amount",
            with(&older, json!({"plan_id": null, "amount": 0})),
        ),
        (
            "order_4_amount_before_4b_currency",
            with(&older, json!({"amount": 0, "currency": "xyz"})),
        ),
        (
            "order_4_conflict_before_4b_currency",
            with(&older, json!({"credits": 1, "currency": "xyz"})),
        ),
        (
            "order_4b_currency_before_5_cadence",
            with(&older, json!({"currency": "xyz", "cadence": "WEEKLY"})),
        ),
        (
            "order_6_conflict_before_7_period",
            with(
                &older,
                json!({"cadence": "RECURRING", "expiration_type": "NEVER"}),
            ),
        ),
        (
            "order_7_period_before_10_expire_in_days",
            with(&older, json!({"cadence": "RECURRING", "expire_in_days": 0})),
        ),
        (
            "order_10_expire_in_days_before_11_rates",
            with(&older, json!({"expire_in_days": 0, "conversion_rate": "0"})),
        ),
        (
            "order_18_start_date_before_19_currency",
            with(
                &older_sub,
                json!({"currency": "eur", "start_date": at(-DAY)}),
            ),
        ),
        (
            "order_19_currency_before_20_storage",
            with(
                &older_sub,
                json!({"currency": "eur", "amount": "1000000000000"}),
            ),
        ),
        (
            "20_amount_more_than_12_integer_digits",
            with(&older_sub, json!({"amount": "1000000000000"})),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, body) in cases {
        let r = post(&emu, &key, "/v1/creditgrants", body).await;
        assert_ne!(r.status, 201, "{name} was accepted: {}", r.text);
        out.insert(name.to_string(), outcome(&r));
    }
    assert_json_snapshot!("refused", Value::Object(out));
    // Nothing refused was stored: the tenant holds no grant yet.
    let all = get(&emu, &key, "/v1/creditgrants").await;
    assert_eq!(all.body["pagination"]["total"], 0, "{}", all.text);

    // The same body in the subscription's currency is accepted, and applied at once into it.
    let ok = post(&emu, &key, "/v1/creditgrants", older_sub.clone()).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_json_snapshot!("subscription_grant_created", ok.body);
    let c = get(&emu, &key, &format!("/v1/subscriptions/{sub}"))
        .await
        .body["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(native_available(&emu, &key, &c).await, 12_300);
    assert_eq!(stripe_available(&emu, &key, &c), 12_300);
}

#[tokio::test]
async fn a_grant_currency_decides_which_subscriptions_and_wallets_take_it() {
    let emu = Emu::start().await;
    let key = emu.tenant("older_currency").await;
    let c = customer(&emu, &key, "ext-1").await;
    let p = plan(&emu, &key, "Euro plan").await;
    let eur_grant = grant(
        &emu,
        &key,
        json!({"name": "Euro credits", "scope": "PLAN", "plan_id": p, "credits": "4.5",
               "currency": "eur", "cadence": "ONETIME", "expiration_type": "NEVER"}),
    )
    .await;
    // A grant without a currency fits any subscription.
    grant(
        &emu,
        &key,
        json!({"name": "Any currency", "scope": "PLAN", "plan_id": p, "credits": "1",
               "cadence": "ONETIME", "expiration_type": "NEVER"}),
    )
    .await;
    let sub_body = |currency: &str| json!({"customer_id": c, "plan_id": p, "currency": currency, "billing_period": "MONTHLY"});

    // usd: the euro grant would be copied in, so the subscription is refused and nothing is made.
    let usd = post(&emu, &key, "/v1/subscriptions", sub_body("usd")).await;
    let subs = get(&emu, &key, "/v1/subscriptions").await;
    assert_eq!(subs.body["pagination"]["total"], 0, "{}", subs.text);
    // Rules given inline replace the plan's, so the plan's currency does not matter; an inline rule
    // in another currency is refused the same way.
    let inline_mismatch = post(
        &emu,
        &key,
        "/v1/subscriptions",
        with(
            &sub_body("usd"),
            json!({"credit_grants": [{"name": "inline", "amount": 1, "currency": "gbp",
                                      "cadence": "ONETIME", "expire_in_days": 3}]}),
        ),
    )
    .await;
    assert_json_snapshot!(
        "subscription_refused",
        json!({"plan_grant_in_eur": outcome(&usd), "inline_grant_in_gbp": outcome(&inline_mismatch)})
    );
    assert!(usd.text.contains(&eur_grant), "{}", usd.text);
    let inline_ok = post(
        &emu,
        &key,
        "/v1/subscriptions",
        with(
            &sub_body("usd"),
            json!({"credit_grants": [{"name": "inline", "amount": 1, "currency": "USD",
                                      "cadence": "ONETIME", "expire_in_days": 3}]}),
        ),
    )
    .await;
    assert_eq!(inline_ok.status, 201, "{}", inline_ok.text);
    let inline_sub = inline_ok.id();
    let inline_rules = get(
        &emu,
        &key,
        &format!("/v1/creditgrants?subscription_ids={inline_sub}"),
    )
    .await;
    assert_json_snapshot!("inline_rule", currencies(&inline_rules));

    // eur: both plan grants are copied; their credits land in the customer's eur wallet.
    let eur = post(&emu, &key, "/v1/subscriptions", sub_body("eur")).await;
    assert_eq!(eur.status, 201, "{}", eur.text);
    let wallets = get(&emu, &key, &format!("/v1/customers/{c}/wallets")).await;
    let view: Vec<Value> = wallets
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|w| json!({"currency": w["currency"], "credit_balance": w["credit_balance"]}))
        .collect();
    let stripe = emu
        .get(
            &key,
            &format!("/v1/billing/credit_grants?customer={}", stripe_customer(&c)),
        )
        .await;
    assert_eq!(stripe.status, 200, "{}", stripe.text);
    let stripe_view: Vec<Value> = stripe.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| json!({"name": g["name"], "amount": g["amount"]}))
        .collect();
    assert_json_snapshot!(
        "wallets_and_stripe_grants",
        json!({"wallets": view, "stripe_grants": stripe_view})
    );

    // Once the euro grant is archived it is no longer copied, and usd subscriptions are fine.
    let del = call(
        &emu,
        "DELETE",
        &key,
        &format!("/v1/creditgrants/{eur_grant}"),
        None,
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.text);
    let usd = post(&emu, &key, "/v1/subscriptions", sub_body("usd")).await;
    assert_eq!(usd.status, 201, "{}", usd.text);
}
