//! The whole loop production runs, over real sockets: customer → credit grant → meter → product and
//! metered price → subscription → meter events → test clock advanced past the period end → a draft
//! cycle invoice → the grace period → finalized with credits applied and paid → balance summary
//! and transactions. Also several boundaries crossed by one advance, the clock's advance limit,
//! late usage, the preview, cancellation, and declined payments.

use crate::support;

use serde_json::{json, Value};
use support::{Emu, T0};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// 2025-07-15T00:00:00Z, one month after T0.
const T1: i64 = 1_752_537_600;
/// 2025-08-15T00:00:00Z.
const T2: i64 = 1_755_216_000;

async fn ok(r: support::Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

/// A test clock of tenant `key` frozen at T0; its id.
async fn test_clock(emu: &Emu, key: &str) -> String {
    let r = emu
        .post(
            key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={T0}"),
        )
        .await;
    ok(r, "clock").await["id"].as_str().unwrap().to_string()
}

/// A world on a test clock at T0: a customer with a grant of `credit` cents of metered credit, a
/// meter `api_calls` (sum), and a subscription to a metered price of 5 cents a call.
struct Loop {
    key: String,
    clock: String,
    customer: String,
    price: String,
    subscription: Value,
}

impl Loop {
    async fn new(emu: &Emu, name: &str, credit: i64, customer_form: &str) -> Loop {
        let key = emu.tenant(name).await;
        let clock = test_clock(emu, &key).await;
        let customer = emu
            .customer(&key, &format!("test_clock={clock}&name=Ada{customer_form}"))
            .await;
        if credit > 0 {
            emu.grant(&key, &customer, credit, "").await;
        }
        let meter = ok(
            emu.post(
                &key,
                "/v1/billing/meters",
                "display_name=API+calls&event_name=api_calls&default_aggregation[formula]=sum",
            )
            .await,
            "meter",
        )
        .await["id"]
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
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let subscription = ok(
            emu.post(
                &key,
                "/v1/subscriptions",
                &format!("customer={customer}&items[0][price]={price}&expand[]=latest_invoice"),
            )
            .await,
            "subscription",
        )
        .await;
        Loop {
            key,
            clock,
            customer,
            price,
            subscription,
        }
    }

    async fn advance(&self, emu: &Emu, to: i64) -> Value {
        emu.advance_clock(&self.key, &self.clock, to).await
    }

    /// Reports `calls` API calls at `timestamp` (the clock's now when `None`).
    async fn usage(&self, emu: &Emu, calls: i64, timestamp: Option<i64>) {
        let mut form = format!(
            "event_name=api_calls&payload[stripe_customer_id]={}&payload[value]={calls}",
            self.customer
        );
        if let Some(ts) = timestamp {
            form.push_str(&format!("&timestamp={ts}"));
        }
        ok(
            emu.post(&self.key, "/v1/billing/meter_events", &form).await,
            "meter event",
        )
        .await;
    }

    async fn invoices(&self, emu: &Emu) -> Vec<Value> {
        let list = ok(
            emu.get(
                &self.key,
                &format!(
                    "/v1/invoices?subscription={}",
                    self.subscription["id"].as_str().unwrap()
                ),
            )
            .await,
            "invoices",
        )
        .await;
        let mut data = list["data"].as_array().unwrap().clone();
        data.reverse();
        data
    }

    async fn available(&self, emu: &Emu) -> i64 {
        let s = ok(
            emu.get(
                &self.key,
                &format!(
                    "/v1/billing/credit_balance_summary?customer={}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered",
                    self.customer
                ),
            )
            .await,
            "summary",
        )
        .await;
        s["balances"][0]["available_balance"]["monetary"]["value"]
            .as_i64()
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn a_period_of_usage_is_invoiced_and_paid_with_credits() {
    let emu = Emu::start().await;
    let w = Loop::new(&emu, "usage_loop", 1_000, "").await;

    // The first invoice bills nothing (metered usage is billed in arrears) and is paid at once.
    let first = &w.subscription["latest_invoice"];
    assert_eq!(first["billing_reason"], "subscription_create");
    assert_eq!(first["status"], "paid");
    assert_eq!(first["total"], 0);
    insta::assert_json_snapshot!("usage_subscription", w.subscription);

    w.advance(&emu, T0 + DAY).await;
    w.usage(&emu, 100, None).await;
    w.advance(&emu, T0 + 10 * DAY).await;
    w.usage(&emu, 200, None).await;

    // The preview shows the usage so far and the credit it would take, changing nothing.
    let preview = ok(
        emu.post(
            &w.key,
            "/v1/invoices/create_preview",
            &format!("customer={}", w.customer),
        )
        .await,
        "preview",
    )
    .await;
    insta::assert_json_snapshot!("usage_preview", preview);
    assert_eq!(preview["total"], 500);
    assert_eq!(preview["total_pretax_credit_amounts"][0]["amount"], 1_000);
    assert_eq!(w.available(&emu).await, 1_000);

    // Past the period end: a draft at the boundary, finalizing one hour later.
    w.advance(&emu, T1 + 60).await;
    let invoices = w.invoices(&emu).await;
    assert_eq!(invoices.len(), 2, "{invoices:#?}");
    let draft = &invoices[1];
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["billing_reason"], "subscription_cycle");
    assert_eq!(draft["created"], T1);
    assert_eq!(draft["period_start"], T0);
    assert_eq!(draft["period_end"], T1);
    assert_eq!(draft["automatically_finalizes_at"], T1 + HOUR);
    assert_eq!(draft["subtotal"], 1_500);
    assert_eq!(draft["total_pretax_credit_amounts"], json!([]));
    assert_eq!(w.available(&emu).await, 1_000);
    let id = draft["id"].as_str().unwrap().to_string();

    // Late usage inside the grace period counts at finalization.
    w.usage(&emu, 20, Some(T1 - 1)).await;
    w.advance(&emu, T1 + 2 * HOUR).await;
    let paid = ok(
        emu.get(&w.key, &format!("/v1/invoices/{id}")).await,
        "invoice",
    )
    .await;
    insta::assert_json_snapshot!("usage_cycle_invoice_paid", paid);
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["subtotal"], 1_600);
    assert_eq!(paid["total"], 600);
    assert_eq!(paid["amount_paid"], 600);
    assert_eq!(paid["status_transitions"]["finalized_at"], T1 + HOUR);
    assert_eq!(paid["lines"]["data"][0]["quantity"], 320);
    assert_eq!(w.available(&emu).await, 0);

    // The ledger names the invoice and its line.
    let txns = ok(
        emu.get(
            &w.key,
            &format!(
                "/v1/billing/credit_balance_transactions?customer={}",
                w.customer
            ),
        )
        .await,
        "transactions",
    )
    .await;
    let applied = &txns["data"][0];
    assert_eq!(applied["debit"]["type"], "credits_applied");
    assert_eq!(applied["debit"]["credits_applied"]["invoice"], id.as_str());
    assert_eq!(applied["effective_at"], T1 + HOUR);

    // The subscription rolled into its next period.
    let sub = ok(
        emu.get(
            &w.key,
            &format!(
                "/v1/subscriptions/{}",
                w.subscription["id"].as_str().unwrap()
            ),
        )
        .await,
        "subscription",
    )
    .await;
    assert_eq!(sub["latest_invoice"], id.as_str());
    assert_eq!(sub["items"]["data"][0]["current_period_start"], T1);
    assert_eq!(sub["items"]["data"][0]["current_period_end"], T2);
}

#[tokio::test]
async fn one_advance_across_two_boundaries_posts_each_step_at_its_instant() {
    let emu = Emu::start().await;
    let w = Loop::new(&emu, "usage_two_boundaries", 700, "").await;
    w.advance(&emu, T0 + DAY).await;
    w.usage(&emu, 100, None).await;

    // More than two periods at once is refused.
    let r = emu
        .post(
            &w.key,
            &format!("/v1/test_helpers/test_clocks/{}/advance", w.clock),
            &format!("frozen_time={}", T2 + 40 * DAY),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    insta::assert_json_snapshot!("usage_advance_too_far", r.body);

    w.advance(&emu, T2 + 2 * HOUR).await;
    let invoices = w.invoices(&emu).await;
    let cycles: Vec<&Value> = invoices
        .iter()
        .filter(|i| i["billing_reason"] == "subscription_cycle")
        .collect();
    assert_eq!(cycles.len(), 2, "{invoices:#?}");
    // Each at its own boundary, each finalized an hour later; the first took the credit.
    assert_eq!(cycles[0]["created"], T1);
    assert_eq!(cycles[0]["status_transitions"]["finalized_at"], T1 + HOUR);
    assert_eq!(cycles[0]["subtotal"], 500);
    assert_eq!(cycles[0]["total"], 0);
    assert_eq!(cycles[0]["status"], "paid");
    assert_eq!(cycles[1]["created"], T2);
    assert_eq!(cycles[1]["period_start"], T1);
    assert_eq!(cycles[1]["subtotal"], 0);
    assert_eq!(w.available(&emu).await, 200);
}

#[tokio::test]
async fn declined_payments_make_the_subscription_past_due() {
    let emu = Emu::start().await;
    let w = Loop::new(
        &emu,
        "usage_declined",
        0,
        "&invoice_settings[default_payment_method]=pm_card_chargeCustomerFail",
    )
    .await;
    w.advance(&emu, T0 + DAY).await;
    w.usage(&emu, 10, None).await;
    w.advance(&emu, T1 + 2 * HOUR).await;
    let invoices = w.invoices(&emu).await;
    let cycle = invoices.last().unwrap();
    assert_eq!(cycle["status"], "open");
    assert_eq!(cycle["attempt_count"], 1);
    assert_eq!(cycle["amount_due"], 50);
    let sub_id = w.subscription["id"].as_str().unwrap();
    let sub = ok(
        emu.get(&w.key, &format!("/v1/subscriptions/{sub_id}"))
            .await,
        "sub",
    )
    .await;
    assert_eq!(sub["status"], "past_due");

    // Paid out of band, the subscription is active again.
    let id = cycle["id"].as_str().unwrap();
    ok(
        emu.post(
            &w.key,
            &format!("/v1/invoices/{id}/pay"),
            "paid_out_of_band=true",
        )
        .await,
        "pay",
    )
    .await;
    let sub = ok(
        emu.get(&w.key, &format!("/v1/subscriptions/{sub_id}"))
            .await,
        "sub",
    )
    .await;
    assert_eq!(sub["status"], "active");
}

#[tokio::test]
async fn cancelling_bills_usage_at_the_period_end_or_at_once_with_invoice_now() {
    let emu = Emu::start().await;
    let w = Loop::new(&emu, "usage_cancel_end", 0, "").await;
    let sub_id = w.subscription["id"].as_str().unwrap().to_string();
    ok(
        emu.post(
            &w.key,
            &format!("/v1/subscriptions/{sub_id}"),
            "cancel_at_period_end=true",
        )
        .await,
        "cancel at period end",
    )
    .await;
    w.advance(&emu, T0 + DAY).await;
    w.usage(&emu, 10, None).await;
    w.advance(&emu, T1 + 2 * HOUR).await;
    let sub = ok(
        emu.get(&w.key, &format!("/v1/subscriptions/{sub_id}"))
            .await,
        "sub",
    )
    .await;
    assert_eq!(sub["status"], "canceled");
    assert_eq!(sub["ended_at"], T1);
    let invoices = w.invoices(&emu).await;
    assert_eq!(invoices.len(), 2);
    assert_eq!(invoices[1]["subtotal"], 50);
    assert_eq!(invoices[1]["status"], "paid");
    // Nothing more is billed.
    w.advance(&emu, T2 + 2 * HOUR).await;
    assert_eq!(w.invoices(&emu).await.len(), 2);

    let v = Loop::new(&emu, "usage_cancel_now", 0, "").await;
    let sub_id = v.subscription["id"].as_str().unwrap().to_string();
    v.advance(&emu, T0 + DAY).await;
    v.usage(&emu, 7, None).await;
    let canceled = ok(
        emu.delete(
            &v.key,
            &format!("/v1/subscriptions/{sub_id}?invoice_now=true"),
        )
        .await,
        "cancel now",
    )
    .await;
    assert_eq!(canceled["status"], "canceled");
    let invoices = v.invoices(&emu).await;
    assert_eq!(invoices.len(), 2);
    assert_eq!(invoices[1]["billing_reason"], "subscription_update");
    assert_eq!(invoices[1]["subtotal"], 35);
    assert_eq!(invoices[1]["period_end"], T0 + DAY);
    let _ = &v.price;
}

#[tokio::test]
async fn a_test_clock_holds_three_customers() {
    let emu = Emu::start().await;
    let key = emu.tenant("usage_clock_customers").await;
    let clock = test_clock(&emu, &key).await;
    for _ in 0..3 {
        emu.customer(&key, &format!("test_clock={clock}")).await;
    }
    let fourth = emu
        .post(&key, "/v1/customers", &format!("test_clock={clock}"))
        .await;
    assert_eq!(fourth.status, 400, "{}", fourth.text);
    insta::assert_json_snapshot!("usage_clock_fourth_customer", fourth.body);
    // Another clock takes more.
    let other = test_clock(&emu, &key).await;
    emu.customer(&key, &format!("test_clock={other}")).await;
}

#[tokio::test]
async fn a_declined_first_payment_leaves_the_subscription_incomplete() {
    let emu = Emu::start().await;
    let key = emu.tenant("usage_incomplete").await;
    let cus = emu
        .customer(
            &key,
            "name=Ed&invoice_settings[default_payment_method]=pm_card_visa_chargeDeclined",
        )
        .await;
    let price = ok(
        emu.post(
            &key,
            "/v1/prices",
            "currency=usd&unit_amount=900&product_data[name]=Seats&recurring[interval]=month",
        )
        .await,
        "licensed price",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sub = ok(
        emu.post(
            &key,
            "/v1/subscriptions",
            &format!("customer={cus}&items[0][price]={price}&items[0][quantity]=2&expand[]=latest_invoice"),
        )
        .await,
        "subscription",
    )
    .await;
    assert_eq!(sub["status"], "incomplete");
    let invoice = &sub["latest_invoice"];
    assert_eq!(invoice["status"], "open");
    assert_eq!(invoice["amount_due"], 1_800);
    assert_eq!(invoice["attempt_count"], 1);
    assert_eq!(
        invoice["lines"]["data"][0]["description"],
        "2 × Seats (at $9.00 / month)"
    );
    let id = invoice["id"].as_str().unwrap();
    ok(
        emu.post(
            &key,
            &format!("/v1/invoices/{id}/pay"),
            "payment_method=pm_card_visa",
        )
        .await,
        "pay with another card",
    )
    .await;
    let sub_id = sub["id"].as_str().unwrap();
    let after = ok(
        emu.get(&key, &format!("/v1/subscriptions/{sub_id}")).await,
        "sub",
    )
    .await;
    assert_eq!(after["status"], "active");
}

#[tokio::test]
async fn with_no_grace_period_a_draft_made_on_a_test_clock_finalizes_at_once() {
    let emu = Emu::start().await;
    let name = "usage_no_grace";
    ok(
        emu.post(
            &format!("sk_test_{name}"),
            "/_emulator/invoice_grace_period",
            "seconds=0",
        )
        .await,
        "grace",
    )
    .await;
    let w = Loop::new(&emu, name, 0, "").await;

    // A sent first invoice waits the grace period like any draft: none here, so it is final at
    // once (nothing to pay, so paid), without the clock having to move.
    let sent = ok(
        emu.post(
            &w.key,
            "/v1/subscriptions",
            &format!(
                "customer={}&items[0][price]={}&collection_method=send_invoice&days_until_due=30&expand[]=latest_invoice",
                w.customer, w.price
            ),
        )
        .await,
        "sent subscription",
    )
    .await;
    insta::assert_json_snapshot!("usage_no_grace_sent_first_invoice", sent["latest_invoice"]);
    assert_eq!(sent["latest_invoice"]["status"], "paid");

    // Cancelled with a final invoice: it is finalized and charged in the same request.
    w.advance(&emu, T0 + DAY).await;
    w.usage(&emu, 7, None).await;
    let sub_id = w.subscription["id"].as_str().unwrap();
    let canceled = ok(
        emu.delete(
            &w.key,
            &format!("/v1/subscriptions/{sub_id}?invoice_now=true&expand[]=latest_invoice"),
        )
        .await,
        "cancel now",
    )
    .await;
    insta::assert_json_snapshot!("usage_no_grace_final_invoice", canceled["latest_invoice"]);
    let last = &canceled["latest_invoice"];
    assert_eq!(last["billing_reason"], "subscription_update");
    assert_eq!(last["status"], "paid");
    assert_eq!(last["amount_paid"], 35);
    assert_eq!(last["status_transitions"]["finalized_at"], T0 + DAY);
}

/// Each line of `invoice` as (price id, amount, credits applied), in order.
fn lines_of(invoice: &Value) -> Vec<(String, i64, i64)> {
    invoice["lines"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let credits = l["pretax_credit_amounts"]
                .as_array()
                .map_or(0, |c| c.iter().map(|c| c["amount"].as_i64().unwrap()).sum());
            (
                l["pricing"]["price_details"]["price"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                l["amount"].as_i64().unwrap(),
                credits,
            )
        })
        .collect()
}

/// A subscription's lines come newest item first (Stripe's order), on its first invoice, its
/// preview and its cycle invoice; credits pay the lines in that order.
#[tokio::test]
async fn lines_come_newest_item_first_and_credits_pay_them_in_that_order() {
    let emu = Emu::start().await;
    let key = emu.tenant("usage_line_order").await;
    let clock = test_clock(&emu, &key).await;
    let customer = emu
        .customer(&key, &format!("test_clock={clock}&name=Ada"))
        .await;
    emu.grant(&key, &customer, 1_000, "").await;
    let mut prices = Vec::new();
    for (name, form) in [
        ("seat", "unit_amount=1500".to_string()),
        ("calls", "unit_amount=5".to_string()),
        ("support", "unit_amount=900".to_string()),
        ("storage", "unit_amount=10".to_string()),
    ] {
        let metered = matches!(name, "calls" | "storage");
        let mut form =
            format!("currency=usd&{form}&product_data[name]={name}&recurring[interval]=month");
        if metered {
            let meter = ok(
                emu.post(
                    &key,
                    "/v1/billing/meters",
                    &format!(
                        "display_name={name}&event_name={name}&default_aggregation[formula]=sum"
                    ),
                )
                .await,
                "meter",
            )
            .await;
            form.push_str(&format!(
                "&recurring[usage_type]=metered&recurring[meter]={}",
                meter["id"].as_str().unwrap()
            ));
        }
        let price = ok(emu.post(&key, "/v1/prices", &form).await, "price").await;
        prices.push(price["id"].as_str().unwrap().to_string());
    }
    let [seat, calls, support, storage] = [&prices[0], &prices[1], &prices[2], &prices[3]];
    let sub = ok(
        emu.post(
            &key,
            "/v1/subscriptions",
            &format!(
                "customer={customer}&items[0][price]={seat}&items[1][price]={calls}\
                 &items[2][price]={support}&items[3][price]={storage}&expand[]=latest_invoice"
            ),
        )
        .await,
        "subscription",
    )
    .await;
    // The first invoice bills the licensed items, newest first.
    assert_eq!(
        lines_of(&sub["latest_invoice"]),
        [(support.clone(), 900, 0), (seat.clone(), 1500, 0)]
    );

    for (meter, value) in [("calls", 100), ("storage", 80)] {
        ok(
            emu.post(
                &key,
                "/v1/billing/meter_events",
                &format!(
                    "event_name={meter}&payload[stripe_customer_id]={customer}&payload[value]={value}"
                ),
            )
            .await,
            "usage",
        )
        .await;
    }
    // The newest metered line (storage, 800) takes credit first, the older (calls, 500) the rest.
    let expected = [
        (storage.clone(), 800, 800),
        (support.clone(), 900, 0),
        (calls.clone(), 500, 200),
        (seat.clone(), 1500, 0),
    ];
    let preview = ok(
        emu.post(
            &key,
            "/v1/invoices/create_preview",
            &format!("customer={customer}"),
        )
        .await,
        "preview",
    )
    .await;
    assert_eq!(lines_of(&preview), expected);

    ok(
        emu.post(
            &key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={}", T1 + 2 * HOUR),
        )
        .await,
        "advance",
    )
    .await;
    let list = ok(
        emu.get(
            &key,
            &format!(
                "/v1/invoices?subscription={}&limit=1",
                sub["id"].as_str().unwrap()
            ),
        )
        .await,
        "invoices",
    )
    .await;
    let cycle = &list["data"][0];
    assert_eq!(cycle["billing_reason"], "subscription_cycle");
    assert_eq!(cycle["status"], "paid");
    assert_eq!(lines_of(cycle), expected);
    let lines = ok(
        emu.get(
            &key,
            &format!("/v1/invoices/{}/lines", cycle["id"].as_str().unwrap()),
        )
        .await,
        "lines",
    )
    .await;
    assert_eq!(lines["data"], cycle["lines"]["data"]);
}

/// Each line of `invoice` as (kind, amount, credits applied), in order: `item` for an invoice
/// item's line (with its description), the price id for a subscription item's.
fn kinds_of(invoice: &Value) -> Vec<(String, i64, i64)> {
    invoice["lines"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let credits = l["pretax_credit_amounts"]
                .as_array()
                .map_or(0, |c| c.iter().map(|c| c["amount"].as_i64().unwrap()).sum());
            let kind = match l["parent"]["type"].as_str() {
                Some("invoice_item_details") => {
                    format!("item {}", l["description"].as_str().unwrap_or(""))
                }
                _ => l["pricing"]["price_details"]["price"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            };
            (kind, l["amount"].as_i64().unwrap(), credits)
        })
        .collect()
}

/// An invoice item of `cents` in `currency` for `customer`, described `description`, with `extra`
/// form fields; returns its id.
async fn invoice_item(
    emu: &Emu,
    key: &str,
    customer: &str,
    cents: i64,
    currency: &str,
    description: &str,
    extra: &str,
) -> String {
    let r = emu
        .post(
            key,
            "/v1/invoiceitems",
            &format!(
                "customer={customer}&amount={cents}&currency={currency}&description={description}{extra}"
            ),
        )
        .await;
    ok(r, "invoice item").await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The invoice an invoice item is on (`null` while pending).
async fn invoice_of(emu: &Emu, key: &str, item: &str) -> Value {
    ok(
        emu.get(key, &format!("/v1/invoiceitems/{item}")).await,
        "item",
    )
    .await["invoice"]
        .clone()
}

/// Pending invoice items go first, newest first, on every invoice a subscription makes: its first
/// invoice, its preview, each cycle's and a cancellation's last. Credits still pay only the
/// metered line; an item in another currency stays pending.
#[tokio::test]
async fn pending_invoice_items_go_first_on_each_subscription_invoice() {
    let emu = Emu::start().await;
    let key = emu.tenant("usage_pending_items").await;
    let clock = test_clock(&emu, &key).await;
    let customer = emu
        .customer(&key, &format!("test_clock={clock}&name=Ada"))
        .await;
    emu.grant(&key, &customer, 1_000, "").await;
    let calls = emu.metered_price(&key, "api_calls").await;
    let seat = ok(
        emu.post(
            &key,
            "/v1/prices",
            "currency=usd&unit_amount=900&product_data[name]=Seat&recurring[interval]=month",
        )
        .await,
        "licensed price",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Before the subscription: a setup fee, and a charge in another currency.
    let setup = invoice_item(&emu, &key, &customer, 300, "usd", "Setup", "").await;
    let euros = invoice_item(&emu, &key, &customer, 100, "eur", "Euros", "").await;
    let sub = ok(
        emu.post(
            &key,
            "/v1/subscriptions",
            &format!(
                "customer={customer}&items[0][price]={seat}&items[1][price]={calls}&expand[]=latest_invoice"
            ),
        )
        .await,
        "subscription",
    )
    .await;
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let first = &sub["latest_invoice"];
    insta::assert_json_snapshot!("usage_first_invoice_with_an_item", first);
    assert_eq!(first["billing_reason"], "subscription_create");
    assert_eq!(
        kinds_of(first),
        [("item Setup".to_string(), 300, 0), (seat.clone(), 900, 0)]
    );
    assert_eq!(first["subtotal"], 1_200);
    assert_eq!(first["amount_paid"], 1_200);
    assert_eq!(first["status"], "paid");
    assert_eq!(first["total_pretax_credit_amounts"], json!([]));
    assert_eq!(invoice_of(&emu, &key, &setup).await, first["id"]);
    assert_eq!(invoice_of(&emu, &key, &euros).await, Value::Null);

    // Usage, then two more items: both go on the cycle invoice, newest first.
    let advance = |to: i64| emu.advance_clock(&key, &clock, to);
    advance(T0 + DAY).await;
    ok(
        emu.post(
            &key,
            "/v1/billing/meter_events",
            &format!(
                "event_name=api_calls&payload[stripe_customer_id]={customer}&payload[value]=100"
            ),
        )
        .await,
        "usage",
    )
    .await;
    let fee = invoice_item(&emu, &key, &customer, 250, "usd", "Fee", "").await;
    let late = invoice_item(&emu, &key, &customer, 50, "usd", "Late", "").await;
    // Items first, newest first; then the subscription's items, newest first (`calls` was listed
    // last), and only the metered line takes credit.
    let expected = [
        ("item Late".to_string(), 50, 0),
        ("item Fee".to_string(), 250, 0),
        (calls.clone(), 500, 500),
        (seat.clone(), 900, 0),
    ];
    let preview = ok(
        emu.post(
            &key,
            "/v1/invoices/create_preview",
            &format!("subscription={sub_id}"),
        )
        .await,
        "preview",
    )
    .await;
    assert_eq!(kinds_of(&preview), expected);
    assert_eq!(preview["subtotal"], 1_700);
    assert_eq!(preview["total"], 1_200);
    assert_eq!(
        preview["lines"]["data"][0]["id"],
        format!("il_tmp_{}", late.trim_start_matches("ii_"))
    );
    // A preview takes nothing.
    assert_eq!(invoice_of(&emu, &key, &fee).await, Value::Null);

    advance(T1 + 2 * HOUR).await;
    let cycle = ok(
        emu.get(&key, &format!("/v1/invoices?subscription={sub_id}&limit=1"))
            .await,
        "invoices",
    )
    .await["data"][0]
        .clone();
    assert_eq!(cycle["billing_reason"], "subscription_cycle");
    assert_eq!(cycle["status"], "paid");
    assert_eq!(kinds_of(&cycle), expected);
    assert_eq!(cycle["subtotal"], 1_700);
    assert_eq!(cycle["total"], 1_200);
    assert_eq!(cycle["amount_paid"], 1_200);
    let item_line = &cycle["lines"]["data"][1];
    assert_eq!(
        item_line["parent"]["invoice_item_details"]["invoice_item"],
        fee.as_str()
    );
    assert_eq!(item_line["period"], json!({"start": T0 + DAY, "end": T1}));
    for item in [&fee, &late] {
        assert_eq!(invoice_of(&emu, &key, item).await, cycle["id"]);
    }
    assert_eq!(invoice_of(&emu, &key, &euros).await, Value::Null);

    // Cancelled at once with a final invoice: a last item goes on it.
    let last = invoice_item(&emu, &key, &customer, 75, "usd", "Last", "").await;
    let canceled = ok(
        emu.delete(
            &key,
            &format!("/v1/subscriptions/{sub_id}?invoice_now=true&expand[]=latest_invoice"),
        )
        .await,
        "cancel",
    )
    .await;
    let final_invoice = &canceled["latest_invoice"];
    assert_eq!(final_invoice["billing_reason"], "subscription_update");
    assert_eq!(
        kinds_of(final_invoice),
        [("item Last".to_string(), 75, 0), (calls.clone(), 0, 0)]
    );
    assert_eq!(invoice_of(&emu, &key, &last).await, final_invoice["id"]);
    assert_eq!(invoice_of(&emu, &key, &euros).await, Value::Null);
    let checked = emu
        .running
        .app
        .store
        .with_tenant(&key, |t| t.check_indexes());
    assert_eq!(checked, Ok(()));
}

/// An advance across two boundaries: an item goes on the first invoice made after it, and only
/// there; one made while a cycle's draft waits its grace period goes on the next cycle's.
#[tokio::test]
async fn an_item_goes_on_the_first_invoice_made_after_it() {
    let emu = Emu::start().await;
    let w = Loop::new(&emu, "usage_item_first_after", 1_000, "").await;
    w.advance(&emu, T0 + DAY).await;
    w.usage(&emu, 100, None).await;
    let early = invoice_item(&emu, &w.key, &w.customer, 300, "usd", "Early", "").await;
    // The first boundary's draft is made; an item made now waits for the next invoice.
    w.advance(&emu, T1 + 60).await;
    let waiting = invoice_item(&emu, &w.key, &w.customer, 40, "usd", "Waiting", "").await;
    w.advance(&emu, T2 + 2 * HOUR).await;
    let invoices = w.invoices(&emu).await;
    let cycles: Vec<&Value> = invoices
        .iter()
        .filter(|i| i["billing_reason"] == "subscription_cycle")
        .collect();
    assert_eq!(cycles.len(), 2, "{invoices:#?}");
    assert_eq!(cycles[0]["created"], T1);
    assert_eq!(
        kinds_of(cycles[0]),
        [
            ("item Early".to_string(), 300, 0),
            (w.price.clone(), 500, 500)
        ]
    );
    assert_eq!(cycles[0]["total"], 300);
    assert_eq!(cycles[1]["created"], T2);
    assert_eq!(
        kinds_of(cycles[1]),
        [("item Waiting".to_string(), 40, 0), (w.price.clone(), 0, 0)]
    );
    assert_eq!(invoice_of(&emu, &w.key, &early).await, cycles[0]["id"]);
    assert_eq!(invoice_of(&emu, &w.key, &waiting).await, cycles[1]["id"]);
}

/// `subscription` ties an item to one subscription of the customer: a one-off invoice leaves it,
/// and that subscription's next invoice takes it. Each wrong subscription is refused.
#[tokio::test]
async fn an_item_made_for_a_subscription_waits_for_that_subscriptions_invoice() {
    let emu = Emu::start().await;
    let w = Loop::new(&emu, "usage_item_subscription", 0, "").await;
    let sub_id = w.subscription["id"].as_str().unwrap().to_string();
    let tied = ok(
        emu.post(
            &w.key,
            "/v1/invoiceitems",
            &format!(
                "customer={}&amount=120&currency=usd&description=Tied&subscription={sub_id}",
                w.customer
            ),
        )
        .await,
        "tied item",
    )
    .await;
    insta::assert_json_snapshot!("usage_item_for_a_subscription", tied);
    assert_eq!(
        tied["parent"],
        json!({"subscription_details": {"subscription": sub_id}, "type": "subscription_details"})
    );
    let tied_id = tied["id"].as_str().unwrap().to_string();
    let loose = invoice_item(&emu, &w.key, &w.customer, 80, "usd", "Loose", "").await;

    // A one-off invoice takes only the item that waits for no subscription.
    let one_off = ok(
        emu.post(
            &w.key,
            "/v1/invoices",
            &format!(
                "customer={}&pending_invoice_items_behavior=include",
                w.customer
            ),
        )
        .await,
        "one-off",
    )
    .await;
    assert_eq!(kinds_of(&one_off), [("item Loose".to_string(), 80, 0)]);
    assert_eq!(invoice_of(&emu, &w.key, &loose).await, one_off["id"]);
    assert_eq!(invoice_of(&emu, &w.key, &tied_id).await, Value::Null);

    w.advance(&emu, T1 + 60).await;
    let invoices = w.invoices(&emu).await;
    let cycle = &invoices[1];
    assert_eq!(
        kinds_of(cycle),
        [("item Tied".to_string(), 120, 0), (w.price.clone(), 0, 0)]
    );
    assert_eq!(
        cycle["lines"]["data"][0]["parent"]["invoice_item_details"]["subscription"],
        sub_id.as_str()
    );
    assert_eq!(invoice_of(&emu, &w.key, &tied_id).await, cycle["id"]);

    // Refusals: no such subscription, another customer's, an ended one, another currency.
    let other = emu
        .customer(&w.key, &format!("test_clock={}&name=Bo", w.clock))
        .await;
    let ended = ok(
        emu.post(
            &w.key,
            "/v1/subscriptions",
            &format!("customer={other}&items[0][price]={}", w.price),
        )
        .await,
        "other subscription",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        emu.delete(&w.key, &format!("/v1/subscriptions/{ended}"))
            .await,
        "cancel",
    )
    .await;
    let eur = ok(
        emu.post(
            &w.key,
            "/v1/prices",
            "currency=eur&unit_amount=100&product_data[name]=Pack",
        )
        .await,
        "eur price",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let customer = &w.customer;
    let mut errors = serde_json::Map::new();
    for (name, form) in [
        (
            "no_such_subscription",
            format!("customer={customer}&amount=1&currency=usd&subscription=sub_nope"),
        ),
        (
            "another_customers_subscription",
            format!("customer={other}&amount=1&currency=usd&subscription={sub_id}"),
        ),
        (
            "ended_subscription",
            format!("customer={other}&amount=1&currency=usd&subscription={ended}"),
        ),
        (
            "currency_of_another",
            format!("customer={customer}&amount=1&currency=eur&subscription={sub_id}"),
        ),
        (
            "price_in_another_currency",
            format!("customer={customer}&pricing[price]={eur}&subscription={sub_id}"),
        ),
    ] {
        let r = emu.post(&w.key, "/v1/invoiceitems", &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        errors.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("usage_item_subscription_errors", errors);
    let checked = emu
        .running
        .app
        .store
        .with_tenant(&w.key, |t| t.check_indexes());
    assert_eq!(checked, Ok(()));
}
