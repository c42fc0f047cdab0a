//! Hostile and broken input through the real binary: a zip source with a symlink to
//! `/etc/passwd`; missing credentials, a wrong region, an unreachable endpoint, targets and an
//! ECR repository that do not exist, no image builder: each a one-line error that says what to
//! do, with exit code 2 (configuration) or 1 (a deploy that ran and failed), never a panic or
//! SDK internals. And secrets: a full deploy of the example (and plan, status, a failing deploy,
//! `-v`, `-vvv`, `--json`) and an ECR login through a builder that echoes its password never
//! print the fixture's secret values or a registry password.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use deployer_tests::example::fixture_secrets;
use deployer_tests::{
    ExampleRepo, FixtureRepo, LiveRun, RunOutput, Testbed, deployer_command, testbed, unique_name,
};
use serde_json::Value;

/// Words that only SDK or Rust internals print: a message carrying them shows the user a
/// stack of internals instead of saying what went wrong.
const INTERNALS: &[&str] = &[
    "panicked",
    "RUST_BACKTRACE",
    "DispatchFailure(",
    "ConnectorError",
    "ServiceError {",
    "ServiceError(",
    "SdkBody",
    "raw: Response",
    "source: Some(",
    "Os { code",
    "kind: Io",
    "hyper_util",
    "{ inner:",
];

fn run(command: Command) -> RunOutput {
    LiveRun::spawn(command).finish(Duration::from_secs(180))
}

/// The error messages a run reported: the top-level JSON error, or each failed service's.
fn messages(out: &RunOutput) -> Vec<String> {
    let json: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        )
    });
    if let Some(message) = json["error"]["message"].as_str() {
        return vec![message.to_owned()];
    }
    json["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["error"]["message"].as_str().map(str::to_owned))
        .collect()
}

/// Exit `code`; every error one line, free of internals, containing each of `hints` (what to do).
fn assert_clear_error(out: &RunOutput, code: i32, hints: &[&str], what: &str) -> Vec<String> {
    assert_eq!(
        out.code,
        Some(code),
        "{what}: exit {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    let messages = messages(out);
    assert!(
        !messages.is_empty(),
        "{what}: no error reported: {}",
        out.stdout
    );
    for message in &messages {
        assert!(!message.contains('\n'), "{what}: not one line: {message}");
        for marker in INTERNALS {
            assert!(
                !message.contains(marker),
                "{what}: SDK internals ({marker}) in: {message}"
            );
        }
        for hint in hints {
            assert!(
                message.contains(hint),
                "{what}: `{hint}` missing from: {message}"
            );
        }
    }
    for marker in ["panicked", "RUST_BACKTRACE"] {
        assert!(
            !out.stderr.contains(marker),
            "{what}: {marker} on stderr:\n{}",
            out.stderr
        );
    }
    messages
}

/// A one-service repository: a zip function `function` (which may not exist).
fn zip_repo(project: &str, function: &str, extra: &str) -> FixtureRepo {
    let repo = FixtureRepo::new();
    repo.write("render/handler.py", "def handler(event, context):\n    return 'rendered'\n")
        .write(
            "deployer.toml",
            format!(
                "[project]\nname = \"{project}\"\n{extra}\n[services.render]\nkind = \"lambda-zip\"\nsource = \"render\"\nfunction = \"{function}\"\n"
            ),
        );
    repo.commit("zip service");
    repo
}

fn command_in(bed: &Testbed, dir: &Path, args: &[&str]) -> Command {
    let mut command = deployer_command(bed);
    command.current_dir(dir).args(args);
    command
}

fn deploy_render(bed: &Testbed) -> (FixtureRepo, Command) {
    let project = unique_name("hostile");
    let repo = zip_repo(&project, &format!("{project}-nope"), "");
    let command = command_in(
        bed,
        repo.path(),
        &["deploy", "--service", "render", "--json"],
    );
    (repo, command)
}

/// A region where the function does not exist: not found, naming the region as the suspect.
#[tokio::test]
async fn a_wrong_region_is_a_one_line_not_found_error() {
    let Some(bed) = testbed!(moto) else { return };
    let (_repo, mut command) = deploy_render(bed);
    command.env("AWS_REGION", "eu-west-3");
    let out = run(command);
    assert_clear_error(&out, 2, &["was not found", "region"], "wrong region");
}

/// No credentials anywhere (no keys, no profile files, no instance metadata): exit 2, one line
/// saying how to provide them.
#[tokio::test]
async fn missing_credentials_are_a_one_line_configuration_error() {
    let Some(bed) = testbed!(moto) else { return };
    let (_repo, mut command) = deploy_render(bed);
    command
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = run(command);
    let messages = assert_clear_error(&out, 2, &["credentials"], "missing credentials");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("AWS_PROFILE") || m.contains("AWS_ACCESS_KEY_ID")),
        "missing credentials: the message does not say what to do: {messages:?}"
    );
}

/// No region anywhere (no AWS_REGION, no profile, none in the manifest): exit 2, one line.
#[tokio::test]
async fn no_region_is_a_one_line_configuration_error() {
    let Some(bed) = testbed!(moto) else { return };
    let (_repo, mut command) = deploy_render(bed);
    command.env_remove("AWS_REGION");
    let out = run(command);
    assert_clear_error(&out, 2, &["region", "AWS_REGION"], "no region");
}

/// An endpoint nothing listens on: the deploy fails (exit 1) in one line that names what could
/// not be reached, without the connector's internals.
#[tokio::test]
async fn an_unreachable_endpoint_is_a_one_line_error() {
    let Some(bed) = testbed!(moto) else { return };
    let (_repo, mut command) = deploy_render(bed);
    // Two attempts per call: the message is under test, not the SDK's patience.
    command
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_MAX_ATTEMPTS", "2");
    let out = run(command);
    let messages = assert_clear_error(&out, 1, &[], "unreachable endpoint");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("127.0.0.1:9") || m.contains("connect") || m.contains("refused")),
        "unreachable endpoint: the message does not say what failed: {messages:?}"
    );
}

/// An ECS cluster, an ECS service, a Lambda function and an AgentCore runtime that do not
/// exist, and an ECR repository that does not exist: each service fails alone with a
/// configuration error (exit 2) that names it and says to create it or fix the manifest.
#[tokio::test]
async fn targets_and_an_ecr_repository_that_do_not_exist_are_named() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let project = unique_name("hostile");
    let ecs = aws_sdk_ecs::Client::new(&bed.sdk_config().await);
    ecs.create_cluster()
        .cluster_name(&project)
        .send()
        .await
        .unwrap();
    let repo = FixtureRepo::new();
    repo.write("img/Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n")
        .write("img/app.txt", "v1\n")
        .write(
            "render/handler.py",
            "def handler(event, context):\n    return 1\n",
        )
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{project}"
registry = "{registry}"

[services.no-cluster]
kind = "ecs"
dockerfile = "img/Dockerfile"
context = "img"
platform = "linux/amd64"
inputs = ["img/**"]
repository = "{project}/img"
cluster = "{project}-nope"
service = "api"

[services.no-service]
kind = "ecs"
dockerfile = "img/Dockerfile"
context = "img"
platform = "linux/amd64"
inputs = ["img/**"]
repository = "{project}/img"
cluster = "{project}"
service = "nope"

[services.no-function]
kind = "lambda-zip"
source = "render"
function = "{project}-nope"

[services.no-runtime]
kind = "agentcore"
dockerfile = "img/Dockerfile"
context = "img"
platform = "linux/arm64"
inputs = ["img/**"]
repository = "{project}/img-arm"
runtime_id = "nope_runtime-AbCdE12345"
"#,
                registry = bed.registry().host
            ),
        );
    repo.commit("targets that do not exist");
    let mut command = command_in(
        bed,
        repo.path(),
        &[
            "deploy",
            "--all",
            "--json",
            "--builder",
            &bed.builder().name,
        ],
    );
    command.envs(&bed.builder().env);
    let out = run(command);
    let messages = assert_clear_error(&out, 2, &[], "missing targets");
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    for (service, needle) in [
        ("no-cluster", "cluster"),
        ("no-service", "nope"),
        ("no-function", &format!("{project}-nope")),
        ("no-runtime", "nope_runtime-AbCdE12345"),
    ] {
        let entry = json["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == service)
            .unwrap_or_else(|| panic!("no {service} in {json}"));
        let message = entry["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(entry["error"]["exit_code"], 2, "{service}: {entry}");
        assert!(
            message.contains(needle)
                && (message.contains("not found") || message.contains("does not exist")),
            "{service}: {message}"
        );
    }
    assert_eq!(messages.len(), 4, "{messages:?}");

    // An ECR repository that does not exist.
    let ecr_repo = FixtureRepo::new();
    ecr_repo
        .write("img/Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n")
        .write("img/app.txt", "v1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{project}"
registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

[services.api]
kind = "ecs"
dockerfile = "img/Dockerfile"
context = "img"
platform = "linux/amd64"
inputs = ["img/**"]
repository = "{project}/never-created"
cluster = "{project}"
service = "api"
"#
            ),
        );
    ecr_repo.commit("ecr");
    let out = run(command_in(
        bed,
        ecr_repo.path(),
        &["deploy", "--all", "--json"],
    ));
    assert_clear_error(
        &out,
        2,
        &["does not exist", "create it with your infrastructure code"],
        "missing ECR repository",
    );
}

/// No docker, podman or buildah on PATH (git only): exit 2, naming what was tried and what to
/// install; with `--builder podman`, naming podman. (Through `build`: a `deploy` reads the live
/// service first, and this manifest's ECS service does not exist, which it would report first.)
#[tokio::test]
async fn no_image_builder_on_the_machine_is_a_configuration_error() {
    let Some(bed) = testbed!(moto, registry) else {
        return;
    };
    let project = unique_name("hostile");
    let repo = FixtureRepo::new();
    repo.write("img/Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n")
        .write("img/app.txt", "v1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{project}"
registry = "{registry}"

[services.api]
kind = "ecs"
dockerfile = "img/Dockerfile"
context = "img"
platform = "linux/amd64"
inputs = ["img/**"]
repository = "{project}/api"
cluster = "{project}"
service = "api"
"#,
                registry = bed.registry().host
            ),
        );
    repo.commit("an image service");
    // A PATH with git and nothing else.
    let bin = tempfile::tempdir().unwrap();
    let git = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("git"))
        .find(|candidate| candidate.is_file())
        .expect("git is on PATH");
    std::os::unix::fs::symlink(git, bin.path().join("git")).unwrap();
    let deploy = |extra: &[&str]| {
        let mut command = command_in(bed, repo.path(), &["build", "--json"]);
        command.args(extra).env("PATH", bin.path());
        run(command)
    };
    let out = deploy(&[]);
    assert_clear_error(
        &out,
        2,
        &[
            "no image builder found",
            "docker",
            "podman",
            "buildah",
            "install",
        ],
        "no builder",
    );
    let out = deploy(&["--builder", "podman"]);
    assert_clear_error(
        &out,
        2,
        &["podman", "not usable"],
        "--builder podman without podman",
    );
}

/// A symlink to `/etc/passwd` inside a zip source: the deploy refuses it (naming the link and
/// what to do) and ships nothing; excluded, the zip that ships holds the handler only (read back
/// by invoking the deployed function, which lists its own files).
#[tokio::test]
async fn a_zip_source_with_a_symlink_to_etc_passwd_never_ships_it() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let source = "backend/src/lambdas/artifact_render";
    example.repo.write(
        &format!("{source}/handler.py"),
        "import os\n\n\ndef handler(event, context):\n    here = os.path.dirname(os.path.abspath(__file__))\n    return {\"rendered\": event.get(\"artifact\", \"none\"), \"files\": sorted(os.listdir(here))}\n",
    );
    example
        .repo
        .symlink(&format!("{source}/passwd"), "/etc/passwd");
    example
        .repo
        .commit("a symlink to /etc/passwd in the zip source");
    let lambda = aws_sdk_lambda::Client::new(&bed.sdk_config().await);
    let function = example.function("artifact-render");
    let code = || async {
        lambda
            .get_function_configuration()
            .function_name(&function)
            .send()
            .await
            .unwrap()
            .code_sha256()
            .map(str::to_owned)
    };
    let before = code().await;
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let first_line = passwd.lines().next().unwrap_or("root:x:0:0").to_owned();

    let out = example
        .deployer(bed, None)
        .args(["deploy", "--service", "artifact-render", "--json", "-v"])
        .run();
    assert!(out.code == Some(1) || out.code == Some(2), "{out:?}");
    let messages = messages(&out);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("passwd is a symlink to /etc/passwd") && m.contains("exclude")),
        "{messages:?}"
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(&first_line), "/etc/passwd leaked: {text}");
    }
    assert_eq!(code().await, before, "nothing was deployed");

    example.edit_manifest(|manifest| {
        manifest.replace(
            "exclude = [\"**/__pycache__\"]",
            "exclude = [\"**/__pycache__\", \"passwd\"]",
        )
    });
    let out = example
        .deployer(bed, None)
        .args(["deploy", "--service", "artifact-render", "--json"])
        .run();
    out.assert_success();
    let invoked = lambda
        .invoke()
        .function_name(&function)
        .payload(aws_sdk_lambda::primitives::Blob::new(
            r#"{"artifact": "check"}"#,
        ))
        .send()
        .await
        .unwrap();
    let payload: Value = serde_json::from_slice(invoked.payload().unwrap().as_ref()).unwrap();
    assert_eq!(
        payload["files"],
        serde_json::json!(["handler.py"]),
        "{payload}"
    );
}

/// A stand-in for docker that is as careless as a builder can be: it echoes the password it
/// gets on stdin, on stdout and stderr, at login; `push` puts a manifest into moto's ECR (so
/// that the deploy goes on).
fn careless_docker(bed: &Testbed, dir: &Path) -> std::path::PathBuf {
    let log = dir.join("docker.log");
    let script = format!(
        r#"#!/bin/sh
echo "argv: $*" >> '{log}'
case "$1" in
  version) echo 20.10.0; exit 0 ;;
  buildx) exit 1 ;;
  login)
    password=$(cat)
    echo "stdin: $password" >> '{log}'
    echo "Login Succeeded with $password"
    echo "WARNING! Your password $password will be stored unencrypted" >&2
    exit 0 ;;
  build) echo "Successfully built"; exit 0 ;;
  push)
    image="$2"
    exec '{python}' -c '
import sys, boto3
image = sys.argv[1]
name, tag = image.split("/", 1)[1].rsplit(":", 1)
manifest = """{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}},"layers":[]}}"""
boto3.client("ecr", region_name="us-east-1").put_image(repositoryName=name, imageManifest=manifest, imageTag=tag)
print(image + ": pushed")
' "$image" ;;
esac
exit 0
"#,
        log = log.display(),
        python = bed.moto().python.display(),
    );
    let path = dir.join("docker");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    log
}

/// Secrets never appear: the example's environment values (in the ECS task, the AgentCore
/// runtime and the zip function) through deploy, plan, status and a failing deploy, in text,
/// `--json`, `-v` and `-vvv`; a registry password through an ECR login whose builder echoes it
/// (and through `DEPLOYER_REGISTRY_PASSWORD` for the OCI registry).
#[tokio::test]
async fn secrets_never_appear_in_any_output() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let registry_password = format!("registry-pw-{}", unique_name("s3cr3t"));
    let example = ExampleRepo::create(bed);
    let builder = bed.builder().name.clone();
    let mut transcript: Vec<(String, RunOutput)> = Vec::new();
    let mut record = |what: &str, out: RunOutput| {
        transcript.push((what.to_owned(), out.clone()));
        out
    };
    let with_password = |deployer: deployer_tests::Deployer| {
        deployer
            .env("DEPLOYER_REGISTRY_USERNAME", "deployer")
            .env("DEPLOYER_REGISTRY_PASSWORD", &registry_password)
    };
    let run_example = |args: &[&str]| with_password(example.deployer(bed, None)).args(args).run();

    record("plan before", run_example(&["plan", "-v"])).assert_code(0);
    record(
        "first deploy --json -vvv",
        run_example(&["deploy", "--all", "--json", "-vvv", "--builder", &builder]),
    )
    .assert_success();
    example.change_all("secrets");
    record(
        "deploy -v",
        run_example(&["deploy", "--all", "-v", "--builder", &builder]),
    )
    .assert_success();
    record("plan --json", run_example(&["plan", "--json"]));
    record("status", run_example(&["status", "-v"])).assert_success();
    record("status --json", run_example(&["status", "--json"])).assert_success();
    // A failing deploy: a build that breaks, and a rollout that fails (the zip function's
    // update is made to fail by the test bed).
    let lambda = aws_sdk_lambda::Client::new(&bed.sdk_config().await);
    let arn = lambda
        .get_function()
        .function_name(example.function("rag-ingestion"))
        .send()
        .await
        .unwrap()
        .configuration()
        .unwrap()
        .function_arn()
        .unwrap()
        .to_owned();
    lambda
        .tag_resource()
        .resource(&arn)
        .tags("deployer-testbed:update", "fail")
        .send()
        .await
        .unwrap();
    example
        .repo
        .write("backend/Dockerfile.app-api", "FROM scratch\nRUN exit 3\n");
    example.change_all("a failing deploy");
    let failed = record(
        "failing deploy -v",
        run_example(&["deploy", "--all", "-v", "--builder", &builder]),
    );
    assert_eq!(failed.code, Some(1), "{failed:?}");
    record(
        "failing deploy --json -v",
        run_example(&["deploy", "--all", "--json", "-v", "--builder", &builder]),
    );
    record(
        "status after failure --json",
        run_example(&["status", "--json"]),
    );

    // ECR: the login password (moto's GetAuthorizationToken) goes to the builder's stdin; the
    // builder echoes it; deployer must not pass it on.
    let project = unique_name("ecr-secret");
    let ecr = aws_sdk_ecr::Client::new(&bed.sdk_config().await);
    ecr.create_repository()
        .repository_name(format!("{project}/ingest"))
        .send()
        .await
        .unwrap();
    let token = ecr.get_authorization_token().send().await.unwrap();
    let token = token.authorization_data()[0]
        .authorization_token()
        .unwrap()
        .to_owned();
    // base64 without a dependency: the venv's Python decodes it.
    let decoded = Command::new(&bed.moto().python)
        .args([
            "-c",
            "import base64, sys; sys.stdout.write(base64.b64decode(sys.argv[1]).decode())",
            &token,
        ])
        .output()
        .unwrap();
    let decoded = String::from_utf8(decoded.stdout).unwrap();
    let ecr_password = decoded.split_once(':').unwrap().1.to_owned();
    let function = format!("{project}-ingest");
    lambda
        .create_function()
        .function_name(&function)
        .package_type(aws_sdk_lambda::types::PackageType::Image)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .image_uri(format!(
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/{project}/ingest:bootstrap"
                ))
                .build(),
        )
        .role(format!(
            "arn:aws:iam::123456789012:role/{}-lambda",
            example.project
        ))
        .send()
        .await
        .unwrap();
    let repo = FixtureRepo::new();
    repo.write("ingest/Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n")
        .write("ingest/app.txt", "v1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{project}"
registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

[services.ingest]
kind = "lambda-image"
dockerfile = "ingest/Dockerfile"
context = "ingest"
platform = "linux/amd64"
inputs = ["ingest/**"]
repository = "{project}/ingest"
function = "{function}"
"#
            ),
        );
    repo.commit("ecr");
    let bin = tempfile::tempdir().unwrap();
    let docker_log = careless_docker(bed, bin.path());
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ecr_run = |args: &[&str]| {
        let mut command = command_in(bed, repo.path(), args);
        command
            .env("PATH", &path)
            .env("AWS_DEFAULT_REGION", "us-east-1");
        run(command)
    };
    let deployed = record(
        "ECR deploy -v",
        ecr_run(&["deploy", "--service", "ingest", "-v", "--builder", "docker"]),
    );
    deployed.assert_success();
    let log = fs::read_to_string(&docker_log).unwrap();
    assert!(
        log.contains(&format!("stdin: {ecr_password}")),
        "the password did not reach the builder's stdin:\n{log}"
    );
    assert!(
        log.lines()
            .filter(|l| l.starts_with("argv:"))
            .all(|l| !l.contains(&ecr_password)),
        "the password was on the builder's command line:\n{log}"
    );
    // A login that fails, echoing the password in its error.
    fs::write(
        bin.path().join("docker"),
        fs::read_to_string(bin.path().join("docker"))
            .unwrap()
            .replace("    exit 0 ;;\n  build)", "    exit 1 ;;\n  build)"),
    )
    .unwrap();
    repo.write("ingest/app.txt", "v2\n");
    repo.commit("v2");
    let failed_login = record(
        "ECR deploy with a failing login --json -v",
        ecr_run(&[
            "deploy",
            "--service",
            "ingest",
            "--json",
            "-v",
            "--builder",
            "docker",
        ]),
    );
    assert_eq!(failed_login.code, Some(1), "{failed_login:?}");
    assert!(
        failed_login.stdout.contains("login") && failed_login.stdout.contains("<redacted>"),
        "{}",
        failed_login.stdout
    );

    let mut secrets = fixture_secrets();
    secrets.push(registry_password.clone());
    secrets.push(ecr_password.clone());
    secrets.push(token.clone());
    let mut leaks = Vec::new();
    let mut bytes = 0;
    for (what, out) in &transcript {
        bytes += out.stdout.len() + out.stderr.len();
        for secret in &secrets {
            for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
                if let Some(at) = text.find(secret.as_str()) {
                    let line = text[..at].rsplit('\n').next().unwrap_or_default();
                    leaks.push(format!("{what} ({stream}): `{secret}` after: {line}"));
                }
            }
        }
    }
    eprintln!(
        "secrets: {} runs, {bytes} bytes of output searched for {} secret values",
        transcript.len(),
        secrets.len()
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
