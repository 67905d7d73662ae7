//! The Stripe facade: form-encoded requests in, Stripe JSON out.
//!
//! Every endpoint is an [`op::Operation`] named by a row of [`routes::ROUTES`]. [`handle`] is the
//! pipeline around them:
//!
//! 1. find the row for the method and path (an unknown route is answered after the checks below,
//!    where Stripe answers it);
//! 2. authenticate, find the world (the key's, or with `Stripe-Account` the connected account's;
//!    on the meter event stream, the world of the session its bearer token names), settle the API
//!    version (`Stripe-Version`, else the world's default);
//! 3. decode the query string and body into one parameter tree;
//! 4. for a POST with `Idempotency-Key`, claim the key (or replay, or refuse); the key belongs to
//!    the world, which is made first if it is new;
//! 5. run the operation: **parse** without the lock, then **apply** and **render** with the world
//!    locked (`World::with`, the only way to the model), then expand `expand[]`. A `GET` never
//!    makes a world: on a key that has none it sees an empty one that is not kept. Any other
//!    request makes it, unless the emulator holds `--max-tenants` worlds already;
//! 6. store the answer for the idempotency key, and add `Stripe-Version` and `Idempotency-Key`.
//!
//! [`prepare`] does steps 1–3 and the operation's parse, which need no world, and
//! [`Prepared::finish`] the rest, in the world's turn; the server calls the two on different
//! threads when it can (see `crate::turns`), [`handle`] one after the other. A refusal found
//! while parsing is kept and reported after step 4, where Stripe reports it.
//!
//! Rows of the emulator's own origin (`POST /_emulator/invoices`) skip the version header and the
//! idempotency layer, and take the key from either API's header.
//!
//! Parameter tables (`crate::wire::params`), the error envelope, keys, form decoding and versions
//! are in [`crate::wire`], shared with the admin routes.

pub mod alerts;
pub mod balances;
pub mod catalog;
pub mod credit_grants;
pub mod customers;
pub mod event_types;
pub mod events;
pub mod expand;
pub mod ids;
pub mod invoice_items;
pub mod invoices;
pub mod list;
pub mod meter_events;
pub mod meters;
pub mod objects;
pub mod op;
pub mod prices;
pub mod products;
pub mod routes;
pub mod search;
pub mod subscription_items;
pub mod subscriptions;
pub mod test_clocks;
pub mod transactions;
pub mod webhook_endpoints;

use std::hash::{Hash, Hasher};

use hyper::Method;

use crate::app::App;
use crate::form::{Node, Params};
use crate::http::{names, Reply, Request};
use crate::idempotency::{Claim, WorldStore};
use crate::wire::decode::decode;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::keys;
use crate::wire::versions::{self, Version};
use op::{Captures, Input, World};
use routes::{Origin, Route, Verb};

/// Serves one Stripe request (or one of the emulator's own routes in Stripe's language).
pub fn handle(app: &App, req: &Request) -> Reply {
    prepare(app, req, None).finish(app, req)
}

/// A Stripe request as far as it can be served without its world: answered already, or what its
/// world's turn still has to do ([`Prepared::finish`]). Splitting the two lets the server read and
/// check a request on the thread that received it, and keep the world's turn for the work that
/// needs the world (see `crate::turns`).
pub enum Prepared {
    /// Answered without the world: the key, the account, the version or the parameters were
    /// refused (in the order the module's documentation gives).
    Answered(Reply),
    /// One of the emulator's own routes, served whole in the world's turn; with the world the
    /// server read from its credentials, if it did.
    Emulator(Option<String>),
    /// A Stripe route, read and parsed.
    Stripe(Pending),
}

/// A Stripe request read and parsed, with what its world's turn has to do: claim its idempotency
/// key, then apply and render the operation.
pub struct Pending {
    /// The world the request acts in.
    world: String,
    /// The version it runs under.
    version: Version,
    /// Whether a route answers the method and path.
    found: bool,
    /// Whether the route makes a meter event session, whose token is remembered once answered.
    makes_session: bool,
    /// The `X-Emulator-Panic` switch, when allowed.
    panic: bool,
    /// The parameters' fingerprint, for the idempotency key.
    fingerprint: u64,
    /// The operation, parsed; or the unknown route's or the parameters' refusal, which Stripe
    /// reports only after the idempotency key is claimed.
    run: StripeResult<routes::Applied>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prepared::Answered(reply) => write!(f, "Answered({})", reply.status),
            Prepared::Emulator(_) => f.write_str("Emulator"),
            Prepared::Stripe(p) => write!(f, "Stripe({}, {})", p.world, p.version.as_str()),
        }
    }
}

/// Reads and checks `req` without its world: everything up to the idempotency key, in the order
/// the module's documentation gives. `world` is the world the server already read from the
/// request's credentials ([`crate::router::world_of`]), which spares reading the key and account
/// twice; `None` when it has not, or when they name none (they are read here then, for their
/// error).
pub fn prepare(app: &App, req: &Request, world: Option<&str>) -> Prepared {
    let found = routes::find(&req.method, &req.path);
    if found.is_some_and(|(r, _)| r.origin == Origin::Emulator) {
        return Prepared::Emulator(world.map(str::to_owned));
    }
    if req.path.starts_with("/_emulator/") {
        // The emulator's own paths answer an unknown route at once, as the admin routes do.
        return Prepared::Answered(
            StripeError::unrecognized(req.method.as_str(), &req.path).reply(),
        );
    }
    let idempotency_key = idempotency_key(req);
    let mut applied = None;
    match read(app, req, found, world, idempotency_key, &mut applied) {
        Ok(pending) => Prepared::Stripe(pending),
        Err(e) => Prepared::Answered(finish_headers(
            applied,
            idempotency_key,
            &req.request_id,
            e.reply(),
        )),
    }
}

impl Prepared {
    /// Serves what is left of `req` in its world (`req` is the request `self` was prepared from).
    pub fn finish(self, app: &App, req: &Request) -> Reply {
        match self {
            Prepared::Answered(reply) => reply,
            Prepared::Emulator(world) => match routes::find(&req.method, &req.path) {
                Some((route, captures)) => {
                    serve_emulator(app, req, route, captures, world.as_deref())
                        .unwrap_or_else(|e| e.reply())
                }
                None => StripeError::unrecognized(req.method.as_str(), &req.path).reply(),
            },
            Prepared::Stripe(pending) => {
                let idempotency_key = idempotency_key(req);
                let version = pending.version;
                let reply = serve(app, req, pending, idempotency_key).unwrap_or_else(|e| e.reply());
                finish_headers(Some(version), idempotency_key, &req.request_id, reply)
            }
        }
    }
}

/// Only POSTs are idempotent; a key sent with anything else is ignored, and not echoed.
fn idempotency_key(req: &Request) -> Option<&str> {
    match req.method {
        Method::POST => req.header(&names::IDEMPOTENCY_KEY),
        _ => None,
    }
}

/// Reads `req` on the route `found` (if any), setting `applied` to the API version once it is
/// settled: the first half of [`serve`]. `known` is the world its credentials name, if the
/// caller read them already (see [`prepare`]).
fn read(
    app: &App,
    req: &Request,
    found: Option<(&'static Route, Captures)>,
    known: Option<&str>,
    idempotency_key: Option<&str>,
    applied: &mut Option<Version>,
) -> StripeResult<Pending> {
    let stream = found.is_some_and(|(r, _)| r.pattern == routes::METER_EVENT_STREAM);
    let (world, session) = if stream {
        // The stream's credential is a session's token, which names its world.
        let token = keys::bearer(req)?;
        let session = app
            .meter_sessions
            .get(token)
            .ok_or_else(|| keys::unknown_token(token))?;
        (session.world, Some(session.expires_at))
    } else {
        // `router::world_of` reads a Stripe route's credentials as `keys::stripe_world` does (no
        // request with `X-Api-Key` reaches one: `router::api_of` sends it to the native API).
        (world_from(known, || keys::stripe_world(req))?, None)
    };
    let requested = versions::requested(req)?;
    let version = requested.unwrap_or_else(|| versions::default_for(&app.store, &world).0);
    *applied = Some(version);
    let params = decode(req, &app.config.form)?;
    if idempotency_key.is_some_and(|k| k.len() > 255) {
        return Err(StripeError::invalid(
            "Idempotency keys can be at most 255 characters long.",
        ));
    }
    let fingerprint = match idempotency_key {
        Some(_) => fingerprint(req, &params),
        None => 0,
    };
    let run = found
        .ok_or_else(|| StripeError::unrecognized(req.method.as_str(), &req.path))
        .and_then(|(route, captures)| {
            let input = Input::new(&params, version, captures);
            let input = match session {
                Some(expires_at) => input.with_session(expires_at),
                None => input,
            };
            (route.run)(&input)
        });
    Ok(Pending {
        world,
        version,
        found: found.is_some(),
        makes_session: found.is_some_and(|(r, _)| r.pattern == routes::METER_EVENT_SESSION),
        panic: app.config.panic_trigger && req.header(&names::X_EMULATOR_PANIC).is_some(),
        fingerprint,
        run,
    })
}

/// The world the server read from a request's credentials (`known`), or when it read none, the
/// one `read` reads from them (or their refusal). `read` must read them as the server does, which
/// a debug assertion holds.
fn world_from(
    known: Option<&str>,
    read: impl Fn() -> StripeResult<String>,
) -> StripeResult<String> {
    match known {
        Some(world) => {
            debug_assert_eq!(read().ok().as_deref(), Some(world));
            Ok(world.to_owned())
        }
        None => read(),
    }
}

/// Serves a request read by [`read`] in its world.
///
/// The order of the checks: the key (401), the `Stripe-Account` header (403), then the version
/// (400). A version is a setting of the account that calls, and whether a beta may be named
/// depends on that account, so the version is settled only once the caller is known. Then the
/// parameters are decoded, the idempotency key is claimed, and only then is an unknown route
/// reported, as Stripe reports it, or a refused parameter. The operation parsed what it could
/// without the world before the world's turn, so requests of one world wait for each other only
/// while the model is read or written.
fn serve(
    app: &App,
    req: &Request,
    pending: Pending,
    idempotency_key: Option<&str>,
) -> StripeResult<Reply> {
    let Pending {
        world,
        found,
        makes_session,
        panic,
        fingerprint,
        run,
        ..
    } = pending;
    // The key belongs to the world, which a request on a route that exists makes first (or is
    // refused when the emulator holds as many worlds as it may). An unknown route makes nothing:
    // a world that does not exist has no keys to compare with, and the 404 below is its answer.
    let store = match idempotency_key {
        Some(k) if found => Some((k, app.idempotency_of(&world)?)),
        Some(k) => app.idempotency.get(&world).map(|stored| (k, stored)),
        None => None,
    };
    if let Some((k, stored)) = &store {
        if let Some(answer) = claim(stored, k, fingerprint)? {
            return Ok(answer);
        }
    }
    // Releases the claim if the operation panics, so a retry is not locked out for a day.
    struct Release<'a> {
        claimed: Option<&'a (&'a str, std::sync::Arc<WorldStore>)>,
    }
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            if let Some((k, stored)) = self.claimed {
                stored.lock().abandon(k);
            }
        }
    }
    let mut release = Release {
        claimed: store.as_ref(),
    };
    let result = run.and_then(|applied| {
        let world = World::new(&app.store, &world, panic)
            .caused_by(&req.request_id, idempotency_key)
            // The route found answers GET exactly when the method is GET.
            .read_only(req.method == Method::GET);
        applied(&world)
    });
    let (reply, keep) = match result {
        Ok(body) => {
            if makes_session {
                remember_session(app, &world, &body);
            }
            (Reply::json_body(200, body), true)
        }
        Err(e) => (e.reply(), e.executed),
    };
    // An answer not kept (parameters refused) leaves the key to `Release`, which forgets it.
    if keep {
        if let Some((k, stored)) = release.claimed.take() {
            stored
                .lock()
                .finish(k, reply.status, &reply.body, &req.request_id);
        }
    }
    Ok(reply)
}

/// Remembers the meter event session an answer of `POST /v2/billing/meter_event_session` shows,
/// as a session of `world`, so that its token authenticates the stream.
fn remember_session(app: &App, world: &str, body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Made<'a> {
        authentication_token: &'a str,
        expires_at: &'a str,
    }
    let made = serde_json::from_slice::<Made>(body).ok();
    if let Some((made, expires_at)) =
        made.and_then(|m| crate::time::parse_rfc3339(m.expires_at).map(|t| (m, t)))
    {
        app.meter_sessions.insert(
            made.authentication_token.to_string(),
            world.to_string(),
            expires_at - meter_events::SESSION_LIFETIME,
            expires_at,
        );
    }
}

/// Claims `key` in `stored` for a request with fingerprint `fp`: `None` to go ahead, the stored
/// answer to replay, or Stripe's refusal of a key in use or used for another request.
fn claim(stored: &WorldStore, key: &str, fp: u64) -> StripeResult<Option<Reply>> {
    let claimed = stored.lock().claim(key, fp);
    match claimed {
        Claim::Proceed => Ok(None),
        Claim::Replay {
            status,
            body,
            request,
        } => {
            let mut headers = vec![(names::IDEMPOTENT_REPLAYED.clone(), "true".to_string())];
            // The request that ran; an answer stored without its id names none.
            if !request.is_empty() {
                headers.push((names::ORIGINAL_REQUEST.clone(), request));
            }
            Ok(Some(Reply {
                status,
                content_type: "application/json",
                headers,
                body,
            }))
        }
        Claim::Mismatch => {
            let mut e = StripeError::invalid(format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
            ));
            e.kind = "idempotency_error";
            Err(e)
        }
        Claim::InFlight => Err(StripeError::invalid(format!(
            "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): {key}. Please try again later."
        ))
        .code("idempotency_key_in_use")
        .status(409)),
    }
}

/// Serves one of the emulator's own routes: the key from either API's header, `Stripe-Account`
/// as on Stripe's routes, the world's default version, no idempotency and no version header.
fn serve_emulator(
    app: &App,
    req: &Request,
    route: &Route,
    captures: Captures,
    known: Option<&str>,
) -> StripeResult<Reply> {
    // The emulator's own routes take either key header, as `router::world_of` reads them.
    let world = world_from(known, || keys::emulator_world(req))?;
    let params = decode(req, &app.config.form)?;
    let version = versions::default_for(&app.store, &world).0;
    let input = Input::new(&params, version, captures);
    let panic = app.config.panic_trigger && req.header(&names::X_EMULATOR_PANIC).is_some();
    let world = World::new(&app.store, &world, panic).read_only(route.verb == Verb::Get);
    let body = (route.run)(&input)?(&world)?;
    Ok(Reply::json_body(200, body))
}

/// Adds the headers every Stripe response carries. `Stripe-Version` names the version the request
/// ran under (the one it sent, or its world's default), as Stripe sends the account's version when
/// none was asked for; an answer given before a version applied (401, 403, an invalid version)
/// has none. With an idempotency key, the key is echoed and `Original-Request` names the request
/// that ran: a replay already names the first one, any other answer `request_id`, its own.
fn finish_headers(
    applied: Option<Version>,
    idempotency_key: Option<&str>,
    request_id: &str,
    mut reply: Reply,
) -> Reply {
    if let Some(v) = applied {
        reply
            .headers
            .push((names::STRIPE_VERSION.clone(), v.as_str().to_string()));
    }
    if let Some(k) = idempotency_key {
        reply
            .headers
            .push((names::IDEMPOTENCY_KEY.clone(), k.to_string()));
        let replayed = reply
            .headers
            .iter()
            .any(|(name, _)| *name == names::IDEMPOTENT_REPLAYED);
        if !replayed {
            reply
                .headers
                .push((names::ORIGINAL_REQUEST.clone(), request_id.to_string()));
        }
    }
    reply
}

/// A hash of the method, path and parameters, insensitive to parameter order: each leaf is hashed
/// with its full bracketed name and the leaf hashes are added, so no pairs are built or sorted.
/// A fixed-seed fast hash: a fingerprint means the same in every process of one build, as it
/// must, since a state document carries stored answers from one emulator process to another.
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
