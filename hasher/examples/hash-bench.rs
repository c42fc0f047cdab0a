//! Hashes one tree and prints one line of `key=value` figures; `cargo xtask bench hash` builds
//! this in release mode and runs it.
//!
//! ```text
//! hash-bench ROOT [--input GLOB]... [--derive] [--dockerfile PATH] [--context DIR] [--platform PLATFORM]
//! tag=… files=… bytes=… untracked=… context_files=… seconds=… peak_rss_kb=…
//! ```
//!
//! Without `--input`, the inputs are `**`; `--derive` derives them from the Dockerfile instead.
//! Either way the hash runs the coverage check against the Dockerfile's copy sources.
//!
//! `seconds` covers `Repo::open` and `Repo::hash`; `peak_rss_kb` is the process's high-water
//! resident set (`VmHWM` in /proc/self/status).
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut root = None;
    let mut inputs = Vec::new();
    let mut dockerfile = "Dockerfile".to_owned();
    let mut platform = "linux/amd64".to_owned();
    let mut context = ".".to_owned();
    let mut derive = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--input" => inputs.push(args.next().ok_or("--input needs a glob")?),
            "--dockerfile" => dockerfile = args.next().ok_or("--dockerfile needs a path")?,
            "--platform" => platform = args.next().ok_or("--platform needs a value")?,
            "--context" => context = args.next().ok_or("--context needs a directory")?,
            "--derive" => derive = true,
            _ if root.is_none() && !arg.starts_with('-') => root = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument `{arg}`").into()),
        }
    }
    let root =
        root.ok_or("usage: hash-bench ROOT [--input GLOB]... [--derive] [--dockerfile PATH] [--context DIR] [--platform P]")?;
    if inputs.is_empty() && !derive {
        inputs.push("**".to_owned());
    }

    let start = Instant::now();
    let repo = hasher::Repo::open(&root)?;
    let hash = repo.hash(&hasher::Spec {
        inputs: (!derive).then_some(&inputs[..]),
        dockerfile: &dockerfile,
        context: &context,
        platform: &platform,
        build_args: &BTreeMap::new(),
        base_images: &BTreeMap::new(),
    })?;
    let seconds = start.elapsed().as_secs_f64();
    drop(repo);

    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak_rss_kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .ok_or("no VmHWM in /proc/self/status")?;
    println!(
        "tag={} files={} bytes={} untracked={} context_files={} seconds={seconds:.6} \
         peak_rss_kb={peak_rss_kb}",
        hash.tag,
        hash.files,
        hash.bytes,
        hash.untracked.len(),
        hash.context.files.len()
    );
    Ok(())
}
