//! A PRIMARY deployment that failed without a rollback (the circuit breaker with
//! `rollback = false`), and the fence every mutating call passes.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::types::DeploymentRolloutState as State;
use aws_smithy_mocks::{Rule, mock};
use deployer_core::progress::Fence;
use deployer_core::{Action, DeployError, Deployer, deploy};

use super::flows::{
    client, completed, describe_family_latest, describe_old_task_definition, describe_services,
    register_new_revision, single_container, update_service,
};
use super::*;
use crate::EcsDeployer;

/// The deployment the circuit breaker marked FAILED and left PRIMARY.
const FAILED_DEPLOYMENT: &str = "ecs-svc/4444";

/// The service after the circuit breaker gave up on the new revision without rolling back: the
/// failed deployment stays PRIMARY, the service's task definition stays the new one.
fn failed_without_rollback() -> Service {
    let mut failed = deployment(FAILED_DEPLOYMENT, "PRIMARY", NEW_TD, State::Failed, 0, 0);
    failed.rollout_state_reason =
        Some("ECS deployment circuit breaker: tasks failed to start.".into());
    service(
        NEW_TD,
        vec![
            failed,
            deployment(OLD_DEPLOYMENT, "ACTIVE", OLD_TD, State::Completed, 2, 0),
        ],
        vec![],
    )
}

/// DescribeTaskDefinition of the new revision (the service's task definition after the failed
/// rollout), which runs the wanted image.
fn describe_new_task_definition() -> Rule {
    mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(task_definition(
                    NEW_TD,
                    8,
                    vec![container("web", &new_image())],
                ))
                .build()
        })
}

#[tokio::test(start_paused = true)]
async fn a_failed_primary_deployment_is_reported_and_not_current() {
    let read = describe_services(failed_without_rollback());
    let live_td = describe_new_task_definition();
    let client = client(&[&read, &live_td]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, Some(new_image()));
    assert_eq!(
        live.ids.get("deployment_failed").map(String::as_str),
        Some(FAILED_DEPLOYMENT)
    );
    assert!(
        live.summary.contains("deployment ecs-svc/4444 failed")
            && live.summary.contains("tasks failed to start"),
        "{}",
        live.summary
    );
    assert!(!deployer.is_current(&live, &wanted()));
}

/// The re-run of a release whose rollout failed without a rollback is not `unchanged`: it starts
/// the rollout again on the same task definition (no new revision) and waits for it.
#[tokio::test(start_paused = true)]
async fn a_failed_primary_deployment_is_rolled_out_again_on_the_same_task_definition() {
    let read = describe_services(failed_without_rollback());
    let live_td = describe_new_task_definition();
    // No DescribeTaskDefinition of the family, no RegisterTaskDefinition: Sequential mode panics
    // on a call out of order.
    let update = update_service(NEW_TD, true);
    let polls = mock!(Client::describe_services).then_output(completed);
    let client = client(&[&read, &live_td, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let (progress, sink) = collecting();
    let outcome = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(update.num_calls(), 1);
    assert_eq!(outcome.ids["task_definition"], NEW_TD);
    assert_eq!(outcome.ids["deployment"], NEW_DEPLOYMENT);
    // The deployment the failed one replaced: what a circuit-breaker rollback would go back to.
    assert_eq!(outcome.ids["old_task_definition"], OLD_TD);
    assert_eq!(outcome.new_artifact, Some(new_image()));
    assert!(
        messages(&sink)
            .iter()
            .any(|m| m.contains("failed") && m.contains("--force-new-deployment")),
        "{:#?}",
        messages(&sink)
    );
}

/// The rollout started again fails again: the error says so, it is not a success.
#[tokio::test(start_paused = true)]
async fn a_failed_primary_deployment_that_fails_again_is_an_error() {
    let read = describe_services(failed_without_rollback());
    let live_td = describe_new_task_definition();
    let update = update_service(NEW_TD, true);
    let polls = mock!(Client::describe_services).then_output(|| {
        let mut again = deployment(NEW_DEPLOYMENT, "PRIMARY", NEW_TD, State::Failed, 0, 0);
        again.rollout_state_reason = Some("tasks failed to start".into());
        describe(service(NEW_TD, vec![again], vec![]))
    });
    let client = client(&[&read, &live_td, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let error = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::RolloutFailed { reason, .. } if reason.contains(NEW_DEPLOYMENT)),
        "{error:?}"
    );
}

/// A failed PRIMARY deployment of another image is an ordinary rollover: a new revision.
#[tokio::test(start_paused = true)]
async fn a_failed_primary_deployment_of_another_image_gets_a_new_revision() {
    let read = describe_services({
        let mut failed = deployment(FAILED_DEPLOYMENT, "PRIMARY", OLD_TD, State::Failed, 0, 0);
        failed.rollout_state_reason = Some("tasks failed to start".into());
        service(OLD_TD, vec![failed], vec![])
    });
    let live_td = describe_old_task_definition(single_container());
    let latest = describe_family_latest();
    let register = register_new_revision();
    let update = update_service(NEW_TD, false);
    let polls = mock!(Client::describe_services).then_output(completed);
    let client = client(&[&read, &live_td, &latest, &register, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let outcome = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(register.num_calls(), 1);
}

/// Our deployment (by id) completed, but on another task definition than the one this rollout
/// registered: not a success.
#[tokio::test(start_paused = true)]
async fn our_deployment_completed_on_another_task_definition_is_an_error() {
    const OTHER_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/app-api:9";
    let read = describe_services(stable_before());
    let live_td = describe_old_task_definition(single_container());
    let latest = describe_family_latest();
    let register = register_new_revision();
    let update = update_service(NEW_TD, false);
    let polls = mock!(Client::describe_services).then_output(|| {
        describe(service(
            OTHER_TD,
            vec![deployment(
                NEW_DEPLOYMENT,
                "PRIMARY",
                OTHER_TD,
                State::Completed,
                2,
                0,
            )],
            vec![],
        ))
    });
    let client = client(&[&read, &live_td, &latest, &register, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let error = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::RolloutFailed { reason, .. } if reason.contains("app-api:9") && reason.contains("app-api:8")),
        "{error:?}"
    );
}

/// A fence that says no: the run lost its deploy lock.
struct LostLock;

impl Fence for LostLock {
    fn check(&self) -> Result<(), String> {
        Err("this run lost the deploy lock of app-api".into())
    }
}

fn fenced() -> Progress {
    Progress::discard(SERVICE).with_fence(std::sync::Arc::new(LostLock))
}

#[tokio::test(start_paused = true)]
async fn a_fenced_run_registers_nothing() {
    let read = describe_services(stable_before());
    let live_td = describe_old_task_definition(single_container());
    let latest = describe_family_latest();
    let register = register_new_revision();
    let update = update_service(NEW_TD, false);
    let client = client(&[&read, &live_td, &latest, &register, &update]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &fenced())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, reason } if call == "RegisterTaskDefinition" && reason.contains("lost the deploy lock")),
        "{error:?}"
    );
    assert_eq!((register.num_calls(), update.num_calls()), (0, 0));
}

/// The revision to reuse exists already: the fence stops the UpdateService.
#[tokio::test(start_paused = true)]
async fn a_fenced_run_does_not_update_the_service() {
    let read = describe_services(stable_before());
    let live_td = describe_old_task_definition(single_container());
    let latest = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some("app-api"))
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(task_definition(
                    NEW_TD,
                    8,
                    vec![container("web", &new_image())],
                ))
                .build()
        });
    let update = update_service(NEW_TD, false);
    let client = client(&[&read, &live_td, &latest, &update]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &fenced())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "UpdateService"),
        "{error:?}"
    );
    assert_eq!(update.num_calls(), 0);
}

/// A restart (a dependency changed) is a mutation too.
#[tokio::test(start_paused = true)]
async fn a_fenced_restart_does_not_update_the_service() {
    let read = describe_services(stable_before());
    let live_td = describe_old_task_definition(single_container());
    let update = update_service(OLD_TD, true);
    let client = client(&[&read, &live_td, &update]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let live = deployer.read_live().await.unwrap();
    let error = deployer.restart(&live, &fenced()).await.unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "UpdateService"),
        "{error:?}"
    );
    assert_eq!(update.num_calls(), 0);
}
