//! The native facade: a JSON API modelled on Flexprice's credit grants, over the same model as the
//! Stripe facade.
//!
//! ## The pipeline
//!
//! [`handle`] finds the request's row in [`ROUTES`] (an unknown route is gin's plain-text 404,
//! whatever the credentials), authenticates it (`x-api-key`), reads the query, and runs the row's
//! operation through [`op::op`]: every endpoint is a type implementing [`op::Operation`] in three
//! phases.
//!
//! 1. **parse**, with no lock: the JSON body is bound into a typed request struct as gin binds it
//!    ([`json`]), the query and the path id are read, and every rule that needs no stored object is
//!    checked, in Flexprice's order;
//! 2. **apply** to the tenant, under its lock ([`Store::try_with_tenant`], or
//!    [`Store::read_tenant`] for a `GET`, which never makes a world; the only lock owners):
//!    lookups, the checks upstream makes after them, and the model call;
//! 3. **render**: a typed `Serialize` view in Go's JSON shape (decimals as strings, RFC 3339
//!    times, `omitempty` fields left out; see [`view`]).
//!
//! Errors are values ([`error::NativeError`]) in Flexprice's envelope; the first one wins.
//!
//! ## Adding a resource
//!
//! 1. the model method it needs, in `src/model/` (the model knows nothing of JSON or HTTP);
//! 2. an operation type in the resource's file here (`pub struct Create { … }` with
//!    `impl Operation for Create`): a `json_object!` struct for its body, parse, apply and a
//!    view struct for render; lookups shared by several resources go in [`find`];
//! 3. a row in [`ROUTES`], which also makes the path native if only this API has it;
//! 4. a black-box test over a real socket (`tests/native_*.rs`) with `insta` snapshots of whole
//!    answers, errors included.

pub mod auth;
pub mod credit_grants;
pub mod customers;
pub mod error;
pub mod find;
pub mod grant_rules;
pub mod ids;
pub mod json;
pub mod list;
pub mod names;
pub mod op;
pub mod plans;
pub mod routes;
pub mod subscriptions;
pub mod view;
pub mod wallets;

use std::sync::LazyLock;

use hyper::Method;

use crate::config::Config;
use crate::http::{Reply, Request};
use crate::model::Store;
use list::Query;
use op::{op, Call, Input};
use routes::{route, shared, Owned, Route};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

/// Every native route. `shared` rows are paths Stripe's route table serves too: they are native
/// only with `x-api-key` (without it they are Stripe's, and a request without credentials gets
/// Stripe's 401). Every other row's path is native whatever the headers. The router's tests check
/// that the flag agrees with Stripe's table.
pub static ROUTES: &[Route] = &[
    route(POST, "/v1/creditgrants", op::<credit_grants::Create>),
    route(GET, "/v1/creditgrants", op::<credit_grants::List>),
    route(GET, "/v1/creditgrants/{id}", op::<credit_grants::Retrieve>),
    route(PUT, "/v1/creditgrants/{id}", op::<credit_grants::Update>),
    route(DELETE, "/v1/creditgrants/{id}", op::<credit_grants::Delete>),
    route(
        GET,
        "/v1/plans/{id}/creditgrants",
        op::<credit_grants::OfPlan>,
    ),
    route(
        GET,
        "/v1/addons/{id}/creditgrants",
        op::<credit_grants::OfAddon>,
    ),
    route(
        GET,
        "/v1/subscriptions/{id}/grants/upcoming",
        op::<credit_grants::UpcomingOfSubscription>,
    ),
    route(
        GET,
        "/v1/customers/{id}/grants/upcoming",
        op::<credit_grants::UpcomingOfCustomer>,
    ),
    shared(POST, "/v1/customers", op::<customers::Create>),
    shared(GET, "/v1/customers", op::<customers::List>),
    shared(GET, "/v1/customers/{id}", op::<customers::Retrieve>),
    route(GET, "/v1/customers/{id}/wallets", op::<wallets::OfCustomer>),
    route(POST, "/v1/plans", op::<plans::Create>),
    route(GET, "/v1/plans", op::<plans::List>),
    route(GET, "/v1/plans/{id}", op::<plans::Retrieve>),
    route(DELETE, "/v1/plans/{id}", op::<plans::Delete>),
    shared(POST, "/v1/subscriptions", op::<subscriptions::Create>),
    shared(GET, "/v1/subscriptions", op::<subscriptions::List>),
    shared(GET, "/v1/subscriptions/{id}", op::<subscriptions::Retrieve>),
    route(
        POST,
        "/v1/subscriptions/{id}/cancel",
        op::<subscriptions::Cancel>,
    ),
    route(GET, "/v1/wallets/{id}", op::<wallets::Retrieve>),
    route(
        GET,
        "/v1/wallets/{id}/balance/real-time",
        op::<wallets::RealTimeBalance>,
    ),
    route(
        GET,
        "/v1/wallets/{id}/transactions",
        op::<wallets::Transactions>,
    ),
];

/// The paths [`ROUTES`] make native, worked out once.
static OWNED: LazyLock<Owned> = LazyLock::new(|| Owned::of(ROUTES));

/// Whether `path` (as sent, still percent-encoded) is the native API's even without `x-api-key`:
/// it lies under a root only the native API has (`/v1/creditgrants`, `/v1/plans`, …), or is a
/// native-only route under a shared root (`/v1/customers/{id}/wallets`,
/// `/v1/subscriptions/{id}/cancel`). Paths Stripe serves too are never owned: the router gives them
/// to Stripe unless the request carries `x-api-key`.
pub fn owns_path(path: &str) -> bool {
    OWNED.contains(path)
}

/// Whether `path` lies under a root of a native-only route (`/v1/plans`, `/v1/customers` for
/// `/v1/customers/{id}/wallets`): when it does not, [`owns_path`] is false, which this tells from
/// the path's first two segments, without a look at either table.
pub fn may_own_path(path: &str) -> bool {
    OWNED.may_contain(path)
}

/// Serves one native request.
pub fn handle(store: &Store, config: &Config, req: &Request) -> Reply {
    prepare(config, req).finish(store)
}

/// A native request as far as it can be served without its world: answered already (an unknown
/// route, a bad key, a refused query or body), or parsed, with what its world's turn still has to
/// do ([`Prepared::finish`]).
pub enum Prepared {
    /// Refused before the world was needed.
    Answered(Reply),
    /// Parsed: apply and render remain.
    Pending {
        /// The caller's tenant key.
        key: String,
        /// The environment that key is bound to.
        env: String,
        /// Whether the request only reads.
        read_only: bool,
        /// Apply and render.
        run: op::Applied,
    },
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prepared::Answered(reply) => write!(f, "Answered({})", reply.status),
            Prepared::Pending { key, .. } => write!(f, "Pending({key})"),
        }
    }
}

/// Reads and parses `req` without its world: route, key, query, then the operation's parse.
pub fn prepare(config: &Config, req: &Request) -> Prepared {
    // gin routes on the decoded path (`URL.Path`): `%2F` is a slash there, so an id holding one
    // matches no route, and an id's other escapes reach the operation decoded.
    let path = percent_encoding::percent_decode_str(&req.path).decode_utf8_lossy();
    let Some((row, id)) = routes::find(ROUTES, &req.method, &path) else {
        return Prepared::Answered(error::route_not_found());
    };
    let key = match auth::authenticate(req) {
        Ok(k) => k,
        Err(reply) => return Prepared::Answered(reply),
    };
    let query = match Query::parse(req.query.as_deref()) {
        Ok(q) => q,
        Err(e) => return Prepared::Answered(e.reply()),
    };
    match (row.handler)(&Input::new(id, &query, &req.body, config.max_json_depth)) {
        Ok(run) => Prepared::Pending {
            env: ids::environment_of(&key),
            key,
            read_only: req.method == GET,
            run,
        },
        Err(reply) => Prepared::Answered(reply),
    }
}

impl Prepared {
    /// Serves what is left in the caller's world, among the tenants of `store`.
    pub fn finish(self, store: &Store) -> Reply {
        match self {
            Prepared::Answered(reply) => reply,
            Prepared::Pending {
                key,
                env,
                read_only,
                run,
            } => run(&Call {
                store,
                key: &key,
                env: &env,
                read_only,
            }),
        }
    }
}
