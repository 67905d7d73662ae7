//! Stripe credit grants over a real socket: lifecycle, validation, and the shapes Stripe renders.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
use support::{Emu, T0};

const GRANTS: &str = "/v1/billing/credit_grants";

#[tokio::test]
async fn lifecycle_create_retrieve_update_list_expire_void() {
    let emu = Emu::start().await;
    let key = emu.tenant("lifecycle").await;
    let cus = emu.customer(&key, "email=ada%40example.com&name=Ada").await;
    let price_a = emu.metered_price(&key, "calls_a").await;
    let price_b = emu.metered_price(&key, "calls_b").await;

    // The stripe-python wire format: raw brackets, `+` for spaces, indexed arrays, expand.
    let created = emu
        .post(
            &key,
            GRANTS,
            &format!(
                "customer={cus}&amount[type]=monetary&amount[monetary][currency]=USD&amount[monetary][value]=1000\
                 &applicability_config[scope][prices][0][id]={price_a}&applicability_config[scope][prices][1][id]={price_b}\
                 &category=promotional&name=Purchased+credits&metadata[order]=42&metadata[note]=a+b%26c&expand[0]=customer"
            ),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_json_snapshot!("create_expanded", created.body);
    let id = created.id();

    let retrieved = emu.get(&key, &format!("{GRANTS}/{id}")).await;
    assert_eq!(retrieved.status, 200);
    assert_eq!(retrieved.body["customer"], json!(cus));
    assert_eq!(retrieved.body["priority"], json!(50));

    // Metadata merges; an empty value unsets one key; expires_at moves.
    let later = T0 + 86_400;
    let updated = emu
        .post(
            &key,
            &format!("{GRANTS}/{id}"),
            &format!("expires_at={later}&metadata[order]=&metadata[extra]=1"),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["expires_at"], json!(later));
    assert_eq!(
        updated.body["metadata"],
        json!({"note": "a b&c", "extra": "1"})
    );

    // `expires_at=` clears the expiry; `metadata=` clears all metadata.
    let cleared = emu
        .post(&key, &format!("{GRANTS}/{id}"), "expires_at=&metadata=")
        .await;
    assert_eq!(cleared.body["expires_at"], Value::Null);
    assert_eq!(cleared.body["metadata"], json!({}));

    let second = emu.grant(&key, &cus, 500, "priority=10").await;
    let listed = emu.get(&key, &format!("{GRANTS}?customer={cus}")).await;
    assert_json_snapshot!("list_by_customer", listed.body);

    let expired = emu.post(&key, &format!("{GRANTS}/{id}/expire"), "").await;
    assert_eq!(expired.status, 200);
    assert_eq!(expired.body["expires_at"], json!(T0));
    assert_eq!(expired.body["updated"], json!(T0));

    let voided = emu.post(&key, &format!("{GRANTS}/{second}/void"), "").await;
    assert_json_snapshot!("voided", voided.body);
}

#[tokio::test]
async fn defaults_and_time_fields() {
    let emu = Emu::start().await;
    let key = emu.tenant("defaults").await;
    let cus = emu.customer(&key, "").await;
    let g = emu
        .post(
            &key,
            GRANTS,
            &format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=jpy&amount[monetary][value]=7&applicability_config[scope][price_type]=metered&effective_at={}&expires_at={}", T0 + 60, T0 + 120),
        )
        .await;
    assert_json_snapshot!("defaults_future_effective", g.body);
}

/// Every create-time check, in one reviewed snapshot: name → whole response (status and body).
#[tokio::test]
async fn create_validation_errors() {
    let emu = Emu::start().await;
    let key = emu.tenant("validation").await;
    let cus = emu.customer(&key, "").await;
    let base = format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=100");
    let scope = "applicability_config[scope][price_type]=metered";
    let cases: Vec<(&str, String)> = vec![
        ("empty_body", String::new()),
        ("unknown_top_level", format!("{base}&{scope}&foo=1")),
        ("unknown_nested", format!("{base}&{scope}&amount[foo]=1")),
        ("unknown_deep", format!("{base}&applicability_config[scope][prices][0][idx]=p")),
        ("missing_amount", format!("customer={cus}&{scope}")),
        ("missing_amount_type", format!("customer={cus}&amount[monetary][currency]=usd&amount[monetary][value]=1&{scope}")),
        ("missing_monetary", format!("customer={cus}&amount[type]=monetary&{scope}")),
        ("missing_currency", format!("customer={cus}&amount[type]=monetary&amount[monetary][value]=1&{scope}")),
        ("missing_applicability", base.clone()),
        ("missing_customer", format!("amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=100&{scope}")),
        ("bad_amount_type", format!("customer={cus}&amount[type]=credits&{scope}")),
        ("bad_currency", format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=xyz&amount[monetary][value]=1&{scope}")),
        ("value_not_integer", format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=10.5&{scope}")),
        ("value_zero", format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=0&{scope}")),
        ("value_negative", format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=-5&{scope}")),
        ("value_beyond_64_bits", format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=99999999999999999999&{scope}")),
        ("bad_category", format!("{base}&{scope}&category=free")),
        ("bad_price_type", format!("{base}&applicability_config[scope][price_type]=licensed")),
        ("both_scopes", format!("{base}&{scope}&applicability_config[scope][prices][0][id]=p")),
        ("neither_scope", format!("{base}&applicability_config[scope][prices]=")),
        ("empty_scope", format!("{base}&applicability_config[scope]=")),
        ("too_many_prices", format!("{base}&{}", (0..21).map(|i| format!("applicability_config[scope][prices][{i}][id]=p{i}")).collect::<Vec<_>>().join("&"))),
        ("price_without_id", format!("{base}&applicability_config[scope][prices][0][id]=")),
        ("priority_above_100", format!("{base}&{scope}&priority=101")),
        ("priority_negative", format!("{base}&{scope}&priority=-1")),
        ("name_too_long", format!("{base}&{scope}&name={}", "n".repeat(101))),
        ("no_such_customer", format!("customer=cus_nope&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&{scope}")),
        ("expires_before_effective", format!("{base}&{scope}&effective_at={T0}&expires_at={}", T0 - 1)),
        ("expires_equals_effective", format!("{base}&{scope}&effective_at={T0}&expires_at={T0}")),
        ("effective_at_not_integer", format!("{base}&{scope}&effective_at=tomorrow")),
        ("timestamp_out_of_range", format!("{base}&{scope}&effective_at=99999999999999")),
        ("metadata_not_a_hash", format!("{base}&{scope}&metadata=abc")),
        ("metadata_key_too_long", format!("{base}&{scope}&metadata[{}]=v", "k".repeat(41))),
        ("metadata_value_too_long", format!("{base}&{scope}&metadata[k]={}", "v".repeat(501))),
        ("metadata_51_keys", format!("{base}&{scope}&{}", (0..51).map(|i| format!("metadata[k{i}]=v")).collect::<Vec<_>>().join("&"))),
        ("customer_account_unsupported", format!("{base}&{scope}&customer_account=acct_1")),
        ("bad_expand", format!("{base}&{scope}&expand[]=amount")),
        // Several faults at once: the first in Stripe's order is reported. Parameter checks
        // (priority, metadata keys and their number) come before the customer lookup, and the
        // lookup before timestamps.
        ("long_metadata_key_and_no_such_customer", format!("customer=cus_nope&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&{scope}&metadata[{}]=v", "k".repeat(41))),
        ("bad_priority_and_no_such_customer", format!("customer=cus_nope&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&{scope}&priority=101")),
        ("no_such_customer_and_bad_timestamp", format!("customer=cus_nope&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&{scope}&effective_at=99999999999999")),
        ("no_such_customer_and_51_metadata_keys", format!("customer=cus_nope&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&{scope}&{}", (0..51).map(|i| format!("metadata[k{i}]=v")).collect::<Vec<_>>().join("&"))),
        ("expiry_and_51_metadata_keys", format!("{base}&{scope}&effective_at={T0}&expires_at={T0}&{}", (0..51).map(|i| format!("metadata[k{i}]=v")).collect::<Vec<_>>().join("&"))),
        ("shape_conflict", format!("{base}&{scope}&name=a&name[x]=b")),
        ("broken_percent_encoding", format!("{base}&{scope}&name=%ZZ")),
    ];
    let mut out = serde_json::Map::new();
    for (name, form) in cases {
        let r = emu.post(&key, GRANTS, &form).await;
        assert!(
            (400..500).contains(&r.status),
            "{name}: {} {}",
            r.status,
            r.text
        );
        out.insert(
            name.to_string(),
            json!({"status": r.status, "body": r.body}),
        );
    }
    assert_json_snapshot!("create_errors", out);
    // None of them created anything.
    let listed = emu.get(&key, GRANTS).await;
    assert_eq!(listed.body["data"], json!([]));
}

/// A price scope names prices of the catalogue that bill usage: each must exist and be metered
/// with a meter, on a grant, in the balance summary's filter and in a credit balance alert's.
#[tokio::test]
async fn price_scopes_name_existing_metered_prices() {
    let emu = Emu::start().await;
    let key = emu.tenant("price_scopes").await;
    let cus = emu.customer(&key, "").await;
    let metered = emu.metered_price(&key, "calls").await;
    let licensed = emu
        .post(
            &key,
            "/v1/prices",
            "currency=usd&unit_amount=900&product_data[name]=Seat&recurring[interval]=month",
        )
        .await
        .id();
    let one_time = emu
        .post(
            &key,
            "/v1/prices",
            "currency=usd&unit_amount=2500&product_data[name]=Pack",
        )
        .await
        .id();
    let grant = format!(
        "customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=100"
    );
    let scope = |ids: &[&str]| -> String {
        ids.iter()
            .enumerate()
            .map(|(i, id)| format!("&applicability_config[scope][prices][{i}][id]={id}"))
            .collect()
    };
    let summary = |ids: &[&str]| -> String {
        let filter: String = ids
            .iter()
            .enumerate()
            .map(|(i, id)| format!("&filter[applicability_scope][prices][{i}][id]={id}"))
            .collect();
        format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope{filter}")
    };
    let alert = |id: &str| -> String {
        format!(
            "alert_type=credit_balance_threshold&title=Low&credit_balance_threshold[filters][0][type]=customer\
             &credit_balance_threshold[filters][0][customer]={cus}\
             &credit_balance_threshold[filters][0][credit_grants][applicability_config][scope][prices][0][id]={id}\
             &credit_balance_threshold[lte][balance_type]=monetary&credit_balance_threshold[lte][monetary][currency]=usd\
             &credit_balance_threshold[lte][monetary][value]=10"
        )
    };

    let mut out = serde_json::Map::new();
    for (name, r) in [
        (
            "grant_unknown_price",
            emu.post(
                &key,
                GRANTS,
                &format!("{grant}{}", scope(&[&metered, "price_nope"])),
            )
            .await,
        ),
        (
            "grant_licensed_price",
            emu.post(&key, GRANTS, &format!("{grant}{}", scope(&[&licensed])))
                .await,
        ),
        (
            "grant_one_time_price",
            emu.post(&key, GRANTS, &format!("{grant}{}", scope(&[&one_time])))
                .await,
        ),
        // The customer is looked up first.
        (
            "grant_unknown_customer_first",
            emu.post(
                &key,
                GRANTS,
                &format!(
                    "{}{}",
                    grant.replace(&cus, "cus_nope"),
                    scope(&["price_nope"])
                ),
            )
            .await,
        ),
        (
            "summary_unknown_price",
            emu.get(&key, &summary(&["price_nope"])).await,
        ),
        (
            "summary_licensed_price",
            emu.get(&key, &summary(&[&metered, &licensed])).await,
        ),
        (
            "alert_unknown_price",
            emu.post(&key, "/v1/billing/alerts", &alert("price_nope"))
                .await,
        ),
    ] {
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    assert_json_snapshot!("price_scope_errors", out);

    let ok = emu
        .post(&key, GRANTS, &format!("{grant}{}", scope(&[&metered])))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        ok.body["applicability_config"]["scope"],
        json!({"prices": [{"id": metered}]})
    );
    let r = emu.get(&key, &summary(&[&metered])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["balances"][0]["available_balance"]["monetary"]["value"],
        100
    );
    let r = emu.post(&key, "/v1/billing/alerts", &alert(&metered)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn update_expire_void_rules() {
    let emu = Emu::start().await;
    let key = emu.tenant("rules").await;
    let cus = emu.customer(&key, "").await;
    let g = emu.grant(&key, &cus, 100, "").await;
    let path = format!("{GRANTS}/{g}");
    let mut out = serde_json::Map::new();
    for (name, method_path, form) in [
        (
            "update_unknown_param",
            path.clone(),
            "amount[type]=monetary",
        ),
        ("update_bad_expires_at", path.clone(), "expires_at=soon"),
        (
            "update_expires_before_effective",
            path.clone(),
            "expires_at=1",
        ),
        (
            "retrieve_missing",
            format!("{GRANTS}/credgr_test_0000000000000000000000000Z"),
            "",
        ),
        ("void_missing", format!("{GRANTS}/credgr_nope/void"), ""),
        ("expire_unknown_param", format!("{path}/expire"), "at=1"),
    ] {
        let method = if name.starts_with("retrieve") {
            "GET"
        } else {
            "POST"
        };
        let r = emu.stripe(method, &key, &method_path, form).await;
        out.insert(name.into(), json!({"status": r.status, "body": r.body}));
    }
    let first_void = emu.post(&key, &format!("{path}/void"), "").await;
    assert_eq!(first_void.status, 200);
    for (name, suffix, form) in [
        ("void_twice", "/void", ""),
        ("update_voided", "", "metadata[a]=b"),
    ] {
        let r = emu.post(&key, &format!("{path}{suffix}"), form).await;
        out.insert(name.into(), json!({"status": r.status, "body": r.body}));
    }
    // A voided grant can still be expired (Stripe documents it); then it cannot be expired again.
    let expire = emu.post(&key, &format!("{path}/expire"), "").await;
    assert_eq!(expire.status, 200, "{}", expire.text);
    let again = emu.post(&key, &format!("{path}/expire"), "").await;
    out.insert(
        "expire_twice".into(),
        json!({"status": again.status, "body": again.body}),
    );
    assert_json_snapshot!("rule_errors", out);
}

#[tokio::test]
async fn list_pagination_and_filters() {
    let emu = Emu::start().await;
    let key = emu.tenant("pages").await;
    let a = emu.customer(&key, "").await;
    let b = emu.customer(&key, "").await;
    let mut a_grants = Vec::new();
    for i in 0..5 {
        a_grants.push(emu.grant(&key, &a, 100 + i, "").await);
        emu.grant(&key, &b, 1, "").await;
    }
    let newest_first: Vec<String> = a_grants.iter().rev().cloned().collect();
    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect()
    };

    let p1 = emu
        .get(&key, &format!("{GRANTS}?customer={a}&limit=2"))
        .await;
    assert_eq!(ids(&p1.body), newest_first[..2]);
    assert_eq!(p1.body["has_more"], json!(true));
    assert_eq!(p1.body["url"], json!("/v1/billing/credit_grants"));
    let p2 = emu
        .get(
            &key,
            &format!(
                "{GRANTS}?customer={a}&limit=2&starting_after={}",
                newest_first[1]
            ),
        )
        .await;
    assert_eq!(ids(&p2.body), newest_first[2..4]);
    let p3 = emu
        .get(
            &key,
            &format!(
                "{GRANTS}?customer={a}&limit=2&starting_after={}",
                newest_first[3]
            ),
        )
        .await;
    assert_eq!(ids(&p3.body), newest_first[4..]);
    assert_eq!(p3.body["has_more"], json!(false));
    // ending_before walks back towards newer objects, still shown newest first.
    let back = emu
        .get(
            &key,
            &format!(
                "{GRANTS}?customer={a}&limit=2&ending_before={}",
                newest_first[4]
            ),
        )
        .await;
    assert_eq!(ids(&back.body), newest_first[2..4]);
    assert_eq!(back.body["has_more"], json!(true));

    let all = emu.get(&key, &format!("{GRANTS}?limit=100")).await;
    assert_eq!(ids(&all.body).len(), 10);
    let default_limit = emu.get(&key, GRANTS).await;
    assert_eq!(ids(&default_limit.body).len(), 10);

    let mut out = serde_json::Map::new();
    for (name, q) in [
        ("limit_zero", "limit=0".to_string()),
        ("limit_101", "limit=101".to_string()),
        ("limit_text", "limit=ten".to_string()),
        (
            "both_cursors",
            format!(
                "starting_after={}&ending_before={}",
                a_grants[0], a_grants[1]
            ),
        ),
        (
            "unknown_cursor",
            "starting_after=credgr_test_nope".to_string(),
        ),
        ("unknown_customer", "customer=cus_nope".to_string()),
        ("unknown_param", "status=active".to_string()),
    ] {
        let r = emu.get(&key, &format!("{GRANTS}?{q}")).await;
        out.insert(name.into(), json!({"status": r.status, "body": r.body}));
    }
    assert_json_snapshot!("list_errors", out);

    let expanded = emu
        .get(
            &key,
            &format!("{GRANTS}?customer={a}&limit=1&expand[]=data.customer"),
        )
        .await;
    assert_eq!(expanded.body["data"][0]["customer"]["id"], json!(a));
}

#[tokio::test]
async fn test_clock_customers_carry_their_clock() {
    let emu = Emu::start().await;
    let key = emu.tenant("clocked").await;
    let clock = emu
        .post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={}&name=ci", T0 - 3600),
        )
        .await;
    assert_eq!(clock.status, 200, "{}", clock.text);
    let clock_id = clock.id();
    let cus = emu.customer(&key, &format!("test_clock={clock_id}")).await;
    let g = emu
        .post(
            &key,
            GRANTS,
            &format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=5&applicability_config[scope][price_type]=metered&expand[]=test_clock"),
        )
        .await;
    assert_eq!(g.body["test_clock"]["id"], json!(clock_id));
    // "now" for this customer is the clock's frozen time, not the tenant's.
    assert_eq!(g.body["created"], json!(T0 - 3600));
    assert_eq!(g.body["effective_at"], json!(T0 - 3600));
}
