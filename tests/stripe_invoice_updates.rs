//! `POST /v1/invoices/{id}` over real sockets: a draft's fields, holding and moving its automatic
//! finalization (a one-off draft and a subscription's cycle draft on a test clock), a finalized
//! invoice's metadata, Stripe's refusal of anything else once finalized, and `invoice.updated`.

use crate::support;

use serde_json::Value;
use support::{Emu, T0};

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// 2025-07-15T00:00:00Z: the end of the first monthly period from T0.
const T1: i64 = 1_752_537_600;

async fn ok(r: support::Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

/// A one-off draft of 400 cents for a new customer of tenant `key`; its id.
async fn draft(emu: &Emu, key: &str, form: &str) -> String {
    let cus = emu.customer(key, "name=Ada").await;
    ok(
        emu.post(
            key,
            "/v1/invoiceitems",
            &format!("customer={cus}&amount=400&currency=usd"),
        )
        .await,
        "item",
    )
    .await;
    let inv = ok(
        emu.post(
            key,
            "/v1/invoices",
            &format!("customer={cus}&pending_invoice_items_behavior=include{form}"),
        )
        .await,
        "invoice",
    )
    .await;
    inv["id"].as_str().unwrap().to_string()
}

async fn invoice(emu: &Emu, key: &str, id: &str) -> Value {
    ok(emu.get(key, &format!("/v1/invoices/{id}")).await, "invoice").await
}

#[tokio::test]
async fn a_draft_takes_its_fields_and_its_finalization_can_be_held_or_moved() {
    let emu = Emu::start().await;
    let key = emu.tenant("invoice_update_draft").await;
    let id = draft(&emu, &key, "&auto_advance=true").await;
    let path = format!("/v1/invoices/{id}");
    assert_eq!(
        invoice(&emu, &key, &id).await["automatically_finalizes_at"],
        T0 + HOUR
    );

    // Fields, and the finalization held.
    let held = ok(
        emu.post(
            &key,
            &path,
            "description=Pack&metadata[order]=7&collection_method=send_invoice&days_until_due=7&auto_advance=false",
        )
        .await,
        "update",
    )
    .await;
    insta::assert_json_snapshot!(
        "draft_updated",
        serde_json::json!({
            "description": held["description"],
            "metadata": held["metadata"],
            "collection_method": held["collection_method"],
            "auto_advance": held["auto_advance"],
            "automatically_finalizes_at": held["automatically_finalizes_at"],
            "status": held["status"],
        })
    );
    emu.freeze(&key, T0 + 3 * HOUR).await;
    assert_eq!(invoice(&emu, &key, &id).await["status"], "draft");

    // Turned back on, it finalizes an hour later, with the days it was given.
    let on = ok(emu.post(&key, &path, "auto_advance=true").await, "update").await;
    assert_eq!(on["automatically_finalizes_at"], T0 + 4 * HOUR);
    // Moved a day on, it waits for that instant.
    let moved = ok(
        emu.post(
            &key,
            &path,
            &format!("automatically_finalizes_at={}", T0 + DAY),
        )
        .await,
        "update",
    )
    .await;
    assert_eq!(moved["automatically_finalizes_at"], T0 + DAY);
    emu.freeze(&key, T0 + 5 * HOUR).await;
    assert_eq!(invoice(&emu, &key, &id).await["status"], "draft");
    emu.freeze(&key, T0 + DAY + 1).await;
    let open = invoice(&emu, &key, &id).await;
    assert_eq!(open["status"], "open");
    assert_eq!(open["status_transitions"]["finalized_at"], T0 + DAY);
    assert_eq!(open["due_date"], T0 + DAY + 7 * DAY);
    assert_eq!(open["description"], "Pack");

    // Each change is an invoice.updated naming what it changed (an invoice shows no
    // `days_until_due`: it shows in `due_date` once finalized).
    let events = ok(
        emu.get(&key, "/v1/events?type=invoice.updated").await,
        "events",
    )
    .await;
    let changes: Vec<Vec<String>> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            let mut keys: Vec<String> = e["data"]["previous_attributes"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        })
        .collect();
    assert_eq!(
        changes[..3],
        [
            vec![
                "auto_advance",
                "automatically_finalizes_at",
                "collection_method",
                "description",
                "metadata"
            ],
            vec!["auto_advance", "automatically_finalizes_at"],
            vec!["automatically_finalizes_at"],
        ]
    );
}

#[tokio::test]
async fn a_finalized_invoice_takes_only_its_metadata() {
    let emu = Emu::start().await;
    let key = emu.tenant("invoice_update_final").await;
    let id = draft(
        &emu,
        &key,
        "&collection_method=send_invoice&days_until_due=10",
    )
    .await;
    let path = format!("/v1/invoices/{id}");
    ok(
        emu.post(&key, &format!("{path}/finalize"), "").await,
        "finalize",
    )
    .await;

    let tagged = ok(emu.post(&key, &path, "metadata[ref]=A1").await, "metadata").await;
    assert_eq!(tagged["metadata"]["ref"], "A1");
    assert_eq!(tagged["status"], "open");

    let mut refusals = serde_json::Map::new();
    for (name, form) in [
        ("description", "description=Later&metadata[ref]=B2"),
        (
            "collection",
            "days_until_due=3&collection_method=charge_automatically",
        ),
    ] {
        let r = emu.post(&key, &path, form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        refusals.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("finalized_refusals", refusals);
    // Refused as a whole: the metadata sent with it did not change.
    assert_eq!(invoice(&emu, &key, &id).await["metadata"]["ref"], "A1");

    let mut errors = serde_json::Map::new();
    let other = draft(&emu, &key, "").await;
    for (name, form) in [
        ("days_with_automatic", "days_until_due=3".to_string()),
        (
            "finalizes_in_the_past",
            format!("automatically_finalizes_at={}", T0 - 1),
        ),
        ("footer", "footer=Thanks".to_string()),
    ] {
        let r = emu
            .post(&key, &format!("/v1/invoices/{other}"), &form)
            .await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        errors.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("draft_refusals", errors);
    let missing = emu
        .post(&key, "/v1/invoices/in_nope", "description=x")
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
}

#[tokio::test]
async fn a_cycle_draft_held_waits_past_its_grace_period() {
    let emu = Emu::start().await;
    let key = emu.tenant("invoice_update_cycle").await;
    let clock = emu.test_clock(&key, T0).await;
    let cus = emu
        .customer(&key, &format!("test_clock={clock}&name=Ada"))
        .await;
    let price = emu.metered_price(&key, "calls").await;
    let sub = ok(
        emu.post(
            &key,
            "/v1/subscriptions",
            &format!("customer={cus}&items[0][price]={price}"),
        )
        .await,
        "subscription",
    )
    .await;
    emu.advance_clock(&key, &clock, T1 + 60).await;
    let list = ok(
        emu.get(
            &key,
            &format!(
                "/v1/invoices?subscription={}&status=draft",
                sub["id"].as_str().unwrap()
            ),
        )
        .await,
        "invoices",
    )
    .await;
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    let held = ok(
        emu.post(&key, &format!("/v1/invoices/{id}"), "auto_advance=false")
            .await,
        "hold",
    )
    .await;
    assert_eq!(held["automatically_finalizes_at"], Value::Null);

    emu.advance_clock(&key, &clock, T1 + 5 * HOUR).await;
    assert_eq!(invoice(&emu, &key, &id).await["status"], "draft");
    let done = ok(
        emu.post(&key, &format!("/v1/invoices/{id}/finalize"), "")
            .await,
        "finalize",
    )
    .await;
    assert_eq!(done["status"], "paid");
    assert_eq!(done["status_transitions"]["finalized_at"], T1 + 5 * HOUR);
}
