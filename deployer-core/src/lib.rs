//! The shared vocabulary of `deployer`: the [`Deployer`] trait every compute target implements,
//! the `deployer.toml` [manifest](manifest) model and its validation, the artifacts and
//! [outcomes](Outcome) a deploy produces (and the item-level [changes] of a config set),
//! [progress events](progress), and the
//! [polling helpers](poll) that every wait is built on.
//!
//! This crate knows no AWS service, no Docker and no terminal: it is plain data and plain
//! async code, so that each deployer crate (`deployer-ecs`, `deployer-agentcore`, …) and the
//! `cli` that composes them agree on one shape without depending on each other.
//!
//! # Using it alone
//!
//! Load and validate a manifest, then drive a target through [`deploy()`]:
//!
//! ```no_run
//! # async fn demo(target: &dyn deployer_core::Deployer, wanted: deployer_core::Artifact)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use deployer_core::{Manifest, Progress, deploy, poll::PollPolicy};
//!
//! let manifest = Manifest::load("deployer.toml")?;
//! let service = &manifest.services["app-api"];
//! let progress = Progress::discard(&service.name);
//! let outcome = deploy(target, &wanted, &progress, &service.wait_policy()).await?;
//! println!("{}: {:?}", outcome.service, outcome.action);
//! # Ok(()) }
//! ```
//!
//! `examples/manifest-check.rs` is a complete program that loads and validates a manifest and
//! prints its services, stages, targets and lookups: `cargo run -p deployer-core --example
//! manifest-check -- [path/to/deployer.toml]`.
#![warn(missing_docs)]

mod artifact;
pub mod changes;
mod deploy;
pub mod diagnosis;
mod error;
pub mod manifest;
pub mod poll;
pub mod progress;

pub use artifact::{Artifact, ConfigArtifact, ImageArtifact, ZipArtifact};
pub use changes::{AttributeChange, Change, Changes, ItemChange};
pub use deploy::{Action, Applied, Deployer, LiveState, Outcome, Presence, STACK_NAME_TAG, deploy};
pub use diagnosis::{ContainerExit, Diagnosis, LogLine, LogSource, StoppedTask};
pub use error::{DeployError, cause_chain, one_line};
pub use manifest::{Kind, Manifest, Service};
pub use progress::{Fence, Phase, Progress, ProgressEvent, ProgressSink};
