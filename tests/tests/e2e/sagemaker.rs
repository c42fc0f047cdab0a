//! SageMaker endpoints through the real `deployer` binary against moto.
//!
//! moto implements models, endpoint configs and endpoints but not `UpdateEndpoint`; the test
//! bed's SageMaker patch (`xtask/testbed/patches/sagemaker.py`, see its docstring) adds it: the
//! endpoint is `Updating` for two `DescribeEndpoint` calls, then `InService` on the new config;
//! an endpoint tagged `deployer-testbed:update = fail` ends `Failed` with a `FailureReason`, one
//! tagged `= rollback` ends `InService` on its *old* config (an automatic rollback). The patch
//! also makes models and endpoint configs immutable (a second create of a name fails, as on AWS)
//! and keeps every member they were created with. No container runs.
//!
//! The fixtures are created with boto3 (the bed's Python), so that this binary does not link the
//! SageMaker SDK.

use std::io::Write;
use std::process::{Command, Stdio};

use deployer_tests::{Deployer, FixtureRepo, RunOutput, Testbed, testbed, unique_name};
use serde_json::{Value, json};

const DOCKERFILE: &str = "FROM scratch\nCOPY model.txt /model.txt\n";
/// An environment value of the live model: it must never appear in deployer's output.
const SECRET: &str = "sk-live-7f3c9a1e55d04b2b";
const UPDATE_TAG: &str = "deployer-testbed:update";

/// Runs SageMaker calls with boto3 against moto, in order; each answer is the response without
/// its metadata, or `{"Error": {"Code", "Message"}}`.
const BOTO: &str = r#"
import json, os, sys
import boto3
client = boto3.client("sagemaker", region_name=os.environ["AWS_REGION"])
out = []
for op, args in json.load(sys.stdin):
    try:
        response = getattr(client, op)(**args)
        response.pop("ResponseMetadata", None)
        out.append(response)
    except client.exceptions.ClientError as error:
        out.append({"Error": error.response["Error"]})
print(json.dumps(out, default=str))
"#;

fn sagemaker(bed: &Testbed, calls: &[(&str, Value)]) -> Vec<Value> {
    let mut command = Command::new(&bed.moto().python);
    bed.apply_env(&mut command);
    let mut child = command
        .args(["-c", BOTO])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(
        &calls
            .iter()
            .map(|(op, args)| json!([op, args]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn call(bed: &Testbed, op: &str, args: Value) -> Value {
    let mut out = sagemaker(bed, &[(op, args)]);
    let answer = out.remove(0);
    assert!(answer.get("Error").is_none(), "{op}: {answer}");
    answer
}

/// `value` without the members SageMaker sets itself (names, ARNs, creation time).
fn without(mut value: Value, members: &[&str]) -> Value {
    let object = value.as_object_mut().unwrap();
    for member in members {
        object.remove(*member);
    }
    value
}

/// An endpoint on a model and config created as infrastructure code would, and a fixture
/// repository whose `inference` service deploys it.
struct Setup {
    name: String,
    repo: FixtureRepo,
    repository: String,
    old_model: String,
    old_config: String,
}

fn setup(bed: &Testbed, endpoint_tags: &[(&str, &str)], manifest_extra: &str) -> Setup {
    let name = unique_name("sm");
    let repository = format!("{name}/inference");
    let old_model = format!("{name}-model-1");
    let old_config = format!("{name}-config-1");
    let image = bed.registry().image(&repository, "bootstrap");
    let mut tags = vec![json!({"Key": "team", "Value": "ml"})];
    tags.extend(
        endpoint_tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v})),
    );
    let answers = sagemaker(
        bed,
        &[
            (
                "create_model",
                json!({
                    "ModelName": old_model,
                    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/inference",
                    "PrimaryContainer": {
                        "Image": image,
                        "Mode": "SingleModel",
                        "ModelDataUrl": "s3://acme-models/inference/model.tar.gz",
                        "ImageConfig": {"RepositoryAccessMode": "Platform"},
                        "Environment": {"API_KEY": SECRET, "LOG_LEVEL": "info"}
                    },
                    "VpcConfig": {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0a", "subnet-0b"]},
                    "EnableNetworkIsolation": true,
                    "Tags": [{"Key": "team", "Value": "ml"}, {"Key": "aws:cloudformation:stack-name", "Value": "infra"}]
                }),
            ),
            (
                "create_endpoint_config",
                json!({
                    "EndpointConfigName": old_config,
                    "ProductionVariants": [{
                        "VariantName": "AllTraffic",
                        "ModelName": old_model,
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 2,
                        "InitialVariantWeight": 1.0,
                        "VolumeSizeInGB": 32,
                        "ContainerStartupHealthCheckTimeoutInSeconds": 600,
                        "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
                    }],
                    "DataCaptureConfig": {
                        "EnableCapture": true,
                        "InitialSamplingPercentage": 10,
                        "DestinationS3Uri": "s3://acme-capture/inference/",
                        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
                    },
                    "KmsKeyId": "alias/inference",
                    "EnableNetworkIsolation": true,
                    "MetricsConfig": {"EnableEnhancedMetrics": true},
                    "Tags": [{"Key": "cost-center", "Value": "42"}]
                }),
            ),
            (
                "create_endpoint",
                json!({"EndpointName": name, "EndpointConfigName": old_config, "Tags": tags}),
            ),
        ],
    );
    for answer in &answers {
        assert!(answer.get("Error").is_none(), "{answer}");
    }

    let repo = FixtureRepo::new();
    repo.write("inference/Dockerfile", DOCKERFILE)
        .write("inference/model.txt", "model v1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{name}"
ssm_prefix = "/{name}"
registry = "{registry}"

[services.inference]
kind = "sagemaker"
dockerfile = "inference/Dockerfile"
context = "inference"
platform = "linux/amd64"
inputs = ["inference/**"]
repository = "{repository}"
endpoint = "{name}"
timeout = "2m"
poll_interval = "1s"
{manifest_extra}"#,
                registry = bed.registry().host,
            ),
        );
    repo.commit("fixture");
    Setup {
        name,
        repo,
        repository,
        old_model,
        old_config,
    }
}

fn deploy(bed: &Testbed, setup: &Setup) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(setup.repo.path())
        .bed(bed)
        .args([
            "deploy",
            "--json",
            "--service",
            "inference",
            "--builder",
            &bed.builder().name,
        ]);
    for (key, value) in &bed.builder().env {
        deployer = deployer.env(key, value);
    }
    let run = deployer.run();
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(SECRET),
            "the environment value leaked on {stream}: {text}"
        );
    }
    run
}

fn inference(json: &Value) -> &Value {
    let services = json["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {json}"));
    assert_eq!(services.len(), 1, "{json}");
    &services[0]
}

fn tags(bed: &Testbed, arn: &Value) -> Vec<Value> {
    let mut tags = call(bed, "list_tags", json!({"ResourceArn": arn}))["Tags"]
        .as_array()
        .unwrap()
        .clone();
    tags.sort_by_key(|tag| tag["Key"].as_str().unwrap().to_owned());
    tags
}

/// The names `op` lists that belong to this test's endpoint (`<endpoint>-…`), sorted.
fn names(bed: &Testbed, setup: &Setup, op: &str, list: &str, key: &str) -> Vec<String> {
    let prefix = format!("{}-", setup.name);
    let answer = call(
        bed,
        op,
        json!({"NameContains": setup.name, "MaxResults": 100}),
    );
    let mut names: Vec<String> = answer[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap().to_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

fn sorted<const N: usize>(names: [String; N]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names
}

#[tokio::test]
async fn deploy_creates_a_model_and_config_that_differ_only_in_the_image() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, &[], "");

    let run = deploy(bed, &setup);
    run.assert_success();
    let json = run.json();
    let report = inference(&json);
    assert_eq!(report["action"], "updated", "{json}");

    // The image is the pushed digest URI.
    let tag = report["tag"].as_str().unwrap();
    let head = bed.registry().head_manifest(&setup.repository, tag);
    assert_eq!(head.status, 200, "{}:{tag} was pushed", setup.repository);
    let digest = head.header("docker-content-digest").unwrap();
    let image = format!("{}/{}@{digest}", bed.registry().host, setup.repository);
    assert_eq!(report["new_artifact"], image.as_str());
    assert_eq!(
        report["old_artifact"],
        bed.registry()
            .image(&setup.repository, "bootstrap")
            .as_str()
    );

    // Named from the endpoint and the tag; the old ones are recorded for a rollback.
    let ids = &report["ids"];
    let new_name = format!("{}-{tag}", setup.name);
    assert_eq!(ids["endpoint"], setup.name.as_str());
    assert_eq!(ids["endpoint_config"], new_name.as_str());
    assert_eq!(ids["models"], new_name.as_str());
    assert_eq!(ids["old_endpoint_config"], setup.old_config.as_str());
    assert_eq!(ids["old_models"], setup.old_model.as_str());

    // The endpoint is InService on the new config...
    let endpoint = call(
        bed,
        "describe_endpoint",
        json!({"EndpointName": setup.name}),
    );
    assert_eq!(endpoint["EndpointStatus"], "InService", "{endpoint}");
    assert_eq!(endpoint["EndpointConfigName"], new_name.as_str());

    // ...whose only difference from the old one is the model...
    let read_only = ["EndpointConfigName", "EndpointConfigArn", "CreationTime"];
    let old_config = call(
        bed,
        "describe_endpoint_config",
        json!({"EndpointConfigName": setup.old_config}),
    );
    let new_config = call(
        bed,
        "describe_endpoint_config",
        json!({"EndpointConfigName": new_name}),
    );
    let mut expected = without(old_config.clone(), &read_only);
    expected["ProductionVariants"][0]["ModelName"] = json!(new_name);
    assert_eq!(without(new_config.clone(), &read_only), expected);

    // ...whose only difference from the old model is the image.
    let read_only = ["ModelName", "ModelArn", "CreationTime"];
    let old_model = call(bed, "describe_model", json!({"ModelName": setup.old_model}));
    let new_model = call(bed, "describe_model", json!({"ModelName": new_name}));
    let mut expected = without(old_model.clone(), &read_only);
    expected["PrimaryContainer"]["Image"] = json!(image);
    assert_eq!(without(new_model.clone(), &read_only), expected);
    assert_eq!(
        new_model["PrimaryContainer"]["Environment"]["API_KEY"],
        SECRET
    );
    assert_eq!(new_model["EnableNetworkIsolation"], true);

    // Tags are copied (not AWS's own) and mark what deployer created.
    let owner = json!({"Key": "deployer:endpoint", "Value": setup.name});
    assert_eq!(
        tags(bed, &new_model["ModelArn"]),
        [owner.clone(), json!({"Key": "team", "Value": "ml"})]
    );
    assert_eq!(
        tags(bed, &new_config["EndpointConfigArn"]),
        [json!({"Key": "cost-center", "Value": "42"}), owner]
    );

    // A second deploy finds the endpoint on the image: unchanged, nothing created.
    let again = deploy(bed, &setup);
    again.assert_success();
    let json = again.json();
    assert_eq!(inference(&json)["action"], "unchanged", "{json}");
    assert_eq!(
        inference(&json)["ids"]["endpoint_config"],
        new_name.as_str()
    );
    assert_eq!(
        names(
            bed,
            &setup,
            "list_endpoint_configs",
            "EndpointConfigs",
            "EndpointConfigName"
        ),
        sorted([setup.old_config.clone(), new_name])
    );
}

/// The update ends `Failed`: exit 1 with the endpoint's reason; the endpoint stays on its old
/// config.
#[tokio::test]
async fn a_failed_update_fails_the_deploy_with_the_reason() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, &[(UPDATE_TAG, "fail")], "");

    let run = deploy(bed, &setup);
    run.assert_code(1);
    let json = run.json();
    let report = inference(&json);
    assert_eq!(report["action"], "failed", "{json}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rollout failed")
            && message.contains("is Failed on endpoint config")
            && message.contains("did not pass the ping health check"),
        "{message}"
    );
    assert_eq!(report["ssm_written"], false);
    let endpoint = call(
        bed,
        "describe_endpoint",
        json!({"EndpointName": setup.name}),
    );
    assert_eq!(endpoint["EndpointStatus"], "Failed");
    assert_eq!(endpoint["EndpointConfigName"], setup.old_config.as_str());
}

/// An automatic rollback ends `InService` on the old config, which looks healthy: still exit 1,
/// with the reason.
#[tokio::test]
async fn an_automatic_rollback_fails_the_deploy_with_the_reason() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(
        bed,
        &[(UPDATE_TAG, "rollback")],
        "[services.inference.blue_green]\ntraffic = \"canary\"\ncanary_percent = 10\nwait_interval = \"5m\"\nrollback_alarms = [\"inference-5xx\"]\n",
    );

    let run = deploy(bed, &setup);
    run.assert_code(1);
    let json = run.json();
    let report = inference(&json);
    assert_eq!(report["action"], "failed", "{json}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "rolled back to endpoint config {}",
            setup.old_config
        )) && message.contains("went into ALARM state"),
        "{message}"
    );
    let endpoint = call(
        bed,
        "describe_endpoint",
        json!({"EndpointName": setup.name}),
    );
    assert_eq!(endpoint["EndpointStatus"], "InService");
    assert_eq!(endpoint["EndpointConfigName"], setup.old_config.as_str());
}

/// Three deploys with `keep = 1`: the previous config and model stay (the rollback target), the
/// infrastructure's own are never touched, the first deploy's are deleted.
#[tokio::test]
async fn older_copies_are_cleaned_up_and_the_previous_one_is_kept() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, &[], "keep = 1\n");
    let mut configs = Vec::new();
    for version in 1..=3 {
        if version > 1 {
            setup
                .repo
                .write("inference/model.txt", format!("model v{version}\n"));
            setup.repo.commit(&format!("v{version}"));
        }
        let run = deploy(bed, &setup);
        run.assert_success();
        let json = run.json();
        assert_eq!(inference(&json)["action"], "updated", "{json}");
        configs.push(
            inference(&json)["ids"]["endpoint_config"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        names(
            bed,
            &setup,
            "list_endpoint_configs",
            "EndpointConfigs",
            "EndpointConfigName"
        ),
        sorted([
            setup.old_config.clone(),
            configs[1].clone(),
            configs[2].clone()
        ])
    );
    // Models are named like their configs.
    assert_eq!(
        names(bed, &setup, "list_models", "Models", "ModelName"),
        sorted([
            setup.old_model.clone(),
            configs[1].clone(),
            configs[2].clone()
        ])
    );
}
