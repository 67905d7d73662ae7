//! The credit ledger over real sockets: balance summary, balance transactions, invoices that spend
//! credits, voids, expiries, and time (tenant clock and test clocks).

use crate::support;

use serde_json::{json, Value};
use support::{Emu, Resp, T0};

// ---- helpers ----

/// `POST /_emulator/invoices` in usd with `lines` of (amount, price).
async fn invoice(emu: &Emu, key: &str, customer: &str, lines: &[(i64, Option<&str>)]) -> Value {
    let r = invoice_in(emu, key, customer, "usd", lines).await;
    assert_eq!(r.status, 200, "create invoice: {}", r.text);
    r.body
}

async fn invoice_in(
    emu: &Emu,
    key: &str,
    customer: &str,
    currency: &str,
    lines: &[(i64, Option<&str>)],
) -> Resp {
    let mut form = format!("customer={customer}&currency={currency}");
    for (i, (amount, price)) in lines.iter().enumerate() {
        form.push_str(&format!("&lines[{i}][amount]={amount}"));
        if let Some(p) = price {
            form.push_str(&format!("&lines[{i}][price]={p}"));
        }
    }
    emu.post(key, "/_emulator/invoices", &form).await
}

/// `(available, ledger)` in usd over every grant of the customer (`price_type=metered` covers all).
async fn usd(emu: &Emu, key: &str, customer: &str) -> (i64, i64) {
    let r = summary(
        emu,
        key,
        customer,
        "filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered",
    )
    .await;
    assert_eq!(r.status, 200, "summary: {}", r.text);
    let b = r.body["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["ledger_balance"]["monetary"]["currency"] == "usd");
    match b {
        Some(b) => (
            b["available_balance"]["monetary"]["value"]
                .as_i64()
                .unwrap(),
            b["ledger_balance"]["monetary"]["value"].as_i64().unwrap(),
        ),
        None => (0, 0),
    }
}

async fn summary(emu: &Emu, key: &str, customer: &str, filter: &str) -> Resp {
    emu.get(
        key,
        &format!("/v1/billing/credit_balance_summary?customer={customer}&{filter}"),
    )
    .await
}

/// Every transaction of a customer (newest first), following `has_more`.
async fn all_txns(emu: &Emu, key: &str, query: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = emu
            .get(
                key,
                &format!("/v1/billing/credit_balance_transactions?{query}&limit=3{cursor}"),
            )
            .await;
        assert_eq!(r.status, 200, "list transactions: {}", r.text);
        let data = r.body["data"].as_array().unwrap().clone();
        if let Some(last) = data.last() {
            cursor = format!("&starting_after={}", last["id"].as_str().unwrap());
        }
        out.extend(data);
        if r.body["has_more"] != true {
            return out;
        }
    }
}

/// One transaction in one line, oldest-first reading: `kind grant amount @created/effective_at`,
/// times relative to T0, grants by the names given.
fn brief(t: &Value, names: &[(&str, &str)]) -> String {
    let grant = t["credit_grant"].as_str().unwrap();
    let name = names
        .iter()
        .find(|(id, _)| *id == grant)
        .map(|(_, n)| *n)
        .unwrap_or("?");
    let (sign, side) = if t["type"] == "credit" {
        ("+", &t["credit"])
    } else {
        ("-", &t["debit"])
    };
    format!(
        "{} {} {}{} @{}/{}",
        side["type"].as_str().unwrap(),
        name,
        sign,
        side["amount"]["monetary"]["value"],
        t["created"].as_i64().unwrap() - T0,
        t["effective_at"].as_i64().unwrap() - T0,
    )
}

/// A customer's ledger, oldest first, in brief.
async fn ledger(emu: &Emu, key: &str, customer: &str, names: &[(&str, &str)]) -> Vec<String> {
    let mut v: Vec<String> = all_txns(emu, key, &format!("customer={customer}"))
        .await
        .iter()
        .map(|t| brief(t, names))
        .collect();
    v.reverse();
    v
}

/// The grant each pretax credit of an invoice came from, with its amount, in invoice order.
async fn credits_of(emu: &Emu, key: &str, inv: &Value, names: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for c in inv["total_pretax_credit_amounts"].as_array().unwrap() {
        let id = c["credit_balance_transaction"].as_str().unwrap();
        let t = emu
            .get(
                key,
                &format!("/v1/billing/credit_balance_transactions/{id}"),
            )
            .await;
        assert_eq!(t.status, 200, "{}", t.text);
        let grant = t.body["credit_grant"].as_str().unwrap();
        let name = names.iter().find(|(g, _)| *g == grant).map(|(_, n)| *n);
        out.push(format!("{} {}", name.unwrap_or("?"), c["amount"]));
    }
    out
}

fn sum_of(txns: &[Value], currency: &str) -> i64 {
    txns.iter()
        .filter_map(|t| {
            let (sign, side) = if t["type"] == "credit" {
                (1, &t["credit"])
            } else {
                (-1, &t["debit"])
            };
            (side["amount"]["monetary"]["currency"] == currency)
                .then(|| sign * side["amount"]["monetary"]["value"].as_i64().unwrap())
        })
        .sum()
}

// ---- entry types and shapes ----

#[tokio::test]
async fn every_entry_type_with_balances_after_each_step() {
    let emu = Emu::start().await;
    let key = emu.tenant("ledger_types").await;
    let cus = emu.customer(&key, "email=ada@example.com").await;
    let a = emu.grant(&key, &cus, 1000, "name=A").await;
    assert_eq!(usd(&emu, &key, &cus).await, (1000, 1000));

    let inv = invoice(&emu, &key, &cus, &[(300, None)]).await;
    assert_eq!(inv["amount_due"], 0);
    assert_eq!(usd(&emu, &key, &cus).await, (700, 700));

    let inv_id = inv["id"].as_str().unwrap();
    let r = emu
        .post(&key, &format!("/v1/invoices/{inv_id}/void"), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(usd(&emu, &key, &cus).await, (1000, 1000));

    emu.freeze(&key, T0 + 10).await;
    let r = emu
        .post(&key, &format!("/v1/billing/credit_grants/{a}/expire"), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));

    let b = emu.grant(&key, &cus, 500, "name=B").await;
    assert_eq!(usd(&emu, &key, &cus).await, (500, 500));
    emu.freeze(&key, T0 + 20).await;
    let r = emu
        .post(&key, &format!("/v1/billing/credit_grants/{b}/void"), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));

    let list = emu
        .get(
            &key,
            &format!("/v1/billing/credit_balance_transactions?customer={cus}&limit=100"),
        )
        .await;
    assert_eq!(list.status, 200);
    insta::assert_json_snapshot!("every_entry_type_list", list.body);
    assert_eq!(sum_of(list.body["data"].as_array().unwrap(), "usd"), 0);

    // Retrieve: the same object as in the list, and expandable.
    let applied = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["debit"]["type"] == "credits_applied")
        .unwrap()
        .clone();
    let id = applied["id"].as_str().unwrap();
    let one = emu
        .get(
            &key,
            &format!("/v1/billing/credit_balance_transactions/{id}"),
        )
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, applied);
    let expanded = emu
        .get(
            &key,
            &format!("/v1/billing/credit_balance_transactions/{id}?expand[]=credit_grant&expand[]=debit.credits_applied.invoice"),
        )
        .await;
    assert_eq!(expanded.status, 200, "{}", expanded.text);
    assert_eq!(
        expanded.body["credit_grant"]["object"],
        "billing.credit_grant"
    );
    assert_eq!(expanded.body["credit_grant"]["id"], a.as_str());
    assert_eq!(
        expanded.body["debit"]["credits_applied"]["invoice"]["object"],
        "invoice"
    );
    assert_eq!(
        expanded.body["debit"]["credits_applied"]["invoice"]["status"],
        "void"
    );
}

#[tokio::test]
async fn invoice_object_spends_credits_and_void_reinstates_them() {
    let emu = Emu::start().await;
    let key = emu.tenant("invoice_object").await;
    let cus = emu
        .customer(&key, "email=ada@example.com&name=Ada&phone=123")
        .await;
    emu.grant(&key, &cus, 500, "").await;
    let r = emu
        .post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=300&lines[0][price]=price_A&lines[0][description]=API+calls&lines[1][amount]=400"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    insta::assert_json_snapshot!("invoice_created", r.body);
    assert_eq!(r.body["amount_due"], 200);
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));

    let id = r.id();
    let got = emu.get(&key, &format!("/v1/invoices/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, r.body);

    emu.freeze(&key, T0 + 60).await;
    let void = emu.post(&key, &format!("/v1/invoices/{id}/void"), "").await;
    assert_eq!(void.status, 200, "{}", void.text);
    assert_eq!(void.body["status"], "void");
    assert_eq!(void.body["status_transitions"]["voided_at"], T0 + 60);
    // What the invoice applied stays on it; the credits are back on the grant.
    assert_eq!(
        void.body["total_pretax_credit_amounts"],
        r.body["total_pretax_credit_amounts"]
    );
    assert_eq!(usd(&emu, &key, &cus).await, (500, 500));

    let again = emu.post(&key, &format!("/v1/invoices/{id}/void"), "").await;
    insta::assert_json_snapshot!("invoice_void_twice", (again.status, again.body));
    assert_eq!(usd(&emu, &key, &cus).await, (500, 500));

    let expanded = emu
        .get(&key, &format!("/v1/invoices/{id}?expand[]=customer"))
        .await;
    assert_eq!(expanded.body["customer"]["email"], "ada@example.com");
}

#[tokio::test]
async fn invoice_lines_are_embedded_ten_at_a_time_and_paged() {
    let emu = Emu::start().await;
    let key = emu.tenant("invoice_lines").await;
    let cus = emu.customer(&key, "").await;
    emu.grant(&key, &cus, 1150, "").await;
    let lines: Vec<(i64, Option<&str>)> = (1..=12).map(|i| (i * 100, None)).collect();
    let inv = invoice(&emu, &key, &cus, &lines).await;
    assert_eq!(inv["subtotal"], 7800);
    assert_eq!(inv["total"], 7800 - 1150);
    let embedded = inv["lines"]["data"].as_array().unwrap();
    assert_eq!(embedded.len(), 10);
    assert_eq!(inv["lines"]["has_more"], true);
    // Lines are paid in order: 100+200+300+400 = 1000, then 150 of the fifth.
    let credited: Vec<i64> = embedded
        .iter()
        .map(|l| {
            l["pretax_credit_amounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["amount"].as_i64().unwrap())
                .sum()
        })
        .collect();
    assert_eq!(credited, vec![100, 200, 300, 400, 150, 0, 0, 0, 0, 0]);

    let url = inv["lines"]["url"].as_str().unwrap().to_string();
    let mut amounts = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = emu.get(&key, &format!("{url}?limit=5{cursor}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let data = r.body["data"].as_array().unwrap();
        amounts.extend(data.iter().map(|l| l["amount"].as_i64().unwrap()));
        cursor = format!(
            "&starting_after={}",
            data.last().unwrap()["id"].as_str().unwrap()
        );
        if r.body["has_more"] != true {
            break;
        }
    }
    assert_eq!(amounts, (1..=12).map(|i| i * 100).collect::<Vec<_>>());

    let seventh = embedded[6]["id"].as_str().unwrap();
    let before = emu
        .get(&key, &format!("{url}?limit=2&ending_before={seventh}"))
        .await;
    let got: Vec<i64> = before.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![500, 600]);
    assert_eq!(before.body["has_more"], true);
}

// ---- the balance summary ----

#[tokio::test]
async fn summary_filters_and_currencies() {
    let emu = Emu::start().await;
    let key = emu.tenant("summary_filters").await;
    let cus = emu.customer(&key, "").await;
    let other = emu.customer(&key, "").await;
    let pa = emu.metered_price(&key, "calls_a").await;
    let pb = emu.metered_price(&key, "calls_b").await;
    let pc = emu.metered_price(&key, "calls_c").await;
    let pd = emu.metered_price(&key, "calls_d").await;
    emu.grant(&key, &cus, 1000, "").await;
    let a = emu
        .grant(
            &key,
            &cus,
            200,
            &format!("applicability_config[scope][prices][0][id]={pa}"),
        )
        .await;
    emu.grant(
        &key,
        &cus,
        50,
        &format!("applicability_config[scope][prices][0][id]={pb}&applicability_config[scope][prices][1][id]={pc}"),
    )
    .await;
    let r = emu
        .post(
            &key,
            "/v1/billing/credit_grants",
            &format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=eur&amount[monetary][value]=300&applicability_config[scope][price_type]=metered"),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = emu
        .post(
            &key,
            "/v1/billing/credit_grants",
            &format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=jpy&amount[monetary][value]=7&applicability_config[scope][prices][0][id]={pa}"),
        )
        .await;
    assert_eq!(r.status, 200);
    emu.grant(&key, &other, 999, "").await;

    let mut out = serde_json::Map::new();
    for (name, filter) in [
        ("metered", "filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered".to_string()),
        ("price_A", format!("filter[type]=applicability_scope&filter[applicability_scope][prices][0][id]={pa}")),
        ("price_C_or_D", format!("filter[type]=applicability_scope&filter[applicability_scope][prices][0][id]={pd}&filter[applicability_scope][prices][1][id]={pc}")),
        ("grant_A", format!("filter[type]=credit_grant&filter[credit_grant]={a}")),
    ] {
        let r = summary(&emu, &key, &cus, &filter).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("summary_filters", out);

    let expanded = summary(
        &emu,
        &key,
        &cus,
        &format!("filter[type]=credit_grant&filter[credit_grant]={a}&expand[]=customer"),
    )
    .await;
    assert_eq!(expanded.body["customer"]["object"], "customer");

    // A customer with nothing has no balances at all.
    let empty = emu.customer(&key, "").await;
    let r = summary(
        &emu,
        &key,
        &empty,
        "filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered",
    )
    .await;
    assert_eq!(r.body["balances"], json!([]));
}

#[tokio::test]
async fn summary_errors() {
    let emu = Emu::start().await;
    let key = emu.tenant("summary_errors").await;
    let cus = emu.customer(&key, "").await;
    let other = emu.customer(&key, "").await;
    let theirs = emu.grant(&key, &other, 100, "").await;
    let base = "/v1/billing/credit_balance_summary";
    let cases = [
        ("no_customer", format!("{base}?filter[type]=credit_grant&filter[credit_grant]={theirs}")),
        ("unknown_customer", format!("{base}?customer=cus_nope&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered")),
        ("no_filter", format!("{base}?customer={cus}")),
        ("no_filter_type", format!("{base}?customer={cus}&filter[credit_grant]={theirs}")),
        ("bad_filter_type", format!("{base}?customer={cus}&filter[type]=everything")),
        ("grant_filter_without_grant", format!("{base}?customer={cus}&filter[type]=credit_grant")),
        ("unknown_grant", format!("{base}?customer={cus}&filter[type]=credit_grant&filter[credit_grant]=credgr_test_nope")),
        ("grant_of_another_customer", format!("{base}?customer={cus}&filter[type]=credit_grant&filter[credit_grant]={theirs}")),
        ("scope_filter_without_scope", format!("{base}?customer={cus}&filter[type]=applicability_scope")),
        ("scope_with_both", format!("{base}?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered&filter[applicability_scope][prices][0][id]=price_A")),
        ("scope_with_neither", format!("{base}?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][prices]=")),
        ("bad_price_type", format!("{base}?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=licensed")),
        ("unknown_filter_field", format!("{base}?customer={cus}&filter[type]=applicability_scope&filter[scope]=x")),
        ("grant_with_scope_type", format!("{base}?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered&filter[credit_grant]={theirs}")),
        ("bad_expand", format!("{base}?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered&expand[]=livemode")),
        ("customer_account", format!("{base}?customer_account=acct_1&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered")),
    ];
    let mut out = serde_json::Map::new();
    for (name, path) in cases {
        let r = emu.get(&key, &path).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("summary_errors", out);
}

// ---- spending ----

#[tokio::test]
async fn spending_order_breaks_every_tie_in_stripe_order() {
    let emu = Emu::start().await;
    let key = emu.tenant("spend_order").await;
    let cus = emu.customer(&key, "").await;
    // Created in an order that differs from the spending order, 100 each.
    let g7 = emu.grant(&key, &cus, 100, "").await; // created first, but the latest of the ties
    let g5 = emu
        .grant(&key, &cus, 100, &format!("effective_at={}", T0 - 100))
        .await;
    let g4 = emu.grant(&key, &cus, 100, "category=promotional").await;
    let g2 = emu
        .grant(&key, &cus, 100, &format!("expires_at={}", T0 + 1000))
        .await;
    let g3 = emu
        .grant(&key, &cus, 100, &format!("expires_at={}", T0 + 500))
        .await;
    let g1 = emu.grant(&key, &cus, 100, "priority=10").await;
    let g6 = emu
        .grant(&key, &cus, 100, &format!("effective_at={T0}"))
        .await;
    let g0 = emu
        .grant(&key, &cus, 100, "priority=60&category=promotional")
        .await;
    let names = [
        (g0.as_str(), "g0 priority 60"),
        (g1.as_str(), "g1 priority 10"),
        (g2.as_str(), "g2 expires later"),
        (g3.as_str(), "g3 expires sooner"),
        (g4.as_str(), "g4 promotional"),
        (g5.as_str(), "g5 effective earlier"),
        (g6.as_str(), "g6 effective T0, created after g7"),
        (g7.as_str(), "g7 effective T0, created first"),
    ];
    let inv = invoice(&emu, &key, &cus, &[(650, None), (200, None)]).await;
    let order = credits_of(&emu, &key, &inv, &names).await;
    insta::assert_json_snapshot!("spend_order", order);
    assert_eq!(inv["amount_due"], 50);
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));
}

#[tokio::test]
async fn price_scoped_grants_pay_only_their_lines() {
    let emu = Emu::start().await;
    let key = emu.tenant("price_scoped").await;
    let cus = emu.customer(&key, "").await;
    let price_a = emu.metered_price(&key, "calls_a").await;
    let metered = emu.grant(&key, &cus, 100, "priority=90").await;
    let a = emu
        .grant(
            &key,
            &cus,
            100,
            &format!("applicability_config[scope][prices][0][id]={price_a}"),
        )
        .await;
    let names = [(metered.as_str(), "metered"), (a.as_str(), "price_A")];
    let inv = invoice(
        &emu,
        &key,
        &cus,
        &[
            (60, Some("price_B")),
            (80, Some(price_a.as_str())),
            (80, None),
        ],
    )
    .await;
    let order = credits_of(&emu, &key, &inv, &names).await;
    // price_B: only the metered grant; price_A: its own grant first (priority 50 < 90); the
    // unpriced line: what the metered grant has left.
    assert_eq!(order, vec!["metered 60", "price_A 80", "metered 40"]);
    assert_eq!(inv["amount_due"], 40);
    let line = &inv["lines"]["data"][1];
    assert_eq!(line["pricing"]["price_details"]["price"], price_a.as_str());
}

#[tokio::test]
async fn partially_and_fully_spent_grants() {
    let emu = Emu::start().await;
    let key = emu.tenant("spent").await;
    let cus = emu.customer(&key, "").await;
    let g = emu.grant(&key, &cus, 1000, "").await;
    let names = [(g.as_str(), "g")];

    let first = invoice(&emu, &key, &cus, &[(400, None)]).await;
    assert_eq!(
        (first["total"].clone(), first["amount_due"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(usd(&emu, &key, &cus).await, (600, 600));

    let second = invoice(&emu, &key, &cus, &[(800, None)]).await;
    assert_eq!(second["amount_due"], 200);
    assert_eq!(second["amount_remaining"], 200);
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));

    let third = invoice(&emu, &key, &cus, &[(50, None)]).await;
    assert_eq!(third["amount_due"], 50);
    assert_eq!(third["total_pretax_credit_amounts"], json!([]));

    // Another currency never pays a usd grant's lines, nor the other way round.
    let eur = invoice_in(&emu, &key, &cus, "eur", &[(10, None)]).await;
    assert_eq!(eur.body["amount_due"], 10);

    insta::assert_json_snapshot!("spent_ledger", ledger(&emu, &key, &cus, &names).await);
}

#[tokio::test]
async fn void_and_expire_before_and_after_spending() {
    let emu = Emu::start().await;
    let key = emu.tenant("void_expire").await;
    let cus = emu.customer(&key, "").await;
    let voided_early = emu.grant(&key, &cus, 100, "priority=1").await;
    let expired_early = emu.grant(&key, &cus, 100, "priority=2").await;
    let spent = emu.grant(&key, &cus, 1000, "priority=3").await;
    let names = [
        (voided_early.as_str(), "voided_early"),
        (expired_early.as_str(), "expired_early"),
        (spent.as_str(), "spent"),
    ];
    assert_eq!(
        emu.post(
            &key,
            &format!("/v1/billing/credit_grants/{voided_early}/void"),
            ""
        )
        .await
        .status,
        200
    );
    assert_eq!(
        emu.post(
            &key,
            &format!("/v1/billing/credit_grants/{expired_early}/expire"),
            ""
        )
        .await
        .status,
        200
    );
    // Neither pays anything now.
    emu.freeze(&key, T0 + 10).await;
    let inv = invoice(&emu, &key, &cus, &[(300, None)]).await;
    assert_eq!(
        credits_of(&emu, &key, &inv, &names).await,
        vec!["spent 300"]
    );
    assert_eq!(usd(&emu, &key, &cus).await, (700, 700));

    // A grant an invoice has spent from cannot be voided, before or after that invoice is voided.
    let refused = emu
        .post(&key, &format!("/v1/billing/credit_grants/{spent}/void"), "")
        .await;
    insta::assert_json_snapshot!("void_applied_grant", (refused.status, &refused.body));
    assert_eq!(usd(&emu, &key, &cus).await, (700, 700));

    // Expire after spending writes off what is left.
    emu.freeze(&key, T0 + 20).await;
    let r = emu
        .post(
            &key,
            &format!("/v1/billing/credit_grants/{spent}/expire"),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));

    // Voiding the invoice afterwards reinstates the 300, which expire at once.
    emu.freeze(&key, T0 + 30).await;
    let id = inv["id"].as_str().unwrap();
    assert_eq!(
        emu.post(&key, &format!("/v1/invoices/{id}/void"), "")
            .await
            .status,
        200
    );
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));
    let again = emu
        .post(&key, &format!("/v1/billing/credit_grants/{spent}/void"), "")
        .await;
    assert_eq!((again.status, &again.body), (refused.status, &refused.body));

    insta::assert_json_snapshot!("void_expire_ledger", ledger(&emu, &key, &cus, &names).await);
}

// ---- time ----

#[tokio::test]
async fn future_effective_at_counts_only_once_effective() {
    let emu = Emu::start().await;
    let key = emu.tenant("future").await;
    let cus = emu.customer(&key, "").await;
    let g = emu
        .grant(&key, &cus, 500, &format!("effective_at={}", T0 + 3600))
        .await;
    let names = [(g.as_str(), "g")];
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));
    let r = summary(
        &emu,
        &key,
        &cus,
        "filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered",
    )
    .await;
    assert_eq!(
        r.body["balances"].as_array().unwrap().len(),
        1,
        "pending grants still name their currency"
    );
    assert!(ledger(&emu, &key, &cus, &names).await.is_empty());
    let early = invoice(&emu, &key, &cus, &[(100, None)]).await;
    assert_eq!(early["amount_due"], 100);

    emu.freeze(&key, T0 + 3599).await;
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));
    emu.freeze(&key, T0 + 7200).await;
    assert_eq!(usd(&emu, &key, &cus).await, (500, 500));
    let later = invoice(&emu, &key, &cus, &[(100, None)]).await;
    assert_eq!(later["amount_due"], 0);
    insta::assert_json_snapshot!("future_ledger", ledger(&emu, &key, &cus, &names).await);
}

#[tokio::test]
async fn expiry_exactly_at_the_boundary() {
    let emu = Emu::start().await;
    let key = emu.tenant("boundary").await;
    let cus = emu.customer(&key, "").await;
    let g = emu
        .grant(&key, &cus, 1000, &format!("expires_at={}", T0 + 100))
        .await;
    let names = [(g.as_str(), "g")];
    emu.freeze(&key, T0 + 99).await;
    assert_eq!(usd(&emu, &key, &cus).await, (1000, 1000));
    let before = invoice(&emu, &key, &cus, &[(100, None)]).await;
    assert_eq!(before["amount_due"], 0);

    // At expires_at itself the credit is gone: expiry is inclusive.
    emu.freeze(&key, T0 + 100).await;
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));
    let at = invoice(&emu, &key, &cus, &[(100, None)]).await;
    assert_eq!(at["amount_due"], 100);
    insta::assert_json_snapshot!("boundary_ledger", ledger(&emu, &key, &cus, &names).await);
}

#[tokio::test]
async fn expiry_moved_into_the_past_is_written_off_now() {
    let emu = Emu::start().await;
    let key = emu.tenant("past_expiry").await;
    let cus = emu.customer(&key, "").await;
    let g = emu.grant(&key, &cus, 400, "").await;
    let names = [(g.as_str(), "g")];
    emu.freeze(&key, T0 + 50).await;
    invoice(&emu, &key, &cus, &[(100, None)]).await;
    emu.freeze(&key, T0 + 100).await;
    let r = emu
        .post(
            &key,
            &format!("/v1/billing/credit_grants/{g}"),
            &format!("expires_at={}", T0 + 10),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(usd(&emu, &key, &cus).await, (0, 0));
    // Written at T0+100 (after the invoice's entry), effective at T0+10.
    assert_eq!(
        ledger(&emu, &key, &cus, &names).await,
        vec![
            "credits_granted g +400 @0/0",
            "credits_applied g -100 @50/50",
            "credits_expired g -300 @100/10",
        ]
    );
}

#[tokio::test]
async fn test_clock_advance_posts_every_due_entry_in_time_order() {
    let emu = Emu::start().await;
    let key = emu.tenant("clock_advance").await;
    const DAY: i64 = 86_400;
    let clock = emu.test_clock(&key, T0).await;
    let cus = emu.customer(&key, &format!("test_clock={clock}")).await;
    let g1 = emu
        .grant(
            &key,
            &cus,
            1000,
            &format!(
                "effective_at={}&expires_at={}",
                T0 + 10 * DAY,
                T0 + 40 * DAY
            ),
        )
        .await;
    let g2 = emu
        .grant(&key, &cus, 500, &format!("effective_at={}", T0 + 20 * DAY))
        .await;
    let g3 = emu
        .grant(&key, &cus, 300, &format!("expires_at={}", T0 + 15 * DAY))
        .await;
    let g4 = emu
        .grant(
            &key,
            &cus,
            200,
            &format!("effective_at={}&expires_at={}", T0 + 5 * DAY, T0 + 25 * DAY),
        )
        .await;
    let names = [
        (g1.as_str(), "g1"),
        (g2.as_str(), "g2"),
        (g3.as_str(), "g3"),
        (g4.as_str(), "g4"),
    ];
    let inv = invoice(&emu, &key, &cus, &[(100, None)]).await;
    assert_eq!(inv["test_clock"], clock.as_str());
    assert_eq!(usd(&emu, &key, &cus).await, (200, 200));

    // The tenant clock moving does not move the test clock's customers.
    emu.freeze(&key, T0 + 100 * DAY).await;
    assert_eq!(usd(&emu, &key, &cus).await, (200, 200));

    let adv = emu
        .post(
            &key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={}", T0 + 50 * DAY),
        )
        .await;
    assert_eq!(adv.status, 200, "{}", adv.text);
    assert_eq!(adv.body["status"], "ready");
    assert_eq!(adv.body["frozen_time"], T0 + 50 * DAY);
    assert_eq!(usd(&emu, &key, &cus).await, (500, 500));

    let txns = all_txns(&emu, &key, &format!("customer={cus}")).await;
    assert!(txns.iter().all(|t| t["test_clock"] == clock.as_str()));
    let in_days: Vec<String> = txns
        .iter()
        .rev()
        .map(|t| {
            let b = brief(t, &names);
            format!(
                "{} (day {})",
                b.split(" @").next().unwrap(),
                (t["effective_at"].as_i64().unwrap() - T0) / DAY
            )
        })
        .collect();
    insta::assert_json_snapshot!("clock_advance_ledger", in_days);
    // Posted in time order: created never decreases from oldest to newest.
    let created: Vec<i64> = txns
        .iter()
        .rev()
        .map(|t| t["created"].as_i64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");

    // Backwards or equal is refused; the clock stays where it is.
    let back = emu
        .post(
            &key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={}", T0 + 50 * DAY),
        )
        .await;
    assert_eq!(back.status, 400);
    assert_eq!(back.body["error"]["param"], "frozen_time");
}

// ---- transactions list ----

#[tokio::test]
async fn transactions_pagination_filters_and_expand() {
    let emu = Emu::start().await;
    let key = emu.tenant("txn_pages").await;
    let cus = emu.customer(&key, "").await;
    let a = emu.grant(&key, &cus, 1000, "priority=1").await;
    let b = emu.grant(&key, &cus, 1000, "priority=2").await;
    for _ in 0..5 {
        // 150 each: a pays 150 per invoice until it runs out, then b.
        invoice(&emu, &key, &cus, &[(150, None), (150, None)]).await;
    }
    let all = all_txns(&emu, &key, &format!("customer={cus}")).await;
    // 2 grants + 10 line payments, one of them split across a and b.
    assert_eq!(all.len(), 13);
    let ids: Vec<&str> = all.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids, sorted, "newest first");

    let page = emu
        .get(
            &key,
            &format!(
                "/v1/billing/credit_balance_transactions?customer={cus}&limit=4&ending_before={}",
                ids[6]
            ),
        )
        .await;
    let got: Vec<&str> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[2..6].to_vec());
    assert_eq!(page.body["has_more"], true);
    assert_eq!(page.body["url"], "/v1/billing/credit_balance_transactions");

    let only_b = all_txns(&emu, &key, &format!("customer={cus}&credit_grant={b}")).await;
    assert!(only_b.iter().all(|t| t["credit_grant"] == b.as_str()));
    let expected: Vec<&Value> = all
        .iter()
        .filter(|t| t["credit_grant"] == b.as_str())
        .collect();
    assert_eq!(only_b.iter().collect::<Vec<_>>(), expected);
    let sum_a: i64 = sum_of(
        &all_txns(&emu, &key, &format!("customer={cus}&credit_grant={a}")).await,
        "usd",
    );
    assert_eq!(sum_a, 0);
    assert_eq!(sum_of(&only_b, "usd"), 500);

    let expanded = emu
        .get(&key, &format!("/v1/billing/credit_balance_transactions?customer={cus}&limit=2&expand[]=data.credit_grant&expand[]=data.debit.credits_applied.invoice"))
        .await;
    assert_eq!(expanded.status, 200, "{}", expanded.text);
    for t in expanded.body["data"].as_array().unwrap() {
        assert_eq!(t["credit_grant"]["object"], "billing.credit_grant");
        assert_eq!(
            t["debit"]["credits_applied"]["invoice"]["object"],
            "invoice"
        );
    }

    let other = emu.customer(&key, "").await;
    let theirs = emu.grant(&key, &other, 10, "").await;
    let base = "/v1/billing/credit_balance_transactions";
    let cases = [
        ("no_customer", format!("{base}?credit_grant={a}")),
        ("unknown_customer", format!("{base}?customer=cus_nope")),
        (
            "unknown_grant",
            format!("{base}?customer={cus}&credit_grant=credgr_test_nope"),
        ),
        (
            "grant_of_another_customer",
            format!("{base}?customer={cus}&credit_grant={theirs}"),
        ),
        (
            "bad_cursor",
            format!("{base}?customer={cus}&starting_after=cbtxn_test_nope"),
        ),
        (
            "both_cursors",
            format!(
                "{base}?customer={cus}&starting_after={}&ending_before={}",
                ids[0], ids[1]
            ),
        ),
        ("bad_limit", format!("{base}?customer={cus}&limit=101")),
        (
            "bad_expand",
            format!("{base}?customer={cus}&expand[]=credit_grant"),
        ),
        ("unknown_param", format!("{base}?customer={cus}&type=debit")),
        ("retrieve_unknown", format!("{base}/cbtxn_test_nope")),
        ("retrieve_wrong_prefix", format!("{base}/{a}")),
    ];
    let mut out = serde_json::Map::new();
    for (name, path) in cases {
        let r = emu.get(&key, &path).await;
        out.insert(
            name.to_string(),
            json!({"status": r.status, "body": r.body}),
        );
    }
    insta::assert_json_snapshot!("transactions_errors", out);
}

// ---- the invoice helper's errors ----

#[tokio::test]
async fn invoice_helper_errors() {
    let emu = Emu::start().await;
    let key = emu.tenant("invoice_errors").await;
    let cus = emu.customer(&key, "").await;
    let gone = emu.customer(&key, "").await;
    assert_eq!(
        emu.delete(&key, &format!("/v1/customers/{gone}"))
            .await
            .status,
        200
    );
    let many: String = (0..251).map(|i| format!("&lines[{i}][amount]=1")).collect();
    let cases = [
        ("no_customer", "currency=usd&lines[0][amount]=1".to_string()),
        (
            "unknown_customer",
            "customer=cus_nope&currency=usd&lines[0][amount]=1".to_string(),
        ),
        (
            "deleted_customer",
            format!("customer={gone}&currency=usd&lines[0][amount]=1"),
        ),
        ("no_currency", format!("customer={cus}&lines[0][amount]=1")),
        (
            "bad_currency",
            format!("customer={cus}&currency=xyz&lines[0][amount]=1"),
        ),
        ("no_lines", format!("customer={cus}&currency=usd")),
        ("empty_lines", format!("customer={cus}&currency=usd&lines=")),
        (
            "line_without_amount",
            format!("customer={cus}&currency=usd&lines[0][price]=price_A"),
        ),
        (
            "negative_amount",
            format!("customer={cus}&currency=usd&lines[0][amount]=5&lines[1][amount]=-1"),
        ),
        (
            "huge_amount",
            format!("customer={cus}&currency=usd&lines[0][amount]=1000000000000"),
        ),
        (
            "decimal_amount",
            format!("customer={cus}&currency=usd&lines[0][amount]=1.5"),
        ),
        (
            "unknown_line_field",
            format!("customer={cus}&currency=usd&lines[0][amount]=1&lines[0][quantity]=2"),
        ),
        (
            "unknown_param",
            format!("customer={cus}&currency=usd&lines[0][amount]=1&auto_advance=true"),
        ),
        (
            "too_many_lines",
            format!("customer={cus}&currency=usd{many}"),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, form) in cases {
        let r = emu.post(&key, "/_emulator/invoices", &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    let unknown = emu.get(&key, "/v1/invoices/in_nope").await;
    out.insert(
        "retrieve_unknown".into(),
        json!({"status": unknown.status, "body": unknown.body}),
    );
    let unknown = emu.post(&key, "/v1/invoices/in_nope/void", "").await;
    out.insert(
        "void_unknown".into(),
        json!({"status": unknown.status, "body": unknown.body}),
    );
    let live = emu
        .post(
            "sk_live_abc",
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=1"),
        )
        .await;
    out.insert(
        "live_key".into(),
        json!({"status": live.status, "body": live.body}),
    );
    insta::assert_json_snapshot!("invoice_errors", out);

    // Nothing was created by any of them.
    let ok = invoice(&emu, &key, &cus, &[(0, None)]).await;
    assert_eq!(ok["amount_due"], 0);
    assert_eq!(ok["subtotal"], 0);
}

// ---- the tenant clock ----

#[tokio::test]
async fn tenant_clock_moves_forward_only_and_per_tenant() {
    let emu = Emu::start().await;
    let key = emu.tenant("tenant_clock").await;
    let other = emu.tenant("tenant_clock_other").await;
    let r = emu.get(&key, "/_emulator/clock").await;
    insta::assert_json_snapshot!("clock_frozen", r.body);

    emu.freeze(&key, T0 + 5).await;
    // Nothing created yet, so this tenant may still start anywhere, even earlier.
    emu.freeze(&key, T0 - 5).await;
    emu.customer(&key, "").await;
    let mut out = serde_json::Map::new();
    for (name, form) in [
        ("backwards", format!("frozen_time={}", T0 - 6)),
        ("both", format!("frozen_time={}&real_time=true", T0 + 10)),
        ("neither", String::new()),
        ("not_a_number", "frozen_time=soon".to_string()),
        ("out_of_range", "frozen_time=99999999999999".to_string()),
        ("unknown_param", "frozen_time=1&speed=2".to_string()),
    ] {
        let r = emu.post(&key, "/_emulator/clock", &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    // Frozen in the future, real time would be a step back.
    let future = support::T0 + 100 * 365 * 86_400;
    emu.freeze(&key, future).await;
    let r = emu.post(&key, "/_emulator/clock", "real_time=true").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["param"], "real_time");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("The tenant clock only moves forward"));
    insta::assert_json_snapshot!("clock_errors", out);

    // The other tenant never moved; and it can return to real time, which is after T0.
    let r = emu.get(&other, "/_emulator/clock").await;
    assert_eq!(r.body["now"], T0);
    let r = emu.post(&other, "/_emulator/clock", "real_time=true").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mode"], "real");
    assert!(r.body["now"].as_i64().unwrap() > T0);

    let r = emu.raw("GET", "/_emulator/clock", &[], "").await;
    assert_eq!(r.status, 401);
}
