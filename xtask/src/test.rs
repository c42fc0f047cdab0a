//! `cargo xtask test [-- <cargo test args>]`: a fresh test bed, every test against it, bed down.
//!
//! Steps, each timed:
//! 1. sweep the beds of earlier runs that were killed (their processes are already gone: they
//!    die with their owner; only directories remain);
//! 2. start a bed of this run's own in `target/testbed/run-<pid>/`, owned by this process;
//! 3. `cargo test --workspace --no-fail-fast --features deployer-tests/slow <args>` (the slow
//!    end-to-end tests too: deploys under injected faults, SIGKILL at every phase boundary; a
//!    plain `cargo test` lists them as ignored) with `DEPLOYER_TESTBED` naming the bed's
//!    file, the AWS environment replaced by dummy values (no real credentials, profiles or
//!    instance metadata can be reached), under `xtask/testbed/supervise.py` in a process group
//!    of its own; its stdout is copied through and the harness's results are added up into
//!    the last line printed, `tests: N passed, N failed, N skipped`;
//! 4. stop the bed, even when the tests failed.
//!
//! Interrupted runs leave nothing running: Ctrl-C reaches this process and the supervisor of
//! `cargo test` (which passes it on to cargo and the test binaries); the bed's processes notice
//! that this process is gone (parent-death signal, watchdog) and stop, removing the registry's
//! storage. The same holds when this process is killed with SIGKILL (then `cargo test` is
//! stopped by its supervisor's watchdog). The next run removes the left-over directory.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::testbed::{self, Layout, OWNER_ENV, say};

const USAGE: &str = "usage: cargo xtask test [-- <arguments for cargo test>]";

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let extra = match args {
        [] => &[][..],
        ["--", rest @ ..] => rest,
        _ => bail!("{USAGE}"),
    };
    let total = Instant::now();
    let layout = Layout::new();

    let step = Instant::now();
    testbed::sweep_stale_runs(&layout);
    let dir = layout.root.join(format!("run-{}", std::process::id()));
    let file = dir.join("testbed.json");
    let bed = testbed::up(&layout, &file, &dir, Some(std::process::id()))?;
    say!(
        "xtask test: test bed up in {:.1}s",
        step.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    // --no-fail-fast: one failing test binary must not hide the results of the others.
    // The slow end-to-end tests (faults, kills) run here; plain `cargo test` skips them.
    let mut cargo_args = vec![
        "test",
        "--workspace",
        "--no-fail-fast",
        "--features",
        "deployer-tests/slow",
    ];
    cargo_args.extend_from_slice(extra);
    say!("xtask test: cargo {}", cargo_args.join(" "));
    let tests = run_cargo_test(&layout, &bed.python, &file, &dir, &cargo_args);
    say!(
        "xtask test: cargo test finished in {:.1}s",
        step.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    let down = bed.down();
    let _ = std::fs::remove_dir_all(&dir);
    say!(
        "xtask test: test bed down in {:.1}s",
        step.elapsed().as_secs_f64()
    );
    say!("xtask test: total {:.1}s", total.elapsed().as_secs_f64());

    // The last line: the plain summary CI reads ("N passed, N failed, N skipped").
    let (status, counts) = match tests {
        Ok(result) => result,
        Err(error) => {
            if let Err(down) = down {
                eprintln!("xtask test: stopping the test bed also failed: {down:#}");
            }
            return Err(error);
        }
    };
    say!(
        "tests: {} passed, {} failed, {} skipped",
        counts.passed,
        counts.failed,
        counts.ignored
    );
    if !status.success() {
        if let Err(down) = down {
            eprintln!("xtask test: stopping the test bed also failed: {down:#}");
        }
        bail!("cargo test failed ({status})");
    }
    down.context("the tests passed but the test bed did not stop cleanly")
}

fn run_cargo_test(
    layout: &Layout,
    python: &std::path::Path,
    file: &std::path::Path,
    dir: &std::path::Path,
    cargo_args: &[&str],
) -> Result<(ExitStatus, Counts)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(python);
    command
        .arg(layout.supervisor())
        .args(["--own-group", "--", &cargo])
        .args(cargo_args)
        .current_dir(crate::project_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(OWNER_ENV, std::process::id().to_string())
        .env("DEPLOYER_TESTBED", file);
    // The tests must never reach a real AWS account, whatever this shell is logged in to.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        );
    // cargo's stdout (the test harness's report) is copied through to add up the results.
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let mut counts = Counts::default();
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            counts.add(&line);
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child.wait().context("cannot wait for cargo test")?;
    Ok((status, counts))
}

/// The sums of the harness's `test result: … N passed; N failed; N ignored; …` lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    fn add(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                "ignored" => self.ignored += number,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn counts_add_up_the_harness_summaries() {
        let mut counts = Counts::default();
        counts.add("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        counts.add("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.2s");
        counts.add("running 5 tests");
        assert_eq!(
            counts,
            Counts {
                passed: 15,
                failed: 2,
                ignored: 1
            }
        );
    }
}
