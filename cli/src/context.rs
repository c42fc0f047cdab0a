//! Everything a command that talks to AWS needs, built once per run: the manifest, the AWS
//! configuration, the record store, the image pipeline, the progress renderer, and the deploy
//! engine over them.

use std::sync::Arc;

use aws_config::SdkConfig;
use deployer_core::manifest::Builder;
use deployer_core::{Manifest, ProgressSink};
use deployer_engine::{Engine, Store};

use crate::args::Global;
use crate::progress::Renderer;

/// Shared by every service of one run.
pub(crate) struct Context {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) sdk: SdkConfig,
    /// The records (SSM Parameter Store).
    pub(crate) store: Arc<dyn Store>,
    /// The lookups resolved for this run.
    pub(crate) resolved: Vec<crate::lookups::Resolved>,
    /// Secret values looked up (redacted from smoke-check output).
    secrets: Vec<String>,
    /// `--lock-wait`.
    lock_wait: Option<std::time::Duration>,
    #[cfg(feature = "image")]
    pub(crate) images: Option<Arc<deployer_image::Pipeline>>,
    /// The CodeBuild builds of this run, when a service builds on CodeBuild.
    #[cfg(feature = "codebuild")]
    pub(crate) codebuild: Option<deployer_codebuild::Session>,
    renderer: Arc<Renderer>,
}

impl Context {
    /// Loads the AWS configuration, resolves the lookups of the `selected` services, and sets up
    /// the pipeline for `manifest`.
    pub(crate) async fn new(
        global: &Global,
        mut manifest: Manifest,
        selected: &[String],
        builder: Option<Builder>,
        images_only: bool,
    ) -> anyhow::Result<Context> {
        let sdk = crate::aws::sdk_config(manifest.project.region.as_deref()).await;
        // `build` alone may need no AWS at all (an OCI registry, env lookups): it meets missing
        // credentials at its first ECR or SSM call instead.
        if !images_only {
            crate::aws::preflight(&sdk).await?;
        }
        let (resolved, secrets) =
            crate::lookups::resolve(&mut manifest, selected, &sdk, images_only).await?;
        let store = Arc::new(deployer_engine::ssm::SsmStore::new(crate::aws::client!(
            aws_sdk_ssm,
            &sdk
        )));
        #[cfg(feature = "image")]
        let images = manifest.project.registry.as_deref().map(|host| {
            Arc::new(deployer_image::Pipeline::new(
                registry(host, &sdk),
                builder.or(manifest.project.builder),
            ))
        });
        #[cfg(not(feature = "image"))]
        let _ = builder;
        #[cfg(feature = "codebuild")]
        let codebuild = manifest
            .services
            .values()
            .any(|service| manifest.codebuild(service).is_some())
            .then(|| {
                let clients = deployer_codebuild::Clients {
                    codebuild: crate::aws::client!(aws_sdk_codebuild, &sdk),
                    logs: crate::aws::client!(aws_sdk_cloudwatchlogs, &sdk),
                    s3: crate::aws::client!(aws_sdk_s3, &sdk),
                };
                deployer_codebuild::Session::new(clients, &manifest.project.name)
            });
        Ok(Context {
            manifest: Arc::new(manifest),
            sdk,
            store,
            resolved,
            secrets,
            lock_wait: global.lock_wait,
            #[cfg(feature = "image")]
            images,
            #[cfg(feature = "codebuild")]
            codebuild,
            renderer: Arc::new(Renderer::new(global.json, global.verbose)),
        })
    }

    /// Values that must never be shown: secret lookups, and this process's environment
    /// variables whose names say they are secret (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*KEY*`).
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut secrets = self.secrets.clone();
        for (name, value) in std::env::vars() {
            let upper = name.to_ascii_uppercase();
            // short values ("test", "true") would blank out ordinary words
            if ["SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL"]
                .iter()
                .any(|w| upper.contains(w))
                && value.len() >= 8
            {
                secrets.push(value);
            }
        }
        secrets
    }

    /// The resolved lookups of `service` (for `plan`).
    pub(crate) fn resolved_for(&self, service: &str) -> Vec<crate::lookups::Resolved> {
        self.resolved
            .iter()
            .filter(|r| r.service.as_deref() == Some(service) || r.service.is_none())
            .cloned()
            .collect()
    }

    /// The deploy engine of this run: the deployers compiled into this build, the image
    /// pipeline, the smoke checks, the records and the deploy locks.
    pub(crate) fn engine(&self, tags: &[crate::inputs::ServiceTag]) -> Engine {
        let sink: Arc<dyn ProgressSink> = self.renderer.clone();
        let engine = Engine::new(
            self.manifest.clone(),
            self.store.clone(),
            crate::engine::locks(&self.sdk),
            Arc::new(crate::targets::CliTargets::new(self)),
            Arc::new(crate::engine::CliArtifacts::new(self, tags)),
            Arc::new(crate::smoke::CliSmoke::new(self)),
        )
        .with_progress(sink)
        .with_lock_wait(self.lock_wait);
        #[cfg(feature = "logs")]
        let engine = engine.with_logs(Arc::new(crate::engine::CliLogTails {
            reader: self.log_reader(),
        }));
        engine
    }

    /// The CloudWatch Logs reader of `deployer logs` and of a failed rollout's log tail.
    #[cfg(feature = "logs")]
    pub(crate) fn log_reader(&self) -> deployer_logs::LogReader {
        deployer_logs::LogReader::new(crate::aws::client!(aws_sdk_cloudwatchlogs, &self.sdk))
    }

    /// Stops the CodeBuild builds this run started and did not see end (an interrupted run):
    /// `StopBuild` for each, reported as warnings.
    pub(crate) async fn stop_remote_builds(&self) {
        #[cfg(feature = "codebuild")]
        if let Some(session) = &self.codebuild {
            for stopped in session.stop_unfinished().await {
                match stopped.result {
                    Ok(()) => tracing::warn!("stopped CodeBuild build {}", stopped.build_id),
                    Err(error) => tracing::warn!(
                        "CodeBuild build {} may still be running: StopBuild failed: {error}",
                        stopped.build_id
                    ),
                }
            }
        }
    }

    /// Ends the live progress view; call before printing the result.
    pub(crate) fn finish_progress(&self) {
        self.renderer.finish();
    }
}

/// The registry client for a host: ECR (API in the registry's own region) or any OCI registry.
#[cfg(feature = "image")]
fn registry(host: &str, sdk: &SdkConfig) -> deployer_image::Registry {
    match deployer_image::EcrHost::parse(host) {
        Some(ecr) => {
            let config = aws_sdk_ecr::config::Builder::from(sdk)
                .retry_partition(crate::aws::retry_partition(sdk, "ecr"))
                .region(aws_config::Region::new(ecr.region.clone()))
                .build();
            deployer_image::Registry::ecr(host, ecr, aws_sdk_ecr::Client::from_conf(config))
        }
        None => deployer_image::Registry::oci(host),
    }
}
