//! What a request's outcome depends on besides the request itself and the world it is applied to:
//! the instants read from the system clock, the random words and names drawn, and the environment
//! variables read.
//!
//! Every such read goes through this module. Normally it simply reads the source. While a request
//! is being *recorded* (persistence is on, see `persist`), each value read is also appended to the
//! request's tape; while a stored request is being *replayed* at start-up, each read takes the next
//! value from its tape instead. Replaying the same requests, in the same order, on the same world
//! therefore gives the same world, down to every id and timestamp.
//!
//! The tape is per thread: a request is served synchronously on one thread from the moment it
//! reaches a facade until its reply is built, and nothing it calls awaits.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One value a request read from outside itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// An instant of the system clock, in nanoseconds.
    Now(i64),
    /// A random word.
    Word(u64),
    /// A random name (request ids, signing secrets).
    Name(String),
    /// An environment variable (`None`: unset or not Unicode).
    Env(Option<String>),
}

#[derive(Debug, Default)]
enum Mode {
    #[default]
    Off,
    Recording(Vec<Item>),
    Replaying(VecDeque<Item>),
}

thread_local! {
    static MODE: RefCell<Mode> = const { RefCell::new(Mode::Off) };
    static HELD: Cell<Held> = const { Cell::new(Held::No) };
}

/// Whether this thread's clock is held for a request (see [`hold_clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    No,
    /// Held, not read yet.
    Unread,
    /// Held at this instant.
    At(i64),
}

/// Holds the clock for the request being served on this thread: until the guard is dropped, every
/// read of the clock returns the instant of the first. One request is one instant (all it makes has
/// the same time), and the system clock is read once rather than a dozen times. Only for requests
/// served without a tape: a recorded request keeps every read on its tape, so that requests
/// recorded before and after this change replay the same way.
pub fn hold_clock() -> ClockHold {
    HELD.with(|h| h.set(Held::Unread));
    ClockHold(())
}

/// Lets the clock go when dropped (see [`hold_clock`]).
#[must_use = "the clock is held only while this lives"]
pub struct ClockHold(());

impl Drop for ClockHold {
    fn drop(&mut self) {
        HELD.with(|h| h.set(Held::No));
    }
}

/// Starts recording on this thread (dropping any tape left over).
pub fn record() {
    MODE.with(|m| *m.borrow_mut() = Mode::Recording(Vec::new()));
}

/// Stops recording or replaying on this thread, returning what was recorded (empty when
/// replaying or off).
pub fn stop() -> Vec<Item> {
    MODE.with(|m| match std::mem::take(&mut *m.borrow_mut()) {
        Mode::Recording(items) => items,
        _ => Vec::new(),
    })
}

/// Replays `items` on this thread: the next reads return them, in order. A read the tape does not
/// hold (the code changed between recording and replay) falls back to the real source.
pub fn replay(items: Vec<Item>) {
    MODE.with(|m| *m.borrow_mut() = Mode::Replaying(items.into()));
}

/// Whether this thread is replaying a stored request.
pub fn is_replaying() -> bool {
    MODE.with(|m| matches!(*m.borrow(), Mode::Replaying(_)))
}

/// Reads a value through the tape: `pick` takes it from a replayed item of the right kind, `read`
/// reads it for real, and `wrap` records it.
fn through<T>(
    pick: impl Fn(&Item) -> Option<T>,
    read: impl FnOnce() -> T,
    wrap: impl FnOnce(&T) -> Item,
) -> T {
    MODE.with(|m| {
        let mut mode = m.borrow_mut();
        match &mut *mode {
            Mode::Off => read(),
            Mode::Recording(items) => {
                let value = read();
                items.push(wrap(&value));
                value
            }
            Mode::Replaying(items) => match items.front().and_then(&pick) {
                Some(value) => {
                    items.pop_front();
                    value
                }
                None => read(),
            },
        }
    })
}

/// The system clock, in nanoseconds since the Unix epoch (held: see [`hold_clock`]).
pub fn now() -> i64 {
    let held = HELD.with(Cell::get);
    if let Held::At(t) = held {
        return t;
    }
    let t = through(
        |i| match i {
            Item::Now(t) => Some(*t),
            _ => None,
        },
        || chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX),
        |t| Item::Now(*t),
    );
    if held == Held::Unread && MODE.with(|m| matches!(*m.borrow(), Mode::Off)) {
        HELD.with(|h| h.set(Held::At(t)));
    }
    t
}

/// A random 64-bit word.
pub fn word() -> u64 {
    through(
        |i| match i {
            Item::Word(w) => Some(*w),
            _ => None,
        },
        rand::random::<u64>,
        |w| Item::Word(*w),
    )
}

/// A random name made by `make` (request ids, signing secrets).
pub fn name(make: impl FnOnce() -> String) -> String {
    through(
        |i| match i {
            Item::Name(s) => Some(s.clone()),
            _ => None,
        },
        make,
        |s| Item::Name(s.clone()),
    )
}

/// An environment variable, as `std::env::var` reads it (`None` when unset or not Unicode).
pub fn env_var(key: &str) -> Option<String> {
    through(
        |i| match i {
            Item::Env(v) => Some(v.clone()),
            _ => None,
        },
        || std::env::var(key).ok(),
        |v| Item::Env(v.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_tape_replays_the_same_values() {
        record();
        let t = now();
        let w = word();
        let n = name(|| "req_abc".to_string());
        let e = env_var("CREDIT_EMULATOR_TAPE_TEST_UNSET");
        let tape = stop();
        assert_eq!(tape.len(), 4);

        replay(tape);
        assert!(is_replaying());
        assert_eq!(now(), t);
        assert_eq!(word(), w);
        assert_eq!(name(|| "other".to_string()), n);
        assert_eq!(env_var("CREDIT_EMULATOR_TAPE_TEST_UNSET"), e);
        // The tape is used up: reads go to the real sources again.
        assert_eq!(name(|| "fresh".to_string()), "fresh");
        assert!(stop().is_empty());
        assert!(!is_replaying());
    }

    #[test]
    fn a_held_clock_reads_one_instant_until_let_go() {
        let before = now();
        let held = hold_clock();
        let first = now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(now(), first, "held: the first read's instant");
        assert!(first >= before);
        drop(held);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now() > first, "let go: the clock moves again");
        // A recorded request is not held: each read is its own, and on the tape.
        let _held = hold_clock();
        record();
        let a = now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now() > a);
        assert_eq!(stop().len(), 2);
    }

    #[test]
    fn off_records_nothing() {
        let _ = now();
        assert!(stop().is_empty());
    }
}
