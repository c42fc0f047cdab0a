//! Tests: the field tables against the SDK (`fields`), the exact `UpdateAgentRuntime` body
//! (`request_body`, replayed HTTP), and the deploy flow against aws-smithy-mocks (`mocks`; the
//! named endpoints' moves, waits and rollbacks: `endpoints`).

mod endpoints;
mod fields;
mod mocks;
mod request_body;

use std::sync::Arc;
use std::time::Duration;

use deployer_core::manifest::AgentcoreTarget;
use deployer_core::poll::PollPolicy;
use deployer_core::progress::Collect;
use deployer_core::{
    Artifact, DeployError, ImageArtifact, Outcome, Progress, ProgressEvent, deploy,
};

use crate::AgentcoreDeployer;

/// A `GetAgentRuntime` response with every field set.
pub(crate) const FIXTURE: &str = include_str!("get_agent_runtime.json");

pub(crate) const RUNTIME_ID: &str = "acme_agent-a1b2c3d4e5";
pub(crate) const REPOSITORY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/agent";
pub(crate) const OLD_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub(crate) const NEW_DIGEST: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The environment variables of the fixtures: the values must never leave the crate.
pub(crate) const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "DATABASE_URL",
        "postgres://agent:fixture-db-password-7731@db.internal:5432/agent",
    ),
    ("UPSTREAM_API_TOKEN", "fixture-token-SUPERSECRET-0042"),
    ("LOG_LEVEL", "debug-fixture-level"),
];

pub(crate) fn old_uri() -> String {
    format!("{REPOSITORY}@{OLD_DIGEST}")
}

pub(crate) fn new_uri() -> String {
    format!("{REPOSITORY}@{NEW_DIGEST}")
}

pub(crate) fn wanted() -> Artifact {
    Artifact::Image(ImageArtifact {
        repository_uri: REPOSITORY.into(),
        tag: "c0ffee".into(),
        digest: Some(NEW_DIGEST.into()),
    })
}

pub(crate) fn target() -> AgentcoreTarget {
    AgentcoreTarget {
        runtime_id: RUNTIME_ID.into(),
        endpoints: Vec::new(),
    }
}

pub(crate) fn policy() -> PollPolicy {
    PollPolicy {
        interval: Duration::from_secs(2),
        max_interval: Duration::from_secs(10),
        timeout: Duration::from_secs(120),
        call_timeout: Duration::from_secs(30),
    }
}

/// Panics when `text` shows any environment variable value.
#[track_caller]
pub(crate) fn assert_no_secrets(what: &str, text: &str) {
    for (name, value) in ENVIRONMENT {
        assert!(
            !text.contains(value),
            "{what} shows the value of {name}: {text}"
        );
    }
}

/// What one deploy produced, after checking that none of it shows a secret.
pub(crate) struct Run {
    pub(crate) result: Result<Outcome, DeployError>,
    pub(crate) events: Vec<ProgressEvent>,
}

impl Run {
    pub(crate) fn messages(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|event| event.message.clone())
            .collect()
    }

    pub(crate) fn outcome(&self) -> &Outcome {
        match &self.result {
            Ok(outcome) => outcome,
            Err(error) => panic!("deploy failed: {error}"),
        }
    }

    pub(crate) fn error(&self) -> &DeployError {
        match &self.result {
            Ok(outcome) => panic!("deploy succeeded: {outcome:?}"),
            Err(error) => error,
        }
    }
}

/// Deploys [`wanted`] through `deployer`, collecting progress, and checks every event, the
/// outcome or error (Display and Debug) and the deployer's own Debug output for secrets.
pub(crate) async fn run(deployer: &AgentcoreDeployer) -> Run {
    let sink = Arc::new(Collect::default());
    let progress = Progress::new("agent", sink.clone());
    let result = deploy(deployer, &wanted(), &progress, &policy()).await;
    let events = sink.events();
    for event in &events {
        assert_no_secrets("a progress event", &event.message);
    }
    match &result {
        Ok(outcome) => {
            assert_no_secrets("the outcome", &format!("{outcome:?}"));
            assert_no_secrets(
                "the outcome as JSON",
                &serde_json::to_string(outcome).expect("outcomes serialize"),
            );
        }
        Err(error) => {
            assert_no_secrets("the error", &error.to_string());
            assert_no_secrets("the error's Debug", &format!("{error:?}"));
        }
    }
    assert_no_secrets("the deployer's Debug", &format!("{deployer:?}"));
    Run { result, events }
}
