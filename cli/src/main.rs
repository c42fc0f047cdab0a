//! The `deployer` binary: a thin wrapper over [`deployer_cli::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    deployer_cli::run(std::env::args_os())
}
