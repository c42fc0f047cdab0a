//! Image builders: the Docker CLI (buildx when present), podman and buildah, driven with
//! argument vectors (never a shell string), their output streamed to progress events.
//!
//! Every build runs on a staged context: a fresh directory holding exactly
//! [`BuildRequest::context_files`] (see [`crate::context`]'s rules), removed afterwards, with
//! the Dockerfile passed by absolute path. Every builder pushes one single-platform image
//! manifest in the Docker v2 schema 2 format (no index, no attestation manifests), which every
//! target (ECS, Lambda, AgentCore, SageMaker) accepts:
//!
//! - `docker buildx build --load --provenance=false --sbom=false` (buildx would otherwise add
//!   provenance attestations, turning the pushed image into an index Lambda rejects), then
//!   `docker push` of the loaded image;
//! - `docker build` (no buildx: run with `DOCKER_BUILDKIT=0`, the legacy builder, since the
//!   Docker CLI cannot use BuildKit without the buildx plugin), then `docker push`;
//! - `podman build --format docker` / `buildah bud --format docker`, then `push --format v2s2`
//!   (the Docker format also keeps `HEALTHCHECK`, `SHELL` and `ONBUILD`, which OCI image
//!   configs drop).

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use deployer_core::manifest::Builder;
use deployer_core::{Phase, Progress};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::ImageError;
use crate::context::{self, ContextFile};

/// How many of the builder's last output lines an error carries.
pub const TAIL_LINES: usize = 25;

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildRequest {
    /// The service, for messages.
    pub service: String,
    /// The full image reference to tag, `registry/repository:tag`.
    pub image: String,
    /// The Dockerfile (absolute, or relative to the working directory); it need not be in
    /// `context_files`.
    pub dockerfile: PathBuf,
    /// The directory the files of `context_files` are read from.
    pub context: PathBuf,
    /// The build context, exactly: nothing else under `context` reaches the builder. An empty
    /// list is an empty context.
    pub context_files: Vec<ContextFile>,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
}

/// A usable image builder program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageBuilder {
    /// Which builder.
    pub kind: Builder,
    /// The program run (`docker`, `podman`, `buildah`).
    pub program: String,
    /// Docker only: whether `docker buildx` is available.
    pub buildx: bool,
}

impl ImageBuilder {
    /// A builder of `kind` without probing the machine (for tests and dry runs).
    pub fn new(kind: Builder, buildx: bool) -> Self {
        ImageBuilder {
            kind,
            program: kind.as_str().to_owned(),
            buildx: buildx && kind == Builder::Docker,
        }
    }

    /// Finds a usable builder: `preferred` only, when given; else Docker (its daemon must
    /// answer), then podman, then buildah.
    pub async fn detect(preferred: Option<Builder>) -> Result<Self, ImageError> {
        let candidates: Vec<Builder> = match preferred {
            Some(builder) => vec![builder],
            None => Builder::ALL.to_vec(),
        };
        let mut tried = Vec::new();
        for kind in candidates {
            match probe(kind).await {
                Ok(builder) => return Ok(builder),
                Err(reason) if preferred.is_some() => {
                    return Err(ImageError::BuilderUnusable {
                        builder: kind.to_string(),
                        reason,
                    });
                }
                Err(reason) => tried.push(format!("{kind}: {reason}")),
            }
        }
        Err(ImageError::NoBuilder {
            tried: tried.join("; "),
        })
    }

    /// A short description, e.g. `docker (buildx)`.
    pub fn describe(&self) -> String {
        match (self.kind, self.buildx) {
            (Builder::Docker, true) => "docker buildx".into(),
            (Builder::Docker, false) => "docker build".into(),
            (kind, _) => kind.to_string(),
        }
    }

    /// The build command's arguments (after the program name) building `request` with
    /// `context_dir` as the build context (the staged directory; see [`ImageBuilder::build`]).
    /// The Dockerfile is passed by absolute path.
    pub fn build_args(&self, request: &BuildRequest, context_dir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = match (self.kind, self.buildx) {
            (Builder::Docker, true) => vec![
                "buildx".into(),
                "build".into(),
                "--load".into(),
                "--provenance=false".into(),
                "--sbom=false".into(),
                "--progress".into(),
                "plain".into(),
            ],
            (Builder::Docker, false) => vec!["build".into()],
            (Builder::Podman, _) => vec!["build".into(), "--format".into(), "docker".into()],
            (Builder::Buildah, _) => vec!["bud".into(), "--format".into(), "docker".into()],
        };
        if self.kind != Builder::Docker && is_loopback(registry_of(&request.image)) {
            // A loopback registry is plain HTTP (a local one, a test bed): base images pulled
            // from it need the same as the push (Docker treats 127.0.0.0/8 as insecure itself).
            args.push("--tls-verify=false".into());
        }
        let dockerfile =
            std::path::absolute(&request.dockerfile).unwrap_or_else(|_| request.dockerfile.clone());
        args.extend([
            "--platform".into(),
            request.platform.clone().into(),
            "-f".into(),
            dockerfile.into_os_string(),
            "-t".into(),
            request.image.clone().into(),
        ]);
        for (name, value) in &request.build_args {
            args.push("--build-arg".into());
            args.push(format!("{name}={value}").into());
        }
        args.push(context_dir.as_os_str().to_owned());
        args
    }

    /// The push command's arguments.
    pub fn push_args(&self, image: &str) -> Vec<OsString> {
        let insecure = is_loopback(registry_of(image));
        let mut args: Vec<OsString> = vec!["push".into()];
        if self.kind != Builder::Docker {
            // One Docker v2 schema 2 manifest, whatever format the local image is stored in.
            args.extend(["--format".into(), "v2s2".into()]);
        }
        if insecure && self.kind != Builder::Docker {
            // Docker treats 127.0.0.0/8 as insecure by itself; podman and buildah need telling.
            args.push("--tls-verify=false".into());
        }
        args.push(image.into());
        if self.kind == Builder::Buildah {
            args.push(format!("docker://{image}").into());
        }
        args
    }

    /// The login command's arguments; the password goes to stdin, never into argv.
    pub fn login_args(&self, registry: &str, username: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "login".into(),
            "--username".into(),
            username.into(),
            "--password-stdin".into(),
        ];
        if is_loopback(registry) && self.kind != Builder::Docker {
            args.push("--tls-verify=false".into());
        }
        args.push(registry.into());
        args
    }

    /// Builds the image from exactly `request.context_files`, streaming the builder's output
    /// to `progress`.
    ///
    /// The files are staged in a fresh directory first (hard links or copies, symlinks
    /// recreated, see [`crate::context`]); that directory is the build context and is removed
    /// afterwards, whether the build succeeded, failed or was cancelled.
    pub async fn build(
        &self,
        request: &BuildRequest,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        let staged = context::stage_reported(
            &request.service,
            &request.context,
            &request.context_files,
            progress,
        )
        .await?;
        let result = self.build_in(request, staged.path(), progress).await;
        context::remove_reported(staged, progress).await;
        result
    }

    async fn build_in(
        &self,
        request: &BuildRequest,
        context_dir: &Path,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        let args = self.build_args(request, context_dir);
        let names: Vec<&str> = request.build_args.keys().map(String::as_str).collect();
        progress.emit(
            Phase::Build,
            format!(
                "{} {} for {} ({} files in the context; build args: {})",
                self.describe(),
                request.image,
                request.platform,
                request.context_files.len(),
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ),
        );
        let run = self.run(&args, None, progress, Phase::Build).await?;
        if run.code == 0 {
            return Ok(());
        }
        Err(ImageError::BuildFailed {
            service: request.service.clone(),
            builder: self.describe(),
            code: run.code,
            tail: run.tail(),
        })
    }

    /// Pushes `image`, streaming the output to `progress`.
    pub async fn push(&self, image: &str, progress: &Progress) -> Result<(), ImageError> {
        progress.emit(Phase::Push, format!("{} push {image}", self.program));
        let run = self
            .run(&self.push_args(image), None, progress, Phase::Push)
            .await?;
        if run.code == 0 {
            return Ok(());
        }
        Err(ImageError::PushFailed {
            builder: self.program.clone(),
            image: image.to_owned(),
            code: run.code,
            tail: run.tail(),
        })
    }

    /// Logs in to `registry`; the password is written to the program's stdin.
    pub async fn login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        progress.emit(Phase::Push, format!("{} login {registry}", self.program));
        let run = self
            .run(
                &self.login_args(registry, username),
                Some(password.as_bytes()),
                progress,
                Phase::Push,
            )
            .await?;
        if run.code == 0 {
            return Ok(());
        }
        Err(ImageError::LoginFailed {
            builder: self.program.clone(),
            registry: registry.to_owned(),
            code: run.code,
            tail: run.tail(),
        })
    }

    async fn run(
        &self,
        args: &[OsString],
        stdin: Option<&[u8]>,
        progress: &Progress,
        phase: Phase,
    ) -> Result<Run, ImageError> {
        let spawn_error = |source| ImageError::Spawn {
            program: self.program.clone(),
            source,
        };
        let mut command = Command::new(&self.program);
        if self.kind == Builder::Docker && !self.buildx {
            // Without the buildx plugin the Docker CLI cannot use BuildKit (its default since
            // Docker 23): the legacy builder is the one that works.
            command.env("DOCKER_BUILDKIT", "0");
        }
        let mut child = command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).await.map_err(spawn_error)?;
            drop(pipe);
        }
        // What goes to stdin is a secret (a registry password): a builder that echoes it must
        // not carry it into progress, logs or errors.
        let secret = stdin
            .and_then(|input| std::str::from_utf8(input).ok())
            .map(str::trim)
            .filter(|secret| !secret.is_empty());
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let mut stdout = child.stdout.take().map(|out| BufReader::new(out).lines());
        let mut stderr = child.stderr.take().map(|err| BufReader::new(err).lines());
        loop {
            let line = tokio::select! {
                line = next_line(&mut stdout), if stdout.is_some() => line.or_else(|| { stdout = None; None }),
                line = next_line(&mut stderr), if stderr.is_some() => line.or_else(|| { stderr = None; None }),
                else => break,
            };
            if let Some(line) = line {
                let mut line = line.trim_end().to_owned();
                if let Some(secret) = secret {
                    line = line.replace(secret, "<redacted>");
                }
                if line.is_empty() {
                    continue;
                }
                progress.detail(phase, line.clone());
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        let status = child.wait().await.map_err(spawn_error)?;
        Ok(Run {
            code: status.code().unwrap_or(-1),
            tail,
        })
    }
}

async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut Option<tokio::io::Lines<R>>,
) -> Option<String> {
    match lines {
        Some(lines) => lines.next_line().await.ok().flatten(),
        None => None,
    }
}

struct Run {
    code: i32,
    tail: VecDeque<String>,
}

impl Run {
    fn tail(&self) -> String {
        self.tail
            .iter()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Checks that `kind` can build here.
async fn probe(kind: Builder) -> Result<ImageBuilder, String> {
    let program = kind.as_str();
    let check: &[&str] = match kind {
        // `docker version` fails when the daemon does not answer: the CLI alone cannot build.
        Builder::Docker => &["version", "--format", "{{.Server.Version}}"],
        Builder::Podman | Builder::Buildah => &["version"],
    };
    quiet(program, check).await?;
    let buildx = kind == Builder::Docker && quiet(program, &["buildx", "version"]).await.is_ok();
    Ok(ImageBuilder::new(kind, buildx))
}

/// Runs a probe command with a timeout; Err carries a one-line reason.
async fn quiet(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(20), output).await {
        Err(_) => Err(format!(
            "`{program} {}` did not answer within 20s",
            args.join(" ")
        )),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            Err("not installed".into())
        }
        Ok(Err(error)) => Err(format!("cannot run: {error}")),
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let line = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed")
                .trim();
            Err(line.to_owned())
        }
    }
}

/// The registry host of an image reference (`host[:port]/repo:tag` → `host[:port]`).
pub fn registry_of(image: &str) -> &str {
    image.split('/').next().unwrap_or(image)
}

/// Whether a registry host is on the loopback interface (served over plain HTTP).
pub fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(host, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            host
        } else {
            registry
        }
    });
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> BuildRequest {
        BuildRequest {
            service: "api".into(),
            image: "127.0.0.1:5000/acme/api:abc".into(),
            dockerfile: "/repo/backend/Dockerfile".into(),
            context: "backend".into(),
            context_files: Vec::new(),
            platform: "linux/arm64".into(),
            build_args: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    /// buildx builds one single-platform image with no provenance or SBOM attestation (which
    /// would make the pushed image an index that Lambda rejects) and loads it for `docker push`.
    #[test]
    fn docker_buildx_args() {
        let args = strings(
            ImageBuilder::new(Builder::Docker, true)
                .build_args(&request(), Path::new("/tmp/ctx-staged")),
        );
        assert_eq!(
            args,
            [
                "buildx",
                "build",
                "--load",
                "--provenance=false",
                "--sbom=false",
                "--progress",
                "plain",
                "--platform",
                "linux/arm64",
                "-f",
                "/repo/backend/Dockerfile",
                "-t",
                "127.0.0.1:5000/acme/api:abc",
                "--build-arg",
                "A=1",
                "--build-arg",
                "B=2",
                "/tmp/ctx-staged"
            ]
        );
    }

    /// The context argument is the staged directory, never `request.context`; podman and
    /// buildah build Docker-format images, and pull from a loopback registry (plain HTTP)
    /// without TLS, as they push to it.
    #[test]
    fn docker_classic_podman_buildah_args() {
        let tail = [
            "--platform",
            "linux/arm64",
            "-f",
            "/repo/backend/Dockerfile",
            "-t",
            "127.0.0.1:5000/acme/api:abc",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B=2",
            "/tmp/ctx-staged",
        ];
        for (kind, head) in [
            (Builder::Docker, &["build"][..]),
            (
                Builder::Podman,
                &["build", "--format", "docker", "--tls-verify=false"][..],
            ),
            (
                Builder::Buildah,
                &["bud", "--format", "docker", "--tls-verify=false"][..],
            ),
        ] {
            let args = strings(
                ImageBuilder::new(kind, false).build_args(&request(), Path::new("/tmp/ctx-staged")),
            );
            assert_eq!(&args[..head.len()], head);
            assert_eq!(&args[head.len()..], tail);
        }
        let mut remote = request();
        remote.image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api:abc".into();
        let args = strings(
            ImageBuilder::new(Builder::Buildah, false).build_args(&remote, Path::new("/x")),
        );
        assert!(
            !args.iter().any(|a| a.starts_with("--tls-verify")),
            "{args:?}"
        );
    }

    /// A relative Dockerfile is passed by absolute path: the build runs in another directory.
    #[test]
    fn a_relative_dockerfile_becomes_absolute() {
        let mut request = request();
        request.dockerfile = "backend/Dockerfile".into();
        let args = strings(
            ImageBuilder::new(Builder::Buildah, false).build_args(&request, Path::new("/x")),
        );
        let dockerfile = &args[args.iter().position(|a| a == "-f").unwrap() + 1];
        assert!(Path::new(dockerfile).is_absolute(), "{dockerfile}");
        assert!(dockerfile.ends_with("/backend/Dockerfile"), "{dockerfile}");
    }

    #[test]
    fn push_args_per_builder() {
        let image = "127.0.0.1:5000/acme/api:abc";
        assert_eq!(
            strings(ImageBuilder::new(Builder::Docker, false).push_args(image)),
            ["push", image]
        );
        assert_eq!(
            strings(ImageBuilder::new(Builder::Podman, false).push_args(image)),
            ["push", "--format", "v2s2", "--tls-verify=false", image]
        );
        assert_eq!(
            strings(ImageBuilder::new(Builder::Buildah, false).push_args(image)),
            [
                "push",
                "--format",
                "v2s2",
                "--tls-verify=false",
                image,
                &format!("docker://{image}")
            ]
        );
        let remote = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api:abc";
        assert_eq!(
            strings(ImageBuilder::new(Builder::Podman, false).push_args(remote)),
            ["push", "--format", "v2s2", remote]
        );
    }

    #[test]
    fn login_never_puts_the_password_in_argv() {
        let args = strings(
            ImageBuilder::new(Builder::Docker, false)
                .login_args("123456789012.dkr.ecr.us-east-1.amazonaws.com", "AWS"),
        );
        assert_eq!(
            args,
            [
                "login",
                "--username",
                "AWS",
                "--password-stdin",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com"
            ]
        );
    }

    #[test]
    fn loopback_registries() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert_eq!(registry_of("127.0.0.1:5000/a/b:c"), "127.0.0.1:5000");
    }

    /// A builder that echoes the password it reads on stdin (on stdout and stderr, as a failed
    /// login's message might): the password reaches neither the progress details nor the error.
    #[tokio::test]
    async fn a_login_password_never_leaves_through_the_builders_output() {
        // `sh` stands in for the builder; the password arrives on stdin, as `login` sends it.
        let builder = ImageBuilder {
            kind: Builder::Docker,
            program: "sh".into(),
            buildx: false,
        };
        let collect = std::sync::Arc::new(deployer_core::progress::Collect::default());
        let progress = Progress::new("api", collect.clone());
        let args: Vec<OsString> = vec![
            "-c".into(),
            "read pw; echo \"Login Succeeded with $pw\"; echo \"denied for $pw\" >&2; exit 1"
                .into(),
        ];
        let run = builder
            .run(
                &args,
                Some(b"s3cret-registry-password\n"),
                &progress,
                Phase::Push,
            )
            .await
            .unwrap();
        assert_eq!(run.code, 1);
        let details: Vec<String> = collect.events().into_iter().map(|e| e.message).collect();
        assert_eq!(details.len(), 2, "{details:?}");
        for text in details.iter().chain(run.tail.iter()) {
            assert!(!text.contains("s3cret-registry-password"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
    }

    #[tokio::test]
    async fn failed_build_carries_exit_code_and_tail() {
        // `sh` stands in for a builder whose build fails: the same streaming and tail logic runs.
        // stdout and stderr are separate pipes read concurrently: the pause orders "oops" last.
        let builder = ImageBuilder {
            kind: Builder::Docker,
            program: "sh".into(),
            buildx: false,
        };
        let args: Vec<OsString> = vec![
            "-c".into(),
            "for i in $(seq 1 40); do echo line $i; done; sleep 0.3; echo oops >&2; exit 3".into(),
        ];
        let collect = std::sync::Arc::new(deployer_core::progress::Collect::default());
        let progress = Progress::new("api", collect.clone());
        let run = builder
            .run(&args, None, &progress, Phase::Build)
            .await
            .unwrap();
        assert_eq!(run.code, 3);
        assert_eq!(run.tail.len(), TAIL_LINES);
        assert!(run.tail.contains(&"oops".to_owned()));
        assert!(run.tail.contains(&"line 40".to_owned()));
        assert!(!run.tail.contains(&"line 1".to_owned()));
        assert_eq!(collect.events().len(), 41);
    }

    /// A stand-in builder (a script) writes down the context directory it was given and what
    /// is in it: only the listed files (not the untracked one beside them, not the Dockerfile
    /// outside the list), and the staged directory is gone afterwards, after a failed build
    /// too.
    #[tokio::test]
    async fn the_builder_sees_only_the_listed_files_and_the_stage_goes_away() {
        use std::os::unix::fs::PermissionsExt as _;

        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("app.py"), "print(1)\n").unwrap();
        std::fs::write(tree.path().join("debris.log"), "untracked\n").unwrap();
        std::fs::write(tree.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        for code in [0, 7] {
            let script = out.path().join(format!("builder-{code}"));
            std::fs::write(
                &script,
                format!(
                    "#!/bin/sh\nfor last; do :; done\necho \"$last\" > {out}/dir\n(cd \"$last\" && find . | sort) > {out}/entries\nexit {code}\n",
                    out = out.path().display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            let builder = ImageBuilder {
                kind: Builder::Buildah,
                program: script.display().to_string(),
                buildx: false,
            };
            let request = BuildRequest {
                service: "api".into(),
                image: "127.0.0.1:5000/acme/api:abc".into(),
                dockerfile: tree.path().join("Dockerfile"),
                context: tree.path().to_path_buf(),
                context_files: vec![ContextFile::new("app.py", crate::ContextFileKind::Regular)],
                platform: "linux/arm64".into(),
                build_args: BTreeMap::new(),
            };
            let result = builder.build(&request, &Progress::discard("api")).await;
            match code {
                0 => result.unwrap(),
                _ => assert!(
                    matches!(result, Err(ImageError::BuildFailed { code: 7, .. })),
                    "{result:?}"
                ),
            }
            let entries = std::fs::read_to_string(out.path().join("entries")).unwrap();
            assert_eq!(entries, ".\n./app.py\n");
            let dir = std::fs::read_to_string(out.path().join("dir")).unwrap();
            let dir = Path::new(dir.trim());
            assert_ne!(dir, tree.path());
            assert!(!dir.exists(), "{} was left behind", dir.display());
        }
    }

    #[tokio::test]
    async fn stdin_reaches_the_program() {
        let builder = ImageBuilder {
            kind: Builder::Docker,
            program: "sh".into(),
            buildx: false,
        };
        let args: Vec<OsString> = vec![
            "-c".into(),
            "read secret; test \"$secret\" = hunter2".into(),
        ];
        let run = builder
            .run(
                &args,
                Some(b"hunter2\n"),
                &Progress::discard("x"),
                Phase::Push,
            )
            .await
            .unwrap();
        assert_eq!(run.code, 0);
    }
}
