//! Which facade answers a request: chosen from the path and headers alone, before anything is
//! decoded.

use crate::app::App;
use crate::http::{Reply, Request};
use crate::wire::envelope::StripeError;
use crate::{admin, native, stripe};

/// Which wire language a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/_emulator/*`.
    Admin,
    /// Stripe's form-encoded API.
    Stripe,
    /// The Flexprice-style JSON API.
    Native,
}

/// The emulator's own route that spends credits: it speaks Stripe's language (form parameters,
/// Stripe's objects and errors), so the Stripe facade serves it as one of its operations.
const EMULATOR_INVOICES: &str = "/_emulator/invoices";

/// Decides the API from the path and headers: `/_emulator/*` is the emulator's own (except
/// `/_emulator/invoices`, which the Stripe facade serves); native requests carry `x-api-key` or use
/// a route only the native API has; everything else under `/v1` is Stripe.
pub fn api_of(path: &str, headers: &hyper::HeaderMap) -> Api {
    if path == EMULATOR_INVOICES {
        return Api::Stripe;
    }
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return Api::Admin;
    }
    if headers.contains_key("x-api-key") || native::owns_path(path) {
        return Api::Native;
    }
    Api::Stripe
}

/// Serves `req` with the facade of `api`.
pub fn dispatch(app: &App, api: Api, req: &Request) -> Reply {
    match api {
        Api::Admin => admin::handle(app, req),
        Api::Stripe => stripe::handle(app, req),
        Api::Native => native::handle(&app.store, &app.config, req),
    }
}

/// A request turned away before it reached a facade (too large, too slow, malformed), answered in
/// its API's envelope.
pub fn refusal(api: Api, status: u16, message: &str) -> Reply {
    match api {
        Api::Native => native::error::reply(status, "validation_error", message, None),
        _ => StripeError::invalid(message).status(status).reply(),
    }
}

/// A body over `limit` bytes, in the API's envelope.
pub fn too_large(api: Api, limit: usize) -> Reply {
    match api {
        Api::Native => native::error::too_large(limit),
        _ => StripeError::too_large(limit).reply(),
    }
}

/// A bug in the emulator, in the API's envelope.
pub fn internal_error(api: Api) -> Reply {
    match api {
        Api::Native => native::error::internal(),
        _ => StripeError::internal().reply(),
    }
}
