//! Builders elsewhere: a [`RemoteBuilder`] builds an image from a staged build context and
//! pushes it to the registry itself (AWS CodeBuild, in `deployer-codebuild`). The pipeline
//! stages the context exactly as for a local build, hands it over, and confirms the push by
//! the registry's digest exactly as for a local build ([`crate::Pipeline::ensure_on`]).

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use deployer_core::Progress;

use crate::ImageError;

/// What a remote builder is given: one image to build and push.
#[derive(Clone, Copy, Debug)]
pub struct RemoteBuild<'a> {
    /// The service, for messages.
    pub service: &'a str,
    /// `registry/repository:tag`: what to build and push.
    pub image: &'a str,
    /// The registry host (`host[:port]`).
    pub registry: &'a str,
    /// The content tag.
    pub tag: &'a str,
    /// A directory holding exactly the build context's listed files (staged; removed after the
    /// build returns). The remote builder must send exactly these bytes.
    pub context_dir: &'a Path,
    /// The Dockerfile (absolute path).
    pub dockerfile: &'a Path,
    /// `os/arch[/variant]`.
    pub platform: &'a str,
    /// `--build-arg` values.
    pub build_args: &'a BTreeMap<String, String>,
}

/// A builder that builds and pushes on another machine. `dyn` because the cli composes it per
/// service from what it compiled in (the pipeline knows no AWS build service).
#[async_trait]
pub trait RemoteBuilder: Send + Sync {
    /// A short description for progress and reports, e.g. `codebuild acme-images (arm)`.
    fn describe(&self) -> String;

    /// Builds `build.image` from `build.context_dir` and pushes it; returns once the push
    /// succeeded (the pipeline then confirms the digest in the registry) or the build failed.
    /// A dropped future leaves nothing running that the builder cannot stop later.
    async fn build_and_push(
        &self,
        build: &RemoteBuild<'_>,
        progress: &Progress,
    ) -> Result<(), ImageError>;
}
