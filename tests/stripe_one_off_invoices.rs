//! One-off invoices over real sockets: invoice items (by amount, unit amount or a one-time price),
//! `POST /v1/invoices` sweeping pending items, finalize, pay (by the customer's payment method,
//! which may be one of Stripe's declining test cards, or out of band), mark uncollectible, void and
//! delete, with their errors. Credits never pay one-off invoices.

use crate::support;

use credit_emulator::model::{Currency, NewPrice, Scheme};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::Emu;

/// A one-time price of `cents` for a product named `name`, made in the tenant's catalog.
fn one_time_price(emu: &Emu, key: &str, name: &str, cents: i64) -> String {
    emu.running.app.store.with_tenant(key, |t| {
        let product = t.create_product(name.to_string(), Default::default());
        let price = t.create_price(NewPrice {
            product,
            active: true,
            currency: Currency::parse("usd").unwrap(),
            recurring: None,
            scheme: Scheme::PerUnit {
                unit_amount: Decimal::from(cents),
            },
            transform_quantity: None,
            lookup_key: None,
            nickname: None,
            metadata: Default::default(),
        });
        credit_emulator::ids::render("price_", price)
    })
}

async fn ok(r: support::Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

#[tokio::test]
async fn a_credit_pack_bought_through_a_one_off_invoice() {
    let emu = Emu::start().await;
    let key = emu.tenant("one_off_pack").await;
    let cus = emu.customer(&key, "name=Ada").await;
    // Credits never pay one-off invoices.
    emu.grant(&key, &cus, 10_000, "").await;
    let price = one_time_price(&emu, &key, "1,000 credits", 2_500);

    let pack = ok(
        emu.post(
            &key,
            "/v1/invoiceitems",
            &format!("customer={cus}&pricing[price]={price}&quantity=2&metadata[pack]=1000"),
        )
        .await,
        "item by price",
    )
    .await;
    let fee = ok(
        emu.post(
            &key,
            "/v1/invoiceitems",
            &format!("customer={cus}&amount=300&currency=usd&description=Setup"),
        )
        .await,
        "item by amount",
    )
    .await;
    insta::assert_json_snapshot!("one_off_item_by_price", pack);
    insta::assert_json_snapshot!("one_off_item_by_amount", fee);

    let pending = ok(
        emu.get(
            &key,
            &format!("/v1/invoiceitems?customer={cus}&pending=true"),
        )
        .await,
        "pending items",
    )
    .await;
    assert_eq!(pending["data"].as_array().unwrap().len(), 2);

    let draft = ok(
        emu.post(
            &key,
            "/v1/invoices",
            &format!("customer={cus}&pending_invoice_items_behavior=include&metadata[order]=7"),
        )
        .await,
        "draft",
    )
    .await;
    insta::assert_json_snapshot!("one_off_draft", draft);
    let inv = draft["id"].as_str().unwrap().to_string();
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["total"], 5_300);

    // The items now name the draft and are no longer pending.
    let pending = ok(
        emu.get(
            &key,
            &format!("/v1/invoiceitems?customer={cus}&pending=true"),
        )
        .await,
        "pending after",
    )
    .await;
    assert_eq!(pending["data"], json!([]));
    let item = ok(
        emu.get(
            &key,
            &format!("/v1/invoiceitems/{}", pack["id"].as_str().unwrap()),
        )
        .await,
        "item",
    )
    .await;
    assert_eq!(item["invoice"], inv.as_str());

    // Finalized and charged automatically: paid by the customer's (test) payment method.
    let paid = ok(
        emu.post(&key, &format!("/v1/invoices/{inv}/finalize"), "")
            .await,
        "finalize",
    )
    .await;
    insta::assert_json_snapshot!("one_off_paid", paid);
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["amount_paid"], 5_300);
    assert_eq!(paid["total_pretax_credit_amounts"], json!([]));
    // The product the application reads to know what was bought (pending items are listed newest
    // first, so the pack is the second line).
    assert_eq!(
        paid["lines"]["data"][1]["pricing"]["price_details"]["price"],
        price.as_str()
    );

    // The grant was not touched.
    let summary = ok(
        emu.get(
            &key,
            &format!(
                "/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"
            ),
        )
        .await,
        "summary",
    )
    .await;
    assert_eq!(
        summary["balances"][0]["available_balance"]["monetary"]["value"],
        10_000
    );

    // Errors on a paid invoice.
    let mut errors = serde_json::Map::new();
    for (name, method, path) in [
        (
            "finalize_again",
            "POST",
            format!("/v1/invoices/{inv}/finalize"),
        ),
        ("pay_paid", "POST", format!("/v1/invoices/{inv}/pay")),
        ("void_paid", "POST", format!("/v1/invoices/{inv}/void")),
        ("delete_paid", "DELETE", format!("/v1/invoices/{inv}")),
        (
            "uncollectible_paid",
            "POST",
            format!("/v1/invoices/{inv}/mark_uncollectible"),
        ),
        (
            "delete_invoiced_item",
            "DELETE",
            format!("/v1/invoiceitems/{}", pack["id"].as_str().unwrap()),
        ),
    ] {
        let r = emu.stripe(method, &key, &path, "").await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        errors.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("one_off_errors_after_payment", errors);
    let checked = emu
        .running
        .app
        .store
        .with_tenant(&key, |t| t.check_indexes());
    assert_eq!(checked, Ok(()));
}

#[tokio::test]
async fn send_invoice_and_declining_cards() {
    let emu = Emu::start().await;
    let key = emu.tenant("one_off_send").await;
    let cus = emu.customer(&key, "name=Bo").await;

    // Sent invoices stay open until paid out of band.
    emu.post(
        &key,
        "/v1/invoiceitems",
        &format!("customer={cus}&unit_amount_decimal=12.5&quantity=4&currency=usd"),
    )
    .await;
    let inv = ok(
        emu.post(
            &key,
            "/v1/invoices",
            &format!("customer={cus}&pending_invoice_items_behavior=include&collection_method=send_invoice&days_until_due=7"),
        )
        .await,
        "send invoice",
    )
    .await;
    let id = inv["id"].as_str().unwrap().to_string();
    let open = ok(
        emu.post(&key, &format!("/v1/invoices/{id}/finalize"), "")
            .await,
        "finalize",
    )
    .await;
    assert_eq!(open["status"], "open");
    assert_eq!(open["total"], 50);
    assert_eq!(
        open["due_date"],
        open["status_transitions"]["finalized_at"].as_i64().unwrap() + 7 * 86_400
    );
    let paid = ok(
        emu.post(
            &key,
            &format!("/v1/invoices/{id}/pay"),
            "paid_out_of_band=true",
        )
        .await,
        "pay out of band",
    )
    .await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["amount_remaining"], 0);

    // A customer whose payment method declines: the charge fails, the invoice stays open.
    let failing = emu
        .customer(
            &key,
            "name=Cy&invoice_settings[default_payment_method]=pm_card_chargeCustomerFail",
        )
        .await;
    emu.post(
        &key,
        "/v1/invoiceitems",
        &format!("customer={failing}&amount=999&currency=usd"),
    )
    .await;
    let inv = ok(
        emu.post(
            &key,
            "/v1/invoices",
            &format!("customer={failing}&pending_invoice_items_behavior=include"),
        )
        .await,
        "failing draft",
    )
    .await;
    let id = inv["id"].as_str().unwrap().to_string();
    let open = ok(
        emu.post(&key, &format!("/v1/invoices/{id}/finalize"), "")
            .await,
        "finalize failing",
    )
    .await;
    assert_eq!(open["status"], "open");
    assert_eq!(open["attempt_count"], 1);
    assert_eq!(open["attempted"], true);
    let declined = emu.post(&key, &format!("/v1/invoices/{id}/pay"), "").await;
    assert_eq!(declined.status, 402, "{}", declined.text);
    insta::assert_json_snapshot!("one_off_declined", declined.body);
    let again = ok(emu.get(&key, &format!("/v1/invoices/{id}")).await, "read").await;
    assert_eq!(again["attempt_count"], 2);
    let uncollectible = ok(
        emu.post(&key, &format!("/v1/invoices/{id}/mark_uncollectible"), "")
            .await,
        "uncollectible",
    )
    .await;
    assert_eq!(uncollectible["status"], "uncollectible");
    let void = ok(
        emu.post(&key, &format!("/v1/invoices/{id}/void"), "").await,
        "void",
    )
    .await;
    assert_eq!(void["status"], "void");
    assert_eq!(void["amount_remaining"], 0);
}

#[tokio::test]
async fn drafts_are_deleted_and_items_refused() {
    let emu = Emu::start().await;
    let key = emu.tenant("one_off_drafts").await;
    let cus = emu.customer(&key, "name=Di").await;
    let item = ok(
        emu.post(
            &key,
            "/v1/invoiceitems",
            &format!("customer={cus}&amount=100&currency=usd"),
        )
        .await,
        "item",
    )
    .await;
    let draft = ok(
        emu.post(
            &key,
            "/v1/invoices",
            &format!("customer={cus}&pending_invoice_items_behavior=include"),
        )
        .await,
        "draft",
    )
    .await;
    let id = draft["id"].as_str().unwrap();
    let deleted = ok(
        emu.delete(&key, &format!("/v1/invoices/{id}")).await,
        "delete",
    )
    .await;
    assert_eq!(
        deleted,
        json!({"id": id, "object": "invoice", "deleted": true})
    );
    let r = emu.get(&key, &format!("/v1/invoices/{id}")).await;
    assert_eq!(r.status, 404);
    // Its item is pending again, and can be deleted.
    let item_id = item["id"].as_str().unwrap();
    let again = ok(
        emu.get(&key, &format!("/v1/invoiceitems/{item_id}")).await,
        "item",
    )
    .await;
    assert_eq!(again["invoice"], Value::Null);
    ok(
        emu.delete(&key, &format!("/v1/invoiceitems/{item_id}"))
            .await,
        "delete item",
    )
    .await;

    // Without pending items the draft is empty and the currency is the caller's.
    let empty = ok(
        emu.post(
            &key,
            "/v1/invoices",
            &format!("customer={cus}&currency=eur"),
        )
        .await,
        "empty draft",
    )
    .await;
    assert_eq!(empty["currency"], "eur");
    assert_eq!(empty["lines"]["data"], json!([]));

    let recurring = emu.running.app.store.with_tenant(&key, |t| {
        let product = t.create_product("Seats".into(), Default::default());
        let price = t.create_price(NewPrice {
            product,
            active: true,
            currency: Currency::parse("usd").unwrap(),
            recurring: Some(credit_emulator::model::Recurring {
                interval: credit_emulator::model::Interval::Month,
                interval_count: 1,
                usage_type: credit_emulator::model::UsageType::Licensed,
                meter: None,
            }),
            scheme: Scheme::PerUnit {
                unit_amount: Decimal::from(100),
            },
            transform_quantity: None,
            lookup_key: None,
            nickname: None,
            metadata: Default::default(),
        });
        credit_emulator::ids::render("price_", price)
    });
    let mut errors = serde_json::Map::new();
    for (name, path, form) in [
        (
            "item_no_customer",
            "/v1/invoiceitems",
            "amount=1&currency=usd".to_string(),
        ),
        (
            "item_no_amount",
            "/v1/invoiceitems",
            format!("customer={cus}&currency=usd"),
        ),
        (
            "item_no_currency",
            "/v1/invoiceitems",
            format!("customer={cus}&amount=1"),
        ),
        (
            "item_amount_and_quantity",
            "/v1/invoiceitems",
            format!("customer={cus}&amount=1&currency=usd&quantity=2"),
        ),
        (
            "item_unknown_price",
            "/v1/invoiceitems",
            format!("customer={cus}&pricing[price]=price_nope"),
        ),
        (
            "item_recurring_price",
            "/v1/invoiceitems",
            format!("customer={cus}&pricing[price]={recurring}"),
        ),
        (
            "item_price_and_amount",
            "/v1/invoiceitems",
            format!("customer={cus}&pricing[price]={recurring}&amount=1"),
        ),
        (
            "item_bad_decimal",
            "/v1/invoiceitems",
            format!("customer={cus}&unit_amount_decimal=1e3&currency=usd"),
        ),
        (
            "item_amount_past_ceiling",
            "/v1/invoiceitems",
            format!(
                "customer={cus}&unit_amount_decimal=99999999999999999999999999&quantity=1000000000&currency=usd"
            ),
        ),
        (
            "invoice_unknown_customer",
            "/v1/invoices",
            "customer=cus_nope".to_string(),
        ),
        (
            "invoice_days_charge",
            "/v1/invoices",
            format!("customer={cus}&days_until_due=3"),
        ),
        (
            "invoice_bad_behavior",
            "/v1/invoices",
            format!("customer={cus}&pending_invoice_items_behavior=maybe"),
        ),
        (
            "invoice_subscription",
            "/v1/invoices",
            format!("customer={cus}&subscription=sub_1"),
        ),
    ] {
        let r = emu.post(&key, path, &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        errors.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("one_off_errors", errors);
    let checked = emu
        .running
        .app
        .store
        .with_tenant(&key, |t| t.check_indexes());
    assert_eq!(checked, Ok(()));
}

/// A one-off invoice of 700 cents for `cus`, created with `form` and finalized (so it is open, or
/// paid when charged automatically by a card that succeeds); returns its id.
async fn open_invoice(emu: &Emu, key: &str, cus: &str, form: &str) -> String {
    ok(
        emu.post(
            key,
            "/v1/invoiceitems",
            &format!("customer={cus}&amount=700&currency=usd"),
        )
        .await,
        "item",
    )
    .await;
    let draft = ok(
        emu.post(
            key,
            "/v1/invoices",
            &format!("customer={cus}&pending_invoice_items_behavior=include{form}"),
        )
        .await,
        "draft",
    )
    .await;
    draft["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn pay_charges_the_payment_method_it_names_once() {
    let emu = Emu::start().await;
    let key = emu.tenant("one_off_pay_method").await;

    // A customer whose default payment method succeeds: `payment_method` names a declining test
    // card for this attempt only.
    let cus = emu.customer(&key, "name=Ed").await;
    let id = open_invoice(
        &emu,
        &key,
        &cus,
        "&collection_method=send_invoice&days_until_due=7",
    )
    .await;
    ok(
        emu.post(&key, &format!("/v1/invoices/{id}/finalize"), "")
            .await,
        "finalize",
    )
    .await;
    let declined = emu
        .post(
            &key,
            &format!("/v1/invoices/{id}/pay"),
            "payment_method=pm_card_chargeDeclined",
        )
        .await;
    assert_eq!(declined.status, 402, "{}", declined.text);
    assert_eq!(declined.body["error"]["code"], "card_declined");
    assert_eq!(declined.body["error"]["type"], "card_error");
    let open = ok(emu.get(&key, &format!("/v1/invoices/{id}")).await, "read").await;
    assert_eq!(
        (open["status"].clone(), open["attempt_count"].clone()),
        (json!("open"), json!(1))
    );
    let paid = ok(
        emu.post(
            &key,
            &format!("/v1/invoices/{id}/pay"),
            "payment_method=pm_card_visa",
        )
        .await,
        "pay with a good card",
    )
    .await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["attempt_count"], 2);
    assert_eq!(paid["amount_paid"], 700);

    // A customer whose default payment method declines pays a draft with another card: the draft
    // is finalized and charged once, to the card named.
    let failing = emu
        .customer(
            &key,
            "name=Flo&invoice_settings[default_payment_method]=pm_card_chargeCustomerFail",
        )
        .await;
    let id = open_invoice(&emu, &key, &failing, "").await;
    let paid = ok(
        emu.post(
            &key,
            &format!("/v1/invoices/{id}/pay"),
            "payment_method=pm_card_visa",
        )
        .await,
        "pay a draft with a good card",
    )
    .await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["attempt_count"], 1);
    assert!(paid["number"]
        .as_str()
        .is_some_and(|n| n.ends_with("-0001")));

    // Paying a draft with the declining default: one attempt, declined, the invoice open.
    let id = open_invoice(&emu, &key, &failing, "").await;
    let declined = emu.post(&key, &format!("/v1/invoices/{id}/pay"), "").await;
    assert_eq!(declined.status, 402, "{}", declined.text);
    let open = ok(emu.get(&key, &format!("/v1/invoices/{id}")).await, "read").await;
    assert_eq!(open["status"], "open");
    assert_eq!(open["attempt_count"], 1);
}

/// The types of the world's `invoice.*` events about invoice `id`, oldest first.
async fn invoice_event_types(emu: &Emu, key: &str, id: &str) -> Vec<String> {
    let list = ok(
        emu.get(key, "/v1/events?type=invoice.*&limit=100").await,
        "events",
    )
    .await;
    let mut types: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["object"]["id"] == id)
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    types.reverse();
    types
}

#[tokio::test]
async fn send_finalizes_a_draft_and_emits_invoice_sent() {
    let emu = Emu::start().await;
    let key = emu.tenant("one_off_send_endpoint").await;
    let cus = emu.customer(&key, "name=Di&email=di%40example.com").await;
    let send = "&collection_method=send_invoice&days_until_due=7";

    // A draft is finalized, then sent.
    let id = open_invoice(&emu, &key, &cus, send).await;
    let sent = ok(
        emu.post(&key, &format!("/v1/invoices/{id}/send"), "").await,
        "send draft",
    )
    .await;
    assert_eq!(sent["status"], "open");
    assert_eq!(sent["amount_due"], 700);
    insta::assert_json_snapshot!("one_off_sent", sent);
    assert_eq!(
        invoice_event_types(&emu, &key, &id).await,
        ["invoice.created", "invoice.finalized", "invoice.sent"]
    );
    let events = ok(emu.get(&key, "/v1/events?limit=1").await, "last event").await;
    assert_eq!(events["data"][0]["data"]["object"], sent);

    // An open invoice may be sent again, and a paid one too.
    ok(
        emu.post(&key, &format!("/v1/invoices/{id}/send"), "").await,
        "send again",
    )
    .await;
    ok(
        emu.post(
            &key,
            &format!("/v1/invoices/{id}/pay"),
            "paid_out_of_band=true",
        )
        .await,
        "pay",
    )
    .await;
    let paid = ok(
        emu.post(&key, &format!("/v1/invoices/{id}/send"), "").await,
        "send paid",
    )
    .await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(
        invoice_event_types(&emu, &key, &id).await,
        [
            "invoice.created",
            "invoice.finalized",
            "invoice.sent",
            "invoice.sent",
            "invoice.paid",
            "invoice.sent"
        ]
    );

    // A draft with nothing due is paid by its finalization, then sent.
    let empty = ok(
        emu.post(&key, "/v1/invoices", &format!("customer={cus}{send}"))
            .await,
        "empty draft",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = ok(
        emu.post(&key, &format!("/v1/invoices/{empty}/send"), "")
            .await,
        "send empty",
    )
    .await;
    assert_eq!(r["status"], "paid");
    assert_eq!(
        invoice_event_types(&emu, &key, &empty).await,
        [
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded",
            "invoice.sent"
        ]
    );

    // Refusals: an invoice charged automatically, a void one, none, an unknown parameter.
    let mut errors = serde_json::Map::new();
    let charged = open_invoice(&emu, &key, &cus, "").await;
    let void = open_invoice(&emu, &key, &cus, send).await;
    ok(
        emu.post(&key, &format!("/v1/invoices/{void}/finalize"), "")
            .await,
        "finalize",
    )
    .await;
    ok(
        emu.post(&key, &format!("/v1/invoices/{void}/void"), "")
            .await,
        "void",
    )
    .await;
    for (name, id, form, status) in [
        ("charge_automatically", charged.as_str(), "", 400),
        ("void", void.as_str(), "", 400),
        ("no_such_invoice", "in_nope", "", 404),
        ("unknown_param", id.as_str(), "days_until_due=3", 400),
    ] {
        let r = emu
            .post(&key, &format!("/v1/invoices/{id}/send"), form)
            .await;
        assert_eq!(r.status, status, "{name}: {}", r.text);
        errors.insert(name.to_string(), r.body);
    }
    // A refused send changes nothing.
    let still = ok(
        emu.get(&key, &format!("/v1/invoices/{charged}")).await,
        "read",
    )
    .await;
    assert_eq!(still["status"], "draft");
    insta::assert_json_snapshot!("one_off_send_errors", errors);
}
