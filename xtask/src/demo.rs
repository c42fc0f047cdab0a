//! `cargo xtask demo`: deployer end to end on this machine, no AWS account needed.
//!
//! 1. builds the `deployer` binary, showing cargo's progress (on a fresh clone that compiles
//!    the AWS SDK: minutes, said up front);
//! 2. brings up the local AWS test bed (moto, a registry, the Docker engine or buildah) —
//!    installing Debian's `docker-registry` first when it is missing and we run as root; the
//!    first run creates moto's Python venv, showing pip's progress;
//! 3. copies the example monorepo `examples/acme` into a fresh git repository;
//! 4. creates its infrastructure in the emulator (`examples/acme/infra/create_resources.py`,
//!    the stand-in for CDK or Terraform): an ECS service, an AgentCore runtime, two Lambdas, a
//!    SageMaker endpoint, the repositories table;
//! 5. deploys every service (the config service writes the repository rows), edits one file
//!    under `backend/src/agents/` and onboards one more repository (a new file under
//!    `config/repositories/`), shows the plan (the rows it writes), and deploys again: only
//!    inference-api is rebuilt and rolled and only the new row is written, the others are
//!    unchanged;
//! 6. tears the test bed down.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::testbed::{self, Layout};

pub(crate) fn run(args: &[&str]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask demo");
    }
    let total = Instant::now();
    let root = crate::project_root();
    println!("deployer demo: an example monorepo shipped to a local AWS emulator");
    println!(
        "The first run compiles deployer and the AWS SDK (several minutes on 2 cores; cargo's \
         progress follows) and installs moto into a Python venv (about a minute); later runs \
         take seconds.\n"
    );

    step("1. build deployer (cargo build -p deployer-cli)", || {
        // Not --quiet: cargo's progress (stderr) is what shows a first build is not stuck.
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "-p", "deployer-cli"])
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build failed");
        }
        Ok(())
    })?;
    let layout = Layout::new();
    let deployer = layout
        .root
        .parent()
        .unwrap_or(&layout.root)
        .join("debug/deployer");

    ensure_registry_installed()?;
    let dir = layout.root.join(format!("demo-{}", std::process::id()));
    let file = dir.join("testbed.json");
    let bed = step(
        "2. start the local AWS test bed (the first run also creates moto's Python venv)",
        || testbed::up(&layout, &file, &dir, Some(std::process::id())),
    )?;
    let result = demo(&root, &deployer, &bed);
    let down = bed.down();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\n6. test bed down; the demo took {:.1}s in all",
        total.elapsed().as_secs_f64()
    );
    result?;
    down
}

fn demo(root: &Path, deployer: &Path, bed: &testbed::Running) -> Result<()> {
    let moto = bed
        .bed
        .moto
        .as_ref()
        .context("the test bed has no moto server")?;
    let registry = bed
        .bed
        .registry
        .as_ref()
        .context("the test bed has no registry (see above)")?;
    let builder = bed
        .bed
        .builder
        .as_ref()
        .context("the test bed found no image builder (Docker engine or buildah)")?;
    println!(
        "   moto {}  registry {}  builder {}",
        moto.url, registry.host, builder.name
    );

    let work = tempdir("deployer-demo")?;
    let repo = work.join("acme");
    step("3. copy examples/acme into a fresh git repository", || {
        copy_dir(&root.join("examples/acme"), &repo)?;
        git(&repo, &["init", "--quiet", "--initial-branch=main"])?;
        git(&repo, &["add", "-A"])?;
        git(&repo, &["commit", "--quiet", "-m", "acme monorepo"])
    })?;
    println!("   {}", repo.display());

    // Empty AWS config files: nothing from this machine's ~/.aws reaches the emulator.
    std::fs::write(work.join("aws-config"), "")?;
    let env = aws_env(&moto.url, &work.join("aws-config"));
    let outputs = step(
        "4. create the infrastructure (stand-in for CDK/Terraform: ECS, AgentCore, 2 Lambdas, SageMaker, a DynamoDB table)",
        || {
            let output = Command::new(&moto.python)
                .current_dir(&repo)
                .args([
                    "infra/create_resources.py",
                    "--project",
                    "acme",
                    "--registry",
                    &registry.host,
                ])
                .envs(env.iter().cloned())
                .stderr(Stdio::inherit())
                .output()
                .context("cannot run infra/create_resources.py")?;
            if !output.status.success() {
                bail!("infra/create_resources.py failed");
            }
            let outputs: Value = serde_json::from_slice(&output.stdout)
                .context("infra/create_resources.py printed no JSON")?;
            Ok(outputs)
        },
    )?;
    println!(
        "   runtime id {} (the manifest reads it from SSM: /acme/inference-api/runtime-id)",
        outputs["runtime_id"].as_str().unwrap_or("?")
    );

    let run_deployer = |args: &[&str]| -> Result<(bool, String)> {
        let mut command = Command::new(deployer);
        command
            .current_dir(&repo)
            .args(args)
            .envs(env.iter().cloned())
            .envs(&builder.env)
            .env("ACME_REGISTRY", &registry.host);
        if args[0] == "deploy" {
            command.args(["--builder", &builder.name]);
        }
        command.stderr(Stdio::inherit()).stdout(Stdio::piped());
        let output = command
            .output()
            .with_context(|| format!("cannot run {}", deployer.display()))?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ))
    };

    println!(
        "\n5. first deploy: `deployer deploy --all` builds four images and a zip, rolls them out, writes the repository rows\n"
    );
    let start = Instant::now();
    let (ok, summary) = run_deployer(&["deploy", "--all"])?;
    println!(
        "\n{summary}   first deploy: {:.1}s",
        start.elapsed().as_secs_f64()
    );
    if !ok {
        bail!("the first deploy failed (see above)");
    }

    println!("\n   edit backend/src/agents/planner.py (an input of inference-api only)");
    let planner = repo.join("backend/src/agents/planner.py");
    let mut text = std::fs::read_to_string(&planner)?;
    text.push_str("\n\nMAX_STEPS = 8\n");
    std::fs::write(&planner, text)?;
    git(
        &repo,
        &["commit", "--quiet", "-am", "planner: cap the steps"],
    )?;
    println!(
        "   onboard acme/mobile: add config/repositories/acme-mobile.yaml (a row of the repositories table)"
    );
    std::fs::write(
        repo.join("config/repositories/acme-mobile.yaml"),
        "pk: repo#acme/mobile\nsk: config\nrepository: acme/mobile\ndefault_branch: main\nenabled: true\nagent:\n  model: anthropic.claude-sonnet\n  max_turns: 30\n",
    )?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "--quiet", "-m", "onboard acme/mobile"])?;

    println!("\n   `deployer plan`:\n");
    let (_, plan) = run_deployer(&["plan"])?;
    println!("{plan}");

    println!("   second deploy: `deployer deploy --all`\n");
    let start = Instant::now();
    let (ok, json) = run_deployer(&["deploy", "--all", "--json"])?;
    let wall = start.elapsed().as_secs_f64();
    let json: Value = serde_json::from_str(&json).context("deployer printed no JSON")?;
    let services = json["services"]
        .as_array()
        .context("no services in the JSON")?;
    println!(
        "\n   {:<18} {:<13} {:<10} {:>8}",
        "service", "kind", "action", "time"
    );
    let mut unchanged_ms = Vec::new();
    for service in services {
        let ms = service["durations_ms"]["total"].as_u64().unwrap_or(0);
        let action = service["action"].as_str().unwrap_or("?");
        if action == "unchanged" {
            unchanged_ms.push(ms);
        }
        println!(
            "   {:<18} {:<13} {:<10} {:>7.2}s{}",
            service["service"].as_str().unwrap_or("?"),
            service["kind"].as_str().unwrap_or("?"),
            action,
            ms as f64 / 1000.0,
            if service["built"] == true {
                "  (rebuilt and rolled out)"
            } else {
                ""
            }
        );
    }
    println!(
        "\n   second deploy: {wall:.1}s wall; {} unchanged service(s), the slowest took {:.2}s",
        unchanged_ms.len(),
        unchanged_ms.iter().max().copied().unwrap_or(0) as f64 / 1000.0
    );
    if !ok {
        bail!("the second deploy failed (see above)");
    }
    let updated: Vec<&str> = services
        .iter()
        .filter(|s| s["action"] == "updated")
        .filter_map(|s| s["service"].as_str())
        .collect();
    if updated != ["inference-api", "repositories"] {
        bail!("expected only inference-api and repositories to change, got {updated:?}");
    }
    let written = services
        .iter()
        .find(|s| s["service"] == "repositories")
        .and_then(|s| s["ids"]["written"].as_str())
        .unwrap_or("?");
    println!(
        "   only inference-api was rebuilt and rolled, and {written} row was written to the repositories table; the others cost a registry and a service lookup each"
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Runs `f`, printing its title and how long it took.
fn step<T>(title: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    println!("{title} …");
    let value = f()?;
    println!("   done in {:.1}s", start.elapsed().as_secs_f64());
    Ok(value)
}

/// The registry is Debian's `docker-registry`: installed here when we are root, else the one
/// command to run is printed.
fn ensure_registry_installed() -> Result<()> {
    let present = Command::new("docker-registry")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        bail!(
            "the demo needs Debian's image registry: run `sudo apt-get install docker-registry`, then `cargo xtask demo` again"
        );
    }
    println!("installing Debian's docker-registry (apt-get) …");
    let update = Command::new("apt-get").args(["update", "-qq"]).status()?;
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", "docker-registry"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !update.success() || !install.success() {
        bail!("apt-get install docker-registry failed");
    }
    Ok(())
}

/// The AWS environment pointing at moto: dummy credentials, empty profile files, no IMDS.
fn aws_env(endpoint: &str, empty_file: &Path) -> Vec<(String, String)> {
    let empty = empty_file.display().to_string();
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", empty.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", empty.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=deployer demo",
            "-c",
            "user.email=demo@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .status()
        .context("cannot run git")?;
    if !status.success() {
        bail!("git {} failed", args.join(" "));
    }
    Ok(())
}

fn tempdir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
