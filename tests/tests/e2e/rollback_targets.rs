//! Rollback targets that vanished (issue 17): a rollback whose recorded image a lifecycle rule
//! removed from the registry, or whose Lambda version was deleted, fails in one line before
//! anything is changed — the recorded calls show no update — and `status` warns about it
//! beforehand. Through the real binary on the example monorepo.

use std::time::Duration;

use deployer_tests::{Deployer, RunOutput, Testbed, http, testbed, unique_name};
use serde_json::Value;

use crate::monorepo::{Monorepo, monorepo, service, ssm};

const RUN_TIMEOUT: Duration = Duration::from_secs(240);
const APP_CODE: &str = "backend/src/apis/app_api/main.py";
const RENDER_CODE: &str = "backend/src/lambdas/artifact_render/handler.py";

/// `deployer <args>` in the example, signing with `key` (whose calls the bed records).
fn run(mono: &Monorepo, bed: &Testbed, key: &str, args: &[&str]) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(mono.repo.path())
        .bed(bed)
        .env("ACME_REGISTRY", &bed.registry().host)
        .env("AWS_ACCESS_KEY_ID", key)
        .timeout(RUN_TIMEOUT)
        .args(args);
    for (name, value) in &bed.builder().env {
        deployer = deployer.env(name, value);
    }
    deployer.run()
}

/// Deploys `name` with `path` holding `contents`; returns the tag it recorded.
fn release(mono: &Monorepo, bed: &Testbed, name: &str, path: &str, contents: &str) -> String {
    mono.repo.write(path, contents);
    mono.repo.commit(&format!("change {path}"));
    let key = unique_name("akid-release");
    let out = run(
        mono,
        bed,
        &key,
        &[
            "deploy",
            "--json",
            "--builder",
            &bed.builder().name,
            "--service",
            name,
        ],
    );
    assert_eq!(
        out.code,
        Some(0),
        "deploy {name}\n{}\n{}",
        out.stdout,
        out.stderr
    );
    service(&out.json(), name)["tag"]
        .as_str()
        .expect("the deployed tag")
        .to_owned()
}

/// The actions `key`'s runs made, oldest first.
fn actions(bed: &Testbed, key: &str) -> Vec<String> {
    bed.moto()
        .recorded_calls(key)
        .iter()
        .filter_map(|call| call["action"].as_str().map(str::to_owned))
        .collect()
}

/// `status --json` of `name`: its warnings.
fn status_warnings(mono: &Monorepo, bed: &Testbed, name: &str) -> Vec<String> {
    let out = run(
        mono,
        bed,
        &unique_name("akid-status"),
        &["status", "--json", "--service", name],
    );
    let json = out.json();
    let status = service(&json, name);
    status["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings list in {status}"))
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

/// Asserts that `rollback` failed with exit 1 in one line saying why, having changed nothing.
fn assert_refused(rollback: &RunOutput, name: &str, why: &str) -> Value {
    assert_eq!(
        rollback.code,
        Some(1),
        "the rollback must fail\n--- stdout\n{}\n--- stderr\n{}",
        rollback.stdout,
        rollback.stderr
    );
    let json = rollback.json();
    let report = service(&json, name).clone();
    let message = report["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("cannot roll back to ")
            && message.contains(why)
            && message.ends_with("; nothing was changed")
            && !message.contains('\n'),
        "{message}"
    );
    assert_eq!(report["ssm_written"], false, "{report}");
    report
}

/// The recorded `previous` image was removed from the registry (as an expiring lifecycle rule
/// does): `status` warns, and `rollback` fails before any ECS update — no
/// `RegisterTaskDefinition`, no `UpdateService` in the calls it made — leaving the service and
/// the records on the current release.
#[tokio::test]
async fn a_rollback_to_an_image_removed_from_the_registry_fails_before_any_update() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let first = release(
        &mono,
        bed,
        "app-api",
        APP_CODE,
        "def health():\n    return 1\n",
    );
    let second = release(
        &mono,
        bed,
        "app-api",
        APP_CODE,
        "def health():\n    return 2\n",
    );
    assert_ne!(first, second);
    assert!(
        status_warnings(&mono, bed, "app-api").is_empty(),
        "the previous image is still there"
    );

    let repository = format!("{}/app-api", mono.project);
    let digest = bed
        .registry()
        .head_manifest(&repository, &first)
        .header("docker-content-digest")
        .expect("the first release's image")
        .to_owned();
    let url = format!("{}/v2/{repository}/manifests/{digest}", bed.registry().url);
    let deleted = http::request("DELETE", &url, &[], &[]).unwrap();
    assert_eq!(deleted.status, 202, "DELETE {url}: {}", deleted.text());

    let warnings = status_warnings(&mono, bed, "app-api");
    assert!(
        warnings.len() == 1
            && warnings[0].starts_with("`deployer rollback` would fail: the previous deploy (")
            && warnings[0].contains(&digest)
            && warnings[0].contains("it was removed from the registry"),
        "{warnings:?}"
    );

    let annotated = Deployer::new()
        .current_dir(mono.repo.path())
        .bed(bed)
        .env("ACME_REGISTRY", &bed.registry().host)
        .env("GITHUB_ACTIONS", "true")
        .timeout(RUN_TIMEOUT)
        .args(["status", "--service", "app-api"])
        .run();
    assert!(
        annotated
            .stdout
            .contains("  warning: `deployer rollback` would fail")
            && annotated
                .stderr
                .contains("::warning title=deployer app-api::`deployer rollback` would fail"),
        "a text line and a GitHub annotation\n--- stdout\n{}\n--- stderr\n{}",
        annotated.stdout,
        annotated.stderr
    );

    let key = unique_name("akid-gone");
    let rollback = run(
        &mono,
        bed,
        &key,
        &["rollback", "--service", "app-api", "--json"],
    );
    assert_refused(&rollback, "app-api", "it was removed from the registry");
    let made = actions(bed, &key);
    for update in ["RegisterTaskDefinition", "UpdateService"] {
        assert!(!made.iter().any(|a| a == update), "{update} in {made:?}");
    }
    assert!(
        made.iter().any(|a| a == "DescribeServices"),
        "the calls are recorded: {made:?}"
    );
    let tag = ssm(bed, &format!("/{}/app-api/image-tag", mono.project)).await;
    assert_eq!(
        tag,
        Some(second),
        "image-tag still names the current release"
    );
}

/// A Lambda rollback goes back by alias to the recorded version: when that version was
/// deleted, `status` warns and `rollback` fails before `UpdateAlias`.
#[tokio::test]
async fn a_rollback_to_a_deleted_lambda_version_fails_before_the_alias_moves() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let handler =
        |n: u32| format!("def handler(event, context):\n    return {{'rendered': {n}}}\n");
    release(&mono, bed, "artifact-render", RENDER_CODE, &handler(1));
    release(&mono, bed, "artifact-render", RENDER_CODE, &handler(2));
    let state = ssm(
        bed,
        &format!("/{}/artifact-render/deploy-state", mono.project),
    )
    .await
    .expect("deploy-state");
    let state: Value = serde_json::from_str(&state).unwrap();
    let version = state["previous"]["ids"]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no previous version in {state}"))
        .to_owned();

    let lambda = aws_sdk_lambda::Client::new(&bed.sdk_config().await);
    let function = format!("{}-artifact-render", mono.project);
    lambda
        .delete_function()
        .function_name(&function)
        .qualifier(&version)
        .send()
        .await
        .unwrap();

    let warnings = status_warnings(&mono, bed, "artifact-render");
    assert!(
        warnings.len() == 1
            && warnings[0].contains(&format!("version {version} of {function} no longer exists")),
        "{warnings:?}"
    );
    let key = unique_name("akid-version");
    let rollback = run(
        &mono,
        bed,
        &key,
        &["rollback", "--service", "artifact-render", "--json"],
    );
    assert_refused(
        &rollback,
        "artifact-render",
        "no longer exists (it was deleted)",
    );
    let made = actions(bed, &key);
    assert!(
        !made
            .iter()
            .any(|a| a == "UpdateAlias" || a == "CreateAlias"),
        "the alias was not moved: {made:?}"
    );
}

/// The mechanism that keeps rollback targets through an ECR lifecycle rule: every recorded
/// deploy tags the live image `deployer-current` and the rollback target `deployer-previous` in
/// its repository (the README's rule keeps the `deployer-` prefix at a higher priority), and a
/// rollback, recorded like a deploy, swaps them.
#[tokio::test]
async fn recorded_images_carry_the_kept_tags_and_a_rollback_moves_them() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let repository = format!("{}/app-api", mono.project);
    let digest = |tag: &str| {
        let response = bed.registry().head_manifest(&repository, tag);
        assert_eq!(
            response.status, 200,
            "{repository}:{tag} is not in the registry"
        );
        response
            .header("docker-content-digest")
            .expect("a Docker-Content-Digest")
            .to_owned()
    };
    let first = release(
        &mono,
        bed,
        "app-api",
        APP_CODE,
        "def health():\n    return 1\n",
    );
    assert_eq!(digest("deployer-current"), digest(&first));
    assert_eq!(
        bed.registry()
            .head_manifest(&repository, "deployer-previous")
            .status,
        404,
        "nothing to roll back to yet"
    );
    let second = release(
        &mono,
        bed,
        "app-api",
        APP_CODE,
        "def health():\n    return 2\n",
    );
    assert_eq!(digest("deployer-current"), digest(&second));
    assert_eq!(digest("deployer-previous"), digest(&first));

    let rollback = run(
        &mono,
        bed,
        &unique_name("akid-keep"),
        &["rollback", "--service", "app-api", "--json"],
    );
    assert_eq!(
        rollback.code,
        Some(0),
        "{}\n{}",
        rollback.stdout,
        rollback.stderr
    );
    assert_eq!(digest("deployer-current"), digest(&first));
    assert_eq!(digest("deployer-previous"), digest(&second));
}
