//! The deploy flow against aws-smithy-mocks: sequential rules fix the order of the calls, and
//! tokio's paused clock makes the waits instant.

use std::collections::HashMap;

use aws_sdk_bedrockagentcorecontrol::Client;
use aws_sdk_bedrockagentcorecontrol::config::retry::RetryConfig;
use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime::GetAgentRuntimeOutput;
use aws_sdk_bedrockagentcorecontrol::operation::update_agent_runtime::UpdateAgentRuntimeOutput;
use aws_sdk_bedrockagentcorecontrol::types::{
    AgentRuntimeArtifact, AgentRuntimeStatus, ContainerConfiguration, LifecycleConfiguration,
    NetworkConfiguration, NetworkMode, ProtocolConfiguration, ServerProtocol,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use deployer_core::{Action, DeployError};

use super::{ENVIRONMENT, RUNTIME_ID, new_uri, old_uri, run, target};
use crate::AgentcoreDeployer;

pub(super) const ARN: &str =
    "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/acme_agent-a1b2c3d4e5";

fn environment() -> HashMap<String, String> {
    ENVIRONMENT
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A runtime in `status` at `version` running `uri`, with environment variables, lifecycle and
/// protocol settings.
pub(super) fn runtime(
    status: AgentRuntimeStatus,
    version: &str,
    uri: &str,
) -> GetAgentRuntimeOutput {
    GetAgentRuntimeOutput::builder()
        .agent_runtime_arn(ARN)
        .agent_runtime_name("acme_agent")
        .agent_runtime_id(RUNTIME_ID)
        .agent_runtime_version(version)
        .created_at(DateTime::from_secs(1_735_689_600))
        .last_updated_at(DateTime::from_secs(1_738_368_000))
        .role_arn("arn:aws:iam::123456789012:role/acme-agent-runtime")
        .network_configuration(
            NetworkConfiguration::builder()
                .network_mode(NetworkMode::Public)
                .build()
                .unwrap(),
        )
        .status(status)
        .lifecycle_configuration(
            LifecycleConfiguration::builder()
                .idle_runtime_session_timeout(900)
                .max_lifetime(28_800)
                .build(),
        )
        .agent_runtime_artifact(AgentRuntimeArtifact::ContainerConfiguration(
            ContainerConfiguration::builder()
                .container_uri(uri)
                .build()
                .unwrap(),
        ))
        .protocol_configuration(
            ProtocolConfiguration::builder()
                .server_protocol(ServerProtocol::Mcp)
                .build()
                .unwrap(),
        )
        .set_environment_variables(Some(environment()))
        .build()
        .unwrap()
}

fn failed(version: &str, uri: &str, reason: &str) -> GetAgentRuntimeOutput {
    let mut live = runtime(AgentRuntimeStatus::UpdateFailed, version, uri);
    live.failure_reason = Some(reason.to_owned());
    live
}

pub(super) fn updating(version: &str) -> UpdateAgentRuntimeOutput {
    UpdateAgentRuntimeOutput::builder()
        .agent_runtime_arn(ARN)
        .agent_runtime_id(RUNTIME_ID)
        .agent_runtime_version(version)
        .created_at(DateTime::from_secs(1_735_689_600))
        .last_updated_at(DateTime::from_secs(1_738_400_000))
        .status(AgentRuntimeStatus::Updating)
        .build()
        .unwrap()
}

/// Gets that return `states` in order.
pub(super) fn gets(states: Vec<GetAgentRuntimeOutput>) -> Rule {
    let mut sequence = mock!(Client::get_agent_runtime)
        .match_requests(|request| request.agent_runtime_id() == Some(RUNTIME_ID))
        .sequence();
    for state in states {
        sequence = sequence.output(move || state.clone());
    }
    sequence.build()
}

/// An update that must carry every field of the runtime over, with the new URI.
pub(super) fn update(version: &'static str) -> Rule {
    mock!(Client::update_agent_runtime)
        .match_requests(|request| {
            let uri = match request.agent_runtime_artifact() {
                Some(AgentRuntimeArtifact::ContainerConfiguration(container)) => {
                    container.container_uri()
                }
                _ => "",
            };
            request.agent_runtime_id() == Some(RUNTIME_ID)
                && uri == new_uri()
                && request.environment_variables() == Some(&environment())
                && request
                    .lifecycle_configuration()
                    .and_then(|l| l.max_lifetime())
                    == Some(28_800)
                && request
                    .protocol_configuration()
                    .map(|p| p.server_protocol())
                    == Some(&ServerProtocol::Mcp)
                && request.role_arn() == Some("arn:aws:iam::123456789012:role/acme-agent-runtime")
                && request.network_configuration().is_some()
        })
        .then_output(move || updating(version))
}

pub(super) fn error_body(code: &str, message: &str) -> Option<String> {
    Some(serde_json::json!({"__type": code, "message": message}).to_string())
}

fn deployer(rules: &[&Rule]) -> AgentcoreDeployer {
    let client = mock_client!(
        aws_sdk_bedrockagentcorecontrol,
        RuleMode::Sequential,
        rules,
        |config| { config.retry_config(RetryConfig::standard().with_max_attempts(2)) }
    );
    AgentcoreDeployer::new(client, target()).with_poll_policy(super::policy())
}

#[tokio::test(start_paused = true)]
async fn happy_path_waits_through_updating_to_ready() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let wait = gets(vec![
        runtime(AgentRuntimeStatus::Updating, "8", &new_uri()),
        runtime(AgentRuntimeStatus::Updating, "8", &new_uri()),
        runtime(AgentRuntimeStatus::Ready, "8", &new_uri()),
    ]);
    let run = run(&deployer(&[&read, &reread, &update, &wait])).await;
    let outcome = run.outcome();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.old_artifact.as_deref(), Some(old_uri().as_str()));
    assert_eq!(outcome.new_artifact.as_deref(), Some(new_uri().as_str()));
    assert_eq!(outcome.ids["runtime_id"], RUNTIME_ID);
    assert_eq!(outcome.ids["old_version"], "7");
    assert_eq!(outcome.ids["version"], "8");
    assert_eq!(outcome.ids["arn"], ARN);
    assert_eq!(update.num_calls(), 1);
    assert_eq!(wait.num_calls(), 3);
    let messages = run.messages();
    let wait_states: Vec<&String> = messages
        .iter()
        .skip_while(|m| *m != "waiting for the rollout")
        .skip(1)
        .collect();
    assert_eq!(
        wait_states,
        ["UPDATING (version 8)", "READY (version 8)"],
        "{messages:#?}"
    );
    let apply = messages
        .iter()
        .find(|m| m.starts_with("UpdateAgentRuntime "))
        .unwrap();
    assert!(apply.contains("from version 7"), "{apply}");
    assert!(
        apply.contains(
            "environment variables DATABASE_URL, LOG_LEVEL, UPSTREAM_API_TOKEN (values hidden)"
        ),
        "{apply}"
    );
    assert!(
        apply.contains("lifecycleConfiguration") && apply.contains("protocolConfiguration"),
        "{apply}"
    );
}

#[tokio::test(start_paused = true)]
async fn unchanged_makes_no_update_call() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "8", &new_uri())]);
    let run = run(&deployer(&[&read])).await;
    let outcome = run.outcome();
    assert_eq!(outcome.action, Action::Unchanged);
    assert_eq!(outcome.ids["version"], "8");
    assert_eq!(outcome.new_artifact.as_deref(), Some(new_uri().as_str()));
    assert_eq!(read.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_update_in_flight_is_waited_for_first() {
    let read = gets(vec![
        runtime(AgentRuntimeStatus::Updating, "8", &old_uri()),
        runtime(AgentRuntimeStatus::Updating, "8", &old_uri()),
        runtime(AgentRuntimeStatus::Ready, "8", &old_uri()),
    ]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "8", &old_uri())]);
    let update = update("9");
    let wait = gets(vec![runtime(AgentRuntimeStatus::Ready, "9", &new_uri())]);
    let run = run(&deployer(&[&read, &reread, &update, &wait])).await;
    let outcome = run.outcome();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.ids["old_version"], "8");
    assert_eq!(outcome.ids["version"], "9");
    assert_eq!(read.num_calls(), 3);
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_in_flight_update_to_the_wanted_image_is_unchanged_once_ready() {
    let read = gets(vec![
        runtime(AgentRuntimeStatus::Updating, "8", &new_uri()),
        runtime(AgentRuntimeStatus::Ready, "8", &new_uri()),
    ]);
    let run = run(&deployer(&[&read])).await;
    assert_eq!(run.outcome().action, Action::Unchanged);
    assert_eq!(read.num_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn update_failed_is_a_rollout_failure_with_the_reason() {
    let secret = ENVIRONMENT[1].1;
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let wait = gets(vec![
        runtime(AgentRuntimeStatus::Updating, "8", &new_uri()),
        failed(
            "8",
            &new_uri(),
            &format!("container exited: exec format error\n(token {secret} rejected)"),
        ),
    ]);
    let run = run(&deployer(&[&read, &reread, &update, &wait])).await;
    match run.error() {
        DeployError::RolloutFailed { reason, events } => {
            assert!(reason.contains("UPDATE_FAILED"), "{reason}");
            assert!(
                reason.contains("container exited: exec format error (token *** rejected)"),
                "{reason}"
            );
            assert_eq!(
                events,
                &["UPDATING (version 8)", "UPDATE_FAILED (version 8)"]
            );
        }
        other => panic!("expected a rollout failure, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_runtime_left_in_update_failed_is_updated_even_on_the_same_image() {
    let read = gets(vec![failed("8", &new_uri(), "image not found")]);
    let reread = gets(vec![failed("8", &new_uri(), "image not found")]);
    let update = update("9");
    let wait = gets(vec![runtime(AgentRuntimeStatus::Ready, "9", &new_uri())]);
    let run = run(&deployer(&[&read, &reread, &update, &wait])).await;
    assert_eq!(run.outcome().action, Action::Updated);
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rollout_that_never_settles_times_out_with_the_last_state() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let wait = mock!(Client::get_agent_runtime)
        .sequence()
        .output(|| runtime(AgentRuntimeStatus::Updating, "8", &new_uri()))
        .repeatedly()
        .build();
    let start = tokio::time::Instant::now();
    let run = run(&deployer(&[&read, &reread, &update, &wait])).await;
    match run.error() {
        DeployError::Timeout {
            what,
            after,
            last_state,
            events,
        } => {
            assert_eq!(
                what,
                &format!("AgentCore runtime {RUNTIME_ID} to be READY at version 8")
            );
            assert_eq!(*after, super::policy().timeout);
            assert_eq!(last_state, "UPDATING (version 8)");
            assert_eq!(events, &["UPDATING (version 8)"]);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(start.elapsed(), super::policy().timeout);
    assert!(wait.num_calls() > 5);
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried() {
    let throttled = || error_body("ThrottlingException", "Rate exceeded");
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    // The SDK retries the update (same idempotency token).
    let update = mock!(Client::update_agent_runtime)
        .sequence()
        .http_status(429, throttled())
        .output(|| updating("8"))
        .build();
    // Three throttled reads exhaust the SDK's two attempts of the first probe; the poll loop
    // tries again.
    let wait = mock!(Client::get_agent_runtime)
        .sequence()
        .http_status(429, throttled())
        .times(3)
        .output(|| runtime(AgentRuntimeStatus::Ready, "8", &new_uri()))
        .build();
    let run = run(&deployer(&[&read, &reread, &update, &wait])).await;
    assert_eq!(run.outcome().action, Action::Updated);
    assert_eq!(update.num_calls(), 2);
    assert_eq!(wait.num_calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_conflicting_update_is_read_and_sent_again() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let conflict = mock!(Client::update_agent_runtime)
        .sequence()
        .http_status(
            409,
            error_body("ConflictException", "an update is in progress"),
        )
        .build();
    let settle = gets(vec![
        runtime(AgentRuntimeStatus::Updating, "8", &old_uri()),
        runtime(AgentRuntimeStatus::Ready, "8", &old_uri()),
    ]);
    let update = update("9");
    let wait = gets(vec![runtime(AgentRuntimeStatus::Ready, "9", &new_uri())]);
    let run = run(&deployer(&[
        &read, &reread, &conflict, &settle, &update, &wait,
    ]))
    .await;
    let outcome = run.outcome();
    assert_eq!(outcome.ids["old_version"], "8");
    assert_eq!(outcome.ids["version"], "9");
}

#[tokio::test(start_paused = true)]
async fn a_missing_runtime_is_not_found() {
    let read = mock!(Client::get_agent_runtime)
        .sequence()
        .http_status(
            404,
            error_body("ResourceNotFoundException", "no such runtime"),
        )
        .build();
    let run = run(&deployer(&[&read])).await;
    let error = run.error();
    assert!(matches!(error, DeployError::NotFound { .. }), "{error:?}");
    assert!(error.is_config());
    assert!(
        error
            .to_string()
            .starts_with(&format!("AgentCore runtime {RUNTIME_ID} was not found")),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_update_is_one_line_without_secrets() {
    let secret = ENVIRONMENT[0].1;
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = mock!(Client::update_agent_runtime)
        .sequence()
        .http_status(
            400,
            error_body(
                "ValidationException",
                &format!("1 validation error detected:\nValue '{secret}' at 'environmentVariables' failed"),
            ),
        )
        .build();
    let run = run(&deployer(&[&read, &reread, &update])).await;
    match run.error() {
        DeployError::Api {
            operation,
            code,
            message,
        } => {
            assert_eq!(operation, "UpdateAgentRuntime");
            assert_eq!(code.as_deref(), Some("ValidationException"));
            assert_eq!(
                message,
                "ValidationException: 1 validation error detected: Value '***' at 'environmentVariables' failed"
            );
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn create_failed_is_refused() {
    let mut live = runtime(AgentRuntimeStatus::CreateFailed, "1", &old_uri());
    live.failure_reason = Some("role cannot be assumed".into());
    let read = gets(vec![live]);
    let run = run(&deployer(&[&read])).await;
    let error = run.error();
    assert!(error.is_config(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("CREATE_FAILED: role cannot be assumed"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_code_artifact_is_a_mismatch() {
    let mut live = runtime(AgentRuntimeStatus::Ready, "1", &old_uri());
    live.agent_runtime_artifact = Some(AgentRuntimeArtifact::CodeConfiguration(
        aws_sdk_bedrockagentcorecontrol::types::CodeConfiguration::builder()
            .runtime(aws_sdk_bedrockagentcorecontrol::types::AgentManagedRuntimeType::Python313)
            .entry_point("main.py")
            .build()
            .unwrap(),
    ));
    let read = gets(vec![live]);
    let run = run(&deployer(&[&read])).await;
    let error = run.error();
    assert!(error.is_config(), "{error:?}");
    assert!(error.to_string().contains("code artifact"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn the_live_summary_names_variables_but_hides_values() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let deployer = deployer(&[&read]);
    let live = deployer_core::Deployer::read_live(&deployer).await.unwrap();
    assert_eq!(
        live.summary,
        format!(
            "READY (version 7), {}, environment variables DATABASE_URL, LOG_LEVEL, UPSTREAM_API_TOKEN (values hidden)",
            old_uri()
        )
    );
    assert_eq!(live.ids["status"], "READY");
    super::assert_no_secrets("the live state", &format!("{live:?}"));
}

/// Someone else's deploy landed between our update and our poll: the runtime is READY on a
/// later version, but with another image. That is not our rollout having succeeded: recording
/// our image would name what does not run.
#[tokio::test(start_paused = true)]
async fn ready_on_a_later_version_with_another_image_is_a_failure() {
    let theirs = format!(
        "{}@sha256:3333333333333333333333333333333333333333333333333333333333333333",
        super::REPOSITORY
    );
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let wait = gets(vec![
        runtime(AgentRuntimeStatus::Updating, "8", &new_uri()),
        runtime(AgentRuntimeStatus::Ready, "9", &theirs),
    ]);
    let run = run(&deployer(&[&read, &reread, &update, &wait])).await;
    match run.error() {
        DeployError::RolloutFailed { reason, .. } => {
            assert!(reason.contains("version 9"), "{reason}");
            assert!(reason.contains(&theirs), "{reason}");
            assert!(reason.contains(&new_uri()), "{reason}");
        }
        other => panic!("expected a rollout failure, got {other:?}"),
    }
}

/// A later version that runs the wanted image (another run deployed the same release) is
/// reached.
#[tokio::test(start_paused = true)]
async fn ready_on_a_later_version_with_the_wanted_image_is_reached() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let wait = gets(vec![runtime(AgentRuntimeStatus::Ready, "9", &new_uri())]);
    let run = run(&deployer(&[&read, &reread, &update, &wait])).await;
    assert_eq!(run.outcome().action, Action::Updated);
    assert_eq!(run.outcome().ids["version"], "9");
}

/// A fence that says no: the run lost its deploy lock.
struct LockLost;

impl deployer_core::Fence for LockLost {
    fn check(&self) -> Result<(), String> {
        Err("the deploy lock of agent was taken over".into())
    }
}

/// A run that lost its deploy lock sends no `UpdateAgentRuntime`.
#[tokio::test(start_paused = true)]
async fn a_fenced_run_sends_no_update() {
    let read = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let reread = gets(vec![runtime(AgentRuntimeStatus::Ready, "7", &old_uri())]);
    let update = update("8");
    let deployer = deployer(&[&read, &reread, &update]);
    let progress =
        deployer_core::Progress::discard("agent").with_fence(std::sync::Arc::new(LockLost));
    let error = deployer_core::deploy(&deployer, &super::wanted(), &progress, &super::policy())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "UpdateAgentRuntime"),
        "{error:?}"
    );
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn the_diagnosis_is_the_failure_reason_redacted_and_the_log_group_hides_the_environment() {
    use deployer_core::{Applied, Deployer, LiveState};
    let secret = ENVIRONMENT[1].1;
    let live = gets(vec![
        failed(
            "8",
            &new_uri(),
            &format!("exec format error (token {secret})"),
        ),
        runtime(AgentRuntimeStatus::Ready, "8", &new_uri()),
        runtime(AgentRuntimeStatus::Ready, "8", &new_uri()),
    ]);
    let deployer = deployer(&[&live]);
    let diagnosis = deployer.diagnose(&Applied::default()).await;
    assert_eq!(
        diagnosis.reasons,
        ["UPDATE_FAILED 8: exec format error (token ***)"]
    );
    // A runtime that did not fail has no reason to give.
    assert!(deployer.diagnose(&Applied::default()).await.is_empty());

    let sources = deployer.log_sources(&LiveState::default()).await.unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(
        sources[0].group,
        format!("/aws/bedrock-agentcore/runtimes/{RUNTIME_ID}-DEFAULT")
    );
    assert_eq!(sources[0].stream_prefix, None);
    assert!(sources[0].redact.iter().any(|value| value == secret));
}
