//! `/_emulator/*`: the emulator's own routes (health, reset, tenant clock, Stripe API version,
//! invoices).
//!
//! Routes that act on a tenant take the tenant's key the way either API sends it
//! (`Authorization: Bearer sk_test_…` or `x-api-key: sk_test_…`) and act only on that tenant; with
//! `Stripe-Account: acct_…` they act on that connected account's world instead, as Stripe routes do.

pub mod invoices;

use hyper::Method;
use serde_json::{json, Value};

use crate::form::Params;
use crate::http::{Reply, Request};
use crate::model::TenantClock;
use crate::server::App;
use crate::stripe::error::{StripeError, StripeResult};
use crate::stripe::params::{get_int, get_str, opt, req, validate, Field, Spec};
use crate::stripe::versions::{self, Version};
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
            let caller = caller(req)?;
            let params = params(app, req)?;
            let version = caller.default_version(app).0;
            let cell = app.store.tenant(&caller.world);
            let mut t = cell.state.lock();
            t.catch_up();
            let mut ctx = crate::stripe::Ctx {
                tenant: &mut t,
                params: &params,
                version,
            };
            invoices::create(&mut ctx).map(|v| Reply::json(200, &v))
        }
        (&Method::GET, ["_emulator", "stripe_version"]) => {
            let caller = caller(req)?;
            let params = params(app, req)?;
            validate(&params, &[], "")?;
            Ok(Reply::json(200, &version_json(app, &caller)))
        }
        (&Method::POST, ["_emulator", "stripe_version"]) => {
            let caller = caller(req)?;
            let params = params(app, req)?;
            set_version(app, &caller, &params)
        }
        _ => Err(StripeError::unrecognized(req.method.as_str(), &req.path)),
    }
}

/// The caller's tenant: the key from either API's header, or with `Stripe-Account` the connected
/// account's world.
pub fn tenant_key(req: &Request) -> StripeResult<String> {
    caller(req).map(|c| c.world)
}

/// Who an admin request acts for.
struct Caller {
    /// The API key.
    key: String,
    /// The world's name: the key, or the key and the connected account.
    world: String,
    /// Whether the world is a connected account's.
    connected: bool,
}

impl Caller {
    /// The world's default Stripe API version, and where it comes from.
    fn default_version(&self, app: &App) -> (Version, versions::Source) {
        let platform = self.connected.then_some(self.key.as_str());
        versions::default_for(&app.store, &self.world, platform)
    }
}

fn caller(req: &Request) -> StripeResult<Caller> {
    let key = match req.header("x-api-key") {
        Some(k) => {
            crate::stripe::auth::check_key(k)?;
            k.to_string()
        }
        None => crate::stripe::auth::authenticate(req)?,
    };
    let account = crate::stripe::auth::account(req, &key)?;
    let world = crate::stripe::auth::world(&key, account).into_owned();
    Ok(Caller {
        key,
        world,
        connected: account.is_some(),
    })
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
        "mode": match t.clock() { TenantClock::Real => "real", TenantClock::Frozen(_) => "frozen" },
        "now": to_secs(now),
        "now_rfc3339": crate::time::to_rfc3339(now),
    })
}

/// `{object, default_version, source, newest_version}` for the caller's world.
fn version_json(app: &App, caller: &Caller) -> Value {
    let (version, source) = caller.default_version(app);
    json!({
        "object": "emulator.stripe_version",
        "default_version": version.as_str(),
        "source": source.as_str(),
        "newest_version": Version::NEWEST.as_str(),
    })
}

const VERSION: &[Field] = &[req("version", Spec::Str(5000))];

/// `POST /_emulator/stripe_version`: `version=<known version>` sets the world's default,
/// `version=` clears it (back to the platform's, or the newest).
fn set_version(app: &App, caller: &Caller, params: &Params) -> StripeResult<Reply> {
    validate(params, VERSION, "")?;
    let value = get_str(params, "version").unwrap_or("");
    let version = match value {
        "" => None,
        v => Some(Version::parse(v).ok_or_else(|| versions::invalid(v).param("version"))?),
    };
    let cell = app.store.tenant(&caller.world);
    versions::set_default(&cell, version);
    Ok(Reply::json(200, &version_json(app, caller)))
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
