//! Each API key is its own world: for every route of both APIs (the ledger, invoices and native
//! plans, subscriptions and wallets included), ids made with key A are unknown with key B while A
//! reads them; `/_emulator/*` acts on the caller's tenant only; live keys are refused everywhere and
//! never create a world.

use crate::support;

use serde_json::{json, Value};
use support::robustness::{self as rs, exchange, RawRequest};
use support::Emu;

/// A's objects, through both APIs.
struct A {
    key: String,
    cus: String,
    /// `cus` spelled natively.
    cust: String,
    clock: String,
    clock_cus: String,
    grant: String,
    clock_grant: String,
    /// A ledger entry of `grant`.
    txn: String,
    /// An open invoice that spent from `grant`, and one voided since.
    invoice: String,
    voided_invoice: String,
    /// Native: a customer, its plan with a PLAN grant, its subscription (which applied the grant),
    /// a SUBSCRIPTION grant on it, and the customer's wallet.
    ncus: String,
    /// `ncus` spelled as Stripe does.
    ncus_stripe: String,
    plan: String,
    ngrant: String,
    sub: String,
    sgrant: String,
    wallet: String,
}

async fn world_a(emu: &Emu) -> A {
    let key = rs::tenant(emu, "iso_a").await;
    let clock = emu
        .post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={}", rs::BASE),
        )
        .await
        .id();
    let cus = emu.customer(&key, "email=shared@example.com").await;
    let clock_cus = emu.customer(&key, &format!("test_clock={clock}")).await;
    let grant = emu.grant(&key, &cus, 1000, "").await;
    let clock_grant = emu.grant(&key, &clock_cus, 500, "").await;
    let r = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/customers",
            "name=idem",
            &[("idempotency-key", "shared-idem-key")],
        )
        .await;
    assert_eq!(r.status, 200);
    let invoice = rs::invoice(emu, &key, &cus, 100).await;
    let voided_invoice = rs::invoice(emu, &key, &cus, 50).await;
    let r = emu
        .post(&key, &format!("/v1/invoices/{voided_invoice}/void"), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let txn = emu
        .get(
            &key,
            &format!("/v1/billing/credit_balance_transactions?customer={cus}&limit=1"),
        )
        .await
        .body["data"][0]["id"]
        .as_str()
        .expect("a ledger entry")
        .to_string();
    let n = rs::native_world(emu, &key, "iso-ext").await;
    let sgrant = rs::native_post(
        emu,
        &key,
        "/v1/creditgrants",
        json!({"name": "Welcome", "scope": "SUBSCRIPTION", "subscription_id": n.subscription,
               "start_date": rs::rfc3339(rs::BASE), "credits": "5", "cadence": "ONETIME",
               "expiration_type": "NEVER"}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    A {
        key,
        cust: format!("cust_{}", &cus["cus_".len()..]),
        cus,
        clock,
        clock_cus,
        grant,
        clock_grant,
        txn,
        invoice,
        voided_invoice,
        ncus_stripe: format!("cus_{}", &n.customer["cust_".len()..]),
        ncus: n.customer,
        plan: n.plan,
        ngrant: n.grant,
        sub: n.subscription,
        sgrant,
        wallet: n.wallet,
    }
}

impl A {
    /// A's ids by name, for messages and snapshots that must not depend on them.
    fn names(&self) -> Vec<(&str, &'static str)> {
        vec![
            (&self.clock_grant, "{a.clock_grant}"),
            (&self.grant, "{a.grant}"),
            (&self.clock_cus, "{a.clock_cus}"),
            (&self.cus, "{a.cus}"),
            (&self.cust, "{a.cust}"),
            (&self.clock, "{a.clock}"),
            (&self.txn, "{a.txn}"),
            (&self.voided_invoice, "{a.voided_invoice}"),
            (&self.invoice, "{a.invoice}"),
            (&self.ncus, "{a.ncus}"),
            (&self.ncus_stripe, "{a.ncus_stripe}"),
            (&self.plan, "{a.plan}"),
            (&self.ngrant, "{a.ngrant}"),
            (&self.sub, "{a.sub}"),
            (&self.sgrant, "{a.sgrant}"),
            (&self.wallet, "{a.wallet}"),
        ]
    }

    /// `text` with A's ids replaced by their names.
    fn named(&self, text: &str) -> String {
        self.names()
            .iter()
            .fold(text.to_string(), |t, (id, name)| t.replace(id, name))
    }

    /// Whether `text` mentions any of A's ids.
    fn leaks_into(&self, text: &str) -> bool {
        self.names().iter().any(|(id, _)| text.contains(id))
    }
}

/// `(method, path, form)`.
type Route = (&'static str, String, String);

/// Every Stripe route (and `POST /_emulator/invoices`), with A's ids in it, as reads and writes. A
/// itself must get 200 for the reads (the ids are real); B must get `resource_missing` for all of
/// them, also where B names its own customer `b_cus` beside A's grant.
fn stripe_routes(a: &A, b_cus: &str) -> (Vec<Route>, Vec<Route>) {
    let native_cus = &a.ncus_stripe;
    let grant_form = |cus: &str| {
        format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=5&applicability_config[scope][price_type]=metered")
    };
    let reads = vec![
        ("GET", format!("/v1/customers/{}", a.cus), String::new()),
        (
            "GET",
            format!("/v1/customers/{}", a.clock_cus),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/customers?test_clock={}", a.clock),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/customers?starting_after={}", a.cus),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/customers?ending_before={}", a.cus),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/billing/credit_grants/{}", a.grant),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/billing/credit_grants/{}", a.clock_grant),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/billing/credit_grants?customer={}", a.cus),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/billing/credit_grants?starting_after={}", a.grant),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/test_helpers/test_clocks/{}", a.clock),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/test_helpers/test_clocks?ending_before={}", a.clock),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/customers/{native_cus}"),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/billing/credit_balance_summary?customer={}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered", a.cus),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/billing/credit_balance_summary?customer={}&filter[type]=credit_grant&filter[credit_grant]={}", a.cus, a.grant),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/billing/credit_balance_transactions?customer={}", a.cus),
            String::new(),
        ),
        (
            "GET",
            format!(
                "/v1/billing/credit_balance_transactions?customer={}&credit_grant={}",
                a.cus, a.grant
            ),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/billing/credit_balance_transactions/{}", a.txn),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/invoices/{}", a.invoice),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/invoices/{}", a.voided_invoice),
            String::new(),
        ),
        (
            "GET",
            format!("/v1/invoices/{}/lines", a.invoice),
            String::new(),
        ),
    ];
    // B's own customer beside A's grant: the grant is as unknown as A's customer.
    let mixed = vec![
        (
            "GET",
            format!("/v1/billing/credit_balance_summary?customer={b_cus}&filter[type]=credit_grant&filter[credit_grant]={}", a.grant),
            String::new(),
        ),
        (
            "GET",
            format!(
                "/v1/billing/credit_balance_transactions?customer={b_cus}&credit_grant={}",
                a.grant
            ),
            String::new(),
        ),
    ];
    let writes = vec![
        (
            "POST",
            format!("/v1/customers/{}", a.cus),
            "name=stolen".to_string(),
        ),
        ("DELETE", format!("/v1/customers/{}", a.cus), String::new()),
        (
            "POST",
            "/v1/customers".to_string(),
            format!("test_clock={}", a.clock),
        ),
        (
            "POST",
            "/v1/billing/credit_grants".to_string(),
            grant_form(&a.cus),
        ),
        (
            "POST",
            "/v1/billing/credit_grants".to_string(),
            grant_form(&a.clock_cus),
        ),
        (
            "POST",
            format!("/v1/billing/credit_grants/{}", a.grant),
            "metadata[x]=y".to_string(),
        ),
        (
            "POST",
            format!("/v1/billing/credit_grants/{}/expire", a.grant),
            String::new(),
        ),
        (
            "POST",
            format!("/v1/billing/credit_grants/{}/void", a.grant),
            String::new(),
        ),
        (
            "POST",
            format!("/v1/billing/credit_grants/{}/void", a.clock_grant),
            String::new(),
        ),
        (
            "POST",
            format!("/v1/test_helpers/test_clocks/{}/advance", a.clock),
            format!("frozen_time={}", rs::BASE + 86_400),
        ),
        (
            "DELETE",
            format!("/v1/test_helpers/test_clocks/{}", a.clock),
            String::new(),
        ),
        (
            "POST",
            format!("/v1/invoices/{}/void", a.invoice),
            String::new(),
        ),
        (
            "POST",
            "/_emulator/invoices".to_string(),
            format!("customer={}&currency=usd&lines[0][amount]=10", a.cus),
        ),
        (
            "POST",
            "/_emulator/invoices".to_string(),
            format!("customer={native_cus}&currency=usd&lines[0][amount]=10"),
        ),
        (
            "POST",
            "/v1/billing/credit_grants".to_string(),
            grant_form(native_cus),
        ),
    ];
    (reads, writes.into_iter().chain(mixed).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_one_key_are_unknown_to_another_on_every_stripe_route() {
    let emu = Emu::start().await;
    let a = world_a(&emu).await;
    let b = rs::tenant(&emu, "iso_b").await;
    let b_cus = emu.customer(&b, "email=b@example.com").await;
    let before = rs::dump(&emu, &a.key, &a.clock).await;
    let (reads, writes) = stripe_routes(&a, &b_cus);

    // A reads every one of its objects (so B's refusals below are not refusals of bad requests).
    for (m, path, form) in &reads {
        let r = emu.stripe(m, &a.key, path, form).await;
        assert_eq!(r.status, 200, "A {m} {path}: {}", r.text);
    }
    let b_before = rs::fingerprint(&emu, &b);
    let mut seen = Vec::new();
    for (m, path, form) in reads.iter().chain(&writes) {
        let r = emu.stripe(m, &b, path, form).await;
        let e = &r.body["error"];
        assert!(
            matches!(r.status, 400 | 404) && e["code"] == "resource_missing",
            "B {m} {path} reached A's object: {} {}",
            r.status,
            r.text
        );
        let named = a.named(path).replace(&b_cus, "{b.cus}");
        seen.push(format!("{m} {named} -> {} {}", r.status, e["param"]));
    }
    assert_eq!(
        rs::fingerprint(&emu, &b),
        b_before,
        "B's refused requests changed B"
    );
    // B's own lists hold only B's customer, whatever A's objects are called.
    let r = emu.get(&b, "/v1/customers").await;
    let listed: Vec<&str> = r.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(listed, [b_cus.as_str()]);
    for path in [
        "/v1/customers?email=shared@example.com",
        "/v1/billing/credit_grants",
        "/v1/test_helpers/test_clocks",
    ] {
        let r = emu.get(&b, path).await;
        assert_eq!((r.status, &r.body["data"]), (200, &json!([])), "B {path}");
    }
    // The same Idempotency-Key in another tenant is another request.
    let r = emu
        .stripe_with(
            "POST",
            &b,
            "/v1/customers",
            "name=other",
            &[("idempotency-key", "shared-idem-key")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_eq!(r.body["name"], "other");
    assert_ne!(r.id(), a.cus, "ids do not collide across tenants");

    assert_eq!(rs::dump(&emu, &a.key, &a.clock).await, before, "A changed");
    insta::assert_json_snapshot!("b_sees_nothing_of_a", seen);
}

/// What B must get on a native route that names A's objects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Refusal {
    /// 404 `not_found`: the path or a referenced id is unknown.
    NotFound,
    /// 200 with nothing in it: a list filtered by A's ids (Flexprice answers those with an empty
    /// page, not an error).
    Empty,
}

/// `(method, path, body, what B gets)`.
type NativeRoute = (&'static str, String, Option<Value>, Refusal);

/// Every native route with A's ids in it: reads (which A itself must answer with its objects) and
/// writes.
fn native_routes(a: &A) -> (Vec<NativeRoute>, Vec<NativeRoute>) {
    use Refusal::{Empty, NotFound};
    let get = |path: String, refusal| ("GET", path, None, refusal);
    let stripe_cust = &a.cust;
    let reads = vec![
        get(format!("/v1/creditgrants/{}", a.ngrant), NotFound),
        get(format!("/v1/creditgrants/{}", a.sgrant), NotFound),
        get(
            format!("/v1/creditgrants?credit_grant_ids={}", a.ngrant),
            Empty,
        ),
        get(format!("/v1/creditgrants?plan_ids={}", a.plan), Empty),
        get(
            format!("/v1/creditgrants?subscription_ids={}", a.sub),
            Empty,
        ),
        get("/v1/creditgrants".to_string(), Empty),
        get(format!("/v1/plans/{}/creditgrants", a.plan), Empty),
        get(format!("/v1/customers/{}", a.ncus), NotFound),
        get(format!("/v1/customers/{stripe_cust}"), NotFound),
        get("/v1/customers?external_id=iso-ext".to_string(), Empty),
        get(format!("/v1/customers/{}/wallets", a.ncus), NotFound),
        get(format!("/v1/customers/{stripe_cust}/wallets"), NotFound),
        get(
            format!("/v1/customers/{}/grants/upcoming", a.ncus),
            NotFound,
        ),
        get(format!("/v1/plans/{}", a.plan), NotFound),
        get("/v1/plans".to_string(), Empty),
        get(format!("/v1/subscriptions/{}", a.sub), NotFound),
        get(format!("/v1/subscriptions?customer_id={}", a.ncus), Empty),
        get(format!("/v1/subscriptions?plan_id={}", a.plan), Empty),
        get(
            format!("/v1/subscriptions/{}/grants/upcoming", a.sub),
            NotFound,
        ),
        get(format!("/v1/wallets/{}", a.wallet), NotFound),
        get(
            format!("/v1/wallets/{}/balance/real-time", a.wallet),
            NotFound,
        ),
        get(format!("/v1/wallets/{}/transactions", a.wallet), NotFound),
    ];
    let writes = vec![
        (
            "PUT",
            format!("/v1/creditgrants/{}", a.ngrant),
            Some(json!({"name": "stolen"})),
            NotFound,
        ),
        (
            "PUT",
            format!("/v1/creditgrants/{}", a.sgrant),
            Some(json!({"end_date": rs::rfc3339(rs::BASE + 3600)})),
            NotFound,
        ),
        (
            "DELETE",
            format!("/v1/creditgrants/{}", a.ngrant),
            None,
            NotFound,
        ),
        (
            "DELETE",
            format!("/v1/creditgrants/{}", a.sgrant),
            None,
            NotFound,
        ),
        ("DELETE", format!("/v1/plans/{}", a.plan), None, NotFound),
        (
            "POST",
            format!("/v1/subscriptions/{}/cancel", a.sub),
            Some(json!({"cancellation_type": "immediate"})),
            NotFound,
        ),
        (
            "POST",
            "/v1/creditgrants".to_string(),
            Some(
                json!({"name": "x", "scope": "PLAN", "plan_id": a.plan, "credits": "1",
                        "cadence": "ONETIME", "expiration_type": "NEVER"}),
            ),
            NotFound,
        ),
        (
            "POST",
            "/v1/creditgrants".to_string(),
            Some(
                json!({"name": "x", "scope": "SUBSCRIPTION", "subscription_id": a.sub,
                        "start_date": rs::rfc3339(rs::BASE), "credits": "1",
                        "cadence": "ONETIME", "expiration_type": "NEVER"}),
            ),
            NotFound,
        ),
        (
            "POST",
            "/v1/subscriptions".to_string(),
            Some(
                json!({"customer_id": a.ncus, "plan_id": a.plan, "currency": "usd",
                        "billing_period": "MONTHLY"}),
            ),
            NotFound,
        ),
        (
            "POST",
            "/v1/subscriptions".to_string(),
            Some(
                json!({"external_customer_id": "iso-ext", "plan_id": a.plan, "currency": "usd",
                        "billing_period": "MONTHLY"}),
            ),
            NotFound,
        ),
    ];
    (reads, writes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_one_key_are_unknown_to_another_on_every_native_route() {
    let emu = Emu::start().await;
    let a = world_a(&emu).await;
    let b = rs::tenant(&emu, "iso_nb").await;
    let before = rs::dump(&emu, &a.key, &a.clock).await;
    let (reads, writes) = native_routes(&a);

    // A reads every one of its objects: a 200 that names it, or a list that holds it.
    for (m, path, body, _) in &reads {
        let r = emu.native(m, &a.key, path, body.as_ref()).await;
        assert_eq!(r.status, 200, "A {m} {path}: {}", r.text);
        assert!(
            a.leaks_into(&r.text),
            "A {m} {path} did not see its own objects: {}",
            r.text
        );
    }
    let b_before = rs::fingerprint(&emu, &b);
    let mut seen = Vec::new();
    for (m, path, body, refusal) in reads.iter().chain(&writes) {
        let r = emu.native(m, &b, path, body.as_ref()).await;
        match refusal {
            Refusal::NotFound => assert!(
                r.status == 404 && r.body["code"] == "not_found",
                "B {m} {path} reached A's object: {} {}",
                r.status,
                r.text
            ),
            Refusal::Empty => {
                let items = r.body.get("items").unwrap_or(&r.body);
                assert!(
                    r.status == 200 && items == &json!([]),
                    "B {m} {path}: {} {}",
                    r.status,
                    r.text
                );
            }
        }
        if r.status == 200 {
            assert!(
                !a.leaks_into(&r.text),
                "B {m} {path} saw A's objects: {}",
                r.text
            );
        }
        seen.push(format!(
            "{m} {} -> {} {}",
            a.named(path),
            r.status,
            a.named(r.body["message"].as_str().unwrap_or("(empty)"))
        ));
    }
    assert_eq!(
        rs::fingerprint(&emu, &b),
        b_before,
        "B's refused requests changed B"
    );
    // External ids are per world too: B may use A's.
    let r = emu
        .native(
            "POST",
            &b,
            "/v1/customers",
            Some(&json!({"external_id": "iso-ext"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.id(), a.ncus);
    assert_eq!(rs::dump(&emu, &a.key, &a.clock).await, before, "A changed");
    insta::assert_json_snapshot!("b_sees_nothing_of_a_natively", seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_routes_act_on_the_callers_tenant_only() {
    let emu = Emu::start().await;
    let a = world_a(&emu).await;
    let b = rs::tenant(&emu, "iso_admin_b").await;
    let before = rs::dump(&emu, &a.key, &a.clock).await;

    // B moves its own clock, over Bearer and over x-api-key.
    let later = rs::BASE + 3600;
    assert_eq!(
        emu.post(&b, "/_emulator/clock", &format!("frozen_time={later}"))
            .await
            .status,
        200
    );
    let r = emu
        .raw(
            "POST",
            "/_emulator/clock",
            &[
                ("x-api-key", &b),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &format!("frozen_time={}", later + 1),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(emu.get(&b, "/_emulator/clock").await.body["now"], later + 1);
    assert_eq!(
        emu.get(&a.key, "/_emulator/clock").await.body["now"],
        rs::BASE
    );

    // B resets its own world, twice, over both headers.
    emu.customer(&b, "").await;
    assert_eq!(
        emu.post(&b, "/_emulator/reset", "").await.body["existed"],
        true
    );
    let r = emu
        .raw("POST", "/_emulator/reset", &[("x-api-key", &b)], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(emu.get(&b, "/v1/customers").await.body["data"], json!([]));

    assert_eq!(rs::dump(&emu, &a.key, &a.clock).await, before, "A changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_keys_are_refused_everywhere_and_create_nothing() {
    let emu = Emu::start().await;
    let a = world_a(&emu).await;
    let before = rs::dump(&emu, &a.key, &a.clock).await;
    let tenants = |emu: &Emu| {
        let url = emu.url("/_emulator/health");
        let client = emu.client.clone();
        async move {
            let v: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            v["tenants"].as_u64().unwrap()
        }
    };
    let count = tenants(&emu).await;
    let (reads, writes) = stripe_routes(&a, &a.cus);
    let mut stripe: Vec<Route> = reads.into_iter().chain(writes).collect();
    stripe.extend([
        ("GET", "/v1/customers".to_string(), String::new()),
        (
            "POST",
            "/v1/customers".to_string(),
            "email=x@example.com".to_string(),
        ),
        (
            "GET",
            "/v1/billing/credit_grants".to_string(),
            String::new(),
        ),
        (
            "POST",
            "/v1/test_helpers/test_clocks".to_string(),
            format!("frozen_time={}", rs::BASE),
        ),
        (
            "GET",
            "/v1/test_helpers/test_clocks".to_string(),
            String::new(),
        ),
        ("GET", "/_emulator/clock".to_string(), String::new()),
        (
            "POST",
            "/_emulator/clock".to_string(),
            format!("frozen_time={}", rs::BASE),
        ),
        ("POST", "/_emulator/reset".to_string(), String::new()),
    ]);
    let addr = emu.running.addr;
    for live in ["sk_live_abcdefghijklmnop", "rk_live_abcdefghijklmnop"] {
        let basic = {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{live}:"))
            )
        };
        for (m, path, form) in &stripe {
            for auth in [format!("Bearer {live}"), basic.clone()] {
                let mut req = RawRequest::new(m, path).header("authorization", &auth);
                if !form.is_empty() {
                    req = req
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form.as_bytes().to_vec());
                }
                let r = exchange(addr, req.bytes(), false).await.unwrap();
                assert_eq!(r.status, 401, "{m} {path} with {auth}: {}", r.text());
                let msg = r.json().unwrap()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert!(msg.contains("never accepts live keys"), "{msg}");
                assert!(
                    !msg.contains("abcdefghijklmnop"),
                    "the key is masked: {msg}"
                );
            }
        }
        // The emulator routes over x-api-key: Stripe's 401.
        for (m, path) in [("GET", "/_emulator/clock"), ("POST", "/_emulator/reset")] {
            let r = exchange(
                addr,
                RawRequest::new(m, path).header("x-api-key", live).bytes(),
                false,
            )
            .await
            .unwrap();
            assert_eq!(
                r.status,
                401,
                "{m} {path} with x-api-key {live}: {}",
                r.text()
            );
        }
        // Every native route: Flexprice's raw 401.
        let (native_reads, native_writes) = native_routes(&a);
        let lists = [
            "/v1/creditgrants",
            "/v1/customers",
            "/v1/plans",
            "/v1/subscriptions",
        ];
        let mut native: Vec<(&str, String, Option<Value>)> = native_reads
            .into_iter()
            .chain(native_writes)
            .map(|(m, p, b, _)| (m, p, b))
            .collect();
        for list in lists {
            native.push(("GET", list.to_string(), None));
            native.push(("POST", list.to_string(), Some(json!({"name": "x"}))));
        }
        for (m, path, body) in &native {
            let mut req = RawRequest::new(m, path).header("x-api-key", live);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string().into_bytes());
            }
            let r = exchange(addr, req.bytes(), false).await.unwrap();
            assert_eq!(
                (r.status, r.json()),
                (401, Some(json!({"error": "Unauthorized"}))),
                "{m} {path} with x-api-key {live}: {}",
                r.text()
            );
        }
    }
    assert_eq!(tenants(&emu).await, count, "a live key created a world");
    assert_eq!(rs::dump(&emu, &a.key, &a.clock).await, before, "A changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_differ_only_slightly_are_different_worlds() {
    let emu = Emu::start().await;
    let keys = [
        "sk_test_Twin",
        "sk_test_twin",
        "rk_test_Twin",
        "sk_test_Twin2",
    ];
    for k in keys {
        emu.freeze(k, rs::BASE).await;
    }
    let made = emu.customer(keys[0], "name=only-here").await;
    for k in &keys[1..] {
        let r = emu.get(k, &format!("/v1/customers/{made}")).await;
        assert_eq!(r.status, 404, "{k}");
        assert_eq!(emu.get(k, "/v1/customers").await.body["data"], json!([]));
    }
}
