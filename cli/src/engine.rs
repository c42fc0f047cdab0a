//! What the cli gives the deploy engine (`deployer-engine`): the deploy locks in SSM with a
//! retry quota of their own, and the artifacts — images through the image pipeline, zips and
//! config sets made while tagging. The deployers are in `targets.rs`, the smoke checks in `smoke.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
#[cfg(feature = "image")]
use deployer_core::Manifest;
use deployer_core::{Artifact, Presence, Progress, Service};
use deployer_engine::lock::DEFAULT_LEASE;
use deployer_engine::{Artifacts, Built, External, Locks, ServiceInput, SystemClock};

use crate::context::Context;

/// The deploy locks: SSM through a client of their own, claims of `DEPLOYER_LOCK_LEASE`
/// (default 60 s) naming this process.
///
/// The lock's calls are few, small and bound to deadlines (a renewal must land within a sixth
/// of the lease), so its client retries on a short fuse of its own — quick backoff, no retry
/// quota shared with (or drained by) the run's other calls — whatever `AWS_RETRY_MODE` says.
/// Under heavy throttling the other calls back off for seconds; the lock must not.
pub(crate) fn locks(sdk: &SdkConfig) -> Locks {
    let lease = lease();
    let region = sdk
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_else(|| "default".into());
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(10)
        .with_initial_backoff(Duration::from_millis(25))
        .with_max_backoff((lease / 12).clamp(Duration::from_millis(100), Duration::from_secs(2)));
    let partition =
        aws_sdk_ssm::config::retry::RetryPartition::custom(format!("deployer-lock-{region}"))
            .token_bucket(aws_smithy_runtime::client::retries::TokenBucket::unlimited())
            .build();
    let client = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(sdk)
            .retry_config(retry)
            .retry_partition(partition)
            .build(),
    );
    Locks::new(
        Arc::new(deployer_engine::ssm::SsmStore::new(client)),
        Arc::new(SystemClock),
        lease,
        holder(),
    )
}

/// The lease; `DEPLOYER_LOCK_LEASE` (e.g. `5s`, at least 2 s) overrides the default.
fn lease() -> Duration {
    std::env::var("DEPLOYER_LOCK_LEASE")
        .ok()
        .and_then(|text| humantime::parse_duration(&text).ok())
        .unwrap_or(DEFAULT_LEASE)
}

/// Who we are, for the other deploy's message: pid, host, CI run.
fn holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into());
    let mut text = format!("pid {} on {host}", std::process::id());
    if let (Ok(server), Ok(repository), Ok(run)) = (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        text.push_str(&format!(", {server}/{repository}/actions/runs/{run}"));
    }
    text
}

/// Images through the image pipeline, built from exactly the files the tag was computed from;
/// zips as hashed.
pub(crate) struct CliArtifacts {
    #[cfg(feature = "image")]
    manifest: Arc<Manifest>,
    #[cfg(feature = "image")]
    images: Option<Arc<deployer_image::Pipeline>>,
    /// Per image service, its build context as hashed.
    #[cfg(feature = "image")]
    contexts: std::collections::BTreeMap<String, Vec<deployer_image::ContextFile>>,
    #[cfg(feature = "codebuild")]
    codebuild: Option<deployer_codebuild::Session>,
}

impl CliArtifacts {
    #[cfg_attr(not(feature = "image"), allow(unused_variables))]
    pub(crate) fn new(ctx: &Context, tags: &[crate::inputs::ServiceTag]) -> Self {
        CliArtifacts {
            #[cfg(feature = "image")]
            manifest: ctx.manifest.clone(),
            #[cfg(feature = "image")]
            images: ctx.images.clone(),
            #[cfg(feature = "image")]
            contexts: tags
                .iter()
                .filter_map(|tag| Some((tag.service.clone(), context_files(tag.context.as_ref()?))))
                .collect(),
            #[cfg(feature = "codebuild")]
            codebuild: ctx.codebuild.clone(),
        }
    }
}

/// The hashed build context as the image pipeline stages it (a submodule's files are not in
/// git's listing of this repository, so not in the context either).
#[cfg(feature = "image")]
fn context_files(context: &hasher::Context) -> Vec<deployer_image::ContextFile> {
    use deployer_image::ContextFileKind;
    context
        .files
        .iter()
        .filter_map(|file| {
            let kind = match file.kind {
                hasher::FileKind::Regular => ContextFileKind::Regular,
                hasher::FileKind::Executable => ContextFileKind::Executable,
                hasher::FileKind::Symlink => ContextFileKind::Symlink,
                _ => return None,
            };
            Some(deployer_image::ContextFile::new(file.path.clone(), kind))
        })
        .collect()
}

/// Whether the service's target accepts only a single-platform image manifest (Lambda and
/// AgentCore refuse an index: "image manifest media type not supported").
#[cfg(feature = "image")]
fn needs_single_manifest(service: &Service) -> bool {
    matches!(
        service.kind,
        deployer_core::Kind::LambdaImage | deployer_core::Kind::Agentcore
    )
}

/// An error of the image pipeline, classified for the exit code.
#[cfg(feature = "image")]
pub(crate) fn image_error(error: &deployer_image::ImageError) -> External {
    External {
        message: error.to_string(),
        usage: error.is_config(),
    }
}

#[cfg(feature = "image")]
impl CliArtifacts {
    /// Where `service`'s image builds: `None` on this machine, else its remote builder
    /// (CodeBuild). A build without the `codebuild` feature refuses the service loudly.
    fn remote(
        &self,
        service: &Service,
    ) -> Result<Option<Box<dyn deployer_image::RemoteBuilder>>, External> {
        let Some(settings) = self.manifest.codebuild(service) else {
            return Ok(None);
        };
        #[cfg(feature = "codebuild")]
        {
            let session = self.codebuild.as_ref().ok_or_else(|| {
                External::usage(format!(
                    "service `{}` builds on CodeBuild but no CodeBuild session was set up",
                    service.name
                ))
            })?;
            Ok(Some(Box::new(session.builder(settings))))
        }
        #[cfg(not(feature = "codebuild"))]
        {
            let _ = settings;
            Err(External::usage(format!(
                "service `{}`: builder = \"codebuild\", but codebuild support is not compiled into this build (enable feature `codebuild` of deployer-cli)",
                service.name
            )))
        }
    }

    fn pipeline(&self) -> Result<&deployer_image::Pipeline, External> {
        self.images.as_deref().ok_or_else(|| {
            External::usage("no `registry` under [project]: image services need one")
        })
    }

    fn request(
        &self,
        service: &Service,
        input: &ServiceInput,
    ) -> Result<deployer_image::ImageRequest, External> {
        let build = service.image.as_ref().ok_or_else(|| {
            External::usage(format!("service `{}` has no image settings", service.name))
        })?;
        let root = &self.manifest.root;
        Ok(deployer_image::ImageRequest {
            service: service.name.clone(),
            repository: build.repository.clone(),
            tag: input.tag.clone(),
            dockerfile: root.join(&build.dockerfile),
            context: root.join(&build.context),
            platform: build.platform.to_string(),
            build_args: build.build_args.clone(),
            context_files: self
                .contexts
                .get(&service.name)
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// The image `repository:tag` in the registry, checked against what the service's target
    /// accepts: its platform, and a single image manifest for Lambda and AgentCore. A tag that
    /// exists with another platform (built elsewhere) is reported, not reused (exit 2).
    async fn accepted(
        &self,
        service: &Service,
        repository: &str,
        tag: &str,
        progress: &Progress,
    ) -> Result<Option<Artifact>, External> {
        let pipeline = self.pipeline()?;
        let Some(info) = pipeline
            .inspect(repository, tag)
            .await
            .map_err(|error| image_error(&error))?
        else {
            return Ok(None);
        };
        let platform = service
            .image
            .as_ref()
            .map(|image| image.platform.to_string())
            .unwrap_or_default();
        deployer_image::check_accepted(&info, &platform, needs_single_manifest(service))
            .map_err(|error| image_error(&error))?;
        if let Some(why) = &info.platform_unread {
            progress.detail(
                deployer_core::Phase::Check,
                format!("the platform of {} was not checked: {why}", info.reference),
            );
        }
        Ok(Some(Artifact::Image(deployer_core::ImageArtifact {
            repository_uri: pipeline.repository_uri(repository),
            tag: tag.to_owned(),
            digest: Some(info.digest),
        })))
    }
}

#[async_trait]
impl Artifacts for CliArtifacts {
    async fn find(
        &self,
        service: &Service,
        input: &ServiceInput,
        progress: &Progress,
    ) -> Result<Option<Artifact>, External> {
        if let Some(local) = &input.local {
            return Ok(Some(local.clone()));
        }
        #[cfg(feature = "image")]
        {
            let request = self.request(service, input)?;
            let pipeline = self.pipeline()?;
            let image = format!(
                "{}:{}",
                pipeline.repository_uri(&request.repository),
                input.tag
            );
            progress.emit(
                deployer_core::Phase::Check,
                format!("is {image} in the registry?"),
            );
            // An image found under the tag is reused only if the target accepts it: one built
            // elsewhere (another platform, an index for Lambda) is reported, not deployed.
            self.accepted(service, &request.repository, &input.tag, progress)
                .await
        }
        #[cfg(not(feature = "image"))]
        {
            let _ = progress;
            Err(no_image_support(service))
        }
    }

    async fn build(
        &self,
        service: &Service,
        input: &ServiceInput,
        progress: &Progress,
    ) -> Result<Built, External> {
        if let Some(local) = &input.local {
            return Ok(Built {
                artifact: local.clone(),
                durations_ms: BTreeMap::new(),
            });
        }
        #[cfg(feature = "image")]
        {
            let request = self.request(service, input)?;
            let remote = self.remote(service)?;
            let report = self
                .pipeline()?
                .ensure_on(&request, remote.as_deref(), progress)
                .await
                .map_err(|error| image_error(&error))?;
            let mut durations_ms = BTreeMap::from([("check", report.check_ms)]);
            if report.built {
                durations_ms.insert("build", report.build_ms);
                durations_ms.insert("push", report.push_ms);
            }
            // What was pushed (or found meanwhile) must be what the target accepts too.
            let artifact = self
                .accepted(service, &request.repository, &input.tag, progress)
                .await?
                .unwrap_or(Artifact::Image(report.artifact));
            Ok(Built {
                artifact,
                durations_ms,
            })
        }
        #[cfg(not(feature = "image"))]
        {
            let _ = progress;
            Err(no_image_support(service))
        }
    }

    async fn digest(&self, repository_uri: &str, tag: &str) -> Result<Option<String>, External> {
        #[cfg(feature = "image")]
        {
            let Some(pipeline) = self.images.as_deref() else {
                return Ok(None);
            };
            // Only images of our registry can be asked for; another reference is rolled back to
            // as it was written.
            let Some(repository) = repository_uri
                .strip_prefix(pipeline.registry().host())
                .and_then(|rest| rest.strip_prefix('/'))
            else {
                return Ok(None);
            };
            if tag.is_empty() {
                return Ok(None);
            }
            pipeline
                .check(repository, tag)
                .await
                .map_err(|error| image_error(&error))
        }
        #[cfg(not(feature = "image"))]
        {
            let _ = (repository_uri, tag);
            Ok(None)
        }
    }

    /// Tags the recorded images of the project's registry `deployer-current` and
    /// `deployer-previous` (moved there, whatever they named before).
    async fn keep(
        &self,
        service: &Service,
        current: &Artifact,
        previous: Option<&Artifact>,
        progress: &Progress,
    ) -> Result<(), External> {
        let _ = service;
        #[cfg(feature = "image")]
        {
            let Some(pipeline) = self.images.as_deref() else {
                return Ok(());
            };
            let kept = [
                (Some(current), deployer_image::KEPT_CURRENT),
                (previous, deployer_image::KEPT_PREVIOUS),
            ];
            for (artifact, tag) in kept {
                let Some(Artifact::Image(image)) = artifact else {
                    continue;
                };
                let Some(digest) = &image.digest else {
                    continue;
                };
                // Only images of our registry can be tagged.
                let Some(repository) = image
                    .repository_uri
                    .strip_prefix(pipeline.registry().host())
                    .and_then(|rest| rest.strip_prefix('/'))
                else {
                    continue;
                };
                pipeline
                    .retag(repository, digest, tag, progress)
                    .await
                    .map_err(|error| image_error(&error))?;
            }
            Ok(())
        }
        #[cfg(not(feature = "image"))]
        {
            let _ = (current, previous, progress);
            Ok(())
        }
    }

    async fn present(&self, artifact: &Artifact) -> Result<Presence, External> {
        #[cfg(feature = "image")]
        {
            let Artifact::Image(image) = artifact else {
                return Ok(Presence::Present);
            };
            let (Some(pipeline), Some(digest)) = (self.images.as_deref(), &image.digest) else {
                return Ok(Presence::Present);
            };
            // Only images of our registry can be asked for (another is rolled back to as it
            // was written, and its registry answers the target).
            let Some(repository) = image
                .repository_uri
                .strip_prefix(pipeline.registry().host())
                .and_then(|rest| rest.strip_prefix('/'))
            else {
                return Ok(Presence::Present);
            };
            pipeline
                .registry()
                .presence(repository, digest)
                .await
                .map_err(|error| image_error(&error))
        }
        #[cfg(not(feature = "image"))]
        {
            let _ = artifact;
            Ok(Presence::Present)
        }
    }
}

#[cfg(not(feature = "image"))]
fn no_image_support(service: &Service) -> External {
    External::usage(crate::targets::require(service).err().map_or_else(
        || "no image support in this build".to_owned(),
        |e| e.to_string(),
    ))
}

/// A failed rollout's log tail through CloudWatch Logs (`deployer-logs`), for the targets whose
/// diagnosis reads none itself.
#[cfg(feature = "logs")]
pub(crate) struct CliLogTails {
    pub(crate) reader: deployer_logs::LogReader,
}

#[cfg(feature = "logs")]
#[async_trait]
impl deployer_engine::LogTails for CliLogTails {
    async fn tail(
        &self,
        sources: &[deployer_core::LogSource],
        since_ms: i64,
        lines: usize,
    ) -> Result<Vec<deployer_core::LogLine>, External> {
        self.reader
            .read(sources, since_ms, lines)
            .await
            .map(|read| read.lines)
            .map_err(|error| External::failure(error.to_string()))
    }
}
