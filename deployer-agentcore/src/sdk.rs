//! SDK errors as [`DeployError`]s, and redaction of secret values.

use std::collections::HashMap;
use std::error::Error as StdError;

use aws_sdk_bedrockagentcorecontrol::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use deployer_core::DeployError;

/// A failed SDK call: the error to report, and whether trying again later may succeed
/// (throttling, a server error, a timeout or a connection failure).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: DeployError,
    pub(crate) transient: bool,
}

/// Error codes that describe a passing condition.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "InternalServerException",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Maps an SDK error to a one-line [`DeployError::Api`], with secret values redacted.
pub(crate) fn failure<E>(
    operation: &'static str,
    error: SdkError<E, HttpResponse>,
    redact: &Redactor,
) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let (code, message, transient) = match &error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().map(str::to_owned);
            let status = service.raw().status().as_u16();
            let message = match (inner.code(), inner.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                (None, Some(message)) => message.to_owned(),
                (None, None) => format!("HTTP status {status}: {}", chain(inner)),
            };
            let transient = code
                .as_deref()
                .is_some_and(|code| TRANSIENT_CODES.contains(&code))
                || status == 429
                || status >= 500;
            (code, message, transient)
        }
        SdkError::TimeoutError(_) => (None, chain(&error), true),
        SdkError::DispatchFailure(_) => (None, chain(&error), true),
        SdkError::ResponseError(_) => (None, chain(&error), true),
        _ => (None, chain(&error), false),
    };
    Failure {
        error: DeployError::api(operation, code, redact.apply(&one_line(&message))),
        transient,
    }
}

/// The error and its sources, joined with `: `.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

/// `text` with every run of whitespace (newlines included) collapsed to one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replaces secret values (the runtime's environment variable values) in text that came from
/// AWS (error messages, failure reasons) by `***`.
///
/// Values shorter than [`Redactor::MIN_LEN`] characters are left alone: they cannot hide a
/// secret worth the name, and replacing `1` or `on` everywhere would garble every message.
#[derive(Default)]
pub(crate) struct Redactor {
    /// Longest first, so that a value containing another is replaced whole.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// Shorter values are not redacted.
    pub(crate) const MIN_LEN: usize = 3;

    /// A redactor for the values of `environment`.
    pub(crate) fn new(environment: Option<&HashMap<String, String>>) -> Self {
        let mut secrets: Vec<String> = environment
            .into_iter()
            .flat_map(HashMap::values)
            .filter(|value| value.chars().count() >= Self::MIN_LEN)
            .cloned()
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret value replaced by `***`.
    pub(crate) fn apply(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_long_values_longest_first() {
        let env = HashMap::from([
            ("A".to_owned(), "s3cr3t".to_owned()),
            ("B".to_owned(), "s3cr3t-and-more".to_owned()),
            ("C".to_owned(), "1".to_owned()),
        ]);
        let redactor = Redactor::new(Some(&env));
        assert_eq!(
            redactor.apply("x s3cr3t-and-more y s3cr3t z 1"),
            "x *** y *** z 1"
        );
        assert_eq!(format!("{redactor:?}"), "Redactor { secrets: 2 }");
    }

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}
