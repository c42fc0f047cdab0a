//! Makes sure a registry has the image of a Dockerfile, built on AWS CodeBuild, with
//! `deployer-codebuild` and `deployer-image` alone (and `hasher` for the tag): the pipeline's
//! check, then — only when the registry lacks `repository:tag` — the build context staged from
//! exactly the hashed files, uploaded to S3 by its content, built and pushed by the CodeBuild
//! project, and the push confirmed by the registry's digest.
//!
//! ```text
//! cd <a git work tree>
//! cargo run -p deployer-codebuild --example codebuild-ensure -- \
//!     --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com --repository acme/api \
//!     --project acme-images --bucket acme-build-contexts [--arm] \
//!     [--compute BUILD_GENERAL1_SMALL] [--dockerfile Dockerfile] [--context .] \
//!     [--platform linux/amd64] [--build-arg KEY=VALUE]...
//! ```
//!
//! The standard AWS environment (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL_CODEBUILD`, …)
//! reaches CodeBuild, CloudWatch Logs, S3 and ECR; no image builder is needed on this machine.
//! The build's phases and log lines go to stderr, the image to stdout. Ctrl-C stops the
//! build. Exit code 0 when the registry has the image, 1 when hashing or the build failed, 2
//! for bad arguments or settings CodeBuild refused (a missing project or bucket, access
//! denied), 130 when interrupted.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use clap::Parser;
use deployer_codebuild::{Clients, Session};
use deployer_core::manifest::CodeBuild;
use deployer_core::progress::{ProgressEvent, ProgressSink};
use deployer_core::{Progress, cause_chain};
use deployer_image::{ContextFile, ContextFileKind, EcrHost, ImageRequest, Pipeline, Registry};

/// Build an image on CodeBuild and push it, only when the registry lacks its content tag.
#[derive(Parser)]
struct Args {
    /// The registry, `host[:port]`.
    #[arg(long)]
    registry: String,
    /// The repository in the registry.
    #[arg(long)]
    repository: String,
    /// The Dockerfile, relative to the work tree's root (the current directory).
    #[arg(long, default_value = "Dockerfile")]
    dockerfile: String,
    /// The build context directory, relative to the root.
    #[arg(long, default_value = ".")]
    context: String,
    /// The platform to build for.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    /// The CodeBuild project.
    #[arg(long)]
    project: String,
    /// The bucket the build context is uploaded to.
    #[arg(long)]
    bucket: String,
    /// The compute type.
    #[arg(long, default_value = CodeBuild::DEFAULT_COMPUTE)]
    compute: String,
    /// Build on the ARM fleet (for `linux/arm64`).
    #[arg(long)]
    arm: bool,
    /// The deployer project the contexts are kept under (`deployer/<project>/contexts/`).
    #[arg(long, default_value = "example")]
    deployer_project: String,
    /// A `--build-arg` for the build, `KEY=VALUE`.
    #[arg(long = "build-arg", value_parser = key_value)]
    build_args: Vec<(String, String)>,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let build_args: BTreeMap<String, String> = args.build_args.iter().cloned().collect();

    // The content tag and the build context, as `deployer` computes them.
    let (tag, context_files) = match hash(&args, &build_args) {
        Ok(hashed) => hashed,
        Err(error) => {
            eprintln!("error: {}", cause_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    eprintln!("tag {tag}: {} files in the context", context_files.len());

    let sdk = sdk_config().await;
    let registry = match EcrHost::parse(&args.registry) {
        Some(ecr) => Registry::ecr(&args.registry, ecr, aws_sdk_ecr::Client::new(&sdk)),
        None => Registry::oci(&args.registry),
    };
    // No local builder: the pipeline builds on `remote` only.
    let pipeline = Pipeline::new(registry, None);
    let session = Session::new(Clients::from_conf(&sdk), &args.deployer_project);
    let remote = session.builder(CodeBuild {
        project: args.project.clone(),
        bucket: args.bucket.clone(),
        compute: args.compute.clone(),
        arm: args.arm,
    });
    let request = ImageRequest {
        service: args.repository.clone(),
        repository: args.repository.clone(),
        tag,
        dockerfile: args.dockerfile.into(),
        context: args.context.into(),
        context_files,
        platform: args.platform,
        build_args,
    };
    let progress = Progress::new(&args.repository, Arc::new(Stderr));
    let ensured = tokio::select! {
        ensured = pipeline.ensure_on(&request, Some(&remote), &progress) => ensured,
        _ = tokio::signal::ctrl_c() => {
            for stopped in session.stop_unfinished().await {
                match stopped.result {
                    Ok(()) => eprintln!("interrupted: stopped build {}", stopped.build_id),
                    Err(error) => eprintln!(
                        "interrupted: cannot stop build {}: {error}",
                        stopped.build_id
                    ),
                }
            }
            return ExitCode::from(130);
        }
    };
    match ensured {
        Ok(report) => {
            let what = if report.built {
                "built and pushed"
            } else {
                "already in the registry"
            };
            eprintln!(
                "{what} (check {} ms, build {} ms, push {} ms)",
                report.check_ms, report.build_ms, report.push_ms
            );
            println!("{}", report.artifact.deploy_uri());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", cause_chain(&error));
            if error.is_config() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The tag of the Dockerfile's inputs (derived from its `COPY`/`ADD` sources) and the context
/// files the builder gets.
fn hash(
    args: &Args,
    build_args: &BTreeMap<String, String>,
) -> Result<(String, Vec<ContextFile>), hasher::Error> {
    let repo = hasher::Repo::open(Path::new("."))?;
    let hash = repo.hash(&hasher::Spec {
        inputs: None,
        dockerfile: &args.dockerfile,
        context: &args.context,
        platform: &args.platform,
        build_args,
        base_images: &BTreeMap::new(),
    })?;
    let context = repo.context(&args.context, &args.dockerfile)?;
    let files = context
        .files
        .iter()
        .filter_map(|file| {
            let kind = match file.kind {
                hasher::FileKind::Regular => ContextFileKind::Regular,
                hasher::FileKind::Executable => ContextFileKind::Executable,
                hasher::FileKind::Symlink => ContextFileKind::Symlink,
                // A submodule's files are not in this repository's listing.
                hasher::FileKind::Submodule => return None,
            };
            Some(ContextFile::new(file.path.clone(), kind))
        })
        .collect();
    Ok((hash.tag, files))
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
