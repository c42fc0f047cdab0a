//! The image pipeline shared by the image deployers (ECS, AgentCore, Lambda image): given a
//! service's content tag, ask the registry whether it already has `repository:tag` and only
//! when it does not, build the image, push it, and confirm it by its digest.
//!
//! - [`ImageBuilder`]: `docker buildx build` (or `docker build` without buildx), `podman build`
//!   or `buildah bud`, found automatically or chosen in the manifest; spawned with an argument
//!   vector, output streamed to progress events, a failure carrying the exit code and the last
//!   lines of output.
//! - [`Registry`]: ECR through its API (`DescribeImages`; a missing repository is an error, an
//!   unknown tag a clean "no"; `GetAuthorizationToken` for the builder's login, the password on
//!   stdin only), any other registry through the OCI distribution API (`HEAD` on the manifest).
//! - [`Pipeline`]: check → build → push → confirm, reported as an [`ImageReport`].
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
//! use deployer_image::{ImageRequest, Pipeline, Registry};
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
//!             platform: "linux/amd64".into(),
//!             build_args: Default::default(),
//!         },
//!         &deployer_core::Progress::discard("api"),
//!     )
//!     .await?;
//! println!("{} (built: {})", report.artifact.deploy_uri(), report.built);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod builder;
mod error;
mod pipeline;
mod registry;

pub use builder::{BuildRequest, ImageBuilder};
pub use error::ImageError;
pub use pipeline::{ImageReport, ImageRequest, Pipeline};
pub use registry::{EcrHost, Registry};
