//! The server's open connections: how long each has waited for its next request head, and the
//! orders the server gives them all (finish and close, close now).
//!
//! A connection that does not send a complete request head within `header_read_timeout` of
//! connecting, or of its previous request being served, is cut off: a silent client, half a head,
//! a head sent one line at a time. One sweeper task per server looks at every connection a few
//! times per timeout; writing an answer counts as busy, not waiting, and a stall of the process or
//! machine counts only up to half the timeout. A connection's own cost is a
//! few atomic stores per request, where a timer armed and cleared for every head (hyper's own
//! header timeout) cost about a thousand instructions a request on a keep-alive connection.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;

/// `Watch::since` while a request is being served: the head timeout does not run.
const SERVING: u64 = u64::MAX;

/// No order: serve.
const SERVE: u8 = 0;
/// Answer the request in flight, then close; an idle connection closes at once.
const FINISH: u8 = 1;
/// Close now.
const CLOSE: u8 = 2;

/// The server's open connections and their sweeper's clock.
pub struct Connections {
    open: Mutex<Vec<Option<Arc<Watch>>>>,
    /// Where the sweeper's clock starts.
    epoch: Instant,
    /// The sweeper's clock, in milliseconds: the time a connection notes when it starts to wait, a
    /// clock read the request path does not make. It runs with the real one (`epoch`) from sweep
    /// to sweep, except across a stall ([`Connections::sweep`]).
    now: AtomicU64,
    /// Milliseconds since `epoch` at the last sweep.
    swept: AtomicU64,
    /// How long a connection may wait for a complete head.
    timeout: Duration,
    /// Told when the last open connection closes.
    emptied: tokio::sync::Notify,
}

/// One connection as the server and its sweeper see it.
#[derive(Debug)]
struct Watch {
    /// Milliseconds on the sweeper's clock since which the connection has waited for a request
    /// head, or [`SERVING`].
    since: AtomicU64,
    /// [`SERVE`], [`FINISH`] or [`CLOSE`].
    order: AtomicU8,
    /// Wakes the connection's task when it is given an order.
    waker: AtomicWaker,
}

impl Watch {
    /// Gives the connection `order` (a later order wins over an earlier one) and wakes it.
    fn order(&self, order: u8) {
        self.order.fetch_max(order, Ordering::AcqRel);
        self.waker.wake();
    }
}

/// A connection's place among the open ones; dropping it takes the connection off the list.
pub struct Enrolled {
    connections: Arc<Connections>,
    slot: usize,
    watch: Arc<Watch>,
}

impl Enrolled {
    /// A request head has arrived: the head timeout stops until it is answered.
    pub fn serving(&self) {
        self.watch.since.store(SERVING, Ordering::Relaxed);
    }

    /// A request has been answered: the connection waits for its next head from now on.
    pub fn waiting(&self) {
        self.watch.since.store(
            self.connections.now.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// `io`, the connection's socket, with every write that moves bytes counted as the connection
    /// being busy: a long answer (a state export of a million grants takes seconds to send) is
    /// still being written after its request is answered, and is not a client that sends no head.
    /// Reads do not count: a head sent a byte at a time is cut off all the same.
    pub fn io<T>(&self, io: T) -> Watched<T> {
        Watched {
            io,
            watch: self.watch.clone(),
            connections: self.connections.clone(),
        }
    }

    /// Runs `conn` (hyper's connection future) until it ends or is told to close. `finish` is
    /// called once when the server asks it to answer what it is serving and close
    /// (`graceful_shutdown`).
    pub async fn run<C, T>(
        &self,
        conn: Pin<&mut C>,
        mut finish: impl FnMut(Pin<&mut C>),
    ) -> Option<T>
    where
        C: Future<Output = T>,
    {
        let mut conn = conn;
        let mut finishing = false;
        poll_fn(|cx| loop {
            let order = self.watch.order.load(Ordering::Acquire);
            if order == CLOSE {
                return Poll::Ready(None);
            }
            if order == FINISH && !finishing {
                finishing = true;
                finish(conn.as_mut());
            }
            if let Poll::Ready(ended) = conn.as_mut().poll(cx) {
                return Poll::Ready(Some(ended));
            }
            self.watch.waker.register(cx.waker());
            // An order given before the waker was registered woke no one: look once more.
            if self.watch.order.load(Ordering::Acquire) == order {
                return Poll::Pending;
            }
        })
        .await
    }
}

/// A connection's socket, as [`Enrolled::io`] gives it to hyper.
pub struct Watched<T> {
    io: T,
    watch: Arc<Watch>,
    connections: Arc<Connections>,
}

impl<T> Watched<T> {
    /// Bytes went out: the connection is writing an answer, not waiting for a head.
    fn wrote<E>(&self, written: &Poll<Result<usize, E>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0)
            && self.watch.since.load(Ordering::Relaxed) != SERVING
        {
            let now = self.connections.now.load(Ordering::Relaxed);
            self.watch.since.store(now, Ordering::Relaxed);
        }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Drop for Enrolled {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = open.get_mut(self.slot) {
            *slot = None;
        }
        while open.last().is_some_and(Option::is_none) {
            open.pop();
        }
        if open.is_empty() {
            self.connections.emptied.notify_waiters();
        }
    }
}

impl Connections {
    /// No connection yet; heads must be complete within `timeout`.
    pub fn new(timeout: Duration) -> Arc<Connections> {
        Arc::new(Connections {
            open: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            now: AtomicU64::new(0),
            swept: AtomicU64::new(0),
            timeout,
            emptied: tokio::sync::Notify::new(),
        })
    }

    /// Waits until no connection is open.
    pub async fn closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            let mut emptied = std::pin::pin!(emptied);
            // Registered before looking, so that a last close in between is not missed.
            emptied.as_mut().enable();
            if self
                .open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
                return;
            }
            emptied.await;
        }
    }

    /// Adds a new connection, waiting for its first head from now.
    pub fn enroll(self: &Arc<Self>) -> Enrolled {
        let watch = Arc::new(Watch {
            since: AtomicU64::new(self.now.load(Ordering::Relaxed)),
            order: AtomicU8::new(SERVE),
            waker: AtomicWaker::new(),
        });
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match open.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                open.push(None);
                open.len() - 1
            }
        };
        open[slot] = Some(watch.clone());
        Enrolled {
            connections: self.clone(),
            slot,
            watch,
        }
    }

    /// Asks every open connection to answer the request in flight and close.
    pub fn finish_all(&self) {
        self.order_all(FINISH);
    }

    /// Closes every open connection now.
    pub fn close_all(&self) {
        self.order_all(CLOSE);
    }

    fn order_all(&self, order: u8) {
        for watch in self.snapshot() {
            watch.order(order);
        }
    }

    fn snapshot(&self) -> Vec<Arc<Watch>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.iter().flatten().cloned().collect()
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// How often the sweeper looks: four times per timeout, so a connection is cut off between
    /// the timeout and one and a half times it.
    fn period(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(1))
    }

    /// Cuts off every connection that has waited longer than the timeout for a head, and moves
    /// the clock connections read. Returns how many were cut off.
    pub fn sweep(&self) -> usize {
        self.sweep_at(self.millis())
    }

    /// [`Connections::sweep`] at `real` milliseconds since `epoch`. The sweeper's clock moves as
    /// far as the real one has since the last sweep, but never more than two periods (half the
    /// timeout): a sweep that comes that late means the process or the machine stalled (a laptop
    /// that slept, a paused virtual machine, a stopped process, an overloaded runtime), and a
    /// stall is not the clients' waiting. Counted in full, it would cut off every connection at
    /// once on waking, a long answer still being written included, before any of them could
    /// write or send again.
    fn sweep_at(&self, real: u64) -> usize {
        let since_last = real.saturating_sub(self.swept.swap(real, Ordering::Relaxed));
        let most = 2 * u64::try_from(self.period().as_millis()).unwrap_or(u64::MAX / 4);
        let now = self.now.load(Ordering::Relaxed) + since_last.min(most);
        self.now.store(now, Ordering::Relaxed);
        // A connection may have noted a clock up to one period old; count that in its favour.
        let limit = u64::try_from((self.timeout + self.period()).as_millis()).unwrap_or(u64::MAX);
        let mut cut = 0;
        for watch in self.snapshot() {
            let since = watch.since.load(Ordering::Relaxed);
            if since != SERVING && now.saturating_sub(since) > limit {
                tracing::debug!("a connection sent no complete request head in time; closing it");
                watch.order(CLOSE);
                cut += 1;
            }
        }
        cut
    }

    /// Sweeps four times per timeout until the task is dropped.
    pub async fn sweeper(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.period());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.sweep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sweeps every 50 ms; the tests move the sweeper's clock themselves ([`Connections::sweep_at`]),
    /// so a busy machine's pauses between their steps do not count.
    const TIMEOUT: Duration = Duration::from_millis(200);

    /// The sweeps of a server with [`TIMEOUT`], one period (50 ms) apart, from `from` to `to`
    /// milliseconds of real time: how many connections each cut off, in all.
    fn sweeps(connections: &Connections, from: u64, to: u64) -> usize {
        (from..=to)
            .step_by(50)
            .map(|real| connections.sweep_at(real))
            .sum()
    }

    #[test]
    fn a_connection_waiting_past_the_timeout_is_told_to_close_and_one_being_served_is_not() {
        let connections = Connections::new(TIMEOUT);
        let waiting = connections.enroll();
        let served = connections.enroll();
        served.serving();
        // Cut off past the timeout and a period (250 ms), not before.
        assert_eq!(sweeps(&connections, 50, 250), 0);
        assert_eq!(connections.sweep_at(300), 1);
        assert_eq!(waiting.watch.order.load(Ordering::Relaxed), CLOSE);
        assert_eq!(served.watch.order.load(Ordering::Relaxed), SERVE);
        // Answered: it waits again from the sweeper's clock, and is not cut off at once.
        served.waiting();
        assert_eq!(connections.sweep_at(350), 1, "only the first is still over");
        assert_eq!(served.watch.order.load(Ordering::Relaxed), SERVE);
        assert_eq!(sweeps(&connections, 400, 550), 4, "the first, each time");
        assert_eq!(connections.sweep_at(600), 2, "and now the second");
    }

    #[test]
    fn the_sweeper_tells_real_time_from_a_stall() {
        let connections = Connections::new(TIMEOUT);
        let waiting = connections.enroll();
        connections.sweep_at(50);
        // Ten seconds pass between two sweeps: the machine stalled. The clock moves two periods.
        assert_eq!(connections.sweep_at(10_050), 0, "not cut off by a stall");
        assert_eq!(connections.now.load(Ordering::Relaxed), 150);
        assert_eq!(waiting.watch.order.load(Ordering::Relaxed), SERVE);
        // Time that passes with the sweeper running counts in full.
        assert_eq!(sweeps(&connections, 10_100, 10_150), 0);
        assert_eq!(connections.sweep_at(10_200), 1);
        // Through real time, the sweeps of the server itself cut it off as well.
        let connections = Connections::new(TIMEOUT);
        let _waiting = connections.enroll();
        assert_eq!(connections.sweep(), 0);
        let started = Instant::now();
        let mut cut = 0;
        while cut == 0 && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(connections.period());
            cut = connections.sweep();
        }
        assert_eq!(cut, 1);
    }

    #[tokio::test]
    async fn writing_an_answer_counts_as_busy_and_reading_does_not() {
        use hyper::rt::{Read, Write};
        let connections = Connections::new(TIMEOUT);
        let conn = connections.enroll();
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut io = conn.io(hyper_util::rt::TokioIo::new(ours));
        assert_eq!(sweeps(&connections, 50, 200), 0);
        // Writing moves the time the connection has waited since (to 200 ms).
        let written =
            std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"HTTP/1.1 200 OK"));
        assert_eq!(written.await.unwrap(), 15);
        assert_eq!(
            sweeps(&connections, 250, 450),
            0,
            "a connection writing is not cut off"
        );
        // Reading does not: a client trickling its head is cut off all the same.
        tokio::io::AsyncWriteExt::write_all(&mut theirs, b"G")
            .await
            .unwrap();
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8];
        let mut read = hyper::rt::ReadBuf::uninit(&mut buf);
        std::future::poll_fn(|cx| Pin::new(&mut io).poll_read(cx, read.unfilled()))
            .await
            .unwrap();
        assert_eq!(read.filled(), b"G");
        assert_eq!(connections.sweep_at(500), 1);
    }

    #[test]
    fn places_are_reused_and_the_list_shrinks_as_connections_close() {
        let connections = Connections::new(Duration::from_secs(10));
        let a = connections.enroll();
        let b = connections.enroll();
        assert_eq!((a.slot, b.slot), (0, 1));
        drop(a);
        let c = connections.enroll();
        assert_eq!(c.slot, 0);
        drop(b);
        drop(c);
        assert!(connections.open.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn closed_waits_for_the_last_connection() {
        let connections = Connections::new(Duration::from_secs(10));
        connections.closed().await;
        let (a, b) = (connections.enroll(), connections.enroll());
        let waiter = tokio::spawn({
            let connections = connections.clone();
            async move { connections.closed().await }
        });
        drop(b);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one is still open");
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("told when the last one closed")
            .unwrap();
    }

    #[test]
    fn a_later_order_wins() {
        let connections = Connections::new(Duration::from_secs(10));
        let a = connections.enroll();
        connections.close_all();
        connections.finish_all();
        assert_eq!(a.watch.order.load(Ordering::Relaxed), CLOSE);
    }
}
