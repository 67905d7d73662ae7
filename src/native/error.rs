//! The native error envelope: `{code, message, http_status_code, details}`, `details` only when there
//! are any, its keys sorted (Go marshals maps in key order).

use serde_json::{json, Map, Value};

use crate::http::Reply;

/// An error on its way to a native client.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeError {
    /// HTTP status.
    pub status: u16,
    /// `code`: `validation_error`, `not_found`, `already_exists`, `database_error`, ...
    pub code: &'static str,
    /// `message`: the hint a Flexprice error carries.
    pub message: String,
    /// `details`, already sorted by key.
    pub details: Option<Map<String, Value>>,
}

/// Result of a native handler.
pub type NativeResult<T> = Result<T, NativeError>;

impl NativeError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        NativeError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400 `validation_error`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "validation_error", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 409 `already_exists`.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(409, "already_exists", message)
    }

    /// 500 `database_error` (what a value the database cannot store produces upstream).
    pub fn database(message: impl Into<String>) -> Self {
        Self::new(500, "database_error", message)
    }

    /// gin's binding failure: malformed JSON, a field of the wrong type, a required field missing.
    pub fn invalid_format() -> Self {
        Self::validation("Invalid request format")
    }

    /// Adds `details` (keys are sorted here).
    pub fn details(mut self, pairs: Vec<(&str, Value)>) -> Self {
        let mut sorted = pairs;
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut m = Map::new();
        for (k, v) in sorted {
            m.insert(k.to_string(), v);
        }
        self.details = Some(m);
        self
    }

    /// The reply.
    pub fn reply(&self) -> Reply {
        reply(
            self.status,
            self.code,
            &self.message,
            self.details.clone().map(Value::Object),
        )
    }
}

/// gin's plain-text answer for a route that does not exist.
pub fn route_not_found() -> Reply {
    Reply::text(404, "404 page not found")
}

/// An error reply in the native envelope.
pub fn reply(status: u16, code: &str, message: &str, details: Option<Value>) -> Reply {
    let mut body = json!({
        "code": code,
        "message": message,
        "http_status_code": status,
    });
    if let (Some(d), Some(obj)) = (details, body.as_object_mut()) {
        obj.insert("details".into(), d);
    }
    Reply::json_compact(status, &body)
}

/// The body exceeded the limit.
pub fn too_large(limit: usize) -> Reply {
    reply(
        413,
        "validation_error",
        &format!("Request body too large: the emulator accepts bodies of at most {limit} bytes"),
        None,
    )
}

/// A bug in the emulator.
pub fn internal() -> Reply {
    reply(500, "internal_error", "An unexpected error occurred", None)
}
