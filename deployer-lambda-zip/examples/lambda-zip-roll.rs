//! Packages a directory as a deterministic zip and deploys it to one zip Lambda function with
//! `deployer-lambda-zip` alone: nothing is uploaded when the function's `CodeSha256` already is
//! the zip's; otherwise `UpdateFunctionCode` (the zip inline, or through S3 above Lambda's
//! direct-upload limit), a wait until the update settled, and optionally a published version
//! with an alias moved to it.
//!
//! ```text
//! cargo run -p deployer-lambda-zip --example lambda-zip-roll -- --function acme-render \
//!     [--exclude '**/__pycache__'] [--s3-bucket B] [--publish [--alias live]] backend/src/render
//! cargo run -p deployer-lambda-zip --example lambda-zip-roll -- --package-only backend/src/render
//! ```
//!
//! `--package-only` builds the zip and prints its size and SHA-256 without calling AWS. The AWS
//! configuration is the standard environment, as for the AWS CLI (`AWS_PROFILE`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_LAMBDA` for an emulator, …). Progress goes to
//! stderr, the outcome to stdout. Exit code 0 when the function runs the zip (updated, or
//! already on it), 1 when packaging or the deploy failed, 2 for bad arguments.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use clap::Parser;
use deployer_core::manifest::{LambdaTarget, LambdaZipTarget};
use deployer_core::poll::PollPolicy;
use deployer_core::progress::{ProgressEvent, ProgressSink};
use deployer_core::{Artifact, Outcome, Progress, cause_chain, deploy};
use deployer_lambda_zip::{LambdaZipDeployer, ZipPackage, package};

/// Package a directory and deploy it to a zip Lambda function.
#[derive(Parser)]
struct Args {
    /// The function name or ARN.
    #[arg(long, required_unless_present = "package_only")]
    function: Option<String>,
    /// Globs, relative to the source directory, left out of the zip.
    #[arg(long)]
    exclude: Vec<String>,
    /// Bucket for zips above Lambda's direct-upload limit.
    #[arg(long)]
    s3_bucket: Option<String>,
    /// Publish a version after the update.
    #[arg(long)]
    publish: bool,
    /// Point this alias at the published version.
    #[arg(long, requires = "publish")]
    alias: Option<String>,
    /// How long the update may take.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Only build the zip and print what it is.
    #[arg(long)]
    package_only: bool,
    /// The directory zipped.
    source: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let zip = match package(&args.source, &args.exclude) {
        Ok(zip) => zip,
        Err(error) => {
            eprintln!("error: {}", cause_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "packaged {}: {} files, {} bytes, CodeSha256 {}",
        args.source.display(),
        zip.files,
        zip.size,
        zip.sha256_b64
    );
    let Some(function) = args.function.filter(|_| !args.package_only) else {
        println!(
            "{}: {} bytes, CodeSha256 {}",
            zip.tag, zip.size, zip.sha256_b64
        );
        return ExitCode::SUCCESS;
    };
    let sdk = sdk_config().await;
    let target = LambdaZipTarget {
        lambda: LambdaTarget {
            function: function.clone(),
            publish: args.publish,
            alias: args.alias,
        },
        source: args.source.display().to_string(),
        exclude: args.exclude,
        s3_bucket: args.s3_bucket,
        s3_key_prefix: None,
    };
    let package = ZipPackage::new(
        &target,
        Some(aws_sdk_s3::Client::new(&sdk)),
        format!("deployer/{function}/"),
    );
    let deployer = LambdaZipDeployer::new(
        aws_sdk_lambda::Client::new(&sdk),
        target.lambda.clone(),
        package,
    );
    let progress = Progress::new(&function, Arc::new(Stderr));
    let policy = PollPolicy::default().with_timeout(Duration::from_secs(args.timeout_secs));
    match deploy(&deployer, &Artifact::Zip(zip), &progress, &policy).await {
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
