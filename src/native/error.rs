//! The native error envelope: `{code, message, http_status_code, details}`, `details` only when there
//! are any, its keys sorted (Go marshals maps in key order).

use serde::Serialize;
use serde_json::{Map, Value};

use super::view;
use crate::http::Reply;
use crate::model::TenantLimit;

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

/// Result of a native operation.
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

    /// A new world refused because the emulator holds as many as it may (`--max-tenants`):
    /// Flexprice's 400 `invalid_operation`, the answer to an operation the current state does not
    /// allow. Waiting does not lift the limit (a reset does), so it is not a 429 that clients
    /// would retry.
    pub fn too_many_worlds(limit: TenantLimit) -> Self {
        Self::new(400, "invalid_operation", limit.to_string())
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
        envelope(self.status, self.code, &self.message, self.details.as_ref())
    }
}

/// `Request validation failed` with go-playground's per-field texts (`details` keyed by the Go
/// field name), as upstream answers a failed `binding` tag.
pub fn request_validation_failed(fields: Vec<(&str, String)>) -> NativeError {
    NativeError::validation("Request validation failed").details(
        fields
            .into_iter()
            .map(|(field, text)| (field, Value::String(text)))
            .collect(),
    )
}

/// go-playground's text for a field of `request` that failed the validation `tag`.
pub fn field_failed(request: &str, field: &str, tag: &str) -> String {
    format!(
        "Key: '{request}.{field}' Error:Field validation for '{field}' failed on the '{tag}' tag"
    )
}

/// go-playground's text for a failed `required` tag.
pub fn required(request: &str, field: &str) -> String {
    field_failed(request, field, "required")
}

/// A clear 400 for a documented field the emulator does not model; `supported` lists what the
/// resource does model.
pub fn unsupported(field: &str, supported: &str) -> NativeError {
    NativeError::validation(format!(
        "The field {field} is not supported by the credit emulator ({supported})"
    ))
}

/// gin's plain-text answer for a route that does not exist.
pub fn route_not_found() -> Reply {
    Reply::text(404, "404 page not found")
}

/// The envelope as it is written.
#[derive(Serialize)]
struct Envelope<'a, D: Serialize> {
    code: &'a str,
    message: &'a str,
    http_status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a D>,
}

fn envelope<D: Serialize>(status: u16, code: &str, message: &str, details: Option<&D>) -> Reply {
    view::reply(
        status,
        &Envelope {
            code,
            message,
            http_status_code: status,
            details,
        },
    )
}

/// An error reply in the native envelope; `details` is written as given.
pub fn reply(status: u16, code: &str, message: &str, details: Option<Value>) -> Reply {
    envelope(status, code, message, details.as_ref())
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
