//! The one [`Deployer`] of Lambda functions: [`LambdaDeployer`], for the code a [`Package`]
//! brings. `deployer-lambda-image` and `deployer-lambda-zip` are this type with their package.

use async_trait::async_trait;
use deployer_core::manifest::LambdaTarget;
use deployer_core::poll::PollPolicy;
use deployer_core::{Applied, Artifact, DeployError, Deployer, LiveState, Presence, Progress};

use crate::function::{Code, Function, PackageKind, code_is_live};

/// What a Lambda deployer deploys: how the wanted artifact becomes the code of
/// `UpdateFunctionCode`. Everything else (reading, the checks, waiting, publishing, the alias,
/// what "current" means) is [`Function`]'s and the same for every package.
#[async_trait]
pub trait Package: Send + Sync {
    /// The `PackageType` of the functions it deploys.
    const KIND: PackageKind;

    /// `function` as this package needs it (image functions: held to the image's platform).
    fn function(&self, function: Function) -> Function {
        function
    }

    /// The identity of `wanted` in the function (its image URI, or its zip's `CodeSha256`),
    /// and the `CodeSha256` to expect after the update when the package knows it; a
    /// [`DeployError::Mismatch`] naming `target` for an artifact of another kind.
    fn identity(
        &self,
        target: &str,
        wanted: &Artifact,
    ) -> Result<(String, Option<String>), DeployError>;

    /// The code to send for `wanted` (uploading it first where the package needs to).
    async fn code(
        &self,
        function: &Function,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Code, DeployError>;

    /// Whether an earlier deploy is restored by pointing the alias back at the version it
    /// published ([`Function::restore`]) rather than by deploying its artifact again: for
    /// packages whose bytes are not kept (zips). `false` by default.
    fn restores_versions(&self) -> bool {
        false
    }
}

/// Deploys the code a [`Package`] prepares to one Lambda function.
#[derive(Clone, Debug)]
pub struct LambdaDeployer<P> {
    function: Function,
    package: P,
}

impl<P: Package> LambdaDeployer<P> {
    /// The deployer for `target.function`, holding the code of `package`.
    pub fn new(
        client: aws_sdk_lambda::Client,
        target: LambdaTarget,
        package: impl Into<P>,
    ) -> Self {
        let package = package.into();
        LambdaDeployer {
            function: package.function(Function::new(client, target, P::KIND)),
            package,
        }
    }

    /// The policy for the waits made before the update (until a running update settled, and
    /// retries of `ResourceConflictException`); the default is [`Function::default_policy`].
    /// The wait after the update uses the policy given to [`Deployer::wait`].
    pub fn with_policy(mut self, policy: PollPolicy) -> Self {
        self.function = self.function.with_policy(policy);
        self
    }

    /// The function.
    pub fn function(&self) -> &Function {
        &self.function
    }
}

#[async_trait]
impl<P: Package> Deployer for LambdaDeployer<P> {
    fn target(&self) -> String {
        self.function.describe()
    }

    async fn read_live(&self) -> Result<LiveState, DeployError> {
        self.function.read_live().await
    }

    /// See [`Function::is_current`].
    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        self.function.is_current(live, wanted)
    }

    /// With an `alias`, the artifact of the version it points at, not the one in `$LATEST`
    /// ([`Function::serves`]).
    fn serves(&self, live: &LiveState, artifact: &Artifact) -> bool {
        self.function.serves(live, artifact)
    }

    /// `UpdateFunctionCode` with the package's code, unless `$LATEST` holds it and its last
    /// update did not fail ([`code_is_live`]); the code's upload and the update are preceded
    /// by `Progress::before_mutation`.
    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let (artifact, code_sha256) = self.package.identity(&self.target(), wanted)?;
        let code = if code_is_live(live, wanted) {
            None
        } else {
            Some(self.package.code(&self.function, wanted, progress).await?)
        };
        self.function
            .apply(live, code, code_sha256.as_deref(), artifact, progress)
            .await
    }

    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        self.function.wait(applied, policy, progress).await
    }

    /// The function's `aws:cloudformation:stack-name` tag ([`Function::owning_stack`]).
    async fn owning_stack(&self) -> Result<Option<String>, DeployError> {
        self.function.owning_stack().await
    }

    /// Lambda's reason for a failed update ([`Function::diagnosis`]).
    async fn diagnose(&self, applied: &Applied) -> deployer_core::Diagnosis {
        let _ = applied;
        self.function.diagnosis().await
    }

    /// With a package whose bytes are not kept ([`Package::restores_versions`]): the alias
    /// pointed back at the version `previous` published ([`Function::restore`]).
    async fn rollback(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        if !self.package.restores_versions() {
            return Err(DeployError::not_kept(&self.target(), previous));
        }
        self.function
            .restore(live, previous, &self.function.policy(), progress)
            .await
    }

    /// The function's log group ([`Function::log_source`]).
    async fn log_sources(
        &self,
        live: &LiveState,
    ) -> Result<Vec<deployer_core::LogSource>, DeployError> {
        let _ = live;
        Ok(vec![self.function.log_source().await?])
    }

    async fn restorable(&self, previous: &Applied) -> Result<Presence, DeployError> {
        if !self.package.restores_versions() {
            return Ok(Presence::Present);
        }
        self.function.restorable(previous).await
    }
}
