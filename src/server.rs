//! The HTTP server: accept loop, limits, request ids, panic containment, and dispatch by path.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::http::{Reply, Request};
use crate::ids::random_id;
use crate::model::Store;
use crate::{admin, native, stripe};

/// Everything a request can reach.
#[derive(Debug)]
pub struct App {
    /// All tenants.
    pub store: Store,
    /// Settings.
    pub config: Config,
    /// When the server started.
    pub started: Instant,
}

impl App {
    /// A fresh application with `config`.
    pub fn new(config: Config) -> Arc<App> {
        Arc::new(App {
            store: Store::new(config.seed),
            config,
            started: Instant::now(),
        })
    }
}

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

/// Decides the API from the path and headers: native requests carry `x-api-key` or use a route only
/// the native API has; everything else under `/v1` is Stripe.
pub fn api_of(path: &str, headers: &hyper::HeaderMap) -> Api {
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return Api::Admin;
    }
    if headers.contains_key("x-api-key") || native::owns_path(path) {
        return Api::Native;
    }
    Api::Stripe
}

/// Serves `listener` until `shutdown` completes; connections already open are allowed to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(app.config.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors and similar: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let timeout = app.config.header_read_timeout;
        // hyper's smallest allowed read buffer is 8 KiB.
        let max_buf = app.config.max_header_bytes.max(8192);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(max_buf)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
}

async fn handle(app: &Arc<App>, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    let request_id = random_id("req_", 14);
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let api = api_of(&path, &parts.headers);
    let limit = app.config.max_body_bytes;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if declared.is_some_and(|n| n > limit as u64) {
        Err(())
    } else {
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(_) => Err(()),
        }
    };
    let reply = match body {
        Err(()) => too_large(api, limit),
        Ok(body) => {
            let request = Request {
                method: parts.method,
                path,
                query: parts.uri.query().map(str::to_string),
                headers: parts.headers,
                body,
                request_id: request_id.clone(),
            };
            // A bug must cost one request, not the server: the model's locks do not poison, and the
            // client gets a 500 in its API's envelope.
            match std::panic::catch_unwind(AssertUnwindSafe(|| dispatch(app, api, &request))) {
                Ok(reply) => reply,
                Err(_) => {
                    tracing::error!("request {request_id} panicked");
                    internal_error(api)
                }
            }
        }
    };
    to_response(reply, &request_id)
}

fn dispatch(app: &App, api: Api, req: &Request) -> Reply {
    match api {
        Api::Admin => admin::handle(app, req),
        Api::Stripe => stripe::handle(app, req),
        Api::Native => native::handle(app, req),
    }
}

fn too_large(api: Api, limit: usize) -> Reply {
    match api {
        Api::Native => native::error::too_large(limit),
        _ => stripe::error::StripeError::too_large(limit).reply(),
    }
}

fn internal_error(api: Api) -> Reply {
    match api {
        Api::Native => native::error::internal(),
        _ => stripe::error::StripeError::internal().reply(),
    }
}

fn to_response(reply: Reply, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("request-id"), v);
    }
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(HeaderName::from_static(name), v);
        }
    }
    response
}
