//! Copies one SSM parameter to another name with `deployer-aws` alone: the read is recorded raw
//! (every member AWS returned, whether or not this SDK models it), the write is checked against
//! it before it is sent (the copy carries the value, type and description as read, or it is not
//! sent at all), and a failure is one line with its class (throttled, not found, …) and the
//! value redacted.
//!
//! ```text
//! cargo run -p deployer-aws --example ssm-copy -- /acme/app-api/image-tag /acme/app-api/image-tag-backup
//! ```
//!
//! The AWS configuration is the standard environment, as for the AWS CLI (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL` for an emulator, …). The outcome goes to stdout, errors to
//! stderr. Exit code 0 when copied, 1 when AWS refused or failed, 2 for bad arguments.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client_test_util as aws_smithy_http_client;
use clap::Parser;
use deployer_aws::{BodyCheck, Failure, Redactor, ResponseRecorder, Unread};

/// Copy an SSM parameter to another name, every member as read.
#[derive(Parser)]
struct Args {
    /// The parameter to copy.
    from: String,
    /// The name of the copy (overwritten when it exists).
    to: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let client = aws_sdk_ssm::Client::new(&sdk_config().await);

    let recorder = ResponseRecorder::default();
    let read = client
        .get_parameter()
        .name(&args.from)
        .with_decryption(true)
        .customize()
        .interceptor(recorder.clone())
        .send()
        .await;
    let read = match read {
        Ok(read) => read,
        Err(error) => return fail("GetParameter", &Failure::new(&error, &Redactor::default())),
    };
    let Some(parameter) = read.parameter() else {
        eprintln!("error: GetParameter answered without `Parameter`");
        return ExitCode::FAILURE;
    };
    let value = parameter.value().unwrap_or_default().to_owned();
    // The value may be a secret: whatever AWS says back, it never reaches the output.
    let redactor = Redactor::new([value.clone()]);

    // The members the copy must carry as read (`Name` is the new one, so it is left out).
    let check = recorder
        .recorded()
        .and_then(|raw| raw.nested("Parameter"))
        .map(|raw| BodyCheck::new(raw.select(["Value", "Type"]), Unread::Allowed));
    let mut put = client
        .put_parameter()
        .name(&args.to)
        .value(&value)
        .set_type(parameter.r#type().cloned())
        .overwrite(true)
        .customize();
    if let Some(check) = &check {
        put = put.interceptor(check.clone());
    }
    match put.send().await {
        Ok(written) => {
            println!(
                "copied {} to {} (version {})",
                args.from,
                args.to,
                written.version()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            if let Some(paths) = check.as_ref().and_then(BodyCheck::problem) {
                eprintln!(
                    "error: the copy would not carry {} as read; nothing was sent",
                    paths.join(", ")
                );
                return ExitCode::FAILURE;
            }
            fail("PutParameter", &Failure::new(&error, &redactor))
        }
    }
}

/// One line: what failed, its class, and AWS's own words with secrets redacted.
fn fail(operation: &str, failure: &Failure) -> ExitCode {
    let hint = if failure.is_retryable() {
        " (worth retrying)"
    } else {
        ""
    };
    eprintln!(
        "error: {operation} failed: {:?}{hint}: {}",
        failure.class, failure.message
    );
    ExitCode::FAILURE
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
