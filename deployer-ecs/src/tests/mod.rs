//! Tests: the deploy flows against aws-smithy-mocks sequences ([`flows`]; a failed PRIMARY
//! deployment and the fence: [`failed`]; mutable tags: [`mutable`]; a failed rollout's diagnosis:
//! [`diagnose`]), and field preservation over
//! real JSON ([`fields`]).

mod diagnose;
mod failed;
mod fields;
mod flows;
mod mutable;

use std::sync::Arc;

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{
    ContainerDefinition, Deployment, DeploymentRolloutState, Service, ServiceEvent, TaskDefinition,
};
use deployer_core::manifest::EcsTarget;
use deployer_core::poll::PollPolicy;
use deployer_core::progress::Collect;
use deployer_core::{Artifact, ImageArtifact, Progress};

const CLUSTER: &str = "acme";
const SERVICE: &str = "app-api";
const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/acme";
const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/acme/app-api";
const OLD_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/app-api:7";
const NEW_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/app-api:8";
const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app-api";
const OLD_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
/// The deployment the service ran before the update.
const OLD_DEPLOYMENT: &str = "ecs-svc/1111";
/// The deployment the update creates.
const NEW_DEPLOYMENT: &str = "ecs-svc/2222";
/// The deployment a circuit-breaker rollback creates.
const ROLLBACK_DEPLOYMENT: &str = "ecs-svc/3333";

fn target(container: Option<&str>, force_new_deployment: bool) -> EcsTarget {
    EcsTarget {
        cluster: CLUSTER.into(),
        service: SERVICE.into(),
        container: container.map(Into::into),
        force_new_deployment,
    }
}

fn old_image() -> String {
    format!("{REPO}@{OLD_DIGEST}")
}

fn new_image() -> String {
    format!("{REPO}@{NEW_DIGEST}")
}

fn wanted() -> Artifact {
    Artifact::Image(ImageArtifact {
        repository_uri: REPO.into(),
        tag: "c0ffee".into(),
        digest: Some(NEW_DIGEST.into()),
    })
}

/// Seconds since the epoch for a timestamp in the test's story (the deployment starts at 1000).
fn at(seconds: i64) -> DateTime {
    DateTime::from_secs(1_700_000_000 + seconds)
}

fn container(name: &str, image: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name(name)
        .image(image)
        .essential(true)
        .build()
}

fn task_definition(
    arn: &str,
    revision: i32,
    containers: Vec<ContainerDefinition>,
) -> TaskDefinition {
    TaskDefinition::builder()
        .task_definition_arn(arn)
        .family("app-api")
        .revision(revision)
        .task_role_arn("arn:aws:iam::123456789012:role/app-api-task")
        .set_container_definitions(Some(containers))
        .build()
}

fn describe_task_definition(containers: Vec<ContainerDefinition>) -> DescribeTaskDefinitionOutput {
    DescribeTaskDefinitionOutput::builder()
        .task_definition(task_definition(OLD_TD, 7, containers))
        .build()
}

fn deployment(
    id: &str,
    status: &str,
    task_definition: &str,
    state: DeploymentRolloutState,
    running: i32,
    pending: i32,
) -> Deployment {
    Deployment::builder()
        .id(id)
        .status(status)
        .task_definition(task_definition)
        .rollout_state(state)
        .desired_count(2)
        .running_count(running)
        .pending_count(pending)
        .created_at(at(if id == OLD_DEPLOYMENT { 0 } else { 1000 }))
        .build()
}

fn event(id: &str, seconds: i64, message: &str) -> ServiceEvent {
    ServiceEvent::builder()
        .id(id)
        .created_at(at(seconds))
        .message(message)
        .build()
}

/// The service running `task_definition` with `deployments` and `events` (give them newest
/// first, as ECS does).
fn service(
    task_definition: &str,
    deployments: Vec<Deployment>,
    events: Vec<ServiceEvent>,
) -> Service {
    Service::builder()
        .service_arn(SERVICE_ARN)
        .service_name(SERVICE)
        .cluster_arn(CLUSTER_ARN)
        .status("ACTIVE")
        .task_definition(task_definition)
        .desired_count(2)
        .running_count(2)
        .set_deployments(Some(deployments))
        .set_events(Some(events))
        .build()
}

/// The service before the update: stable on the old task definition.
fn stable_before() -> Service {
    service(
        OLD_TD,
        vec![deployment(
            OLD_DEPLOYMENT,
            "PRIMARY",
            OLD_TD,
            DeploymentRolloutState::Completed,
            2,
            0,
        )],
        vec![event(
            "e0",
            0,
            "(service app-api) has reached a steady state.",
        )],
    )
}

fn describe(service: Service) -> DescribeServicesOutput {
    DescribeServicesOutput::builder().services(service).build()
}

fn policy() -> PollPolicy {
    PollPolicy {
        interval: std::time::Duration::from_secs(5),
        max_interval: std::time::Duration::from_secs(15),
        timeout: std::time::Duration::from_secs(600),
        call_timeout: std::time::Duration::from_secs(30),
    }
}

fn collecting() -> (Progress, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    (Progress::new(SERVICE, sink.clone()), sink)
}

fn messages(sink: &Collect) -> Vec<String> {
    sink.events()
        .into_iter()
        .map(|event| event.message)
        .collect()
}
