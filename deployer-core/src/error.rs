//! The error every deployer returns.

use std::time::Duration;

/// Why reading, updating or waiting on a live service failed.
///
/// Messages say what failed and what to do; they never carry secret values (environment
/// variable values, registry passwords).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// A remote API call failed after the SDK's own retries.
    #[error("{operation} failed: {message}")]
    Api {
        /// The API operation, e.g. `DescribeServices`.
        operation: String,
        /// The service's error code, e.g. `ThrottlingException`, when it sent one.
        code: Option<String>,
        /// One line describing the failure.
        message: String,
    },
    /// The resource the manifest names does not exist.
    #[error("{what} was not found: {hint}")]
    NotFound {
        /// What was looked for, e.g. `ECS service acme/app-api`.
        what: String,
        /// What to check or do.
        hint: String,
    },
    /// The live resource does not fit the manifest (package type, architecture, container name).
    #[error("{0}")]
    Mismatch(String),
    /// A response lacked a field the deployer needs.
    #[error("the {operation} response has no `{field}`")]
    MissingField {
        /// The API operation.
        operation: &'static str,
        /// The field that was absent.
        field: &'static str,
    },
    /// The rollout ran and failed (or was rolled back).
    #[error("rollout failed: {reason}")]
    RolloutFailed {
        /// Why, in the target's own words where it gave any.
        reason: String,
        /// Recent events of the target, newest last.
        events: Vec<String>,
    },
    /// The wait ran out of time before the rollout settled.
    #[error("timed out after {} waiting for {what}; last state: {last_state}", humantime::format_duration(*after))]
    Timeout {
        /// What was being waited for.
        what: String,
        /// The timeout that ran out.
        after: Duration,
        /// The last observed state.
        last_state: String,
        /// Recent events of the target, newest last.
        events: Vec<String>,
    },
    /// The deploy was cancelled (Ctrl-C) before it finished.
    #[error("cancelled before the rollout finished")]
    Cancelled,
}

impl DeployError {
    /// Builds an [`DeployError::Api`] error.
    pub fn api(
        operation: impl Into<String>,
        code: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        DeployError::Api {
            operation: operation.into(),
            code,
            message: message.into(),
        }
    }

    /// Whether this is a configuration problem (exit code 2: fix the manifest or the
    /// environment) rather than a deploy that ran and failed (exit code 1).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            DeployError::NotFound { .. } | DeployError::Mismatch(_)
        )
    }

    /// Recent events attached to the error, if any.
    pub fn events(&self) -> &[String] {
        match self {
            DeployError::RolloutFailed { events, .. } | DeployError::Timeout { events, .. } => {
                events
            }
            _ => &[],
        }
    }
}
