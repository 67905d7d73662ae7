//! Giving back to the system the memory a dropped world held.
//!
//! A reset drops a world, but the heap keeps the pages it freed: glibc keeps them in its arenas
//! (it gives back only the top of the main heap on its own), and jemalloc returns dirty pages only
//! as its decay advances, which it does while the process allocates. An emulator left idle after a
//! large world was reset would stay at its peak. So the worlds a reset drops are handed to a
//! [`Reclaimer`]: one background thread drops them (dropping a world of a million records takes
//! a while, which no request should wait for) and, once the worlds dropped add up to
//! [`TRIM_WEIGHT`] records, asks the allocator to give its free pages back.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

/// How many records (see [`crate::model::Tenant::weight`]) dropped worlds must add up to before
/// the allocator is asked to give memory back: about a few megabytes. Trimming after every small
/// reset would cost a walk of the heap each time for nothing worth having.
pub const TRIM_WEIGHT: u64 = 10_000;

/// glibc's `malloc_trim(0)`: every arena's free pages go back to the system. The default
/// [`crate::Config::release_memory`], for programs on the system allocator; nothing on other
/// targets.
pub fn trim_system_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its own locks; it
    // takes no pointer and may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Something to drop away from the request that let go of it; dropping it returns its weight.
type Discard = Box<dyn FnOnce() -> u64 + Send>;

/// Drops what it is given on a background thread of its own, started on first use, and gives the
/// memory back to the system once enough has been dropped.
#[derive(Debug)]
pub struct Reclaimer {
    /// The thread's queue; `None` until something is discarded.
    queue: Mutex<Option<Sender<Discard>>>,
    /// How memory goes back to the system.
    release: fn(),
}

impl Reclaimer {
    /// A reclaimer that gives memory back with `release`.
    pub fn new(release: fn()) -> Self {
        Reclaimer {
            queue: Mutex::new(None),
            release,
        }
    }

    /// Hands `drop_it` to the background thread, which runs it (it drops what it holds and says
    /// how many records that was) and gives memory back once the weights add up to
    /// [`TRIM_WEIGHT`]. Never waits for the drop. If no thread can be started, it runs here.
    pub fn discard(&self, drop_it: impl FnOnce() -> u64 + Send + 'static) {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.is_none() {
            let (sender, receiver) = mpsc::channel();
            let release = self.release;
            let started = std::thread::Builder::new()
                .name("credit-emulator-reclaim".into())
                .spawn(move || reclaim(receiver, release));
            if started.is_ok() {
                *queue = Some(sender);
            }
        }
        let unsent = match queue.as_ref() {
            Some(sender) => sender.send(Box::new(drop_it)).err().map(|e| e.0),
            None => Some(Box::new(drop_it) as Discard),
        };
        drop(queue);
        if let Some(drop_it) = unsent {
            if drop_it() >= TRIM_WEIGHT {
                (self.release)();
            }
        }
    }
}

/// The background thread: drops what arrives, in order, and releases memory once the weights
/// dropped since the last release reach [`TRIM_WEIGHT`] and nothing else is waiting (a burst of
/// resets is trimmed once). Ends when its [`Reclaimer`] is dropped.
fn reclaim(queue: Receiver<Discard>, release: fn()) {
    let mut dropped = 0u64;
    while let Ok(drop_it) = queue.recv() {
        dropped = dropped.saturating_add(drop_it());
        while let Ok(drop_it) = queue.try_recv() {
            dropped = dropped.saturating_add(drop_it());
        }
        if dropped >= TRIM_WEIGHT {
            release();
            dropped = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    static RELEASES: AtomicUsize = AtomicUsize::new(0);

    fn count_release() {
        RELEASES.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn heavy_drops_release_memory_once_light_ones_add_up() {
        let reclaimer = Reclaimer::new(count_release);
        let (done, finished) = mpsc::channel();
        // Light worlds alone release nothing; with a heavy one after them, the total passes the
        // mark once: one release, not one per world.
        for weight in [1, 2, TRIM_WEIGHT - 4] {
            reclaimer.discard(move || weight);
        }
        let heavy = vec![0u8; 1 << 20];
        reclaimer.discard(move || {
            drop(heavy);
            done.send(std::thread::current().name().map(str::to_string))
                .ok();
            TRIM_WEIGHT
        });
        let thread = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("the heavy world is dropped");
        assert_eq!(thread.as_deref(), Some("credit-emulator-reclaim"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while RELEASES.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(reclaimer);
        assert_eq!(RELEASES.load(Ordering::SeqCst), 1);
    }
}
