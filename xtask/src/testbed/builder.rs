//! Which image builder the tests can use, proven by building a `FROM scratch` image.
//!
//! Order: the Docker engine (`docker info` answers), else `buildah`, else none. Each candidate
//! must build a two-line `FROM scratch` + `COPY` image for `linux/arm64` before it is chosen, so
//! a builder that is installed but unusable here is reported with the reason, not picked.
//! `DEPLOYER_TESTBED_BUILDER=docker|buildah|none` forces the choice.
//!
//! - docker: without the buildx plugin the docker CLI cannot use BuildKit; the legacy builder is
//!   then selected with `DOCKER_BUILDKIT=0`. The daemon treats 127.0.0.0/8 registries as
//!   insecure (plain HTTP) by default, so pushing to the bed's registry needs no flag.
//! - buildah: rootless-friendly flags that work in a container: the `vfs` storage driver in a
//!   storage root inside the bed's directory (removed by `testbed down`), `--isolation chroot`,
//!   and `--tls-verify=false` for pushing over plain HTTP.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{BuilderInfo, process};

/// The outcome of the detection: a builder, or why there is none.
pub(crate) enum Detection {
    Found(BuilderInfo),
    Absent(String),
}

/// Detects the builder; `bed_dir` holds buildah's storage and the probe's build context.
pub(crate) fn detect(bed_dir: &Path) -> Result<Detection> {
    let forced = std::env::var("DEPLOYER_TESTBED_BUILDER").unwrap_or_default();
    let candidates: &[&str] = match forced.as_str() {
        "" | "auto" => &["docker", "buildah"],
        "docker" => &["docker"],
        "buildah" => &["buildah"],
        "none" => {
            return Ok(Detection::Absent(
                "DEPLOYER_TESTBED_BUILDER=none".to_owned(),
            ));
        }
        other => {
            bail!("DEPLOYER_TESTBED_BUILDER={other:?}: expected docker, buildah, none or auto")
        }
    };
    let context = bed_dir.join("builder-probe");
    fs::create_dir_all(&context)?;
    fs::write(context.join("probe.txt"), "deployer test bed probe\n")?;
    fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY probe.txt /probe.txt\n",
    )?;
    let mut reasons = Vec::new();
    for &name in candidates {
        let attempt = match name {
            "docker" => docker(&context),
            _ => buildah(bed_dir, &context),
        };
        match attempt {
            Ok(info) => {
                let _ = fs::remove_dir_all(&context);
                return Ok(Detection::Found(info));
            }
            Err(error) => reasons.push(format!("{name}: {error:#}")),
        }
    }
    let _ = fs::remove_dir_all(&context);
    let _ = fs::remove_dir_all(bed_dir.join("buildah"));
    Ok(Detection::Absent(format!(
        "no usable image builder ({}); start the Docker engine or install buildah (apt-get install buildah)",
        reasons.join("; ")
    )))
}

fn docker(context: &Path) -> Result<BuilderInfo> {
    let version = run_ok(
        Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]),
        30,
    )
    .context("`docker info` failed (is the engine running?)")?;
    let mut env = BTreeMap::new();
    let mut note = format!("Docker engine {version}");
    if run_ok(Command::new("docker").args(["buildx", "version"]), 30).is_err() {
        env.insert("DOCKER_BUILDKIT".to_owned(), "0".to_owned());
        note.push_str(", legacy builder (no buildx plugin: DOCKER_BUILDKIT=0)");
    }
    let info = BuilderInfo {
        name: "docker".to_owned(),
        program: "docker".to_owned(),
        global_args: Vec::new(),
        build_args: Vec::new(),
        push_args: Vec::new(),
        env,
        version,
        storage_dir: None,
        note,
    };
    probe(&info, context)?;
    Ok(info)
}

fn buildah(bed_dir: &Path, context: &Path) -> Result<BuilderInfo> {
    let version = run_ok(Command::new("buildah").arg("--version"), 30)
        .context("`buildah --version` failed (apt-get install buildah)")?;
    let storage = bed_dir.join("buildah");
    let path = |sub: &str| storage.join(sub).to_string_lossy().into_owned();
    let info = BuilderInfo {
        name: "buildah".to_owned(),
        program: "buildah".to_owned(),
        global_args: vec![
            "--storage-driver".into(),
            "vfs".into(),
            "--root".into(),
            path("root"),
            "--runroot".into(),
            path("run"),
        ],
        build_args: vec!["--isolation".into(), "chroot".into()],
        push_args: vec!["--tls-verify=false".into()],
        env: BTreeMap::new(),
        version: version.trim_start_matches("buildah version ").to_owned(),
        storage_dir: Some(storage.clone()),
        note: "buildah, vfs storage in the bed's directory, chroot isolation, plain-HTTP push"
            .to_owned(),
    };
    probe(&info, context)?;
    Ok(info)
}

/// Builds the probe image with `info`'s flags, then removes it again.
fn probe(info: &BuilderInfo, context: &Path) -> Result<()> {
    let tag = format!("localhost/deployer-testbed-probe:{}", std::process::id());
    let mut build = info.command();
    build
        .arg("build")
        .args(&info.build_args)
        .args(["--platform", "linux/arm64", "-q", "-t", &tag])
        .arg(context);
    run_ok(&mut build, 300).context("probe build of a FROM scratch image failed")?;
    let mut remove = info.command();
    remove.args(["rmi", &tag]);
    let _ = run_ok(&mut remove, 60);
    Ok(())
}

fn run_ok(command: &mut Command, timeout_secs: u64) -> Result<String> {
    let out = process::output_within(command, Duration::from_secs(timeout_secs))?;
    if !out.status.success() {
        bail!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
