//! The native error envelope: `{code, message, http_status_code, details}`.

use serde_json::{json, Value};

use crate::http::Reply;

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
