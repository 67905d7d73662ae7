//! Many clients at once: 64 concurrent clients doing mixed creates, voids, expiries, spends
//! (`POST /_emulator/invoices`), invoice voids and lists on a shared tenant and on their own. No
//! acknowledged write is lost or duplicated, no balance goes below zero, every lot's balance is the
//! sum of its ledger entries, a void or an expiry happens at most once, a grant an invoice spent from
//! is never voided, and for every customer the Stripe balance summary, the sum of its balance
//! transactions and its native wallets' real-time balance agree. One `Idempotency-Key` retried
//! concurrently creates exactly one grant.

use crate::support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use credit_emulator::ids;
use credit_emulator::model::EntryKind;
use credit_emulator::model::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;
use support::robustness as rs;
use support::Emu;
use tokio::sync::Barrier;

const CLIENTS: usize = 64;
const OPS_PER_CLIENT: usize = 30;

/// One client: its own connection pool, as separate processes would have.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
}

impl Client {
    fn new(emu: &Emu) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: emu.running.url(),
        }
    }

    async fn call(
        &self,
        method: &str,
        key: &str,
        path: &str,
        form: &str,
        idem: Option<&str>,
    ) -> Answer {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if !form.is_empty() {
            rb = rb
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.to_string());
        }
        if let Some(k) = idem {
            rb = rb.header("idempotency-key", k);
        }
        let r = rb.send().await.expect("the emulator answers");
        let status = r.status().as_u16();
        let replayed = r.headers().get("idempotent-replayed").is_some();
        let body = r.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            body,
            replayed,
        }
    }

    /// A native `GET` (`x-api-key`).
    async fn call_native(&self, method: &str, key: &str, path: &str) -> Answer {
        let r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("x-api-key", key)
            .send()
            .await
            .expect("the emulator answers");
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            body,
            replayed: false,
        }
    }

    /// The ids of a tenant's customers (one page: the tenants that use this are small).
    async fn all_customers(&self, key: &str) -> Vec<String> {
        let r = self
            .call("GET", key, "/v1/customers?limit=100", "", None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Every grant of a list, page by page (`limit` per page), checking that pages do not overlap.
    async fn all_grants(&self, key: &str, customer: Option<&str>, limit: usize) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/billing/credit_grants?limit={limit}");
            if let Some(c) = customer {
                path.push_str(&format!("&customer={c}"));
            }
            if let Some(a) = &after {
                path.push_str(&format!("&starting_after={a}"));
            }
            let r = self.call("GET", key, &path, "", None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            let data = r.body["data"].as_array().unwrap().clone();
            after = data.last().map(|g| g["id"].as_str().unwrap().to_string());
            out.extend(data);
            if r.body["has_more"] != true {
                break;
            }
        }
        let ids: BTreeSet<&str> = out.iter().map(|g| g["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), out.len(), "a listing returned a grant twice");
        out
    }
}

fn grant_form(customer: &str, value: i64) -> String {
    format!(
        "customer={customer}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]={value}&applicability_config[scope][price_type]=metered"
    )
}

/// What the clients did, as acknowledged by the server.
#[derive(Default)]
struct Log {
    /// Shared-tenant grants whose creation was acknowledged, with their amounts.
    created: BTreeMap<String, i64>,
    /// Acknowledged voids and expiries per grant.
    voids: HashMap<String, usize>,
    expiries: HashMap<String, usize>,
    /// Shared-tenant invoices whose creation was acknowledged: the credit they say they applied.
    invoices: BTreeMap<String, i64>,
    /// Acknowledged invoice voids per invoice.
    invoice_voids: HashMap<String, usize>,
    /// Voids refused because an invoice had spent from the grant.
    refused_applied: usize,
}

/// The credit an invoice says it applied: its subtotal less what is still due.
fn credited(invoice: &Value) -> i64 {
    invoice["subtotal"].as_i64().unwrap() - invoice["amount_due"].as_i64().unwrap()
}

/// A form for an invoice of 1 to 3 usd lines for `customer`.
fn invoice_form(customer: &str, rng: &mut StdRng, max: i64) -> String {
    let mut form = format!("customer={customer}&currency=usd");
    for i in 0..rng.gen_range(1..=3) {
        form.push_str(&format!("&lines[{i}][amount]={}", rng.gen_range(0..=max)));
    }
    form
}

/// Checks the model behind the API: every lot's balance is the sum of its entries and never below
/// zero; a lot is granted once, voided at most once and only if no invoice spent from it, expired at
/// most once more than invoice voids gave back to it, and empty once voided or expired; every
/// invoice's `credits_applied` entries add up to what it applied, and its voided entries give it
/// all back exactly when it is void. Returns the counts of lots, entries and invoices.
fn check_ledger(emu: &Emu, key: &str) -> (usize, usize, usize) {
    let cell = emu.running.app.store.tenant(key);
    cell.peek(|t| {
        let mut entries = 0;
        let mut applied_by_invoice: HashMap<u128, (i64, i64)> = HashMap::new();
        for lot in t.lots_in(..) {
            let k = &lot.key;
            let id = ids::encode(*k);
            let mut sum = Decimal::ZERO;
            let mut count: HashMap<EntryKind, usize> = HashMap::new();
            for e in t.entry_keys_of_lot(*k).iter().map(|e| t.entry(e).unwrap()) {
                entries += 1;
                assert_eq!(e.lot, *k, "entry indexed under another lot");
                assert!(
                    e.amount > Decimal::ZERO,
                    "lot {id}: an entry of {}",
                    e.amount
                );
                if e.kind.is_credit() {
                    sum += e.amount;
                } else {
                    sum -= e.amount;
                }
                *count.entry(e.kind).or_default() += 1;
                if let Some((invoice, _)) = e.invoice {
                    assert!(e.amount.fract().is_zero(), "invoice credit {}", e.amount);
                    let whole = e.amount.to_i64().unwrap();
                    let slot = applied_by_invoice.entry(invoice).or_default();
                    match e.kind {
                        EntryKind::Applied => slot.0 += whole,
                        EntryKind::InvoiceVoided => slot.1 += whole,
                        other => panic!("lot {id}: a {other:?} entry names an invoice"),
                    }
                }
            }
            let n = |kind| count.get(&kind).copied().unwrap_or(0);
            assert_eq!(
                lot.remaining, sum,
                "lot {id}: balance is not the sum of its entries"
            );
            assert!(
                lot.remaining >= Decimal::ZERO,
                "lot {id}: balance below zero"
            );
            assert_eq!(n(EntryKind::Granted), 1, "lot {id}: granted {count:?}");
            assert!(n(EntryKind::Voided) <= 1, "lot {id}: voided {count:?}");
            assert!(
                n(EntryKind::Voided) == 0 || n(EntryKind::Applied) == 0,
                "lot {id}: voided although an invoice spent from it: {count:?}"
            );
            assert!(
                n(EntryKind::Expired) <= 1 + n(EntryKind::InvoiceVoided),
                "lot {id}: expired {count:?}"
            );
            assert!(
                n(EntryKind::InvoiceVoided) <= n(EntryKind::Applied),
                "lot {id}: {count:?}"
            );
            let closed = lot.voided_at.is_some() || lot.expires_at.is_some();
            if closed {
                assert_eq!(
                    lot.remaining,
                    Decimal::ZERO,
                    "lot {id}: closed but not empty"
                );
            } else {
                assert_eq!(n(EntryKind::Voided) + n(EntryKind::Expired), 0, "lot {id}");
            }
        }
        for inv in t.invoices_in(..) {
            let (applied, returned) = applied_by_invoice.remove(&inv.key).unwrap_or_default();
            let id = ids::encode(inv.key);
            assert_eq!(applied, inv.credited(), "invoice {id}: applied entries");
            let void = inv.voided_at.is_some();
            assert_eq!(returned, if void { applied } else { 0 }, "invoice {id}");
        }
        assert!(
            applied_by_invoice.is_empty(),
            "entries name invoices that do not exist"
        );
        for customer in t.customers() {
            for (_, b) in t.balances(customer.key, |_| true) {
                assert!(b.available >= Decimal::ZERO && b.ledger >= Decimal::ZERO);
            }
        }
        t.check_indexes().expect("indexes agree with the objects");
        (t.lots_in(..).count(), entries, t.invoices_in(..).count())
    })
}

/// Through the APIs: `customer`'s Stripe balance summary, the sum of every one of its balance
/// transactions, and its native usd wallets' real-time balance all agree, and none is negative.
/// Returns the balance in cents.
async fn check_balances(client: &Client, key: &str, customer: &str) -> i64 {
    let summary = client
        .call(
            "GET",
            key,
            &format!("/v1/billing/credit_balance_summary?customer={customer}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
            "",
            None,
        )
        .await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    let usd = summary.body["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["ledger_balance"]["monetary"]["currency"] == "usd");
    let value = |b: Option<&Value>, field: &str| {
        b.map_or(0, |b| b[field]["monetary"]["value"].as_i64().unwrap())
    };
    let (ledger, available) = (
        value(usd, "ledger_balance"),
        value(usd, "available_balance"),
    );

    let mut net = 0i64;
    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut path =
            format!("/v1/billing/credit_balance_transactions?customer={customer}&limit=100");
        if let Some(a) = &after {
            path.push_str(&format!("&starting_after={a}"));
        }
        let r = client.call("GET", key, &path, "", None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let data = r.body["data"].as_array().unwrap().clone();
        for t in &data {
            assert!(
                seen.insert(t["id"].as_str().unwrap().to_string()),
                "a transaction listed twice"
            );
            let (sign, side) = match t["type"].as_str().unwrap() {
                "credit" => (1, &t["credit"]),
                _ => (-1, &t["debit"]),
            };
            net += sign * side["amount"]["monetary"]["value"].as_i64().unwrap();
        }
        after = data.last().map(|t| t["id"].as_str().unwrap().to_string());
        if r.body["has_more"] != true {
            break;
        }
    }

    let cust = format!("cust_{}", &customer["cus_".len()..]);
    let r = client
        .call_native("GET", key, &format!("/v1/customers/{cust}/wallets"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut wallets = Decimal::ZERO;
    for w in r.body.as_array().unwrap() {
        if w["currency"] != "usd" {
            continue;
        }
        let id = w["id"].as_str().unwrap();
        let b = client
            .call_native("GET", key, &format!("/v1/wallets/{id}/balance/real-time"))
            .await;
        assert_eq!(b.status, 200, "{}", b.body);
        wallets += b.body["real_time_balance"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap();
    }
    let wallets = wallets * Decimal::from(100);

    assert!(
        ledger >= 0 && available >= 0,
        "{customer}: {summary:?}",
        summary = summary.body
    );
    assert_eq!(
        ledger, available,
        "{customer}: ledger and available balances"
    );
    assert_eq!(
        net, ledger,
        "{customer}: transactions do not add up to the balance"
    );
    assert_eq!(
        wallets,
        Decimal::from(available),
        "{customer}: native wallets and Stripe disagree"
    );
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_lose_and_duplicate_nothing() {
    let emu = Arc::new(Emu::start().await);
    let shared = rs::tenant(&emu, "conc_shared").await;
    let mut customers = Vec::new();
    for i in 0..8 {
        customers.push(emu.customer(&shared, &format!("name=shared-{i}")).await);
    }
    let customers = Arc::new(customers);
    let log = Arc::new(Mutex::new(Log::default()));
    let start = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (emu, shared, customers, log, start) = (
            emu.clone(),
            shared.clone(),
            customers.clone(),
            log.clone(),
            start.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = Client::new(&emu);
            let own = rs::tenant(&emu, &format!("conc_own_{i}")).await;
            let own_customer = emu.customer(&own, "").await;
            let mut own_grants = BTreeSet::new();
            let mut rng = StdRng::seed_from_u64(i as u64);
            start.wait().await;
            for n in 0..OPS_PER_CLIENT {
                let pick = rng.gen_range(0..100);
                let known: Vec<String> = log.lock().created.keys().cloned().collect();
                let invoices: Vec<String> = log.lock().invoices.keys().cloned().collect();
                match pick {
                    0..=29 => {
                        let c = &customers[rng.gen_range(0..customers.len())];
                        let value = rng.gen_range(1..10_000);
                        let idem = format!("c{i}-{n}");
                        let form = grant_form(c, value);
                        let r = client
                            .call(
                                "POST",
                                &shared,
                                "/v1/billing/credit_grants",
                                &form,
                                Some(&idem),
                            )
                            .await;
                        assert_eq!(r.status, 200, "{}", r.body);
                        let id = r.body["id"].as_str().unwrap().to_string();
                        assert!(
                            log.lock().created.insert(id.clone(), value).is_none(),
                            "id {id} handed out twice"
                        );
                        if rng.gen_bool(0.3) {
                            let again = client
                                .call(
                                    "POST",
                                    &shared,
                                    "/v1/billing/credit_grants",
                                    &form,
                                    Some(&idem),
                                )
                                .await;
                            assert!(
                                again.replayed && again.body["id"] == id.as_str(),
                                "a retry was not a replay"
                            );
                        }
                    }
                    30..=41 if !known.is_empty() => {
                        let g = &known[rng.gen_range(0..known.len())];
                        let r = client
                            .call(
                                "POST",
                                &shared,
                                &format!("/v1/billing/credit_grants/{g}/void"),
                                "",
                                None,
                            )
                            .await;
                        let message = r.body["error"]["message"].as_str().unwrap_or("");
                        match r.status {
                            200 => *log.lock().voids.entry(g.clone()).or_default() += 1,
                            400 if message.contains("already been voided") => {}
                            400 if message.contains("applied to an invoice") => {
                                log.lock().refused_applied += 1
                            }
                            s => panic!("void: {s} {}", r.body),
                        }
                    }
                    42..=49 if !known.is_empty() => {
                        let g = &known[rng.gen_range(0..known.len())];
                        let r = client
                            .call(
                                "POST",
                                &shared,
                                &format!("/v1/billing/credit_grants/{g}/expire"),
                                "",
                                None,
                            )
                            .await;
                        match r.status {
                            200 => *log.lock().expiries.entry(g.clone()).or_default() += 1,
                            400 => assert!(r.body["error"]["message"]
                                .as_str()
                                .unwrap()
                                .contains("already expired")),
                            s => panic!("expire: {s} {}", r.body),
                        }
                    }
                    50..=59 => {
                        let c = &customers[rng.gen_range(0..customers.len())];
                        for g in client
                            .all_grants(&shared, Some(c), rng.gen_range(5..25))
                            .await
                        {
                            assert_eq!(g["customer"], c.as_str());
                        }
                    }
                    60..=69 => {
                        let c = &customers[rng.gen_range(0..customers.len())];
                        let form = invoice_form(c, &mut rng, 5_000);
                        let r = client
                            .call("POST", &shared, "/_emulator/invoices", &form, None)
                            .await;
                        assert_eq!(r.status, 200, "{}", r.body);
                        let id = r.body["id"].as_str().unwrap().to_string();
                        let applied = credited(&r.body);
                        assert!(applied >= 0 && r.body["amount_due"].as_i64().unwrap() >= 0);
                        assert!(
                            log.lock().invoices.insert(id.clone(), applied).is_none(),
                            "invoice {id} handed out twice"
                        );
                    }
                    70..=74 if !invoices.is_empty() => {
                        let inv = &invoices[rng.gen_range(0..invoices.len())];
                        let r = client
                            .call(
                                "POST",
                                &shared,
                                &format!("/v1/invoices/{inv}/void"),
                                "",
                                None,
                            )
                            .await;
                        match r.status {
                            200 => *log.lock().invoice_voids.entry(inv.clone()).or_default() += 1,
                            400 => assert!(
                                r.body["error"]["message"]
                                    .as_str()
                                    .unwrap()
                                    .contains("status is open"),
                                "{}",
                                r.body
                            ),
                            s => panic!("invoice void: {s} {}", r.body),
                        }
                    }
                    75..=84 => {
                        let r = client
                            .call(
                                "POST",
                                &own,
                                "/v1/billing/credit_grants",
                                &grant_form(&own_customer, 100),
                                None,
                            )
                            .await;
                        assert_eq!(r.status, 200, "{}", r.body);
                        own_grants.insert(r.body["id"].as_str().unwrap().to_string());
                    }
                    85..=89 => {
                        let form = invoice_form(&own_customer, &mut rng, 150);
                        let r = client
                            .call("POST", &own, "/_emulator/invoices", &form, None)
                            .await;
                        assert_eq!(r.status, 200, "{}", r.body);
                        if rng.gen_bool(0.5) {
                            let id = r.body["id"].as_str().unwrap();
                            let v = client
                                .call("POST", &own, &format!("/v1/invoices/{id}/void"), "", None)
                                .await;
                            assert_eq!(v.status, 200, "{}", v.body);
                        }
                    }
                    _ => {
                        let listed: BTreeSet<String> = client
                            .all_grants(&own, None, 5)
                            .await
                            .iter()
                            .map(|g| g["id"].as_str().unwrap().to_string())
                            .collect();
                        assert_eq!(
                            listed, own_grants,
                            "client {i} does not read its own writes"
                        );
                    }
                }
            }
            let listed: BTreeSet<String> = client
                .all_grants(&own, None, 100)
                .await
                .iter()
                .map(|g| g["id"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(listed, own_grants, "client {i}'s own tenant");
        }));
    }
    for t in tasks {
        t.await.expect("a client failed");
    }

    let log = std::mem::take(&mut *log.lock());
    let client = Client::new(&emu);
    let all = client.all_grants(&shared, None, 100).await;
    let listed: BTreeMap<String, Value> = all
        .iter()
        .map(|g| (g["id"].as_str().unwrap().to_string(), g.clone()))
        .collect();
    assert_eq!(listed.len(), log.created.len(), "lost or extra grants");
    for (id, value) in &log.created {
        let g = listed
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged grant {id} is missing"));
        assert_eq!(g["amount"]["monetary"]["value"], *value);
        let voided = log.voids.get(id).copied().unwrap_or(0);
        let expired = log.expiries.get(id).copied().unwrap_or(0);
        assert!(
            voided <= 1 && expired <= 1,
            "{id}: voided {voided}, expired {expired} times"
        );
        assert_eq!(g["voided_at"].is_null(), voided == 0, "{id}");
        assert_eq!(g["expires_at"].is_null(), expired == 0, "{id}");
    }
    // Every acknowledged invoice is there, void exactly when a void was acknowledged, and still
    // shows the credit it applied.
    for (id, applied) in &log.invoices {
        let r = client
            .call("GET", &shared, &format!("/v1/invoices/{id}"), "", None)
            .await;
        assert_eq!(r.status, 200, "acknowledged invoice {id}: {}", r.body);
        let voids = log.invoice_voids.get(id).copied().unwrap_or(0);
        assert!(voids <= 1, "{id} voided {voids} times");
        let status = if voids == 1 { "void" } else { "open" };
        assert_eq!(r.body["status"], status, "{id}");
        assert_eq!(credited(&r.body), *applied, "{id}");
    }
    let (lots, entries, invoices) = check_ledger(&emu, &shared);
    assert_eq!(lots, log.created.len());
    assert_eq!(invoices, log.invoices.len(), "lost or extra invoices");
    let mut total = 0;
    for c in customers.iter() {
        total += check_balances(&client, &shared, c).await;
    }
    eprintln!(
        "concurrency: {CLIENTS} clients x {OPS_PER_CLIENT} ops; shared tenant: {} grants, {} voids ({} refused: spent from), {} expiries, {} invoices ({} voided), {entries} ledger entries, {total} cents left",
        log.created.len(),
        log.voids.len(),
        log.refused_applied,
        log.expiries.len(),
        log.invoices.len(),
        log.invoice_voids.len(),
    );
    for i in 0..CLIENTS {
        let own = format!("sk_test_conc_own_{i}");
        check_ledger(&emu, &own);
        let customers = client.all_customers(&own).await;
        assert_eq!(customers.len(), 1);
        check_balances(&client, &own, &customers[0]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_retried_concurrently_creates_one_grant() {
    let emu = Arc::new(Emu::start().await);
    let key = rs::tenant(&emu, "conc_idem").await;
    let cus = emu.customer(&key, "").await;
    let form = Arc::new(grant_form(&cus, 4242));
    let start = Arc::new(Barrier::new(CLIENTS));
    let conflicts = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (emu, key, form, start, conflicts) = (
            emu.clone(),
            key.clone(),
            form.clone(),
            start.clone(),
            conflicts.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = Client::new(&emu);
            start.wait().await;
            // As the SDKs do: retry on 409 with the same key until the first request has finished.
            for _ in 0..1000 {
                let r = client
                    .call(
                        "POST",
                        &key,
                        "/v1/billing/credit_grants",
                        &form,
                        Some("one-key-for-all"),
                    )
                    .await;
                match r.status {
                    200 => return (r.body["id"].as_str().unwrap().to_string(), r.replayed),
                    409 => {
                        assert_eq!(r.body["error"]["code"], "idempotency_key_in_use");
                        *conflicts.lock() += 1;
                        tokio::task::yield_now().await;
                    }
                    s => panic!("{s} {}", r.body),
                }
            }
            panic!("the key stayed in use");
        }));
    }
    let mut ids = BTreeSet::new();
    let mut fresh = 0;
    for t in tasks {
        let (id, replayed) = t.await.unwrap();
        ids.insert(id);
        fresh += usize::from(!replayed);
    }
    assert_eq!(ids.len(), 1, "one key made several grants: {ids:?}");
    assert_eq!(fresh, 1, "exactly one answer is not a replay");
    let listed = Client::new(&emu).all_grants(&key, Some(&cus), 100).await;
    assert_eq!(listed.len(), 1);
    check_ledger(&emu, &key);
    eprintln!(
        "idempotency: {CLIENTS} concurrent requests, {} answered 409 in flight",
        conflicts.lock()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_is_voided_or_expired_exactly_once_under_contention() {
    let emu = Arc::new(Emu::start().await);
    let key = rs::tenant(&emu, "conc_void").await;
    let cus = emu.customer(&key, "").await;
    let to_void = emu.grant(&key, &cus, 1000, "").await;
    let to_expire = emu.grant(&key, &cus, 2000, "").await;
    let contested = emu.grant(&key, &cus, 3000, "").await;
    let start = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (emu, key, start) = (emu.clone(), key.clone(), start.clone());
        let (to_void, to_expire, contested) =
            (to_void.clone(), to_expire.clone(), contested.clone());
        tasks.push(tokio::spawn(async move {
            let client = Client::new(&emu);
            start.wait().await;
            let v = client
                .call(
                    "POST",
                    &key,
                    &format!("/v1/billing/credit_grants/{to_void}/void"),
                    "",
                    None,
                )
                .await;
            let e = client
                .call(
                    "POST",
                    &key,
                    &format!("/v1/billing/credit_grants/{to_expire}/expire"),
                    "",
                    None,
                )
                .await;
            let action = if i % 2 == 0 { "void" } else { "expire" };
            let c = client
                .call(
                    "POST",
                    &key,
                    &format!("/v1/billing/credit_grants/{contested}/{action}"),
                    "",
                    None,
                )
                .await;
            (v.status, e.status, action, c.status)
        }));
    }
    let (mut voids, mut expiries, mut contested_ok) = (0, 0, BTreeMap::new());
    for t in tasks {
        let (v, e, action, c) = t.await.unwrap();
        assert!(matches!(v, 200 | 400) && matches!(e, 200 | 400) && matches!(c, 200 | 400));
        voids += usize::from(v == 200);
        expiries += usize::from(e == 200);
        *contested_ok.entry(action).or_insert(0) += usize::from(c == 200);
    }
    assert_eq!((voids, expiries), (1, 1));
    // Void and expire each succeed once on the same grant, in whichever order they land (Stripe lets a
    // voided grant be expired; voiding an expired one writes nothing more), and never twice.
    assert_eq!((contested_ok["void"], contested_ok["expire"]), (1, 1));
    check_ledger(&emu, &key);
}
