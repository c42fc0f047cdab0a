//! Config deployer: runtime configuration shipped from the repository — rows of a DynamoDB
//! table, or SSM parameters — validated, diffed and written item by item, with the same
//! plan, lock, records and rollback as a code deploy. No Docker, no image code.
//!
//! - [`ConfigSet::load`] reads a service's `source` directory (JSON, TOML, YAML: one item per
//!   file, or `items = [...]`), validates every item against the `schema` when one is given and
//!   against what the store can hold, and reports every problem with file, line and failing
//!   rule ([`SourceError`]). Numbers stay exact decimal text from the file to the store. The
//!   set's canonical document ([`set`] fixes its format) hashes to the service's tag.
//! - [`ConfigDeployer`] implements `deployer_core::Deployer`: `read_live` is one read (the
//!   marker of the set last applied), `apply` writes only the difference — DynamoDB in
//!   transactions of up to 100 conditional writes ([`dynamodb`]), SSM one conditional write at
//!   a time ([`parameters`]) — and keeps a content-addressed copy of the set in S3 for
//!   rollback; `wait` checks the store holds the set before the marker is written.
//! - Precedence ([`diff`]): items deployer writes carry its owner mark (`deployer:owner` =
//!   `<project>/<service>`); an item without the mark (IaC, a hand edit) is never changed or
//!   deleted unless the service sets `adopt = true`, an item marked by another service never.
//!   Items the source dropped are deleted only with `prune = true`.
//! - Secret values (the names in `secret`) are `SecureString` parameters and never appear in
//!   a diff, a message or an error ([`Secrets`]).
//!
//! SDK errors are classified and shown through `deployer-aws` (`aws_error.rs`).
//!
//! # Using it alone
//!
//! `examples/config-apply.rs` is a whole program: the items of a directory read and
//! validated, the plan against a DynamoDB table, and with `--apply` the difference written.
//! In short:
//!
//! ```no_run
//! # async fn demo(clients: deployer_config::Clients, target: deployer_core::manifest::ConfigTarget)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use deployer_config::{ConfigDeployer, ConfigSet, Names};
//! use deployer_core::{Artifact, Deployer, Progress};
//!
//! let set = ConfigSet::load(".".as_ref(), &target)?;
//! let wanted = Artifact::Config(set.artifact());
//! let names = Names::of("acme", "/acme", "repos", None);
//! let deployer = ConfigDeployer::new(clients, target, names)?;
//! let live = deployer.read_live().await?;
//! if let Some(changes) = deployer.changes(&live, &wanted).await? {
//!     println!("{}", changes.summary()); // e.g. "2 added, 1 changed, 40 unchanged"
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod aws_error;
mod deploy;
pub mod diff;
pub mod dynamodb;
pub mod parameters;
pub mod schema;
pub mod secret;
pub mod set;
pub mod source;
pub mod value;

pub use deploy::{Clients, ConfigDeployer, Names};
pub use secret::Secrets;
pub use set::{ConfigSet, Layout, OWNER};
pub use source::{Diagnostic, SourceError};

#[cfg(test)]
mod tests;
