//! The deploy engine of `deployer-engine` alone, driving a compute target of your own: the
//! service's lock and records in SSM Parameter Store (as `deployer` keeps them), the decision
//! (unchanged, or roll), the rollover, the wait, and the record written only once the target
//! serves the artifact. The target here is a stand-in: a local file holding the image the
//! "service" runs.
//!
//! ```text
//! cargo run -p deployer-engine --example engine-file-target -- --manifest deployer.toml \
//!     --service app-api [--state-dir .engine-example] <registry>/<repository>:<tag>@sha256:<digest>
//! ```
//!
//! The manifest gives the project (`ssm_prefix`, `concurrency`) and the service (`timeout`,
//! `depends_on`); its kind's target fields are not used: every service is deployed to
//! `<state-dir>/<service>`. The image must be in its registry already (this example builds
//! nothing) and is named with its tag, which the records keep. Run it twice with the same
//! image: the first run rolls and records (`updated`), the second finds the file and the
//! records naming it, takes no lock and writes nothing (`unchanged`).
//!
//! The AWS configuration (for SSM) is the standard environment, as for the AWS CLI
//! (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_SSM` for an emulator,
//! …). Progress goes to stderr, each service's result to stdout. Exit code 0 when every
//! service succeeded, 1 when one failed, 2 for bad arguments or a bad manifest.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use clap::Parser;
use deployer_core::manifest::Smoke;
use deployer_core::poll::PollPolicy;
use deployer_core::progress::{Phase, ProgressEvent, ProgressSink};
use deployer_core::{
    Applied, Artifact, DeployError, Deployer, ImageArtifact, LiveState, Manifest, Progress, Service,
};
use deployer_engine::ssm::SsmStore;
use deployer_engine::{
    Artifacts, Built, Engine, External, Locks, Mode, ServiceInput, SmokeChecks, SystemClock,
    Targets,
};

/// Deploy an image to a local-file stand-in target through the deploy engine.
#[derive(Parser)]
struct Args {
    /// The manifest: its project and the service's settings.
    #[arg(long, default_value = "deployer.toml")]
    manifest: PathBuf,
    /// The service to deploy.
    #[arg(long)]
    service: String,
    /// Where the stand-in target keeps what each service runs.
    #[arg(long, default_value = ".engine-example")]
    state_dir: PathBuf,
    /// The image, with its tag and digest: `<registry>/<repository>:<tag>@sha256:<digest>`.
    image: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let image = match ImageArtifact::from_reference(&args.image) {
        Some(image) if image.digest.is_some() && !image.tag.is_empty() => image,
        _ => {
            eprintln!("error: give the image as <registry>/<repository>:<tag>@sha256:<digest>");
            return ExitCode::from(2);
        }
    };
    let manifest = match Manifest::load(&args.manifest) {
        Ok(manifest) => Arc::new(manifest),
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = std::fs::create_dir_all(&args.state_dir) {
        eprintln!("error: cannot create {}: {error}", args.state_dir.display());
        return ExitCode::FAILURE;
    }

    let store = Arc::new(SsmStore::new(aws_sdk_ssm::Client::new(&sdk_config().await)));
    let holder = format!("engine-file-target (pid {})", std::process::id());
    let locks = Locks::new(
        store.clone(),
        Arc::new(SystemClock),
        deployer_engine::lock::DEFAULT_LEASE,
        holder,
    );
    let input = ServiceInput {
        service: args.service.clone(),
        tag: image.tag.clone(),
        ..ServiceInput::default()
    };
    let engine = Engine::new(
        manifest,
        store,
        locks,
        Arc::new(FileTargets(args.state_dir)),
        Arc::new(Prebuilt(Artifact::Image(image))),
        Arc::new(NoSmokeChecks),
    )
    .with_progress(Arc::new(Stderr));

    let results = engine
        .run(
            Mode::Deploy { wait: true },
            vec![input],
            std::future::pending(),
        )
        .await;
    let mut code = ExitCode::SUCCESS;
    for result in results {
        println!("{}: {}", result.service, result.action);
        println!("  artifact: {}", result.artifact.as_deref().unwrap_or("-"));
        println!(
            "  {}: {}",
            result.ssm_parameter,
            if result.ssm_written {
                "written"
            } else {
                "not written"
            }
        );
        if let Some(error) = &result.error {
            println!("  error: {}", error.message);
            code = ExitCode::from(if error.usage { 2 } else { 1 });
        }
    }
    code
}

/// Every service deploys to the file `<dir>/<service>`.
struct FileTargets(PathBuf);

impl Targets for FileTargets {
    fn deployer(&self, service: &Service) -> Result<Box<dyn Deployer>, External> {
        Ok(Box::new(FileTarget(self.0.join(&service.name))))
    }
}

/// A compute target whose live state is a file naming the artifact it runs.
struct FileTarget(PathBuf);

#[async_trait]
impl Deployer for FileTarget {
    fn target(&self) -> String {
        format!("file {}", self.0.display())
    }

    async fn read_live(&self) -> Result<LiveState, DeployError> {
        let artifact = match std::fs::read_to_string(&self.0) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(self.io_error(&error)),
        };
        Ok(LiveState {
            summary: format!(
                "{} runs {}",
                self.target(),
                artifact.as_deref().unwrap_or("nothing")
            ),
            artifact,
            ids: BTreeMap::from([("file".to_owned(), self.0.display().to_string())]),
        })
    }

    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        // A run that lost its deploy lock stops here, before its change.
        progress.before_mutation("write")?;
        progress.emit(
            Phase::Apply,
            format!("writing {wanted} to {}", self.0.display()),
        );
        std::fs::write(&self.0, wanted.deploy_id()).map_err(|error| self.io_error(&error))?;
        Ok(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact: wanted.deploy_id(),
            ids: live.ids.clone(),
        })
    }

    async fn wait(
        &self,
        applied: &Applied,
        _policy: &PollPolicy,
        _progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let live = self.read_live().await?;
        if live.artifact.as_deref() == Some(applied.new_artifact.as_str()) {
            Ok(applied.clone())
        } else {
            Err(DeployError::RolloutFailed {
                reason: format!("{} names {:?} instead", self.target(), live.artifact),
                events: Vec::new(),
            })
        }
    }
}

impl FileTarget {
    fn io_error(&self, error: &std::io::Error) -> DeployError {
        DeployError::Api {
            operation: format!("access {}", self.0.display()),
            code: None,
            message: error.to_string(),
        }
    }
}

/// The one image given on the command line, already in its registry.
struct Prebuilt(Artifact);

#[async_trait]
impl Artifacts for Prebuilt {
    async fn find(
        &self,
        _service: &Service,
        _input: &ServiceInput,
        _progress: &Progress,
    ) -> Result<Option<Artifact>, External> {
        Ok(Some(self.0.clone()))
    }

    async fn build(
        &self,
        _service: &Service,
        _input: &ServiceInput,
        _progress: &Progress,
    ) -> Result<Built, External> {
        Err(External::usage("this example builds nothing"))
    }

    async fn digest(&self, _repository_uri: &str, _tag: &str) -> Result<Option<String>, External> {
        Ok(None)
    }
}

/// Smoke checks are not run here: a service that has one fails, rather than pass unchecked.
struct NoSmokeChecks;

#[async_trait]
impl SmokeChecks for NoSmokeChecks {
    async fn run(
        &self,
        _service: &Service,
        _check: &Smoke,
        _ids: &BTreeMap<String, String>,
        _progress: &Progress,
    ) -> Result<String, String> {
        Err("this example runs no smoke checks (remove `smoke` from the service)".to_owned())
    }
}

/// The standard AWS environment, with the HTTPS client the `deployer` cli uses (rustls with
/// ring; it speaks plain http too, for an emulator's `http://127.0.0.1:…`). This workspace
/// builds the SDK without its default client; a tool with `aws-config`'s default features can
/// call `aws_config::load_defaults` instead.
async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    loader.load().await
}

/// Prints every progress event on stderr.
struct Stderr;

impl ProgressSink for Stderr {
    fn event(&self, event: ProgressEvent) {
        eprintln!("{} {:>6}: {}", event.service, event.phase, event.message);
    }
}
