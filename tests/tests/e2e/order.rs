//! Deploy order (`depends_on`), the third seed's pipeline, through the real binary on the example
//! monorepo: app-api (ECS) calls the embeddings model (a SageMaker endpoint) and depends on it,
//! with `restart_on_dependency_change`. Builds run at once; a change to the model updates the
//! endpoint, then the service (checked from the recorded start and end times, not assumed); a
//! change elsewhere leaves the endpoint untouched; a failed endpoint update skips the service.

use std::process::Command;

use crate::monorepo::{Monorepo, monorepo, service, ssm};
use deployer_tests::{RunOutput, Testbed, testbed};

const BOTH: [&str; 4] = ["--service", "app-api", "--service", "embeddings"];

fn deploy(bed: &Testbed, mono: &Monorepo) -> RunOutput {
    mono.deploy(bed, &BOTH)
}

/// The endpoint's current config, through boto3 (this binary does not link the SageMaker SDK).
fn endpoint_config(bed: &Testbed, mono: &Monorepo) -> String {
    sagemaker(
        bed,
        &format!(
            "print(c.describe_endpoint(EndpointName='{}-embeddings')['EndpointConfigName'])",
            mono.project
        ),
    )
}

fn sagemaker(bed: &Testbed, code: &str) -> String {
    let mut command = Command::new(&bed.moto().python);
    bed.apply_env(&mut command);
    let script = format!(
        "import boto3, os\nc = boto3.client('sagemaker', region_name=os.environ['AWS_REGION'])\n{code}\n"
    );
    let output = command.args(["-c", &script]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The dependant's rollover started only after the dependency finished.
fn assert_after(dependant: &serde_json::Value, dependency: &serde_json::Value) {
    let started = dependant["timeline"]["rollover_started"].as_u64().unwrap();
    let finished = dependency["timeline"]["finished"].as_u64().unwrap();
    assert!(
        started >= finished,
        "{} rolled at {started} ms, before {} finished at {finished} ms",
        dependant["service"],
        dependency["service"]
    );
}

#[tokio::test]
async fn the_endpoint_rolls_first_then_the_services_that_call_it() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);

    // plan shows the order as stages
    let plan = mono.run(
        bed,
        &[
            "plan",
            "--json",
            "--service",
            "app-api",
            "--service",
            "embeddings",
        ],
    );
    plan.assert_success();
    assert_eq!(
        plan.json()["stages"],
        serde_json::json!([["embeddings"], ["app-api"]])
    );

    // First deploy: both change; the endpoint's rollout finishes before app-api's begins.
    let first = deploy(bed, &mono);
    first.assert_success();
    let json = first.json();
    let (app, model) = (service(&json, "app-api"), service(&json, "embeddings"));
    assert_eq!(
        (model["action"].as_str(), app["action"].as_str()),
        (Some("updated"), Some("updated"))
    );
    assert_eq!(
        (model["stage"].as_u64(), app["stage"].as_u64()),
        (Some(0), Some(1))
    );
    assert_after(app, model);
    let config = endpoint_config(bed, &mono);
    assert_eq!(config, model["ids"]["endpoint_config"].as_str().unwrap());

    // A change elsewhere (app-api only): the endpoint is untouched, app-api rolls.
    mono.repo.write(
        "backend/src/apis/app_api/main.py",
        "def health():\n    return {'status': 'ok', 'v': 2}\n",
    );
    let second = deploy(bed, &mono);
    second.assert_success();
    let json = second.json();
    assert_eq!(service(&json, "embeddings")["action"], "unchanged");
    assert_eq!(service(&json, "app-api")["action"], "updated");
    assert_eq!(
        endpoint_config(bed, &mono),
        config,
        "the endpoint kept its config"
    );

    // A change to the model: the endpoint updates, then app-api restarts on the image it runs.
    mono.repo.write(
        "backend/src/models/embeddings/model.py",
        "def embed(text):\n    return [1.0]\n",
    );
    let plan = mono.run(
        bed,
        &[
            "plan",
            "--json",
            "--service",
            "app-api",
            "--service",
            "embeddings",
        ],
    );
    assert_eq!(service(&plan.json(), "app-api")["action"], "restart");
    let third = deploy(bed, &mono);
    third.assert_success();
    let json = third.json();
    let (app, model) = (service(&json, "app-api"), service(&json, "embeddings"));
    assert_eq!(
        (model["action"].as_str(), app["action"].as_str()),
        (Some("updated"), Some("restarted"))
    );
    assert_after(app, model);
    assert_ne!(endpoint_config(bed, &mono), config, "a new endpoint config");
    assert_eq!(
        app["ids"]["task_definition"],
        service(&second.json(), "app-api")["ids"]["task_definition"],
        "a restart registers no revision"
    );

    // A failed endpoint update: app-api is skipped, untouched, exit 1 — its image still built.
    let endpoint_arn = sagemaker(
        bed,
        &format!(
            "print(c.describe_endpoint(EndpointName='{}-embeddings')['EndpointArn'])",
            mono.project
        ),
    );
    sagemaker(
        bed,
        &format!(
            "c.add_tags(ResourceArn='{endpoint_arn}', Tags=[{{'Key': 'deployer-testbed:update', 'Value': 'fail'}}])"
        ),
    );
    let app_tag = ssm(bed, &format!("/{}/app-api/image-tag", mono.project)).await;
    mono.repo.write(
        "backend/src/models/embeddings/model.py",
        "def embed(text):\n    return [2.0]\n",
    );
    mono.repo.write(
        "backend/src/apis/app_api/main.py",
        "def health():\n    return {'status': 'ok', 'v': 3}\n",
    );
    let failed = deploy(bed, &mono);
    failed.assert_code(1);
    let json = failed.json();
    assert_eq!(service(&json, "embeddings")["action"], "failed");
    let app = service(&json, "app-api");
    assert_eq!(app["action"], "skipped", "{app}");
    assert!(
        app["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`embeddings`"),
        "{app}"
    );
    assert_eq!(app["built"], true, "builds still run at once");
    assert_eq!(
        ssm(bed, &format!("/{}/app-api/image-tag", mono.project)).await,
        app_tag
    );
}
