//! Rolls one Bedrock AgentCore runtime over to an image with `deployer-agentcore` alone: the
//! live runtime read with `GetAgentRuntime`, a full-replacement `UpdateAgentRuntime` that sends
//! back every field with only the container URI replaced, and a wait until the runtime is
//! `READY` on the new version.
//!
//! ```text
//! cargo run -p deployer-agentcore --example agentcore-roll -- --runtime-id acme_agent-a1b2c3d4e5 \
//!     [--timeout-secs 900] <registry>/<repository>@sha256:<digest>
//! ```
//!
//! The AWS configuration is the standard environment, as for the AWS CLI (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL` for an emulator, …). Progress goes to stderr, the outcome
//! to stdout. Exit code 0 when the runtime runs the image (rolled over, or already on it), 1
//! when the deploy failed, 2 for bad arguments.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
// `aws-smithy-http-client`, under the name this package's request-body tests give it.
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client_test_util as aws_smithy_http_client;
use clap::Parser;
use deployer_agentcore::AgentcoreDeployer;
use deployer_core::manifest::AgentcoreTarget;
use deployer_core::poll::PollPolicy;
use deployer_core::progress::{ProgressEvent, ProgressSink};
use deployer_core::{Artifact, ImageArtifact, Outcome, Progress, cause_chain, deploy};

/// Roll an AgentCore runtime over to an image.
#[derive(Parser)]
struct Args {
    /// The agent runtime id.
    #[arg(long)]
    runtime_id: String,
    /// A named endpoint moved to the new version once the runtime is READY on it (repeatable).
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// How long the rollout may take.
    #[arg(long, default_value_t = 900)]
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
    let deployer = AgentcoreDeployer::new(
        aws_sdk_bedrockagentcorecontrol::Client::new(&sdk_config().await),
        AgentcoreTarget {
            runtime_id: args.runtime_id.clone(),
            endpoints: args.endpoints.clone(),
        },
    );
    let progress = Progress::new(&args.runtime_id, Arc::new(Stderr));
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
