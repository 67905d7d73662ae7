//! Events over real sockets: what each action emits (`data.object`, `previous_attributes`,
//! `request`), idempotent replays and refusals emitting nothing, a test clock advance crossing
//! several boundaries, and `GET /v1/events` filters, cursors and retention.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::{Emu, Resp, T0};

const DAY: i64 = 86_400;

fn ok(r: Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

/// The world's events, newest first (up to 100).
async fn events(emu: &Emu, key: &str, query: &str) -> Vec<Value> {
    let body = ok(
        emu.get(key, &format!("/v1/events?limit=100{query}")).await,
        "list",
    );
    body["data"].as_array().unwrap().clone()
}

/// `type` of each event, oldest first.
fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// Replaces each event's `request.id` (random per request) with the name of the request that
/// made it, after checking that it is the `Request-Id` that request was answered with.
fn name_requests(events: &mut [Value], requests: &[(&str, &Resp)]) {
    for e in events.iter_mut() {
        let Some(id) = e["request"]["id"].as_str().map(str::to_string) else {
            continue;
        };
        let (name, _) = requests
            .iter()
            .find(|(_, r)| r.header("request-id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("event {} names an unknown request {id}", e["id"]));
        e["request"]["id"] = json!(format!("[{name}]"));
    }
}

#[tokio::test]
async fn each_action_emits_its_event_with_the_object_and_what_changed() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_each").await;
    let created = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/customers",
            "name=Ada&email=ada%40example.com",
            &[("idempotency-key", "create-ada")],
        )
        .await;
    let customer = created.id();
    let updated = emu
        .post(
            &key,
            &format!("/v1/customers/{customer}"),
            "name=Ada+L&metadata[tier]=gold",
        )
        .await;
    ok(emu.get(&key, "/v1/events").await, "a read changes nothing");
    let grant = emu
        .post(
            &key,
            "/v1/billing/credit_grants",
            &format!(
                "customer={customer}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=500&applicability_config[scope][price_type]=metered&category=paid"
            ),
        )
        .await;
    let grant_id = grant.id();
    let voided = emu
        .post(
            &key,
            &format!("/v1/billing/credit_grants/{grant_id}/void"),
            "",
        )
        .await;
    let mut all = events(&emu, &key, "").await;
    assert_eq!(
        types(&all),
        [
            "customer.created",
            "customer.updated",
            "billing.credit_grant.created",
            "billing.credit_balance_transaction.created",
            "billing.credit_grant.updated",
            "billing.credit_balance_transaction.created",
        ]
    );
    name_requests(
        &mut all,
        &[
            ("create customer", &created),
            ("update customer", &updated),
            ("create grant", &grant),
            ("void grant", &voided),
        ],
    );
    assert_eq!(all[5]["request"]["idempotency_key"], "create-ada");
    assert_json_snapshot!("each_action", all);

    // Retrieve shows the same event as the list.
    let id = all[0]["id"].as_str().unwrap();
    let one = ok(emu.get(&key, &format!("/v1/events/{id}")).await, "retrieve");
    assert_eq!(one["data"], all[0]["data"]);
    assert_eq!(one["type"], "billing.credit_balance_transaction.created");
}

#[tokio::test]
async fn an_update_of_several_fields_is_one_event() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_one_update").await;
    let customer = emu.post(&key, "/v1/customers", "name=Ada").await.id();
    let grant = emu
        .post(
            &key,
            "/v1/billing/credit_grants",
            &format!(
                "customer={customer}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=500&applicability_config[scope][price_type]=metered&metadata[old]=1"
            ),
        )
        .await
        .id();
    let expires_at = T0 + 30 * DAY;
    let updated = emu
        .post(
            &key,
            &format!("/v1/billing/credit_grants/{grant}"),
            &format!("expires_at={expires_at}&metadata[tier]=gold&metadata[old]="),
        )
        .await;
    let body = ok(updated, "update");
    let updates: Vec<Value> = events(&emu, &key, "&type=billing.credit_grant.updated").await;
    assert_eq!(updates.len(), 1, "{updates:#?}");
    let event = &updates[0];
    assert_eq!(event["data"]["object"], body);
    assert_eq!(
        event["data"]["previous_attributes"],
        json!({"expires_at": null, "metadata": {"old": "1"}})
    );
}

#[tokio::test]
async fn replays_and_refusals_emit_nothing() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_replay").await;
    let headers = [("idempotency-key", "once")];
    let first = emu
        .stripe_with("POST", &key, "/v1/customers", "name=Ada", &headers)
        .await;
    assert_eq!(first.status, 200);
    let again = emu
        .stripe_with("POST", &key, "/v1/customers", "name=Ada", &headers)
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(types(&events(&emu, &key, "").await), ["customer.created"]);

    // Refused before and after the lookup: no event either way.
    let customer = first.id();
    let grant = emu.grant(&key, &customer, 100, "").await;
    let before = events(&emu, &key, "").await.len();
    ok(
        emu.post(&key, &format!("/v1/billing/credit_grants/{grant}/void"), "")
            .await,
        "void",
    );
    let twice = emu
        .post(&key, &format!("/v1/billing/credit_grants/{grant}/void"), "")
        .await;
    assert_eq!(twice.status, 400, "{}", twice.text);
    let bad = emu.post(&key, "/v1/customers", "email=not+an+email").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let after = events(&emu, &key, "").await;
    assert_eq!(after.len(), before + 2, "the void and its debit only");
}

#[tokio::test]
async fn a_clock_advance_emits_every_step_at_its_own_instant() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_clock").await;
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
    let meter = ok(
        emu.post(
            &key,
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
            &key,
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
    ok(
        emu.post(
            &key,
            "/v1/subscriptions",
            &format!("customer={customer}&items[0][price]={price}"),
        )
        .await,
        "subscription",
    );
    ok(
        emu.post(
            &key,
            "/v1/billing/meter_events",
            &format!(
                "event_name=api_calls&payload[stripe_customer_id]={customer}&payload[value]=40"
            ),
        )
        .await,
        "usage",
    );
    let seen = events(&emu, &key, "").await.len();
    // One advance past the period end (2025-07-15) and the draft's hour of grace.
    let to = 1_752_537_600 + 2 * 3_600;
    let advance = emu
        .post(
            &key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={to}"),
        )
        .await;
    assert_eq!(advance.status, 200, "{}", advance.text);
    let all = events(&emu, &key, "").await;
    let mut fresh = all[..all.len() - seen].to_vec();
    name_requests(&mut fresh, &[("advance", &advance)]);
    let step: Vec<Value> = fresh
        .iter()
        .rev()
        .map(|e| {
            json!({
                "type": e["type"],
                "created": e["created"],
                "request": e["request"],
                "status": e["data"]["object"]["status"],
                "object": e["data"]["object"]["object"],
            })
        })
        .collect();
    assert_json_snapshot!("clock_advance", step);
    // Time order: every step is at or after the one before.
    let instants: Vec<i64> = step
        .iter()
        .map(|e| e["created"].as_i64().unwrap())
        .collect();
    assert!(instants.windows(2).all(|w| w[0] <= w[1]), "{instants:?}");
}

#[tokio::test]
async fn list_filters_cursors_and_errors() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_list").await;
    let customer = emu.customer(&key, "name=Ada").await;
    emu.grant(&key, &customer, 100, "").await;
    ok(
        emu.post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={T0}"),
        )
        .await,
        "clock",
    );
    let all = events(&emu, &key, "").await;
    assert_eq!(all.len(), 4);

    let of = |query: &'static str| {
        let emu = &emu;
        let key = key.clone();
        async move { types(&events(emu, &key, query).await) }
    };
    assert_eq!(
        of("&type=billing.*").await,
        [
            "billing.credit_grant.created",
            "billing.credit_balance_transaction.created"
        ]
    );
    assert_eq!(
        of("&type=*.created").await.len(),
        4,
        "every event here is a creation"
    );
    assert_eq!(of("&type=customer.created").await, ["customer.created"]);
    assert_eq!(
        of("&types[]=customer.created&types[]=test_helpers.test_clock.created").await,
        ["customer.created", "test_helpers.test_clock.created"]
    );
    assert_eq!(of("&type=invoice.*").await.len(), 0);
    assert_eq!(of("&created[gte]=1749945600").await.len(), 4);
    assert_eq!(of("&created[gt]=1749945600").await.len(), 0);
    assert_eq!(of("&delivery_success=false").await.len(), 0);
    assert_eq!(of("&delivery_success=true").await.len(), 4);

    // Cursors, newest first.
    let page = ok(emu.get(&key, "/v1/events?limit=2").await, "page 1");
    assert_eq!(page["has_more"], true);
    let last = page["data"][1]["id"].as_str().unwrap();
    let next = ok(
        emu.get(&key, &format!("/v1/events?limit=2&starting_after={last}"))
            .await,
        "page 2",
    );
    assert_eq!(next["has_more"], false);
    assert_eq!(next["data"][0]["id"], all[2]["id"]);
    let back = ok(
        emu.get(
            &key,
            &format!(
                "/v1/events?ending_before={}",
                all[2]["id"].as_str().unwrap()
            ),
        )
        .await,
        "back",
    );
    assert_eq!(back["data"].as_array().unwrap().len(), 2);
    assert_eq!(back["data"][0]["id"], all[0]["id"]);

    let too_many = (0..21)
        .map(|i| format!("types[]=t{i}"))
        .collect::<Vec<_>>()
        .join("&");
    let errors = json!({
        "both": emu.get(&key, "/v1/events?type=a&types[]=b").await.body,
        "too_many_types": emu.get(&key, &format!("/v1/events?{too_many}")).await.body,
        "expand": emu.get(&key, "/v1/events?expand[]=data.object").await.body,
        "unknown_cursor": emu.get(&key, "/v1/events?starting_after=evt_nope").await.body,
        "unknown_event": emu.get(&key, "/v1/events/evt_nope").await.body,
        "bad_delivery_success": emu.get(&key, "/v1/events?delivery_success=maybe").await.body,
        "unknown_param": emu.get(&key, "/v1/events?customer=cus_1").await.body,
    });
    assert_json_snapshot!("list_errors", errors);
}

#[tokio::test]
async fn events_older_than_thirty_days_are_gone() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_retention").await;
    emu.customer(&key, "name=Ada").await;
    let first = events(&emu, &key, "").await;
    let id = first[0]["id"].as_str().unwrap().to_string();
    emu.freeze(&key, T0 + 29 * DAY).await;
    emu.customer(&key, "name=Bea").await;
    assert_eq!(events(&emu, &key, "").await.len(), 2, "29 days: both kept");
    emu.freeze(&key, T0 + 31 * DAY).await;
    let kept = events(&emu, &key, "").await;
    assert_eq!(types(&kept), ["customer.created"]);
    assert_eq!(kept[0]["data"]["object"]["name"], "Bea");
    let gone = emu.get(&key, &format!("/v1/events/{id}")).await;
    assert_eq!(gone.status, 404);
    assert_json_snapshot!("retention_gone", gone.body);
}

/// Posts `form` to `path` and returns the answer, which must be a 200.
async fn call(emu: &Emu, key: &str, method: &str, path: &str, form: &str) -> Value {
    ok(emu.stripe(method, key, path, form).await, path)
}

#[tokio::test]
async fn one_event_of_each_type() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_every").await;
    let k = key.as_str();
    // The catalog and a meter.
    let product = call(&emu, k, "POST", "/v1/products", "name=API").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/products/{product}"),
        "name=API+calls",
    )
    .await;
    let spare = call(&emu, k, "POST", "/v1/products", "name=Spare").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    call(&emu, k, "DELETE", &format!("/v1/products/{spare}"), "").await;
    let meter = call(
        &emu,
        k,
        "POST",
        "/v1/billing/meters",
        "display_name=Calls&event_name=calls&default_aggregation[formula]=sum",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/billing/meters/{meter}"),
        "display_name=API+calls",
    )
    .await;
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/billing/meters/{meter}/deactivate"),
        "",
    )
    .await;
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/billing/meters/{meter}/reactivate"),
        "",
    )
    .await;
    let price = call(
        &emu,
        k,
        "POST",
        "/v1/prices",
        &format!("currency=usd&unit_amount=5&product={product}&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={meter}"),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/prices/{price}"),
        "nickname=Per+call",
    )
    .await;
    // A customer whose card is declined, a grant expired, invoices through their states.
    let customer = emu
        .customer(
            k,
            "name=Ada&invoice_settings[default_payment_method]=pm_card_chargeDeclined",
        )
        .await;
    let grant = emu.grant(k, &customer, 100, "").await;
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/billing/credit_grants/{grant}/expire"),
        "",
    )
    .await;
    let draft = call(
        &emu,
        k,
        "POST",
        "/v1/invoices",
        &format!("customer={customer}"),
    )
    .await;
    call(
        &emu,
        k,
        "DELETE",
        &format!("/v1/invoices/{}", draft["id"].as_str().unwrap()),
        "",
    )
    .await;
    call(
        &emu,
        k,
        "POST",
        "/v1/invoiceitems",
        &format!("customer={customer}&amount=300&currency=usd&description=Setup"),
    )
    .await;
    let invoice = call(
        &emu,
        k,
        "POST",
        "/v1/invoices",
        &format!("customer={customer}&pending_invoice_items_behavior=include"),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let declined = emu
        .post(k, &format!("/v1/invoices/{invoice}/finalize"), "")
        .await;
    assert_eq!(declined.status, 200, "{}", declined.text);
    let pay = emu
        .post(k, &format!("/v1/invoices/{invoice}/pay"), "")
        .await;
    assert_eq!(pay.status, 402, "{}", pay.text);
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/invoices/{invoice}/mark_uncollectible"),
        "",
    )
    .await;
    call(&emu, k, "POST", &format!("/v1/invoices/{invoice}/void"), "").await;
    // A subscription made, changed and cancelled, for a customer who pays.
    let payer = emu.customer(k, "name=Bea").await;
    let sub = call(
        &emu,
        k,
        "POST",
        "/v1/subscriptions",
        &format!("customer={payer}&items[0][price]={price}"),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/subscriptions/{sub}"),
        "metadata[plan]=pro",
    )
    .await;
    call(&emu, k, "DELETE", &format!("/v1/subscriptions/{sub}"), "").await;
    // A test clock made and deleted; the customer deleted.
    let clock = call(
        &emu,
        k,
        "POST",
        "/v1/test_helpers/test_clocks",
        &format!("frozen_time={T0}&name=Spare"),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &emu,
        k,
        "POST",
        &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
        &format!("frozen_time={}", T0 + DAY),
    )
    .await;
    call(
        &emu,
        k,
        "DELETE",
        &format!("/v1/test_helpers/test_clocks/{clock}"),
        "",
    )
    .await;
    call(&emu, k, "DELETE", &format!("/v1/customers/{payer}"), "").await;
    // An invoice item made and deleted.
    let spare = call(
        &emu,
        k,
        "POST",
        "/v1/invoiceitems",
        &format!("customer={customer}&amount=100&currency=usd&description=Spare"),
    )
    .await;
    call(
        &emu,
        k,
        "DELETE",
        &format!("/v1/invoiceitems/{}", spare["id"].as_str().unwrap()),
        "",
    )
    .await;

    let mut all = events(&emu, k, "").await;
    for e in &mut all {
        // Request ids are random; that they name requests is checked elsewhere.
        if !e["request"]["id"].is_null() {
            e["request"]["id"] = json!("[request]");
        }
    }
    let mut first_of_each = serde_json::Map::new();
    for e in all.iter().rev() {
        let kind = e["type"].as_str().unwrap().to_string();
        first_of_each.entry(kind).or_insert_with(|| e.clone());
    }
    let mut kinds: Vec<&String> = first_of_each.keys().collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "billing.credit_balance_transaction.created",
            "billing.credit_grant.created",
            "billing.credit_grant.updated",
            "billing.meter.created",
            "billing.meter.deactivated",
            "billing.meter.reactivated",
            "billing.meter.updated",
            "customer.created",
            "customer.deleted",
            "customer.subscription.created",
            "customer.subscription.deleted",
            "customer.subscription.updated",
            "invoice.created",
            "invoice.deleted",
            "invoice.finalized",
            "invoice.marked_uncollectible",
            "invoice.paid",
            "invoice.payment_failed",
            "invoice.payment_succeeded",
            "invoice.updated",
            "invoice.voided",
            "invoiceitem.created",
            "invoiceitem.deleted",
            "price.created",
            "price.updated",
            "product.created",
            "product.deleted",
            "product.updated",
            "test_helpers.test_clock.advancing",
            "test_helpers.test_clock.created",
            "test_helpers.test_clock.deleted",
            "test_helpers.test_clock.ready",
        ]
    );
    assert_json_snapshot!("one_of_each", first_of_each);
    assert_json_snapshot!("every_type_in_order", types(&all));
}

/// Creating an invoice item gives `invoiceitem.created`, deleting it `invoiceitem.deleted`, each
/// with the whole item (the deleted one as it was, not the `deleted: true` answer of the delete)
/// and the request that made it.
#[tokio::test]
async fn invoice_items_emit_created_and_deleted_with_the_whole_item() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_invoice_items").await;
    let customer = emu.customer(&key, "name=Ada").await;
    let created = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/invoiceitems",
            &format!(
                "customer={customer}&amount=300&currency=usd&description=Setup&metadata[order]=7"
            ),
            &[("idempotency-key", "item-1")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let item = created.body.clone();
    let id = item["id"].as_str().unwrap().to_string();
    let deleted = emu.delete(&key, &format!("/v1/invoiceitems/{id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(
        deleted.body,
        json!({"id": id, "object": "invoiceitem", "deleted": true})
    );
    let mut all = events(&emu, &key, "&type=invoiceitem.*").await;
    assert_eq!(types(&all), ["invoiceitem.created", "invoiceitem.deleted"]);
    assert_eq!(all[1]["data"]["object"], item);
    assert_eq!(all[0]["data"]["object"], item, "the item as it was");
    name_requests(
        &mut all,
        &[("create item", &created), ("delete item", &deleted)],
    );
    assert_eq!(all[1]["request"]["idempotency_key"], "item-1");
    assert_json_snapshot!("invoice_item_events", all);

    // An item taken off a one-off draft by its deletion names the draft it was on.
    let swept = call(
        &emu,
        &key,
        "POST",
        "/v1/invoiceitems",
        &format!("customer={customer}&amount=500&currency=usd"),
    )
    .await;
    let draft = call(
        &emu,
        &key,
        "POST",
        "/v1/invoices",
        &format!("customer={customer}&pending_invoice_items_behavior=include"),
    )
    .await;
    let swept_id = swept["id"].as_str().unwrap();
    call(
        &emu,
        &key,
        "DELETE",
        &format!("/v1/invoiceitems/{swept_id}"),
        "",
    )
    .await;
    let gone = &events(&emu, &key, "&type=invoiceitem.deleted").await[0];
    assert_eq!(gone["data"]["object"]["id"], swept_id);
    assert_eq!(gone["data"]["object"]["invoice"], draft["id"]);
    let draft_now = call(
        &emu,
        &key,
        "GET",
        &format!("/v1/invoices/{}", draft["id"].as_str().unwrap()),
        "",
    )
    .await;
    assert_eq!(draft_now["lines"]["data"], json!([]));
}

/// The events of invoice `id`, oldest first, by type.
async fn invoice_events(emu: &Emu, key: &str, id: &str) -> Vec<String> {
    let all = events(emu, key, "&type=invoice.*").await;
    let mine: Vec<Value> = all
        .into_iter()
        .filter(|e| e["data"]["object"]["id"] == id)
        .collect();
    types(&mine)
}

/// A payment (a charge, or nothing due) gives `invoice.paid` then `invoice.payment_succeeded`,
/// the same invoice at the same instant; `paid_out_of_band=true` gives `invoice.paid` alone.
#[tokio::test]
async fn a_payment_gives_paid_then_payment_succeeded_and_out_of_band_paid_alone() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_payments").await;
    let k = key.as_str();
    let customer = emu.customer(k, "name=Ada").await;
    let customer = customer.as_str();
    let emu = &emu;
    let invoice = |form: String| async move {
        call(
            emu,
            k,
            "POST",
            "/v1/invoiceitems",
            &format!("customer={customer}&amount=500&currency=usd"),
        )
        .await;
        call(
            emu,
            k,
            "POST",
            "/v1/invoices",
            &format!("customer={customer}&pending_invoice_items_behavior=include{form}"),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let finalized = ["invoice.created", "invoice.finalized"];

    // Charged at finalization.
    let charged = invoice(String::new()).await;
    call(
        emu,
        k,
        "POST",
        &format!("/v1/invoices/{charged}/finalize"),
        "",
    )
    .await;
    assert_eq!(
        invoice_events(emu, k, &charged).await,
        [
            &finalized[..],
            &["invoice.paid", "invoice.payment_succeeded"]
        ]
        .concat()
    );
    let pair = events(emu, k, "&limit=2").await;
    assert_eq!(pair[0]["data"]["object"], pair[1]["data"]["object"]);
    assert_eq!(pair[0]["created"], pair[1]["created"]);

    // Sent, then charged by `pay`.
    let send = "&collection_method=send_invoice&days_until_due=30".to_string();
    let paid = invoice(send.clone()).await;
    call(emu, k, "POST", &format!("/v1/invoices/{paid}/finalize"), "").await;
    let r = call(emu, k, "POST", &format!("/v1/invoices/{paid}/pay"), "").await;
    assert_eq!(r["status"], "paid");
    assert_eq!(
        invoice_events(emu, k, &paid).await,
        [
            &finalized[..],
            &["invoice.paid", "invoice.payment_succeeded"]
        ]
        .concat()
    );

    // Sent, then marked paid outside Stripe: no payment was made.
    let outside = invoice(send).await;
    call(
        emu,
        k,
        "POST",
        &format!("/v1/invoices/{outside}/finalize"),
        "",
    )
    .await;
    let r = call(
        emu,
        k,
        "POST",
        &format!("/v1/invoices/{outside}/pay"),
        "paid_out_of_band=true",
    )
    .await;
    assert_eq!(r["status"], "paid");
    assert_eq!(
        invoice_events(emu, k, &outside).await,
        [&finalized[..], &["invoice.paid"]].concat()
    );

    // A draft with nothing due is paid by finalizing, out of band or not.
    let empty = call(
        emu,
        k,
        "POST",
        "/v1/invoices",
        &format!("customer={customer}"),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        emu,
        k,
        "POST",
        &format!("/v1/invoices/{empty}/pay"),
        "paid_out_of_band=true",
    )
    .await;
    assert_eq!(
        invoice_events(emu, k, &empty).await,
        [
            &finalized[..],
            &["invoice.paid", "invoice.payment_succeeded"]
        ]
        .concat()
    );
}

#[tokio::test]
async fn a_cancellation_with_a_final_invoice_ends_with_the_deletion_and_the_invoice() {
    let emu = Emu::start().await;
    let key = emu.tenant("events_cancel").await;
    let k = key.as_str();
    let price = call(
        &emu,
        k,
        "POST",
        "/v1/prices",
        "currency=usd&unit_amount=500&product_data[name]=Seat&recurring[interval]=month",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let customer = emu.customer(k, "name=Ada").await;
    let sub = call(
        &emu,
        k,
        "POST",
        "/v1/subscriptions",
        &format!("customer={customer}&items[0][price]={price}"),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = events(&emu, k, "").await.len();
    call(
        &emu,
        k,
        "DELETE",
        &format!("/v1/subscriptions/{sub}?invoice_now=true"),
        "",
    )
    .await;
    let all = events(&emu, k, "").await;
    let fresh = &all[..all.len() - before];
    assert_eq!(
        types(fresh),
        ["customer.subscription.deleted", "invoice.created"]
    );
    // The deletion shows the subscription as it ended, its final invoice the latest.
    let deleted = &fresh[1]["data"]["object"];
    assert_eq!(deleted["status"], "canceled");
    assert_eq!(deleted["latest_invoice"], fresh[0]["data"]["object"]["id"]);
}
