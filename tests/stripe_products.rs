//! Stripe products over real sockets: every field in Stripe's shape, chosen ids, the default price
//! made with the product, updates, deletion (only without prices), the list's filters, and every
//! refusal in Stripe's envelope.

use crate::support;

use insta::assert_json_snapshot;
use serde_json::{json, Map, Value};
use support::{Emu, T0};

fn ids_of(v: &Value) -> Vec<String> {
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
async fn answers(emu: &Emu, key: &str, cases: &[(&str, &str, String, String)]) -> Value {
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

const FULL: &str = "name=Analytical+Engine&description=Computes+anything&unit_label=cycle\
&type=good&shippable=true&statement_descriptor=ENGINE+CO&tax_code=txcd_99999999\
&url=https%3A%2F%2Fexample.com%2Fengine&images[0]=https%3A%2F%2Fexample.com%2Fa.png\
&images[1]=https%3A%2F%2Fexample.com%2Fb.png&marketing_features[0][name]=Fast\
&marketing_features[1][name]=Programmable&metadata[series]=1&active=true";

#[tokio::test]
async fn every_field_round_trips_in_stripes_shape() {
    let emu = Emu::start().await;
    let key = emu.tenant("products_fields").await;
    let created = emu.post(&key, "/v1/products", FULL).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_json_snapshot!("full_product", created.body);
    let id = created.id();
    assert!(id.starts_with("prod_"), "{id}");
    assert_eq!(
        emu.get(&key, &format!("/v1/products/{id}")).await.body,
        created.body
    );

    // Nothing but a name: Stripe's defaults.
    let plain = emu.post(&key, "/v1/products", "name=Plain").await.body;
    assert_json_snapshot!("plain_product", plain);
}

#[tokio::test]
async fn chosen_ids_and_default_prices() {
    let emu = Emu::start().await;
    let key = emu.tenant("products_ids").await;
    let made = emu
        .post(
            &key,
            "/v1/products",
            "name=Gold&id=gold-plan&default_price_data[currency]=usd\
             &default_price_data[unit_amount_decimal]=1999.5&default_price_data[recurring][interval]=month\
             &default_price_data[recurring][interval_count]=6&default_price_data[tax_behavior]=exclusive\
             &default_price_data[metadata][origin]=product&expand[]=default_price",
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    assert_json_snapshot!("product_with_default_price", made.body);
    assert_eq!(made.id(), "gold-plan");

    let got = emu.get(&key, "/v1/products/gold-plan").await;
    assert_eq!(got.status, 200, "{}", got.text);
    let price = got.body["default_price"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(price.starts_with("price_"), "{price}");
    // The price names the product by its chosen id, and expands to it.
    let p = emu
        .get(&key, &format!("/v1/prices/{price}?expand[]=product"))
        .await;
    assert_eq!(p.body["product"]["id"], json!("gold-plan"));

    // The id is taken, by a chosen id or by a generated one.
    let taken = emu
        .post(&key, "/v1/products", "name=Again&id=gold-plan")
        .await;
    let generated = emu.post(&key, "/v1/products", "name=G").await.id();
    let taken_generated = emu
        .post(&key, "/v1/products", &format!("name=Copy&id={generated}"))
        .await;
    assert_json_snapshot!(
        "product_id_taken",
        json!([
            {"status": taken.status, "body": taken.body},
            {"status": taken_generated.status, "body": taken_generated.body},
        ])
    );
}

#[tokio::test]
async fn updates_set_and_clear_fields() {
    let emu = Emu::start().await;
    let key = emu.tenant("products_update").await;
    let id = emu.post(&key, "/v1/products", FULL).await.id();
    let other = emu.post(&key, "/v1/products", "name=Other").await.id();
    let mine = emu
        .post(
            &key,
            "/v1/prices",
            &format!("product={id}&currency=usd&unit_amount=5"),
        )
        .await
        .id();
    let theirs = emu
        .post(
            &key,
            "/v1/prices",
            &format!("product={other}&currency=usd&unit_amount=5"),
        )
        .await
        .id();
    emu.freeze(&key, T0 + 60).await;
    let updated = emu
        .post(
            &key,
            &format!("/v1/products/{id}"),
            &format!(
                "name=Difference+Engine&description=&unit_label=&url=&tax_code=&images=\
                 &marketing_features[0][name]=Mechanical&metadata[series]=&metadata[year]=1822\
                 &active=false&shippable=false&default_price={mine}&expand[]=default_price"
            ),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_json_snapshot!("product_updated", updated.body);

    let refused = answers(
        &emu,
        &key,
        &[
            (
                "default_price_of_other_product",
                "POST",
                format!("/v1/products/{id}"),
                format!("default_price={theirs}"),
            ),
            (
                "default_price_unknown",
                "POST",
                format!("/v1/products/{id}"),
                "default_price=price_missing".into(),
            ),
            (
                "empty_name",
                "POST",
                format!("/v1/products/{id}"),
                "name=".into(),
            ),
            (
                "empty_statement_descriptor",
                "POST",
                format!("/v1/products/{id}"),
                "statement_descriptor=".into(),
            ),
            (
                "type_is_fixed",
                "POST",
                format!("/v1/products/{id}"),
                "type=service".into(),
            ),
            (
                "chosen_id_is_fixed",
                "POST",
                format!("/v1/products/{id}"),
                "id=new".into(),
            ),
            (
                "unknown_product",
                "POST",
                "/v1/products/prod_missing".into(),
                "name=x".into(),
            ),
        ],
    )
    .await;
    assert_json_snapshot!("product_update_refusals", refused);
}

#[tokio::test]
async fn only_a_product_without_prices_can_be_deleted() {
    let emu = Emu::start().await;
    let key = emu.tenant("products_delete").await;
    let bare = emu
        .post(&key, "/v1/products", "name=Bare&id=bare")
        .await
        .id();
    let priced = emu
        .post(
            &key,
            "/v1/products",
            "name=Priced&default_price_data[currency]=usd&default_price_data[unit_amount]=1",
        )
        .await
        .id();
    let deleted = emu.delete(&key, &format!("/v1/products/{bare}")).await;
    let gone = emu.get(&key, &format!("/v1/products/{bare}")).await;
    let refused = emu.delete(&key, &format!("/v1/products/{priced}")).await;
    let twice = emu.delete(&key, &format!("/v1/products/{bare}")).await;
    assert_json_snapshot!(
        "product_delete",
        json!({
            "deleted": {"status": deleted.status, "body": deleted.body},
            "retrieve_deleted": {"status": gone.status, "body": gone.body},
            "with_prices": {"status": refused.status, "body": refused.body},
            "twice": {"status": twice.status, "body": twice.body},
        })
    );
    // The chosen id is free again.
    let again = emu.post(&key, "/v1/products", "name=Again&id=bare").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        emu.get(&key, &format!("/v1/products/{priced}"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn lists_filter_and_page_newest_first() {
    let emu = Emu::start().await;
    let key = emu.tenant("products_list").await;
    let a = emu
        .post(
            &key,
            "/v1/products",
            "name=A&type=good&shippable=true&url=https%3A%2F%2Fa.example",
        )
        .await
        .id();
    emu.freeze(&key, T0 + 10).await;
    let b = emu
        .post(&key, "/v1/products", "name=B&active=false&id=b")
        .await
        .id();
    emu.freeze(&key, T0 + 20).await;
    let c = emu.post(&key, "/v1/products", "name=C").await.id();

    let list = |q: &str| {
        let q = q.to_string();
        let emu = &emu;
        let key = &key;
        async move {
            let r = emu.get(key, &format!("/v1/products?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            ids_of(&r.body)
        }
    };
    assert_eq!(list("").await, vec![c.clone(), b.clone(), a.clone()]);
    assert_eq!(list("active=true").await, vec![c.clone(), a.clone()]);
    assert_eq!(list("active=false").await, vec![b.clone()]);
    assert_eq!(list("type=good").await, vec![a.clone()]);
    assert_eq!(list("type=service").await, vec![c.clone(), b.clone()]);
    assert_eq!(list("shippable=true").await, vec![a.clone()]);
    assert_eq!(list("shippable=false").await, Vec::<String>::new());
    assert_eq!(list("url=https%3A%2F%2Fa.example").await, vec![a.clone()]);
    assert_eq!(
        list(&format!("ids[]={a}&ids[]=b&ids[]=prod_missing")).await,
        vec![b.clone(), a.clone()]
    );
    assert_eq!(
        list(&format!("created[gte]={}", T0 + 10)).await,
        vec![c.clone(), b.clone()]
    );
    assert_eq!(
        list(&format!("created[lt]={}", T0 + 20)).await,
        vec![b.clone(), a.clone()]
    );
    assert_eq!(list(&format!("created={}", T0 + 10)).await, vec![b.clone()]);
    assert_eq!(list("limit=1").await, vec![c.clone()]);
    assert_eq!(
        list(&format!("starting_after={c}&limit=1")).await,
        vec![b.clone()]
    );
    assert_eq!(list("starting_after=b").await, vec![a.clone()]);
    assert_eq!(
        list(&format!("ending_before={a}")).await,
        vec![c.clone(), b.clone()]
    );

    let page = emu.get(&key, "/v1/products?limit=2&active=true").await;
    assert_json_snapshot!("product_list_page", page.body);

    let refused = answers(
        &emu,
        &key,
        &[
            (
                "ids_with_cursor",
                "GET",
                format!("/v1/products?ids[]={a}&starting_after={c}"),
                String::new(),
            ),
            (
                "bad_type",
                "GET",
                "/v1/products?type=digital".into(),
                String::new(),
            ),
            (
                "bad_active",
                "GET",
                "/v1/products?active=yes".into(),
                String::new(),
            ),
            (
                "bad_cursor",
                "GET",
                "/v1/products?ending_before=prod_missing".into(),
                String::new(),
            ),
            (
                "bad_created",
                "GET",
                "/v1/products?created[after]=1".into(),
                String::new(),
            ),
            (
                "expand_default_price_on_list",
                "GET",
                "/v1/products?expand[]=default_price".into(),
                String::new(),
            ),
        ],
    )
    .await;
    assert_json_snapshot!("product_list_refusals", refused);
}

#[tokio::test]
async fn create_refusals_in_stripes_envelope() {
    let emu = Emu::start().await;
    let key = emu.tenant("products_refusals").await;
    let case = |name: &'static str, form: String| (name, "POST", "/v1/products".to_string(), form);
    let cases = [
        case("missing_name", "description=x".into()),
        case("empty_name", "name=".into()),
        case("bad_type", "name=x&type=digital".into()),
        case("bad_active", "name=x&active=maybe".into()),
        case("too_many_images", format!("name=x&{}", (0..9).map(|i| format!("images[]=i{i}")).collect::<Vec<_>>().join("&"))),
        case("too_many_features", format!("name=x&{}", (0..16).map(|i| format!("marketing_features[{i}][name]=f")).collect::<Vec<_>>().join("&"))),
        case("feature_without_name", "name=x&marketing_features[0][title]=f".into()),
        case("long_descriptor", "name=x&statement_descriptor=ABCDEFGHIJKLMNOPQRSTUVW".into()),
        case("descriptor_without_letters", "name=x&statement_descriptor=12345".into()),
        case("descriptor_with_quote", "name=x&statement_descriptor=BOB%27S".into()),
        case("long_unit_label", "name=x&unit_label=thirteenchars".into()),
        case("bad_id", "name=x&id=has%20space".into()),
        case("package_dimensions", "name=x&package_dimensions[height]=1".into()),
        case("tax_details", "name=x&tax_details[tax_code]=txcd_1".into()),
        case("default_price_without_currency", "name=x&default_price_data[unit_amount]=1".into()),
        case("default_price_without_amount", "name=x&default_price_data[currency]=usd".into()),
        case("default_price_both_amounts", "name=x&default_price_data[currency]=usd&default_price_data[unit_amount]=1&default_price_data[unit_amount_decimal]=1".into()),
        case("default_price_negative", "name=x&default_price_data[currency]=usd&default_price_data[unit_amount]=-5".into()),
        case("default_price_metered", "name=x&default_price_data[currency]=usd&default_price_data[unit_amount]=1&default_price_data[recurring][interval]=month&default_price_data[recurring][usage_type]=metered".into()),
        case("default_price_bad_interval_count", "name=x&default_price_data[currency]=usd&default_price_data[unit_amount]=1&default_price_data[recurring][interval]=year&default_price_data[recurring][interval_count]=4".into()),
        case("expand_unknown", "name=x&expand[]=prices".into()),
        ("retrieve_unknown", "GET", "/v1/products/prod_missing".to_string(), String::new()),
        ("delete_unknown", "DELETE", "/v1/products/nothing-here".to_string(), String::new()),
    ];
    let refused = answers(&emu, &key, &cases).await;
    assert_json_snapshot!("product_create_refusals", refused);
    let listed = emu.get(&key, "/v1/products").await;
    assert_eq!(ids_of(&listed.body), Vec::<String>::new());
}
