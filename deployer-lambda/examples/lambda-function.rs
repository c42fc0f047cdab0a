//! The Lambda function machinery of `deployer-lambda` alone, on an image function: reads its
//! live state (`GetFunction`, and the alias or the published versions) and prints it; given an
//! image, points the function at it step by step — `is_current`, `apply` (`UpdateFunctionCode`,
//! after waiting out an update in progress, retried on conflicts), `wait` (until the update
//! settled, then publish and alias). `deployer-lambda-zip`'s example does the same for zips.
//!
//! ```text
//! cargo run -p deployer-lambda --example lambda-function -- --function acme-render
//! cargo run -p deployer-lambda --example lambda-function -- --function acme-render \
//!     [--platform linux/arm64] [--publish [--alias live]] <registry>/<repository>@sha256:<digest>
//! ```
//!
//! The AWS configuration is the standard environment, as for the AWS CLI (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_LAMBDA` for an emulator, …). Progress
//! goes to stderr, the live state and what was done to stdout. Exit code 0 on success, 1 when
//! a call or the update failed, 2 for bad arguments.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use clap::Parser;
use deployer_core::manifest::{LambdaTarget, Platform};
use deployer_core::progress::{ProgressEvent, ProgressSink};
use deployer_core::{Artifact, DeployError, ImageArtifact, Progress, cause_chain};
use deployer_lambda::{Code, Function, PackageKind};

/// Read a Lambda function, and optionally point it at an image.
#[derive(Parser)]
struct Args {
    /// The function name or ARN.
    #[arg(long)]
    function: String,
    /// The image to point the function at, digest-pinned:
    /// `<registry>/<repository>@sha256:<digest>`; without it, the live state is only printed.
    image: Option<String>,
    /// The platform the image is built for: the function must run on its architecture.
    #[arg(long, requires = "image")]
    platform: Option<String>,
    /// Publish a version after the update.
    #[arg(long, requires = "image")]
    publish: bool,
    /// Point this alias at the published version.
    #[arg(long, requires = "publish")]
    alias: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let wanted = match args.image.as_deref().map(ImageArtifact::from_reference) {
        None => None,
        Some(Some(image)) => Some(Artifact::Image(image)),
        Some(None) => {
            eprintln!("error: the image is not an image reference");
            return ExitCode::from(2);
        }
    };
    let target = LambdaTarget {
        function: args.function.clone(),
        publish: args.publish,
        alias: args.alias,
    };
    let mut function = Function::new(
        aws_sdk_lambda::Client::new(&sdk_config().await),
        target,
        PackageKind::Image,
    );
    if let Some(platform) = &args.platform {
        match Platform::parse(platform) {
            Ok(platform) => function = function.with_platform(&platform),
            Err(error) => {
                eprintln!("error: --platform: {error}");
                return ExitCode::from(2);
            }
        }
    }
    let progress = Progress::new(&args.function, Arc::new(Stderr));
    match run(&function, wanted.as_ref(), &progress).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cause_chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run(
    function: &Function,
    wanted: Option<&Artifact>,
    progress: &Progress,
) -> Result<(), DeployError> {
    let live = function.read_live().await?;
    println!("{}", function.describe());
    println!("  live: {}", live.summary);
    print_ids(&live.ids);
    let Some(wanted) = wanted else {
        return Ok(());
    };
    if function.is_current(&live, wanted) {
        println!("unchanged: already runs {wanted}");
        return Ok(());
    }
    let code = Code::ImageUri(wanted.deploy_id());
    let applied = function
        .apply(&live, Some(code), None, wanted.deploy_id(), progress)
        .await?;
    let applied = function
        .wait(&applied, &Function::default_policy(), progress)
        .await?;
    println!("updated: now runs {}", applied.new_artifact);
    print_ids(&applied.ids);
    Ok(())
}

fn print_ids(ids: &BTreeMap<String, String>) {
    for (key, value) in ids {
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
