//! SDK errors in this crate's terms, through `deployer-aws` (one classification and one line
//! for every deployer): a failed call is `Code: message` when the service answered, else its
//! chain of causes — never the SDK's `DisplayErrorContext`, whose tail is the raw response.

use std::error::Error;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use deployer_aws::{ErrorClass, Failure, Redactor};
use deployer_core::DeployError;

/// The error code the service answered with, if it answered.
pub(crate) fn code<E>(error: &SdkError<E, HttpResponse>) -> Option<String>
where
    E: ProvideErrorMetadata + Error + 'static,
{
    Failure::new(error, &Redactor::default()).code
}

/// Whether the service throttled the call (the SDK has retried it already).
pub(crate) fn throttled<E>(error: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    deployer_aws::classify(error) == ErrorClass::Throttling
}

/// A failed call as the deployer's error.
pub(crate) fn api<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> DeployError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    deployer_aws::api_error(operation, error, &Redactor::default())
}

/// A failed call whose request carried `secret` values, which the error shows as `***` (an
/// SSM validation error quotes the value it refused).
pub(crate) fn api_redacted<E>(
    operation: &str,
    error: &SdkError<E, HttpResponse>,
    secret: &[&str],
) -> DeployError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    deployer_aws::api_error(operation, error, &Redactor::new(secret))
}

/// Whether a transaction's cancellation reason says "slow down": the reasons worth another try
/// after a pause (they come back inside a `TransactionCanceledException`, which the SDK does
/// not retry).
pub(crate) fn is_throttling_reason(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingError" | "ProvisionedThroughputExceeded" | "TransactionConflict"
    )
}
