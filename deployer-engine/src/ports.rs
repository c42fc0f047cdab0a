//! What the engine is given by its caller: the deployers (by cargo feature, in the cli), the
//! artifacts (images built and pushed, zips built in process), and the smoke checks.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deployer_core::manifest::Smoke;
use deployer_core::{Artifact, Deployer, LogLine, LogSource, Presence, Progress, Service};

/// A failure of something the caller provides, already in one line, and whether it is a
/// usage or configuration error (exit code 2) rather than a failed deploy (exit code 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct External {
    /// What failed and what to do.
    pub message: String,
    /// A configuration problem (the manifest, the environment), not a deploy that failed.
    pub usage: bool,
}

impl External {
    /// A failed operation (exit code 1).
    pub fn failure(message: impl Into<String>) -> Self {
        External {
            message: message.into(),
            usage: false,
        }
    }

    /// A configuration problem (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        External {
            message: message.into(),
            usage: true,
        }
    }
}

/// Builds the [`Deployer`] of a service, with the clients it needs.
pub trait Targets: Send + Sync {
    /// The deployer of `service`; `Err` when its kind is not compiled into this build or its
    /// settings do not fit.
    fn deployer(&self, service: &Service) -> Result<Box<dyn Deployer>, External>;
}

/// What a service deploys, as the caller computed it before the run: the content tag, and for
/// artifacts made in process (a zip, a config set) the artifact itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInput {
    /// The service name.
    pub service: String,
    /// The content tag (empty for commands that act on what is recorded: wait, rollback).
    pub tag: String,
    /// The artifact when it is made in process while tagging (a zip, a config set): it needs
    /// no registry and no build step.
    pub local: Option<Artifact>,
    /// The digests the Dockerfile's `FROM` images resolved to for this tag (reference →
    /// `sha256:…`), when the project resolves base images: recorded with the deploy, and
    /// compared by `plan` to say which base images moved.
    pub bases: BTreeMap<String, String>,
}

impl ServiceInput {
    /// An input without a tag, for commands that act on what is recorded.
    pub fn untagged(service: &str) -> Self {
        ServiceInput {
            service: service.to_owned(),
            ..ServiceInput::default()
        }
    }
}

/// An artifact made available by [`Artifacts::build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The artifact, with its digest.
    pub artifact: Artifact,
    /// Milliseconds per step (`check`, `build`, `push`).
    pub durations_ms: BTreeMap<&'static str, u64>,
}

/// Makes artifacts available: asks the registry, builds and pushes.
#[async_trait]
pub trait Artifacts: Send + Sync {
    /// The artifact of `input` when it is available without building (the registry has the
    /// image: with its digest; a zip: always), else `None`.
    async fn find(
        &self,
        service: &Service,
        input: &ServiceInput,
        progress: &Progress,
    ) -> Result<Option<Artifact>, External>;

    /// Builds and pushes the artifact `find` did not find, and confirms it (by digest).
    async fn build(
        &self,
        service: &Service,
        input: &ServiceInput,
        progress: &Progress,
    ) -> Result<Built, External>;

    /// The manifest digest the registry holds for `repository_uri:tag` (an image reference
    /// that ran before, to roll back to it by digest), `None` when it does not hold it.
    async fn digest(&self, repository_uri: &str, tag: &str) -> Result<Option<String>, External>;

    /// Whether `artifact` (a rollback target) is still there: an image of the project's
    /// registry asked by its digest (ECR `BatchGetImage`, OCI `HEAD` of the manifest).
    /// Read-only. The default, for callers whose artifacts are made in process (a zip, a
    /// config set, which the target itself keeps), is [`Presence::Present`].
    async fn present(&self, artifact: &Artifact) -> Result<Presence, External> {
        let _ = artifact;
        Ok(Presence::Present)
    }

    /// After a deploy of `service` was recorded: marks what the records name — the live
    /// artifact (`current`) and the rollback target (`previous`) — so that the registry's
    /// retention rules keep them (the cli tags images `deployer-current` and
    /// `deployer-previous`). Best effort: an error becomes a warning of the deploy, never its
    /// failure. The default marks nothing.
    async fn keep(
        &self,
        service: &Service,
        current: &Artifact,
        previous: Option<&Artifact>,
        progress: &Progress,
    ) -> Result<(), External> {
        let _ = (service, current, previous, progress);
        Ok(())
    }
}

/// Runs a service's smoke check.
#[async_trait]
pub trait SmokeChecks: Send + Sync {
    /// Runs `check` against the service whose rollout just settled with `ids` (e.g. the
    /// AgentCore runtime's `arn`). `Ok` carries the check's output, `Err` says why it failed;
    /// both with secret values redacted.
    async fn run(
        &self,
        service: &Service,
        check: &Smoke,
        ids: &BTreeMap<String, String>,
        progress: &Progress,
    ) -> Result<String, String>;
}

/// Reads the last lines a failed service's logs hold, for a diagnosis whose target did not
/// read them itself (a runtime, an endpoint, a function: their [`Deployer::log_sources`]).
/// The cli gives the CloudWatch Logs reader; without one a diagnosis has no log lines.
#[async_trait]
pub trait LogTails: Send + Sync {
    /// At most `lines` lines `sources` wrote since `since_ms` (milliseconds since the epoch),
    /// oldest first, redacted.
    async fn tail(
        &self,
        sources: &[LogSource],
        since_ms: i64,
        lines: usize,
    ) -> Result<Vec<LogLine>, External>;
}
