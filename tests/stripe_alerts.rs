//! Billing alerts over real sockets: create, retrieve, list and the active → inactive → archived
//! lifecycle; every refusal of a create; a usage alert firing once when a meter event crosses its
//! threshold; a credit balance alert firing when a cycle invoice's finalization spends the balance
//! under its threshold, at that instant, and again after a grant re-arms it; the
//! `billing.alert.triggered` events in `GET /v1/events`.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::{Emu, Resp, T0};

const HOUR: i64 = 3_600;
/// 2025-07-15T00:00:00Z: the end of the first monthly period from T0.
const T1: i64 = 1_752_537_600;
/// 2025-08-15T00:00:00Z: the end of the second.
const T2: i64 = 1_755_216_000;

fn ok(r: Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

/// Creates a `sum` meter of `event_name` and returns its id.
async fn meter(emu: &Emu, key: &str, event_name: &str) -> String {
    let form =
        format!("display_name=Calls&event_name={event_name}&default_aggregation[formula]=sum");
    ok(emu.post(key, "/v1/billing/meters", &form).await, "meter")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Reports `value` on the meter of `event_name` for `customer`.
async fn usage(emu: &Emu, key: &str, event_name: &str, customer: &str, value: i64) {
    let form = format!(
        "event_name={event_name}&payload[stripe_customer_id]={customer}&payload[value]={value}"
    );
    ok(
        emu.post(key, "/v1/billing/meter_events", &form).await,
        "meter event",
    );
}

/// The world's `billing.alert.triggered` events, oldest first.
async fn triggered(emu: &Emu, key: &str) -> Vec<Value> {
    let list = ok(
        emu.get(key, "/v1/events?limit=100&type=billing.alert.triggered")
            .await,
        "events",
    );
    let mut data = list["data"].as_array().unwrap().clone();
    data.reverse();
    data
}

#[tokio::test]
async fn alerts_are_created_listed_and_move_through_their_lifecycle() {
    let emu = Emu::start().await;
    let key = emu.tenant("alerts_crud").await;
    let customer = emu.customer(&key, "name=Ada").await;
    let mtr = meter(&emu, &key, "calls").await;

    let usage_alert = ok(
        emu.post(
            &key,
            "/v1/billing/alerts",
            &format!(
                "alert_type=usage_threshold&title=Heavy+use&usage_threshold[gte]=1000&usage_threshold[meter]={mtr}&usage_threshold[recurrence]=one_time&usage_threshold[filters][0][type]=customer&usage_threshold[filters][0][customer]={customer}"
            ),
        )
        .await,
        "usage alert",
    );
    assert_json_snapshot!("alert_usage_created", usage_alert);
    let id = usage_alert["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("alrt_"), "{id}");

    let credit_alert = ok(
        emu.post(
            &key,
            "/v1/billing/alerts",
            &format!(
                "alert_type=credit_balance_threshold&title=Low+credit&credit_balance_threshold[filters][0][type]=customer&credit_balance_threshold[filters][0][customer]={customer}&credit_balance_threshold[filters][0][credit_grants][applicability_config][scope][price_type]=metered&credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=USD&credit_balance_threshold[lte][monetary][value]=500"
            ),
        )
        .await,
        "credit alert",
    );
    assert_json_snapshot!("alert_credit_created", credit_alert);
    let credit_id = credit_alert["id"].as_str().unwrap().to_string();

    // Retrieve, and expand the meter.
    let got = ok(
        emu.get(
            &key,
            &format!("/v1/billing/alerts/{id}?expand[]=usage_threshold.meter"),
        )
        .await,
        "retrieve",
    );
    assert_eq!(got["usage_threshold"]["meter"]["id"], mtr);
    assert_eq!(got["usage_threshold"]["meter"]["object"], "billing.meter");

    // Lists: newest first, filtered by type and meter.
    let ids = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = ok(emu.get(&key, "/v1/billing/alerts").await, "list");
    assert_eq!(ids(&all), [credit_id.as_str(), id.as_str()]);
    assert_eq!(all["url"], "/v1/billing/alerts");
    let usage_only = ok(
        emu.get(&key, "/v1/billing/alerts?alert_type=usage_threshold")
            .await,
        "list usage",
    );
    assert_eq!(ids(&usage_only), [id.as_str()]);
    let by_meter = ok(
        emu.get(&key, &format!("/v1/billing/alerts?meter={mtr}"))
            .await,
        "list by meter",
    );
    assert_eq!(ids(&by_meter), [id.as_str()]);
    let page = ok(emu.get(&key, "/v1/billing/alerts?limit=1").await, "page");
    assert_eq!(ids(&page), [credit_id.as_str()]);
    assert_eq!(page["has_more"], true);
    let next = ok(
        emu.get(
            &key,
            &format!("/v1/billing/alerts?limit=1&starting_after={credit_id}"),
        )
        .await,
        "next page",
    );
    assert_eq!(ids(&next), [id.as_str()]);
    assert_eq!(next["has_more"], false);

    // Lifecycle.
    let path = |action: &str| format!("/v1/billing/alerts/{id}/{action}");
    let off = ok(emu.post(&key, &path("deactivate"), "").await, "deactivate");
    assert_eq!(off["status"], "inactive");
    let on = ok(emu.post(&key, &path("activate"), "").await, "activate");
    assert_eq!(on["status"], "active");
    ok(emu.post(&key, &path("deactivate"), "").await, "deactivate");
    let listed = ok(emu.get(&key, "/v1/billing/alerts").await, "list inactive");
    assert_eq!(ids(&listed).len(), 2, "inactive alerts are listed");
    let archived = ok(emu.post(&key, &path("archive"), "").await, "archive");
    assert_eq!(archived["status"], "archived");
    let listed = ok(emu.get(&key, "/v1/billing/alerts").await, "list");
    assert_eq!(
        ids(&listed),
        [credit_id.as_str()],
        "archived alerts are not"
    );
    let still = ok(
        emu.get(&key, &format!("/v1/billing/alerts/{id}")).await,
        "retrieve archived",
    );
    assert_eq!(still["status"], "archived");

    let refused = emu.post(&key, &path("activate"), "").await;
    let missing = emu.get(&key, "/v1/billing/alerts/alrt_nope").await;
    let missing_action = emu
        .post(&key, "/v1/billing/alerts/alrt_nope/archive", "")
        .await;
    assert_json_snapshot!(
        "alert_lifecycle_refusals",
        json!({
            "activate_archived": [refused.status, refused.body],
            "retrieve_missing": [missing.status, missing.body],
            "archive_missing": [missing_action.status, missing_action.body],
        })
    );
    assert_eq!(refused.status, 400);
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn bad_creates_are_refused_with_the_parameter_named() {
    let emu = Emu::start().await;
    let key = emu.tenant("alerts_errors").await;
    let customer = emu.customer(&key, "name=Ada").await;
    let mtr = meter(&emu, &key, "calls").await;
    let usage = format!(
        "alert_type=usage_threshold&title=T&usage_threshold[meter]={mtr}&usage_threshold[recurrence]=one_time"
    );
    let credit = format!(
        "alert_type=credit_balance_threshold&title=T&credit_balance_threshold[filters][0][type]=customer&credit_balance_threshold[filters][0][customer]={customer}"
    );
    let lte = "credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=usd&credit_balance_threshold[lte][monetary][value]=100";
    let cases: Vec<(&str, String)> = vec![
        ("no alert_type", "title=T".into()),
        ("no title", format!("alert_type=usage_threshold&usage_threshold[gte]=1&usage_threshold[meter]={mtr}&usage_threshold[recurrence]=one_time")),
        ("wrong alert_type", "alert_type=spend_threshold&title=T".into()),
        ("title too long", format!("{usage}&usage_threshold[gte]=1&title={}", "x".repeat(257))),
        ("no usage_threshold", "alert_type=usage_threshold&title=T".into()),
        ("no gte", usage.clone()),
        ("gte zero", format!("{usage}&usage_threshold[gte]=0")),
        ("gte negative", format!("{usage}&usage_threshold[gte]=-5")),
        ("gte not an integer", format!("{usage}&usage_threshold[gte]=1.5")),
        ("wrong recurrence", format!("alert_type=usage_threshold&title=T&usage_threshold[meter]={mtr}&usage_threshold[recurrence]=daily&usage_threshold[gte]=1")),
        ("unknown meter", "alert_type=usage_threshold&title=T&usage_threshold[meter]=mtr_nope&usage_threshold[recurrence]=one_time&usage_threshold[gte]=1".into()),
        ("unknown customer", format!("{usage}&usage_threshold[gte]=1&usage_threshold[filters][0][type]=customer&usage_threshold[filters][0][customer]=cus_nope")),
        ("filter without customer", format!("{usage}&usage_threshold[gte]=1&usage_threshold[filters][0][type]=customer")),
        ("wrong filter type", format!("{usage}&usage_threshold[gte]=1&usage_threshold[filters][0][type]=tenant")),
        ("two filters", format!("{usage}&usage_threshold[gte]=1&usage_threshold[filters][0][type]=customer&usage_threshold[filters][0][customer]={customer}&usage_threshold[filters][1][type]=customer&usage_threshold[filters][1][customer]={customer}")),
        ("both hashes", format!("{usage}&usage_threshold[gte]=1&{lte}")),
        ("usage hash on a credit alert", format!("{credit}&{lte}&usage_threshold[gte]=1&usage_threshold[meter]={mtr}&usage_threshold[recurrence]=one_time")),
        ("no credit_balance_threshold", "alert_type=credit_balance_threshold&title=T".into()),
        ("no lte", credit.clone()),
        ("no filter", format!("alert_type=credit_balance_threshold&title=T&{lte}")),
        ("tenant filter", format!("alert_type=credit_balance_threshold&title=T&credit_balance_threshold[filters][0][type]=tenant&{lte}")),
        ("credit customer unknown", format!("alert_type=credit_balance_threshold&title=T&credit_balance_threshold[filters][0][type]=customer&credit_balance_threshold[filters][0][customer]=cus_nope&{lte}")),
        ("custom pricing unit", format!("{credit}&credit_balance_threshold[lte][balance_type]=custom_pricing_unit")),
        ("no monetary", format!("{credit}&credit_balance_threshold[lte][balance_type]=monetary")),
        ("bad currency", format!("{credit}&credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=zzz&credit_balance_threshold[lte][monetary][value]=1")),
        ("negative value", format!("{credit}&credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=usd&credit_balance_threshold[lte][monetary][value]=-1")),
        ("both scopes", format!("{credit}&{lte}&credit_balance_threshold[filters][0][credit_grants][applicability_config][scope][price_type]=metered&credit_balance_threshold[filters][0][credit_grants][applicability_config][scope][prices][0][id]=price_1")),
        ("unknown parameter", format!("{usage}&usage_threshold[gte]=1&usage_threshold[lte]=3")),
    ];
    let mut answers = serde_json::Map::new();
    for (name, form) in &cases {
        let r = emu.post(&key, "/v1/billing/alerts", form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        answers.insert(name.to_string(), r.body);
    }
    assert_json_snapshot!("alert_create_errors", answers);
    let list = ok(emu.get(&key, "/v1/billing/alerts").await, "list");
    assert_eq!(list["data"], json!([]), "no refused create made an alert");
}

#[tokio::test]
async fn a_usage_alert_fires_once_per_customer_when_usage_reaches_its_threshold() {
    let emu = Emu::start().await;
    let key = emu.tenant("alerts_usage").await;
    let ada = emu.customer(&key, "name=Ada").await;
    let bob = emu.customer(&key, "name=Bob").await;
    let mtr = meter(&emu, &key, "calls").await;
    let alert = ok(
        emu.post(
            &key,
            "/v1/billing/alerts",
            &format!(
                "alert_type=usage_threshold&title=100+calls&usage_threshold[gte]=100&usage_threshold[meter]={mtr}&usage_threshold[recurrence]=one_time"
            ),
        )
        .await,
        "alert",
    );
    // An inactive alert on the same meter never fires.
    let quiet = ok(
        emu.post(
            &key,
            "/v1/billing/alerts",
            &format!(
                "alert_type=usage_threshold&title=Quiet&usage_threshold[gte]=1&usage_threshold[meter]={mtr}&usage_threshold[recurrence]=one_time"
            ),
        )
        .await,
        "quiet alert",
    );
    let quiet_id = quiet["id"].as_str().unwrap();
    ok(
        emu.post(
            &key,
            &format!("/v1/billing/alerts/{quiet_id}/deactivate"),
            "",
        )
        .await,
        "deactivate",
    );

    usage(&emu, &key, "calls", &ada, 60).await;
    assert!(triggered(&emu, &key).await.is_empty(), "60 < 100");
    usage(&emu, &key, "calls", &ada, 40).await;
    let fired = triggered(&emu, &key).await;
    assert_eq!(fired.len(), 1, "100 reaches 100: {fired:#?}");
    usage(&emu, &key, "calls", &ada, 500).await;
    usage(&emu, &key, "calls", &bob, 99).await;
    assert_eq!(
        triggered(&emu, &key).await.len(),
        1,
        "one_time, and Bob is at 99"
    );
    usage(&emu, &key, "calls", &bob, 1).await;
    let fired = triggered(&emu, &key).await;
    assert_eq!(fired.len(), 2, "{fired:#?}");

    let objects: Vec<&Value> = fired.iter().map(|e| &e["data"]["object"]).collect();
    assert_eq!(objects[0]["customer"], ada.as_str());
    assert_eq!(objects[0]["value"], 100);
    assert_eq!(objects[1]["customer"], bob.as_str());
    assert_eq!(objects[1]["value"], 100);
    assert_eq!(objects[0]["alert"]["id"], alert["id"]);
    assert_eq!(fired[0]["created"], T0);
    assert!(
        fired[0]["request"]["id"].as_str().is_some(),
        "a request caused it"
    );
    let mut first = fired[0].clone();
    first["id"] = json!("[event id]");
    first["request"]["id"] = json!("[request id]");
    assert_json_snapshot!("alert_usage_triggered_event", first);
}

#[tokio::test]
async fn a_credit_alert_fires_when_finalization_spends_the_balance_and_again_after_a_grant() {
    let emu = Emu::start().await;
    let key = emu.tenant("alerts_credit").await;
    let clock = ok(
        emu.post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={T0}"),
        )
        .await,
        "clock",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let customer = emu
        .customer(&key, &format!("test_clock={clock}&name=Ada"))
        .await;
    emu.grant(&key, &customer, 1_000, "").await;
    let mtr = meter(&emu, &key, "api_calls").await;
    let price = ok(
        emu.post(
            &key,
            "/v1/prices",
            &format!(
                "currency=usd&unit_amount=5&product_data[name]=API&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={mtr}"
            ),
        )
        .await,
        "price",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        emu.post(
            &key,
            "/v1/subscriptions",
            &format!("customer={customer}&items[0][price]={price}"),
        )
        .await,
        "subscription",
    );
    let alert = ok(
        emu.post(
            &key,
            "/v1/billing/alerts",
            &format!(
                "alert_type=credit_balance_threshold&title=Low+credit&credit_balance_threshold[filters][0][type]=customer&credit_balance_threshold[filters][0][customer]={customer}&credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=usd&credit_balance_threshold[lte][monetary][value]=500"
            ),
        )
        .await,
        "alert",
    );
    let advance = |to: i64| emu.advance_clock(&key, &clock, to);

    // 150 calls at 5 cents: the cycle invoice of T1 finalizes an hour later and spends 750 of
    // the 1,000, leaving 250, under 500.
    usage(&emu, &key, "api_calls", &customer, 150).await;
    advance(T1 + 30 * 60).await;
    assert!(triggered(&emu, &key).await.is_empty(), "still a draft");
    advance(T1 + 2 * HOUR).await;
    let fired = triggered(&emu, &key).await;
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(
        fired[0]["created"],
        T1 + HOUR,
        "at the finalization's instant"
    );
    assert_eq!(fired[0]["request"]["id"], Value::Null, "time made it");
    assert_eq!(fired[0]["data"]["object"]["value"], 250);
    assert_eq!(fired[0]["data"]["object"]["alert"]["id"], alert["id"]);
    let mut first = fired[0].clone();
    first["id"] = json!("[event id]");
    assert_json_snapshot!("alert_credit_triggered_event", first);

    // Still under: nothing more. A grant lifts the balance to 1,250 and re-arms the alert.
    advance(T1 + 3 * HOUR).await;
    assert_eq!(triggered(&emu, &key).await.len(), 1);
    emu.grant(&key, &customer, 1_000, "").await;
    assert_eq!(triggered(&emu, &key).await.len(), 1, "a rise fires nothing");

    // A usage alert on the meter measures the subscription's current period: the 150 calls of
    // the first period do not count towards it.
    let calls = ok(
        emu.post(
            &key,
            "/v1/billing/alerts",
            &format!(
                "alert_type=usage_threshold&title=180+calls&usage_threshold[gte]=180&usage_threshold[meter]={mtr}&usage_threshold[recurrence]=one_time&usage_threshold[filters][0][type]=customer&usage_threshold[filters][0][customer]={customer}"
            ),
        )
        .await,
        "usage alert",
    );
    usage(&emu, &key, "api_calls", &customer, 40).await;
    assert_eq!(
        triggered(&emu, &key).await.len(),
        1,
        "40 this period, not 190"
    );

    // 200 calls in all: the usage alert fires at 200, and the next cycle invoice spends 1,000
    // and leaves 250 again.
    usage(&emu, &key, "api_calls", &customer, 160).await;
    let fired = triggered(&emu, &key).await;
    assert_eq!(fired.len(), 2, "{fired:#?}");
    assert_eq!(fired[1]["data"]["object"]["alert"]["id"], calls["id"]);
    assert_eq!(fired[1]["data"]["object"]["value"], 200);
    assert_eq!(fired[1]["created"], T1 + 3 * HOUR);
    advance(T2 + 2 * HOUR).await;
    let fired = triggered(&emu, &key).await;
    assert_eq!(fired.len(), 3, "{fired:#?}");
    assert_eq!(fired[2]["created"], T2 + HOUR);
    assert_eq!(fired[2]["data"]["object"]["alert"]["id"], alert["id"]);
    assert_eq!(fired[2]["data"]["object"]["value"], 250);
}

#[tokio::test]
async fn a_credit_alert_on_a_balance_already_under_its_threshold_fires_at_once() {
    let emu = Emu::start().await;
    let key = emu.tenant("alerts_credit_now").await;
    let customer = emu.customer(&key, "name=Ada").await;
    emu.grant(&key, &customer, 100, "").await;
    ok(
        emu.post(
            &key,
            "/v1/billing/alerts",
            &format!(
                "alert_type=credit_balance_threshold&title=Low&credit_balance_threshold[filters][0][type]=customer&credit_balance_threshold[filters][0][customer]={customer}&credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=usd&credit_balance_threshold[lte][monetary][value]=500"
            ),
        )
        .await,
        "alert",
    );
    let fired = triggered(&emu, &key).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["data"]["object"]["value"], 100);
    // A second alert at 50, above which the balance is, switched off.
    let off = ok(
        emu.post(
            &key,
            "/v1/billing/alerts",
            &format!(
                "alert_type=credit_balance_threshold&title=Off&credit_balance_threshold[filters][0][type]=customer&credit_balance_threshold[filters][0][customer]={customer}&credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=usd&credit_balance_threshold[lte][monetary][value]=50"
            ),
        )
        .await,
        "second alert",
    );
    let off_id = off["id"].as_str().unwrap();
    ok(
        emu.post(&key, &format!("/v1/billing/alerts/{off_id}/deactivate"), "")
            .await,
        "deactivate",
    );
    // A void takes the balance to 0: still under for the first, so nothing new; the second
    // crosses while off, which it never reports.
    let grants = ok(
        emu.get(
            &key,
            &format!("/v1/billing/credit_grants?customer={customer}"),
        )
        .await,
        "grants",
    );
    let grant = grants["data"][0]["id"].as_str().unwrap();
    ok(
        emu.post(&key, &format!("/v1/billing/credit_grants/{grant}/void"), "")
            .await,
        "void",
    );
    assert_eq!(triggered(&emu, &key).await.len(), 1);
    ok(
        emu.post(&key, &format!("/v1/billing/alerts/{off_id}/activate"), "")
            .await,
        "activate",
    );
    emu.grant(&key, &customer, 10, "").await;
    assert_eq!(
        triggered(&emu, &key).await.len(),
        1,
        "10 is still under both"
    );
    // Above both thresholds, then under the second only: it fires now that it is active.
    emu.grant(&key, &customer, 1_000, "").await;
    let grants = ok(
        emu.get(
            &key,
            &format!("/v1/billing/credit_grants?customer={customer}"),
        )
        .await,
        "grants",
    );
    let big = grants["data"][0]["id"].as_str().unwrap();
    ok(
        emu.post(&key, &format!("/v1/billing/credit_grants/{big}/void"), "")
            .await,
        "void the big grant",
    );
    let fired = triggered(&emu, &key).await;
    assert_eq!(
        fired.len(),
        3,
        "both re-armed and crossed again: {fired:#?}"
    );
    // At the void's instant, in the order the alerts were made.
    assert_eq!(fired[1]["data"]["object"]["alert"]["title"], "Low");
    assert_eq!(
        fired[2]["data"]["object"]["alert"]["id"].as_str(),
        Some(off_id)
    );
    assert_eq!(fired[1]["data"]["object"]["value"], 10);
    assert_eq!(fired[2]["data"]["object"]["value"], 10);
}
