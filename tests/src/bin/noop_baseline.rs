//! `noop_baseline`: the live reads a no-op `deployer deploy` of lambda-zip services needs, made
//! by a plain parallel SDK loop. It is the baseline of `cargo xtask bench noop`
//! (`xtask/src/bench/noop.rs`), which runs it beside the no-op deploy on the same functions and
//! prints the ratio of the two.
//!
//! ```text
//! noop_baseline <spec.json>
//! spec: {"region": "us-east-1", "functions": ["f1", ...], "parameters": ["/p/s1/image-tag", ...]}
//! ```
//!
//! The reads: one `GetFunction` per function and `GetParameters` for the parameters, 10 names
//! a call (the API's limit), every call started at once (a `JoinSet`), no limit on
//! concurrency. The `SdkConfig` is the deployer's own (`deployer_cli::aws::sdk_config`): the
//! same HTTP client, retry settings and AWS environment (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, ...), so the test bed's request recorder sees this process's calls under
//! its access key.
//!
//! It prints one JSON line on stdout: `seconds` (the reads, from the first call sent to the last
//! answer), `config_seconds` (loading the `SdkConfig`), the calls made, the functions and
//! parameters found, and the first errors. Exit code 0 when every call succeeded, 1 when one
//! failed, 2 on a bad spec.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinSet;

/// `GetParameters` takes at most 10 names.
const NAMES_PER_CALL: usize = 10;

#[derive(Deserialize)]
struct Spec {
    region: Option<String>,
    functions: Vec<String>,
    parameters: Vec<String>,
}

/// What one call returned: found items, missing items, or an error.
enum Answer {
    Function,
    Parameters { found: usize, missing: usize },
    Failed(String),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: noop_baseline <spec.json>");
        return ExitCode::from(2);
    };
    let spec: Spec = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("noop_baseline: cannot read the spec {path}: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("noop_baseline: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(reads(spec))
}

async fn reads(spec: Spec) -> ExitCode {
    let started = Instant::now();
    let config = deployer_cli::aws::sdk_config(spec.region.as_deref()).await;
    let lambda = aws_sdk_lambda::Client::new(&config);
    let ssm = aws_sdk_ssm::Client::new(&config);
    let config_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut calls = JoinSet::new();
    let get_function_calls = spec.functions.len();
    for function in spec.functions {
        let lambda = lambda.clone();
        calls.spawn(async move {
            match lambda.get_function().function_name(&function).send().await {
                Ok(_) => Answer::Function,
                Err(error) => Answer::Failed(format!("GetFunction {function}: {error}")),
            }
        });
    }
    let get_parameters_calls = spec.parameters.chunks(NAMES_PER_CALL).len();
    for names in spec.parameters.chunks(NAMES_PER_CALL) {
        let ssm = ssm.clone();
        let names = names.to_vec();
        calls.spawn(async move {
            let count = names.len();
            match ssm.get_parameters().set_names(Some(names)).send().await {
                Ok(output) => {
                    let found = output.parameters().len();
                    Answer::Parameters {
                        found,
                        missing: count - found.min(count),
                    }
                }
                Err(error) => Answer::Failed(format!("GetParameters: {error}")),
            }
        });
    }
    let (mut functions, mut found, mut missing, mut errors) = (0, 0, 0, Vec::new());
    while let Some(joined) = calls.join_next().await {
        match joined {
            Ok(Answer::Function) => functions += 1,
            Ok(Answer::Parameters {
                found: f,
                missing: m,
            }) => {
                found += f;
                missing += m;
            }
            Ok(Answer::Failed(error)) => errors.push(error),
            Err(error) => errors.push(format!("a task failed: {error}")),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let failed = errors.len();
    errors.truncate(5);
    println!(
        "{}",
        json!({
            "seconds": seconds,
            "config_seconds": config_seconds,
            "get_function_calls": get_function_calls,
            "get_parameters_calls": get_parameters_calls,
            "functions_found": functions,
            "parameters_found": found,
            "parameters_missing": missing,
            "failed_calls": failed,
            "errors": errors,
        })
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
