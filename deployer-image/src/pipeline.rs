//! The pipeline: check the registry for the content tag; build, push and confirm only when it
//! is missing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use deployer_core::manifest::Builder;
use deployer_core::{ImageArtifact, Phase, Progress};
use tokio::sync::OnceCell;

use crate::builder::{BuildRequest, ImageBuilder};
use crate::{ImageError, Registry};

/// One image to make available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRequest {
    /// The service, for messages.
    pub service: String,
    /// Repository name in the registry.
    pub repository: String,
    /// The content tag.
    pub tag: String,
    /// The Dockerfile (absolute or relative to the working directory).
    pub dockerfile: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
}

/// What [`Pipeline::ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReport {
    /// The image, with its digest.
    pub artifact: ImageArtifact,
    /// Whether it was built and pushed (false: it already was in the registry).
    pub built: bool,
    /// The builder used, when it built.
    pub builder: Option<String>,
    /// Milliseconds spent asking the registry.
    pub check_ms: u64,
    /// Milliseconds spent building.
    pub build_ms: u64,
    /// Milliseconds spent pushing (and confirming the push).
    pub push_ms: u64,
}

/// Builds and pushes images into one registry, only when the registry lacks them.
///
/// The builder is found on first use, so runs where every image already exists need no builder
/// on the machine at all. Registry logins (ECR) happen once per pipeline.
pub struct Pipeline {
    registry: Registry,
    preferred: Option<Builder>,
    builder: OnceCell<ImageBuilder>,
    login: OnceCell<()>,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline pushing to `registry`, building with `preferred` (or the first builder found).
    pub fn new(registry: Registry, preferred: Option<Builder>) -> Self {
        Pipeline {
            registry,
            preferred,
            builder: OnceCell::new(),
            login: OnceCell::new(),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A pipeline with a given builder (no detection).
    pub fn with_builder(registry: Registry, builder: ImageBuilder) -> Self {
        let pipeline = Pipeline::new(registry, Some(builder.kind));
        let _ = pipeline.builder.set(builder);
        pipeline
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `registry/repository` for a repository.
    pub fn repository_uri(&self, repository: &str) -> String {
        format!("{}/{repository}", self.registry.host())
    }

    /// The image's digest if the registry has `repository:tag`.
    pub async fn check(&self, repository: &str, tag: &str) -> Result<Option<String>, ImageError> {
        self.registry.digest(repository, tag).await
    }

    /// Points the mutable `tag` of `repository` at `digest` (see [`Registry::retag`]).
    pub async fn retag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        progress.emit(
            Phase::Push,
            format!(
                "tagging {}@{digest} as :{tag}",
                self.repository_uri(repository)
            ),
        );
        self.registry.retag(repository, digest, tag).await
    }

    /// The builder, detected on first use.
    pub async fn builder(&self) -> Result<&ImageBuilder, ImageError> {
        self.builder
            .get_or_try_init(|| ImageBuilder::detect(self.preferred))
            .await
    }

    /// Makes `request`'s image available in the registry: nothing when it already is, else
    /// build, push, and confirm by asking the registry for its digest.
    pub async fn ensure(
        &self,
        request: &ImageRequest,
        progress: &Progress,
    ) -> Result<ImageReport, ImageError> {
        let repository_uri = self.repository_uri(&request.repository);
        let image = format!("{repository_uri}:{}", request.tag);
        // Two services sharing an image must not build it twice at once.
        let lock = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            in_flight.entry(image.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;

        let start = Instant::now();
        progress.emit(Phase::Check, format!("is {image} in the registry?"));
        let existing = self.check(&request.repository, &request.tag).await?;
        let check_ms = ms(start);
        if let Some(digest) = existing {
            progress.emit(Phase::Check, format!("already in the registry ({digest})"));
            return Ok(ImageReport {
                artifact: ImageArtifact {
                    repository_uri,
                    tag: request.tag.clone(),
                    digest: Some(digest),
                },
                built: false,
                builder: None,
                check_ms,
                build_ms: 0,
                push_ms: 0,
            });
        }

        let builder = self.builder().await?;
        let start = Instant::now();
        builder
            .build(
                &BuildRequest {
                    service: request.service.clone(),
                    image: image.clone(),
                    dockerfile: request.dockerfile.clone(),
                    context: request.context.clone(),
                    platform: request.platform.clone(),
                    build_args: request.build_args.clone(),
                },
                progress,
            )
            .await?;
        let build_ms = ms(start);

        let start = Instant::now();
        self.login
            .get_or_try_init(|| self.login_builder(builder, progress))
            .await?;
        builder.push(&image, progress).await?;
        let digest = self
            .check(&request.repository, &request.tag)
            .await?
            .ok_or_else(|| ImageError::MissingAfterPush {
                image: image.clone(),
            })?;
        progress.emit(Phase::Push, format!("pushed {image} ({digest})"));
        Ok(ImageReport {
            artifact: ImageArtifact {
                repository_uri,
                tag: request.tag.clone(),
                digest: Some(digest),
            },
            built: true,
            builder: Some(builder.describe()),
            check_ms,
            build_ms,
            push_ms: ms(start),
        })
    }

    async fn login_builder(
        &self,
        builder: &ImageBuilder,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        if let Some((user, password)) = self.registry.login_credentials().await? {
            builder
                .login(self.registry.host(), &user, &password, progress)
                .await?;
        }
        Ok(())
    }
}

fn ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}
