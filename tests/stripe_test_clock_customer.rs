//! `POST /v1/test_helpers/test_clocks` with `customer`: an existing customer moves onto the new
//! clock with its grants and whatever they still have due, over real sockets.

use crate::support;

use serde_json::{json, Value};
use support::{Emu, Resp, T0};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// Creates a clock at `frozen_time` (plus `extra` form fields) and returns the raw answer.
async fn clock_with(emu: &Emu, key: &str, frozen_time: i64, extra: &str) -> Resp {
    let mut form = format!("frozen_time={frozen_time}");
    if !extra.is_empty() {
        form.push('&');
        form.push_str(extra);
    }
    emu.post(key, "/v1/test_helpers/test_clocks", &form).await
}

async fn advance(emu: &Emu, key: &str, clock: &str, to: i64) {
    let r = emu
        .post(
            key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={to}"),
        )
        .await;
    assert_eq!(r.status, 200, "advance: {}", r.text);
}

/// `(available, ledger)` in usd over every grant of the customer.
async fn usd(emu: &Emu, key: &str, customer: &str) -> (i64, i64) {
    let r = emu
        .get(
            key,
            &format!("/v1/billing/credit_balance_summary?customer={customer}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
        )
        .await;
    assert_eq!(r.status, 200, "summary: {}", r.text);
    match r.body["balances"].as_array().unwrap().first() {
        Some(b) => (
            b["available_balance"]["monetary"]["value"]
                .as_i64()
                .unwrap(),
            b["ledger_balance"]["monetary"]["value"].as_i64().unwrap(),
        ),
        None => (0, 0),
    }
}

/// Every transaction of a customer, oldest first, as "type grant amount day(effective) clock".
async fn ledger(emu: &Emu, key: &str, customer: &str, names: &[(&str, &str)]) -> Vec<String> {
    let r = emu
        .get(
            key,
            &format!("/v1/billing/credit_balance_transactions?customer={customer}&limit=100"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["has_more"], false);
    let name = |id: &str| {
        names
            .iter()
            .find(|(i, _)| *i == id)
            .map_or("?", |(_, n)| *n)
            .to_string()
    };
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|t| {
            let side = if t["type"] == "credit" {
                "credit"
            } else {
                "debit"
            };
            let body = &t[side];
            let hours = (t["effective_at"].as_i64().unwrap() - T0) / HOUR;
            format!(
                "{} {} {} at {}h{}",
                body["type"].as_str().unwrap(),
                name(t["credit_grant"].as_str().unwrap()),
                body["amount"]["monetary"]["value"],
                hours,
                if t["test_clock"].is_null() {
                    ""
                } else {
                    " (on the clock)"
                }
            )
        })
        .collect()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_customer_its_grants_and_their_schedule_move_onto_the_clock() {
    let emu = Emu::start().await;
    let key = emu.tenant("attach_moves").await;
    let cus = emu.customer(&key, "email=ada@example.com").await;
    let other = emu.customer(&key, "").await;
    // Effective now; effective in 10 days, gone in 20; gone in 5 days.
    let now = emu.grant(&key, &cus, 1000, "").await;
    let later = emu
        .grant(
            &key,
            &cus,
            500,
            &format!(
                "effective_at={}&expires_at={}",
                T0 + 10 * DAY,
                T0 + 20 * DAY
            ),
        )
        .await;
    let short = emu
        .grant(&key, &cus, 300, &format!("expires_at={}", T0 + 5 * DAY))
        .await;
    let names = [
        (now.as_str(), "now"),
        (later.as_str(), "later"),
        (short.as_str(), "short"),
    ];
    let before = emu
        .post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=200"),
        )
        .await;
    assert_eq!(before.status, 200, "{}", before.text);
    assert_eq!(usd(&emu, &key, &cus).await, (1100, 1100));

    // An hour later on the tenant clock, a clock two hours after T0 takes the customer.
    emu.freeze(&key, T0 + HOUR).await;
    let r = clock_with(
        &emu,
        &key,
        T0 + 2 * HOUR,
        &format!("customer={cus}&name=Attached"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    insta::assert_json_snapshot!("attached_clock", r.body);
    let clock = r.id();

    // The customer is on it: retrieved with it, listed only under it.
    let c = emu.get(&key, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c.body["test_clock"], clock.as_str());
    assert_eq!(
        ids(&emu.get(&key, "/v1/customers").await.body),
        vec![other.clone()]
    );
    assert_eq!(
        ids(&emu
            .get(&key, &format!("/v1/customers?test_clock={clock}"))
            .await
            .body),
        vec![cus.clone()]
    );
    // Its grants live on the clock now; the invoice made before keeps the clock it was made with.
    for g in [&now, &later, &short] {
        let r = emu
            .get(&key, &format!("/v1/billing/credit_grants/{g}"))
            .await;
        assert_eq!(r.body["test_clock"], clock.as_str(), "{g}");
    }
    let inv = emu
        .get(&key, &format!("/v1/invoices/{}", before.id()))
        .await;
    assert!(inv.body["test_clock"].is_null());

    // The tenant's time no longer moves the customer: nothing of its schedule runs.
    emu.freeze(&key, T0 + 60 * DAY).await;
    assert_eq!(usd(&emu, &key, &cus).await, (1100, 1100));

    // A grant made now is made at the clock's time; an invoice too, and it spends on the clock.
    let fresh = emu.grant(&key, &cus, 50, "").await;
    let g = emu
        .get(&key, &format!("/v1/billing/credit_grants/{fresh}"))
        .await;
    assert_eq!(g.body["created"], T0 + 2 * HOUR);
    assert_eq!(g.body["test_clock"], clock.as_str());
    let after = emu
        .post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=50"),
        )
        .await;
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(after.body["created"], T0 + 2 * HOUR);
    assert_eq!(after.body["test_clock"], clock.as_str());
    assert_eq!(usd(&emu, &key, &cus).await, (1100, 1100));

    // Advancing the clock runs what the grants had due, each at its own instant.
    advance(&emu, &key, &clock, T0 + 30 * DAY).await;
    assert_eq!(usd(&emu, &key, &cus).await, (1050, 1050));
    let mut names = names.to_vec();
    names.push((fresh.as_str(), "fresh"));
    insta::assert_json_snapshot!("attached_ledger", ledger(&emu, &key, &cus, &names).await);

    // Deleting the clock deletes the customer with it, as for a customer created on it.
    let d = emu
        .delete(&key, &format!("/v1/test_helpers/test_clocks/{clock}"))
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    let c = emu.get(&key, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c.body["deleted"], true);
}

#[tokio::test]
async fn a_clock_ahead_of_the_tenant_posts_what_falls_due_on_the_way() {
    let emu = Emu::start().await;
    let key = emu.tenant("attach_ahead").await;
    let cus = emu.customer(&key, "").await;
    let short = emu
        .grant(&key, &cus, 300, &format!("expires_at={}", T0 + 3 * DAY))
        .await;
    let pending = emu
        .grant(&key, &cus, 200, &format!("effective_at={}", T0 + 2 * DAY))
        .await;
    let r = clock_with(&emu, &key, T0 + 10 * DAY, &format!("customer={cus}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["frozen_time"], T0 + 10 * DAY);
    assert_eq!(r.body["created"], T0);
    assert_eq!(usd(&emu, &key, &cus).await, (200, 200));
    let names = [(short.as_str(), "short"), (pending.as_str(), "pending")];
    assert_eq!(
        ledger(&emu, &key, &cus, &names).await,
        vec![
            "credits_granted short 300 at 0h",
            "credits_granted pending 200 at 48h (on the clock)",
            "credits_expired short 300 at 72h (on the clock)",
        ]
    );
}

#[tokio::test]
async fn a_customer_without_credit_history_may_go_back_in_time() {
    let emu = Emu::start().await;
    let key = emu.tenant("attach_past").await;
    let cus = emu.customer(&key, "").await;
    let r = clock_with(&emu, &key, T0 - 365 * DAY, &format!("customer={cus}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["frozen_time"], T0 - 365 * DAY);
    let g = emu.grant(&key, &cus, 100, "").await;
    let g = emu
        .get(&key, &format!("/v1/billing/credit_grants/{g}"))
        .await;
    assert_eq!(g.body["created"], T0 - 365 * DAY);
    assert_eq!(g.body["effective_at"], T0 - 365 * DAY);

    // With history, the clock may start in the very second of the latest activity, not before.
    let cus2 = emu.customer(&key, "").await;
    emu.grant(&key, &cus2, 100, "").await;
    let early = clock_with(&emu, &key, T0 - 1, &format!("customer={cus2}")).await;
    assert_eq!(early.status, 400, "{}", early.text);
    assert_eq!(early.body["error"]["param"], "frozen_time");
    let same = clock_with(&emu, &key, T0, &format!("customer={cus2}")).await;
    assert_eq!(same.status, 200, "{}", same.text);
    assert_eq!(usd(&emu, &key, &cus2).await, (100, 100));
}

#[tokio::test]
async fn refusals_change_nothing() {
    let emu = Emu::start().await;
    let key = emu.tenant("attach_errors").await;
    let existing = clock_with(&emu, &key, T0, "").await.id();
    let on_clock = emu.customer(&key, &format!("test_clock={existing}")).await;
    let gone = emu.customer(&key, "").await;
    assert_eq!(
        emu.delete(&key, &format!("/v1/customers/{gone}"))
            .await
            .status,
        200
    );
    // A customer with a (native) subscription.
    let native = support::native::customer(&emu, &key, "ext-sub").await;
    let plan = support::native::plan(&emu, &key, "Pro").await;
    support::native::subscription(&emu, &key, &native, &plan, None).await;
    let subscribed = support::native::stripe_customer(&native);
    // A customer whose history reaches an hour past T0.
    let busy = emu.customer(&key, "").await;
    emu.freeze(&key, T0 + HOUR).await;
    emu.grant(&key, &busy, 100, "").await;
    let long = "x".repeat(5001);

    let cases = [
        (
            "unknown_customer",
            format!("frozen_time={T0}&customer=cus_nope"),
        ),
        (
            "other_prefix",
            format!("frozen_time={T0}&customer={existing}"),
        ),
        (
            "deleted_customer",
            format!("frozen_time={T0}&customer={gone}"),
        ),
        (
            "already_on_a_clock",
            format!("frozen_time={T0}&customer={on_clock}"),
        ),
        (
            "has_subscriptions",
            format!("frozen_time={T0}&customer={subscribed}"),
        ),
        (
            "before_history",
            format!("frozen_time={}&customer={busy}", T0 + HOUR - 1),
        ),
        (
            "customer_as_hash",
            format!("frozen_time={T0}&customer[id]=x"),
        ),
        (
            "customer_too_long",
            format!("frozen_time={T0}&customer={long}"),
        ),
        ("no_frozen_time", format!("customer={busy}")),
    ];
    let mut out = serde_json::Map::new();
    for (name, form) in cases {
        let r = emu.post(&key, "/v1/test_helpers/test_clocks", &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("attach_errors", out);

    // No clock was made, and every customer is where it was.
    let clocks = emu.get(&key, "/v1/test_helpers/test_clocks").await;
    assert_eq!(ids(&clocks.body), vec![existing.clone()]);
    for (c, clock) in [
        (&on_clock, json!(existing)),
        (&subscribed, Value::Null),
        (&busy, Value::Null),
    ] {
        let r = emu.get(&key, &format!("/v1/customers/{c}")).await;
        assert_eq!(r.body["test_clock"], clock, "{c}");
    }

    // `customer=` (empty) is no customer: a plain clock.
    let plain = clock_with(&emu, &key, T0, "customer=").await;
    assert_eq!(plain.status, 200, "{}", plain.text);
}
