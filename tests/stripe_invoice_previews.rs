//! `POST /v1/invoices/create_preview` imagining changes first, over real sockets: a
//! subscription's items changed (`subscription_details[items]`), its end moved (`cancel_at`,
//! `cancel_at_period_end`, `cancel_now`), a subscription not yet made, one-off charges
//! (`invoice_items[]`), a customer's pending items alone; and that none of it is kept.

use crate::support;

use serde_json::Value;
use support::{Emu, T0};

const DAY: i64 = 86_400;
/// 2025-07-15T00:00:00Z: the end of the first monthly period from T0.
const T1: i64 = 1_752_537_600;
/// 2025-08-15T00:00:00Z.
const T2: i64 = 1_755_216_000;

async fn ok(r: support::Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

/// A world at T0: a customer with 1,000 cents of metered credit, a meter `calls` and two metered
/// prices on it (5 and 7 cents a call), a licensed price of 1,000 cents a month, a one-time price
/// of 300 cents, and a subscription to the 5-cent price with 100 calls reported.
struct World {
    key: String,
    customer: String,
    calls5: String,
    calls7: String,
    seat: String,
    pack: String,
    sub: String,
    item: String,
}

async fn price(emu: &Emu, key: &str, form: &str) -> String {
    ok(emu.post(key, "/v1/prices", form).await, "price").await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

impl World {
    async fn new(emu: &Emu, name: &str) -> World {
        let key = emu.tenant(name).await;
        let customer = emu.customer(&key, "name=Ada").await;
        emu.grant(&key, &customer, 1_000, "").await;
        let calls5 = emu.metered_price(&key, "calls").await;
        let meter = ok(
            emu.get(&key, &format!("/v1/prices/{calls5}")).await,
            "price",
        )
        .await["recurring"]["meter"]
            .as_str()
            .unwrap()
            .to_string();
        let calls7 = price(
            emu,
            &key,
            &format!(
                "currency=usd&unit_amount=7&product_data[name]=Calls+plus&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={meter}"
            ),
        )
        .await;
        let seat = price(
            emu,
            &key,
            "currency=usd&unit_amount=1000&product_data[name]=Seat&recurring[interval]=month",
        )
        .await;
        let pack = price(
            emu,
            &key,
            "currency=usd&unit_amount=300&product_data[name]=Pack",
        )
        .await;
        let sub = ok(
            emu.post(
                &key,
                "/v1/subscriptions",
                &format!("customer={customer}&items[0][price]={calls5}"),
            )
            .await,
            "subscription",
        )
        .await;
        let item = sub["items"]["data"][0]["id"].as_str().unwrap().to_string();
        let sub = sub["id"].as_str().unwrap().to_string();
        ok(
            emu.post(
                &key,
                "/v1/billing/meter_events",
                &format!(
                    "event_name=calls&payload[stripe_customer_id]={customer}&payload[value]=100"
                ),
            )
            .await,
            "usage",
        )
        .await;
        World {
            key,
            customer,
            calls5,
            calls7,
            seat,
            pack,
            sub,
            item,
        }
    }

    async fn preview(&self, emu: &Emu, form: &str) -> support::Resp {
        emu.post(&self.key, "/v1/invoices/create_preview", form)
            .await
    }

    /// The subscription's items as (price, quantity).
    async fn items(&self, emu: &Emu) -> Vec<(String, Value)> {
        let sub = ok(
            emu.get(&self.key, &format!("/v1/subscriptions/{}", self.sub))
                .await,
            "subscription",
        )
        .await;
        sub["items"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["price"]["id"].as_str().unwrap().to_string(),
                    i["quantity"].clone(),
                )
            })
            .collect()
    }
}

/// Each line as (price id, or `item <description>` for an invoice item's line; amount; credit
/// projected; period start; period end).
fn lines(invoice: &Value) -> Vec<(String, i64, i64, i64, i64)> {
    invoice["lines"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let kind = if l["parent"]["type"] == "invoice_item_details" {
                format!("item {}", l["description"].as_str().unwrap_or(""))
            } else {
                l["pricing"]["price_details"]["price"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            let credit = l["pretax_credit_amounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["amount"].as_i64().unwrap())
                .sum();
            (
                kind,
                l["amount"].as_i64().unwrap(),
                credit,
                l["period"]["start"].as_i64().unwrap(),
                l["period"]["end"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_preview_imagines_item_changes_and_keeps_none_of_them() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "preview_items").await;
    let before = w.items(&emu).await;

    // The metered item moves to the 7-cent price: the period's 100 calls at 7 cents.
    let swapped = ok(
        w.preview(
            &emu,
            &format!(
                "subscription={}&subscription_details[items][0][id]={}&subscription_details[items][0][price]={}",
                w.sub, w.item, w.calls7
            ),
        )
        .await,
        "preview",
    )
    .await;
    assert_eq!(lines(&swapped), [(w.calls7.clone(), 700, 700, T0, T1)]);
    assert_eq!(swapped["billing_reason"], "upcoming");
    assert_eq!(
        swapped["parent"]["subscription_details"]["subscription"],
        w.sub
    );
    assert_eq!(
        swapped["lines"]["data"][0]["parent"]["subscription_item_details"]["subscription_item"],
        w.item
    );

    // A seat added without prorations: billed in advance for the next period, newest first; credits
    // pay only the metered line.
    let form = format!(
        "subscription={}&subscription_details[items][0][price]={}&subscription_details[items][0][quantity]=2&subscription_details[proration_behavior]=none",
        w.sub, w.seat
    );
    let added = ok(w.preview(&emu, &form).await, "preview").await;
    assert_eq!(
        lines(&added),
        [
            (w.seat.clone(), 2_000, 0, T1, T2),
            (w.calls5.clone(), 500, 500, T0, T1),
        ]
    );
    assert_eq!(added["subtotal"], 2_500);
    assert_eq!(added["total"], 2_000);
    let new_line = added["lines"]["data"][0]["id"].as_str().unwrap();
    assert!(new_line.starts_with("il_tmp_"), "{new_line}");
    insta::assert_json_snapshot!("preview_item_added", added);

    // Removing the only item leaves nothing to bill, as an update would refuse.
    let r = w
        .preview(
            &emu,
            &format!(
                "subscription={}&subscription_details[items][0][id]={}&subscription_details[items][0][deleted]=true",
                w.sub, w.item
            ),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["param"], "subscription_details[items]");

    // Nothing was kept: the subscription, its invoices and the credit are as they were.
    assert_eq!(w.items(&emu).await, before);
    let invoices = ok(
        emu.get(&w.key, &format!("/v1/invoices?subscription={}", w.sub))
            .await,
        "invoices",
    )
    .await;
    assert_eq!(invoices["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_preview_refuses_what_the_update_would() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "preview_refusals").await;
    let refused = |form: String| {
        let w = &w;
        let emu = &emu;
        async move {
            let r = w.preview(emu, &form).await;
            assert_eq!(r.status, 400, "{form}: {}", r.text);
            r.body
        }
    };
    // A licensed price added within a period would be prorated.
    let proration = refused(format!(
        "subscription={}&subscription_details[items][0][price]={}",
        w.sub, w.seat
    ))
    .await;
    insta::assert_json_snapshot!("preview_proration_refused", proration);
    // An item of no subscription, a price that does not exist, a quantity on a metered price.
    let foreign = refused(format!(
        "subscription={}&subscription_details[items][0][id]=si_nope&subscription_details[items][0][price]={}",
        w.sub, w.calls7
    ))
    .await;
    assert_eq!(
        foreign["error"]["param"],
        "subscription_details[items][0][id]"
    );
    let no_price = refused(format!(
        "subscription={}&subscription_details[items][0][price]=price_nope",
        w.sub
    ))
    .await;
    assert_eq!(
        no_price["error"]["param"],
        "subscription_details[items][0][price]"
    );
    let quantity = refused(format!(
        "subscription={}&subscription_details[items][0][id]={}&subscription_details[items][0][quantity]=3",
        w.sub, w.item
    ))
    .await;
    insta::assert_json_snapshot!("preview_metered_quantity", quantity);
    // Two ways to end at once, and what the emulator does not model.
    let both = refused(format!(
        "subscription={}&subscription_details[cancel_now]=true&subscription_details[cancel_at_period_end]=true",
        w.sub
    ))
    .await;
    insta::assert_json_snapshot!("preview_two_ends", both);
    let trial = refused(format!(
        "subscription={}&subscription_details[trial_end]={}",
        w.sub,
        T0 + DAY
    ))
    .await;
    assert_eq!(trial["error"]["param"], "subscription_details[trial_end]");
    let past = refused(format!(
        "subscription={}&subscription_details[cancel_at]={}",
        w.sub,
        T0 - DAY
    ))
    .await;
    assert_eq!(past["error"]["param"], "subscription_details[cancel_at]");
}

#[tokio::test]
async fn a_preview_of_an_ending_subscription_bills_its_usage_only() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "preview_ends").await;
    emu.freeze(&w.key, T0 + 10 * DAY).await;

    // Ending at the period end: the usage of the period, nothing in advance.
    let at_end = ok(
        w.preview(
            &emu,
            &format!(
                "subscription={}&subscription_details[cancel_at_period_end]=true",
                w.sub
            ),
        )
        .await,
        "preview",
    )
    .await;
    assert_eq!(lines(&at_end), [(w.calls5.clone(), 500, 500, T0, T1)]);
    assert_eq!(at_end["period_end"], T1);

    // Ending at a day in the period: its invoice comes then, for the usage up to it.
    let cancel_at = T0 + 20 * DAY;
    let early = ok(
        w.preview(
            &emu,
            &format!(
                "subscription={}&subscription_details[cancel_at]={cancel_at}",
                w.sub
            ),
        )
        .await,
        "preview",
    )
    .await;
    assert_eq!(lines(&early), [(w.calls5.clone(), 500, 500, T0, cancel_at)]);
    assert_eq!(early["created"], cancel_at);

    // Ending now: the usage so far, dated now.
    let now = T0 + 10 * DAY;
    let at_once = ok(
        w.preview(
            &emu,
            &format!(
                "subscription={}&subscription_details[cancel_now]=true",
                w.sub
            ),
        )
        .await,
        "preview",
    )
    .await;
    assert_eq!(lines(&at_once), [(w.calls5.clone(), 500, 500, T0, now)]);
    assert_eq!(at_once["created"], now);
    assert_eq!(at_once["period_end"], now);

    // The subscription still runs.
    let sub = ok(
        emu.get(&w.key, &format!("/v1/subscriptions/{}", w.sub))
            .await,
        "subscription",
    )
    .await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["cancel_at_period_end"], false);
    assert_eq!(sub["cancel_at"], Value::Null);
}

#[tokio::test]
async fn a_preview_of_a_new_subscription_is_its_first_invoice() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "preview_new").await;
    let newcomer = emu.customer(&w.key, "name=Grace").await;

    let form = format!(
        "customer={newcomer}&subscription_details[items][0][price]={}&subscription_details[items][1][price]={}&subscription_details[items][1][quantity]=3",
        w.calls5, w.seat
    );
    let first = ok(w.preview(&emu, &form).await, "preview").await;
    // Licensed items in advance for the first period; metered ones bill in arrears.
    assert_eq!(lines(&first), [(w.seat.clone(), 3_000, 0, T0, T1)]);
    assert_eq!(first["billing_reason"], "upcoming");
    assert_eq!(first["customer"], newcomer);
    let sub = first["parent"]["subscription_details"]["subscription"]
        .as_str()
        .unwrap();
    assert!(sub.starts_with("sub_"), "{sub}");
    let again = ok(w.preview(&emu, &form).await, "preview").await;
    assert_eq!(again["total"], first["total"]);

    // Nothing was made.
    let subs = ok(
        emu.get(&w.key, &format!("/v1/subscriptions?customer={newcomer}"))
            .await,
        "subscriptions",
    )
    .await;
    assert_eq!(subs["data"], serde_json::json!([]));
    assert_eq!(
        emu.get(&w.key, &format!("/v1/subscriptions/{sub}"))
            .await
            .status,
        404
    );

    // An item to change needs a subscription; prices must agree as on creation.
    let r = w
        .preview(
            &emu,
            &format!(
                "customer={newcomer}&subscription_details[items][0][id]={}&subscription_details[items][0][price]={}",
                w.item, w.seat
            ),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    insta::assert_json_snapshot!("preview_new_item_id", r.body);
    let eur = price(
        &emu,
        &w.key,
        "currency=eur&unit_amount=900&product_data[name]=Seat+EU&recurring[interval]=month",
    )
    .await;
    let r = w
        .preview(
            &emu,
            &format!(
                "customer={newcomer}&subscription_details[items][0][price]={}&subscription_details[items][1][price]={eur}",
                w.seat
            ),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["param"],
        "subscription_details[items][1][price]"
    );
}

#[tokio::test]
async fn invoice_items_add_one_off_charges_newest_first() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "preview_charges").await;

    let form = format!(
        "subscription={}&invoice_items[0][amount]=250&invoice_items[0][currency]=usd&invoice_items[0][description]=Setup&invoice_items[1][price]={}&invoice_items[1][quantity]=2&invoice_items[1][description]=Pack",
        w.sub, w.pack
    );
    let preview = ok(w.preview(&emu, &form).await, "preview").await;
    assert_eq!(
        lines(&preview),
        [
            ("item Pack".to_string(), 600, 0, T0, T1),
            ("item Setup".to_string(), 250, 0, T0, T1),
            (w.calls5.clone(), 500, 500, T0, T1),
        ]
    );
    assert_eq!(preview["subtotal"], 1_350);
    assert_eq!(preview["total"], 850);
    insta::assert_json_snapshot!("preview_invoice_items", preview["lines"]["data"][0]);

    // No invoice item was made.
    let items = ok(
        emu.get(&w.key, &format!("/v1/invoiceitems?customer={}", w.customer))
            .await,
        "invoice items",
    )
    .await;
    assert_eq!(items["data"], serde_json::json!([]));

    // Charges and `currency` must be the invoice's currency.
    let r = w
        .preview(
            &emu,
            &format!(
                "subscription={}&invoice_items[0][amount]=250&invoice_items[0][currency]=eur",
                w.sub
            ),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    insta::assert_json_snapshot!("preview_charge_currency", r.body);
    let r = w
        .preview(&emu, &format!("subscription={}&currency=eur", w.sub))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["param"], "currency");
    let r = w
        .preview(&emu, &format!("subscription={}&currency=usd", w.sub))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = w
        .preview(
            &emu,
            &format!("subscription={}&invoice_items[0][currency]=usd", w.sub),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["message"],
        "You must specify one of these parameters: amount, price, unit_amount, unit_amount_decimal."
    );
}

#[tokio::test]
async fn a_customer_without_a_subscription_previews_its_pending_items() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "preview_pending").await;
    let loner = emu.customer(&w.key, "name=Hopper").await;

    let r = w.preview(&emu, &format!("customer={loner}")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "invoice_upcoming_none");

    ok(
        emu.post(
            &w.key,
            "/v1/invoiceitems",
            &format!("customer={loner}&amount=400&currency=usd&description=Support"),
        )
        .await,
        "invoice item",
    )
    .await;
    let pending = ok(
        w.preview(&emu, &format!("customer={loner}")).await,
        "preview",
    )
    .await;
    assert_eq!(
        lines(&pending),
        [("item Support".to_string(), 400, 0, T0, T0)]
    );
    assert_eq!(pending["parent"], Value::Null);
    assert_eq!(pending["currency"], "usd");

    // A charge of the preview's own comes first.
    let more = ok(
        w.preview(
            &emu,
            &format!(
                "customer={loner}&invoice_items[0][unit_amount]=150&invoice_items[0][quantity]=2&invoice_items[0][currency]=usd&invoice_items[0][description]=Extra"
            ),
        )
        .await,
        "preview",
    )
    .await;
    assert_eq!(
        lines(&more),
        [
            ("item Extra".to_string(), 300, 0, T0, T0),
            ("item Support".to_string(), 400, 0, T0, T0),
        ]
    );
}
