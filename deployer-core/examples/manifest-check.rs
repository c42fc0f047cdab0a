//! Loads and validates a `deployer.toml` with `deployer-core` alone, and prints what it
//! describes: the project, the deploy stages `depends_on` gives, and per service its kind, its
//! target, its rollout timeout, the values looked up at deploy time and where its tag is
//! recorded. A tool of your own can read the same model to drive the deployer crates.
//!
//! ```text
//! cargo run -p deployer-core --example manifest-check -- [path/to/deployer.toml]
//! cargo run -p deployer-core --example manifest-check -- examples/acme/deployer.toml
//! ```
//!
//! An invalid manifest is reported with file, line and column, every problem at once, and
//! exit code 2; no network is used.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use deployer_core::Manifest;
use deployer_core::manifest::{ConfigStore, Target};

fn main() -> ExitCode {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("deployer.toml"), PathBuf::from);
    let manifest = match Manifest::load(&path) {
        Ok(manifest) => manifest,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let project = &manifest.project;
    println!(
        "project {} (records under {}, {} services at once)",
        project.name, project.ssm_prefix, project.concurrency
    );
    let names: Vec<String> = manifest.services.keys().cloned().collect();
    for (number, stage) in manifest.stages(&names).iter().enumerate() {
        println!("stage {number}: {}", stage.join(", "));
    }
    for service in manifest.services.values() {
        println!("\n{} ({})", service.name, service.kind);
        println!("  target:  {}", target(&service.target));
        if let Some(image) = &service.image {
            println!(
                "  image:   {} for {}, built from {}",
                image.repository, image.platform, image.dockerfile
            );
        }
        println!("  timeout: {}", humantime::format_duration(service.timeout));
        for (field, lookup) in service.lookups.iter().chain(&project.lookups) {
            println!("  lookup:  {field} = {lookup}");
        }
        println!("  tag:     {}", service.tag_parameter(project));
    }
    ExitCode::SUCCESS
}

/// What a service rolls, in one line.
fn target(target: &Target) -> String {
    match target {
        Target::Ecs(ecs) => match &ecs.container {
            Some(container) => format!(
                "ECS service {}/{}, container {container}",
                ecs.cluster, ecs.service
            ),
            None => format!("ECS service {}/{}", ecs.cluster, ecs.service),
        },
        Target::Agentcore(agentcore) => format!("AgentCore runtime {}", agentcore.runtime_id),
        Target::LambdaImage(lambda) => format!("Lambda function {}", lambda.function),
        Target::LambdaZip(zip) => format!(
            "Lambda function {}, zipped from {}",
            zip.lambda.function, zip.source
        ),
        Target::Sagemaker(sagemaker) => format!("SageMaker endpoint {}", sagemaker.endpoint),
        Target::Config(config) => match &config.store {
            ConfigStore::Dynamodb { table, .. } => {
                format!("DynamoDB table {table}, rows from {}", config.source)
            }
            ConfigStore::Ssm { prefix } => {
                format!("SSM parameters under {prefix}, from {}", config.source)
            }
        },
    }
}
