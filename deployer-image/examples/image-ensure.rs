//! Makes sure a registry has the image of a Dockerfile with `deployer-image` alone (and
//! `hasher` for the tag): the content tag of the inputs, then the pipeline's check → build →
//! push → confirm, which builds only when the registry lacks `repository:tag`.
//!
//! ```text
//! cd <a git work tree>
//! cargo run -p deployer-image --example image-ensure -- --registry 127.0.0.1:5000 \
//!     --repository acme/api [--dockerfile Dockerfile] [--context .] [--platform linux/amd64] \
//!     [--builder docker|podman|buildah] [--build-arg KEY=VALUE]...
//! ```
//!
//! The tag covers what `hasher` hashes (the tracked files the Dockerfile copies, the
//! Dockerfile, the context and its ignore file, platform, build args), and the builder gets
//! exactly the tracked files of the context. An ECR registry
//! (`<account>.dkr.ecr.<region>.amazonaws.com`) is asked through the ECR API with the standard
//! AWS environment (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL_ECR`, …) and logged in to;
//! any other registry through the OCI distribution API. Progress (the builder's output
//! included) goes to stderr, the image to stdout. Exit code 0 when the registry has the image,
//! 1 when hashing, building or pushing failed, 2 for bad arguments.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use clap::Parser;
use deployer_core::manifest::Builder;
use deployer_core::progress::{ProgressEvent, ProgressSink};
use deployer_core::{Progress, cause_chain};
use deployer_image::{ContextFile, ContextFileKind, EcrHost, ImageRequest, Pipeline, Registry};

/// Build and push an image only when the registry lacks its content tag.
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
    /// The builder (default: the first of docker, podman, buildah that works).
    #[arg(long)]
    builder: Option<String>,
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
    let builder = match args
        .builder
        .as_deref()
        .map(|name| (name, Builder::parse(name)))
    {
        None => None,
        Some((_, Some(builder))) => Some(builder),
        Some((name, None)) => {
            eprintln!("error: unknown builder `{name}` (docker, podman or buildah)");
            return ExitCode::from(2);
        }
    };
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

    let registry = match EcrHost::parse(&args.registry) {
        Some(ecr) => {
            let client = aws_sdk_ecr::Client::new(&sdk_config().await);
            Registry::ecr(&args.registry, ecr, client)
        }
        None => Registry::oci(&args.registry),
    };
    let pipeline = Pipeline::new(registry, builder);
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
    match pipeline.ensure(&request, &progress).await {
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
            ExitCode::FAILURE
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
