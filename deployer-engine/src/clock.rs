//! Wall-clock time for lock claims, behind a trait so that tests can skew it.
//!
//! Only the lock reads the wall clock: a claim says when it was renewed, and a waiter on
//! another machine compares that with its own clock. Durations inside one run (how long a
//! claim stays valid, deadlines of waits) use tokio's monotonic clock instead, which tests
//! pause and advance.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock the lock writes into claims and compares them with.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;

    /// Now in milliseconds since the Unix epoch (0 before it).
    fn now_ms(&self) -> u64 {
        millis(self.now())
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
