//! The model of a validated `deployer.toml`: plain data, every value checked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{Lookup, did_you_mean};
use crate::poll::PollPolicy;

/// A validated `deployer.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest file, as given.
    pub path: PathBuf,
    /// The repository root: the directory holding the manifest. Every path is relative to it.
    pub root: PathBuf,
    /// The `[project]` table.
    pub project: Project,
    /// The `[services.*]` tables, by name.
    pub services: BTreeMap<String, Service>,
    /// The `[ci]` table (what `deployer ci github` generates).
    pub ci: Ci,
}

impl Manifest {
    /// Where and how `service`'s image builds on AWS CodeBuild: `None` when it builds on this
    /// machine. The service's `codebuild` table over `[project]`'s, field by field; `compute`
    /// defaults to `BUILD_GENERAL1_SMALL`, `arm` to whether the platform is `linux/arm64`.
    /// Validation proved `project` and `bucket` present (as literals or lookups); a lookup not
    /// resolved yet gives an empty string.
    pub fn codebuild(&self, service: &Service) -> Option<CodeBuild> {
        let image = service.image.as_ref()?;
        if image.build_on != BuildOn::CodeBuild {
            return None;
        }
        let own = &image.codebuild;
        let project = &self.project.codebuild;
        let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
        Some(CodeBuild {
            project: pick(&own.project, &project.project).unwrap_or_default(),
            bucket: pick(&own.bucket, &project.bucket).unwrap_or_default(),
            compute: pick(&own.compute, &project.compute)
                .unwrap_or_else(|| CodeBuild::DEFAULT_COMPUTE.to_owned()),
            arm: own
                .arm
                .or(project.arm)
                .unwrap_or(image.platform.arch == "arm64"),
        })
    }
}

/// Where an image is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BuildOn {
    /// On this machine, with its image builder (`[project] builder`, else the first found).
    #[default]
    Local,
    /// On AWS CodeBuild (`builder = "codebuild"`): no image builder needed here.
    CodeBuild,
}

/// A `codebuild = { project, bucket, compute, arm }` table as written (`[project]`'s or a
/// service's); fields left out are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeBuildSettings {
    /// The CodeBuild project the builds run in (name), made by the infrastructure code.
    pub project: Option<String>,
    /// The S3 bucket the build contexts are uploaded to.
    pub bucket: Option<String>,
    /// The compute type, e.g. `BUILD_GENERAL1_SMALL`.
    pub compute: Option<String>,
    /// Whether to build on CodeBuild's ARM fleet (`ARM_CONTAINER`).
    pub arm: Option<bool>,
}

/// The effective CodeBuild settings of one service (see [`Manifest::codebuild`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeBuild {
    /// The CodeBuild project name.
    pub project: String,
    /// The bucket the build context is uploaded to.
    pub bucket: String,
    /// The compute type.
    pub compute: String,
    /// ARM fleet (`ARM_CONTAINER`) rather than x86 (`LINUX_CONTAINER`).
    pub arm: bool,
}

impl CodeBuild {
    /// The compute type when none is given.
    pub const DEFAULT_COMPUTE: &str = "BUILD_GENERAL1_SMALL";
}

/// The `[ci]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ci {
    /// Where the generated workflow gets `deployer` from; `None`: `deployer ci github` refuses
    /// to guess.
    pub install: Option<CiInstall>,
}

/// `[ci] install`: how a CI job gets the `deployer` binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiInstall {
    /// Download a release binary (as `cargo xtask dist` makes them) and check it.
    Release {
        /// The release's base URL, e.g. `https://github.com/acme/deployer/releases/download/v0.1.0`.
        url: String,
        /// The version in the binaries' names, e.g. `0.1.0`.
        version: String,
        /// The SHA-256 (hex) of the release's `SHA256SUMS` file, which lists every binary's.
        sha256: String,
    },
    /// `cargo install --git <url> --rev <rev>`, the result cached per version and feature set.
    Git {
        /// The repository URL.
        url: String,
        /// The full commit id (40 hex digits).
        rev: String,
    },
}

/// The `[project]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// Project name; the default SSM prefix is `/<name>`.
    pub name: String,
    /// AWS region; `None` lets the AWS config chain decide.
    pub region: Option<String>,
    /// Prefix of every SSM parameter deployer writes (no trailing `/`).
    pub ssm_prefix: String,
    /// Registry host (`host[:port]`) the image services push to.
    pub registry: Option<String>,
    /// Image builder override; `None` picks the first one found.
    pub builder: Option<Builder>,
    /// Where images build unless a service says otherwise (`builder = "codebuild"`).
    pub build_on: BuildOn,
    /// The `[project] codebuild` table: defaults for every service building on CodeBuild.
    pub codebuild: CodeBuildSettings,
    /// When the live tag is written to SSM.
    pub ssm_write: SsmWrite,
    /// Whether the tag covers the digests the `FROM` images' tags name now.
    pub base_images: BaseImages,
    /// How many services deploy at once.
    pub concurrency: usize,
    /// Fields whose value is looked up at deploy time (`registry`), until resolved.
    pub lookups: BTreeMap<String, Lookup>,
}

impl Project {
    /// Writes a looked-up value into `field` (`registry`, `codebuild.project`,
    /// `codebuild.bucket`) and forgets the lookup.
    pub fn resolve(&mut self, field: &str, value: String) {
        match field {
            "registry" => self.registry = Some(value),
            "codebuild.project" => self.codebuild.project = Some(value),
            "codebuild.bucket" => self.codebuild.bucket = Some(value),
            _ => {}
        }
        self.lookups.remove(field);
    }
}

/// An image builder program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Builder {
    /// `docker buildx build`, or `docker build` without buildx.
    Docker,
    /// `podman build`.
    Podman,
    /// `buildah bud`.
    Buildah,
}

impl Builder {
    /// Every builder, in the order automatic selection tries them.
    pub const ALL: [Builder; 3] = [Builder::Docker, Builder::Podman, Builder::Buildah];

    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Builder::Docker => "docker",
            Builder::Podman => "podman",
            Builder::Buildah => "buildah",
        }
    }

    /// Parses the manifest spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Builder::ALL.into_iter().find(|b| b.as_str() == name)
    }
}

impl fmt::Display for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When the live tag is written to `<ssm_prefix>/<service>/image-tag`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SsmWrite {
    /// Only once the rollout succeeded, so IaC never picks up an image whose rollout failed.
    #[default]
    AfterRollout,
    /// Right after the push (once the image is confirmed in the registry).
    AfterPush,
}

/// What the content tag says of a Dockerfile's `FROM name:tag` images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BaseImages {
    /// The references as written: a base image re-pushed under the same tag does not change
    /// the tag (pin `name@sha256:…` to make it count).
    #[default]
    AsWritten,
    /// The digest each `FROM name:tag` names in its registry now (one request per image per
    /// run): a patched base image gives a new tag, so the service is rebuilt.
    Resolve,
}

/// The compute target kind of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An ECS service: new task-definition revision + UpdateService.
    Ecs,
    /// A Bedrock AgentCore runtime: UpdateAgentRuntime.
    Agentcore,
    /// A Lambda function deployed from an image.
    LambdaImage,
    /// A Lambda function deployed from a zip built in process.
    LambdaZip,
    /// A SageMaker endpoint: new model and endpoint config, UpdateEndpoint.
    Sagemaker,
    /// Runtime configuration from the repository: rows of a DynamoDB table or SSM
    /// parameters, written item by item where they differ.
    Config,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Ecs,
        Kind::Agentcore,
        Kind::LambdaImage,
        Kind::LambdaZip,
        Kind::Sagemaker,
        Kind::Config,
    ];

    /// The manifest spelling, which is also the name of the cli feature that compiles it in.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ecs => "ecs",
            Kind::Agentcore => "agentcore",
            Kind::LambdaImage => "lambda-image",
            Kind::LambdaZip => "lambda-zip",
            Kind::Sagemaker => "sagemaker",
            Kind::Config => "config",
        }
    }

    /// Parses the manifest spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the kind deploys a container image (and so has the image fields).
    pub fn is_image(self) -> bool {
        !matches!(self, Kind::LambdaZip | Kind::Config)
    }

    /// The default rollout timeout.
    pub fn default_timeout(self) -> Duration {
        match self {
            Kind::Ecs | Kind::Agentcore => Duration::from_secs(15 * 60),
            Kind::LambdaImage | Kind::LambdaZip | Kind::Config => Duration::from_secs(10 * 60),
            Kind::Sagemaker => Duration::from_secs(30 * 60),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[services.<name>]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The service name (the table key).
    pub name: String,
    /// The target kind.
    pub kind: Kind,
    /// How the image is built; `Some` exactly for image kinds.
    pub image: Option<ImageBuild>,
    /// Where it is deployed.
    pub target: Target,
    /// How long a rollout may take before it counts as failed.
    pub timeout: Duration,
    /// First delay between status polls (it grows up to 15 s).
    pub poll_interval: Duration,
    /// Services whose rollout must succeed before this one's starts (builds still run at once).
    pub depends_on: Vec<String>,
    /// Restart in place (ECS force-new-deployment) when unchanged but a dependency changed.
    pub restart_on_dependency_change: bool,
    /// A check run after a successful rollout.
    pub smoke: Option<Smoke>,
    /// When the smoke check fails, roll back to the previous successful deploy.
    pub rollback_on_smoke_failure: bool,
    /// Where the infrastructure code that owns the target is (`iac`), for the IaC revert
    /// guard of `status` and `plan`; `None`: the stack named by the target's
    /// `aws:cloudformation:stack-name` tag, if any.
    pub iac: Option<Iac>,
    /// Target fields whose value is looked up at deploy time, until resolved.
    pub lookups: BTreeMap<String, Lookup>,
}

impl Service {
    /// Writes a looked-up value into `field` and forgets the lookup. Returns false when the
    /// field does not exist for this service's kind.
    pub fn resolve(&mut self, field: &str, value: String) -> bool {
        if let (Some(image), Some(key)) = (&mut self.image, field.strip_prefix("codebuild.")) {
            let slot = match key {
                "project" => &mut image.codebuild.project,
                "bucket" => &mut image.codebuild.bucket,
                _ => return false,
            };
            *slot = Some(value);
            self.lookups.remove(field);
            return true;
        }
        let slot = match (field, &mut self.target, &mut self.image) {
            ("repository", _, Some(image)) => &mut image.repository,
            ("cluster", Target::Ecs(t), _) => &mut t.cluster,
            ("service", Target::Ecs(t), _) => &mut t.service,
            ("runtime_id", Target::Agentcore(t), _) => &mut t.runtime_id,
            ("function", Target::LambdaImage(t), _) => &mut t.function,
            ("function", Target::LambdaZip(t), _) => &mut t.lambda.function,
            ("endpoint", Target::Sagemaker(t), _) => &mut t.endpoint,
            ("table", Target::Config(t), _) => match &mut t.store {
                ConfigStore::Dynamodb { table, .. } => table,
                ConfigStore::Ssm { .. } => return false,
            },
            ("prefix", Target::Config(t), _) => match &mut t.store {
                ConfigStore::Ssm { prefix } => prefix,
                ConfigStore::Dynamodb { .. } => return false,
            },
            ("s3_bucket", Target::Config(t), _) => &mut t.s3_bucket,
            _ => return false,
        };
        *slot = value;
        self.lookups.remove(field);
        true
    }

    /// The polling policy for this service's waits.
    pub fn wait_policy(&self) -> PollPolicy {
        PollPolicy {
            interval: self.poll_interval,
            max_interval: self.poll_interval.max(Duration::from_secs(15)),
            timeout: self.timeout,
            ..PollPolicy::default()
        }
    }

    /// `<ssm_prefix>/<service>/image-tag`: where the live tag is recorded.
    pub fn tag_parameter(&self, project: &Project) -> String {
        format!("{}/{}/image-tag", project.ssm_prefix, self.name)
    }
}

/// How an image service's image is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageBuild {
    /// Dockerfile path, relative to the repository root.
    pub dockerfile: String,
    /// Build context directory, relative to the repository root (default `.`).
    pub context: String,
    /// Target platform, e.g. `linux/arm64`.
    pub platform: Platform,
    /// Globs (relative to the root) of the files whose content decides the image; `None` when
    /// the manifest leaves them out: they are then derived from the Dockerfile's `COPY`/`ADD`
    /// sources. Either way every file the build can copy must be covered (the hasher checks).
    pub inputs: Option<Vec<String>>,
    /// Repository name in the registry, e.g. `acme/app-api`.
    pub repository: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// Where it is built: `builder` of the service, else of `[project]`.
    pub build_on: BuildOn,
    /// The service's own `codebuild` table (see [`Manifest::codebuild`] for the merged one).
    pub codebuild: CodeBuildSettings,
}

/// An OCI platform `os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`, `arm64`.
    pub arch: String,
    /// e.g. `v7`.
    pub variant: Option<String>,
}

const ARCHES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64",
];

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => {
                return Err(format!(
                    "`{text}` is not a platform; write `os/arch`, e.g. `linux/amd64`"
                ));
            }
        };
        if os != "linux" {
            return Err(format!(
                "unsupported platform os `{os}` in `{text}`; only `linux` images run on these targets"
            ));
        }
        if !ARCHES.contains(&arch) {
            let hint = did_you_mean(arch, ARCHES.iter().copied())
                .map(|s| format!("; did you mean `{os}/{s}`?"))
                .unwrap_or_default();
            return Err(format!("unknown architecture `{arch}` in `{text}`{hint}"));
        }
        if variant.is_some_and(|v| v.is_empty()) {
            return Err(format!("empty variant in `{text}`"));
        }
        Ok(Platform {
            os: os.into(),
            arch: arch.into(),
            variant: variant.map(Into::into),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Where a service is deployed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An ECS service.
    Ecs(EcsTarget),
    /// An AgentCore runtime.
    Agentcore(AgentcoreTarget),
    /// A Lambda function from an image.
    LambdaImage(LambdaTarget),
    /// A Lambda function from a zip.
    LambdaZip(LambdaZipTarget),
    /// A SageMaker endpoint.
    Sagemaker(SagemakerTarget),
    /// Configuration rows or parameters.
    Config(ConfigTarget),
}

/// `kind = "config"`: runtime configuration shipped from a directory of the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigTarget {
    /// The directory of source files (JSON, TOML, YAML), relative to the root.
    pub source: String,
    /// A JSON Schema every item is validated against, relative to the root.
    pub schema: Option<String>,
    /// Where the items are written.
    pub store: ConfigStore,
    /// Attribute (DynamoDB) or leaf (SSM) names whose values are secret: never shown, and
    /// written as `SecureString` parameters. A name matches a key at any depth, a dotted path
    /// (`webhook.secret`) the key at that path.
    pub secret: Vec<String>,
    /// Delete items deployer wrote earlier that the source no longer has (else they are kept
    /// and reported).
    pub prune: bool,
    /// Take over items that exist without deployer's owner mark (written by IaC or by hand);
    /// without it they are never changed or deleted.
    pub adopt: bool,
    /// The bucket keeping the content-addressed copy of every applied set (the rollback
    /// source).
    pub s3_bucket: String,
    /// Key prefix in `s3_bucket` (default `deployer/<project>/<service>/`).
    pub s3_key_prefix: Option<String>,
}

/// The store a config service writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigStore {
    /// Items of a DynamoDB table.
    Dynamodb {
        /// The table name (or ARN).
        table: String,
        /// The key attributes: the partition key, and the sort key when the table has one.
        key: Vec<String>,
    },
    /// SSM parameters under a path.
    Ssm {
        /// The path every parameter is written under (starts with `/`, no trailing `/`).
        prefix: String,
    },
}

/// `kind = "sagemaker"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagemakerTarget {
    /// The endpoint name.
    pub endpoint: String,
    /// The production variant to update; `None`: every variant whose model uses the service's
    /// repository.
    pub variant: Option<String>,
    /// Blue/green deployment configuration passed to UpdateEndpoint.
    pub blue_green: Option<BlueGreen>,
    /// How many earlier models and endpoint configs to keep (the previous one is always kept:
    /// it is the rollback target); older ones created by deployer are deleted.
    pub keep: usize,
}

/// SageMaker blue/green deployment settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlueGreen {
    /// How traffic shifts to the new fleet.
    pub traffic: Traffic,
    /// Wait between traffic shifts (and before finishing).
    pub wait_interval: Duration,
    /// CloudWatch alarms that roll the update back automatically.
    pub rollback_alarms: Vec<String>,
    /// How long the old fleet stays up after the shift.
    pub termination_wait: Option<Duration>,
    /// The whole update's limit.
    pub max_execution: Option<Duration>,
}

/// Traffic shifting of a blue/green update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// Everything at once.
    AllAtOnce,
    /// A canary share first, then the rest.
    Canary {
        /// Percent of capacity in the canary.
        percent: u8,
    },
    /// In equal steps.
    Linear {
        /// Percent of capacity per step.
        percent: u8,
    },
}

/// `iac = { … }`: the infrastructure code that owns a service's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iac {
    /// Where it is.
    pub source: IacSource,
    /// The IaC deliberately leaves the image alone (Terraform `ignore_changes`): no warning.
    pub ignores_image: bool,
}

/// The IaC that owns a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IacSource {
    /// `cfn_stack = "…"`: a CloudFormation stack (CDK deploys one), its template read.
    CfnStack(String),
    /// `tf_state = "…", address = "…"`: a Terraform state file (relative to the manifest's
    /// directory) and the address of the resource holding the image.
    TfState {
        /// The state file.
        state: String,
        /// The resource address, e.g. `aws_ecs_task_definition.app`.
        address: String,
    },
}

/// A check run after a successful rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Smoke {
    /// What to check.
    pub check: SmokeCheck,
    /// How long the check may take (retries included).
    pub timeout: Duration,
}

/// The kinds of smoke check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmokeCheck {
    /// An HTTP GET must answer `expect_status` (and contain `expect`, when given).
    Http {
        /// The URL.
        url: String,
        /// The wanted status.
        expect_status: u16,
        /// A substring the body must contain.
        expect: Option<String>,
    },
    /// A command (argument vector, run in the manifest's directory) must exit 0.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// Invoke the function or agent runtime with `payload`; the answer must contain `expect`.
    Invoke {
        /// The payload (JSON text).
        payload: String,
        /// A substring the answer must contain.
        expect: Option<String>,
    },
}

/// `kind = "ecs"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsTarget {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name or ARN.
    pub service: String,
    /// The container whose image is replaced; optional when the task definition has one.
    pub container: Option<String>,
    /// Roll with `--force-new-deployment` on the live task definition (mutable tags).
    pub force_new_deployment: bool,
}

/// `kind = "agentcore"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentcoreTarget {
    /// The agent runtime id.
    pub runtime_id: String,
    /// The named endpoints (`endpoints = ["prod", …]`) moved to each new version once the
    /// runtime is `READY` on it; empty: only `DEFAULT`, which follows the latest version by
    /// itself. Validated against AgentCore's endpoint name pattern, without duplicates and
    /// without `DEFAULT`.
    pub endpoints: Vec<String>,
}

/// The Lambda function fields shared by both Lambda kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LambdaTarget {
    /// Function name or ARN.
    pub function: String,
    /// Publish a version after the code update.
    pub publish: bool,
    /// Point this alias at the published version (requires `publish`).
    pub alias: Option<String>,
}

/// `kind = "lambda-zip"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LambdaZipTarget {
    /// The function.
    pub lambda: LambdaTarget,
    /// Directory zipped, relative to the root.
    pub source: String,
    /// Globs (relative to `source`) left out of the zip.
    pub exclude: Vec<String>,
    /// Bucket for zips above Lambda's direct-upload limit.
    pub s3_bucket: Option<String>,
    /// Key prefix in `s3_bucket` (default `deployer/<project>/<service>/`).
    pub s3_key_prefix: Option<String>,
}
