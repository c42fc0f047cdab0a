//! Mapping SDK errors to [`DeployError`].

use std::error::Error;

use aws_sdk_ecs::config::http::HttpResponse;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use deployer_core::DeployError;

/// Error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// The service's error code, when it sent one.
pub(crate) fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(context) => context.err().code(),
        _ => None,
    }
}

/// One line describing `error`: `Code: message` for service errors, the chain of causes
/// otherwise (a connection refused, a timeout, a response that did not parse).
///
/// Deliberately not `DisplayErrorContext`: it ends with the `Debug` form of the error, which
/// holds the raw HTTP response, whose body may carry environment values.
pub(crate) fn message<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let text = match error {
        SdkError::ServiceError(context) => {
            let err = context.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) if !err.to_string().contains(code) => format!("{code}: {err}"),
                _ => err.to_string(),
            }
        }
        _ => chain(error),
    };
    one_line(&text)
}

/// `error: its source: its source's source`, skipping causes their parent already spelled out.
fn chain(error: &dyn Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// A [`DeployError::Api`] for a failed `operation`.
pub(crate) fn api<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> DeployError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    DeployError::api(operation, code(error).map(str::to_owned), message(error))
}

/// Whether `error` is worth another try: throttling, a server-side failure, a timeout or a
/// connection problem (after the SDK's own retries gave up).
pub(crate) fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            status == 429
                || status >= 500
                || code(error).is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

/// Collapses whitespace so that a message fits on one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}
