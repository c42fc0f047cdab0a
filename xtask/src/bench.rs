//! `cargo xtask bench <name>`: benchmarks that print figures, and ratios against baselines
//! measured in the same run on the same data. They are not tests: a slow figure fails nothing,
//! it is marked "not met".
//!
//! One module per benchmark under `bench/`; this file only dispatches.

mod config;
mod hash;
mod machine;
mod noop;
mod zip;

const USAGE: &str = "usage: cargo xtask bench <name> [options]

benchmarks:
  config [--items N] [--release]
        a config service of N DynamoDB rows (default 1000) through `deployer` against the test
        bed's moto: the first apply, the no-op apply (goal: zero writes), the plan and apply of
        a 1% change (plus 0.5% added, 0.5% removed with prune), a rollback; wall time and AWS
        calls by action (moto's recorder) per step, and the plan as printed. Uses the running
        test bed, else starts one of its own
  hash [--files N] [--mb M] [--runs R] [--keep]
        the hasher (release build) on a generated git tree of N files / M MB (default
        20000 / 500) against sha256sum, cat, and git status; the tree is removed afterwards
        unless --keep
  zip [--files N] [--mb M] [--runs R] [--keep]
        the deterministic zip packager (release build) on a generated tree of N files / M MB
        (default 5000 / 100) against Info-ZIP `zip -rX -q -6`, checking that its runs give
        identical bytes; the tree is removed afterwards unless --keep
  noop [--services 5,50,200] [--runs R] [--concurrency 16] [--release] [--no-retry]
       [--retry-timeout S] [--keep]
        the no-op `deployer deploy --all --json` of N unchanged lambda-zip services against the
        test bed's moto (default 5, 50, 200; R = 3 runs each, median and min), beside a plain
        parallel SDK loop making the same live reads (the `noop_baseline` binary of the tests
        crate): their ratio (goal <= 1.5) and the calls by API action from moto's recorder
        (goal: zero writes). Then the retry cost: the first deploy of 5 services through the
        fault proxy with 25% throttling, with the deployer's default retry settings,
        AWS_RETRY_MODE=adaptive and =standard (AWS_MAX_ATTEMPTS=8), and without faults (each
        killed after --retry-timeout, default 240 s; --no-retry skips it). Uses the running
        test bed, else starts one of its own and stops it. The deployer is target/debug/deployer
        (built only when missing), target/release/deployer with --release (built), or
        $DEPLOYER_BIN";

pub(crate) fn run(args: &[&str]) -> anyhow::Result<()> {
    match args {
        ["config", rest @ ..] => config::run(rest),
        ["hash", rest @ ..] => hash::run(rest),
        ["noop", rest @ ..] => noop::run(rest),
        ["zip", rest @ ..] => zip::run(rest),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}
