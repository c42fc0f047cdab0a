//! SDK errors as [`DeployError`]s, and redaction of secret values.
//!
//! Deliberately not `DisplayErrorContext`: it ends with the `Debug` form of the error, which
//! holds the raw HTTP response, whose body may echo a request with environment values.

use std::collections::HashMap;
use std::error::Error as StdError;

use aws_sdk_sagemaker::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use deployer_core::DeployError;

/// Error codes that describe a passing condition.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// A failed SDK call, reduced to what deployer reports.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The service's error code, when it sent one.
    pub(crate) code: Option<String>,
    /// One line: `Code: message`, or the chain of causes for a failure without a response.
    pub(crate) message: String,
    /// Whether trying again later may succeed (throttling, a server error, a timeout or a
    /// connection failure, after the SDK's own retries).
    pub(crate) transient: bool,
}

impl Failure {
    /// Reduces `error`, with the values `redact` knows replaced by `***`.
    pub(crate) fn new<E>(error: &SdkError<E, HttpResponse>, redact: &Redactor) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let (code, message, transient) = match error {
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
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => (None, chain(error), true),
            _ => (None, chain(error), false),
        };
        Failure {
            code,
            message: redact.apply(&one_line(&message)),
            transient,
        }
    }

    /// SageMaker reports a missing resource as a `ValidationException` "Could not find …".
    pub(crate) fn is_not_found(&self) -> bool {
        self.code.as_deref() == Some("ValidationException")
            && (self.message.contains("Could not find") || self.message.contains("does not exist"))
    }

    /// `CreateModel`/`CreateEndpointConfig` of a name that is taken.
    pub(crate) fn is_already_exists(&self) -> bool {
        self.code.as_deref() == Some("ValidationException")
            && (self.message.contains("already existing")
                || self.message.contains("already exists"))
    }

    /// The [`DeployError::Api`] for `operation`.
    pub(crate) fn into_error(self, operation: &str) -> DeployError {
        DeployError::api(operation, self.code, self.message)
    }
}

/// A [`DeployError::Api`] for a failed `operation`, secrets redacted.
pub(crate) fn api<E>(
    operation: &str,
    error: &SdkError<E, HttpResponse>,
    redact: &Redactor,
) -> DeployError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    Failure::new(error, redact).into_error(operation)
}

/// The error and its sources, joined with `: `, skipping causes their parent already spelled
/// out.
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

/// Replaces secret values (the models' environment variable values) in text that came from
/// AWS (error messages, failure reasons) by `***`.
///
/// Values shorter than [`Redactor::MIN_LEN`] characters are left alone: they cannot hide a
/// secret worth the name, and replacing `1` or `on` everywhere would garble every message.
#[derive(Clone, Default)]
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

    /// A redactor for the values of every map in `environments`.
    pub(crate) fn new<'a>(
        environments: impl IntoIterator<Item = &'a HashMap<String, String>>,
    ) -> Self {
        let mut secrets: Vec<String> = environments
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
        let redactor = Redactor::new([&env]);
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
