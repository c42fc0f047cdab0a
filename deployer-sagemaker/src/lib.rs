//! The SageMaker endpoint deployer (`kind = "sagemaker"`): rolls the variants of a SageMaker
//! endpoint over to a new image. Models and endpoint configs are immutable, so a rollover
//! creates a new model (a copy of the live one with only the image replaced) and a new endpoint
//! config (a copy of the live one with only the targeted variants on the new model), calls
//! `UpdateEndpoint`, waits until the endpoint is `InService` on the new config, tells that from
//! an automatic rollback, and cleans up the models and configs of older deploys.
//!
//! # Using it alone
//!
//! [`SagemakerDeployer`] implements [`deployer_core::Deployer`]. Give it an SDK client
//! configured by the caller (region, credentials, `AWS_ENDPOINT_URL_SAGEMAKER`, retries), the
//! service's target and its repository, and run it through [`deployer_core::deploy()`]:
//!
//! ```no_run
//! # async fn demo(sdk: &aws_config::SdkConfig, wanted: deployer_core::Artifact)
//! # -> Result<(), deployer_core::DeployError> {
//! use deployer_core::manifest::SagemakerTarget;
//! use deployer_core::{Progress, deploy, poll::PollPolicy};
//! use deployer_sagemaker::SagemakerDeployer;
//!
//! let deployer = SagemakerDeployer::new(
//!     aws_sdk_sagemaker::Client::new(sdk),
//!     SagemakerTarget { endpoint: "acme-inference".into(), variant: None, blue_green: None, keep: 2 },
//!     "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/inference".into(),
//! );
//! let policy = PollPolicy::default().with_timeout(std::time::Duration::from_secs(30 * 60));
//! let outcome = deploy(&deployer, &wanted, &Progress::discard("inference"), &policy).await?;
//! // outcome.ids: endpoint, old_endpoint_config, endpoint_config, old_models, models, variants
//! # Ok(()) }
//! ```
//!
//! `examples/sagemaker-roll.rs` is a complete program that rolls one endpoint over (the AWS
//! configuration from the standard environment, progress on stderr, the outcome on stdout, a
//! non-zero exit code on failure): `cargo run -p deployer-sagemaker --example sagemaker-roll --
//! --endpoint E <image@digest>`.
//!
//! # What it calls
//!
//! - [`read_live`](deployer_core::Deployer::read_live): `DescribeEndpoint` →
//!   `DescribeEndpointConfig` of its config → `DescribeModel` for the model of every variant.
//!   Read only. The targeted variants are the one `variant` names (a production or a shadow
//!   variant), or else every *production* variant whose model has a container whose image is in
//!   the service's repository (a shadow variant runs a candidate on copied traffic: it is
//!   replaced only when named). A named variant with a single container is replaced whatever
//!   its image; otherwise the containers in the repository are. A missing variant, or no variant
//!   using the repository, is [`DeployError::Mismatch`] listing every variant and its images; a
//!   missing endpoint is [`DeployError::NotFound`]. The live artifact is the image of the
//!   targeted containers; when they differ, the summary says so and the endpoint is not
//!   current. `ids` ([`ids::Live`]): `endpoint`, `endpoint_config`, `models`
//!   (comma-separated), `variants`, `status`.
//! - An endpoint `Creating`, `Updating`, `SystemUpdating` or `RollingBack` is another deploy in
//!   flight: `read_live` and `apply` wait until it settled first (the policy of
//!   [`SagemakerDeployer::with_poll_policy`], default 30 minutes). An endpoint is current only
//!   when `InService` on the wanted image; a `Failed` or `UpdateRollbackFailed` endpoint is
//!   updated (`UpdateEndpoint` is what repairs it). `Deleting` and states this build does not
//!   know are refused.
//! - [`apply`](deployer_core::Deployer::apply): `DescribeEndpoint` again (waiting out an update
//!   in flight; the immutable config and models are not read again), then per targeted model
//!   `ListTags` on it, `DescribeModel` of the new name (see "Names and re-runs") and
//!   `CreateModel`; `ListTags` on the config, `DescribeEndpointConfig` of the new name and
//!   `CreateEndpointConfig`; `UpdateEndpoint` (below). `ids` ([`ids::Rollover`]): `endpoint`,
//!   `old_endpoint_config`, `endpoint_config`, `old_models`, `models`, `variants`.
//! - [`wait`](deployer_core::Deployer::wait): `DescribeEndpoint` polls, then the cleanup:
//!   `ListEndpointConfigs` and `ListModels` (name contains the endpoint's name prefix),
//!   `ListTags` on each candidate, `DescribeEndpointConfig` of the kept configs,
//!   `DeleteEndpointConfig` and `DeleteModel`.
//!
//! # The copy: nothing is dropped
//!
//! The new model carries every member of `DescribeModel` that `CreateModel` accepts
//! ([`fields::MODEL_COPIED`]), as read:
//!
//! - `PrimaryContainer` / `Containers`, whole: `Image` (replaced in the targeted containers by
//!   the digest-pinned image), `ImageConfig` (with the private-registry auth config), `Mode`,
//!   `ModelDataUrl`, `ModelDataSource`, `AdditionalModelDataSources`, `Environment`,
//!   `ModelPackageName`, `InferenceSpecificationName`, `MultiModelConfig`, `ContainerHostname`,
//!   `ContainerMetricsConfig`
//! - `InferenceExecutionConfig`
//! - `ExecutionRoleArn`
//! - `VpcConfig`
//! - `EnableNetworkIsolation`
//! - `Tags`, from `ListTags` on the model ARN
//!
//! The new endpoint config carries every member of `DescribeEndpointConfig` that
//! `CreateEndpointConfig` accepts ([`fields::CONFIG_COPIED`]), as read:
//!
//! - `ProductionVariants`, whole (the targeted ones on the new model): instance type and
//!   count, weight, instance pools, accelerator, serverless config, managed instance scaling,
//!   routing config, core dump config, volume size, timeouts, SSM access, AMI version, capacity
//!   reservation, accelerator partitions
//! - `ShadowProductionVariants`, the same way
//! - `DataCaptureConfig`
//! - `KmsKeyId`
//! - `AsyncInferenceConfig`
//! - `ExplainerConfig`
//! - `ExecutionRoleArn`
//! - `VpcConfig`
//! - `EnableNetworkIsolation`
//! - `MetricsConfig`
//! - `Tags`, from `ListTags` on the config ARN
//!
//! Tags lose the `aws:` ones (only AWS may set them) and gain `deployer:endpoint = <endpoint>`
//! ([`OWNER_TAG`]), which marks what deployer created. Read-only members
//! ([`fields::MODEL_READ_ONLY`], [`fields::CONFIG_READ_ONLY`]: names, ARNs, creation times, the
//! deployment recommendation) are not sent.
//!
//! Three guards keep it that way. The tests hold the tables against the SDK's schemas of
//! `DescribeModelOutput`, `CreateModelInput`, `DescribeEndpointConfigOutput`,
//! `CreateEndpointConfigInput` and `UpdateEndpointInput`: a member in no table (an SDK upgrade)
//! fails a test until someone decides where it goes. A fixture with every member of every
//! nested structure set (also checked against the schemas) is replayed as real JSON, and the
//! `CreateModel` and `CreateEndpointConfig` bodies are compared with what was read, field by
//! field. At run time, the raw JSON of the `DescribeModel` and `DescribeEndpointConfig` a copy
//! is built from is kept, and the serialized create request must send every member read back
//! exactly as read (read-only members, the image and the model names aside), or nothing is
//! created and the deploy fails naming the member paths (never values) and asking for an
//! upgrade: a member AWS returns that this build's SDK does not know cannot be copied.
//! Unknown top-level members of the model or the config stop the deploy before anything is
//! created; a nested one in the config is found when the config is sent, after the new model was
//! created (that model is then unused: a re-run reuses it, a later cleanup deletes it).
//!
//! # Names and re-runs
//!
//! The new model and config are named `<endpoint>-<tag>` (with several targeted models,
//! `<endpoint>-<variant>-<tag>`), cut to SageMaker's 63 characters; see the `names` module.
//! Before creating, deployer describes that name: when it exists with the same content (a
//! re-run after a kill, or a return to an earlier tag whose model was kept) it is reused; with
//! other content, `-2` … `-9` are tried.
//!
//! # UpdateEndpoint
//!
//! `EndpointName`, `EndpointConfigName`, and `RetainAllVariantProperties = true`, so that the
//! instance counts and weights the endpoint runs with now (autoscaling's) are kept rather than
//! reset to the config's initial ones. With `blue_green` in the manifest, `DeploymentConfig`:
//! a blue/green update with traffic routing `ALL_AT_ONCE`, `CANARY` or `LINEAR` (capacity
//! percent), the wait interval, the termination wait, the maximum execution timeout, and
//! auto-rollback on the alarms given. Without it, `RetainDeploymentConfig = true` when the
//! endpoint has a last deployment config (the one its infrastructure code set), else nothing.
//!
//! # Wait semantics
//!
//! `UpdateEndpoint` puts the endpoint in `Updating` at once. [`wait`](Deployer::wait) polls
//! `DescribeEndpoint` with [`poll_until`]: `InService` on the *new* config name is success.
//! `Failed`, `UpdateRollbackFailed`, `InService` on the *old* config name (an automatic
//! rollback: the alarms fired, or the new fleet did not become healthy) or on any other config
//! (another deploy replaced ours), and `Deleting` are [`DeployError::RolloutFailed`] with the
//! endpoint's `FailureReason` and the states seen. A timeout (the policy; the manifest's
//! default for SageMaker is 30 minutes) is [`DeployError::Timeout`] with the last state.
//! Throttling and server errors while polling count as a pending poll. Progress events report
//! each new status and config name.
//!
//! # Cleanup
//!
//! After a success, [`wait`](Deployer::wait) deletes endpoint configs and models that deployer
//! created for this endpoint earlier, and keeps:
//!
//! - the new config and models (they are live);
//! - the previous config and its models (the rollback target), whoever created them;
//! - the newest `keep - 1` other configs deployer created (`keep` earlier configs in all,
//!   the previous one included; the manifest's `keep`, default 2), and their models;
//! - anything created after the new config (another deploy in flight), and anything without
//!   the [`OWNER_TAG`] naming this endpoint or whose name does not start with the endpoint's
//!   name prefix: configs and models deployer did not create are never touched.
//!
//! A model is deleted only when no kept config uses it. Cleanup never fails the deploy: a
//! failed `List*` or `Delete*` is reported as a progress event and the rest goes on. The one
//! exception is the deploy lock: every delete, like every `CreateModel`,
//! `CreateEndpointConfig` and `UpdateEndpoint`, is preceded by `Progress::before_mutation`,
//! and a run that lost its lock stops there with `DeployError::Fenced`.
//!
//! # Secrets
//!
//! Environment variable values are secrets. Summaries, progress events and errors name the
//! variables but never show values; text that comes from AWS (error messages, failure
//! reasons) has the values replaced by `***`. The `Debug` output of everything here shows no
//! values.
#![warn(missing_docs)]

mod cleanup;
mod copy;
mod deployment;
pub mod fields;
pub mod ids;
mod logs;
mod names;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::types::{EndpointStatus, Tag};
use deployer_aws::raw::Object;
use deployer_aws::{BodyCheck, ErrorClass, Failure, Redactor, ResponseRecorder, Unread, api_error};
use deployer_core::manifest::SagemakerTarget;
use deployer_core::poll::{Poll, PollPolicy, StateLog, poll_until};
use deployer_core::{
    Applied, Artifact, DeployError, Deployer, LiveState, Phase, Progress, one_line,
};

pub use crate::copy::OWNER_TAG;
pub use logs::log_group;

use crate::copy::{ConfigSpec, LiveConfig, LiveModel, ModelSpec, Targeted};

/// Pages read from a `List*` call before giving up (100 items a page).
const MAX_PAGES: usize = 20;

/// Rolls the variants of one SageMaker endpoint over to new images. See the
/// [crate documentation](crate).
pub struct SagemakerDeployer {
    client: Client,
    target: SagemakerTarget,
    repository_uri: String,
    in_flight_policy: PollPolicy,
    /// What `read_live` read, so that `apply` does not read the immutable config and models
    /// again (holds environment values: never printed).
    snapshot: Mutex<Option<Snapshot>>,
}

/// The target only: the client's configuration is the caller's, the snapshot holds secrets.
impl std::fmt::Debug for SagemakerDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagemakerDeployer")
            .field("target", &self.target)
            .field("repository_uri", &self.repository_uri)
            .field("in_flight_policy", &self.in_flight_policy)
            .finish_non_exhaustive()
    }
}

/// The endpoint, its config and its variants' models, as read.
#[derive(Clone)]
struct Snapshot {
    endpoint: DescribeEndpointOutput,
    config: LiveConfig,
    /// Every model a variant of the config names; `None`: it does not exist.
    models: BTreeMap<String, Option<LiveModel>>,
    targeted: Vec<Targeted>,
}

impl Snapshot {
    /// The one image the targeted containers run, or `None` when they differ.
    fn artifact(&self) -> Option<String> {
        let images = copy::targeted_images(&self.targeted, &self.models);
        let first = images.first()?.0;
        images
            .iter()
            .all(|(image, _)| *image == first)
            .then(|| first.to_owned())
    }

    /// The targeted models, each once, in order.
    fn targeted_models(&self) -> Vec<&str> {
        let mut models: Vec<&str> = Vec::new();
        for target in &self.targeted {
            if !models.contains(&target.model.as_str()) {
                models.push(&target.model);
            }
        }
        models
    }
}

impl SagemakerDeployer {
    /// A deployer for the endpoint `target.endpoint`, calling SageMaker through `client`.
    /// `repository_uri` (`registry/repository`) is the service's repository: without
    /// `variant`, the variants whose model runs an image of it are updated.
    pub fn new(client: Client, target: SagemakerTarget, repository_uri: String) -> Self {
        SagemakerDeployer {
            client,
            target,
            repository_uri,
            in_flight_policy: PollPolicy::default()
                .with_timeout(std::time::Duration::from_secs(30 * 60)),
            snapshot: Mutex::new(None),
        }
    }

    /// How long and how often [`Deployer::read_live`] and [`Deployer::apply`] wait for an
    /// update already in flight (`Creating`, `Updating`, `SystemUpdating`, `RollingBack`)
    /// before they go on; default: [`PollPolicy::default`] with a 30-minute timeout. The
    /// rollout's own wait uses the policy given to [`Deployer::wait`].
    pub fn with_poll_policy(mut self, policy: PollPolicy) -> Self {
        self.in_flight_policy = policy;
        self
    }

    fn endpoint(&self) -> &str {
        &self.target.endpoint
    }

    fn not_found(&self) -> DeployError {
        DeployError::NotFound {
            what: self.target(),
            hint: "check `endpoint` in deployer.toml and the AWS account and region in use (AWS_PROFILE, AWS_REGION)".into(),
        }
    }

    /// One `DescribeEndpoint`.
    async fn describe_endpoint(&self) -> Result<DescribeEndpointOutput, Failure> {
        self.client
            .describe_endpoint()
            .endpoint_name(self.endpoint())
            .send()
            .await
            .map_err(|error| Failure::new(&error, &Redactor::default()))
    }

    /// `DescribeEndpoint`; when an update is in flight, waits until it settled (in any state).
    async fn settled_endpoint(
        &self,
        progress: Option<&Progress>,
    ) -> Result<DescribeEndpointOutput, DeployError> {
        // The first read fails at once on any error: a wrong endpoint or a missing permission
        // should not be waited out.
        let first = self.describe_endpoint().await.map_err(|failure| {
            if failure.class == ErrorClass::NotFound {
                self.not_found()
            } else {
                failure.into_error("DescribeEndpoint")
            }
        })?;
        if classify(first.endpoint_status()) != Status::InFlight {
            return Ok(first);
        }
        if let Some(progress) = progress {
            progress.emit(
                Phase::Wait,
                format!("waiting for an update in flight: {}", state_line(&first)),
            );
        }
        let what = format!("the update in flight on {} to settle", self.target());
        let (endpoint, _) = self
            .poll(
                &what,
                &self.in_flight_policy,
                progress,
                &Redactor::default(),
                |endpoint, state| {
                    Ok(match classify(endpoint.endpoint_status()) {
                        Status::InFlight => Verdict::Pending(state.to_owned()),
                        _ => Verdict::Done,
                    })
                },
            )
            .await?;
        Ok(endpoint)
    }

    /// `DescribeEndpointConfig`, recorded raw.
    async fn describe_config(&self, name: &str) -> Result<LiveConfig, DeployError> {
        let recorder = ResponseRecorder::default();
        let output = self
            .client
            .describe_endpoint_config()
            .endpoint_config_name(name)
            .customize()
            .interceptor(recorder.clone())
            .send()
            .await
            .map_err(|error| {
                let failure = Failure::new(&error, &Redactor::default());
                if failure.class == ErrorClass::NotFound {
                    DeployError::Mismatch(format!(
                        "{} names endpoint config {name}, which does not exist",
                        self.target()
                    ))
                } else {
                    failure.into_error("DescribeEndpointConfig")
                }
            })?;
        Ok(LiveConfig {
            name: name.to_owned(),
            output,
            raw: recorder.recorded(),
        })
    }

    /// `DescribeModel`, recorded raw when `record`; `None` when there is no such model.
    async fn describe_model(
        &self,
        name: &str,
        record: bool,
    ) -> Result<Option<LiveModel>, DeployError> {
        let recorder = ResponseRecorder::default();
        let mut request = self.client.describe_model().model_name(name).customize();
        if record {
            request = request.interceptor(recorder.clone());
        }
        match request.send().await {
            Ok(output) => Ok(Some(LiveModel {
                output,
                raw: recorder.recorded(),
            })),
            Err(error) => {
                let failure = Failure::new(&error, &Redactor::default());
                if failure.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(failure.into_error("DescribeModel"))
                }
            }
        }
    }

    /// Every tag of the resource `arn` (`ListTags`, all pages).
    async fn list_tags(&self, arn: &str) -> Result<Vec<Tag>, DeployError> {
        let mut tags = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let output = self
                .client
                .list_tags()
                .resource_arn(arn)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|error| api_error("ListTags", &error, &Redactor::default()))?;
            tags.extend(output.tags().iter().cloned());
            match output.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(tags)
    }

    /// Reads the endpoint (after waiting out an update in flight), its config and models, and
    /// picks the targeted variants. The config and models are immutable: when the endpoint
    /// still runs the config read before, they are not read again.
    async fn read_snapshot(&self, progress: Option<&Progress>) -> Result<Snapshot, DeployError> {
        let endpoint = self.settled_endpoint(progress).await?;
        check_updatable(&self.target(), &endpoint)?;
        let config_name = endpoint
            .endpoint_config_name()
            .ok_or(DeployError::MissingField {
                operation: "DescribeEndpoint",
                field: "EndpointConfigName",
            })?
            .to_owned();
        let cached = self
            .snapshot
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
            .filter(|snapshot| snapshot.config.name == config_name);
        if let Some(mut snapshot) = cached {
            snapshot.endpoint = endpoint;
            return Ok(snapshot);
        }
        let config = self.describe_config(&config_name).await?;
        let mut models = BTreeMap::new();
        for (_, _, variant) in copy::variants(&config.output) {
            let Some(model) = variant.model_name() else {
                continue;
            };
            if !models.contains_key(model) {
                let live = self.describe_model(model, true).await?;
                models.insert(model.to_owned(), live);
            }
        }
        let targeted = copy::select(
            &config.output,
            &models,
            self.target.variant.as_deref(),
            &self.repository_uri,
            self.endpoint(),
        )?;
        let snapshot = Snapshot {
            endpoint,
            config,
            models,
            targeted,
        };
        if let Ok(mut slot) = self.snapshot.lock() {
            *slot = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    fn live_state(&self, snapshot: &Snapshot) -> LiveState {
        let endpoint = &snapshot.endpoint;
        let status = endpoint
            .endpoint_status()
            .map_or("unknown", EndpointStatus::as_str);
        let mut parts = vec![format!(
            "{status} on endpoint config {}",
            snapshot.config.name
        )];
        let images = copy::targeted_images(&snapshot.targeted, &snapshot.models);
        let artifact = snapshot.artifact();
        match &artifact {
            Some(image) => parts.push(format!(
                "{} {} {image}",
                variant_list(&snapshot.targeted),
                if snapshot.targeted.len() == 1 {
                    "runs"
                } else {
                    "run"
                }
            )),
            None if images.is_empty() => {
                parts.push("the targeted containers have no image".to_owned())
            }
            None => parts.push(format!(
                "the targeted variants run different images ({}): not current",
                images
                    .iter()
                    .map(|(image, variant)| format!("`{variant}` runs {image}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        let mut names: Vec<String> = snapshot
            .targeted_models()
            .into_iter()
            .filter_map(|model| snapshot.models.get(model).and_then(Option::as_ref))
            .flat_map(|live| copy::environment_names(&live.output))
            .collect();
        names.sort_unstable();
        names.dedup();
        if !names.is_empty() {
            parts.push(format!("environment {} (values hidden)", names.join(", ")));
        }
        if matches!(classify(endpoint.endpoint_status()), Status::Failed) {
            parts.push(format!(
                "last failure: {}",
                failure_reason(endpoint, &copy::redactor(&snapshot.models))
            ));
        }
        let ids = ids::Live {
            endpoint: self.endpoint().to_owned(),
            endpoint_config: snapshot.config.name.clone(),
            models: owned(snapshot.targeted_models()),
            variants: variant_names(&snapshot.targeted),
            status: status.to_owned(),
        };
        LiveState {
            artifact,
            ids: ids.to_ids(),
            summary: parts.join("; "),
        }
    }

    /// Creates `name`, or the first free numbered variant of it, with `spec` — or reuses a model
    /// of that name with the same content. Returns the name.
    #[allow(clippy::too_many_arguments)]
    async fn ensure_model(
        &self,
        base: &str,
        source: &str,
        spec: &ModelSpec,
        tags: &[Tag],
        expected: Option<&Object>,
        redactor: &Redactor,
        progress: &Progress,
    ) -> Result<String, DeployError> {
        for n in 1..=names::ATTEMPTS {
            let name = names::numbered(base, n);
            if let Some(existing) = self.describe_model(&name, false).await? {
                if ModelSpec::from_live(&existing.output).same(spec) {
                    progress.emit(
                        Phase::Apply,
                        format!("model {name} already exists with this content (an earlier run created it): reusing it"),
                    );
                    return Ok(name);
                }
                progress.detail(
                    Phase::Apply,
                    format!("model {name} exists with other content; trying another name"),
                );
                continue;
            }
            let check = expected
                .cloned()
                .map(|expected| BodyCheck::new(expected, Unread::Allowed));
            let mut request = self
                .client
                .create_model()
                .model_name(&name)
                .set_primary_container(spec.primary_container.clone())
                .set_containers(spec.containers.clone())
                .set_inference_execution_config(spec.inference_execution_config.clone())
                .set_execution_role_arn(spec.execution_role_arn.clone())
                .set_vpc_config(spec.vpc_config.clone())
                .set_enable_network_isolation(spec.enable_network_isolation)
                .set_tags(Some(tags.to_vec()))
                .customize();
            if let Some(check) = &check {
                request = request.interceptor(check.clone());
            }
            progress.before_mutation("CreateModel")?;
            match request.send().await {
                Ok(_) => {
                    progress.emit(Phase::Apply, format!("created model {name} from {source}"));
                    return Ok(name);
                }
                Err(error) => {
                    if let Some(paths) = check.as_ref().and_then(BodyCheck::problem) {
                        return Err(self.would_drop("model", source, &paths));
                    }
                    let failure = Failure::new(&error, redactor);
                    if !already_exists(&failure) {
                        return Err(failure.into_error("CreateModel"));
                    }
                    // Created in between (another run): the same content is as good as ours.
                    if let Some(existing) = self.describe_model(&name, false).await?
                        && ModelSpec::from_live(&existing.output).same(spec)
                    {
                        return Ok(name);
                    }
                }
            }
        }
        Err(DeployError::Mismatch(format!(
            "models {base} and {base}-2 … {base}-{} all exist with other content; delete the ones no endpoint config uses",
            names::ATTEMPTS
        )))
    }

    /// Like [`Self::ensure_model`] for the endpoint config.
    #[allow(clippy::too_many_arguments)]
    async fn ensure_config(
        &self,
        base: &str,
        source: &str,
        spec: &ConfigSpec,
        tags: &[Tag],
        expected: Option<&Object>,
        redactor: &Redactor,
        progress: &Progress,
    ) -> Result<String, DeployError> {
        for n in 1..=names::ATTEMPTS {
            let name = names::numbered(base, n);
            if let Some(existing) = self.describe_existing_config(&name).await? {
                if ConfigSpec::from_live(&existing).same(spec) {
                    progress.emit(
                        Phase::Apply,
                        format!("endpoint config {name} already exists with this content (an earlier run created it): reusing it"),
                    );
                    return Ok(name);
                }
                progress.detail(
                    Phase::Apply,
                    format!(
                        "endpoint config {name} exists with other content; trying another name"
                    ),
                );
                continue;
            }
            let check = expected
                .cloned()
                .map(|expected| BodyCheck::new(expected, Unread::Allowed));
            let mut request = self
                .client
                .create_endpoint_config()
                .endpoint_config_name(&name)
                .set_production_variants(spec.production_variants.clone())
                .set_data_capture_config(spec.data_capture_config.clone())
                .set_kms_key_id(spec.kms_key_id.clone())
                .set_async_inference_config(spec.async_inference_config.clone())
                .set_explainer_config(spec.explainer_config.clone())
                .set_shadow_production_variants(spec.shadow_production_variants.clone())
                .set_execution_role_arn(spec.execution_role_arn.clone())
                .set_vpc_config(spec.vpc_config.clone())
                .set_enable_network_isolation(spec.enable_network_isolation)
                .set_metrics_config(spec.metrics_config.clone())
                .set_tags(Some(tags.to_vec()))
                .customize();
            if let Some(check) = &check {
                request = request.interceptor(check.clone());
            }
            progress.before_mutation("CreateEndpointConfig")?;
            match request.send().await {
                Ok(_) => {
                    progress.emit(
                        Phase::Apply,
                        format!("created endpoint config {name} from {source}"),
                    );
                    return Ok(name);
                }
                Err(error) => {
                    if let Some(paths) = check.as_ref().and_then(BodyCheck::problem) {
                        return Err(self.would_drop("endpoint config", source, &paths));
                    }
                    let failure = Failure::new(&error, redactor);
                    if !already_exists(&failure) {
                        return Err(failure.into_error("CreateEndpointConfig"));
                    }
                    if let Some(existing) = self.describe_existing_config(&name).await?
                        && ConfigSpec::from_live(&existing).same(spec)
                    {
                        return Ok(name);
                    }
                }
            }
        }
        Err(DeployError::Mismatch(format!(
            "endpoint configs {base} and {base}-2 … {base}-{} all exist with other content; delete the ones no endpoint uses",
            names::ATTEMPTS
        )))
    }

    /// `DescribeEndpointConfig` of a config that may not exist.
    async fn describe_existing_config(
        &self,
        name: &str,
    ) -> Result<
        Option<
            aws_sdk_sagemaker::operation::describe_endpoint_config::DescribeEndpointConfigOutput,
        >,
        DeployError,
    > {
        match self
            .client
            .describe_endpoint_config()
            .endpoint_config_name(name)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output)),
            Err(error) => {
                let failure = Failure::new(&error, &Redactor::default());
                if failure.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(failure.into_error("DescribeEndpointConfig"))
                }
            }
        }
    }

    /// Refuses, before anything is created, when the raw model or config responses have
    /// top-level members this build does not know. (Nested ones are caught when the copy is
    /// sent: see `deployer_aws::raw`.)
    fn check_known_members(&self, snapshot: &Snapshot, models: &[&str]) -> Result<(), DeployError> {
        for model in models {
            if let Some(Some(LiveModel { raw: Some(raw), .. })) = snapshot.models.get(*model) {
                let unknown = raw.unknown_members(fields::MODEL_COPIED, fields::MODEL_READ_ONLY);
                if !unknown.is_empty() {
                    return Err(self.would_drop("model", model, &unknown));
                }
            }
        }
        if let Some(raw) = &snapshot.config.raw {
            let unknown = raw.unknown_members(fields::CONFIG_COPIED, fields::CONFIG_READ_ONLY);
            if !unknown.is_empty() {
                return Err(self.would_drop("endpoint config", &snapshot.config.name, &unknown));
            }
        }
        Ok(())
    }

    /// The refusal when a copy of `source` would not carry `paths` of it.
    fn would_drop(&self, kind: &str, source: &str, paths: &[String]) -> DeployError {
        let paths: Vec<String> = paths.iter().map(|path| format!("`{path}`")).collect();
        DeployError::Mismatch(format!(
            "{kind} {source} has fields this build of deployer cannot carry into a copy ({}): its AWS SDK does not \
             know them, and a copy without them would quietly change {}; nothing was updated: upgrade deployer",
            paths.join(", "),
            self.target()
        ))
    }

    /// Polls `DescribeEndpoint` until `decide` says done, fails, or `policy` runs out.
    /// Transient errors count as a pending state; state changes are reported as progress.
    /// Returns the last description and the states seen.
    async fn poll<F>(
        &self,
        what: &str,
        policy: &PollPolicy,
        progress: Option<&Progress>,
        redactor: &Redactor,
        decide: F,
    ) -> Result<(DescribeEndpointOutput, Vec<String>), DeployError>
    where
        F: Fn(&DescribeEndpointOutput, &str) -> Result<Verdict, DeployError> + Sync,
    {
        let log = StateLog::default();
        let (log, decide) = (&log, &decide);
        let endpoint = poll_until(what, policy, || async move {
            let endpoint = match self.describe_endpoint().await {
                Ok(endpoint) => endpoint,
                Err(failure) if failure.is_retryable() => {
                    let line = format!(
                        "DescribeEndpoint failed, retrying: {}",
                        redactor.apply(&failure.message)
                    );
                    if let Some(progress) = progress {
                        progress.detail(Phase::Wait, line.clone());
                    }
                    return Ok(Poll::Pending(line));
                }
                Err(failure) if failure.class == ErrorClass::NotFound => {
                    return Err(DeployError::RolloutFailed {
                        reason: format!("{} disappeared while waiting", self.target()),
                        events: Vec::new(),
                    });
                }
                Err(failure) => return Err(failure.into_error("DescribeEndpoint")),
            };
            let state = state_line(&endpoint);
            if log.note(&state)
                && let Some(progress) = progress
            {
                progress.emit(Phase::Wait, state.as_str());
            }
            Ok(match decide(&endpoint, &state)? {
                Verdict::Done => Poll::Ready(endpoint),
                Verdict::Pending(state) => Poll::Pending(state),
            })
        })
        .await
        .map_err(|error| error.into_deploy_error(log.states()))?;
        Ok((endpoint, log.states()))
    }

    /// `UpdateEndpoint` to `config` (see the crate doc for what it sends), after
    /// [`Progress::before_mutation`].
    async fn update_endpoint(
        &self,
        config: &str,
        live: &DescribeEndpointOutput,
        redactor: &Redactor,
        progress: &Progress,
    ) -> Result<(), DeployError> {
        let mut request = self
            .client
            .update_endpoint()
            .endpoint_name(self.endpoint())
            .endpoint_config_name(config)
            .retain_all_variant_properties(true);
        match &self.target.blue_green {
            Some(blue_green) => {
                request = request.deployment_config(deployment::deployment_config(blue_green));
            }
            None if live.last_deployment_config().is_some() => {
                request = request.retain_deployment_config(true);
            }
            None => {}
        }
        progress.before_mutation("UpdateEndpoint")?;
        request
            .send()
            .await
            .map_err(|error| api_error("UpdateEndpoint", &error, redactor))?;
        Ok(())
    }
}

/// The targeted variants' names, for ids.
fn variant_names(targeted: &[Targeted]) -> Vec<String> {
    targeted.iter().map(|t| t.variant.clone()).collect()
}

fn owned(names: Vec<&str>) -> Vec<String> {
    names.into_iter().map(str::to_owned).collect()
}

/// `variant `AllTraffic`` / `variants `A`, `B`` for summaries.
fn variant_list(targeted: &[Targeted]) -> String {
    let names: Vec<String> = targeted
        .iter()
        .map(|t| {
            let kind = if t.shadow { "shadow " } else { "" };
            format!("{kind}`{}` (model {})", t.variant, t.model)
        })
        .collect();
    if names.len() == 1 {
        format!("variant {}", names[0])
    } else {
        format!("variants {}", names.join(", "))
    }
}

#[async_trait]
impl Deployer for SagemakerDeployer {
    fn target(&self) -> String {
        match &self.target.variant {
            Some(variant) => format!("SageMaker endpoint {} (variant {variant})", self.endpoint()),
            None => format!("SageMaker endpoint {}", self.endpoint()),
        }
    }

    /// The endpoint's `FailureReason` ([`logs`]).
    async fn diagnose(&self, applied: &Applied) -> deployer_core::Diagnosis {
        let _ = applied;
        self.diagnosis().await
    }

    /// The endpoint's log group ([`log_group`]).
    async fn log_sources(
        &self,
        live: &LiveState,
    ) -> Result<Vec<deployer_core::LogSource>, DeployError> {
        let _ = live;
        self.log_source()
    }

    /// `DescribeEndpoint` → `DescribeEndpointConfig` → `DescribeModel` per variant, after
    /// waiting out an update in flight. `ids`: `endpoint`, `endpoint_config`, `models`,
    /// `variants`, `status`.
    async fn read_live(&self) -> Result<LiveState, DeployError> {
        let snapshot = self.read_snapshot(None).await?;
        Ok(self.live_state(&snapshot))
    }

    /// Current only when the endpoint is `InService` and every targeted container runs the
    /// wanted image.
    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        live.ids
            .get(ids::STATUS)
            .is_some_and(|status| status == EndpointStatus::InService.as_str())
            && live.runs(wanted)
    }

    /// New models and a new endpoint config copied from the live ones, then `UpdateEndpoint`;
    /// each `CreateModel`, `CreateEndpointConfig` and `UpdateEndpoint` after
    /// [`Progress::before_mutation`]. `ids`: `endpoint`, `old_endpoint_config`,
    /// `endpoint_config`, `old_models`, `models`, `variants`.
    async fn apply(
        &self,
        _live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        wanted.expect_image(&self.target())?;
        let new_image = wanted.deploy_id();
        let snapshot = self.read_snapshot(Some(progress)).await?;
        let redactor = copy::redactor(&snapshot.models);
        let models = snapshot.targeted_models();
        self.check_known_members(&snapshot, &models)?;
        let several = models.len() > 1;
        let mut new_models: HashMap<String, String> = HashMap::new();
        for model in &models {
            let Some(Some(live)) = snapshot.models.get(*model) else {
                return Err(DeployError::Mismatch(format!(
                    "model {model} of {} does not exist",
                    self.target()
                )));
            };
            let Some(first) = snapshot.targeted.iter().find(|t| t.model == *model) else {
                continue;
            };
            let arn = live.output.model_arn().ok_or(DeployError::MissingField {
                operation: "DescribeModel",
                field: "ModelArn",
            })?;
            let tags = copy::copied_tags(&self.list_tags(arn).await?, self.endpoint());
            let spec = ModelSpec::with_image(&live.output, &first.slots, &new_image);
            let expected = live
                .raw
                .as_ref()
                .map(|raw| ModelSpec::expected_body(raw, &first.slots, &new_image));
            let base = names::base(
                self.endpoint(),
                several.then_some(first.variant.as_str()),
                wanted.tag(),
            );
            progress.emit(
                Phase::Apply,
                format!(
                    "new model from {model} for {}: image {new_image}; carrying over {}",
                    variant_list(
                        &snapshot
                            .targeted
                            .iter()
                            .filter(|t| t.model == *model)
                            .cloned()
                            .collect::<Vec<_>>()
                    ),
                    model_carried(&live.output)
                ),
            );
            let name = self
                .ensure_model(
                    &base,
                    model,
                    &spec,
                    &tags,
                    expected.as_ref(),
                    &redactor,
                    progress,
                )
                .await?;
            new_models.insert((*model).to_owned(), name);
        }
        let config = &snapshot.config;
        let arn = config
            .output
            .endpoint_config_arn()
            .ok_or(DeployError::MissingField {
                operation: "DescribeEndpointConfig",
                field: "EndpointConfigArn",
            })?;
        let tags = copy::copied_tags(&self.list_tags(arn).await?, self.endpoint());
        let spec = ConfigSpec::with_models(&config.output, &snapshot.targeted, &new_models);
        let expected = config
            .raw
            .as_ref()
            .map(|raw| ConfigSpec::expected_body(raw, &snapshot.targeted, &new_models));
        let base = names::base(self.endpoint(), None, wanted.tag());
        let new_config = self
            .ensure_config(
                &base,
                &config.name,
                &spec,
                &tags,
                expected.as_ref(),
                &redactor,
                progress,
            )
            .await?;
        progress.emit(
            Phase::Apply,
            format!(
                "UpdateEndpoint {} to endpoint config {new_config}{}",
                self.endpoint(),
                match &self.target.blue_green {
                    Some(_) => " (blue/green)",
                    None => "",
                }
            ),
        );
        self.update_endpoint(&new_config, &snapshot.endpoint, &redactor, progress)
            .await?;
        let rollover = ids::Rollover {
            endpoint: self.endpoint().to_owned(),
            old_endpoint_config: config.name.clone(),
            endpoint_config: new_config,
            models: models
                .iter()
                .filter_map(|model| new_models.get(*model).cloned())
                .collect(),
            old_models: owned(models),
            variants: variant_names(&snapshot.targeted),
        };
        Ok(Applied {
            old_artifact: snapshot.artifact(),
            new_artifact: new_image,
            ids: rollover.to_ids(),
        })
    }

    /// Polls `DescribeEndpoint` until `InService` on the new config, then cleans up. Cleanup
    /// failures are progress events; only a refused [`Progress::before_mutation`] before a
    /// delete ([`DeployError::Fenced`]) is an error.
    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let rollover = ids::Rollover::from_ids(&applied.ids)?;
        let (new_config, old_config) = (
            rollover.endpoint_config.as_str(),
            rollover.old_endpoint_config.as_str(),
        );
        let redactor = self
            .snapshot
            .lock()
            .ok()
            .and_then(|slot| slot.as_ref().map(|s| copy::redactor(&s.models)))
            .unwrap_or_default();
        let what = format!(
            "{} to be InService on endpoint config {new_config}",
            self.target()
        );
        let target = self.target();
        self.poll(
            &what,
            policy,
            Some(progress),
            &redactor,
            |endpoint, state| judge(&target, endpoint, state, new_config, old_config, &redactor),
        )
        .await?;
        progress.emit(
            Phase::Wait,
            format!(
                "{} is InService on endpoint config {new_config}",
                self.endpoint()
            ),
        );
        if let Ok(mut slot) = self.snapshot.lock() {
            *slot = None;
        }
        self.cleanup(new_config, old_config, progress).await?;
        Ok(applied.clone())
    }
}

/// The copied members a model has set, for progress (environment by name only).
fn model_carried(
    model: &aws_sdk_sagemaker::operation::describe_model::DescribeModelOutput,
) -> String {
    let mut set: Vec<String> = Vec::new();
    let mut push = |present: bool, name: &str| {
        if present {
            set.push(name.to_owned());
        }
    };
    push(model.primary_container().is_some(), "PrimaryContainer");
    push(!model.containers().is_empty(), "Containers");
    push(
        model.inference_execution_config().is_some(),
        "InferenceExecutionConfig",
    );
    push(model.execution_role_arn().is_some(), "ExecutionRoleArn");
    push(model.vpc_config().is_some(), "VpcConfig");
    push(
        model.enable_network_isolation().is_some(),
        "EnableNetworkIsolation",
    );
    let env = copy::environment_names(model);
    if !env.is_empty() {
        set.push(format!("environment {} (values hidden)", env.join(", ")));
    }
    set.join(", ")
}

/// `CreateModel`/`CreateEndpointConfig` of a name that is taken (a `ValidationException`).
fn already_exists(failure: &Failure) -> bool {
    failure.code.as_deref() == Some("ValidationException")
        && (failure.message.contains("already existing")
            || failure.message.contains("already exists"))
}

/// How deployer treats an endpoint status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// `Creating`, `Updating`, `SystemUpdating`, `RollingBack`: another operation in flight.
    InFlight,
    /// `InService`.
    InService,
    /// `Failed`, `UpdateRollbackFailed`.
    Failed,
    /// `OutOfService`.
    OutOfService,
    /// `Deleting`.
    Deleting,
    /// Absent, or a state this build does not know.
    Unknown,
}

fn classify(status: Option<&EndpointStatus>) -> Status {
    match status {
        Some(
            EndpointStatus::Creating
            | EndpointStatus::Updating
            | EndpointStatus::SystemUpdating
            | EndpointStatus::RollingBack,
        ) => Status::InFlight,
        Some(EndpointStatus::InService) => Status::InService,
        Some(EndpointStatus::Failed | EndpointStatus::UpdateRollbackFailed) => Status::Failed,
        Some(EndpointStatus::OutOfService) => Status::OutOfService,
        Some(EndpointStatus::Deleting) => Status::Deleting,
        _ => Status::Unknown,
    }
}

/// Refuses endpoints an update cannot sensibly be sent to.
fn check_updatable(target: &str, endpoint: &DescribeEndpointOutput) -> Result<(), DeployError> {
    match classify(endpoint.endpoint_status()) {
        Status::Deleting => Err(DeployError::Mismatch(format!("{target} is being deleted"))),
        Status::Unknown => match endpoint.endpoint_status() {
            None => Err(DeployError::MissingField {
                operation: "DescribeEndpoint",
                field: "EndpointStatus",
            }),
            Some(status) => Err(DeployError::Mismatch(format!(
                "{target} is in state {}, which this build of deployer does not know; upgrade deployer",
                status.as_str()
            ))),
        },
        _ => Ok(()),
    }
}

/// What one poll decided.
enum Verdict {
    Done,
    Pending(String),
}

/// `Updating on endpoint config X`.
fn state_line(endpoint: &DescribeEndpointOutput) -> String {
    format!(
        "{} on endpoint config {}",
        endpoint
            .endpoint_status()
            .map_or("(no status)", EndpointStatus::as_str),
        endpoint.endpoint_config_name().unwrap_or("(none)")
    )
}

/// The endpoint's failure reason, redacted, in one line.
fn failure_reason(endpoint: &DescribeEndpointOutput, redactor: &Redactor) -> String {
    match endpoint
        .failure_reason()
        .map(str::trim)
        .filter(|reason| !reason.is_empty())
    {
        Some(reason) => redactor.apply(&one_line(reason)),
        None => "SageMaker gave no failure reason".to_owned(),
    }
}

/// One poll of the rollout: `InService` on `new` is done; see the crate doc for the rest.
fn judge(
    target: &str,
    endpoint: &DescribeEndpointOutput,
    state: &str,
    new: &str,
    old: &str,
    redactor: &Redactor,
) -> Result<Verdict, DeployError> {
    let config = endpoint.endpoint_config_name().unwrap_or_default();
    let failed = |reason: String| {
        Err(DeployError::RolloutFailed {
            reason,
            events: Vec::new(),
        })
    };
    match classify(endpoint.endpoint_status()) {
        Status::InService if config == new => Ok(Verdict::Done),
        Status::InService if config == old => failed(format!(
            "{target} rolled back to endpoint config {old} (InService): {}",
            failure_reason(endpoint, redactor)
        )),
        Status::InService => failed(format!(
            "{target} is InService on endpoint config {config}, neither {new} nor the previous {old}: another deploy replaced this one"
        )),
        Status::Failed => failed(format!(
            "{target} is {state}: {}",
            failure_reason(endpoint, redactor)
        )),
        Status::Deleting => failed(format!("{target} is being deleted")),
        Status::InFlight | Status::OutOfService | Status::Unknown => {
            Ok(Verdict::Pending(state.to_owned()))
        }
    }
}
