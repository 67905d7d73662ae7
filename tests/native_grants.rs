//! The native `/v1/creditgrants` API over a real socket: auth, routing, the grant lifecycle for both
//! scopes, every validation message in Flexprice's order, and the list quirks.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::native::*;
use support::Emu;

fn plan_grant(plan: &str) -> Value {
    json!({
        "name": "Monthly credits", "scope": "PLAN", "plan_id": plan, "credits": "10",
        "cadence": "RECURRING", "period": "MONTHLY", "period_count": 1,
        "expiration_type": "BILLING_CYCLE", "priority": 1, "metadata": {"tier": "pro"},
    })
}

#[tokio::test]
async fn auth_routing_and_environment() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_auth").await;
    let raw = |headers: Vec<(&'static str, &'static str)>, path: &'static str| {
        let emu = &emu;
        async move { outcome(&emu.raw("GET", path, &headers, "").await) }
    };
    let out = json!({
        "no_key": raw(vec![], "/v1/creditgrants").await,
        "basic_auth": raw(vec![("authorization", "Basic c2tfdGVzdF8xOg==")], "/v1/creditgrants").await,
        "bearer_is_a_jwt": raw(vec![("authorization", "Bearer sk_test_1")], "/v1/creditgrants").await,
        "live_key": raw(vec![("x-api-key", "sk_live_123")], "/v1/creditgrants").await,
        "restricted_live_key": raw(vec![("x-api-key", "rk_live_123")], "/v1/creditgrants").await,
        "publishable_key": raw(vec![("x-api-key", "pk_test_123")], "/v1/creditgrants").await,
        "foreign_key": raw(vec![("x-api-key", "flexprice-dev-key")], "/v1/creditgrants").await,
        "native_only_customer_path": raw(vec![], "/v1/customers/cust_x/wallets").await,
        "unknown_route_with_key": outcome(&get(&emu, &key, "/v1/creditgrants/cg_1/extra").await),
        "unknown_route_without_key": raw(vec![], "/v1/creditgrants/cg_1/extra").await,
        "wrong_method": outcome(&call(&emu, "PATCH", &key, "/v1/creditgrants/cg_1", None).await),
    });
    assert_json_snapshot!("auth_and_routing", out);

    // A key reaches its world whatever X-Environment-ID says; the environment is the key's.
    let p = plan(&emu, &key, "Pro").await;
    let id = grant(&emu, &key, plan_grant(&p)).await;
    let r = emu
        .raw(
            "GET",
            &format!("/v1/creditgrants/{id}"),
            &[
                ("x-api-key", key.as_str()),
                ("x-environment-id", "env_other"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let other = emu.tenant("native_auth_other").await;
    let r2 = get(&emu, &other, &format!("/v1/creditgrants/{id}")).await;
    assert_eq!(r2.status, 404, "another key is another world");
    assert_ne!(
        r.body["environment_id"],
        json!(null),
        "every object carries its environment"
    );
}

#[tokio::test]
async fn plan_grant_lifecycle() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_plan_grant").await;
    let p = plan(&emu, &key, "Pro").await;
    let created = post(&emu, &key, "/v1/creditgrants", plan_grant(&p)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_json_snapshot!("plan_grant_created", created.body);
    let id = created.id();

    let got = get(&emu, &key, &format!("/v1/creditgrants/{id}")).await;
    assert_eq!(got.body, created.body);
    let listed = get(&emu, &key, &format!("/v1/plans/{p}/creditgrants")).await;
    assert_eq!(listed.body["items"], json!([created.body]));
    assert_eq!(
        listed.body["pagination"],
        json!({"total": 1, "limit": 0, "offset": 0})
    );

    // PUT replaces the metadata whole and renames.
    emu.freeze(&key, support::T0 + 60).await;
    let put = call(
        &emu,
        "PUT",
        &key,
        &format!("/v1/creditgrants/{id}"),
        Some(json!({"name": "Renamed", "metadata": {"new": "1"}})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["name"], "Renamed");
    assert_eq!(put.body["metadata"], json!({"new": "1"}));
    assert_eq!(put.body["updated_at"], json!(at(60)));
    assert_eq!(put.body["created_at"], json!(T0_RFC));
    // Empty metadata is left out, as Go's omitempty does.
    let put = call(
        &emu,
        "PUT",
        &key,
        &format!("/v1/creditgrants/{id}"),
        Some(json!({"metadata": {}})),
    )
    .await;
    assert!(put.body.get("metadata").is_none(), "{}", put.text);

    // DELETE archives a PLAN grant; it stays readable and listable, but not on the plan.
    let del = call(
        &emu,
        "DELETE",
        &key,
        &format!("/v1/creditgrants/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (del.status, del.body.clone()),
        (200, json!({"message": "credit grant deleted successfully"}))
    );
    let got = get(&emu, &key, &format!("/v1/creditgrants/{id}")).await;
    assert_eq!(got.body["status"], "archived");
    let listed = get(&emu, &key, &format!("/v1/plans/{p}/creditgrants")).await;
    assert_eq!(listed.body["items"], json!([]));
    let all = get(&emu, &key, "/v1/creditgrants").await;
    assert_eq!(
        all.body["pagination"]["total"], 1,
        "archived grants are listed by default"
    );

    // Deleting again, or ending it through PUT, fails; the PUT's rename is kept anyway.
    let again = call(
        &emu,
        "DELETE",
        &key,
        &format!("/v1/creditgrants/{id}"),
        None,
    )
    .await;
    let put_end = call(
        &emu,
        "PUT",
        &key,
        &format!("/v1/creditgrants/{id}"),
        Some(json!({"name": "Kept", "end_date": at(DAY)})),
    )
    .await;
    let renamed = get(&emu, &key, &format!("/v1/creditgrants/{id}")).await;
    assert_eq!(renamed.body["name"], "Kept");
    assert_json_snapshot!(
        "plan_grant_archived_errors",
        json!({"delete_again": outcome(&again), "put_end_date": outcome(&put_end)})
    );
}

#[tokio::test]
async fn subscription_grant_lifecycle_and_upcoming() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_sub_grant").await;
    let (_, _, sub) = subscribed(&emu, &key).await;
    let created = post(
        &emu,
        &key,
        "/v1/creditgrants",
        json!({
            "name": "Weekly top-up", "scope": "SUBSCRIPTION", "subscription_id": sub,
            "credits": 2.5, "cadence": "RECURRING", "period": "WEEKLY", "period_count": 2,
            "expiration_type": "DURATION", "expiration_duration": 3, "expiration_duration_unit": "DAY",
            "start_date": at(10 * DAY), "end_date": at(60 * DAY),
            "conversion_rate": "1", "topup_conversion_rate": "1.5",
            "proration_behavior": "none", "currency": "usd",
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_json_snapshot!("subscription_grant_created", created.body);
    let id = created.id();

    let upcoming = get(
        &emu,
        &key,
        &format!("/v1/subscriptions/{sub}/grants/upcoming"),
    )
    .await;
    assert_eq!(upcoming.status, 200, "{}", upcoming.text);
    assert_json_snapshot!("upcoming_first_application", upcoming.body);

    // PUT with end_date answers the grant as it was before the end date was applied.
    let put = call(
        &emu,
        "PUT",
        &key,
        &format!("/v1/creditgrants/{id}"),
        Some(json!({"end_date": at(5 * DAY)})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["end_date"], json!(at(60 * DAY)));
    let got = get(&emu, &key, &format!("/v1/creditgrants/{id}")).await;
    assert_eq!(got.body["end_date"], json!(at(5 * DAY)));
    assert_eq!(got.body["status"], "published");
    // Its only application (due at +10 days, after the end) is cancelled.
    let upcoming = get(
        &emu,
        &key,
        &format!("/v1/subscriptions/{sub}/grants/upcoming"),
    )
    .await;
    assert_eq!(upcoming.body["items"], json!([]));

    // A subscription grant can be deleted again (it stays published); effective_date moves the end.
    let del = call(
        &emu,
        "DELETE",
        &key,
        &format!("/v1/creditgrants/{id}"),
        Some(json!({"effective_date": at(2 * DAY)})),
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.text);
    let got = get(&emu, &key, &format!("/v1/creditgrants/{id}")).await;
    assert_eq!(got.body["end_date"], json!(at(2 * DAY)));
    let del = call(
        &emu,
        "DELETE",
        &key,
        &format!("/v1/creditgrants/{id}"),
        None,
    )
    .await;
    assert_eq!(del.status, 200);
    let got = get(&emu, &key, &format!("/v1/creditgrants/{id}")).await;
    assert_eq!(got.body["end_date"], json!(T0_RFC), "no body: ends now");
    let bad_body = emu
        .raw(
            "DELETE",
            &format!("/v1/creditgrants/{id}"),
            &[("x-api-key", key.as_str())],
            "{not json",
        )
        .await;
    assert_eq!(bad_body.status, 400, "{}", bad_body.text);
}

#[tokio::test]
async fn every_create_validation_message_in_order() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_validation").await;
    let (_, p, sub) = subscribed(&emu, &key).await;
    let archived_plan = plan(&emu, &key, "Old").await;
    let del = call(
        &emu,
        "DELETE",
        &key,
        &format!("/v1/plans/{archived_plan}"),
        None,
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.text);
    // A plan grant without rates, so that a grant with rates on the same plan clashes.
    grant(&emu, &key, plan_grant(&p)).await;
    // A subscription that ends, and one that is cancelled.
    let c2 = customer(&emu, &key, "ext-2").await;
    let ending = post(
        &emu,
        &key,
        "/v1/subscriptions",
        json!({"customer_id": c2, "plan_id": p, "currency": "usd", "billing_period": "MONTHLY",
               "start_date": T0_RFC, "end_date": at(30 * DAY)}),
    )
    .await
    .id();
    let cancelled = subscription(&emu, &key, &c2, &p, None).await;
    let r = post(
        &emu,
        &key,
        &format!("/v1/subscriptions/{cancelled}/cancel"),
        json!({"cancellation_type": "immediate"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let plan_ok = |extra: Value| {
        let mut b = json!({"name": "g", "scope": "PLAN", "plan_id": p, "credits": "10",
                           "cadence": "ONETIME", "expiration_type": "NEVER"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let sub_ok = |extra: Value| {
        let mut b = plan_ok(json!({"scope": "SUBSCRIPTION", "plan_id": null,
                                   "subscription_id": sub, "start_date": T0_RFC}));
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
        ("0_name_missing", plan_ok(json!({"name": null}))),
        ("0_name_empty_is_missing", plan_ok(json!({"name": ""}))),
        ("0_scope_missing", plan_ok(json!({"scope": null}))),
        ("0_cadence_missing", plan_ok(json!({"cadence": null}))),
        ("0_name_not_a_string", plan_ok(json!({"name": 5}))),
        (
            "0_credits_not_a_decimal",
            plan_ok(json!({"credits": "ten"})),
        ),
        ("0_credits_an_object", plan_ok(json!({"credits": {"v": 1}}))),
        (
            "0_period_count_fraction",
            plan_ok(json!({"period_count": 1.5})),
        ),
        ("0_priority_string", plan_ok(json!({"priority": "1"}))),
        (
            "0_metadata_number_value",
            plan_ok(json!({"metadata": {"a": 1}})),
        ),
        (
            "0_start_date_not_rfc3339",
            sub_ok(json!({"start_date": "2025-06-15"})),
        ),
        ("2_scope_unknown", plan_ok(json!({"scope": "CUSTOMER"}))),
        ("3a_plan_without_plan_id", plan_ok(json!({"plan_id": null}))),
        (
            "3a_plan_with_empty_plan_id",
            plan_ok(json!({"plan_id": ""})),
        ),
        (
            "3b_plan_with_start_date",
            plan_ok(json!({"start_date": T0_RFC})),
        ),
        (
            "3b_plan_with_end_date",
            plan_ok(json!({"end_date": T0_RFC})),
        ),
        (
            "3c_subscription_without_id",
            sub_ok(json!({"subscription_id": null})),
        ),
        (
            "3d_subscription_without_start",
            sub_ok(json!({"start_date": null})),
        ),
        ("3e_end_before_start", sub_ok(json!({"end_date": at(-1)}))),
        (
            "3f_addon_without_id",
            plan_ok(json!({"scope": "ADDON", "plan_id": null})),
        ),
        (
            "3f_addon_with_dates",
            plan_ok(json!({"scope": "ADDON", "addon_id": "addon_1", "end_date": T0_RFC})),
        ),
        ("4_credits_missing", plan_ok(json!({"credits": null}))),
        ("4_credits_zero", plan_ok(json!({"credits": "0.00"}))),
        ("4_credits_negative", plan_ok(json!({"credits": -5}))),
        (
            "4_credits_beyond_any_range",
            plan_ok(json!({"credits": "-1e+30"})),
        ),
        (
            "4_credits_negative_and_tiny",
            plan_ok(json!({"credits": "-1e-40"})),
        ),
        ("5_cadence_unknown", plan_ok(json!({"cadence": "WEEKLY"}))),
        (
            "6_expiration_type_missing",
            plan_ok(json!({"expiration_type": null})),
        ),
        (
            "6_expiration_type_unknown",
            plan_ok(json!({"expiration_type": "SOMETIMES"})),
        ),
        (
            "7_recurring_without_period",
            plan_ok(json!({"cadence": "RECURRING", "period_count": 1})),
        ),
        (
            "7_recurring_with_empty_period",
            plan_ok(json!({"cadence": "RECURRING", "period": ""})),
        ),
        (
            "8_period_unknown",
            plan_ok(json!({"cadence": "RECURRING", "period": "YEARLY"})),
        ),
        (
            "9_period_count_missing",
            plan_ok(json!({"cadence": "RECURRING", "period": "MONTHLY"})),
        ),
        (
            "9_period_count_negative",
            plan_ok(json!({"cadence": "RECURRING", "period": "MONTHLY", "period_count": -2})),
        ),
        (
            "10_duration_without_unit",
            plan_ok(json!({"expiration_type": "DURATION", "expiration_duration": 1})),
        ),
        (
            "10_duration_unit_empty",
            plan_ok(json!({"expiration_type": "DURATION", "expiration_duration_unit": ""})),
        ),
        (
            "10_duration_unit_unknown",
            plan_ok(json!({"expiration_type": "DURATION", "expiration_duration_unit": "HOUR"})),
        ),
        (
            "10_duration_missing",
            plan_ok(json!({"expiration_type": "DURATION", "expiration_duration_unit": "DAY"})),
        ),
        (
            "10_duration_zero",
            plan_ok(
                json!({"expiration_type": "DURATION", "expiration_duration_unit": "DAY", "expiration_duration": 0}),
            ),
        ),
        (
            "11_conversion_rate_zero",
            plan_ok(json!({"conversion_rate": "0"})),
        ),
        (
            "11_topup_conversion_rate_negative",
            plan_ok(json!({"topup_conversion_rate": -1})),
        ),
        (
            "12_plan_not_found",
            plan_ok(json!({"plan_id": "plan_00000000000000000000000000"})),
        ),
        ("12_plan_id_malformed", plan_ok(json!({"plan_id": "nope"}))),
        (
            "13_plan_archived",
            plan_ok(json!({"plan_id": archived_plan})),
        ),
        (
            "12_subscription_grant_with_unknown_plan_provenance",
            sub_ok(json!({"plan_id": "plan_x"})),
        ),
        (
            "14_addon_not_found",
            plan_ok(json!({"scope": "ADDON", "plan_id": null, "addon_id": "addon_1"})),
        ),
        (
            "15_plan_conversion_rates_differ",
            plan_ok(json!({"conversion_rate": "2"})),
        ),
        (
            "16_subscription_not_found",
            sub_ok(json!({"subscription_id": "subs_x"})),
        ),
        (
            "17_subscription_cancelled",
            sub_ok(json!({"subscription_id": cancelled})),
        ),
        (
            "18_start_before_subscription",
            sub_ok(json!({"start_date": at(-DAY)})),
        ),
        (
            "19_end_after_subscription_end",
            sub_ok(json!({"subscription_id": ending, "end_date": at(31 * DAY)})),
        ),
        (
            "19_anchor_after_subscription_end",
            sub_ok(json!({"subscription_id": ending, "start_date": at(40 * DAY)})),
        ),
        (
            "20_name_longer_than_255",
            plan_ok(json!({"name": "n".repeat(256)})),
        ),
        (
            "20_credits_more_than_12_integer_digits",
            sub_ok(json!({"credits": "1000000000000"})),
        ),
        (
            "20_credits_beyond_any_range",
            sub_ok(json!({"credits": 1e30})),
        ),
        (
            "20_conversion_rate_too_wide",
            sub_ok(json!({"conversion_rate": "100000"})),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, body) in cases {
        let r = post(&emu, &key, "/v1/creditgrants", body).await;
        assert_ne!(r.status, 201, "{name} was accepted: {}", r.text);
        out.insert(name.to_string(), outcome(&r));
    }
    // Bodies that are not JSON objects.
    for (name, raw) in [
        ("0_empty_body", ""),
        ("0_syntax_error", "{\"name\": "),
        ("0_array", "[1]"),
    ] {
        let r = emu
            .raw(
                "POST",
                "/v1/creditgrants",
                &[
                    ("x-api-key", key.as_str()),
                    ("content-type", "application/json"),
                ],
                raw,
            )
            .await;
        out.insert(name.to_string(), outcome(&r));
    }
    assert_json_snapshot!("create_validation", Value::Object(out));

    // Nothing above was stored (only the one valid plan grant and the two plan copies exist).
    let all = get(&emu, &key, "/v1/creditgrants").await;
    assert_eq!(all.body["pagination"]["total"], 3, "{}", all.text);

    // Update and delete have their own messages.
    let g = grant(&emu, &key, sub_ok(json!({"name": "sub grant"}))).await;
    let put = |body: Value| {
        let (emu, key, g) = (&emu, &key, &g);
        async move {
            outcome(
                &call(
                    emu,
                    "PUT",
                    key,
                    &format!("/v1/creditgrants/{g}"),
                    Some(body),
                )
                .await,
            )
        }
    };
    let out = json!({
        "put_empty_name": put(json!({"name": ""})).await,
        "put_end_date_in_the_past": put(json!({"end_date": at(-1), "name": ""})).await,
        "put_name_not_a_string": put(json!({"name": 1})).await,
        "put_unknown_grant": outcome(&call(&emu, "PUT", &key, "/v1/creditgrants/cg_nope", Some(json!({"name": "x"}))).await),
        "get_unknown_grant": outcome(&get(&emu, &key, "/v1/creditgrants/cg_nope").await),
        "delete_unknown_grant": outcome(&call(&emu, "DELETE", &key, "/v1/creditgrants/cg_nope", None).await),
        "delete_bad_effective_date": outcome(&call(&emu, "DELETE", &key, &format!("/v1/creditgrants/{g}"), Some(json!({"effective_date": "tomorrow"}))).await),
    });
    assert_json_snapshot!("update_delete_validation", out);
}

/// Names and pagination of a list response, for compact snapshots.
fn summary(r: &support::Resp) -> Value {
    if r.status != 200 {
        return outcome(r);
    }
    json!({
        "names": r.body["items"].as_array().unwrap().iter().map(|g| g["name"].clone()).collect::<Vec<_>>(),
        "pagination": r.body["pagination"],
    })
}

#[tokio::test]
async fn list_filters_sorting_and_pagination_quirks() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_list").await;
    let p1 = plan(&emu, &key, "P1").await;
    let p2 = plan(&emu, &key, "P2").await;
    let mk = |name: &str, plan: &str, priority: Option<i64>| {
        let mut b = json!({"name": name, "scope": "PLAN", "plan_id": plan, "credits": "1",
                           "cadence": "ONETIME", "expiration_type": "NEVER"});
        if let Some(pr) = priority {
            b["priority"] = json!(pr);
        }
        b
    };
    let a = grant(&emu, &key, mk("a", &p1, Some(5))).await;
    emu.freeze(&key, support::T0 + 10).await;
    grant(&emu, &key, mk("b", &p1, None)).await;
    emu.freeze(&key, support::T0 + 20).await;
    let c = grant(&emu, &key, mk("c", &p2, Some(1))).await;
    emu.freeze(&key, support::T0 + 30).await;
    grant(&emu, &key, mk("d", &p2, Some(9))).await;
    let del = call(&emu, "DELETE", &key, &format!("/v1/creditgrants/{c}"), None).await;
    assert_eq!(del.status, 200);
    let cust = customer(&emu, &key, "ext-l").await;
    let s = subscription(&emu, &key, &cust, &p1, None).await;
    let q = |query: String| {
        let (emu, key) = (&emu, &key);
        async move { summary(&get(emu, key, &format!("/v1/creditgrants{query}")).await) }
    };
    let first = get(&emu, &key, "/v1/creditgrants?limit=1").await;
    assert_json_snapshot!("list_first_page", first.body);
    let out = json!({
        "default": q(String::new()).await,
        "limit_2_offset_1": q("?limit=2&offset=1".into()).await,
        "limit_0_is_unlimited": q("?limit=0&offset=2".into()).await,
        "negative_offset_reads_from_start": q("?limit=2&offset=-3".into()).await,
        "order_asc": q("?order=asc".into()).await,
        "order_anything_else_is_desc": q("?order=ASC".into()).await,
        "sort_name_asc": q("?sort=name&order=asc".into()).await,
        "sort_priority_asc_nulls_last": q("?sort=priority&order=asc&scope=PLAN".into()).await,
        "sort_priority_desc_nulls_first": q("?sort=priority&scope=PLAN".into()).await,
        "sort_unknown_column": q("?sort=bogus".into()).await,
        "status_published": q("?status=published".into()).await,
        "status_archived": q("?status=archived".into()).await,
        "status_deleted": q("?status=deleted".into()).await,
        "status_unknown_matches_nothing": q("?status=gone".into()).await,
        "plan_ids_repeated": q(format!("?plan_ids={p1}&plan_ids={p2}&scope=PLAN")).await,
        "plan_ids_comma_separated_is_one_id": q(format!("?plan_ids={p1},{p2}")).await,
        "plan_ids_one": q(format!("?plan_ids={p2}")).await,
        "subscription_ids": q(format!("?subscription_ids={s}")).await,
        "credit_grant_ids": q(format!("?credit_grant_ids={a}&credit_grant_ids={c}")).await,
        "addon_ids": q("?addon_ids=addon_1".into()).await,
        "scope_subscription": q("?scope=SUBSCRIPTION".into()).await,
        "scope_is_not_validated": q("?scope=whatever".into()).await,
        "created_between": q(format!("?start_time={}&end_time={}", at(10), at(20))).await,
        "limit_not_a_number": q("?limit=ten".into()).await,
        "start_time_malformed": q("?start_time=yesterday".into()).await,
        "expand_is_accepted": q("?expand=plan&limit=1".into()).await,
    });
    assert_json_snapshot!("list_quirks", out);

    // Plan and addon lists: unpaginated, published only, and no 404 for unknown ids.
    let out = json!({
        "plan_1": summary(&get(&emu, &key, &format!("/v1/plans/{p1}/creditgrants")).await),
        "plan_2_archived_hidden": summary(&get(&emu, &key, &format!("/v1/plans/{p2}/creditgrants")).await),
        "plan_unknown": summary(&get(&emu, &key, "/v1/plans/plan_nope/creditgrants").await),
        "addon_unknown": summary(&get(&emu, &key, "/v1/addons/addon_1/creditgrants").await),
    });
    assert_json_snapshot!("plan_and_addon_lists", out);
}

#[tokio::test]
async fn body_limits_answer_in_the_native_envelope() {
    let emu = Emu::with_config(credit_emulator::Config {
        seed: Some(42),
        max_body_bytes: 4096,
        max_json_depth: 8,
        ..credit_emulator::Config::default()
    })
    .await;
    let key = emu.tenant("native_limits").await;
    let mut deep = json!("x");
    for _ in 0..9 {
        deep = json!({ "a": deep });
    }
    let too_deep = post(
        &emu,
        &key,
        "/v1/creditgrants",
        json!({"name": "g", "metadata": deep}),
    )
    .await;
    let too_large = post(
        &emu,
        &key,
        "/v1/creditgrants",
        json!({"name": "x".repeat(5000)}),
    )
    .await;
    assert_json_snapshot!(
        "body_limits",
        json!({"too_deep": outcome(&too_deep), "too_large": outcome(&too_large)})
    );
}
