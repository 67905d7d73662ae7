//! The shape of every Stripe endpoint: an [`Operation`] in three phases.
//!
//! 1. **parse**, with no lock: read the request's path ids and parameters (already decoded, as the
//!    request's API version knows them) into the operation's own typed value, checking everything
//!    that needs no tenant, in Stripe's order. A check that Stripe reports only after a lookup (a
//!    timestamp after the customer is found, say) is kept as a `StripeResult` field and reported
//!    by `apply` at its place.
//! 2. **apply**, under the tenant's lock: look up, change the model, and return what the answer
//!    shows (keys, a page of keys), or an error.
//! 3. **render**, still under the lock: typed `Serialize` views of the model, serialized straight to
//!    bytes; with `expand[]`, the view becomes a tree whose ids the pipeline replaces with the
//!    objects they name.
//!
//! A resource file holds its operations (`pub struct Create { … }` with `impl Operation for
//! Create`); the route table (`super::routes`) names them.

use serde::Serialize;
use serde_json::Value;

use super::expand;
use crate::form::Params;
use crate::model::{Store, Tenant};
use crate::time::Nanos;
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::get_expand;
use crate::wire::versions::Version;

/// What an operation may read of its request before the tenant is locked.
#[derive(Debug, Clone, Copy)]
pub struct Input<'r> {
    /// Query string and body, decoded together.
    pub params: &'r Params,
    /// The API version the request runs under: which parameters exist and which fields are shown.
    pub version: Version,
    /// The path's `{…}` segments, in order (unused places are empty).
    captures: Captures<'r>,
    /// On the meter event stream: when the session whose token authenticated the request
    /// expires, on its world's clock.
    session_expires_at: Option<Nanos>,
}

/// How many `{…}` segments one route pattern may capture.
pub const MAX_CAPTURES: usize = 2;

/// The `{…}` segments a route pattern captured.
pub type Captures<'r> = [&'r str; MAX_CAPTURES];

impl<'r> Input<'r> {
    /// The input of a request with `params`, under `version`, with the path's captured segments.
    pub fn new(params: &'r Params, version: Version, captures: Captures<'r>) -> Self {
        Input {
            params,
            version,
            captures,
            session_expires_at: None,
        }
    }

    /// The same input, for a request authenticated by a meter event session that expires at
    /// `expires_at`.
    pub fn with_session(mut self, expires_at: Nanos) -> Self {
        self.session_expires_at = Some(expires_at);
        self
    }

    /// When the meter event session that authenticated the request expires, if one did.
    pub fn session_expires_at(&self) -> Option<Nanos> {
        self.session_expires_at
    }

    /// The same input with other parameters (one element of a list, read as a request of its
    /// own).
    pub fn with_params(mut self, params: &'r Params) -> Self {
        self.params = params;
        self
    }

    /// The path's first `{…}` segment (the object's id in `/v1/customers/{id}`), as sent.
    pub fn id(&self) -> &'r str {
        self.captures[0]
    }

    /// The path's `i`-th `{…}` segment, or `""`.
    pub fn capture(&self, i: usize) -> &'r str {
        self.captures.get(i).copied().unwrap_or("")
    }
}

/// One endpoint.
pub trait Operation: Sized {
    /// What `apply` hands to `render`.
    type Output;

    /// Reads and checks the request without the tenant.
    fn parse(input: &Input) -> StripeResult<Self>;

    /// Runs against the caller's world, locked, with its clock caught up.
    fn apply(self, tenant: &mut Tenant) -> StripeResult<Self::Output>;

    /// The answer's body, from what `apply` returned and the world it changed.
    fn render(output: Self::Output, tenant: &Tenant) -> Body;
}

/// The world a request acts in, reached only through [`World::with`], which locks it the one way
/// every request does ([`Store::try_with_tenant`], or [`Store::read_tenant`] for a request that
/// only reads).
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    store: &'a Store,
    name: &'a str,
    panic: bool,
    /// Whether the request only reads (a `GET`): it never makes the world.
    read_only: bool,
    /// The request's id and idempotency key, which the events it causes name.
    cause: Option<(&'a str, Option<&'a str>)>,
}

impl<'a> World<'a> {
    /// The world named `name` in `store`. With `panic`, the request panics once the world is
    /// locked (the server's `X-Emulator-Panic` switch, off by default, which proves that a panic
    /// there costs one request and nothing more).
    pub fn new(store: &'a Store, name: &'a str, panic: bool) -> Self {
        World {
            store,
            name,
            panic,
            read_only: false,
            cause: None,
        }
    }

    /// The same world, for the request `request` sent with `idempotency_key`: the changes it
    /// makes name them.
    pub fn caused_by(mut self, request: &'a str, idempotency_key: Option<&'a str>) -> Self {
        self.cause = Some((request, idempotency_key));
        self
    }

    /// The same world, for a request that only reads when `read_only`: if the world does not
    /// exist, the request sees an empty one that is not kept, rather than making it.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Runs `f` on the world, locked, with everything due on its clock posted first (changes
    /// that time made, caused by no request), then with the request as the cause of what `f`
    /// changes. A request that writes makes the world if it is new, unless the emulator already
    /// holds as many worlds as it may: then the answer is that refusal.
    pub fn with<R>(&self, f: impl FnOnce(&mut Tenant) -> StripeResult<R>) -> StripeResult<R> {
        let run = |tenant: &mut Tenant| {
            if self.panic {
                panic!("panic requested with X-Emulator-Panic");
            }
            if let Some((request, key)) = self.cause {
                tenant.set_cause(request, key);
            }
            f(tenant)
        };
        if self.read_only {
            return self.store.read_tenant(self.name, run);
        }
        self.store
            .try_with_tenant(self.name, run)
            .map_err(StripeError::from)?
    }
}

/// An answer's body as `render` leaves it.
#[derive(Debug)]
pub enum Body {
    /// Pretty JSON, ready to send.
    Json(Vec<u8>),
    /// A tree in which `expand[]` still has to replace ids with the objects they name.
    Expand {
        /// The answer, as a tree.
        value: Value,
        /// Which ids to expand, and as which version shows the objects.
        expand: Expand,
    },
}

impl Body {
    /// `view` as the answer: serialized straight to a buffer of `capacity` bytes to start with, or,
    /// when `expand` asks for something, as a tree to expand.
    pub fn of(view: &impl Serialize, expand: Expand, capacity: usize) -> Body {
        if expand.paths.is_empty() {
            return Body::Json(pretty(view, capacity));
        }
        Body::Expand {
            value: serde_json::to_value(view).unwrap_or(Value::Null),
            expand,
        }
    }
}

/// A request's `expand[]`: the paths, already checked, and the version whose view of the expanded
/// objects applies.
#[derive(Debug, Clone, Default)]
pub struct Expand {
    /// The paths (`customer`, `data.test_clock`, …).
    pub paths: Vec<String>,
    /// The version the objects are shown as.
    pub version: Version,
}

impl Expand {
    /// Reads `expand[]` and checks each path against `allowed`, or one of them followed by a path
    /// within the object it names (Stripe's `This property cannot be expanded`, and its limit of
    /// four levels). Expanded objects are shown as `version` shows them.
    pub fn read(params: &Params, allowed: &[&str], version: Version) -> StripeResult<Expand> {
        let paths = get_expand(params);
        expand::check(&paths, allowed, &expand::within)?;
        Ok(Expand { paths, version })
    }

    /// Whether `expand[]` asks for `path`.
    pub fn wants(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }
}

/// Serializes `value` as Stripe's pretty JSON into a buffer of `capacity` bytes to start with.
pub fn pretty(value: &impl Serialize, capacity: usize) -> Vec<u8> {
    crate::pretty::to_vec(value, capacity)
}

/// A field Stripe always shows as `null` here (`"discount": null`).
pub type Null = Option<()>;

/// `null`, for [`Null`] fields.
pub const NULL: Null = None;

/// `{}`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EmptyObject {}

/// `[]`.
pub const EMPTY_LIST: [(); 0] = [];

/// `{"id": …, "object": …, "deleted": true}`: what a delete answers, and what a deleted object
/// reads as.
#[derive(Debug, Serialize)]
pub struct Deleted<'a> {
    /// The id, as the request spelled it.
    pub id: &'a str,
    /// The object's type.
    pub object: &'static str,
    /// Always `true`.
    pub deleted: bool,
}

impl<'a> Deleted<'a> {
    /// The stub of the `object` named `id`.
    pub fn new(id: &'a str, object: &'static str) -> Self {
        Deleted {
            id,
            object,
            deleted: true,
        }
    }
}
