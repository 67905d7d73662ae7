//! `/v1/test_helpers/test_clocks`: clocks that move only when advanced.

use serde::Serialize;

use super::list::{self, ListJson, PageRequest};
use super::op::{pretty, Body, Deleted, Input, Operation};
use super::{customers, ids};
use crate::ids::Key;
use crate::model::{AttachError, Tenant, TestClock, TestClockError};
use crate::time::{to_secs, Nanos, NANOS_PER_SEC};
use crate::wire::envelope::{shorten, StripeError, StripeResult};
use crate::wire::params::{
    get_int, get_nullable_str, get_str, opt, req, timestamp, validate, Field, Spec, EXPAND,
    LIST_FIELDS,
};

const CREATE: &[Field] = &[
    opt("customer", Spec::Str(5000)),
    EXPAND,
    req("frozen_time", Spec::Int),
    opt("name", Spec::Str(300)),
];
const ADVANCE: &[Field] = &[EXPAND, req("frozen_time", Spec::Int)];
const ONLY_EXPAND: &[Field] = &[EXPAND];

/// How far one advance may go when the clock has no subscriptions; with some, two intervals of the
/// shortest ([`Tenant::clock_advance_limit`]) when that is nearer.
const MAX_ADVANCE: i64 = 2 * 366 * 24 * 3600 * NANOS_PER_SEC;

/// A test clock as Stripe shows it.
#[derive(Serialize)]
pub struct TestClockView<'a> {
    id: String,
    object: &'static str,
    created: i64,
    deletes_after: i64,
    frozen_time: i64,
    livemode: bool,
    name: Option<&'a str>,
    status: &'static str,
    status_details: StatusDetails,
}

/// `status_details`: `{}` when ready, `{"advancing": {"target_frozen_time": …}}` while advancing.
#[derive(Serialize)]
struct StatusDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    advancing: Option<Advancing>,
}

#[derive(Serialize)]
struct Advancing {
    target_frozen_time: i64,
}

impl<'a> TestClockView<'a> {
    /// The view of `c`.
    pub fn of(c: &'a TestClock) -> Self {
        TestClockView {
            id: ids::render(ids::TEST_CLOCK, c.key),
            object: "test_helpers.test_clock",
            created: to_secs(c.created),
            deletes_after: to_secs(c.deletes_after),
            frozen_time: to_secs(c.frozen_time),
            livemode: false,
            name: c.name.as_deref(),
            status: if c.advancing_to.is_some() {
                "advancing"
            } else {
                "ready"
            },
            status_details: StatusDetails {
                advancing: c.advancing_to.map(|to| Advancing {
                    target_frozen_time: to_secs(to),
                }),
            },
        }
    }
}

/// The clock `key` as the answer. Test clocks take `expand[]` but have nothing to expand.
fn respond(t: &Tenant, key: Key) -> Body {
    Body::Json(pretty(
        &TestClockView::of(t.test_clock(key).expect("made or looked up above")),
        384,
    ))
}

fn lookup(tenant: &Tenant, id: &str) -> StripeResult<Key> {
    ids::key_of(id, ids::TEST_CLOCK)
        .filter(|k| tenant.test_clock(*k).is_some())
        .ok_or_else(|| StripeError::no_such("test clock", id, "test_clock", 404))
}

/// `POST /v1/test_helpers/test_clocks`; with `customer`, an existing customer moves onto the new
/// clock (see [`Tenant::create_test_clock_with`] for what moves and when that is refused).
pub struct Create {
    frozen_time: Nanos,
    name: Option<String>,
    customer: Option<String>,
}

impl Operation for Create {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, CREATE, "")?;
        Ok(Create {
            frozen_time: timestamp(get_int(p, "frozen_time").unwrap_or(0), "frozen_time")?,
            name: get_nullable_str(p, "name").flatten(),
            customer: get_str(p, "customer")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        match self.customer {
            None => Ok(t.create_test_clock(self.frozen_time, self.name)),
            Some(id) => {
                // Deleted customers are missing here, as in every other parameter that names one.
                let customer = customers::lookup_param(t, &id, "customer")?;
                t.create_test_clock_with(self.frozen_time, self.name, customer)
                    .map_err(|e| attach_error(e, &id))
            }
        }
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key)
    }
}

/// The refusal of an attach, worded as Stripe words its state conflicts: what is wrong and which
/// parameter caused it. Nothing has changed when one is returned.
fn attach_error(e: AttachError, id: &str) -> StripeError {
    let id = shorten(id);
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
pub struct Retrieve {
    id: String,
}

impl Operation for Retrieve {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, ONLY_EXPAND, "")?;
        Ok(Retrieve {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        lookup(t, &self.id)
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key)
    }
}

/// `DELETE /v1/test_helpers/test_clocks/{id}`: the clock and its customers go.
pub struct Delete {
    id: String,
}

impl Operation for Delete {
    type Output = String;

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, &[], "")?;
        Ok(Delete {
            id: input.id().to_string(),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<String> {
        let key = lookup(t, &self.id)?;
        t.delete_test_clock(key)
            .map_err(|_| StripeError::no_such("test clock", &self.id, "test_clock", 404))?;
        Ok(self.id)
    }

    fn render(id: String, _: &Tenant) -> Body {
        Body::Json(pretty(&Deleted::new(&id, "test_helpers.test_clock"), 128))
    }
}

/// `POST /v1/test_helpers/test_clocks/{id}/advance`: synchronous; every entry due up to the new time
/// is posted, in time order, before the answer (status `ready`).
pub struct Advance {
    id: String,
    /// Checked once the clock is found.
    to: StripeResult<Nanos>,
}

impl Operation for Advance {
    type Output = Key;

    fn parse(input: &Input) -> StripeResult<Self> {
        let p = input.params;
        validate(p, ADVANCE, "")?;
        Ok(Advance {
            id: input.id().to_string(),
            to: timestamp(get_int(p, "frozen_time").unwrap_or(0), "frozen_time"),
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Key> {
        let key = lookup(t, &self.id)?;
        let to = self.to?;
        let current = t.test_clock(key).expect("looked up above").frozen_time;
        if let Some(limit) = t.clock_advance_limit(key).filter(|&l| to > l) {
            return Err(StripeError::invalid(format!(
                "Cannot advance the test clock more than two intervals of its shortest subscription into the future from its current frozen_time: at most to {}.",
                to_secs(limit)
            ))
            .param("frozen_time"));
        }
        if to > current.saturating_add(MAX_ADVANCE) {
            return Err(StripeError::invalid(
                "Cannot advance the test clock more than two years into the future from its current frozen_time.",
            )
            .param("frozen_time"));
        }
        match t.advance_test_clock(key, to) {
            Ok(()) => Ok(key),
            Err(TestClockError::NotForward { frozen_time }) => Err(StripeError::invalid(format!(
                "The frozen_time must be after the test clock's current frozen_time ({}).",
                to_secs(frozen_time)
            ))
            .param("frozen_time")),
            Err(TestClockError::NotFound) => Err(StripeError::no_such(
                "test clock",
                &self.id,
                "test_clock",
                404,
            )),
        }
    }

    fn render(key: Key, t: &Tenant) -> Body {
        respond(t, key)
    }
}

/// `GET /v1/test_helpers/test_clocks`.
pub struct List {
    page: PageRequest,
}

impl Operation for List {
    type Output = (Vec<Key>, bool);

    fn parse(input: &Input) -> StripeResult<Self> {
        validate(input.params, &LIST_FIELDS, "")?;
        Ok(List {
            page: PageRequest::read(input.params)?,
        })
    }

    fn apply(self, t: &mut Tenant) -> StripeResult<Self::Output> {
        let t = &*t;
        let page = self.page.resolve("test clock", |id| {
            ids::key_of(id, ids::TEST_CLOCK).filter(|k| t.test_clock(*k).is_some())
        })?;
        Ok(list::paginate(
            |a, b| t.test_clocks_in((a, b)).map(|c| c.key),
            &page,
            |_| true,
        ))
    }

    fn render((keys, more): Self::Output, t: &Tenant) -> Body {
        let data: Vec<TestClockView> = keys
            .iter()
            .filter_map(|k| t.test_clock(*k))
            .map(TestClockView::of)
            .collect();
        Body::Json(pretty(
            &ListJson::new(data, more, "/v1/test_helpers/test_clocks"),
            384 * (keys.len() + 1),
        ))
    }
}
