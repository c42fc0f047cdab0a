//! The Lambda machinery shared by `deployer-lambda-image` and `deployer-lambda-zip`: reading
//! a function, waiting until it can be updated, `UpdateFunctionCode` with conflict retries,
//! waiting until the update settled, publishing a version and pointing an alias at it, and the
//! package-type and architecture checks. It builds no artifact: the two deployer crates bring
//! the [`Code`] (an image URI, or a zip uploaded directly or through S3).
//!
//! # The flow
//!
//! 1. [`Function::read_live`]: `GetFunction` (+ `GetAlias` and the aliased version's
//!    configuration, or `ListVersionsByFunction` when publishing without an alias). A function
//!    of the other package type, or (image functions) on another architecture, is a
//!    `DeployError::Mismatch` before anything is sent.
//! 2. [`Function::is_current`]: the code of `$LATEST` is the wanted one, its last update
//!    succeeded and, with `publish`, a published version (the alias's, when there is one)
//!    holds that same code. [`Function::serves`]: what a record may claim — with an alias, the
//!    code of the version the alias points at, which a rollback moves without `$LATEST`.
//! 3. [`Function::apply`]: poll until `LastUpdateStatus` is not `InProgress` and `State` is not
//!    `Pending`, then `UpdateFunctionCode`, retried while Lambda answers
//!    `ResourceConflictException`. It is skipped only when [`code_is_live`]: `$LATEST` names
//!    the wanted code and its last update did not fail (a failed one is sent again).
//! 4. [`Function::wait`]: poll until `LastUpdateStatus` is `Successful` (`Failed` is an error
//!    at once, carrying `LastUpdateStatusReason`), then `PublishVersion`, wait for the version
//!    to leave `Pending`, and `UpdateAlias` (or `CreateAlias`).
//!
//! Every mutating call (`UpdateFunctionCode`, `PublishVersion`, `UpdateAlias`, `CreateAlias`,
//! each retry included) is preceded by `Progress::before_mutation`: a run that lost its deploy
//! lock gets `DeployError::Fenced` back and the call is not made.
//!
//! Environment variables of a function are secrets: no summary, progress message or error
//! built here contains them (they are never even copied out of the SDK's responses). SDK
//! errors are classified and shown in one line by `deployer_aws`.
//!
//! [`LambdaDeployer`] is the one `deployer_core::Deployer` over a [`Function`]: the two
//! deployer crates give it their [`Package`] (how the wanted artifact becomes [`Code`]).
//!
//! # Using it alone
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_lambda::Client, target: deployer_core::manifest::LambdaTarget,
//! #     wanted: deployer_core::Artifact) -> Result<(), deployer_core::DeployError> {
//! use deployer_core::Progress;
//! use deployer_lambda::{Code, Function, PackageKind};
//!
//! let function = Function::new(client, target, PackageKind::Image);
//! let progress = Progress::discard("api");
//! let live = function.read_live().await?;
//! if !function.is_current(&live, &wanted) {
//!     let code = Code::ImageUri(wanted.deploy_id());
//!     let applied = function.apply(&live, Some(code), None, wanted.deploy_id(), &progress).await?;
//!     let applied = function.wait(&applied, &Function::default_policy(), &progress).await?;
//!     println!("version {:?}", applied.ids.get(deployer_lambda::ids::VERSION));
//! }
//! # Ok(()) }
//! ```
//!
//! `examples/lambda-function.rs` is a complete program that reads an image function and, given an
//! image, points it there step by step (the AWS configuration from the standard environment,
//! progress on stderr, the outcome on stdout, a non-zero exit code on failure): `cargo run -p
//! deployer-lambda --example lambda-function -- --function F [<image@digest>]`.
#![warn(missing_docs)]

mod deployer;
mod error;
mod function;

pub use deployer::{LambdaDeployer, Package};
pub use function::{Code, Function, PackageKind, architecture_for, code_is_live};

/// The keys of `LiveState::ids` and `Applied::ids` for Lambda functions.
///
/// Live state: [`FUNCTION`](ids::FUNCTION), [`CODE_SHA256`](ids::CODE_SHA256),
/// [`LAST_MODIFIED`](ids::LAST_MODIFIED); with an alias that exists [`ALIAS`](ids::ALIAS),
/// [`VERSION`](ids::VERSION) (the version it points at),
/// [`VERSION_CODE_SHA256`](ids::VERSION_CODE_SHA256) and, when weighted,
/// [`ALIAS_ROUTING`](ids::ALIAS_ROUTING); publishing without an alias, `VERSION` and
/// `VERSION_CODE_SHA256` of the newest published version.
///
/// Applied: `FUNCTION`, [`OLD_CODE_SHA256`](ids::OLD_CODE_SHA256) and `CODE_SHA256`;
/// publishing, [`OLD_VERSION`](ids::OLD_VERSION) (the version the alias pointed at, or the
/// newest published one: what a rollback goes back to) and `VERSION` (the one published);
/// with an alias, `ALIAS`.
pub mod ids {
    /// The function ARN.
    pub const FUNCTION: &str = "function";
    /// `CodeSha256` of `$LATEST` (after an update: of the new code).
    pub const CODE_SHA256: &str = "code_sha256";
    /// `CodeSha256` of `$LATEST` before the update.
    pub const OLD_CODE_SHA256: &str = "old_code_sha256";
    /// `LastModified` of `$LATEST`.
    pub const LAST_MODIFIED: &str = "last_modified";
    /// `LastUpdateStatus` of `$LATEST` (`Successful`, `InProgress`, `Failed`), when Lambda
    /// reports one: only a `Successful` update of the wanted code is current.
    pub const LAST_UPDATE_STATUS: &str = "last_update_status";
    /// The alias name.
    pub const ALIAS: &str = "alias";
    /// A published version: the alias's or the newest (live), the one published (applied).
    pub const VERSION: &str = "version";
    /// The published version before the deploy: what a rollback points the alias back at.
    pub const OLD_VERSION: &str = "old_version";
    /// `CodeSha256` of the live [`VERSION`].
    pub const VERSION_CODE_SHA256: &str = "version_code_sha256";
    /// The alias's additional version weights (`version=weight`), when it has any.
    pub const ALIAS_ROUTING: &str = "alias_routing";
    /// Set by [`Function::restore`](crate::Function::restore): the version a rollback pointed
    /// the alias back at. A wait on such a record only confirms the alias; it publishes nothing.
    pub const RESTORED_VERSION: &str = "restored_version";
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
