//! The native facade: a JSON API modelled on Flexprice's credit grants, over the same model as the
//! Stripe facade.
//!
//! [`handle`] matches the route first (an unknown route is gin's plain-text 404, whatever the
//! credentials), then authenticates (`x-api-key`), locks the tenant, posts whatever is due on its
//! clock, and calls one resource module. Each module parses its JSON or query into typed values in
//! Flexprice's validation order, calls the model, and renders Go's JSON (decimals as strings, RFC 3339
//! times, `omitempty` fields left out, map keys sorted).

pub mod auth;
pub mod credit_grants;
pub mod customers;
pub mod error;
pub mod ids;
pub mod json;
pub mod list;
pub mod plans;
pub mod subscriptions;
pub mod wallets;

use hyper::Method;
use serde_json::Value;

use crate::app::App;
use crate::http::{Reply, Request};
use crate::model::Tenant;
use crate::time::Nanos;
use error::NativeResult;
use json::{parse_body, ts, Body, Obj};
use list::Query;

/// Routes only the native API has; requests to them are native even without `x-api-key`.
pub fn owns_path(path: &str) -> bool {
    const ROOTS: [&str; 5] = [
        "/v1/creditgrants",
        "/v1/plans",
        "/v1/subscriptions",
        "/v1/wallets",
        "/v1/addons",
    ];
    let rooted = ROOTS.iter().any(|r| {
        path == *r
            || path
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    // Customer sub-resources that exist only natively.
    let customer_native = path.strip_prefix("/v1/customers/").is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('/').collect();
        matches!(parts.as_slice(), [_, "wallets"] | [_, "grants", "upcoming"])
    });
    rooted || customer_native
}

/// Everything a resource handler needs.
pub struct Ctx<'a> {
    /// The caller's world, locked, with its clock caught up.
    pub tenant: &'a mut Tenant,
    /// The environment the caller's key is bound to.
    pub env: String,
    /// The query string.
    pub query: Query,
    /// The request.
    pub req: &'a Request,
    /// Deepest accepted JSON nesting.
    pub max_json_depth: usize,
}

impl Ctx<'_> {
    /// The JSON body, bound as gin's `ShouldBindJSON` does (an empty body fails).
    pub fn body(&self) -> NativeResult<Body> {
        parse_body(&self.req.body, self.max_json_depth)
    }

    /// The JSON body if one was sent (upstream reads it only when `Content-Length > 0`).
    pub fn optional_body(&self) -> NativeResult<Body> {
        if self.req.body.is_empty() {
            return Ok(Body::default());
        }
        self.body()
    }
}

/// Runs `make` with the key the next object will get. Creating a plan or a subscription checks its
/// inline grant rules against that key; a refusal gives the key back, so that a refused request
/// leaves the world exactly as it was (the ids of later objects, and whether the world counts as
/// untouched for the tenant clock, included).
pub fn with_next_key<T>(
    tenant: &mut Tenant,
    make: impl FnOnce(&mut Tenant, crate::ids::Key) -> NativeResult<T>,
) -> NativeResult<T> {
    let saved = (tenant.ids.clone(), tenant.issued);
    let key = tenant.next_key();
    let made = make(tenant, key);
    if made.is_err() {
        (tenant.ids, tenant.issued) = saved;
    }
    made
}

/// Adds the fields every stored object ends with (Go's embedded `BaseModel`).
pub fn base(o: Obj, status: &str, created: Nanos, updated: Nanos) -> Obj {
    o.put("tenant_id", ids::TENANT_ID)
        .put("status", status)
        .put("created_at", ts(created))
        .put("updated_at", ts(updated))
        .put("created_by", ids::TENANT_ID)
        .put("updated_by", ids::TENANT_ID)
}

/// A matched route, with its path id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    CreateGrant,
    ListGrants,
    GetGrant(&'a str),
    UpdateGrant(&'a str),
    DeleteGrant(&'a str),
    PlanGrants(&'a str),
    AddonGrants(&'a str),
    SubscriptionUpcoming(&'a str),
    CustomerUpcoming(&'a str),
    CreateCustomer,
    ListCustomers,
    GetCustomer(&'a str),
    CustomerWallets(&'a str),
    CreatePlan,
    ListPlans,
    GetPlan(&'a str),
    DeletePlan(&'a str),
    CreateSubscription,
    ListSubscriptions,
    GetSubscription(&'a str),
    CancelSubscription(&'a str),
    GetWallet(&'a str),
    WalletBalance(&'a str),
    WalletTransactions(&'a str),
}

fn route<'a>(method: &Method, segments: &[&'a str]) -> Option<Route<'a>> {
    use Method as M;
    use Route as R;
    let id_ok = |id: &str| !id.is_empty();
    let r = match (method, segments) {
        (&M::POST, ["v1", "creditgrants"]) => R::CreateGrant,
        (&M::GET, ["v1", "creditgrants"]) => R::ListGrants,
        (&M::GET, ["v1", "creditgrants", id]) if id_ok(id) => R::GetGrant(id),
        (&M::PUT, ["v1", "creditgrants", id]) if id_ok(id) => R::UpdateGrant(id),
        (&M::DELETE, ["v1", "creditgrants", id]) if id_ok(id) => R::DeleteGrant(id),
        (&M::GET, ["v1", "plans", id, "creditgrants"]) if id_ok(id) => R::PlanGrants(id),
        (&M::GET, ["v1", "addons", id, "creditgrants"]) if id_ok(id) => R::AddonGrants(id),
        (&M::GET, ["v1", "subscriptions", id, "grants", "upcoming"]) if id_ok(id) => {
            R::SubscriptionUpcoming(id)
        }
        (&M::GET, ["v1", "customers", id, "grants", "upcoming"]) if id_ok(id) => {
            R::CustomerUpcoming(id)
        }
        (&M::POST, ["v1", "customers"]) => R::CreateCustomer,
        (&M::GET, ["v1", "customers"]) => R::ListCustomers,
        (&M::GET, ["v1", "customers", id]) if id_ok(id) => R::GetCustomer(id),
        (&M::GET, ["v1", "customers", id, "wallets"]) if id_ok(id) => R::CustomerWallets(id),
        (&M::POST, ["v1", "plans"]) => R::CreatePlan,
        (&M::GET, ["v1", "plans"]) => R::ListPlans,
        (&M::GET, ["v1", "plans", id]) if id_ok(id) => R::GetPlan(id),
        (&M::DELETE, ["v1", "plans", id]) if id_ok(id) => R::DeletePlan(id),
        (&M::POST, ["v1", "subscriptions"]) => R::CreateSubscription,
        (&M::GET, ["v1", "subscriptions"]) => R::ListSubscriptions,
        (&M::GET, ["v1", "subscriptions", id]) if id_ok(id) => R::GetSubscription(id),
        (&M::POST, ["v1", "subscriptions", id, "cancel"]) if id_ok(id) => R::CancelSubscription(id),
        (&M::GET, ["v1", "wallets", id]) if id_ok(id) => R::GetWallet(id),
        (&M::GET, ["v1", "wallets", id, "balance", "real-time"]) if id_ok(id) => {
            R::WalletBalance(id)
        }
        (&M::GET, ["v1", "wallets", id, "transactions"]) if id_ok(id) => R::WalletTransactions(id),
        _ => return None,
    };
    Some(r)
}

/// Serves one native request.
pub fn handle(app: &App, req: &Request) -> Reply {
    // gin routes on the decoded path (`URL.Path`): `%2F` is a slash there, so an id holding one
    // matches no route, and an id's other escapes reach the handler decoded.
    let path = percent_encoding::percent_decode_str(&req.path).decode_utf8_lossy();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Some(route) = route(&req.method, &segments) else {
        return error::route_not_found();
    };
    let key = match auth::authenticate(req) {
        Ok(k) => k,
        Err(reply) => return reply,
    };
    let query = match Query::parse(req.query.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.reply(),
    };
    let cell = app.store.tenant(&key);
    let mut tenant = cell.state.lock();
    tenant.catch_up();
    let mut ctx = Ctx {
        tenant: &mut tenant,
        env: ids::environment_of(&key),
        query,
        req,
        max_json_depth: app.config.max_json_depth,
    };
    match dispatch(&mut ctx, route) {
        Ok((status, value)) => Reply::json_compact(status, &value),
        Err(e) => e.reply(),
    }
}

fn dispatch(ctx: &mut Ctx, route: Route) -> NativeResult<(u16, Value)> {
    use Route as R;
    let ok = |v: Value| Ok((200, v));
    match route {
        R::CreateGrant => credit_grants::create(ctx).map(|v| (201, v)),
        R::ListGrants => ok(credit_grants::list(ctx)?),
        R::GetGrant(id) => ok(credit_grants::retrieve(ctx, id)?),
        R::UpdateGrant(id) => ok(credit_grants::update(ctx, id)?),
        R::DeleteGrant(id) => ok(credit_grants::delete(ctx, id)?),
        R::PlanGrants(id) => ok(credit_grants::of_plan(ctx, id)?),
        R::AddonGrants(id) => ok(credit_grants::of_addon(ctx, id)?),
        R::SubscriptionUpcoming(id) => ok(credit_grants::upcoming_of_subscription(ctx, id)?),
        R::CustomerUpcoming(id) => ok(credit_grants::upcoming_of_customer(ctx, id)?),
        R::CreateCustomer => customers::create(ctx).map(|v| (201, v)),
        R::ListCustomers => ok(customers::list(ctx)?),
        R::GetCustomer(id) => ok(customers::retrieve(ctx, id)?),
        R::CustomerWallets(id) => ok(wallets::of_customer(ctx, id)?),
        R::CreatePlan => plans::create(ctx).map(|v| (201, v)),
        R::ListPlans => ok(plans::list(ctx)?),
        R::GetPlan(id) => ok(plans::retrieve(ctx, id)?),
        R::DeletePlan(id) => ok(plans::delete(ctx, id)?),
        R::CreateSubscription => subscriptions::create(ctx).map(|v| (201, v)),
        R::ListSubscriptions => ok(subscriptions::list(ctx)?),
        R::GetSubscription(id) => ok(subscriptions::retrieve(ctx, id)?),
        R::CancelSubscription(id) => ok(subscriptions::cancel(ctx, id)?),
        R::GetWallet(id) => ok(wallets::retrieve(ctx, id)?),
        R::WalletBalance(id) => ok(wallets::balance(ctx, id)?),
        R::WalletTransactions(id) => ok(wallets::transactions(ctx, id)?),
    }
}
