//! Routes as data: a row is a method, a path pattern (`/v1/creditgrants/{id}`) and the pipeline of
//! an operation. The table itself is `ROUTES` in the facade's root module; this module matches
//! paths against it, both to dispatch and to decide which paths are the native API's.

use hyper::Method;

use super::op::Handler;

/// One route.
#[derive(Debug)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path, with `{id}` standing for one non-empty segment.
    pub pattern: &'static str,
    /// Whether Stripe's route table serves this path too (with any method): then it is native only
    /// with `x-api-key`, and the Stripe facade answers it otherwise.
    pub shared: bool,
    /// The operation's pipeline.
    pub handler: Handler,
}

/// A route whose path only the native API has.
pub const fn route(method: Method, pattern: &'static str, handler: Handler) -> Route {
    Route {
        method,
        pattern,
        shared: false,
        handler,
    }
}

/// A route whose path the Stripe facade serves too.
pub const fn shared(method: Method, pattern: &'static str, handler: Handler) -> Route {
    Route {
        method,
        pattern,
        shared: true,
        handler,
    }
}

/// Whether `path` (leading `/` removed) fits `pattern` (the same); `{id}` takes one segment,
/// an empty one only when `empty_id`. Returns the id (`""` when the pattern has none).
fn fit<'p>(pattern: &str, path: &'p str, empty_id: bool) -> Option<&'p str> {
    let mut id = "";
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(id),
            (Some("{id}"), Some(seg)) if empty_id || !seg.is_empty() => id = seg,
            (Some(w), Some(seg)) if w == seg => {}
            _ => return None,
        }
    }
}

/// The route for `method` and a percent-decoded `path`, and its `{id}`. Leading slashes are
/// ignored and a trailing one is an empty segment, as gin's router sees them.
pub fn find<'p>(
    routes: &'static [Route],
    method: &Method,
    path: &'p str,
) -> Option<(&'static Route, &'p str)> {
    let path = path.trim_start_matches('/');
    routes
        .iter()
        .filter(|r| r.method == *method)
        .find_map(|r| fit(&r.pattern[1..], path, false).map(|id| (r, id)))
}

/// The paths that belong to the native API whatever the headers, derived from a route table:
/// everything under a root (`/v1/plans`) all of whose routes are native only, and the native-only
/// patterns under shared roots (`/v1/customers/{id}/wallets`, with any id, even empty).
#[derive(Debug)]
pub struct Owned {
    roots: Vec<&'static str>,
    patterns: Vec<&'static str>,
    /// The roots of `roots` and of `patterns`: no path under another root is owned.
    all_roots: Vec<&'static str>,
}

/// `/v1/plans` for `/v1/plans/{id}/creditgrants`: the path up to its third `/`. Byte by byte: the
/// router asks it of every request's path, and the third `/` comes within a dozen bytes.
fn root(pattern: &str) -> &str {
    let mut slashes = 0;
    let end = pattern
        .bytes()
        .position(|b| {
            slashes += usize::from(b == b'/');
            slashes == 3
        })
        .unwrap_or(pattern.len());
    &pattern[..end]
}

impl Owned {
    /// What `routes` own.
    pub fn of(routes: &[Route]) -> Owned {
        let shared_roots: Vec<&str> = routes
            .iter()
            .filter(|r| r.shared)
            .map(|r| root(r.pattern))
            .collect();
        let mut owned = Owned {
            roots: Vec::new(),
            patterns: Vec::new(),
            all_roots: Vec::new(),
        };
        for r in routes.iter().filter(|r| !r.shared) {
            let root = root(r.pattern);
            if shared_roots.contains(&root) {
                if !owned.patterns.contains(&r.pattern) {
                    owned.patterns.push(r.pattern);
                }
            } else if !owned.roots.contains(&root) {
                owned.roots.push(root);
            }
            if !owned.all_roots.contains(&root) {
                owned.all_roots.push(root);
            }
        }
        owned
    }

    /// Whether a raw `path` lies under a root where [`Owned::contains`] may find it: false means it
    /// is not the native API's, decided from its first two segments alone.
    pub fn may_contain(&self, path: &str) -> bool {
        self.all_roots.contains(&root(path))
    }

    /// Whether a raw (still percent-encoded) `path` is the native API's.
    pub fn contains(&self, path: &str) -> bool {
        let under = |root: &&str| {
            path.strip_prefix(*root)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        self.roots.iter().any(under)
            || path.strip_prefix('/').is_some_and(|p| {
                self.patterns
                    .iter()
                    .any(|pattern| fit(&pattern[1..], p, true).is_some())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Reply;
    use crate::native::op::{Applied, Input};

    fn nothing(_: &Input<'_>) -> Result<Applied, Reply> {
        Err(Reply::text(200, ""))
    }

    static TABLE: [Route; 5] = [
        route(Method::GET, "/v1/plans/{id}", nothing),
        route(Method::GET, "/v1/plans/{id}/creditgrants", nothing),
        shared(Method::GET, "/v1/customers/{id}", nothing),
        route(Method::GET, "/v1/customers/{id}/wallets", nothing),
        route(Method::GET, "/v1/customers/{id}/wallets", nothing),
    ];

    #[test]
    fn finds_routes_and_ids() {
        let found = |m: Method, p: &'static str| find(&TABLE, &m, p).map(|(r, id)| (r.pattern, id));
        assert_eq!(
            found(Method::GET, "/v1/plans/p1/creditgrants"),
            Some(("/v1/plans/{id}/creditgrants", "p1"))
        );
        assert_eq!(
            found(Method::GET, "//v1/plans/p1"),
            Some(("/v1/plans/{id}", "p1"))
        );
        assert_eq!(found(Method::GET, "/v1/plans/"), None);
        assert_eq!(found(Method::GET, "/v1/plans/p1/"), None);
        assert_eq!(found(Method::POST, "/v1/plans/p1"), None);
    }

    #[test]
    fn owns_native_roots_and_patterns() {
        let owned = Owned::of(&TABLE);
        assert_eq!(owned.roots, ["/v1/plans"]);
        assert_eq!(owned.patterns, ["/v1/customers/{id}/wallets"]);
        for path in [
            "/v1/plans",
            "/v1/plans/x/y/z",
            "/v1/customers//wallets",
            "/v1/customers/c/wallets",
        ] {
            assert!(owned.contains(path), "{path}");
        }
        for path in [
            "/v1/plansx",
            "//v1/plans",
            "/v1/customers/c",
            "/v1/customers/c/wallets/x",
            "/v1/billing",
        ] {
            assert!(!owned.contains(path), "{path}");
        }
    }
}
