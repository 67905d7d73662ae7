//! The HTTP layer: accept loop, connection cap, limits on heads and bodies, request ids, panic
//! containment, graceful shutdown. A request read whole becomes an owned [`Request`] and goes to
//! [`router::dispatch`]; nothing past this file sees hyper.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::connections::{Connections, Enrolled};
use crate::http::{names, Reply, Request};
use crate::ids::random_id;
use crate::request_log::{self, Seen};
use crate::time::Nanos;
use crate::turns::Taken;
use crate::{persist, router};

pub use crate::app::App;
pub use crate::router::{api_of, Api};

/// Serves `listener` until `shutdown` completes. Then it stops accepting (the listener is closed at
/// once), asks every open connection to close once its request in flight is answered (idle
/// keep-alive connections close at once), and returns when they all have, or after
/// [`shutdown_grace`], when the rest are cut off.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(app.config.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    let connections = Connections::new(app.config.header_read_timeout);
    let _sweeper = AbortOnDrop(tokio::spawn(connections.clone().sweeper()).abort_handle());
    // A server whose future is dropped tells its connections to finish as well: idle ones close
    // at once, and a request in flight is answered first.
    let _finish = FinishOnDrop(connections.clone());
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
        let hard_head = hard_head_limit(app.config.max_header_bytes);
        let connection = Arc::new(Connection {
            app: app.clone(),
            enrolled: connections.enroll(),
        });
        tokio::spawn(async move {
            let service = {
                let connection = connection.clone();
                service_fn(move |req| {
                    connection.enrolled.serving();
                    let connection = connection.clone();
                    async move {
                        let response = handle(&connection.app, req).await;
                        connection.enrolled.waiting();
                        Ok::<_, Infallible>(response)
                    }
                })
            };
            // No timer: the head read timeout is the sweeper's (see `crate::connections`).
            let conn = http1::Builder::new()
                // Heads a little over the limit are read and answered in the API's envelope (see
                // `head_size`); only heads far over it are cut off by hyper with a bare 431.
                .max_header_size(hard_head)
                // hyper's smallest allowed read buffer is 8 KiB.
                .max_buf_size(hard_head.saturating_add(8192).max(8192))
                // A client that shuts down its write side after sending still gets its answer.
                .half_close(true)
                .serve_connection(connection.enrolled.io(TokioIo::new(stream)), service);
            let conn = std::pin::pin!(conn);
            // Told to finish (shutdown), the request in flight is answered and an idle connection
            // closes at once; told to close (the grace period is over, or no head in time), it
            // is dropped, which closes the socket.
            let ended = connection
                .enrolled
                .run(conn, |conn| conn.graceful_shutdown())
                .await;
            if let Some(Err(e)) = ended {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Deliveries stop with the server: no request of this server's can be waiting for them.
    app.webhooks.stop();
    connections.finish_all();
    let grace = shutdown_grace(&app.config);
    if tokio::time::timeout(grace, connections.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open {grace:?} after shutdown were cut off");
        connections.close_all();
        connections.closed().await;
    }
    // Every request is answered: store the worlds as snapshots, so the next start is quick.
    let closing = app.clone();
    let _ = tokio::task::spawn_blocking(move || persist::detach(&closing)).await;
}

/// What a connection's requests share: the app, and the connection's place among the open ones.
struct Connection {
    app: Arc<App>,
    enrolled: Enrolled,
}

/// Tells every connection to finish when dropped (see [`Connections::finish_all`]).
struct FinishOnDrop(Arc<Connections>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish_all();
    }
}

/// Aborts a task when dropped: the sweeper ends with the server, however the server ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long open connections get to finish after shutdown: as long as a request's head and body
/// may take to arrive. Answers are computed without waiting, so only a client that stops reading
/// its answer needs longer, and it is cut off.
pub fn shutdown_grace(config: &Config) -> Duration {
    config.header_read_timeout.max(config.body_read_timeout)
}

/// The head size beyond which hyper itself refuses a request: twice the configured limit, so that a
/// head moderately over the limit still reaches [`handle`] and gets a readable 431.
fn hard_head_limit(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_mul(2).max(8192)
}

/// The size of a request head as sent (request line and header lines, CRLFs included), near enough
/// for a limit.
fn head_size(parts: &hyper::http::request::Parts) -> usize {
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or_else(|| parts.uri.to_string().len());
    let line = parts.method.as_str().len() + 1 + target + 1 + "HTTP/1.1\r\n".len();
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Longer than `max_body_bytes`.
    TooLarge,
    /// Not received within `body_read_timeout`.
    Timeout,
    /// The connection ended early or the chunked framing was broken.
    Broken,
}

/// How much of an oversized body is read and thrown away before answering 413. A client that is still
/// writing when the server closes may get a reset instead of the answer; reading on lets it finish
/// and see the 413. Bodies even larger are cut off.
const DRAIN_MAX: u64 = 8 * 1024 * 1024;

/// Reads the whole body within `limit` bytes and `timeout`.
async fn read_body(
    body: &mut Incoming,
    parts: &hyper::http::request::Parts,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let deadline = tokio::time::Instant::now() + timeout;
    // A client that asked `Expect: 100-continue` has not sent its body and waits for the answer;
    // reading would only invite it to send what will be refused.
    let expects_continue = parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        if !expects_continue && n <= limit as u64 + DRAIN_MAX {
            drain(body, deadline).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(body, deadline).await;
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards up to [`DRAIN_MAX`] more bytes, until the body ends or `deadline`.
async fn drain(body: &mut Incoming, deadline: tokio::time::Instant) {
    let mut seen: u64 = 0;
    while seen <= DRAIN_MAX {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                }
            }
            _ => return,
        }
    }
}

async fn handle(app: &Arc<App>, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let request_id = random_id("req_", 14);
    let (parts, mut body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let api = api_of(&path, &parts.headers);
    // Whether the request log may record it; the system clock is read only then.
    let arrived = (app.requests.capacity() > 0
        && request_log::records_path(&path)
        && !parts.headers.contains_key(request_log::INSPECTOR_HEADER))
    .then(crate::time::real_now);
    let config = &app.config;
    let head_limit = config.max_header_bytes;
    let body = if head_size(&parts) > head_limit {
        // The body is not read: the connection is closed after the answer.
        Err(Refusal::Head)
    } else {
        read_body(
            &mut body,
            &parts,
            config.max_body_bytes,
            config.body_read_timeout,
        )
        .await
        .map_err(Refusal::Body)
    };
    let (body, refusal) = match body {
        Ok(body) => (body, None),
        Err(refusal) => (Bytes::new(), Some(refusal)),
    };
    let request = Request {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        request_id,
    };
    // Read once from the credentials, for taking its turn and for the request log.
    let world = router::world_of(app, api, &request);
    let (request, reply) = match refusal {
        Some(refusal) => (
            request,
            refused(api, refusal, config).with_header(hyper::header::CONNECTION, "close"),
        ),
        None => {
            let request_id = request.request_id.clone();
            let served = match take_turn(app, api, world.as_deref(), request) {
                Taken::Done(served) => served,
                Taken::Queued(wait) => wait.await,
            };
            let Some((request, reply, stored)) = served else {
                tracing::error!("request {request_id} was lost while waiting for its world");
                return to_response(router::internal_error(api), &request_id);
            };
            // A bug must cost one request, not the server: the model's locks do not poison, and
            // the client gets a 500 in its API's envelope.
            let reply = reply.unwrap_or_else(|_| {
                tracing::error!("request {} panicked", request.request_id);
                router::internal_error(api)
            });
            // With a data directory, a request that changed a world is answered once it is
            // stored.
            let reply = match stored {
                None => reply,
                Some(stored) => match stored.await {
                    Ok(Ok(())) => reply,
                    Ok(Err(e)) => persist::not_stored(api, &e),
                    Err(_) => persist::not_stored(api, "the journal writer stopped"),
                },
            };
            (request, reply)
        }
    };
    if let (Some(at), Some(world)) = (arrived, &world) {
        record(app, api, world, &request, at, started, &reply);
    }
    to_response(reply, &request.request_id)
}

/// A request served, with what its journal says of it.
type Served = (Request, std::thread::Result<Reply>, Option<persist::Commit>);

/// Serves `request` in its turn at its world (see [`crate::turns`]): at once when no one is at the
/// world, otherwise by the task already at it, which wakes this one with the answer. What the
/// facade can read without the world (keys, parameters, the operation's own checks) is read here
/// first, on this task's thread, so that the turn holds only the work that needs the world; a
/// request refused there never waits for its world. A request for no world, or for one not made
/// yet (its first request makes it), is served at once.
///
/// Not itself a future: a request served at once awaits nothing, and one that waits awaits only
/// the small future of its queued work (`None` if the request was lost, which the turns' own
/// panic containment prevents). Awaiting a future that held the request and its prepared
/// operation copied them into the connection's task and out again.
fn take_turn(
    app: &Arc<App>,
    api: Api,
    world: Option<&str>,
    request: Request,
) -> Taken<Served, impl std::future::Future<Output = Option<Served>> + Send + 'static> {
    let prepared = match persist::prepare(app, api, world, &request) {
        None => None,
        Some(Err(panic)) => return Taken::Done(Some((request, Err(panic), None))),
        Some(Ok(prepared)) if prepared.is_answered() => {
            let reply = persist::finish_prepared(app, api, &request, prepared);
            return Taken::Done(Some((request, reply, None)));
        }
        Some(Ok(prepared)) => Some(prepared),
    };
    let serve = move |app: &App, request: Request| match prepared {
        Some(prepared) => {
            let reply = persist::finish_prepared(app, api, &request, prepared);
            (request, reply, None)
        }
        None => {
            let (reply, stored) = persist::dispatch(app, api, &request);
            (request, reply, stored)
        }
    };
    let Some(world) = world.filter(|w| app.store.get(w).is_some()) else {
        return Taken::Done(Some(serve(app, request)));
    };
    let turns = app.turns.of(world);
    let app = app.clone();
    turns.start(move || serve(&app, request))
}

/// Records an answered request in the request log of `world` (see [`crate::request_log`]).
fn record(
    app: &App,
    api: Api,
    world: &str,
    request: &Request,
    at: Nanos,
    started: Instant,
    reply: &Reply,
) {
    let took = started.elapsed();
    let seen = Seen {
        id: &request.request_id,
        at,
        method: request.method.as_str(),
        path: &request.path,
        query: request.query.as_deref(),
        api: router::api_name(api),
        idempotency_key: request.header(&names::IDEMPOTENCY_KEY),
        took,
    };
    app.record_request(world, seen, reply);
}

/// A request turned away before it reached a facade.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// The head is over `max_header_bytes`.
    Head,
    /// The body could not be read.
    Body(BodyError),
}

/// The answer to a refused request, in its API's envelope.
fn refused(api: Api, refusal: Refusal, config: &Config) -> Reply {
    let (status, message) = match refusal {
        Refusal::Body(BodyError::TooLarge) => return router::too_large(api, config.max_body_bytes),
        Refusal::Head => (
            431,
            format!(
                "Request header fields too large: the emulator accepts request heads (request line and headers) of at most {} bytes.",
                config.max_header_bytes
            ),
        ),
        Refusal::Body(BodyError::Timeout) => (
            408,
            format!(
                "Request timeout: the request body was not received within {}.",
                seconds(config.body_read_timeout)
            ),
        ),
        Refusal::Body(BodyError::Broken) => (
            400,
            "Invalid request: the request body could not be read (the connection closed before it was complete, or its chunked encoding is broken).".to_string(),
        ),
    };
    router::refusal(api, status, &message)
}

/// `1 second`, `30 seconds`, `0.25 seconds`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s == 1.0 {
        "1 second".to_string()
    } else {
        format!("{s} seconds")
    }
}

fn to_response(reply: Reply, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    // Sized once: growing the map header by header showed in profiles.
    headers.reserve(2 + reply.headers.len());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(names::REQUEST_ID.clone(), v);
    }
    for (name, value) in reply.headers {
        // The value's own bytes, not a copy.
        if let Ok(v) = HeaderValue::try_from(value) {
            headers.append(name, v);
        }
    }
    response
}
