//! What deployer records in SSM Parameter Store, per service:
//!
//! - `<ssm_prefix>/<service>/image-tag`: the live tag, read back by IaC so that an
//!   infrastructure deploy keeps the image the application pipeline rolled out. Written only
//!   once the artifact is confirmed (and by default once the rollout succeeded).
//! - `<ssm_prefix>/<service>/deploy-state`: a small JSON document ([`ServiceState`]): the last
//!   successful deploy and the one before it (the rollback target), a rollout started with
//!   `--no-wait` and not yet confirmed, and the last outcome.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::types::ParameterType;
use deployer_core::manifest::Project;
use deployer_core::{Applied, Service};
use serde::{Deserialize, Serialize};

/// Reads and writes deployer's SSM parameters.
#[derive(Clone, Debug)]
pub(crate) struct State {
    ssm: aws_sdk_ssm::Client,
}

/// A failed SSM call, in one line.
#[derive(Debug, thiserror::Error)]
#[error("SSM {operation} on {name} failed: {message}")]
pub(crate) struct StateError {
    operation: &'static str,
    name: String,
    message: String,
}

/// One successful deploy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeployRecord {
    /// The content tag.
    pub(crate) tag: String,
    /// The artifact identity written to the service (digest-pinned image URI, or CodeSha256).
    pub(crate) artifact: String,
    /// The target's identifiers after the deploy (task definition, version, …).
    #[serde(default)]
    pub(crate) ids: BTreeMap<String, String>,
    /// When, RFC 3339.
    pub(crate) at: String,
}

/// A rollout started with `--no-wait`, not yet confirmed by `deployer wait`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingRecord {
    pub(crate) tag: String,
    pub(crate) applied: Applied,
    pub(crate) at: String,
}

/// The last thing a deploy, wait or rollback did to the service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastOutcome {
    pub(crate) action: String,
    pub(crate) tag: String,
    pub(crate) ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    pub(crate) at: String,
}

/// `<ssm_prefix>/<service>/deploy-state`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServiceState {
    #[serde(default)]
    pub(crate) current: Option<DeployRecord>,
    #[serde(default)]
    pub(crate) previous: Option<DeployRecord>,
    #[serde(default)]
    pub(crate) pending: Option<PendingRecord>,
    #[serde(default)]
    pub(crate) last: Option<LastOutcome>,
}

impl ServiceState {
    /// Makes `record` the current deploy; the former current one becomes the rollback target
    /// unless it was the same artifact.
    pub(crate) fn succeed(&mut self, record: DeployRecord) {
        if let Some(current) = self.current.take()
            && current.artifact != record.artifact
        {
            self.previous = Some(current);
        }
        self.current = Some(record);
    }
}

/// `<ssm_prefix>/<service>/lock`: the deploy lock (see `lock.rs`).
pub(crate) fn lock_parameter(project: &Project, service: &Service) -> String {
    format!("{}/{}/lock", project.ssm_prefix, service.name)
}

/// `<ssm_prefix>/<service>/deploy-state`.
pub(crate) fn state_parameter(project: &Project, service: &Service) -> String {
    format!("{}/{}/deploy-state", project.ssm_prefix, service.name)
}

/// Now, RFC 3339 in UTC to the second.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl State {
    pub(crate) fn new(ssm: aws_sdk_ssm::Client) -> Self {
        State { ssm }
    }

    /// The SSM client (for the deploy lock).
    pub(crate) fn client(&self) -> &aws_sdk_ssm::Client {
        &self.ssm
    }

    /// The parameter's value, or `None` when it does not exist.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<String>, StateError> {
        match self.ssm.get_parameter().name(name).send().await {
            Ok(output) => Ok(output
                .parameter()
                .and_then(|p| p.value())
                .map(str::to_owned)),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(GetParameterError::ParameterNotFound(_))
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(StateError {
                operation: "GetParameter",
                name: name.to_owned(),
                message: crate::aws::sdk_message(&error),
            }),
        }
    }

    /// Writes `value` (String, overwrite) unless the parameter already holds it; returns whether
    /// it wrote.
    pub(crate) async fn put_if_changed(&self, name: &str, value: &str) -> Result<bool, StateError> {
        if self.get(name).await?.as_deref() == Some(value) {
            return Ok(false);
        }
        self.put(name, value).await?;
        Ok(true)
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StateError> {
        self.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|error| StateError {
                operation: "PutParameter",
                name: name.to_owned(),
                message: crate::aws::sdk_message(&error),
            })?;
        Ok(())
    }

    /// The service's deploy state (empty when never recorded or unreadable as JSON: a damaged
    /// record must not block deploys, it is rewritten on the next success).
    pub(crate) async fn service_state(&self, name: &str) -> Result<ServiceState, StateError> {
        Ok(self
            .get(name)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default())
    }

    /// Writes the service's deploy state when it differs from `before`.
    pub(crate) async fn save_service_state(
        &self,
        name: &str,
        before: &ServiceState,
        after: &ServiceState,
    ) -> Result<(), StateError> {
        if before == after {
            return Ok(());
        }
        let json = serde_json::to_string(after).map_err(|error| StateError {
            operation: "PutParameter",
            name: name.to_owned(),
            message: error.to_string(),
        })?;
        self.put(name, &json).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tag: &str) -> DeployRecord {
        DeployRecord {
            tag: tag.into(),
            artifact: format!("r/app@sha256:{tag}"),
            ids: BTreeMap::new(),
            at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn success_keeps_the_one_before_as_rollback_target() {
        let mut state = ServiceState::default();
        state.succeed(record("a"));
        assert_eq!(state.previous, None);
        state.succeed(record("b"));
        assert_eq!(state.previous.as_ref().map(|r| r.tag.as_str()), Some("a"));
        // the same artifact again (an unchanged re-record) does not lose the rollback target
        state.succeed(record("b"));
        assert_eq!(state.previous.as_ref().map(|r| r.tag.as_str()), Some("a"));
        assert_eq!(state.current.as_ref().map(|r| r.tag.as_str()), Some("b"));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = ServiceState::default();
        state.succeed(record("a"));
        state.last = Some(LastOutcome {
            action: "updated".into(),
            tag: "a".into(),
            ok: true,
            error: None,
            at: now(),
        });
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<ServiceState>(&json).unwrap(), state);
        assert_eq!(
            serde_json::from_str::<ServiceState>("{}").unwrap(),
            ServiceState::default()
        );
    }
}
