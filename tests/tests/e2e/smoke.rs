//! Smoke checks after a rollout (invoke, HTTP, command; rollback on failure) and lookups
//! (SSM, environment, Terraform state) through the real binary, on the example monorepo.

use serde_json::Value;

use crate::monorepo::{monorepo, service, ssm};
use deployer_tests::testbed;

fn set_smoke(mono: &crate::monorepo::Monorepo, smoke: &str) {
    let manifest = mono.repo.read("deployer.toml");
    let start = manifest
        .find("\nsmoke = {")
        .expect("the example's smoke check")
        + 1;
    let end = start + manifest[start..].find('\n').unwrap();
    let manifest = format!("{}{smoke}{}", &manifest[..start], &manifest[end..]);
    mono.repo.write("deployer.toml", manifest);
}

#[tokio::test]
async fn invoke_smoke_check_passes_then_a_failing_one_rolls_back() {
    let Some(bed) = testbed!(moto, registry) else {
        return;
    };
    let mono = monorepo(bed);
    let lambda = aws_sdk_lambda::Client::new(&bed.sdk_config().await);
    let function = format!("{}-artifact-render", mono.project);

    // The example invokes the deployed zip and expects "rendered": the test bed runs the handler.
    let first = mono.deploy(bed, &["--service", "artifact-render"]);
    first.assert_success();
    let report = service(&first.json(), "artifact-render").clone();
    assert_eq!(report["action"], "updated");
    assert_eq!(report["smoke"]["ok"], true, "{report}");
    assert!(
        report["smoke"]["output"]
            .as_str()
            .unwrap()
            .contains("smoke-test"),
        "{report}"
    );
    let alias = lambda
        .get_alias()
        .function_name(&function)
        .name("live")
        .send()
        .await
        .unwrap();
    let good_version = alias.function_version().unwrap().to_owned();
    let good_tag = report["tag"].as_str().unwrap().to_owned();

    // A handler that no longer renders: the smoke check fails, the alias goes back.
    mono.repo.write(
        "backend/src/lambdas/artifact_render/handler.py",
        "def handler(event, context):\n    return {\"broken\": True}\n",
    );
    let broken = mono.deploy(bed, &["--service", "artifact-render"]);
    broken.assert_code(1);
    let report = service(&broken.json(), "artifact-render").clone();
    assert_eq!(report["action"], "failed");
    assert_eq!(report["smoke"]["ok"], false);
    assert_eq!(
        report["smoke"]["rolled_back_to"],
        service(&first.json(), "artifact-render")["new_artifact"],
        "{report}"
    );
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("smoke check failed")
            && message.contains("rendered")
            && message.contains("rolled back"),
        "{message}"
    );
    let alias = lambda
        .get_alias()
        .function_name(&function)
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(
        alias.function_version(),
        Some(good_version.as_str()),
        "the alias is back on the good version"
    );
    assert_eq!(
        ssm(bed, &format!("/{}/artifact-render/image-tag", mono.project)).await,
        Some(good_tag),
        "nothing recorded for the bad code"
    );
}

#[tokio::test]
async fn http_and_command_smoke_checks_with_redacted_output() {
    let Some(bed) = testbed!(moto, registry) else {
        return;
    };
    let mono = monorepo(bed);
    // HTTP: the test bed's registry answers /v2/ with 200.
    set_smoke(
        &mono,
        &format!(
            "smoke = {{ http = \"{}/v2/\", expect_status = 200, timeout_s = 20 }}",
            bed.registry().url
        ),
    );
    let ok = mono.deploy(bed, &["--service", "artifact-render"]);
    ok.assert_success();
    assert_eq!(service(&ok.json(), "artifact-render")["smoke"]["ok"], true);

    // A command that fails, printing a secret from the environment: the service fails, the
    // output is shown with the secret redacted, and (no rollback asked) nothing is recorded.
    set_smoke(
        &mono,
        "smoke = { command = [\"sh\", \"-c\", \"echo checking $DEPLOYER_SERVICE with $SMOKE_TOKEN; exit 3\"], timeout_s = 20 }",
    );
    let manifest = mono
        .repo
        .read("deployer.toml")
        .replace("rollback_on_smoke_failure = true\n", "");
    mono.repo.write("deployer.toml", manifest);
    mono.repo.write(
        "backend/src/lambdas/artifact_render/handler.py",
        "def handler(event, context):\n    return {\"rendered\": 2}\n",
    );
    let tag_before = ssm(bed, &format!("/{}/artifact-render/image-tag", mono.project)).await;
    let mut deployer = deployer_tests::Deployer::new()
        .current_dir(mono.repo.path())
        .bed(bed)
        .env("ACME_REGISTRY", &bed.registry().host)
        .env("SMOKE_TOKEN", "tok-8c1f2e9a77");
    deployer = deployer.args(["deploy", "--json", "--service", "artifact-render"]);
    let failed = deployer.run();
    failed.assert_code(1);
    let json: Value = failed.json();
    let report = service(&json, "artifact-render");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("exited with 3") && message.contains("checking artifact-render with ***"),
        "{message}"
    );
    assert!(!failed.stdout.contains("tok-8c1f2e9a77") && !failed.stderr.contains("tok-8c1f2e9a77"));
    assert_eq!(
        ssm(bed, &format!("/{}/artifact-render/image-tag", mono.project)).await,
        tag_before
    );
}

#[tokio::test]
async fn lookups_resolve_from_ssm_env_and_terraform_state_or_fail_before_anything_is_built() {
    let Some(bed) = testbed!(moto, registry) else {
        return;
    };
    let mono = monorepo(bed);
    // The function name from a Terraform state file in the repository.
    let function = format!("{}-artifact-render", mono.project);
    mono.repo.write(
        "infra/terraform.tfstate",
        format!("{{\"version\": 4, \"outputs\": {{\"render_function\": {{\"value\": \"{function}\", \"type\": \"string\"}}}}}}"),
    );
    let manifest = mono
        .repo
        .read("deployer.toml")
        .replace(&format!("function = \"{function}\""), "function = { tf_output = { state = \"infra/terraform.tfstate\", output = \"render_function\" } }");
    mono.repo.write("deployer.toml", manifest);
    let plan = mono.run(
        bed,
        &[
            "plan",
            "--json",
            "--service",
            "artifact-render",
            "--service",
            "inference-api",
        ],
    );
    plan.assert_success();
    let json = plan.json();
    let resolved = service(&json, "artifact-render")["resolved"]
        .as_array()
        .unwrap()
        .clone();
    let from_state = resolved
        .iter()
        .find(|r| r["field"] == "function")
        .expect("the function was looked up");
    assert_eq!(from_state["value"], function.as_str());
    assert!(
        from_state["from"]
            .as_str()
            .unwrap()
            .contains("Terraform output render_function")
    );
    let inference = service(&json, "inference-api")["resolved"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        inference
            .iter()
            .any(|r| r["field"] == "runtime_id"
                && r["from"].as_str().unwrap().contains("ssm parameter")),
        "{inference:?}"
    );
    assert!(
        inference
            .iter()
            .any(|r| r["field"] == "registry" && r["value"] == bed.registry().host.as_str()),
        "{inference:?}"
    );

    // A missing parameter: exit 2, naming the lookup, before anything is built or pushed.
    let manifest = mono.repo.read("deployer.toml").replace(
        "/inference-api/runtime-id",
        "/inference-api/no-such-parameter",
    );
    mono.repo.write("deployer.toml", manifest);
    let missing = mono.deploy(bed, &["--service", "inference-api"]);
    missing.assert_code(2);
    let message = missing.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("`runtime_id` from ssm parameter")
            && message.contains("no-such-parameter")
            && message.contains("does not exist"),
        "{message}"
    );
    assert!(
        !missing.stderr.contains(" build "),
        "nothing was built: {}",
        missing.stderr
    );

    // A missing environment variable: the same.
    let unset = deployer_tests::Deployer::new()
        .current_dir(mono.repo.path())
        .bed(bed)
        .args(["plan", "--json", "--service", "inference-api"])
        .run();
    unset.assert_code(2);
    assert!(
        unset.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("environment variable ACME_REGISTRY: the variable is not set")
    );
}
