//! Native authentication: `x-api-key: KEY`, or Flexprice's own 401 bodies (raw `{"error": ...}`, not
//! the error envelope).
//!
//! Accepted keys are exactly the Stripe facade's test keys, `sk_test_…` and `rk_test_…`, so one key
//! string reaches one world from both APIs. Live keys (`sk_live_…`, `rk_live_…`) and anything else
//! are refused. A key is bound to its world's single environment, so `X-Environment-ID` is optional
//! and ignored.

use serde_json::json;

use crate::http::{names, Reply, Request};

/// The tenant key of a request, or the 401 Flexprice sends.
///
/// Without a usable API key Flexprice falls back to `Authorization: Bearer <JWT>`; the emulator
/// issues no JWTs, so that path can only fail, with the message Flexprice gives for each case.
pub fn authenticate(req: &Request) -> Result<String, Reply> {
    if let Some(key) = req.header(&names::X_API_KEY) {
        if accepts(key) {
            return Ok(key.to_string());
        }
    }
    let error = match req.header(&names::AUTHORIZATION) {
        None => "Unauthorized",
        Some(h) if !h.starts_with("Bearer ") => "Invalid authorization header format",
        Some(_) => "Invalid token",
    };
    Err(Reply::json_compact(401, &json!({ "error": error })))
}

/// Whether the emulator accepts `key` natively.
pub fn accepts(key: &str) -> bool {
    ["sk_test_", "rk_test_"].iter().any(|p| {
        key.strip_prefix(p).is_some_and(|rest| {
            !rest.is_empty() && rest.len() <= 255 && rest.bytes().all(|b| b.is_ascii_graphic())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn keys() {
        assert!(accepts("sk_test_1"));
        assert!(accepts("rk_test_abc"));
        assert!(!accepts("sk_test_"));
        assert!(!accepts("sk_live_1"));
        assert!(!accepts("rk_live_1"));
        assert!(!accepts("pk_test_1"));
        assert!(!accepts("sk_test_a b"));
        assert!(!accepts("flexprice-key"));
    }
}
