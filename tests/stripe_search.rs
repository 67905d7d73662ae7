//! `GET /v1/{subscriptions,invoices,prices,products}/search` over real sockets: each resource's
//! fields, newest first, pages bound to their query, `total_count`, and the refusals of fields a
//! resource cannot be searched on. The query language itself is tested with the customers'.

use crate::support;

use serde_json::Value;
use support::Emu;

async fn ok(r: support::Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    r.body
}

/// The ids a search answered, in order.
async fn found(emu: &Emu, key: &str, resource: &str, query: &str) -> Vec<String> {
    let r = emu
        .get(
            key,
            &format!("/v1/{resource}/search?query={}", urlencode(query)),
        )
        .await;
    let body = ok(r, query).await;
    assert_eq!(body["object"], "search_result");
    assert_eq!(body["url"], format!("/v1/{resource}/search"));
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("q", s)]).unwrap()[2..].to_string()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn prices_products_subscriptions_and_invoices_are_searched_by_their_fields() {
    let emu = Emu::start().await;
    let key = emu.tenant("search_resources").await;
    let post = |path: &'static str, form: String| {
        let (emu, key) = (&emu, &key);
        async move { ok(emu.post(key, path, &form).await, path).await }
    };

    let api = post("/v1/products", "name=API+access&metadata[tier]=pro".into()).await;
    let seats = post(
        "/v1/products",
        "name=Seats&description=Per+seat&active=false".into(),
    )
    .await;
    let monthly = post(
        "/v1/prices",
        format!(
            "product={}&currency=usd&unit_amount=1000&recurring[interval]=month&lookup_key=pro_monthly",
            id(&api)
        ),
    )
    .await;
    let pack = post(
        "/v1/prices",
        format!(
            "product={}&currency=eur&unit_amount=500&metadata[kind]=pack",
            id(&api)
        ),
    )
    .await;

    // Products: name (case-insensitive, substring), active, metadata, description.
    assert_eq!(
        found(&emu, &key, "products", "name~'access'").await,
        [id(&api)]
    );
    assert_eq!(
        found(&emu, &key, "products", "active:'false'").await,
        [id(&seats)]
    );
    assert_eq!(
        found(
            &emu,
            &key,
            "products",
            "metadata['tier']:'pro' OR description:'per seat'"
        )
        .await,
        [id(&seats), id(&api)]
    );

    // Prices: product, type, currency, lookup_key, metadata.
    let api_id = id(&api);
    assert_eq!(
        found(&emu, &key, "prices", &format!("product:'{api_id}'")).await,
        [id(&pack), id(&monthly)]
    );
    assert_eq!(
        found(&emu, &key, "prices", "type:'recurring' AND currency:'usd'").await,
        [id(&monthly)]
    );
    assert_eq!(
        found(&emu, &key, "prices", "lookup_key:'PRO_MONTHLY'").await,
        [id(&monthly)]
    );
    assert_eq!(
        found(&emu, &key, "prices", "-metadata['kind']:null").await,
        [id(&pack)]
    );

    // Subscriptions: status and metadata; invoices: customer, subscription, status, total.
    let ada = emu.customer(&key, "name=Ada").await;
    let bo = emu.customer(&key, "name=Bo").await;
    let sub_ada = post(
        "/v1/subscriptions",
        format!(
            "customer={ada}&items[0][price]={}&metadata[plan]=pro&collection_method=send_invoice&days_until_due=7",
            id(&monthly)
        ),
    )
    .await;
    let sub_bo = post(
        "/v1/subscriptions",
        format!(
            "customer={bo}&items[0][price]={}&items[0][quantity]=2",
            id(&monthly)
        ),
    )
    .await;
    assert_eq!(
        found(&emu, &key, "subscriptions", "status:'active'").await,
        [id(&sub_bo), id(&sub_ada)]
    );
    assert_eq!(
        found(&emu, &key, "subscriptions", "metadata['plan']:'pro'").await,
        [id(&sub_ada)]
    );
    let first_ada = sub_ada["latest_invoice"].as_str().unwrap().to_string();
    let first_bo = sub_bo["latest_invoice"].as_str().unwrap().to_string();
    assert_eq!(
        found(&emu, &key, "invoices", &format!("customer:'{ada}'")).await,
        [first_ada.as_str()]
    );
    assert_eq!(
        found(
            &emu,
            &key,
            "invoices",
            &format!("subscription:'{}' AND total>=2000", id(&sub_bo))
        )
        .await,
        [first_bo.as_str()]
    );
    assert_eq!(
        found(&emu, &key, "invoices", "status:'paid'").await,
        [first_bo.as_str()]
    );
    assert_eq!(
        found(&emu, &key, "invoices", "status:'draft' OR status:'open'").await,
        [first_ada.as_str()]
    );
}

#[tokio::test]
async fn pages_are_bound_to_their_query_and_total_count_counts_them_all() {
    let emu = Emu::start().await;
    let key = emu.tenant("search_pages").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let p = ok(
            emu.post(
                &key,
                "/v1/products",
                &format!("name=Widget+{i}&metadata[batch]=one"),
            )
            .await,
            "product",
        )
        .await;
        made.push(id(&p));
    }
    made.reverse();
    let query = urlencode("metadata['batch']:'one'");
    let first = ok(
        emu.get(
            &key,
            &format!("/v1/products/search?query={query}&limit=3&expand[]=total_count"),
        )
        .await,
        "page 1",
    )
    .await;
    assert_eq!(first["has_more"], true);
    assert_eq!(first["total_count"], 5);
    let page = first["next_page"].as_str().unwrap();
    let second = ok(
        emu.get(
            &key,
            &format!("/v1/products/search?query={query}&limit=3&page={page}"),
        )
        .await,
        "page 2",
    )
    .await;
    let ids: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(id)
        .collect();
    assert_eq!(ids, made);
    assert_eq!(second["has_more"], false);
    assert_eq!(second["next_page"], Value::Null);
    assert!(second.get("total_count").is_none());

    // A cursor of another query, a field a resource has not, a missing query.
    let foreign = emu
        .get(
            &key,
            &format!(
                "/v1/products/search?query={}&page={page}",
                urlencode("name:'x'")
            ),
        )
        .await;
    assert_eq!(foreign.status, 400, "{}", foreign.text);
    assert_eq!(foreign.body["error"]["param"], "page");
    let mut errors = serde_json::Map::new();
    for (name, path) in [
        (
            "unknown_field",
            format!("/v1/invoices/search?query={}", urlencode("email:'a@b.c'")),
        ),
        ("no_query", "/v1/subscriptions/search".to_string()),
    ] {
        let r = emu.get(&key, &path).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        errors.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("search_refusals", errors);
}
