//! Exit codes: 0 success, 1 a deploy or check failed, 2 usage or configuration error.

use std::process::ExitCode;

use deployer_core::DeployError;
use deployer_core::manifest::ManifestError;

/// The process exit status of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for succeeded.
    Success,
    /// A deploy, build or check ran and failed.
    Failure,
    /// The command line, the manifest or the environment is wrong; nothing was changed.
    Usage,
    /// `plan --detailed-exitcode`: the plan succeeded and changes are pending.
    Changes,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage | Exit::Changes => 2,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// A usage or configuration error raised by the cli itself (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// Maps an error to its exit code by looking through its chain.
pub(crate) fn classify(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if cause.is::<UsageError>()
            || cause.is::<ManifestError>()
            || cause.is::<crate::lookups::LookupError>()
        {
            return Exit::Usage;
        }
        if let Some(external) = cause.downcast_ref::<deployer_engine::External>() {
            return if external.usage {
                Exit::Usage
            } else {
                Exit::Failure
            };
        }
        if let Some(engine) = cause.downcast_ref::<deployer_engine::EngineError>() {
            return if engine.is_usage() {
                Exit::Usage
            } else {
                Exit::Failure
            };
        }
        if let Some(deploy) = cause.downcast_ref::<DeployError>() {
            return if deploy.is_config() {
                Exit::Usage
            } else {
                Exit::Failure
            };
        }
        #[cfg(feature = "config")]
        if let Some(source) = cause.downcast_ref::<deployer_config::SourceError>() {
            return match source {
                deployer_config::SourceError::Invalid(_) => Exit::Usage,
                deployer_config::SourceError::Read { .. } => Exit::Failure,
            };
        }
        #[cfg(feature = "image")]
        if let Some(image) = cause.downcast_ref::<deployer_image::ImageError>() {
            return if image.is_config() {
                Exit::Usage
            } else {
                Exit::Failure
            };
        }
    }
    Exit::Failure
}
