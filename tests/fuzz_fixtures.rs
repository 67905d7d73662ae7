//! Property tests of `POST /_emulator/fixtures`, in process: generated fixture files (any method,
//! paths of both APIs and the emulator's own, references good and bad, environment variables,
//! expected errors, headers, nested parameters) and mutated file text, against a fresh seeded world
//! that holds real objects of both APIs. Short by default; a long run:
//!
//! ```sh
//! PROPTEST_CASES=20000 cargo test --release --test suite fuzz_fixtures::
//! ```
//!
//! For every file: no panic; the answer is a 200 listing every fixture, or a 400 (401, 413) in
//! Stripe's envelope; a refusal that applied nothing (a bare envelope, or a run stopped at its first
//! fixture) leaves the world exactly as it was, ids included; a run that stopped names the fixture
//! right after the ones it lists as applied; the ledger and the indexes stay consistent.

use crate::support;

use std::collections::HashMap;

use credit_emulator::App;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use support::fuzz::{self as fs, KEY};

/// Paths a fixture may name: both APIs, the emulator's own routes, references in segments and
/// queries.
const PATHS: &[&str] = &[
    "/v1/customers",
    "/v1/customers",
    "/v1/customers/{cus}",
    "/v1/customers/${a:id}",
    "/v1/customers/${b:data.0.id|cus_none}",
    "/v1/customers?limit=${a:data.#|2}",
    "/v1/billing/credit_grants",
    "/v1/billing/credit_grants",
    "/v1/billing/credit_grants/{grant}",
    "/v1/billing/credit_grants/${a:id|x}/void",
    "/v1/billing/credit_balance_summary",
    "/v1/billing/meters",
    "/v1/billing/meter_events",
    "/v1/products",
    "/v1/prices",
    "/v1/subscriptions",
    "/v1/test_helpers/test_clocks",
    "/v1/test_helpers/test_clocks/{clock}/advance",
    "/v1/creditgrants",
    "/v1/creditgrants/${a:id|cg_x}",
    "/v1/plans",
    "/v1/customers/{ncus}/wallets",
    "/_emulator/clock",
    "/_emulator/invoices",
    "/_emulator/reset",
    "/v1/nothing",
    "/v2/billing/meter_event_session",
    "/v1/customers/${.env:CREDIT_EMULATOR_FUZZ_UNSET|cus_x}",
    "/v1/customers/${generate-uuid}",
];

/// Paths that are refused before anything is applied.
const BAD_PATHS: &[&str] = &[
    "/_emulator/fixtures",
    "relative",
    "/v1/customers/a b",
    "${a:id}",
    "/v1/#x",
];

const METHODS: &[&str] = &[
    "get", "post", "delete", "post", "post", "put", "POST", "Get",
];
const BAD_METHODS: &[&str] = &["patch", "", "TRACE"];

const NAMES: &[&str] = &["a", "b", "c", "a", "b", "customer", "", "x y", "é"];

/// Parameter names Stripe's and the native API's routes read, and some they do not.
const KEYS: &[&str] = &[
    "name",
    "email",
    "customer",
    "amount",
    "type",
    "monetary",
    "currency",
    "value",
    "applicability_config",
    "scope",
    "price_type",
    "category",
    "metadata",
    "expand",
    "frozen_time",
    "limit",
    "plan_id",
    "credits",
    "cadence",
    "expiration_type",
    "external_id",
    "display_name",
    "event_name",
    "default_aggregation",
    "formula",
    "payload",
    "product",
    "unit_amount",
    "recurring",
    "interval",
    "items",
    "price",
    "seconds",
    "a[b]",
    "",
];

/// String values: plain, ids of the world, and references that parse (whether they find
/// anything is known only while the file is applied).
const TEXTS: &[&str] = &[
    "usd",
    "monetary",
    "metered",
    "promotional",
    "paid",
    "sum",
    "month",
    "1000",
    "-1",
    "{cus}",
    "{ncus}",
    "{plan}",
    "{price}",
    "{metered_price}",
    "${a:id|none}",
    "${a:object|none}",
    "${b:data.0.id|none}",
    "${b:data.[0].id|none}",
    "${a:missing|fallback}",
    "${a:missing}",
    "${.env:CREDIT_EMULATOR_FUZZ_UNSET|d}",
    "${time-now-RFC3339}",
    "${generate-uuid}",
    "a ${a:id|x} b ${a:name|n}",
    "",
    "Zoë & = % +",
];

/// Strings that are refused before anything is applied.
const BAD_TEXTS: &[&str] = &[
    "${nobody:id}",
    "${.env:CREDIT_EMULATOR_FUZZ_UNSET}",
    "${.env:A=B}",
    "${",
    "${a}",
    "${:x}",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => prop::sample::select(TEXTS).prop_map(Value::from),
        1 => prop::sample::select(BAD_TEXTS).prop_map(Value::from),
        2 => any::<i32>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| json!(f)),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..4).prop_map(
                |pairs| Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<String, Value>>()
                )
            ),
            prop::collection::vec(inner, 0..3).prop_map(Value::Array),
        ]
    })
}

fn params() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        1 => leaf().prop_map(Some),
        12 => prop::collection::vec((prop::sample::select(KEYS), tree()), 0..5).prop_map(|pairs| {
            Some(Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ))
        }),
    ]
}

fn headers() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        30 => Just(None),
        2 => Just(Some(json!({"Stripe-Version": "2024-12-18.acacia"}))),
        2 => Just(Some(json!({"Idempotency-Key": "k-${a:id|none}"}))),
        1 => Just(Some(json!({"Idempotency-Key": "k-${a:id|none}"}))),
        1 => Just(Some(json!({"Authorization": "Bearer sk_test_other"}))),
        1 => Just(Some(json!({"X-Note": "line\nbreak"}))),
        1 => Just(Some(json!({"Bad Name": "x"}))),
        1 => Just(Some(json!(7))),
    ]
}

/// Fixtures every world here accepts (given the fixtures before them), so that runs go past their
/// first request.
const VALID: &[&str] = &[
    r#"{"method": "post", "path": "/v1/customers", "params": {"name": "Ada", "metadata": {"k": "${generate-uuid}"}}}"#,
    r#"{"method": "get", "path": "/v1/customers", "params": {"limit": 2, "expand": ["data.test_clock"]}}"#,
    r#"{"method": "post", "path": "/v1/billing/credit_grants", "params": {"customer": "{cus}", "category": "paid", "amount": {"type": "monetary", "monetary": {"currency": "usd", "value": 100}}, "applicability_config": {"scope": {"price_type": "metered"}}}}"#,
    r#"{"method": "get", "path": "/v1/customers/${a:id|{cus}}"}"#,
    r#"{"method": "post", "path": "/v1/plans", "params": {"name": "P ${time-now-RFC3339}"}}"#,
    r#"{"method": "post", "path": "/v1/creditgrants", "params": {"name": "G", "scope": "PLAN", "plan_id": "{plan}", "credits": "5", "cadence": "ONETIME", "expiration_type": "NEVER"}}"#,
    r#"{"method": "delete", "path": "/v1/customers/${b:id|cus_none}", "expected_error_type": "invalid_request_error"}"#,
    r#"{"method": "get", "path": "/v1/billing/credit_balance_summary", "params": {"customer": "{cus}", "filter": {"type": "applicability_scope", "applicability_scope": {"price_type": "metered"}}}}"#,
    r#"{"method": "post", "path": "/v1/customers/{cus}", "params": {"metadata": {"from": "${a:object|none}"}}, "idempotency_key": "${a:id|k}"}"#,
];

prop_compose! {
    fn valid_fixture()(
        text in prop::sample::select(VALID),
        name in prop::sample::select(NAMES),
    ) -> Value {
        let mut f: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        f["name"] = Value::from(name);
        f
    }
}

fn fixture() -> impl Strategy<Value = Value> {
    prop_oneof![3 => valid_fixture(), 2 => any_fixture()]
}

prop_compose! {
    fn any_fixture()(
        name in prop::option::weighted(0.95, prop::sample::select(NAMES)),
        method in prop::option::weighted(0.99, prop_oneof![
            30 => prop::sample::select(METHODS),
            1 => prop::sample::select(BAD_METHODS),
        ]),
        path in prop::option::weighted(0.99, prop_oneof![
            30 => prop::sample::select(PATHS),
            1 => prop::sample::select(BAD_PATHS),
        ]),
        params in params(),
        headers in headers(),
        expected in prop::option::weighted(0.2, prop::sample::select(vec!["invalid_request_error", "not_found", "card_error"])),
        api in prop::option::weighted(0.1, prop::sample::select(vec!["native", "stripe", "native", "stripe", "other"])),
    ) -> Value {
        let mut f = Map::new();
        if let Some(n) = name { f.insert("name".into(), n.into()); }
        if let Some(m) = method { f.insert("method".into(), m.into()); }
        if let Some(p) = path { f.insert("path".into(), p.into()); }
        if let Some(p) = params { f.insert("params".into(), p); }
        if let Some(h) = headers { f.insert("headers".into(), h); }
        if let Some(e) = expected { f.insert("expected_error_type".into(), e.into()); }
        if let Some(a) = api { f.insert("api".into(), a.into()); }
        Value::Object(f)
    }
}

prop_compose! {
    fn file()(
        version in prop::sample::select(vec![json!(0), json!(0), json!(0), json!(0), json!(0), json!(0), json!(0), json!(0), Value::Null, Value::Null, json!(1), json!("0")]),
        fixtures in prop::collection::vec(fixture(), 0..7),
        env in prop::option::weighted(0.2, prop::sample::select(vec![
            json!({"A": "${a:id|none}"}), json!({"B": "${a:nothing}"}), json!({"C": "${time-now-RFC3339}"}), json!({"D": 1}),
        ])),
    ) -> Value {
        // The first two fixtures are `a` and `b`, so that most references name a fixture declared
        // before them; in those two, a reference to themselves or a later one becomes plain text.
        let fixtures: Vec<Value> = fixtures
            .into_iter()
            .enumerate()
            .map(|(i, mut f)| {
                let undeclared: &[&str] = match i {
                    0 => &["a", "b"],
                    1 => &["b"],
                    _ => &[],
                };
                if i < 2 && f.get("name").is_some() {
                    f["name"] = Value::from(["a", "b"][i]);
                }
                let mut text = f.to_string();
                for name in undeclared {
                    text = text.replace(&format!("${{{name}:"), &format!("{name}:"));
                }
                serde_json::from_str(&text).unwrap_or(f)
            })
            .collect();
        let mut top = json!({"_meta": {"template_version": version}, "fixtures": fixtures});
        if let Some(e) = env { top["env"] = e; }
        top
    }
}

/// The file's text, perhaps cut or with a byte changed.
fn text() -> impl Strategy<Value = String> {
    (
        file(),
        prop::option::weighted(0.05, (any::<prop::sample::Index>(), any::<u8>())),
    )
        .prop_map(|(file, edit)| {
            let mut s = file.to_string();
            if let Some((at, byte)) = edit {
                let mut bytes = s.into_bytes();
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    if byte % 2 == 0 {
                        bytes.truncate(i);
                    } else {
                        bytes[i] = byte;
                    }
                }
                s = String::from_utf8_lossy(&bytes).into_owned();
            }
            s
        })
}

/// Sends `file` and checks the answer; `Err` names what went wrong.
fn check(file: &str, app: &App, ids: &HashMap<&'static str, String>) -> Result<(), String> {
    let body = fs::fill(file, ids);
    let before = fs::dump(app);
    let headers = vec![
        (
            "authorization".to_string(),
            format!("Bearer {KEY}").into_bytes(),
        ),
        ("content-type".to_string(), b"application/json".to_vec()),
    ];
    let reply = fs::call_guarded(
        app,
        "POST",
        "/_emulator/fixtures",
        &headers,
        body.as_bytes(),
    )?;
    let answer = fs::json(&reply);
    let fixtures = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|f| f["fixtures"].as_array().map(Vec::len));
    match reply.status {
        200 => {
            if answer["object"] != "emulator.fixtures" {
                return Err(format!("200 that is not a fixtures answer: {answer}"));
            }
            let applied = answer["applied"].as_array().map(Vec::len);
            if applied != fixtures {
                return Err(format!("applied {applied:?} of {fixtures:?}: {answer}"));
            }
        }
        400 => match answer["error"].get("applied") {
            None => {
                fs::stripe_envelope_ok(400, &answer)?;
                if fs::dump(app) != before {
                    return Err(format!("a refusal changed the world: {answer}"));
                }
            }
            Some(applied) => {
                let applied = applied.as_array().ok_or("applied is not a list")?;
                if applied.is_empty() && fs::dump(app) != before {
                    return Err(format!(
                        "a run that applied nothing changed the world: {answer}"
                    ));
                }
                if let Some(index) = answer["error"]["fixture"]["index"].as_u64() {
                    if index as usize != applied.len() {
                        return Err(format!(
                            "stopped at {index} after {} applied",
                            applied.len()
                        ));
                    }
                }
                if answer["error"]["message"]
                    .as_str()
                    .is_none_or(str::is_empty)
                {
                    return Err("no message".into());
                }
            }
        },
        status => return Err(format!("status {status}: {answer}")),
    }
    fs::ledger_ok(app)
}

proptest! {
    #![proptest_config(fs::config(128))]

    #[test]
    fn fixture_files_never_panic_and_refusals_change_nothing(file in text()) {
        let (app, ids) = fs::world();
        let r = check(&file, &app, &ids);
        prop_assert!(r.is_ok(), "{}\nfile: {file}", r.unwrap_err());
    }
}
