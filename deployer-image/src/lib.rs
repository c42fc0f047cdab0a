//! The image pipeline shared by the image deployers (ECS, AgentCore, Lambda image): given a
//! service's content tag, ask the registry whether it already has `repository:tag` and only
//! when it does not, build the image, push it, and confirm it by its digest.
//!
//! - [`ImageBuilder`]: `docker buildx build` (or `docker build` without buildx), `podman build`
//!   or `buildah bud`, found automatically or chosen in the manifest; spawned with an argument
//!   vector, output streamed to progress events, a failure carrying the exit code and the last
//!   lines of output. Every builder pushes one single-platform Docker v2 schema 2 image
//!   manifest: no index, no attestation manifests (`--provenance=false --sbom=false` for
//!   buildx, `push --format v2s2` for podman and buildah).
//! - [`Registry`]: ECR through its API (`DescribeImages`; a missing repository is an error, an
//!   unknown tag a clean "no"; `GetAuthorizationToken` for the builder's login, the password on
//!   stdin only), any other registry through the OCI distribution API (`HEAD` on the manifest).
//!   [`Registry::manifest`] reads what a tag is (media type, image or index, platform), and
//!   [`check_accepted`] says whether a target takes it (Lambda and AgentCore need a
//!   single-platform image manifest; every target needs the service's platform).
//! - [`Pipeline`]: check → build → push → confirm, reported as an [`ImageReport`]; with a
//!   [`RemoteBuilder`] ([`Pipeline::ensure_on`]): check → remote build and push → the same
//!   confirm, so no image builder is needed on this machine.
//! - [`BaseImageResolver`]: the digest a registry serves now for a `FROM name:tag`, one request
//!   per distinct reference per run, with the builder's credentials.
//!
//! # The build context is exactly the listed files
//!
//! [`ImageRequest::context_files`] is the build context as the caller's hasher listed it (the
//! tracked files under the context directory, `.dockerignore` applied). Before a build, the
//! pipeline stages exactly those files in a fresh directory and gives the builder that
//! directory as its context, and the Dockerfile by absolute path (`-f`); the directory is
//! removed afterwards, also when the build fails or is cancelled. Nothing else in the work
//! tree — untracked files, ignored files, debris — can reach the image, so the content tag
//! covers everything the build can copy. An empty list is an empty context.
//!
//! - Each file is read as the hasher reads it for the tag (`lstat`): a regular file gets mode
//!   `0755` when it has the owner's execute bit (git's rule), else `0644`, as in a fresh
//!   checkout: the mode in the image follows what was hashed, not the work tree's umask. A
//!   symlink is recreated with its target string. Directories are `0755`. A listed file
//!   deleted from the work tree is left out, as the hash leaves it out. Submodules are not
//!   part of a context (their files are not listed).
//! - Files are hard links from the context when the staging directory is on its file system
//!   and the file already has its mode, else copies. The staging directory is made in the
//!   system temporary directory, or under `<git dir>/deployer/contexts` when only that is on
//!   the context's file system (a tmpfs `/tmp`); leftovers of killed runs there are removed
//!   after a day.
//! - A fifo, socket or device at a listed path stops the build
//!   ([`ImageError::ContextUnsupported`]), as it stops the hash.
//!
//! Why a staged directory and not a tar streamed to `docker build -`: a directory is the one
//! context every builder takes the same way (docker with or without buildx, podman, buildah;
//! `buildah bud` takes a directory or a URL as its context, not a tar on stdin: `-` is only
//! for the Containerfile), so all of them get the same bytes, and the
//! builders' own handling of the Dockerfile and `.dockerignore` stays as it is. Hard links
//! make it cheap.
//!
//! Deployers roll services over to the digest form `registry/repo@sha256:…` (see
//! [`deployer_core::ImageArtifact`]): a tag can be moved, a digest cannot, so a rollback to a
//! recorded digest brings back exactly the same bytes.
//!
//! The `lambda-zip` deployer does not depend on this crate.
//!
//! # Using it alone
//!
//! ```no_run
//! # async fn demo() -> Result<(), deployer_image::ImageError> {
//! use deployer_image::{ContextFile, ContextFileKind, ImageRequest, Pipeline, Registry};
//!
//! let pipeline = Pipeline::new(Registry::oci("127.0.0.1:5000"), None);
//! let report = pipeline
//!     .ensure(
//!         &ImageRequest {
//!             service: "api".into(),
//!             repository: "acme/api".into(),
//!             tag: "3f2a9c".into(),
//!             dockerfile: "Dockerfile".into(),
//!             context: ".".into(),
//!             context_files: vec![
//!                 ContextFile::new("app.py", ContextFileKind::Regular),
//!                 ContextFile::new("run.sh", ContextFileKind::Executable),
//!             ],
//!             platform: "linux/amd64".into(),
//!             build_args: Default::default(),
//!         },
//!         &deployer_core::Progress::discard("api"),
//!     )
//!     .await?;
//! println!("{} (built: {})", report.artifact.deploy_uri(), report.built);
//! # Ok(()) }
//! ```
//!
//! `examples/image-ensure.rs` is a complete program that hashes a Dockerfile's inputs with `hasher`
//! and builds and pushes the image only when the registry lacks it (the AWS configuration from the
//! standard environment, progress on stderr, the outcome on stdout, a non-zero exit code on
//! failure): `cargo run -p deployer-image --example image-ensure -- --registry R --repository N`.
#![warn(missing_docs)]

mod base;
pub mod builder;
pub mod context;
mod error;
mod manifest;
mod pipeline;
mod registry;
mod remote;

pub use base::{BaseImageResolver, resolve_base_image};
pub use builder::{BuildRequest, ImageBuilder};
pub use context::{ContextFile, ContextFileKind};
pub use error::ImageError;
pub use manifest::{IndexEntry, ManifestInfo, ManifestKind, check_accepted};
pub use pipeline::{ImageReport, ImageRequest, Pipeline};
pub use registry::{EcrHost, Registry};
pub use remote::{RemoteBuild, RemoteBuilder};

/// The tag the image a deploy recorded as live carries in its repository (moved at each
/// recorded deploy): an ECR lifecycle rule that matches the `deployer-` prefix at a higher
/// priority keeps it (README, "A rollback target that vanished").
pub const KEPT_CURRENT: &str = "deployer-current";

/// The tag the recorded rollback target (`previous`) carries, kept like [`KEPT_CURRENT`].
pub const KEPT_PREVIOUS: &str = "deployer-previous";
