//! Taking turns at one world: work for a world that is busy is done by the task already at it.
//!
//! Requests for one world come in on every worker thread, and only one at a time may hold the
//! world. A request that found its world busy used to give way (yield, look again) and then sleep on
//! the world's lock, and every request moved the world's data to its own core: with two workers on
//! one world, that traffic cost more than the work itself on busy worlds. Here a request that finds
//! the world busy leaves its work in the world's queue and waits without holding a thread; the
//! task at work does the queued work after its own, on the core whose cache already holds the world,
//! and wakes each owner with its answer.
//!
//! The work queued is only what needs the world: the server reads and checks a request (keys,
//! parameters, the operation's parse) on the thread that received it before it takes its turn
//! (`crate::persist::prepare`).
//!
//! A pass does at most [`PASS`] queued works; the next one waiting then takes the turn and goes on
//! itself, so no task answers its own client only after an unbounded stream of others' work.
//! Work is done in the order it was queued. [`Turns`] decides only who does the work and when,
//! never what it does: the world's own lock still guards every change.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use tokio::sync::oneshot;

/// Queued works one task does in a pass before handing the turn to the next waiting one.
pub const PASS: usize = 16;

/// Who is at a world, and what waits for it.
#[derive(Debug, Default)]
pub struct Turns {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether a task is at the world (doing its own work or the queue's).
    busy: bool,
    queue: VecDeque<Box<dyn Waiting>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("busy", &self.busy)
            .field("queued", &self.queue.len())
            .finish()
    }
}

/// A queued work and the way back to its owner.
trait Waiting: Send {
    /// Does the work here and sends the owner its result (dropped if the owner is gone).
    fn run(self: Box<Self>);
    /// Gives the work back to its owner, who then holds the turn; false if the owner is gone (the
    /// work is dropped undone, and the turn stays with the caller).
    fn hand_over(self: Box<Self>, turns: &Arc<Turns>) -> bool;
}

/// What a waiting owner hears.
enum Outcome<F, T> {
    /// Its work was done by the task at the world.
    Done(T),
    /// The turn is its own now: it does its work, then the queue's.
    Turn(Turn<F>),
}

/// The turn at a world, handed to a waiting owner with its work. Should the owner be gone before
/// it takes it (its client hung up), dropping it passes the turn on: a world is never left busy
/// with no one at it.
struct Turn<F> {
    turns: Arc<Turns>,
    work: Option<F>,
}

impl<F> Drop for Turn<F> {
    fn drop(&mut self) {
        if self.work.take().is_some() {
            self.turns.pass_on();
        }
    }
}

struct Entry<F, T> {
    work: F,
    reply: oneshot::Sender<Outcome<F, T>>,
}

impl<F, T> Waiting for Entry<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>) {
        let Entry { work, reply } = *self;
        let _ = reply.send(Outcome::Done(work()));
    }

    fn hand_over(self: Box<Self>, turns: &Arc<Turns>) -> bool {
        let Entry { work, reply } = *self;
        let turn = Turn {
            turns: turns.clone(),
            work: Some(work),
        };
        match reply.send(Outcome::Turn(turn)) {
            Ok(()) => true,
            Err(Outcome::Turn(mut turn)) => {
                // Not passed on by its drop: the caller goes on with the queue.
                turn.work = None;
                false
            }
            Err(Outcome::Done(_)) => false,
        }
    }
}

/// What [`Turns::start`] gives: the result of work done at once, or the wait for it.
pub enum Taken<T, W> {
    /// The work was done (`None` if it panicked).
    Done(Option<T>),
    /// The work is queued; the future gives its result.
    Queued(W),
}

/// Each world's [`Turns`], kept beside the model by [`crate::app::App`] (as its stored answers and
/// request log are), and forgotten with the world by a reset.
#[derive(Debug, Default)]
pub struct WorldTurns {
    /// foldhash, not SipHash: every request for a world looks it up.
    worlds: DashMap<String, Arc<Turns>, foldhash::fast::RandomState>,
}

impl WorldTurns {
    /// The turns at the world named `world`, made on first use. Ask only for worlds that exist, so
    /// that requests with keys that never make a world leave nothing behind.
    pub fn of(&self, world: &str) -> Arc<Turns> {
        if let Some(turns) = self.worlds.get(world) {
            return turns.clone();
        }
        self.worlds.entry(world.to_string()).or_default().clone()
    }

    /// Forgets the turns at the world named `world`. Requests still waiting there are served as
    /// they would have been; the world's next request starts afresh (the world's lock keeps the two
    /// apart, should they meet).
    pub fn remove(&self, world: &str) {
        self.worlds.remove(world);
    }
}

impl Turns {
    /// No one at the world, nothing waiting.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing here panics while holding it; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Does `work` now when no one is at the world, and then what was queued meanwhile; otherwise
    /// queues it and waits for its result, done by the task at the world (or for the turn, handed
    /// over after a pass). `work` should not panic (the server's works catch their own panics):
    /// one that does is contained, and its owner gets `None`.
    pub async fn take<F, T>(self: &Arc<Self>, work: F) -> Option<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.start(work) {
            Taken::Done(result) => result,
            Taken::Queued(wait) => wait.await,
        }
    }

    /// [`Turns::take`] in two steps: `work` is done now, on this thread, when no one is at the
    /// world ([`Taken::Done`]); otherwise it is queued, and what is returned is the wait for its
    /// result ([`Taken::Queued`]). The wait holds only the way back, not the work: a caller whose
    /// work is large awaits a small future, and one that found the world free awaits none.
    pub fn start<F, T>(
        self: &Arc<Self>,
        work: F,
    ) -> Taken<T, impl std::future::Future<Output = Option<T>> + Send + 'static>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let waiting = {
            let mut state = self.state();
            if state.busy {
                let (reply, answer) = oneshot::channel();
                state.queue.push_back(Box::new(Entry { work, reply }));
                Err(answer)
            } else {
                state.busy = true;
                Ok(work)
            }
        };
        match waiting {
            Ok(work) => Taken::Done(self.work_and_drain(work)),
            Err(answer) => {
                let turns = self.clone();
                // A task dropped while waiting leaves its work queued (done, its result dropped),
                // never a busy world.
                Taken::Queued(async move {
                    match answer.await {
                        Ok(Outcome::Done(result)) => Some(result),
                        Ok(Outcome::Turn(mut turn)) => {
                            let work = turn.work.take()?;
                            turns.work_and_drain(work)
                        }
                        // Dropped undone: only if the task at the world panicked outside every
                        // work, which `drain` does not.
                        Err(_) => None,
                    }
                })
            }
        }
    }

    /// Does `work` while holding the turn, then what is queued; nothing here awaits.
    fn work_and_drain<F, T>(self: &Arc<Self>, work: F) -> Option<T>
    where
        F: FnOnce() -> T,
    {
        let result = catch_unwind(AssertUnwindSafe(work)).ok();
        self.drain();
        result
    }

    /// Does up to [`PASS`] queued works, then hands the turn to the next waiting owner, or gives the
    /// world up when nothing waits.
    fn drain(self: &Arc<Self>) {
        for _ in 0..PASS {
            let Some(next) = self.next_or_free() else {
                return;
            };
            // A work that panics costs its owner its answer (the sender is dropped), not the
            // others waiting behind it.
            let _ = catch_unwind(AssertUnwindSafe(|| next.run()));
        }
        self.pass_on();
    }

    /// The first work waiting, taken from the queue; when none is, the world is given up (in the same
    /// step, so that a work queued just after finds it free and is done by its owner).
    fn next_or_free(&self) -> Option<Box<dyn Waiting>> {
        let mut state = self.state();
        let next = state.queue.pop_front();
        if next.is_none() {
            state.busy = false;
        }
        next
    }

    /// Hands the turn to the first waiting owner still there, or gives the world up when none is.
    fn pass_on(self: &Arc<Self>) {
        loop {
            let Some(next) = self.next_or_free() else {
                return;
            };
            if next.hand_over(self) {
                return;
            }
            // Its owner is gone: the turn is still ours, for the next one.
        }
    }

    /// Works waiting now (for tests and for the curious).
    pub fn waiting(&self) -> usize {
        self.state().queue.len()
    }

    /// Whether a task is at the world now.
    pub fn busy(&self) -> bool {
        self.state().busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn an_idle_world_is_worked_at_once() {
        let turns = Arc::new(Turns::new());
        assert_eq!(turns.take(|| 7).await, Some(7));
        assert!(!turns.busy());
        assert_eq!(turns.waiting(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn works_run_one_at_a_time_in_the_order_they_were_queued() {
        let turns = Arc::new(Turns::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        // The first holds the world until every other one is queued behind it.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = {
            let turns = turns.clone();
            let order = order.clone();
            tokio::spawn(async move {
                turns
                    .take(move || {
                        held.recv().expect("released");
                        order.lock().unwrap().push(0);
                    })
                    .await
            })
        };
        while !turns.busy() {
            tokio::task::yield_now().await;
        }
        let n = 3 * PASS + 1;
        let mut others = Vec::new();
        for i in 1..=n {
            let (mine, inside, order) = (turns.clone(), inside.clone(), order.clone());
            others.push(tokio::spawn(async move {
                mine.take(move || {
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two at once");
                    order.lock().unwrap().push(i);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    i * 10
                })
                .await
            }));
            // Queued in this order.
            while turns.waiting() < i {
                tokio::task::yield_now().await;
            }
        }
        release.send(()).expect("the first is waiting");
        assert_eq!(first.await.expect("joined"), Some(()));
        for (i, other) in others.into_iter().enumerate() {
            assert_eq!(other.await.expect("joined"), Some((i + 1) * 10));
        }
        assert_eq!(*order.lock().unwrap(), (0..=n).collect::<Vec<_>>());
        assert!(!turns.busy());
        assert_eq!(turns.waiting(), 0);
    }

    /// A task at the world until `release` is sent: (its handle, `release`).
    async fn hold(
        turns: &Arc<Turns>,
    ) -> (
        tokio::task::JoinHandle<Option<bool>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = {
            let turns = turns.clone();
            tokio::spawn(async move { turns.take(move || held.recv().is_ok()).await })
        };
        while !turns.busy() {
            tokio::task::yield_now().await;
        }
        (first, release)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_work_costs_its_owner_only() {
        let turns = Arc::new(Turns::new());
        let (first, release) = hold(&turns).await;
        let bad = {
            let turns = turns.clone();
            tokio::spawn(async move { turns.take(|| -> u32 { panic!("a bug") }).await })
        };
        while turns.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        let good = {
            let turns = turns.clone();
            tokio::spawn(async move { turns.take(|| 5u32).await })
        };
        while turns.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("the first is waiting");
        assert_eq!(first.await.expect("joined"), Some(true));
        assert_eq!(bad.await.expect("joined"), None);
        assert_eq!(good.await.expect("joined"), Some(5));
        assert!(!turns.busy());
        // The world is free again for the next.
        assert_eq!(turns.take(|| 1).await, Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_handed_to_an_owner_who_left_goes_to_the_next() {
        let turns = Arc::new(Turns::new());
        let (first, release) = hold(&turns).await;
        let done = Arc::new(AtomicUsize::new(0));
        let mut waiting = Vec::new();
        for _ in 0..PASS + 2 {
            let (mine, done) = (turns.clone(), done.clone());
            let n = turns.waiting();
            waiting.push(tokio::spawn(async move {
                mine.take(move || done.fetch_add(1, Ordering::SeqCst)).await
            }));
            while turns.waiting() == n {
                tokio::task::yield_now().await;
            }
        }
        // The owner whose turn comes after the first pass leaves before it comes.
        let gone = waiting.remove(PASS);
        gone.abort();
        let _ = gone.await;
        release.send(()).expect("the first is waiting");
        assert_eq!(first.await.expect("joined"), Some(true));
        for w in waiting {
            assert!(w.await.expect("joined").is_some());
        }
        assert_eq!(
            done.load(Ordering::SeqCst),
            PASS + 1,
            "all but the one that left"
        );
        assert!(!turns.busy());
    }

    #[tokio::test]
    async fn a_turn_its_owner_never_took_passes_on_when_dropped() {
        let turns = Arc::new(Turns::new());
        type Work = fn() -> u32;
        let queue = |turns: &Arc<Turns>, work: Work| {
            let (reply, answer) = oneshot::channel::<Outcome<Work, u32>>();
            turns
                .state()
                .queue
                .push_back(Box::new(Entry { work, reply }));
            answer
        };
        turns.state().busy = true;
        let first = queue(&turns, || 1);
        let second = queue(&turns, || 2);
        // The turn goes to the first owner, who is gone before taking it.
        turns.pass_on();
        assert!(turns.busy());
        drop(first);
        let second = tokio::time::timeout(std::time::Duration::from_secs(10), second);
        match second.await.expect("the turn was lost") {
            Ok(Outcome::Turn(turn)) => {
                assert!(turns.busy(), "the second holds it now");
                // And, gone too, gives the world up.
                drop(turn);
            }
            _ => panic!("the turn did not reach the second owner"),
        }
        assert!(!turns.busy());
        assert_eq!(turns.waiting(), 0);
    }

    #[test]
    fn a_world_keeps_its_turns_until_it_is_reset() {
        let worlds = WorldTurns::default();
        let a = worlds.of("sk_test_a");
        assert!(Arc::ptr_eq(&a, &worlds.of("sk_test_a")));
        assert!(!Arc::ptr_eq(&a, &worlds.of("sk_test_b")));
        worlds.remove("sk_test_a");
        assert!(!Arc::ptr_eq(&a, &worlds.of("sk_test_a")));
    }
}
