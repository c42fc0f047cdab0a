//! Repository tasks, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! ```text
//! cargo xtask demo                  # the example monorepo deployed to a local AWS emulator
//! cargo xtask deploy --service S    # deploy with a slim deployer (only the features S needs)
//! cargo xtask dist                  # release binaries per feature set, with sha256 files
//! cargo xtask test                  # test bed up, the whole test suite, test bed down
//! cargo xtask testbed up|down|status
//! cargo xtask bench hash|zip|noop   # benchmarks, printing ratios against baselines
//! ```
//!
//! Each task is one module; `main` only dispatches. xtask prints, so the print lints are off.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod demo;
mod deploy;
mod dist;
mod test;
mod testbed;
#[cfg(test)]
mod tidy;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  demo                       deploy the example monorepo to a local AWS emulator, change one file, deploy again
  deploy --service S...      deploy with a deployer built with only the features those services need
  dist [--manifest M]...     release binaries per feature set with their sha256 files (target/dist)
  test                       bring the test bed up, run every test against it, bring it down
  testbed up|down|status     the local AWS test bed (moto server, image registry, builder)
  bench hash|zip|noop        benchmarks, printing ratios against baselines measured in the same run";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["test", rest @ ..] => test::run(rest),
        ["testbed", rest @ ..] => testbed::run(rest),
        ["bench", rest @ ..] => bench::run(rest),
        ["demo", rest @ ..] => demo::run(rest),
        ["deploy", rest @ ..] => deploy::run(rest),
        ["dist", rest @ ..] => dist::run(rest),
        ["help" | "--help" | "-h"] | [] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn project_root() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent().unwrap_or(dir).to_owned()
}
