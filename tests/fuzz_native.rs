//! Property tests of native JSON handling, in process: generated JSON (shaped like credit-grant
//! requests, or not), mutated JSON text, and deeply nested documents, sent to every native route.
//! Short by default; a long run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release --test fuzz_native
//! ```
//!
//! For every request: no panic; the answer is gin's plain 404, gin's raw auth body, the native
//! envelope `{code, message, http_status_code, details?}` for errors, or JSON for a success; a refused
//! request leaves the tenant as it was; the ledger stays consistent.
//!
//! TODO(native merge): today the native facade is a stub that answers gin's 404 to everything, so
//! these properties hold trivially; once the facade is merged they test its JSON decoding and
//! validation for real. Then also require that a well-formed create is answered 201, so that the
//! generator is known to reach past decoding.

mod fuzz_support;

use fuzz_support::{self as fs, KEY};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const FIELDS: &[&str] = &[
    "name",
    "scope",
    "plan_id",
    "subscription_id",
    "addon_id",
    "credits",
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
    "MONTHLY",
    "HOURLY",
    "NEVER",
    "DURATION",
    "BILLING_CYCLE",
    "DAY",
    "CENTURY",
    "plan_x",
    "subs_x",
    "addon_x",
    "10",
    "0",
    "-1",
    "1e400",
    "0.0001",
    "99999999999999999999999999999999",
    "2100-01-01T00:00:00Z",
    "2000-01-01T00:00:00Z",
    "not a date",
    "{cus}",
    "{ngrant}",
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

/// A body shaped like a create request: most fields present, each from the vocabulary or anything.
fn grantish() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(FIELDS),
            prop_oneof![3 => prop::sample::select(WORDS).prop_map(Value::from), 1 => value()],
        ),
        0..12,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// Body bytes: JSON, JSON with an edit that may break it, or nesting deeper than any limit.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let doc = prop_oneof![3 => grantish(), 1 => value()];
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
    ("GET", "/v1/creditgrants"),
    ("GET", "/v1/creditgrants/{ngrant}"),
    ("PUT", "/v1/creditgrants/{ngrant}"),
    ("DELETE", "/v1/creditgrants/{ngrant}"),
    ("GET", "/v1/creditgrants/{id}"),
    ("PUT", "/v1/creditgrants/{id}"),
    ("GET", "/v1/plans/{id}/creditgrants"),
    ("GET", "/v1/addons/{id}/creditgrants"),
    ("GET", "/v1/subscriptions/{id}/grants/upcoming"),
    ("GET", "/v1/customers/{cus}/grants/upcoming"),
    ("PATCH", "/v1/creditgrants"),
];

fn check(status: u16, body: &[u8]) -> Result<(), String> {
    if status == 404 && body == b"404 page not found" {
        return Ok(());
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        format!(
            "{status} with a body that is not JSON: {:?}",
            String::from_utf8_lossy(body)
        )
    })?;
    match status {
        200 | 201 => Ok(()),
        401 | 403 if v.get("error").is_some_and(Value::is_string) || v.get("message").is_some() => {
            Ok(())
        }
        400..=500 => {
            let o = v.as_object().ok_or("error body is not an object")?;
            let keys_ok = o
                .keys()
                .all(|k| ["code", "message", "http_status_code", "details"].contains(&k.as_str()));
            let shape_ok = o.get("code").is_some_and(Value::is_string)
                && o.get("message").is_some_and(Value::is_string)
                && o.get("http_status_code") == Some(&json!(status));
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

proptest! {
    #![proptest_config(fs::config(256))]

    #[test]
    fn native_requests_never_panic_and_refusals_change_nothing(
        steps in prop::collection::vec((prop::sample::select(ROUTES), "[ -~]{0,20}", body(), any::<bool>(), 0u8..10), 1..5)
    ) {
        let (app, ids) = fs::world();
        for ((method, path), id, body, json_type, auth) in &steps {
            let path = fs::fill(path, &ids).replace("{id}", &id.replace(['/', '?', '#', ' '], "_"));
            let mut headers = Vec::new();
            match auth {
                0 => {}
                1 => headers.push(("x-api-key".to_string(), b"sk_live_x".to_vec())),
                _ => headers.push(("x-api-key".to_string(), KEY.as_bytes().to_vec())),
            }
            if *json_type {
                headers.push(("content-type".to_string(), b"application/json".to_vec()));
            }
            let body = fs::fill(&String::from_utf8_lossy(body), &ids).into_bytes();
            let before = fs::dump(&app);
            let reply = fs::call_guarded(&app, method, &path, &headers, &body);
            prop_assert!(reply.is_ok(), "{}", reply.err().unwrap_or_default());
            let reply = reply.unwrap();
            // Without x-api-key, a path the native API does not own is Stripe's.
            let stripe = *auth == 0 && !credit_emulator::native::owns_path(&path);
            let checked = if stripe {
                let v: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
                fs::stripe_envelope_ok(reply.status, &v)
            } else {
                check(reply.status, &reply.body)
            };
            prop_assert!(checked.is_ok(), "{method} {path}: {}", checked.unwrap_err());
            if reply.status >= 400 {
                prop_assert_eq!(fs::dump(&app), before, "a refused request changed the tenant");
            }
            let ledger = fs::ledger_ok(&app);
            prop_assert!(ledger.is_ok(), "{}", ledger.unwrap_err());
        }
    }
}
