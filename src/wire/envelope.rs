//! Stripe's error envelope: `{"error": {code, doc_url, message, param, type}}`, fields present only when
//! they apply, in Stripe's (alphabetical) order.

use serde::Serialize;

use crate::http::Reply;
use crate::model::TenantLimit;

/// An error on its way to a Stripe client.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeError {
    /// HTTP status.
    pub status: u16,
    /// `type`: `invalid_request_error`, `idempotency_error` or `api_error`.
    pub kind: &'static str,
    /// `code`, when Stripe gives one.
    pub code: Option<&'static str>,
    /// `param`: the full bracketed name of the offending parameter.
    pub param: Option<String>,
    /// `message`.
    pub message: String,
    /// Whether an idempotent request that failed this way stores its answer. Stripe stores the
    /// answers of requests that started executing, not of those rejected while their parameters were
    /// being checked.
    pub executed: bool,
    /// Extra response headers (`WWW-Authenticate` on 401s).
    pub headers: Vec<(hyper::header::HeaderName, String)>,
}

/// Result of a Stripe handler.
pub type StripeResult<T> = Result<T, StripeError>;

impl StripeError {
    /// A 400 `invalid_request_error` with just a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        StripeError {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message: message.into(),
            executed: false,
            headers: Vec::new(),
        }
    }

    /// Sets `param`.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets `code`.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Marks the error as coming from execution (stored for idempotent replays).
    pub fn executed(mut self) -> Self {
        self.executed = true;
        self
    }

    /// `Received unknown parameter: X`.
    pub fn unknown_param(param: &str) -> Self {
        Self::invalid(format!("Received unknown parameter: {param}"))
            .param(param)
            .code("parameter_unknown")
    }

    /// `Missing required param: X.`
    pub fn missing_param(param: &str) -> Self {
        Self::invalid(format!("Missing required param: {param}."))
            .param(param)
            .code("parameter_missing")
    }

    /// `Invalid integer: X`.
    pub fn invalid_integer(param: &str, value: &str) -> Self {
        Self::invalid(format!("Invalid integer: {}", shorten(value)))
            .param(param)
            .code("parameter_invalid_integer")
    }

    /// `No such <object>: '<id>'` for an id named in the path (404) or in a parameter (400).
    pub fn no_such(object: &str, id: &str, param: &str, status: u16) -> Self {
        Self::invalid(format!("No such {object}: '{}'", shorten(id)))
            .param(param)
            .code("resource_missing")
            .status(status)
    }

    /// `Unrecognized request URL (METHOD: /path)`.
    pub fn unrecognized(method: &str, path: &str) -> Self {
        let mut message = format!("Unrecognized request URL ({method}: {}). ", shorten(path));
        if path.ends_with('/') && path.len() > 1 {
            message.push_str(
                "Please remove the trailing slash from the URL, and make sure the ID you pass in the URL is not empty. ",
            );
        }
        message.push_str(
            "Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
        );
        Self::invalid(message).status(404)
    }

    /// The request body exceeded the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::invalid(format!(
            "Request body too large: the emulator accepts bodies of at most {limit} bytes."
        ))
        .status(413)
    }

    /// A new world refused because the emulator holds as many as it may (`--max-tenants`). The
    /// limit belongs to the instance, as Stripe's limits on an account's objects do, and waiting
    /// does not lift it (only a reset does): a 400 `invalid_request_error` as those limits get,
    /// not a 429 that clients would retry.
    pub fn too_many_worlds(limit: TenantLimit) -> Self {
        Self::invalid(limit.to_string())
    }

    /// A bug in the emulator.
    pub fn internal() -> Self {
        StripeError {
            status: 500,
            kind: "api_error",
            code: None,
            param: None,
            message: "An unexpected error occurred in the emulator while handling this request."
                .to_string(),
            executed: false,
            headers: Vec::new(),
        }
    }

    /// The envelope as it is serialized.
    pub fn body(&self) -> Envelope<'_> {
        Envelope {
            error: Fields {
                code: self.code,
                doc_url: self.code.map(|code| {
                    format!(
                        "https://stripe.com/docs/error-codes/{}",
                        code.replace('_', "-")
                    )
                }),
                message: &self.message,
                param: self.param.as_deref(),
                kind: self.kind,
            },
        }
    }

    /// The reply.
    pub fn reply(&self) -> Reply {
        let mut reply = Reply::json_body(self.status, crate::pretty::to_vec(&self.body(), 256));
        reply.headers.extend(self.headers.iter().cloned());
        reply
    }
}

impl From<TenantLimit> for StripeError {
    fn from(limit: TenantLimit) -> Self {
        StripeError::too_many_worlds(limit)
    }
}

/// `{"error": {…}}`.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    error: Fields<'a>,
}

/// The error's fields in Stripe's (alphabetical) order; absent ones are left out.
#[derive(Debug, Serialize)]
struct Fields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc_url: Option<String>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Long values are cut in messages so that an error never echoes a megabyte back.
pub fn shorten(value: &str) -> String {
    const MAX: usize = 200;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut}...")
    }
}
