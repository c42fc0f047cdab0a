//! `deployer ci github`: a GitHub Actions workflow generated from the manifest, with one build
//! job and one deploy job per service, each running only when a file of the service's inputs
//! changed (a `dorny/paths-filter` step whose filters are the service's `inputs`, Dockerfile or
//! zip `source`, and `deployer.toml` itself). Generated, so that the "you changed → jobs that run"
//! table and the manifest never drift; `--check` fails when the committed file is stale.
//!
//! The workflow works as written and passes zizmor: `deployer` comes from `[ci] install` (a
//! release binary checked against the pinned SHA-256 of the release's `SHA256SUMS`, or a
//! `cargo install --git --rev` cached per commit and feature set), each job gets the features
//! of its service only; every action is pinned to a full commit; `permissions: {}` at the top,
//! `contents: read` per job and `id-token: write` only where AWS credentials are assumed;
//! checkouts keep no credentials; a `linux/arm64` image builds on an arm64 runner unless
//! CodeBuild builds it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use deployer_core::manifest::{CiInstall, Target};
use deployer_core::{Manifest, Service};
use serde_json::json;

use crate::args::{CiArgs, CiCommand, Global};
use crate::exit::Exit;
use crate::output::Printer;

/// Where the workflow goes, relative to the manifest's directory.
const DEFAULT_PATH: &str = ".github/workflows/deployer.yml";

pub(crate) async fn run(global: &Global, args: &CiArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let CiCommand::Github { write, check, path } = &args.command;
    let manifest = super::load_manifest(global)?;
    // The inputs each image service's tag covers: listed, or derived from its Dockerfile.
    let images: Vec<&Service> = manifest
        .services
        .values()
        .filter(|s| s.image.is_some())
        .collect();
    let inputs: BTreeMap<String, Vec<String>> =
        crate::inputs::tags(&manifest, &images, crate::inputs::Bases::AsWritten)
            .await?
            .into_iter()
            .map(|tag| (tag.service, tag.inputs))
            .collect();
    let workflow = github_workflow(&manifest, &inputs)?;
    let path = manifest
        .root
        .join(path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)));
    if *check {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        let fresh = current == workflow;
        let text = if fresh {
            format!("{}: up to date\n", path.display())
        } else {
            format!(
                "{}: stale or missing; run `deployer ci github --write`\n",
                path.display()
            )
        };
        printer.result(&text, &json!({ "path": path, "up_to_date": fresh }));
        return Ok(if fresh { Exit::Success } else { Exit::Failure });
    }
    if *write {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, &workflow)
            .with_context(|| format!("cannot write {}", path.display()))?;
        printer.result(
            &format!("wrote {}\n", path.display()),
            &json!({ "path": path, "written": true }),
        );
        return Ok(Exit::Success);
    }
    printer.result(&workflow, &json!({ "path": path, "workflow": workflow }));
    Ok(Exit::Success)
}

/// The paths whose change means the service must be rebuilt and redeployed: its inputs (as
/// the tag covers them), its Dockerfile and the ignore files that shape its build context, its
/// zip source, or its config source and schema; and the manifest. (A base image re-pushed under its tag, which moves the tag
/// with `base_images = "resolve"`, is no change of a path: a scheduled run catches it.)
pub(crate) fn service_paths(service: &Service, inputs: &[String]) -> Vec<String> {
    let mut paths = Vec::new();
    if let Some(image) = &service.image {
        paths.extend(inputs.iter().cloned());
        paths.push(image.dockerfile.clone());
        paths.push(format!("{}.dockerignore", image.dockerfile));
        let context = image.context.trim_end_matches('/');
        paths.push(if context.is_empty() || context == "." {
            ".dockerignore".to_owned()
        } else {
            format!("{context}/.dockerignore")
        });
    }
    if let Target::LambdaZip(zip) = &service.target {
        paths.push(format!("{}/**", zip.source.trim_end_matches('/')));
    }
    if let Target::Config(config) = &service.target {
        paths.push(format!("{}/**", config.source.trim_end_matches('/')));
        paths.extend(config.schema.iter().cloned());
    }
    paths.push(deployer_core::manifest::FILE_NAME.to_owned());
    paths.dedup();
    paths
}

/// A GitHub Actions job id for a service (letters, digits, `-`, `_`).
fn job_id(prefix: &str, service: &str) -> String {
    let name: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}-{name}")
}

/// Quotes a string for YAML (single quotes, `'` doubled).
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A third-party action, pinned to the full commit of its release (the tag in the comment).
struct Action {
    name: &'static str,
    commit: &'static str,
    version: &'static str,
}

impl Action {
    fn uses(&self) -> String {
        format!("{}@{} # {}", self.name, self.commit, self.version)
    }
}

/// The actions the workflow uses, each pinned to the commit its release tag names (read from
/// the actions' repositories; `deployer ci github` never names a movable tag).
const CHECKOUT: Action = Action {
    name: "actions/checkout",
    commit: "3d3c42e5aac5ba805825da76410c181273ba90b1",
    version: "v7.0.1",
};
const CACHE: Action = Action {
    name: "actions/cache",
    commit: "27d5ce7f107fe9357f9df03efb73ab90386fccae",
    version: "v5.0.5",
};
const AWS_CREDENTIALS: Action = Action {
    name: "aws-actions/configure-aws-credentials",
    commit: "e6de054238d6b7531b4efff3b6587d9aade6a06c",
    version: "v6.2.3",
};
const PATHS_FILTER: Action = Action {
    name: "dorny/paths-filter",
    commit: "7b450fff21473bca461d4b92ce414b9d0420d706",
    version: "v4.0.2",
};

/// GitHub's x86-64 and arm64 Linux runners, and the release target each runs.
const X86_RUNNER: (&str, &str) = ("ubuntu-latest", "x86_64-unknown-linux-gnu");
const ARM_RUNNER: (&str, &str) = ("ubuntu-24.04-arm", "aarch64-unknown-linux-gnu");

/// The cargo features a job's `deployer` needs: the service's kind, and `codebuild` when it
/// builds there. `cargo xtask dist` builds one release binary per such set.
pub(crate) fn feature_set(manifest: &Manifest, service: &Service) -> Vec<&'static str> {
    let mut features = vec![service.kind.as_str()];
    if manifest.codebuild(service).is_some() {
        features.push("codebuild");
    }
    features
}

/// The release asset of a feature set for a target: `deployer-<version>-<target>-<features>`
/// (features joined by `-`), as `cargo xtask dist` names it.
pub(crate) fn asset(version: &str, target: &str, features: &[&str]) -> String {
    format!("deployer-{version}-{target}-{}", features.join("-"))
}

/// What `deployer ci github` says when the manifest does not say where CI gets deployer.
pub(crate) const NO_INSTALL: &str = "the manifest does not say how CI gets deployer: add `[ci] install = { release = \"https://github.com/<owner>/deployer/releases/download/v<version>\", version = \"<version>\", sha256 = \"<sha256 of the release's SHA256SUMS>\" }` (binaries made by `cargo xtask dist`), or `[ci] install = { git = \"https://github.com/<owner>/deployer\", rev = \"<full commit id>\" }` (built once per version and feature set, then cached)";

/// The steps that put `deployer` (with `features`) on the job's `PATH`.
fn install_steps(y: &mut String, install: &CiInstall, target: &str, features: &[&str]) {
    match install {
        CiInstall::Release {
            url,
            version,
            sha256,
        } => {
            let asset = asset(version, target, features);
            let _ = writeln!(
                y,
                "      - name: install deployer {version} ({})",
                features.join(", ")
            );
            y.push_str("        env:\n");
            let _ = writeln!(y, "          DEPLOYER_RELEASE: {}", quote(url));
            let _ = writeln!(y, "          DEPLOYER_ASSET: {}", quote(&asset));
            let _ = writeln!(y, "          DEPLOYER_SHA256SUMS: {}", quote(sha256));
            y.push_str(
                "        run: |\n          set -euo pipefail\n          dir=\"$RUNNER_TEMP/deployer\"\n          mkdir -p \"$dir/bin\"\n          cd \"$dir\"\n          curl --fail --silent --show-error --location --retry 3 -o SHA256SUMS \"$DEPLOYER_RELEASE/SHA256SUMS\"\n          echo \"$DEPLOYER_SHA256SUMS  SHA256SUMS\" | sha256sum --check --strict\n          curl --fail --silent --show-error --location --retry 3 -o \"$DEPLOYER_ASSET\" \"$DEPLOYER_RELEASE/$DEPLOYER_ASSET\"\n          grep -E \"^[0-9a-f]{64}  $DEPLOYER_ASSET\\$\" SHA256SUMS | sha256sum --check --strict\n          install -m 0755 \"$DEPLOYER_ASSET\" bin/deployer\n          echo \"$dir/bin\" >> \"$GITHUB_PATH\"\n",
            );
        }
        CiInstall::Git { url, rev } => {
            let features = features.join(",");
            let _ = writeln!(y, "      - uses: {}", CACHE.uses());
            y.push_str("        id: deployer-cache\n        with:\n          path: ~/.deployer\n");
            let _ = writeln!(
                y,
                "          key: deployer-{rev}-{}-${{{{ runner.os }}}}-${{{{ runner.arch }}}}",
                features.replace(',', "-")
            );
            let _ = writeln!(
                y,
                "      - name: build deployer {} ({features})",
                &rev[..12]
            );
            y.push_str(
                "        if: steps.deployer-cache.outputs.cache-hit != 'true'\n        env:\n",
            );
            let _ = writeln!(y, "          DEPLOYER_GIT: {}", quote(url));
            let _ = writeln!(y, "          DEPLOYER_REV: {}", quote(rev));
            let _ = writeln!(y, "          DEPLOYER_FEATURES: {}", quote(&features));
            y.push_str("        run: cargo install --locked --root \"$HOME/.deployer\" --git \"$DEPLOYER_GIT\" --rev \"$DEPLOYER_REV\" deployer-cli --no-default-features --features \"$DEPLOYER_FEATURES\"\n");
            y.push_str("      - run: echo \"$HOME/.deployer/bin\" >> \"$GITHUB_PATH\"\n");
        }
    }
}

fn checkout(y: &mut String, full_history: bool) {
    let _ = writeln!(y, "      - uses: {}", CHECKOUT.uses());
    y.push_str("        with:\n          persist-credentials: false\n");
    if full_history {
        // paths-filter compares with the push's `before` commit: the history must be here,
        // since no credentials are left for a later fetch.
        y.push_str("          fetch-depth: 0\n");
    }
}

/// The workflow (module doc); `Err` with [`NO_INSTALL`] when `[ci] install` is missing.
pub(crate) fn github_workflow(
    manifest: &Manifest,
    inputs: &BTreeMap<String, Vec<String>>,
) -> Result<String, crate::exit::UsageError> {
    let install = manifest
        .ci
        .install
        .as_ref()
        .ok_or_else(|| crate::exit::UsageError(NO_INSTALL.to_owned()))?;
    let services: Vec<&Service> = manifest.services.values().collect();
    let region = manifest
        .project
        .region
        .clone()
        .unwrap_or_else(|| "us-east-1".into());
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Generated by `deployer ci github` from {}: do not edit by hand.",
        deployer_core::manifest::FILE_NAME
    );
    let _ = writeln!(
        y,
        "# Regenerate with `deployer ci github --write`; `deployer ci github --check` fails when stale."
    );
    let _ = writeln!(
        y,
        "# The deploy role comes from the repository variable DEPLOYER_ROLE_ARN (OIDC web identity;"
    );
    let _ = writeln!(
        y,
        "# `deployer iam-policy` prints the least-privilege policy it needs)."
    );
    y.push_str("name: deploy\n\non:\n  push:\n    branches: [main]\n  workflow_dispatch:\n\n");
    y.push_str("# Nothing by default; each job asks for what it needs.\npermissions: {}\n\n");
    y.push_str(
        "concurrency:\n  group: deployer-${{ github.ref }}\n  cancel-in-progress: false\n\n",
    );
    y.push_str("jobs:\n  changes:\n    runs-on: ubuntu-latest\n    permissions:\n      contents: read\n    outputs:\n");
    for service in &services {
        let _ = writeln!(
            y,
            "      {}: ${{{{ steps.filter.outputs[{}] }}}}",
            quote(&service.name),
            quote(&service.name)
        );
    }
    y.push_str("    steps:\n");
    checkout(&mut y, true);
    let _ = writeln!(y, "      - uses: {}", PATHS_FILTER.uses());
    y.push_str("        id: filter\n        with:\n          filters: |\n");
    for service in &services {
        let _ = writeln!(y, "            {}:", quote(&service.name));
        let listed = inputs.get(&service.name).map_or(&[][..], Vec::as_slice);
        for path in service_paths(service, listed) {
            let _ = writeln!(y, "              - {}", quote(&path));
        }
    }
    for service in &services {
        let features = feature_set(manifest, service);
        // An arm64 image builds on an arm64 runner, unless CodeBuild builds it (then the
        // runner only uploads the context and follows the build).
        let arm_build = service
            .image
            .as_ref()
            .is_some_and(|image| image.platform.arch == "arm64")
            && manifest.codebuild(service).is_none();
        for (step, needs, command) in [
            ("build", "changes".to_owned(), "build"),
            (
                "deploy",
                format!("[changes, {}]", job_id("build", &service.name)),
                "deploy",
            ),
        ] {
            let (runner, target) = if step == "build" && arm_build {
                ARM_RUNNER
            } else {
                X86_RUNNER
            };
            let _ = writeln!(y, "\n  {}:", job_id(step, &service.name));
            let _ = writeln!(y, "    name: {step} {}", service.name);
            let _ = writeln!(y, "    needs: {needs}");
            let _ = writeln!(
                y,
                "    if: needs.changes.outputs[{}] == 'true'",
                quote(&service.name)
            );
            let _ = writeln!(y, "    runs-on: {runner}");
            if step == "deploy" {
                let _ = writeln!(y, "    environment: production");
            }
            y.push_str("    permissions:\n      contents: read\n      id-token: write # the OIDC token configure-aws-credentials exchanges for the deploy role\n");
            y.push_str("    steps:\n");
            checkout(&mut y, false);
            // deployer is fetched (or built) before any AWS credential is in the job's
            // environment.
            install_steps(&mut y, install, target, &features);
            let _ = writeln!(y, "      - uses: {}", AWS_CREDENTIALS.uses());
            y.push_str("        with:\n");
            y.push_str("          role-to-assume: ${{ vars.DEPLOYER_ROLE_ARN }}\n");
            let _ = writeln!(y, "          aws-region: {region}");
            let _ = writeln!(
                y,
                "      - run: deployer {command} --service {}",
                service.name
            );
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_service_runs_when_its_source_or_schema_changes() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(dir.path().join("config/repos")).expect("mkdir");
        std::fs::write(dir.path().join("config/repo.schema.json"), "{}").expect("write");
        let text = "[project]\nname = \"acme\"\n\n[services.repos]\nkind = \"config\"\nsource = \"config/repos/\"\nschema = \"config/repo.schema.json\"\ndynamodb = { table = \"t\", key = [\"pk\"] }\ns3_bucket = \"b\"\n";
        let manifest = Manifest::parse(std::path::Path::new("deployer.toml"), text, dir.path())
            .expect("the manifest parses");
        let paths = service_paths(&manifest.services["repos"], &[]);
        assert_eq!(
            paths,
            [
                "config/repos/**",
                "config/repo.schema.json",
                "deployer.toml"
            ]
        );
    }
}
