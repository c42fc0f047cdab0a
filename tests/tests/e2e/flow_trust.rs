//! Records you can trust (issue 13): regression tests for invariant I1 — `image-tag` and
//! `deploy-state.current` only ever name an artifact whose rollout completed and whose smoke
//! check passed, and which the service runs when they are written — and for "deploy-state is
//! written only by a run that holds the service's deploy lock". Through the real binary, on the
//! example monorepo, asserting only what a user sees: exit codes, `--json` reports, the SSM
//! parameters, and what moto and the registry hold.
//!
//! - A failed release is never blessed by a re-run (the issue's second reproduction, on the zip
//!   Lambda with a failing smoke check; item 2, on ECS with the circuit breaker's rollback off).
//!   Once the cause is fixed, a deploy of the release the service already runs verifies it
//!   (rollout complete, smoke check run again) and only then records it: action `recorded` (or a
//!   new rollout, `updated`).
//! - Item 3: `rollback_on_smoke_failure` on a first deploy goes back to the bootstrap image.
//! - Item 4: `force_new_deployment` (a task definition on the mutable tag `…:bootstrap`): the tag
//!   is moved back when the rollout fails, `rollback` moves it to the recorded digest, `--no-wait`
//!   moves it before restarting, and `plan` after a deploy says `unchanged`.
//! - Item 6: a deploy that never held the lock leaves deploy-state byte-for-byte as it was.
//! - Item 8: `wait` after a timeout keeps the rollout pending; `wait` of an AgentCore runtime that
//!   someone else updated meanwhile fails instead of recording what it no longer runs.
//!
//! The test bed models what these need (`xtask/testbed/patches/`): ECS rollouts that fail
//! (`deployer-testbed:rollout = fail` on the service), never finish (`= stuck`), and a circuit
//! breaker with `rollback = false` that leaves the failed deployment PRIMARY (`ecs.py`);
//! AgentCore updates that settle to READY after two GetAgentRuntime calls with a new version
//! (`bedrock_agentcore_control.py`). Every step is counted in calls, not in time, so nothing
//! here depends on timing: a rollout completes (or trips) after a fixed number of
//! DescribeServices, an AgentCore update settles after two GetAgentRuntime calls (the test
//! reads until it settled before updating out of band), a foreign lock claim is live for ten
//! minutes, and the one wait meant to time out waits on a rollout that never finishes. The
//! ECS model itself is checked through the SDK alone
//! (`testbed_circuit_breaker_without_rollback_leaves_the_failed_deployment_primary`).
//!
//! Each test makes its own copy of the example (a project name of its own), so they run in
//! parallel with each other and with the rest of the suite. Runs are bounded (`RUN_TIMEOUT`);
//! the reproduction with five deploys is behind the `slow` feature.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ecs::types::{DeploymentCircuitBreaker, DeploymentConfiguration};
use deployer_tests::{Deployer, RunOutput, Testbed, testbed, unique_name};
use serde_json::Value;

use crate::monorepo::{Monorepo, monorepo, service, ssm};

/// Bound of one `deploy`, `wait` or `rollback` run (a build, a rollout of a few polls).
const RUN_TIMEOUT: Duration = Duration::from_secs(240);
/// Bound of a read-only run (`plan`).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const FAIL_TAG_KEY: &str = "deployer-testbed:rollout";
const APP_CODE: &str = "backend/src/apis/app_api/main.py";
const RENDER_CODE: &str = "backend/src/lambdas/artifact_render/handler.py";

// ---------------------------------------------------------------------------------------------
// Running deployer on the example

/// `deployer <args>` in the example, bounded by `timeout`.
fn run_for(mono: &Monorepo, bed: &Testbed, timeout: Duration, args: &[&str]) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(mono.repo.path())
        .bed(bed)
        .env("ACME_REGISTRY", &bed.registry().host)
        .timeout(timeout)
        .args(args);
    for (key, value) in &bed.builder().env {
        deployer = deployer.env(key, value);
    }
    deployer.run()
}

/// `deployer deploy --json --builder <bed's> <args>`, bounded.
fn deploy(mono: &Monorepo, bed: &Testbed, args: &[&str]) -> RunOutput {
    let mut all = vec!["deploy", "--json", "--builder", &bed.builder().name];
    all.extend_from_slice(args);
    run_for(mono, bed, RUN_TIMEOUT, &all)
}

/// The report of `name` in a `--json` run, cloned.
fn report(out: &RunOutput, name: &str) -> Value {
    service(&out.json(), name).clone()
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

/// Panics, with `why` and both streams, unless the run exited with `code`.
fn expect_code(out: &RunOutput, code: i32, why: &str) {
    assert_eq!(
        out.code,
        Some(code),
        "{why}: deployer exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
}

/// Inserts `lines` at the top of `[services.<name>]` in the manifest and commits.
fn service_settings(mono: &Monorepo, name: &str, lines: &str) {
    let header = format!("[services.{name}]\n");
    let manifest = mono.repo.read("deployer.toml");
    assert!(manifest.contains(&header), "no {header} in the manifest");
    let manifest = manifest.replacen(&header, &format!("{header}{lines}"), 1);
    mono.repo.write("deployer.toml", manifest);
    mono.repo.commit(&format!("{name}: {}", lines.trim()));
}

/// Replaces artifact-render's smoke check (the example's only `smoke = ` line) and drops its
/// `rollback_on_smoke_failure`; commits.
fn set_render_smoke(mono: &Monorepo, smoke: &str) {
    let manifest = mono.repo.read("deployer.toml");
    let start = manifest
        .find("\nsmoke = {")
        .expect("artifact-render's smoke check in the example")
        + 1;
    let end = start + manifest[start..].find('\n').unwrap();
    let manifest = format!("{}{smoke}{}", &manifest[..start], &manifest[end..])
        .replace("rollback_on_smoke_failure = true\n", "");
    mono.repo.write("deployer.toml", manifest);
    mono.repo
        .commit("artifact-render: another smoke check, no rollback");
}

/// Writes `contents` to `path` and commits: a new release of the service built from it.
fn change(mono: &Monorepo, path: &str, contents: &str) {
    mono.repo.write(path, contents);
    mono.repo.commit(&format!("change {path}"));
}

fn app_code(version: u32) -> String {
    format!("def health():\n    return {{'status': 'ok', 'v': {version}}}\n")
}

// ---------------------------------------------------------------------------------------------
// What the records say

fn tag_parameter(mono: &Monorepo, name: &str) -> String {
    format!("/{}/{name}/image-tag", mono.project)
}

fn state_parameter(mono: &Monorepo, name: &str) -> String {
    format!("/{}/{name}/deploy-state", mono.project)
}

/// `<prefix>/<name>/image-tag`, or `None`.
async fn image_tag(bed: &Testbed, mono: &Monorepo, name: &str) -> Option<String> {
    ssm(bed, &tag_parameter(mono, name)).await
}

/// `<prefix>/<name>/deploy-state` parsed (`Value::Null` when absent).
async fn deploy_state(bed: &Testbed, mono: &Monorepo, name: &str) -> Value {
    match ssm(bed, &state_parameter(mono, name)).await {
        Some(raw) => serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("deploy-state of {name} is not JSON ({e}): {raw}")),
        None => Value::Null,
    }
}

/// `deploy-state.current` (`Value::Null` when none).
async fn current(bed: &Testbed, mono: &Monorepo, name: &str) -> Value {
    deploy_state(bed, mono, name).await["current"].clone()
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// What moto and the registry hold

/// The digest the registry's `<repository>:<reference>` points at, or `None`.
fn registry_digest(bed: &Testbed, repository: &str, reference: &str) -> Option<String> {
    bed.registry()
        .head_manifest(repository, reference)
        .header("docker-content-digest")
        .map(str::to_owned)
}

async fn ecs(bed: &Testbed) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&bed.sdk_config().await)
}

/// The example's `app-api` service (one DescribeServices: the test bed moves a rollout in
/// progress one step; tests call it only where that cannot change the verdict).
async fn app_api(ecs: &aws_sdk_ecs::Client, mono: &Monorepo) -> aws_sdk_ecs::types::Service {
    ecs.describe_services()
        .cluster(&mono.project)
        .services("app-api")
        .send()
        .await
        .unwrap()
        .services()
        .first()
        .cloned()
        .expect("the example's app-api service")
}

fn primary(service: &aws_sdk_ecs::types::Service) -> aws_sdk_ecs::types::Deployment {
    service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .cloned()
        .unwrap_or_else(|| panic!("no PRIMARY deployment: {service:?}"))
}

fn rollout_state(deployment: &aws_sdk_ecs::types::Deployment) -> &str {
    deployment.rollout_state().map_or("none", |s| s.as_str())
}

/// The image of container `app` in task definition `arn`.
async fn app_image(ecs: &aws_sdk_ecs::Client, arn: &str) -> String {
    let described = ecs
        .describe_task_definition()
        .task_definition(arn)
        .send()
        .await
        .unwrap();
    described
        .task_definition()
        .unwrap()
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some("app"))
        .and_then(|c| c.image())
        .unwrap_or_else(|| panic!("no container `app` in {arn}"))
        .to_owned()
}

/// Tags (`Some(value)`) or untags (`None`) the app-api service with `deployer-testbed:rollout`.
async fn rollout_tag(ecs: &aws_sdk_ecs::Client, mono: &Monorepo, value: Option<&str>) {
    let arn = app_api(ecs, mono).await.service_arn().unwrap().to_owned();
    match value {
        Some(value) => {
            ecs.tag_resource()
                .resource_arn(&arn)
                .tags(
                    aws_sdk_ecs::types::Tag::builder()
                        .key(FAIL_TAG_KEY)
                        .value(value)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        None => {
            ecs.untag_resource()
                .resource_arn(&arn)
                .tag_keys(FAIL_TAG_KEY)
                .send()
                .await
                .unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The issue's second reproduction: a failed release gets blessed by a re-run

/// artifact-render (zip, publish + alias) with a smoke check that fails and no rollback: the
/// deploy fails and records nothing; deploying the same release again must fail again (the
/// alias still points at the failed version, but its check never passed), not say `unchanged`
/// and record it. Once the check passes, the same release is verified and `recorded`.
#[tokio::test]
#[cfg_attr(not(feature = "slow"), ignore = "slow: cargo xtask test runs it")]
async fn a_rerun_does_not_record_a_release_whose_smoke_check_failed() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let name = "artifact-render";

    // A good release first (the example's invoke check passes): the records to keep.
    let good = deploy(&mono, bed, &["--service", name]);
    expect_code(&good, 0, "the example's artifact-render deploys");
    let good_tag = text(&report(&good, name)["tag"], "tag").to_owned();
    assert_eq!(
        image_tag(bed, &mono, name).await.as_deref(),
        Some(good_tag.as_str())
    );
    let good_current = current(bed, &mono, name).await;
    assert!(
        good_current.is_object(),
        "deploy-state.current after a good deploy"
    );

    // Each run of the check appends a line to `ran`: whether it ran is seen from outside.
    let ran = std::env::temp_dir().join(unique_name("smoke-ran"));
    let check = |exit: u8| {
        format!(
            r#"smoke = {{ command = ["sh", "-c", "echo ran >> '{}'; exit {exit}"] }}"#,
            ran.display()
        )
    };
    let runs = || {
        std::fs::read_to_string(&ran)
            .unwrap_or_default()
            .lines()
            .count()
    };
    set_render_smoke(&mono, &check(3));
    change(
        &mono,
        RENDER_CODE,
        "def handler(event, context):\n    return {\"rendered\": \"v2\"}\n",
    );

    let failed = deploy(&mono, bed, &["--service", name]);
    expect_code(&failed, 1, "the smoke check fails");
    let failed_report = report(&failed, name);
    assert_eq!(failed_report["action"], "failed", "{failed_report}");
    assert_eq!(failed_report["smoke"]["ok"], false, "{failed_report}");
    assert_eq!(runs(), 1, "the check ran once");
    let bad_tag = text(&failed_report["tag"], "tag").to_owned();
    assert_ne!(bad_tag, good_tag, "the change makes a new release");
    assert_eq!(
        image_tag(bed, &mono, name).await.as_deref(),
        Some(good_tag.as_str()),
        "nothing recorded for a release whose smoke check failed"
    );
    assert_eq!(current(bed, &mono, name).await, good_current);

    // The CI retry: same code, same failing check.
    let again = deploy(&mono, bed, &["--service", name]);
    let recorded = image_tag(bed, &mono, name).await;
    assert_eq!(
        again.code,
        Some(1),
        "a re-run of a release whose smoke check failed must fail again (or re-run the check); \
         it exited {:?} with action {}, and image-tag is now {recorded:?} (the failed release is \
         {bad_tag})\n--- stdout\n{}\n--- stderr\n{}",
        again.code,
        service(&again.json(), name)["action"],
        again.stdout,
        again.stderr
    );
    assert_eq!(report(&again, name)["action"], "failed");
    assert_eq!(
        recorded.as_deref(),
        Some(good_tag.as_str()),
        "image-tag still names the good release"
    );
    assert_eq!(
        current(bed, &mono, name).await,
        good_current,
        "deploy-state.current still names the good release"
    );

    // The cause fixed: the service already runs the release; it is checked, then recorded.
    let runs_before = runs();
    set_render_smoke(&mono, &check(0));
    let fixed = deploy(&mono, bed, &["--service", name]);
    expect_code(&fixed, 0, "the check passes now");
    let fixed_report = report(&fixed, name);
    assert_eq!(fixed_report["action"], "recorded", "{fixed_report}");
    assert_eq!(fixed_report["tag"], bad_tag.as_str());
    assert_eq!(
        runs(),
        runs_before + 1,
        "the check ran again before recording"
    );
    assert_ne!(fixed_report["smoke"]["ok"], false, "{fixed_report}");
    assert_eq!(image_tag(bed, &mono, name).await, Some(bad_tag.clone()));
    assert_eq!(current(bed, &mono, name).await["tag"], bad_tag.as_str());
}

// ---------------------------------------------------------------------------------------------
// Item 2: ECS, circuit breaker without rollback

/// With the circuit breaker's rollback off, a failed rollout leaves its deployment PRIMARY with
/// `rolloutState = FAILED` on the new task definition: the service looks settled on the new
/// image. The deploy fails; a re-run of the same release must fail again, not call it
/// `unchanged` and record it. Once the cause is gone (the service untagged), a deploy rolls that
/// image out again (`updated`) and records it.
#[tokio::test]
async fn ecs_a_failed_deployment_left_primary_is_not_recorded_by_a_rerun() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    service_settings(&mono, "app-api", "poll_interval = \"1s\"\n");
    let ecs = ecs(bed).await;
    let repository = format!("{}/app-api", mono.project);
    ecs.update_service()
        .cluster(&mono.project)
        .service("app-api")
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .deployment_circuit_breaker(
                    DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(false)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    let base = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(&base, 0, "the example's app-api deploys");
    let base_tag = text(&report(&base, "app-api")["tag"], "tag").to_owned();

    rollout_tag(&ecs, &mono, Some("fail")).await;
    change(&mono, APP_CODE, &app_code(2));
    let failed = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(&failed, 1, "the rollout fails");
    let new_tag = text(&report(&failed, "app-api")["tag"], "tag").to_owned();
    assert_ne!(new_tag, base_tag);
    let new_digest = registry_digest(bed, &repository, &new_tag).expect("the new image was pushed");
    // What ECS leaves without rollback (the test bed's model is checked by
    // `testbed_circuit_breaker_without_rollback_leaves_the_failed_deployment_primary`): the
    // failed deployment PRIMARY on the new task definition.
    let failed_primary = primary(&app_api(&ecs, &mono).await);
    assert_eq!(
        image_tag(bed, &mono, "app-api").await,
        Some(base_tag.clone())
    );

    // The CI retry.
    let again = deploy(&mono, bed, &["--service", "app-api"]);
    let recorded = image_tag(bed, &mono, "app-api").await;
    assert_eq!(
        again.code,
        Some(1),
        "a re-run over a PRIMARY deployment that FAILED must fail again; it exited {:?} with \
         action {}, and image-tag is now {recorded:?} (the failed release is {new_tag})\n\
         --- stdout\n{}\n--- stderr\n{}",
        again.code,
        service(&again.json(), "app-api")["action"],
        again.stdout,
        again.stderr
    );
    assert_ne!(recorded.as_deref(), Some(new_tag.as_str()));
    assert_eq!(recorded, Some(base_tag.clone()));

    // The cause fixed: a new deployment of that same image, then recorded.
    rollout_tag(&ecs, &mono, None).await;
    let fixed = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(
        &fixed,
        0,
        "the rollout succeeds once the service is untagged",
    );
    let fixed_report = report(&fixed, "app-api");
    assert_eq!(fixed_report["action"], "updated", "{fixed_report}");
    assert_eq!(
        image_tag(bed, &mono, "app-api").await,
        Some(new_tag.clone())
    );
    let live = app_api(&ecs, &mono).await;
    let now_primary = primary(&live);
    assert_eq!(rollout_state(&now_primary), "COMPLETED", "{live:?}");
    assert_ne!(now_primary.id(), failed_primary.id(), "a new deployment");
    assert!(
        app_image(&ecs, now_primary.task_definition().unwrap())
            .await
            .ends_with(&new_digest)
    );
}

/// The test bed's model of ECS's circuit breaker (`xtask/testbed/patches/ecs.py`), straight
/// through the SDK: with `rollback = false` the failed deployment stays PRIMARY and FAILED, the
/// deployment it replaced stays listed, the service keeps the new task definition, nothing
/// rolls back, and a later forced UpdateService starts a deployment that completes; without a
/// deployment configuration (what moto's CreateService leaves) the breaker rolls back as before.
#[tokio::test]
async fn testbed_circuit_breaker_without_rollback_leaves_the_failed_deployment_primary() {
    use aws_sdk_ecs::types::{ContainerDefinition, Tag};
    let Some(bed) = testbed!(moto) else { return };
    let ecs = ecs(bed).await;
    let cluster = unique_name("breaker");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    let register = |image: &'static str| {
        ecs.register_task_definition()
            .family(&cluster)
            .container_definitions(
                ContainerDefinition::builder()
                    .name("app")
                    .image(image)
                    .memory(128)
                    .build(),
            )
            .send()
    };
    let old = register("app:1")
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    let new = register("app:2")
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    let describe = |name: &str| {
        let request = ecs.describe_services().cluster(&cluster).services(name);
        async move { request.send().await.unwrap().services()[0].clone() }
    };
    for name in ["no-rollback", "rollback"] {
        let created = ecs
            .create_service()
            .cluster(&cluster)
            .service_name(name)
            .task_definition(&old)
            .desired_count(2)
            .send()
            .await
            .unwrap();
        ecs.tag_resource()
            .resource_arn(created.service().unwrap().service_arn().unwrap())
            .tags(Tag::builder().key(FAIL_TAG_KEY).value("fail").build())
            .send()
            .await
            .unwrap();
    }
    ecs.update_service()
        .cluster(&cluster)
        .service("no-rollback")
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .deployment_circuit_breaker(
                    DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(false)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut started = Vec::new();
    for name in ["no-rollback", "rollback"] {
        let updated = ecs
            .update_service()
            .cluster(&cluster)
            .service(name)
            .task_definition(&new)
            .send()
            .await
            .unwrap();
        started.push(primary(updated.service().unwrap()).id().unwrap().to_owned());
    }

    // Without rollback: tripped on the second DescribeServices, then nothing moves.
    for _ in 0..4 {
        describe("no-rollback").await;
    }
    let service = describe("no-rollback").await;
    let failed = primary(&service);
    assert_eq!(failed.id(), Some(started[0].as_str()), "{service:?}");
    assert_eq!(rollout_state(&failed), "FAILED", "{service:?}");
    assert_eq!(failed.task_definition(), Some(new.as_str()));
    assert_eq!(service.task_definition(), Some(new.as_str()));
    let others: Vec<_> = service
        .deployments()
        .iter()
        .filter(|d| d.status() != Some("PRIMARY"))
        .map(|d| {
            (
                d.status().unwrap_or_default(),
                d.task_definition().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(others, [("ACTIVE", old.as_str())], "{service:?}");

    // With rollback (no deployment configuration): the breaker rolls back to the old revision.
    for _ in 0..2 {
        describe("rollback").await;
    }
    let service = describe("rollback").await;
    let rolled_back = primary(&service);
    assert_ne!(rolled_back.id(), Some(started[1].as_str()), "{service:?}");
    assert_eq!(rolled_back.task_definition(), Some(old.as_str()));
    assert_eq!(service.task_definition(), Some(old.as_str()));

    // The cause gone, a forced UpdateService starts a new deployment that completes.
    let arn = service_arn(&ecs, &cluster, "no-rollback").await;
    ecs.untag_resource()
        .resource_arn(&arn)
        .tag_keys(FAIL_TAG_KEY)
        .send()
        .await
        .unwrap();
    ecs.update_service()
        .cluster(&cluster)
        .service("no-rollback")
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
    describe("no-rollback").await;
    let service = describe("no-rollback").await;
    let now = primary(&service);
    assert_ne!(now.id(), Some(started[0].as_str()));
    assert_eq!(rollout_state(&now), "COMPLETED", "{service:?}");
    assert_eq!(now.task_definition(), Some(new.as_str()));
    assert_eq!(service.deployments().len(), 1, "{service:?}");
}

async fn service_arn(ecs: &aws_sdk_ecs::Client, cluster: &str, name: &str) -> String {
    ecs.describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .unwrap()
        .services()[0]
        .service_arn()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Item 3: rollback after a failed smoke check on the first deploy

/// app-api runs `<registry>/<project>/app-api:bootstrap` (a tag reference, what IaC registers)
/// and has no deploy-state yet. Its first deploy rolls out, fails its smoke check, and with
/// `rollback_on_smoke_failure` must put the bootstrap image back.
#[tokio::test]
async fn smoke_rollback_on_a_first_deploy_returns_to_the_bootstrap_image() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    service_settings(
        &mono,
        "app-api",
        "poll_interval = \"1s\"\nsmoke = { command = [\"sh\", \"-c\", \"exit 3\"] }\nrollback_on_smoke_failure = true\n",
    );
    let ecs = ecs(bed).await;
    let repository = format!("{}/app-api", mono.project);
    let bootstrap = bed.registry().image(&repository, "bootstrap");
    let before = app_api(&ecs, &mono).await;
    assert_eq!(
        app_image(&ecs, before.task_definition().unwrap()).await,
        bootstrap,
        "the example's infrastructure runs the bootstrap tag"
    );
    // The bootstrap reference, or (if the registry has it) that image pinned by digest.
    let mut accepted = vec![bootstrap.clone()];
    if let Some(digest) = registry_digest(bed, &repository, "bootstrap") {
        accepted.push(format!("{}/{repository}@{digest}", bed.registry().host));
    }

    let out = deploy(&mono, bed, &["--service", "app-api"]);
    let live = app_api(&ecs, &mono).await;
    let live_image = app_image(&ecs, live.task_definition().unwrap()).await;
    assert!(
        accepted.contains(&live_image),
        "after the failed smoke check of its first deploy, app-api must run the bootstrap image \
         again ({accepted:?}), but it runs {live_image}\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        primary(&live).task_definition(),
        live.task_definition(),
        "the rollback is the PRIMARY deployment"
    );
    expect_code(&out, 1, "the smoke check fails");
    let app = report(&out, "app-api");
    assert_eq!(app["action"], "failed", "{app}");
    assert_eq!(app["smoke"]["ok"], false, "{app}");
    let rolled_back_to = text(&app["smoke"]["rolled_back_to"], "smoke.rolled_back_to");
    assert!(
        accepted.iter().any(|a| a == rolled_back_to),
        "smoke.rolled_back_to names the bootstrap image: {app}"
    );
    assert_eq!(
        image_tag(bed, &mono, "app-api").await,
        None,
        "nothing recorded"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 4: force_new_deployment (a task definition on the mutable tag `…:bootstrap`)

/// The example with app-api on `force_new_deployment` (its task definition runs
/// `…/app-api:bootstrap`), and the registry repository of app-api.
fn force_example(bed: &Testbed) -> (Monorepo, String) {
    let mono = monorepo(bed);
    service_settings(
        &mono,
        "app-api",
        "force_new_deployment = true\npoll_interval = \"1s\"\n",
    );
    let repository = format!("{}/app-api", mono.project);
    (mono, repository)
}

/// (a) A forced rollout that fails (the circuit breaker rolls back, onto the same task
/// definition, which pulls `bootstrap` again): `bootstrap` must point where it pointed before
/// the deploy, not at the image that failed.
#[tokio::test]
async fn force_new_deployment_a_failed_rollout_moves_the_mutable_tag_back() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let (mono, repository) = force_example(bed);
    let ecs = ecs(bed).await;

    let first = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(&first, 0, "the first forced deploy");
    let first_tag = text(&report(&first, "app-api")["tag"], "tag").to_owned();
    let d1 = registry_digest(bed, &repository, &first_tag).expect("the first image");
    assert_eq!(
        registry_digest(bed, &repository, "bootstrap"),
        Some(d1.clone())
    );

    rollout_tag(&ecs, &mono, Some("fail")).await;
    change(&mono, APP_CODE, &app_code(2));
    let failed = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(&failed, 1, "the forced rollout fails");
    let failed_tag = text(&report(&failed, "app-api")["tag"], "tag").to_owned();
    let d2 = registry_digest(bed, &repository, &failed_tag).expect("the failed image was pushed");
    assert_ne!(d1, d2);
    assert_eq!(
        registry_digest(bed, &repository, "bootstrap"),
        Some(d1),
        "after a failed rollout, `bootstrap` must point at the image it pointed at before the \
         deploy (the first release), not at the failed one ({d2})"
    );
    assert_eq!(image_tag(bed, &mono, "app-api").await, Some(first_tag));
}

/// (b) After two forced deploys (d1, d2), `deployer rollback` moves `bootstrap` back to d1,
/// restarts the service (a new ECS deployment) and records the first tag.
#[tokio::test]
async fn force_new_deployment_rollback_moves_the_mutable_tag_to_the_recorded_digest() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let (mono, repository) = force_example(bed);
    let ecs = ecs(bed).await;

    let first = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(&first, 0, "the first forced deploy");
    let first_tag = text(&report(&first, "app-api")["tag"], "tag").to_owned();
    let d1 = registry_digest(bed, &repository, &first_tag).expect("the first image");
    change(&mono, APP_CODE, &app_code(2));
    let second = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(&second, 0, "the second forced deploy");
    let second_tag = text(&report(&second, "app-api")["tag"], "tag").to_owned();
    let d2 = registry_digest(bed, &repository, &second_tag).expect("the second image");
    assert_ne!(d1, d2);
    assert_eq!(
        registry_digest(bed, &repository, "bootstrap"),
        Some(d2.clone())
    );
    let before = primary(&app_api(&ecs, &mono).await);
    assert_eq!(rollout_state(&before), "COMPLETED");

    let rollback = run_for(
        &mono,
        bed,
        RUN_TIMEOUT,
        &["rollback", "--service", "app-api", "--json"],
    );
    let bootstrap = registry_digest(bed, &repository, "bootstrap");
    let recorded = image_tag(bed, &mono, "app-api").await;
    assert_eq!(
        bootstrap.as_deref(),
        Some(d1.as_str()),
        "`deployer rollback` must point `bootstrap` back at the first release ({d1}); it points \
         at {bootstrap:?} (the second is {d2}), exit {:?}, image-tag {recorded:?}\n\
         --- stdout\n{}\n--- stderr\n{}",
        rollback.code,
        rollback.stdout,
        rollback.stderr
    );
    expect_code(&rollback, 0, "the rollback succeeds");
    assert_eq!(
        recorded,
        Some(first_tag.clone()),
        "image-tag names the first release"
    );
    let after = primary(&app_api(&ecs, &mono).await);
    assert_ne!(
        after.id(),
        before.id(),
        "the rollback started a new ECS deployment (the task definition pulls `bootstrap` again)"
    );
    assert_eq!(
        current(bed, &mono, "app-api").await["tag"],
        first_tag.as_str()
    );
}

/// (c) `deploy --no-wait` of a change moves `bootstrap` to the new digest before restarting
/// (otherwise the restart pulls the old image); `deployer wait` then records the new tag.
#[tokio::test]
async fn force_new_deployment_no_wait_moves_the_mutable_tag_before_restarting() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let (mono, repository) = force_example(bed);

    let first = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(&first, 0, "the first forced deploy");
    let first_tag = text(&report(&first, "app-api")["tag"], "tag").to_owned();
    let d1 = registry_digest(bed, &repository, &first_tag).expect("the first image");

    change(&mono, APP_CODE, &app_code(3));
    let started = deploy(&mono, bed, &["--service", "app-api", "--no-wait"]);
    expect_code(&started, 0, "--no-wait starts the rollout");
    let started_report = report(&started, "app-api");
    assert_eq!(started_report["action"], "started", "{started_report}");
    let new_tag = text(&started_report["tag"], "tag").to_owned();
    let d3 = registry_digest(bed, &repository, &new_tag).expect("the new image was pushed");
    assert_ne!(d1, d3);
    assert_eq!(
        registry_digest(bed, &repository, "bootstrap"),
        Some(d3.clone()),
        "`deploy --no-wait` must point `bootstrap` at the new image ({d3}) before the forced \
         deployment pulls it (it still points at the first release {d1})"
    );

    let waited = run_for(
        &mono,
        bed,
        RUN_TIMEOUT,
        &["wait", "--service", "app-api", "--json"],
    );
    expect_code(&waited, 0, "the restarted service settles");
    assert_eq!(image_tag(bed, &mono, "app-api").await, Some(new_tag));
}

/// (d) Right after a successful forced deploy, `plan` says `unchanged` (decided by the deploy
/// recorded, as `deploy` decides it), not `deploy`.
#[tokio::test]
async fn force_new_deployment_plan_after_a_deploy_is_unchanged() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let (mono, _) = force_example(bed);
    let first = deploy(&mono, bed, &["--service", "app-api"]);
    expect_code(&first, 0, "the first forced deploy");
    let plan = run_for(
        &mono,
        bed,
        READ_TIMEOUT,
        &["plan", "--json", "--service", "app-api"],
    );
    expect_code(&plan, 0, "plan");
    let planned = report(&plan, "app-api");
    assert_eq!(
        planned["action"], "unchanged",
        "plan right after a successful deploy of the same release: {planned}"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 6: deploy-state is written only under the lock

/// Another holder's live claim on artifact-render's lock and `--lock-wait 0s`: the deploy fails
/// without ever holding the lock, and must leave deploy-state exactly as it was (it is the
/// holder's to write).
#[tokio::test]
async fn a_deploy_that_never_held_the_lock_writes_no_deploy_state() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let name = "artifact-render";
    let ssm_client = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
    // A real deploy-state, written by deployer itself.
    let good = deploy(&mono, bed, &["--service", name]);
    expect_code(&good, 0, "the example's artifact-render deploys");
    let state_before = ssm(bed, &state_parameter(&mono, name))
        .await
        .expect("deploy-state after a deploy");
    let tag_before = image_tag(bed, &mono, name).await;

    let lock = format!("/{}/{name}/lock", mono.project);
    let claim = format!(
        r#"{{"id":"other","holder":"pid 1 on elsewhere","renewed_at":{},"lease_s":600}}"#,
        epoch_seconds()
    );
    ssm_client
        .put_parameter()
        .name(&lock)
        .value(&claim)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    change(
        &mono,
        RENDER_CODE,
        "def handler(event, context):\n    return {\"rendered\": \"v2\"}\n",
    );

    let out = deploy(&mono, bed, &["--lock-wait", "0s", "--service", name]);
    expect_code(&out, 1, "the lock is held by another deploy");
    let state_after = ssm(bed, &state_parameter(&mono, name)).await;
    assert_eq!(
        state_after.as_deref(),
        Some(state_before.as_str()),
        "a deploy that never held the lock must leave deploy-state byte-for-byte unchanged"
    );
    assert_eq!(image_tag(bed, &mono, name).await, tag_before);
    assert_eq!(
        ssm(bed, &lock).await.as_deref(),
        Some(claim.as_str()),
        "the other holder's claim is left alone"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 8: `deployer wait`

/// (a) A `--no-wait` rollout that does not finish within `timeout` (the service's new tasks never
/// all start): `deployer wait` times out (exit 1) but the rollout may still finish, so it stays
/// pending in deploy-state, naming the same deployment.
#[tokio::test]
async fn wait_that_times_out_keeps_the_rollout_pending() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    service_settings(
        &mono,
        "app-api",
        "timeout = \"6s\"\npoll_interval = \"1s\"\n",
    );
    let ecs = ecs(bed).await;
    rollout_tag(&ecs, &mono, Some("stuck")).await;

    let started = deploy(&mono, bed, &["--service", "app-api", "--no-wait"]);
    expect_code(&started, 0, "--no-wait starts the rollout");
    let started_report = report(&started, "app-api");
    assert_eq!(started_report["action"], "started", "{started_report}");
    let deployment = text(&started_report["ids"]["deployment"], "ids.deployment").to_owned();
    let pending = deploy_state(bed, &mono, "app-api").await["pending"].clone();
    assert!(
        pending.is_object() && pending.to_string().contains(&deployment),
        "deploy-state.pending names deployment {deployment}: {pending}"
    );

    let waited = run_for(
        &mono,
        bed,
        RUN_TIMEOUT,
        &["wait", "--service", "app-api", "--json"],
    );
    expect_code(&waited, 1, "the wait times out");
    let message = text(
        &report(&waited, "app-api")["error"]["message"],
        "error.message",
    )
    .to_owned();
    assert!(message.contains("timed out"), "{message}");
    let state = deploy_state(bed, &mono, "app-api").await;
    assert!(
        state["pending"].is_object() && state["pending"].to_string().contains(&deployment),
        "after a wait that timed out the rollout may still finish: deploy-state.pending must \
         still name deployment {deployment}, but deploy-state is {state}"
    );
    assert_eq!(image_tag(bed, &mono, "app-api").await, None);
}

/// (b) `deploy --no-wait` rolls the AgentCore runtime to image A; before `deployer wait` runs,
/// someone else updates the runtime to image B (a later version). The runtime is READY at a
/// version after A's, but runs B: `wait` must fail naming what the runtime runs, and never
/// record A.
#[tokio::test]
async fn wait_fails_when_the_agentcore_runtime_runs_another_image() {
    use aws_sdk_bedrockagentcorecontrol::types::{
        AgentRuntimeArtifact, AgentRuntimeStatus, ContainerConfiguration,
    };
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let name = "inference-api";
    let agentcore = aws_sdk_bedrockagentcorecontrol::Client::new(&bed.sdk_config().await);
    let runtime_id = ssm(bed, &format!("/{}/{name}/runtime-id", mono.project))
        .await
        .expect("the runtime id the infrastructure wrote");

    let started = deploy(&mono, bed, &["--service", name, "--no-wait"]);
    expect_code(&started, 0, "--no-wait starts the update");
    let started_report = report(&started, name);
    assert_eq!(started_report["action"], "started", "{started_report}");
    let tag_a = text(&started_report["tag"], "tag").to_owned();
    let image_a = text(&started_report["new_artifact"], "new_artifact").to_owned();

    // Out of band: let A's update settle (the bed settles after two reads), then update the
    // runtime to B with the rest of its configuration as it is.
    let mut live = None;
    for _ in 0..10 {
        let got = agentcore
            .get_agent_runtime()
            .agent_runtime_id(&runtime_id)
            .send()
            .await
            .unwrap();
        if !matches!(
            got.status(),
            AgentRuntimeStatus::Creating | AgentRuntimeStatus::Updating
        ) {
            live = Some(got);
            break;
        }
    }
    let live = live.expect("the runtime settles within 10 reads");
    assert_eq!(live.status(), &AgentRuntimeStatus::Ready);
    let version_a = live.agent_runtime_version().to_owned();
    let repository_uri = image_a.split('@').next().unwrap().to_owned();
    let image_b = format!("{repository_uri}@sha256:{}", "b".repeat(64));
    let updated = agentcore
        .update_agent_runtime()
        .agent_runtime_id(&runtime_id)
        .agent_runtime_artifact(AgentRuntimeArtifact::ContainerConfiguration(
            ContainerConfiguration::builder()
                .container_uri(&image_b)
                .build()
                .unwrap(),
        ))
        .role_arn(live.role_arn())
        .set_network_configuration(live.network_configuration().cloned())
        .set_description(live.description().map(str::to_owned))
        .set_authorizer_configuration(live.authorizer_configuration().cloned())
        .set_request_header_configuration(live.request_header_configuration().cloned())
        .set_protocol_configuration(live.protocol_configuration().cloned())
        .set_lifecycle_configuration(live.lifecycle_configuration().cloned())
        .set_metadata_configuration(live.metadata_configuration().cloned())
        .set_environment_variables(live.environment_variables().cloned())
        .set_filesystem_configurations(live.filesystem_configurations.clone())
        .set_capacity_provider_configuration(live.capacity_provider_configuration().cloned())
        .set_platform_version(live.platform_version().map(str::to_owned))
        .set_allowed_ports(live.allowed_ports.clone())
        .send()
        .await
        .unwrap();
    assert_ne!(
        updated.agent_runtime_version(),
        version_a,
        "B is a new version"
    );

    let waited = run_for(
        &mono,
        bed,
        RUN_TIMEOUT,
        &["wait", "--service", name, "--json"],
    );
    let recorded = image_tag(bed, &mono, name).await;
    assert_eq!(
        waited.code,
        Some(1),
        "`deployer wait` of A ({image_a}) on a runtime that now runs B ({image_b}) must fail; it \
         exited {:?} and image-tag is now {recorded:?} (A is {tag_a})\n--- stdout\n{}\n--- stderr\n{}",
        waited.code,
        waited.stdout,
        waited.stderr
    );
    let message = text(&report(&waited, name)["error"]["message"], "error.message").to_owned();
    let version_b = updated.agent_runtime_version();
    assert!(
        message.contains(&"b".repeat(12)) || message.contains(&format!("version {version_b}")),
        "the error names what the runtime runs instead ({image_b}, version {version_b}): {message}"
    );
    assert_ne!(
        recorded.as_deref(),
        Some(tag_a.as_str()),
        "A is not recorded"
    );
    assert_ne!(
        current(bed, &mono, name).await["tag"],
        tag_a.as_str(),
        "deploy-state.current does not name A"
    );
}
