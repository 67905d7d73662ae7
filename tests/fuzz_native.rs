//! Property tests of the native (Flexprice-style) API, in process: generated JSON shaped like the
//! requests of every native route (credit grants, customers, plans, subscriptions and their
//! cancellation), valid requests with a few random edits, mutated JSON text and deeply nested
//! documents, against a fresh seeded world that holds real native objects. Short by default; a long
//! run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release --test suite fuzz_native::
//! ```
//!
//! For every request: no panic; the answer is gin's plain 404, gin's raw auth body, the native
//! envelope `{code, message, http_status_code, details?}` (as `application/json; charset=utf-8`) for
//! errors, or JSON for a success; the only 5xx is the documented `500 database_error`; a refused
//! request leaves the tenant exactly as it was (ids included); the ledger stays consistent.
//!
//! A second property makes valid requests with random parameters and requires that each is
//! accepted, so the generators are known to reach past decoding into the model; it then moves the
//! tenant clock (posting every grant application due) and checks that Stripe's balance summary and
//! the native wallets still agree.

use crate::support;

use std::collections::HashMap;

use credit_emulator::model::Currency;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use support::fuzz::{self as fs, BASE, KEY};

/// Every field of every native request body, and a few that no route has.
const FIELDS: &[&str] = &[
    "name",
    "scope",
    "plan_id",
    "subscription_id",
    "addon_id",
    "credits",
    "amount",
    "expire_in_days",
    "cadence",
    "period",
    "period_count",
    "expiration_type",
    "expiration_duration",
    "expiration_duration_unit",
    "priority",
    "metadata",
    "start_date",
    "end_date",
    "conversion_rate",
    "topup_conversion_rate",
    "effective_date",
    "external_id",
    "email",
    "lookup_key",
    "description",
    "credit_grants",
    "customer_id",
    "external_customer_id",
    "currency",
    "billing_cadence",
    "billing_period",
    "billing_period_count",
    "billing_cycle",
    "subscription_status",
    "cancellation_type",
    "reason",
    "prices",
    "trial_end",
    "address_city",
    "x",
];

const WORDS: &[&str] = &[
    "",
    "x",
    "PLAN",
    "SUBSCRIPTION",
    "ADDON",
    "GALAXY",
    "ONETIME",
    "RECURRING",
    "DAILY",
    "WEEKLY",
    "MONTHLY",
    "ANNUAL",
    "QUARTERLY",
    "HALF_YEARLY",
    "HOURLY",
    "NEVER",
    "DURATION",
    "BILLING_CYCLE",
    "DAY",
    "MONTH",
    "CENTURY",
    "plan_x",
    "subs_x",
    "addon_x",
    "10",
    "0",
    "-1",
    "1e400",
    "1e9999999999",
    "-1e-40",
    "0.0001",
    "0.000000001",
    "99999.99999",
    "999999999999.99999999",
    "99999999999999999999999999999999",
    "2100-01-01T00:00:00Z",
    "2100-01-01T00:00:00.123456789Z",
    "2100-01-01 00:00:00Z",
    "2000-01-01T00:00:00Z",
    "2262-04-11T23:47:16Z",
    "1678-01-01T00:00:00Z",
    "not a date",
    "usd",
    "eur",
    "jpy",
    "zzz",
    "immediate",
    "end_of_period",
    "anniversary",
    "calendar",
    "active",
    "fuzz-ext",
    "a@b.co",
    "{cus}",
    "{ncus}",
    "{plan}",
    "{sub}",
    "{ngrant}",
    "{sgrant}",
    "{wallet}",
    "{stripe_ngrant}",
    "é",
    "\u{0}",
    "💥",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-3i64..30).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinities", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(FIELDS).prop_map(str::to_string),
                        "\\PC{0,8}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A body shaped like some request: fields from the vocabulary, values mostly from it too.
fn fieldish() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(FIELDS),
            prop_oneof![3 => prop::sample::select(WORDS).prop_map(Value::from), 1 => value()],
        ),
        0..12,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

// ---------------------------------------------------------------------------------------------
// Valid requests with random parameters.

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .expect("in range")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

const DAY: i64 = 86_400;

fn credits() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "1",
            "0.00000001",
            "12.5",
            "100",
            "999999999999.99999999"
        ])
        .prop_map(Value::from),
        (1u64..1_000_000_000_000).prop_map(|n| Value::from(n.to_string())),
        (1u32..100_000).prop_map(Value::from),
        Just(json!(2.5)),
    ]
}

fn rate() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(
        prop::sample::select(vec!["1", "0.5", "2.25", "0.00001", "99999.99999"])
            .prop_map(Value::from),
    )
}

/// A grant rule's own fields, valid: cadence, period, expiry, priority, metadata.
fn rule() -> impl Strategy<Value = Map<String, Value>> {
    let period = prop::sample::select(vec![
        "DAILY",
        "WEEKLY",
        "MONTHLY",
        "ANNUAL",
        "QUARTERLY",
        "HALF_YEARLY",
    ]);
    let cadence = prop_oneof![
        Just(None),
        (period, 1i64..=24).prop_map(|(p, n)| Some((p, n))),
    ];
    let expiry = prop_oneof![
        Just(json!({"expiration_type": "NEVER"})),
        Just(json!({"expiration_type": "BILLING_CYCLE"})),
        (
            prop::sample::select(vec!["DAY", "WEEK", "MONTH", "YEAR"]),
            1i64..=1000
        )
            .prop_map(|(u, d)| json!({"expiration_type": "DURATION",
                                      "expiration_duration_unit": u,
                                      "expiration_duration": d})),
    ];
    (
        "[A-Za-z0-9 ]{1,40}",
        credits(),
        cadence,
        expiry,
        prop::option::of(any::<i64>()),
        prop::option::of(prop::collection::btree_map(
            "[a-z]{1,8}",
            "[ -~]{0,20}",
            0..4,
        )),
    )
        .prop_map(|(name, credits, cadence, expiry, priority, metadata)| {
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            m.insert("credits".into(), credits);
            match cadence {
                None => {
                    m.insert("cadence".into(), json!("ONETIME"));
                }
                Some((p, n)) => {
                    m.insert("cadence".into(), json!("RECURRING"));
                    m.insert("period".into(), json!(p));
                    m.insert("period_count".into(), json!(n));
                }
            }
            if let Value::Object(e) = expiry {
                m.extend(e);
            }
            if let Some(p) = priority {
                m.insert("priority".into(), json!(p));
            }
            if let Some(md) = metadata {
                m.insert("metadata".into(), json!(md));
            }
            m
        })
}

/// `(method, path, body, status)` of a valid request.
type Valid = (&'static str, &'static str, Value, u16);

fn valid_grant() -> impl Strategy<Value = Valid> {
    let plan = rule().prop_map(|mut m| {
        m.insert("scope".into(), json!("PLAN"));
        m.insert("plan_id".into(), json!("{plan}"));
        Value::Object(m)
    });
    let sub = (
        rule(),
        0i64..730,
        prop::option::of(0i64..730),
        rate(),
        rate(),
    )
        .prop_map(|(mut m, start, end, r, t)| {
            m.insert("scope".into(), json!("SUBSCRIPTION"));
            m.insert("subscription_id".into(), json!("{sub}"));
            m.insert("start_date".into(), json!(rfc3339(BASE + start * DAY)));
            if let Some(e) = end {
                m.insert("end_date".into(), json!(rfc3339(BASE + (start + e) * DAY)));
            }
            if let Some(r) = r {
                m.insert("conversion_rate".into(), r);
            }
            if let Some(t) = t {
                m.insert("topup_conversion_rate".into(), t);
            }
            Value::Object(m)
        });
    prop_oneof![plan, sub].prop_map(|b| ("POST", "/v1/creditgrants", b, 201))
}

fn valid_customer() -> impl Strategy<Value = Valid> {
    (
        "[a-z0-9]{1,20}",
        prop::option::of("[ -~]{0,30}"),
        prop::option::of("[a-z]{1,8}"),
        prop::option::of(prop::collection::btree_map(
            "[a-z]{1,8}",
            "[ -~]{0,20}",
            0..4,
        )),
    )
        .prop_map(|(ext, name, email, metadata)| {
            let mut b = json!({"external_id": format!("v-{ext}")});
            if let Some(n) = name {
                b["name"] = json!(n);
            }
            if let Some(e) = email {
                b["email"] = json!(format!("{e}@example.com"));
            }
            if let Some(m) = metadata {
                b["metadata"] = json!(m);
            }
            ("POST", "/v1/customers", b, 201)
        })
}

fn valid_plan() -> impl Strategy<Value = Valid> {
    (
        "[A-Za-z0-9 ]{1,40}",
        prop::option::of("[a-z_]{1,20}"),
        prop::collection::vec(rule(), 0..3),
    )
        .prop_map(|(name, lookup_key, rules)| {
            let mut b = json!({"name": name, "credit_grants": rules});
            if let Some(k) = lookup_key {
                b["lookup_key"] = json!(k);
            }
            ("POST", "/v1/plans", b, 201)
        })
}

fn valid_subscription() -> impl Strategy<Value = Valid> {
    (
        any::<bool>(),
        prop::sample::select(vec!["usd", "eur", "jpy"]),
        prop::sample::select(vec![
            "DAILY",
            "WEEKLY",
            "MONTHLY",
            "ANNUAL",
            "QUARTERLY",
            "HALF_YEARLY",
        ]),
        1i64..=12,
        prop::option::of(-365i64..365),
        prop::option::of(1i64..730),
        prop::option::of(prop::collection::vec(rule(), 0..3)),
    )
        .prop_map(|(by_id, currency, period, count, start, end, rules)| {
            let mut b = json!({"plan_id": "{plan}", "currency": currency,
                               "billing_period": period, "billing_period_count": count});
            if by_id {
                b["customer_id"] = json!("{ncus}");
            } else {
                b["external_customer_id"] = json!("fuzz-ext");
            }
            let start = start.map(|s| BASE + s * DAY);
            if let Some(s) = start {
                b["start_date"] = json!(rfc3339(s));
            }
            if let Some(e) = end {
                b["end_date"] = json!(rfc3339(start.unwrap_or(BASE) + e * DAY));
            }
            if let Some(r) = rules {
                b["credit_grants"] = json!(r);
            }
            ("POST", "/v1/subscriptions", b, 201)
        })
}

/// A valid create of any kind.
fn valid() -> impl Strategy<Value = Valid> {
    prop_oneof![
        4 => valid_grant(),
        1 => valid_customer(),
        2 => valid_plan(),
        3 => valid_subscription(),
    ]
}

/// Cancelling the world's subscription (valid once).
fn valid_cancel() -> impl Strategy<Value = Valid> {
    prop::option::of("[ -~]{0,20}").prop_map(|reason| {
        let mut b = json!({"cancellation_type": "immediate"});
        if let Some(r) = reason {
            b["reason"] = json!(r);
        }
        ("POST", "/v1/subscriptions/{sub}/cancel", b, 200)
    })
}

/// A valid request with 1 to 3 edits: a field's value replaced (at the top or in the first nested
/// grant), a field dropped, or a field added.
fn edited() -> impl Strategy<Value = (&'static str, &'static str, Value)> {
    let edit = (
        0u8..4,
        any::<prop::sample::Index>(),
        prop::sample::select(FIELDS),
        prop_oneof![3 => prop::sample::select(WORDS).prop_map(Value::from), 2 => scalar(), 1 => value()],
    );
    let template = prop_oneof![6 => valid(), 1 => valid_cancel()];
    (template, prop::collection::vec(edit, 1..4)).prop_map(|((m, p, mut body, _), edits)| {
        for (op, at, field, v) in edits {
            let Some(obj) = body.as_object_mut() else {
                break;
            };
            let keys: Vec<String> = obj.keys().cloned().collect();
            match op {
                0 if !keys.is_empty() => {
                    obj.insert(keys[at.index(keys.len())].clone(), v);
                }
                1 if !keys.is_empty() => {
                    obj.remove(&keys[at.index(keys.len())]);
                }
                2 => {
                    obj.insert(field.to_string(), v);
                }
                _ => {
                    if let Some(Value::Object(g)) = obj
                        .get_mut("credit_grants")
                        .and_then(|g| g.as_array_mut())
                        .and_then(|a| a.first_mut())
                    {
                        g.insert(field.to_string(), v);
                    }
                }
            }
        }
        (m, p, body)
    })
}

// ---------------------------------------------------------------------------------------------
// Any request.

/// Body bytes: JSON, JSON with an edit that may break it, or nesting deeper than any limit.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let doc = prop_oneof![3 => fieldish(), 1 => value()];
    prop_oneof![
        4 => doc.clone().prop_map(|v| v.to_string().into_bytes()),
        2 => (doc, any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(|(v, at, byte, op)| {
            let mut b = v.to_string().into_bytes();
            let i = at.index(b.len() + 1);
            match op {
                0 => b.truncate(i),
                1 => b.insert(i, byte),
                _ => {
                    if i < b.len() {
                        b[i] = byte;
                    }
                }
            }
            b
        }),
        1 => (1usize..400, prop::sample::select(vec!["[", "{\"a\":"])).prop_map(|(n, open)| {
            let close = if open == "[" { "]" } else { "}" };
            format!("{}1{}", open.repeat(n), close.repeat(n)).into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/creditgrants"),
    ("POST", "/v1/creditgrants"),
    ("GET", "/v1/creditgrants"),
    ("GET", "/v1/creditgrants/{ngrant}"),
    ("PUT", "/v1/creditgrants/{ngrant}"),
    ("DELETE", "/v1/creditgrants/{ngrant}"),
    ("PUT", "/v1/creditgrants/{sgrant}"),
    ("DELETE", "/v1/creditgrants/{sgrant}"),
    ("GET", "/v1/creditgrants/{id}"),
    ("PUT", "/v1/creditgrants/{id}"),
    ("GET", "/v1/plans/{plan}/creditgrants"),
    ("GET", "/v1/addons/{id}/creditgrants"),
    ("GET", "/v1/subscriptions/{sub}/grants/upcoming"),
    ("GET", "/v1/customers/{ncus}/grants/upcoming"),
    ("POST", "/v1/customers"),
    ("GET", "/v1/customers"),
    ("GET", "/v1/customers/{ncus}"),
    ("GET", "/v1/customers/{ncus}/wallets"),
    ("POST", "/v1/plans"),
    ("POST", "/v1/plans"),
    ("GET", "/v1/plans/{plan}"),
    ("DELETE", "/v1/plans/{plan}"),
    ("GET", "/v1/plans"),
    ("POST", "/v1/subscriptions"),
    ("POST", "/v1/subscriptions"),
    ("GET", "/v1/subscriptions"),
    ("GET", "/v1/subscriptions/{sub}"),
    ("POST", "/v1/subscriptions/{sub}/cancel"),
    ("POST", "/v1/subscriptions/{id}/cancel"),
    ("GET", "/v1/wallets/{wallet}"),
    ("GET", "/v1/wallets/{wallet}/balance/real-time"),
    ("GET", "/v1/wallets/{wallet}/transactions"),
    ("GET", "/v1/wallets/{id}"),
    ("PATCH", "/v1/creditgrants"),
];

fn check(reply: &credit_emulator::http::Reply) -> Result<(), String> {
    let (status, body) = (reply.status, &reply.body[..]);
    if status == 404 && body == b"404 page not found" {
        return Ok(());
    }
    if reply.content_type != "application/json; charset=utf-8" {
        return Err(format!("{status} as {}", reply.content_type));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        format!(
            "{status} with a body that is not JSON: {:?}",
            String::from_utf8_lossy(body)
        )
    })?;
    match status {
        200 | 201 if v.is_object() || v.is_array() => Ok(()),
        401 if v.as_object().is_some_and(|o| o.len() == 1)
            && v.get("error").is_some_and(Value::is_string) =>
        {
            Ok(())
        }
        400 | 404 | 409 | 500 => {
            let o = v.as_object().ok_or("error body is not an object")?;
            let keys_ok = o
                .keys()
                .all(|k| ["code", "message", "http_status_code", "details"].contains(&k.as_str()));
            let shape_ok = o.get("code").is_some_and(Value::is_string)
                && o.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| !m.is_empty())
                && o.get("http_status_code") == Some(&json!(status))
                && o.get("details").is_none_or(Value::is_object);
            // Flexprice answers 500 only for what its database refuses (reference §4.2 #20).
            let status_ok = status != 500 || o.get("code") == Some(&json!("database_error"));
            if keys_ok && shape_ok && status_ok {
                Ok(())
            } else {
                Err(format!(
                    "{status} with a body outside the native envelope: {v}"
                ))
            }
        }
        s => Err(format!("status {s}: {v}")),
    }
}

/// One step: a route and a body, or an edited valid request.
#[derive(Debug, Clone)]
enum Step {
    Any {
        route: (&'static str, &'static str),
        id: String,
        body: Vec<u8>,
        json_type: bool,
        auth: u8,
    },
    Edited {
        method: &'static str,
        path: &'static str,
        body: Value,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let any_step = (
        prop::sample::select(ROUTES),
        "[ -~]{0,20}",
        body(),
        any::<bool>(),
        0u8..10,
    )
        .prop_map(|(route, id, body, json_type, auth)| Step::Any {
            route,
            id,
            body,
            json_type,
            auth,
        });
    let edited_step = edited().prop_map(|(method, path, body)| Step::Edited { method, path, body });
    prop_oneof![1 => any_step, 1 => edited_step]
}

fn run(
    step: &Step,
    app: &credit_emulator::App,
    ids: &HashMap<&'static str, String>,
) -> Result<(), String> {
    let (method, path, headers, body, native) = match step {
        Step::Any {
            route: (method, path),
            id,
            body,
            json_type,
            auth,
        } => {
            let path = fs::fill(path, ids).replace("{id}", &id.replace(['/', '?', '#', ' '], "_"));
            let mut headers = Vec::new();
            match auth {
                0 => {}
                1 => headers.push(("x-api-key".to_string(), b"sk_live_x".to_vec())),
                _ => headers.push(("x-api-key".to_string(), KEY.as_bytes().to_vec())),
            }
            if *json_type {
                headers.push(("content-type".to_string(), b"application/json".to_vec()));
            }
            let body = fs::fill(&String::from_utf8_lossy(body), ids).into_bytes();
            // Without x-api-key, a path the native API does not own is Stripe's.
            let native = *auth != 0 || credit_emulator::native::owns_path(&path);
            (*method, path, headers, body, native)
        }
        Step::Edited { method, path, body } => {
            let headers = vec![
                ("x-api-key".to_string(), KEY.as_bytes().to_vec()),
                ("content-type".to_string(), b"application/json".to_vec()),
            ];
            let body = fs::fill(&body.to_string(), ids).into_bytes();
            (*method, fs::fill(path, ids), headers, body, true)
        }
    };
    let before = fs::dump(app);
    let reply = fs::call_guarded(app, method, &path, &headers, &body)?;
    let checked = if native {
        check(&reply)
    } else {
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        fs::stripe_envelope_ok(reply.status, &v)
    };
    checked.map_err(|e| {
        format!(
            "{method} {path} {}: {e}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(400)
                .collect::<String>()
        )
    })?;
    if reply.status >= 400 && fs::dump(app) != before {
        return Err(format!(
            "a refused request changed the tenant: {method} {path} {} -> {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&reply.body)
        ));
    }
    fs::ledger_ok(app)
}

/// For every currency the native customer holds credit in: Stripe's available balance equals the
/// real-time balance of its wallets in that currency, in minor units.
fn balances_agree(
    app: &credit_emulator::App,
    ids: &HashMap<&'static str, String>,
) -> Result<(), String> {
    let cust = &ids["ncus"];
    let cus = format!("cus_{}", &cust["cust_".len()..]);
    let summary = fs::json(&fs::form(
        app,
        "GET",
        &format!("/v1/billing/credit_balance_summary?customer={cus}&filter[type]=applicability_scope&filter[applicability_scope][price_type]=metered"),
        "",
    ));
    let mut stripe: HashMap<String, Decimal> = HashMap::new();
    for b in summary["balances"]
        .as_array()
        .ok_or(format!("summary: {summary}"))?
    {
        let m = &b["available_balance"]["monetary"];
        stripe.insert(
            m["currency"].as_str().unwrap_or_default().to_string(),
            Decimal::from(m["value"].as_i64().unwrap_or(-1)),
        );
    }
    let wallets = fs::json(&fs::native_json(
        app,
        "GET",
        &format!("/v1/customers/{cust}/wallets"),
        &Value::Null,
    ));
    let mut native: HashMap<String, Decimal> = HashMap::new();
    for w in wallets.as_array().ok_or(format!("wallets: {wallets}"))? {
        let id = w["id"].as_str().unwrap_or_default();
        let b = fs::json(&fs::native_json(
            app,
            "GET",
            &format!("/v1/wallets/{id}/balance/real-time"),
            &Value::Null,
        ));
        let code = w["currency"].as_str().unwrap_or_default();
        let exponent = Currency::parse(code).map_or(2, |c| c.exponent());
        let major: Decimal = b["real_time_balance"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or(format!("balance: {b}"))?;
        *native.entry(code.to_string()).or_default() += major * Decimal::from(10i64.pow(exponent));
    }
    let max = Decimal::from(i64::MAX);
    for (code, value) in &native {
        // Stripe renders whole minor units (half away from zero), and at most i64::MAX of them;
        // the wallets show the exact amount.
        let shown = stripe.get(code).copied().unwrap_or_default();
        let agree = if *value >= max {
            shown == max
        } else {
            (shown - value).abs() <= Decimal::new(5, 1)
        };
        if !agree {
            return Err(format!("{code}: Stripe {shown}, wallets {value}"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(fs::config(256))]

    #[test]
    fn native_requests_never_panic_and_refusals_change_nothing(
        steps in prop::collection::vec(step(), 1..5)
    ) {
        let (app, ids) = fs::world();
        for s in &steps {
            let r = run(s, &app, &ids);
            prop_assert!(r.is_ok(), "{}\nstep: {s:?}", r.unwrap_err());
        }
    }

    #[test]
    fn valid_requests_are_accepted_and_keep_both_apis_in_step(
        mut requests in prop::collection::vec(valid(), 1..4),
        cancel in prop::option::of(valid_cancel()),
        days in 0i64..400,
    ) {
        let (app, ids) = fs::world();
        // Cancelling comes last: the subscription's grants would be refused after it.
        requests.extend(cancel);
        for (i, (method, path, body, status)) in requests.iter().enumerate() {
            let body = serde_json::from_str(&fs::fill(&body.to_string(), &ids)).unwrap_or(Value::Null);
            let reply = fs::call_guarded(&app, method, &fs::fill(path, &ids), &[
                ("x-api-key".to_string(), KEY.as_bytes().to_vec()),
                ("content-type".to_string(), b"application/json".to_vec()),
            ], body.to_string().as_bytes());
            prop_assert!(reply.is_ok(), "{}", reply.err().unwrap_or_default());
            let reply = reply.unwrap();
            // A customer's external id is taken once.
            let repeat = *path == "/v1/customers"
                && requests[..i].iter().any(|(_, p, b, _)| p == path && b["external_id"] == body["external_id"]);
            if !repeat {
                prop_assert_eq!(reply.status, *status, "{} {} {}: {}", method, path, body, String::from_utf8_lossy(&reply.body));
            }
            let checked = check(&reply);
            prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
            let ledger = fs::ledger_ok(&app);
            prop_assert!(ledger.is_ok(), "{}", ledger.unwrap_err());
        }
        let moved = fs::form(&app, "POST", "/_emulator/clock", &format!("frozen_time={}", BASE + days * DAY));
        prop_assert_eq!(moved.status, 200, "{}", String::from_utf8_lossy(&moved.body));
        let ledger = fs::ledger_ok(&app);
        prop_assert!(ledger.is_ok(), "{}", ledger.unwrap_err());
        let agree = balances_agree(&app, &ids);
        prop_assert!(agree.is_ok(), "{}", agree.unwrap_err());
    }
}

/// Inputs the properties found, kept as fixed checks.
#[test]
fn pinned_native_edges() {
    let (app, ids) = fs::world();
    let post = |path: &str, body: Value| {
        let body: Value = serde_json::from_str(&fs::fill(&body.to_string(), &ids)).unwrap();
        fs::native_json(&app, "POST", &fs::fill(path, &ids), &body)
    };
    let before = fs::dump(&app);
    // An exponent past int32 overflowed while its width was measured (a panic, so a 500).
    let r = post(
        "/v1/creditgrants",
        json!({"name": "x", "scope": "PLAN", "plan_id": "{plan}", "credits": "1e9223372036854775807",
               "cadence": "ONETIME", "expiration_type": "NEVER"}),
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // A plan or subscription refused for its inline grants took a key all the same.
    let r = post(
        "/v1/plans",
        json!({"name": "p", "credit_grants": [{"name": "g", "credits": "0", "cadence": "ONETIME", "expiration_type": "NEVER"}]}),
    );
    assert_eq!(r.status, 400);
    let r = post(
        "/v1/subscriptions",
        json!({"customer_id": "{ncus}", "plan_id": "{plan}", "currency": "usd", "billing_period": "MONTHLY",
               "credit_grants": [{"name": "g", "credits": "-1", "cadence": "ONETIME", "expiration_type": "NEVER"}]}),
    );
    assert_eq!(r.status, 400);
    // A space between date and time is not RFC 3339 to Go.
    let r = fs::native_json(
        &app,
        "PUT",
        &fs::fill("/v1/creditgrants/{ngrant}", &ids),
        &json!({"end_date": "2101-01-01 00:00:00Z"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(fs::dump(&app), before);
    fs::ledger_ok(&app).unwrap();
}
