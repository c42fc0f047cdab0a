//! Checks one service's IaC with `deployer-iac` alone: a CloudFormation template file (JSON or
//! YAML) for how the image property is wired, or a Terraform state file for the image its
//! resource was applied with against the live one. Prints each warning; no AWS call.
//!
//! ```text
//! cargo run -p deployer-iac --example iac-check -- --kind ecs --container app \
//!     --parameter /acme/app-api/image-tag template infra/template.yaml
//! cargo run -p deployer-iac --example iac-check -- --kind ecs --container app \
//!     --parameter /acme/app-api/image-tag state infra/terraform.tfstate \
//!     aws_ecs_task_definition.app 123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app-api@sha256:…
//! ```
//!
//! Exit code 0 when the IaC keeps the image, 1 with a warning, 2 when a file cannot be read.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use deployer_iac::{Kind, Target};

/// Would the next IaC deploy revert the image deployer rolled out?
#[derive(Parser)]
struct Args {
    /// What holds the image.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// The SSM parameter deployer records the tag in (`<ssm_prefix>/<service>/image-tag`).
    #[arg(long)]
    parameter: String,
    /// The ECS container whose image deployer replaces.
    #[arg(long)]
    container: Option<String>,
    /// The target's name (ECS service, function, runtime id), to pick it among several.
    #[arg(long)]
    name: Option<String>,
    #[command(subcommand)]
    source: Source,
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Ecs,
    Lambda,
    Agentcore,
    Sagemaker,
}

#[derive(Subcommand)]
enum Source {
    /// A CloudFormation template file.
    Template { path: String },
    /// A Terraform state file, the resource's address and the live image.
    State {
        path: String,
        address: String,
        live: String,
        /// The tag deployer recorded for the live image.
        #[arg(long)]
        tag: Option<String>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let kind = match args.kind {
        KindArg::Ecs => Kind::Ecs,
        KindArg::Lambda => Kind::Lambda,
        KindArg::Agentcore => Kind::Agentcore,
        KindArg::Sagemaker => Kind::Sagemaker,
    };
    let target = Target {
        kind,
        service: "service",
        name: args.name.as_deref(),
        container: args.container.as_deref(),
        parameter: &args.parameter,
    };
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let warnings = match &args.source {
        Source::Template { path } => match read(path) {
            Ok(body) => deployer_iac::template_warnings(path, &body, &target),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        },
        Source::State {
            path,
            address,
            live,
            tag,
        } => {
            let state = read(path)
                .and_then(|text| serde_json::from_str(&text).map_err(|e| format!("{path}: {e}")));
            let image = state.and_then(|state| {
                deployer_iac::tfstate::image(
                    &state,
                    address,
                    kind,
                    target.container,
                    target.parameter,
                )
                .map_err(|e| e.to_string())
            });
            match image {
                Ok(image) => deployer_iac::state_warning(
                    path,
                    address,
                    &image,
                    live,
                    tag.as_deref(),
                    &target,
                )
                .into_iter()
                .collect(),
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    if warnings.is_empty() {
        println!(
            "the IaC keeps the image deployer records in {}",
            args.parameter
        );
        return ExitCode::SUCCESS;
    }
    for warning in &warnings {
        println!("warning: {warning}");
    }
    ExitCode::from(1)
}
