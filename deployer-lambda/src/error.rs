//! SDK errors turned into [`DeployError`]s: one line, the operation named, never a secret.

use std::fmt::Debug;

use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use deployer_core::DeployError;

/// Turns a failed SDK call into [`DeployError::Api`]: the operation, the service's error code
/// when it sent one, and one line of message.
///
/// Requests deployer sends carry no environment variables, so no message can echo one.
pub fn api_error<E, R>(operation: &str, error: &SdkError<E, R>) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let (code, message) = match error.as_service_error() {
        Some(service) => {
            let code = service.code().map(str::to_owned);
            let message = match (service.code(), service.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                _ => service.to_string(),
            };
            (code, message)
        }
        None => (None, DisplayErrorContext(error).to_string()),
    };
    DeployError::api(operation, code, one_line(&message))
}

/// Error codes that mean "try again later" (throttling, a passing server-side problem).
const TRANSIENT_CODES: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "EC2ThrottledException",
    "ServiceException",
    "ServiceUnavailableException",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether a failed call is worth another try later: throttling, a server error (HTTP 429,
/// 5xx), a timeout or a connection problem, after the SDK's own retries gave up.
pub(crate) fn is_transient<E: ProvideErrorMetadata>(
    error: &SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            status == 429
                || status >= 500
                || context
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

/// Collapses whitespace runs (newlines included) to single spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The two error kinds every Lambda operation can report and the deployer treats specially.
pub trait LambdaErrorKind {
    /// `ResourceConflictException`: another update is in progress; wait and retry.
    fn is_conflict(&self) -> bool;
    /// `ResourceNotFoundException`: the function, version or alias does not exist.
    fn is_not_found(&self) -> bool;
}

macro_rules! error_kinds {
    ($($module:ident :: $error:ident),* $(,)?) => {$(
        impl LambdaErrorKind for aws_sdk_lambda::operation::$module::$error {
            fn is_conflict(&self) -> bool {
                matches!(self, Self::ResourceConflictException(_))
            }
            fn is_not_found(&self) -> bool {
                matches!(self, Self::ResourceNotFoundException(_))
            }
        }
    )*};
}

error_kinds!(
    update_function_code::UpdateFunctionCodeError,
    publish_version::PublishVersionError,
    update_alias::UpdateAliasError,
    create_alias::CreateAliasError,
);

macro_rules! read_error_kinds {
    ($($module:ident :: $error:ident),* $(,)?) => {$(
        impl LambdaErrorKind for aws_sdk_lambda::operation::$module::$error {
            fn is_conflict(&self) -> bool {
                false
            }
            fn is_not_found(&self) -> bool {
                matches!(self, Self::ResourceNotFoundException(_))
            }
        }
    )*};
}

read_error_kinds!(
    get_function::GetFunctionError,
    get_function_configuration::GetFunctionConfigurationError,
    get_alias::GetAliasError,
    list_versions_by_function::ListVersionsByFunctionError,
);

/// Whether a failed call is a `ResourceConflictException`.
pub fn is_conflict<E: LambdaErrorKind, R>(error: &SdkError<E, R>) -> bool {
    error
        .as_service_error()
        .is_some_and(LambdaErrorKind::is_conflict)
}

/// Whether a failed call is a `ResourceNotFoundException`.
pub fn is_not_found<E: LambdaErrorKind, R>(error: &SdkError<E, R>) -> bool {
    error
        .as_service_error()
        .is_some_and(LambdaErrorKind::is_not_found)
}
