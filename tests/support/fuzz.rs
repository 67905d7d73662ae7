//! In-process support for the property tests: requests go straight to the facades (no socket), so
//! that thousands of cases run per second, each against a fresh, seeded world.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use credit_emulator::http::{Reply, Request};
use credit_emulator::model::EntryKind;
use credit_emulator::server::{api_of, Api};
use credit_emulator::{admin, native, stripe, App, Config};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use proptest::test_runner::{contextualize_config, Config as PropConfig};
use rust_decimal::Decimal;
use serde_json::Value;

/// 2100-01-01T00:00:00Z, as in the socket tests.
pub const BASE: i64 = 4_102_444_800;
/// The tenant every case works in.
pub const KEY: &str = "sk_test_fuzz";

/// `cases` unless `PROPTEST_CASES` says otherwise.
pub fn config(cases: u32) -> PropConfig {
    contextualize_config(PropConfig {
        cases,
        ..PropConfig::default()
    })
}

/// Serves one request the way the server would after reading it, minus the socket and the panic
/// guard: a panic here reaches the caller.
pub fn call(
    app: &App,
    method: &str,
    target: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Reply {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        // What hyper would refuse never reaches a facade.
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            map.append(k, v);
        }
    }
    let req = Request {
        method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
        path,
        query,
        headers: map,
        body: Bytes::copy_from_slice(body),
        request_id: "req_fuzz".to_string(),
    };
    match api_of(&req.path, &req.headers) {
        Api::Admin => admin::handle(app, &req),
        Api::Stripe => stripe::handle(app, &req),
        Api::Native => native::handle(&app.store, &app.config, &req),
    }
}

/// As [`call`], reporting a panic as an error that names the request.
pub fn call_guarded(
    app: &App,
    method: &str,
    target: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Result<Reply, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        call(app, method, target, headers, body)
    }))
    .map_err(|_| {
        format!(
            "panic: {method} {target} body={:?}",
            String::from_utf8_lossy(body)
        )
    })
}

/// A form request with the tenant key.
pub fn form(app: &App, method: &str, target: &str, body: &str) -> Reply {
    let headers = vec![
        (
            "authorization".to_string(),
            format!("Bearer {KEY}").into_bytes(),
        ),
        (
            "content-type".to_string(),
            b"application/x-www-form-urlencoded".to_vec(),
        ),
    ];
    call(app, method, target, &headers, body.as_bytes())
}

pub fn json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

/// A native JSON request with the tenant key.
pub fn native_json(app: &App, method: &str, target: &str, body: &Value) -> Reply {
    let headers = vec![
        ("x-api-key".to_string(), KEY.as_bytes().to_vec()),
        ("content-type".to_string(), b"application/json".to_vec()),
    ];
    call(app, method, target, &headers, body.to_string().as_bytes())
}

/// A fresh seeded emulator with a frozen tenant holding a test clock, two customers (one on the
/// clock), a live grant, a voided grant and a grant on the clock; a third customer whose grant an
/// invoice spent from; and the native API's objects: a customer (`fuzz-ext`), a plan with a monthly
/// PLAN grant, a subscription that applied it, a SUBSCRIPTION grant on it, and the customer's
/// wallet; then, made in-process, a licensed, a metered and another licensed monthly usd price
/// (`price`, `metered_price`, `other_price`), and a Stripe subscription of `cus` to the first two
/// (`stripe_sub`, its licensed item `stripe_item`). Returns the ids by name.
pub fn world() -> (Arc<App>, HashMap<&'static str, String>) {
    let app = App::new(Config {
        seed: Some(7),
        ..Config::default()
    });
    let ok = |r: Reply| {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        json(&r)["id"].as_str().unwrap_or_default().to_string()
    };
    ok(form(
        &app,
        "POST",
        "/_emulator/clock",
        &format!("frozen_time={BASE}"),
    ));
    let clock = ok(form(
        &app,
        "POST",
        "/v1/test_helpers/test_clocks",
        &format!("frozen_time={BASE}"),
    ));
    let cus = ok(form(
        &app,
        "POST",
        "/v1/customers",
        "email=f@example.com&metadata[a]=b",
    ));
    let clock_cus = ok(form(
        &app,
        "POST",
        "/v1/customers",
        &format!("test_clock={clock}"),
    ));
    let grant_form = |c: &str| {
        format!("customer={c}&amount[type]=monetary&amount[monetary][currency]=usd&amount[monetary][value]=1000&applicability_config[scope][price_type]=metered")
    };
    let grant = ok(form(
        &app,
        "POST",
        "/v1/billing/credit_grants",
        &grant_form(&cus),
    ));
    let voided = ok(form(
        &app,
        "POST",
        "/v1/billing/credit_grants",
        &grant_form(&cus),
    ));
    ok(form(
        &app,
        "POST",
        &format!("/v1/billing/credit_grants/{voided}/void"),
        "",
    ));
    let clock_grant = ok(form(
        &app,
        "POST",
        "/v1/billing/credit_grants",
        &grant_form(&clock_cus),
    ));
    let spend_cus = ok(form(&app, "POST", "/v1/customers", "email=s@example.com"));
    ok(form(
        &app,
        "POST",
        "/v1/billing/credit_grants",
        &grant_form(&spend_cus),
    ));
    let invoice = ok(form(
        &app,
        "POST",
        "/_emulator/invoices",
        &format!("customer={spend_cus}&currency=usd&lines[0][amount]=300"),
    ));
    let created = |r: Reply| {
        assert!(
            r.status == 200 || r.status == 201,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        json(&r)["id"].as_str().unwrap_or_default().to_string()
    };
    let ncus = created(native_json(
        app.as_ref(),
        "POST",
        "/v1/customers",
        &serde_json::json!({"external_id": "fuzz-ext", "email": "n@example.com"}),
    ));
    let plan = created(native_json(
        app.as_ref(),
        "POST",
        "/v1/plans",
        &serde_json::json!({"name": "Fuzz", "credit_grants": [{
            "name": "Monthly", "credits": "10", "cadence": "RECURRING", "period": "MONTHLY",
            "period_count": 1, "expiration_type": "BILLING_CYCLE"}]}),
    ));
    let ngrant = json(&native_json(
        app.as_ref(),
        "GET",
        &format!("/v1/plans/{plan}/creditgrants"),
        &Value::Null,
    ))["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let sub = created(native_json(
        app.as_ref(),
        "POST",
        "/v1/subscriptions",
        &serde_json::json!({"customer_id": ncus, "plan_id": plan, "currency": "usd",
                            "billing_period": "MONTHLY"}),
    ));
    let sgrant = created(native_json(
        app.as_ref(),
        "POST",
        "/v1/creditgrants",
        &serde_json::json!({"name": "Once", "scope": "SUBSCRIPTION", "subscription_id": sub,
                            "start_date": "2100-01-01T00:00:00Z", "credits": "5",
                            "cadence": "ONETIME", "expiration_type": "NEVER"}),
    ));
    let wallet = json(&native_json(
        app.as_ref(),
        "GET",
        &format!("/v1/customers/{ncus}/wallets"),
        &Value::Null,
    ))[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Prices (made in-process: the catalog has no routes here) and a Stripe subscription of `cus`
    // to a licensed and a metered one.
    let (price, metered_price, other_price) = app.store.with_tenant(KEY, |t| {
        use credit_emulator::model::{
            Currency, Formula, Interval, Metadata, NewMeter, NewPrice, Recurring, Scheme, UsageType,
        };
        let product = t.create_product("Fuzz".into(), Metadata::new());
        let meter = t.create_meter(NewMeter {
            display_name: "Calls".into(),
            event_name: "calls".into(),
            formula: Formula::Sum,
            customer_key: "stripe_customer_id".into(),
            value_key: "value".into(),
            event_time_window: None,
        });
        let mut price = |meter: Option<u128>| {
            let key = t.create_price(NewPrice {
                product,
                active: true,
                currency: Currency::parse("usd").expect("usd"),
                recurring: Some(Recurring {
                    interval: Interval::Month,
                    interval_count: 1,
                    usage_type: if meter.is_some() {
                        UsageType::Metered
                    } else {
                        UsageType::Licensed
                    },
                    meter,
                }),
                scheme: Scheme::PerUnit {
                    unit_amount: 100.into(),
                },
                transform_quantity: None,
                lookup_key: None,
                nickname: None,
                metadata: Metadata::new(),
            });
            stripe::ids::render(stripe::ids::PRICE, key)
        };
        (price(None), price(Some(meter)), price(None))
    });
    let stripe_sub = form(
        &app,
        "POST",
        "/v1/subscriptions",
        &format!("customer={cus}&items[0][price]={price}&items[0][quantity]=2&items[1][price]={metered_price}"),
    );
    assert_eq!(
        stripe_sub.status,
        200,
        "{}",
        String::from_utf8_lossy(&stripe_sub.body)
    );
    let stripe_sub = json(&stripe_sub);
    let mut ids = HashMap::new();
    ids.insert("price", price);
    ids.insert("metered_price", metered_price);
    ids.insert("other_price", other_price);
    ids.insert(
        "stripe_item",
        stripe_sub["items"]["data"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    ids.insert(
        "stripe_sub",
        stripe_sub["id"].as_str().unwrap_or_default().to_string(),
    );
    ids.insert("spend_cus", spend_cus);
    ids.insert("invoice", invoice);
    ids.insert("ncus", ncus);
    ids.insert("plan", plan);
    ids.insert("sub", sub);
    ids.insert("sgrant", sgrant);
    ids.insert("wallet", wallet);
    ids.insert("clock", clock);
    ids.insert("cus", cus);
    ids.insert("clock_cus", clock_cus);
    ids.insert("ngrant", ngrant);
    ids.insert(
        "stripe_ngrant",
        format!("cg_{}", &grant["credgr_test_".len()..]),
    );
    ids.insert("grant", grant);
    ids.insert("voided", voided);
    ids.insert("clock_grant", clock_grant);
    (app, ids)
}

/// Replaces `{name}` placeholders with the world's ids.
pub fn fill(s: &str, ids: &HashMap<&'static str, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in ids {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Everything the tenant holds, ids generator included.
pub fn dump(app: &App) -> String {
    app.store.tenant(KEY).peek(|t| format!("{t:?}"))
}

/// Every lot's balance is the sum of its entries, never below zero, granted at most once, voided at
/// most once and never after an invoice spent from it, expired at most once more than invoice voids
/// gave back to it; every invoice's entries add up to what it applied (and, once it is void, give
/// all of it back).
pub fn ledger_ok(app: &App) -> Result<(), String> {
    let cell = app.store.tenant(KEY);
    cell.peek(|t| {
        let mut by_invoice: HashMap<u128, (Decimal, Decimal)> = HashMap::new();
        t.check_indexes()?;
        for lot in t.lots_in(..) {
            let k = &lot.key;
            let mut sum = Decimal::ZERO;
            let mut n: HashMap<EntryKind, usize> = HashMap::new();
            for e in t.entry_keys_of_lot(*k).iter().map(|e| t.entry(e).unwrap()) {
                if e.kind.is_credit() {
                    sum += e.amount;
                } else {
                    sum -= e.amount;
                }
                *n.entry(e.kind).or_default() += 1;
                if let Some((invoice, _)) = e.invoice {
                    let slot = by_invoice.entry(invoice).or_default();
                    match e.kind {
                        EntryKind::Applied => slot.0 += e.amount,
                        _ => slot.1 += e.amount,
                    }
                }
            }
            let count = |kind| n.get(&kind).copied().unwrap_or(0);
            let bad = lot.remaining != sum
                || lot.remaining < Decimal::ZERO
                || count(EntryKind::Granted) > 1
                || count(EntryKind::Voided) > 1
                || (count(EntryKind::Voided) > 0 && count(EntryKind::Applied) > 0)
                || count(EntryKind::Expired) > 1 + count(EntryKind::InvoiceVoided);
            if bad {
                return Err(format!(
                    "lot {k}: remaining {} sum {sum} entries {n:?}",
                    lot.remaining
                ));
            }
        }
        for inv in t.invoices_in(..) {
            let k = &inv.key;
            let (applied, returned) = by_invoice.remove(k).unwrap_or_default();
            let voided = inv.voided_at.is_some();
            if applied != Decimal::from(inv.credited())
                || returned != if voided { applied } else { Decimal::ZERO }
            {
                return Err(format!(
                    "invoice {k}: credited {} applied {applied} returned {returned}",
                    inv.credited()
                ));
            }
        }
        Ok(())
    })
}

/// A Stripe error body: `{"error": {type, message, code+doc_url?, param?}}` and nothing else.
pub fn stripe_envelope_ok(status: u16, body: &Value) -> Result<(), String> {
    let err = body
        .get("error")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{status} without an error object: {body}"))?;
    if body.as_object().map(|o| o.len()) != Some(1) {
        return Err(format!("extra fields beside error: {body}"));
    }
    if err
        .keys()
        .any(|k| !["code", "doc_url", "message", "param", "type"].contains(&k.as_str()))
    {
        return Err(format!("unexpected error field: {body}"));
    }
    let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
    let ok_kind = match status {
        500 => kind == "api_error",
        _ => kind == "invalid_request_error" || kind == "idempotency_error",
    };
    if !ok_kind {
        return Err(format!("type {kind:?} on a {status}"));
    }
    if err
        .get("message")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("no message".into());
    }
    if err.contains_key("code") != err.contains_key("doc_url") {
        return Err("code without doc_url or the reverse".into());
    }
    Ok(())
}
