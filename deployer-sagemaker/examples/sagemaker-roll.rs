//! Rolls the variants of one SageMaker endpoint over to an image with `deployer-sagemaker`
//! alone: a new model copied from the live one with only the image replaced, a new endpoint
//! config with the targeted variants on it, `UpdateEndpoint`, a wait until the endpoint is
//! `InService` on the new config (an automatic rollback is a failure), and the cleanup of the
//! models and configs of older deploys.
//!
//! ```text
//! cargo run -p deployer-sagemaker --example sagemaker-roll -- --endpoint acme-inference \
//!     [--variant AllTraffic] [--keep 2] [--timeout-secs 1800] <registry>/<repository>@sha256:<digest>
//! ```
//!
//! Without `--variant`, every variant whose model runs an image of the image's repository is
//! rolled. The AWS configuration is the standard environment, as for the AWS CLI
//! (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_SAGEMAKER` for an
//! emulator, …). Progress goes to stderr, the outcome to stdout. Exit code 0 when the endpoint
//! runs the image (rolled over, or already on it), 1 when the deploy failed, 2 for bad
//! arguments.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
// `aws-smithy-http-client`, under the name this package's request-body tests give it.
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client_test_util as aws_smithy_http_client;
use clap::Parser;
use deployer_core::manifest::SagemakerTarget;
use deployer_core::poll::PollPolicy;
use deployer_core::progress::{ProgressEvent, ProgressSink};
use deployer_core::{Artifact, ImageArtifact, Outcome, Progress, cause_chain, deploy};
use deployer_sagemaker::SagemakerDeployer;

/// Roll a SageMaker endpoint over to an image.
#[derive(Parser)]
struct Args {
    /// The endpoint name.
    #[arg(long)]
    endpoint: String,
    /// The production variant to roll (default: those whose model uses the image's repository).
    #[arg(long)]
    variant: Option<String>,
    /// Earlier models and endpoint configs kept (older ones this tool created are deleted).
    #[arg(long, default_value_t = 2)]
    keep: usize,
    /// How long the rollout may take.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
    /// The image, digest-pinned: `<registry>/<repository>@sha256:<digest>`.
    image: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some(image) = ImageArtifact::from_reference(&args.image) else {
        eprintln!("error: `{}` is not an image reference", args.image);
        return ExitCode::from(2);
    };
    let deployer = SagemakerDeployer::new(
        aws_sdk_sagemaker::Client::new(&sdk_config().await),
        SagemakerTarget {
            endpoint: args.endpoint.clone(),
            variant: args.variant,
            blue_green: None,
            keep: args.keep,
        },
        image.repository_uri.clone(),
    );
    let progress = Progress::new(&args.endpoint, Arc::new(Stderr));
    let policy = PollPolicy::default().with_timeout(Duration::from_secs(args.timeout_secs));
    match deploy(&deployer, &Artifact::Image(image), &progress, &policy).await {
        Ok(outcome) => {
            print_outcome(&outcome);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", cause_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// What the deploy did, on stdout.
fn print_outcome(outcome: &Outcome) {
    let action = format!("{:?}", outcome.action).to_lowercase();
    println!("{action}: {}", outcome.target);
    println!(
        "  before: {}",
        outcome.old_artifact.as_deref().unwrap_or("-")
    );
    println!(
        "  now:    {}",
        outcome.new_artifact.as_deref().unwrap_or("-")
    );
    for (key, value) in &outcome.ids {
        println!("  {key}: {value}");
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
