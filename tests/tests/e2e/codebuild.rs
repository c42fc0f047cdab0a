//! Images built on "AWS CodeBuild" (issue 18): moto's CodeBuild with the test bed's patch
//! (`xtask/testbed/patches/codebuild.py`) runs each build for real — the context object from
//! moto's S3, the buildspec's commands with the local Docker engine, the output in moto's
//! CloudWatch Logs — and `deployer` follows it through the real SDK:
//!
//! - the example's four image services build at once on CodeBuild and deploy;
//! - a failing build names its phase and the last log lines, exits 1, records nothing;
//! - an unchanged service starts no build and uploads nothing, and a new tag over the same
//!   context builds without uploading it again (the recorder counts the calls);
//! - with no image builder on `PATH` the deploy still works in this mode (and a local build
//!   fails there, which proves the builders are hidden);
//! - Ctrl-C during a build stops it (`StopBuild`) and records nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use deployer_tests::{ExampleRepo, LiveRun, RunOutput, Testbed, testbed, unique_name};
use serde_json::Value;

/// Creates a CodeBuild project and a context bucket in moto (boto3, the bed's Python);
/// returns `(project, bucket)`. Its builds spend a second provisioning, as real ones spend
/// more (the patch's `deployer-testbed:provisioning-seconds` tag).
pub(crate) fn codebuild_infra(bed: &Testbed, prefix: &str) -> (String, String) {
    codebuild_infra_provisioning(bed, prefix, 1)
}

/// [`codebuild_infra`] with builds that spend `seconds` provisioning.
fn codebuild_infra_provisioning(bed: &Testbed, prefix: &str, seconds: u32) -> (String, String) {
    let (project, bucket) = (format!("{prefix}-images"), format!("{prefix}-contexts"));
    let script = r#"
import os, sys
import boto3
region = os.environ["AWS_REGION"]
project, bucket = sys.argv[1], sys.argv[2]
boto3.client("s3", region_name=region).create_bucket(Bucket=bucket)
boto3.client("codebuild", region_name=region).create_project(
    name=project,
    # deployer overrides the source of every build; moto wants a location all the same
    source={"type": "S3", "location": f"{bucket}/deployer/"},
    artifacts={"type": "NO_ARTIFACTS"},
    environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/amazonlinux-x86_64-standard:5.0", "computeType": "BUILD_GENERAL1_SMALL"},
    serviceRole="arn:aws:iam::123456789012:role/codebuild-images",
    tags=[{"key": "deployer-testbed:provisioning-seconds", "value": sys.argv[3]}],
)
"#;
    let output = Command::new(&bed.moto().python)
        .args(["-c", script, &project, &bucket, &seconds.to_string()])
        .envs(bed.env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "creating the CodeBuild project: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (project, bucket)
}

/// `builder = "codebuild"` for the whole project.
fn on_codebuild(example: &ExampleRepo, project: &str, bucket: &str) {
    example.edit_manifest(|text| {
        text.replacen(
            "[project]\n",
            &format!(
                "[project]\nbuilder = \"codebuild\"\ncodebuild = {{ project = \"{project}\", bucket = \"{bucket}\" }}\n"
            ),
            1,
        )
    });
}

fn deploy(bed: &Testbed, example: &ExampleRepo, key: &str, args: &[&str]) -> RunOutput {
    example
        .deployer(bed, None)
        .env("AWS_ACCESS_KEY_ID", key)
        .arg("deploy")
        .args(args)
        .run()
}

fn calls<'a>(calls: &'a [Value], action: &str) -> Vec<&'a Value> {
    calls.iter().filter(|c| c["action"] == action).collect()
}

/// The uploads of build contexts (`PutObject` under `deployer/<project>/contexts/`; the config
/// service keeps its applied sets in S3 too).
fn context_uploads(calls: &[Value]) -> Vec<&Value> {
    calls
        .iter()
        .filter(|c| {
            c["action"] == "PutObject"
                && c["path"].as_str().is_some_and(|p| p.contains("/contexts/"))
        })
        .collect()
}

/// The builds with these ids, as moto's CodeBuild reports them (boto3).
fn builds(bed: &Testbed, ids: &[String]) -> Vec<Value> {
    let script = "import json, os, sys, boto3\nc = boto3.client('codebuild', region_name=os.environ['AWS_REGION'])\nprint(json.dumps(c.batch_get_builds(ids=sys.argv[1:])['builds'], default=str))";
    let output = Command::new(&bed.moto().python)
        .args(["-c", script])
        .args(ids)
        .envs(bed.env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_example_builds_its_images_at_once_on_codebuild_and_deploys() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    // Six services (five of code, one of config), six at once (by default four: the zip and
    // config services' rollouts would hold an image's turn).
    let at_once = |text: String| text.replacen("[project]\n", "[project]\nconcurrency = 6\n", 1);

    // The same example with the local builder first, for comparison (a figure, not a goal):
    // it builds here and starts no CodeBuild build.
    let local = ExampleRepo::create(bed);
    local.edit_manifest(at_once);
    let key = unique_name("akid-cb-local");
    let started = Instant::now();
    let out = deploy(bed, &local, &key, &["--all"]);
    let local_seconds = started.elapsed().as_secs_f64();
    out.assert_success();
    assert!(calls(&bed.moto().recorded_calls(&key), "StartBuild").is_empty());

    let example = ExampleRepo::create(bed);
    let (project, bucket) = codebuild_infra(bed, &example.project);
    on_codebuild(&example, &project, &bucket);
    example.edit_manifest(at_once);
    let key = unique_name("akid-cb-all");
    let started = Instant::now();
    // Not `--json`: progress (the phases; with -v the build's log lines) goes to stderr.
    let out = deploy(bed, &example, &key, &["--all", "-v"]);
    let seconds = started.elapsed().as_secs_f64();
    out.assert_success();
    eprintln!(
        "deploy of the example: codebuild mode {seconds:.1}s, local builder {local_seconds:.1}s"
    );
    for service in deployer_tests::example::SERVICES {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(service) && l.contains(" updated ")),
            "{service} not updated:\n{}",
            out.stdout
        );
    }
    let recorded = bed.moto().recorded_calls(&key);
    let starts = calls(&recorded, "StartBuild");
    assert_eq!(starts.len(), 4, "one build per image service");
    assert_eq!(
        context_uploads(&recorded).len(),
        4,
        "each context uploaded once"
    );
    for start in &starts {
        assert_eq!(start["params"]["projectName"], project.as_str());
        assert_eq!(start["params"]["sourceTypeOverride"], "S3");
    }
    let arm: Vec<&Value> = starts
        .iter()
        .copied()
        .filter(|s| s["params"]["environmentTypeOverride"] == "ARM_CONTAINER")
        .collect();
    assert_eq!(
        arm.len(),
        1,
        "inference-api (linux/arm64) builds on the ARM fleet"
    );
    // At once: every build started before the first one ended.
    let ids = project_builds(bed, &project);
    assert_eq!(ids.len(), 4, "{ids:?}");
    let described = builds(bed, &ids);
    let latest_start = described
        .iter()
        .map(|b| b["startTime"].as_str().unwrap().to_owned())
        .max()
        .unwrap();
    let earliest_end = described
        .iter()
        .map(|b| b["endTime"].as_str().unwrap().to_owned())
        .min()
        .unwrap();
    assert!(
        latest_start < earliest_end,
        "builds ran one after another: {described:#?}"
    );
    for build in &described {
        assert_eq!(build["buildStatus"], "SUCCEEDED", "{build}");
    }
    // The phases and the build's own log lines reached progress (stderr).
    for needle in [
        "CodeBuild phase PROVISIONING",
        "CodeBuild phase COMPLETED",
        "Running command docker push",
        "uploaded the build context",
    ] {
        assert!(
            out.stderr.contains(needle),
            "{needle} not in stderr:\n{}",
            out.stderr
        );
    }
    // What was deployed is what the registry holds under the tags, and the tags are recorded.
    assert_eq!(example.out_of_sync(bed), Vec::<String>::new());
}

/// The ids of every build of a CodeBuild project (boto3).
fn project_builds(bed: &Testbed, project: &str) -> Vec<String> {
    let script = "import json, os, sys, boto3\nc = boto3.client('codebuild', region_name=os.environ['AWS_REGION'])\nprint(json.dumps(c.list_builds_for_project(projectName=sys.argv[1])['ids']))";
    let output = Command::new(&bed.moto().python)
        .args(["-c", script, project])
        .envs(bed.env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_failing_codebuild_build_names_its_phase_and_log_tail_and_records_nothing() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let (project, bucket) = codebuild_infra(bed, &example.project);
    on_codebuild(&example, &project, &bucket);
    // A RUN in a FROM scratch image: there is no shell to run it.
    let dockerfile = "backend/Dockerfile.rag-ingestion";
    example.repo.write(
        dockerfile,
        format!("{}RUN echo built\n", example.repo.read(dockerfile)),
    );
    example.repo.commit("a build step that cannot run");
    let key = unique_name("akid-cb-fail");
    let out = deploy(bed, &example, &key, &["--service", "rag-ingestion"]);
    out.assert_code(1);
    let error = &out.stdout;
    for needle in [
        "rag-ingestion: image build of service `rag-ingestion` on codebuild",
        "FAILED in phase BUILD",
        "COMMAND_EXECUTION_ERROR: Error while executing command:",
        "last lines of its log:",
        "Phase complete: BUILD State: FAILED",
    ] {
        assert!(
            error.contains(needle),
            "{needle} not in:\n{error}\n--- stderr\n{}",
            out.stderr
        );
    }
    let recorded = bed.moto().recorded_calls(&key);
    assert_eq!(calls(&recorded, "StartBuild").len(), 1);
    assert!(
        calls(&recorded, "UpdateFunctionCode").is_empty(),
        "nothing deployed"
    );
    let tag_writes: Vec<&Value> = calls(&recorded, "PutParameter")
        .into_iter()
        .filter(|c| {
            c["params"]["Name"]
                .as_str()
                .is_some_and(|n| n.ends_with("/image-tag"))
        })
        .collect();
    assert!(
        tag_writes.is_empty(),
        "a failed build records no tag: {tag_writes:?}"
    );
}

#[test]
fn an_unchanged_service_starts_no_build_and_a_known_context_is_not_uploaded_again() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let (project, bucket) = codebuild_infra(bed, &example.project);
    on_codebuild(&example, &project, &bucket);
    let first = unique_name("akid-cb-first");
    deploy(bed, &example, &first, &["--service", "rag-ingestion"]).assert_success();
    let recorded = bed.moto().recorded_calls(&first);
    assert_eq!(calls(&recorded, "StartBuild").len(), 1);
    assert_eq!(context_uploads(&recorded).len(), 1);

    // Unchanged: no build, no upload, not even a look at the bucket.
    let again = unique_name("akid-cb-again");
    let out = deploy(
        bed,
        &example,
        &again,
        &["--service", "rag-ingestion", "--json"],
    );
    out.assert_success();
    assert_eq!(out.json()["services"][0]["action"], "unchanged");
    let recorded = bed.moto().recorded_calls(&again);
    for action in ["StartBuild", "PutObject", "HeadObject", "BatchGetBuilds"] {
        assert!(
            calls(&recorded, action).is_empty(),
            "{action} on a no-op run: {recorded:#?}"
        );
    }

    // A new tag over the same context (a build arg changed): built again, not uploaded again.
    example.edit_manifest(|text| {
        text.replacen(
            "[services.rag-ingestion]\n",
            "[services.rag-ingestion]\nbuild_args = { REVISION = \"2\" }\n",
            1,
        )
    });
    let rebuilt = unique_name("akid-cb-args");
    deploy(bed, &example, &rebuilt, &["--service", "rag-ingestion"]).assert_success();
    let recorded = bed.moto().recorded_calls(&rebuilt);
    assert_eq!(calls(&recorded, "StartBuild").len(), 1);
    assert_eq!(calls(&recorded, "HeadObject").len(), 1);
    assert!(
        calls(&recorded, "PutObject").is_empty(),
        "the same context is uploaded once"
    );
}

/// A `PATH` with `git` only: no docker, podman or buildah.
fn path_without_builders(dir: &Path) -> String {
    let git = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    let git = String::from_utf8(git.stdout).unwrap().trim().to_owned();
    std::os::unix::fs::symlink(&git, dir.join("git")).unwrap();
    dir.display().to_string()
}

#[test]
fn a_machine_without_an_image_builder_deploys_on_codebuild() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let (project, bucket) = codebuild_infra(bed, &example.project);
    let bin = tempfile::tempdir().unwrap();
    let path = path_without_builders(bin.path());
    // Built locally, there is nothing to build with: the builders are really hidden.
    let local = unique_name("akid-cb-local");
    let out = example
        .deployer(bed, None)
        .env("AWS_ACCESS_KEY_ID", &local)
        .env("PATH", &path)
        .args(["deploy", "--service", "rag-ingestion"])
        .run();
    out.assert_code(2);
    assert!(
        out.stdout.contains("no image builder found"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    // On CodeBuild (this service only), it deploys.
    example.edit_manifest(|text| {
        text.replacen(
            "[services.rag-ingestion]\n",
            &format!("[services.rag-ingestion]\nbuilder = \"codebuild\"\ncodebuild = {{ project = \"{project}\", bucket = \"{bucket}\" }}\n"),
            1,
        )
    });
    let remote = unique_name("akid-cb-remote");
    let out = example
        .deployer(bed, None)
        .env("AWS_ACCESS_KEY_ID", &remote)
        .env("PATH", &path)
        .args(["deploy", "--service", "rag-ingestion", "--json"])
        .run();
    out.assert_success();
    assert_eq!(out.json()["services"][0]["action"], "updated");
    assert_eq!(
        calls(&bed.moto().recorded_calls(&remote), "StartBuild").len(),
        1
    );
}

#[test]
fn ctrl_c_during_a_build_stops_it_and_records_nothing() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    // Builds that would stay provisioning for a minute.
    let (project, bucket) = codebuild_infra_provisioning(bed, &example.project, 60);
    on_codebuild(&example, &project, &bucket);
    let key = unique_name("akid-cb-int");
    let mut command = example.command(bed, None);
    command
        .env("AWS_ACCESS_KEY_ID", &key)
        .args(["deploy", "--service", "rag-ingestion"]);
    let mut run = LiveRun::spawn(command);
    let started = run
        .wait_for(Duration::from_secs(60), |line| {
            line.service == "rag-ingestion" && line.message.contains("CodeBuild phase PROVISIONING")
        })
        .unwrap_or_else(|| panic!("the build did not start:\n{}", run.stderr_so_far()));
    assert_eq!(started.phase, "build");
    let interrupted = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &run.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = run.finish(Duration::from_secs(30));
    assert!(
        interrupted.elapsed() < Duration::from_secs(20),
        "the run waited for the build"
    );
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("stopped CodeBuild build"),
        "{}",
        out.stderr
    );
    let recorded = bed.moto().recorded_calls(&key);
    let stops = calls(&recorded, "StopBuild");
    assert_eq!(stops.len(), 1, "{recorded:#?}");
    let id = stops[0]["params"]["id"].as_str().unwrap().to_owned();
    assert_eq!(builds(bed, &[id])[0]["buildStatus"], "STOPPED");
    let tag_writes: Vec<&Value> = calls(&recorded, "PutParameter")
        .into_iter()
        .filter(|c| {
            c["params"]["Name"]
                .as_str()
                .is_some_and(|n| n.ends_with("/image-tag"))
        })
        .collect();
    assert!(tag_writes.is_empty(), "{tag_writes:?}");
}
