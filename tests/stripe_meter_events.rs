//! `POST /v1/billing/meter_events` and `POST /v1/billing/meter_event_adjustments` over real
//! sockets: the event object, each formula and event time window, timestamp windows on the
//! tenant's clock and on a test clock, identifier dedupe (with and without idempotency keys, and
//! 64 concurrent retries counting once), cancellation, and every refusal.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::{Emu, Resp, T0};

const EVENTS: &str = "/v1/billing/meter_events";
const ADJUSTMENTS: &str = "/v1/billing/meter_event_adjustments";
const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Creates a meter from `form` and returns its id.
async fn meter(emu: &Emu, key: &str, form: &str) -> String {
    let r = emu.post(key, "/v1/billing/meters", form).await;
    assert_eq!(r.status, 200, "create meter: {}", r.text);
    r.id()
}

/// A meter counting `name` with `formula` (and `extra` settings).
async fn meter_of(emu: &Emu, key: &str, name: &str, formula: &str, extra: &str) -> String {
    meter(
        emu,
        key,
        &format!(
            "display_name={name}&event_name={name}&default_aggregation[formula]={formula}{extra}"
        ),
    )
    .await
}

/// Sends an event of `name` for `customer` with `value` (and `extra` fields).
async fn send(emu: &Emu, key: &str, name: &str, customer: &str, value: &str, extra: &str) -> Resp {
    emu.post(
        key,
        EVENTS,
        &format!("event_name={name}&payload[stripe_customer_id]={customer}&payload[value]={value}{extra}"),
    )
    .await
}

/// The usage of `customer` on `meter` over `[from, to)` (whole minutes), as one summary.
async fn usage(emu: &Emu, key: &str, meter: &str, customer: &str, from: i64, to: i64) -> Value {
    let r = emu
        .get(
            key,
            &format!("/v1/billing/meters/{meter}/event_summaries?customer={customer}&start_time={from}&end_time={to}"),
        )
        .await;
    assert_eq!(r.status, 200, "summary: {}", r.text);
    r.body["data"][0]["aggregated_value"].clone()
}

#[tokio::test]
async fn an_event_answers_the_meter_event_object() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_object").await;
    let cus = emu.customer(&key, "").await;
    let m = meter_of(&emu, &key, "api_call", "sum", "").await;
    // As stripe-python sends it, with extra payload keys (kept and echoed in order).
    let full = emu
        .post(
            &key,
            EVENTS,
            &format!(
                "event_name=api_call&identifier=req-0001&payload[value]=25&payload[stripe_customer_id]={cus}&payload[region]=eu-west&timestamp={}",
                T0 - 90
            ),
        )
        .await;
    assert_eq!(full.status, 200, "{}", full.text);
    assert_json_snapshot!("event", full.body);
    // Without an identifier or a timestamp: one is made, and the timestamp is now.
    let minimal = send(&emu, &key, "api_call", &cus, "0.5", "").await;
    assert_eq!(minimal.status, 200, "{}", minimal.text);
    assert_json_snapshot!("event_minimal", minimal.body);
    assert_eq!(
        usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + MINUTE).await,
        json!(25.5)
    );
}

/// The same events through each formula, raw and pre-aggregated per hour and per day.
#[tokio::test]
async fn each_formula_and_event_time_window() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_formulas").await;
    let cus = emu.customer(&key, "").await;
    let mut meters = Vec::new();
    for formula in ["sum", "count", "last"] {
        for window in ["", "hour", "day"] {
            let name = format!(
                "{formula}_{}",
                if window.is_empty() { "raw" } else { window }
            );
            let extra = if window.is_empty() {
                String::new()
            } else {
                format!("&event_time_window={window}")
            };
            meters.push((
                name.clone(),
                meter_of(&emu, &key, &name, formula, &extra).await,
            ));
        }
    }
    // Two days ago: 3 at 10:00, 4 at 10:20, 5 at 09:00 (received last, earlier in time).
    // Yesterday: 2 at 23:30. Today: 1 at 00:00.
    let d = T0 - 2 * DAY;
    let sent = [
        (d + 10 * HOUR, "3"),
        (d + 10 * HOUR + 20 * MINUTE, "4"),
        (d + 9 * HOUR, "5"),
        (d + DAY + 23 * HOUR + 30 * MINUTE, "2"),
        (T0, "1"),
    ];
    for (name, _) in &meters {
        for (at, value) in sent {
            let r = send(&emu, &key, name, &cus, value, &format!("&timestamp={at}")).await;
            assert_eq!(r.status, 200, "{name}: {}", r.text);
        }
    }
    let mut out = serde_json::Map::new();
    for (name, id) in &meters {
        out.insert(
            name.clone(),
            json!({
                "all": usage(&emu, &key, id, &cus, d, T0 + MINUTE).await,
                "two_days_ago": usage(&emu, &key, id, &cus, d, d + DAY).await,
                "10:00_to_11:00": usage(&emu, &key, id, &cus, d + 10 * HOUR, d + 11 * HOUR).await,
                "yesterday_and_today": usage(&emu, &key, id, &cus, d + DAY, T0 + MINUTE).await,
                "nothing": usage(&emu, &key, id, &cus, d + 12 * HOUR, d + 13 * HOUR).await,
            }),
        );
    }
    assert_json_snapshot!("formulas", out);
    // Spot checks that do not depend on reading the snapshot.
    assert_eq!(out["sum_raw"]["all"], json!(15));
    assert_eq!(out["sum_hour"]["all"], json!(12)); // 4 (the 10:00 hour) + 5 + 2 + 1
    assert_eq!(out["sum_day"]["all"], json!(8)); // 5 + 2 + 1
    assert_eq!(out["count_raw"]["all"], json!(5));
    assert_eq!(out["last_raw"]["two_days_ago"], json!(4));
    assert_eq!(out["last_day"]["two_days_ago"], json!(5));
    assert_eq!(out["last_raw"]["nothing"], json!(0));
}

/// Timestamps within 35 days before and 5 minutes after the customer's now: the tenant's clock,
/// or the customer's test clock.
#[tokio::test]
async fn timestamp_windows_on_the_tenant_clock_and_on_a_test_clock() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_windows").await;
    let cus = emu.customer(&key, "").await;
    let m = meter_of(&emu, &key, "calls", "count", "").await;
    let mut out = serde_json::Map::new();
    let mut check = |name: &str, r: &Resp| {
        out.insert(
            name.to_string(),
            json!({"status": r.status, "body": r.body}),
        );
    };
    let oldest = T0 - 35 * DAY;
    let at = |t: i64| format!("&timestamp={t}");
    check(
        "tenant_oldest",
        &send(&emu, &key, "calls", &cus, "1", &at(oldest)).await,
    );
    check(
        "tenant_too_old",
        &send(&emu, &key, "calls", &cus, "1", &at(oldest - 1)).await,
    );
    check(
        "tenant_latest",
        &send(&emu, &key, "calls", &cus, "1", &at(T0 + 300)).await,
    );
    check(
        "tenant_too_new",
        &send(&emu, &key, "calls", &cus, "1", &at(T0 + 301)).await,
    );

    // A clock frozen 100 days back: its customer's events live at the clock's time.
    let frozen = T0 - 100 * DAY;
    let clock = emu.test_clock(&key, frozen).await;
    let on_clock = emu.customer(&key, &format!("test_clock={clock}")).await;
    check(
        "clock_default_timestamp",
        &send(&emu, &key, "calls", &on_clock, "1", "").await,
    );
    check(
        "clock_tenant_now",
        &send(&emu, &key, "calls", &on_clock, "1", &at(T0)).await,
    );
    check(
        "clock_oldest",
        &send(&emu, &key, "calls", &on_clock, "1", &at(frozen - 35 * DAY)).await,
    );
    check(
        "clock_too_old",
        &send(
            &emu,
            &key,
            "calls",
            &on_clock,
            "1",
            &at(frozen - 35 * DAY - 1),
        )
        .await,
    );
    check(
        "timestamp_out_of_range",
        &send(&emu, &key, "calls", &cus, "1", &at(99_999_999_999_999)).await,
    );
    check(
        "timestamp_not_integer",
        &send(&emu, &key, "calls", &cus, "1", "&timestamp=now").await,
    );
    // Advanced to today, the clock's customer can report today's usage.
    let r = emu
        .post(
            &key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={T0}"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    check(
        "clock_advanced",
        &send(&emu, &key, "calls", &on_clock, "1", &at(T0)).await,
    );
    assert_json_snapshot!("timestamp_windows", out);

    assert_eq!(
        usage(&emu, &key, &m, &cus, oldest, T0 + 360).await,
        json!(2)
    );
    assert_eq!(
        usage(&emu, &key, &m, &on_clock, frozen - 36 * DAY, T0 + 60).await,
        json!(3)
    );
    assert_eq!(
        usage(&emu, &key, &m, &on_clock, frozen, frozen + 60).await,
        json!(1)
    );
}

/// An identifier counts once: a second event with it is refused, under a new idempotency key
/// too; the same request under the same key is replayed. A day later it may be used again.
#[tokio::test]
async fn identifiers_count_once_for_a_day() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_dedupe").await;
    let cus = emu.customer(&key, "").await;
    let m = meter_of(&emu, &key, "calls", "sum", "").await;
    let form = format!(
        "event_name=calls&payload[stripe_customer_id]={cus}&payload[value]=7&identifier=evt-1"
    );
    let first = emu
        .stripe_with("POST", &key, EVENTS, &form, &[("idempotency-key", "k1")])
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let replay = emu
        .stripe_with("POST", &key, EVENTS, &form, &[("idempotency-key", "k1")])
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, first.body);
    let again = emu
        .stripe_with("POST", &key, EVENTS, &form, &[("idempotency-key", "k2")])
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.header("stripe-should-retry"), Some("false"));
    assert_json_snapshot!("duplicate", again.body);
    // Another value or customer does not make it another event.
    let other = emu.customer(&key, "").await;
    let r = send(&emu, &key, "calls", &other, "9", "&identifier=evt-1").await;
    assert_eq!(r.status, 400, "{}", r.text);
    // The refusal is stored under its idempotency key, as Stripe stores executed requests.
    let stored = emu
        .stripe_with("POST", &key, EVENTS, &form, &[("idempotency-key", "k2")])
        .await;
    assert_eq!(
        (stored.status, stored.header("idempotent-replayed")),
        (400, Some("true"))
    );
    assert_eq!(
        usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await,
        json!(7)
    );

    // 24 hours later on the customer's clock the identifier is forgotten.
    emu.freeze(&key, T0 + DAY - 1).await;
    assert_eq!(
        send(&emu, &key, "calls", &cus, "7", "&identifier=evt-1")
            .await
            .status,
        400
    );
    emu.freeze(&key, T0 + DAY).await;
    let later = send(&emu, &key, "calls", &cus, "7", "&identifier=evt-1").await;
    assert_eq!(later.status, 200, "{}", later.text);
    assert_eq!(
        usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + DAY + HOUR).await,
        json!(14)
    );
}

/// 64 retries of one event at once, each on its own connection and without an idempotency key:
/// the dedupe happens under the tenant's lock, so exactly one counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_retries_count_once() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_concurrent").await;
    let cus = emu.customer(&key, "").await;
    let m = meter_of(&emu, &key, "calls", "sum", "").await;
    let url = emu.url(EVENTS);
    let form = format!(
        "event_name=calls&payload[stripe_customer_id]={cus}&payload[value]=3&identifier=retry-me"
    );
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let mut retries = Vec::new();
    for _ in 0..64 {
        // A client each: 64 connections, not one pooled connection taking turns.
        let client = reqwest::Client::new();
        let (url, form, key, barrier) = (url.clone(), form.clone(), key.clone(), barrier.clone());
        retries.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .expect("request reaches the emulator");
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }));
    }
    let mut statuses = Vec::new();
    for r in retries {
        let (status, text) = r.await.expect("retry");
        if status != 200 {
            assert!(
                text.contains("An event already exists with identifier retry-me."),
                "{text}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        63,
        "{statuses:?}"
    );
    assert_eq!(
        usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await,
        json!(3)
    );
    let count = emu
        .running
        .app
        .store
        .with_tenant(&key, |t| t.meter_event_count());
    assert_eq!(count, 1);
}

#[tokio::test]
async fn cancel_adjustments() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_cancel").await;
    let cus = emu.customer(&key, "").await;
    let sum = meter_of(&emu, &key, "calls", "sum", "").await;
    let last = meter_of(&emu, &key, "gauge", "last", "").await;
    for (id, value, at) in [("a", "10", T0 - 120), ("b", "20", T0 - 60)] {
        let extra = format!("&identifier={id}&timestamp={at}");
        assert_eq!(
            send(&emu, &key, "calls", &cus, value, &extra).await.status,
            200
        );
        let extra = format!("&identifier=g{id}&timestamp={at}");
        assert_eq!(
            send(&emu, &key, "gauge", &cus, value, &extra).await.status,
            200
        );
    }
    let cancel =
        |name: &str, id: &str| format!("event_name={name}&type=cancel&cancel[identifier]={id}");
    let done = emu.post(&key, ADJUSTMENTS, &cancel("calls", "b")).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_json_snapshot!("adjustment", done.body);
    assert_eq!(
        usage(&emu, &key, &sum, &cus, T0 - HOUR, T0).await,
        json!(10)
    );
    // The latest value goes back to the one before it.
    assert_eq!(
        usage(&emu, &key, &last, &cus, T0 - HOUR, T0).await,
        json!(20)
    );
    emu.post(&key, ADJUSTMENTS, &cancel("gauge", "gb")).await;
    assert_eq!(
        usage(&emu, &key, &last, &cus, T0 - HOUR, T0).await,
        json!(10)
    );

    let mut out = serde_json::Map::new();
    let cases: Vec<(&str, String)> = vec![
        ("twice", cancel("calls", "b")),
        ("unknown_identifier", cancel("calls", "zzz")),
        ("another_event_name", cancel("gauge", "a")),
        ("unknown_event_name", cancel("nothing", "a")),
        ("missing_cancel", "event_name=calls&type=cancel".into()),
        (
            "missing_identifier",
            "event_name=calls&type=cancel&cancel[x]=1".into(),
        ),
        (
            "empty_cancel",
            "event_name=calls&type=cancel&cancel=".into(),
        ),
        (
            "empty_identifier",
            "event_name=calls&type=cancel&cancel[identifier]=".into(),
        ),
        (
            "missing_type",
            "event_name=calls&cancel[identifier]=a".into(),
        ),
        (
            "bad_type",
            "event_name=calls&type=adjust&cancel[identifier]=a".into(),
        ),
        (
            "missing_event_name",
            "type=cancel&cancel[identifier]=a".into(),
        ),
        ("identifier_too_long", cancel("calls", &"i".repeat(101))),
    ];
    for (name, form) in cases {
        let r = emu.post(&key, ADJUSTMENTS, &form).await;
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
    // A day after it was received, an event can no longer be cancelled.
    emu.freeze(&key, T0 + DAY).await;
    let r = emu.post(&key, ADJUSTMENTS, &cancel("calls", "a")).await;
    out.insert(
        "a_day_later".into(),
        json!({"status": r.status, "body": r.body}),
    );
    assert_json_snapshot!("adjustment_errors", out);
    assert_eq!(
        usage(&emu, &key, &sum, &cus, T0 - HOUR, T0).await,
        json!(10)
    );
}

/// Every refusal of an event, in one reviewed snapshot; none of them is counted.
#[tokio::test]
async fn event_errors() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_errors").await;
    let cus = emu.customer(&key, "").await;
    let gone = emu.customer(&key, "").await;
    emu.delete(&key, &format!("/v1/customers/{gone}")).await;
    let other_tenant = emu.tenant("events_errors_other").await;
    let stranger = emu.customer(&other_tenant, "").await;
    let sum = meter_of(&emu, &key, "calls", "sum", "").await;
    let count = meter_of(&emu, &key, "hits", "count", "").await;
    let custom = meter_of(
        &emu,
        &key,
        "tokens",
        "sum",
        "&customer_mapping[type]=by_id&customer_mapping[event_payload_key]=account&value_settings[event_payload_key]=n",
    )
    .await;
    let old = meter_of(&emu, &key, "old", "sum", "").await;
    emu.post(&key, &format!("/v1/billing/meters/{old}/deactivate"), "")
        .await;
    let c = format!("payload[stripe_customer_id]={cus}");
    let cases: Vec<(&str, String)> = vec![
        ("empty_body", String::new()),
        ("missing_payload", "event_name=calls".into()),
        ("missing_event_name", format!("{c}&payload[value]=1")),
        (
            "unknown_param",
            format!("event_name=calls&{c}&payload[value]=1&value=1"),
        ),
        ("payload_scalar", "event_name=calls&payload=1".into()),
        ("payload_empty", "event_name=calls&payload=".into()),
        (
            "payload_nested",
            format!("event_name=calls&{c}&payload[value][amount]=1"),
        ),
        (
            "payload_array",
            format!("event_name=calls&{c}&payload[value][]=1"),
        ),
        (
            "payload_value_too_long",
            format!(
                "event_name=calls&{c}&payload[value]=1&payload[note]={}",
                "n".repeat(101)
            ),
        ),
        (
            "empty_event_name",
            format!("event_name=&{c}&payload[value]=1"),
        ),
        (
            "event_name_too_long",
            format!("event_name={}&{c}&payload[value]=1", "e".repeat(101)),
        ),
        (
            "identifier_too_long",
            format!(
                "event_name=calls&{c}&payload[value]=1&identifier={}",
                "i".repeat(101)
            ),
        ),
        (
            "empty_identifier",
            format!("event_name=calls&{c}&payload[value]=1&identifier="),
        ),
        (
            "bad_expand",
            format!("event_name=calls&{c}&payload[value]=1&expand[]=payload"),
        ),
        (
            "no_meter",
            format!("event_name=nothing&{c}&payload[value]=1"),
        ),
        (
            "inactive_meter",
            format!("event_name=old&{c}&payload[value]=1"),
        ),
        (
            "missing_customer_key",
            "event_name=calls&payload[value]=1".into(),
        ),
        (
            "customer_key_of_another_meter",
            format!("event_name=tokens&{c}&payload[n]=1"),
        ),
        (
            "no_such_customer",
            "event_name=calls&payload[stripe_customer_id]=cus_nope&payload[value]=1".into(),
        ),
        (
            "empty_customer",
            "event_name=calls&payload[stripe_customer_id]=&payload[value]=1".into(),
        ),
        (
            "deleted_customer",
            format!("event_name=calls&payload[stripe_customer_id]={gone}&payload[value]=1"),
        ),
        (
            "customer_of_another_tenant",
            format!("event_name=calls&payload[stripe_customer_id]={stranger}&payload[value]=1"),
        ),
        (
            "native_customer_spelling",
            format!(
                "event_name=calls&payload[stripe_customer_id]={}&payload[value]=1",
                cus.replace("cus_", "cust_")
            ),
        ),
        ("missing_value", format!("event_name=calls&{c}")),
        (
            "value_not_a_number",
            format!("event_name=calls&{c}&payload[value]=ten"),
        ),
        (
            "value_exponent",
            format!("event_name=calls&{c}&payload[value]=1e3"),
        ),
        (
            "value_empty",
            format!("event_name=calls&{c}&payload[value]="),
        ),
        (
            "value_too_large",
            format!("event_name=calls&{c}&payload[value]=1000000000000000"),
        ),
        (
            "value_too_precise",
            format!("event_name=calls&{c}&payload[value]=0.0000000000001"),
        ),
        (
            "value_beyond_decimal",
            format!("event_name=calls&{c}&payload[value]={}", "9".repeat(40)),
        ),
        // Several faults: the customer is judged before the value, the value before the timestamp.
        (
            "value_too_large_and_too_old",
            format!(
                "event_name=calls&{c}&payload[value]=1000000000000000&timestamp={}",
                T0 - 40 * DAY
            ),
        ),
        (
            "no_such_customer_and_bad_value",
            "event_name=calls&payload[stripe_customer_id]=cus_nope&payload[value]=x".into(),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, form) in cases {
        let r = emu.post(&key, EVENTS, &form).await;
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
    assert_json_snapshot!("event_errors", out);
    assert_eq!(
        emu.running
            .app
            .store
            .with_tenant(&key, |t| t.meter_event_count()),
        0
    );

    // What is accepted: a count ignores the value key; a meter with its own payload keys reads
    // them; values may be negative or fractional.
    for (name, form) in [
        ("count_without_value", format!("event_name=hits&{c}")),
        (
            "count_with_garbage_value",
            format!("event_name=hits&{c}&payload[value]=lots"),
        ),
        (
            "own_keys",
            format!("event_name=tokens&payload[account]={cus}&payload[n]=12.25"),
        ),
        (
            "negative",
            format!("event_name=calls&{c}&payload[value]=-2.5"),
        ),
        (
            "largest",
            format!("event_name=calls&{c}&payload[value]=999999999999999.999999999999"),
        ),
    ] {
        let r = emu.post(&key, EVENTS, &form).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
    }
    assert_eq!(
        usage(&emu, &key, &count, &cus, T0 - HOUR, T0 + HOUR).await,
        json!(2)
    );
    assert_eq!(
        usage(&emu, &key, &custom, &cus, T0 - HOUR, T0 + HOUR).await,
        json!(12.25)
    );
    // 999999999999999.999999999999 - 2.5 as the nearest double (read from the text: serde_json's
    // default float parsing may be one unit off in the last place).
    let r = emu
        .get(
            &key,
            &format!(
                "/v1/billing/meters/{sum}/event_summaries?customer={cus}&start_time={}&end_time={}",
                T0 - HOUR,
                T0 + HOUR
            ),
        )
        .await;
    assert!(
        r.text.contains("\"aggregated_value\": 999999999999997.5,"),
        "{}",
        r.text
    );
}

/// The whole round through async-stripe, unmodified but for the base URL: its types must read
/// every object these routes answer, and its errors must carry Stripe's message.
#[tokio::test]
async fn the_official_client_reports_usage_and_reads_it_back() {
    use std::collections::HashMap;
    use stripe_billing::billing_meter::{
        CreateBillingMeter, CreateBillingMeterDefaultAggregation,
        CreateBillingMeterDefaultAggregationFormula, DeactivateBillingMeter, ListBillingMeter,
        ReactivateBillingMeter, UpdateBillingMeter,
    };
    use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
    use stripe_billing::billing_meter_event_adjustment::{
        CreateBillingMeterEventAdjustment, CreateBillingMeterEventAdjustmentCancel,
    };
    use stripe_billing::billing_meter_event_summary::{
        ListIdBillingMeterEventSummary, ListIdBillingMeterEventSummaryValueGroupingWindow,
    };
    use stripe_billing::{
        BillingMeterEventAdjustmentStatus, BillingMeterEventAdjustmentType,
        BillingMeterEventTimeWindow, BillingMeterStatus,
    };
    use stripe_core::customer::CreateCustomer;

    let emu = Emu::start().await;
    let key = emu.tenant("events_sdk").await;
    let client = support::sdk::client(&emu, &key);
    let customer = CreateCustomer::new().send(&client).await.unwrap().id;
    let meter = CreateBillingMeter::new(
        CreateBillingMeterDefaultAggregation::new(CreateBillingMeterDefaultAggregationFormula::Sum),
        "API calls",
        "api_call",
    )
    .event_time_window(BillingMeterEventTimeWindow::Hour)
    .send(&client)
    .await
    .unwrap();
    assert_eq!(meter.status, BillingMeterStatus::Active);
    assert_eq!(
        meter.event_time_window,
        Some(BillingMeterEventTimeWindow::Hour)
    );

    let payload = |value: &str| {
        HashMap::from([
            ("stripe_customer_id".to_string(), customer.to_string()),
            ("value".to_string(), value.to_string()),
        ])
    };
    // Two hours, two events in the later one: the hour keeps the one received last.
    for (id, value, at) in [
        ("sdk-0", "3", T0 - 2 * HOUR),
        ("sdk-1", "4.5", T0 - 50),
        ("sdk-2", "6", T0 - 40),
    ] {
        let event = CreateBillingMeterEvent::new("api_call", payload(value))
            .identifier(id)
            .timestamp(at)
            .send(&client)
            .await
            .unwrap();
        assert_eq!((event.identifier.as_str(), event.timestamp), (id, at));
        assert_eq!(event.payload["value"], value);
    }
    let refused = CreateBillingMeterEvent::new("api_call", payload("1"))
        .identifier("sdk-0")
        .send(&client)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("An event already exists with identifier sdk-0."),
        "{refused}"
    );

    let hourly = |from: i64, to: i64| {
        ListIdBillingMeterEventSummary::new(meter.id.clone(), customer.to_string(), to, from)
            .value_grouping_window(ListIdBillingMeterEventSummaryValueGroupingWindow::Hour)
    };
    let values = |list: &stripe_types::List<stripe_billing::BillingMeterEventSummary>| {
        list.data
            .iter()
            .map(|s| (s.start_time, s.aggregated_value))
            .collect::<Vec<_>>()
    };
    let read = hourly(T0 - 2 * HOUR, T0).send(&client).await.unwrap();
    assert_eq!(values(&read), vec![(T0 - 2 * HOUR, 3.0), (T0 - HOUR, 6.0)]);

    let mut cancel = CreateBillingMeterEventAdjustmentCancel::new();
    cancel.identifier = Some("sdk-2".into());
    let adjustment =
        CreateBillingMeterEventAdjustment::new("api_call", BillingMeterEventAdjustmentType::Cancel)
            .cancel(cancel)
            .send(&client)
            .await
            .unwrap();
    assert_eq!(
        adjustment.status,
        BillingMeterEventAdjustmentStatus::Complete
    );
    let read = hourly(T0 - 2 * HOUR, T0).send(&client).await.unwrap();
    assert_eq!(values(&read), vec![(T0 - 2 * HOUR, 3.0), (T0 - HOUR, 4.5)]);
    // A day of hours, five at a time, each page after the last one's cursor.
    let mut all = Vec::new();
    loop {
        let mut request = hourly(T0 - DAY, T0).limit(5);
        if let Some(last) = all.last() {
            let last: &stripe_billing::BillingMeterEventSummary = last;
            request = request.starting_after(last.id.as_str());
        }
        let page = request.send(&client).await.unwrap();
        all.extend(page.data);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(all.len(), 24);
    assert_eq!(all.iter().map(|s| s.aggregated_value).sum::<f64>(), 7.5);
    assert!(all.windows(2).all(|w| w[0].end_time == w[1].start_time));

    let renamed = UpdateBillingMeter::new(meter.id.clone())
        .display_name("API requests")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(renamed.display_name, "API requests");
    let off = DeactivateBillingMeter::new(meter.id.clone())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(
        (off.status, off.status_transitions.deactivated_at),
        (BillingMeterStatus::Inactive, Some(T0))
    );
    let inactive = ListBillingMeter::new()
        .status(BillingMeterStatus::Inactive)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(inactive.data.len(), 1);
    let on = ReactivateBillingMeter::new(meter.id.clone())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(on.status, BillingMeterStatus::Active);
}

/// A v2 request: a JSON body, Stripe auth and the version header stripe-python sends.
async fn v2(emu: &Emu, key: &str, path: &str, body: &Value) -> Resp {
    emu.raw(
        "POST",
        path,
        &[
            ("authorization", &format!("Bearer {key}")),
            ("content-type", "application/json"),
            ("stripe-version", "2026-10-28.endive"),
        ],
        &body.to_string(),
    )
    .await
}

/// A v2 body nested past the limit is refused like a form nested past it, naming the parameter
/// where the limit is passed, spelled as a form would spell it.
#[tokio::test]
async fn a_v2_body_nested_too_deep_names_where() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_v2_deep").await;
    let mut deep = json!("1");
    for _ in 0..12 {
        deep = json!({ "a": deep });
    }
    let r = v2(
        &emu,
        &key,
        "/v2/billing/meter_events",
        &json!({"event_name": "x", "payload": deep}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["param"],
        format!("payload{}", "[a]".repeat(9))
    );
}

#[tokio::test]
async fn v2_meter_events_and_adjustments_take_json() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_v2").await;
    let cus = emu.customer(&key, "").await;
    let m = meter_of(&emu, &key, "ai_search_api", "sum", "").await;
    // The body of Stripe's v2 example: a JSON object, the timestamp in RFC 3339.
    let event = v2(
        &emu,
        &key,
        "/v2/billing/meter_events",
        &json!({
            "event_name": "ai_search_api",
            "identifier": "idmp_12345678",
            "payload": {"stripe_customer_id": cus, "value": "25"},
            "timestamp": "2025-06-14T23:58:30.000Z",
        }),
    )
    .await;
    assert_eq!(event.status, 200, "{}", event.text);
    assert_json_snapshot!("v2_event", event.body);
    assert_eq!(usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await, 25);
    // Without a timestamp: now, on the customer's clock; a JSON number is read as its text.
    let minimal = v2(
        &emu,
        &key,
        "/v2/billing/meter_events",
        &json!({"event_name": "ai_search_api", "payload": {"stripe_customer_id": cus, "value": 5}}),
    )
    .await;
    assert_eq!(minimal.status, 200, "{}", minimal.text);
    assert_eq!(minimal.body["timestamp"], "2025-06-15T00:00:00.000Z");
    assert_eq!(minimal.body["payload"]["value"], "5");
    assert_eq!(usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await, 30);
    // The same rules as v1: a duplicate identifier, a timestamp that is not RFC 3339.
    let again = v2(
        &emu,
        &key,
        "/v2/billing/meter_events",
        &json!({"event_name": "ai_search_api", "identifier": "idmp_12345678",
                "payload": {"stripe_customer_id": cus, "value": "25"}}),
    )
    .await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.body["error"]["message"],
        "An event already exists with identifier idmp_12345678."
    );
    let bad_time = v2(
        &emu,
        &key,
        "/v2/billing/meter_events",
        &json!({"event_name": "ai_search_api", "timestamp": 1749945600,
                "payload": {"stripe_customer_id": cus, "value": "1"}}),
    )
    .await;
    assert_eq!(bad_time.status, 400);
    assert_json_snapshot!("v2_event_bad_timestamp", bad_time.body);
    // A form body is not what v2 takes.
    let form = emu
        .post(
            &key,
            "/v2/billing/meter_events",
            &format!("event_name=ai_search_api&payload[stripe_customer_id]={cus}&payload[value]=1"),
        )
        .await;
    assert_eq!(form.status, 400);
    assert_json_snapshot!("v2_event_form_body", form.body);

    // The v2 adjustment cancels the event, and has an id and a creation time.
    let adjustment = v2(
        &emu,
        &key,
        "/v2/billing/meter_event_adjustments",
        &json!({"event_name": "ai_search_api", "type": "cancel",
                "cancel": {"identifier": "idmp_12345678"}}),
    )
    .await;
    assert_eq!(adjustment.status, 200, "{}", adjustment.text);
    assert_json_snapshot!("v2_adjustment", adjustment.body);
    assert_eq!(usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await, 5);
    let twice = v2(
        &emu,
        &key,
        "/v2/billing/meter_event_adjustments",
        &json!({"event_name": "ai_search_api", "type": "cancel",
                "cancel": {"identifier": "idmp_12345678"}}),
    )
    .await;
    assert_eq!(twice.status, 400);
    assert_eq!(twice.body["error"]["param"], "cancel[identifier]");
}

const SESSION: &str = "/v2/billing/meter_event_session";
const STREAM: &str = "/v2/billing/meter_event_stream";

/// A meter event session of `key`: its answer, the token replaced by `[token]` once checked.
async fn session(emu: &Emu, key: &str) -> (String, Value) {
    let r = v2(emu, key, SESSION, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut body = r.body;
    let token = body["authentication_token"].as_str().unwrap().to_string();
    assert!(
        token.starts_with("ek_test_") && token.len() == 56,
        "{token}"
    );
    body["authentication_token"] = json!("[token]");
    (token, body)
}

/// `n` events of `name` for `customer`, each worth 1, identified `{prefix}{i}`.
fn events(name: &str, customer: &str, prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"event_name": name, "identifier": format!("{prefix}{i}"),
                   "payload": {"stripe_customer_id": customer, "value": "1"}})
        })
        .collect()
}

#[tokio::test]
async fn a_session_token_streams_events() {
    let emu = Emu::start().await;
    let key = emu.tenant("stream").await;
    let cus = emu.customer(&key, "").await;
    let m = meter_of(&emu, &key, "ai_search_api", "sum", "").await;

    let (token, made) = session(&emu, &key).await;
    assert_json_snapshot!("stream_session", made);
    // An empty body is a session too; each has its own token.
    let empty = emu
        .raw(
            "POST",
            SESSION,
            &[("authorization", &format!("Bearer {key}"))],
            "",
        )
        .await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_ne!(empty.body["authentication_token"], token.as_str());
    assert_ne!(empty.body["id"], made["id"]);

    // The stream records each event as POST /v2/billing/meter_events would, and answers `{}`.
    let mut batch = events("ai_search_api", &cus, "stream_", 3);
    batch.push(
        json!({"event_name": "ai_search_api", "timestamp": "2025-06-14T23:30:00.000Z",
                      "payload": {"stripe_customer_id": cus, "value": "7.5"}}),
    );
    let streamed = v2(&emu, &token, STREAM, &json!({ "events": batch })).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text);
    assert_eq!(streamed.text, "{}");
    assert_eq!(
        usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await,
        10.5
    );
    // Identifiers are shared with the other routes: a v1 event repeating one is refused, and the
    // same batch again stops at its first event.
    let dup = send(
        &emu,
        &key,
        "ai_search_api",
        &cus,
        "1",
        "&identifier=stream_0",
    )
    .await;
    assert_eq!(dup.status, 400, "{}", dup.text);
    let again = v2(
        &emu,
        &token,
        STREAM,
        &json!({ "events": events("ai_search_api", &cus, "stream_", 1) }),
    )
    .await;
    assert_eq!(again.status, 400);
    assert_json_snapshot!("stream_duplicate", again.body);
    assert_eq!(
        usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await,
        10.5
    );
    // A v2 adjustment cancels a streamed event.
    let cancel = v2(
        &emu,
        &key,
        "/v2/billing/meter_event_adjustments",
        &json!({"event_name": "ai_search_api", "type": "cancel", "cancel": {"identifier": "stream_1"}}),
    )
    .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    assert_eq!(usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await, 9.5);
}

#[tokio::test]
async fn stream_refusals() {
    let emu = Emu::start().await;
    let key = emu.tenant("stream_refusals").await;
    let cus = emu.customer(&key, "").await;
    let m = meter_of(&emu, &key, "calls", "sum", "").await;
    let (token, _) = session(&emu, &key).await;

    // A bad event is named by its place in the stream; the events before it are recorded.
    let mut batch = events("calls", &cus, "ok_", 3);
    batch.push(json!({"event_name": "calls", "timestamp": "yesterday",
                      "payload": {"stripe_customer_id": cus, "value": "1"}}));
    let bad = v2(&emu, &token, STREAM, &json!({ "events": batch })).await;
    assert_eq!(bad.status, 400);
    assert_json_snapshot!("stream_bad_timestamp", bad.body);
    assert_eq!(usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await, 0);
    let mut batch = events("calls", &cus, "ok_", 2);
    batch.push(json!({"event_name": "calls", "payload": {"stripe_customer_id": "cus_nobody", "value": "1"}}));
    let unknown = v2(&emu, &token, STREAM, &json!({ "events": batch })).await;
    assert_eq!(unknown.status, 400);
    assert_json_snapshot!("stream_unknown_customer", unknown.body);
    assert_eq!(usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await, 2);
    // At most 100 events, at least one.
    let many = v2(
        &emu,
        &token,
        STREAM,
        &json!({ "events": events("calls", &cus, "many_", 101) }),
    )
    .await;
    assert_eq!(many.status, 400);
    assert_json_snapshot!("stream_too_many", many.body);
    let none = v2(&emu, &token, STREAM, &json!({ "events": [] })).await;
    assert_eq!(none.status, 400);
    assert_json_snapshot!("stream_no_events", none.body);
    let hundred = v2(
        &emu,
        &token,
        STREAM,
        &json!({ "events": events("calls", &cus, "many_", 100) }),
    )
    .await;
    assert_eq!(hundred.status, 200, "{}", hundred.text);
    assert_eq!(usage(&emu, &key, &m, &cus, T0 - HOUR, T0 + HOUR).await, 102);

    // An unknown token is refused as an unknown API key is, and so is a secret key.
    let unknown_token = v2(
        &emu,
        "ek_test_notasessiontoken",
        STREAM,
        &json!({ "events": [] }),
    )
    .await;
    assert_eq!(unknown_token.status, 401);
    assert_json_snapshot!("stream_unknown_token", unknown_token.body);
    let secret = v2(
        &emu,
        &key,
        STREAM,
        &json!({ "events": events("calls", &cus, "key_", 1) }),
    )
    .await;
    assert_eq!(secret.status, 401);
    assert_json_snapshot!("stream_secret_key", secret.body);
    // A session's token is no API key.
    let as_key = emu.get(&token, "/v1/customers").await;
    assert_eq!(as_key.status, 401);
    // The masked token ends with the random token's last four characters.
    let mut refused = as_key.body;
    let message = refused["error"]["message"].as_str().unwrap();
    let message = message.replace(&token[token.len() - 4..], "[tail]");
    refused["error"]["message"] = json!(message);
    assert_json_snapshot!("session_token_as_api_key", refused);
    let as_key = v2(&emu, &token, SESSION, &json!({})).await;
    assert_eq!(as_key.status, 401);

    // Fifteen minutes later on the world's clock the token has expired; a new session works.
    emu.freeze(&key, T0 + 15 * MINUTE).await;
    let expired = v2(
        &emu,
        &token,
        STREAM,
        &json!({ "events": events("calls", &cus, "late_", 1) }),
    )
    .await;
    assert_eq!(expired.status, 401);
    assert_json_snapshot!("stream_expired_token", expired.body);
    let (fresh, made) = session(&emu, &key).await;
    assert_eq!(made["expires_at"], "2025-06-15T00:30:00.000Z");
    let late = v2(
        &emu,
        &fresh,
        STREAM,
        &json!({ "events": events("calls", &cus, "late_", 1) }),
    )
    .await;
    assert_eq!(late.status, 200, "{}", late.text);
    // A reset forgets the world's sessions.
    let reset = emu.post(&key, "/_emulator/reset", "").await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    let gone = v2(&emu, &fresh, STREAM, &json!({ "events": [] })).await;
    assert_eq!(gone.status, 401);
    assert_eq!(gone.body["error"]["type"], "invalid_request_error");
}
