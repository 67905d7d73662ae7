//! The native facade: a JSON API modelled on Flexprice's credit grants.

pub mod error;

use crate::http::{Reply, Request};
use crate::server::App;

/// Routes only the native API has; requests to them are native even without `x-api-key`.
pub fn owns_path(path: &str) -> bool {
    const ROOTS: [&str; 5] = [
        "/v1/creditgrants",
        "/v1/plans",
        "/v1/subscriptions",
        "/v1/wallets",
        "/v1/addons",
    ];
    ROOTS.iter().any(|r| {
        path == *r
            || path
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Serves one native request.
pub fn handle(_app: &App, _req: &Request) -> Reply {
    error::route_not_found()
}
