//! One Lambda function: read its state, wait until it can be updated, update its code, wait
//! until the update settled, publish a version and point an alias at it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, Architecture, FunctionConfiguration, LastUpdateStatus,
    LastUpdateStatusReasonCode, PackageType, State,
};
use deployer_core::manifest::{LambdaTarget, Platform};
use deployer_core::poll::{Poll, PollPolicy, StateLog, poll_until, retry};
use deployer_core::progress::{Phase, Progress};
use deployer_core::{Applied, Artifact, DeployError, LiveState, Presence, one_line};

use crate::error::{api_error, is_conflict, is_not_found};
use crate::ids;

/// How a function's code is packaged (Lambda's `PackageType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageKind {
    /// A `.zip` deployment package (`PackageType: Zip`, Lambda's default).
    Zip,
    /// A container image (`PackageType: Image`).
    Image,
}

impl PackageKind {
    fn noun(self) -> &'static str {
        match self {
            PackageKind::Zip => "a zip function",
            PackageKind::Image => "an image function",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            PackageKind::Zip => "lambda-zip",
            PackageKind::Image => "lambda-image",
        }
    }
}

/// The new code for `UpdateFunctionCode`.
#[derive(Clone)]
pub enum Code {
    /// An image URI (image functions), preferably digest-pinned.
    ImageUri(String),
    /// The zip itself, uploaded in the request (up to the direct-upload limit).
    ZipFile(Arc<[u8]>),
    /// A zip already uploaded to S3.
    S3 {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
    },
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::ImageUri(uri) => f.debug_tuple("ImageUri").field(uri).finish(),
            Code::ZipFile(bytes) => write!(f, "ZipFile({} bytes)", bytes.len()),
            Code::S3 { bucket, key } => write!(f, "S3(s3://{bucket}/{key})"),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::ImageUri(uri) => write!(f, "image {uri}"),
            Code::ZipFile(bytes) => write!(f, "zip uploaded directly ({} bytes)", bytes.len()),
            Code::S3 { bucket, key } => write!(f, "zip from s3://{bucket}/{key}"),
        }
    }
}

/// The Lambda architecture (`x86_64`, `arm64`) that runs images built for `platform`.
pub fn architecture_for(platform: &Platform) -> Result<Architecture, DeployError> {
    match (platform.os.as_str(), platform.arch.as_str()) {
        ("linux", "amd64") => Ok(Architecture::X8664),
        ("linux", "arm64") => Ok(Architecture::Arm64),
        _ => Err(DeployError::Mismatch(format!(
            "Lambda runs linux/amd64 or linux/arm64 images, not {platform}"
        ))),
    }
}

/// One Lambda function as the manifest names it, with the SDK client to reach it.
///
/// Both Lambda deployers are thin layers over this type: they differ only in the live artifact
/// identity (image URI or `CodeSha256`) and in how the new [`Code`] is prepared.
#[derive(Clone, Debug)]
pub struct Function {
    client: Client,
    target: LambdaTarget,
    package: PackageKind,
    architecture: Option<Result<Architecture, String>>,
    policy: PollPolicy,
}

impl Function {
    /// The function `target.function`, holding `package` code. Waits made while applying (the
    /// wait before the update, conflict retries) use [`Function::default_policy`] until
    /// [`Function::with_policy`] says otherwise.
    pub fn new(client: Client, target: LambdaTarget, package: PackageKind) -> Self {
        Function {
            client,
            target,
            package,
            architecture: None,
            policy: Self::default_policy(),
        }
    }

    /// Ten minutes, polling every 2 s growing to 15 s: the manifest's default for Lambda.
    pub fn default_policy() -> PollPolicy {
        PollPolicy::default().with_timeout(deployer_core::Kind::LambdaZip.default_timeout())
    }

    /// Requires the function to run on the architecture of `platform` (image functions): a
    /// mismatch is a [`DeployError::Mismatch`] before anything is sent.
    pub fn with_platform(mut self, platform: &Platform) -> Self {
        self.architecture = Some(architecture_for(platform).map_err(|error| error.to_string()));
        self
    }

    /// The policy for waits made while applying: the wait until the function can be updated,
    /// and retries of updates refused with `ResourceConflictException`.
    pub fn with_policy(mut self, policy: PollPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The manifest's target.
    pub fn target(&self) -> &LambdaTarget {
        &self.target
    }

    /// The policy for waits before an update (and for a rollback's alias update).
    pub fn policy(&self) -> PollPolicy {
        self.policy.clone()
    }

    /// `Lambda function <name>`, with the alias when there is one.
    pub fn describe(&self) -> String {
        match &self.target.alias {
            Some(alias) => format!("Lambda function {} (alias {alias})", self.target.function),
            None => format!("Lambda function {}", self.target.function),
        }
    }

    fn name(&self) -> &str {
        &self.target.function
    }

    /// Whether deploys publish a version (an alias implies it).
    fn publishes(&self) -> bool {
        self.target.publish || self.target.alias.is_some()
    }

    fn not_found(&self) -> DeployError {
        DeployError::NotFound {
            what: format!("Lambda function {}", self.name()),
            hint: "create it with your infrastructure code (deployer updates functions, it does not create them), and check the region and account".into(),
        }
    }

    // ---------------------------------------------------------------- read

    /// The function's [`STACK_NAME_TAG`](deployer_core::STACK_NAME_TAG) tag, from
    /// `GetFunction` (which returns the tags to a caller allowed `lambda:ListTags`).
    pub async fn owning_stack(&self) -> Result<Option<String>, DeployError> {
        let output = self
            .client
            .get_function()
            .function_name(self.name())
            .send()
            .await
            .map_err(|error| {
                if is_not_found(&error) {
                    self.not_found()
                } else {
                    api_error("GetFunction", &error)
                }
            })?;
        Ok(output
            .tags()
            .and_then(|tags| tags.get(deployer_core::STACK_NAME_TAG))
            .cloned())
    }

    /// Reads the function: `GetFunction`, then the alias (`GetAlias` and the configuration of
    /// the version it points at) or, publishing without an alias, the newest published version.
    ///
    /// `artifact` is the function's image URI (image functions: `Code.ImageUri`, with the
    /// resolved digest appended when the URI names a tag) or its `CodeSha256` (zip functions).
    /// The ids are listed in [`ids`]. A function of the other package type, or on another
    /// architecture, is a [`DeployError::Mismatch`]; a missing one [`DeployError::NotFound`].
    pub async fn read_live(&self) -> Result<LiveState, DeployError> {
        let output = self
            .client
            .get_function()
            .function_name(self.name())
            .send()
            .await
            .map_err(|error| {
                if is_not_found(&error) {
                    self.not_found()
                } else {
                    api_error("GetFunction", &error)
                }
            })?;
        let config = output.configuration().ok_or(DeployError::MissingField {
            operation: "GetFunction",
            field: "Configuration",
        })?;
        let config = Snapshot::from(config);
        self.check(&config)?;
        let arn = config
            .function_arn
            .as_deref()
            .ok_or(DeployError::MissingField {
                operation: "GetFunction",
                field: "Configuration.FunctionArn",
            })?;
        let code_sha256 = config
            .code_sha256
            .as_deref()
            .ok_or(DeployError::MissingField {
                operation: "GetFunction",
                field: "Configuration.CodeSha256",
            })?;
        let artifact = match self.package {
            PackageKind::Zip => Some(code_sha256.to_owned()),
            PackageKind::Image => output.code().and_then(|code| {
                let uri = code.image_uri()?;
                let resolved = code.resolved_image_uri().and_then(|r| r.split_once('@'));
                Some(match resolved {
                    Some((_, digest)) if !uri.contains('@') => format!("{uri}@{digest}"),
                    _ => uri.to_owned(),
                })
            }),
        };
        let mut live_ids = BTreeMap::from([
            (ids::FUNCTION.to_owned(), arn.to_owned()),
            (ids::CODE_SHA256.to_owned(), code_sha256.to_owned()),
        ]);
        if let Some(modified) = config.last_modified.as_deref() {
            live_ids.insert(ids::LAST_MODIFIED.to_owned(), modified.to_owned());
        }
        if let Some(status) = config.last_update_status.as_ref() {
            live_ids.insert(
                ids::LAST_UPDATE_STATUS.to_owned(),
                status.as_str().to_owned(),
            );
        }
        let mut summary = format!(
            "{} {} ({}) runs {}; last update {}",
            match self.package {
                PackageKind::Zip => "zip function",
                PackageKind::Image => "image function",
            },
            self.name(),
            config.architecture().as_str(),
            artifact.as_deref().unwrap_or("unknown code"),
            config
                .last_update_status
                .as_ref()
                .map_or("unknown", LastUpdateStatus::as_str),
        );
        if let Some(alias) = &self.target.alias {
            match self.read_alias(alias, code_sha256).await? {
                Some(version) => {
                    summary.push_str(&format!("; alias {alias} → version {}", version.version));
                    if let Some(routing) = &version.routing {
                        summary.push_str(&format!(" (weighted: {routing})"));
                        live_ids.insert(ids::ALIAS_ROUTING.to_owned(), routing.clone());
                    }
                    live_ids.insert(ids::ALIAS.to_owned(), alias.clone());
                    live_ids.insert(ids::VERSION.to_owned(), version.version);
                    live_ids.insert(ids::VERSION_CODE_SHA256.to_owned(), version.code_sha256);
                }
                None => summary.push_str(&format!("; no alias {alias} yet")),
            }
        } else if self.publishes() {
            match self.read_newest_version().await? {
                Some(version) => {
                    summary.push_str(&format!("; newest published version {}", version.version));
                    live_ids.insert(ids::VERSION.to_owned(), version.version);
                    live_ids.insert(ids::VERSION_CODE_SHA256.to_owned(), version.code_sha256);
                }
                None => summary.push_str("; no published version yet"),
            }
        }
        Ok(LiveState {
            artifact,
            ids: live_ids,
            summary,
        })
    }

    /// The version `alias` points at and its code, or `None` when there is no such alias.
    async fn read_alias(
        &self,
        alias: &str,
        latest_code_sha256: &str,
    ) -> Result<Option<VersionCode>, DeployError> {
        let output = match self
            .client
            .get_alias()
            .function_name(self.name())
            .name(alias)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(api_error("GetAlias", &error)),
        };
        let version = output.function_version().ok_or(DeployError::MissingField {
            operation: "GetAlias",
            field: "FunctionVersion",
        })?;
        let routing = output
            .routing_config()
            .and_then(AliasRoutingConfiguration::additional_version_weights)
            .filter(|weights| !weights.is_empty())
            .map(|weights| {
                let mut weights: Vec<String> =
                    weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
                weights.sort();
                weights.join(",")
            });
        let code_sha256 = if version == LATEST {
            latest_code_sha256.to_owned()
        } else {
            let config = self.configuration(Some(version)).await?;
            config
                .code_sha256
                .ok_or(DeployError::MissingField {
                    operation: "GetFunctionConfiguration",
                    field: "CodeSha256",
                })?
                .to_owned()
        };
        Ok(Some(VersionCode {
            version: version.to_owned(),
            code_sha256,
            routing,
        }))
    }

    /// The highest-numbered published version and its code, if any was published.
    async fn read_newest_version(&self) -> Result<Option<VersionCode>, DeployError> {
        let mut newest: Option<(u64, String)> = None;
        let mut marker: Option<String> = None;
        loop {
            let output = self
                .client
                .list_versions_by_function()
                .function_name(self.name())
                .set_marker(marker.take())
                .max_items(50)
                .send()
                .await
                .map_err(|error| api_error("ListVersionsByFunction", &error))?;
            for version in output.versions() {
                let (Some(number), Some(code)) = (
                    version.version().and_then(|v| v.parse::<u64>().ok()),
                    version.code_sha256(),
                ) else {
                    continue; // $LATEST
                };
                if newest.as_ref().is_none_or(|(n, _)| number > *n) {
                    newest = Some((number, code.to_owned()));
                }
            }
            match output.next_marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(newest.map(|(number, code_sha256)| VersionCode {
            version: number.to_string(),
            code_sha256,
            routing: None,
        }))
    }

    /// `GetFunctionConfiguration` of `$LATEST` or of a version.
    async fn configuration(&self, qualifier: Option<&str>) -> Result<Snapshot, DeployError> {
        let output = self
            .client
            .get_function_configuration()
            .function_name(self.name())
            .set_qualifier(qualifier.map(str::to_owned))
            .send()
            .await
            .map_err(|error| {
                if is_not_found(&error) && qualifier.is_none() {
                    self.not_found()
                } else {
                    api_error("GetFunctionConfiguration", &error)
                }
            })?;
        Ok(Snapshot::from(&output))
    }

    /// [`Function::configuration`] for a poll: a failure worth another poll (throttling, a
    /// server error, a timeout, a lost connection: after the SDK's own retries) is `Ok(Err(line))`,
    /// a pending state; any other failure ends the wait.
    async fn poll_configuration(
        &self,
        qualifier: Option<&str>,
    ) -> Result<Result<Snapshot, String>, DeployError> {
        let result = self
            .client
            .get_function_configuration()
            .function_name(self.name())
            .set_qualifier(qualifier.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(output) => Ok(Ok(Snapshot::from(&output))),
            Err(error) if deployer_aws::classify(&error).is_retryable() => {
                let error = api_error("GetFunctionConfiguration", &error);
                Ok(Err(format!("{error} (retrying)")))
            }
            Err(error) if is_not_found(&error) && qualifier.is_none() => Err(self.not_found()),
            Err(error) => Err(api_error("GetFunctionConfiguration", &error)),
        }
    }

    /// Why the last update of `$LATEST` failed, in Lambda's words: `LastUpdateStatusReasonCode:
    /// LastUpdateStatusReason` of a failed update, `StateReasonCode: StateReason` of a failed
    /// function (the [`Deployer::diagnose`](deployer_core::Deployer::diagnose) of Lambda
    /// services). A failed read is "unavailable".
    pub async fn diagnosis(&self) -> deployer_core::Diagnosis {
        let mut diagnosis = deployer_core::Diagnosis::default();
        let result = self
            .client
            .get_function_configuration()
            .function_name(self.name())
            .send()
            .await;
        let config = match result {
            Ok(output) => output,
            Err(error) => {
                diagnosis
                    .unavailable
                    .push(api_error("GetFunctionConfiguration", &error).to_string());
                return diagnosis;
            }
        };
        let reason = |code: Option<&str>, text: Option<&str>| {
            let text = one_line(text.unwrap_or("no reason given"));
            match code {
                Some(code) => format!("{code}: {text}"),
                None => text,
            }
        };
        if config.last_update_status() == Some(&LastUpdateStatus::Failed) {
            diagnosis.reasons.push(reason(
                config.last_update_status_reason_code().map(|c| c.as_str()),
                config.last_update_status_reason(),
            ));
        }
        if config.state() == Some(&State::Failed) {
            diagnosis.reasons.push(reason(
                config.state_reason_code().map(|c| c.as_str()),
                config.state_reason(),
            ));
        }
        diagnosis
    }

    /// Where the function logs ([`Deployer::log_sources`](deployer_core::Deployer::log_sources)):
    /// its `LoggingConfig.LogGroup`, else `/aws/lambda/<function>`, every stream; its lines
    /// hide the function's environment values.
    pub async fn log_source(&self) -> Result<deployer_core::LogSource, DeployError> {
        let config = self
            .client
            .get_function_configuration()
            .function_name(self.name())
            .send()
            .await
            .map_err(|error| api_error("GetFunctionConfiguration", &error))?;
        let group = config
            .logging_config()
            .and_then(|logging| logging.log_group())
            .filter(|group| !group.is_empty())
            .map_or_else(|| format!("/aws/lambda/{}", self.name()), str::to_owned);
        let redact = config
            .environment()
            .and_then(|environment| environment.variables())
            .map(|variables| variables.values().cloned().collect())
            .unwrap_or_default();
        Ok(deployer_core::LogSource {
            group,
            region: None,
            stream_prefix: None,
            label: "function".into(),
            redact,
        })
    }

    /// Refuses a function of the other package type or (image functions) architecture.
    fn check(&self, config: &Snapshot) -> Result<(), DeployError> {
        // Lambda always reports PackageType; a function created without one is a zip function.
        let package = match config.package_type {
            Some(PackageType::Image) => PackageKind::Image,
            _ => PackageKind::Zip,
        };
        if package != self.package {
            return Err(DeployError::Mismatch(format!(
                "Lambda function {} is {} (PackageType {}), but a `{}` service deploys {}; set `kind = \"{}\"` or point `function` at {}",
                self.name(),
                package.noun(),
                config
                    .package_type
                    .as_ref()
                    .map_or("Zip", PackageType::as_str),
                self.package.kind(),
                self.package.noun(),
                package.kind(),
                self.package.noun(),
            )));
        }
        match &self.architecture {
            None => Ok(()),
            Some(Err(message)) => Err(DeployError::Mismatch(message.clone())),
            Some(Ok(wanted)) => {
                let live = &config.architecture();
                if live == wanted {
                    return Ok(());
                }
                let platform = |arch: &Architecture| match arch {
                    Architecture::Arm64 => "linux/arm64",
                    _ => "linux/amd64",
                };
                Err(DeployError::Mismatch(format!(
                    "Lambda function {} runs on {}, but the image is built for {}; set `platform = \"{}\"` or change the function's architecture in your infrastructure code",
                    self.name(),
                    live.as_str(),
                    platform(wanted),
                    platform(live),
                )))
            }
        }
    }

    // ---------------------------------------------------------------- decide

    /// Whether `live` already runs `wanted`, as far as this function's settings go:
    ///
    /// - the code of `$LATEST` is `wanted` (image URI or `CodeSha256`, [`Artifact::matches_live`]);
    /// - with `publish`, a published version holds that same code: with an alias, the alias
    ///   points (with no additional weighted version) at a published version, not `$LATEST`,
    ///   whose `CodeSha256` equals that of `$LATEST`; without an alias, the newest published
    ///   version's `CodeSha256` equals that of `$LATEST`.
    ///
    /// Versions are compared by Lambda's own `CodeSha256`, so image and zip functions are
    /// treated alike. When only the version or alias lags (a deploy stopped after the code
    /// update), the code update is skipped and only publish and alias are done.
    ///
    /// A code update still `InProgress` (a run stopped while it waited) or `Failed` is not
    /// current even when `$LATEST` already names the wanted code. In progress, the deployers
    /// send nothing ([`code_is_live`]) and [`Function::wait`] waits for that update and reports
    /// how it ended; failed, they send the code again.
    pub fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        live.runs(wanted) && update_settled(live) && self.versions_current(live)
    }

    fn versions_current(&self, live: &LiveState) -> bool {
        if !self.publishes() {
            return true;
        }
        let Some(version) = live.ids.get(ids::VERSION) else {
            return false;
        };
        if version == LATEST || live.ids.contains_key(ids::ALIAS_ROUTING) {
            return false;
        }
        if self.target.alias.is_some() && !live.ids.contains_key(ids::ALIAS) {
            return false;
        }
        match (
            live.ids.get(ids::VERSION_CODE_SHA256),
            live.ids.get(ids::CODE_SHA256),
        ) {
            (Some(version_code), Some(latest_code)) => version_code == latest_code,
            _ => false,
        }
    }

    /// Whether traffic reaches `artifact` in `live`: what a record of `artifact` may claim.
    ///
    /// Without an alias in the manifest this is [`Function::is_current`]. With one, callers
    /// invoke the alias, so what serves is the published version it points at, not `$LATEST`
    /// (after [`Function::restore`] pointed the alias back at an earlier version, `$LATEST`
    /// keeps the newer code): `artifact` is served when the alias exists, routes to that one
    /// version alone (no additional weighted version), and that version's code
    /// ([`ids::VERSION_CODE_SHA256`]) is `artifact`'s. A zip is compared by its `CodeSha256`; an
    /// image by the live image URI when the version holds the code of `$LATEST`, else by its
    /// digest (Lambda's `CodeSha256` of an image function is the manifest digest's hex). An
    /// alias on `$LATEST` serves `$LATEST` once its last update succeeded.
    pub fn serves(&self, live: &LiveState, artifact: &Artifact) -> bool {
        if self.target.alias.is_none() {
            return self.is_current(live, artifact);
        }
        if !live.ids.contains_key(ids::ALIAS) || live.ids.contains_key(ids::ALIAS_ROUTING) {
            return false;
        }
        let (Some(version), Some(version_code)) = (
            live.ids.get(ids::VERSION),
            live.ids.get(ids::VERSION_CODE_SHA256),
        ) else {
            return false;
        };
        if version == LATEST {
            return live.runs(artifact) && update_settled(live);
        }
        if live.ids.get(ids::CODE_SHA256) == Some(version_code) && live.runs(artifact) {
            return true;
        }
        match artifact {
            Artifact::Zip(zip) => zip.sha256_b64 == *version_code,
            Artifact::Image(image) => image
                .digest
                .as_deref()
                .and_then(|digest| digest.strip_prefix("sha256:"))
                .is_some_and(|hex| hex == version_code),
            // A function never runs a config set.
            Artifact::Config(_) => false,
        }
    }

    // ---------------------------------------------------------------- apply

    /// Waits until the function can be updated, then sends `UpdateFunctionCode` with `code`,
    /// retrying while Lambda answers `ResourceConflictException`; every attempt first passes
    /// [`Progress::before_mutation`] (a refusal is returned as [`DeployError::Fenced`]).
    /// `code` is `None` when `$LATEST` already holds the new code ([`code_is_live`]: only the
    /// version or alias lags, or an update is in progress): nothing is sent then, and
    /// [`Function::wait`] waits for the update, publishes and moves the alias.
    ///
    /// `expected_code_sha256` (zip functions) is checked against the `CodeSha256` Lambda
    /// reports for the new code. `new_artifact` is recorded as the artifact rolled to.
    pub async fn apply(
        &self,
        live: &LiveState,
        code: Option<Code>,
        expected_code_sha256: Option<&str>,
        new_artifact: String,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let mut applied_ids = BTreeMap::new();
        for (from, to) in [
            (ids::FUNCTION, ids::FUNCTION),
            (ids::CODE_SHA256, ids::OLD_CODE_SHA256),
            (ids::VERSION, ids::OLD_VERSION),
        ] {
            if let Some(value) = live.ids.get(from) {
                applied_ids.insert(to.to_owned(), value.clone());
            }
        }
        if let Some(alias) = &self.target.alias {
            applied_ids.insert(ids::ALIAS.to_owned(), alias.clone());
        }
        let ready = self.wait_ready(progress).await?;
        let code_sha256 = match code {
            None => {
                progress.emit(
                    Phase::Apply,
                    format!("{} already holds the code: no code update", self.name()),
                );
                ready.code_sha256.as_deref().map(str::to_owned)
            }
            Some(code) => {
                let reported = self.update_code(&code, progress).await?;
                if let (Some(expected), Some(reported)) = (expected_code_sha256, &reported)
                    && expected != reported
                {
                    return Err(DeployError::RolloutFailed {
                        reason: format!(
                            "Lambda reports CodeSha256 {reported} for the new code of {}, not {expected} (the local zip's)",
                            self.name()
                        ),
                        events: Vec::new(),
                    });
                }
                expected_code_sha256.map(str::to_owned).or(reported)
            }
        };
        if let Some(code_sha256) = code_sha256 {
            applied_ids.insert(ids::CODE_SHA256.to_owned(), code_sha256);
        }
        Ok(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact,
            ids: applied_ids,
        })
    }

    /// Polls until `State` is not `Pending` and `LastUpdateStatus` is not `InProgress`: Lambda
    /// refuses an update while another one runs.
    ///
    /// A function whose previous update `Failed` may be updated (that is how it is repaired);
    /// `Inactive` functions too (the update activates them).
    async fn wait_ready(&self, progress: &Progress) -> Result<Snapshot, DeployError> {
        let what = format!("{} to be ready for an update", self.describe());
        let seen = StateLog::new(1);
        poll_until(&what, &self.policy, || async {
            let config = match self.poll_configuration(None).await? {
                Ok(config) => config,
                Err(line) => {
                    report_once(&seen, progress, Phase::Apply, &line);
                    return Ok(Poll::Pending(line));
                }
            };
            self.check(&config)?;
            let state = describe_state(&config);
            let busy = matches!(
                config.last_update_status.as_ref(),
                Some(LastUpdateStatus::InProgress)
            ) || matches!(config.state.as_ref(), Some(State::Pending));
            if busy {
                report_once(&seen, progress, Phase::Apply, &state);
                return Ok(Poll::Pending(state));
            }
            if matches!(config.state.as_ref(), Some(State::Deleting)) {
                return Err(DeployError::NotFound {
                    what: format!("Lambda function {}", self.name()),
                    hint: "it is being deleted".into(),
                });
            }
            Ok(Poll::Ready(config))
        })
        .await
        .map_err(|error| error.into_deploy_error(Vec::new()))
    }

    /// Sends `UpdateFunctionCode`, retrying on `ResourceConflictException`. Returns the
    /// `CodeSha256` Lambda reports.
    async fn update_code(
        &self,
        code: &Code,
        progress: &Progress,
    ) -> Result<Option<String>, DeployError> {
        progress.emit(Phase::Apply, format!("updating {}: {code}", self.name()));
        let attempts = AtomicUsize::new(0);
        let output = fenced_retry(&self.policy, progress, UPDATE_CODE, is_conflict, || {
            if attempts.fetch_add(1, Ordering::Relaxed) > 0 {
                progress.emit(
                    Phase::Apply,
                    format!("another update of {} is in progress: retrying", self.name()),
                );
            }
            let request = self
                .client
                .update_function_code()
                .function_name(self.name());
            let request = match code {
                Code::ImageUri(uri) => request.image_uri(uri),
                Code::ZipFile(bytes) => request.zip_file(Blob::new(bytes.to_vec())),
                Code::S3 { bucket, key } => request.s3_bucket(bucket).s3_key(key),
            };
            request.send()
        })
        .await
        .map_err(|attempt| {
            attempt.into_error(|error| {
                if is_not_found(&error) {
                    self.not_found()
                } else {
                    api_error(UPDATE_CODE, &error)
                }
            })
        })?;
        Ok(output.code_sha256().map(str::to_owned))
    }

    // ---------------------------------------------------------------- wait

    /// Waits until the update settled (`LastUpdateStatus: Successful`), then, when the manifest
    /// asks for it, publishes a version and points the alias at it.
    ///
    /// `LastUpdateStatus: Failed` ends the wait at once with [`DeployError::RolloutFailed`]
    /// carrying Lambda's `LastUpdateStatusReason` — a failed update never turns successful, so
    /// polling on would only hide the reason until the timeout.
    pub async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        if let Some(version) = applied.ids.get(ids::RESTORED_VERSION) {
            return self.confirm_restored(applied, version).await;
        }
        let settled = self.wait_updated(policy, progress).await?;
        let mut applied = applied.clone();
        let code_sha256 = settled
            .code_sha256
            .as_deref()
            .ok_or(DeployError::MissingField {
                operation: "GetFunctionConfiguration",
                field: "CodeSha256",
            })?;
        if self.package == PackageKind::Zip
            && let Some(expected) = applied.ids.get(ids::CODE_SHA256)
            && expected != code_sha256
        {
            return Err(DeployError::RolloutFailed {
                reason: format!(
                    "{} holds CodeSha256 {code_sha256} after the update, not {expected}: another deploy changed it meanwhile",
                    self.name()
                ),
                events: Vec::new(),
            });
        }
        applied
            .ids
            .insert(ids::CODE_SHA256.to_owned(), code_sha256.to_owned());
        if !self.publishes() {
            return Ok(applied);
        }
        let version = self
            .publish(
                code_sha256,
                settled.revision_id.as_deref(),
                policy,
                progress,
            )
            .await?;
        self.wait_version_active(&version, policy, progress).await?;
        applied.ids.insert(ids::VERSION.to_owned(), version.clone());
        if let Some(alias) = &self.target.alias {
            self.point_alias(alias, &version, policy, progress).await?;
        }
        Ok(applied)
    }

    /// Rolls back to an earlier deploy by pointing the alias at the version that deploy
    /// published (`previous.ids["version"]`): Lambda keeps published versions, not earlier
    /// `$LATEST` code, so only a function deployed with `publish = true` and an `alias` can be
    /// rolled back without the earlier artifact. `$LATEST` keeps the newer code. The returned
    /// record carries [`ids::RESTORED_VERSION`]; [`Function::wait`] then only confirms the alias.
    pub async fn restore(
        &self,
        live: &LiveState,
        previous: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let Some(alias) = self.target.alias.as_deref().filter(|_| self.publishes()) else {
            return Err(DeployError::Mismatch(format!(
                "{} cannot be rolled back to {}: Lambda keeps no earlier code of an unpublished function; set `publish = true` and `alias` to roll back by version, or deploy the earlier commit",
                self.name(),
                previous.new_artifact
            )));
        };
        let version = previous.ids.get(ids::VERSION).ok_or_else(|| {
            DeployError::Mismatch(format!(
                "the deploy of {} recorded no published version to roll back to; deploy the earlier commit instead",
                previous.new_artifact
            ))
        })?;
        self.point_alias(alias, version, policy, progress).await?;
        let mut ids = previous.ids.clone();
        ids.insert(ids::RESTORED_VERSION.to_owned(), version.clone());
        ids.insert(ids::ALIAS.to_owned(), alias.to_owned());
        Ok(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact: previous.new_artifact.clone(),
            ids,
        })
    }

    /// Whether [`Function::restore`] could point the alias at `previous`'s recorded version:
    /// `GetFunctionConfiguration` of that version, gone when Lambda no longer has it (it was
    /// deleted). Read-only. A record without a version is left to `restore` to refuse.
    pub async fn restorable(&self, previous: &Applied) -> Result<Presence, DeployError> {
        let Some(version) = previous.ids.get(ids::VERSION) else {
            return Ok(Presence::Present);
        };
        match self
            .client
            .get_function_configuration()
            .function_name(self.name())
            .qualifier(version)
            .send()
            .await
        {
            Ok(_) => Ok(Presence::Present),
            Err(error) if is_not_found(&error) => Ok(Presence::Gone {
                why: format!(
                    "version {version} of {} no longer exists (it was deleted)",
                    self.name()
                ),
            }),
            Err(error) => Err(api_error("GetFunctionConfiguration", &error)),
        }
    }

    /// After [`Function::restore`]: the alias must point at the restored version.
    async fn confirm_restored(
        &self,
        applied: &Applied,
        version: &str,
    ) -> Result<Applied, DeployError> {
        let Some(alias) = self.target.alias.as_deref() else {
            return Ok(applied.clone());
        };
        let output = self
            .client
            .get_alias()
            .function_name(self.name())
            .name(alias)
            .send()
            .await
            .map_err(|error| api_error("GetAlias", &error))?;
        match output.function_version() {
            Some(live) if live == version => Ok(applied.clone()),
            other => Err(DeployError::RolloutFailed {
                reason: format!(
                    "alias {alias} of {} points at version {} after the rollback, not {version}",
                    self.name(),
                    other.unwrap_or("(none)")
                ),
                events: Vec::new(),
            }),
        }
    }

    /// Polls `$LATEST` until its update settled.
    async fn wait_updated(
        &self,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Snapshot, DeployError> {
        let what = format!("the code update of {}", self.describe());
        let seen = StateLog::new(1);
        poll_until(&what, policy, || async {
            let config = match self.poll_configuration(None).await? {
                Ok(config) => config,
                Err(line) => {
                    report_once(&seen, progress, Phase::Wait, &line);
                    return Ok(Poll::Pending(line));
                }
            };
            let state = describe_state(&config);
            match config.last_update_status.as_ref() {
                Some(LastUpdateStatus::Failed) => {
                    return Err(DeployError::RolloutFailed {
                        reason: format!(
                            "the code update of {} failed: {}",
                            self.name(),
                            update_failure(&config)
                        ),
                        events: Vec::new(),
                    });
                }
                Some(LastUpdateStatus::Successful) | None => {}
                Some(_) => {
                    report_once(&seen, progress, Phase::Wait, &state);
                    return Ok(Poll::Pending(state));
                }
            }
            match config.state.as_ref() {
                Some(State::Failed) => Err(DeployError::RolloutFailed {
                    reason: format!(
                        "{} is in state Failed: {}",
                        self.name(),
                        one_line(config.state_reason.as_deref().unwrap_or("no reason given"))
                    ),
                    events: Vec::new(),
                }),
                Some(State::Pending) => {
                    report_once(&seen, progress, Phase::Wait, &state);
                    Ok(Poll::Pending(state))
                }
                _ => Ok(Poll::Ready(config)),
            }
        })
        .await
        .map_err(|error| error.into_deploy_error(Vec::new()))
    }

    /// `PublishVersion` of the settled code, retrying on conflicts. Returns the version.
    async fn publish(
        &self,
        code_sha256: &str,
        revision_id: Option<&str>,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<String, DeployError> {
        progress.emit(
            Phase::Apply,
            format!("publishing a version of {}", self.name()),
        );
        let output = fenced_retry(policy, progress, PUBLISH, is_conflict, || {
            self.client
                .publish_version()
                .function_name(self.name())
                .code_sha256(code_sha256)
                .set_revision_id(revision_id.map(str::to_owned))
                .send()
        })
        .await
        .map_err(|attempt| attempt.into_error(|error| api_error(PUBLISH, &error)))?;
        let version = output.version().ok_or(DeployError::MissingField {
            operation: "PublishVersion",
            field: "Version",
        })?;
        Ok(version.to_owned())
    }

    /// Polls the new version until it is no longer `Pending`.
    async fn wait_version_active(
        &self,
        version: &str,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<(), DeployError> {
        let what = format!("version {version} of {}", self.describe());
        let seen = StateLog::new(1);
        poll_until(&what, policy, || async {
            let config = match self.poll_configuration(Some(version)).await? {
                Ok(config) => config,
                Err(line) => {
                    report_once(&seen, progress, Phase::Wait, &line);
                    return Ok(Poll::Pending(line));
                }
            };
            match config.state.as_ref() {
                Some(State::Failed) => Err(DeployError::RolloutFailed {
                    reason: format!(
                        "version {version} of {} is in state Failed: {}",
                        self.name(),
                        one_line(config.state_reason.as_deref().unwrap_or("no reason given"))
                    ),
                    events: Vec::new(),
                }),
                Some(State::Pending) => {
                    let state = describe_state(&config);
                    report_once(&seen, progress, Phase::Wait, &state);
                    Ok(Poll::Pending(state))
                }
                _ => Ok(Poll::Ready(())),
            }
        })
        .await
        .map_err(|error| error.into_deploy_error(Vec::new()))
    }

    /// Points `alias` at `version` with no weighted second version: `UpdateAlias`, or
    /// `CreateAlias` when it does not exist yet.
    async fn point_alias(
        &self,
        alias: &str,
        version: &str,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<(), DeployError> {
        progress.emit(
            Phase::Apply,
            format!(
                "pointing alias {alias} of {} at version {version}",
                self.name()
            ),
        );
        let no_weights = || {
            AliasRoutingConfiguration::builder()
                .set_additional_version_weights(Some(HashMap::new()))
                .build()
        };
        let update = || {
            fenced_retry(policy, progress, UPDATE_ALIAS, is_conflict, || {
                self.client
                    .update_alias()
                    .function_name(self.name())
                    .name(alias)
                    .function_version(version)
                    .routing_config(no_weights())
                    .send()
            })
        };
        match update().await {
            Ok(_) => return Ok(()),
            Err(Attempt::Failed(error)) if is_not_found(&error) => {}
            Err(attempt) => return Err(attempt.into_error(|e| api_error(UPDATE_ALIAS, &e))),
        }
        progress.before_mutation(CREATE_ALIAS)?;
        match self
            .client
            .create_alias()
            .function_name(self.name())
            .name(alias)
            .function_version(version)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Created by someone else since: update it after all.
            Err(error) if is_conflict(&error) => update()
                .await
                .map(|_| ())
                .map_err(|attempt| attempt.into_error(|e| api_error(UPDATE_ALIAS, &e))),
            Err(error) => Err(api_error(CREATE_ALIAS, &error)),
        }
    }
}

const LATEST: &str = "$LATEST";

/// The mutating calls, as [`Progress::before_mutation`] and errors name them.
const UPDATE_CODE: &str = "UpdateFunctionCode";
const PUBLISH: &str = "PublishVersion";
const UPDATE_ALIAS: &str = "UpdateAlias";
const CREATE_ALIAS: &str = "CreateAlias";

/// One attempt of a mutating call that did not succeed.
enum Attempt<E> {
    /// The fence refused: the call was not made.
    Fenced(DeployError),
    /// The call was made and failed.
    Failed(E),
}

impl<E> Attempt<E> {
    /// The refusal as it is, or the failure turned into a [`DeployError`] by `failed`.
    fn into_error(self, failed: impl FnOnce(E) -> DeployError) -> DeployError {
        match self {
            Attempt::Fenced(error) => error,
            Attempt::Failed(error) => failed(error),
        }
    }
}

/// [`retry`] of the mutating call `call`: every attempt first passes
/// [`Progress::before_mutation`], so a run that lost its deploy lock while it retried a
/// conflict stops before its next attempt. Only failures `retryable` accepts are retried.
async fn fenced_retry<T, E, F, Fut>(
    policy: &PollPolicy,
    progress: &Progress,
    call: &str,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, Attempt<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let retryable = |attempt: &Attempt<E>| matches!(attempt, Attempt::Failed(e) if retryable(e));
    retry(policy, retryable, || {
        let passed = progress.before_mutation(call);
        // Building the request sends nothing: it is sent when awaited, after the check.
        let request = op();
        async move {
            passed.map_err(Attempt::Fenced)?;
            request.await.map_err(Attempt::Failed)
        }
    })
    .await
}

struct VersionCode {
    version: String,
    code_sha256: String,
    routing: Option<String>,
}

/// Whether the last code update of `$LATEST` succeeded (or Lambda reports no status).
fn update_settled(live: &LiveState) -> bool {
    live.ids
        .get(ids::LAST_UPDATE_STATUS)
        .is_none_or(|status| status == LastUpdateStatus::Successful.as_str())
}

/// Whether the last code update of `$LATEST` failed (`LastUpdateStatus: Failed`).
fn update_failed(live: &LiveState) -> bool {
    live.ids
        .get(ids::LAST_UPDATE_STATUS)
        .is_some_and(|status| status == LastUpdateStatus::Failed.as_str())
}

/// Whether `$LATEST` already holds `wanted`'s code, so `UpdateFunctionCode` can be skipped:
/// it names that code and its last update did not fail. A failed update of the wanted code
/// is sent again (it is how a function is repaired once the cause, e.g. a KMS key, is fixed);
/// one still `InProgress` is not (the wait adopts it).
pub fn code_is_live(live: &LiveState, wanted: &Artifact) -> bool {
    live.runs(wanted) && !update_failed(live)
}

/// The fields of a function configuration the deployer reads. `GetFunction` and
/// `GetFunctionConfiguration` return them in two different types; the environment (secret
/// values) is deliberately not among them.
struct Snapshot {
    function_arn: Option<String>,
    code_sha256: Option<String>,
    revision_id: Option<String>,
    last_modified: Option<String>,
    package_type: Option<PackageType>,
    architectures: Vec<Architecture>,
    state: Option<State>,
    state_reason: Option<String>,
    last_update_status: Option<LastUpdateStatus>,
    last_update_status_reason: Option<String>,
    last_update_status_reason_code: Option<LastUpdateStatusReasonCode>,
}

impl Snapshot {
    /// The function's architecture; Lambda's default `x86_64` when none is reported.
    fn architecture(&self) -> Architecture {
        self.architectures
            .first()
            .cloned()
            .unwrap_or(Architecture::X8664)
    }
}

macro_rules! snapshot_from {
    ($type:ty) => {
        impl From<&$type> for Snapshot {
            fn from(config: &$type) -> Self {
                Snapshot {
                    function_arn: config.function_arn().map(str::to_owned),
                    code_sha256: config.code_sha256().map(str::to_owned),
                    revision_id: config.revision_id().map(str::to_owned),
                    last_modified: config.last_modified().map(str::to_owned),
                    package_type: config.package_type().cloned(),
                    architectures: config.architectures().to_vec(),
                    state: config.state().cloned(),
                    state_reason: config.state_reason().map(str::to_owned),
                    last_update_status: config.last_update_status().cloned(),
                    last_update_status_reason: config
                        .last_update_status_reason()
                        .map(str::to_owned),
                    last_update_status_reason_code: config
                        .last_update_status_reason_code()
                        .cloned(),
                }
            }
        }
    };
}

snapshot_from!(FunctionConfiguration);
snapshot_from!(GetFunctionConfigurationOutput);

/// `State Active, LastUpdateStatus InProgress`: what a poll saw, for progress and timeouts.
fn describe_state(config: &Snapshot) -> String {
    format!(
        "State {}, LastUpdateStatus {}",
        config.state.as_ref().map_or("unknown", State::as_str),
        config
            .last_update_status
            .as_ref()
            .map_or("unknown", LastUpdateStatus::as_str),
    )
}

/// `LastUpdateStatusReason (LastUpdateStatusReasonCode)`.
fn update_failure(config: &Snapshot) -> String {
    let reason = one_line(
        config
            .last_update_status_reason
            .as_deref()
            .unwrap_or("no reason given"),
    );
    match config.last_update_status_reason_code.as_ref() {
        Some(code) => format!("{reason} ({})", code.as_str()),
        None => reason,
    }
}

/// Reports a polled state as a detail, once each time it changes.
fn report_once(seen: &StateLog, progress: &Progress, phase: Phase, state: &str) {
    if seen.note(state) {
        progress.detail(phase, state.to_owned());
    }
}
