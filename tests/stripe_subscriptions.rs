//! `/v1/subscriptions` and `/v1/subscription_items` over real sockets: create, retrieve, list
//! filters, item changes, cancellation, errors, test-clock limits, and which API answers a path
//! both APIs have.

use crate::support;

use credit_emulator::model::{
    Currency, Formula, Interval, Metadata, NewMeter, NewPrice, Recurring, Scheme, UsageType,
};
use credit_emulator::stripe::ids;
use serde_json::{json, Value};
use support::{Emu, Resp, T0};

const DAY: i64 = 86_400;

/// The prices a test subscribes to, made in-process (the catalog has no routes here).
struct Prices {
    /// Monthly usd, 1500 per unit, licensed.
    seat: String,
    /// Monthly usd, another licensed price.
    support: String,
    /// Monthly usd, metered by the `api_calls` meter.
    calls: String,
    /// Monthly usd, metered by another meter.
    storage: String,
    /// Yearly usd, licensed.
    yearly: String,
    /// Monthly eur, licensed.
    euro: String,
    /// One-time usd.
    setup: String,
    /// Monthly usd, licensed, inactive.
    retired: String,
}

fn catalog(emu: &Emu, key: &str) -> Prices {
    emu.running.app.store.with_tenant(key, |t| {
        let product = t.create_product("Pro".into(), Metadata::new());
        let meter = |t: &mut credit_emulator::model::Tenant, name: &str| {
            t.create_meter(NewMeter {
                display_name: name.into(),
                event_name: name.into(),
                formula: Formula::Sum,
                customer_key: "stripe_customer_id".into(),
                value_key: "value".into(),
                event_time_window: None,
            })
        };
        let calls_meter = meter(t, "api_calls");
        let storage_meter = meter(t, "storage");
        let mut price = |currency: &str,
                         interval: Option<Interval>,
                         meter: Option<u128>,
                         active: bool,
                         amount: i64| {
            let key = t.create_price(NewPrice {
                product,
                active,
                currency: Currency::parse(currency).expect("a currency"),
                recurring: interval.map(|interval| Recurring {
                    interval,
                    interval_count: 1,
                    usage_type: if meter.is_some() {
                        UsageType::Metered
                    } else {
                        UsageType::Licensed
                    },
                    meter,
                }),
                scheme: Scheme::PerUnit {
                    unit_amount: amount.into(),
                },
                transform_quantity: None,
                lookup_key: None,
                nickname: None,
                metadata: Metadata::new(),
            });
            ids::render(ids::PRICE, key)
        };
        let month = Some(Interval::Month);
        Prices {
            seat: price("usd", month, None, true, 1500),
            support: price("usd", month, None, true, 900),
            calls: price("usd", month, Some(calls_meter), true, 2),
            storage: price("usd", month, Some(storage_meter), true, 10),
            yearly: price("usd", Some(Interval::Year), None, true, 15000),
            euro: price("eur", month, None, true, 1400),
            setup: price("usd", None, None, true, 5000),
            retired: price("usd", month, None, false, 1000),
        }
    })
}

/// Creates a subscription and returns its answer.
async fn subscribe(emu: &Emu, key: &str, form: &str) -> Value {
    let r = emu.post(key, "/v1/subscriptions", form).await;
    assert_eq!(r.status, 200, "create subscription {form}: {}", r.text);
    r.body
}

fn ids_of(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|o| o["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn create_retrieve_and_read_items() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_create").await;
    let prices = catalog(&emu, &key);
    let cus = emu.customer(&key, "email=ada@example.com").await;
    let form = format!(
        "customer={cus}&items[0][price]={}&items[0][quantity]=2&items[0][metadata][seat]=team\
         &items[1][price]={}&metadata[plan]=pro&description=Pro+plan",
        prices.seat, prices.calls
    );
    let created = subscribe(&emu, &key, &form).await;
    insta::assert_json_snapshot!("created", created);
    let sub = id(&created);

    let fetched = emu.get(&key, &format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text);
    assert_eq!(fetched.body, created);

    let items = emu
        .get(&key, &format!("/v1/subscription_items?subscription={sub}"))
        .await;
    assert_eq!(items.status, 200, "{}", items.text);
    assert_eq!(items.body, created["items"]);
    let metered = &items.body["data"][1];
    assert!(metered.get("quantity").is_none(), "{metered}");
    let item = emu
        .get(&key, &format!("/v1/subscription_items/{}", id(metered)))
        .await;
    assert_eq!(item.status, 200, "{}", item.text);
    assert_eq!(&item.body, metered);

    // Paging an item list: oldest first, both ways.
    let first = id(&items.body["data"][0]);
    let page = emu
        .get(
            &key,
            &format!("/v1/subscription_items?subscription={sub}&limit=1"),
        )
        .await;
    assert_eq!(
        (ids_of(&page.body), &page.body["has_more"]),
        (vec![first.clone()], &json!(true))
    );
    let next = emu
        .get(
            &key,
            &format!("/v1/subscription_items?subscription={sub}&limit=1&starting_after={first}"),
        )
        .await;
    assert_eq!(ids_of(&next.body), [id(metered)]);
    assert_eq!(next.body["has_more"], false);
    let back = emu
        .get(
            &key,
            &format!(
                "/v1/subscription_items?subscription={sub}&ending_before={}",
                id(metered)
            ),
        )
        .await;
    assert_eq!(ids_of(&back.body), [first]);

    // A classic subscription shows `flexible` as null: nullable fields are always present.
    let classic = subscribe(
        &emu,
        &key,
        &format!(
            "customer={cus}&items[0][price]={}&billing_mode[type]=classic",
            prices.seat
        ),
    )
    .await;
    assert_eq!(
        classic["billing_mode"],
        json!({"flexible": null, "type": "classic"})
    );
}

#[tokio::test]
async fn month_ends_clamp_and_a_future_anchor_makes_a_short_period() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_periods").await;
    let prices = catalog(&emu, &key);
    // 2026-01-31T09:30:00Z on a test clock.
    let jan31 = 1_769_851_800;
    let clock = emu.test_clock(&key, jan31).await;
    let cus = emu.customer(&key, &format!("test_clock={clock}")).await;
    let s = subscribe(
        &emu,
        &key,
        &format!("customer={cus}&items[0][price]={}", prices.seat),
    )
    .await;
    let item = &s["items"]["data"][0];
    // Feb 28, same time of day.
    assert_eq!(
        (
            &s["start_date"],
            &s["billing_cycle_anchor"],
            &item["current_period_start"],
            &item["current_period_end"]
        ),
        (
            &json!(jan31),
            &json!(jan31),
            &json!(jan31),
            &json!(1_772_271_000)
        )
    );
    assert_eq!(s["test_clock"], clock.as_str());

    // A metered subscription anchored on the 5th of next month: its first period is short.
    let anchor = 1_772_703_000; // 2026-03-05T09:30:00Z is too late: more than a month away
    let late = emu
        .post(
            &key,
            "/v1/subscriptions",
            &format!(
                "customer={cus}&items[0][price]={}&billing_cycle_anchor={anchor}",
                prices.calls
            ),
        )
        .await;
    let feb5 = 1_770_283_800; // 2026-02-05T09:30:00Z
    let short = subscribe(
        &emu,
        &key,
        &format!(
            "customer={cus}&items[0][price]={}&billing_cycle_anchor={feb5}",
            prices.calls
        ),
    )
    .await;
    let item = &short["items"]["data"][0];
    assert_eq!(
        (
            &short["billing_cycle_anchor"],
            &item["current_period_start"],
            &item["current_period_end"]
        ),
        (&json!(feb5), &json!(jan31), &json!(feb5))
    );
    // Licensed prices would be prorated over that short period, unless told not to.
    let prorated = emu
        .post(
            &key,
            "/v1/subscriptions",
            &format!(
                "customer={cus}&items[0][price]={}&billing_cycle_anchor={feb5}",
                prices.seat
            ),
        )
        .await;
    let free = emu
        .post(
            &key,
            "/v1/subscriptions",
            &format!(
                "customer={cus}&items[0][price]={}&billing_cycle_anchor={feb5}&proration_behavior=none",
                prices.support
            ),
        )
        .await;
    // The clock allows three subscriptions per customer: this is the third.
    assert_eq!(free.status, 200, "{}", free.text);
    insta::assert_json_snapshot!(
        "anchor_errors",
        json!({"too_late": late.body, "prorated": prorated.body})
    );
}

#[tokio::test]
async fn lists_filter_by_customer_status_price_clock_and_created() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_list").await;
    let prices = catalog(&emu, &key);
    let ada = emu.customer(&key, "email=ada@example.com").await;
    let bob = emu.customer(&key, "email=bob@example.com").await;
    let clock = emu.test_clock(&key, T0).await;
    let clocked = emu.customer(&key, &format!("test_clock={clock}")).await;

    let a1 = id(&subscribe(
        &emu,
        &key,
        &format!("customer={ada}&items[0][price]={}", prices.seat),
    )
    .await);
    let b1 = id(&subscribe(
        &emu,
        &key,
        &format!(
            "customer={bob}&items[0][price]={}&collection_method=send_invoice&days_until_due=30",
            prices.calls
        ),
    )
    .await);
    emu.freeze(&key, T0 + DAY).await;
    let a2 = id(&subscribe(
        &emu,
        &key,
        &format!(
            "customer={ada}&items[0][price]={}&items[1][price]={}",
            prices.support, prices.calls
        ),
    )
    .await);
    let c1 = id(&subscribe(
        &emu,
        &key,
        &format!("customer={clocked}&items[0][price]={}", prices.seat),
    )
    .await);
    let a3 = id(&subscribe(
        &emu,
        &key,
        &format!("customer={ada}&items[0][price]={}", prices.storage),
    )
    .await);
    let gone = emu.delete(&key, &format!("/v1/subscriptions/{a3}")).await;
    assert_eq!(gone.status, 200, "{}", gone.text);

    let names = [
        (a1.as_str(), "a1"),
        (b1.as_str(), "b1"),
        (a2.as_str(), "a2"),
        (c1.as_str(), "c1"),
        (a3.as_str(), "a3"),
    ];
    let page = |query: String| {
        let emu = &emu;
        let key = &key;
        async move {
            let r = emu.get(key, &format!("/v1/subscriptions?{query}")).await;
            assert_eq!(r.status, 200, "{query}: {}", r.text);
            assert_eq!(r.body["url"], "/v1/subscriptions");
            let listed: Vec<&str> = ids_of(&r.body)
                .iter()
                .map(|i| names.iter().find(|(k, _)| k == i).map_or("?", |(_, n)| *n))
                .collect();
            (listed, r.body["has_more"].as_bool().unwrap_or_default())
        }
    };
    let cases = [
        ("", (vec!["a2", "b1", "a1"], false)),
        ("status=all", (vec!["a3", "a2", "b1", "a1"], false)),
        ("status=canceled", (vec!["a3"], false)),
        ("status=ended", (vec!["a3"], false)),
        ("status=active", (vec!["a2", "b1", "a1"], false)),
        ("status=past_due", (vec![], false)),
        (&*format!("customer={ada}"), (vec!["a2", "a1"], false)),
        (
            &*format!("customer={ada}&status=all"),
            (vec!["a3", "a2", "a1"], false),
        ),
        (&*format!("customer={clocked}"), (vec!["c1"], false)),
        (&*format!("test_clock={clock}"), (vec!["c1"], false)),
        (
            &*format!("price={}", prices.calls),
            (vec!["a2", "b1"], false),
        ),
        (&*format!("price={}", prices.seat), (vec!["a1"], false)),
        (
            &*format!("price={}&customer={clocked}", prices.seat),
            (vec!["c1"], false),
        ),
        ("collection_method=send_invoice", (vec!["b1"], false)),
        (&*format!("created[gte]={}", T0 + DAY), (vec!["a2"], false)),
        (&*format!("created={T0}"), (vec!["b1", "a1"], false)),
        ("limit=2", (vec!["a2", "b1"], true)),
        (
            &*format!("limit=2&starting_after={b1}"),
            (vec!["a1"], false),
        ),
        (&*format!("limit=1&ending_before={a1}"), (vec!["b1"], true)),
    ];
    for (query, want) in cases {
        assert_eq!(page(query.to_string()).await, want, "{query}");
    }

    let expanded = emu
        .get(
            &key,
            &format!("/v1/subscriptions?customer={clocked}&expand[]=data.customer&expand[]=data.test_clock&expand[]=data.latest_invoice"),
        )
        .await;
    assert_eq!(expanded.status, 200, "{}", expanded.text);
    let one = &expanded.body["data"][0];
    assert_eq!(
        (
            &one["customer"]["id"],
            &one["test_clock"]["id"],
            &one["latest_invoice"]["object"],
            &one["latest_invoice"]["billing_reason"],
        ),
        (
            &json!(clocked),
            &json!(clock),
            &json!("invoice"),
            &json!("subscription_create")
        )
    );

    let mut errors = serde_json::Map::new();
    for (name, query) in [
        ("unknown_customer", "customer=cus_nope".to_string()),
        ("unknown_clock", "test_clock=clock_nope".to_string()),
        ("unknown_price", "price=price_nope".to_string()),
        ("bad_status", "status=sleeping".to_string()),
        ("unknown_cursor", "starting_after=sub_nope".to_string()),
        ("unsupported_filter", "current_period_end[gt]=1".to_string()),
        ("bad_expand", "expand[]=customer".to_string()),
    ] {
        let r = emu.get(&key, &format!("/v1/subscriptions?{query}")).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        errors.insert(name.to_string(), r.body);
    }
    for (name, path) in [
        (
            "items_without_subscription",
            "/v1/subscription_items".to_string(),
        ),
        (
            "items_of_unknown",
            "/v1/subscription_items?subscription=sub_nope".to_string(),
        ),
        (
            "unknown_subscription",
            "/v1/subscriptions/sub_nope".to_string(),
        ),
        ("unknown_item", "/v1/subscription_items/si_nope".to_string()),
    ] {
        let r = emu.get(&key, &path).await;
        assert!(matches!(r.status, 400 | 404), "{name}: {}", r.text);
        errors.insert(
            name.to_string(),
            json!({"status": r.status, "body": r.body}),
        );
    }
    insta::assert_json_snapshot!("list_errors", errors);
}

#[tokio::test]
async fn updates_add_change_and_remove_items() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_update").await;
    let prices = catalog(&emu, &key);
    let cus = emu.customer(&key, "").await;
    let s = subscribe(
        &emu,
        &key,
        &format!("customer={cus}&items[0][price]={}&items[0][quantity]=3&metadata[a]=1&metadata[b]=2&description=First", prices.seat),
    )
    .await;
    let sub = id(&s);
    let seat_item = id(&s["items"]["data"][0]);
    let path = format!("/v1/subscriptions/{sub}");
    emu.freeze(&key, T0 + 3 * DAY).await;

    // A metered item is added without prorations: it bills what is used.
    let added = emu
        .post(
            &key,
            &path,
            &format!(
                "items[0][price]={}&items[0][metadata][kind]=usage&metadata[b]=&description=",
                prices.calls
            ),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    let calls_item = id(&added.body["items"]["data"][1]);
    assert_eq!(added.body["metadata"], json!({"a": "1"}));
    assert_eq!(added.body["description"], Value::Null);
    let new_item = &added.body["items"]["data"][1];
    assert_eq!(
        (
            &new_item["created"],
            &new_item["current_period_start"],
            &new_item["current_period_end"]
        ),
        (
            &json!(T0 + 3 * DAY),
            &json!(T0),
            &s["items"]["data"][0]["current_period_end"]
        )
    );

    // Licensed changes within a period would be prorated: refused unless proration_behavior=none.
    let mut refused = serde_json::Map::new();
    for (name, form) in [
        (
            "quantity",
            format!("items[0][id]={seat_item}&items[0][quantity]=5"),
        ),
        (
            "add_licensed",
            format!("items[0][price]={}", prices.support),
        ),
        (
            "remove_licensed",
            format!("items[0][id]={seat_item}&items[0][deleted]=true"),
        ),
        (
            "swap_price",
            format!(
                "items[0][id]={calls_item}&items[0][price]={}",
                prices.support
            ),
        ),
        (
            "prorations_asked_for",
            format!(
                "items[0][id]={seat_item}&items[0][quantity]=5&proration_behavior=always_invoice"
            ),
        ),
    ] {
        let r = emu.post(&key, &path, &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        refused.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("proration_refusals", refused);
    // None of them changed anything.
    let unchanged = emu.get(&key, &path).await;
    assert_eq!(unchanged.body, added.body);

    let changed = emu
        .post(
            &key,
            &path,
            &format!(
                "items[0][id]={seat_item}&items[0][quantity]=5&items[1][id]={calls_item}&items[1][deleted]=true\
                 &items[2][price]={}&proration_behavior=none&cancel_at_period_end=true",
                prices.storage
            ),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    insta::assert_json_snapshot!("updated", changed.body);
    assert!(
        emu.get(&key, &format!("/v1/subscription_items/{calls_item}"))
            .await
            .status
            == 404
    );

    // Withdrawing the cancellation clears its traces.
    let kept = emu.post(&key, &path, "cancel_at_period_end=false").await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(
        (
            &kept.body["cancel_at_period_end"],
            &kept.body["canceled_at"],
            &kept.body["cancellation_details"]
        ),
        (
            &json!(false),
            &Value::Null,
            &json!({"comment": null, "feedback": null, "reason": null})
        )
    );

    // Collection can change; days_until_due follows it.
    let sent = emu
        .post(
            &key,
            &path,
            "collection_method=send_invoice&days_until_due=14",
        )
        .await;
    assert_eq!(
        (sent.status, &sent.body["days_until_due"]),
        (200, &json!(14)),
        "{}",
        sent.text
    );
    let auto = emu
        .post(&key, &path, "collection_method=charge_automatically")
        .await;
    assert_eq!(
        (auto.status, &auto.body["days_until_due"]),
        (200, &Value::Null),
        "{}",
        auto.text
    );

    let mut errors = serde_json::Map::new();
    for (name, form) in [
        ("unknown_item", "items[0][id]=si_nope&items[0][quantity]=1".to_string()),
        ("delete_without_id", "items[0][deleted]=true".to_string()),
        ("new_item_without_price", "items[0][quantity]=2".to_string()),
        ("quantity_on_metered", format!("items[0][price]={}&items[0][quantity]=4", prices.storage)),
        ("duplicate_price", format!("items[0][price]={}", prices.storage)),
        ("other_currency", format!("items[0][price]={}&proration_behavior=none", prices.euro)),
        ("other_interval", format!("items[0][price]={}&proration_behavior=none", prices.yearly)),
        ("remove_everything", format!("items[0][id]={seat_item}&items[0][deleted]=true&items[1][id]={}&items[1][deleted]=true&proration_behavior=none", id(&changed.body["items"]["data"][1]))),
        ("days_with_automatic", "days_until_due=3".to_string()),
        ("send_invoice_without_days", "collection_method=send_invoice".to_string()),
        ("cancel_at_past", format!("cancel_at={}&proration_behavior=none", T0)),
        ("both_cancellations", format!("cancel_at={}&cancel_at_period_end=true", T0 + 10 * DAY)),
        ("payment_behavior", "payment_behavior=default_incomplete".to_string()),
        ("trial", "trial_end=now".to_string()),
        ("anchor", "billing_cycle_anchor=now".to_string()),
        ("clear_usage", format!("items[0][id]={seat_item}&items[0][clear_usage]=maybe")),
        ("amount_past_ceiling", format!("items[0][id]={seat_item}&items[0][quantity]=66667&proration_behavior=none")),
    ] {
        let r = emu.post(&key, &path, &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        errors.insert(name.to_string(), r.body);
    }
    let other = emu.customer(&key, "").await;
    let theirs = subscribe(
        &emu,
        &key,
        &format!("customer={other}&items[0][price]={}", prices.calls),
    )
    .await;
    let r = emu
        .post(
            &key,
            &path,
            &format!(
                "items[0][id]={}&items[0][metadata][x]=y",
                id(&theirs["items"]["data"][0])
            ),
        )
        .await;
    errors.insert("item_of_another_subscription".into(), r.body);
    let r = emu
        .post(&key, "/v1/subscriptions/sub_nope", "metadata[a]=1")
        .await;
    errors.insert(
        "unknown_subscription".into(),
        json!({"status": r.status, "body": r.body}),
    );
    insta::assert_json_snapshot!("update_errors", errors);
    assert_eq!(emu.get(&key, &path).await.body, auto.body);
}

#[tokio::test]
async fn cancel_ends_now_and_leaves_metadata_editable() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_cancel").await;
    let prices = catalog(&emu, &key);
    let cus = emu.customer(&key, "").await;
    let sub = id(&subscribe(
        &emu,
        &key,
        &format!(
            "customer={cus}&items[0][price]={}&cancel_at_period_end=true",
            prices.seat
        ),
    )
    .await);
    let path = format!("/v1/subscriptions/{sub}");
    emu.freeze(&key, T0 + 2 * DAY).await;

    let prorate = emu
        .stripe("DELETE", &key, &format!("{path}?prorate=true"), "")
        .await;
    assert_eq!(prorate.status, 400, "{}", prorate.text);
    let r = emu
        .stripe(
            "DELETE",
            &key,
            &format!("{path}?invoice_now=true&cancellation_details[comment]=Too+pricey&cancellation_details[feedback]=too_expensive&expand[]=customer"),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["customer"]["id"], cus.as_str());
    let cancelled = emu.get(&key, &path).await.body;
    insta::assert_json_snapshot!("cancelled", cancelled);
    assert_eq!(
        (
            &cancelled["status"],
            &cancelled["canceled_at"],
            &cancelled["ended_at"]
        ),
        (
            &json!("canceled"),
            &json!(T0 + 2 * DAY),
            &json!(T0 + 2 * DAY)
        )
    );

    let again = emu.delete(&key, &path).await;
    let change = emu.post(&key, &path, "description=Back").await;
    let edit = emu
        .post(
            &key,
            &path,
            "metadata[why]=price&cancellation_details[comment]=Far+too+pricey",
        )
        .await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    assert_eq!(
        (
            &edit.body["metadata"],
            &edit.body["cancellation_details"]["comment"],
            &edit.body["status"]
        ),
        (
            &json!({"why": "price"}),
            &json!("Far too pricey"),
            &json!("canceled")
        )
    );
    insta::assert_json_snapshot!(
        "cancel_errors",
        json!({"prorate": prorate.body, "again": again.body, "change_after": change.body})
    );

    // Deleting a customer cancels what it still has.
    let other = emu.customer(&key, "").await;
    let theirs = id(&subscribe(
        &emu,
        &key,
        &format!("customer={other}&items[0][price]={}", prices.calls),
    )
    .await);
    assert_eq!(
        emu.delete(&key, &format!("/v1/customers/{other}"))
            .await
            .status,
        200
    );
    let after = emu.get(&key, &format!("/v1/subscriptions/{theirs}")).await;
    assert_eq!(
        (&after.body["status"], &after.body["ended_at"]),
        (&json!("canceled"), &json!(T0 + 2 * DAY))
    );
}

#[tokio::test]
async fn create_refuses_what_it_cannot_bill() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_errors").await;
    let p = catalog(&emu, &key);
    let cus = emu.customer(&key, "").await;
    let gone = emu.customer(&key, "").await;
    assert_eq!(
        emu.delete(&key, &format!("/v1/customers/{gone}"))
            .await
            .status,
        200
    );
    let many: String = (0..21)
        .map(|i| format!("&items[{i}][price]={}", p.seat))
        .collect();
    let cases: Vec<(&str, String)> = vec![
        ("no_customer", format!("items[0][price]={}", p.seat)),
        ("no_items", format!("customer={cus}")),
        ("empty_items", format!("customer={cus}&items=")),
        (
            "item_without_price",
            format!("customer={cus}&items[0][quantity]=1"),
        ),
        (
            "unknown_customer",
            format!("customer=cus_nope&items[0][price]={}", p.seat),
        ),
        (
            "deleted_customer",
            format!("customer={gone}&items[0][price]={}", p.seat),
        ),
        (
            "unknown_price",
            format!("customer={cus}&items[0][price]=price_nope"),
        ),
        (
            "quantity_on_metered",
            format!(
                "customer={cus}&items[0][price]={}&items[0][quantity]=1",
                p.calls
            ),
        ),
        (
            "negative_quantity",
            format!(
                "customer={cus}&items[0][price]={}&items[0][quantity]=-1",
                p.seat
            ),
        ),
        (
            "one_time_price",
            format!("customer={cus}&items[0][price]={}", p.setup),
        ),
        (
            // 66,667 seats at $15.00 cost more than the most Stripe charges at once.
            "amount_past_ceiling",
            format!(
                "customer={cus}&items[0][price]={}&items[0][quantity]=66667",
                p.seat
            ),
        ),
        (
            "inactive_price",
            format!("customer={cus}&items[0][price]={}", p.retired),
        ),
        (
            "currency_mismatch",
            format!(
                "customer={cus}&items[0][price]={}&items[1][price]={}",
                p.seat, p.euro
            ),
        ),
        (
            "interval_mismatch",
            format!(
                "customer={cus}&items[0][price]={}&items[1][price]={}",
                p.seat, p.yearly
            ),
        ),
        (
            "duplicate_price",
            format!(
                "customer={cus}&items[0][price]={}&items[1][price]={}",
                p.seat, p.seat
            ),
        ),
        ("too_many_items", format!("customer={cus}{many}")),
        (
            "currency_param_mismatch",
            format!("customer={cus}&items[0][price]={}&currency=eur", p.seat),
        ),
        (
            "days_with_automatic",
            format!(
                "customer={cus}&items[0][price]={}&days_until_due=30",
                p.seat
            ),
        ),
        (
            "send_invoice_without_days",
            format!(
                "customer={cus}&items[0][price]={}&collection_method=send_invoice",
                p.seat
            ),
        ),
        (
            "anchor_in_the_past",
            format!(
                "customer={cus}&items[0][price]={}&billing_cycle_anchor={}",
                p.calls,
                T0 - 1
            ),
        ),
        (
            "cancel_at_in_the_past",
            format!(
                "customer={cus}&items[0][price]={}&cancel_at={}",
                p.calls, T0
            ),
        ),
        (
            "cancel_at_licensed",
            format!(
                "customer={cus}&items[0][price]={}&cancel_at={}",
                p.seat,
                T0 + DAY
            ),
        ),
        (
            "both_cancellations",
            format!(
                "customer={cus}&items[0][price]={}&cancel_at={}&cancel_at_period_end=true",
                p.calls,
                T0 + DAY
            ),
        ),
        (
            "trial",
            format!(
                "customer={cus}&items[0][price]={}&trial_period_days=7",
                p.seat
            ),
        ),
        (
            "discounts",
            format!(
                "customer={cus}&items[0][price]={}&discounts[0][coupon]=X",
                p.seat
            ),
        ),
        (
            "price_data",
            format!("customer={cus}&items[0][price_data][currency]=usd"),
        ),
        (
            "anchor_config",
            format!(
                "customer={cus}&items[0][price]={}&billing_cycle_anchor_config[day_of_month]=1",
                p.seat
            ),
        ),
        (
            "payment_behavior",
            format!(
                "customer={cus}&items[0][price]={}&payment_behavior=error_if_incomplete",
                p.seat
            ),
        ),
        (
            "customer_account",
            format!("customer_account=acct_1&items[0][price]={}", p.seat),
        ),
        (
            "bad_collection",
            format!(
                "customer={cus}&items[0][price]={}&collection_method=cash",
                p.seat
            ),
        ),
        (
            "unknown_param",
            format!("customer={cus}&items[0][price]={}&colour=blue", p.seat),
        ),
        (
            "unknown_item_param",
            format!(
                "customer={cus}&items[0][price]={}&items[0][colour]=blue",
                p.seat
            ),
        ),
        (
            "bad_expand",
            format!("customer={cus}&items[0][price]={}&expand[]=items", p.seat),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, form) in cases {
        let r = emu.post(&key, "/v1/subscriptions", &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("create_errors", out);
    // Nothing was made.
    let all = emu.get(&key, "/v1/subscriptions?status=all").await;
    assert_eq!(ids_of(&all.body), Vec::<String>::new());
    emu.running
        .app
        .store
        .with_tenant(&key, |t| assert_eq!(t.check_indexes(), Ok(())));
}

#[tokio::test]
async fn test_clock_and_customer_limits() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_limits").await;
    let p = catalog(&emu, &key);
    let clock = emu.test_clock(&key, T0).await;
    let cus = emu.customer(&key, &format!("test_clock={clock}")).await;
    let form = format!("customer={cus}&items[0][price]={}", p.calls);
    let first = id(&subscribe(&emu, &key, &form).await);
    subscribe(&emu, &key, &form).await;
    subscribe(&emu, &key, &form).await;
    let fourth = emu.post(&key, "/v1/subscriptions", &form).await;
    assert_eq!(fourth.status, 400, "{}", fourth.text);
    // An ended subscription no longer counts.
    assert_eq!(
        emu.delete(&key, &format!("/v1/subscriptions/{first}"))
            .await
            .status,
        200
    );
    subscribe(&emu, &key, &form).await;
    let listed = emu
        .get(
            &key,
            &format!("/v1/subscriptions?test_clock={clock}&status=all"),
        )
        .await;
    assert_eq!(ids_of(&listed.body).len(), 4);
    // Advancing is limited to two periods of the shortest subscription: two months here.
    let advance = format!("/v1/test_helpers/test_clocks/{clock}/advance");
    let aug15 = 1_755_216_000;
    let too_far = emu
        .post(&key, &advance, &format!("frozen_time={}", aug15 + 1))
        .await;
    assert_eq!(too_far.status, 400, "{}", too_far.text);
    let moved = emu
        .post(&key, &advance, &format!("frozen_time={aug15}"))
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    // Off the clock lists, they are not shown.
    assert_eq!(
        ids_of(&emu.get(&key, "/v1/subscriptions?status=all").await.body).len(),
        0
    );

    // A customer with a subscription cannot move onto a test clock.
    let plain = emu.customer(&key, "").await;
    subscribe(
        &emu,
        &key,
        &format!("customer={plain}&items[0][price]={}", p.calls),
    )
    .await;
    let attach = emu
        .post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={T0}&customer={plain}"),
        )
        .await;
    assert_eq!(attach.status, 400, "{}", attach.text);

    // 500 subscriptions per customer, the rest made in-process to keep the test quick.
    let busy = emu.customer(&key, "").await;
    let busy_key = ids::key_of(&busy, ids::CUSTOMER).expect("a customer id");
    let price_key = ids::key_of(&p.calls, ids::PRICE).expect("a price id");
    emu.running.app.store.with_tenant(&key, |t| {
        for _ in 0..500 {
            t.create_priced_subscription(credit_emulator::model::NewPricedSubscription {
                customer: busy_key,
                items: vec![credit_emulator::model::NewItem {
                    price: price_key,
                    ..Default::default()
                }],
                collection_method: credit_emulator::model::CollectionMethod::ChargeAutomatically,
                days_until_due: None,
                billing_mode: credit_emulator::model::BillingMode::Flexible,
                billing_cycle_anchor: None,
                cancel_at_period_end: false,
                cancel_at: None,
                metadata: Metadata::new(),
                description: None,
            })
            .expect("made");
        }
    });
    let over = emu
        .post(
            &key,
            "/v1/subscriptions",
            &format!("customer={busy}&items[0][price]={}", p.calls),
        )
        .await;
    assert_eq!(over.status, 400, "{}", over.text);
    // Deleting the clock deletes its customer, whose subscriptions end at the clock's time.
    let deleted = emu
        .delete(&key, &format!("/v1/test_helpers/test_clocks/{clock}"))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let ended = emu
        .get(
            &key,
            &format!("/v1/subscriptions?customer={cus}&status=all"),
        )
        .await;
    let states: Vec<(Value, Value)> = ended.body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| (s["status"].clone(), s["ended_at"].clone()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        states,
        [
            (json!("canceled"), json!(aug15)),
            (json!("canceled"), json!(aug15)),
            (json!("canceled"), json!(aug15)),
            (json!("canceled"), json!(T0)),
        ]
    );
    insta::assert_json_snapshot!(
        "limit_errors",
        json!({"clock": fourth.body, "advance": too_far.body, "attach": attach.body, "customer": over.body})
    );
}

/// A native request's answer is Flexprice's shape; a Stripe one is Stripe's.
fn speaks(r: &Resp) -> &'static str {
    if r.body.get("error").is_some_and(|e| e.is_object()) || r.body["object"].is_string() {
        "stripe"
    } else {
        "native"
    }
}

#[tokio::test]
async fn shared_paths_are_routed_by_credentials() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_routing").await;
    let p = catalog(&emu, &key);
    let cus = emu.customer(&key, "").await;
    let sub = id(&subscribe(
        &emu,
        &key,
        &format!("customer={cus}&items[0][price]={}", p.calls),
    )
    .await);

    // Bearer: Stripe's list, with the subscription.
    let stripe = emu.get(&key, "/v1/subscriptions").await;
    assert_eq!(
        (stripe.status, speaks(&stripe)),
        (200, "stripe"),
        "{}",
        stripe.text
    );
    assert_eq!(ids_of(&stripe.body), std::slice::from_ref(&sub));
    // x-api-key: the native list of plan subscriptions, which has none.
    let native = emu.native("GET", &key, "/v1/subscriptions", None).await;
    assert_eq!(
        (native.status, speaks(&native)),
        (200, "native"),
        "{}",
        native.text
    );
    assert_eq!(native.body["items"], json!([]));
    let native_one = emu
        .native("GET", &key, &format!("/v1/subscriptions/{sub}"), None)
        .await;
    assert_eq!(
        (native_one.status, speaks(&native_one)),
        (404, "native"),
        "{}",
        native_one.text
    );

    // No credentials at all: Stripe's 401 on a path both APIs have...
    let mut answers = serde_json::Map::new();
    for (method, path) in [
        ("GET", "/v1/subscriptions".to_string()),
        ("POST", "/v1/subscriptions".to_string()),
        ("GET", format!("/v1/subscriptions/{sub}")),
        ("DELETE", format!("/v1/subscriptions/{sub}")),
        ("GET", "/v1/customers".to_string()),
    ] {
        let r = emu.raw(method, &path, &[], "").await;
        assert_eq!(
            (r.status, speaks(&r)),
            (401, "stripe"),
            "{method} {path}: {}",
            r.text
        );
        answers.insert(format!("{method} {path}"), r.body);
    }
    // ...and the native 401 on paths only the native API has.
    for path in [
        "/v1/subscriptions/subs_1/cancel",
        "/v1/subscriptions/subs_1/grants/upcoming",
        "/v1/creditgrants",
        "/v1/customers/cust_1/wallets",
    ] {
        let method = if path.ends_with("cancel") {
            "POST"
        } else {
            "GET"
        };
        let r = emu.raw(method, path, &[], "").await;
        assert_eq!(
            (r.status, speaks(&r)),
            (401, "native"),
            "{path}: {}",
            r.text
        );
        answers.insert(format!("{method} {path}"), r.body);
    }
    insta::assert_json_snapshot!("unauthenticated", answers);
}

#[tokio::test]
async fn async_stripe_reads_and_writes_subscriptions() {
    use stripe_billing::subscription::{
        CancelSubscription, CreateSubscription, CreateSubscriptionItems, ListSubscription,
        RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    };
    use stripe_billing::subscription_item::{ListSubscriptionItem, RetrieveSubscriptionItem};

    let emu = Emu::start().await;
    let key = emu.tenant("subs_sdk").await;
    let p = catalog(&emu, &key);
    let cus = emu.customer(&key, "").await;
    let c = support::sdk::client(&emu, &key);

    let mut seat = CreateSubscriptionItems::new();
    seat.price = Some(p.seat.clone());
    seat.quantity = Some(2);
    let mut calls = CreateSubscriptionItems::new();
    calls.price = Some(p.calls.clone());
    let created = CreateSubscription::new()
        .customer(cus.as_str())
        .items(vec![seat, calls])
        .send(&c)
        .await
        .expect("create subscription");
    assert_eq!(created.items.data.len(), 2);
    assert_eq!(created.items.data[0].quantity, Some(2));
    assert_eq!(created.items.data[1].quantity, None);
    assert_eq!(created.items.data[1].price.id.as_str(), p.calls);
    assert_eq!(created.items.data[0].current_period_start, T0);

    let fetched = RetrieveSubscription::new(created.id.clone())
        .send(&c)
        .await
        .expect("retrieve subscription");
    assert_eq!(fetched.id, created.id);
    let listed = ListSubscription::new()
        .customer(cus.as_str())
        .send(&c)
        .await
        .expect("list subscriptions");
    assert_eq!(listed.data.len(), 1);

    let mut more = UpdateSubscriptionItems::new();
    more.id = Some(created.items.data[0].id.to_string());
    more.quantity = Some(4);
    let updated = UpdateSubscription::new(created.id.clone())
        .items(vec![more])
        .proration_behavior(stripe_billing::subscription::UpdateSubscriptionProrationBehavior::None)
        .send(&c)
        .await
        .expect("update subscription");
    assert_eq!(updated.items.data[0].quantity, Some(4));

    let items = ListSubscriptionItem::new(created.id.as_str())
        .send(&c)
        .await
        .expect("list items");
    assert_eq!(items.data.len(), 2);
    let item = RetrieveSubscriptionItem::new(items.data[1].id.clone())
        .send(&c)
        .await
        .expect("retrieve item");
    assert_eq!(item.price.id.as_str(), p.calls);

    let cancelled = CancelSubscription::new(created.id.clone())
        .send(&c)
        .await
        .expect("cancel subscription");
    assert_eq!(
        cancelled.status,
        stripe_billing::SubscriptionStatus::Canceled
    );
    assert_eq!(cancelled.ended_at, Some(T0));

    let refused = CancelSubscription::new(created.id.clone()).send(&c).await;
    assert!(
        matches!(refused, Err(stripe::StripeError::Stripe(_, 400))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn another_key_sees_nothing_of_a_subscription() {
    let emu = Emu::start().await;
    let a = emu.tenant("subs_iso_a").await;
    let b = emu.tenant("subs_iso_b").await;
    let p = catalog(&emu, &a);
    let cus = emu.customer(&a, "").await;
    let s = subscribe(
        &emu,
        &a,
        &format!("customer={cus}&items[0][price]={}", p.seat),
    )
    .await;
    let (sub, item) = (id(&s), id(&s["items"]["data"][0]));
    let b_cus = emu.customer(&b, "").await;
    let before = emu.get(&a, &format!("/v1/subscriptions/{sub}")).await.body;
    let mut seen = Vec::new();
    for (method, path, form) in [
        ("GET", format!("/v1/subscriptions/{sub}"), String::new()),
        (
            "POST",
            format!("/v1/subscriptions/{sub}"),
            "metadata[x]=y".to_string(),
        ),
        ("DELETE", format!("/v1/subscriptions/{sub}"), String::new()),
        (
            "GET",
            format!("/v1/subscription_items?subscription={sub}"),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/subscription_items/{item}"),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/subscriptions?customer={cus}"),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/subscriptions?price={}", p.seat),
            String::new(),
        ),
        (
            "POST",
            "/v1/subscriptions".to_string(),
            format!("customer={cus}&items[0][price]={}", p.seat),
        ),
        (
            "POST",
            "/v1/subscriptions".to_string(),
            format!("customer={b_cus}&items[0][price]={}", p.seat),
        ),
    ] {
        let r = emu.stripe(method, &b, &path, &form).await;
        assert!(
            matches!(r.status, 400 | 404) && r.body["error"]["code"] == "resource_missing",
            "B {method} {path}: {}",
            r.text
        );
        seen.push(format!(
            "{method} {} -> {} {}",
            path.replace(&sub, "{sub}")
                .replace(&item, "{item}")
                .replace(&cus, "{cus}")
                .replace(&p.seat, "{price}"),
            r.status,
            r.body["error"]["param"]
        ));
    }
    assert_eq!(
        ids_of(&emu.get(&b, "/v1/subscriptions?status=all").await.body),
        Vec::<String>::new()
    );
    assert_eq!(
        emu.get(&a, &format!("/v1/subscriptions/{sub}")).await.body,
        before
    );
    insta::assert_json_snapshot!("isolation", seen);
}

/// `POST /v1/subscription_items`, `POST /v1/subscription_items/{id}` and
/// `DELETE /v1/subscription_items/{id}` change a subscription's items as `items[N]` on the
/// subscription does, with the same refusals, and the subscription gets
/// `customer.subscription.updated`.
#[tokio::test]
async fn items_are_added_changed_and_removed_through_their_own_endpoints() {
    let emu = Emu::start().await;
    let key = emu.tenant("subs_item_endpoints").await;
    let prices = catalog(&emu, &key);
    let cus = emu.customer(&key, "").await;
    let s = subscribe(
        &emu,
        &key,
        &format!(
            "customer={cus}&items[0][price]={}&items[0][quantity]=2",
            prices.seat
        ),
    )
    .await;
    let sub = id(&s);
    let seat_item = id(&s["items"]["data"][0]);
    emu.freeze(&key, T0 + 3 * DAY).await;

    // Added: a metered item, no prorations needed.
    let created = emu
        .post(
            &key,
            "/v1/subscription_items",
            &format!(
                "subscription={sub}&price={}&metadata[kind]=usage",
                prices.calls
            ),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let calls_item = id(&created.body);
    insta::assert_json_snapshot!("item_created", created.body);
    let read = emu
        .get(&key, &format!("/v1/subscription_items/{calls_item}"))
        .await;
    assert_eq!(read.body, created.body);
    let events = emu
        .get(&key, "/v1/events?type=customer.subscription.updated")
        .await;
    let events = events.body["data"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["data"]["object"]["items"]["data"][1],
        created.body
    );
    assert!(events[0]["data"]["previous_attributes"]["items"].is_object());

    // Changed: metadata; a licensed quantity only without prorations.
    let changed = emu
        .post(
            &key,
            &format!("/v1/subscription_items/{calls_item}"),
            "metadata[kind]=&metadata[team]=api",
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["metadata"], json!({"team": "api"}));
    let seat_path = format!("/v1/subscription_items/{seat_item}");
    let prorated = emu.post(&key, &seat_path, "quantity=5").await;
    assert_eq!(prorated.status, 400, "{}", prorated.text);
    assert_eq!(prorated.body["error"]["param"], "quantity");
    let five = emu
        .post(&key, &seat_path, "quantity=5&proration_behavior=none")
        .await;
    assert_eq!(five.status, 200, "{}", five.text);
    assert_eq!(five.body["quantity"], 5);

    // Removed: the metered item (`clear_usage` taken: it has no effect on an item that bills a
    // meter); the last one cannot go.
    let deleted = emu
        .stripe(
            "DELETE",
            &key,
            &format!("/v1/subscription_items/{calls_item}"),
            "clear_usage=true",
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    insta::assert_json_snapshot!("item_deleted", deleted.body);
    let gone = emu
        .get(&key, &format!("/v1/subscription_items/{calls_item}"))
        .await;
    assert_eq!(gone.status, 404);
    let after = emu.get(&key, &format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(ids_of(&after.body["items"]), [seat_item.as_str()]);
    assert_eq!(after.body["items"]["data"][0]["quantity"], 5);
    let events = emu
        .get(&key, "/v1/events?type=customer.subscription.updated")
        .await;
    assert_eq!(events.body["data"].as_array().unwrap().len(), 4);

    let mut errors = serde_json::Map::new();
    for (name, method, path, form) in [
        (
            "create_without_subscription",
            "POST",
            "/v1/subscription_items".to_string(),
            format!("price={}", prices.calls),
        ),
        (
            "create_without_price",
            "POST",
            "/v1/subscription_items".to_string(),
            format!("subscription={sub}"),
        ),
        (
            "create_unknown_subscription",
            "POST",
            "/v1/subscription_items".to_string(),
            format!("subscription=sub_nope&price={}", prices.calls),
        ),
        (
            "create_unknown_price",
            "POST",
            "/v1/subscription_items".to_string(),
            format!("subscription={sub}&price=price_nope"),
        ),
        (
            "create_same_price",
            "POST",
            "/v1/subscription_items".to_string(),
            format!(
                "subscription={sub}&price={}&proration_behavior=none",
                prices.seat
            ),
        ),
        (
            "create_quantity_on_metered",
            "POST",
            "/v1/subscription_items".to_string(),
            format!("subscription={sub}&price={}&quantity=3", prices.calls),
        ),
        (
            "create_licensed_prorated",
            "POST",
            "/v1/subscription_items".to_string(),
            format!("subscription={sub}&price={}", prices.support),
        ),
        (
            "create_other_currency",
            "POST",
            "/v1/subscription_items".to_string(),
            format!(
                "subscription={sub}&price={}&proration_behavior=none",
                prices.euro
            ),
        ),
        (
            "create_price_data",
            "POST",
            "/v1/subscription_items".to_string(),
            format!("subscription={sub}&price_data[currency]=usd"),
        ),
        (
            "update_unknown_item",
            "POST",
            "/v1/subscription_items/si_nope".to_string(),
            "quantity=1".to_string(),
        ),
        (
            "update_tax_rates",
            "POST",
            seat_path.clone(),
            "tax_rates[0]=txr_1".to_string(),
        ),
        (
            "delete_licensed_prorated",
            "DELETE",
            seat_path.clone(),
            String::new(),
        ),
        (
            "delete_last_item",
            "DELETE",
            seat_path.clone(),
            "proration_behavior=none".to_string(),
        ),
        (
            "delete_clear_usage",
            "DELETE",
            seat_path.clone(),
            "clear_usage=maybe".to_string(),
        ),
    ] {
        let r = emu.stripe(method, &key, &path, &form).await;
        assert!(r.status >= 400, "{name}: {}", r.text);
        errors.insert(
            name.to_string(),
            json!({"status": r.status, "body": r.body}),
        );
    }
    insta::assert_json_snapshot!("item_errors", errors);
    // None of the refusals changed anything.
    let still = emu.get(&key, &format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(still.body, after.body);
}
