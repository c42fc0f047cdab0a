//! `cargo xtask dist [--manifest <path>]...`: the release binaries the generated workflow
//! downloads (`[ci] install = { release = …, version = …, sha256 = … }`), one per feature set,
//! for this machine's target, in `target/dist/`:
//!
//! - `deployer-<version>-<target>-<features>` (features joined by `-`, e.g.
//!   `deployer-0.1.0-x86_64-unknown-linux-gnu-lambda-image-codebuild`), built with
//!   `cargo build --release --locked -p deployer-cli --no-default-features --features …`;
//! - `<binary>.sha256` beside each (`<hex>  <name>`, as `sha256sum` writes it);
//! - `SHA256SUMS`: every binary in `target/dist/` (so binaries built on an arm64 machine and
//!   copied in are listed too). Its own SHA-256, printed at the end, is the `sha256` of
//!   `[ci] install`: the workflow checks `SHA256SUMS` against it, then the binary against
//!   `SHA256SUMS`.
//!
//! Without `--manifest`, every feature set a workflow can ask for: each kind, and each image
//! kind with `codebuild`. With `--manifest`, the sets that manifest's workflow uses.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};

const USAGE: &str = "usage: cargo xtask dist [--manifest <deployer.toml>]...";

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let root = crate::project_root();
    let mut manifests = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--manifest" | "-f" => manifests.push(PathBuf::from(rest.next().context(USAGE)?)),
            other => bail!("unexpected `{other}`\n{USAGE}"),
        }
    }
    let mut sets: BTreeSet<Vec<String>> = BTreeSet::new();
    if manifests.is_empty() {
        // Every kind (the cli's features are the kinds' names), and with `codebuild` each
        // kind that builds an image.
        for kind in deployer_core::manifest::Kind::ALL {
            sets.insert(vec![kind.as_str().to_owned()]);
            if kind.is_image() {
                sets.insert(vec![kind.as_str().to_owned(), "codebuild".to_owned()]);
            }
        }
    }
    for manifest in &manifests {
        for (_, set) in crate::deploy::feature_sets(manifest, &[])? {
            sets.insert(set);
        }
    }
    let version = version(&root)?;
    let target = host_target()?;
    let dist = root.join("target/dist");
    fs::create_dir_all(&dist)?;
    for set in &sets {
        let started = Instant::now();
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--locked",
                "--quiet",
                "-p",
                "deployer-cli",
                "--no-default-features",
                "--features",
            ])
            .arg(set.join(","))
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("building deployer with features {} failed", set.join(","));
        }
        let name = format!("deployer-{version}-{target}-{}", set.join("-"));
        let binary = dist.join(&name);
        fs::copy(root.join("target/release/deployer"), &binary)
            .with_context(|| format!("cannot copy the binary to {}", binary.display()))?;
        let bytes = fs::read(&binary)?;
        fs::write(
            dist.join(format!("{name}.sha256")),
            format!("{}  {name}\n", hex(&Sha256::digest(&bytes))),
        )?;
        println!(
            "{name}: {:.1} MiB, built in {:.0}s",
            bytes.len() as f64 / (1024.0 * 1024.0),
            started.elapsed().as_secs_f64()
        );
    }
    let sums = sums(&dist)?;
    fs::write(dist.join("SHA256SUMS"), &sums)?;
    println!(
        "{}: sha256 {} (the `sha256` of [ci] install)",
        dist.join("SHA256SUMS").display(),
        hex(&Sha256::digest(sums.as_bytes()))
    );
    Ok(())
}

/// `SHA256SUMS`: the `.sha256` lines of every binary in `dist`, sorted by name.
fn sums(dist: &Path) -> Result<String> {
    let mut lines = Vec::new();
    for entry in fs::read_dir(dist)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sha256") {
            lines.push(fs::read_to_string(&path)?.trim_end().to_owned());
        }
    }
    lines.sort_by(|a, b| {
        a.split_once("  ")
            .map(|p| p.1)
            .cmp(&b.split_once("  ").map(|p| p.1))
    });
    let mut text = String::new();
    for line in lines {
        let _ = writeln!(text, "{line}");
    }
    Ok(text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `[workspace.package] version`.
fn version(root: &Path) -> Result<String> {
    let doc: toml::Table = fs::read_to_string(root.join("Cargo.toml"))?.parse()?;
    doc.get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .context("no [workspace.package] version in Cargo.toml")
}

/// The target triple rustc builds for here (`host:` of `rustc -vV`).
fn host_target() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot run rustc")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_list_every_binary_sorted_by_name() {
        let dir = std::env::temp_dir().join(format!("deployer-dist-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("b.sha256"),
            format!("{}  deployer-b\n", "1".repeat(64)),
        )
        .unwrap();
        fs::write(
            dir.join("a.sha256"),
            format!("{}  deployer-a\n", "2".repeat(64)),
        )
        .unwrap();
        fs::write(dir.join("deployer-a"), "not a sum").unwrap();
        let text = sums(&dir).unwrap();
        assert_eq!(
            text,
            format!(
                "{}  deployer-a\n{}  deployer-b\n",
                "2".repeat(64),
                "1".repeat(64)
            )
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_example_needs_one_binary_per_kind() {
        let sets = crate::deploy::feature_sets(
            &crate::project_root().join("examples/acme/deployer.toml"),
            &[],
        )
        .unwrap();
        let sets: BTreeSet<Vec<String>> = sets.into_iter().map(|(_, set)| set).collect();
        assert_eq!(
            sets.len(),
            deployer_core::manifest::Kind::ALL.len(),
            "{sets:?}"
        );
    }
}
