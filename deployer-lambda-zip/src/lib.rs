//! Lambda deployer for zip functions: the deployment package is built in process from the
//! service's `source` directory — no Docker, no registry — and uploaded only when its SHA-256
//! differs from the function's live `CodeSha256`.
//!
//! - [`package`] builds the deterministic zip (the rules are in its module doc: sorted entries,
//!   fixed timestamps, normalised permissions, fixed deflate level; compressed in parallel,
//!   written in order). The same tree gives the same bytes on every run and machine.
//! - [`LambdaZipDeployer`] (feature `deploy`, on by default) implements
//!   `deployer_core::Deployer`: skip when `base64(sha256(zip))` equals the live `CodeSha256`,
//!   else `UpdateFunctionCode` with the zip inline up to [`MAX_DIRECT_UPLOAD`] or from
//!   `s3_bucket` above it, then wait, publish and alias (shared with the image deployer in
//!   `deployer-lambda`).
//!
//! This crate depends on no image, registry or Docker crate: a cli built with only the
//! `lambda-zip` feature carries none of them (a tidy test checks it). Without the `deploy`
//! feature it does not depend on the AWS SDK either.
//!
//! # Using it alone
//!
//! ```no_run
//! # async fn demo(lambda: aws_sdk_lambda::Client, s3: aws_sdk_s3::Client,
//! #     target: deployer_core::manifest::LambdaZipTarget) -> Result<(), Box<dyn std::error::Error>> {
//! use deployer_core::{Artifact, Progress, deploy, poll::PollPolicy};
//! use deployer_lambda_zip::{LambdaZipDeployer, ZipPackage, package};
//!
//! let zip = package("backend/src/lambdas/render".as_ref(), &["**/__pycache__".into()])?;
//! println!("{} bytes, CodeSha256 {}", zip.size, zip.sha256_b64);
//! let upload = ZipPackage::new(&target, Some(s3), "deployer/acme/render/".into());
//! let deployer = LambdaZipDeployer::new(lambda, target.lambda.clone(), upload);
//! let outcome = deploy(&deployer, &Artifact::Zip(zip), &Progress::discard("render"), &PollPolicy::default()).await?;
//! println!("{:?}", outcome.action);
//! # Ok(()) }
//! ```
//!
//! `examples/lambda-zip-roll.rs` is a complete program that packages a directory and deploys it to
//! one function (the AWS configuration from the standard environment, progress on stderr, the
//! outcome on stdout, a non-zero exit code on failure): `cargo run -p deployer-lambda-zip --example
//! lambda-zip-roll -- --function F <source dir>`.
#![warn(missing_docs)]

#[cfg(feature = "deploy")]
mod deploy;
mod package;

#[cfg(feature = "deploy")]
pub use deploy::{LambdaZipDeployer, MAX_DIRECT_UPLOAD, ZipPackage};
pub use package::{COMPRESSION_LEVEL, ZipError, artifact, package};

#[cfg(test)]
#[cfg(feature = "deploy")]
mod tests;
