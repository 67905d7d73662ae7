//! The baseline: a bare hyper 1.x server doing the same wire work as the emulator and nothing else.
//!
//! It reads the whole body, decodes it (form or JSON), builds a credit-grant-like object of the same
//! shape and size as the emulator's from what it decoded (a meter event for `POST …/meter_events`),
//! and answers it pretty-printed (form requests) or compact (JSON requests), with a `Request-Id`. It keeps no state, takes no lock and
//! checks nothing, so it is the ceiling the emulator can approach on this machine.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Serves on `127.0.0.1:port` forever, printing `listening on http://ADDR` once bound (as the
/// emulator does), on a default multi-thread runtime (one worker per core, as the emulator).
pub fn main(port: u16) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("addr")
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let json_in = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let path = parts.uri.path();
    let value = if parts.method == Method::POST {
        if json_in {
            let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            native_grant(&input, n)
        } else {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).unwrap_or_default();
            if path.ends_with("/meter_events") {
                meter_event_from_form(&pairs)
            } else {
                grant_from_form(&pairs, n)
            }
        }
    } else {
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
        let limit = query
            .iter()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        if path.contains("credit_balance_summary") {
            summary(&query)
        } else if let Some(limit) = limit {
            let data: Vec<Value> = (0..limit as u64)
                .map(|i| grant_from_form(&[], n + i))
                .collect();
            json!({"object": "list", "data": data, "has_more": true, "url": path})
        } else {
            let mut g = grant_from_form(&[], n);
            g["id"] = Value::String(path.rsplit('/').next().unwrap_or("").to_string());
            g
        }
    };
    let bytes = if json_in {
        serde_json::to_vec(&value)
    } else {
        serde_json::to_vec_pretty(&value)
    }
    .unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&format!("req_{n:014}")) {
        h.insert("request-id", v);
    }
    Ok(resp)
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A `billing.credit_grant`-shaped object echoing the decoded form.
fn grant_from_form(pairs: &[(String, String)], n: u64) -> Value {
    let mut metadata = Map::new();
    let mut prices = Vec::new();
    for (k, v) in pairs {
        if let Some(key) = k
            .strip_prefix("metadata[")
            .and_then(|r| r.strip_suffix(']'))
        {
            metadata.insert(key.to_string(), Value::String(v.clone()));
        } else if k.starts_with("applicability_config[scope][prices]") {
            prices.push(json!({"id": v}));
        }
    }
    let scope = if prices.is_empty() {
        json!({"price_type": "metered"})
    } else {
        json!({"prices": prices})
    };
    let value = field(pairs, "amount[monetary][value]")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(1000);
    json!({
        "id": format!("credgr_test_{n:026}"),
        "object": "billing.credit_grant",
        "amount": {
            "monetary": {"currency": field(pairs, "amount[monetary][currency]").unwrap_or("usd"), "value": value},
            "type": "monetary",
        },
        "applicability_config": {"scope": scope},
        "category": field(pairs, "category").unwrap_or("paid"),
        "created": 1_750_000_000,
        "customer": field(pairs, "customer").unwrap_or("cus_00000000000000000000000000"),
        "customer_account": null,
        "effective_at": 1_750_000_000,
        "expires_at": null,
        "livemode": false,
        "metadata": metadata,
        "name": field(pairs, "name"),
        "priority": 50,
        "test_clock": null,
        "updated": 1_750_000_000,
        "voided_at": null,
    })
}

/// A `billing.meter_event`-shaped object echoing the decoded form (the event's fields and its
/// payload, in the order sent).
fn meter_event_from_form(pairs: &[(String, String)]) -> Value {
    let mut payload = Map::new();
    for (k, v) in pairs {
        if let Some(key) = k.strip_prefix("payload[").and_then(|r| r.strip_suffix(']')) {
            payload.insert(key.to_string(), Value::String(v.clone()));
        }
    }
    json!({
        "object": "billing.meter_event",
        "created": 1_750_000_000,
        "event_name": field(pairs, "event_name"),
        "identifier": field(pairs, "identifier"),
        "livemode": false,
        "payload": payload,
        "timestamp": 1_750_000_000,
    })
}

/// A `billing.credit_balance_summary`-shaped object.
fn summary(query: &[(String, String)]) -> Value {
    let amount = json!({"monetary": {"currency": "usd", "value": 10_000_000}, "type": "monetary"});
    json!({
        "object": "billing.credit_balance_summary",
        "balances": [{"available_balance": amount, "ledger_balance": amount}],
        "customer": field(query, "customer"),
        "customer_account": null,
        "livemode": false,
    })
}

/// A Flexprice-style credit grant echoing the decoded JSON.
fn native_grant(input: &Value, n: u64) -> Value {
    let s = |k: &str| input.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "id": format!("cg_{n:026}"),
        "name": s("name"),
        "scope": s("scope"),
        "plan_id": s("plan_id"),
        "subscription_id": s("subscription_id"),
        "credits": s("credits"),
        "cadence": s("cadence"),
        "expiration_type": s("expiration_type"),
        "priority": s("priority"),
        "metadata": s("metadata"),
        "environment_id": "env_00000000000000000000000000",
        "tenant_id": "00000000-0000-0000-0000-000000000000",
        "status": "published",
        "created_at": "2025-06-15T00:00:00Z",
        "updated_at": "2025-06-15T00:00:00Z",
        "created_by": "00000000-0000-0000-0000-000000000000",
        "updated_by": "00000000-0000-0000-0000-000000000000",
    })
}
