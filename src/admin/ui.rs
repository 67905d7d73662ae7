//! `GET /_emulator/ui`: the inspector, a small web page built into the binary (the files under
//! `ui/`), which reads a world through the JSON routes the emulator already serves. It needs no
//! key to be served: the key is typed into the page (or given in the URL's fragment, which never
//! reaches the server) and sent only with the page's own API calls.

use bytes::Bytes;

use crate::app::App;
use crate::http::{Reply, Request};
use crate::wire::envelope::{StripeError, StripeResult};

/// The page's files: `(path, content type, body)`.
static ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/_emulator/ui",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    (
        "/_emulator/ui/",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    (
        "/_emulator/ui/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/app.js"),
    ),
    (
        "/_emulator/ui/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/style.css"),
    ),
    (
        "/_emulator/ui/icon.svg",
        "image/svg+xml",
        include_bytes!("../../ui/icon.svg"),
    ),
];

/// The page's policy: its own files only, no inline script or style, no frames, no plugins;
/// `connect-src 'self'` is what lets it call the emulator's routes.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Serves one of the inspector's files, with strict headers.
pub(super) fn asset(_: &App, req: &Request) -> StripeResult<Reply> {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(path, _, _)| *path == req.path) else {
        return Err(StripeError::unrecognized(req.method.as_str(), &req.path));
    };
    Ok(Reply {
        status: 200,
        content_type,
        headers: vec![
            (
                hyper::header::CONTENT_SECURITY_POLICY,
                CONTENT_SECURITY_POLICY.to_string(),
            ),
            (hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (hyper::header::X_FRAME_OPTIONS, "DENY".to_string()),
            (hyper::header::REFERRER_POLICY, "no-referrer".to_string()),
            // The files change with the binary: always ask again.
            (hyper::header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body: Bytes::from_static(body),
    })
}
