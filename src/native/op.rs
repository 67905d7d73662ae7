//! The native pipeline: every endpoint is an [`Operation`] run in three phases by [`op`].
//!
//! 1. **parse**, without the tenant lock (and before the request waits for its world's turn, see
//!    `super::prepare`): the path id, the query and the JSON body become a typed request, checked
//!    by every rule that needs no stored object, in Flexprice's order;
//! 2. **apply**, under the lock ([`Store::try_with_tenant`], or [`Store::read_tenant`] for a `GET`,
//!    which never makes a world): lookups, the checks that
//!    upstream makes after them (deferred from parse so that the order holds), and the model call;
//! 3. **render**: a typed `Serialize` view of what apply returned, written as Go marshals it.

use serde::Serialize;

use super::error::{NativeError, NativeResult};
use super::json::{self, Kind, Object};
use super::list::Query;
use super::view;
use crate::http::Reply;
use crate::ids::Key;
use crate::model::{Store, Tenant};

/// What a request gives its operation to parse.
#[derive(Debug)]
pub struct Input<'a> {
    /// The path's `{id}`, percent-decoded (`""` for routes without one).
    pub id: &'a str,
    /// The query string.
    pub query: &'a Query,
    body: &'a [u8],
    max_json_depth: usize,
}

impl<'a> Input<'a> {
    /// An input.
    pub fn new(id: &'a str, query: &'a Query, body: &'a [u8], max_json_depth: usize) -> Self {
        Input {
            id,
            query,
            body,
            max_json_depth,
        }
    }

    /// The JSON body bound as gin's `ShouldBindJSON` does (an empty body fails).
    pub fn body<T: Object + Kind<Out = T>>(&self) -> NativeResult<T> {
        json::bind(self.body, self.max_json_depth)
    }

    /// The JSON body if one was sent (upstream reads it only when `Content-Length > 0`).
    pub fn optional_body<T: Object + Kind<Out = T>>(&self) -> NativeResult<T> {
        if self.body.is_empty() {
            return Ok(T::default());
        }
        self.body()
    }
}

/// One endpoint.
pub trait Operation: Sized {
    /// The status of a success.
    const STATUS: u16 = 200;

    /// What apply hands to render: usually references into the tenant.
    type Done<'t>;

    /// Reads and checks the request, without the tenant.
    fn parse(input: &Input<'_>) -> NativeResult<Self>;

    /// Acts on the caller's tenant (locked, its clock caught up).
    fn apply(self, tenant: &mut Tenant) -> NativeResult<Self::Done<'_>>;

    /// The answer's view; `env` is the caller's environment id.
    fn render<'a>(done: &'a Self::Done<'_>, env: &'a str) -> impl Serialize + 'a;
}

/// Everything about one authenticated request that its operation's apply and render may use.
#[derive(Debug)]
pub struct Call<'a> {
    /// All tenants.
    pub store: &'a Store,
    /// The caller's tenant key.
    pub key: &'a str,
    /// The environment that key is bound to.
    pub env: &'a str,
    /// Whether the request only reads (a `GET`): it never makes the caller's world.
    pub read_only: bool,
}

/// What the route table holds for each route: the pipeline of one operation, whose first phase
/// (parse) runs with no world and returns the rest, or the answer to a refused request.
pub type Handler = fn(&Input<'_>) -> Result<Applied, Reply>;

/// What is left of a parsed request: apply and render in the caller's world.
pub type Applied = Box<dyn FnOnce(&Call<'_>) -> Reply + Send>;

/// Runs operation `T`: parse now, then (in what it returns) apply and render under the tenant's
/// lock; the first error is the answer. A `GET` on a key with no world sees an empty one that is
/// not kept; any other request makes the world, unless the emulator holds as many as it may.
pub fn op<T: Operation + Send + 'static>(input: &Input<'_>) -> Result<Applied, Reply> {
    let parsed = T::parse(input).map_err(|e| e.reply())?;
    Ok(Box::new(move |call: &Call<'_>| apply(parsed, call)))
}

/// Applies and renders a parsed operation in the caller's world.
fn apply<T: Operation>(parsed: T, call: &Call<'_>) -> Reply {
    let run = |tenant: &mut Tenant| match parsed.apply(tenant) {
        Ok(done) => view::reply(T::STATUS, &T::render(&done, call.env)),
        Err(e) => e.reply(),
    };
    if call.read_only {
        return call.store.read_tenant(call.key, run);
    }
    call.store
        .try_with_tenant(call.key, run)
        .unwrap_or_else(|limit| NativeError::too_many_worlds(limit).reply())
}

/// Runs `make` with the key the next object will get. Creating a plan or a subscription checks its
/// inline grant rules against that key; a refusal gives the key back, so that a refused request
/// leaves the world exactly as it was (the ids of later objects, and whether the world counts as
/// untouched for the tenant clock, included).
pub fn with_next_key<T>(
    tenant: &mut Tenant,
    make: impl FnOnce(&mut Tenant, Key) -> NativeResult<T>,
) -> NativeResult<T> {
    tenant.try_with_next_key(make)
}
