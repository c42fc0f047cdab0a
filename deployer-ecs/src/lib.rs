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
//! // outcome.ids: old_task_definition, task_definition, deployment, cluster, service
//! # Ok(()) }
//! ```
//!
//! # What it calls
//!
//! - [`read_live`](deployer_core::Deployer::read_live): `DescribeServices` → the service's
//!   task definition → `DescribeTaskDefinition` with `include = [TAGS]`. The live artifact is the
//!   image of the target container (`container` in the manifest, or the only container). Read
//!   only.
//! - [`apply`](deployer_core::Deployer::apply): `DescribeTaskDefinition` of the family (its
//!   latest revision, see "Interrupted rollouts"), `RegisterTaskDefinition` (a new revision, see
//!   below) then `UpdateService` with only `cluster`, `service` and `taskDefinition`: every
//!   other service setting stays as it is. The previous revision is never deregistered: it is
//!   the rollback target.
//! - With `force_new_deployment = true` (a task definition on a mutable tag): no new revision,
//!   `UpdateService --force-new-deployment` on the live task definition; the same as
//!   [`restart`](deployer_core::Deployer::restart).
//! - [`wait`](deployer_core::Deployer::wait): `DescribeServices` polls.
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
//! response). [`wait`](deployer_core::Deployer::wait) polls `DescribeServices` with
//! [`poll_until`] and succeeds only when *that* deployment is
//! PRIMARY with `rolloutState = COMPLETED` and running equal to desired (without a rollout state,
//! as behind a Classic Load Balancer: when it is the only deployment left, all running, none
//! pending). It fails with [`DeployError::RolloutFailed`](deployer_core::DeployError) when the
//! deployment's rollout state is `FAILED`, when another deployment became PRIMARY (the circuit
//! breaker's rollback to the old task definition, or a concurrent deploy), or when the deployment
//! is gone, even though the service then looks stable: a rollback is never a success. The error
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
//!   rolling ([`IN_FLIGHT`], and in the summary). While one is, the service is not
//!   [current](deployer_core::Deployer::is_current) even if its task definition already names
//!   the wanted image: ECS switches the service's task definition at `UpdateService`, long before
//!   the rollout succeeds (or is rolled back).
//! - When the deployment in flight rolls the wanted image, `apply` starts nothing and
//!   [`wait`](deployer_core::Deployer::wait) waits for that deployment, with the same verdicts.
//! - When the family's latest revision is exactly the revision `apply` would register (a run
//!   registered it and stopped before `UpdateService`), it is reused instead of registering an
//!   identical one.
#![warn(missing_docs)]

mod raw;
mod rollout;
mod sdk;
mod taskdef;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    DeploymentControllerType, Service, Tag, TaskDefinition, TaskDefinitionField,
};
use deployer_core::manifest::EcsTarget;
use deployer_core::poll::{Poll, PollError, PollPolicy, poll_until};
use deployer_core::{Applied, Artifact, DeployError, Deployer, LiveState, Phase, Progress};

use crate::raw::{RawTaskDefinition, ResponseRecorder};
use crate::rollout::{Events, InFlight, Rollout, Verdict};
pub use crate::taskdef::{COPIED_FIELDS, FROM_DESCRIBE_OUTPUT, READ_ONLY_FIELDS};

/// [`LiveState`] id: the PRIMARY deployment when it is still rolling (see the crate doc,
/// "Interrupted rollouts").
pub const IN_FLIGHT: &str = "deployment_in_flight";
/// [`LiveState`] id: the task definition of the deployment the one in flight replaces.
pub const IN_FLIGHT_REPLACES: &str = "deployment_in_flight_replaces";

/// Rolls one ECS service over to new images. See the [crate documentation](crate).
pub struct EcsDeployer {
    client: aws_sdk_ecs::Client,
    target: EcsTarget,
    /// The task definition `read_live` read, so that `apply` does not read it again.
    live: Mutex<Option<LiveTaskDefinition>>,
}

impl std::fmt::Debug for EcsDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsDeployer")
            .field("target", &self.target)
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
    raw: Option<RawTaskDefinition>,
}

impl EcsDeployer {
    /// A deployer for the service `target` names, calling ECS through `client`.
    pub fn new(client: aws_sdk_ecs::Client, target: EcsTarget) -> Self {
        EcsDeployer {
            client,
            target,
            live: Mutex::new(None),
        }
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
                _ => sdk::api("DescribeServices", &error),
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
            .map_err(|error| sdk::api("DescribeTaskDefinition", &error))?;
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

    /// `UpdateService` on the target service; returns the id of the PRIMARY deployment the update
    /// created.
    async fn update_service(
        &self,
        task_definition: &str,
        force_new_deployment: bool,
    ) -> Result<String, DeployError> {
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
                _ => sdk::api("UpdateService", &error),
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
                "old_task_definition".to_owned(),
                old_task_definition.to_owned(),
            ),
            ("task_definition".to_owned(), task_definition.to_owned()),
            ("deployment".to_owned(), deployment),
        ]);
        for key in ["cluster", "service", "container"] {
            if let Some(value) = live.ids.get(key) {
                ids.insert(key.to_owned(), value.clone());
            }
        }
        ids.entry("cluster".into())
            .or_insert_with(|| self.target.cluster.clone());
        ids.entry("service".into())
            .or_insert_with(|| self.target.service.clone());
        ids
    }

    /// `UpdateService --force-new-deployment` on the live task definition.
    async fn force_new_deployment(
        &self,
        live: &LiveState,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let task_definition = live_id(live, "task_definition")?;
        progress.emit(
            Phase::Apply,
            format!(
                "UpdateService --force-new-deployment on {}",
                taskdef::short_arn(task_definition)
            ),
        );
        let deployment = self.update_service(task_definition, true).await?;
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
        let runs_wanted = live
            .artifact
            .as_deref()
            .is_some_and(|artifact| wanted.matches_live(artifact));
        if !runs_wanted {
            return Ok(None);
        }
        let task_definition = live_id(live, "task_definition")?;
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
                        sdk::message(&error)
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
            Err(error) if sdk::is_transient(&error) => {
                let line = format!(
                    "DescribeServices failed, retrying: {}",
                    sdk::message(&error)
                );
                progress.emit(Phase::Wait, line.clone());
                return Ok(Poll::Pending(line));
            }
            Err(error) => return Err(sdk::api("DescribeServices", &error)),
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
                if watch.last_line.as_deref() != Some(line.as_str()) {
                    progress.emit(
                        Phase::Wait,
                        format!("deployment {}: {line}", rollout.deployment),
                    );
                    watch.last_line = Some(line.clone());
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
#[derive(Debug, Default)]
struct Watch {
    events: Events,
    last_line: Option<String>,
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
        let mut summary = format!(
            "{} ({}), container `{name}` runs {image}; {}/{} tasks running",
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
        let mut ids = BTreeMap::from([
            ("task_definition".to_owned(), arn.to_owned()),
            (
                "cluster".to_owned(),
                service
                    .cluster_arn()
                    .unwrap_or(&self.target.cluster)
                    .to_owned(),
            ),
            (
                "service".to_owned(),
                service
                    .service_arn()
                    .unwrap_or(&self.target.service)
                    .to_owned(),
            ),
            ("container".to_owned(), name.to_owned()),
        ]);
        if let Some(in_flight) = in_flight {
            ids.insert(IN_FLIGHT.to_owned(), in_flight.deployment);
            if let Some(replaces) = in_flight.replaces {
                ids.insert(IN_FLIGHT_REPLACES.to_owned(), replaces);
            }
        }
        Ok(LiveState {
            artifact: Some(image.to_owned()),
            ids,
            summary,
        })
    }

    /// Current when the container runs `wanted` and no deployment is still rolling: a
    /// rollout an earlier run started and never saw finish is not a success yet.
    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        !live.ids.contains_key(IN_FLIGHT)
            && live
                .artifact
                .as_deref()
                .is_some_and(|artifact| wanted.matches_live(artifact))
    }

    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let Artifact::Image(image) = wanted else {
            return Err(DeployError::Mismatch(format!(
                "{} runs container images, not {wanted}",
                self.target()
            )));
        };
        if let Some(adopted) = self.adopt_in_flight(live, wanted, progress)? {
            return Ok(adopted);
        }
        if self.target.force_new_deployment {
            // The task definition names a mutable tag: ECS pulls what it points at now.
            let live_image = live.artifact.as_deref().unwrap_or_default();
            let live_repository = live_image
                .split('@')
                .next()
                .map(repository)
                .unwrap_or_default();
            if live_repository != image.repository_uri {
                return Err(DeployError::Mismatch(format!(
                    "`force_new_deployment` restarts {} on its live image {live_image}, which is not in {}: fix the task definition or turn `force_new_deployment` off",
                    self.target(),
                    image.repository_uri
                )));
            }
            return self.force_new_deployment(live, progress).await;
        }
        let old = live_id(live, "task_definition")?;
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
            let deployment = self.update_service(&arn, false).await?;
            progress.emit(Phase::Apply, format!("started deployment {deployment}"));
            return Ok(Applied {
                old_artifact: live.artifact.clone(),
                new_artifact: new_image,
                ids: self.applied_ids(old, &arn, deployment, live),
            });
        }
        let check = live_td
            .raw
            .as_ref()
            .and_then(|raw| raw.body_check(&container, &new_image));
        let mut request = request.customize();
        if let Some(check) = &check {
            request = request.interceptor(check.clone());
        }
        let output = request.send().await.map_err(|error| {
            match check.as_ref().and_then(raw::BodyCheck::problem) {
                Some(paths) => self.would_drop(&live_td.arn, &paths),
                None => sdk::api("RegisterTaskDefinition", &error),
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
        let deployment = self.update_service(new, false).await?;
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
        let task_definition = applied_id(applied, "task_definition")?;
        let rollout = Rollout {
            deployment: applied_id(applied, "deployment")?.to_owned(),
            task_definition: task_definition.to_owned(),
            // A record without it (a restart) rolls the task definition onto itself.
            old_task_definition: applied
                .ids
                .get("old_task_definition")
                .map_or(task_definition, String::as_str)
                .to_owned(),
        };
        let watch = Mutex::new(Watch::default());
        let what = format!("deployment {} of {}", rollout.deployment, self.target());
        let result = poll_until(&what, policy, || self.probe(&rollout, &watch, progress)).await;
        match result {
            Ok(()) => Ok(applied.clone()),
            Err(PollError::Failed(error)) => Err(error),
            Err(PollError::Timeout {
                what,
                after,
                last_state,
            }) => Err(DeployError::Timeout {
                what,
                after,
                last_state,
                events: lock(&watch).events.for_error(),
            }),
        }
    }

    async fn restart(&self, live: &LiveState, progress: &Progress) -> Result<Applied, DeployError> {
        self.force_new_deployment(live, progress).await
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
