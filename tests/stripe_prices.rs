//! Stripe prices over real sockets: per-unit, decimal, tiered and metered prices in Stripe's shape,
//! the bookkeeping updates, lookup keys, the list's filters, every refusal in Stripe's envelope, and
//! async-stripe creating a product and a metered price.

use crate::support;

use credit_emulator::model::{Formula, NewMeter};
use credit_emulator::stripe::ids;
use insta::assert_json_snapshot;
use serde_json::{json, Map, Value};
use support::Emu;

/// Makes an active meter counting `event_name` in the world of `key`, in process (the meters API
/// is not part of this file's subject), and returns its id.
fn meter(emu: &Emu, key: &str, event_name: &str) -> String {
    let k = emu.running.app.store.with_tenant(key, |t| {
        t.create_meter(NewMeter {
            display_name: format!("{event_name} meter"),
            event_name: event_name.to_string(),
            formula: Formula::Sum,
            customer_key: "stripe_customer_id".into(),
            value_key: "value".into(),
            event_time_window: None,
        })
    });
    ids::render(ids::METER, k)
}

async fn product(emu: &Emu, key: &str, name: &str) -> String {
    let r = emu.post(key, "/v1/products", &format!("name={name}")).await;
    assert_eq!(r.status, 200, "create product: {}", r.text);
    r.id()
}

async fn price(emu: &Emu, key: &str, form: &str) -> Value {
    let r = emu.post(key, "/v1/prices", form).await;
    assert_eq!(r.status, 200, "create price: {}", r.text);
    r.body
}

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

#[tokio::test]
async fn per_unit_and_metered_prices_in_stripes_shape() {
    let emu = Emu::start().await;
    let key = emu.tenant("prices_shapes").await;
    let prod = product(&emu, &key, "API").await;
    let mtr = meter(&emu, &key, "api_calls");

    let licensed = price(
        &emu,
        &key,
        &format!(
            "product={prod}&currency=USD&unit_amount=2000&recurring[interval]=month\
             &recurring[interval_count]=3&recurring[trial_period_days]=14&lookup_key=pro_quarterly\
             &nickname=Pro&metadata[tier]=pro&tax_behavior=exclusive"
        ),
    )
    .await;
    assert_json_snapshot!("licensed_price", licensed);

    let metered = price(
        &emu,
        &key,
        &format!(
            "product={prod}&currency=eur&unit_amount_decimal=0.125&recurring[interval]=month\
             &recurring[usage_type]=metered&recurring[meter]={mtr}\
             &transform_quantity[divide_by]=1000&transform_quantity[round]=up"
        ),
    )
    .await;
    assert_json_snapshot!("metered_price", metered);
    assert_eq!(metered["recurring"]["meter"], json!(mtr));

    // A one-time price; a whole unit_amount_decimal also shows as unit_amount.
    let once = price(
        &emu,
        &key,
        &format!("product={prod}&currency=usd&unit_amount_decimal=500.00"),
    )
    .await;
    assert_eq!(once["type"], json!("one_time"));
    assert_eq!(once["recurring"], Value::Null);
    assert_eq!(
        (&once["unit_amount"], &once["unit_amount_decimal"]),
        (&json!(500), &json!("500"))
    );

    // Retrieve answers what create answered; expand[]=product puts the product in place.
    let id = licensed["id"].as_str().unwrap_or_default();
    let got = emu.get(&key, &format!("/v1/prices/{id}")).await;
    assert_eq!(got.body, licensed);
    let expanded = emu
        .get(&key, &format!("/v1/prices/{id}?expand[]=product"))
        .await;
    assert_eq!(expanded.body["product"]["id"], json!(prod));
    assert_eq!(expanded.body["product"]["object"], json!("product"));
}

#[tokio::test]
async fn tiered_prices_show_their_tiers_when_expanded() {
    let emu = Emu::start().await;
    let key = emu.tenant("prices_tiers").await;
    let prod = product(&emu, &key, "Storage").await;
    let mtr = meter(&emu, &key, "gigabytes");
    let tiered = price(
        &emu,
        &key,
        &format!(
            "product={prod}&currency=usd&billing_scheme=tiered&tiers_mode=graduated\
             &tiers[0][up_to]=1000&tiers[0][flat_amount]=2000\
             &tiers[1][up_to]=5000&tiers[1][unit_amount_decimal]=1.5\
             &tiers[2][up_to]=inf&tiers[2][unit_amount]=1&tiers[2][flat_amount_decimal]=0.25\
             &recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={mtr}\
             &expand[]=tiers"
        ),
    )
    .await;
    assert_json_snapshot!("graduated_price_with_tiers", tiered);

    // Without expand[]=tiers the includable field is left out, as Stripe leaves it out.
    let id = tiered["id"].as_str().unwrap_or_default();
    let plain = emu.get(&key, &format!("/v1/prices/{id}")).await.body;
    assert!(plain.get("tiers").is_none(), "{plain}");
    assert_eq!(plain["billing_scheme"], json!("tiered"));
    assert_eq!(plain["tiers_mode"], json!("graduated"));
    assert_eq!(plain["unit_amount"], Value::Null);

    // On a list, data.tiers.
    let listed = emu
        .get(
            &key,
            &format!("/v1/prices?product={prod}&expand[]=data.tiers"),
        )
        .await;
    assert_eq!(listed.body["data"][0]["tiers"], tiered["tiers"]);

    // The model prices a quantity by these tiers: 1000 for the flat 2000, 500 more at 1.5.
    let amount = emu.running.app.store.with_tenant(&key, |t| {
        let k = ids::key_of(id, ids::PRICE).expect("a price id");
        t.price(k).map(|p| p.minor_amount_for(1500.into()))
    });
    assert_eq!(amount, Some(2750));
}

#[tokio::test]
async fn product_data_makes_the_product_with_the_price() {
    let emu = Emu::start().await;
    let key = emu.tenant("prices_product_data").await;
    let made = price(
        &emu,
        &key,
        "currency=usd&unit_amount=900&product_data[name]=Seats&product_data[id]=seats\
         &product_data[unit_label]=seat&product_data[metadata][team]=core\
         &product_data[statement_descriptor]=SEATS&expand[]=product",
    )
    .await;
    assert_json_snapshot!("price_with_product_data", made);
    let p = emu.get(&key, "/v1/products/seats").await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["default_price"], Value::Null);
    // The chosen id is taken now; nothing else is made by a refused create.
    let again = emu
        .post(
            &key,
            "/v1/prices",
            "currency=usd&unit_amount=1&product_data[name]=X&product_data[id]=seats",
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"]["param"], json!("product_data[id]"));
    let all = emu.get(&key, "/v1/prices?limit=100").await;
    assert_eq!(ids_of(&all.body).len(), 1);
}

#[tokio::test]
async fn updates_change_only_bookkeeping_and_lookup_keys_move_when_asked() {
    let emu = Emu::start().await;
    let key = emu.tenant("prices_update").await;
    let prod = product(&emu, &key, "Plan").await;
    let form = |extra: &str| format!("product={prod}&currency=usd&unit_amount=100&{extra}");
    let old = price(
        &emu,
        &key,
        &form("lookup_key=standard&metadata[a]=1&metadata[b]=2"),
    )
    .await;
    let old_id = old["id"].as_str().unwrap_or_default().to_string();

    let taken = emu
        .post(&key, "/v1/prices", &form("lookup_key=standard"))
        .await;
    assert_eq!(taken.status, 400);
    assert_eq!(
        taken.body["error"]["message"],
        json!(format!(
            "A price (`{old_id}`) already uses that lookup key."
        ))
    );
    assert_eq!(taken.body["error"]["param"], json!("lookup_key"));

    let new = price(
        &emu,
        &key,
        &form("lookup_key=standard&transfer_lookup_key=true"),
    )
    .await;
    let new_id = new["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(new["lookup_key"], json!("standard"));
    let old_now = emu.get(&key, &format!("/v1/prices/{old_id}")).await.body;
    assert_eq!(old_now["lookup_key"], Value::Null);
    let found = emu.get(&key, "/v1/prices?lookup_keys[]=standard").await;
    assert_eq!(ids_of(&found.body), vec![new_id.clone()]);

    // Bookkeeping: archive, rename, merge metadata, settle the tax behaviour, take the key back.
    let updated = emu
        .post(
            &key,
            &format!("/v1/prices/{old_id}"),
            "active=false&nickname=Legacy&metadata[a]=&metadata[c]=3&tax_behavior=inclusive\
             &lookup_key=standard&transfer_lookup_key=true",
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_json_snapshot!("price_updated", updated.body);
    let fixed = emu
        .post(
            &key,
            &format!("/v1/prices/{old_id}"),
            "tax_behavior=exclusive",
        )
        .await;
    assert_eq!(fixed.status, 400, "{}", fixed.text);
    let cleared = emu
        .post(
            &key,
            &format!("/v1/prices/{old_id}"),
            "lookup_key=&nickname=",
        )
        .await;
    assert_eq!(
        (&cleared.body["lookup_key"], &cleared.body["nickname"]),
        (&Value::Null, &Value::Null)
    );

    // What a price charges cannot change.
    let refused = answers(
        &emu,
        &key,
        &[
            (
                "unit_amount",
                "POST",
                format!("/v1/prices/{new_id}"),
                "unit_amount=5".into(),
            ),
            (
                "recurring",
                "POST",
                format!("/v1/prices/{new_id}"),
                "recurring[interval]=day".into(),
            ),
            (
                "product",
                "POST",
                format!("/v1/prices/{new_id}"),
                format!("product={prod}"),
            ),
            (
                "currency_options",
                "POST",
                format!("/v1/prices/{new_id}"),
                "currency_options[eur][unit_amount]=5".into(),
            ),
            (
                "unknown_price",
                "POST",
                "/v1/prices/price_nope".into(),
                "nickname=x".into(),
            ),
            (
                "delete",
                "DELETE",
                format!("/v1/prices/{new_id}"),
                String::new(),
            ),
        ],
    )
    .await;
    assert_json_snapshot!("price_update_refusals", refused);
}

#[tokio::test]
async fn the_default_price_of_a_product_cannot_be_archived() {
    let emu = Emu::start().await;
    let key = emu.tenant("prices_default").await;
    let r = emu
        .post(
            &key,
            "/v1/products",
            "name=Gold&default_price_data[currency]=usd&default_price_data[unit_amount]=4200\
             &default_price_data[recurring][interval]=year",
        )
        .await;
    let default = r.body["default_price"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let archive = emu
        .post(&key, &format!("/v1/prices/{default}"), "active=false")
        .await;
    assert_json_snapshot!(
        "archive_default_price",
        json!({"status": archive.status, "body": archive.body})
    );
    let prod = r.id();
    let unset = emu
        .post(&key, &format!("/v1/products/{prod}"), "default_price=")
        .await;
    assert_eq!(unset.body["default_price"], Value::Null);
    let archived = emu
        .post(&key, &format!("/v1/prices/{default}"), "active=false")
        .await;
    assert_eq!(archived.body["active"], json!(false), "{}", archived.text);
}

#[tokio::test]
async fn lists_show_active_prices_newest_first_with_filters() {
    let emu = Emu::start().await;
    let key = emu.tenant("prices_list").await;
    let a = product(&emu, &key, "A").await;
    let b = product(&emu, &key, "B").await;
    let mtr = meter(&emu, &key, "calls");
    let mk = |prod: &str, extra: &str| format!("product={prod}&currency=usd&unit_amount=1&{extra}");
    let p1 = price(&emu, &key, &mk(&a, "lookup_key=one")).await;
    let p2 = price(
        &emu,
        &key,
        &mk(&a, "recurring[interval]=month&lookup_key=two"),
    )
    .await;
    let p3 = price(
        &emu,
        &key,
        &mk(
            &b,
            &format!(
                "recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]={mtr}"
            ),
        ),
    )
    .await;
    let p4 = price(
        &emu,
        &key,
        &format!("product={b}&currency=eur&unit_amount=1&active=false"),
    )
    .await;
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_string();
    let (p1, p2, p3, p4) = (id(&p1), id(&p2), id(&p3), id(&p4));

    let list = |q: &str| {
        let q = q.to_string();
        let emu = &emu;
        let key = &key;
        async move {
            let r = emu.get(key, &format!("/v1/prices?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            ids_of(&r.body)
        }
    };
    assert_eq!(list("").await, vec![p3.clone(), p2.clone(), p1.clone()]);
    assert_eq!(list("active=false").await, vec![p4.clone()]);
    assert_eq!(
        list(&format!("product={a}")).await,
        vec![p2.clone(), p1.clone()]
    );
    assert_eq!(
        list(&format!("product={b}&active=false")).await,
        vec![p4.clone()]
    );
    assert_eq!(list("type=one_time").await, vec![p1.clone()]);
    assert_eq!(list("type=recurring").await, vec![p3.clone(), p2.clone()]);
    assert_eq!(
        list("recurring[usage_type]=metered").await,
        vec![p3.clone()]
    );
    assert_eq!(
        list(&format!("recurring[meter]={mtr}")).await,
        vec![p3.clone()]
    );
    assert_eq!(
        list("recurring[interval]=month&recurring[usage_type]=licensed").await,
        vec![p2.clone()]
    );
    assert_eq!(list("currency=eur").await, Vec::<String>::new());
    assert_eq!(list("currency=EUR&active=false").await, vec![p4.clone()]);
    assert_eq!(
        list("lookup_keys[0]=two&lookup_keys[1]=one&lookup_keys[2]=none").await,
        vec![p2.clone(), p1.clone()]
    );
    assert_eq!(list(&format!("created={}", support::T0)).await.len(), 3);
    assert_eq!(list(&format!("created[gt]={}", support::T0)).await.len(), 0);
    // Pages.
    assert_eq!(list("limit=2").await, vec![p3.clone(), p2.clone()]);
    assert_eq!(
        list(&format!("limit=2&starting_after={p2}")).await,
        vec![p1.clone()]
    );
    assert_eq!(
        list(&format!("ending_before={p1}")).await,
        vec![p3.clone(), p2.clone()]
    );

    let page = emu
        .get(
            &key,
            &format!("/v1/prices?limit=1&product={b}&expand[]=data.product"),
        )
        .await;
    assert_json_snapshot!("price_list_page", page.body);

    let refused = answers(
        &emu,
        &key,
        &[
            (
                "too_many_lookup_keys",
                "GET",
                format!(
                    "/v1/prices?{}",
                    (0..11)
                        .map(|i| format!("lookup_keys[]=k{i}"))
                        .collect::<Vec<_>>()
                        .join("&")
                ),
                String::new(),
            ),
            (
                "unknown_product",
                "GET",
                "/v1/prices?product=prod_missing".into(),
                String::new(),
            ),
            (
                "bad_type",
                "GET",
                "/v1/prices?type=forever".into(),
                String::new(),
            ),
            (
                "bad_cursor",
                "GET",
                "/v1/prices?starting_after=price_missing".into(),
                String::new(),
            ),
            (
                "unknown_filter",
                "GET",
                "/v1/prices?recurring[aggregate_usage]=sum".into(),
                String::new(),
            ),
            (
                "expand_tiers_on_list",
                "GET",
                "/v1/prices?expand[]=tiers".into(),
                String::new(),
            ),
        ],
    )
    .await;
    assert_json_snapshot!("price_list_refusals", refused);
}

#[tokio::test]
async fn refusals_in_stripes_envelope() {
    let emu = Emu::start().await;
    let key = emu.tenant("prices_refusals").await;
    let prod = product(&emu, &key, "P").await;
    let mtr = meter(&emu, &key, "bytes");
    let base = format!("product={prod}&currency=usd");
    let case = |name: &'static str, form: String| (name, "POST", "/v1/prices".to_string(), form);
    let cases = [
        case("missing_currency", format!("product={prod}&unit_amount=1")),
        case("bad_currency", format!("product={prod}&currency=zzz&unit_amount=1")),
        case("missing_product", "currency=usd&unit_amount=1".into()),
        case("product_and_product_data", format!("{base}&unit_amount=1&product_data[name]=x")),
        case("unknown_product", "product=prod_missing&currency=usd&unit_amount=1".into()),
        case("missing_amount", base.clone()),
        case("negative_amount", format!("{base}&unit_amount=-1")),
        case("fractional_unit_amount", format!("{base}&unit_amount=1.5")),
        case("both_amounts", format!("{base}&unit_amount=1&unit_amount_decimal=1.5")),
        case("too_many_decimals", format!("{base}&unit_amount_decimal=0.0000000000001")),
        case("bad_decimal", format!("{base}&unit_amount_decimal=1e3")),
        case("negative_decimal", format!("{base}&unit_amount_decimal=-0.5")),
        case("bad_billing_scheme", format!("{base}&unit_amount=1&billing_scheme=flat")),
        case("tiers_without_tiered", format!("{base}&unit_amount=1&tiers[0][up_to]=inf&tiers[0][unit_amount]=1")),
        case("tiered_without_tiers", format!("{base}&billing_scheme=tiered&tiers_mode=volume")),
        case("tiered_without_mode", format!("{base}&billing_scheme=tiered&tiers[0][up_to]=inf&tiers[0][unit_amount]=1")),
        case("tiered_with_unit_amount", format!("{base}&billing_scheme=tiered&tiers_mode=volume&unit_amount=1&tiers[0][up_to]=inf&tiers[0][unit_amount]=1")),
        case("tier_without_amount", format!("{base}&billing_scheme=tiered&tiers_mode=volume&tiers[0][up_to]=inf")),
        case("tier_both_amounts", format!("{base}&billing_scheme=tiered&tiers_mode=volume&tiers[0][up_to]=inf&tiers[0][unit_amount]=1&tiers[0][unit_amount_decimal]=1")),
        case("tier_missing_up_to", format!("{base}&billing_scheme=tiered&tiers_mode=volume&tiers[0][unit_amount]=1")),
        case("tier_bad_up_to", format!("{base}&billing_scheme=tiered&tiers_mode=volume&tiers[0][up_to]=lots&tiers[0][unit_amount]=1")),
        case("tiers_not_ascending", format!("{base}&billing_scheme=tiered&tiers_mode=graduated&tiers[0][up_to]=10&tiers[0][unit_amount]=1&tiers[1][up_to]=10&tiers[1][unit_amount]=1&tiers[2][up_to]=inf&tiers[2][unit_amount]=1")),
        case("last_tier_bounded", format!("{base}&billing_scheme=tiered&tiers_mode=graduated&tiers[0][up_to]=10&tiers[0][unit_amount]=1")),
        case("inf_not_last", format!("{base}&billing_scheme=tiered&tiers_mode=graduated&tiers[0][up_to]=inf&tiers[0][unit_amount]=1&tiers[1][up_to]=inf&tiers[1][unit_amount]=1")),
        case("transform_with_tiers", format!("{base}&billing_scheme=tiered&tiers_mode=volume&tiers[0][up_to]=inf&tiers[0][unit_amount]=1&transform_quantity[divide_by]=10&transform_quantity[round]=up")),
        case("transform_divide_by_zero", format!("{base}&unit_amount=1&transform_quantity[divide_by]=0&transform_quantity[round]=up")),
        case("transform_missing_round", format!("{base}&unit_amount=1&transform_quantity[divide_by]=10")),
        case("recurring_missing_interval", format!("{base}&unit_amount=1&recurring[interval_count]=2")),
        case("recurring_bad_interval", format!("{base}&unit_amount=1&recurring[interval]=fortnight")),
        case("recurring_over_three_years", format!("{base}&unit_amount=1&recurring[interval]=month&recurring[interval_count]=37")),
        case("metered_without_meter", format!("{base}&unit_amount=1&recurring[interval]=month&recurring[usage_type]=metered")),
        case("meter_on_licensed", format!("{base}&unit_amount=1&recurring[interval]=month&recurring[meter]={mtr}")),
        case("unknown_meter", format!("{base}&unit_amount=1&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]=mtr_missing")),
        case("aggregate_usage", format!("{base}&unit_amount=1&recurring[interval]=month&recurring[aggregate_usage]=sum")),
        case("trial_too_long", format!("{base}&unit_amount=1&recurring[interval]=month&recurring[trial_period_days]=731")),
        case("custom_unit_amount", format!("{base}&custom_unit_amount[enabled]=true")),
        case("lookup_key_too_long", format!("{base}&unit_amount=1&lookup_key={}", "k".repeat(201))),
        case("bad_tax_behavior", format!("{base}&unit_amount=1&tax_behavior=sometimes")),
        case("product_data_without_name", "currency=usd&unit_amount=1&product_data[unit_label]=x".into()),
        case("product_data_bad_id", "currency=usd&unit_amount=1&product_data[name]=x&product_data[id]=a/b".into()),
        case("expand_unknown", format!("{base}&unit_amount=1&expand[]=currency")),
        ("retrieve_unknown", "GET", "/v1/prices/price_missing".to_string(), String::new()),
    ];
    let refused = answers(&emu, &key, &cases).await;
    assert_json_snapshot!("price_create_refusals", refused);
    // Nothing was made by any of them.
    let listed = emu.get(&key, "/v1/prices?limit=100").await;
    assert_eq!(ids_of(&listed.body), Vec::<String>::new());
    emu.running
        .app
        .store
        .with_tenant(&key, |t| t.check_indexes())
        .expect("indexes in step");
}

#[tokio::test]
async fn metered_prices_need_a_meter_only_from_basil() {
    let emu = Emu::start().await;
    let key = emu.tenant("prices_versions").await;
    let prod = product(&emu, &key, "Legacy").await;
    let form = format!(
        "product={prod}&currency=usd&unit_amount=3&recurring[interval]=month&recurring[usage_type]=metered"
    );
    let before = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/prices",
            &form,
            &[("stripe-version", "2025-02-24.acacia")],
        )
        .await;
    assert_eq!(before.status, 200, "{}", before.text);
    assert_eq!(before.body["recurring"]["meter"], Value::Null);
    assert_eq!(before.body["recurring"]["usage_type"], json!("metered"));
    let from = emu
        .stripe_with(
            "POST",
            &key,
            "/v1/prices",
            &form,
            &[("stripe-version", "2025-03-31.basil")],
        )
        .await;
    assert_eq!(from.status, 400, "{}", from.text);
    assert_eq!(from.body["error"]["param"], json!("recurring[meter]"));
}

#[tokio::test]
async fn async_stripe_creates_a_product_and_a_metered_price() {
    use stripe_product::price::{
        CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval,
        CreatePriceRecurringUsageType, ListPrice, RetrievePrice,
    };
    use stripe_product::product::CreateProduct;

    let emu = Emu::start().await;
    let key = emu.tenant("prices_sdk").await;
    let c = support::sdk::client(&emu, &key);
    let mtr = meter(&emu, &key, "tokens");

    let product = CreateProduct::new("Tokens")
        .unit_label("token")
        .send(&c)
        .await
        .expect("create product");
    assert_eq!(product.name, "Tokens");

    let mut recurring = CreatePriceRecurring::new(CreatePriceRecurringInterval::Month);
    recurring.usage_type = Some(CreatePriceRecurringUsageType::Metered);
    recurring.meter = Some(mtr.clone());
    let price = CreatePrice::new(stripe_types::Currency::USD)
        .product(product.id.as_str())
        .unit_amount(2)
        .recurring(recurring)
        .lookup_key("tokens_monthly")
        .send(&c)
        .await
        .expect("create price");
    let r = price.recurring.as_ref().expect("recurring");
    assert_eq!(r.meter.as_deref(), Some(mtr.as_str()));
    assert_eq!(price.unit_amount, Some(2));
    assert_eq!(price.lookup_key.as_deref(), Some("tokens_monthly"));

    let fetched = RetrievePrice::new(price.id.clone())
        .send(&c)
        .await
        .expect("retrieve price");
    assert_eq!(fetched.id, price.id);
    let listed = ListPrice::new()
        .product(product.id.as_str())
        .send(&c)
        .await
        .expect("list prices");
    assert_eq!(listed.data.len(), 1);
}
