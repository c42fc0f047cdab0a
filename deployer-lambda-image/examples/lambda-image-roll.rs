//! Points one image Lambda function at an image with `deployer-lambda-image` alone:
//! `UpdateFunctionCode --image-uri` (after checking the function holds an image and runs on the
//! image's architecture), a wait until the update settled, and optionally a published version
//! with an alias moved to it.
//!
//! ```text
//! cargo run -p deployer-lambda-image --example lambda-image-roll -- --function acme-render \
//!     [--platform linux/arm64] [--publish [--alias live]] <registry>/<repository>@sha256:<digest>
//! ```
//!
//! The AWS configuration is the standard environment, as for the AWS CLI (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_LAMBDA` for an emulator, …). Progress
//! goes to stderr, the outcome to stdout. Exit code 0 when the function runs the image
//! (updated, or already on it), 1 when the deploy failed, 2 for bad arguments.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use clap::Parser;
use deployer_core::manifest::{LambdaTarget, Platform};
use deployer_core::poll::PollPolicy;
use deployer_core::progress::{ProgressEvent, ProgressSink};
use deployer_core::{Artifact, ImageArtifact, Outcome, Progress, cause_chain, deploy};
use deployer_lambda_image::LambdaImageDeployer;

/// Point an image Lambda function at an image.
#[derive(Parser)]
struct Args {
    /// The function name or ARN.
    #[arg(long)]
    function: String,
    /// The platform the image is built for: the function must run on its architecture.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    /// Publish a version after the update.
    #[arg(long)]
    publish: bool,
    /// Point this alias at the published version.
    #[arg(long, requires = "publish")]
    alias: Option<String>,
    /// How long the update may take.
    #[arg(long, default_value_t = 600)]
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
    let platform = match Platform::parse(&args.platform) {
        Ok(platform) => platform,
        Err(error) => {
            eprintln!("error: --platform: {error}");
            return ExitCode::from(2);
        }
    };
    let deployer = LambdaImageDeployer::new(
        aws_sdk_lambda::Client::new(&sdk_config().await),
        LambdaTarget {
            function: args.function.clone(),
            publish: args.publish,
            alias: args.alias,
        },
        platform,
    );
    let progress = Progress::new(&args.function, Arc::new(Stderr));
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
