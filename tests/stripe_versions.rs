//! `Stripe-Version` over a real socket: which versions exist, where an invalid one is refused, how
//! the version shapes validation and rendering, and the world's default version.

use crate::support;

use support::sdk::metered_usd;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use stripe::ClientBuilder;
use support::{Emu, Resp};

const GRANTS: &str = "/v1/billing/credit_grants";
const NEWEST: &str = "2026-10-28.endive";
/// The last version before Stripe made `category` optional.
const BEFORE_OPTIONAL_CATEGORY: &str = "2025-09-30.clover";
/// The version that made it optional; still before `customer_account`.
const OPTIONAL_CATEGORY: &str = "2025-10-29.clover";
/// The version that introduced credit grants, before priorities and price scopes.
const FIRST_CREDITS: &str = "2024-10-28.acacia";

/// Status, echoed `Stripe-Version` and body: what a snapshot shows of one answer.
fn answer(r: &Resp) -> Value {
    json!({
        "status": r.status,
        "stripe_version": r.header("stripe-version"),
        "body": r.body,
    })
}

/// A metered usd grant of 100 for `cus`, without `category`, plus `extra`.
fn grant_form(cus: &str, extra: &str) -> String {
    let mut form = format!(
        "customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=100&applicability_config[scope][price_type]=metered"
    );
    if !extra.is_empty() {
        form.push('&');
        form.push_str(extra);
    }
    form
}

async fn at(emu: &Emu, method: &str, key: &str, path: &str, form: &str, version: &str) -> Resp {
    emu.stripe_with(method, key, path, form, &[("stripe-version", version)])
        .await
}

#[tokio::test]
async fn unknown_and_malformed_versions_get_stripes_400() {
    let emu = Emu::start().await;
    let key = emu.tenant("invalid_versions").await;
    let mut out = serde_json::Map::new();
    for (name, versions) in [
        ("missing_zero", vec!["2019-2-19"]),
        ("wrong_release_name", vec!["2025-09-30.acacia"]),
        ("date_without_release_name", vec!["2025-10-29"]),
        ("upper_case", vec!["2026-10-28.ENDIVE"]),
        ("future", vec!["2027-01-27.fig"]),
        ("dashboard_only", vec!["2025-03-01.dashboard"]),
        ("empty", vec![""]),
        ("beta_flag", vec!["2025-12-15.clover; credit_beta=v1"]),
        (
            "beta_flag_on_unknown_version",
            vec!["2025-12-16.clover; credit_beta=v1"],
        ),
        ("two_headers", vec![NEWEST, OPTIONAL_CATEGORY]),
        ("two_identical_headers", vec![NEWEST, NEWEST]),
    ] {
        let headers: Vec<(&str, &str)> = versions.iter().map(|v| ("stripe-version", *v)).collect();
        let r = emu
            .stripe_with("GET", &key, "/v1/customers", "", &headers)
            .await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert_eq!(r.header("stripe-version"), None, "{name}");
        out.insert(name.into(), r.body);
    }
    assert_json_snapshot!("invalid_versions", out);

    // Every known version is accepted, oldest to newest, and echoed as sent.
    for v in [
        "2011-01-01",
        "2020-08-27",
        FIRST_CREDITS,
        "2026-09-30.endive",
        NEWEST,
    ] {
        let r = at(&emu, "GET", &key, "/v1/customers", "", v).await;
        assert_eq!(r.status, 200, "{v}: {}", r.text);
        assert_eq!(r.header("stripe-version"), Some(v));
    }
}

/// Which check wins when the version is bad and something else is too: the key first, the version
/// before anything about the request's route or parameters.
#[tokio::test]
async fn an_invalid_version_is_checked_after_the_key_and_before_the_request() {
    let emu = Emu::start().await;
    let key = emu.tenant("version_order").await;
    let bad = "2025-13-01.clover";
    let mut out = serde_json::Map::new();
    let no_key = emu
        .raw("GET", "/v1/customers", &[("stripe-version", bad)], "")
        .await;
    out.insert("no_key".into(), answer(&no_key));
    let live_key = emu
        .raw(
            "GET",
            "/v1/customers",
            &[
                ("authorization", "Bearer sk_live_123456789"),
                ("stripe-version", bad),
            ],
            "",
        )
        .await;
    out.insert("live_key".into(), answer(&live_key));
    let unknown_route = at(&emu, "GET", &key, "/v1/nothing", "", bad).await;
    out.insert("unknown_route".into(), answer(&unknown_route));
    let unknown_param = at(&emu, "POST", &key, GRANTS, "bogus=1", bad).await;
    out.insert("unknown_parameter".into(), answer(&unknown_param));
    let broken_form = at(&emu, "POST", &key, "/v1/customers", "name=%zz", bad).await;
    out.insert("broken_form".into(), answer(&broken_form));
    assert_json_snapshot!("invalid_version_order", out);

    // Refused before the idempotency layer: the key is not spent, so the corrected retry runs.
    let refused = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/customers",
            "name=a",
            &[("stripe-version", bad), ("idempotency-key", "v1")],
        )
        .await;
    assert_eq!(refused.status, 400);
    let retried = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/customers",
            "name=a",
            &[("stripe-version", NEWEST), ("idempotency-key", "v1")],
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.header("idempotent-replayed"), None);
}

/// Before 2025-10-29.clover `category` is required: its absence is reported by the missing-param
/// pass, after unknown parameters and earlier required ones, before any value is judged.
#[tokio::test]
async fn category_is_required_before_clover() {
    let emu = Emu::start().await;
    let key = emu.tenant("category_versions").await;
    let cus = emu.customer(&key, "").await;
    let old = BEFORE_OPTIONAL_CATEGORY;
    let mut out = serde_json::Map::new();
    for (name, version, form) in [
        ("missing_category", old, grant_form(&cus, "")),
        (
            "missing_category_and_bad_currency",
            old,
            grant_form(&cus, "").replace("=usd", "=xyz"),
        ),
        (
            "missing_category_and_bad_priority",
            old,
            grant_form(&cus, "priority=500"),
        ),
        (
            "missing_amount_comes_first",
            old,
            format!("customer={cus}&applicability_config[scope][price_type]=metered"),
        ),
        (
            "unknown_parameter_comes_first",
            old,
            grant_form(&cus, "foo=1"),
        ),
        ("bad_category", old, grant_form(&cus, "category=free")),
        (
            "missing_customer_and_category",
            old,
            grant_form("", "").replace("customer=&", ""),
        ),
    ] {
        let r = at(&emu, "POST", &key, GRANTS, &form, version).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.into(), answer(&r));
    }
    assert_json_snapshot!("category_required_before_clover", out);

    // With the category, the old version creates; from 2025-10-29.clover it may be left out.
    let with_category = at(
        &emu,
        "POST",
        &key,
        GRANTS,
        &grant_form(&cus, "category=promotional"),
        old,
    )
    .await;
    assert_eq!(with_category.status, 200, "{}", with_category.text);
    assert_eq!(with_category.body["category"], json!("promotional"));
    for v in [OPTIONAL_CATEGORY, NEWEST] {
        let r = at(&emu, "POST", &key, GRANTS, &grant_form(&cus, ""), v).await;
        assert_eq!(r.status, 200, "{v}: {}", r.text);
        assert_eq!(r.body["category"], json!("paid"));
    }
}

/// Parameters a version did not have are unknown to it; `customer` was required until Accounts v2.
#[tokio::test]
async fn parameters_follow_the_version() {
    let emu = Emu::start().await;
    let key = emu.tenant("param_versions").await;
    let cus = emu.customer(&key, "").await;
    let price = emu.metered_price(&key, "calls").await;
    let prices = format!(
        "customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=100&category=paid&applicability_config[scope][prices][0][id]={price}"
    );
    let no_customer = "amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=100&category=paid&applicability_config[scope][price_type]=metered&priority=500";
    let summary = format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][prices][0][id]={price}");
    let mut out = serde_json::Map::new();
    for (name, method, path, form, version) in [
        (
            "priority_before_acacia_2025_02",
            "POST",
            GRANTS.to_string(),
            grant_form(&cus, "category=paid&priority=10"),
            FIRST_CREDITS,
        ),
        (
            "price_scope_before_acacia_2025_02",
            "POST",
            GRANTS.to_string(),
            prices.clone(),
            FIRST_CREDITS,
        ),
        (
            "summary_price_filter_before_acacia_2025_02",
            "GET",
            summary.clone(),
            String::new(),
            FIRST_CREDITS,
        ),
        (
            "missing_customer_reported_with_missing_params_before_accounts_v2",
            "POST",
            GRANTS.to_string(),
            no_customer.to_string(),
            OPTIONAL_CATEGORY,
        ),
        (
            "missing_customer_after_other_checks_since_accounts_v2",
            "POST",
            GRANTS.to_string(),
            no_customer.to_string(),
            NEWEST,
        ),
        (
            "customer_account_on_create_before_accounts_v2",
            "POST",
            GRANTS.to_string(),
            grant_form(&cus, "customer_account=acct_1"),
            OPTIONAL_CATEGORY,
        ),
        (
            "customer_account_on_create_since_accounts_v2",
            "POST",
            GRANTS.to_string(),
            grant_form(&cus, "customer_account=acct_1"),
            NEWEST,
        ),
        (
            "customer_account_on_list_before_accounts_v2",
            "GET",
            format!("{GRANTS}?customer_account=acct_1"),
            String::new(),
            OPTIONAL_CATEGORY,
        ),
        (
            "summary_without_customer_or_filter_type_before_accounts_v2",
            "GET",
            "/v1/billing/credit_balance_summary?filter[credit_grant]=credgr_x".to_string(),
            String::new(),
            OPTIONAL_CATEGORY,
        ),
        (
            "summary_without_customer_or_filter_type_since_accounts_v2",
            "GET",
            "/v1/billing/credit_balance_summary?filter[credit_grant]=credgr_x".to_string(),
            String::new(),
            NEWEST,
        ),
        (
            "transactions_customer_account_before_accounts_v2",
            "GET",
            format!(
                "/v1/billing/credit_balance_transactions?customer={cus}&customer_account=acct_1"
            ),
            String::new(),
            OPTIONAL_CATEGORY,
        ),
    ] {
        let r = at(&emu, method, &key, &path, &form, version).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.into(), answer(&r));
    }
    assert_json_snapshot!("parameters_by_version", out);

    // From 2025-02-24.acacia both are accepted.
    let acacia = "2025-02-24.acacia";
    let r = at(&emu, "POST", &key, GRANTS, &prices, acacia).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = at(&emu, "GET", &key, &summary, "", acacia).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = at(
        &emu,
        "POST",
        &key,
        GRANTS,
        &grant_form(&cus, "category=paid&priority=10"),
        acacia,
    )
    .await;
    assert_eq!(r.body["priority"], json!(10));
}

/// One metered and one price-scoped grant, read through three versions: fields a version did not
/// have are left out of its answers (retrieve, list, expand, balance summary).
#[tokio::test]
async fn fields_follow_the_version() {
    let emu = Emu::start().await;
    let key = emu.tenant("field_versions").await;
    let cus = emu.customer(&key, "").await;
    let metered = emu.grant(&key, &cus, 100, "priority=7").await;
    let price = emu.metered_price(&key, "calls").await;
    let scoped = emu
        .grant(
            &key,
            &cus,
            200,
            &format!("applicability_config[scope][prices][0][id]={price}"),
        )
        .await;
    let mut out = serde_json::Map::new();
    for version in [FIRST_CREDITS, OPTIONAL_CATEGORY, NEWEST] {
        let m = at(
            &emu,
            "GET",
            &key,
            &format!("{GRANTS}/{metered}"),
            "",
            version,
        )
        .await;
        let s = at(
            &emu,
            "GET",
            &key,
            &format!("{GRANTS}/{scoped}"),
            "",
            version,
        )
        .await;
        let summary = at(
            &emu,
            "GET",
            &key,
            &format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
            "",
            version,
        )
        .await;
        assert_eq!(m.header("stripe-version"), Some(version));
        out.insert(
            version.into(),
            json!({"metered": m.body, "price_scoped": s.body, "summary": summary.body}),
        );

        // Lists and expansions render each grant as retrieve does.
        let listed = at(&emu, "GET", &key, GRANTS, "", version).await;
        assert_eq!(listed.body["data"][0], s.body, "{version}");
        assert_eq!(listed.body["data"][1], m.body, "{version}");
        let expanded = at(
            &emu,
            "GET",
            &key,
            &format!("{GRANTS}?expand[]=data.customer"),
            "",
            version,
        )
        .await;
        let mut first = expanded.body["data"][0].clone();
        first["customer"] = json!(cus);
        assert_eq!(first, s.body, "{version}");
        let transactions = at(
            &emu,
            "GET",
            &key,
            &format!(
                "/v1/billing/credit_balance_transactions?customer={cus}&expand[]=data.credit_grant"
            ),
            "",
            version,
        )
        .await;
        assert_eq!(
            transactions.body["data"][0]["credit_grant"], s.body,
            "{version}"
        );
    }
    assert_json_snapshot!("fields_by_version", out);
}

/// `/_emulator/stripe_version` reads and sets the default a world's requests without
/// `Stripe-Version` run under; the response echoes the version applied.
#[tokio::test]
async fn the_world_default_version() {
    let emu = Emu::start().await;
    let key = emu.tenant("default_version").await;
    let other = emu.tenant("default_version_other").await;
    let cus = emu.customer(&key, "").await;
    let route = "/_emulator/stripe_version";
    let mut out = serde_json::Map::new();

    let initial = emu.get(&key, route).await;
    out.insert("initial".into(), answer(&initial));
    let plain = emu.get(&key, "/v1/customers").await;
    assert_eq!(plain.header("stripe-version"), Some(NEWEST));

    let set = emu
        .post(&key, route, &format!("version={BEFORE_OPTIONAL_CATEGORY}"))
        .await;
    out.insert("set".into(), answer(&set));
    assert_eq!(emu.get(&key, route).await.body, set.body);

    // Without the header the default applies, to validation and to the echoed header.
    let old = emu.post(&key, GRANTS, &grant_form(&cus, "")).await;
    assert_eq!(old.header("stripe-version"), Some(BEFORE_OPTIONAL_CATEGORY));
    out.insert("create_under_the_default".into(), answer(&old));
    // A request's own header wins over the default.
    let newest = at(&emu, "POST", &key, GRANTS, &grant_form(&cus, ""), NEWEST).await;
    assert_eq!(newest.status, 200, "{}", newest.text);
    assert_eq!(newest.header("stripe-version"), Some(NEWEST));
    // Another key's world keeps its own default.
    assert_eq!(
        emu.get(&other, "/v1/customers")
            .await
            .header("stripe-version"),
        Some(NEWEST)
    );

    let mut errors = serde_json::Map::new();
    for (name, form) in [
        ("unknown_version", "version=2025-09-30.acacia"),
        ("beta_flag", "version=2025-12-15.clover;some_beta=v1"),
        ("missing_version", ""),
        ("unknown_parameter", "version=2025-12-15.clover&scope=all"),
    ] {
        errors.insert(name.into(), answer(&emu.post(&key, route, form).await));
    }
    errors.insert(
        "no_key".into(),
        answer(&emu.raw("GET", route, &[], "").await),
    );
    errors.insert(
        "get_with_parameters".into(),
        answer(&emu.get(&key, &format!("{route}?version=x")).await),
    );
    out.insert("errors".into(), Value::Object(errors));

    // `version=` clears the setting; the native header reaches the same world.
    let cleared = emu
        .raw(
            "POST",
            route,
            &[
                ("x-api-key", &key),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "version=",
        )
        .await;
    out.insert("cleared".into(), answer(&cleared));
    assert_json_snapshot!("default_version_route", out);

    // A reset world starts over at the newest version.
    emu.post(&key, route, "version=2024-10-28.acacia").await;
    emu.post(&key, "/_emulator/reset", "").await;
    assert_eq!(
        emu.get(&key, route).await.body["default_version"],
        json!(NEWEST)
    );
}

/// async-stripe always sends the version it was generated for (`2026-09-30.endive`; it offers no
/// way to change it), so a world's older default never reaches it: it creates without `category`
/// and reads `customer_account` and `priority`, while a request without the header is held to the
/// default.
#[tokio::test]
async fn async_stripe_pins_its_own_version() {
    let emu = Emu::start().await;
    let key = emu.tenant("async_stripe_version").await;
    let cus = emu.customer(&key, "").await;
    let set = emu
        .post(
            &key,
            "/_emulator/stripe_version",
            "version=2024-10-28.acacia",
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let client = ClientBuilder::new(key.as_str())
        .url(emu.running.url())
        .build()
        .expect("client");
    let grant = metered_usd(300)
        .customer(cus.as_str())
        .send(&client)
        .await
        .expect("create without category under the client's own version");
    assert_eq!(grant.priority, Some(50));
    assert_eq!(grant.customer_account, None);

    let plain = emu
        .post(&key, GRANTS, &grant_form(&cus, "category=paid&priority=1"))
        .await;
    assert_eq!(plain.status, 400);
    assert_eq!(plain.body["error"]["param"], json!("priority"));
}
