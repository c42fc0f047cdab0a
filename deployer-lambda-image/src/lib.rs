//! Lambda deployer for image functions: points a function whose `PackageType` is `Image` at
//! the image the pipeline built and pushed (`UpdateFunctionCode --image-uri`, digest-pinned),
//! waits until the update settled, and optionally publishes a version and moves an alias.
//!
//! The function must exist (deployer updates code, it creates nothing), hold an image, and run
//! on the architecture the image is built for (`linux/amd64` ↔ `x86_64`, `linux/arm64` ↔
//! `arm64`); otherwise the deploy stops with `DeployError::Mismatch` before anything is sent.
//! An image the function already runs (by digest, or by tag when no digest is known) is left
//! alone: no `UpdateFunctionCode` call. The shared machinery (waits, conflict retries, publish
//! and alias, the meaning of "current") lives in `deployer-lambda`.
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
//! println!("{:?} {:?}", outcome.action, outcome.ids.get("version"));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use async_trait::async_trait;
use deployer_core::manifest::{LambdaTarget, Platform};
use deployer_core::poll::PollPolicy;
use deployer_core::{Applied, Artifact, DeployError, Deployer, LiveState, Progress};
use deployer_lambda::{Code, Function, PackageKind, code_is_live};

/// Deploys images to one Lambda image function.
#[derive(Clone, Debug)]
pub struct LambdaImageDeployer {
    function: Function,
}

impl LambdaImageDeployer {
    /// The deployer for `target.function`, whose images are built for `platform`.
    pub fn new(client: aws_sdk_lambda::Client, target: LambdaTarget, platform: Platform) -> Self {
        LambdaImageDeployer {
            function: Function::new(client, target, PackageKind::Image).with_platform(&platform),
        }
    }

    /// The policy for the waits made before the update (until a running update settled, and
    /// retries of `ResourceConflictException`); the default is ten minutes. The wait after the
    /// update uses the policy given to [`Deployer::wait`].
    pub fn with_policy(mut self, policy: PollPolicy) -> Self {
        self.function = self.function.with_policy(policy);
        self
    }
}

#[async_trait]
impl Deployer for LambdaImageDeployer {
    fn target(&self) -> String {
        self.function.describe()
    }

    async fn read_live(&self) -> Result<LiveState, DeployError> {
        self.function.read_live().await
    }

    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        self.function.is_current(live, wanted)
    }

    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let Artifact::Image(_) = wanted else {
            return Err(DeployError::Mismatch(format!(
                "{} deploys images, not {wanted}",
                self.function.describe()
            )));
        };
        let uri = wanted.deploy_id();
        let code = (!code_is_live(live, wanted)).then(|| Code::ImageUri(uri.clone()));
        self.function.apply(live, code, None, uri, progress).await
    }

    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        self.function.wait(applied, policy, progress).await
    }
}

#[cfg(test)]
mod tests;
