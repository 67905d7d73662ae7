//! A webhook receiver for the benchmark: a bare hyper server on a free loopback port that answers
//! every request `200` with an empty body, so that delivery costs the emulator what it would
//! against a fast application.
//!
//! It runs on a thread and a runtime of its own, as an application is a process of its own: on
//! the load generator's runtime it would wait behind the 64 busy client connections for every
//! read, and a delivery's round trip would measure the load generator, not the emulator.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A running receiver.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its thread's `schedstat`, whose first field is the thread's CPU time in nanoseconds.
    schedstat: Option<PathBuf>,
    answered: Arc<AtomicU64>,
}

impl Receiver {
    /// The receiver thread's CPU time so far, in nanoseconds.
    fn cpu_ns(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(self.schedstat.as_ref()?).ok()?;
        stat.split_whitespace().next()?.parse().ok()
    }

    /// How many requests it has answered.
    fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Waits until no delivery has come in for `quiet` (at most `limit`): the sender has caught up.
    pub async fn settle(&self, quiet: std::time::Duration, limit: std::time::Duration) {
        let started = std::time::Instant::now();
        loop {
            let before = self.answered();
            tokio::time::sleep(quiet).await;
            if self.answered() == before || started.elapsed() > limit {
                return;
            }
        }
    }

    /// Where it stands now, to measure a load from.
    pub fn mark(&self) -> Mark {
        Mark {
            cpu_ns: self.cpu_ns(),
            answered: self.answered(),
        }
    }

    /// The requests answered since `mark`, and its CPU per request since then in µs (if the
    /// thread's CPU time can be read).
    pub fn since(&self, mark: Mark) -> (u64, Option<f64>) {
        let answered = self.answered() - mark.answered;
        let per = mark
            .cpu_ns
            .zip(self.cpu_ns())
            .map(|(a, b)| (b - a) as f64 / 1e3 / answered.max(1) as f64);
        (answered, per)
    }
}

/// A receiver's answers and CPU time at one moment (see [`Receiver::mark`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    cpu_ns: Option<u64>,
    answered: u64,
}

/// What the receiver's thread hands back once it listens.
type Ready = Result<(SocketAddr, Option<PathBuf>), String>;

/// Starts the receiver. It lives as long as the process.
pub async fn start() -> Result<Receiver, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
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
            runtime.block_on(serve(tx, counter));
        })
        .map_err(|e| format!("receiver: {e}"))?;
    let (addr, schedstat) = rx
        .await
        .map_err(|_| "receiver: its thread ended".to_string())??;
    Ok(Receiver {
        addr,
        schedstat,
        answered,
    })
}

/// Binds, tells `ready` the address and where the thread's CPU time is read (or why not), and
/// serves until the process ends, counting answers in `answered`.
async fn serve(ready: tokio::sync::oneshot::Sender<Ready>, answered: Arc<AtomicU64>) {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("receiver: {e}")));
            return;
        }
    };
    // `/proc/thread-self` names this thread as `PID/task/TID`.
    let schedstat = std::fs::read_link("/proc/thread-self")
        .ok()
        .map(|p| PathBuf::from("/proc").join(p).join("schedstat"));
    let _ = ready.send(
        listener
            .local_addr()
            .map(|a| (a, schedstat))
            .map_err(|e| e.to_string()),
    );
    while let Ok((stream, _)) = listener.accept().await {
        let answered = answered.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let answered = answered.clone();
                async move {
                    // Read the whole body, as an application verifying the signature would.
                    let _ = req.into_body().collect().await;
                    answered.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
