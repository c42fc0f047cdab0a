//! SDK errors: one classification ([`classify`]) and one line ([`error_line`]).
//!
//! Every deployer decides from the class what to do next (poll again, report a missing
//! resource, fail) and reports the line, so that "retryable" means the same for ECS, AgentCore,
//! Lambda and SageMaker, and no report ever shows the SDK's `Debug` form of a raw response.

use std::error::Error;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use deployer_core::{DeployError, cause_chain, one_line};

use crate::Redactor;

/// Error codes of throttling: the SDK's own list (`aws-runtime`'s `THROTTLING_ERRORS`) without
/// `LimitExceededException`, which ECS and others answer for a quota (trying again does not
/// help).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes of a passing server-side problem (beside any HTTP 5xx).
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "ServerException",
    "ServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Error codes that mean the caller may not make the call: IAM said no, or the credentials are
/// unknown, expired or do not sign.
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "AuthorizationError",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "NotAuthorized",
    "SignatureDoesNotMatch",
    "UnauthorizedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
];

/// What kind of failure an SDK error is, for deciding what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The service throttled the call (HTTP 429 or a throttling code): try again later.
    Throttling,
    /// A passing failure: a server error (HTTP 5xx or a server-side code), a timeout, a
    /// connection that failed, an answer that could not be read. Try again later.
    Transient,
    /// The resource the call names does not exist: a code ending in `NotFound` or
    /// `NotFoundException`, S3's `NoSuch…` (`NoSuchBucket`, `NoSuchKey`), or a validation error saying so (SageMaker's `ValidationException`
    /// "Could not find …", CloudFormation's `ValidationError` "… does not exist").
    NotFound,
    /// The caller may not make the call (HTTP 403, `AccessDenied…`, unknown or expired
    /// credentials).
    AccessDenied,
    /// Anything else: a wrong request, a conflict, a quota. The same call fails again.
    Other,
}

impl ErrorClass {
    /// Whether trying again later may succeed: [`ErrorClass::Throttling`] and
    /// [`ErrorClass::Transient`]. (The SDK has retried these already; a deployer's poll loop
    /// counts them as "still waiting" instead of failing the wait.)
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Throttling | ErrorClass::Transient)
    }
}

/// The class of `error`.
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> ErrorClass
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            classify_answer(service.raw().status().as_u16(), err.code(), err.message())
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass::Transient
        }
        _ => ErrorClass::Other,
    }
}

/// The class of an error answer with HTTP `status`, error `code` and `message`.
fn classify_answer(status: u16, code: Option<&str>, message: Option<&str>) -> ErrorClass {
    let code = code.unwrap_or_default();
    if status == 429 || THROTTLING_CODES.contains(&code) {
        ErrorClass::Throttling
    } else if status >= 500 || TRANSIENT_CODES.contains(&code) {
        ErrorClass::Transient
    } else if code.ends_with("NotFound")
        || code.ends_with("NotFoundException")
        || code.starts_with("NoSuch")
        || (matches!(code, "ValidationException" | "ValidationError")
            && message.is_some_and(|message| {
                message.contains("Could not find")
                    || message.contains("could not find")
                    || message.contains("does not exist")
            }))
    {
        ErrorClass::NotFound
    } else if status == 403 || ACCESS_DENIED_CODES.contains(&code) {
        ErrorClass::AccessDenied
    } else {
        ErrorClass::Other
    }
}

/// `error` in one line: `Code: message` when the service answered (`Code` alone without a
/// message, `HTTP status N …` without either), else the chain of causes (a refused connection,
/// a timeout, an answer that could not be read).
///
/// Deliberately not the SDK's `DisplayErrorContext`: its tail is the `Debug` form of the error
/// and of the raw HTTP response, whose body may carry secrets (a function's environment, a
/// registry password). The line is not redacted: pass it through the resource's [`Redactor`]
/// (or use [`Failure`]) when the request or the answer can carry secret values.
pub fn error_line<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let SdkError::ServiceError(service) = error else {
        return cause_chain(error);
    };
    let err = service.err();
    let text = match (present(err.code()), present(err.message())) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(message)) => message.to_owned(),
        (None, None) => {
            let status = service.raw().status().as_u16();
            // A modelled error names itself; the SDK's error for an answer it could not
            // classify only says "unhandled error".
            match cause_chain(err) {
                text if text.is_empty() || text.starts_with("unhandled error") => {
                    format!("HTTP status {status} without an error code or message")
                }
                text => format!("HTTP status {status}: {text}"),
            }
        }
    };
    one_line(&text)
}

/// `text`, unless it is blank.
fn present(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.trim().is_empty())
}

/// A failed SDK call, reduced to what a deployer reports and decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The service's error code, when it sent one.
    pub code: Option<String>,
    /// [`error_line`], with the values of the [`Redactor`] replaced by `***`.
    pub message: String,
    /// [`classify`].
    pub class: ErrorClass,
}

impl Failure {
    /// Reduces `error`, redacting the values `redactor` knows.
    pub fn new<E>(error: &SdkError<E, HttpResponse>, redactor: &Redactor) -> Self
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        Failure {
            code: error
                .as_service_error()
                .and_then(|err| err.code())
                .map(str::to_owned),
            message: redactor.apply(&error_line(error)),
            class: classify(error),
        }
    }

    /// Whether trying again later may succeed ([`ErrorClass::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }

    /// The [`DeployError::Api`] of a failed `operation`.
    pub fn into_error(self, operation: impl Into<String>) -> DeployError {
        DeployError::api(operation, self.code, self.message)
    }
}

/// The [`DeployError::Api`] of a failed `operation`: its code, [`error_line`] redacted by
/// `redactor` ([`Redactor::default`] for calls that carry no secret values).
pub fn api_error<E>(
    operation: impl Into<String>,
    error: &SdkError<E, HttpResponse>,
    redactor: &Redactor,
) -> DeployError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    Failure::new(error, redactor).into_error(operation)
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use aws_sdk_ssm::operation::get_parameter::GetParameterError;
    use aws_sdk_ssm::operation::put_parameter::PutParameterError;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// A service error as the SDK builds one for an answer it has no model for.
    #[derive(Debug)]
    struct Answer(ErrorMetadata);

    impl fmt::Display for Answer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("unhandled error")
        }
    }

    impl Error for Answer {}

    impl ProvideErrorMetadata for Answer {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    /// A modelled error, named by its `Display`.
    #[derive(Debug)]
    struct Modelled(ErrorMetadata);

    impl fmt::Display for Modelled {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("ResourceNotFoundException")
        }
    }

    impl Error for Modelled {}

    impl ProvideErrorMetadata for Modelled {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    fn answer(
        status: u16,
        code: Option<&str>,
        message: Option<&str>,
    ) -> SdkError<Answer, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        if let Some(message) = message {
            meta = meta.message(message);
        }
        let raw = HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from("{\"secret\": \"s3cr3t\"}"),
        );
        SdkError::service_error(Answer(meta.build()), raw)
    }

    #[test]
    fn throttling_is_429_or_a_throttling_code() {
        for error in [
            answer(400, Some("ThrottlingException"), Some("Rate exceeded")),
            answer(400, Some("TooManyRequestsException"), None),
            answer(400, Some("RequestLimitExceeded"), None),
            answer(400, Some("Throttling"), None),
            answer(429, None, None),
        ] {
            assert_eq!(classify(&error), ErrorClass::Throttling, "{error:?}");
            assert!(classify(&error).is_retryable());
        }
    }

    #[test]
    fn transient_is_5xx_a_server_code_or_no_answer() {
        let connection = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        for error in [
            answer(500, None, None),
            answer(503, Some("ServiceUnavailableException"), None),
            answer(400, Some("RequestTimeoutException"), None),
            answer(400, Some("InternalFailure"), None),
            SdkError::timeout_error("no answer within 3s"),
            SdkError::dispatch_failure(ConnectorError::io(Box::new(connection))),
            SdkError::response_error(
                "the body ended early",
                HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::empty()),
            ),
        ] {
            assert_eq!(classify(&error), ErrorClass::Transient, "{error:?}");
            assert!(classify(&error).is_retryable());
        }
        let construction: SdkError<Answer, HttpResponse> =
            SdkError::construction_failure("no region");
        assert_eq!(classify(&construction), ErrorClass::Other);
    }

    #[test]
    fn not_found_is_a_not_found_code_or_a_validation_error_saying_so() {
        for error in [
            answer(
                400,
                Some("ResourceNotFoundException"),
                Some("no function f"),
            ),
            answer(400, Some("ParameterNotFound"), None),
            answer(400, Some("ClusterNotFoundException"), None),
            answer(404, Some("NoSuchBucket"), Some("The bucket does not exist")),
            answer(404, Some("NoSuchKey"), None),
            answer(
                400,
                Some("ValidationException"),
                Some("Could not find endpoint \"e\"."),
            ),
            answer(
                400,
                Some("ValidationError"),
                Some("Stack with id s does not exist"),
            ),
        ] {
            assert_eq!(classify(&error), ErrorClass::NotFound, "{error:?}");
            assert!(!classify(&error).is_retryable());
        }
        let invalid = answer(
            400,
            Some("ValidationException"),
            Some("1 validation error detected"),
        );
        assert_eq!(classify(&invalid), ErrorClass::Other);
    }

    #[test]
    fn access_denied_is_403_or_an_access_code() {
        for error in [
            answer(
                400,
                Some("AccessDeniedException"),
                Some("not authorized to perform"),
            ),
            answer(400, Some("UnrecognizedClientException"), None),
            answer(400, Some("ExpiredTokenException"), None),
            answer(403, None, None),
        ] {
            assert_eq!(classify(&error), ErrorClass::AccessDenied, "{error:?}");
            assert!(!classify(&error).is_retryable());
        }
    }

    #[test]
    fn everything_else_is_other() {
        for error in [
            answer(400, Some("ConflictException"), None),
            answer(400, Some("LimitExceededException"), Some("quota")),
            answer(400, Some("InvalidParameterValueException"), None),
            answer(400, None, None),
        ] {
            assert_eq!(classify(&error), ErrorClass::Other, "{error:?}");
        }
    }

    #[test]
    fn the_line_is_code_and_message_never_the_raw_response() {
        let cases = [
            (
                answer(400, Some("ThrottlingException"), Some("Rate\n  exceeded")),
                "ThrottlingException: Rate exceeded",
            ),
            (
                answer(400, Some("ConflictException"), None),
                "ConflictException",
            ),
            (
                answer(400, Some("ConflictException"), Some(" ")),
                "ConflictException",
            ),
            (
                answer(400, None, Some("something broke")),
                "something broke",
            ),
            (
                answer(502, None, None),
                "HTTP status 502 without an error code or message",
            ),
        ];
        for (error, line) in cases {
            assert_eq!(error_line(&error), line);
        }
        // A modelled error without metadata (as a test double builds one) names itself.
        let modelled = SdkError::service_error(
            Modelled(ErrorMetadata::builder().build()),
            HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::empty()),
        );
        assert_eq!(
            error_line(&modelled),
            "HTTP status 400: ResourceNotFoundException"
        );
        let timeout: SdkError<Answer, HttpResponse> =
            SdkError::timeout_error("no answer within 3s");
        assert_eq!(
            error_line(&timeout),
            "request has timed out: no answer within 3s"
        );
        for error in [answer(500, None, None), answer(400, Some("X"), Some("y"))] {
            assert!(!error_line(&error).contains("s3cr3t"));
            assert!(!error_line(&error).contains("unhandled error"));
        }
    }

    #[test]
    fn a_failure_is_redacted_and_keeps_code_and_class() {
        let error = answer(
            400,
            Some("ValidationException"),
            Some("Environment value hunter22 is not valid"),
        );
        let failure = Failure::new(&error, &Redactor::new(["hunter22"]));
        assert_eq!(
            failure,
            Failure {
                code: Some("ValidationException".into()),
                message: "ValidationException: Environment value *** is not valid".into(),
                class: ErrorClass::Other,
            }
        );
        assert!(!failure.is_retryable());
        let DeployError::Api {
            operation,
            code,
            message,
        } = api_error("CreateModel", &error, &Redactor::new(["hunter22"]))
        else {
            panic!("an API error")
        };
        assert_eq!(operation, "CreateModel");
        assert_eq!(code.as_deref(), Some("ValidationException"));
        assert!(!message.contains("hunter22"));
    }

    /// The same rules on errors the SDK built from HTTP answers (a real client, mocked at the
    /// HTTP layer).
    #[tokio::test]
    async fn answers_through_the_sdk_are_classified_alike() {
        let throttled = mock!(aws_sdk_ssm::Client::get_parameter).then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
            )
        });
        let missing = mock!(aws_sdk_ssm::Client::get_parameter).then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(r#"{"__type":"ParameterNotFound"}"#),
            )
        });
        let denied = mock!(aws_sdk_ssm::Client::put_parameter).then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(
                    r#"{"__type":"AccessDeniedException","message":"User is not authorized"}"#,
                ),
            )
        });
        let client = mock_client!(
            aws_sdk_ssm,
            RuleMode::Sequential,
            [&throttled, &missing, &denied]
        );
        let error = client.get_parameter().name("/a").send().await.unwrap_err();
        assert_eq!(classify(&error), ErrorClass::Throttling);
        assert_eq!(error_line(&error), "ThrottlingException: Rate exceeded");
        let error: SdkError<GetParameterError, HttpResponse> =
            client.get_parameter().name("/a").send().await.unwrap_err();
        assert!(
            error
                .as_service_error()
                .is_some_and(GetParameterError::is_parameter_not_found)
        );
        assert_eq!(classify(&error), ErrorClass::NotFound);
        assert_eq!(error_line(&error), "ParameterNotFound");
        let error: SdkError<PutParameterError, HttpResponse> = client
            .put_parameter()
            .name("/a")
            .value("v")
            .send()
            .await
            .unwrap_err();
        assert_eq!(classify(&error), ErrorClass::AccessDenied);
        assert_eq!(
            error_line(&error),
            "AccessDeniedException: User is not authorized"
        );
    }
}
