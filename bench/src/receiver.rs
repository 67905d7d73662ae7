//! A webhook receiver for the benchmark: a bare hyper server on a free loopback port that answers
//! every request `200` with an empty body, so that delivery costs the emulator what it would
//! against a fast application.
//!
//! It runs on a thread and a runtime of its own, as an application is a process of its own: on
//! the load generator's runtime it would wait behind the 64 busy client connections for every
//! read, and a delivery's round trip would measure the load generator, not the emulator.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Starts the receiver; its address. It lives as long as the process.
pub async fn start() -> Result<SocketAddr, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("webhook-receiver".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(format!("receiver: {e}")));
                    return;
                }
            };
            runtime.block_on(serve(tx));
        })
        .map_err(|e| format!("receiver: {e}"))?;
    rx.await
        .map_err(|_| "receiver: its thread ended".to_string())?
}

/// Binds, tells `ready` the address (or why not), and serves until the process ends.
async fn serve(ready: tokio::sync::oneshot::Sender<Result<SocketAddr, String>>) {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("receiver: {e}")));
            return;
        }
    };
    let addr = listener.local_addr().map_err(|e| e.to_string());
    let _ = ready.send(addr);
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                // Read the whole body, as an application verifying the signature would.
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
