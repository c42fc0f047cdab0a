//! The example monorepo (`examples/acme`: an ECS service, an AgentCore runtime, a Lambda image
//! function, a Lambda zip function and a SageMaker endpoint) in a fresh git repository, its
//! stand-in infrastructure created in moto under a project name of its own, and what the tests
//! check about it: what each target runs, straight from moto (never through a fault proxy):
//! through the SDK, and for SageMaker through boto3 (the bed's Python), so that the test binary
//! does not link the SageMaker SDK.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_config::SdkConfig;
use serde_json::Value;

use crate::{Deployer, FixtureRepo, Testbed, unique_name};

/// The example's services, in the order the summary lists them.
pub const SERVICES: [&str; 5] = [
    "app-api",
    "artifact-render",
    "embeddings",
    "inference-api",
    "rag-ingestion",
];

/// The example's config services: their live state is the set their marker names
/// (`<prefix>/<service>/config-applied`), and `deployer status` compares every item with it.
pub const CONFIG_SERVICES: [&str; 1] = ["repositories"];

/// The services that ship an image (their SSM tag must name an image in the registry).
pub const IMAGE_SERVICES: [&str; 4] = ["app-api", "embeddings", "inference-api", "rag-ingestion"];

/// Reads the embeddings endpoint with boto3: its status, the image of the model its endpoint
/// config serves, and the image of every model named after the endpoint.
const SAGEMAKER_OBSERVE: &str = r#"
import json, os, sys
import boto3
client = boto3.client("sagemaker", region_name=os.environ["AWS_REGION"])
endpoint = sys.argv[1]

def image(model_name):
    model = client.describe_model(ModelName=model_name)
    container = model.get("PrimaryContainer") or model["Containers"][0]
    return container["Image"]

described = client.describe_endpoint(EndpointName=endpoint)
config = client.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
live = image(config["ProductionVariants"][0]["ModelName"])
models, token = [], None
while True:
    page = client.list_models(**({"NextToken": token} if token else {}))
    models += [m["ModelName"] for m in page["Models"] if m["ModelName"].startswith(endpoint)]
    token = page.get("NextToken")
    if not token:
        break
print(json.dumps({
    "status": described["EndpointStatus"],
    "image": live,
    "models": sorted(image(name) for name in models),
}))
"#;

/// `examples/acme` in this checkout.
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/acme")
}

/// The secret values the example's infrastructure puts into the environment of the ECS task,
/// the AgentCore runtime and the zip function (`SECRET_* = "…"` in `create_resources.py`), and
/// the config service's secret attribute (`webhook_secret` in `config/repositories`).
pub fn fixture_secrets() -> Vec<String> {
    let script = std::fs::read_to_string(example_dir().join("infra/create_resources.py"))
        .expect("cannot read create_resources.py");
    let secrets: Vec<String> = script
        .lines()
        .filter_map(|line| line.strip_prefix("SECRET_"))
        .filter_map(|rest| rest.split_once('=').map(|(_, value)| value.trim()))
        .map(|value| value.trim_matches('"').to_owned())
        .collect();
    assert!(
        secrets.len() >= 2 && secrets.iter().all(|s| s.len() >= 8),
        "create_resources.py defines no SECRET_* values: {secrets:?}"
    );
    let mut secrets = secrets;
    // The config service's secret attribute (`secret = ["webhook_secret"]`).
    let rows = example_dir().join("config/repositories");
    for entry in std::fs::read_dir(&rows).expect("cannot list config/repositories") {
        let text = std::fs::read_to_string(entry.expect("an entry").path()).unwrap_or_default();
        secrets.extend(
            text.lines()
                .filter_map(|line| line.strip_prefix("webhook_secret: "))
                .map(|value| value.trim().to_owned()),
        );
    }
    secrets
}

/// The example in a fresh repository, with its infrastructure in moto.
#[derive(Debug)]
pub struct ExampleRepo {
    /// The repository.
    pub repo: FixtureRepo,
    /// The project name: resource names and the SSM prefix (`/<project>/…`).
    pub project: String,
    /// The AgentCore runtime id.
    pub runtime_id: String,
    registry: String,
}

fn copy_into(repo: &FixtureRepo, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).expect("cannot list the example") {
        let entry = entry.expect("cannot list the example");
        let relative = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if entry.file_name() == "__pycache__" {
                continue;
            }
            copy_into(repo, &entry.path(), &format!("{relative}/"));
        } else {
            repo.write(
                &relative,
                std::fs::read(entry.path()).expect("cannot read the example"),
            );
        }
    }
}

impl ExampleRepo {
    /// Copies the example, creates its infrastructure in moto (directly, not through any
    /// proxy) under a unique project name, and commits.
    pub fn create(bed: &Testbed) -> ExampleRepo {
        let repo = FixtureRepo::new();
        copy_into(&repo, &example_dir(), "");
        let project = unique_name("ex");
        let registry = bed.registry().host.clone();
        let output = Command::new(&bed.moto().python)
            .current_dir(repo.path())
            .args([
                "infra/create_resources.py",
                "--project",
                &project,
                "--registry",
                &registry,
            ])
            .envs(bed.env())
            .output()
            .expect("cannot run create_resources.py");
        assert!(
            output.status.success(),
            "create_resources.py: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let outputs: Value =
            serde_json::from_slice(&output.stdout).expect("create_resources.py prints JSON");
        let runtime_id = outputs["runtime_id"]
            .as_str()
            .expect("create_resources.py prints the runtime id")
            .to_owned();
        // Older copies of the example name the registry and the runtime literally; newer ones
        // look them up (ACME_REGISTRY, an SSM parameter the script wrote).
        let manifest = repo
            .read("deployer.toml")
            .replace("127.0.0.1:5000", &registry)
            .replace("acme_inference-AbCdE12345", &runtime_id)
            .replace("acme", &project);
        repo.write("deployer.toml", manifest);
        repo.commit("example monorepo");
        ExampleRepo {
            repo,
            project,
            runtime_id,
            registry,
        }
    }

    /// The environment a `deployer` run needs besides the bed's: the registry lookup and the
    /// builder's environment.
    pub fn env(&self, bed: &Testbed) -> Vec<(String, String)> {
        let mut env = vec![("ACME_REGISTRY".to_owned(), self.registry.clone())];
        env.extend(
            bed.builder()
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        env
    }

    /// `deployer` in the repository with the bed's environment, its AWS endpoint `endpoint`
    /// (a fault proxy) when given.
    pub fn deployer(&self, bed: &Testbed, endpoint: Option<&str>) -> Deployer {
        let mut deployer = Deployer::new().current_dir(self.repo.path()).bed(bed);
        for (key, value) in self.env(bed) {
            deployer = deployer.env(key, value);
        }
        if let Some(endpoint) = endpoint {
            deployer = deployer.env("AWS_ENDPOINT_URL", endpoint);
        }
        deployer
    }

    /// The same as a [`Command`] (for [`LiveRun`](crate::LiveRun)).
    pub fn command(&self, bed: &Testbed, endpoint: Option<&str>) -> Command {
        let mut command = crate::deployer_command(bed);
        command.current_dir(self.repo.path()).envs(self.env(bed));
        if let Some(endpoint) = endpoint {
            command.env("AWS_ENDPOINT_URL", endpoint);
        }
        command
    }

    /// Changes an input of every service (so that each gets a new tag) and commits.
    pub fn change_all(&self, mark: &str) {
        for (file, comment) in [
            ("backend/pyproject.toml", "#"),
            ("backend/src/lambdas/rag_ingestion/handler.py", "#"),
            ("backend/src/lambdas/artifact_render/handler.py", "#"),
            ("backend/src/models/embeddings/model.py", "#"),
        ] {
            self.repo.write(
                file,
                format!("{}\n{comment} {mark}\n", self.repo.read(file)),
            );
        }
        self.repo.commit(&format!("change every service: {mark}"));
    }

    /// Rewrites `deployer.toml` with `edit` and commits.
    pub fn edit_manifest(&self, edit: impl FnOnce(String) -> String) {
        let manifest = edit(self.repo.read("deployer.toml"));
        self.repo.write("deployer.toml", manifest);
        self.repo.commit("edit the manifest");
    }

    /// `/<project>/<service>/image-tag`.
    pub fn tag_parameter(&self, service: &str) -> String {
        format!("/{}/{service}/image-tag", self.project)
    }

    /// The ECR-style repository of an image service: `<project>/<service>`.
    pub fn repository(&self, service: &str) -> String {
        format!("{}/{service}", self.project)
    }

    /// The Lambda function of a Lambda service.
    pub fn function(&self, service: &str) -> String {
        format!("{}-{service}", self.project)
    }

    /// The zip function's alias, when the manifest gives it one.
    pub fn zip_alias(&self) -> Option<String> {
        let manifest: toml::Table = self
            .repo
            .read("deployer.toml")
            .parse()
            .expect("deployer.toml is TOML");
        manifest
            .get("services")?
            .get("artifact-render")?
            .get("alias")?
            .as_str()
            .map(str::to_owned)
    }

    /// The content tag of every service (`deployer hash --json`: local, no AWS).
    pub fn tags(&self, bed: &Testbed) -> BTreeMap<String, String> {
        let out = self.deployer(bed, None).args(["hash", "--json"]).run();
        out.assert_success();
        out.json()["services"]
            .as_array()
            .expect("hash --json lists services")
            .iter()
            .map(|s| {
                (
                    s["service"].as_str().unwrap_or_default().to_owned(),
                    s["tag"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The artifact each service should run now, worked out without trusting a deploy: the
    /// registry's digest of `<repository>:<tag>` for image services (`host/repo@sha256:…`, or
    /// `None` when the registry lacks it), and for the zip service the `CodeSha256` of the
    /// deterministic zip `deployer plan` reports (computed locally).
    pub fn wanted(&self, bed: &Testbed) -> BTreeMap<String, Option<String>> {
        let tags = self.tags(bed);
        let mut wanted = BTreeMap::new();
        for service in IMAGE_SERVICES {
            let repository = self.repository(service);
            let head = bed.registry().head_manifest(&repository, &tags[service]);
            let digest = (head.status == 200)
                .then(|| head.header("docker-content-digest").map(str::to_owned))
                .flatten();
            wanted.insert(
                service.to_owned(),
                digest.map(|d| format!("{}/{repository}@{d}", self.registry)),
            );
        }
        let plan = self
            .deployer(bed, None)
            .args(["plan", "--json", "--service", "artifact-render"])
            .run();
        let zip = plan.json()["services"][0]["artifact"]
            .as_str()
            .map(str::to_owned);
        assert!(
            zip.is_some(),
            "plan reports no zip artifact: {}",
            plan.stdout
        );
        wanted.insert("artifact-render".to_owned(), zip);
        for service in CONFIG_SERVICES {
            let plan = self
                .deployer(bed, None)
                .args(["plan", "--json", "--service", service])
                .run();
            let set = plan.json()["services"][0]["artifact"]
                .as_str()
                .map(str::to_owned);
            assert!(set.is_some(), "plan reports no config set: {}", plan.stdout);
            wanted.insert(service.to_owned(), set);
        }
        wanted
    }

    /// Services `deployer status --json` (straight to moto) does not report `in_sync`, each with
    /// its status entry.
    pub fn out_of_sync(&self, bed: &Testbed) -> Vec<String> {
        let out = self.deployer(bed, None).args(["status", "--json"]).run();
        let json = out.json();
        let services = json["services"]
            .as_array()
            .unwrap_or_else(|| panic!("status --json lists no services: {}", out.stdout));
        services
            .iter()
            .filter(|s| s["in_sync"] != true)
            .map(|s| format!("{}: {s}", s["service"]))
            .collect()
    }

    /// Reads what runs now, straight from moto (through `sdk`, which must point at moto).
    pub async fn observe(&self, bed: &Testbed, sdk: &SdkConfig) -> Observed {
        let ssm = aws_sdk_ssm::Client::new(sdk);
        let ecs = aws_sdk_ecs::Client::new(sdk);
        let lambda = aws_sdk_lambda::Client::new(sdk);
        let agentcore = aws_sdk_bedrockagentcorecontrol::Client::new(sdk);
        let mut observed = Observed::default();
        for service in SERVICES.iter().chain(&CONFIG_SERVICES) {
            let service = *service;
            let tag = ssm
                .get_parameter()
                .name(self.tag_parameter(service))
                .send()
                .await
                .ok()
                .and_then(|o| o.parameter().and_then(|p| p.value()).map(str::to_owned));
            if let Some(tag) = tag {
                if IMAGE_SERVICES.contains(&service) {
                    let present = bed
                        .registry()
                        .head_manifest(&self.repository(service), &tag)
                        .status
                        == 200;
                    observed.tag_in_registry.insert(service.to_owned(), present);
                }
                observed.ssm_tags.insert(service.to_owned(), tag);
            }
        }
        // A config service: the set its marker says the table holds (status checks the items).
        for service in CONFIG_SERVICES {
            let marker = ssm
                .get_parameter()
                .name(format!("/{}/{service}/config-applied", self.project))
                .send()
                .await
                .ok()
                .and_then(|o| o.parameter().and_then(|p| p.value()).map(str::to_owned))
                .and_then(|text| serde_json::from_str::<Value>(&text).ok());
            if let Some(set) = marker.as_ref().and_then(|m| m["set"].as_str()) {
                observed.live.insert(service.to_owned(), set.to_owned());
            }
        }
        // ECS: the service's task definition, its container image, and every revision's image.
        let described = ecs
            .describe_services()
            .cluster(&self.project)
            .services("app-api")
            .send()
            .await
            .expect("DescribeServices");
        let live_td = described.services()[0]
            .task_definition()
            .expect("the service has a task definition")
            .to_owned();
        let family = format!("{}-app-api", self.project);
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let page = ecs
                .list_task_definitions()
                .family_prefix(&family)
                .set_next_token(token.take())
                .send()
                .await
                .expect("ListTaskDefinitions");
            arns.extend(page.task_definition_arns().iter().cloned());
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        for arn in &arns {
            let td = ecs
                .describe_task_definition()
                .task_definition(arn)
                .send()
                .await
                .expect("DescribeTaskDefinition");
            let image = td
                .task_definition()
                .and_then(|td| {
                    td.container_definitions()
                        .iter()
                        .find(|c| c.name() == Some("app"))
                })
                .and_then(|c| c.image())
                .unwrap_or_default()
                .to_owned();
            if *arn == live_td {
                observed.live.insert("app-api".into(), image.clone());
            }
            observed.task_definition_images.push(image);
        }
        // AgentCore: the runtime's container and its versions.
        let runtime = agentcore
            .get_agent_runtime()
            .agent_runtime_id(&self.runtime_id)
            .send()
            .await
            .expect("GetAgentRuntime");
        let uri = runtime
            .agent_runtime_artifact()
            .and_then(|a| a.as_container_configuration().ok())
            .map(|c| c.container_uri().to_owned())
            .unwrap_or_default();
        observed.live.insert("inference-api".into(), uri);
        observed.runtime_status = runtime.status().as_str().to_owned();
        if let Ok(versions) = agentcore
            .list_agent_runtime_versions()
            .agent_runtime_id(&self.runtime_id)
            .send()
            .await
        {
            observed.runtime_versions = Some(versions.agent_runtimes().len());
        }
        // Lambda: the image function's image, the zip function's code (and its alias's).
        let image_fn = lambda
            .get_function()
            .function_name(self.function("rag-ingestion"))
            .send()
            .await
            .expect("GetFunction");
        let image_uri = image_fn
            .code()
            .and_then(|c| c.image_uri())
            .unwrap_or_default()
            .to_owned();
        observed.live.insert("rag-ingestion".into(), image_uri);
        let zip_fn = self.function("artifact-render");
        let latest = lambda
            .get_function_configuration()
            .function_name(&zip_fn)
            .send()
            .await
            .expect("GetFunctionConfiguration");
        let code = latest.code_sha256().unwrap_or_default().to_owned();
        observed.live.insert("artifact-render".into(), code);
        if let Some(alias) = self.zip_alias()
            && let Ok(alias) = lambda
                .get_alias()
                .function_name(&zip_fn)
                .name(alias)
                .send()
                .await
        {
            let version = alias.function_version().unwrap_or_default().to_owned();
            let config = lambda
                .get_function_configuration()
                .function_name(&zip_fn)
                .qualifier(&version)
                .send()
                .await
                .expect("GetFunctionConfiguration of the alias's version");
            observed.zip_alias_code = config.code_sha256().map(str::to_owned);
        }
        // SageMaker: the endpoint's model's image, and every model of the endpoint.
        let endpoint = format!("{}-embeddings", self.project);
        let mut command = Command::new(&bed.moto().python);
        bed.apply_env(&mut command);
        let output = command
            .args(["-c", SAGEMAKER_OBSERVE, &endpoint])
            .output()
            .expect("cannot run boto3");
        assert!(
            output.status.success(),
            "boto3, reading {endpoint}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let sagemaker: Value =
            serde_json::from_slice(&output.stdout).expect("the boto3 script prints JSON");
        observed.live.insert(
            "embeddings".into(),
            sagemaker["image"].as_str().unwrap_or_default().to_owned(),
        );
        observed.endpoint_status = sagemaker["status"].as_str().unwrap_or_default().to_owned();
        observed.model_images = sagemaker["models"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        for function in [self.function("rag-ingestion"), zip_fn] {
            let versions = lambda
                .list_versions_by_function()
                .function_name(&function)
                .send()
                .await
                .expect("ListVersionsByFunction");
            let codes: Vec<String> = versions
                .versions()
                .iter()
                .filter(|v| v.version() != Some("$LATEST"))
                .map(|v| v.code_sha256().unwrap_or_default().to_owned())
                .collect();
            observed.lambda_versions.insert(function, codes);
        }
        observed
    }
}

/// What runs, as moto reports it.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The SSM tag of each service that has one.
    pub ssm_tags: BTreeMap<String, String>,
    /// Image services: whether the registry has `<repository>:<SSM tag>`.
    pub tag_in_registry: BTreeMap<String, bool>,
    /// The live artifact of each service: the image the ECS container, the AgentCore runtime
    /// and the image function run; the zip function's `$LATEST` `CodeSha256`.
    pub live: BTreeMap<String, String>,
    /// The zip function's alias's version's `CodeSha256`, when it has an alias.
    pub zip_alias_code: Option<String>,
    /// The image of the `app` container in every revision of the ECS family.
    pub task_definition_images: Vec<String>,
    /// The AgentCore runtime's status.
    pub runtime_status: String,
    /// How many versions the AgentCore runtime has (when moto lists them).
    pub runtime_versions: Option<usize>,
    /// `CodeSha256` of each published version, per function.
    pub lambda_versions: BTreeMap<String, Vec<String>>,
    /// The embeddings endpoint's status.
    pub endpoint_status: String,
    /// The image of every SageMaker model named after the embeddings endpoint.
    pub model_images: Vec<String>,
}

impl Observed {
    /// Services that do not run what `wanted` says (see [`ExampleRepo::wanted`]), each with
    /// what it runs instead; a zip function with an alias must have it on the same code.
    pub fn mismatches(&self, wanted: &BTreeMap<String, Option<String>>) -> Vec<String> {
        let mut problems = Vec::new();
        for (service, want) in wanted {
            let live = self.live.get(service);
            if want.is_none() || live != want.as_ref() {
                problems.push(format!("{service} runs {live:?}, wanted {want:?}"));
            }
        }
        if let (Some(alias), Some(Some(want))) =
            (&self.zip_alias_code, wanted.get("artifact-render"))
            && alias != want
        {
            problems.push(format!(
                "artifact-render's alias points at code {alias}, wanted {want}"
            ));
        }
        problems
    }

    /// Problems with "the SSM tag always names an image present in the registry".
    pub fn tag_problems(&self) -> Vec<String> {
        self.tag_in_registry
            .iter()
            .filter(|(_, present)| !**present)
            .map(|(service, _)| {
                format!(
                    "{service}: SSM tag {} is not in the registry",
                    self.ssm_tags[service]
                )
            })
            .collect()
    }

    /// Problems with "no extra task-definition revisions, function versions or models": two
    /// revisions (versions, models) with the same artifact.
    pub fn pile_ups(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for image in &self.model_images {
            if !seen.insert(image) {
                problems.push(format!(
                    "two SageMaker models run {image} ({} models in all)",
                    self.model_images.len()
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for image in &self.task_definition_images {
            if !seen.insert(image) {
                problems.push(format!(
                    "two task-definition revisions run {image} ({} revisions in all)",
                    self.task_definition_images.len()
                ));
            }
        }
        for (function, codes) in &self.lambda_versions {
            let mut seen = std::collections::BTreeSet::new();
            for code in codes {
                if !seen.insert(code) {
                    problems.push(format!(
                        "two published versions of {function} hold {code} ({} versions)",
                        codes.len()
                    ));
                }
            }
        }
        problems
    }
}
