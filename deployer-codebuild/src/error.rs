//! Why a CodeBuild build could not be run or did not succeed.

/// A failure of one remote build, from the upload to the last log line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeBuildError {
    /// The build context could not be read or archived.
    #[error("cannot archive the build context: {path}: {reason}")]
    Archive {
        /// The file or directory.
        path: String,
        /// Why, in one line.
        reason: String,
    },
    /// The context archive could not be checked for or uploaded.
    #[error("cannot upload the build context to s3://{bucket}/{key}: {message}")]
    Upload {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The SDK error, one line.
        message: String,
        /// A missing bucket or denied access.
        config: bool,
    },
    /// `StartBuild` failed.
    #[error("cannot start a build of CodeBuild project `{project}`: {message}")]
    Start {
        /// The CodeBuild project.
        project: String,
        /// The SDK error, one line.
        message: String,
        /// A missing project or denied access.
        config: bool,
    },
    /// An answer lacked a field the flow needs.
    #[error("CodeBuild's {operation} answer has no `{field}`")]
    MissingField {
        /// The operation.
        operation: &'static str,
        /// The field.
        field: &'static str,
    },
    /// The build ended in another state than `SUCCEEDED`.
    #[error(
        "CodeBuild build {build_id} {status} in phase {phase}{context}; last lines of its log:\n{tail}"
    )]
    Failed {
        /// The build id.
        build_id: String,
        /// `FAILED`, `FAULT`, `TIMED_OUT` or `STOPPED`.
        status: String,
        /// The phase that failed (`BUILD`, `PRE_BUILD`, …), or the last phase seen.
        phase: String,
        /// `: <status code>: <message>` from the phase's contexts, or empty.
        context: String,
        /// The last lines of the build's log (`(no log lines)` when there were none).
        tail: String,
    },
    /// The build did not end within the deadline; it was stopped.
    #[error(
        "CodeBuild build {build_id} did not finish within {waited} (last phase {phase}); it was stopped; last lines of its log:\n{tail}"
    )]
    Deadline {
        /// The build id.
        build_id: String,
        /// How long it was waited for, e.g. `1h 10m`.
        waited: String,
        /// The last phase seen.
        phase: String,
        /// The last lines of its log.
        tail: String,
    },
    /// Following the build failed for longer than its retries.
    #[error("cannot follow CodeBuild build {build_id}: {message}")]
    Follow {
        /// The build id.
        build_id: String,
        /// The SDK error, one line.
        message: String,
    },
}

impl CodeBuildError {
    /// Whether it is a configuration problem (exit 2) rather than a build that failed.
    pub fn is_config(&self) -> bool {
        match self {
            CodeBuildError::Upload { config, .. } | CodeBuildError::Start { config, .. } => *config,
            _ => false,
        }
    }
}
