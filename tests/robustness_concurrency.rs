//! Many clients at once: 64 concurrent clients doing mixed creates, voids, expiries and lists on a
//! shared tenant and on their own. No acknowledged write is lost or duplicated, no balance goes below
//! zero, every lot's balance is the sum of its ledger entries, a void or an expiry happens at most
//! once, and one `Idempotency-Key` retried concurrently creates exactly one grant.

mod common;
mod robustness_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use common::Emu;
use credit_emulator::ids;
use credit_emulator::model::EntryKind;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustness_support as rs;
use rust_decimal::Decimal;
use serde_json::Value;
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
}

/// Checks the model behind the API: every lot's balance is the sum of its entries and never below
/// zero; a lot is written off at most once, and only if it was voided or expired.
// TODO(ledger merge): also compare with GET /v1/billing/credit_balance_summary for each customer.
fn check_ledger(emu: &Emu, key: &str) -> (usize, usize) {
    let cell = emu.running.app.store.tenant(key);
    let t = cell.state.lock();
    let mut entries = 0;
    for (k, lot) in &t.lots {
        let mut sum = Decimal::ZERO;
        let (mut granted, mut written_off) = (0, 0);
        for e in t
            .entries_by_lot
            .range((*k, 0)..=(*k, u128::MAX))
            .map(|(_, e)| &t.entries[e])
        {
            entries += 1;
            if e.kind.is_credit() {
                sum += e.amount;
            } else {
                sum -= e.amount;
            }
            match e.kind {
                EntryKind::Granted => granted += 1,
                EntryKind::Voided | EntryKind::Expired => written_off += 1,
                // TODO(ledger merge): Applied / InvoiceVoided once spends run here.
                _ => {}
            }
        }
        let id = ids::encode(*k);
        assert_eq!(
            lot.remaining, sum,
            "lot {id}: balance is not the sum of its entries"
        );
        assert!(
            lot.remaining >= Decimal::ZERO,
            "lot {id}: balance below zero"
        );
        assert_eq!(granted, 1, "lot {id}: granted {granted} times");
        assert!(
            written_off <= 1,
            "lot {id}: written off {written_off} times"
        );
        let closed = lot.voided_at.is_some() || lot.expires_at.is_some();
        assert_eq!(
            written_off == 1,
            closed,
            "lot {id}: write-off and state disagree"
        );
        assert_eq!(
            lot.remaining,
            if closed { Decimal::ZERO } else { lot.amount },
            "lot {id}"
        );
    }
    for customer in t.lots_by_customer.keys() {
        for (_, b) in t.balances(*customer, |_| true) {
            assert!(b.available >= Decimal::ZERO && b.ledger >= Decimal::ZERO);
        }
    }
    (t.lots.len(), entries)
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
                match pick {
                    0..=34 => {
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
                    35..=49 if !known.is_empty() => {
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
                        match r.status {
                            200 => *log.lock().voids.entry(g.clone()).or_default() += 1,
                            400 => assert!(r.body["error"]["message"]
                                .as_str()
                                .unwrap()
                                .contains("already been voided")),
                            s => panic!("void: {s} {}", r.body),
                        }
                    }
                    50..=59 if !known.is_empty() => {
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
                    60..=74 => {
                        let c = &customers[rng.gen_range(0..customers.len())];
                        for g in client
                            .all_grants(&shared, Some(c), rng.gen_range(5..25))
                            .await
                        {
                            assert_eq!(g["customer"], c.as_str());
                        }
                    }
                    75..=89 => {
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
                    // TODO(ledger merge): spends. POST /_emulator/invoices for a shared customer
                    // (amount drawn at random), record what it applied per grant, and check below
                    // that each grant's remaining balance is its amount minus what invoices applied
                    // to it, never below zero, and that an applied grant refuses to be voided.
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
    let (lots, entries) = check_ledger(&emu, &shared);
    assert_eq!(lots, log.created.len());
    eprintln!(
        "concurrency: {CLIENTS} clients x {OPS_PER_CLIENT} ops; {} shared grants, {} voids, {} expiries, {entries} ledger entries",
        log.created.len(),
        log.voids.len(),
        log.expiries.len()
    );
    for i in 0..CLIENTS {
        check_ledger(&emu, &format!("sk_test_conc_own_{i}"));
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
