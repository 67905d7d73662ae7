//! `/v1/billing/meters` over real sockets: create, retrieve, update, deactivate, reactivate, list,
//! the event-name rule, and event summaries by hour, by day and over a whole range, with Stripe's
//! alignment rules and cursors.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::{Emu, Resp, T0};

const METERS: &str = "/v1/billing/meters";
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Creates a meter from `form` and returns its id.
async fn meter(emu: &Emu, key: &str, form: &str) -> String {
    let r = emu.post(key, METERS, form).await;
    assert_eq!(r.status, 200, "create meter: {}", r.text);
    r.id()
}

/// Sends one meter event; it must be accepted.
async fn event(emu: &Emu, key: &str, name: &str, customer: &str, value: &str, at: i64) {
    let r = emu
        .post(
            key,
            "/v1/billing/meter_events",
            &format!("event_name={name}&payload[stripe_customer_id]={customer}&payload[value]={value}&timestamp={at}"),
        )
        .await;
    assert_eq!(r.status, 200, "event: {}", r.text);
}

async fn summaries(emu: &Emu, key: &str, meter: &str, query: &str) -> Resp {
    emu.get(key, &format!("{METERS}/{meter}/event_summaries?{query}"))
        .await
}

/// `(start_time, aggregated_value)` of every summary of a page.
fn values(r: &Resp) -> Vec<(i64, Value)> {
    r.body["data"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| {
            (
                s["start_time"].as_i64().unwrap(),
                s["aggregated_value"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn lifecycle_create_retrieve_update_deactivate_reactivate_list() {
    let emu = Emu::start().await;
    let key = emu.tenant("meters_lifecycle").await;

    let defaults = emu
        .post(
            &key,
            METERS,
            "display_name=API+calls&event_name=api_call&default_aggregation[formula]=sum",
        )
        .await;
    assert_eq!(defaults.status, 200, "{}", defaults.text);
    assert_json_snapshot!("create_defaults", defaults.body);
    let api = defaults.id();

    let full = emu
        .post(
            &key,
            METERS,
            "display_name=Tokens&event_name=tokens&default_aggregation[formula]=last\
             &customer_mapping[type]=by_id&customer_mapping[event_payload_key]=account\
             &value_settings[event_payload_key]=tokens&event_time_window=hour",
        )
        .await;
    assert_eq!(full.status, 200, "{}", full.text);
    assert_json_snapshot!("create_every_setting", full.body);
    let tokens = full.id();

    let got = emu.get(&key, &format!("{METERS}/{api}")).await;
    assert_eq!(got.body, defaults.body);

    // A day later: `updated` moves, `created` stays.
    emu.freeze(&key, T0 + DAY).await;
    let renamed = emu
        .post(
            &key,
            &format!("{METERS}/{api}"),
            "display_name=API+requests",
        )
        .await;
    assert_json_snapshot!("renamed", renamed.body);
    // An update with nothing in it changes nothing.
    let same = emu.post(&key, &format!("{METERS}/{api}"), "").await;
    assert_eq!(same.body, renamed.body);

    emu.freeze(&key, T0 + 2 * DAY).await;
    let off = emu
        .post(&key, &format!("{METERS}/{api}/deactivate"), "")
        .await;
    assert_json_snapshot!("deactivated", off.body);
    let active = emu.get(&key, &format!("{METERS}?status=active")).await;
    let inactive = emu.get(&key, &format!("{METERS}?status=inactive")).await;
    let ids = |r: &Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&active), vec![tokens.clone()]);
    assert_eq!(ids(&inactive), vec![api.clone()]);

    // The freed event name can be taken by a new meter; the old one then cannot come back.
    let second = meter(
        &emu,
        &key,
        "display_name=API+v2&event_name=api_call&default_aggregation[formula]=count",
    )
    .await;
    let refused = emu
        .post(&key, &format!("{METERS}/{api}/reactivate"), "")
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    emu.post(&key, &format!("{METERS}/{second}/deactivate"), "")
        .await;
    emu.freeze(&key, T0 + 3 * DAY).await;
    let on = emu
        .post(&key, &format!("{METERS}/{api}/reactivate"), "")
        .await;
    assert_json_snapshot!("reactivated", on.body);

    // Newest first, and cursors both ways.
    let all = emu.get(&key, METERS).await;
    assert_eq!(ids(&all), vec![second.clone(), tokens.clone(), api.clone()]);
    assert_json_snapshot!("list", all.body);
    let first = emu.get(&key, &format!("{METERS}?limit=1")).await;
    assert_eq!(
        (ids(&first), &first.body["has_more"]),
        (vec![second.clone()], &json!(true))
    );
    let next = emu
        .get(&key, &format!("{METERS}?limit=1&starting_after={second}"))
        .await;
    assert_eq!(ids(&next), vec![tokens.clone()]);
    let back = emu
        .get(&key, &format!("{METERS}?limit=2&ending_before={api}"))
        .await;
    assert_eq!(
        (ids(&back), &back.body["has_more"]),
        (vec![second.clone(), tokens.clone()], &json!(false))
    );
    let inactive = emu
        .get(&key, &format!("{METERS}?status=inactive&limit=5"))
        .await;
    assert_eq!(ids(&inactive), vec![second]);
}

/// Every refusal of the meter routes, in one reviewed snapshot: name → status and body.
#[tokio::test]
async fn create_update_and_lifecycle_errors() {
    let emu = Emu::start().await;
    let key = emu.tenant("meters_errors").await;
    let api = meter(
        &emu,
        &key,
        "display_name=API&event_name=api&default_aggregation[formula]=sum",
    )
    .await;
    let old = meter(
        &emu,
        &key,
        "display_name=Old&event_name=old&default_aggregation[formula]=count",
    )
    .await;
    emu.post(&key, &format!("{METERS}/{old}/deactivate"), "")
        .await;
    let base = "display_name=X&default_aggregation[formula]=sum";
    let creates: Vec<(&str, String)> = vec![
        ("empty_body", String::new()),
        ("unknown_param", format!("{base}&event_name=e&foo=1")),
        ("unknown_nested", format!("{base}&event_name=e&value_settings[foo]=1")),
        ("missing_event_name", base.to_string()),
        ("missing_display_name", "event_name=e&default_aggregation[formula]=sum".into()),
        ("missing_aggregation", "display_name=X&event_name=e".into()),
        ("missing_formula", "display_name=X&event_name=e&default_aggregation[x]=1".into()),
        ("bad_formula", "display_name=X&event_name=e&default_aggregation[formula]=max".into()),
        ("bad_window", format!("{base}&event_name=e&event_time_window=minute")),
        ("bad_mapping_type", format!("{base}&event_name=e&customer_mapping[type]=by_email&customer_mapping[event_payload_key]=k")),
        ("mapping_without_key", format!("{base}&event_name=e&customer_mapping[type]=by_id")),
        ("mapping_without_type", format!("{base}&event_name=e&customer_mapping[event_payload_key]=k")),
        ("value_settings_without_key", format!("{base}&event_name=e&value_settings[x]=")),
        ("empty_event_name", format!("{base}&event_name=")),
        ("empty_display_name", "display_name=&event_name=e&default_aggregation[formula]=sum".into()),
        ("empty_payload_key", format!("{base}&event_name=e&value_settings[event_payload_key]=")),
        ("event_name_too_long", format!("{base}&event_name={}", "e".repeat(101))),
        ("display_name_too_long", format!("display_name={}&event_name=e&default_aggregation[formula]=sum", "d".repeat(251))),
        ("payload_key_too_long", format!("{base}&event_name=e&value_settings[event_payload_key]={}", "k".repeat(101))),
        ("aggregation_scalar", "display_name=X&event_name=e&default_aggregation=sum".into()),
        ("bad_expand", format!("{base}&event_name=e&expand[]=customer_mapping")),
        ("event_name_of_an_active_meter", format!("{base}&event_name=api")),
    ];
    let mut out = serde_json::Map::new();
    for (name, form) in creates {
        let r = emu.post(&key, METERS, &form).await;
        assert!(
            (400..500).contains(&r.status),
            "{name}: {} {}",
            r.status,
            r.text
        );
        out.insert(
            format!("create/{name}"),
            json!({"status": r.status, "body": r.body}),
        );
    }
    // `last` arrived with 2025-03-31.basil.
    let r = emu
        .stripe_with(
            "POST",
            &key,
            METERS,
            "display_name=X&event_name=e&default_aggregation[formula]=last",
            &[("stripe-version", "2025-02-24.acacia")],
        )
        .await;
    out.insert(
        "create/last_before_basil".into(),
        json!({"status": r.status, "body": r.body}),
    );
    let basil = emu
        .stripe_with(
            "POST",
            &key,
            METERS,
            "display_name=X&event_name=at_basil&default_aggregation[formula]=last",
            &[("stripe-version", "2025-03-31.basil")],
        )
        .await;
    assert_eq!(basil.status, 200, "{}", basil.text);

    let long_name = format!("display_name={}", "d".repeat(251));
    let others: Vec<(&str, &str, String, &str)> = vec![
        ("retrieve_unknown", "GET", format!("{METERS}/mtr_nope"), ""),
        (
            "retrieve_grant_id",
            "GET",
            format!("{METERS}/credgr_test_01JGFJJZ00YVA5G30000000001"),
            "",
        ),
        (
            "retrieve_unknown_param",
            "GET",
            format!("{METERS}/{api}?foo=1"),
            "",
        ),
        (
            "update_unknown",
            "POST",
            format!("{METERS}/mtr_nope"),
            "display_name=x",
        ),
        (
            "update_event_name",
            "POST",
            format!("{METERS}/{api}"),
            "event_name=other",
        ),
        (
            "update_empty_display_name",
            "POST",
            format!("{METERS}/{api}"),
            "display_name=",
        ),
        (
            "update_display_name_too_long",
            "POST",
            format!("{METERS}/{api}"),
            &long_name,
        ),
        (
            "deactivate_unknown",
            "POST",
            format!("{METERS}/mtr_nope/deactivate"),
            "",
        ),
        (
            "deactivate_twice",
            "POST",
            format!("{METERS}/{old}/deactivate"),
            "",
        ),
        (
            "deactivate_with_param",
            "POST",
            format!("{METERS}/{api}/deactivate"),
            "status=inactive",
        ),
        (
            "reactivate_active",
            "POST",
            format!("{METERS}/{api}/reactivate"),
            "",
        ),
        (
            "reactivate_unknown",
            "POST",
            format!("{METERS}/mtr_nope/reactivate"),
            "",
        ),
        (
            "list_bad_status",
            "GET",
            format!("{METERS}?status=archived"),
            "",
        ),
        (
            "list_unknown_cursor",
            "GET",
            format!("{METERS}?starting_after=mtr_nope"),
            "",
        ),
        (
            "list_both_cursors",
            "GET",
            format!("{METERS}?starting_after={api}&ending_before={api}"),
            "",
        ),
        ("list_limit_zero", "GET", format!("{METERS}?limit=0"), ""),
        (
            "list_bad_expand",
            "GET",
            format!("{METERS}?expand[]=data.customer"),
            "",
        ),
        ("delete", "DELETE", format!("{METERS}/{api}"), ""),
    ];
    for (name, method, path, form) in others {
        let r = emu.stripe(method, &key, &path, form).await;
        assert!(
            (400..500).contains(&r.status),
            "{name}: {} {}",
            r.status,
            r.text
        );
        out.insert(
            name.to_string(),
            json!({"status": r.status, "body": r.body}),
        );
    }
    assert_json_snapshot!("errors", out);
    // Nothing changed: the two meters, as they were, and the one made under basil.
    let listed = emu.get(&key, METERS).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 3);
    let api_now = emu.get(&key, &format!("{METERS}/{api}")).await;
    assert_eq!(
        (&api_now.body["display_name"], &api_now.body["status"]),
        (&json!("API"), &json!("active"))
    );
}

/// Events over two days; summaries over the whole range, by hour and by day, with cursors.
#[tokio::test]
async fn event_summaries_by_hour_and_by_day() {
    let emu = Emu::start().await;
    let key = emu.tenant("meters_summaries").await;
    let cus = emu.customer(&key, "email=s@example.com").await;
    let other = emu.customer(&key, "email=o@example.com").await;
    let sum = meter(
        &emu,
        &key,
        "display_name=Sum&event_name=calls&default_aggregation[formula]=sum",
    )
    .await;
    // T0 is 2025-06-15T00:00:00Z. Events on the two days before it, one of them for another
    // customer, one fractional.
    let d = T0 - 2 * DAY;
    for (at, value) in [
        (d + 10 * 60, "5"),
        (d + 50 * 60, "7"),
        (d + HOUR + 30, "2.5"),
        (d + 5 * HOUR, "10"),
        (d + DAY + 23 * HOUR + 59 * 60, "1"),
    ] {
        event(&emu, &key, "calls", &cus, value, at).await;
    }
    event(&emu, &key, "calls", &other, "100", d + 60).await;

    // One summary for the whole range, cut inside hours (whole minutes).
    let whole = summaries(
        &emu,
        &key,
        &sum,
        &format!(
            "customer={cus}&start_time={}&end_time={}",
            d + 20 * 60,
            d + 5 * HOUR + 60
        ),
    )
    .await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    assert_json_snapshot!("whole_range", whole.body);

    // By hour over the first six hours: two pages of three, forwards, then back.
    let hourly = |extra: &str| {
        format!(
            "customer={cus}&start_time={d}&end_time={}&value_grouping_window=hour&limit=3{extra}",
            d + 6 * HOUR
        )
    };
    let page1 = summaries(&emu, &key, &sum, &hourly("")).await;
    assert_json_snapshot!("hourly_page_1", page1.body);
    let last_id = page1.body["data"][2]["id"].as_str().unwrap().to_string();
    let page2 = summaries(
        &emu,
        &key,
        &sum,
        &hourly(&format!("&starting_after={last_id}")),
    )
    .await;
    assert_eq!(
        values(&page2),
        vec![
            (d + 3 * HOUR, json!(0)),
            (d + 4 * HOUR, json!(0)),
            (d + 5 * HOUR, json!(10))
        ]
    );
    assert_eq!(page2.body["has_more"], false);
    let first_of_2 = page2.body["data"][0]["id"].as_str().unwrap().to_string();
    let back = summaries(
        &emu,
        &key,
        &sum,
        &hourly(&format!("&ending_before={first_of_2}")),
    )
    .await;
    assert_eq!(back.body["data"], page1.body["data"]);
    assert_eq!(back.body["has_more"], false);
    let back2 = summaries(
        &emu,
        &key,
        &sum,
        &format!(
            "customer={cus}&start_time={d}&end_time={}&value_grouping_window=hour&limit=2&ending_before={first_of_2}",
            d + 6 * HOUR
        ),
    )
    .await;
    assert_eq!(
        (values(&back2), &back2.body["has_more"]),
        (
            vec![(d + HOUR, json!(2.5)), (d + 2 * HOUR, json!(0))],
            &json!(true)
        )
    );

    // By day over three days (the last one, today, has nothing yet).
    let daily = summaries(
        &emu,
        &key,
        &sum,
        &format!(
            "customer={cus}&start_time={d}&end_time={}&value_grouping_window=day",
            T0 + DAY
        ),
    )
    .await;
    assert_json_snapshot!("daily", daily.body);
    assert_eq!(
        values(&daily),
        vec![(d, json!(24.5)), (d + DAY, json!(1)), (T0, json!(0))]
    );

    // The other customer's usage is its own; an inactive meter's summaries stay readable.
    emu.post(&key, &format!("{METERS}/{sum}/deactivate"), "")
        .await;
    let theirs = summaries(
        &emu,
        &key,
        &sum,
        &format!("customer={other}&start_time={d}&end_time={T0}"),
    )
    .await;
    assert_eq!(values(&theirs), vec![(d, json!(100))]);
    // So are a deleted customer's.
    emu.delete(&key, &format!("/v1/customers/{other}")).await;
    let deleted = summaries(
        &emu,
        &key,
        &sum,
        &format!("customer={other}&start_time={d}&end_time={T0}"),
    )
    .await;
    assert_eq!(values(&deleted), vec![(d, json!(100))]);
}

/// The alignment rules and every other refusal of the summary route, in one snapshot.
#[tokio::test]
async fn event_summary_alignment_and_errors() {
    let emu = Emu::start().await;
    let key = emu.tenant("meters_summary_errors").await;
    let cus = emu.customer(&key, "").await;
    let other = emu.customer(&key, "").await;
    let m = meter(
        &emu,
        &key,
        "display_name=S&event_name=s&default_aggregation[formula]=sum",
    )
    .await;
    let (s, e) = (T0 - DAY, T0);
    let theirs = summaries(
        &emu,
        &key,
        &m,
        &format!("customer={other}&start_time={s}&end_time={e}&value_grouping_window=hour&limit=1"),
    )
    .await;
    let their_cursor = theirs.body["data"][0]["id"].as_str().unwrap().to_string();
    let daily = summaries(
        &emu,
        &key,
        &m,
        &format!("customer={cus}&start_time={s}&end_time={e}&value_grouping_window=day"),
    )
    .await;
    let daily_cursor = daily.body["data"][0]["id"].as_str().unwrap().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("missing_customer", format!("start_time={s}&end_time={e}")),
        ("missing_start", format!("customer={cus}&end_time={e}")),
        ("missing_end", format!("customer={cus}&start_time={s}")),
        ("empty_customer", format!("customer=&start_time={s}&end_time={e}")),
        ("start_not_integer", format!("customer={cus}&start_time=yesterday&end_time={e}")),
        ("start_out_of_range", format!("customer={cus}&start_time=99999999999999&end_time={e}")),
        ("start_not_a_minute", format!("customer={cus}&start_time={}&end_time={e}", s + 30)),
        ("end_not_a_minute", format!("customer={cus}&start_time={s}&end_time={}", e - 1)),
        ("hour_start_not_an_hour", format!("customer={cus}&start_time={}&end_time={e}&value_grouping_window=hour", s + 60)),
        ("hour_end_not_an_hour", format!("customer={cus}&start_time={s}&end_time={}&value_grouping_window=hour", e + 60)),
        ("day_start_not_midnight", format!("customer={cus}&start_time={}&end_time={e}&value_grouping_window=day", s + HOUR)),
        ("day_end_not_midnight", format!("customer={cus}&start_time={s}&end_time={}&value_grouping_window=day", e + HOUR)),
        ("start_equals_end", format!("customer={cus}&start_time={s}&end_time={s}")),
        ("start_after_end", format!("customer={cus}&start_time={e}&end_time={s}")),
        ("bad_window", format!("customer={cus}&start_time={s}&end_time={e}&value_grouping_window=minute")),
        ("unknown_param", format!("customer={cus}&start_time={s}&end_time={e}&formula=sum")),
        ("no_such_customer", format!("customer=cus_nope&start_time={s}&end_time={e}")),
        ("cursor_of_another_customer", format!("customer={cus}&start_time={s}&end_time={e}&value_grouping_window=hour&starting_after={their_cursor}")),
        ("cursor_of_another_window", format!("customer={cus}&start_time={s}&end_time={e}&value_grouping_window=hour&starting_after={daily_cursor}")),
        ("cursor_garbage", format!("customer={cus}&start_time={s}&end_time={e}&ending_before=mtrusg_x")),
        ("both_cursors", format!("customer={cus}&start_time={s}&end_time={e}&starting_after={daily_cursor}&ending_before={daily_cursor}")),
        ("limit_101", format!("customer={cus}&start_time={s}&end_time={e}&limit=101")),
        ("bad_expand", format!("customer={cus}&start_time={s}&end_time={e}&expand[]=data.meter")),
    ];
    let mut out = serde_json::Map::new();
    for (name, query) in cases {
        let r = summaries(&emu, &key, &m, &query).await;
        assert!(
            (400..500).contains(&r.status),
            "{name}: {} {}",
            r.status,
            r.text
        );
        out.insert(
            name.to_string(),
            json!({"status": r.status, "body": r.body}),
        );
    }
    let r = summaries(
        &emu,
        &key,
        "mtr_nope",
        &format!("customer={cus}&start_time={s}&end_time={e}"),
    )
    .await;
    out.insert(
        "unknown_meter".into(),
        json!({"status": r.status, "body": r.body}),
    );
    assert_json_snapshot!("summary_errors", out);
    // The same query with aligned times is fine: 24 hours, a day, 1,440 minutes.
    for (window, n) in [("hour", 24), ("day", 1)] {
        let r = summaries(
            &emu,
            &key,
            &m,
            &format!("customer={cus}&start_time={s}&end_time={e}&value_grouping_window={window}&limit=100"),
        )
        .await;
        assert_eq!(
            r.body["data"].as_array().map(Vec::len),
            Some(n),
            "{window}: {}",
            r.text
        );
    }
}
