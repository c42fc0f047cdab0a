//! The image pipeline through the real `deployer` binary: build and push only what the registry
//! lacks (counted at the builder itself, through a logging shim on PATH), the platform of what
//! was pushed, a failing builder, the SSM record, and the ECR path against moto's ECR.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use deployer_tests::{Deployer, FixtureRepo, RunOutput, Testbed, testbed, unique_name};
use serde_json::Value;

/// A directory with a `docker` (or `buildah`) that logs each invocation and runs the real one.
struct Shim {
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Shim {
    fn new(bed: &Testbed) -> Shim {
        let program = &bed.builder().program;
        let real = which(program);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("invocations.log");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        );
        let shim = dir.path().join(Path::new(program).file_name().unwrap());
        fs::write(&shim, script).unwrap();
        fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
        Shim { dir, log }
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// How many times the builder ran `subcommand` (`build`, `bud`, `push`, …).
    fn count(&self, subcommands: &[&str]) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| {
                line.split_whitespace()
                    .any(|word| subcommands.contains(&word))
            })
            .filter(|line| !line.starts_with("version") && !line.contains("buildx version"))
            .count()
    }

    fn builds(&self) -> usize {
        self.count(&["build", "bud"])
    }

    fn pushes(&self) -> usize {
        self.count(&["push"])
    }
}

fn which(program: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

struct Fixture {
    repo: FixtureRepo,
    prefix: String,
    repository: String,
}

const DOCKERFILE: &str = "FROM scratch\nCOPY app.txt /app.txt\n";

fn fixture(bed: &Testbed, extra: &str) -> Fixture {
    let repo = FixtureRepo::new();
    let name = unique_name("pipeline");
    let prefix = format!("/{name}");
    let repository = name.clone();
    repo.write("services/a/Dockerfile", DOCKERFILE)
        .write("services/a/app.txt", "a v1\n")
        .write("services/b/Dockerfile", DOCKERFILE)
        .write("services/b/app.txt", "b v1\n")
        .write("README.md", "not an input\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{name}"
ssm_prefix = "{prefix}"
registry = "{registry}"
{extra}
[services.a]
kind = "ecs"
dockerfile = "services/a/Dockerfile"
context = "services/a"
platform = "linux/amd64"
inputs = ["services/a/**"]
repository = "{repository}/a"
cluster = "unused"
service = "unused"

[services.b]
kind = "agentcore"
dockerfile = "services/b/Dockerfile"
context = "services/b"
platform = "linux/arm64"
inputs = ["services/b/**"]
repository = "{repository}/b"
runtime_id = "unused"
"#,
                registry = bed.registry().host,
            ),
        );
    repo.commit("fixture");
    Fixture {
        repo,
        prefix,
        repository,
    }
}

fn build(bed: &Testbed, fixture: &Fixture, shim: &Shim, args: &[&str]) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(fixture.repo.path())
        .bed(bed)
        .env("PATH", shim.path_env())
        .args(["build", "--json", "--builder", &bed.builder().name]);
    for (key, value) in &bed.builder().env {
        deployer = deployer.env(key, value);
    }
    deployer.args(args).run()
}

fn service<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {json}"))
}

/// The architecture recorded in the pushed image's config blob.
fn pushed_architecture(bed: &Testbed, repository: &str, tag: &str) -> String {
    let manifest = bed
        .registry()
        .get(&format!("/v2/{repository}/manifests/{tag}"));
    assert_eq!(
        manifest.status, 200,
        "{repository}:{tag} is not in the registry"
    );
    let manifest = manifest.json().unwrap();
    let config = manifest["config"]["digest"]
        .as_str()
        .expect("a single-platform manifest with a config");
    let blob = bed
        .registry()
        .get(&format!("/v2/{repository}/blobs/{config}"));
    blob.json().unwrap()["architecture"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn ssm_value(bed: &Testbed, name: &str) -> Option<String> {
    let ssm = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
    match ssm.get_parameter().name(name).send().await {
        Ok(output) => output
            .parameter()
            .and_then(|p| p.value())
            .map(str::to_owned),
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(GetParameterError::ParameterNotFound(_))
            ) =>
        {
            None
        }
        Err(error) => panic!("GetParameter {name}: {error:?}"),
    }
}

#[tokio::test]
async fn builds_and_pushes_only_what_the_registry_lacks() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let fixture = fixture(bed, "");
    let shim = Shim::new(bed);

    // Cold: both images are built, pushed and found in the registry by tag, per platform.
    let first = build(bed, &fixture, &shim, &[]);
    first.assert_success();
    let json = first.json();
    let (a, b) = (service(&json, "a"), service(&json, "b"));
    assert_eq!(
        (a["action"].as_str(), b["action"].as_str()),
        (Some("built"), Some("built")),
        "{json}"
    );
    assert_eq!((shim.builds(), shim.pushes()), (2, 2));
    assert_eq!(json["images_built"], 2);
    let tag_a = a["tag"].as_str().unwrap().to_owned();
    let tag_b = b["tag"].as_str().unwrap().to_owned();
    for (repository, tag, arch) in [
        (format!("{}/a", fixture.repository), &tag_a, "amd64"),
        (format!("{}/b", fixture.repository), &tag_b, "arm64"),
    ] {
        let head = bed.registry().head_manifest(&repository, tag);
        assert_eq!(head.status, 200);
        let digest = head.header("docker-content-digest").unwrap().to_owned();
        let artifact = service(&json, if arch == "amd64" { "a" } else { "b" })["artifact"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            artifact,
            format!("{}/{repository}@{digest}", bed.registry().host),
            "deploys pin the digest"
        );
        assert_eq!(pushed_architecture(bed, &repository, tag), arch);
    }
    // The default mode records the tag only after a rollout: `build` wrote nothing.
    assert_eq!(
        ssm_value(bed, &format!("{}/a/image-tag", fixture.prefix)).await,
        None
    );

    // Warm: nothing to build, nothing pushed, and it says so.
    let second = build(bed, &fixture, &shim, &[]);
    second.assert_success();
    let json = second.json();
    assert_eq!(service(&json, "a")["action"], "in_registry");
    assert_eq!(service(&json, "b")["action"], "in_registry");
    assert_eq!(json["images_built"], 0);
    assert_eq!(
        (shim.builds(), shim.pushes()),
        (2, 2),
        "a second build must not run the builder"
    );
    let text = Deployer::new()
        .current_dir(fixture.repo.path())
        .bed(bed)
        .env("PATH", shim.path_env())
        .args(["build", "--builder", &bed.builder().name])
        .run();
    text.assert_success();
    assert!(
        text.stdout
            .contains("0 image(s) built and pushed, 2 already in the registry"),
        "{}",
        text.stdout
    );

    // A change under one service's inputs rebuilds only that one (uncommitted edits count).
    fixture.repo.write("services/a/app.txt", "a v2\n");
    let third = build(bed, &fixture, &shim, &[]);
    third.assert_success();
    let json = third.json();
    assert_eq!(service(&json, "a")["action"], "built");
    assert_eq!(service(&json, "b")["action"], "in_registry");
    assert_ne!(service(&json, "a")["tag"].as_str().unwrap(), tag_a);
    assert_eq!(service(&json, "b")["tag"].as_str().unwrap(), tag_b);
    assert_eq!((shim.builds(), shim.pushes()), (3, 3));

    // A change outside every service's inputs rebuilds nothing.
    fixture.repo.write("README.md", "still not an input\n");
    fixture.repo.commit("readme");
    let fourth = build(bed, &fixture, &shim, &[]);
    fourth.assert_success();
    assert_eq!(fourth.json()["images_built"], 0);
    assert_eq!((shim.builds(), shim.pushes()), (3, 3));

    // --dry-run only asks the registry.
    fixture.repo.write("services/b/app.txt", "b v2\n");
    let dry = build(bed, &fixture, &shim, &["--dry-run"]);
    dry.assert_success();
    let json = dry.json();
    assert_eq!(service(&json, "a")["action"], "in_registry");
    assert_eq!(service(&json, "b")["action"], "would_build");
    assert_eq!((shim.builds(), shim.pushes()), (3, 3));
}

#[tokio::test]
async fn after_push_mode_records_the_tag_and_a_failed_build_records_nothing() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let fixture = fixture(bed, "ssm_write = \"after-push\"\n");
    // A third service whose build fails: a `RUN` in an image without a shell. (A Dockerfile
    // that copies a missing file is a configuration error now, found before any build.)
    fixture
        .repo
        .write(
            "services/c/Dockerfile",
            "FROM scratch\nCOPY app.txt /app.txt\nRUN exit 3\n",
        )
        .write("services/c/app.txt", "c\n");
    let toml = fixture.repo.read("deployer.toml")
        + &format!(
            r#"
[services.c]
kind = "ecs"
dockerfile = "services/c/Dockerfile"
context = "services/c"
platform = "linux/amd64"
inputs = ["services/c/**"]
repository = "{}/c"
cluster = "unused"
service = "unused"
"#,
            fixture.repository
        );
    fixture.repo.write("deployer.toml", toml);
    fixture.repo.commit("service c");
    let shim = Shim::new(bed);

    let run = build(bed, &fixture, &shim, &[]);
    run.assert_code(1);
    let json = run.json();
    // The others still complete, and their tags are recorded right after the push.
    for name in ["a", "b"] {
        let report = service(&json, name);
        assert_eq!(report["action"], "built", "{json}");
        assert_eq!(report["ssm_written"], true);
        let parameter = format!("{}/{name}/image-tag", fixture.prefix);
        assert_eq!(
            ssm_value(bed, &parameter).await.as_deref(),
            report["tag"].as_str()
        );
    }
    // The failure names the service, the builder, the exit code and the builder's last lines.
    let c = service(&json, "c");
    assert_eq!(c["action"], "failed");
    let message = c["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("image build of service `c`") && message.contains("failed with exit code"),
        "{message}"
    );
    assert!(message.contains(&bed.builder().name), "{message}");
    assert!(
        message.contains("RUN exit 3"),
        "the builder's own last lines: {message}"
    );
    assert_eq!(c["error"]["exit_code"], 1);
    assert_eq!(
        ssm_value(bed, &format!("{}/c/image-tag", fixture.prefix)).await,
        None,
        "a failed build writes nothing"
    );
    assert_eq!(shim.pushes(), 2, "the failed image was never pushed");
}

#[tokio::test]
async fn ecr_registry_is_asked_through_the_ecr_api() {
    let Some(bed) = testbed!(moto) else { return };
    let ecr = aws_sdk_ecr::Client::new(&bed.sdk_config().await);
    let repo = FixtureRepo::new();
    let name = unique_name("ecr");
    let repository = format!("{name}/api");
    repo.write("api/Dockerfile", DOCKERFILE)
        .write("api/app.txt", "v1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{name}"
registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

[services.api]
kind = "ecs"
dockerfile = "api/Dockerfile"
context = "api"
platform = "linux/amd64"
inputs = ["api/**"]
repository = "{repository}"
cluster = "unused"
service = "unused"

[services.orphan]
kind = "ecs"
dockerfile = "api/Dockerfile"
context = "api"
platform = "linux/amd64"
inputs = ["api/**"]
repository = "{name}/never-created"
cluster = "unused"
service = "unused"
"#
            ),
        );
    repo.commit("fixture");
    let dry_run = |service: &str| {
        Deployer::new()
            .current_dir(repo.path())
            .bed(bed)
            .args(["build", "--dry-run", "--json", "--service", service])
            .run()
    };

    ecr.create_repository()
        .repository_name(&repository)
        .send()
        .await
        .unwrap();
    let absent = dry_run("api");
    absent.assert_success();
    let json = absent.json();
    assert_eq!(service(&json, "api")["action"], "would_build");

    // Put an image with the service's tag through the ECR API: now it is present.
    let tag = service(&json, "api")["tag"].as_str().unwrap().to_owned();
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
    ecr.put_image()
        .repository_name(&repository)
        .image_manifest(manifest)
        .image_tag(&tag)
        .send()
        .await
        .unwrap();
    let present = dry_run("api");
    present.assert_success();
    let json = present.json();
    assert_eq!(service(&json, "api")["action"], "in_registry", "{json}");
    let artifact = service(&json, "api")["artifact"].as_str().unwrap();
    assert!(
        artifact.starts_with(&format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/{repository}@sha256:"
        )),
        "{artifact}"
    );

    // A repository that does not exist is a clear configuration error.
    let missing = dry_run("orphan");
    missing.assert_code(2);
    let message = missing.json()["services"][0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains(&format!(
            "ECR repository `{name}/never-created` does not exist"
        )),
        "{message}"
    );
}
