//! The benchmark driver: zips one tree and prints one line of `key=value` figures.
//! `cargo xtask bench zip` builds it in release mode without the `deploy` feature (a binary,
//! not an example: examples would pull the crate's dev-dependencies, the AWS SDK, into the
//! release build) and runs it.
//!
//! ```text
//! zip-bench SOURCE [--out PATH] [--exclude GLOB]...
//! sha256=… size=… files=… seconds=…
//! ```
//!
//! `seconds` covers the whole of `deployer_lambda_zip::package`: walking the tree, reading,
//! compressing, writing the archive and hashing it. `--out` writes the zip afterwards.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut source = None;
    let mut out = None;
    let mut exclude = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(args.next().ok_or("--out needs a path")?)),
            "--exclude" => exclude.push(args.next().ok_or("--exclude needs a glob")?),
            _ if source.is_none() && !arg.starts_with('-') => source = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument `{arg}`").into()),
        }
    }
    let source = source.ok_or("usage: zip-bench SOURCE [--out PATH] [--exclude GLOB]...")?;
    let start = Instant::now();
    let zip = deployer_lambda_zip::package(&source, &exclude)?;
    let seconds = start.elapsed().as_secs_f64();
    if let Some(out) = out {
        std::fs::write(out, &zip.bytes[..])?;
    }
    println!(
        "sha256={} size={} files={} seconds={seconds:.4}",
        zip.sha256_b64, zip.size, zip.files
    );
    Ok(())
}
