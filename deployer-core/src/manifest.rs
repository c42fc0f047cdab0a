//! The `deployer.toml` manifest: its model, and the validation that turns a bad manifest into
//! errors with file, line and column before anything is touched.
//!
//! ```toml
//! [project]
//! name = "acme"
//! region = "us-east-1"          # optional; otherwise the AWS config chain decides
//! ssm_prefix = "/acme"          # optional; default "/<name>"
//! registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
//!
//! [services.app-api]
//! kind = "ecs"                  # ecs | agentcore | lambda-image | lambda-zip
//! dockerfile = "backend/Dockerfile.app-api"
//! context = "backend"
//! platform = "linux/amd64"
//! inputs = ["backend/src/apis/app_api/**", "backend/uv.lock"]
//! repository = "acme/app-api"
//! cluster = "acme"
//! service = "app-api"
//! ```
//!
//! Every key is listed in [`keys`] with the kinds it applies to; README.md documents them.
//! Paths are relative to the directory holding the manifest (the repository root) and may not
//! leave it, neither with `..` nor through a symlink.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::poll::PollPolicy;

mod diagnostics;
pub mod keys;
pub mod lookup;
mod order;

use diagnostics::Diagnostics;
pub use diagnostics::{Diagnostic, ManifestError};
pub use lookup::Lookup;

/// The file name looked for at the repository root.
pub const FILE_NAME: &str = "deployer.toml";

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
    /// When the live tag is written to SSM.
    pub ssm_write: SsmWrite,
    /// How many services deploy at once.
    pub concurrency: usize,
    /// Fields whose value is looked up at deploy time (`registry`), until resolved.
    pub lookups: BTreeMap<String, Lookup>,
}

impl Project {
    /// Writes a looked-up value into `field` (`registry`) and forgets the lookup.
    pub fn resolve(&mut self, field: &str, value: String) {
        if field == "registry" {
            self.registry = Some(value);
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
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Ecs,
        Kind::Agentcore,
        Kind::LambdaImage,
        Kind::LambdaZip,
        Kind::Sagemaker,
    ];

    /// The manifest spelling, which is also the name of the cli feature that compiles it in.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ecs => "ecs",
            Kind::Agentcore => "agentcore",
            Kind::LambdaImage => "lambda-image",
            Kind::LambdaZip => "lambda-zip",
            Kind::Sagemaker => "sagemaker",
        }
    }

    /// Parses the manifest spelling.
    pub fn parse(name: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the kind deploys a container image (and so has the image fields).
    pub fn is_image(self) -> bool {
        !matches!(self, Kind::LambdaZip)
    }

    /// The default rollout timeout.
    pub fn default_timeout(self) -> Duration {
        match self {
            Kind::Ecs | Kind::Agentcore => Duration::from_secs(15 * 60),
            Kind::LambdaImage | Kind::LambdaZip => Duration::from_secs(10 * 60),
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
    /// Target fields whose value is looked up at deploy time, until resolved.
    pub lookups: BTreeMap<String, Lookup>,
}

impl Service {
    /// Writes a looked-up value into `field` and forgets the lookup. Returns false when the
    /// field does not exist for this service's kind.
    pub fn resolve(&mut self, field: &str, value: String) -> bool {
        let slot = match (field, &mut self.target, &mut self.image) {
            ("repository", _, Some(image)) => &mut image.repository,
            ("cluster", Target::Ecs(t), _) => &mut t.cluster,
            ("service", Target::Ecs(t), _) => &mut t.service,
            ("runtime_id", Target::Agentcore(t), _) => &mut t.runtime_id,
            ("function", Target::LambdaImage(t), _) => &mut t.function,
            ("function", Target::LambdaZip(t), _) => &mut t.lambda.function,
            ("endpoint", Target::Sagemaker(t), _) => &mut t.endpoint,
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
    /// Globs (relative to the root) of the files whose content decides the image.
    pub inputs: Vec<String>,
    /// Repository name in the registry, e.g. `acme/app-api`.
    pub repository: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
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

impl Manifest {
    /// Reads and validates the manifest at `path`; the repository root is its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let root = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        Manifest::parse(path, &source, &root)
    }

    /// Validates manifest text; `path` is used in messages, `root` to check paths.
    pub fn parse(path: &Path, source: &str, root: &Path) -> Result<Manifest, ManifestError> {
        let mut diags = Diagnostics::new(path, source);
        let table = match DeTable::parse(source) {
            Ok(table) => table,
            Err(error) => {
                diags.error(
                    error.span().unwrap_or(0..0),
                    error.message().trim_end().to_owned(),
                    None,
                );
                return Err(diags.into_error());
            }
        };
        let doc = Doc { table: &table };
        keys::check(&doc, &mut diags);
        if diags.has_errors() {
            return Err(diags.into_error());
        }
        let raw = match RawManifest::deserialize(toml::de::Deserializer::from(table.clone())) {
            Ok(raw) => raw,
            Err(error) => {
                diags.error(
                    error.span().unwrap_or(0..0),
                    error.message().trim_end().to_owned(),
                    None,
                );
                return Err(diags.into_error());
            }
        };
        let manifest = Validator {
            root,
            doc: &doc,
            diags: &mut diags,
        }
        .manifest(path, raw);
        if diags.has_errors() {
            return Err(diags.into_error());
        }
        manifest.ok_or_else(|| diags.into_error())
    }

    /// The services named in `names` (all of them when empty), or an error naming the unknown
    /// ones with a suggestion.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Service>, String> {
        if names.is_empty() {
            return Ok(self.services.values().collect());
        }
        let mut selected = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            match self.services.get(name) {
                Some(service) => {
                    if seen.insert(name) {
                        selected.push(service);
                    }
                }
                None => {
                    let hint = did_you_mean(name, self.services.keys().map(String::as_str))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    let known: Vec<&str> = self.services.keys().map(String::as_str).collect();
                    return Err(format!(
                        "no service `{name}` in {}{hint} (services: {})",
                        self.path.display(),
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(selected)
    }
}

/// The closest candidate to `word`, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Close by letters (jaro-winkler), or one or two edits away for short words (`smm` → `ssm`).
    let edits = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::jaro_winkler(word, candidate),
                strsim::damerau_levenshtein(word, candidate),
                candidate,
            )
        })
        .filter(|(score, distance, _)| *score > 0.8 || *distance <= edits)
        .max_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)))
        .map(|(_, _, candidate)| candidate)
}

/// The parsed document with spans, for locating keys and values in messages.
struct Doc<'a, 'i> {
    table: &'a Spanned<DeTable<'i>>,
}

impl<'i> Doc<'_, 'i> {
    /// The value at a key path, with its span.
    fn get(&self, path: &[&str]) -> Option<&Spanned<DeValue<'i>>> {
        let (last, parents) = path.split_last()?;
        let mut table = self.table.get_ref();
        for key in parents {
            match table.get(*key)?.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => return None,
            }
        }
        table.get(*last)
    }

    /// The span of the key at `path` (its name in the file), else of its value.
    fn key_span(&self, path: &[&str]) -> std::ops::Range<usize> {
        let Some((last, parents)) = path.split_last() else {
            return 0..0;
        };
        let table = if parents.is_empty() {
            Some(self.table.get_ref())
        } else {
            match self.get(parents).map(Spanned::get_ref) {
                Some(DeValue::Table(table)) => Some(table),
                _ => None,
            }
        };
        table
            .and_then(|table| table.get_key_value(*last))
            .map(|(key, _)| key.span())
            .unwrap_or(0..0)
    }

    /// The span of the value at `path`, else of the nearest existing parent.
    fn value_span(&self, path: &[&str]) -> std::ops::Range<usize> {
        for len in (1..=path.len()).rev() {
            if let Some(value) = self.get(&path[..len]) {
                return value.span();
            }
        }
        0..0
    }
}

#[derive(Deserialize)]
struct RawManifest {
    project: RawProject,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Deserialize)]
struct RawProject {
    name: String,
    region: Option<String>,
    ssm_prefix: Option<String>,
    registry: Option<toml::Value>,
    builder: Option<String>,
    ssm_write: Option<String>,
    concurrency: Option<i64>,
}

#[derive(Deserialize)]
struct RawService {
    kind: String,
    timeout: Option<String>,
    poll_interval: Option<String>,
    // image kinds
    dockerfile: Option<String>,
    context: Option<String>,
    platform: Option<String>,
    inputs: Option<Vec<String>>,
    repository: Option<toml::Value>,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    // every kind
    #[serde(default)]
    depends_on: Vec<String>,
    smoke: Option<RawSmoke>,
    #[serde(default)]
    rollback_on_smoke_failure: bool,
    // ecs
    cluster: Option<toml::Value>,
    service: Option<toml::Value>,
    container: Option<String>,
    #[serde(default)]
    force_new_deployment: bool,
    #[serde(default)]
    restart_on_dependency_change: bool,
    // agentcore
    runtime_id: Option<toml::Value>,
    // sagemaker
    endpoint: Option<toml::Value>,
    variant: Option<String>,
    blue_green: Option<RawBlueGreen>,
    keep: Option<i64>,
    // lambda
    function: Option<toml::Value>,
    #[serde(default)]
    publish: bool,
    alias: Option<String>,
    // lambda-zip
    source: Option<String>,
    #[serde(default)]
    exclude: Vec<String>,
    s3_bucket: Option<String>,
    s3_key_prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmoke {
    http: Option<String>,
    expect_status: Option<i64>,
    command: Option<Vec<String>>,
    invoke: Option<toml::Value>,
    expect: Option<String>,
    timeout_s: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlueGreen {
    traffic: Option<String>,
    canary_percent: Option<i64>,
    linear_percent: Option<i64>,
    wait_interval: Option<String>,
    #[serde(default)]
    rollback_alarms: Vec<String>,
    termination_wait: Option<String>,
    max_execution: Option<String>,
}

/// Turns the raw tables into the model, reporting every problem it finds.
struct Validator<'a, 'b, 'i> {
    root: &'a Path,
    doc: &'a Doc<'b, 'i>,
    diags: &'a mut Diagnostics,
}

impl Validator<'_, '_, '_> {
    fn err_value(&mut self, path: &[&str], message: String, help: Option<String>) {
        let span = self.doc.value_span(path);
        self.diags.error(span, message, help);
    }

    fn manifest(&mut self, path: &Path, raw: RawManifest) -> Option<Manifest> {
        let project = self.project(raw.project);
        let mut services = BTreeMap::new();
        for (name, raw_service) in raw.services {
            if let Some(service) = self.service(&name, raw_service) {
                services.insert(name, service);
            }
        }
        if services.is_empty() && !self.diags.has_errors() {
            self.diags.error(
                0..0,
                "the manifest has no `[services.<name>]` table".into(),
                Some("add one per deployed service; see README.md".into()),
            );
        }
        for (service, message, help) in order::check(&services) {
            self.err_value(&["services", &service, "depends_on"], message, help);
        }
        let project = project?;
        if project.registry.is_none()
            && let Some(service) = services.values().find(|s| s.kind.is_image())
        {
            self.err_value(
                &["project"],
                format!("service `{}` builds an image but `[project]` has no `registry`", service.name),
                Some("set `registry = \"<host[:port]>\"`, e.g. the ECR host `123456789012.dkr.ecr.us-east-1.amazonaws.com`".into()),
            );
        }
        Some(Manifest {
            path: path.to_owned(),
            root: self.root.to_owned(),
            project,
            services,
        })
    }

    fn project(&mut self, raw: RawProject) -> Option<Project> {
        let mut ok = true;
        if raw.name.is_empty()
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.err_value(
                &["project", "name"],
                format!(
                    "project name `{}` must be non-empty letters, digits, `-`, `_` or `.`",
                    raw.name
                ),
                None,
            );
            ok = false;
        }
        let ssm_prefix = raw.ssm_prefix.unwrap_or_else(|| format!("/{}", raw.name));
        if !valid_ssm_prefix(&ssm_prefix) {
            self.err_value(
                &["project", "ssm_prefix"],
                format!("ssm_prefix `{ssm_prefix}` must start with `/`, not end with `/`, and hold only letters, digits and `_.-/`"),
                None,
            );
            ok = false;
        }
        let mut lookups = BTreeMap::new();
        let registry = match &raw.registry {
            None => None,
            Some(value) => {
                let registry = self.field(&["project", "registry"], value, &mut lookups);
                if let Some(registry) = &registry
                    && !lookups.contains_key("registry")
                    && let Err(message) = check_registry(registry)
                {
                    self.err_value(
                        &["project", "registry"],
                        message,
                        Some("write `host[:port]` without scheme or path, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com` or `127.0.0.1:5000`".into()),
                    );
                    ok = false;
                }
                ok &= registry.is_some();
                registry
            }
        };
        if let Some(region) = &raw.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            self.err_value(
                &["project", "region"],
                format!("region `{region}` is not an AWS region name"),
                Some("e.g. `us-east-1`".into()),
            );
            ok = false;
        }
        let builder = match raw.builder.as_deref() {
            None => None,
            Some(name) => match Builder::parse(name) {
                Some(builder) => Some(builder),
                None => {
                    let names = Builder::ALL.map(Builder::as_str);
                    self.err_value(
                        &["project", "builder"],
                        format!("unknown builder `{name}`"),
                        Some(format!("one of: {}", names.join(", "))),
                    );
                    ok = false;
                    None
                }
            },
        };
        let ssm_write = match raw.ssm_write.as_deref() {
            None | Some("after-rollout") => SsmWrite::AfterRollout,
            Some("after-push") => SsmWrite::AfterPush,
            Some(other) => {
                self.err_value(
                    &["project", "ssm_write"],
                    format!("unknown ssm_write `{other}`"),
                    Some("one of: after-rollout (default), after-push".into()),
                );
                ok = false;
                SsmWrite::AfterRollout
            }
        };
        let concurrency = match raw.concurrency {
            None => 4,
            Some(n) if (1..=64).contains(&n) => usize::try_from(n).unwrap_or(4),
            Some(n) => {
                self.err_value(
                    &["project", "concurrency"],
                    format!("concurrency {n} is out of range"),
                    Some("use 1 to 64".into()),
                );
                ok = false;
                4
            }
        };
        ok.then_some(Project {
            name: raw.name,
            region: raw.region,
            ssm_prefix,
            registry,
            builder,
            ssm_write,
            concurrency,
            lookups,
        })
    }

    /// A field that may be a lookup: the literal (or "" for a lookup, recorded in `lookups`).
    fn field(
        &mut self,
        path: &[&str],
        value: &toml::Value,
        lookups: &mut BTreeMap<String, Lookup>,
    ) -> Option<String> {
        let key = path[path.len() - 1];
        match lookup::parse(value) {
            Ok(lookup::Value::Literal(text)) if text.is_empty() => {
                self.err_value(path, format!("`{key}` is empty"), None);
                None
            }
            Ok(lookup::Value::Literal(text)) => Some(text),
            Ok(lookup::Value::Lookup(found)) => {
                lookups.insert(key.to_owned(), found);
                Some(String::new())
            }
            Err((message, help)) => {
                self.err_value(path, format!("`{key}`: {message}"), help);
                None
            }
        }
    }

    /// A duration field of a nested table (`blue_green`, …).
    fn optional_duration(
        &mut self,
        path: &[&str],
        text: Option<&str>,
    ) -> Result<Option<Duration>, ()> {
        match text {
            None => Ok(None),
            Some(text) => self
                .duration(path, Some(text), Duration::ZERO)
                .map(Some)
                .ok_or(()),
        }
    }

    fn service(&mut self, name: &str, raw: RawService) -> Option<Service> {
        let at = |key: &'static str| ["services", name, key];
        let mut ok = true;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            let span = self.doc.key_span(&["services", name]);
            self.diags.error(
                span,
                format!("service name `{name}` may hold only letters, digits, `-`, `_` and `.`"),
                None,
            );
            ok = false;
        }
        // keys::check has already proven the kind valid and the required keys present.
        let kind = Kind::parse(&raw.kind)?;
        let timeout = self.duration(
            &at("timeout"),
            raw.timeout.as_deref(),
            kind.default_timeout(),
        );
        let poll_interval = self.duration(
            &at("poll_interval"),
            raw.poll_interval.as_deref(),
            Duration::from_secs(2),
        );
        let (Some(timeout), Some(poll_interval)) = (timeout, poll_interval) else {
            return None;
        };
        let mut lookups = BTreeMap::new();
        let mut field =
            |this: &mut Self, key: &'static str, value: &Option<toml::Value>| -> String {
                match value {
                    None => String::new(),
                    Some(value) => match this.field(&at(key), value, &mut lookups) {
                        Some(text) => text,
                        None => {
                            ok = false;
                            String::new()
                        }
                    },
                }
            };
        let cluster = field(self, "cluster", &raw.cluster);
        let ecs_service = field(self, "service", &raw.service);
        let runtime_id = field(self, "runtime_id", &raw.runtime_id);
        let function = field(self, "function", &raw.function);
        let endpoint = field(self, "endpoint", &raw.endpoint);
        let repository = field(self, "repository", &raw.repository);
        let image = if kind.is_image() {
            let image = self.image(name, &raw, repository, lookups.contains_key("repository"));
            ok &= image.is_some();
            image
        } else {
            None
        };
        let lambda = LambdaTarget {
            function,
            publish: raw.publish,
            alias: raw.alias.clone(),
        };
        if raw.alias.is_some() && !raw.publish {
            self.err_value(
                &at("alias"),
                "`alias` needs `publish = true`: an alias points at a published version".into(),
                None,
            );
            ok = false;
        }
        let smoke = match &raw.smoke {
            None => None,
            Some(smoke) => {
                let smoke = self.smoke(name, kind, smoke);
                ok &= smoke.is_some();
                smoke
            }
        };
        if raw.rollback_on_smoke_failure && smoke.is_none() {
            self.err_value(
                &at("rollback_on_smoke_failure"),
                "`rollback_on_smoke_failure` needs a `smoke` check".into(),
                None,
            );
            ok = false;
        }
        let target = match kind {
            Kind::Ecs => Target::Ecs(EcsTarget {
                cluster,
                service: ecs_service,
                container: raw.container.clone(),
                force_new_deployment: raw.force_new_deployment,
            }),
            Kind::Agentcore => {
                if let Some(platform) = image.as_ref().map(|i| &i.platform)
                    && platform.to_string() != "linux/arm64"
                {
                    self.err_value(
                        &at("platform"),
                        format!("AgentCore runtimes run linux/arm64 images, not {platform}"),
                        Some("set `platform = \"linux/arm64\"`".into()),
                    );
                    ok = false;
                }
                Target::Agentcore(AgentcoreTarget { runtime_id })
            }
            Kind::LambdaImage => {
                if let Some(platform) = image.as_ref().map(|i| &i.platform)
                    && !["linux/amd64", "linux/arm64"].contains(&platform.to_string().as_str())
                {
                    self.err_value(
                        &at("platform"),
                        format!("Lambda runs linux/amd64 or linux/arm64 images, not {platform}"),
                        None,
                    );
                    ok = false;
                }
                Target::LambdaImage(lambda)
            }
            Kind::LambdaZip => {
                let source = raw.source.clone().unwrap_or_default();
                ok &= self.path_in_repo(&at("source"), &source, PathKind::Dir);
                for (index, pattern) in raw.exclude.iter().enumerate() {
                    ok &= self.glob(&["services", name, "exclude"], index, pattern);
                }
                Target::LambdaZip(LambdaZipTarget {
                    lambda,
                    source,
                    exclude: raw.exclude.clone(),
                    s3_bucket: raw.s3_bucket.clone(),
                    s3_key_prefix: raw.s3_key_prefix.clone(),
                })
            }
            Kind::Sagemaker => {
                let blue_green = match &raw.blue_green {
                    None => None,
                    Some(raw_bg) => {
                        let blue_green = self.blue_green(name, raw_bg);
                        ok &= blue_green.is_some();
                        blue_green
                    }
                };
                let keep = match raw.keep {
                    None => 2,
                    Some(n) if (1..=100).contains(&n) => usize::try_from(n).unwrap_or(2),
                    Some(n) => {
                        self.err_value(&at("keep"), format!("keep = {n} is out of range"), Some("keep 1 to 100 earlier models and configs (the previous one is always kept)".into()));
                        ok = false;
                        2
                    }
                };
                Target::Sagemaker(SagemakerTarget {
                    endpoint,
                    variant: raw.variant.clone(),
                    blue_green,
                    keep,
                })
            }
        };
        ok.then(|| Service {
            name: name.to_owned(),
            kind,
            image,
            target,
            timeout,
            poll_interval,
            depends_on: raw.depends_on.clone(),
            restart_on_dependency_change: raw.restart_on_dependency_change,
            smoke,
            rollback_on_smoke_failure: raw.rollback_on_smoke_failure,
            lookups,
        })
    }

    fn smoke(&mut self, name: &str, kind: Kind, raw: &RawSmoke) -> Option<Smoke> {
        let at = ["services", name, "smoke"];
        let chosen = [
            raw.http.is_some(),
            raw.command.is_some(),
            raw.invoke.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen != 1 {
            self.err_value(
                &at,
                "a smoke check has exactly one of `http`, `command`, `invoke`".into(),
                Some("e.g. smoke = { http = \"https://api.example.com/health\", expect_status = 200, timeout_s = 60 }".into()),
            );
            return None;
        }
        let timeout = match raw.timeout_s {
            None => Duration::from_secs(60),
            Some(s) if (1..=3600).contains(&s) => {
                Duration::from_secs(u64::try_from(s).unwrap_or(60))
            }
            Some(s) => {
                self.err_value(
                    &at,
                    format!("smoke timeout_s = {s} is out of range (1 to 3600)"),
                    None,
                );
                return None;
            }
        };
        let check = if let Some(url) = &raw.http {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.err_value(
                    &at,
                    format!("smoke url `{url}` must start with http:// or https://"),
                    None,
                );
                return None;
            }
            let expect_status = match raw.expect_status {
                None => 200,
                Some(code) if (100..=599).contains(&code) => u16::try_from(code).unwrap_or(200),
                Some(code) => {
                    self.err_value(
                        &at,
                        format!("expect_status {code} is not an HTTP status"),
                        None,
                    );
                    return None;
                }
            };
            SmokeCheck::Http {
                url: url.clone(),
                expect_status,
                expect: raw.expect.clone(),
            }
        } else if let Some(argv) = &raw.command {
            if argv.first().is_none_or(String::is_empty) {
                self.err_value(
                    &at,
                    "smoke `command` must name a program: [\"./scripts/smoke.sh\", \"arg\"]".into(),
                    None,
                );
                return None;
            }
            SmokeCheck::Command { argv: argv.clone() }
        } else {
            if !matches!(kind, Kind::Agentcore | Kind::LambdaImage | Kind::LambdaZip) {
                self.err_value(
                    &at,
                    format!("smoke `invoke` works for agentcore and lambda services, not {kind}"),
                    Some("use `http` or `command`".into()),
                );
                return None;
            }
            let payload = match &raw.invoke {
                Some(toml::Value::String(text)) => text.clone(),
                Some(toml::Value::Table(table)) => match serde_json::to_string(table) {
                    Ok(json) => json,
                    Err(error) => {
                        self.err_value(
                            &at,
                            format!("the invoke payload cannot be turned into JSON: {error}"),
                            None,
                        );
                        return None;
                    }
                },
                _ => {
                    self.err_value(
                        &at,
                        "`invoke` is the payload: a JSON string or a table".into(),
                        None,
                    );
                    return None;
                }
            };
            SmokeCheck::Invoke {
                payload,
                expect: raw.expect.clone(),
            }
        };
        if raw.expect_status.is_some() && raw.http.is_none() {
            self.err_value(
                &at,
                "`expect_status` applies to `http` checks only".into(),
                None,
            );
            return None;
        }
        Some(Smoke { check, timeout })
    }

    fn blue_green(&mut self, name: &str, raw: &RawBlueGreen) -> Option<BlueGreen> {
        let at = ["services", name, "blue_green"];
        let percent = |this: &mut Self, value: Option<i64>, key: &str| -> Option<u8> {
            match value {
                Some(p) if (1..=99).contains(&p) => u8::try_from(p).ok(),
                Some(p) => {
                    this.err_value(&at, format!("{key} = {p} must be 1 to 99"), None);
                    None
                }
                None => {
                    this.err_value(&at, format!("this traffic shift needs `{key}`"), None);
                    None
                }
            }
        };
        let traffic = match raw.traffic.as_deref().unwrap_or("all-at-once") {
            "all-at-once" => Traffic::AllAtOnce,
            "canary" => Traffic::Canary {
                percent: percent(self, raw.canary_percent, "canary_percent")?,
            },
            "linear" => Traffic::Linear {
                percent: percent(self, raw.linear_percent, "linear_percent")?,
            },
            other => {
                self.err_value(
                    &at,
                    format!("unknown traffic shift `{other}`"),
                    Some("one of: all-at-once, canary, linear".into()),
                );
                return None;
            }
        };
        let wait_interval = self.duration(
            &["services", name, "blue_green", "wait_interval"],
            raw.wait_interval.as_deref(),
            Duration::from_secs(300),
        )?;
        let termination_wait = self
            .optional_duration(
                &["services", name, "blue_green", "termination_wait"],
                raw.termination_wait.as_deref(),
            )
            .ok()?;
        let max_execution = self
            .optional_duration(
                &["services", name, "blue_green", "max_execution"],
                raw.max_execution.as_deref(),
            )
            .ok()?;
        Some(BlueGreen {
            traffic,
            wait_interval,
            rollback_alarms: raw.rollback_alarms.clone(),
            termination_wait,
            max_execution,
        })
    }

    fn duration(
        &mut self,
        path: &[&str],
        text: Option<&str>,
        default: Duration,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        match humantime::parse_duration(text) {
            Ok(duration) if !duration.is_zero() => Some(duration),
            Ok(_) => {
                self.err_value(
                    path,
                    format!("`{}` must be longer than zero", path[path.len() - 1]),
                    None,
                );
                None
            }
            Err(error) => {
                self.err_value(
                    path,
                    format!("`{text}` is not a duration: {error}"),
                    Some("e.g. \"90s\", \"15m\", \"1h 30m\"".into()),
                );
                None
            }
        }
    }

    fn image(
        &mut self,
        name: &str,
        raw: &RawService,
        repository: String,
        repository_is_lookup: bool,
    ) -> Option<ImageBuild> {
        let at = |key: &'static str| ["services", name, key];
        let mut ok = true;
        let dockerfile = raw.dockerfile.clone().unwrap_or_default();
        ok &= self.path_in_repo(&at("dockerfile"), &dockerfile, PathKind::File);
        let context = raw.context.clone().unwrap_or_else(|| ".".into());
        ok &= self.path_in_repo(&at("context"), &context, PathKind::Dir);
        let platform = match Platform::parse(raw.platform.as_deref().unwrap_or_default()) {
            Ok(platform) => Some(platform),
            Err(message) => {
                self.err_value(&at("platform"), message, None);
                None
            }
        };
        let inputs = raw.inputs.clone().unwrap_or_default();
        if inputs.is_empty() {
            self.err_value(
                &at("inputs"),
                "`inputs` is empty: the image's tag would not depend on any file".into(),
                Some(
                    "list the globs whose content decides the image, e.g. [\"backend/src/app/**\"]"
                        .into(),
                ),
            );
            ok = false;
        }
        for (index, pattern) in inputs.iter().enumerate() {
            ok &= self.glob(&["services", name, "inputs"], index, pattern);
        }
        if !repository_is_lookup
            && !repository.is_empty()
            && let Err(message) = check_repository(&repository)
        {
            self.err_value(
                &at("repository"),
                message,
                Some("lowercase letters and digits separated by `.`, `_`, `-` and `/`, e.g. `acme/app-api`".into()),
            );
            ok = false;
        }
        for key in raw.build_args.keys() {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.err_value(
                    &["services", name, "build_args", key],
                    format!("build arg name `{key}` may hold only letters, digits and `_`"),
                    None,
                );
                ok = false;
            }
        }
        let platform = platform?;
        ok.then(|| ImageBuild {
            dockerfile,
            context,
            platform,
            inputs,
            repository,
            build_args: raw.build_args.clone(),
        })
    }

    /// Checks that `value` names an existing file or directory inside the repository.
    fn path_in_repo(&mut self, path: &[&str], value: &str, kind: PathKind) -> bool {
        let key = path[path.len() - 1];
        if let Err(message) = relative_inside(value) {
            self.err_value(
                path,
                format!("`{key}` {message}"),
                Some("paths are relative to the directory holding deployer.toml".into()),
            );
            return false;
        }
        let full = self.root.join(value);
        let meta = match std::fs::metadata(&full) {
            Ok(meta) => meta,
            Err(_) => {
                self.err_value(
                    path,
                    format!(
                        "{key} `{value}` does not exist (looked for {})",
                        full.display()
                    ),
                    None,
                );
                return false;
            }
        };
        let right_kind = match kind {
            PathKind::File => meta.is_file(),
            PathKind::Dir => meta.is_dir(),
        };
        if !right_kind {
            let want = match kind {
                PathKind::File => "a file",
                PathKind::Dir => "a directory",
            };
            self.err_value(path, format!("{key} `{value}` is not {want}"), None);
            return false;
        }
        if let Err(message) = stays_inside(self.root, value) {
            self.err_value(path, format!("{key} `{value}` {message}"), None);
            return false;
        }
        true
    }

    /// Checks one glob of `inputs` or `exclude`.
    fn glob(&mut self, path: &[&str], index: usize, pattern: &str) -> bool {
        let report = |this: &mut Self, message: String| {
            let span = match this.doc.get(path).map(Spanned::get_ref) {
                Some(DeValue::Array(items)) => items.get(index).map(Spanned::span),
                _ => None,
            }
            .unwrap_or_else(|| this.doc.value_span(path));
            this.diags.error(span, message, None);
            false
        };
        if pattern.is_empty() {
            return report(self, "empty glob".into());
        }
        if let Err(message) = relative_inside(pattern) {
            return report(self, format!("glob `{pattern}` {message}"));
        }
        if let Err(error) = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        {
            return report(
                self,
                format!("glob `{pattern}` is invalid: {}", error.kind()),
            );
        }
        // The literal directory prefix of the glob must not lead out through a symlink.
        if path.last() == Some(&"inputs") {
            let prefix = literal_prefix(pattern);
            if !prefix.is_empty()
                && self.root.join(&prefix).exists()
                && let Err(message) = stays_inside(self.root, &prefix)
            {
                return report(self, format!("glob `{pattern}`: `{prefix}` {message}"));
            }
        }
        true
    }
}

#[derive(Clone, Copy)]
enum PathKind {
    File,
    Dir,
}

/// Rejects absolute paths and any `..` component.
fn relative_inside(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    let path = Path::new(value);
    if path.is_absolute() || value.starts_with('/') || value.starts_with('\\') {
        return Err("is absolute: it must stay inside the repository");
    }
    if path.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::Prefix(_) | Component::RootDir
        )
    }) || value.split('/').any(|part| part == "..")
    {
        return Err("leaves the repository (`..`)");
    }
    Ok(())
}

/// Resolves symlinks and checks that `value` still lies inside `root`.
fn stays_inside(root: &Path, value: &str) -> Result<(), String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot be checked: the repository root cannot be resolved ({e})"))?;
    let full = root
        .join(value)
        .canonicalize()
        .map_err(|e| format!("cannot be resolved ({e})"))?;
    if full.starts_with(&root) {
        Ok(())
    } else {
        Err(format!(
            "leads out of the repository through a symlink (to {})",
            full.display()
        ))
    }
}

/// The directories of a glob before its first metacharacter: `a/b/**/*.py` → `a/b`.
pub fn literal_prefix(pattern: &str) -> String {
    let mut parts = Vec::new();
    let segments: Vec<&str> = pattern.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.contains(['*', '?', '[', '{']) {
            break;
        }
        if i + 1 == segments.len() {
            // a literal last segment is the file itself
            parts.push(*segment);
            break;
        }
        parts.push(*segment);
    }
    parts.join("/")
}

fn valid_ssm_prefix(prefix: &str) -> bool {
    prefix.len() > 1
        && prefix.starts_with('/')
        && !prefix.ends_with('/')
        && !prefix.contains("//")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
}

/// Checks a registry host (`host[:port]`), e.g. a looked-up value.
pub fn check_registry(registry: &str) -> Result<(), String> {
    if valid_registry(registry) {
        Ok(())
    } else {
        Err(format!("registry `{registry}` is not a registry host"))
    }
}

/// Checks a repository name, e.g. a looked-up value.
pub fn check_repository(repository: &str) -> Result<(), String> {
    if valid_repository(repository) {
        Ok(())
    } else {
        Err(format!(
            "repository `{repository}` is not a valid repository name"
        ))
    }
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

fn valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.split('/').all(|component| {
            !component.is_empty()
                && component
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && component.starts_with(|c: char| c.is_ascii_alphanumeric())
                && component.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
