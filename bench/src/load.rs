//! A small closed-loop load generator: N keep-alive HTTP/1.1 connections, each sending its next request
//! as soon as the previous answer is read, for a duration or until a count is reached.
//!
//! Closed-loop means the figures are "what the server sustains with N clients busy": latency includes
//! queueing behind the other connections, as a CI job with many parallel tests would see it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Builds request number `seq` (numbers are unique within one run).
pub type Make = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Sees the body of successful request number `seq` (to collect ids while loading).
pub type OnBody = Arc<dyn Fn(u64, &Bytes) + Send + Sync>;

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long.
    Elapsed(Duration),
    /// After this many requests have been answered.
    Count(u64),
}

/// What a run observed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// 2xx answers.
    pub ok: u64,
    /// Other answers and transport errors.
    pub failed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of every answered request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
}

impl Outcome {
    /// Adds another run's figures (elapsed times add up, so rates stay "requests per busy second").
    pub fn absorb(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// Runs `conns` connections against `addr` until `until`.
pub async fn run(
    addr: SocketAddr,
    conns: usize,
    until: Until,
    make: Make,
    on_body: Option<OnBody>,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (deadline, limit) = match until {
        Until::Elapsed(d) => (Some(start + d), u64::MAX),
        Until::Count(n) => (None, n),
    };
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let worker = Worker {
            addr,
            deadline,
            limit,
            next: next.clone(),
            make: make.clone(),
            on_body: on_body.clone(),
        };
        tasks.push(tokio::spawn(worker.run()));
    }
    let mut out = Outcome::default();
    for t in tasks {
        if let Ok(part) = t.await {
            out.absorb(part);
        }
    }
    out.elapsed = start.elapsed();
    out
}

struct Worker {
    addr: SocketAddr,
    deadline: Option<Instant>,
    limit: u64,
    next: Arc<AtomicU64>,
    make: Make,
    on_body: Option<OnBody>,
}

impl Worker {
    async fn run(self) -> Outcome {
        let mut out = Outcome {
            latencies_us: Vec::with_capacity(4096),
            ..Outcome::default()
        };
        let mut sender: Option<SendRequest<Full<Bytes>>> = None;
        let mut pending: Option<u64> = None;
        let mut retries = 0;
        loop {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let s = match sender.as_mut() {
                Some(s) => s,
                None => match connect(self.addr).await {
                    Ok(s) => sender.insert(s),
                    Err(e) => {
                        out.failed += 1;
                        out.first_failure.get_or_insert(format!("connect: {e}"));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            // A request lost to a broken connection is retried with the same number, so that a
            // counted load makes exactly the objects it was asked for.
            let seq = match pending.take() {
                Some(seq) => seq,
                None => {
                    let seq = self.next.fetch_add(1, Ordering::Relaxed);
                    if seq >= self.limit {
                        break;
                    }
                    seq
                }
            };
            let req = (self.make)(seq);
            let t0 = Instant::now();
            let answer = async {
                s.ready().await?;
                let resp = s.send_request(req).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            }
            .await;
            match answer {
                Ok((status, body)) => {
                    let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    out.latencies_us.push(us);
                    if status.is_success() {
                        out.ok += 1;
                        if let Some(f) = &self.on_body {
                            f(seq, &body);
                        }
                    } else {
                        out.failed += 1;
                        out.first_failure
                            .get_or_insert_with(|| format!("{status}: {}", snippet(&body)));
                    }
                    retries = 0;
                }
                Err(e) => {
                    sender = None;
                    out.failed += 1;
                    out.first_failure.get_or_insert(format!("transport: {e}"));
                    if retries < 3 && self.deadline.is_none() {
                        retries += 1;
                        pending = Some(seq);
                    }
                }
            }
        }
        out
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request on a fresh connection (setup and probes).
pub async fn once(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    let mut s = connect(addr).await?;
    s.ready().await.map_err(|e| e.to_string())?;
    let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// The start of a body, on one line, for error reports.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `q`-quantile (0..=1) of sorted latencies, in microseconds.
pub fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i]
}
