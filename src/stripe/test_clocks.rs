//! `/v1/test_helpers/test_clocks`: clocks that move only when advanced.

use serde_json::{json, Value};

use super::error::{StripeError, StripeResult};
use super::params::{
    get_int, get_nullable_str, get_str, opt, req, timestamp, validate, Field, Spec, EXPAND,
    LIST_FIELDS,
};
use super::{ids, list, Ctx};
use crate::ids::Key;
use crate::model::{AttachError, Tenant, TestClock, TestClockError};
use crate::time::{to_secs, NANOS_PER_SEC};

const CREATE: &[Field] = &[
    opt("customer", Spec::Str(5000)),
    EXPAND,
    req("frozen_time", Spec::Int),
    opt("name", Spec::Str(300)),
];
const ADVANCE: &[Field] = &[EXPAND, req("frozen_time", Spec::Int)];
const ONLY_EXPAND: &[Field] = &[EXPAND];

/// How far one advance may go when the clock has no subscriptions (the emulator never has any).
const MAX_ADVANCE: i64 = 2 * 366 * 24 * 3600 * NANOS_PER_SEC;

/// Renders a test clock.
pub fn render(c: &TestClock) -> Value {
    json!({
        "id": ids::render(ids::TEST_CLOCK, c.key),
        "object": "test_helpers.test_clock",
        "created": to_secs(c.created),
        "deletes_after": to_secs(c.deletes_after),
        "frozen_time": to_secs(c.frozen_time),
        "livemode": false,
        "name": c.name,
        "status": "ready",
        "status_details": {},
    })
}

fn lookup(tenant: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::TEST_CLOCK)
        .filter(|k| tenant.test_clock(*k).is_some())
        .ok_or_else(|| StripeError::no_such("test clock", id, "test_clock", 404))
}

/// `POST /v1/test_helpers/test_clocks`; with `customer`, an existing customer moves onto the new
/// clock (see [`Tenant::create_test_clock_with`] for what moves and when that is refused).
pub fn create(ctx: &mut Ctx) -> StripeResult<Value> {
    validate(ctx.params, CREATE, "")?;
    let at = timestamp(
        get_int(ctx.params, "frozen_time").unwrap_or(0),
        "frozen_time",
    )?;
    let name = get_nullable_str(ctx.params, "name").flatten();
    let key = match get_str(ctx.params, "customer").filter(|s| !s.is_empty()) {
        None => ctx.tenant.create_test_clock(at, name),
        Some(id) => {
            // Deleted customers are missing here, as in every other parameter that names one.
            let customer = super::customers::lookup_param(ctx.tenant, id, "customer")?;
            ctx.tenant
                .create_test_clock_with(at, name, customer)
                .map_err(|e| attach_error(e, id))?
        }
    };
    Ok(render(ctx.tenant.test_clock(key).expect("made above")))
}

/// The refusal of an attach, worded as Stripe words its state conflicts: what is wrong and which
/// parameter caused it. Nothing has changed when one is returned.
fn attach_error(e: AttachError, id: &str) -> StripeError {
    let id = super::error::shorten(id);
    match e {
        AttachError::NoSuchCustomer => StripeError::no_such("customer", &id, "customer", 400),
        AttachError::OnClock(clock) => StripeError::invalid(format!(
            "The customer {id} is already attached to test clock {}. A customer can belong to only one test clock, and cannot be moved to another.",
            ids::render(ids::TEST_CLOCK, clock)
        ))
        .param("customer"),
        AttachError::HasSubscriptions => StripeError::invalid(format!(
            "The customer {id} has subscriptions. Only a customer with no subscriptions can be attached to a test clock."
        ))
        .param("customer"),
        AttachError::BeforeHistory { last } => StripeError::invalid(format!(
            "The frozen_time must be at or after {}, the latest credit activity of customer {id}: its credit grants, credit balance transactions and invoices cannot be moved to a time before they happened.",
            to_secs(last)
        ))
        .param("frozen_time"),
    }
}

/// `GET /v1/test_helpers/test_clocks/{id}`.
pub fn retrieve(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, ONLY_EXPAND, "")?;
    let key = lookup(ctx.tenant, id)?;
    Ok(render(ctx.tenant.test_clock(key).expect("looked up above")))
}

/// `DELETE /v1/test_helpers/test_clocks/{id}`: the clock and its customers go.
pub fn delete(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, &[], "")?;
    let key = lookup(ctx.tenant, id)?;
    ctx.tenant
        .delete_test_clock(key)
        .map_err(|_| StripeError::no_such("test clock", id, "test_clock", 404))?;
    Ok(json!({"id": id, "object": "test_helpers.test_clock", "deleted": true}))
}

/// `POST /v1/test_helpers/test_clocks/{id}/advance`: synchronous; every entry due up to the new time
/// is posted, in time order, before the answer (status `ready`).
pub fn advance(ctx: &mut Ctx, id: &str) -> StripeResult<Value> {
    validate(ctx.params, ADVANCE, "")?;
    let key = lookup(ctx.tenant, id)?;
    let to = timestamp(
        get_int(ctx.params, "frozen_time").unwrap_or(0),
        "frozen_time",
    )?;
    let current = ctx
        .tenant
        .test_clock(key)
        .expect("looked up above")
        .frozen_time;
    if to > current.saturating_add(MAX_ADVANCE) {
        return Err(StripeError::invalid(
            "Cannot advance the test clock more than two years into the future from its current frozen_time.",
        )
        .param("frozen_time"));
    }
    match ctx.tenant.advance_test_clock(key, to) {
        Ok(()) => Ok(render(ctx.tenant.test_clock(key).expect("looked up above"))),
        Err(TestClockError::NotForward { frozen_time }) => Err(StripeError::invalid(format!(
            "The frozen_time must be after the test clock's current frozen_time ({}).",
            to_secs(frozen_time)
        ))
        .param("frozen_time")),
        Err(TestClockError::NotFound) => {
            Err(StripeError::no_such("test clock", id, "test_clock", 404))
        }
    }
}

/// `GET /v1/test_helpers/test_clocks`.
pub fn list(ctx: &mut Ctx) -> StripeResult<Value> {
    validate(ctx.params, &LIST_FIELDS, "")?;
    let t = &*ctx.tenant;
    let page = list::page(ctx.params, "test clock", |id| {
        ids::key_of(id, ids::TEST_CLOCK).filter(|k| t.test_clock(*k).is_some())
    })?;
    let (keys, more) = list::paginate(
        |a, b| t.test_clocks_in((a, b)).map(|c| c.key),
        &page,
        |_| true,
    );
    let data = keys
        .iter()
        .filter_map(|k| t.test_clock(*k))
        .map(render)
        .collect();
    Ok(list::render(data, more, "/v1/test_helpers/test_clocks"))
}
