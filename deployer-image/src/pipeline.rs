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
use crate::{ContextFile, ImageError, ManifestInfo, Registry, RemoteBuild, RemoteBuilder, context};

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
    /// The build context directory: where the files of `context_files` are read from.
    pub context: PathBuf,
    /// The build context exactly as the hasher listed it (the tracked files under `context`,
    /// `.dockerignore` applied), paths relative to `context`. Only these files reach the
    /// builder; an empty list is an empty context.
    pub context_files: Vec<ContextFile>,
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

    /// What the registry holds under `repository:tag` (see [`Registry::manifest`]): the
    /// manifest's media type, whether it is an index, and the image's platform. Give it to
    /// [`crate::check_accepted`] before deploying to a target that is particular about both.
    pub async fn inspect(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<ManifestInfo>, ImageError> {
        self.registry.manifest(repository, tag).await
    }

    /// Points the mutable `tag` of `repository` at `digest` (see [`Registry::retag`]; the tag
    /// move is preceded by [`Progress::before_mutation`]).
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
        self.registry.retag(repository, digest, tag, progress).await
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
        self.ensure_on(request, None, progress).await
    }

    /// [`Pipeline::ensure`], building on `remote` when given: the context is staged from
    /// exactly the listed files as for a local build, `remote` builds and pushes it, and the
    /// push is confirmed by the registry's digest as for a local build. No local builder is
    /// looked for and no registry login happens on this machine.
    pub async fn ensure_on(
        &self,
        request: &ImageRequest,
        remote: Option<&dyn RemoteBuilder>,
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

        if let Some(remote) = remote {
            let start = Instant::now();
            let staged = context::stage_reported(
                &request.service,
                &request.context,
                &request.context_files,
                progress,
            )
            .await?;
            let dockerfile = std::path::absolute(&request.dockerfile)
                .unwrap_or_else(|_| request.dockerfile.clone());
            let built = remote
                .build_and_push(
                    &RemoteBuild {
                        service: &request.service,
                        image: &image,
                        registry: self.registry.host(),
                        tag: &request.tag,
                        context_dir: staged.path(),
                        dockerfile: &dockerfile,
                        platform: &request.platform,
                        build_args: &request.build_args,
                    },
                    progress,
                )
                .await;
            context::remove_reported(staged, progress).await;
            built?;
            let build_ms = ms(start);
            let start = Instant::now();
            let artifact = self
                .confirm(request, &repository_uri, &image, progress)
                .await?;
            return Ok(ImageReport {
                artifact,
                built: true,
                builder: Some(remote.describe()),
                check_ms,
                build_ms,
                push_ms: ms(start),
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
                    context_files: request.context_files.clone(),
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
        let artifact = self
            .confirm(request, &repository_uri, &image, progress)
            .await?;
        Ok(ImageReport {
            artifact,
            built: true,
            builder: Some(builder.describe()),
            check_ms,
            build_ms,
            push_ms: ms(start),
        })
    }

    /// After a push (local or remote): the registry must have the image under its tag; its
    /// digest is what is deployed.
    async fn confirm(
        &self,
        request: &ImageRequest,
        repository_uri: &str,
        image: &str,
        progress: &Progress,
    ) -> Result<ImageArtifact, ImageError> {
        let digest = self
            .check(&request.repository, &request.tag)
            .await?
            .ok_or_else(|| ImageError::MissingAfterPush {
                image: image.to_owned(),
            })?;
        progress.emit(Phase::Push, format!("pushed {image} ({digest})"));
        Ok(ImageArtifact {
            repository_uri: repository_uri.to_owned(),
            tag: request.tag.clone(),
            digest: Some(digest),
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
