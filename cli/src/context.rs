//! Everything a command that talks to AWS needs, built once per run: the manifest, the AWS
//! configuration, the SSM state, the image pipeline and the progress renderer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use deployer_core::manifest::Builder;
use deployer_core::{Manifest, Phase, Progress, ProgressEvent, ProgressSink};

use crate::args::Global;
use crate::progress::Renderer;
use crate::state::State;

/// Shared by every service of one run.
pub(crate) struct Context {
    pub(crate) manifest: Manifest,
    pub(crate) sdk: SdkConfig,
    pub(crate) state: State,
    /// The lookups resolved for this run.
    pub(crate) resolved: Vec<crate::lookups::Resolved>,
    /// Secret values looked up (redacted from smoke-check output).
    secrets: Vec<String>,
    /// `--lock-wait`.
    pub(crate) lock_wait: Option<std::time::Duration>,
    #[cfg(feature = "image")]
    pub(crate) images: Option<deployer_image::Pipeline>,
    sink: Arc<Tracker>,
}

/// Forwards progress to the renderer and remembers each service's last phase (to report what
/// was in flight when a run is interrupted).
struct Tracker {
    inner: Renderer,
    phases: Mutex<BTreeMap<String, Phase>>,
}

impl ProgressSink for Tracker {
    fn event(&self, event: ProgressEvent) {
        if let Ok(mut phases) = self.phases.lock() {
            phases.insert(event.service.to_string(), event.phase);
        }
        self.inner.event(event);
    }
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
        let state = State::new(crate::aws::client!(aws_sdk_ssm, &sdk));
        #[cfg(feature = "image")]
        let images = manifest.project.registry.as_deref().map(|host| {
            deployer_image::Pipeline::new(
                registry(host, &sdk),
                builder.or(manifest.project.builder),
            )
        });
        #[cfg(not(feature = "image"))]
        let _ = builder;
        Ok(Context {
            manifest,
            sdk,
            state,
            resolved,
            secrets,
            lock_wait: global.lock_wait,
            #[cfg(feature = "image")]
            images,
            sink: Arc::new(Tracker {
                inner: Renderer::new(global.json, global.verbose),
                phases: Mutex::new(BTreeMap::new()),
            }),
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

    /// A progress reporter for one service.
    pub(crate) fn progress(&self, service: &str) -> Progress {
        Progress::new(service, self.sink.clone())
    }

    /// Ends the live progress view; call before printing the result.
    pub(crate) fn finish_progress(&self) {
        self.sink.inner.finish();
    }

    /// Takes the deploy lock of `service` (one rollout per service at a time).
    pub(crate) async fn lock(
        &self,
        service: &deployer_core::Service,
        progress: &Progress,
    ) -> Result<crate::lock::Held, crate::lock::LockError> {
        let parameter = crate::state::lock_parameter(&self.manifest.project, service);
        let wait = self.lock_wait.unwrap_or(service.timeout);
        crate::lock::acquire(
            self.state.client(),
            &service.name,
            &parameter,
            wait,
            progress,
        )
        .await
    }

    /// The last phase a service reported.
    pub(crate) fn last_phase(&self, service: &str) -> Option<Phase> {
        self.sink
            .phases
            .lock()
            .ok()
            .and_then(|phases| phases.get(service).copied())
    }
}

/// The registry client for a host: ECR (API in the registry's own region) or any OCI registry.
#[cfg(feature = "image")]
fn registry(host: &str, sdk: &SdkConfig) -> deployer_image::Registry {
    match deployer_image::EcrHost::parse(host) {
        Some(ecr) => {
            let config = aws_sdk_ecr::config::Builder::from(sdk)
                .retry_partition(crate::aws::retry_partition(sdk))
                .region(aws_config::Region::new(ecr.region.clone()))
                .build();
            deployer_image::Registry::ecr(host, ecr, aws_sdk_ecr::Client::from_conf(config))
        }
        None => deployer_image::Registry::oci(host),
    }
}
