//! SDK errors in deployer's words, through `deployer-aws` (one classification and one line for
//! every deployer): the line (`Code: message`, or the chain of causes when no service
//! answered) and a class that decides the exit code.

use std::error::Error;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use deployer_aws::ErrorClass;

/// What kind of failure an SDK call had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// The named resource does not exist (a project, a bucket, a build).
    NotFound,
    /// The caller may not do this.
    Denied,
    /// Anything else: throttling after retries, 5xx, a dropped connection.
    Other,
}

impl Class {
    /// Whether fixing it means changing the configuration (exit 2), not running again.
    pub(crate) fn is_config(self) -> bool {
        matches!(self, Class::NotFound | Class::Denied)
    }
}

/// The one-line message and class of an SDK error.
pub(crate) fn describe<E>(error: &SdkError<E, HttpResponse>) -> (String, Class)
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let class = match deployer_aws::classify(error) {
        ErrorClass::NotFound => Class::NotFound,
        ErrorClass::AccessDenied => Class::Denied,
        _ => Class::Other,
    };
    (deployer_aws::error_line(error), class)
}
