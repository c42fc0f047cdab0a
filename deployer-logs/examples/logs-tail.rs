//! Prints the recent lines of a CloudWatch Logs group (narrowed to a stream prefix), and
//! follows new ones: `deployer logs` for any group, with deployer-logs alone.
//!
//! ```text
//! cargo run -p deployer-logs --example logs-tail -- /aws/lambda/my-fn --since 10m --follow
//! cargo run -p deployer-logs --example logs-tail -- /ecs/app-api --prefix app/web/ --hide "$DB_URL"
//! ```
//!
//! The AWS environment is the standard one (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …).
// A whole program: it prints its results and errors itself.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use clap::Parser;
use deployer_core::LogSource;
use deployer_logs::LogReader;

/// Print (and follow) a log group's recent lines.
#[derive(Parser)]
struct Args {
    /// The log group.
    group: String,
    /// Only the streams whose name starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// From how long ago.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    since: Duration,
    /// Keep printing new lines until interrupted.
    #[arg(long)]
    follow: bool,
    /// A value to show as `***` (repeatable).
    #[arg(long)]
    hide: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let reader = LogReader::new(aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await));
    let sources = [LogSource {
        group: args.group.clone(),
        region: None,
        stream_prefix: args.prefix.clone(),
        label: "log".into(),
        redact: args.hide.clone(),
    }];
    let since = deployer_logs::now_ms() - i64::try_from(args.since.as_millis()).unwrap_or(0);
    let print = |line: &deployer_core::LogLine| {
        println!("{} {} | {}", line.timestamp_ms, line.source, line.message);
        ControlFlow::Continue(())
    };
    let result = if args.follow {
        reader
            .follow(&sources, since, print, |group| {
                eprintln!("{group}: no such log group (yet)");
            })
            .await
    } else {
        reader.read(&sources, since, 10_000).await.map(|read| {
            for group in &read.missing {
                eprintln!("{group}: no such log group");
            }
            for line in &read.lines {
                let _ = print(line);
            }
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
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
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}
