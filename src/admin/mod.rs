//! `/_emulator/*`: the emulator's own routes (health, reset, tenant clock, Stripe API version).
//! `POST /_emulator/invoices` speaks Stripe's objects, so the Stripe facade serves it (see
//! `stripe::routes`).
//!
//! Routes that act on a tenant take the tenant's key the way either API sends it
//! (`Authorization: Bearer sk_test_…` or `x-api-key: sk_test_…`) and act only on that tenant; with
//! `Stripe-Account: acct_…` they act on that connected account's world instead, as Stripe routes do.
//! Errors are in Stripe's envelope.

use hyper::Method;
use serde::Serialize;

use crate::app::App;
use crate::form::Params;
use crate::http::{Reply, Request};
use crate::model::{Tenant, TenantClock, TenantClockError};
use crate::time::{from_secs, to_secs};
use crate::wire::decode::decode;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::keys;
use crate::wire::params::{get_int, get_str, opt, req, validate, Field, Spec};
use crate::wire::versions::{self, Version};

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
        (&Method::GET, ["_emulator", "health"]) => Ok(json(&Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            uptime_ms: app.started.elapsed().as_millis() as u64,
            tenants: app.store.tenant_count(),
        })),
        (&Method::POST, ["_emulator", "reset"]) => {
            let world = tenant_key(req)?;
            let existed = app.reset(&world);
            Ok(json(&Reset {
                reset: true,
                existed,
            }))
        }
        (&Method::GET, ["_emulator", "clock"]) => {
            let world = tenant_key(req)?;
            Ok(app.store.with_tenant(&world, |t| json(&ClockView::of(t))))
        }
        (&Method::POST, ["_emulator", "clock"]) => {
            let world = tenant_key(req)?;
            let params = params(app, req)?;
            set_clock(app, &world, &params)
        }
        (&Method::GET, ["_emulator", "stripe_version"]) => {
            let caller = caller(req)?;
            let params = params(app, req)?;
            validate(&params, &[], "")?;
            Ok(json(&VersionView::of(app, &caller)))
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
    let key = keys::either_key(req)?;
    let account = keys::account(req, &key)?;
    let world = keys::world(&key, account).into_owned();
    Ok(Caller {
        key,
        world,
        connected: account.is_some(),
    })
}

/// The query string and form body, decoded with the same limits, Content-Type check and error
/// wording as every Stripe route.
pub fn params(app: &App, req: &Request) -> StripeResult<Params> {
    decode(req, &app.config.form)
}

/// Pretty JSON, 200.
fn json(view: &impl Serialize) -> Reply {
    let mut body = Vec::with_capacity(128);
    // Writing to a Vec fails only if `Serialize` does; these views never do.
    let _ = serde_json::to_writer_pretty(&mut body, view);
    Reply::json_body(200, body)
}

/// `GET /_emulator/health`.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_ms: u64,
    tenants: usize,
}

/// `POST /_emulator/reset`.
#[derive(Serialize)]
struct Reset {
    reset: bool,
    existed: bool,
}

/// The tenant clock: `{object, mode, now, now_rfc3339}`.
#[derive(Serialize)]
struct ClockView {
    object: &'static str,
    mode: &'static str,
    now: i64,
    now_rfc3339: String,
}

impl ClockView {
    fn of(t: &Tenant) -> ClockView {
        let now = t.tenant_now();
        ClockView {
            object: "emulator.clock",
            mode: match t.clock {
                TenantClock::Real => "real",
                TenantClock::Frozen(_) => "frozen",
            },
            now: to_secs(now),
            now_rfc3339: crate::time::to_rfc3339(now),
        }
    }
}

/// `{object, default_version, source, newest_version}` for the caller's world.
#[derive(Serialize)]
struct VersionView {
    object: &'static str,
    default_version: &'static str,
    source: &'static str,
    newest_version: &'static str,
}

impl VersionView {
    fn of(app: &App, caller: &Caller) -> VersionView {
        let (version, source) = caller.default_version(app);
        VersionView {
            object: "emulator.stripe_version",
            default_version: version.as_str(),
            source: source.as_str(),
            newest_version: Version::NEWEST.as_str(),
        }
    }
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
    Ok(json(&VersionView::of(app, caller)))
}

const CLOCK: &[Field] = &[opt("frozen_time", Spec::Int), opt("real_time", Spec::Bool)];

/// `POST /_emulator/clock`: `frozen_time` freezes the tenant clock or moves it forward,
/// `real_time=true` returns it to real time.
fn set_clock(app: &App, world: &str, params: &Params) -> StripeResult<Reply> {
    validate(params, CLOCK, "")?;
    let frozen = get_int(params, "frozen_time");
    let real = get_str(params, "real_time") == Some("true");
    // Which of the two is asked for, and the instant, are settled before the tenant is locked.
    let to = match (frozen, real) {
        (Some(_), true) => {
            return Err(StripeError::invalid(
                "You may only specify one of these parameters: frozen_time, real_time.",
            ))
        }
        (Some(secs), false) => Some(from_secs(secs).ok_or_else(|| {
            StripeError::invalid(format!("Invalid timestamp: {secs} is out of range."))
                .param("frozen_time")
        })?),
        (None, true) => None,
        (None, false) => {
            return Err(StripeError::invalid(
                "Pass frozen_time (unix seconds) to freeze or move the tenant clock, or real_time=true to return to real time.",
            ))
        }
    };
    app.store.with_tenant(world, |t| {
        let moved = match to {
            Some(at) => t.freeze_clock(at),
            None => t.unfreeze_clock(),
        };
        match moved {
            Ok(()) => Ok(json(&ClockView::of(t))),
            Err(TenantClockError::Backwards { now }) if real => Err(StripeError::invalid(format!(
                "The tenant clock only moves forward: it is frozen at {}, later than real time ({}), so it cannot return to real time yet.",
                to_secs(now),
                to_secs(crate::time::real_now())
            ))
            .param("real_time")),
            Err(TenantClockError::Backwards { now }) => Err(StripeError::invalid(format!(
                "The tenant clock only moves forward: it is at {} and cannot go back to {}. Only a tenant in which nothing has been created yet may start earlier (POST /_emulator/reset starts over).",
                to_secs(now),
                frozen.unwrap_or_default()
            ))
            .param("frozen_time")),
        }
    })
}
