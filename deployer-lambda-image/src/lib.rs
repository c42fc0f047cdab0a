//! Lambda deployer for image functions: points a function whose `PackageType` is `Image` at
//! the image the pipeline built and pushed (`UpdateFunctionCode --image-uri`, digest-pinned),
//! waits until the update settled, and optionally publishes a version and moves an alias.
//!
//! The function must exist (deployer updates code, it creates nothing), hold an image, and run
//! on the architecture the image is built for (`linux/amd64` ↔ `x86_64`, `linux/arm64` ↔
//! `arm64`); otherwise the deploy stops with `DeployError::Mismatch` before anything is sent.
//! An image the function already runs (by digest, or by tag when no digest is known) is left
//! alone: no `UpdateFunctionCode` call. The shared machinery (waits, conflict retries, publish
//! and alias, the meaning of "current", the `Deployer` itself: `deployer_lambda::LambdaDeployer`)
//! lives in `deployer-lambda`; this crate is its [`ImagePackage`].
//!
//! # Using it alone
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_lambda::Client, wanted: deployer_core::Artifact)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use deployer_core::manifest::{LambdaTarget, Platform};
//! use deployer_core::{Progress, deploy, poll::PollPolicy};
//! use deployer_lambda_image::LambdaImageDeployer;
//!
//! let target = LambdaTarget { function: "api".into(), publish: true, alias: Some("live".into()) };
//! let deployer = LambdaImageDeployer::new(
//!     client, // aws_sdk_lambda::Client::new(&sdk_config)
//!     target,
//!     Platform::parse("linux/arm64")?,
//! );
//! // `wanted` is the `Artifact::Image` the image pipeline pushed.
//! let outcome = deploy(&deployer, &wanted, &Progress::discard("api"), &PollPolicy::default()).await?;
//! println!("{:?} {:?}", outcome.action, outcome.ids.get(deployer_lambda::ids::VERSION));
//! # Ok(()) }
//! ```
//!
//! `examples/lambda-image-roll.rs` is a complete program that points one function at an image (the
//! AWS configuration from the standard environment, progress on stderr, the outcome on stdout, a
//! non-zero exit code on failure): `cargo run -p deployer-lambda-image --example lambda-image-roll
//! -- --function F <image@digest>`.
#![warn(missing_docs)]

use async_trait::async_trait;
use deployer_core::manifest::Platform;
use deployer_core::{Artifact, DeployError, Progress};
use deployer_lambda::{Code, Function, LambdaDeployer, Package, PackageKind};

/// Deploys images to one Lambda image function:
/// `LambdaImageDeployer::new(client, target, platform)`, where the images are built for
/// `platform`.
pub type LambdaImageDeployer = LambdaDeployer<ImagePackage>;

/// The code of an image function: the digest-pinned image URI, for a function on the
/// architecture the image is built for.
#[derive(Clone, Debug)]
pub struct ImagePackage {
    platform: Platform,
}

impl From<Platform> for ImagePackage {
    fn from(platform: Platform) -> Self {
        ImagePackage { platform }
    }
}

#[async_trait]
impl Package for ImagePackage {
    const KIND: PackageKind = PackageKind::Image;

    fn function(&self, function: Function) -> Function {
        function.with_platform(&self.platform)
    }

    fn identity(
        &self,
        target: &str,
        wanted: &Artifact,
    ) -> Result<(String, Option<String>), DeployError> {
        wanted.expect_image(target)?;
        Ok((wanted.deploy_id(), None))
    }

    async fn code(
        &self,
        _function: &Function,
        wanted: &Artifact,
        _progress: &Progress,
    ) -> Result<Code, DeployError> {
        Ok(Code::ImageUri(wanted.deploy_id()))
    }
}

#[cfg(test)]
mod tests;
