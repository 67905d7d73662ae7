//! The Stripe facade: form-encoded requests in, Stripe JSON out.
//!
//! [`handle`] authenticates, finds the world (the key's, or with `Stripe-Account` the connected
//! account's), settles the API version (`Stripe-Version`, else the world's default), decodes the
//! query string and body into one parameter tree, applies the idempotency layer to POSTs, picks the
//! resource handler (`route`), then locks the tenant, posts whatever is due on its clock, and runs
//! the handler. Each resource module declares its parameters (`params::Field` tables, marked with
//! the [`versions::Change`]s that shaped them), reads them, calls the model and renders the result
//! as the version sees it. The busiest write, credit grant create, checks its parameters in
//! `route`, before the lock.

pub mod auth;
pub mod balances;
pub mod credit_grants;
pub mod customers;
pub mod error;
pub mod expand;
pub mod ids;
pub mod invoices;
pub mod list;
pub mod params;
pub mod search;
pub mod test_clocks;
pub mod transactions;
pub mod versions;

use std::hash::{Hash, Hasher};

use hyper::Method;
use serde_json::Value;

use crate::form::{self, FormError, Node, Params};
use crate::http::{Reply, Request};
use crate::idempotency::Claim;
use crate::model::Tenant;
use crate::server::App;
use error::{StripeError, StripeResult};
use versions::Version;

/// Everything a resource handler needs.
pub struct Ctx<'a> {
    /// The caller's world, locked, with its clock caught up.
    pub tenant: &'a mut Tenant,
    /// Query string and body, decoded together.
    pub params: &'a Params,
    /// The API version the request runs under: which parameters exist and which fields are shown.
    pub version: Version,
}

/// A handler's answer: a JSON value, or JSON already written. Hot paths (credit grants without
/// `expand[]`) serialize straight from the model with [`pretty`] instead of building a `Value`.
pub enum Body {
    /// A value to serialize.
    Value(Value),
    /// Pretty JSON, ready to send.
    Json(Vec<u8>),
}

/// Serializes `value` as Stripe's pretty JSON into a buffer of `capacity` bytes to start with.
pub fn pretty(value: &impl serde::Serialize, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    // Writing to a Vec fails only if `Serialize` does; the derived views here never do.
    let _ = serde_json::to_writer_pretty(&mut out, value);
    out
}

/// Serves one Stripe request.
pub fn handle(app: &App, req: &Request) -> Reply {
    // Only POSTs are idempotent; a key sent with anything else is ignored, and not echoed.
    let idempotency_key = match req.method {
        Method::POST => req.header("idempotency-key"),
        _ => None,
    };
    let mut applied = None;
    let reply = match serve(app, req, idempotency_key, &mut applied) {
        Ok(reply) => reply,
        Err(e) => e.reply(),
    };
    finish_headers(applied, idempotency_key, reply)
}

/// Serves `req`, setting `applied` to the API version once it is settled.
///
/// The order of the checks: the key (401), the `Stripe-Account` header (403), then the version
/// (400). A version is a setting of the account that calls, and whether a beta may be named
/// depends on that account, so the version is settled only once the caller is known.
fn serve(
    app: &App,
    req: &Request,
    idempotency_key: Option<&str>,
    applied: &mut Option<Version>,
) -> StripeResult<Reply> {
    let key = auth::authenticate(req)?;
    let account = auth::account(req, &key)?;
    let requested = versions::requested(req)?;
    let world = auth::world(&key, account);
    let version = requested.unwrap_or_else(|| {
        let platform = account.map(|_| key.as_str());
        versions::default_for(&app.store, &world, platform).0
    });
    *applied = Some(version);
    let params = decode(app, req)?;
    let cell = app.store.tenant(&world);
    if idempotency_key.is_some_and(|k| k.len() > 255) {
        return Err(StripeError::invalid(
            "Idempotency keys can be at most 255 characters long.",
        ));
    }
    if let Some(k) = idempotency_key {
        let fp = fingerprint(req, &params);
        let claim = cell.idempotency.lock().claim(k, fp);
        match claim {
            Claim::Proceed => {}
            Claim::Replay { status, body } => {
                return Ok(Reply {
                    status,
                    content_type: "application/json",
                    headers: vec![("idempotent-replayed", "true".to_string())],
                    body,
                });
            }
            Claim::Mismatch => {
                let mut e = StripeError::invalid(format!(
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{k}' if you meant to execute a different request."
                ));
                e.kind = "idempotency_error";
                return Err(e);
            }
            Claim::InFlight => {
                return Err(StripeError::invalid(format!(
                    "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): {k}. Please try again later."
                ))
                .code("idempotency_key_in_use")
                .status(409));
            }
        }
    }
    // Releases the claim if the handler panics, so a retry is not locked out for a day.
    struct Release<'a> {
        cell: &'a crate::model::TenantCell,
        key: Option<&'a str>,
    }
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            if let Some(k) = self.key {
                self.cell.idempotency.lock().abandon(k);
            }
        }
    }
    let mut release = Release {
        cell: &cell,
        key: idempotency_key,
    };
    // The handler is chosen, and whatever it can check without the tenant is checked, before the
    // tenant is locked: requests of one tenant wait for each other only while the model is read
    // or written.
    let result = route(req, &params, version).and_then(|handler| {
        let mut tenant = cell.state.lock();
        tenant.catch_up();
        // Off by default; proves that a panic here, with the tenant locked and an idempotency key
        // claimed, costs one request and nothing more.
        if app.config.panic_trigger && req.header("x-emulator-panic").is_some() {
            panic!("panic requested with X-Emulator-Panic");
        }
        let mut ctx = Ctx {
            tenant: &mut tenant,
            params: &params,
            version,
        };
        handler(&mut ctx)
    });
    let (reply, store) = match result {
        Ok(Body::Json(mut body)) => {
            // A stored answer lives for a day: it keeps the bytes it needs, not the buffer's spare
            // capacity (a create's 1 KiB buffer holds about 750 bytes).
            if release.key.is_some() {
                body.shrink_to_fit();
            }
            (Reply::json_body(200, body), true)
        }
        Ok(Body::Value(value)) => (Reply::json(200, &value), true),
        Err(e) => (e.reply(), e.executed),
    };
    if let (Some(k), true) = (release.key, store) {
        cell.idempotency
            .lock()
            .finish(k, reply.status, reply.body.clone());
        release.key = None;
    }
    Ok(reply)
}

/// Adds the headers every Stripe response carries. `Stripe-Version` names the version the request
/// ran under (the one it sent, or its world's default), as Stripe sends the account's version when
/// none was asked for; an answer given before a version applied (401, 403, an invalid version)
/// has none.
fn finish_headers(
    applied: Option<Version>,
    idempotency_key: Option<&str>,
    mut reply: Reply,
) -> Reply {
    if let Some(v) = applied {
        reply
            .headers
            .push(("stripe-version", v.as_str().to_string()));
    }
    if let Some(k) = idempotency_key {
        reply.headers.push(("idempotency-key", k.to_string()));
    }
    reply
}

/// Decodes the query string and, for form bodies, the body into one tree.
pub fn decode(app: &App, req: &Request) -> StripeResult<Params> {
    // Sized for a create's dozen top-level names, so the map is not regrown while decoding.
    let mut params = Params::with_capacity_and_hasher(16, Default::default());
    let mut count = 0;
    let limits = &app.config.form;
    if let Some(q) = &req.query {
        form::parse_into(&mut params, q.as_bytes(), limits, &mut count).map_err(form_error)?;
    }
    if !req.body.is_empty() {
        let content_type = req.header("content-type").unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !mime.is_empty() && !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(StripeError::invalid(format!(
                "Invalid request: unsupported Content-Type {}. If error persists and you need assistance, please contact support@stripe.com.",
                error::shorten(content_type)
            )));
        }
        form::parse_into(&mut params, &req.body, limits, &mut count).map_err(form_error)?;
    }
    Ok(params)
}

fn form_error(e: FormError) -> StripeError {
    match e {
        FormError::BadEncoding => StripeError::invalid(
            "Invalid request: the parameters are not valid application/x-www-form-urlencoded data (a '%' escape is broken, or the decoded bytes are not UTF-8).",
        ),
        FormError::TooManyParams { limit } => StripeError::invalid(format!(
            "Invalid request: too many parameters (the emulator accepts at most {limit} per request)."
        )),
        FormError::TooDeep { param, limit } => {
            let param = error::shorten(&param);
            StripeError::invalid(format!(
                "Invalid request: the parameter {param} is nested too deeply (the emulator accepts at most {limit} levels of brackets)."
            ))
            .param(param)
        }
        FormError::Conflict { param } => {
            let param = error::shorten(&param);
            StripeError::invalid(format!(
                "Invalid request: the parameter {param} was sent both as a single value and as a hash or array."
            ))
            .param(param)
        }
    }
}

/// A hash of the method, path and parameters, insensitive to parameter order: each leaf is hashed
/// with its full bracketed name and the leaf hashes are added, so no pairs are built or sorted.
/// Fingerprints only ever meet fingerprints of the same process, so a fixed-seed fast hash will do.
fn fingerprint(req: &Request, params: &Params) -> u64 {
    use std::hash::BuildHasher;
    let hasher = foldhash::fast::FixedState::default();
    fn walk(hasher: &foldhash::fast::FixedState, name: &mut String, node: &Node, sum: &mut u64) {
        let len = name.len();
        match node {
            Node::Value(v) => {
                let mut h = hasher.build_hasher();
                name.hash(&mut h);
                v.hash(&mut h);
                *sum = sum.wrapping_add(h.finish());
            }
            Node::Map(m) => {
                for (k, v) in m {
                    name.push('[');
                    name.push_str(k);
                    name.push(']');
                    walk(hasher, name, v, sum);
                    name.truncate(len);
                }
            }
            Node::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    use std::fmt::Write;
                    let _ = write!(name, "[{i}]");
                    walk(hasher, name, v, sum);
                    name.truncate(len);
                }
            }
        }
    }
    let mut sum = 0u64;
    let mut name = String::with_capacity(64);
    for (k, v) in params {
        name.clear();
        name.push_str(k);
        walk(&hasher, &mut name, v, &mut sum);
    }
    let mut h = hasher.build_hasher();
    req.method.as_str().hash(&mut h);
    req.path.hash(&mut h);
    sum.hash(&mut h);
    h.finish()
}

/// Checks that a path id is of a sane length before any lookup.
fn path_id<'a>(id: &'a str, method: &Method, path: &str) -> StripeResult<&'a str> {
    if id.is_empty() || id.len() > 5000 {
        return Err(StripeError::unrecognized(method.as_str(), path));
    }
    Ok(id)
}

/// A resource handler, bound to its path ids and to what it checked before the tenant was locked.
type Handler<'r> = Box<dyn FnOnce(&mut Ctx) -> StripeResult<Body> + 'r>;

/// Picks the handler for `req`. Runs before the tenant is locked; a handler whose parameters can be
/// checked without the tenant (credit grant create, the busiest write) checks them here, as
/// `version` sees them.
fn route<'r>(req: &'r Request, params: &'r Params, version: Version) -> StripeResult<Handler<'r>> {
    let segments = req.segments();
    let m = &req.method;
    let p = req.path.as_str();
    use Method as M;
    fn value(r: StripeResult<Value>) -> StripeResult<Body> {
        r.map(Body::Value)
    }
    // A handler of the tenant alone, or of the tenant and one path id.
    fn on(f: fn(&mut Ctx) -> StripeResult<Body>) -> StripeResult<Handler<'static>> {
        Ok(Box::new(f))
    }
    fn on_id<'r>(
        id: &'r str,
        m: &Method,
        p: &str,
        f: fn(&mut Ctx, &str) -> StripeResult<Body>,
    ) -> StripeResult<Handler<'r>> {
        let id = path_id(id, m, p)?;
        Ok(Box::new(move |ctx| f(ctx, id)))
    }
    match (m, segments.as_slice()) {
        (&M::POST, ["v1", "customers"]) => on(|c| value(customers::create(c))),
        (&M::GET, ["v1", "customers"]) => on(|c| value(customers::list(c))),
        (&M::GET, ["v1", "customers", "search"]) => on(|c| value(customers::search(c))),
        (&M::GET, ["v1", "customers", id]) => {
            on_id(id, m, p, |c, id| value(customers::retrieve(c, id)))
        }
        (&M::POST, ["v1", "customers", id]) => {
            on_id(id, m, p, |c, id| value(customers::update(c, id)))
        }
        (&M::DELETE, ["v1", "customers", id]) => {
            on_id(id, m, p, |c, id| value(customers::delete(c, id)))
        }

        (&M::POST, ["v1", "billing", "credit_grants"]) => {
            let draft = credit_grants::draft(params, version)?;
            Ok(Box::new(move |c| credit_grants::create(c, draft)))
        }
        (&M::GET, ["v1", "billing", "credit_grants"]) => on(credit_grants::list),
        (&M::GET, ["v1", "billing", "credit_grants", id]) => {
            on_id(id, m, p, credit_grants::retrieve)
        }
        (&M::POST, ["v1", "billing", "credit_grants", id]) => {
            on_id(id, m, p, credit_grants::update)
        }
        (&M::POST, ["v1", "billing", "credit_grants", id, "expire"]) => {
            on_id(id, m, p, credit_grants::expire)
        }
        (&M::POST, ["v1", "billing", "credit_grants", id, "void"]) => {
            on_id(id, m, p, credit_grants::void)
        }

        (&M::GET, ["v1", "billing", "credit_balance_summary"]) => {
            on(|c| value(balances::retrieve(c)))
        }
        (&M::GET, ["v1", "billing", "credit_balance_transactions"]) => {
            on(|c| value(transactions::list(c)))
        }
        (&M::GET, ["v1", "billing", "credit_balance_transactions", id]) => {
            on_id(id, m, p, |c, id| value(transactions::retrieve(c, id)))
        }

        (&M::GET, ["v1", "invoices"]) => on(|c| value(invoices::list(c))),
        (&M::GET, ["v1", "invoices", id]) => {
            on_id(id, m, p, |c, id| value(invoices::retrieve(c, id)))
        }
        (&M::GET, ["v1", "invoices", id, "lines"]) => {
            on_id(id, m, p, |c, id| value(invoices::lines(c, id)))
        }
        (&M::POST, ["v1", "invoices", id, "void"]) => {
            on_id(id, m, p, |c, id| value(invoices::void(c, id)))
        }

        (&M::POST, ["v1", "test_helpers", "test_clocks"]) => on(|c| value(test_clocks::create(c))),
        (&M::GET, ["v1", "test_helpers", "test_clocks"]) => on(|c| value(test_clocks::list(c))),
        (&M::GET, ["v1", "test_helpers", "test_clocks", id]) => {
            on_id(id, m, p, |c, id| value(test_clocks::retrieve(c, id)))
        }
        (&M::DELETE, ["v1", "test_helpers", "test_clocks", id]) => {
            on_id(id, m, p, |c, id| value(test_clocks::delete(c, id)))
        }
        (&M::POST, ["v1", "test_helpers", "test_clocks", id, "advance"]) => {
            on_id(id, m, p, |c, id| value(test_clocks::advance(c, id)))
        }
        _ => Err(StripeError::unrecognized(m.as_str(), p)),
    }
}

/// Renders the object behind an expandable field's id, for `expand[]`, as the newest version shows it.
pub fn resolve(tenant: &Tenant, field: &str, id: &str) -> Option<Value> {
    resolve_at(tenant, field, id, Version::NEWEST)
}

/// Renders the object behind an expandable field's id, for `expand[]`, as `version` shows it.
pub fn resolve_at(tenant: &Tenant, field: &str, id: &str, version: Version) -> Option<Value> {
    match field {
        "customer" => ids::key_of(id, ids::CUSTOMER)
            .and_then(|k| tenant.customer(k))
            .map(|c| customers::render(tenant, c)),
        "test_clock" => ids::key_of(id, ids::TEST_CLOCK)
            .and_then(|k| tenant.test_clock(k))
            .map(test_clocks::render),
        "credit_grant" => ids::key_of(id, ids::CREDIT_GRANT)
            .and_then(|k| tenant.lot(k))
            .map(|lot| credit_grants::render(lot, version)),
        "invoice" => ids::key_of(id, ids::INVOICE)
            .and_then(|k| tenant.invoice(k))
            .map(|inv| invoices::render(tenant, inv)),
        _ => None,
    }
}

/// Expands `paths` in `value` against `tenant`, rendering as the newest version does.
pub fn expand_in(tenant: &Tenant, value: &mut Value, paths: &[String]) {
    expand_at(tenant, value, paths, Version::NEWEST);
}

/// Expands `paths` in `value` against `tenant`, rendering as `version` does.
pub fn expand_at(tenant: &Tenant, value: &mut Value, paths: &[String], version: Version) {
    expand::apply(value, paths, &|field, id| {
        resolve_at(tenant, field, id, version)
    });
}
