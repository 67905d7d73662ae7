//! Stripe's cursor pagination over ordered indexes.
//!
//! Keys are time-ordered, so "newest first" is a reverse walk of a `BTreeSet`/`BTreeMap` range and a
//! page costs O(log n + limit), however large the collection.

use std::ops::Bound;

use serde_json::{json, Value};

use super::error::{StripeError, StripeResult};
use super::params::{get_int, get_str, in_range};
use crate::form::Params;
use crate::ids::Key;

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// 1..=100.
    pub limit: usize,
    /// Objects older than this one.
    pub starting_after: Option<Key>,
    /// Objects newer than this one.
    pub ending_before: Option<Key>,
}

/// Reads `limit`, `starting_after` and `ending_before`. `cursor` turns a cursor id into a key if it
/// names an existing object of the listed kind; `object` names that kind in the error.
pub fn page(
    params: &Params,
    object: &str,
    cursor: impl Fn(&str) -> Option<Key>,
) -> StripeResult<Page> {
    let limit = match get_int(params, "limit") {
        None => 10,
        Some(n) => in_range(n, 1, 100, "limit")? as usize,
    };
    let sa = get_str(params, "starting_after").filter(|s| !s.is_empty());
    let eb = get_str(params, "ending_before").filter(|s| !s.is_empty());
    if sa.is_some() && eb.is_some() {
        return Err(StripeError::invalid(
            "You may only specify one of these parameters: ending_before, starting_after.",
        ));
    }
    let resolve = |id: &str, param: &str| {
        cursor(id).ok_or_else(|| StripeError::no_such(object, id, param, 400))
    };
    Ok(Page {
        limit,
        starting_after: sa.map(|id| resolve(id, "starting_after")).transpose()?,
        ending_before: eb.map(|id| resolve(id, "ending_before")).transpose()?,
    })
}

/// One page of keys, newest first, from an index that can be walked over a key range, keeping only
/// keys that `keep` accepts. Returns the keys and `has_more`.
pub fn paginate<I>(
    range: impl Fn(Bound<Key>, Bound<Key>) -> I,
    page: &Page,
    keep: impl Fn(Key) -> bool,
) -> (Vec<Key>, bool)
where
    I: DoubleEndedIterator<Item = Key>,
{
    let want = page.limit + 1;
    // Newest first: `ending_before` walks up from its cursor and turns the page around at the end;
    // otherwise the walk goes down, from `starting_after` or from the newest key.
    let (mut keys, turn): (Vec<Key>, bool) = match page.ending_before {
        Some(eb) => (
            range(Bound::Excluded(eb), Bound::Unbounded)
                .filter(|k| keep(*k))
                .take(want)
                .collect(),
            true,
        ),
        None => {
            let below = page
                .starting_after
                .map_or(Bound::Unbounded, Bound::Excluded);
            let keys = range(Bound::Unbounded, below)
                .rev()
                .filter(|k| keep(*k))
                .take(want)
                .collect();
            (keys, false)
        }
    };
    let more = keys.len() > page.limit;
    keys.truncate(page.limit);
    if turn {
        keys.reverse();
    }
    (keys, more)
}

/// `{object: "list", data, has_more, url}`, serialized without an intermediate `Value`.
#[derive(Debug, serde::Serialize)]
pub struct ListJson<'a, T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
    url: &'a str,
}

impl<'a, T: serde::Serialize> ListJson<'a, T> {
    /// A page of `data`.
    pub fn new(data: Vec<T>, has_more: bool, url: &'a str) -> Self {
        ListJson {
            object: "list",
            data,
            has_more,
            url,
        }
    }
}

/// `{object: "list", data, has_more, url}`.
pub fn render(data: Vec<Value>, has_more: bool, url: &str) -> Value {
    json!({
        "object": "list",
        "data": data,
        "has_more": has_more,
        "url": url,
    })
}
