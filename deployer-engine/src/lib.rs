//! The deploy engine: what happens to a service between "here is its artifact" and "it is
//! recorded as live", for every command, in one place.
//!
//! A [`Deployer`](deployer_core::Deployer) knows one compute target (read, update, wait). This
//! crate runs it safely: one **state machine per service** whose paths are the commands (plan,
//! build, deploy with or without waiting, wait, rollback, the rollback after a failed smoke
//! check), the **deploy lock** ([`lock`]), the **records** in SSM ([`records`]), the **smoke
//! check**, and the **scheduler** that runs services concurrently with `depends_on` gates and
//! cancellation ([`Engine::run`]). The cli gives it the deployers compiled into its build
//! ([`Targets`]), the image pipeline ([`Artifacts`]) and the smoke checks ([`SmokeChecks`]),
//! and renders the [`ServiceResult`]s.
//!
//! # Invariants
//!
//! - **I1** — `image-tag` and `deploy-state.current` only ever name an artifact whose rollout
//!   completed and whose smoke check passed, and which the service serves when they are
//!   written: `record` reads the live service again right before writing. A re-run of a failed
//!   release fails again or runs its check again; it never records it. (`ssm_write =
//!   "after-push"` is the documented opt-out for the tag parameter.)
//! - **I2** — every mutating call for a service is made while its run holds a valid claim on
//!   the service's lock: each mutating step proves the claim (its id in the store) first, and
//!   the deployers' own mutating calls pass the claim's [`Fence`](deployer_core::Fence). A run
//!   that cannot prove its claim stops before its next change, saying it lost the deploy lock.
//! - **I3** — every wait has a deadline and honours it: `--lock-wait` (every branch of the
//!   lock, take-overs included), rollout timeouts, smoke-check timeouts, the release.
//! - **I4** — after any failure or kill, the next run converges or reports the same failure.
//!
//! The no-op path reads and never writes: a service whose live state runs the wanted
//! artifact and whose records name it costs its live read and its share of one batched
//! `GetParameters`; the lock is taken only when a change is needed, and the decision is made
//! again under it.
//!
//! # Using it alone
//!
//! ```no_run
//! # async fn demo(
//! #     targets: std::sync::Arc<dyn deployer_engine::Targets>,
//! #     artifacts: std::sync::Arc<dyn deployer_engine::Artifacts>,
//! #     smoke: std::sync::Arc<dyn deployer_engine::SmokeChecks>,
//! #     ssm: aws_sdk_ssm::Client,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use deployer_engine::{Engine, Locks, Mode, ServiceInput, SystemClock, ssm::SsmStore};
//!
//! let manifest = Arc::new(deployer_core::Manifest::load("deployer.toml")?);
//! let store = Arc::new(SsmStore::new(ssm));
//! let locks = Locks::new(store.clone(), Arc::new(SystemClock), deployer_engine::lock::DEFAULT_LEASE, "my-tool");
//! let engine = Engine::new(manifest, store, locks, targets, artifacts, smoke);
//! let inputs = vec![ServiceInput { service: "app-api".into(), tag: "c0ffee".into(), ..Default::default() }];
//! for result in engine.run(Mode::Deploy { wait: true }, inputs, std::future::pending()).await {
//!     println!("{}: {}", result.service, result.action);
//! }
//! # Ok(()) }
//! ```
//!
//! `examples/engine-file-target.rs` is a complete program that drives a target of its own (a local
//! file) through the engine, with the lock and the records in SSM (the AWS configuration from the
//! standard environment, progress on stderr, the outcome on stdout, a non-zero exit code on
//! failure): `cargo run -p deployer-engine --example engine-file-target -- --service S
//! <image:tag@digest>`.
#![warn(missing_docs)]

pub mod clock;
mod engine;
mod error;
mod flow;
pub mod lock;
mod outcome;
mod ports;
pub mod records;
#[cfg(feature = "ssm")]
pub mod ssm;
pub mod store;
#[cfg(test)]
mod tests;

pub use clock::{Clock, SystemClock};
pub use engine::{Engine, Mode};
pub use error::EngineError;
pub use flow::restorable;
pub use lock::{Claim, LockError, Locks};
pub use outcome::{Action, Failure, ServiceResult, SmokeResult};
pub use ports::{Artifacts, Built, External, LogTails, ServiceInput, SmokeChecks, Targets};
pub use store::{Entry, MemoryStore, Store, StoreError};
