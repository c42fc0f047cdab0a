//! The `deployer` command line, as a library so that tests can drive it in process.
//!
//! [`run`] parses arguments, executes one command and returns the process exit code; `main.rs`
//! only calls it. This is the one crate that prints: results go to stdout (one JSON document
//! with `--json`), progress and logs to stderr.
//!
//! The deployers are composed by cargo feature (`ecs`, `agentcore`, `lambda-image`,
//! `lambda-zip`, `sagemaker`, `config`, all on by default; `codebuild` for builds on AWS
//! CodeBuild): a build without a feature still parses manifests that use
//! the kind and fails loudly, naming the feature, when asked to operate on such a service.
//!
//! ```text
//! deployer validate                # check deployer.toml
//! deployer hash --service app-api  # print the content tag of a service
//! ```

mod args;
pub mod aws;
mod commands;
mod context;
mod diagnosis;
mod endpoints;
mod engine;
mod exit;
mod github;
mod iac;
mod iam;
mod inputs;
mod lookups;
mod output;
mod progress;
#[cfg(all(
    test,
    feature = "ecs",
    feature = "agentcore",
    feature = "sagemaker",
    feature = "lambda"
))]
mod record_format;
mod rollout;
mod smoke;
mod targets;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

pub use exit::Exit;

/// Runs the command line `args` (including the program name) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let command = args::Cli::command().version(targets::version_string());
    let matches = match command.try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(error) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let cli = match args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return Exit::Usage.into();
        }
    };
    let printer = output::Printer::new(cli.global.json);
    output::init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            printer.error(
                &anyhow::Error::new(error).context("cannot start the async runtime"),
                Exit::Failure,
            );
            return Exit::Failure.into();
        }
    };
    let exit = match runtime.block_on(commands::dispatch(cli, &printer)) {
        Ok(exit) => exit,
        Err(error) => {
            let exit = exit::classify(&error);
            printer.error(&error, exit);
            exit
        }
    };
    exit.into()
}
