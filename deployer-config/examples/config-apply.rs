//! Ships a directory of config items to a DynamoDB table with `deployer-config` alone: the
//! items read and validated (every problem with file and line), the plan of item changes
//! against what the table holds, and — with `--apply` — only the difference written in
//! conditional transactions, the set kept in S3 and the table read back before the marker
//! names the set.
//!
//! ```text
//! cargo run -p deployer-config --example config-apply -- --source config/repositories \
//!     --table acme-repositories --key pk --key sk --bucket acme-deployer \
//!     [--schema config/repository.schema.json] [--secret webhook_secret] [--prune] [--adopt] \
//!     [--project acme] [--service repositories] [--apply]
//! ```
//!
//! Paths are relative to the current directory. The AWS configuration is the standard
//! environment (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …). The plan and the outcome
//! go to stdout, progress to stderr. Exit code 0 when the table holds the set (or, without
//! `--apply`, when the plan was made), 1 when reading AWS or the apply failed, 2 for bad
//! arguments or items the source or schema refuses.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use clap::Parser;
use deployer_config::{Clients, ConfigDeployer, ConfigSet, Names};
use deployer_core::manifest::{ConfigStore, ConfigTarget};
use deployer_core::poll::PollPolicy;
use deployer_core::progress::{ProgressEvent, ProgressSink};
use deployer_core::{Artifact, Deployer, Progress, cause_chain, deploy};

/// Plan (and apply) a directory of config items to a DynamoDB table.
#[derive(Parser)]
struct Args {
    /// The directory of item files (JSON, TOML, YAML).
    #[arg(long)]
    source: String,
    /// A JSON Schema every item is validated against.
    #[arg(long)]
    schema: Option<String>,
    /// The table.
    #[arg(long)]
    table: String,
    /// The key attributes: the partition key, then the sort key if the table has one.
    #[arg(long = "key", required = true)]
    key: Vec<String>,
    /// The bucket keeping a copy of every applied set.
    #[arg(long)]
    bucket: String,
    /// An attribute whose values are secret (never shown).
    #[arg(long)]
    secret: Vec<String>,
    /// Delete items this service wrote earlier that the source no longer has.
    #[arg(long)]
    prune: bool,
    /// Take over items without deployer's owner mark.
    #[arg(long)]
    adopt: bool,
    /// The project, for the owner mark and the marker's name.
    #[arg(long, default_value = "example")]
    project: String,
    /// The service, for the owner mark and the marker's name.
    #[arg(long, default_value = "config")]
    service: String,
    /// Write the difference (else only plan).
    #[arg(long)]
    apply: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let target = ConfigTarget {
        source: args.source.clone(),
        schema: args.schema.clone(),
        store: ConfigStore::Dynamodb {
            table: args.table.clone(),
            key: args.key.clone(),
        },
        secret: args.secret.clone(),
        prune: args.prune,
        adopt: args.adopt,
        s3_bucket: args.bucket.clone(),
        s3_key_prefix: None,
    };
    let set = match ConfigSet::load(Path::new("."), &target) {
        Ok(set) => set,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let wanted = Artifact::Config(set.artifact());
    eprintln!("{wanted}");

    let sdk = sdk_config().await;
    let clients = Clients {
        dynamodb: Some(aws_sdk_dynamodb::Client::new(&sdk)),
        ssm: aws_sdk_ssm::Client::new(&sdk),
        s3: aws_sdk_s3::Client::new(&sdk),
    };
    let prefix = format!("/{}", args.project);
    let names = Names::of(&args.project, &prefix, &args.service, None);
    let deployer = match ConfigDeployer::new(clients, target, names) {
        Ok(deployer) => deployer,
        Err(error) => {
            eprintln!("error: {}", cause_chain(&error));
            return ExitCode::from(2);
        }
    };
    let planned = match deployer.read_live().await {
        Ok(live) => deployer.changes(&live, &wanted).await,
        Err(error) => Err(error),
    };
    match planned {
        Ok(Some(changes)) => {
            for item in &changes.items {
                println!("{} {}", item.change.as_str(), item.item);
                for attribute in &item.attributes {
                    println!(
                        "    {}: {} -> {}",
                        attribute.name,
                        attribute.old.as_deref().unwrap_or("-"),
                        attribute.new.as_deref().unwrap_or("-")
                    );
                }
            }
            println!("plan: {}", changes.summary());
        }
        Ok(None) => println!("plan: the marker names this set"),
        Err(error) => {
            eprintln!("error: {}", cause_chain(&error));
            return ExitCode::FAILURE;
        }
    }
    if !args.apply {
        return ExitCode::SUCCESS;
    }
    let progress = Progress::new(&args.service, Arc::new(Stderr));
    match deploy(&deployer, &wanted, &progress, &PollPolicy::default()).await {
        Ok(outcome) => {
            let action = format!("{:?}", outcome.action).to_lowercase();
            println!("{action}: {}", outcome.target);
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

/// The standard AWS environment, with the HTTPS client the `deployer` cli uses (rustls with
/// ring; it speaks plain http too, for an emulator's `http://127.0.0.1:…`).
async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

/// Prints every progress event on stderr.
struct Stderr;

impl ProgressSink for Stderr {
    fn event(&self, event: ProgressEvent) {
        eprintln!("{} {:>6}: {}", event.service, event.phase, event.message);
    }
}
