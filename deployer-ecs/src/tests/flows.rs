//! The deploy flows against aws-smithy-mocks: every call in order (`RuleMode::Sequential`
//! panics on a call out of order or one too many), polls as `.sequence()`s, paused time.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::operation::describe_services::{DescribeServicesError, DescribeServicesOutput};
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::error::ClusterNotFoundException;
use aws_sdk_ecs::types::{DeploymentRolloutState as State, Failure, TaskDefinitionField};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use deployer_core::{Action, DeployError, Deployer, deploy};

use super::*;
use crate::EcsDeployer;

const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

pub(super) fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_ecs, RuleMode::Sequential, rules, |config| config
        .retry_config(RetryConfig::standard().with_max_attempts(3)))
}

/// DescribeServices answering `service` once.
pub(super) fn describe_services(service: Service) -> Rule {
    mock!(Client::describe_services)
        .match_requests(|r| r.cluster() == Some(CLUSTER) && r.services() == [SERVICE])
        .then_output(move || describe(service.clone()))
}

/// DescribeTaskDefinition of the old revision, with tags asked for.
pub(super) fn describe_old_task_definition(containers: Vec<ContainerDefinition>) -> Rule {
    mock!(Client::describe_task_definition)
        .match_requests(|r| {
            r.task_definition() == Some(OLD_TD) && r.include() == [TaskDefinitionField::Tags]
        })
        .then_output(move || describe_task_definition(containers.clone()))
}

/// RegisterTaskDefinition of a revision whose `web` container runs the new image.
pub(super) fn register_new_revision() -> Rule {
    mock!(Client::register_task_definition)
        .match_requests(|r| {
            let web = r
                .container_definitions()
                .iter()
                .find(|c| c.name() == Some("web"));
            r.family() == Some("app-api")
                && r.task_role_arn() == Some("arn:aws:iam::123456789012:role/app-api-task")
                && web.and_then(|c| c.image()) == Some(new_image().as_str())
        })
        .then_output(|| {
            RegisterTaskDefinitionOutput::builder()
                .task_definition(task_definition(
                    NEW_TD,
                    8,
                    vec![container("web", &new_image())],
                ))
                .build()
        })
}

/// DescribeTaskDefinition of the family (its latest revision): the live one, nothing to reuse.
pub(super) fn describe_family_latest() -> Rule {
    mock!(Client::describe_task_definition)
        .match_requests(|r| {
            r.task_definition() == Some("app-api") && r.include() == [TaskDefinitionField::Tags]
        })
        .then_output(|| describe_task_definition(single_container()))
}

/// UpdateService to `task_definition` that changes nothing else; answers with the new PRIMARY
/// deployment.
pub(super) fn update_service(task_definition: &'static str, force: bool) -> Rule {
    mock!(Client::update_service)
        .match_requests(move |r| {
            r.cluster() == Some(CLUSTER)
                && r.service() == Some(SERVICE)
                && r.task_definition() == Some(task_definition)
                && r.force_new_deployment() == force.then_some(true)
                && r.desired_count().is_none()
                && r.deployment_configuration().is_none()
                && r.network_configuration().is_none()
                && r.capacity_provider_strategy.is_none()
                && r.load_balancers.is_none()
        })
        .then_output(move || {
            UpdateServiceOutput::builder()
                .service(service(
                    task_definition,
                    vec![
                        deployment(
                            NEW_DEPLOYMENT,
                            "PRIMARY",
                            task_definition,
                            State::InProgress,
                            0,
                            0,
                        ),
                        deployment(OLD_DEPLOYMENT, "ACTIVE", OLD_TD, State::Completed, 2, 0),
                    ],
                    vec![],
                ))
                .build()
        })
}

/// The service while the new deployment rolls: `running` of 2 tasks up, the old deployment
/// still there.
pub(super) fn rolling(running: i32, events: Vec<ServiceEvent>) -> DescribeServicesOutput {
    describe(service(
        NEW_TD,
        vec![
            deployment(
                NEW_DEPLOYMENT,
                "PRIMARY",
                NEW_TD,
                State::InProgress,
                running,
                2 - running,
            ),
            deployment(OLD_DEPLOYMENT, "ACTIVE", OLD_TD, State::Completed, 2, 0),
        ],
        events,
    ))
}

pub(super) fn completed() -> DescribeServicesOutput {
    describe(service(
        NEW_TD,
        vec![deployment(
            NEW_DEPLOYMENT,
            "PRIMARY",
            NEW_TD,
            State::Completed,
            2,
            0,
        )],
        vec![
            event("e3", 1060, "(service app-api) has reached a steady state."),
            event(
                "e2",
                1030,
                "(service app-api) has started 1 tasks: (task 2).",
            ),
            event(
                "e1",
                1010,
                "(service app-api) has started 1 tasks: (task 1).",
            ),
            event("e0", 0, "(service app-api) has reached a steady state."),
        ],
    ))
}

pub(super) fn single_container() -> Vec<ContainerDefinition> {
    vec![container("web", &old_image())]
}

#[tokio::test(start_paused = true)]
async fn happy_path_registers_updates_and_waits_for_our_deployment() {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(single_container());
    let register = register_new_revision();
    let update = update_service(NEW_TD, false);
    let polls = mock!(Client::describe_services)
        .sequence()
        .output(|| {
            rolling(
                0,
                vec![event(
                    "e0",
                    0,
                    "(service app-api) has reached a steady state.",
                )],
            )
        })
        .output(|| {
            rolling(
                1,
                vec![
                    event(
                        "e1",
                        1010,
                        "(service app-api) has started 1 tasks: (task 1).",
                    ),
                    event("e0", 0, "(service app-api) has reached a steady state."),
                ],
            )
        })
        .output(completed)
        .build();
    let latest = describe_family_latest();
    let client = client(&[&read, &task_definition, &latest, &register, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let (progress, sink) = collecting();

    let outcome = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap();

    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.old_artifact, Some(old_image()));
    assert_eq!(outcome.new_artifact, Some(new_image()));
    assert_eq!(outcome.ids["old_task_definition"], OLD_TD);
    assert_eq!(outcome.ids["task_definition"], NEW_TD);
    assert_eq!(outcome.ids["deployment"], NEW_DEPLOYMENT);
    assert_eq!(outcome.ids["cluster"], CLUSTER_ARN);
    assert_eq!(outcome.ids["service"], SERVICE_ARN);
    assert_eq!(polls.num_calls(), 3);
    let messages = messages(&sink);
    let count = |needle: &str| messages.iter().filter(|m| m.contains(needle)).count();
    // Counts and rollout state when they change; each event since the rollout began, once; the
    // steady-state event from before the update never.
    assert_eq!(
        count("IN_PROGRESS, running 0/2, pending 2"),
        1,
        "{messages:#?}"
    );
    assert_eq!(
        count("IN_PROGRESS, running 1/2, pending 1"),
        1,
        "{messages:#?}"
    );
    assert_eq!(count("(task 1)"), 1, "{messages:#?}");
    assert_eq!(count("(task 2)"), 1, "{messages:#?}");
    assert_eq!(count("has reached a steady state"), 1, "{messages:#?}");
    assert_eq!(count("completed: running 2/2"), 1, "{messages:#?}");
}

#[tokio::test(start_paused = true)]
async fn unchanged_calls_neither_register_nor_update() {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(vec![container("web", &new_image())]);
    // Sequential mode panics on any call beyond these two.
    let client = client(&[&read, &task_definition]);
    let deployer = EcsDeployer::new(client, target(None, false));

    let outcome = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap();

    assert_eq!(outcome.action, Action::Unchanged);
    assert_eq!(outcome.ids["task_definition"], OLD_TD);
    assert_eq!((read.num_calls(), task_definition.num_calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_tag_form_of_the_wanted_image_is_current_too() {
    let read = describe_services(stable_before());
    let task_definition =
        describe_old_task_definition(vec![container("web", &format!("{REPO}:c0ffee"))]);
    let client = client(&[&read, &task_definition]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let outcome = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Unchanged);
}

/// Runs a deploy whose polls answer `polls`, and returns its error.
async fn failing_deploy(polls: &Rule, policy: PollPolicy) -> DeployError {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(single_container());
    let register = register_new_revision();
    let update = update_service(NEW_TD, false);
    let latest = describe_family_latest();
    let client = client(&[&read, &task_definition, &latest, &register, &update, polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy)
        .await
        .unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn rollout_failed_is_an_error_with_the_reason_and_events() {
    let polls = mock!(Client::describe_services)
        .sequence()
        .output(|| rolling(0, vec![]))
        .output(|| {
            let mut failed = deployment(NEW_DEPLOYMENT, "PRIMARY", NEW_TD, State::Failed, 0, 0);
            failed.rollout_state_reason =
                Some("ECS deployment circuit breaker: tasks failed to start.".into());
            describe(service(
                NEW_TD,
                vec![
                    failed,
                    deployment(OLD_DEPLOYMENT, "ACTIVE", OLD_TD, State::Completed, 2, 0),
                ],
                vec![event(
                    "e1",
                    1010,
                    "(service app-api) (task 1) failed container health checks.",
                )],
            ))
        })
        .build();
    let error = failing_deploy(&polls, policy()).await;
    let DeployError::RolloutFailed { reason, events } = &error else {
        panic!("expected RolloutFailed, got {error:?}");
    };
    assert!(
        reason.contains(NEW_DEPLOYMENT) && reason.contains("tasks failed to start"),
        "{reason}"
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains("failed container health checks"),
        "{events:?}"
    );
}

/// The bug three well-known tools shipped: the circuit breaker rolled back, the service is
/// "stable" again (one PRIMARY deployment, COMPLETED, running = desired) — on the old revision.
#[tokio::test(start_paused = true)]
async fn circuit_breaker_rollback_that_ends_stable_is_an_error() {
    let polls = mock!(Client::describe_services)
        .sequence()
        .output(|| rolling(0, vec![]))
        .output(|| {
            describe(service(
                OLD_TD,
                vec![deployment(ROLLBACK_DEPLOYMENT, "PRIMARY", OLD_TD, State::Completed, 2, 0)],
                vec![
                    event("e3", 1200, "(service app-api) has reached a steady state."),
                    event("e2", 1100, "(service app-api) rolling back to deployment ecs-svc/1111."),
                    event("e1", 1050, "(service app-api) deployment ecs-svc/2222 deployment failed: tasks failed to start."),
                ],
            ))
        })
        .build();
    let error = failing_deploy(&polls, policy()).await;
    let DeployError::RolloutFailed { reason, events } = &error else {
        panic!("expected RolloutFailed, got {error:?}");
    };
    assert!(reason.contains("is no longer listed"), "{reason}");
    assert!(
        reason.contains("rolled the service back to the previous task definition app-api:7"),
        "{reason}"
    );
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events[0].contains("deployment failed"),
        "oldest first: {events:?}"
    );
    assert!(
        events[2].contains("steady state"),
        "newest last: {events:?}"
    );
}

/// The rollback still running: our deployment is no longer PRIMARY (and not yet FAILED).
#[tokio::test(start_paused = true)]
async fn rollback_in_progress_is_an_error() {
    let polls = mock!(Client::describe_services).then_output(|| {
        describe(service(
            OLD_TD,
            vec![
                deployment(
                    ROLLBACK_DEPLOYMENT,
                    "PRIMARY",
                    OLD_TD,
                    State::InProgress,
                    1,
                    1,
                ),
                deployment(NEW_DEPLOYMENT, "ACTIVE", NEW_TD, State::InProgress, 0, 0),
            ],
            vec![],
        ))
    });
    let error = failing_deploy(&polls, policy()).await;
    assert!(
        matches!(&error, DeployError::RolloutFailed { reason, .. } if reason.contains("was replaced") && reason.contains("rolled the service back")),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_carries_the_last_state_and_events() {
    let polls = mock!(Client::describe_services)
        .sequence()
        .output(|| {
            rolling(
                1,
                vec![event("e1", 1010, "(service app-api) was unable to place a task: no container instance met all of its requirements.")],
            )
        })
        .repeatedly()
        .build();
    let started = tokio::time::Instant::now();
    let error = failing_deploy(
        &polls,
        policy().with_timeout(std::time::Duration::from_secs(120)),
    )
    .await;
    let DeployError::Timeout {
        last_state,
        events,
        after,
        ..
    } = &error
    else {
        panic!("expected Timeout, got {error:?}");
    };
    assert_eq!(*after, std::time::Duration::from_secs(120));
    assert!(
        last_state.contains("IN_PROGRESS, running 1/2, pending 1"),
        "{last_state}"
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("unable to place a task"), "{events:?}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(120));
}

#[tokio::test(start_paused = true)]
async fn throttled_describe_is_retried_by_the_sdk_when_reading() {
    let read = mock!(Client::describe_services)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(2)
        .output(|| describe(stable_before()))
        .build();
    let task_definition = describe_old_task_definition(single_container());
    let client = client(&[&read, &task_definition]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, Some(old_image()));
    assert_eq!(read.num_calls(), 3);
}

/// Throttling beyond the SDK's three attempts inside the wait counts as "still rolling".
#[tokio::test(start_paused = true)]
async fn throttled_describe_inside_the_wait_is_a_pending_poll() {
    let polls = mock!(Client::describe_services)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(3)
        .output(completed)
        .build();
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(single_container());
    let register = register_new_revision();
    let update = update_service(NEW_TD, false);
    let latest = describe_family_latest();
    let client = client(&[&read, &task_definition, &latest, &register, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let (progress, sink) = collecting();
    let outcome = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(polls.num_calls(), 4);
    assert!(
        messages(&sink)
            .iter()
            .any(|m| m.contains("DescribeServices failed, retrying: ThrottlingException")),
        "{:#?}",
        messages(&sink)
    );
}

#[tokio::test(start_paused = true)]
async fn access_denied_inside_the_wait_fails_at_once() {
    let polls = mock!(Client::describe_services).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"AccessDeniedException","message":"not allowed"}"#,
            ),
        )
    });
    let error = failing_deploy(&polls, policy()).await;
    assert!(
        matches!(&error, DeployError::Api { operation, code: Some(code), .. } if operation == "DescribeServices" && code == "AccessDeniedException"),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn several_containers_without_container_is_an_error_listing_them() {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(vec![
        container("web", &old_image()),
        container("envoy", "envoy:v1"),
    ]);
    let client = client(&[&read, &task_definition]);
    let error = EcsDeployer::new(client, target(None, false))
        .read_live()
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("`web`")
            && message.contains("`envoy`")
            && message.contains("set `container`"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_named_container_that_is_absent_is_an_error_listing_them() {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(vec![
        container("web", &old_image()),
        container("envoy", "envoy:v1"),
    ]);
    let client = client(&[&read, &task_definition]);
    let error = EcsDeployer::new(client, target(Some("api"), false))
        .read_live()
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("no container `api`") && message.contains("`web`, `envoy`"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_named_container_of_several_is_replaced_and_reported() {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(vec![
        container("envoy", "envoy:v1"),
        container("web", &old_image()),
    ]);
    let client = client(&[&read, &task_definition]);
    let live = EcsDeployer::new(client, target(Some("web"), false))
        .read_live()
        .await
        .unwrap();
    assert_eq!(live.artifact, Some(old_image()));
    assert_eq!(live.ids["container"], "web");
    assert_eq!(live.ids["task_definition"], OLD_TD);
    assert!(
        live.summary.contains("app-api:7") && live.summary.contains("`web`"),
        "{}",
        live.summary
    );
}

#[tokio::test(start_paused = true)]
async fn missing_service_and_cluster_are_not_found() {
    let missing = mock!(Client::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .failures(
                Failure::builder()
                    .arn(SERVICE_ARN)
                    .reason("MISSING")
                    .build(),
            )
            .build()
    });
    let inactive = mock!(Client::describe_services).then_output(|| {
        let mut service = stable_before();
        service.status = Some("INACTIVE".into());
        describe(service)
    });
    let draining = mock!(Client::describe_services).then_output(|| {
        let mut service = stable_before();
        service.status = Some("DRAINING".into());
        describe(service)
    });
    let no_cluster = mock!(Client::describe_services).then_error(|| {
        DescribeServicesError::ClusterNotFoundException(
            ClusterNotFoundException::builder()
                .message("Cluster not found.")
                .build(),
        )
    });
    let client = client(&[&missing, &inactive, &draining, &no_cluster]);
    let deployer = EcsDeployer::new(client, target(None, false));
    for expected in [
        "MISSING",
        "no ACTIVE service",
        "DRAINING",
        "ECS cluster `acme`",
    ] {
        let error = deployer.read_live().await.unwrap_err();
        assert!(matches!(error, DeployError::NotFound { .. }), "{error:?}");
        assert!(error.is_config());
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }
}

#[tokio::test(start_paused = true)]
async fn code_deploy_services_are_refused() {
    let read = mock!(Client::describe_services).then_output(|| {
        let mut service = stable_before();
        service.deployment_controller = Some(
            aws_sdk_ecs::types::DeploymentController::builder()
                .r#type(aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy)
                .build()
                .unwrap(),
        );
        describe(service)
    });
    let client = client(&[&read]);
    let error = EcsDeployer::new(client, target(None, false))
        .read_live()
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("CODE_DEPLOY deployment controller"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn restart_forces_a_deployment_and_waits_for_it() {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(single_container());
    let update = update_service(OLD_TD, true);
    let polls = mock!(Client::describe_services)
        .sequence()
        .output(|| {
            describe(service(
                OLD_TD,
                vec![
                    deployment(NEW_DEPLOYMENT, "PRIMARY", OLD_TD, State::InProgress, 1, 1),
                    deployment(OLD_DEPLOYMENT, "ACTIVE", OLD_TD, State::Completed, 2, 0),
                ],
                vec![],
            ))
        })
        .output(|| {
            describe(service(
                OLD_TD,
                vec![deployment(
                    NEW_DEPLOYMENT,
                    "PRIMARY",
                    OLD_TD,
                    State::Completed,
                    2,
                    0,
                )],
                vec![],
            ))
        })
        .build();
    let client = client(&[&read, &task_definition, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let progress = Progress::discard(SERVICE);
    let live = deployer.read_live().await.unwrap();
    let applied = deployer.restart(&live, &progress).await.unwrap();
    assert_eq!(applied.ids["deployment"], NEW_DEPLOYMENT);
    assert_eq!(applied.ids["task_definition"], OLD_TD);
    assert_eq!(applied.new_artifact, old_image());
    let waited = deployer.wait(&applied, &policy(), &progress).await.unwrap();
    assert_eq!(waited, applied);
    assert_eq!(polls.num_calls(), 2);
}

/// A restart whose deployment is rolled back by the circuit breaker: the task definition is the
/// same, only the deployment id tells.
#[tokio::test(start_paused = true)]
async fn restart_rolled_back_is_an_error() {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(single_container());
    let update = update_service(OLD_TD, true);
    let polls = mock!(Client::describe_services).then_output(|| {
        describe(service(
            OLD_TD,
            vec![deployment(
                ROLLBACK_DEPLOYMENT,
                "PRIMARY",
                OLD_TD,
                State::Completed,
                2,
                0,
            )],
            vec![],
        ))
    });
    let client = client(&[&read, &task_definition, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let progress = Progress::discard(SERVICE);
    let live = deployer.read_live().await.unwrap();
    let applied = deployer.restart(&live, &progress).await.unwrap();
    let error = deployer
        .wait(&applied, &policy(), &progress)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::RolloutFailed { reason, .. } if reason.contains("no longer listed")),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_zip_is_refused() {
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(single_container());
    let client = client(&[&read, &task_definition]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let zip = Artifact::Zip(deployer_core::ZipArtifact {
        tag: "z".into(),
        sha256_b64: "abc=".into(),
        size: 1,
        files: 1,
        bytes: std::sync::Arc::from(&b"x"[..]),
    });
    let error = deploy(&deployer, &zip, &Progress::discard(SERVICE), &policy())
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
}

/// A run registered the new revision and was stopped before UpdateService: the family's latest
/// revision is exactly what would be registered, so the re-run reuses it.
#[tokio::test(start_paused = true)]
async fn a_revision_registered_by_a_stopped_run_is_reused_not_registered_again() {
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
    // No RegisterTaskDefinition: Sequential mode panics on a call out of order.
    let update = update_service(NEW_TD, false);
    let polls = mock!(Client::describe_services).then_output(completed);
    let client = client(&[&read, &live_td, &latest, &update, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let (progress, sink) = collecting();
    let outcome = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.ids["task_definition"], NEW_TD);
    assert_eq!(outcome.ids["old_task_definition"], OLD_TD);
    assert_eq!(update.num_calls(), 1);
    assert!(
        messages(&sink)
            .iter()
            .any(|m| m.contains("app-api:8 is already this revision") && m.contains("reusing it")),
        "{:#?}",
        messages(&sink)
    );
}

/// A latest revision that differs from what would be registered (another image, or another
/// setting) is not reused.
#[tokio::test(start_paused = true)]
async fn a_different_latest_revision_is_not_reused() {
    let read = describe_services(stable_before());
    let live_td = describe_old_task_definition(single_container());
    let latest = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some("app-api"))
        .then_output(|| {
            let mut other = task_definition(NEW_TD, 8, vec![container("web", &new_image())]);
            other.task_role_arn = Some("arn:aws:iam::123456789012:role/someone-else".into());
            DescribeTaskDefinitionOutput::builder()
                .task_definition(other)
                .build()
        });
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

/// A run started the rollout of the wanted image and was stopped while it waited: the service's
/// task definition already names the image, but its deployment is still IN_PROGRESS. That is not
/// "unchanged": the re-run registers nothing, starts nothing, and waits for that deployment.
#[tokio::test(start_paused = true)]
async fn a_rollout_still_in_flight_on_the_wanted_image_is_waited_for_not_restarted() {
    let read = mock!(Client::describe_services).then_output(|| rolling(1, vec![]));
    let live_td = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(task_definition(
                    NEW_TD,
                    8,
                    vec![container("web", &new_image())],
                ))
                .build()
        });
    let polls = mock!(Client::describe_services).then_output(completed);
    let client = client(&[&read, &live_td, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.ids[crate::ids::IN_FLIGHT], NEW_DEPLOYMENT);
    assert!(!deployer.is_current(&live, &wanted()));
    assert!(
        live.summary.contains(
            "deployment ecs-svc/2222 still rolling (IN_PROGRESS, running 1/2, pending 1)"
        ),
        "{}",
        live.summary
    );
    let (progress, sink) = collecting();
    let applied = deployer.apply(&live, &wanted(), &progress).await.unwrap();
    assert_eq!(applied.ids["deployment"], NEW_DEPLOYMENT);
    assert_eq!(applied.ids["task_definition"], NEW_TD);
    assert_eq!(applied.ids["old_task_definition"], OLD_TD);
    assert!(
        messages(&sink)
            .iter()
            .any(|m| m.contains("still rolling (started earlier): waiting for it")),
        "{:#?}",
        messages(&sink)
    );
    let settled = deployer.wait(&applied, &policy(), &progress).await.unwrap();
    assert_eq!(settled.new_artifact, new_image());
    assert_eq!(polls.num_calls(), 1);
}

/// The same deployment stuck: the re-run's wait runs out of time and says where it was.
#[tokio::test(start_paused = true)]
async fn a_stuck_rollout_in_flight_times_out_on_the_rerun_too() {
    let read = mock!(Client::describe_services).then_output(|| rolling(1, vec![]));
    let live_td = mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(task_definition(
                    NEW_TD,
                    8,
                    vec![container("web", &new_image())],
                ))
                .build()
        });
    let polls = mock!(Client::describe_services)
        .sequence()
        .output(|| rolling(1, vec![]))
        .times(100)
        .build();
    let client = client(&[&read, &live_td, &polls]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let short = PollPolicy {
        timeout: std::time::Duration::from_secs(60),
        ..policy()
    };
    let error = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &short)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Timeout { last_state, .. } if last_state == "IN_PROGRESS, running 1/2, pending 1"),
        "{error:?}"
    );
}

/// RegisterTaskDefinition carries the containers' environment values, and AWS may echo them in
/// its error: the reported error shows `***`, never the value.
#[tokio::test(start_paused = true)]
async fn a_register_error_is_one_line_with_environment_values_redacted() {
    const SECRET: &str = "hunter2-db-password";
    let web = ContainerDefinition::builder()
        .name("web")
        .image(old_image())
        .essential(true)
        .environment(
            aws_sdk_ecs::types::KeyValuePair::builder()
                .name("DB_PASSWORD")
                .value(SECRET)
                .build(),
        )
        .build();
    let read = describe_services(stable_before());
    let task_definition = describe_old_task_definition(vec![web]);
    let latest = describe_family_latest();
    let register = mock!(Client::register_task_definition).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(format!(
                r#"{{"__type":"ClientException","message":"Container.environment value\n{SECRET} is too long"}}"#
            )),
        )
    });
    let client = client(&[&read, &task_definition, &latest, &register]);
    let deployer = EcsDeployer::new(client, target(None, false));
    let error = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "RegisterTaskDefinition failed: ClientException: Container.environment value *** is too long"
    );
    assert!(
        matches!(&error, DeployError::Api { code: Some(code), .. } if code == "ClientException"),
        "{error:?}"
    );
    assert_eq!(register.num_calls(), 1);
}
