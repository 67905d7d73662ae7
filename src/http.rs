//! The owned request and reply that facades work with, so that no facade touches hyper.

use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::Method;

/// A request, read whole.
#[derive(Debug)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path, still percent-encoded, without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
    /// The id the server gave this request (its `Request-Id` header), which the events it causes
    /// name.
    pub request_id: String,
}

/// The header names read on every request, parsed once: a lookup by a
/// [`hyper::header::HeaderName`] skips checking and lower-casing the name that a lookup by text
/// does.
pub mod names {
    use hyper::header::HeaderName;

    pub use hyper::header::{AUTHORIZATION, CONTENT_TYPE};

    /// `Idempotency-Key`.
    pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
    /// `Stripe-Account`.
    pub static STRIPE_ACCOUNT: HeaderName = HeaderName::from_static("stripe-account");
    /// `Stripe-Version`.
    pub static STRIPE_VERSION: HeaderName = HeaderName::from_static("stripe-version");
    /// `X-Api-Key` (the native API's key).
    pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    /// `X-Emulator-Panic`.
    pub static X_EMULATOR_PANIC: HeaderName = HeaderName::from_static("x-emulator-panic");
    /// `Request-Id`, on every answer.
    pub static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
    /// `Original-Request`: the request whose answer an idempotency key keeps.
    pub static ORIGINAL_REQUEST: HeaderName = HeaderName::from_static("original-request");
    /// `Idempotent-Replayed: true`, on a stored answer given again.
    pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
    /// `Stripe-Should-Retry`.
    pub static STRIPE_SHOULD_RETRY: HeaderName = HeaderName::from_static("stripe-should-retry");
}

impl Request {
    /// A header's value as text, if present and visible ASCII. `name` is a `HeaderName` (see
    /// [`names`]) or its text in lower case.
    pub fn header<K: hyper::header::AsHeaderName>(&self, name: K) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path split into its segments (`/v1/customers/cus_1` → `["v1", "customers", "cus_1"]`).
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }
}

/// A reply, ready to send.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers. Names, not text: a name made from text is checked byte by byte, and every
    /// answer carries a few.
    pub headers: Vec<(hyper::header::HeaderName, String)>,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Bytes::from(crate::pretty::to_vec(value, 1024)),
        }
    }

    /// A JSON reply from a body already serialized.
    pub fn json_body(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Bytes::from(body),
        }
    }

    /// A plain-text reply.
    pub fn text(status: u16, text: &'static str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Bytes::from_static(text.as_bytes()),
        }
    }

    /// Adds a header.
    pub fn with_header(
        mut self,
        name: hyper::header::HeaderName,
        value: impl Into<String>,
    ) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

impl Reply {
    /// A JSON reply without indentation (the native API's style).
    pub fn json_compact(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        }
    }
}
