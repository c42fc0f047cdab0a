//! Named endpoints against aws-smithy-mocks: the move after the runtime is READY, the wait on
//! `liveVersion` (READY, UPDATE_FAILED, stuck until the deadline), a missing endpoint up front,
//! a runtime already on the image, and the rollback through the endpoints alone.

use aws_sdk_bedrockagentcorecontrol::Client;
use aws_sdk_bedrockagentcorecontrol::config::retry::RetryConfig;
use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime_endpoint::GetAgentRuntimeEndpointOutput;
use aws_sdk_bedrockagentcorecontrol::operation::update_agent_runtime_endpoint::UpdateAgentRuntimeEndpointOutput;
use aws_sdk_bedrockagentcorecontrol::types::{AgentRuntimeEndpointStatus, AgentRuntimeStatus};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use deployer_core::{Action, Applied, DeployError, Deployer, LiveState, Progress};

use super::mocks::{ARN, error_body, gets, runtime, update};
use super::{RUNTIME_ID, new_uri, old_uri, policy, run, target, wanted};
use crate::{AgentcoreDeployer, ids};

const PROD: &str = "prod";

fn endpoint(
    status: AgentRuntimeEndpointStatus,
    live: &str,
    target: &str,
) -> GetAgentRuntimeEndpointOutput {
    let mut endpoint = GetAgentRuntimeEndpointOutput::builder()
        .name(PROD)
        .id("prod-1")
        .agent_runtime_endpoint_arn(format!("{ARN}/runtime-endpoint/{PROD}"))
        .agent_runtime_arn(ARN)
        .description("production traffic")
        .status(status)
        .live_version(live)
        .target_version(target)
        .created_at(DateTime::from_secs(1_735_689_600))
        .last_updated_at(DateTime::from_secs(1_738_368_000))
        .build()
        .unwrap();
    if endpoint.status == AgentRuntimeEndpointStatus::UpdateFailed {
        endpoint.failure_reason = Some("the sessions did not drain".into());
    }
    endpoint
}

/// `GetAgentRuntimeEndpoint` of `prod` returning `states` in order.
fn endpoint_gets(states: Vec<GetAgentRuntimeEndpointOutput>) -> Rule {
    let mut sequence = mock!(Client::get_agent_runtime_endpoint)
        .match_requests(|r| {
            r.agent_runtime_id() == Some(RUNTIME_ID) && r.endpoint_name() == Some(PROD)
        })
        .sequence();
    for state in states {
        sequence = sequence.output(move || state.clone());
    }
    sequence.build()
}

/// `UpdateAgentRuntimeEndpoint` of `prod` to `version`, its description sent back.
fn endpoint_update(version: &'static str) -> Rule {
    mock!(Client::update_agent_runtime_endpoint)
        .match_requests(move |r| {
            r.agent_runtime_id() == Some(RUNTIME_ID)
                && r.endpoint_name() == Some(PROD)
                && r.agent_runtime_version() == Some(version)
                && r.description() == Some("production traffic")
        })
        .then_output(move || {
            UpdateAgentRuntimeEndpointOutput::builder()
                .agent_runtime_endpoint_arn(format!("{ARN}/runtime-endpoint/{PROD}"))
                .agent_runtime_arn(ARN)
                .status(AgentRuntimeEndpointStatus::Updating)
                .target_version(version)
                .created_at(DateTime::from_secs(1_735_689_600))
                .last_updated_at(DateTime::from_secs(1_738_400_000))
                .build()
                .unwrap()
        })
}

/// `GetAgentRuntime` of `version`, running `uri`.
fn version_get(version: &'static str, uri: String) -> Rule {
    mock!(Client::get_agent_runtime)
        .match_requests(move |r| r.agent_runtime_version() == Some(version))
        .then_output(move || runtime(AgentRuntimeStatus::Ready, version, &uri))
}

fn deployer(rules: &[&Rule]) -> AgentcoreDeployer {
    let client = mock_client!(
        aws_sdk_bedrockagentcorecontrol,
        RuleMode::Sequential,
        rules,
        |config| { config.retry_config(RetryConfig::standard().with_max_attempts(2)) }
    );
    let mut target = target();
    target.endpoints = vec![PROD.into()];
    AgentcoreDeployer::new(client, target).with_poll_policy(policy())
}

#[tokio::test(start_paused = true)]
async fn the_endpoint_is_moved_once_the_runtime_is_ready_and_waited_until_it_serves_it() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let read_prod = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let wait = gets(vec![
        runtime(AgentRuntimeStatus::Updating, "8", &new_uri()),
        runtime(AgentRuntimeStatus::Ready, "8", &new_uri()),
    ]);
    let before_move = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let move_prod = endpoint_update("8");
    let wait_prod = endpoint_gets(vec![
        endpoint(AgentRuntimeEndpointStatus::Updating, "7", "8"),
        endpoint(AgentRuntimeEndpointStatus::Updating, "7", "8"),
        endpoint(AgentRuntimeEndpointStatus::Ready, "8", "8"),
    ]);
    let run = run(&deployer(&[
        &read,
        &read_prod,
        &reread,
        &update,
        &wait,
        &before_move,
        &move_prod,
        &wait_prod,
    ]))
    .await;
    let outcome = run.outcome();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.ids["version"], "8");
    assert!(!outcome.ids.contains_key(ids::ENDPOINTS_ONLY));
    assert_eq!(move_prod.num_calls(), 1);
    assert_eq!(wait_prod.num_calls(), 3);
    let messages = run.messages();
    assert!(
        messages.contains(&"UpdateAgentRuntimeEndpoint prod: version 7 -> 8".to_owned()),
        "{messages:#?}"
    );
    assert!(
        messages.contains(&"endpoint prod: READY (live version 8, target version 8)".to_owned()),
        "{messages:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_update_failed_is_a_rollout_failure_with_its_reason() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let read_prod = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let wait = gets(vec![runtime(AgentRuntimeStatus::Ready, "8", &new_uri())]);
    let before_move = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let move_prod = endpoint_update("8");
    let wait_prod = endpoint_gets(vec![
        endpoint(AgentRuntimeEndpointStatus::Updating, "7", "8"),
        endpoint(AgentRuntimeEndpointStatus::UpdateFailed, "7", "8"),
    ]);
    let run = run(&deployer(&[
        &read,
        &read_prod,
        &reread,
        &update,
        &wait,
        &before_move,
        &move_prod,
        &wait_prod,
    ]))
    .await;
    match run.error() {
        DeployError::RolloutFailed { reason, .. } => assert_eq!(
            reason,
            &format!(
                "AgentCore endpoint prod of runtime {RUNTIME_ID} is UPDATE_FAILED: the sessions did not drain; it still serves version 7"
            )
        ),
        other => panic!("expected a rollout failure, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_stays_on_the_old_version_times_out_naming_its_state() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let read_prod = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let wait = gets(vec![runtime(AgentRuntimeStatus::Ready, "8", &new_uri())]);
    let before_move = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let move_prod = endpoint_update("8");
    let stuck = mock!(Client::get_agent_runtime_endpoint)
        .sequence()
        .output(|| endpoint(AgentRuntimeEndpointStatus::Updating, "7", "8"))
        .repeatedly()
        .build();
    let start = tokio::time::Instant::now();
    let run = run(&deployer(&[
        &read,
        &read_prod,
        &reread,
        &update,
        &wait,
        &before_move,
        &move_prod,
        &stuck,
    ]))
    .await;
    match run.error() {
        DeployError::Timeout {
            what, last_state, ..
        } => {
            assert_eq!(
                what,
                &format!("AgentCore endpoint prod of runtime {RUNTIME_ID} to serve version 8")
            );
            assert_eq!(
                last_state,
                "endpoint prod: UPDATING (live version 7, target version 8)"
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // One deadline for the runtime's wait and the endpoints'.
    assert!(start.elapsed() <= policy().timeout, "{:?}", start.elapsed());
    assert!(stuck.num_calls() > 5);
}

#[tokio::test(start_paused = true)]
async fn a_missing_endpoint_is_an_error_naming_it_before_anything_is_changed() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let missing = mock!(Client::get_agent_runtime_endpoint)
        .sequence()
        .http_status(
            404,
            error_body("ResourceNotFoundException", "no such endpoint"),
        )
        .build();
    let run = run(&deployer(&[&read, &missing])).await;
    let error = run.error();
    assert!(error.is_config(), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "AgentCore endpoint prod of runtime {RUNTIME_ID} was not found: deployer moves named endpoints"
        )),
        "{message}"
    );
    assert!(message.contains("the IaC's job"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_runtime_already_on_the_image_only_has_its_endpoints_moved() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "8", &new_uri())]);
    // The endpoint serves version 7: asked what that version runs.
    let read_prod = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let version_7 = version_get("7", old_uri());
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "8", &new_uri())]);
    let wait = gets(vec![runtime(AgentRuntimeStatus::Ready, "8", &new_uri())]);
    let before_move = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let move_prod = endpoint_update("8");
    let wait_prod = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "8", "8")]);
    let run = run(&deployer(&[
        &read,
        &read_prod,
        &version_7,
        &reread,
        &wait,
        &before_move,
        &move_prod,
        &wait_prod,
    ]))
    .await;
    let outcome = run.outcome();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.ids["old_version"], "8");
    assert_eq!(outcome.ids["version"], "8");
    assert_eq!(move_prod.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_live_state_says_what_each_endpoint_serves() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "8", &new_uri())]);
    let read_prod = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7")]);
    let version_7 = version_get("7", old_uri());
    let deployer = deployer(&[&read, &read_prod, &version_7]);
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.ids["endpoint.prod.live_version"], "7");
    assert_eq!(live.ids["endpoint.prod.image"], old_uri());
    assert!(
        live.summary
            .ends_with("; endpoint prod READY (live version 7, target version 7)"),
        "{}",
        live.summary
    );
    // The runtime runs the new image, but traffic through `prod` reaches the old one.
    assert!(!deployer.is_current(&live, &wanted()));
    assert!(!deployer.serves(&live, &wanted()));
    let old = deployer_core::Artifact::Image(deployer_core::ImageArtifact {
        repository_uri: super::REPOSITORY.into(),
        tag: "old".into(),
        digest: Some(super::OLD_DIGEST.into()),
    });
    assert!(deployer.serves(&live, &old));
}

fn recorded_previous() -> Applied {
    Applied {
        old_artifact: None,
        new_artifact: old_uri(),
        ids: [
            (ids::RUNTIME_ID.to_owned(), RUNTIME_ID.to_owned()),
            (ids::VERSION.to_owned(), "7".to_owned()),
            (ids::ARN.to_owned(), ARN.to_owned()),
        ]
        .into(),
    }
}

fn live_on_8() -> LiveState {
    LiveState {
        artifact: Some(new_uri()),
        ids: [(ids::VERSION.to_owned(), "8".to_owned())].into(),
        summary: String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollback_to_a_version_that_exists_moves_only_the_endpoints() {
    let version_7 = version_get("7", old_uri());
    let current = endpoint_gets(vec![endpoint(AgentRuntimeEndpointStatus::Ready, "8", "8")]);
    let move_back = endpoint_update("7");
    // `wait`: the endpoint moving to 7 is not updated again, only waited on (its move settles,
    // then it is read once more); no runtime call.
    let wait_prod = endpoint_gets(vec![
        endpoint(AgentRuntimeEndpointStatus::Updating, "8", "7"),
        endpoint(AgentRuntimeEndpointStatus::Updating, "8", "7"),
        endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7"),
        endpoint(AgentRuntimeEndpointStatus::Ready, "7", "7"),
    ]);
    let deployer = deployer(&[&version_7, &current, &move_back, &wait_prod]);
    let progress = Progress::discard("agent");
    let applied = deployer
        .revert(&live_on_8(), &recorded_previous(), &progress)
        .await
        .unwrap()
        .expect("version 7 still exists: the endpoints go back to it");
    assert_eq!(applied.new_artifact, old_uri());
    assert_eq!(applied.ids[ids::VERSION], "7");
    assert_eq!(applied.ids[ids::OLD_VERSION], "8");
    let settled = deployer.wait(&applied, &policy(), &progress).await.unwrap();
    assert!(!settled.ids.contains_key(ids::ENDPOINTS_ONLY));
    assert_eq!(move_back.num_calls(), 1);
    assert_eq!(wait_prod.num_calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_to_a_version_that_is_gone_is_a_rollover() {
    let gone = mock!(Client::get_agent_runtime)
        .sequence()
        .http_status(
            404,
            error_body("ResourceNotFoundException", "no such version"),
        )
        .build();
    let deployer = deployer(&[&gone]);
    let reverted = deployer
        .revert(
            &live_on_8(),
            &recorded_previous(),
            &Progress::discard("agent"),
        )
        .await
        .unwrap();
    assert_eq!(reverted, None);
    assert_eq!(gone.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_to_a_version_running_another_image_is_a_rollover() {
    let elsewhere = version_get("7", new_uri());
    let deployer = deployer(&[&elsewhere]);
    let reverted = deployer
        .revert(
            &live_on_8(),
            &recorded_previous(),
            &Progress::discard("agent"),
        )
        .await
        .unwrap();
    assert_eq!(reverted, None);
}
