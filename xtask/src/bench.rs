//! `cargo xtask bench <name>`: benchmarks that print figures, and ratios against baselines
//! measured in the same run on the same data. They are not tests: a slow figure fails nothing,
//! it is marked "not met".
//!
//! One module per benchmark under `bench/`; this file only dispatches.

mod hash;
mod zip;

const USAGE: &str = "usage: cargo xtask bench <name> [options]

benchmarks:
  hash [--files N] [--mb M] [--runs R] [--keep]
        the hasher (release build) on a generated git tree of N files / M MB (default
        20000 / 500) against sha256sum, cat, and git status; the tree is removed afterwards
        unless --keep
  zip [--files N] [--mb M] [--runs R] [--keep]
        the deterministic zip packager (release build) on a generated tree of N files / M MB
        (default 5000 / 100) against Info-ZIP `zip -rX -q -6`, checking that its runs give
        identical bytes; the tree is removed afterwards unless --keep";

pub(crate) fn run(args: &[&str]) -> anyhow::Result<()> {
    match args {
        ["hash", rest @ ..] => hash::run(rest),
        ["zip", rest @ ..] => zip::run(rest),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}
