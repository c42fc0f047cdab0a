//! Images built and pushed on AWS CodeBuild, so that the machine running `deployer` needs no
//! image builder: a [`deployer_image::RemoteBuilder`] the image pipeline calls between its
//! registry check and its digest confirmation.
//!
//! Per image, [`CodeBuilder`]:
//!
//! 1. archives the staged build context — exactly the files the tag hashed, staged by the
//!    pipeline — with the Dockerfile into one deterministic zip (`source.rs`), and uploads it
//!    to `s3://<bucket>/deployer/<project>/contexts/<sha256>.zip` unless that object is there
//!    (`HeadObject` first: the key is the archive's content, so an unchanged context is never
//!    uploaded twice);
//! 2. `StartBuild`s the CodeBuild project with that object as its S3 source, an inline
//!    buildspec (`buildspec.rs`: ECR login with the project's role, the same `docker build`
//!    flags as a local build, `docker push <repository>:<tag>`), the ARM fleet
//!    (`ARM_CONTAINER`, `amazonlinux-aarch64-standard`) or the x86 one, the compute type,
//!    privileged mode (Docker needs it) and no artifacts;
//! 3. follows it (`follow.rs`): `BatchGetBuilds` on a growing interval, each new phase and every
//!    CloudWatch Logs line of the build (`GetLogEvents`, forward tokens) to progress, until
//!    `SUCCEEDED` (the pipeline then confirms the digest in the registry) or `FAILED`, `FAULT`,
//!    `TIMED_OUT`, `STOPPED` ([`CodeBuildError::Failed`] names the failing phase, its context
//!    and the last log lines). A build still running at the deadline is stopped.
//!
//! Builds of several services run at once (the engine's concurrency). A [`Session`] remembers
//! the builds it started and has not seen end: when a run is interrupted (the futures are
//! dropped), [`Session::stop_unfinished`] sends `StopBuild` for each.
//!
//! The SDK clients are injected ([`Clients`]); SDK errors are classified and shown through
//! `deployer-aws` (`sdk.rs`).
//!
//! # Using it alone
//!
//! `examples/codebuild-ensure.rs` is a whole program: the content tag of a Dockerfile's inputs,
//! then the image pipeline with this crate as its remote builder, Ctrl-C stopping the build.
//! In short:
//!
//! ```no_run
//! # async fn demo(sdk: &aws_types::SdkConfig) {
//! use deployer_codebuild::{Clients, Session};
//! use deployer_core::manifest::CodeBuild;
//!
//! let session = Session::new(Clients::from_conf(sdk), "acme");
//! let builder = session.builder(CodeBuild {
//!     project: "acme-images".into(),
//!     bucket: "acme-build-contexts".into(),
//!     compute: CodeBuild::DEFAULT_COMPUTE.into(),
//!     arm: true,
//! });
//! // give `&builder` to `deployer_image::Pipeline::ensure_on`
//! # let _ = builder;
//! # }
//! ```
#![warn(missing_docs)]

mod buildspec;
mod error;
mod follow;
mod sdk;
mod source;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, SourceType,
};
use deployer_core::manifest::CodeBuild;
use deployer_core::{Phase, Progress};
use deployer_image::{EcrHost, ImageError, RemoteBuild, RemoteBuilder};

pub use error::CodeBuildError;

/// The build image on CodeBuild's x86 fleet.
pub const X86_IMAGE: &str = "aws/codebuild/amazonlinux-x86_64-standard:5.0";
/// The build image on CodeBuild's ARM fleet.
pub const ARM_IMAGE: &str = "aws/codebuild/amazonlinux-aarch64-standard:3.0";

/// Where the build contexts of deployer project `project` go in a bucket:
/// `deployer/<project>/contexts/` (`<sha256 of the archive>.zip` under it).
pub fn key_prefix(project: &str) -> String {
    format!("deployer/{project}/contexts/")
}

/// The SDK clients a session uses.
#[derive(Clone, Debug)]
pub struct Clients {
    /// CodeBuild: `StartBuild`, `BatchGetBuilds`, `StopBuild`.
    pub codebuild: aws_sdk_codebuild::Client,
    /// CloudWatch Logs: `GetLogEvents` of the build's stream.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// S3: `HeadObject`, `PutObject` of the build context.
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Clients from one `SdkConfig` (the cli builds its own, with retry partitions).
    pub fn from_conf(sdk: &aws_types::SdkConfig) -> Self {
        Clients {
            codebuild: aws_sdk_codebuild::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            s3: aws_sdk_s3::Client::new(sdk),
        }
    }
}

/// How a build is followed.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// First delay between two `BatchGetBuilds`.
    pub poll: Duration,
    /// The longest delay between two.
    pub max_poll: Duration,
    /// CodeBuild's own build timeout (`timeoutInMinutesOverride`).
    pub build_timeout_minutes: i32,
    /// How long deployer follows a build (queueing included) before it stops it.
    pub deadline: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(10),
            build_timeout_minutes: 60,
            deadline: Duration::from_secs(90 * 60),
        }
    }
}

struct Inner {
    clients: Clients,
    /// `deployer/<project>/contexts/`.
    key_prefix: String,
    timing: Timing,
    /// Builds started and not seen ending.
    unfinished: Mutex<BTreeSet<String>>,
}

/// The CodeBuild builds of one run.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("key_prefix", &self.inner.key_prefix)
            .finish_non_exhaustive()
    }
}

/// What [`Session::stop_unfinished`] did for one build.
#[derive(Debug)]
pub struct Stopped {
    /// The build id.
    pub build_id: String,
    /// `Err` with the SDK error when `StopBuild` failed.
    pub result: Result<(), String>,
}

impl Session {
    /// A session of deployer project `project` (the build contexts go under
    /// `deployer/<project>/contexts/` in each bucket).
    pub fn new(clients: Clients, project: &str) -> Self {
        Session {
            inner: Arc::new(Inner {
                clients,
                key_prefix: key_prefix(project),
                timing: Timing::default(),
                unfinished: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    /// The same session following builds with `timing` (give it before the session is
    /// shared: its clones keep the timing they were made with).
    pub fn with_timing(self, timing: Timing) -> Self {
        let unfinished = self.unfinished().into_iter().collect();
        Session {
            inner: Arc::new(Inner {
                clients: self.inner.clients.clone(),
                key_prefix: self.inner.key_prefix.clone(),
                timing,
                unfinished: Mutex::new(unfinished),
            }),
        }
    }

    /// The key prefix of the build contexts (`deployer/<project>/contexts/`).
    pub fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    /// A remote builder for one service's settings.
    pub fn builder(&self, settings: CodeBuild) -> CodeBuilder {
        CodeBuilder {
            session: self.clone(),
            settings,
        }
    }

    /// The builds started and not seen ending (an interrupted run's).
    pub fn unfinished(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// Sends `StopBuild` for every build started and not seen ending, at once, each bounded
    /// by 10 seconds.
    pub async fn stop_unfinished(&self) -> Vec<Stopped> {
        let mut stops = tokio::task::JoinSet::new();
        for build_id in self.unfinished() {
            let session = self.clone();
            stops.spawn(async move {
                let result = session.stop(&build_id, Duration::from_secs(10)).await;
                Stopped { build_id, result }
            });
        }
        let mut stopped = Vec::new();
        while let Some(joined) = stops.join_next().await {
            if let Ok(done) = joined {
                stopped.push(done);
            }
        }
        stopped.sort_by(|a, b| a.build_id.cmp(&b.build_id));
        stopped
    }

    async fn stop(&self, build_id: &str, within: Duration) -> Result<(), String> {
        let call = self
            .inner
            .clients
            .codebuild
            .stop_build()
            .id(build_id)
            .send();
        let result = match tokio::time::timeout(within, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(sdk::describe(&error).0),
            Err(_) => Err(format!("no answer within {}s", within.as_secs())),
        };
        if result.is_ok() {
            self.lock().remove(build_id);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.inner
            .unfinished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Builds one service's images on CodeBuild (see the crate doc).
#[derive(Clone, Debug)]
pub struct CodeBuilder {
    session: Session,
    settings: CodeBuild,
}

impl CodeBuilder {
    /// The settings it builds with.
    pub fn settings(&self) -> &CodeBuild {
        &self.settings
    }

    /// Uploads the context (unless there), starts the build, follows it to its end.
    pub async fn run(
        &self,
        build: &RemoteBuild<'_>,
        progress: &Progress,
    ) -> Result<(), CodeBuildError> {
        let inner = &self.session.inner;
        let (context_dir, dockerfile) = (build.context_dir.to_owned(), build.dockerfile.to_owned());
        let archive =
            tokio::task::spawn_blocking(move || source::archive(&context_dir, &dockerfile))
                .await
                .map_err(|error| CodeBuildError::Archive {
                    path: build.context_dir.display().to_string(),
                    reason: error.to_string(),
                })??;
        let bucket = &self.settings.bucket;
        let key = format!("{}{}.zip", inner.key_prefix, archive.sha256);
        let upload_error = |error: (String, sdk::Class)| CodeBuildError::Upload {
            bucket: bucket.clone(),
            key: key.clone(),
            message: error.0,
            config: error.1.is_config(),
        };
        let found = inner
            .clients
            .s3
            .head_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await;
        match found {
            Ok(_) => progress.emit(
                Phase::Build,
                format!(
                    "build context already in s3://{bucket}/{key} ({} files)",
                    archive.files
                ),
            ),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => {
                let size = archive.bytes.len();
                inner
                    .clients
                    .s3
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .content_type("application/zip")
                    .body(archive.bytes.into())
                    .send()
                    .await
                    .map_err(|error| upload_error(sdk::describe(&error)))?;
                progress.emit(
                    Phase::Build,
                    format!(
                        "uploaded the build context to s3://{bucket}/{key} ({} files, {} KiB)",
                        archive.files,
                        size.div_ceil(1024)
                    ),
                );
            }
            Err(error) => return Err(upload_error(sdk::describe(&error))),
        }
        let ecr = EcrHost::parse(build.registry);
        let spec = buildspec::render(&buildspec::Spec {
            image: build.image,
            platform: build.platform,
            build_args: build.build_args,
            ecr_login: ecr.as_ref().map(|e| (e.region.as_str(), build.registry)),
        });
        let project = &self.settings.project;
        let start_error = |error: (String, sdk::Class)| CodeBuildError::Start {
            project: project.clone(),
            message: error.0,
            config: error.1.is_config(),
        };
        let artifacts = ProjectArtifacts::builder()
            .r#type(ArtifactsType::NoArtifacts)
            .build()
            .map_err(|error| start_error((error.to_string(), sdk::Class::Other)))?;
        let (environment, image) = if self.settings.arm {
            (EnvironmentType::ArmContainer, ARM_IMAGE)
        } else {
            (EnvironmentType::LinuxContainer, X86_IMAGE)
        };
        let started = inner
            .clients
            .codebuild
            .start_build()
            .project_name(project)
            .source_type_override(SourceType::S3)
            .source_location_override(format!("{bucket}/{key}"))
            .buildspec_override(spec)
            .environment_type_override(environment)
            .image_override(image)
            .compute_type_override(ComputeType::from(self.settings.compute.as_str()))
            .privileged_mode_override(true)
            .timeout_in_minutes_override(inner.timing.build_timeout_minutes)
            .artifacts_override(artifacts)
            .send()
            .await
            .map_err(|error| start_error(sdk::describe(&error)))?;
        let build_id = started
            .build_value()
            .and_then(|b| b.id())
            .ok_or(CodeBuildError::MissingField {
                operation: "StartBuild",
                field: "build.id",
            })?
            .to_owned();
        self.session.lock().insert(build_id.clone());
        progress.emit(
            Phase::Build,
            format!(
                "CodeBuild build {build_id} started ({} fleet, {}) for {}",
                if self.settings.arm { "ARM" } else { "x86" },
                self.settings.compute,
                build.image
            ),
        );
        let result = follow::follow(&self.session, &build_id, progress).await;
        match &result {
            // Stopped at the deadline: no longer ours to stop.
            Ok(()) | Err(CodeBuildError::Failed { .. } | CodeBuildError::Deadline { .. }) => {
                self.session.lock().remove(&build_id);
            }
            Err(_) => {}
        }
        result
    }
}

#[async_trait]
impl RemoteBuilder for CodeBuilder {
    fn describe(&self) -> String {
        format!(
            "codebuild {} ({})",
            self.settings.project,
            if self.settings.arm { "arm" } else { "x86" }
        )
    }

    async fn build_and_push(
        &self,
        build: &RemoteBuild<'_>,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        self.run(build, progress)
            .await
            .map_err(|error| ImageError::RemoteFailed {
                service: build.service.to_owned(),
                builder: self.describe(),
                config: error.is_config(),
                message: error.to_string(),
            })
    }
}
