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
    /// A mutating call was not made because the run may no longer change the service (its
    /// [`Fence`](crate::progress::Fence) said no: e.g. it lost its deploy lock).
    #[error("stopped before {call}: {reason}")]
    Fenced {
        /// The call that was not made, e.g. `UpdateService`.
        call: String,
        /// Why, in one line.
        reason: String,
    },
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

    /// The [`DeployError::Mismatch`] of a rollback to `previous` that `target` cannot make:
    /// its earlier artifact is not kept (what [`Deployer::rollback`](crate::Deployer::rollback)
    /// says by default).
    pub fn not_kept(target: &str, previous: &crate::Applied) -> Self {
        DeployError::Mismatch(format!(
            "{target} cannot be rolled back to {}: its earlier artifact is not kept",
            previous.new_artifact
        ))
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

/// An error and its sources on one line, joined with `: `, skipping a cause its parent already
/// spelled out. An AWS SDK error's metadata (`Error { code: …, aws_request_id: … }`, the
/// `Display` of an answer the SDK could not classify) is internal text and left out.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.starts_with("Error {") && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    one_line(&parts.join(": "))
}

/// `text` with every run of whitespace (newlines included) collapsed to one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn one_line_collapses_whitespace() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }

    #[test]
    fn the_chain_is_one_line_without_repeats_or_sdk_metadata() {
        let error = Layer(
            "service error",
            Some(Box::new(Layer(
                "unhandled error",
                Some(Box::new(Layer(
                    "Error { aws_request_id: \"r-1\" }",
                    Some(Box::new(Layer("connection\nreset", None))),
                ))),
            ))),
        );
        assert_eq!(
            cause_chain(&error),
            "service error: unhandled error: connection reset"
        );
    }
}
