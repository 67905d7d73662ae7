//! Which facade answers a request: chosen from the path and headers alone, before anything is
//! decoded.

use crate::app::App;
use crate::http::{names, Reply, Request};
use crate::wire::envelope::StripeError;
use crate::wire::keys;
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

/// Decides the API from the path and headers, by the credentials first and the path second:
///
/// 1. `/_emulator/*` is the emulator's own (except `/_emulator/invoices`, which the Stripe facade
///    serves);
/// 2. a request with `x-api-key` is native, whatever its path;
/// 3. a path Stripe's route table serves (with any method) is Stripe's, so that an SDK sending
///    `Authorization: Bearer sk_test_…` to a path both APIs have (`/v1/customers`,
///    `/v1/subscriptions`) reaches Stripe, and so does a request with no credentials at all (it
///    gets Stripe's 401);
/// 4. a path only the native API has (`/v1/creditgrants`, `/v1/wallets/…`,
///    `/v1/customers/{id}/wallets`) is native;
/// 5. everything else is Stripe's (its unknown-route 404).
pub fn api_of(path: &str, headers: &hyper::HeaderMap) -> Api {
    if path == EMULATOR_INVOICES {
        return Api::Stripe;
    }
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return Api::Admin;
    }
    if headers.contains_key(&names::X_API_KEY) {
        return Api::Native;
    }
    // Under no root of a native-only route, a path is Stripe's whether Stripe serves it (rule 3)
    // or not (rule 5): told from its first two segments, without matching it against the table.
    if !native::may_own_path(path) {
        return Api::Stripe;
    }
    if stripe::routes::serves_path(path) {
        return Api::Stripe;
    }
    if native::owns_path(path) {
        return Api::Native;
    }
    Api::Stripe
}

/// The API's name in the request log: `stripe`, `native` or `emulator`.
pub fn api_name(api: Api) -> &'static str {
    match api {
        Api::Admin => "emulator",
        Api::Stripe => "stripe",
        Api::Native => "native",
    }
}

/// The world a request of `api` acts in, read from its credentials as that API reads them: the
/// native API's `x-api-key`; for Stripe's routes and the emulator's own, either key header and
/// `Stripe-Account`. `None` when the API would refuse them (no key, a live key, an account it
/// cannot reach). On the meter event stream, the world of the session its bearer token names.
pub fn world_of(app: &App, api: Api, req: &Request) -> Option<String> {
    match api {
        Api::Stripe
            if req.method == hyper::Method::POST && stripe::routes::is_stream(&req.path) =>
        {
            let token = keys::bearer(req).ok()?;
            app.meter_sessions.get(token).map(|s| s.world)
        }
        Api::Native => req
            .header(&names::X_API_KEY)
            .filter(|key| native::auth::accepts(key))
            .map(str::to_string),
        Api::Stripe | Api::Admin => keys::emulator_world(req).ok(),
    }
}

/// Serves `req` with the facade of `api`.
pub fn dispatch(app: &App, api: Api, req: &Request) -> Reply {
    match api {
        Api::Admin => admin::handle(app, req),
        Api::Stripe => stripe::handle(app, req),
        Api::Native => native::handle(&app.store, &app.config, req),
    }
}

/// A request read as far as its facade can without its world.
#[derive(Debug)]
pub enum Prepared {
    /// A Stripe request: answered already, or parsed (see [`stripe::Prepared`]).
    Stripe(stripe::Prepared),
    /// A native request: answered already, or parsed (see [`native::Prepared`]).
    Native(native::Prepared),
    /// An admin request, read in its world's turn.
    Whole,
}

impl Prepared {
    /// Whether the answer is known already, needing no world ([`Prepared::finish`] gives it).
    pub fn is_answered(&self) -> bool {
        matches!(
            self,
            Prepared::Stripe(stripe::Prepared::Answered(_))
                | Prepared::Native(native::Prepared::Answered(_))
        )
    }

    /// Serves what is left of `req` (the request `self` was prepared from) in its world.
    pub fn finish(self, app: &App, api: Api, req: &Request) -> Reply {
        match self {
            Prepared::Stripe(prepared) => prepared.finish(app, req),
            Prepared::Native(prepared) => prepared.finish(&app.store),
            Prepared::Whole => dispatch(app, api, req),
        }
    }
}

/// Reads `req` as far as the facade of `api` can without its world; [`Prepared::finish`] serves
/// the rest. Together they are [`dispatch`]. `world` is what [`world_of`] read from the request,
/// if the caller asked it (the credentials are then not read twice).
pub fn prepare(app: &App, api: Api, world: Option<&str>, req: &Request) -> Prepared {
    match api {
        Api::Stripe => Prepared::Stripe(stripe::prepare(app, req, world)),
        Api::Native => Prepared::Native(native::prepare(&app.config, req)),
        Api::Admin => Prepared::Whole,
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

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderMap, HeaderValue};

    fn with(name: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static("sk_test_1"));
        h
    }

    #[test]
    fn credentials_then_the_stripe_table_then_native_paths() {
        let none = HeaderMap::new();
        let bearer = with("authorization");
        let native = with("x-api-key");
        for path in [
            "/v1/subscriptions",
            "/v1/subscriptions/sub_1",
            "/v1/customers",
        ] {
            assert_eq!(api_of(path, &bearer), Api::Stripe, "{path}");
            assert_eq!(api_of(path, &none), Api::Stripe, "{path}");
            assert_eq!(api_of(path, &native), Api::Native, "{path}");
        }
        for path in [
            "/v1/creditgrants",
            "/v1/wallets/wallet_1",
            "/v1/customers/cust_1/wallets",
            "/v1/subscriptions/subs_1/cancel",
            "/v1/subscriptions/subs_1/grants/upcoming",
        ] {
            assert_eq!(api_of(path, &none), Api::Native, "{path}");
            assert_eq!(api_of(path, &bearer), Api::Native, "{path}");
        }
        assert_eq!(api_of("/v1/nothing", &none), Api::Stripe);
        assert_eq!(api_of("/_emulator/clock", &native), Api::Admin);
        assert_eq!(api_of("/_emulator/invoices", &native), Api::Stripe);
    }

    /// [`api_of`] for a request without `x-api-key`, as its documentation states the rules,
    /// without the shortcut for paths under no native root.
    fn by_the_rules(path: &str) -> Api {
        if path == EMULATOR_INVOICES {
            Api::Stripe
        } else if path == "/_emulator" || path.starts_with("/_emulator/") {
            Api::Admin
        } else if stripe::routes::serves_path(path) {
            Api::Stripe
        } else if native::owns_path(path) {
            Api::Native
        } else {
            Api::Stripe
        }
    }

    /// Segments of paths for the property below: those of both APIs' tables, and some of neither.
    const SEGMENTS: &[&str] = &[
        "v1",
        "v2",
        "billing",
        "credit_grants",
        "customers",
        "creditgrants",
        "plans",
        "wallets",
        "subscriptions",
        "cancel",
        "grants",
        "upcoming",
        "transactions",
        "meter_events",
        "x_1",
        "",
        "%2F",
        "plansX",
    ];

    proptest::proptest! {
        /// The shortcut for paths under no native root answers as the rules do: on every row's
        /// own path of both tables, cut short or lengthened, and on paths of their segments in
        /// any order, with stray slashes.
        #[test]
        fn the_shortcut_answers_as_the_rules_do(
            row in 0..native::ROUTES.len() + stripe::routes::ROUTES.len(),
            keep in 0usize..8,
            extra in proptest::option::of(0..SEGMENTS.len()),
            shuffled in proptest::collection::vec(0..SEGMENTS.len(), 0..6),
            lead in 0usize..3,
            trail in proptest::bool::ANY,
        ) {
            let pattern = match native::ROUTES.get(row) {
                Some(r) => r.pattern,
                None => stripe::routes::ROUTES[row - native::ROUTES.len()].pattern,
            };
            let filled = pattern.replace("{id}", "x_1");
            let mut from_row: Vec<&str> = filled.split('/').skip(1).take(keep).collect();
            from_row.extend(extra.map(|e| SEGMENTS[e]));
            let shuffled: Vec<&str> = shuffled.iter().map(|&s| SEGMENTS[s]).collect();
            let none = HeaderMap::new();
            for segments in [from_row, shuffled] {
                let mut path = "/".repeat(lead);
                path.push_str(&segments.join("/"));
                if trail {
                    path.push('/');
                }
                proptest::prop_assert_eq!(api_of(&path, &none), by_the_rules(&path), "{}", path);
            }
        }
    }

    /// A native row is `shared` exactly when Stripe's table serves its path too, so that
    /// `native::owns_path` and `stripe::routes::serves_path` never claim the same path.
    #[test]
    fn the_native_shared_flag_follows_the_stripe_table() {
        for row in native::ROUTES {
            let path = row.pattern.replace("{id}", "x_1");
            assert_eq!(
                row.shared,
                stripe::routes::serves_path(&path),
                "{} {}",
                row.method,
                row.pattern
            );
            assert!(
                !(native::owns_path(&path) && stripe::routes::serves_path(&path)),
                "{path} is claimed by both"
            );
        }
    }
}
