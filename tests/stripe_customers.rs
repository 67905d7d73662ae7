//! Stripe customers: the fields SDK users set in test setup, `created` list filters (customers and
//! credit grants), and customer search, over real sockets.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Map, Value};
use support::{Emu, T0};

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `{status, body}` of each request, by name, for one snapshot of many errors.
async fn answers(emu: &Emu, key: &str, cases: &[(&str, &str, String, &str)]) -> Value {
    let mut out = Map::new();
    for (name, method, path, form) in cases {
        let r = emu.stripe(method, key, path, form).await;
        assert!(r.status >= 400, "{name} should fail: {}", r.text);
        out.insert(
            name.to_string(),
            json!({"status": r.status, "body": r.body}),
        );
    }
    Value::Object(out)
}

const FULL: &str = "email=ada%40example.com&name=Ada&business_name=Analytical+Engines+Ltd\
&individual_name=Augusta+Ada+King\
&address[line1]=12+St+James%27s+Sq&address[city]=London&address[postal_code]=SW1Y+4JH&address[country]=GB\
&shipping[name]=Ada+Lovelace&shipping[phone]=%2B44+20+7946+0000\
&shipping[address][line1]=1+Dorset+St&shipping[address][city]=London&shipping[address][country]=GB\
&preferred_locales[0]=en-GB&preferred_locales[1]=fr\
&invoice_prefix=ADA42&next_invoice_sequence=7&balance=-500&tax_exempt=reverse\
&invoice_settings[custom_fields][0][name]=PO&invoice_settings[custom_fields][0][value]=4711\
&invoice_settings[custom_fields][1][name]=VAT&invoice_settings[custom_fields][1][value]=GB123\
&invoice_settings[default_payment_method]=pm_card_visa&invoice_settings[footer]=Thank+you\
&invoice_settings[rendering_options][amount_tax_display]=exclude_tax";

#[tokio::test]
async fn every_field_round_trips_in_stripes_shape() {
    let emu = Emu::start().await;
    let key = emu.tenant("customer_fields").await;
    let created = emu.post(&key, "/v1/customers", FULL).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_json_snapshot!("full_customer", created.body);
    let id = created.id();
    assert_eq!(
        emu.get(&key, &format!("/v1/customers/{id}")).await.body,
        created.body
    );

    // A customer with nothing set: Stripe's defaults, a generated 8-character prefix.
    let plain = emu.post(&key, "/v1/customers", "").await.body;
    let prefix = plain["invoice_prefix"].as_str().unwrap_or_default();
    assert_eq!(prefix.len(), 8, "{prefix}");
    assert!(prefix
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    assert_eq!(plain["next_invoice_sequence"], json!(1));
    assert_eq!(plain["tax_exempt"], json!("none"));
    assert_eq!(plain["preferred_locales"], json!([]));
    assert!(plain.get("business_name").is_none() && plain.get("individual_name").is_none());

    // Hashes given whole replace; invoice_settings changes only what it names; "" clears.
    let updated = emu
        .post(
            &key,
            &format!("/v1/customers/{id}"),
            "address[city]=Paris&invoice_settings[footer]=Merci\
             &invoice_settings[custom_fields]=&invoice_settings[rendering_options][template]=inrtem_1\
             &shipping=&preferred_locales=&tax_exempt=&business_name=&balance=250\
             &invoice_prefix=LOVELACE&next_invoice_sequence=12",
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_json_snapshot!("full_customer_updated", updated.body);

    let cleared = emu
        .post(
            &key,
            &format!("/v1/customers/{id}"),
            "address=&invoice_settings[rendering_options]=&invoice_settings[default_payment_method]=",
        )
        .await
        .body;
    assert_eq!(cleared["address"], Value::Null);
    assert_eq!(
        cleared["invoice_settings"],
        json!({"custom_fields": null, "default_payment_method": null, "footer": "Merci", "rendering_options": null})
    );
    // Fields the update did not name are kept.
    assert_eq!(cleared["invoice_prefix"], json!("LOVELACE"));
    assert_eq!(cleared["individual_name"], json!("Augusta Ada King"));
}

#[tokio::test]
async fn field_errors_match_stripes_rules() {
    let emu = Emu::start().await;
    let key = emu.tenant("customer_field_errors").await;
    let cus = emu.customer(&key, "").await;
    let five: String = (0..5)
        .map(|i| {
            format!("&invoice_settings[custom_fields][{i}][name]=n{i}&invoice_settings[custom_fields][{i}][value]=v")
        })
        .collect();
    let post = "/v1/customers".to_string();
    let update = format!("/v1/customers/{cus}");
    let long_name = format!(
        "invoice_settings[custom_fields][0][name]={}&invoice_settings[custom_fields][0][value]=v",
        "n".repeat(41)
    );
    let long_value = format!(
        "invoice_settings[custom_fields][0][name]=n&invoice_settings[custom_fields][0][value]={}",
        "v".repeat(141)
    );
    let long_business = format!("business_name={}", "b".repeat(151));
    let cases = [
        (
            "prefix_too_short",
            "POST",
            post.clone(),
            "invoice_prefix=AB",
        ),
        (
            "prefix_too_long",
            "POST",
            post.clone(),
            "invoice_prefix=ABCDEFGHIJKLM",
        ),
        (
            "prefix_lower_case",
            "POST",
            post.clone(),
            "invoice_prefix=abc1",
        ),
        ("prefix_cleared", "POST", update.clone(), "invoice_prefix="),
        ("five_custom_fields", "POST", post.clone(), &five[1..]),
        (
            "custom_field_name_too_long",
            "POST",
            post.clone(),
            &long_name,
        ),
        (
            "custom_field_value_too_long",
            "POST",
            post.clone(),
            &long_value,
        ),
        (
            "custom_field_without_value",
            "POST",
            post.clone(),
            "invoice_settings[custom_fields][0][name]=PO",
        ),
        (
            "shipping_without_address",
            "POST",
            post.clone(),
            "shipping[name]=Ada",
        ),
        (
            "shipping_without_name",
            "POST",
            post.clone(),
            "shipping[address][city]=London",
        ),
        (
            "shipping_with_empty_name",
            "POST",
            update.clone(),
            "shipping[name]=&shipping[address][city]=London",
        ),
        (
            "tax_exempt_unknown",
            "POST",
            post.clone(),
            "tax_exempt=sometimes",
        ),
        (
            "amount_tax_display_unknown",
            "POST",
            post.clone(),
            "invoice_settings[rendering_options][amount_tax_display]=both",
        ),
        ("balance_not_integer", "POST", post.clone(), "balance=1.5"),
        (
            "next_invoice_sequence_zero",
            "POST",
            update.clone(),
            "next_invoice_sequence=0",
        ),
        (
            "business_name_too_long",
            "POST",
            post.clone(),
            &long_business,
        ),
        (
            "address_unknown_part",
            "POST",
            post.clone(),
            "address[zip]=1",
        ),
        (
            "locales_as_hash",
            "POST",
            post.clone(),
            "preferred_locales[first]=en",
        ),
        (
            "payment_method_unsupported",
            "POST",
            post.clone(),
            "payment_method=pm_card_visa",
        ),
        (
            "cash_balance_unsupported",
            "POST",
            update.clone(),
            "cash_balance[settings][reconciliation_mode]=manual",
        ),
        (
            "default_source_unsupported",
            "POST",
            update.clone(),
            "default_source=card_1",
        ),
    ];
    let out = answers(&emu, &key, &cases).await;
    assert_json_snapshot!("field_errors", out);
    // Nothing was created or changed by the refused requests.
    let listed = emu.get(&key, "/v1/customers").await.body;
    assert_eq!(ids(&listed), vec![cus.clone()]);
    assert_eq!(listed["data"][0]["next_invoice_sequence"], json!(1));
}

/// Customers created one per `step` seconds from `T0`, oldest first.
async fn customers_over_time(emu: &Emu, key: &str, n: i64, step: i64, form: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        emu.freeze(key, T0 + i * step).await;
        out.push(emu.customer(key, form).await);
    }
    out
}

#[tokio::test]
async fn customers_list_filters_on_created() {
    let emu = Emu::start().await;
    let key = emu.tenant("customers_created").await;
    // c[i] is created at T0 + 10 i.
    let c = customers_over_time(&emu, &key, 6, 10, "email=same%40example.com").await;
    let other = emu.customer(&key, "email=other%40example.com").await; // at T0 + 50, like c[5]
    let list = |q: String| {
        let emu = &emu;
        let key = key.clone();
        async move {
            let r = emu.get(&key, &format!("/v1/customers?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            r.body
        }
    };
    let rev = |v: &[&String]| v.iter().rev().map(|s| s.to_string()).collect::<Vec<_>>();

    assert_eq!(
        ids(&list(format!("created[gte]={}", T0 + 20)).await),
        [vec![other.clone()], rev(&[&c[2], &c[3], &c[4], &c[5]])].concat()
    );
    assert_eq!(
        ids(&list(format!("created[gt]={}&created[lt]={}", T0 + 10, T0 + 40)).await),
        rev(&[&c[2], &c[3]])
    );
    assert_eq!(
        ids(&list(format!("created[lte]={}", T0 + 10)).await),
        rev(&[&c[0], &c[1]])
    );
    assert_eq!(
        ids(&list(format!("created={}", T0 + 30)).await),
        vec![c[3].clone()]
    );
    assert_eq!(
        ids(&list(format!("created={}", T0 + 31)).await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&list(format!("created[gt]={}&created[lt]={}", T0 + 30, T0 + 31)).await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&list(format!("created[gt]={}", T0 + 50)).await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&list(format!("created[lt]={T0}")).await),
        Vec::<String>::new()
    );
    // Bounds far outside the model's years are just bounds.
    assert_eq!(
        ids(&list(format!("created[lt]={}&limit=100", i64::MAX)).await).len(),
        7
    );
    assert_eq!(
        ids(&list(format!("created[gt]={}", i64::MIN)).await).len(),
        7
    );
    // With the email filter, and paged in both directions inside the range.
    let q = format!(
        "email=same%40example.com&created[gte]={}&created[lte]={}",
        T0 + 10,
        T0 + 40
    );
    let first = list(format!("{q}&limit=2")).await;
    assert_eq!(ids(&first), rev(&[&c[3], &c[4]]));
    assert_eq!(first["has_more"], json!(true));
    let second = list(format!("{q}&limit=2&starting_after={}", c[3])).await;
    assert_eq!(ids(&second), rev(&[&c[1], &c[2]]));
    assert_eq!(second["has_more"], json!(false));
    let back = list(format!("{q}&limit=2&ending_before={}", c[2])).await;
    assert_eq!(ids(&back), rev(&[&c[3], &c[4]]));
    assert_eq!(back["has_more"], json!(false));
    let back = list(format!("{q}&limit=1&ending_before={}", c[2])).await;
    assert_eq!(ids(&back), vec![c[3].clone()]);
    assert_eq!(back["has_more"], json!(true));
    // A cursor outside the range pages from where it stands.
    let past = list(format!("{q}&starting_after={}", c[0])).await;
    assert_eq!(ids(&past), Vec::<String>::new());

    // Customers on a test clock live at the clock's time, even in the past.
    let clock = emu
        .post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={}", T0 - 1_000),
        )
        .await
        .id();
    let early = emu.customer(&key, &format!("test_clock={clock}")).await;
    let r = emu
        .post(
            &key,
            &format!("/v1/test_helpers/test_clocks/{clock}/advance"),
            &format!("frozen_time={}", T0 - 500),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let late = emu.customer(&key, &format!("test_clock={clock}")).await;
    assert_eq!(
        ids(&list(format!("test_clock={clock}&created[lt]={}", T0 - 500)).await),
        vec![early.clone()]
    );
    assert_eq!(
        ids(&list(format!("test_clock={clock}&created[gte]={}", T0 - 500)).await),
        vec![late.clone()]
    );
    assert_eq!(
        ids(&list(format!("created[lt]={T0}")).await),
        Vec::<String>::new()
    );

    let cases = [
        (
            "not_an_integer",
            "GET",
            "/v1/customers?created[gte]=yesterday".to_string(),
            "",
        ),
        (
            "decimal",
            "GET",
            "/v1/customers?created=1.5".to_string(),
            "",
        ),
        ("empty", "GET", "/v1/customers?created=".to_string(), ""),
        (
            "unknown_operator",
            "GET",
            "/v1/customers?created[foo]=1".to_string(),
            "",
        ),
        (
            "nested",
            "GET",
            "/v1/customers?created[gt][x]=1".to_string(),
            "",
        ),
        (
            "as_array",
            "GET",
            "/v1/customers?created[]=1".to_string(),
            "",
        ),
    ];
    assert_json_snapshot!("created_errors", answers(&emu, &key, &cases).await);
}

#[tokio::test]
async fn credit_grant_list_filters_on_created() {
    let emu = Emu::start().await;
    let key = emu.tenant("grants_created").await;
    let a = emu.customer(&key, "").await;
    let b = emu.customer(&key, "").await;
    let mut a_grants = Vec::new();
    let mut b_grants = Vec::new();
    for i in 0..4 {
        emu.freeze(&key, T0 + 100 * i).await;
        a_grants.push(emu.grant(&key, &a, 10, "").await);
        b_grants.push(emu.grant(&key, &b, 10, "").await);
    }
    // A grant of a customer on a test clock in the past: newest key, oldest `created`.
    let clock = emu
        .post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={}", T0 - 3_600),
        )
        .await
        .id();
    let clocked = emu.customer(&key, &format!("test_clock={clock}")).await;
    let old = emu.grant(&key, &clocked, 10, "").await;

    let list = |q: String| {
        let emu = &emu;
        let key = key.clone();
        async move {
            let r = emu
                .get(&key, &format!("/v1/billing/credit_grants?{q}"))
                .await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            r.body
        }
    };
    assert_eq!(
        ids(&list(format!("customer={a}&created[gte]={}", T0 + 100)).await),
        vec![
            a_grants[3].clone(),
            a_grants[2].clone(),
            a_grants[1].clone()
        ]
    );
    assert_eq!(
        ids(&list(format!("customer={b}&created={}", T0 + 200)).await),
        vec![b_grants[2].clone()]
    );
    let page = list(format!("customer={a}&created[lt]={}&limit=1", T0 + 300)).await;
    assert_eq!(ids(&page), vec![a_grants[2].clone()]);
    assert_eq!(page["has_more"], json!(true));
    // The clock's grant is found by its own time, not by its key; the whole list leaves it out,
    // as Stripe's lists of everything leave out a test clock's objects.
    assert_eq!(
        ids(&list(format!("customer={clocked}&created[lt]={T0}")).await),
        vec![old.clone()]
    );
    assert_eq!(
        ids(&list(format!("created[lt]={T0}")).await),
        Vec::<String>::new()
    );
    assert!(!ids(&list(String::new()).await).contains(&old));
    assert_eq!(
        ids(&list(format!("created[gte]={}", T0 + 300)).await),
        vec![b_grants[3].clone(), a_grants[3].clone()]
    );
    assert_eq!(
        ids(&list(format!("created[lte]={}&limit=3", T0 + 100)).await),
        vec![
            b_grants[1].clone(),
            a_grants[1].clone(),
            b_grants[0].clone()
        ]
    );
    let err = emu
        .get(&key, "/v1/billing/credit_grants?created[lte]=soon")
        .await;
    assert_eq!(err.status, 400);
    assert_eq!(err.body["error"]["param"], json!("created[lte]"));
    assert_eq!(
        err.body["error"]["code"],
        json!("parameter_invalid_integer")
    );
    let err = emu
        .get(&key, "/v1/billing/credit_grants?created[since]=1")
        .await;
    assert_eq!(err.body["error"]["code"], json!("parameter_unknown"));
    assert_eq!(err.body["error"]["param"], json!("created[since]"));
}

/// Every page of a search, following `next_page`.
async fn search_all(emu: &Emu, key: &str, query: String, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut page: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!(
            "/v1/customers/search?query={}&limit={limit}",
            encode(&query)
        );
        if let Some(p) = &page {
            path.push_str(&format!("&page={p}"));
        }
        let r = emu.get(key, &path).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        let got = ids(&r.body);
        assert!(got.len() <= limit);
        out.extend(got);
        match r.body["next_page"].as_str() {
            Some(p) => {
                assert_eq!(r.body["has_more"], json!(true));
                page = Some(p.to_string());
            }
            None => {
                assert_eq!(r.body["has_more"], json!(false));
                return out;
            }
        }
    }
    panic!("search did not end: {query}");
}

/// Percent-encodes a query for the URL.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn search_answers_stripes_query_language() {
    let emu = Emu::start().await;
    let key = emu.tenant("customer_search").await;
    let ada = emu
        .customer(
            &key,
            "email=Ada%40Example.com&name=Ada+Lovelace&phone=%2B15550100&metadata[tier]=gold&metadata[region]=eu",
        )
        .await;
    emu.freeze(&key, T0 + 60).await;
    let grace = emu
        .customer(
            &key,
            "email=grace%40example.com&name=Grace+Hopper&metadata[tier]=silver",
        )
        .await;
    emu.freeze(&key, T0 + 120).await;
    let alan = emu
        .customer(&key, "name=Alan+Turing&metadata[tier]=gold")
        .await;
    let gone = emu
        .customer(&key, "email=gone%40example.com&name=Ada+Gone")
        .await;
    assert_eq!(
        emu.delete(&key, &format!("/v1/customers/{gone}"))
            .await
            .status,
        200
    );
    let clock = emu
        .post(
            &key,
            "/v1/test_helpers/test_clocks",
            &format!("frozen_time={}", T0 - 86_400),
        )
        .await
        .id();
    let clocked = emu
        .customer(&key, &format!("test_clock={clock}&name=Clocked+Ada"))
        .await;

    let search = |q: &str| search_all(&emu, &key, q.to_string(), 10);
    assert_eq!(
        search(r#"email:"ada@example.com""#).await,
        vec![ada.clone()]
    );
    assert_eq!(search("email:'ADA@EXAMPLE.COM'").await, vec![ada.clone()]);
    assert_eq!(
        search(r#"name~"ada""#).await,
        vec![clocked.clone(), ada.clone()],
        "substring, any case; deleted customers never match; test clock customers do"
    );
    assert_eq!(
        search(r#"metadata["tier"]:"gold""#).await,
        vec![alan.clone(), ada.clone()]
    );
    assert_eq!(
        search(r#"metadata["tier"]:"Gold""#).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(r#"metadata["tier"]:"gold" AND -email:null"#).await,
        vec![ada.clone()]
    );
    assert_eq!(
        search(r#"metadata["region"]:null metadata["tier"]:"gold""#).await,
        vec![alan.clone()]
    );
    assert_eq!(
        search(r#"phone:"+15550100" or name:"grace hopper""#).await,
        vec![grace.clone(), ada.clone()]
    );
    assert_eq!(
        search(&format!("created>={T0} AND created<{}", T0 + 120)).await,
        vec![grace.clone(), ada.clone()]
    );
    assert_eq!(
        search(&format!("created<{T0}")).await,
        vec![clocked.clone()]
    );
    assert_eq!(
        search(r#"-metadata["tier"]:"gold""#).await,
        vec![clocked.clone(), grace.clone()]
    );

    // Pages of two, newest first, through next_page; the same set as one page.
    let everyone = search_all(&emu, &key, "-name:null".into(), 2).await;
    assert_eq!(
        everyone,
        vec![clocked.clone(), alan.clone(), grace.clone(), ada.clone()]
    );

    let first = emu
        .get(
            &key,
            &format!(
                "/v1/customers/search?query={}&limit=1&expand[]=total_count&expand[]=data.test_clock",
                encode(r#"name~"ada""#)
            ),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_json_snapshot!("search_first_page", first.body);
    let page = first.body["next_page"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let second = emu
        .get(
            &key,
            &format!(
                "/v1/customers/search?query={}&limit=1&page={page}",
                encode(r#"name~"ada""#)
            ),
        )
        .await;
    assert_eq!(ids(&second.body), vec![ada.clone()]);
    assert_eq!(second.body["next_page"], Value::Null);
    assert!(second.body.get("total_count").is_none());

    let q = |text: &str| format!("/v1/customers/search?query={}", encode(text));
    let cases = [
        (
            "missing_query",
            "GET",
            "/v1/customers/search".to_string(),
            "",
        ),
        (
            "empty_query",
            "GET",
            "/v1/customers/search?query=".to_string(),
            "",
        ),
        ("blank_query", "GET", q("   "), ""),
        ("unsupported_field", "GET", q(r#"description:"x""#), ""),
        ("unquoted_string", "GET", q("email:ada@example.com"), ""),
        (
            "mixed_and_or",
            "GET",
            q(r#"name:"a" AND email:"b" OR phone:"c""#),
            "",
        ),
        ("short_substring", "GET", q(r#"name~"ad""#), ""),
        ("operator_not_for_field", "GET", q(r#"email>"a""#), ""),
        ("numeric_field_with_text", "GET", q("created>yesterday"), ""),
        ("unclosed_quote", "GET", q(r#"name:"Ada"#), ""),
        (
            "eleven_clauses",
            "GET",
            q(&[r#"name:"x""#; 11].join(" ")),
            "",
        ),
        (
            "page_of_another_query",
            "GET",
            format!("{}&page={page}", q(r#"name~"grace""#)),
            "",
        ),
        (
            "page_not_a_cursor",
            "GET",
            format!("{}&page=nope", q(r#"name~"ada""#)),
            "",
        ),
        (
            "limit_zero",
            "GET",
            format!("{}&limit=0", q(r#"name~"ada""#)),
            "",
        ),
        (
            "unknown_parameter",
            "GET",
            format!("{}&email=x", q(r#"name~"ada""#)),
            "",
        ),
        (
            "not_expandable",
            "GET",
            format!("{}&expand[]=data.customer", q(r#"name~"ada""#)),
            "",
        ),
    ];
    assert_json_snapshot!("search_errors", answers(&emu, &key, &cases).await);
}

mod async_stripe {
    use super::*;
    use stripe::ClientBuilder;
    use stripe_core::customer::{
        CreateCustomer, CreateCustomerInvoiceSettings,
        CreateCustomerInvoiceSettingsRenderingOptions,
        CreateCustomerInvoiceSettingsRenderingOptionsAmountTaxDisplay, CustomFieldParams,
        CustomerShipping, ListCustomer, OptionalFieldsCustomerAddress, SearchCustomer,
    };
    use stripe_core::CustomerTaxExempt;
    use stripe_types::RangeQueryTs;

    #[tokio::test]
    async fn async_stripe_sets_and_reads_the_new_fields() {
        let emu = Emu::start().await;
        let key = emu.tenant("customer_async_stripe").await;
        let client = ClientBuilder::new(key.as_str())
            .url(emu.running.url())
            .build()
            .expect("client");

        let mut address = OptionalFieldsCustomerAddress::new();
        address.line1 = Some("1 Dorset St".into());
        address.city = Some("London".into());
        address.country = Some("GB".into());
        let mut shipping = CustomerShipping::new(address.clone(), "Ada Lovelace");
        shipping.phone = Some("+44 20 7946 0000".into());
        let mut rendering = CreateCustomerInvoiceSettingsRenderingOptions::new();
        rendering.amount_tax_display = Some(
            CreateCustomerInvoiceSettingsRenderingOptionsAmountTaxDisplay::IncludeInclusiveTax,
        );
        let mut settings = CreateCustomerInvoiceSettings::new();
        settings.custom_fields = Some(vec![CustomFieldParams::new("PO", "4711")]);
        settings.footer = Some("Thank you".into());
        settings.rendering_options = Some(rendering);
        let created = CreateCustomer::new()
            .email("ada@example.com")
            .name("Ada")
            .address(address)
            .shipping(shipping)
            .invoice_settings(settings)
            .invoice_prefix("ADA42")
            .next_invoice_sequence(3)
            .preferred_locales(vec!["en-GB".to_string()])
            .tax_exempt(CustomerTaxExempt::Exempt)
            .balance(-100)
            .send(&client)
            .await
            .expect("create customer");
        let a = created.address.as_ref().expect("address");
        assert_eq!(a.city.as_deref(), Some("London"));
        assert_eq!(a.line2, None);
        let s = created.shipping.as_ref().expect("shipping");
        assert_eq!(s.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(s.phone.as_deref(), Some("+44 20 7946 0000"));
        assert_eq!(
            s.address.as_ref().and_then(|a| a.line1.as_deref()),
            Some("1 Dorset St")
        );
        let settings = created.invoice_settings.as_ref().expect("invoice_settings");
        let fields = settings.custom_fields.as_ref().expect("custom fields");
        assert_eq!(
            (fields[0].name.as_str(), fields[0].value.as_str()),
            ("PO", "4711")
        );
        assert_eq!(settings.footer.as_deref(), Some("Thank you"));
        assert_eq!(
            settings
                .rendering_options
                .as_ref()
                .and_then(|r| r.amount_tax_display.as_deref()),
            Some("include_inclusive_tax")
        );
        assert_eq!(created.invoice_prefix.as_deref(), Some("ADA42"));
        assert_eq!(created.next_invoice_sequence, Some(3));
        assert_eq!(created.preferred_locales, Some(vec!["en-GB".to_string()]));
        assert_eq!(created.tax_exempt, Some(CustomerTaxExempt::Exempt));
        assert_eq!(created.balance, Some(-100));

        // The `created` filter as async-stripe encodes it, and search with its cursor.
        emu.freeze(&key, T0 + 10).await;
        let later = CreateCustomer::new()
            .name("Ada Later")
            .send(&client)
            .await
            .expect("create customer");
        let listed = ListCustomer::new()
            .created(RangeQueryTs::gte(T0 + 10))
            .send(&client)
            .await
            .expect("list customers");
        assert_eq!(
            listed.data.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            vec![later.id.clone()]
        );
        let mut found = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut req = SearchCustomer::new("name~\"ada\"").limit(1);
            if let Some(p) = page.take() {
                req = req.page(p);
            }
            let result = req.send(&client).await.expect("search customers");
            found.extend(result.data.iter().map(|c| c.id.clone()));
            match result.next_page {
                Some(p) if result.has_more => page = Some(p),
                _ => break,
            }
        }
        assert_eq!(found, vec![later.id, created.id]);
    }
}
