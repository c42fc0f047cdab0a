//! The engine's own tests: the lock protocol, the flows' model test (in-memory store, scripted
//! target, kills and skewed clocks), the scheduler.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod fakes;
mod flows;
mod lock;
mod model;
