//! Fixtures for tests of the Lambda deployers (feature `testing`): SDK responses describing a
//! function in a given state, for `aws-smithy-mocks` rules.
//!
//! Every fixture carries an environment variable whose value is [`SECRET`], so a test can
//! check that no summary, progress message or error ever contains it.

use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeOutput;
use aws_sdk_lambda::types::{
    Architecture, EnvironmentResponse, FunctionCodeLocation, FunctionConfiguration,
    LastUpdateStatus, LastUpdateStatusReasonCode, PackageType, State,
};

/// The value of the fixtures' `DB_PASSWORD` environment variable.
pub const SECRET: &str = "hunter2-do-not-print";

/// A function's state, turned into any of the responses that describe it.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Function name.
    pub name: String,
    /// Zip or image.
    pub package: PackageType,
    /// The architecture.
    pub architecture: Architecture,
    /// `CodeSha256`.
    pub code_sha256: String,
    /// `Code.ImageUri` (image functions).
    pub image_uri: Option<String>,
    /// `State`.
    pub state: State,
    /// `LastUpdateStatus`.
    pub status: LastUpdateStatus,
    /// `LastUpdateStatusReason` and its code.
    pub reason: Option<(String, LastUpdateStatusReasonCode)>,
    /// `RevisionId`.
    pub revision: String,
    /// `Version` (`$LATEST` or a number).
    pub version: String,
}

impl Fixture {
    /// A settled x86_64 zip function holding code `code_sha256`.
    pub fn zip(name: &str, code_sha256: &str) -> Self {
        Fixture {
            name: name.into(),
            package: PackageType::Zip,
            architecture: Architecture::X8664,
            code_sha256: code_sha256.into(),
            image_uri: None,
            state: State::Active,
            status: LastUpdateStatus::Successful,
            reason: None,
            revision: "rev-1".into(),
            version: "$LATEST".into(),
        }
    }

    /// A settled x86_64 image function running `image_uri`.
    pub fn image(name: &str, image_uri: &str, code_sha256: &str) -> Self {
        Fixture {
            package: PackageType::Image,
            image_uri: Some(image_uri.into()),
            ..Fixture::zip(name, code_sha256)
        }
    }

    /// With another `LastUpdateStatus`.
    pub fn status(mut self, status: LastUpdateStatus) -> Self {
        self.status = status;
        self
    }

    /// With another `State`.
    pub fn state(mut self, state: State) -> Self {
        self.state = state;
        self
    }

    /// `LastUpdateStatus: Failed` with a reason.
    pub fn failed(mut self, reason: &str, code: LastUpdateStatusReasonCode) -> Self {
        self.status = LastUpdateStatus::Failed;
        self.reason = Some((reason.into(), code));
        self
    }

    /// With another architecture.
    pub fn architecture(mut self, architecture: Architecture) -> Self {
        self.architecture = architecture;
        self
    }

    /// With another code.
    pub fn code(mut self, code_sha256: &str) -> Self {
        self.code_sha256 = code_sha256.into();
        self
    }

    /// With another revision id.
    pub fn revision(mut self, revision: &str) -> Self {
        self.revision = revision.into();
        self
    }

    /// As published version `version`.
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.into();
        self
    }

    /// The function ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            self.name
        )
    }

    /// The configuration.
    pub fn configuration(&self) -> FunctionConfiguration {
        FunctionConfiguration::builder()
            .function_name(&self.name)
            .function_arn(self.arn())
            .code_sha256(&self.code_sha256)
            .package_type(self.package.clone())
            .architectures(self.architecture.clone())
            .state(self.state.clone())
            .last_update_status(self.status.clone())
            .set_last_update_status_reason(self.reason.as_ref().map(|(r, _)| r.clone()))
            .set_last_update_status_reason_code(self.reason.as_ref().map(|(_, c)| c.clone()))
            .revision_id(&self.revision)
            .version(&self.version)
            .last_modified(format!("2026-01-01T00:00:00.000+0000 {}", self.revision))
            .environment(
                EnvironmentResponse::builder()
                    .variables("DB_PASSWORD", SECRET)
                    .build(),
            )
            .build()
    }

    /// The `GetFunction` response.
    pub fn get_function(&self) -> GetFunctionOutput {
        let code = FunctionCodeLocation::builder()
            .set_image_uri(self.image_uri.clone())
            .set_resolved_image_uri(self.image_uri.clone())
            .build();
        GetFunctionOutput::builder()
            .configuration(self.configuration())
            .code(code)
            .build()
    }

    /// The `GetFunctionConfiguration` response.
    pub fn get_configuration(&self) -> GetFunctionConfigurationOutput {
        let c = self.configuration();
        GetFunctionConfigurationOutput::builder()
            .set_function_name(c.function_name().map(Into::into))
            .set_function_arn(c.function_arn().map(Into::into))
            .set_code_sha256(c.code_sha256().map(Into::into))
            .set_package_type(c.package_type().cloned())
            .set_architectures(Some(c.architectures().to_vec()))
            .set_state(c.state().cloned())
            .set_last_update_status(c.last_update_status().cloned())
            .set_last_update_status_reason(c.last_update_status_reason().map(Into::into))
            .set_last_update_status_reason_code(c.last_update_status_reason_code().cloned())
            .set_revision_id(c.revision_id().map(Into::into))
            .set_version(c.version().map(Into::into))
            .set_last_modified(c.last_modified().map(Into::into))
            .set_environment(c.environment().cloned())
            .build()
    }

    /// The `UpdateFunctionCode` response (an update just started).
    pub fn update_output(&self) -> UpdateFunctionCodeOutput {
        UpdateFunctionCodeOutput::builder()
            .function_name(&self.name)
            .function_arn(self.arn())
            .code_sha256(&self.code_sha256)
            .package_type(self.package.clone())
            .state(State::Active)
            .last_update_status(LastUpdateStatus::InProgress)
            .revision_id(&self.revision)
            .environment(
                EnvironmentResponse::builder()
                    .variables("DB_PASSWORD", SECRET)
                    .build(),
            )
            .build()
    }
}
