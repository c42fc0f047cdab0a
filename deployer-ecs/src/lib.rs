//! The ECS deployer: rolls an ECS service over to a new image by registering a new revision of
//! its live task definition and updating the service, then waits until that very deployment
//! completed, and tells a real success from a circuit-breaker rollback.
//!
//! [`EcsDeployer`] implements [`deployer_core::Deployer`] for one service (`kind = "ecs"` in
//! `deployer.toml`). It receives an `aws_sdk_ecs::Client` built by the caller, so the standard
//! AWS environment (profile, region, `AWS_ENDPOINT_URL_ECS`, retry settings) applies as the
//! caller configured it.
//!
//! # Using it alone
//!
//! ```no_run
//! # async fn demo(wanted: deployer_core::Artifact) -> Result<(), Box<dyn std::error::Error>> {
//! use deployer_core::manifest::EcsTarget;
//! use deployer_core::poll::PollPolicy;
//! use deployer_core::{Progress, deploy};
//! use deployer_ecs::EcsDeployer;
//!
//! // The standard AWS environment: AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_ECS, …
//! let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let client = aws_sdk_ecs::Client::new(&sdk_config);
//! let target = EcsTarget {
//!     cluster: "acme".into(),
//!     service: "app-api".into(),
//!     container: Some("web".into()),
//!     force_new_deployment: false,
//! };
//! let deployer = EcsDeployer::new(client, target);
//! let outcome = deploy(&deployer, &wanted, &Progress::discard("app-api"), &PollPolicy::default()).await?;
//! // outcome.ids: old_task_definition, task_definition, deployment, cluster, service, container
//! # Ok(()) }
//! ```
//!
//! `examples/ecs-roll.rs` is a complete program that rolls one service over (the AWS configuration
//! from the standard environment, progress on stderr, the outcome on stdout, a non-zero exit code
//! on failure): `cargo run -p deployer-ecs --example ecs-roll -- --cluster C --service S
//! <image@digest>`.
//!
//! # What it calls
//!
//! - [`read_live`](deployer_core::Deployer::read_live): `DescribeServices` → the service's
//!   task definition → `DescribeTaskDefinition` with `include = [TAGS]`. The live artifact is the
//!   image of the target container (`container` in the manifest, or the only container); with
//!   `force_new_deployment`, the digest its mutable tag names (see "Mutable tags"). Read only.
//! - [`apply`](deployer_core::Deployer::apply): `DescribeTaskDefinition` of the family (its
//!   latest revision, see "Interrupted rollouts"), `RegisterTaskDefinition` (a new revision, see
//!   below) then `UpdateService` with only `cluster`, `service` and `taskDefinition`: every
//!   other service setting stays as it is. The previous revision is never deregistered: it is
//!   the rollback target.
//! - With `force_new_deployment = true` (a task definition on a mutable tag): no new revision;
//!   the tag is moved to the wanted digest ([`MutableTags::point`]), then
//!   `UpdateService --force-new-deployment` on the live task definition (see "Mutable tags").
//! - [`restart`](deployer_core::Deployer::restart) (a dependency changed):
//!   `UpdateService --force-new-deployment` on the live task definition; a mutable tag is not
//!   moved.
//! - [`wait`](deployer_core::Deployer::wait): `DescribeServices` polls; with
//!   `force_new_deployment`, a rollout that failed moves the tag back.
//!
//! Every mutating call (`RegisterTaskDefinition`, `UpdateService`, moving a tag, reported as
//! `PutImage`) is preceded by [`Progress::before_mutation`]: when the run's fence says no (it
//! lost its deploy lock), the call is not made and the error is
//! [`DeployError::Fenced`](deployer_core::DeployError).
//!
//! # Field preservation
//!
//! The new revision copies every writable member of the live `TaskDefinition` (the list is
//! [`COPIED_FIELDS`]: container definitions whole, with secrets, environment, log and health
//! configuration; volumes; roles; network, pid and ipc mode; cpu and memory; runtime platform;
//! ephemeral storage; proxy configuration; placement constraints; inference accelerators;
//! fault injection) and the task definition's tags ([`FROM_DESCRIBE_OUTPUT`], minus `aws:`
//! tags, which only AWS may set). Only the `image` of the target container changes. The
//! members ECS sets itself ([`READ_ONLY_FIELDS`]) are not sent.
//!
//! Allow-lists lose fields (earlier tools dropped `taskRoleArn`, `executionRoleArn`, secrets);
//! deny-lists break when AWS adds some. Here both lists are checked by tests against the SDK's
//! own schema of `TaskDefinition` and `RegisterTaskDefinitionInput`: a member in neither list
//! (an SDK upgrade that brings a new field) fails a test until someone decides where it goes.
//! Nested structures (container definitions, volumes, …) are copied as whole SDK values, so
//! their new members travel along; a fixture that sets every member of every nested structure
//! (also checked against the schemas) is sent through the client and the request body is
//! compared with the response it was read from, field by field.
//!
//! What the tests cannot see is a member AWS returns that this build's SDK does not know: the
//! SDK skips it when deserializing, so it could not be copied. That is checked at run time: the
//! raw JSON of `DescribeTaskDefinition` is kept, and the serialized `RegisterTaskDefinition` body
//! must send every member read back exactly as read (read-only members, the image and `aws:`
//! tags aside), or nothing is registered and the deploy fails naming the member paths (never
//! values) and asking for an upgrade. The SDK may send more than was read: members it models as
//! required or as plain numbers (a container's `cpu` of 0, which ECS treats as unset; a resource
//! requirement's empty `value` beside a GPU `sharingStrategy`).
//!
//! # Wait semantics
//!
//! `apply` records the id of the deployment `UpdateService` created (the PRIMARY one in its
//! response) and the task definition it rolls to. [`wait`](deployer_core::Deployer::wait) polls
//! `DescribeServices` with [`poll_until`] and succeeds only when *that* deployment is PRIMARY,
//! runs *that* task definition, has `rolloutState = COMPLETED` and running equal to desired
//! (without a rollout state, as behind a Classic Load Balancer: when it is the only deployment
//! left, all running, none pending). It fails with [`DeployError::RolloutFailed`](deployer_core::DeployError) when the
//! deployment's rollout state is `FAILED`, when another deployment became PRIMARY (the circuit
//! breaker's rollback to the old task definition, or a concurrent deploy), when the deployment
//! is gone, even though the service then looks stable (a rollback is never a success), or when
//! it runs another task definition than the one recorded (a record that does not match what ECS
//! did). The error
//! names the task definition the service runs instead and carries the service events since the
//! rollout began.
//!
//! `DescribeServiceDeployments` is not used: `DescribeServices` answers the question on every
//! ECS deployment controller version and in emulators.
//!
//! Throttling and server errors are retried by the SDK; when its retries give up inside the
//! wait, the poll counts as "still rolling" (the state line says so) and the next poll tries
//! again, so a burst of throttling does not fail a healthy rollout. Only the overall timeout
//! ([`DeployError::Timeout`](deployer_core::DeployError), with the last observed state and the
//! recent service events) ends such a streak. Other errors (access denied, service deleted) fail
//! the wait at once.
//!
//! Progress events report the deployment's counts and rollout state when they change, and each
//! new service event once.
//!
//! # Interrupted rollouts
//!
//! A deploy can stop anywhere (Ctrl-C, a wait that timed out, SIGKILL); the next one must neither
//! take an unfinished rollout for a success nor pile up revisions:
//!
//! - [`read_live`](deployer_core::Deployer::read_live) reports a PRIMARY deployment that is still
//!   rolling ([`ids::IN_FLIGHT`], and in the summary). While one is, the service is not
//!   [current](deployer_core::Deployer::is_current) even if its task definition already names
//!   the wanted image: ECS switches the service's task definition at `UpdateService`, long before
//!   the rollout succeeds (or is rolled back).
//! - When the deployment in flight rolls the wanted image, `apply` starts nothing and
//!   [`wait`](deployer_core::Deployer::wait) waits for that deployment, with the same verdicts.
//! - `read_live` also reports a PRIMARY deployment whose rollout ended `FAILED` and that ECS did
//!   not roll back (the circuit breaker with `rollback = false`: the failed deployment stays
//!   PRIMARY and the service's task definition stays the new one): [`ids::FAILED`] (the deployment
//!   id), [`ids::FAILED_REPLACES`], and a clause in the summary with ECS's `rolloutStateReason`.
//!   While it is there the service is not current, so a re-run of the failed release never
//!   reports `unchanged` (nor lets its caller record it). When the live task definition already
//!   runs the wanted image, `apply` starts the rollout again:
//!   `UpdateService --force-new-deployment` on that task definition (no new revision), waited
//!   for as usual. On another image, `apply` rolls over as always.
//! - When the family's latest revision is exactly the revision `apply` would register (a run
//!   registered it and stopped before `UpdateService`), it is reused instead of registering an
//!   identical one.
//! - With `force_new_deployment`, a deployment in flight while the tag names the wanted digest
//!   (a run moved the tag, started the deployment and stopped while it waited) is waited for:
//!   the tag is not moved and no deployment is started.
//!
//! # Mutable tags
//!
//! Some task definitions name a movable tag (`<repo>:latest`, the `<repo>:bootstrap` an IaC
//! stack registers) and are rolled by moving the tag and forcing a new deployment
//! (`force_new_deployment = true`). The registry is reached through a [`MutableTags`] the caller
//! injects with [`EcsDeployer::with_mutable_tags`]; without one, such a service cannot be read
//! (a [`DeployError::Mismatch`](deployer_core::DeployError) naming what is missing).
//!
//! - `read_live` requires the target container's image to be a tag reference `repo:tag` (no
//!   `@digest`), else a `Mismatch` saying `force_new_deployment` needs a task definition on a
//!   mutable tag. It asks [`MutableTags::digest`] what the tag names now and reports the live
//!   artifact as `repo@sha256:…` (`repo:tag` when the tag does not exist), the id
//!   [`ids::MUTABLE_TAG`] (`repo:tag`) and `repo:tag → sha256:…` in the summary.
//!   [`is_current`](deployer_core::Deployer::is_current) therefore compares digests like for
//!   any other target (and the rollout checks above), whatever the deploy records say.
//! - `apply(live, wanted)`: `wanted` must be an image with a digest in the tag's repository
//!   (else `Mismatch`). Unless the tag already names that digest, the tag is moved to it
//!   ([`MutableTags::point`], after `before_mutation("PutImage")`); then
//!   `UpdateService --force-new-deployment` on the live task definition. The [`Applied`] carries
//!   [`ids::MUTABLE_TAG`] and, when the tag was moved from another digest,
//!   [`ids::MUTABLE_TAG_PREVIOUS_DIGEST`]; `old_artifact` is `repo@<previous digest>`,
//!   `new_artifact` `repo@<wanted digest>`. When `UpdateService` fails after the move, the tag is
//!   moved back (unless the fence said no) and the error says what became of it.
//! - `wait`: when the rollout failed (not when it timed out: the deployment may still finish on
//!   the new image) and the `Applied` carries [`ids::MUTABLE_TAG_PREVIOUS_DIGEST`], the tag is moved
//!   back to that digest before the [`DeployError::RolloutFailed`](deployer_core::DeployError)
//!   is returned, so that the tasks ECS starts from this task definition (its circuit-breaker
//!   rollback, a scale-out) pull the previous image again; the reason says so, or says why the
//!   tag was not moved back (the fence said no, the registry refused).
//! - `restart` (a dependency changed) forces a new deployment without moving the tag.
//! - A rollback to an earlier recorded deploy is an ordinary `apply` of its `repo@digest`: the
//!   tag moves back to that digest and the service restarts.
//!
//! # Secrets
//!
//! The containers' environment values are secrets. `RegisterTaskDefinition` sends them, and
//! ECS may echo them in its error: that error is reported with every value replaced by `***`
//! (`deployer_aws::Redactor`). Summaries, progress events and the field check name members,
//! never values; SDK errors are one line (`Code: message`, `deployer_aws::error_line`).
#![warn(missing_docs)]

mod diagnose;
mod raw;
mod rollout;
mod taskdef;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    DeploymentControllerType, Service, ServiceField, Tag, TaskDefinition, TaskDefinitionField,
};
use deployer_aws::{Failure, RawJson, Redactor, ResponseRecorder, api_error};
use deployer_core::manifest::EcsTarget;
use deployer_core::poll::{Poll, PollError, PollPolicy, StateLog, poll_until};
use deployer_core::{Applied, Artifact, DeployError, Deployer, LiveState, Phase, Progress};

pub use crate::diagnose::{AwsLogs, LOG_LINES};
use crate::ids::{FAILED, FAILED_REPLACES, IN_FLIGHT, IN_FLIGHT_REPLACES, MUTABLE_TAG};
use crate::rollout::{Events, FailedPrimary, InFlight, Rollout, Verdict};
pub use crate::taskdef::{COPIED_FIELDS, FROM_DESCRIBE_OUTPUT, READ_ONLY_FIELDS};

/// The keys of [`LiveState::ids`] and [`Applied::ids`] for ECS services: the record format of
/// `deploy-state` (`current.ids`, `pending.applied.ids`) and of the cli's `--json` output.
///
/// Live state: [`TASK_DEFINITION`](ids::TASK_DEFINITION), [`CLUSTER`](ids::CLUSTER),
/// [`SERVICE`](ids::SERVICE), [`CONTAINER`](ids::CONTAINER); while a deployment is still rolling
/// [`IN_FLIGHT`](ids::IN_FLIGHT) (and [`IN_FLIGHT_REPLACES`](ids::IN_FLIGHT_REPLACES)), after
/// one failed without a rollback [`FAILED`](ids::FAILED) (and
/// [`FAILED_REPLACES`](ids::FAILED_REPLACES)); with `force_new_deployment`
/// [`ids::MUTABLE_TAG`](ids::MUTABLE_TAG).
///
/// Applied: [`OLD_TASK_DEFINITION`](ids::OLD_TASK_DEFINITION), `TASK_DEFINITION`,
/// [`DEPLOYMENT`](ids::DEPLOYMENT), `CLUSTER`, `SERVICE`, `CONTAINER`; with
/// `force_new_deployment` `MUTABLE_TAG` and, when `apply` moved the tag,
/// [`ids::MUTABLE_TAG_PREVIOUS_DIGEST`](ids::MUTABLE_TAG_PREVIOUS_DIGEST).
pub mod ids {
    /// The task definition ARN the service runs (live), or the one the deployment rolls to
    /// (applied).
    pub const TASK_DEFINITION: &str = "task_definition";
    /// Applied: the task definition the deployment replaces (a restart rolls the task
    /// definition onto itself, and a record without it is read that way).
    pub const OLD_TASK_DEFINITION: &str = "old_task_definition";
    /// Applied: the id of the deployment `UpdateService` created, the one `wait` waits for.
    pub const DEPLOYMENT: &str = "deployment";
    /// The cluster ARN (the manifest's name when ECS gave none).
    pub const CLUSTER: &str = "cluster";
    /// The service ARN (the manifest's name when ECS gave none).
    pub const SERVICE: &str = "service";
    /// The name of the container whose image is rolled.
    pub const CONTAINER: &str = "container";
    /// Live: the PRIMARY deployment when it is still rolling (see the crate doc, "Interrupted
    /// rollouts").
    pub const IN_FLIGHT: &str = "deployment_in_flight";
    /// Live: the task definition of the deployment the one in flight replaces.
    pub const IN_FLIGHT_REPLACES: &str = "deployment_in_flight_replaces";
    /// Live: the PRIMARY deployment when its rollout ended `FAILED` and ECS did not roll it
    /// back (the circuit breaker with `rollback = false`; see the crate doc, "Interrupted
    /// rollouts").
    pub const FAILED: &str = "deployment_failed";
    /// Live: the task definition of the deployment the failed one replaced.
    pub const FAILED_REPLACES: &str = "deployment_failed_replaces";
    /// Live and applied, with `force_new_deployment` only: the mutable tag reference the task
    /// definition runs, `repository_uri:tag` (see the crate doc, "Mutable tags").
    pub const MUTABLE_TAG: &str = "mutable_tag";
    /// Applied: the digest [`ids::MUTABLE_TAG`] named before `apply` moved it, the one `wait` moves
    /// it back to when the rollout fails. Absent when `apply` did not move the tag (it already
    /// named the wanted digest) or the tag did not exist before.
    pub const MUTABLE_TAG_PREVIOUS_DIGEST: &str = "mutable_tag_previous_digest";
}

/// Access to the registry for services on a mutable tag (`force_new_deployment = true`): what a
/// tag names, and moving it. Injected by the caller with [`EcsDeployer::with_mutable_tags`] (the
/// cli implements it with its image registry client).
///
/// `repository_uri` is the registry host and repository without tag or digest, as in
/// [`ImageArtifact::repository_uri`](deployer_core::ImageArtifact): e.g.
/// `127.0.0.1:5000/acme/app-api` or `123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app-api`.
#[async_trait]
pub trait MutableTags: Send + Sync {
    /// The manifest digest (`sha256:…`) `repository_uri:tag` points at in the registry now;
    /// `None` when the tag does not exist. Read only.
    async fn digest(&self, repository_uri: &str, tag: &str) -> Result<Option<String>, DeployError>;

    /// Moves `repository_uri:tag` to the manifest `digest` (already in the repository).
    async fn point(&self, repository_uri: &str, tag: &str, digest: &str)
    -> Result<(), DeployError>;
}

/// Rolls one ECS service over to new images. See the [crate documentation](crate).
pub struct EcsDeployer {
    client: aws_sdk_ecs::Client,
    target: EcsTarget,
    /// The task definition `read_live` read, so that `apply` does not read it again.
    live: Mutex<Option<LiveTaskDefinition>>,
    /// Registry access for `force_new_deployment` (mutable tags).
    mutable_tags: Option<Arc<dyn MutableTags>>,
    /// CloudWatch Logs, for the log lines of a failed rollout's containers.
    logs: Option<aws_sdk_cloudwatchlogs::Client>,
    /// Elastic Load Balancing, for the target health of a failed rollout's load balancers.
    elbv2: Option<aws_sdk_elasticloadbalancingv2::Client>,
    /// The last rollout waited for and when it began (its deployment's creation), for the
    /// events of its diagnosis once the deployment is no longer listed.
    rollout_since: Mutex<Option<(String, aws_sdk_ecs::primitives::DateTime)>>,
}

impl std::fmt::Debug for EcsDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsDeployer")
            .field("target", &self.target)
            .field("mutable_tags", &self.mutable_tags.is_some())
            .finish_non_exhaustive()
    }
}

/// A task definition as `DescribeTaskDefinition` returned it.
#[derive(Clone, Debug)]
struct LiveTaskDefinition {
    arn: String,
    task_definition: TaskDefinition,
    tags: Vec<Tag>,
    /// The raw response, to check the new revision against (`None` under aws-smithy-mocks).
    raw: Option<RawJson>,
}

impl EcsDeployer {
    /// A deployer for the service `target` names, calling ECS through `client`.
    pub fn new(client: aws_sdk_ecs::Client, target: EcsTarget) -> Self {
        EcsDeployer {
            client,
            target,
            live: Mutex::new(None),
            mutable_tags: None,
            logs: None,
            elbv2: None,
            rollout_since: Mutex::new(None),
        }
    }

    /// This deployer with CloudWatch Logs access: the diagnosis of a failed rollout
    /// ([`Deployer::diagnose`]) then shows the last lines of the failing containers' `awslogs`
    /// streams (a container's `awslogs-region` gets a client of its own from this one's
    /// configuration).
    #[must_use]
    pub fn with_logs(mut self, logs: aws_sdk_cloudwatchlogs::Client) -> Self {
        self.logs = Some(logs);
        self
    }

    /// This deployer with Elastic Load Balancing access: the diagnosis of a failed rollout of a
    /// service with load balancers then shows the targets that are not healthy
    /// (`DescribeTargetHealth`: state, reason, description).
    #[must_use]
    pub fn with_load_balancing(mut self, elbv2: aws_sdk_elasticloadbalancingv2::Client) -> Self {
        self.elbv2 = Some(elbv2);
        self
    }

    /// This deployer with registry access for a service on a mutable tag
    /// (`force_new_deployment = true`): [`read_live`](Deployer::read_live) resolves the tag
    /// through `tags`, [`apply`](Deployer::apply) moves it, [`wait`](Deployer::wait) moves it
    /// back when the rollout fails. Without it, such a service cannot be read.
    #[must_use]
    pub fn with_mutable_tags(mut self, tags: Arc<dyn MutableTags>) -> Self {
        self.mutable_tags = Some(tags);
        self
    }

    fn service_what(&self) -> String {
        format!(
            "ECS service `{}` in cluster `{}`",
            self.target.service, self.target.cluster
        )
    }

    /// `DescribeServices` for the target service; a missing or deleted service is
    /// [`DeployError::NotFound`].
    async fn describe_service(&self) -> Result<Service, DeployError> {
        let output = self
            .client
            .describe_services()
            .cluster(&self.target.cluster)
            .services(&self.target.service)
            .send()
            .await
            .map_err(|error| match error.as_service_error() {
                Some(e) if e.is_cluster_not_found_exception() => DeployError::NotFound {
                    what: format!("ECS cluster `{}`", self.target.cluster),
                    hint: "check `cluster` in deployer.toml and the AWS account and region in use (AWS_PROFILE, AWS_REGION)"
                        .into(),
                },
                _ => api_error("DescribeServices", &error, &Redactor::default()),
            })?;
        let service = output
            .services()
            .first()
            .filter(|s| s.status() != Some("INACTIVE"));
        match service {
            Some(service) if service.status() == Some("DRAINING") => Err(DeployError::NotFound {
                what: self.service_what(),
                hint: "the service is DRAINING (being deleted); recreate it or fix `service` in deployer.toml".into(),
            }),
            Some(service) => Ok(service.clone()),
            None => {
                let reason = output
                    .failures()
                    .first()
                    .and_then(|f| f.reason())
                    .map(|r| format!(" (ECS says: {r})"))
                    .unwrap_or_default();
                Err(DeployError::NotFound {
                    what: self.service_what(),
                    hint: format!(
                        "no ACTIVE service by that name{reason}; check `service` and `cluster` in deployer.toml and the AWS account and region in use"
                    ),
                })
            }
        }
    }

    /// `DescribeTaskDefinition` with tags, or the copy `read_live` kept.
    async fn task_definition(&self, arn: &str) -> Result<LiveTaskDefinition, DeployError> {
        if let Ok(cached) = self.live.lock()
            && let Some(live) = cached.as_ref().filter(|live| live.arn == arn)
        {
            return Ok(live.clone());
        }
        let recorder = ResponseRecorder::default();
        let output = self
            .client
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .customize()
            .interceptor(recorder.clone())
            .send()
            .await
            .map_err(|error| api_error("DescribeTaskDefinition", &error, &Redactor::default()))?;
        let task_definition = output.task_definition.ok_or(DeployError::MissingField {
            operation: "DescribeTaskDefinition",
            field: "taskDefinition",
        })?;
        let live = LiveTaskDefinition {
            arn: arn.to_owned(),
            task_definition,
            tags: output.tags.unwrap_or_default(),
            raw: recorder.recorded(),
        };
        if let Ok(mut cached) = self.live.lock() {
            *cached = Some(live.clone());
        }
        Ok(live)
    }

    /// `UpdateService` on the target service, once the fence allows it; returns the id of the
    /// PRIMARY deployment the update created.
    async fn update_service(
        &self,
        task_definition: &str,
        force_new_deployment: bool,
        progress: &Progress,
    ) -> Result<String, DeployError> {
        progress.before_mutation("UpdateService")?;
        let mut request = self
            .client
            .update_service()
            .cluster(&self.target.cluster)
            .service(&self.target.service)
            .task_definition(task_definition);
        if force_new_deployment {
            request = request.force_new_deployment(true);
        }
        let output = request
            .send()
            .await
            .map_err(|error| match error.as_service_error() {
                Some(e)
                    if e.is_service_not_found_exception()
                        || e.is_service_not_active_exception() =>
                {
                    DeployError::NotFound {
                        what: self.service_what(),
                        hint: "the service was deleted or deactivated since it was read".into(),
                    }
                }
                _ => api_error("UpdateService", &error, &Redactor::default()),
            })?;
        let service = output.service.ok_or(DeployError::MissingField {
            operation: "UpdateService",
            field: "service",
        })?;
        service
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .and_then(|d| d.id())
            .map(str::to_owned)
            .ok_or(DeployError::MissingField {
                operation: "UpdateService",
                field: "service.deployments[status = PRIMARY].id",
            })
    }

    fn applied_ids(
        &self,
        old_task_definition: &str,
        task_definition: &str,
        deployment: String,
        live: &LiveState,
    ) -> BTreeMap<String, String> {
        let mut ids = BTreeMap::from([
            (
                ids::OLD_TASK_DEFINITION.to_owned(),
                old_task_definition.to_owned(),
            ),
            (ids::TASK_DEFINITION.to_owned(), task_definition.to_owned()),
            (ids::DEPLOYMENT.to_owned(), deployment),
        ]);
        for key in [ids::CLUSTER, ids::SERVICE, ids::CONTAINER, MUTABLE_TAG] {
            if let Some(value) = live.ids.get(key) {
                ids.insert(key.to_owned(), value.clone());
            }
        }
        ids.entry(ids::CLUSTER.into())
            .or_insert_with(|| self.target.cluster.clone());
        ids.entry(ids::SERVICE.into())
            .or_insert_with(|| self.target.service.clone());
        ids
    }

    /// `UpdateService --force-new-deployment` on the live task definition.
    async fn force_new_deployment(
        &self,
        live: &LiveState,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let task_definition = live_id(live, ids::TASK_DEFINITION)?;
        progress.emit(
            Phase::Apply,
            format!(
                "UpdateService --force-new-deployment on {}",
                taskdef::short_arn(task_definition)
            ),
        );
        let deployment = self.update_service(task_definition, true, progress).await?;
        progress.emit(Phase::Apply, format!("started deployment {deployment}"));
        let new_artifact = live.artifact.clone().ok_or(DeployError::MissingField {
            operation: "DescribeTaskDefinition",
            field: "containerDefinitions[].image",
        })?;
        Ok(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact,
            ids: self.applied_ids(task_definition, task_definition, deployment, live),
        })
    }

    /// The PRIMARY deployment on the wanted image failed without a rollback: starts its rollout
    /// again with `UpdateService --force-new-deployment` on the same task definition (no new
    /// revision), to be waited for as usual.
    async fn roll_out_again(
        &self,
        live: &LiveState,
        failed: &str,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let task_definition = live_id(live, ids::TASK_DEFINITION)?;
        let replaces = live
            .ids
            .get(FAILED_REPLACES)
            .map_or(task_definition, String::as_str);
        progress.emit(
            Phase::Apply,
            format!(
                "deployment {failed} of {} on this image failed and was not rolled back: starting its rollout again (UpdateService --force-new-deployment, no new revision)",
                taskdef::short_arn(task_definition)
            ),
        );
        let deployment = self.update_service(task_definition, true, progress).await?;
        progress.emit(Phase::Apply, format!("started deployment {deployment}"));
        Ok(Applied {
            old_artifact: None,
            new_artifact: wanted.deploy_id(),
            ids: self.applied_ids(replaces, task_definition, deployment, live),
        })
    }

    /// The registry access `force_new_deployment` needs, or the error naming what is missing.
    fn mutable_tags(&self, reference: &str) -> Result<&Arc<dyn MutableTags>, DeployError> {
        self.mutable_tags.as_ref().ok_or_else(|| {
            DeployError::Mismatch(format!(
                "`force_new_deployment` of {} needs registry access to resolve and move {reference}, and none was configured: build the deployer with `EcsDeployer::with_mutable_tags`",
                self.target()
            ))
        })
    }

    /// `force_new_deployment`: the mutable tag the container runs, and what it names now.
    async fn resolve_mutable_tag(
        &self,
        container: &str,
        image: &str,
    ) -> Result<ResolvedTag, DeployError> {
        let Some((repository_uri, tag)) = mutable_reference(image) else {
            let name = image.split('@').next().unwrap_or(image);
            return Err(DeployError::Mismatch(format!(
                "`force_new_deployment` needs a task definition on a mutable tag (like `{}:latest`), but container `{container}` of {} runs {image}: point it at a tag or turn `force_new_deployment` off",
                repository(name),
                self.target()
            )));
        };
        let digest = self
            .mutable_tags(image)?
            .digest(repository_uri, tag)
            .await?;
        Ok(ResolvedTag {
            reference: image.to_owned(),
            repository: repository_uri.to_owned(),
            digest,
        })
    }

    /// `force_new_deployment`: moves the mutable tag to the wanted digest (unless it names it
    /// already), then `UpdateService --force-new-deployment` on the live task definition.
    async fn apply_mutable_tag(
        &self,
        live: &LiveState,
        image: &deployer_core::ImageArtifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let reference = live_id(live, MUTABLE_TAG)?;
        let (repository_uri, tag) =
            mutable_reference(reference).ok_or(DeployError::MissingField {
                operation: "read_live",
                field: MUTABLE_TAG,
            })?;
        if image.repository_uri != repository_uri {
            return Err(DeployError::Mismatch(format!(
                "`force_new_deployment` moves {reference}, which is not an image of {}: point the task definition at a tag of {} or turn `force_new_deployment` off",
                image.repository_uri, image.repository_uri
            )));
        }
        let Some(digest) = image.digest.as_deref() else {
            return Err(DeployError::Mismatch(format!(
                "`force_new_deployment` moves {reference} to a digest, and {} has none: push the image first",
                image.tag_uri()
            )));
        };
        let tags = self.mutable_tags(reference)?;
        let previous = live
            .artifact
            .as_deref()
            .and_then(|artifact| artifact.split_once('@'))
            .map(|(_, digest)| digest.to_owned());
        let task_definition = live_id(live, ids::TASK_DEFINITION)?;
        let moved = previous.as_deref() != Some(digest);
        if moved {
            progress.before_mutation("PutImage")?;
            progress.emit(
                Phase::Apply,
                format!(
                    "moving {reference} from {} to {digest}",
                    previous.as_deref().unwrap_or("nothing (a new tag)")
                ),
            );
            tags.point(repository_uri, tag, digest).await?;
        } else {
            progress.emit(Phase::Apply, format!("{reference} already names {digest}"));
        }
        progress.emit(
            Phase::Apply,
            format!(
                "UpdateService --force-new-deployment on {}",
                taskdef::short_arn(task_definition)
            ),
        );
        let deployment = match self.update_service(task_definition, true, progress).await {
            Ok(deployment) => deployment,
            // The update was not made (or may not have been): the tag must not stay ahead of
            // the service. A missing field in the answer means the update was made.
            Err(error)
                if moved
                    && matches!(
                        error,
                        DeployError::Api { .. }
                            | DeployError::NotFound { .. }
                            | DeployError::Fenced { .. }
                    ) =>
            {
                let note = self
                    .undo_move(reference, previous.as_deref(), digest, progress)
                    .await;
                return Err(with_note(error, &note));
            }
            Err(error) => return Err(error),
        };
        progress.emit(Phase::Apply, format!("started deployment {deployment}"));
        let replaces = live
            .ids
            .get(FAILED_REPLACES)
            .map_or(task_definition, String::as_str);
        let mut ids = self.applied_ids(replaces, task_definition, deployment, live);
        if moved && let Some(previous) = &previous {
            ids.insert(
                ids::MUTABLE_TAG_PREVIOUS_DIGEST.to_owned(),
                previous.clone(),
            );
        }
        Ok(Applied {
            old_artifact: previous.map(|previous| format!("{repository_uri}@{previous}")),
            new_artifact: format!("{repository_uri}@{digest}"),
            ids,
        })
    }

    /// After `UpdateService` failed behind a tag `apply` moved to `digest`: moves the tag back
    /// to `previous` when it may, so that neither the service's next tasks nor the next deploy
    /// take an image the service was never rolled to for the live one. Says what was done, for
    /// the error.
    async fn undo_move(
        &self,
        reference: &str,
        previous: Option<&str>,
        digest: &str,
        progress: &Progress,
    ) -> String {
        let Some(previous) = previous else {
            return format!(
                "{reference} did not exist before and now names {digest} although the service was not restarted: delete the tag before the next deploy, which would otherwise take {digest} for deployed"
            );
        };
        match self.point_back(reference, previous, progress).await {
            Ok(()) => format!("{reference} was moved back to {previous}"),
            Err(why) => format!(
                "{reference} was not moved back to {previous} ({why}) and names {digest} although the service was not restarted: move it back before the next deploy, which would otherwise take {digest} for deployed"
            ),
        }
    }

    /// When a rollout failed and `apply` had moved the mutable tag, moves it back to the digest
    /// it named before. Says what was done, for the error; `None` when there is nothing to move
    /// back.
    async fn move_tag_back(&self, applied: &Applied, progress: &Progress) -> Option<String> {
        let previous = applied.ids.get(ids::MUTABLE_TAG_PREVIOUS_DIGEST)?;
        let reference = applied
            .ids
            .get(MUTABLE_TAG)
            .map_or("the mutable tag", String::as_str);
        Some(match self.point_back(reference, previous, progress).await {
            Ok(()) => format!(
                "{reference} was moved back to {previous}, so that the tasks ECS starts from this task definition (its circuit-breaker rollback, a scale-out) pull the previous image again"
            ),
            Err(why) => format!(
                "{reference} was not moved back to {previous} ({why}): move it back before the next deploy, which would otherwise take the failed image for deployed"
            ),
        })
    }

    /// Moves `reference` (`repo:tag`) back to `previous`, once the fence allows it; `Err` says
    /// why it was not moved.
    async fn point_back(
        &self,
        reference: &str,
        previous: &str,
        progress: &Progress,
    ) -> Result<(), String> {
        let (repository_uri, tag) = mutable_reference(reference)
            .ok_or_else(|| format!("`{MUTABLE_TAG}` is not a `repository:tag` reference"))?;
        let tags = self
            .mutable_tags(reference)
            .map_err(|error| error.to_string())?;
        progress
            .before_mutation("PutImage")
            .map_err(|error| error.to_string())?;
        progress.emit(
            Phase::Apply,
            format!("moving {reference} back to {previous}"),
        );
        tags.point(repository_uri, tag, previous)
            .await
            .map_err(|error| error.to_string())
    }

    /// The refusal when the new revision would not carry `paths` of the live one.
    fn would_drop(&self, arn: &str, paths: &[String]) -> DeployError {
        let paths: Vec<String> = paths.iter().map(|path| format!("`{path}`")).collect();
        DeployError::Mismatch(format!(
            "{} has fields this build of deployer cannot carry into a new revision ({}): its AWS SDK does not \
             know them, and a revision without them would quietly change {}; nothing was registered: upgrade deployer",
            taskdef::short_arn(arn),
            paths.join(", "),
            self.target()
        ))
    }

    /// When a deployment is still rolling the wanted image (an earlier run started it and
    /// stopped before it finished), waits for that one instead of starting another: what to
    /// [`wait`](Deployer::wait) for, or `None` when there is no such deployment.
    fn adopt_in_flight(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Option<Applied>, DeployError> {
        let Some(deployment) = live.ids.get(IN_FLIGHT) else {
            return Ok(None);
        };
        if !live.runs(wanted) {
            return Ok(None);
        }
        let task_definition = live_id(live, ids::TASK_DEFINITION)?;
        let replaces = live
            .ids
            .get(IN_FLIGHT_REPLACES)
            .map_or(task_definition, String::as_str);
        progress.emit(
            Phase::Apply,
            format!(
                "deployment {deployment} of {} on this image is still rolling (started earlier): waiting for it instead of starting another",
                taskdef::short_arn(task_definition)
            ),
        );
        Ok(Some(Applied {
            old_artifact: None,
            new_artifact: wanted.deploy_id(),
            ids: self.applied_ids(replaces, task_definition, deployment.clone(), live),
        }))
    }

    /// The family's latest revision when it is exactly the revision `request` would register
    /// (an earlier run registered it and was stopped before `UpdateService`), so that a re-run
    /// does not pile up identical revisions. `DescribeTaskDefinition` of the family; a failed
    /// lookup only means no reuse.
    async fn identical_latest_revision(
        &self,
        live: &LiveTaskDefinition,
        container: &str,
        image: &str,
        request: &aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
        progress: &Progress,
    ) -> Option<String> {
        let family = live.task_definition.family()?;
        let output = match self
            .client
            .describe_task_definition()
            .task_definition(family)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                progress.detail(
                    Phase::Apply,
                    format!(
                        "cannot read the latest revision of {family} ({}): registering a new one",
                        deployer_aws::error_line(&error)
                    ),
                );
                return None;
            }
        };
        let tags = output.tags().to_vec();
        let latest = output.task_definition?;
        let arn = latest.task_definition_arn()?.to_owned();
        if arn == live.arn || latest.revision() <= live.task_definition.revision() {
            return None;
        }
        let runs = taskdef::select_container(&latest, Some(container))
            .ok()
            .and_then(|c| c.image());
        if runs != Some(image) {
            return None;
        }
        let again = taskdef::new_revision(
            self.client.register_task_definition(),
            &latest,
            &tags,
            container,
            image,
        )
        .ok()?;
        (again.as_input() == request.as_input()).then_some(arn)
    }

    /// One poll of the rollout.
    async fn probe(
        &self,
        rollout: &Rollout,
        watch: &Mutex<Watch>,
        progress: &Progress,
    ) -> Result<Poll<()>, DeployError> {
        let output = self
            .client
            .describe_services()
            .cluster(&self.target.cluster)
            .services(&self.target.service)
            .send()
            .await;
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                let failure = Failure::new(&error, &Redactor::default());
                if !failure.is_retryable() {
                    return Err(failure.into_error("DescribeServices"));
                }
                let line = format!("DescribeServices failed, retrying: {}", failure.message);
                progress.emit(Phase::Wait, line.clone());
                return Ok(Poll::Pending(line));
            }
        };
        let Some(service) = output.services().first() else {
            return Err(DeployError::RolloutFailed {
                reason: format!("{} disappeared during the rollout", self.service_what()),
                events: lock(watch).events.for_error(),
            });
        };
        let mut watch = lock(watch);
        if watch.since.is_none() {
            watch.since = rollout::created_at(service, rollout).cloned();
        }
        let since = watch.since;
        for event in watch.events.observe(service.events(), since.as_ref()) {
            progress.emit(Phase::Wait, event);
        }
        match rollout::judge(service, rollout) {
            Verdict::Completed(counts) => {
                progress.emit(
                    Phase::Wait,
                    format!("deployment {} completed: {counts}", rollout.deployment),
                );
                Ok(Poll::Ready(()))
            }
            Verdict::Rolling(line) => {
                if watch.lines.note(&line) {
                    progress.emit(
                        Phase::Wait,
                        format!("deployment {}: {line}", rollout.deployment),
                    );
                }
                Ok(Poll::Pending(line))
            }
            Verdict::Failed(reason) => Err(DeployError::RolloutFailed {
                reason,
                events: watch.events.for_error(),
            }),
        }
    }
}

/// What the wait has seen so far.
#[derive(Debug)]
struct Watch {
    events: Events,
    /// The state lines, each reported once.
    lines: StateLog,
    since: Option<aws_sdk_ecs::primitives::DateTime>,
}

fn lock(watch: &Mutex<Watch>) -> std::sync::MutexGuard<'_, Watch> {
    watch
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn live_id<'a>(live: &'a LiveState, key: &'static str) -> Result<&'a str, DeployError> {
    live.ids
        .get(key)
        .map(String::as_str)
        .ok_or(DeployError::MissingField {
            operation: "read_live",
            field: key,
        })
}

fn applied_id<'a>(applied: &'a Applied, key: &'static str) -> Result<&'a str, DeployError> {
    applied
        .ids
        .get(key)
        .map(String::as_str)
        .ok_or(DeployError::MissingField {
            operation: "apply",
            field: key,
        })
}

#[async_trait]
impl Deployer for EcsDeployer {
    fn target(&self) -> String {
        format!(
            "ECS service {}/{}",
            self.target.cluster, self.target.service
        )
    }

    async fn read_live(&self) -> Result<LiveState, DeployError> {
        let service = self.describe_service().await?;
        if let Some(controller) = service.deployment_controller().map(|c| c.r#type())
            && *controller != DeploymentControllerType::Ecs
        {
            return Err(DeployError::Mismatch(format!(
                "{} uses the {} deployment controller; deployer rolls services with the ECS controller only",
                self.service_what(),
                controller.as_str()
            )));
        }
        let arn = service.task_definition().ok_or(DeployError::MissingField {
            operation: "DescribeServices",
            field: "services[0].taskDefinition",
        })?;
        let live = self.task_definition(arn).await?;
        let container =
            taskdef::select_container(&live.task_definition, self.target.container.as_deref())?;
        let name = container.name().ok_or(DeployError::MissingField {
            operation: "DescribeTaskDefinition",
            field: "taskDefinition.containerDefinitions[].name",
        })?;
        let image = container.image().ok_or(DeployError::MissingField {
            operation: "DescribeTaskDefinition",
            field: "taskDefinition.containerDefinitions[].image",
        })?;
        let mutable = if self.target.force_new_deployment {
            Some(self.resolve_mutable_tag(name, image).await?)
        } else {
            None
        };
        let (artifact, runs) = match &mutable {
            Some(tag) => match &tag.digest {
                Some(digest) => (
                    format!("{}@{digest}", tag.repository),
                    format!("{} → {digest}", tag.reference),
                ),
                None => (
                    tag.reference.clone(),
                    format!("{} (not in the registry)", tag.reference),
                ),
            },
            None => (image.to_owned(), image.to_owned()),
        };
        let mut summary = format!(
            "{} ({}), container `{name}` runs {runs}; {}/{} tasks running",
            taskdef::short_name(&live.task_definition),
            service.status().unwrap_or("?"),
            service.running_count(),
            service.desired_count(),
        );
        let in_flight = rollout::in_flight(&service);
        if let Some(InFlight {
            deployment, state, ..
        }) = &in_flight
        {
            summary.push_str(&format!(
                "; deployment {deployment} still rolling ({state})"
            ));
        }
        let failed = rollout::failed_primary(&service);
        if let Some(FailedPrimary {
            deployment, reason, ..
        }) = &failed
        {
            summary.push_str(&format!(
                "; deployment {deployment} failed and was not rolled back: {reason}"
            ));
        }
        let mut ids = BTreeMap::from([
            (ids::TASK_DEFINITION.to_owned(), arn.to_owned()),
            (
                ids::CLUSTER.to_owned(),
                service
                    .cluster_arn()
                    .unwrap_or(&self.target.cluster)
                    .to_owned(),
            ),
            (
                ids::SERVICE.to_owned(),
                service
                    .service_arn()
                    .unwrap_or(&self.target.service)
                    .to_owned(),
            ),
            (ids::CONTAINER.to_owned(), name.to_owned()),
        ]);
        if let Some(in_flight) = in_flight {
            ids.insert(IN_FLIGHT.to_owned(), in_flight.deployment);
            if let Some(replaces) = in_flight.replaces {
                ids.insert(IN_FLIGHT_REPLACES.to_owned(), replaces);
            }
        }
        if let Some(failed) = failed {
            ids.insert(FAILED.to_owned(), failed.deployment);
            if let Some(replaces) = failed.replaces {
                ids.insert(FAILED_REPLACES.to_owned(), replaces);
            }
        }
        if let Some(tag) = mutable {
            ids.insert(MUTABLE_TAG.to_owned(), tag.reference);
        }
        Ok(LiveState {
            artifact: Some(artifact),
            ids,
            summary,
        })
    }

    /// Current when the container runs `wanted` (with `force_new_deployment`: when the mutable
    /// tag names `wanted`'s digest) and its rollout completed: no deployment is still rolling (a
    /// rollout an earlier run started and never saw finish is not a success yet) and the
    /// PRIMARY one did not fail.
    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        !live.ids.contains_key(IN_FLIGHT) && !live.ids.contains_key(FAILED) && live.runs(wanted)
    }

    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let image = wanted.expect_image(&self.target())?;
        if let Some(adopted) = self.adopt_in_flight(live, wanted, progress)? {
            return Ok(adopted);
        }
        if self.target.force_new_deployment {
            return self.apply_mutable_tag(live, image, progress).await;
        }
        if let Some(failed) = live.ids.get(FAILED)
            && live.runs(wanted)
        {
            return self.roll_out_again(live, failed, wanted, progress).await;
        }
        let old = live_id(live, ids::TASK_DEFINITION)?;
        let live_td = self.task_definition(old).await?;
        let container =
            taskdef::select_container(&live_td.task_definition, self.target.container.as_deref())?;
        let container = container.name().unwrap_or_default().to_owned();
        let new_image = wanted.deploy_id();
        progress.emit(
            Phase::Apply,
            format!(
                "registering a new revision of {} with container `{container}` on {new_image}",
                taskdef::short_name(&live_td.task_definition)
            ),
        );
        let request = taskdef::new_revision(
            self.client.register_task_definition(),
            &live_td.task_definition,
            &live_td.tags,
            &container,
            &new_image,
        )?;
        if let Some(arn) = self
            .identical_latest_revision(&live_td, &container, &new_image, &request, progress)
            .await
        {
            progress.emit(
                Phase::Apply,
                format!(
                    "{} is already this revision (registered by an earlier run that stopped before UpdateService): reusing it; UpdateService",
                    taskdef::short_arn(&arn)
                ),
            );
            let deployment = self.update_service(&arn, false, progress).await?;
            progress.emit(Phase::Apply, format!("started deployment {deployment}"));
            return Ok(Applied {
                old_artifact: live.artifact.clone(),
                new_artifact: new_image,
                ids: self.applied_ids(old, &arn, deployment, live),
            });
        }
        progress.before_mutation("RegisterTaskDefinition")?;
        let check = live_td
            .raw
            .as_ref()
            .and_then(|raw| raw::body_check(raw, &container, &new_image));
        let mut request = request.customize();
        if let Some(check) = &check {
            request = request.interceptor(check.clone());
        }
        let output = request.send().await.map_err(|error| {
            match check.as_ref().and_then(deployer_aws::BodyCheck::problem) {
                Some(paths) => self.would_drop(&live_td.arn, &paths),
                // The request carries the containers' environment values: AWS may echo them.
                None => api_error(
                    "RegisterTaskDefinition",
                    &error,
                    &taskdef::redactor(&live_td.task_definition),
                ),
            }
        })?;
        let registered = output.task_definition.ok_or(DeployError::MissingField {
            operation: "RegisterTaskDefinition",
            field: "taskDefinition",
        })?;
        let new = registered
            .task_definition_arn()
            .ok_or(DeployError::MissingField {
                operation: "RegisterTaskDefinition",
                field: "taskDefinition.taskDefinitionArn",
            })?;
        progress.emit(
            Phase::Apply,
            format!(
                "registered {}; UpdateService",
                taskdef::short_name(&registered)
            ),
        );
        let deployment = self.update_service(new, false, progress).await?;
        progress.emit(Phase::Apply, format!("started deployment {deployment}"));
        Ok(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact: new_image,
            ids: self.applied_ids(old, new, deployment, live),
        })
    }

    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let task_definition = applied_id(applied, ids::TASK_DEFINITION)?;
        let rollout = Rollout {
            deployment: applied_id(applied, ids::DEPLOYMENT)?.to_owned(),
            task_definition: task_definition.to_owned(),
            // A record without it (a restart) rolls the task definition onto itself.
            old_task_definition: applied
                .ids
                .get(ids::OLD_TASK_DEFINITION)
                .map_or(task_definition, String::as_str)
                .to_owned(),
        };
        let watch = Mutex::new(Watch {
            events: Events::default(),
            lines: StateLog::new(1),
            since: None,
        });
        let what = format!("deployment {} of {}", rollout.deployment, self.target());
        let result = poll_until(&what, policy, || self.probe(&rollout, &watch, progress)).await;
        if let (Some(since), Ok(mut seen)) = (lock(&watch).since, self.rollout_since.lock()) {
            *seen = Some((rollout.deployment.clone(), since));
        }
        match result {
            Ok(()) => Ok(applied.clone()),
            Err(PollError::Failed(DeployError::RolloutFailed { reason, events })) => {
                let reason = match self.move_tag_back(applied, progress).await {
                    Some(note) => format!("{reason}; {note}"),
                    None => reason,
                };
                Err(DeployError::RolloutFailed { reason, events })
            }
            Err(error) => Err(error.into_deploy_error(lock(&watch).events.for_error())),
        }
    }

    /// The service's `aws:cloudformation:stack-name` tag (`DescribeServices` with its tags).
    async fn owning_stack(&self) -> Result<Option<String>, DeployError> {
        let output = self
            .client
            .describe_services()
            .cluster(&self.target.cluster)
            .services(&self.target.service)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|error| api_error("DescribeServices", &error, &Redactor::default()))?;
        Ok(output
            .services()
            .first()
            .and_then(|service| {
                service
                    .tags()
                    .iter()
                    .find(|tag| tag.key() == Some(deployer_core::STACK_NAME_TAG))
            })
            .and_then(|tag| tag.value())
            .map(str::to_owned))
    }

    async fn diagnose(&self, applied: &Applied) -> deployer_core::Diagnosis {
        let (Ok(deployment), Ok(task_definition)) = (
            applied_id(applied, ids::DEPLOYMENT),
            applied_id(applied, ids::TASK_DEFINITION),
        ) else {
            return deployer_core::Diagnosis::unavailable(
                "the rollout's deployment and task definition are not known",
            );
        };
        self.diagnosis(deployment, task_definition).await
    }

    async fn restart(&self, live: &LiveState, progress: &Progress) -> Result<Applied, DeployError> {
        self.force_new_deployment(live, progress).await
    }

    async fn log_sources(
        &self,
        live: &LiveState,
    ) -> Result<Vec<deployer_core::LogSource>, DeployError> {
        let task_definition = live_id(live, ids::TASK_DEFINITION)?;
        let live = self.task_definition(task_definition).await?;
        Ok(diagnose::log_sources(&live.task_definition))
    }
}

/// A mutable tag the container runs, as `read_live` resolved it.
#[derive(Debug)]
struct ResolvedTag {
    /// `repository_uri:tag`, as the task definition names it.
    reference: String,
    /// `repository_uri`.
    repository: String,
    /// The digest the tag names now; `None` when the tag does not exist.
    digest: Option<String>,
}

/// `repository_uri:tag` → (`repository_uri`, `tag`); `None` for a digest reference or one
/// without a tag.
fn mutable_reference(image: &str) -> Option<(&str, &str)> {
    if image.contains('@') {
        return None;
    }
    let repository_uri = repository(image);
    let tag = image.get(repository_uri.len() + 1..)?;
    (!repository_uri.is_empty() && !tag.is_empty()).then_some((repository_uri, tag))
}

/// `error` with `note` appended to its message, for the kinds `UpdateService` returns.
fn with_note(error: DeployError, note: &str) -> DeployError {
    match error {
        DeployError::Api {
            operation,
            code,
            message,
        } => DeployError::Api {
            operation,
            code,
            message: format!("{message}; {note}"),
        },
        DeployError::NotFound { what, hint } => DeployError::NotFound {
            what,
            hint: format!("{hint}; {note}"),
        },
        DeployError::Fenced { call, reason } => DeployError::Fenced {
            call,
            reason: format!("{reason}; {note}"),
        },
        other => other,
    }
}

/// The repository part of an image reference without digest: `host:5000/a/b:tag` → `host:5000/a/b`.
fn repository(name: &str) -> &str {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(colon) => &name[..slash + colon],
        None => name,
    }
}
