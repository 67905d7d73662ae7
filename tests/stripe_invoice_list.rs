//! `GET /v1/invoices` over real sockets: filters, cursors both ways, expand, test-clock invoices and
//! errors.

use crate::support;

use serde_json::{json, Value};
use support::{Emu, T0};

const HOUR: i64 = 3_600;

/// Makes an invoice of one line for `customer` and returns its id.
async fn invoice(emu: &Emu, key: &str, customer: &str, amount: i64) -> String {
    let r = emu
        .post(
            key,
            "/_emulator/invoices",
            &format!("customer={customer}&currency=usd&lines[0][amount]={amount}"),
        )
        .await;
    assert_eq!(r.status, 200, "create invoice: {}", r.text);
    r.id()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

/// A tenant with invoices of two customers at several instants (some sharing a second), one of
/// them voided, and one invoice of a customer on a test clock.
struct World {
    key: String,
    ada: String,
    bob: String,
    clocked: String,
    clock: String,
    /// Names by id, oldest first: a1 a2 b1 a3 b2 a4 (a2 is void), then c1 on the clock.
    names: Vec<(String, &'static str)>,
}

impl World {
    async fn new(emu: &Emu, name: &str) -> World {
        let key = emu.tenant(name).await;
        let ada = emu.customer(&key, "email=ada@example.com&name=Ada").await;
        let bob = emu.customer(&key, "email=bob@example.com").await;
        let clock = emu
            .post(
                &key,
                "/v1/test_helpers/test_clocks",
                &format!("frozen_time={}", T0 - 10 * HOUR),
            )
            .await
            .id();
        let clocked = emu.customer(&key, &format!("test_clock={clock}")).await;
        let a1 = invoice(emu, &key, &ada, 100).await;
        let a2 = invoice(emu, &key, &ada, 200).await;
        emu.freeze(&key, T0 + HOUR).await;
        let b1 = invoice(emu, &key, &bob, 300).await;
        let a3 = invoice(emu, &key, &ada, 400).await;
        emu.freeze(&key, T0 + 2 * HOUR).await;
        let b2 = invoice(emu, &key, &bob, 500).await;
        emu.freeze(&key, T0 + 3 * HOUR).await;
        let a4 = invoice(emu, &key, &ada, 600).await;
        let c1 = invoice(emu, &key, &clocked, 700).await;
        let void = emu.post(&key, &format!("/v1/invoices/{a2}/void"), "").await;
        assert_eq!(void.status, 200, "{}", void.text);
        let names = vec![
            (a1, "a1"),
            (a2, "a2"),
            (b1, "b1"),
            (a3, "a3"),
            (b2, "b2"),
            (a4, "a4"),
            (c1, "c1"),
        ];
        World {
            key,
            ada,
            bob,
            clocked,
            clock,
            names,
        }
    }

    fn name(&self, id: &str) -> &'static str {
        self.names
            .iter()
            .find(|(i, _)| i == id)
            .map_or("?", |(_, n)| *n)
    }

    fn id(&self, name: &str) -> &str {
        &self.names.iter().find(|(_, n)| *n == name).unwrap().0
    }

    /// The names on one page, and `has_more`.
    async fn page(&self, emu: &Emu, query: &str) -> (Vec<&'static str>, bool) {
        let r = emu.get(&self.key, &format!("/v1/invoices?{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(r.body["object"], "list");
        assert_eq!(r.body["url"], "/v1/invoices");
        let names = ids(&r.body).iter().map(|i| self.name(i)).collect();
        (names, r.body["has_more"].as_bool().unwrap())
    }

    /// The names of every page, walking `starting_after` from the first.
    async fn walk(&self, emu: &Emu, query: &str, limit: usize) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = format!("{query}&limit={limit}");
            if let Some(c) = &cursor {
                q.push_str(&format!("&starting_after={c}"));
            }
            let (names, more) = self.page(emu, &q).await;
            assert!(names.len() <= limit);
            out.extend(names.iter().copied());
            if !more {
                break;
            }
            cursor = Some(self.id(names.last().unwrap()).to_string());
        }
        out
    }
}

#[tokio::test]
async fn filters_newest_first_and_clock_invoices_only_by_customer() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "invoice_list").await;
    let (ada, bob, clocked) = (&w.ada, &w.bob, &w.clocked);
    let mut out = serde_json::Map::new();
    let queries = [
        ("all", String::new()),
        ("ada", format!("customer={ada}")),
        ("bob", format!("customer={bob}")),
        ("clocked_customer", format!("customer={clocked}")),
        ("open", "status=open".to_string()),
        ("void", "status=void".to_string()),
        ("ada_open", format!("customer={ada}&status=open")),
        ("ada_void", format!("customer={ada}&status=void")),
        ("draft", "status=draft".to_string()),
        ("paid", "status=paid".to_string()),
        ("uncollectible", "status=uncollectible".to_string()),
        ("created_exact_t0", format!("created={T0}")),
        ("created_exact_between", format!("created={}", T0 + 1)),
        ("created_gt_t0", format!("created[gt]={T0}")),
        (
            "created_gte_t0_plus_1h",
            format!("created[gte]={}", T0 + HOUR),
        ),
        (
            "created_lt_t0_plus_1h",
            format!("created[lt]={}", T0 + HOUR),
        ),
        (
            "created_lte_t0_plus_1h",
            format!("created[lte]={}", T0 + HOUR),
        ),
        (
            "created_window",
            format!("created[gt]={T0}&created[lt]={}", T0 + 3 * HOUR),
        ),
        (
            "created_crossed",
            format!("created[gte]={}&created[lte]={T0}", T0 + HOUR),
        ),
        (
            "created_beyond_every_time",
            format!("created[lt]={}", i64::MAX),
        ),
        (
            "created_before_every_time",
            format!("created[gt]={}", i64::MIN),
        ),
        (
            "ada_open_in_window",
            format!(
                "customer={ada}&status=open&created[gte]={T0}&created[lt]={}",
                T0 + 3 * HOUR
            ),
        ),
        (
            "charge_automatically",
            "collection_method=charge_automatically".to_string(),
        ),
        ("send_invoice", "collection_method=send_invoice".to_string()),
        (
            "clock_customer_in_clock_time",
            format!("customer={clocked}&created={}", T0 - 10 * HOUR),
        ),
    ];
    for (name, q) in &queries {
        let (names, more) = w.page(&emu, q).await;
        out.insert(name.to_string(), json!({"data": names, "has_more": more}));
    }
    insta::assert_json_snapshot!("invoice_list_filters", out);

    // The invoice on the clock carries it, and it is made at the clock's time.
    let c1 = emu
        .get(&w.key, &format!("/v1/invoices/{}", w.id("c1")))
        .await;
    assert_eq!(c1.body["test_clock"], w.clock.as_str());
    assert_eq!(c1.body["created"], T0 - 10 * HOUR);
}

#[tokio::test]
async fn cursors_page_both_ways_through_every_filter() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "invoice_pages").await;
    let all = ["a4", "b2", "a3", "b1", "a2", "a1"];
    for limit in 1..=7 {
        assert_eq!(w.walk(&emu, "", limit).await, all, "limit {limit}");
    }
    let ada = format!("customer={}", w.ada);
    assert_eq!(w.walk(&emu, &ada, 1).await, ["a4", "a3", "a2", "a1"]);
    let open_ada = format!("customer={}&status=open", w.ada);
    assert_eq!(w.walk(&emu, &open_ada, 2).await, ["a4", "a3", "a1"]);
    let window = format!("created[gte]={T0}&created[lte]={}", T0 + HOUR);
    assert_eq!(w.walk(&emu, &window, 1).await, ["a3", "b1", "a2", "a1"]);

    // Backwards from the oldest: each page is newest first, `has_more` says whether newer remain.
    let (p, more) = w
        .page(&emu, &format!("limit=2&ending_before={}", w.id("a1")))
        .await;
    assert_eq!((p, more), (vec!["b1", "a2"], true));
    let (p, more) = w
        .page(&emu, &format!("limit=2&ending_before={}", w.id("b1")))
        .await;
    assert_eq!((p, more), (vec!["b2", "a3"], true));
    let (p, more) = w
        .page(&emu, &format!("limit=2&ending_before={}", w.id("b2")))
        .await;
    assert_eq!((p, more), (vec!["a4"], false));
    let (p, more) = w
        .page(
            &emu,
            &format!("limit=5&ending_before={}&{ada}&status=open", w.id("a1")),
        )
        .await;
    assert_eq!((p, more), (vec!["a4", "a3"], false));

    // A cursor from another list still marks a place in time: ada's invoices older than b2.
    let (p, more) = w
        .page(&emu, &format!("{ada}&starting_after={}", w.id("b2")))
        .await;
    assert_eq!((p, more), (vec!["a3", "a2", "a1"], false));
    // Cursors and a created window that leave nothing between them.
    let (p, more) = w
        .page(
            &emu,
            &format!("created[gt]={}&starting_after={}", T0 + HOUR, w.id("b1")),
        )
        .await;
    assert_eq!((p, more), (Vec::<&str>::new(), false));
    let (p, more) = w
        .page(
            &emu,
            &format!("created[lt]={T0}&ending_before={}", w.id("a1")),
        )
        .await;
    assert_eq!((p, more), (Vec::<&str>::new(), false));
}

#[tokio::test]
async fn whole_page_and_expand() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "invoice_list_page").await;
    let r = emu
        .get(&w.key, &format!("/v1/invoices?customer={}&limit=1", w.bob))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    insta::assert_json_snapshot!("invoice_list_page", r.body);

    let r = emu
        .get(
            &w.key,
            &format!(
                "/v1/invoices?customer={}&limit=1&expand[]=data.customer&expand[]=data.test_clock",
                w.clocked
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let inv = &r.body["data"][0];
    assert_eq!(inv["customer"]["id"], w.clocked.as_str());
    assert_eq!(inv["customer"]["object"], "customer");
    assert_eq!(inv["test_clock"]["id"], w.clock.as_str());
    assert_eq!(inv["test_clock"]["object"], "test_helpers.test_clock");
}

#[tokio::test]
async fn list_errors() {
    let emu = Emu::start().await;
    let w = World::new(&emu, "invoice_list_errors").await;
    let cases = [
        ("unknown_param", "bogus=1".to_string()),
        ("bad_status", "status=paidish".to_string()),
        ("empty_status", "status=".to_string()),
        (
            "bad_collection_method",
            "collection_method=cash".to_string(),
        ),
        ("created_word", "created=soon".to_string()),
        ("created_gt_word", "created[gt]=soon".to_string()),
        ("created_unknown_key", "created[after]=1".to_string()),
        ("created_array", "created[]=1".to_string()),
        ("customer_unknown", "customer=cus_nope".to_string()),
        ("customer_of_other_kind", format!("customer={}", w.clock)),
        ("customer_hash", "customer[id]=1".to_string()),
        ("customer_account", "customer_account=acct_1".to_string()),
        ("due_date", "due_date=1".to_string()),
        ("limit_zero", "limit=0".to_string()),
        ("limit_too_big", "limit=101".to_string()),
        ("cursor_unknown", "starting_after=in_nope".to_string()),
        ("cursor_of_other_kind", format!("ending_before={}", w.ada)),
        (
            "both_cursors",
            format!("starting_after={}&ending_before={}", w.id("a1"), w.id("a2")),
        ),
        ("expand_lines", "expand[]=data.lines".to_string()),
        ("expand_unprefixed", "expand[]=customer".to_string()),
    ];
    let mut out = serde_json::Map::new();
    for (name, q) in cases {
        let r = emu.get(&w.key, &format!("/v1/invoices?{q}")).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        out.insert(name.to_string(), r.body);
    }
    insta::assert_json_snapshot!("invoice_list_errors", out);

    // A subscription that does not exist has no invoices.
    let r = emu.get(&w.key, "/v1/invoices?subscription=sub_1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"], serde_json::json!([]));

    // Creating one names a customer that must exist.
    let r = emu.post(&w.key, "/v1/invoices", "customer=x").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["param"], "customer");
}
