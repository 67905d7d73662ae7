//! `GET /_emulator/requests`: the caller's world's recent requests, newest first (see
//! [`crate::request_log`]).

use serde::Serialize;

use super::{caller, params, Caller, Operation};
use crate::app::App;
use crate::http::Request;
use crate::request_log::{Cursor, Entry};
use crate::wire::envelope::{StripeError, StripeResult};
use crate::wire::params::{get_int, get_str, in_range, opt, validate, Field, Spec};

const LIST: &[Field] = &[
    opt("limit", Spec::Int),
    opt("starting_after", Spec::Str(5000)),
    opt("ending_before", Spec::Str(5000)),
];

/// The most entries one page may hold.
const MAX_LIMIT: i64 = 100;

/// `GET /_emulator/requests`: `limit` (1 to 100, default 10), and Stripe's cursors on request ids:
/// `starting_after` (older than that request) or `ending_before` (newer than it).
pub(super) struct ListRequests {
    caller: Caller,
    limit: usize,
    start: Start,
}

/// Where the page starts, as sent.
enum Start {
    Newest,
    After(String),
    Before(String),
}

/// `{object: "list", url, has_more, data}`, as Stripe's lists.
#[derive(Serialize)]
pub(super) struct RequestsView {
    object: &'static str,
    url: &'static str,
    has_more: bool,
    data: Vec<Entry>,
}

impl Operation for ListRequests {
    type View = RequestsView;

    fn parse(app: &App, req: &Request) -> StripeResult<Self> {
        let caller = caller(req)?;
        let params = params(app, req)?;
        validate(&params, LIST, "")?;
        let limit = match get_int(&params, "limit") {
            None => 10,
            Some(n) => in_range(n, 1, MAX_LIMIT, "limit")?,
        };
        let cursor = |name| {
            get_str(&params, name)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let start =
            match (cursor("starting_after"), cursor("ending_before")) {
                (Some(_), Some(_)) => return Err(StripeError::invalid(
                    "You may only specify one of these parameters: ending_before, starting_after.",
                )),
                (Some(id), None) => Start::After(id),
                (None, Some(id)) => Start::Before(id),
                (None, None) => Start::Newest,
            };
        Ok(ListRequests {
            caller,
            limit: usize::try_from(limit).unwrap_or(10),
            start,
        })
    }

    fn apply(self, app: &App) -> StripeResult<RequestsView> {
        let (cursor, param, id) = match &self.start {
            Start::Newest => (Cursor::Newest, "", ""),
            Start::After(id) => (Cursor::StartingAfter(id), "starting_after", id.as_str()),
            Start::Before(id) => (Cursor::EndingBefore(id), "ending_before", id.as_str()),
        };
        // Reading the log never makes a world: an unknown world has an empty log. A cursor must
        // name a request the log still holds.
        let page = app
            .requests
            .page(&self.caller.world, self.limit, cursor)
            .ok_or_else(|| StripeError::no_such("request", id, param, 400))?;
        Ok(RequestsView {
            object: "list",
            url: "/_emulator/requests",
            has_more: page.has_more,
            data: page.data,
        })
    }
}
