//! A world's whole state as one document, over real sockets: `GET /_emulator/state` writes it,
//! `PUT /_emulator/state` reads it into a world. A rich world (both APIs' objects, a test clock,
//! usage billing with meter events and cycle invoices, a webhook endpoint, an alert, events and
//! idempotency keys) exported, imported into a fresh key and exported again gives the same
//! document; the imported world answers as the original does, replays its idempotent answers and
//! makes new objects after the old ones; refused documents leave the world as it was.

use crate::support;

use serde_json::{json, Value};
use support::robustness as rs;
use support::{Emu, Resp};

const STATE: &str = "/_emulator/state";

/// The caller's document; must answer 200.
async fn export(emu: &Emu, key: &str) -> Value {
    let r = emu.get(key, STATE).await;
    assert_eq!(r.status, 200, "export: {}", r.text);
    r.body
}

/// `PUT /_emulator/state` with `body` as it is.
async fn import_raw(emu: &Emu, key: &str, body: &str) -> Resp {
    let rb = emu
        .client
        .put(emu.url(STATE))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string());
    let resp = rb.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

/// `PUT /_emulator/state` with `doc`.
async fn import(emu: &Emu, key: &str, doc: &Value) -> Resp {
    import_raw(emu, key, &doc.to_string()).await
}

/// A document without what depends on when and into which world it was written.
fn comparable(doc: &Value) -> Value {
    let mut d = doc.clone();
    d["exported_at"] = Value::Null;
    d["world"]["name"] = Value::Null;
    d
}

/// The first place where `a` and `b` differ, for a readable failure.
fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    None => return Some(format!("{path}.{k}: missing on the right")),
                    Some(w) => {
                        if let Some(d) = difference(v, w, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k}: missing on the left"))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = difference(v, w, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path}: {} against {} items", x.len(), y.len()))
        }
        _ => (a != b).then(|| format!("{path}: {a} against {b}")),
    }
}

/// `value` without the fields the native API derives from the API key (`tenant_id`,
/// `environment_id`, `created_by`, `updated_by`): they name the world, not its objects.
fn without_key_names(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "tenant_id" | "environment_id" | "created_by" | "updated_by"
                    )
                })
                .map(|(k, v)| (k.clone(), without_key_names(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_key_names).collect()),
        v => v.clone(),
    }
}

fn assert_same(a: &Value, b: &Value) {
    if let Some(d) = difference(a, b, "") {
        panic!("the documents differ at {d}");
    }
}

/// Usage billing on the corpus world's test clock: a meter, a metered price, a subscription for
/// the customer on the clock, meter events (one cancelled), and the clock moved past the period's
/// end and the draft's grace, so that a cycle invoice spent its credits; a usage alert, an invoice
/// item, a webhook endpoint for invoice events, and the world's own API version.
async fn usage_billing(emu: &Emu, w: &rs::World) {
    let key = &w.key;
    let ok = |r: Resp, what: &str| {
        assert_eq!(r.status, 200, "{what}: {}", r.text);
        r.body
    };
    let endpoint = emu
        .post(
            key,
            "/v1/webhook_endpoints",
            "url=http://127.0.0.1:9/hooks&enabled_events[]=invoice.created&enabled_events[]=invoice.finalized&enabled_events[]=invoice.paid&description=Invoices",
        )
        .await;
    ok(endpoint, "endpoint");
    let meter = ok(
        emu.post(
            key,
            "/v1/billing/meters",
            "display_name=API+calls&event_name=api_calls&default_aggregation[formula]=sum",
        )
        .await,
        "meter",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let price = ok(
        emu.post(
            key,
            "/v1/prices",
            &format!(
                "currency=usd&unit_amount=5&product_data[name]=API&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={meter}"
            ),
        )
        .await,
        "price",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let customer = &w.vars["clock_cus"];
    ok(
        emu.post(
            key,
            "/v1/subscriptions",
            &format!("customer={customer}&items[0][price]={price}"),
        )
        .await,
        "subscription",
    );
    ok(
        emu.post(
            key,
            "/v1/billing/alerts",
            &format!("alert_type=usage_threshold&title=Heavy+use&usage_threshold[gte]=10&usage_threshold[meter]={meter}&usage_threshold[recurrence]=one_time"),
        )
        .await,
        "alert",
    );
    for (i, calls) in [4, 7, 2].into_iter().enumerate() {
        ok(
            emu.post(
                key,
                "/v1/billing/meter_events",
                &format!("event_name=api_calls&payload[stripe_customer_id]={customer}&payload[value]={calls}&identifier=call-{i}"),
            )
            .await,
            "meter event",
        );
    }
    ok(
        emu.post(
            key,
            "/v1/billing/meter_event_adjustments",
            "event_name=api_calls&type=cancel&cancel[identifier]=call-2",
        )
        .await,
        "cancel",
    );
    // One month and two hours: the period ends, and its draft finalizes an hour later.
    let to = rs::BASE + 31 * 86_400 + 7_200;
    ok(
        emu.post(
            key,
            &format!("/v1/test_helpers/test_clocks/{}/advance", w.clock),
            &format!("frozen_time={to}"),
        )
        .await,
        "advance",
    );
    ok(
        emu.post(
            key,
            "/v1/billing/meter_events",
            &format!("event_name=api_calls&payload[stripe_customer_id]={customer}&payload[value]=3&identifier=late-call"),
        )
        .await,
        "meter event after the advance",
    );
    ok(
        emu.post(
            key,
            "/v1/invoiceitems",
            &format!(
                "customer={}&amount=300&currency=usd&description=Setup",
                w.vars["cus"]
            ),
        )
        .await,
        "invoice item",
    );
    ok(
        emu.post(key, "/_emulator/stripe_version", "version=2025-03-31.basil")
            .await,
        "version",
    );
}

/// A document survives JSON and a binary serde format alike.
fn binary_round_trip(doc: &Value) {
    let typed: credit_emulator::WorldDocument =
        serde_json::from_value(doc.clone()).expect("the document reads as a WorldDocument");
    let packed = rmp_serde::to_vec_named(&typed).expect("MessagePack");
    let back: credit_emulator::WorldDocument =
        rmp_serde::from_slice(&packed).expect("MessagePack back");
    assert_eq!(back, typed);
    assert_eq!(serde_json::to_value(&back).expect("JSON"), *doc);
}

#[tokio::test]
async fn a_rich_world_exported_imported_and_exported_again_is_the_same() {
    let emu = Emu::start().await;
    let w = rs::world(&emu, "state").await;
    usage_billing(&emu, &w).await;
    let original = export(&emu, &w.key).await;
    let model = &original["world"]["model"];
    // The world really is rich: every kind of object is there.
    for list in [
        "customers",
        "test_clocks",
        "lots",
        "entries",
        "schedule",
        "invoices",
        "plans",
        "subscriptions",
        "grant_rules",
        "applications",
        "wallets",
        "lot_wallets",
        "products",
        "prices",
        "meters",
        "meter_events",
        "priced_subscriptions",
        "subscription_items",
        "invoice_items",
        "webhook_endpoints",
        "alerts",
    ] {
        let n = model[list].as_array().map_or(0, Vec::len);
        assert!(n > 0, "no {list} in the rich world");
    }
    assert!(model["meter_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["cancelled"] == true));
    assert!(!model["alert_memory"]["fired"]
        .as_array()
        .unwrap()
        .is_empty());
    let stripe = &original["world"]["stripe"];
    assert_eq!(stripe["default_version"], "2025-03-31.basil");
    let events = stripe["events"]["events"].as_array().unwrap();
    assert!(events.len() > 40, "{} events", events.len());
    assert_eq!(stripe["idempotency"][0]["key"], "corpus-used-key");
    assert_eq!(original["world"]["name"], w.key.as_str());
    assert_eq!(original["object"], "emulator_state");
    assert_eq!(original["format_version"], 1);

    let copy = "sk_test_state_copy";
    let answer = import(&emu, copy, &original).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    insta::assert_json_snapshot!("rich_import_answer", answer.body);
    let again = export(&emu, copy).await;
    assert_eq!(again["world"]["name"], copy);
    assert_same(&comparable(&original), &comparable(&again));
    emu.running
        .app
        .store
        .with_tenant(copy, |t| t.check_indexes())
        .expect("the imported world's indexes hold");
    binary_round_trip(&original);

    // Both worlds answer alike through both APIs.
    let views = rs::dump(&emu, &w.key, &w.clock).await;
    let copied = rs::dump(&emu, copy, &w.clock).await;
    assert_same(&without_key_names(&views), &without_key_names(&copied));
    for path in [
        "/v1/events?limit=100",
        "/v1/billing/meters",
        "/v1/subscriptions?status=all",
        "/v1/billing/alerts",
        "/v1/webhook_endpoints",
        "/v1/invoiceitems",
        "/_emulator/stripe_version",
    ] {
        let a = emu.get(&w.key, path).await;
        let b = emu.get(copy, path).await;
        assert_eq!((a.status, b.status), (200, 200), "{path}: {}", b.text);
        // Deliveries are not part of a world: the copy's events wait for no endpoint.
        let mut original = a.body.clone();
        if let Some(events) = original.get_mut("data").and_then(Value::as_array_mut) {
            for e in events.iter_mut().filter(|e| e["object"] == "event") {
                e["pending_webhooks"] = json!(0);
            }
        }
        if let Some(d) = difference(&original, &b.body, path) {
            panic!("the worlds answer differently: {d}\n{}", b.text);
        }
    }

    // A replayed Idempotency-Key answers the stored response in the new world too.
    let replay = |key: String| {
        let emu = &emu;
        async move {
            emu.stripe_with(
                "POST",
                &key,
                "/v1/customers",
                "email=used@example.com",
                &[("idempotency-key", "corpus-used-key")],
            )
            .await
        }
    };
    let (a, b) = (replay(w.key.clone()).await, replay(copy.to_string()).await);
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.text, b.text);

    // New objects continue the sequence: the same ids in both worlds, none of them an old one.
    let old: Vec<Value> = model["customers"].as_array().unwrap().clone();
    let made_a = emu.customer(&w.key, "email=new@example.com").await;
    let made_b = emu.customer(copy, "email=new@example.com").await;
    assert_eq!(made_a, made_b);
    let key_of = |id: &str| id.rsplit('_').next().unwrap_or_default().to_string();
    assert!(old.iter().all(|c| c["key"] != key_of(&made_b).as_str()));
    let grant_a = emu
        .grant(&w.key, &w.vars["cus"], 250, "category=paid")
        .await;
    let grant_b = emu.grant(copy, &w.vars["cus"], 250, "category=paid").await;
    assert_eq!(grant_a, grant_b);
    let balance = |key: String| {
        let emu = &emu;
        let cus = w.vars["cus"].clone();
        async move {
            emu.get(
                &key,
                &format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
            )
            .await
            .body
        }
    };
    assert_same(
        &balance(w.key.clone()).await,
        &balance(copy.to_string()).await,
    );
    assert_eq!(
        emu.running
            .app
            .store
            .with_tenant(copy, |t| t.check_indexes()),
        Ok(())
    );
}

/// A small world (a customer and a grant), whose whole document is the snapshot: the format.
#[tokio::test]
async fn the_document_of_a_small_world() {
    let emu = Emu::start().await;
    let key = emu.tenant("state_small").await;
    let customer = emu
        .customer(&key, "email=ada@example.com&metadata[plan]=pro")
        .await;
    emu.grant(&key, &customer, 1000, "name=Welcome&expires_at=1781481600")
        .await;
    let doc = export(&emu, &key).await;
    assert!(doc["exported_at"].as_i64().is_some());
    // Request ids are random; they are inside each event's JSON text.
    let mut shown = doc.clone();
    for e in shown["world"]["stripe"]["events"]["events"]
        .as_array_mut()
        .expect("events")
    {
        let mut event: Value = serde_json::from_str(e["event"].as_str().unwrap()).unwrap();
        event["request"]["id"] = json!("[request_id]");
        e["event"] = json!(event.to_string());
    }
    insta::assert_json_snapshot!("small_world", shown, {".exported_at" => "[exported_at]"});
    binary_round_trip(&doc);
    // Into the same world again: nothing changes.
    let answer = import(&emu, &key, &doc).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_same(&comparable(&doc), &comparable(&export(&emu, &key).await));
}

/// A world never used exports as an empty one, and an empty document empties a world.
#[tokio::test]
async fn an_empty_world() {
    let emu = Emu::start().await;
    let doc = export(&emu, "sk_test_state_never_used").await;
    assert_eq!(doc["world"]["model"]["issued"], 0);
    assert_eq!(doc["world"]["model"]["customers"], json!([]));
    let key = emu.tenant("state_emptied").await;
    emu.customer(&key, "email=gone@example.com").await;
    let answer = import(&emu, &key, &doc).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let list = emu.get(&key, "/v1/customers").await;
    assert_eq!(list.body["data"], json!([]));
}

/// A document changed by `edit`, from `base`.
fn edited(base: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut d = base.clone();
    edit(&mut d);
    d
}

/// Every refused document answers 400 in the admin envelope naming what is wrong (snapshots), and
/// leaves the world it was sent to exactly as it was.
#[tokio::test]
async fn refused_documents_name_what_is_wrong_and_change_nothing() {
    let emu = Emu::start().await;
    let key = emu.tenant("state_refused").await;
    let customer = emu.customer(&key, "email=ada@example.com").await;
    let grant = emu.grant(&key, &customer, 1000, "").await;
    emu.stripe_with(
        "POST",
        &key,
        "/v1/customers",
        "email=kept@example.com",
        &[("idempotency-key", "kept-key")],
    )
    .await;
    emu.post(&key, &format!("/v1/billing/credit_grants/{grant}/void"), "")
        .await;
    let base = export(&emu, &key).await;
    let before = rs::fingerprint(&emu, &key);
    let elsewhere = "00000000000000000000000001";
    let cases: Vec<(&str, String)> = vec![
        ("empty_body", String::new()),
        ("not_json", "{\"object\": ".to_string()),
        ("an_array", "[]".to_string()),
        (
            "another_object",
            edited(&base, |d| d["object"] = json!("customer")).to_string(),
        ),
        (
            "a_later_format",
            edited(&base, |d| d["format_version"] = json!(2)).to_string(),
        ),
        (
            "format_zero",
            edited(&base, |d| d["format_version"] = json!(0)).to_string(),
        ),
        (
            "an_unknown_field",
            edited(&base, |d| {
                d["world"]["model"]["lots"][0]["colour"] = json!("red")
            })
            .to_string(),
        ),
        (
            "a_missing_list",
            edited(&base, |d| {
                d["world"]["model"]
                    .as_object_mut()
                    .unwrap()
                    .remove("entries");
            })
            .to_string(),
        ),
        (
            "an_amount_as_a_number",
            edited(&base, |d| {
                d["world"]["model"]["lots"][0]["amount"] = json!(1000)
            })
            .to_string(),
        ),
        (
            "a_key_with_a_prefix",
            edited(&base, |d| {
                d["world"]["model"]["customers"][0]["key"] = json!(customer.clone())
            })
            .to_string(),
        ),
        (
            "an_unknown_currency",
            edited(&base, |d| {
                d["world"]["model"]["lots"][0]["currency"] = json!("xyz")
            })
            .to_string(),
        ),
        (
            "a_lot_of_no_customer",
            edited(&base, |d| {
                d["world"]["model"]["lots"][0]["customer"] = json!(elsewhere)
            })
            .to_string(),
        ),
        (
            "an_entry_of_no_lot",
            edited(&base, |d| {
                d["world"]["model"]["entries"][1]["lot"] = json!(elsewhere)
            })
            .to_string(),
        ),
        (
            "a_balance_its_entries_do_not_make",
            edited(&base, |d| {
                d["world"]["model"]["lots"][0]["remaining"] = json!("999")
            })
            .to_string(),
        ),
        (
            "a_customer_twice",
            edited(&base, |d| {
                let c = d["world"]["model"]["customers"][0].clone();
                d["world"]["model"]["customers"]
                    .as_array_mut()
                    .unwrap()
                    .push(c);
            })
            .to_string(),
        ),
        (
            "a_key_after_the_generator",
            edited(&base, |d| {
                d["world"]["model"]["customers"][0]["key"] = json!("7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
            })
            .to_string(),
        ),
        (
            "a_counter_past_48_bits",
            edited(&base, |d| {
                d["world"]["model"]["ids"]["counter"] = json!(281_474_976_710_656u64)
            })
            .to_string(),
        ),
        (
            "a_negative_amount",
            edited(&base, |d| {
                d["world"]["model"]["entries"][0]["amount"] = json!("-5")
            })
            .to_string(),
        ),
        (
            "an_unknown_event_type",
            edited(&base, |d| {
                let text = &mut d["world"]["stripe"]["events"]["events"][0]["event"];
                let mut event: Value =
                    serde_json::from_str(text.as_str().unwrap_or_default()).expect("an event");
                event["type"] = json!("charge.succeeded");
                *text = json!(event.to_string());
            })
            .to_string(),
        ),
        (
            "a_bad_fingerprint",
            edited(&base, |d| {
                d["world"]["stripe"]["idempotency"][0]["fingerprint"] = json!("not hex")
            })
            .to_string(),
        ),
        (
            "an_unknown_version",
            edited(&base, |d| {
                d["world"]["stripe"]["default_version"] = json!("2099-01-01.zebra")
            })
            .to_string(),
        ),
        (
            "a_schedule_of_no_lot",
            edited(&base, |d| {
                d["world"]["model"]["schedule"] = json!([{
                    "clock": null, "at": 4_000_000_000_000_000_000i64,
                    "key": elsewhere, "event": {"expire": elsewhere}
                }])
            })
            .to_string(),
        ),
    ];
    for (name, body) in cases {
        let r = import_raw(&emu, &key, &body).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        insta::assert_json_snapshot!(
            format!("refused_{name}"),
            json!({"status": r.status, "body": r.body})
        );
        assert_eq!(
            rs::fingerprint(&emu, &key),
            before,
            "{name} changed the world"
        );
    }
    assert_same(&comparable(&base), &comparable(&export(&emu, &key).await));
}

/// The route's body is bound by `--max-body-bytes` like any other: a larger document is a 413.
#[tokio::test]
async fn a_document_over_the_body_limit_is_refused() {
    let emu = Emu::with_config(credit_emulator::Config {
        seed: Some(42),
        max_body_bytes: 2048,
        ..credit_emulator::Config::default()
    })
    .await;
    let key = emu.tenant("state_limit").await;
    for i in 0..5 {
        emu.customer(&key, &format!("email=c{i}@example.com")).await;
    }
    let doc = export(&emu, &key).await;
    let r = import(&emu, &key, &doc).await;
    assert_eq!(r.status, 413);
    insta::assert_json_snapshot!("over_the_body_limit", r.body);
}
