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
    /// A registry write (moving a tag) was not made: the run may no longer change the service
    /// (its `Progress` fence said no, e.g. it lost its deploy lock).
    #[error("stopped before {call}: {reason}")]
    Fenced {
        /// The call that was not made, e.g. `PutImage`.
        call: String,
        /// Why, in one line.
        reason: String,
    },
    /// A listed file of the build context is neither a regular file nor a symlink.
    #[error(
        "`{path}` in the build context of service `{service}` is {found}; only regular files and symlinks can be built from: remove it from git"
    )]
    ContextUnsupported {
        /// The service.
        service: String,
        /// The file.
        path: String,
        /// What it is (`a fifo`, `a socket`, `a device`).
        found: &'static str,
    },
    /// The caller listed a build context path that does not stay inside the context.
    #[error(
        "the build context of service `{service}` lists `{path}`, which is not a `/`-separated path inside the context (no `..`, no leading `/`, no empty parts); this is a bug in the caller"
    )]
    ContextPath {
        /// The service.
        service: String,
        /// The path as listed.
        path: String,
    },
    /// Staging the build context (links, copies, directories) failed on the file system.
    /// (The I/O error is part of the message: the cli shows an image error by its `Display`.)
    #[error("cannot stage the build context at {path}: {reason}")]
    Stage {
        /// The file or directory that could not be read or written.
        path: String,
        /// The I/O error, in one line.
        reason: String,
    },
    /// The image behind a tag is an index (or another manifest type) where the target needs a
    /// single-platform image manifest.
    #[error(
        "`{image}` is {what} ({media_type}), but Lambda and AgentCore accept only a single-platform image manifest: build it for one platform without attestations (`docker buildx build --provenance=false --sbom=false --platform …`, as deployer's own builds do) and push it again, or delete the tag so deployer builds it"
    )]
    NotSingleManifest {
        /// The image reference (`registry/repository:tag`).
        image: String,
        /// What it is, e.g. `an image index of linux/amd64, linux/arm64 and 2 attestations`.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// The image behind a tag was built for another platform than the service's.
    #[error(
        "`{image}` in the registry is {found}, the service wants {wanted}: it was built elsewhere and deployer does not reuse it; delete the tag or fix `platform`"
    )]
    WrongPlatform {
        /// The image reference (`registry/repository:tag`).
        image: String,
        /// What the registry holds, e.g. `linux/amd64`.
        found: String,
        /// The service's platform.
        wanted: String,
    },
    /// A platform string that is not `os/arch[/variant]`.
    #[error("`{platform}` is not a platform; write `os/arch[/variant]`, e.g. `linux/arm64`")]
    InvalidPlatform {
        /// The text.
        platform: String,
    },
    /// An image reference (e.g. a Dockerfile's `FROM`) that does not parse.
    #[error("`{reference}` is not an image reference: {message}")]
    InvalidReference {
        /// The reference.
        reference: String,
        /// Why, in one line.
        message: String,
    },
    /// A remote build (CodeBuild) could not run or ran and failed; `message` says where and
    /// why in the remote builder's words (the failing phase, the last lines of its log).
    #[error("image build of service `{service}` on {builder} failed: {message}")]
    RemoteFailed {
        /// The service.
        service: String,
        /// The remote builder, e.g. `codebuild acme-images`.
        builder: String,
        /// What went wrong.
        message: String,
        /// Whether it is a configuration problem (a project or bucket that does not exist,
        /// access denied) rather than a build that ran and failed.
        config: bool,
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
                | ImageError::NotSingleManifest { .. }
                | ImageError::WrongPlatform { .. }
                | ImageError::InvalidPlatform { .. }
                | ImageError::InvalidReference { .. }
                | ImageError::RemoteFailed { config: true, .. }
        )
    }
}
