//! `/_emulator/*`: the emulator's own routes (health, reset, tenant clock, invoices).
//!
//! Routes that act on a tenant take the tenant's key the way either API sends it
//! (`Authorization: Bearer sk_test_…` or `x-api-key: sk_test_…`) and act only on that tenant.

pub mod invoices;

use hyper::Method;
use serde_json::{json, Value};

use crate::form::Params;
use crate::http::{Reply, Request};
use crate::model::TenantClock;
use crate::server::App;
use crate::stripe::error::{StripeError, StripeResult};
use crate::stripe::params::{get_int, get_str, opt, validate, Field, Spec};
use crate::time::{from_secs, to_secs};

/// Serves one admin request.
pub fn handle(app: &App, req: &Request) -> Reply {
    match route(app, req) {
        Ok(reply) => reply,
        Err(e) => e.reply(),
    }
}

fn route(app: &App, req: &Request) -> StripeResult<Reply> {
    let segments = req.segments();
    match (&req.method, segments.as_slice()) {
        (&Method::GET, ["_emulator", "health"]) => Ok(Reply::json(
            200,
            &json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_ms": app.started.elapsed().as_millis() as u64,
                "tenants": app.store.tenant_count(),
            }),
        )),
        (&Method::POST, ["_emulator", "reset"]) => {
            let key = tenant_key(req)?;
            let existed = app.store.reset(&key);
            Ok(Reply::json(
                200,
                &json!({"reset": true, "existed": existed}),
            ))
        }
        (&Method::GET, ["_emulator", "clock"]) => {
            let key = tenant_key(req)?;
            let cell = app.store.tenant(&key);
            let mut t = cell.state.lock();
            t.catch_up();
            Ok(Reply::json(200, &clock_json(&t)))
        }
        (&Method::POST, ["_emulator", "clock"]) => {
            let key = tenant_key(req)?;
            let params = params(app, req)?;
            set_clock(app, &key, &params)
        }
        (&Method::POST, ["_emulator", "invoices"]) => {
            let key = tenant_key(req)?;
            let params = params(app, req)?;
            let cell = app.store.tenant(&key);
            let mut t = cell.state.lock();
            t.catch_up();
            let mut ctx = crate::stripe::Ctx {
                tenant: &mut t,
                params: &params,
            };
            invoices::create(&mut ctx).map(|v| Reply::json(200, &v))
        }
        _ => Err(StripeError::unrecognized(req.method.as_str(), &req.path)),
    }
}

/// The caller's tenant key, from either API's header.
pub fn tenant_key(req: &Request) -> StripeResult<String> {
    if let Some(k) = req.header("x-api-key") {
        crate::stripe::auth::check_key(k)?;
        return Ok(k.to_string());
    }
    crate::stripe::auth::authenticate(req)
}

/// The query string and form body, decoded.
pub fn params(app: &App, req: &Request) -> StripeResult<Params> {
    // The same decoding, limits, Content-Type check and error wording as every Stripe route.
    crate::stripe::decode(app, req)
}

fn clock_json(t: &crate::model::Tenant) -> Value {
    let now = t.tenant_now();
    json!({
        "object": "emulator.clock",
        "mode": match t.clock { TenantClock::Real => "real", TenantClock::Frozen(_) => "frozen" },
        "now": to_secs(now),
        "now_rfc3339": crate::time::to_rfc3339(now),
    })
}

const CLOCK: &[Field] = &[opt("frozen_time", Spec::Int), opt("real_time", Spec::Bool)];

fn set_clock(app: &App, key: &str, params: &Params) -> StripeResult<Reply> {
    validate(params, CLOCK, "")?;
    let cell = app.store.tenant(key);
    let mut t = cell.state.lock();
    t.catch_up();
    let frozen = get_int(params, "frozen_time");
    let real = get_str(params, "real_time") == Some("true");
    let result = match (frozen, real) {
        (Some(_), true) => {
            return Err(StripeError::invalid(
                "You may only specify one of these parameters: frozen_time, real_time.",
            ))
        }
        (Some(secs), false) => {
            let at = from_secs(secs).ok_or_else(|| {
                StripeError::invalid(format!("Invalid timestamp: {secs} is out of range."))
                    .param("frozen_time")
            })?;
            t.freeze_clock(at)
        }
        (None, true) => t.unfreeze_clock(),
        (None, false) => {
            return Err(StripeError::invalid(
                "Pass frozen_time (unix seconds) to freeze or move the tenant clock, or real_time=true to return to real time.",
            ))
        }
    };
    match result {
        Ok(()) => Ok(Reply::json(200, &clock_json(&t))),
        Err(crate::model::TenantClockError::Backwards { now }) if real => Err(StripeError::invalid(format!(
            "The tenant clock only moves forward: it is frozen at {}, later than real time ({}), so it cannot return to real time yet.",
            to_secs(now),
            to_secs(crate::time::real_now())
        ))
        .param("real_time")),
        Err(crate::model::TenantClockError::Backwards { now }) => Err(StripeError::invalid(format!(
            "The tenant clock only moves forward: it is at {} and cannot go back to {}. Only a tenant in which nothing has been created yet may start earlier (POST /_emulator/reset starts over).",
            to_secs(now),
            frozen.unwrap_or_default()
        ))
        .param("frozen_time")),
    }
}
