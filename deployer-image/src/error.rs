//! Errors of the image pipeline.

/// Why an image could not be checked, built, pushed or logged in for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// No image builder program is usable on this machine.
    #[error(
        "no image builder found: {tried}; install Docker (with its daemon running), podman or buildah, or set `builder` in [project]"
    )]
    NoBuilder {
        /// What was tried and why each failed.
        tried: String,
    },
    /// The builder the manifest or command line asks for is not usable.
    #[error("the {builder} image builder is not usable: {reason}")]
    BuilderUnusable {
        /// The builder.
        builder: String,
        /// Why.
        reason: String,
    },
    /// The build ran and failed.
    #[error(
        "image build of service `{service}` ({builder}) failed with exit code {code}; last lines of its output:\n{tail}"
    )]
    BuildFailed {
        /// The service.
        service: String,
        /// The builder program.
        builder: String,
        /// Its exit code (-1 when killed by a signal).
        code: i32,
        /// The last lines it printed.
        tail: String,
    },
    /// The push ran and failed.
    #[error(
        "{builder} push of `{image}` failed with exit code {code}; last lines of its output:\n{tail}"
    )]
    PushFailed {
        /// The builder program.
        builder: String,
        /// The image pushed.
        image: String,
        /// Its exit code.
        code: i32,
        /// The last lines it printed.
        tail: String,
    },
    /// Logging in to the registry failed.
    #[error("{builder} login to {registry} failed with exit code {code}: {tail}")]
    LoginFailed {
        /// The builder program.
        builder: String,
        /// The registry host.
        registry: String,
        /// Its exit code.
        code: i32,
        /// The last lines it printed (never the password).
        tail: String,
    },
    /// A builder program could not be started.
    #[error("cannot run `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The ECR repository does not exist.
    #[error(
        "ECR repository `{repository}` does not exist in registry {registry}; create it with your infrastructure code (deployer does not create repositories)"
    )]
    RepositoryNotFound {
        /// The repository.
        repository: String,
        /// The registry host.
        registry: String,
    },
    /// A registry API call failed.
    #[error("cannot ask {registry} about `{reference}`: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// An ECR API call failed.
    #[error("ECR {operation} failed: {message}")]
    Ecr {
        /// The operation.
        operation: &'static str,
        /// One line describing the failure.
        message: String,
    },
    /// The image is not in the registry after a push that reported success.
    #[error(
        "`{image}` is not in the registry after its push; check the registry and the builder's credentials"
    )]
    MissingAfterPush {
        /// The image reference.
        image: String,
    },
}

impl ImageError {
    /// Whether this is a configuration problem (fix the manifest, the registry or the machine)
    /// rather than a build or push that ran and failed.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ImageError::NoBuilder { .. }
                | ImageError::BuilderUnusable { .. }
                | ImageError::RepositoryNotFound { .. }
        )
    }
}
