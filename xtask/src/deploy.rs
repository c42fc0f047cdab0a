//! `cargo xtask deploy --service <name>... [--manifest <path>] [-- <deployer deploy args>]`:
//! the deploy command of this repository, with a `deployer` built with only the cargo features
//! the selected services need (a slim build: a zip service pulls in no Docker, ECR or ECS code).
//!
//! The manifest is `deployer.toml` at the repository root when there is one, else the example's
//! (`examples/acme/deployer.toml`); `--manifest` chooses another. The slim binary is built in its
//! own target directory (`target/slim`), so it does not replace the full `target/debug/deployer`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask deploy --service <name>... [--manifest <path>] [-- <extra `deployer deploy` arguments>]";

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let root = crate::project_root();
    let mut services = Vec::new();
    let mut manifest: Option<PathBuf> = None;
    let mut extra: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--service" | "-s" => services.push(rest.next().context(USAGE)?.to_string()),
            "--manifest" | "-f" => manifest = Some(PathBuf::from(rest.next().context(USAGE)?)),
            "--" => {
                extra.extend(rest.by_ref());
            }
            other => bail!("unexpected `{other}`\n{USAGE}"),
        }
    }
    if services.is_empty() {
        bail!("{USAGE}");
    }
    let manifest = manifest.unwrap_or_else(|| {
        let own = root.join("deployer.toml");
        if own.is_file() {
            own
        } else {
            root.join("examples/acme/deployer.toml")
        }
    });
    let features = features_for(&manifest, &services)?;
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    let target_dir = root.join("target/slim");
    eprintln!(
        "xtask deploy: building deployer with features {} (in {})",
        features.join(","),
        target_dir.display()
    );
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "-p",
            "deployer-cli",
            "--no-default-features",
            "--features",
        ])
        .arg(features.join(","))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building the slim deployer failed");
    }
    let mut deploy = Command::new(target_dir.join("debug/deployer"));
    deploy.arg("deploy").arg("--manifest").arg(&manifest);
    for service in &services {
        deploy.args(["--service", service]);
    }
    deploy.args(&extra);
    let status = deploy.status().context("cannot run the slim deployer")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// The cli features of the selected services: their kinds, and `codebuild` for those whose
/// images build there (`builder = "codebuild"` on the service, or on `[project]` unless the
/// service says `local`).
fn features_for(manifest: &std::path::Path, services: &[String]) -> Result<BTreeSet<String>> {
    let mut features = BTreeSet::new();
    for (_, set) in feature_sets(manifest, services)? {
        features.extend(set);
    }
    Ok(features)
}

/// Per selected service (all when `services` is empty), the cli features its jobs need, as
/// `deployer ci github` names them: the kind, then `codebuild` when it builds there.
pub(crate) fn feature_sets(
    manifest: &std::path::Path,
    services: &[String],
) -> Result<Vec<(String, Vec<String>)>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let doc: toml::Table = text.parse().with_context(|| {
        format!(
            "{} is not valid TOML (run `deployer validate`)",
            manifest.display()
        )
    })?;
    let table = doc
        .get("services")
        .and_then(|s| s.as_table())
        .context("the manifest has no [services]")?;
    let project_builder = doc
        .get("project")
        .and_then(|p| p.get("builder"))
        .and_then(|b| b.as_str());
    let all: Vec<String> = table.keys().cloned().collect();
    let services = if services.is_empty() {
        &all[..]
    } else {
        services
    };
    let mut sets = Vec::new();
    for service in services {
        let kind = table
            .get(service)
            .and_then(|s| s.get("kind"))
            .and_then(|k| k.as_str())
            .with_context(|| {
                format!(
                    "no service `{service}` with a `kind` in {}",
                    manifest.display()
                )
            })?;
        let builder = table[service]
            .get("builder")
            .and_then(|b| b.as_str())
            .or(project_builder);
        let mut set = vec![kind.to_owned()];
        if kind != "lambda-zip" && builder == Some("codebuild") {
            set.push("codebuild".to_owned());
        }
        sets.push((service.clone(), set));
    }
    Ok(sets)
}
