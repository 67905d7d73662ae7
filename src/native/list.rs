//! Query strings and Flexprice's offset pagination.
//!
//! Lists answer `{items, pagination: {total, limit, offset}}` where `total` counts every match and,
//! as upstream does, `offset` is the *next* offset (request offset + limit). `limit` defaults to 50;
//! zero or a negative limit means no limit; a negative offset reads from the start.

use serde::Serialize;

use super::error::{NativeError, NativeResult};

/// A decoded query string; repeated keys keep every value (`?plan_ids=a&plan_ids=b`).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `raw`. A query that is not valid form encoding fails like a bad filter.
    pub fn parse(raw: Option<&str>) -> NativeResult<Query> {
        match raw {
            None => Ok(Query::default()),
            Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .map(Query)
                .map_err(|_| invalid_filter()),
        }
    }

    /// The first value of `name` (gin binds the first one into a scalar).
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An integer parameter; an empty value is 0, anything else that is not an integer fails.
    pub fn int(&self, name: &str) -> NativeResult<Option<i64>> {
        match self.first(name) {
            None => Ok(None),
            Some("") => Ok(Some(0)),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| invalid_filter()),
        }
    }
}

/// `Invalid filter parameters`: a query parameter that does not bind.
pub fn invalid_filter() -> NativeError {
    NativeError::validation("Invalid filter parameters")
}

/// The common list parameters.
#[derive(Debug, Clone)]
pub struct Page {
    /// Page size as given (default 50); `<= 0` means no limit.
    pub limit: i64,
    /// Rows to skip as given (default 0).
    pub offset: i64,
    /// Sort column (default `created_at`).
    pub sort: String,
    /// Ascending only for `order=asc`; anything else sorts descending.
    pub ascending: bool,
    /// `status` filter, if given and not empty.
    pub status: Option<String>,
}

impl Page {
    /// Reads `limit`, `offset`, `sort`, `order` and `status`.
    pub fn read(q: &Query) -> NativeResult<Page> {
        Ok(Page {
            limit: q.int("limit")?.unwrap_or(50),
            offset: q.int("offset")?.unwrap_or(0),
            sort: q
                .first("sort")
                .filter(|s| !s.is_empty())
                .unwrap_or("created_at")
                .to_string(),
            ascending: q.first("order") == Some("asc"),
            status: q
                .first("status")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    /// The rows of this page out of all matching rows.
    pub fn slice<T>(&self, rows: Vec<T>) -> Vec<T> {
        let skip = self.offset.max(0) as usize;
        let rows = rows.into_iter().skip(skip);
        if self.limit > 0 {
            rows.take(self.limit as usize).collect()
        } else {
            rows.collect()
        }
    }

    /// How many rows to read from an ordered walk to serve this page (`None`: all of them).
    pub fn needed(&self) -> Option<usize> {
        (self.limit > 0).then(|| self.offset.max(0) as usize + self.limit as usize)
    }

    /// This page of `rows`, already cut to the page, out of `total` matching rows.
    pub fn cut<T>(&self, rows: Vec<T>, total: usize) -> Rows<T> {
        Rows {
            items: self.slice(rows),
            total,
            limit: self.limit,
            offset: self.offset,
        }
    }

    /// This page out of every matching row (`total` counts them all).
    pub fn rows<T>(&self, all: Vec<T>) -> Rows<T> {
        let total = all.len();
        self.cut(all, total)
    }
}

/// The rows of one page, and where the page is: what a list's apply hands to its render.
#[derive(Debug)]
pub struct Rows<T> {
    /// The page's rows.
    pub items: Vec<T>,
    /// Every matching row.
    pub total: usize,
    /// The limit as given.
    pub limit: i64,
    /// The offset as given.
    pub offset: i64,
}

impl<T> Rows<T> {
    /// The list's view, each row through `item`.
    pub fn view<'a, V>(&'a self, item: impl FnMut(&'a T) -> V) -> ListView<V> {
        ListView::new(
            self.items.iter().map(item).collect(),
            self.total,
            self.limit,
            self.offset,
        )
    }
}

/// `{items, pagination}`: Flexprice's `ListResponse`.
#[derive(Debug, Serialize)]
pub struct ListView<T> {
    /// This page's rows.
    pub items: Vec<T>,
    /// Where the page is.
    pub pagination: Pagination,
}

/// `{total, limit, offset}`, with upstream's quirk: `offset` is the next page's (offset + limit).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pagination {
    /// Every matching row.
    pub total: usize,
    /// The limit as given.
    pub limit: i64,
    /// The request's offset plus the limit.
    pub offset: i64,
}

impl<T> ListView<T> {
    /// `{items, pagination: {total, limit, offset: offset + limit}}`.
    pub fn new(items: Vec<T>, total: usize, limit: i64, offset: i64) -> Self {
        ListView {
            items,
            pagination: Pagination {
                total,
                limit,
                offset: offset.saturating_add(limit),
            },
        }
    }

    /// Every row at once, as the unpaginated lists answer (`limit` and `offset` 0).
    pub fn all(items: Vec<T>) -> Self {
        let total = items.len();
        ListView::new(items, total, 0, 0)
    }
}
