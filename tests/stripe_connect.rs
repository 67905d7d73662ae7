//! `Stripe-Account` over a real socket: a platform key acting for a connected account reaches a world
//! of its own, on every Stripe route and on the `/_emulator` routes; native routes never read it.

use crate::support;

use support::sdk::metered_usd;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use stripe::{AccountId, ClientBuilder, StripeError, StripeRequest};
use stripe_billing::billing_credit_grant::{ListBillingCreditGrant, RetrieveBillingCreditGrant};
use stripe_core::customer::{CreateCustomer, ListCustomer};
use support::{Emu, Resp, T0};

const GRANTS: &str = "/v1/billing/credit_grants";
const ACCT_A: &str = "acct_1032D82eZvKYlo2C";
const ACCT_B: &str = "acct_connected_b";

/// A request as `key` acting for `account`.
async fn as_account(
    emu: &Emu,
    method: &str,
    key: &str,
    account: &str,
    path: &str,
    form: &str,
) -> Resp {
    emu.stripe_with(method, key, path, form, &[("stripe-account", account)])
        .await
}

fn ids(r: &Resp) -> Vec<String> {
    r.body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Status, echoed `Stripe-Version` and body.
fn answer(r: &Resp) -> Value {
    json!({
        "status": r.status,
        "stripe_version": r.header("stripe-version"),
        "body": r.body,
    })
}

/// Freezes the clock of `key`'s world for `account` at `secs`.
async fn freeze_account(emu: &Emu, key: &str, account: &str, secs: i64) {
    let r = as_account(
        emu,
        "POST",
        key,
        account,
        "/_emulator/clock",
        &format!("frozen_time={secs}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn each_connected_account_is_its_own_world() {
    let emu = Emu::start().await;
    let key = emu.tenant("platform").await;
    freeze_account(&emu, &key, ACCT_A, T0).await;
    freeze_account(&emu, &key, ACCT_B, T0).await;

    let platform_cus = emu.customer(&key, "email=platform%40example.com").await;
    let platform_grant = emu.grant(&key, &platform_cus, 100, "").await;

    let created = as_account(
        &emu,
        "POST",
        &key,
        ACCT_A,
        "/v1/customers",
        "email=connected%40example.com",
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let a_cus = created.id();
    let a_grant = as_account(
        &emu,
        "POST",
        &key,
        ACCT_A,
        GRANTS,
        &format!("customer={a_cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=700&applicability_config[scope][price_type]=metered"),
    )
    .await;
    assert_eq!(a_grant.status, 200, "{}", a_grant.text);
    // The account's world numbers its own objects: the snapshot shows the grant as it sees it.
    assert_json_snapshot!("connected_grant", a_grant.body);
    let a_grant = a_grant.id();

    // Each world sees only its own objects, on every kind of route.
    assert_eq!(
        ids(&emu.get(&key, GRANTS).await),
        vec![platform_grant.clone()]
    );
    assert_eq!(
        ids(&as_account(&emu, "GET", &key, ACCT_A, GRANTS, "").await),
        vec![a_grant.clone()]
    );
    assert_eq!(
        ids(&as_account(&emu, "GET", &key, ACCT_B, GRANTS, "").await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&as_account(&emu, "GET", &key, ACCT_B, "/v1/customers", "").await),
        Vec::<String>::new()
    );
    let mut out = serde_json::Map::new();
    let cross = [
        (
            "platform_reads_the_accounts_grant",
            emu.get(&key, &format!("{GRANTS}/{a_grant}")).await,
        ),
        (
            "account_reads_the_platforms_grant",
            as_account(&emu, "GET", &key, ACCT_A, &format!("{GRANTS}/{platform_grant}"), "")
                .await,
        ),
        (
            "account_grants_to_the_platforms_customer",
            as_account(
                &emu,
                "POST",
                &key,
                ACCT_A,
                GRANTS,
                &format!("customer={platform_cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&applicability_config[scope][price_type]=metered"),
            )
            .await,
        ),
        (
            "other_account_voids_it",
            as_account(&emu, "POST", &key, ACCT_B, &format!("{GRANTS}/{a_grant}/void"), "").await,
        ),
        (
            "account_summary_of_the_platforms_customer",
            as_account(
                &emu,
                "GET",
                &key,
                ACCT_A,
                &format!("/v1/billing/credit_balance_summary?customer={platform_cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
                "",
            )
            .await,
        ),
    ];
    for (name, r) in cross {
        out.insert(name.into(), answer(&r));
    }
    assert_json_snapshot!("worlds_do_not_meet", out);

    // The same account id under another key is another world again.
    let other_key = emu.tenant("other_platform").await;
    freeze_account(&emu, &other_key, ACCT_A, T0).await;
    assert_eq!(
        ids(&as_account(&emu, "GET", &other_key, ACCT_A, GRANTS, "").await),
        Vec::<String>::new()
    );

    // The account's balance is its own.
    let summary = as_account(
        &emu,
        "GET",
        &key,
        ACCT_A,
        &format!("/v1/billing/credit_balance_summary?customer={a_cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
        "",
    )
    .await;
    assert_eq!(
        summary.body["balances"][0]["available_balance"]["monetary"]["value"],
        json!(700)
    );
}

#[tokio::test]
async fn malformed_accounts_are_refused() {
    let emu = Emu::start().await;
    let key = emu.tenant("bad_accounts").await;
    let mut out = serde_json::Map::new();
    for (name, accounts) in [
        ("no_prefix", vec!["1032D82eZvKYlo2C"]),
        ("prefix_only", vec!["acct_"]),
        ("customer_id", vec!["cus_123"]),
        ("punctuation", vec!["acct_12-34"]),
        ("empty", vec![""]),
        ("two_headers", vec![ACCT_A, ACCT_B]),
    ] {
        let headers: Vec<(&str, &str)> = accounts.iter().map(|a| ("stripe-account", *a)).collect();
        let r = emu
            .stripe_with("GET", &key, "/v1/customers", "", &headers)
            .await;
        assert_eq!(r.status, 403, "{name}: {}", r.text);
        out.insert(name.into(), answer(&r));
    }
    assert_json_snapshot!("malformed_accounts", out);

    // The key is checked first, the account next, the version last.
    let mut order = serde_json::Map::new();
    let live = emu
        .raw(
            "GET",
            "/v1/customers",
            &[
                ("authorization", "Bearer sk_live_123456789"),
                ("stripe-account", "nope"),
            ],
            "",
        )
        .await;
    order.insert("live_key_and_bad_account".into(), answer(&live));
    let both = emu
        .stripe_with(
            "GET",
            &key,
            "/v1/customers",
            "",
            &[("stripe-account", "nope"), ("stripe-version", "2019-2-19")],
        )
        .await;
    order.insert("bad_account_and_bad_version".into(), answer(&both));
    let version = emu
        .stripe_with(
            "GET",
            &key,
            "/v1/customers",
            "",
            &[("stripe-account", ACCT_A), ("stripe-version", "2019-2-19")],
        )
        .await;
    order.insert("good_account_and_bad_version".into(), answer(&version));
    let admin = as_account(&emu, "POST", &key, "nope", "/_emulator/reset", "").await;
    order.insert("admin_route_bad_account".into(), answer(&admin));
    assert_json_snapshot!("account_check_order", order);
}

#[tokio::test]
async fn admin_routes_act_on_the_accounts_world() {
    let emu = Emu::start().await;
    let key = emu.tenant("admin_platform").await;
    let later = T0 + 86_400;
    // A fresh account world may start at any instant, whatever its platform's clock says.
    freeze_account(&emu, &key, ACCT_A, later).await;
    assert_eq!(
        emu.get(&key, "/_emulator/clock").await.body["now"],
        json!(T0)
    );
    let a_clock = as_account(&emu, "GET", &key, ACCT_A, "/_emulator/clock", "").await;
    assert_eq!(a_clock.body["now"], json!(later));

    // Invoices spend the account's credits, in its world.
    let cus = as_account(&emu, "POST", &key, ACCT_A, "/v1/customers", "")
        .await
        .id();
    let grant = as_account(
        &emu,
        "POST",
        &key,
        ACCT_A,
        GRANTS,
        &format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=500&applicability_config[scope][price_type]=metered"),
    )
    .await;
    assert_eq!(grant.status, 200, "{}", grant.text);
    assert_eq!(grant.body["created"], json!(later));
    let invoice = as_account(
        &emu,
        "POST",
        &key,
        ACCT_A,
        "/_emulator/invoices",
        &format!("customer={cus}&currency=usd&lines[0][amount]=200"),
    )
    .await;
    assert_eq!(invoice.status, 200, "{}", invoice.text);
    assert_eq!(invoice.body["amount_due"], json!(0));
    let platform_invoice = emu
        .post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=200"),
        )
        .await;
    assert_eq!(platform_invoice.status, 400, "{}", platform_invoice.text);
    assert_eq!(
        platform_invoice.body["error"]["code"],
        json!("resource_missing")
    );

    // Reset with the header empties the account's world only; without it, the platform's only.
    let platform_cus = emu.customer(&key, "").await;
    let reset = as_account(&emu, "POST", &key, ACCT_A, "/_emulator/reset", "").await;
    assert_eq!(reset.body, json!({"reset": true, "existed": true}));
    assert_eq!(
        ids(&as_account(&emu, "GET", &key, ACCT_A, "/v1/customers", "").await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&emu.get(&key, "/v1/customers").await),
        vec![platform_cus.clone()]
    );
    freeze_account(&emu, &key, ACCT_A, later).await;
    let cus = as_account(&emu, "POST", &key, ACCT_A, "/v1/customers", "")
        .await
        .id();
    emu.post(&key, "/_emulator/reset", "").await;
    assert_eq!(
        ids(&as_account(&emu, "GET", &key, ACCT_A, "/v1/customers", "").await),
        vec![cus]
    );
}

/// An account's world runs under its platform's default version unless it has one of its own.
#[tokio::test]
async fn an_accounts_default_version_follows_its_platform() {
    let emu = Emu::start().await;
    let key = emu.tenant("version_platform").await;
    let route = "/_emulator/stripe_version";
    let mut out = serde_json::Map::new();
    emu.post(&key, route, "version=2025-09-30.clover").await;
    let follows = as_account(&emu, "GET", &key, ACCT_A, route, "").await;
    out.insert("follows_the_platform".into(), answer(&follows));
    let echoed = as_account(&emu, "GET", &key, ACCT_A, "/v1/customers", "").await;
    assert_eq!(echoed.header("stripe-version"), Some("2025-09-30.clover"));

    let own = as_account(
        &emu,
        "POST",
        &key,
        ACCT_A,
        route,
        "version=2024-10-28.acacia",
    )
    .await;
    out.insert("set_on_the_account".into(), answer(&own));
    let echoed = as_account(&emu, "GET", &key, ACCT_A, "/v1/customers", "").await;
    assert_eq!(echoed.header("stripe-version"), Some("2024-10-28.acacia"));
    // The platform and its other accounts are untouched.
    assert_eq!(
        emu.get(&key, "/v1/customers")
            .await
            .header("stripe-version"),
        Some("2025-09-30.clover")
    );
    assert_eq!(
        as_account(&emu, "GET", &key, ACCT_B, "/v1/customers", "")
            .await
            .header("stripe-version"),
        Some("2025-09-30.clover")
    );
    let cleared = as_account(&emu, "POST", &key, ACCT_A, route, "version=").await;
    out.insert("cleared_on_the_account".into(), answer(&cleared));
    emu.post(&key, "/_emulator/reset", "").await;
    let platform_reset = as_account(&emu, "GET", &key, ACCT_A, route, "").await;
    out.insert("after_the_platform_reset".into(), answer(&platform_reset));
    assert_json_snapshot!("account_default_version", out);
}

#[tokio::test]
async fn idempotency_keys_are_per_world() {
    let emu = Emu::start().await;
    let key = emu.tenant("idem_platform").await;
    freeze_account(&emu, &key, ACCT_A, T0).await;
    let with = |account: Option<&'static str>, form: &'static str| {
        let mut headers = vec![("idempotency-key", "shared-key")];
        if let Some(a) = account {
            headers.push(("stripe-account", a));
        }
        let emu = &emu;
        let key = key.clone();
        async move {
            emu.stripe_with("POST", &key, "/v1/customers", form, &headers)
                .await
        }
    };
    let platform = with(None, "name=platform").await;
    assert_eq!(platform.status, 200, "{}", platform.text);
    // The same key with other parameters is no conflict in another world...
    let account = with(Some(ACCT_A), "name=account").await;
    assert_eq!(account.status, 200, "{}", account.text);
    assert_eq!(account.header("idempotent-replayed"), None);
    assert_ne!(account.id(), platform.id());
    // ...and replays within its own.
    let replay = with(Some(ACCT_A), "name=account").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.text, account.text);
    let conflict = with(Some(ACCT_A), "name=platform").await;
    assert_eq!(conflict.status, 400);
    assert_eq!(conflict.body["error"]["type"], json!("idempotency_error"));
}

#[tokio::test]
async fn native_routes_ignore_the_header() {
    let emu = Emu::start().await;
    let key = emu.tenant("native_platform").await;
    let native = |account: &'static str| {
        let url = emu.url("/v1/customers");
        let client = emu.client.clone();
        let key = key.clone();
        async move {
            let r = client
                .post(url)
                .header("x-api-key", key)
                .header("stripe-account", account)
                .json(&json!({"external_id": format!("ext_{}", account.len())}))
                .send()
                .await
                .expect("request reaches the emulator");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = native(ACCT_A).await;
    assert_eq!(status, 201, "{body}");
    // Even a value the Stripe routes would refuse.
    let (status, body) = native("not-an-account").await;
    assert_eq!(status, 201, "{body}");
    // Both customers are the platform's, seen through Stripe without the header.
    assert_eq!(ids(&emu.get(&key, "/v1/customers").await).len(), 2);
    assert_eq!(
        ids(&as_account(&emu, "GET", &key, ACCT_A, "/v1/customers", "").await).len(),
        0
    );
}

/// async-stripe sends `Stripe-Account` from `ClientBuilder::account_id`, or per request from
/// `customize().account_id(…)`.
#[tokio::test]
async fn async_stripe_acts_for_a_connected_account() {
    let emu = Emu::start().await;
    let key = emu.tenant("async_stripe_connect").await;
    freeze_account(&emu, &key, ACCT_A, T0).await;
    let builder = ClientBuilder::new(key.as_str()).url(emu.running.url());
    let platform = builder.clone().build().expect("platform client");
    let connected = builder
        .account_id(AccountId::from(ACCT_A))
        .build()
        .expect("connected client");

    let customer = CreateCustomer::new()
        .email("connected@example.com")
        .send(&connected)
        .await
        .expect("create customer for the account");
    let grant = metered_usd(900)
        .customer(customer.id.as_str())
        .send(&connected)
        .await
        .expect("create grant for the account");
    assert_eq!(grant.customer.id().as_str(), customer.id.as_str());

    let mine = ListBillingCreditGrant::new()
        .send(&connected)
        .await
        .expect("list as the account");
    assert_eq!(mine.data.len(), 1);
    let platform_view = ListBillingCreditGrant::new()
        .send(&platform)
        .await
        .expect("list as the platform");
    assert!(platform_view.data.is_empty());
    assert!(ListCustomer::new()
        .send(&platform)
        .await
        .expect("platform customers")
        .data
        .is_empty());

    // A per-request account on the platform client reaches the same world.
    let fetched = RetrieveBillingCreditGrant::new(grant.id.clone())
        .customize()
        .account_id(AccountId::from(ACCT_A))
        .send(&platform)
        .await
        .expect("retrieve with a per-request account");
    assert_eq!(fetched.id, grant.id);
    match RetrieveBillingCreditGrant::new(grant.id.clone())
        .send(&platform)
        .await
    {
        Err(StripeError::Stripe(e, 404)) => {
            assert_eq!(
                e.code.as_ref().map(|c| c.as_str()),
                Some("resource_missing")
            )
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    // A malformed account id comes back as Stripe's 403.
    match ListBillingCreditGrant::new()
        .customize()
        .account_id(AccountId::from("acct-nope"))
        .send(&platform)
        .await
    {
        Err(StripeError::Stripe(e, 403)) => {
            assert_eq!(e.code.as_ref().map(|c| c.as_str()), Some("account_invalid"))
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}
