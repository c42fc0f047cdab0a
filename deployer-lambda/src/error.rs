//! How the Lambda machinery reads SDK errors: the class and the one line are `deployer_aws`'s;
//! the one Lambda-specific kind is a conflict (another update in progress).
//!
//! Requests deployer sends to Lambda carry no environment variables, so no message can echo
//! one (nothing is redacted); the raw response (a `GetFunction` answer holds the environment
//! values) is never shown.

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use deployer_aws::{ErrorClass, Redactor, classify};
use deployer_core::DeployError;

/// The [`DeployError::Api`] of a failed `operation` (`deployer_aws::api_error`).
pub(crate) fn api_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    deployer_aws::api_error(operation, error, &Redactor::default())
}

/// Whether the function, version or alias a call names does not exist.
pub(crate) fn is_not_found<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    classify(error) == ErrorClass::NotFound
}

/// The updates that Lambda refuses with `ResourceConflictException` while another update of
/// the function is in progress.
pub(crate) trait Conflict {
    /// `ResourceConflictException`: wait and retry.
    fn is_conflict(&self) -> bool;
}

macro_rules! conflicts {
    ($($module:ident :: $error:ident),* $(,)?) => {$(
        impl Conflict for aws_sdk_lambda::operation::$module::$error {
            fn is_conflict(&self) -> bool {
                matches!(self, Self::ResourceConflictException(_))
            }
        }
    )*};
}

conflicts!(
    update_function_code::UpdateFunctionCodeError,
    publish_version::PublishVersionError,
    update_alias::UpdateAliasError,
    create_alias::CreateAliasError,
);

/// Whether a failed call is a `ResourceConflictException`.
pub(crate) fn is_conflict<E: Conflict, R>(error: &SdkError<E, R>) -> bool {
    error.as_service_error().is_some_and(Conflict::is_conflict)
}
