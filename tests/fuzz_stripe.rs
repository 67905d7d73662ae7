//! Property tests of Stripe parameter extraction and the code behind it, in process (no socket):
//! short sequences of requests built from Stripe's own vocabulary, mutated valid forms and garbage,
//! on every Stripe route (the ledger, invoices, subscriptions and `POST /_emulator/invoices`
//! included), against a fresh seeded world each time. Short by default; a long run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release --test suite fuzz_stripe::
//! ```
//!
//! For every request: no panic; a status Stripe uses; a 200 is an object and anything else is
//! Stripe's error envelope; a refused request leaves the tenant exactly as it was (ids included); and
//! the ledger stays consistent (every balance the sum of its entries, never below zero, every
//! invoice's entries equal to what it applied).

use crate::support;

use proptest::prelude::*;
use serde_json::Value;
use support::fuzz::{self as fs, BASE, KEY};

const NAMES: &[&str] = &[
    "customer",
    "amount",
    "type",
    "monetary",
    "currency",
    "value",
    "applicability_config",
    "scope",
    "price_type",
    "prices",
    "id",
    "category",
    "effective_at",
    "expires_at",
    "metadata",
    "name",
    "priority",
    "expand",
    "limit",
    "starting_after",
    "ending_before",
    "email",
    "description",
    "phone",
    "test_clock",
    "frozen_time",
    "real_time",
    "customer_account",
    "address",
    "line1",
    "shipping",
    "invoice_prefix",
    "invoice_settings",
    "custom_fields",
    "rendering_options",
    "preferred_locales",
    "tax_exempt",
    "balance",
    "next_invoice_sequence",
    "created",
    "gt",
    "gte",
    "lt",
    "lte",
    "query",
    "page",
    "data",
    "lines",
    "filter",
    "credit_grant",
    "price",
    "applicability_scope",
    "items",
    "quantity",
    "deleted",
    "proration_behavior",
    "payment_behavior",
    "cancel_at_period_end",
    "cancel_at",
    "cancellation_details",
    "comment",
    "feedback",
    "billing_cycle_anchor",
    "billing_mode",
    "collection_method",
    "days_until_due",
    "status",
    "subscription",
    "invoice_now",
    "prorate",
    "x",
    "",
];

fn values() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "0",
        "-0",
        "1",
        "-1",
        "50",
        "100",
        "101",
        "99999999",
        "2147483648",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "99999999999999999999",
        "9223372036",
        "9223372037",
        "-9223372036",
        "-9223372037",
        "1.5",
        "1e3",
        " 1",
        "usd",
        "USD",
        "eur",
        "jpy",
        "xxx",
        "monetary",
        "metered",
        "paid",
        "promotional",
        "true",
        "false",
        "customer",
        "test_clock",
        "data.customer",
        "data.test_clock",
        "{cus}",
        "{clock_cus}",
        "{clock}",
        "{grant}",
        "{voided}",
        "{clock_grant}",
        "{spend_cus}",
        "{invoice}",
        "{price}",
        "{metered_price}",
        "{other_price}",
        "{stripe_sub}",
        "{stripe_item}",
        "none",
        "send_invoice",
        "all",
        "canceled",
        "credit_grant",
        "applicability_scope",
        "price_a",
        "999999999999",
        "1000000000000",
        "cus_",
        "credgr_test_",
        "a@b.co",
        "%",
        "%zz",
        "%ff",
        "%00",
        "é",
        "💥",
        "a+b",
        "[",
        "]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for d in [-1i64, 0, 1, 3600, 86_400 * 365, 86_400 * 800] {
        v.push((BASE + d).to_string());
    }
    v
}

fn name() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("[]".to_string()),
        Just("[0]".to_string()),
        Just("[1]".to_string()),
        Just("[20]".to_string()),
        prop::sample::select(NAMES).prop_map(|n| format!("[{n}]")),
    ];
    (
        prop::sample::select(NAMES),
        prop::collection::vec(seg, 0..4),
    )
        .prop_map(|(n, segs)| format!("{n}{}", segs.concat()))
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(values()),
        1 => "[ -~]{0,12}",
        1 => "\\PC{0,6}",
        1 => "[0-9]{1,25}",
    ]
}

/// A request that is right but for a few random edits, so that it gets past validation into the
/// model: `(method, path, form)`.
const TEMPLATES: &[(&str, &str, &str)] = &[
    ("POST", "/v1/billing/credit_grants", "customer={cus}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1000&applicability_config[scope][price_type]=metered"),
    ("POST", "/v1/billing/credit_grants", "customer={clock_cus}&amount[type]=monetary&amount[monetary][currency]=jpy&amount[monetary][value]=7&applicability_config[scope][prices][0][id]=price_a&effective_at=BASE&expires_at=BASE&priority=0&category=promotional&name=n&metadata[k]=v"),
    ("POST", "/v1/billing/credit_grants/{grant}", "expires_at=BASE&metadata[k]=v"),
    ("POST", "/v1/billing/credit_grants/{clock_grant}", "expires_at=&metadata="),
    ("POST", "/v1/billing/credit_grants/{grant}/void", "expand[]=customer"),
    ("POST", "/v1/billing/credit_grants/{clock_grant}/expire", "expand[0]=test_clock"),
    ("POST", "/v1/billing/credit_grants/{voided}/expire", ""),
    ("GET", "/v1/billing/credit_grants", "customer={cus}&limit=2&starting_after={grant}&expand[]=data.customer"),
    ("GET", "/v1/customers", "email=f@example.com&test_clock={clock}&limit=1&ending_before={cus}"),
    ("POST", "/v1/customers", "email=m@example.com&name=n&phone=1&description=d&test_clock={clock}&metadata[a]=b"),
    ("POST", "/v1/customers/{cus}", "email=&name=x&metadata[a]="),
    ("DELETE", "/v1/customers/{clock_cus}", ""),
    ("POST", "/v1/customers/{cus}", "address[city]=c&shipping[name]=n&shipping[address][line1]=l&invoice_prefix=ABC&invoice_settings[custom_fields][0][name]=a&invoice_settings[custom_fields][0][value]=b&invoice_settings[rendering_options][amount_tax_display]=exclude_tax&tax_exempt=exempt&balance=1&next_invoice_sequence=2&preferred_locales[]=en&business_name=b"),
    ("GET", "/v1/customers", "created[gte]=BASE&created[lt]=BASE&limit=2&starting_after={cus}"),
    ("GET", "/v1/customers/search", "query=name~'abc' OR email:\"m@example.com\" OR -metadata['a']:null OR created>=BASE&limit=2&page=&expand[]=total_count"),
    ("GET", "/v1/billing/credit_grants", "customer={cus}&created[gt]=BASE&limit=1"),
    ("POST", "/v1/test_helpers/test_clocks", "frozen_time=BASE&name=c"),
    ("POST", "/v1/test_helpers/test_clocks/{clock}/advance", "frozen_time=BASE"),
    ("DELETE", "/v1/test_helpers/test_clocks/{clock}", ""),
    ("GET", "/v1/test_helpers/test_clocks", "limit=3&starting_after={clock}"),
    ("POST", "/_emulator/clock", "frozen_time=BASE"),
    ("POST", "/_emulator/invoices", "customer={spend_cus}&currency=usd&lines[0][amount]=100&lines[1][amount]=5&lines[1][price]=price_a&lines[1][description]=d&expand[]=customer"),
    ("POST", "/_emulator/invoices", "customer={cus}&currency=usd&lines[0][amount]=1500"),
    ("POST", "/v1/invoices/{invoice}/void", "expand[]=customer"),
    ("GET", "/v1/invoices/{invoice}", "expand[]=test_clock"),
    ("GET", "/v1/invoices/{invoice}/lines", "limit=1"),
    ("GET", "/v1/billing/credit_balance_summary", "customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
    ("GET", "/v1/billing/credit_balance_summary", "customer={spend_cus}&filter[type]=credit_grant&filter[credit_grant]={grant}&expand[]=customer"),
    ("GET", "/v1/billing/credit_balance_transactions", "customer={cus}&credit_grant={grant}&limit=2&expand[]=data.credit_grant"),
    ("POST", "/v1/subscriptions", "customer={cus}&items[0][price]={other_price}&items[0][quantity]=3&items[1][price]={metered_price}&metadata[k]=v&collection_method=send_invoice&days_until_due=7&cancel_at_period_end=true"),
    ("POST", "/v1/subscriptions", "customer={clock_cus}&items[0][price]={metered_price}&billing_cycle_anchor=BASE&description=d"),
    ("POST", "/v1/subscriptions/{stripe_sub}", "items[0][id]={stripe_item}&items[0][quantity]=5&items[1][price]={other_price}&proration_behavior=none&cancel_at_period_end=true&metadata[k]=v"),
    ("POST", "/v1/subscriptions/{stripe_sub}", "items[0][id]={stripe_item}&items[0][deleted]=true&proration_behavior=none&cancellation_details[comment]=c"),
    ("DELETE", "/v1/subscriptions/{stripe_sub}", "invoice_now=true&cancellation_details[feedback]=other&expand[]=customer"),
    ("GET", "/v1/subscriptions", "customer={cus}&status=all&price={price}&limit=1&starting_after={stripe_sub}&expand[]=data.latest_invoice"),
    ("GET", "/v1/subscription_items", "subscription={stripe_sub}&limit=1&starting_after={stripe_item}"),
    ("POST", "/v1/invoices/create_preview", "subscription={stripe_sub}&subscription_details[items][0][id]={stripe_item}&subscription_details[items][0][quantity]=5&subscription_details[items][1][price]={other_price}&subscription_details[proration_behavior]=none&invoice_items[0][amount]=100&invoice_items[0][currency]=usd&currency=usd"),
    ("POST", "/v1/invoices/create_preview", "customer={cus}&subscription_details[items][0][price]={metered_price}&subscription_details[cancel_at_period_end]=true&invoice_items[0][unit_amount_decimal]=1.5&invoice_items[0][quantity]=3&invoice_items[0][currency]=usd"),
    ("POST", "/v1/invoices/create_preview", "subscription={stripe_sub}&subscription_details[cancel_now]=true&subscription_details[proration_behavior]=none&expand[]=customer"),
    ("POST", "/v1/invoices/{invoice}", "description=d&metadata[k]=v&auto_advance=false&collection_method=send_invoice&days_until_due=3"),
    ("POST", "/v1/invoices/{invoice}", "metadata[k]=&auto_advance=true&automatically_finalizes_at=BASE"),
    ("GET", "/v1/invoices/search", "query=status:'paid' OR total>=100 OR customer:'{cus}'&limit=2&expand[]=total_count"),
    ("GET", "/v1/subscriptions/search", "query=-metadata['k']:null status:'active'&page=&limit=1"),
    ("GET", "/v1/prices/search", "query=type:'recurring' AND lookup_key~'abc'&expand[]=data.product"),
];

fn template() -> impl Strategy<Value = (&'static str, &'static str, Vec<(String, String)>)> {
    // (what: replace a value / drop a field / add a field, where, added name, value)
    let edit = (0u8..3, any::<prop::sample::Index>(), name(), value());
    (
        prop::sample::select(TEMPLATES),
        prop::collection::vec(edit, 0..3),
    )
        .prop_map(|((m, p, f), edits)| {
            let mut pairs: Vec<(String, String)> = f
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_string(), v.replace("BASE", &(BASE + 3600).to_string()))
                })
                .collect();
            for (op, i, n, v) in edits {
                match op {
                    0 if !pairs.is_empty() => {
                        let k = i.index(pairs.len());
                        pairs[k].1 = v;
                    }
                    1 if !pairs.is_empty() => {
                        pairs.remove(i.index(pairs.len()));
                    }
                    2 => pairs.push((n, v)),
                    _ => {}
                }
            }
            (m, p, pairs)
        })
}

const PATHS: &[&str] = &[
    "/v1/customers",
    "/v1/customers/search",
    "/v1/customers/{cus}",
    "/v1/customers/{clock_cus}",
    "/v1/customers/{id}",
    "/v1/billing/credit_grants",
    "/v1/billing/credit_grants/{grant}",
    "/v1/billing/credit_grants/{clock_grant}",
    "/v1/billing/credit_grants/{grant}/void",
    "/v1/billing/credit_grants/{grant}/expire",
    "/v1/billing/credit_grants/{voided}/void",
    "/v1/billing/credit_grants/{voided}/expire",
    "/v1/billing/credit_grants/{clock_grant}/expire",
    "/v1/billing/credit_grants/{id}/void",
    "/v1/test_helpers/test_clocks",
    "/v1/test_helpers/test_clocks/{clock}",
    "/v1/test_helpers/test_clocks/{clock}/advance",
    "/v1/test_helpers/test_clocks/{id}/advance",
    "/_emulator/clock",
    "/_emulator/invoices",
    "/v1/invoices/{invoice}",
    "/v1/invoices/{invoice}/void",
    "/v1/invoices/{invoice}/lines",
    "/v1/invoices/{id}/void",
    "/v1/billing/credit_balance_summary",
    "/v1/billing/credit_balance_transactions",
    "/v1/billing/credit_balance_transactions/{id}",
    "/v1/subscriptions",
    "/v1/subscriptions/{stripe_sub}",
    "/v1/subscriptions/{id}",
    "/v1/subscription_items",
    "/v1/subscription_items/{stripe_item}",
    "/v1/invoices/create_preview",
    "/v1/invoices/search",
    "/v1/subscriptions/search",
    "/v1/prices/search",
    "/v1/products/search",
    "/v1/{id}",
];

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: &'static str,
    id: String,
    pairs: Vec<(String, String)>,
    in_query: bool,
    auth: u8,
    idempotency: Option<&'static str>,
}

fn req() -> impl Strategy<Value = Req> {
    let random = (
        prop::sample::select(vec!["GET", "POST", "POST", "DELETE", "PUT"]),
        prop::sample::select(PATHS),
        prop::collection::vec((name(), value()), 0..10),
    );
    let shape = prop_oneof![3 => template(), 1 => random];
    (
        shape,
        prop_oneof![
            Just("x".to_string()),
            "[ -~]{0,30}",
            Just("cus_00000000000000000000000000".to_string())
        ],
        any::<bool>(),
        prop_oneof![18 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        prop::option::of(prop::sample::select(vec!["k1", "k2"])),
    )
        .prop_map(
            |((method, path, pairs), id, in_query, auth, idempotency)| Req {
                method,
                path,
                id,
                pairs,
                in_query,
                auth,
                idempotency,
            },
        )
}

/// Percent-encodes what a form value or id must not carry raw; `%` sequences from the vocabulary
/// pass through so that broken escapes reach the decoder.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            'A'..='Z'
            | 'a'..='z'
            | '0'..='9'
            | '-'
            | '_'
            | '.'
            | '~'
            | '%'
            | '['
            | ']'
            | '{'
            | '}' => out.push(c),
            ' ' => out.push('+'),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

fn run(
    r: &Req,
    app: &credit_emulator::App,
    ids: &std::collections::HashMap<&'static str, String>,
) -> Result<(), String> {
    let form = r
        .pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let form = fs::fill(&form, ids);
    let mut path = fs::fill(r.path, ids).replace("{id}", &enc(&r.id));
    let mut body = Vec::new();
    if r.in_query && !form.is_empty() {
        path = format!("{path}?{form}");
    } else {
        body = form.into_bytes();
    }
    let mut headers = vec![(
        "content-type".to_string(),
        b"application/x-www-form-urlencoded".to_vec(),
    )];
    match r.auth {
        0 => headers.push((
            "authorization".to_string(),
            format!("Bearer {KEY}").into_bytes(),
        )),
        1 => headers.push(("authorization".to_string(), b"Bearer sk_live_nope".to_vec())),
        _ => {}
    }
    if let Some(k) = r.idempotency {
        headers.push(("idempotency-key".to_string(), k.as_bytes().to_vec()));
    }
    let before = fs::dump(app);
    let reply = fs::call_guarded(app, r.method, &path, &headers, &body)?;
    let json: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| format!("not JSON: {}", String::from_utf8_lossy(&reply.body)))?;
    match reply.status {
        200 => {
            if !json.is_object() {
                return Err(format!("200 that is not an object: {json}"));
            }
        }
        400 | 401 | 404 | 409 => {
            fs::stripe_envelope_ok(reply.status, &json)?;
            // A replayed idempotent answer is a stored one, and stores nothing new either.
            if fs::dump(app) != before {
                return Err(format!(
                    "a refused request ({}) changed the tenant: {json}",
                    reply.status
                ));
            }
        }
        s => return Err(format!("status {s}: {json}")),
    }
    fs::ledger_ok(app)
}

proptest! {
    #![proptest_config(fs::config(256))]

    #[test]
    fn stripe_requests_never_panic_and_refusals_change_nothing(reqs in prop::collection::vec(req(), 1..7)) {
        let (app, ids) = fs::world();
        for r in &reqs {
            if let Err(e) = run(r, &app, &ids) {
                prop_assert!(false, "{e}\nrequest: {r:?}");
            }
        }
    }
}

/// Inputs the property test has found or that sit on the edges it probes, kept as fixed checks.
#[test]
fn pinned_edges() {
    let (app, ids) = fs::world();
    let grant = |extra: &str| {
        fs::form(
            &app,
            "POST",
            "/v1/billing/credit_grants",
            &fs::fill(
                &format!("customer={{cus}}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1&applicability_config[scope][price_type]=metered{extra}"),
                &ids,
            ),
        )
    };
    // The last second the model can represent, and one past it.
    assert_eq!(grant("&effective_at=9223372036").status, 200);
    assert_eq!(grant("&effective_at=9223372037").status, 400);
    assert_eq!(grant("&effective_at=-9223372036").status, 200);
    assert_eq!(grant("&expires_at=9223372036").status, 200);
    let adv = fs::form(
        &app,
        "POST",
        &fs::fill("/v1/test_helpers/test_clocks/{clock}/advance", &ids),
        "frozen_time=9223372036",
    );
    assert_eq!(adv.status, 400, "{}", String::from_utf8_lossy(&adv.body));
    let far = fs::form(
        &app,
        "POST",
        "/v1/test_helpers/test_clocks",
        "frozen_time=9223372036",
    );
    assert_eq!(far.status, 200);
    fs::ledger_ok(&app).unwrap();
}
