//! Conventions every Stripe route shares: auth, tenants, form decoding, errors, headers,
//! idempotency, and customers.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Value};
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

#[tokio::test]
async fn authentication_errors_match_stripe() {
    let emu = Emu::start().await;
    let mut out = serde_json::Map::new();
    for (name, headers) in [
        ("no_key", vec![]),
        ("empty_bearer", vec![("authorization", "Bearer ")]),
        ("unknown_scheme", vec![("authorization", "Token sk_test_1")]),
        (
            "malformed_key",
            vec![("authorization", "Bearer not_a_key_abcdef123456")],
        ),
        (
            "live_secret_key",
            vec![("authorization", "Bearer sk_live_51Habcdefghij1234")],
        ),
        (
            "live_restricted_key",
            vec![("authorization", "Bearer rk_live_51Habcdefghij1234")],
        ),
        (
            "publishable_key",
            vec![("authorization", "Bearer pk_test_51Habcdefghij1234")],
        ),
        ("bad_basic", vec![("authorization", "Basic %%%")]),
        // An unencoded key after `Basic` is checked as after `Bearer`; other text is no key.
        (
            "basic_unencoded_live_key",
            vec![("authorization", "Basic sk_live_51Habcdefghij1234")],
        ),
        (
            "basic_unencoded_not_a_key",
            vec![("authorization", "Basic not_a_key_abcdef123456")],
        ),
        ("basic_empty", vec![("authorization", "Basic ")]),
    ] {
        let r = emu.raw("GET", "/v1/customers", &headers, "").await;
        assert_eq!(r.status, 401, "{name}");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"Stripe\""));
        out.insert(name.into(), r.body);
    }
    assert_json_snapshot!("auth_errors", out);

    // Basic auth with the key as user name (`curl -u sk_test_…:`) and restricted test keys work.
    let basic = emu
        .raw(
            "GET",
            "/v1/customers",
            &[("authorization", "Basic c2tfdGVzdF9hYmM6")],
            "",
        )
        .await;
    assert_eq!(basic.status, 200, "{}", basic.text);
    assert_eq!(emu.get("rk_test_abc", "/v1/customers").await.status, 200);

    // `Basic` with the key unencoded (with or without `-u`'s colon) is the same key, the same world.
    let cus = emu.customer("sk_test_abc", "name=Ada").await;
    for raw in [
        "Basic sk_test_abc",
        "Basic sk_test_abc:",
        "basic  sk_test_abc ",
    ] {
        let r = emu
            .raw("GET", "/v1/customers", &[("authorization", raw)], "")
            .await;
        assert_eq!(r.status, 200, "{raw}: {}", r.text);
        assert_eq!(ids(&r.body), std::slice::from_ref(&cus), "{raw}");
    }
}

#[tokio::test]
async fn each_key_is_its_own_world() {
    let emu = Emu::start().await;
    let a = emu.tenant("world_a").await;
    let b = emu.tenant("world_b").await;
    let cus = emu.customer(&a, "email=a%40example.com").await;
    let grant = emu.grant(&a, &cus, 100, "").await;
    assert_eq!(
        emu.get(&b, &format!("/v1/customers/{cus}")).await.status,
        404
    );
    assert_eq!(
        emu.get(&b, &format!("/v1/billing/credit_grants/{grant}"))
            .await
            .status,
        404
    );
    assert_eq!(
        emu.post(&b, &format!("/v1/billing/credit_grants/{grant}/void"), "")
            .await
            .status,
        404
    );
    let create_for_other = emu.grant_raw(&b, &cus).await;
    assert_eq!(create_for_other.status, 400);
    assert_eq!(
        create_for_other.body["error"]["code"],
        json!("resource_missing")
    );
    assert_eq!(
        ids(&emu.get(&b, "/v1/billing/credit_grants").await.body),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&emu.get(&a, "/v1/billing/credit_grants").await.body),
        vec![grant.clone()]
    );

    // Reset empties only the caller's world.
    let reset = emu.post(&b, "/_emulator/reset", "").await;
    assert_eq!(reset.status, 200);
    assert_eq!(
        emu.get(&a, &format!("/v1/billing/credit_grants/{grant}"))
            .await
            .status,
        200
    );
    let reset_a = emu.post(&a, "/_emulator/reset", "").await;
    assert_eq!(reset_a.body["existed"], json!(true));
    assert_eq!(
        emu.get(&a, &format!("/v1/billing/credit_grants/{grant}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn form_decoding_variants() {
    let emu = Emu::start().await;
    let key = emu.tenant("forms").await;
    let cus = emu.customer(&key, "").await;
    // Percent-encoded brackets, %20 spaces (stripe-node), appended array items, params in the query
    // string of a POST: all one request.
    let r = emu
        .post(
            &key,
            "/v1/billing/credit_grants?expand%5B%5D=customer",
            &format!(
                "customer={cus}&amount%5Btype%5D=monetary&amount%5Bmonetary%5D%5Bcurrency%5D=usd\
                 &amount%5Bmonetary%5D%5Bvalue%5D=10\
                 &applicability_config[scope][price_type]=metered&name=two%20words&metadata[a]=x+y"
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["customer"]["id"], json!(cus));
    assert_eq!(r.body["name"], json!("two words"));
    assert_eq!(r.body["metadata"], json!({"a": "x y"}));

    // `expand[]=` and `expand[0]=` are the same thing.
    let g = r.id();
    let a = emu
        .get(
            &key,
            &format!("/v1/billing/credit_grants/{g}?expand[]=customer"),
        )
        .await;
    let b = emu
        .get(
            &key,
            &format!("/v1/billing/credit_grants/{g}?expand[0]=customer"),
        )
        .await;
    assert_eq!(a.body, b.body);

    // A repeated scalar keeps its last value (Rack's rule).
    let c = emu
        .post(&key, "/v1/customers", "name=first&name=second")
        .await;
    assert_eq!(c.body["name"], json!("second"));
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let emu = Emu::start().await;
    let key = emu.tenant("routes").await;
    let mut out = serde_json::Map::new();
    for (method, path) in [
        ("GET", "/v1/nothing"),
        ("GET", "/v1/billing/credit_grants/credgr_x/void"),
        ("DELETE", "/v1/billing/credit_grants"),
        ("PUT", "/v1/customers"),
        ("GET", "/v1/customers/"),
        ("GET", "/"),
    ] {
        let r = emu.stripe(method, &key, path, "").await;
        assert_eq!(r.status, 404, "{method} {path}");
        out.insert(format!("{method} {path}"), r.body);
    }
    assert_json_snapshot!("unrecognized_urls", out);
}

#[tokio::test]
async fn headers_request_id_and_version() {
    let emu = Emu::start().await;
    let key = emu.tenant("headers").await;
    let r = emu
        .stripe_with(
            "GET",
            &key,
            "/v1/customers",
            "",
            &[("stripe-version", "2026-10-28.endive")],
        )
        .await;
    assert_eq!(r.header("stripe-version"), Some("2026-10-28.endive"));
    let rid = r.header("request-id").unwrap_or_default();
    assert!(rid.starts_with("req_") && rid.len() == 18, "{rid}");
    let err = emu.get(&key, "/v1/customers/cus_x").await;
    assert!(err
        .header("request-id")
        .is_some_and(|v| v.starts_with("req_")));
    assert_ne!(err.header("request-id"), r.header("request-id"));
    // A JSON body on a Stripe route is refused, as Stripe does.
    let json_body = emu
        .raw(
            "POST",
            "/v1/customers",
            &[
                ("authorization", &format!("Bearer {key}")),
                ("content-type", "application/json"),
            ],
            "{\"email\":\"a@b.c\"}",
        )
        .await;
    assert_eq!(json_body.status, 400);
    assert!(json_body.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unsupported Content-Type application/json"));
}

#[tokio::test]
async fn idempotency_replays_and_conflicts() {
    let emu = Emu::start().await;
    let key = emu.tenant("idempotency").await;
    let cus = emu.customer(&key, "").await;
    let form = format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=10&applicability_config[scope][price_type]=metered");
    let path = "/v1/billing/credit_grants";
    let first = emu
        .stripe_with("POST", &key, path, &form, &[("idempotency-key", "k1")])
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(first.header("idempotency-key"), Some("k1"));
    // Same key, same parameters (even in another order): the stored answer, byte for byte.
    let reordered = form.split('&').rev().collect::<Vec<_>>().join("&");
    let replay = emu
        .stripe_with("POST", &key, path, &reordered, &[("idempotency-key", "k1")])
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.text, first.text);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(ids(&emu.get(&key, path).await.body).len(), 1);
    // `Original-Request` names the request that ran: the first one's own id, then on the replay
    // still the first one's, beside the replay's own `Request-Id`.
    let first_id = first.header("request-id").unwrap();
    assert_eq!(first.header("original-request"), Some(first_id));
    assert_eq!(replay.header("original-request"), Some(first_id));
    assert_ne!(replay.header("request-id"), Some(first_id));

    let mut out = serde_json::Map::new();
    let other_params = emu
        .stripe_with(
            "POST",
            &key,
            path,
            &form.replace("value]=10", "value]=11"),
            &[("idempotency-key", "k1")],
        )
        .await;
    out.insert(
        "other_parameters".into(),
        json!({"status": other_params.status, "body": other_params.body}),
    );
    let other_endpoint = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/customers",
            "",
            &[("idempotency-key", "k1")],
        )
        .await;
    out.insert(
        "other_endpoint".into(),
        json!({"status": other_endpoint.status, "body": other_endpoint.body}),
    );
    assert_json_snapshot!("idempotency_errors", out);
    // The key is compared before the parameters are checked: a used key sent with parameters
    // that would be refused gets the key's error, and an unknown route with it the key's too.
    let refused = emu
        .stripe_with(
            "POST",
            &key,
            path,
            "amount[type]=nonsense",
            &[("idempotency-key", "k1")],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.body["error"]["type"], "idempotency_error");
    assert_eq!(refused.header("idempotency-key"), Some("k1"));
    let unknown = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/nothing",
            "",
            &[("idempotency-key", "k1")],
        )
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert_eq!(unknown.body["error"]["type"], "idempotency_error");

    // Keys are per tenant.
    let other = emu.tenant("idempotency_other").await;
    let theirs = emu
        .stripe_with(
            "POST",
            &other,
            "/v1/customers",
            "",
            &[("idempotency-key", "k1")],
        )
        .await;
    assert_eq!(theirs.status, 200);

    // A request rejected while its parameters are checked is not stored: the corrected retry runs.
    let bad = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/customers",
            "bogus=1",
            &[("idempotency-key", "k2")],
        )
        .await;
    assert_eq!(bad.status, 400);
    let good = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/customers",
            "name=x",
            &[("idempotency-key", "k2")],
        )
        .await;
    assert_eq!(good.status, 200, "{}", good.text);

    // Keys on GET are ignored.
    let get = emu
        .stripe_with(
            "GET",
            &key,
            "/v1/customers",
            "",
            &[("idempotency-key", "k1")],
        )
        .await;
    assert_eq!(get.status, 200);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_grant() {
    let emu = Emu::start().await;
    let key = emu.tenant("idem_race").await;
    let cus = emu.customer(&key, "").await;
    let form = format!("customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=10&applicability_config[scope][price_type]=metered");
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url, key, form) = (
            emu.client.clone(),
            emu.url("/v1/billing/credit_grants"),
            key.clone(),
            form.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .header("idempotency-key", "same")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut created = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => {
                created.insert(body["id"].as_str().unwrap().to_string());
            }
            409 => assert_eq!(body["error"]["code"], json!("idempotency_key_in_use")),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 1, "every success is the same grant");
    assert_eq!(
        ids(&emu.get(&key, "/v1/billing/credit_grants").await.body).len(),
        1
    );
}

#[tokio::test]
async fn customers_crud_filters_and_unsupported_fields() {
    let emu = Emu::start().await;
    let key = emu.tenant("customers").await;
    let created = emu
        .post(&key, "/v1/customers", "email=ada%40example.com&name=Ada&description=first&phone=%2B15550100&metadata[tier]=gold")
        .await;
    assert_json_snapshot!("customer_created", created.body);
    let id = created.id();
    let other = emu.customer(&key, "email=bob%40example.com").await;

    let updated = emu
        .post(
            &key,
            &format!("/v1/customers/{id}"),
            "name=Ada+L.&description=&metadata[tier]=&metadata[region]=eu",
        )
        .await;
    assert_eq!(updated.body["name"], json!("Ada L."));
    assert_eq!(updated.body["description"], Value::Null);
    assert_eq!(updated.body["metadata"], json!({"region": "eu"}));

    assert_eq!(
        ids(&emu
            .get(&key, "/v1/customers?email=ada%40example.com")
            .await
            .body),
        vec![id.clone()]
    );
    assert_eq!(
        ids(&emu
            .get(&key, "/v1/customers?email=ADA%40example.com")
            .await
            .body),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&emu.get(&key, "/v1/customers").await.body),
        vec![other.clone(), id.clone()]
    );

    // Customers on a test clock are listed only with `test_clock`.
    let clock = emu.test_clock(&key, T0).await;
    let clocked = emu.customer(&key, &format!("test_clock={clock}")).await;
    assert!(!ids(&emu.get(&key, "/v1/customers").await.body).contains(&clocked));
    assert_eq!(
        ids(&emu
            .get(&key, &format!("/v1/customers?test_clock={clock}"))
            .await
            .body),
        vec![clocked.clone()]
    );
    let expanded = emu
        .get(
            &key,
            &format!("/v1/customers/{clocked}?expand[]=test_clock"),
        )
        .await;
    assert_eq!(
        expanded.body["test_clock"]["object"],
        json!("test_helpers.test_clock")
    );

    let deleted = emu.delete(&key, &format!("/v1/customers/{id}")).await;
    assert_eq!(
        deleted.body,
        json!({"id": id, "object": "customer", "deleted": true})
    );
    assert_eq!(
        emu.get(&key, &format!("/v1/customers/{id}")).await.body,
        deleted.body
    );
    assert!(!ids(&emu.get(&key, "/v1/customers").await.body).contains(&id));

    let mut out = serde_json::Map::new();
    for (name, method, path, form) in [
        (
            "unsupported_source",
            "POST",
            "/v1/customers".to_string(),
            "source=tok_visa",
        ),
        (
            "unsupported_tax",
            "POST",
            "/v1/customers".to_string(),
            "tax[ip_address]=192.0.2.1",
        ),
        (
            "unknown_param",
            "POST",
            "/v1/customers".to_string(),
            "nickname=x",
        ),
        (
            "bad_email",
            "POST",
            "/v1/customers".to_string(),
            "email=not-an-email",
        ),
        (
            "phone_too_long",
            "POST",
            "/v1/customers".to_string(),
            "phone=123456789012345678901",
        ),
        (
            "no_such_test_clock",
            "POST",
            "/v1/customers".to_string(),
            "test_clock=clock_nope",
        ),
        (
            "test_clock_not_updatable",
            "POST",
            format!("/v1/customers/{other}"),
            "test_clock=x",
        ),
        (
            "update_deleted",
            "POST",
            format!("/v1/customers/{id}"),
            "name=x",
        ),
        (
            "delete_deleted",
            "DELETE",
            format!("/v1/customers/{id}"),
            "",
        ),
        (
            "retrieve_missing",
            "GET",
            "/v1/customers/cus_nope".to_string(),
            "",
        ),
        (
            "grant_for_deleted_customer",
            "POST",
            "/v1/billing/credit_grants".to_string(),
            "",
        ),
    ] {
        let form = if name == "grant_for_deleted_customer" {
            format!("customer={id}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&applicability_config[scope][price_type]=metered")
        } else {
            form.to_string()
        };
        let r = emu.stripe(method, &key, &path, &form).await;
        assert!((400..500).contains(&r.status), "{name}");
        out.insert(name.into(), json!({"status": r.status, "body": r.body}));
    }
    assert_json_snapshot!("customer_errors", out);
}

#[tokio::test]
async fn health_answers_without_a_key() {
    let emu = Emu::start().await;
    let r = emu.raw("GET", "/_emulator/health", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], json!("ok"));
}

/// `expand[]` paths go on through the objects they expand (`customer.test_clock`), on single
/// objects and lists, up to four levels; a path that names no expandable field, or goes deeper, is
/// refused the way Stripe refuses it.
#[tokio::test]
async fn nested_expand_paths_recurse_through_expanded_objects() {
    let emu = Emu::start().await;
    let key = emu.tenant("nested_expand").await;
    let clock = emu.test_clock(&key, T0).await;
    let cus = emu.customer(&key, &format!("test_clock={clock}")).await;
    let grant = emu.grant(&key, &cus, 500, "").await;
    let inv = emu
        .post(
            &key,
            "/_emulator/invoices",
            &format!("customer={cus}&currency=usd&lines[0][amount]=300"),
        )
        .await;
    assert_eq!(inv.status, 200, "{}", inv.text);
    let inv = inv.id();
    let get = |path: String| {
        let (emu, key) = (&emu, &key);
        async move {
            let r = emu.get(key, &path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            r.body
        }
    };

    let g = get(format!(
        "/v1/billing/credit_grants/{grant}?expand[]=customer.test_clock"
    ))
    .await;
    assert_eq!(g["customer"]["id"], json!(cus));
    assert_eq!(g["customer"]["test_clock"]["id"], json!(clock));
    assert_eq!(
        g["customer"]["test_clock"]["object"],
        "test_helpers.test_clock"
    );
    assert_eq!(
        g["test_clock"],
        json!(clock),
        "only the paths asked for expand"
    );

    // Expanding a field and a path through it, in either order, gives the same object.
    let both = get(format!(
        "/v1/billing/credit_grants/{grant}?expand[]=customer.test_clock&expand[]=customer"
    ))
    .await;
    assert_eq!(both, g);

    let list = get(format!(
        "/v1/billing/credit_grants?customer={cus}&expand[]=data.customer.test_clock"
    ))
    .await;
    assert_eq!(
        list["data"][0]["customer"]["test_clock"]["id"],
        json!(clock)
    );

    let txns = get(format!(
        "/v1/billing/credit_balance_transactions?customer={cus}&expand[]=data.credit_grant.customer.test_clock"
    ))
    .await;
    let applied = &txns["data"][0];
    assert_eq!(applied["debit"]["type"], "credits_applied");
    assert_eq!(
        applied["credit_grant"]["customer"]["test_clock"]["id"],
        json!(clock)
    );
    let txn = applied["id"].as_str().unwrap();
    let one = get(format!(
        "/v1/billing/credit_balance_transactions/{txn}?expand[]=credit_grant.customer&expand[]=debit.credits_applied.invoice"
    ))
    .await;
    assert_eq!(one["credit_grant"]["customer"]["id"], json!(cus));
    assert_eq!(one["debit"]["credits_applied"]["invoice"]["id"], json!(inv));

    let summary = get(format!(
        "/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope\
         &filter[applicability_scope][price_type]=metered&expand[]=customer.test_clock"
    ))
    .await;
    assert_eq!(summary["customer"]["test_clock"]["id"], json!(clock));

    // An invoice's credits expand to their transactions, and on through them.
    let invoice = get(format!(
        "/v1/invoices/{inv}?expand[]=total_pretax_credit_amounts.credit_balance_transaction.credit_grant"
    ))
    .await;
    let credit = &invoice["total_pretax_credit_amounts"][0];
    assert_eq!(credit["amount"], 300);
    assert_eq!(credit["credit_balance_transaction"]["id"], json!(txn));
    assert_eq!(
        credit["credit_balance_transaction"]["credit_grant"]["id"],
        json!(grant)
    );
    let invoices = get(format!(
        "/v1/invoices?customer={cus}&expand[]=data.total_pretax_credit_amounts.credit_balance_transaction"
    ))
    .await;
    assert_eq!(
        invoices["data"][0]["total_pretax_credit_amounts"][0]["credit_balance_transaction"]
            ["object"],
        "billing.credit_balance_transaction"
    );

    let mut out = serde_json::Map::new();
    for (name, path) in [
        ("unknown_inner_field", format!("/v1/billing/credit_grants/{grant}?expand[]=customer.email")),
        ("inner_field_of_a_test_clock", format!("/v1/billing/credit_grants/{grant}?expand[]=test_clock.customer")),
        ("list_path_without_data", "/v1/billing/credit_grants?expand[]=customer.test_clock".to_string()),
        ("five_levels", format!("/v1/billing/credit_balance_transactions?customer={cus}&expand[]=data.credit_grant.customer.test_clock.x")),
        ("paths_checked_in_order", format!("/v1/billing/credit_grants/{grant}?expand[]=customer.nope&expand[]=a.b.c.d.e")),
        ("summary_inner", format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered&expand[]=balances.customer")),
    ] {
        let r = emu.get(&key, &path).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    assert_json_snapshot!("nested_expand_errors", out);
}

/// `POST path` with `form` and `Idempotency-Key: k`.
async fn post_with_key(emu: &Emu, key: &str, path: &str, form: &str, k: &str) -> support::Resp {
    emu.stripe_with("POST", key, path, form, &[("idempotency-key", k)])
        .await
}

/// `Original-Request` on answers to POSTs with an `Idempotency-Key`: the answering request's own
/// id when it ran (errors too), the first request's on a replay (a stored error too); none without
/// a key, and none on a GET, whose key is ignored.
#[tokio::test]
async fn original_request_names_the_request_that_ran() {
    let emu = Emu::start().await;
    let key = emu.tenant("original_request").await;
    let cus = emu.customer(&key, "").await;
    let grants = "/v1/billing/credit_grants";
    let grant = emu.grant(&key, &cus, 10, "").await;

    let no_key = emu.post(&key, "/v1/customers", "name=Ada").await;
    assert_eq!(no_key.status, 200);
    assert_eq!(no_key.header("original-request"), None);
    let get = emu
        .stripe_with("GET", &key, grants, "", &[("idempotency-key", "g")])
        .await;
    assert_eq!(get.header("original-request"), None);

    // A refusal after the grant was looked up is stored and replayed with the first request's id.
    let void = &format!("/v1/billing/credit_grants/{grant}/void");
    let first = post_with_key(&emu, &key, void, "", "v1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = post_with_key(&emu, &key, void, "", "v2").await;
    assert_eq!(again.status, 400, "{}", again.text);
    let again_id = again.header("request-id").unwrap();
    assert_eq!(again.header("original-request"), Some(again_id));
    let replay = post_with_key(&emu, &key, void, "", "v2").await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.header("original-request"), Some(again_id));

    // A refused parameter is not stored: each try runs, and names itself.
    let bad = post_with_key(&emu, &key, grants, "amount[type]=coins", "b").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("original-request"), bad.header("request-id"));
    let bad_again = post_with_key(&emu, &key, grants, "amount[type]=coins", "b").await;
    assert_eq!(bad_again.header("idempotent-replayed"), None);
    assert_eq!(
        bad_again.header("original-request"),
        bad_again.header("request-id")
    );
}

/// `""` for a parameter that cannot be unset is Stripe's `parameter_invalid_empty`, on every
/// endpoint, after unknown parameters and in declaration order; parameters that `""` clears keep
/// clearing.
#[tokio::test]
async fn empty_strings_only_unset_what_can_be_unset() {
    let emu = Emu::start().await;
    let key = emu.tenant("empty_strings").await;
    let cus = emu.customer(&key, "name=Ada&description=VIP").await;
    let grant = emu.grant(&key, &cus, 100, "metadata[a]=1").await;
    let grant_form = format!(
        "customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=100&applicability_config[scope][price_type]=metered"
    );
    let summary = "/v1/billing/credit_balance_summary";
    let mut out = serde_json::Map::new();
    for (name, method, path, form) in [
        ("grant_customer", "POST", "/v1/billing/credit_grants".to_string(), grant_form.replace(&format!("customer={cus}"), "customer=")),
        ("grant_value", "POST", "/v1/billing/credit_grants".to_string(), grant_form.replace("value]=100", "value]=")),
        ("grant_currency", "POST", "/v1/billing/credit_grants".to_string(), grant_form.replace("currency]=usd", "currency]=")),
        ("grant_priority", "POST", "/v1/billing/credit_grants".to_string(), format!("{grant_form}&priority=")),
        // Declaration order: `amount` is declared before `customer`.
        ("grant_first_declared", "POST", "/v1/billing/credit_grants".to_string(), grant_form.replace(&format!("customer={cus}"), "customer=").replace("currency]=usd", "currency]=")),
        // Unknown parameters come first.
        ("grant_unknown_first", "POST", "/v1/billing/credit_grants".to_string(), format!("{}&colour=red", grant_form.replace("value]=100", "value]="))),
        ("summary_filter_type", "GET", format!("{summary}?customer={cus}&filter[type]="), String::new()),
        ("summary_customer", "GET", format!("{summary}?customer=&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"), String::new()),
        ("test_clock_frozen_time", "POST", "/v1/test_helpers/test_clocks".to_string(), "frozen_time=".to_string()),
        ("list_limit", "GET", "/v1/customers?limit=".to_string(), String::new()),
    ] {
        let r = emu.stripe(method, &key, &path, &form).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    assert_json_snapshot!("empty_string_errors", out);

    // What "" clears, it still clears.
    let r = emu
        .post(
            &key,
            &format!("/v1/billing/credit_grants/{grant}"),
            "expires_at=&metadata=",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["expires_at"], Value::Null);
    assert_eq!(r.body["metadata"], json!({}));
    let r = emu
        .post(
            &key,
            &format!("/v1/customers/{cus}"),
            "description=&name=&metadata=",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["description"], Value::Null);
    assert_eq!(r.body["name"], Value::Null);
}
