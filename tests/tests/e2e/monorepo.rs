//! The deploy command on the example monorepo (`examples/acme`: ECS, AgentCore, Lambda image,
//! Lambda zip), through the real binary against the test bed: first deploy rolls all four; a
//! second does nothing; a change rolls exactly its service; a broken service fails alone; plan,
//! status, rollback, `--no-wait` + `wait`, and the generated GitHub workflow.

use std::path::Path;
use std::process::Command;

use deployer_tests::{Deployer, FixtureRepo, RunOutput, Testbed, testbed, unique_name};
use serde_json::Value;

/// The example copied into a fresh repository, its infrastructure created in moto under a
/// project name of its own.
pub(crate) struct Monorepo {
    pub(crate) repo: FixtureRepo,
    pub(crate) project: String,
}

pub(crate) fn example_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/acme"))
}

fn copy_into(repo: &FixtureRepo, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let relative = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            copy_into(repo, &entry.path(), &format!("{relative}/"));
        } else {
            repo.write(&relative, std::fs::read(entry.path()).unwrap());
        }
    }
}

pub(crate) fn monorepo(bed: &Testbed) -> Monorepo {
    let repo = FixtureRepo::new();
    copy_into(&repo, example_dir(), "");
    let project = unique_name("mono");
    let output = Command::new(&bed.moto().python)
        .current_dir(repo.path())
        .args([
            "infra/create_resources.py",
            "--project",
            &project,
            "--registry",
            &bed.registry().host,
        ])
        .envs(bed.env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "create_resources.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outputs: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(outputs["runtime_id"].is_string());
    // Resource names and the SSM prefix carry the project name; the registry and the runtime id
    // are lookups (ACME_REGISTRY, the SSM parameter the infrastructure script wrote).
    let manifest = repo.read("deployer.toml").replace("acme", &project);
    repo.write("deployer.toml", manifest);
    repo.commit("monorepo");
    Monorepo { repo, project }
}

impl Monorepo {
    pub(crate) fn run(&self, bed: &Testbed, args: &[&str]) -> RunOutput {
        let mut deployer = Deployer::new()
            .current_dir(self.repo.path())
            .bed(bed)
            .env("ACME_REGISTRY", &bed.registry().host)
            .args(args);
        for (key, value) in &bed.builder().env {
            deployer = deployer.env(key, value);
        }
        deployer.run()
    }

    pub(crate) fn deploy(&self, bed: &Testbed, args: &[&str]) -> RunOutput {
        let mut all = vec!["deploy", "--json", "--builder", &bed.builder().name];
        all.extend_from_slice(args);
        self.run(bed, &all)
    }
}

pub(crate) fn service<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {json}"))
}

fn actions(json: &Value) -> Vec<(String, String)> {
    json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_owned(),
                s["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

pub(crate) async fn ssm(bed: &Testbed, name: &str) -> Option<String> {
    let client = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
    client
        .get_parameter()
        .name(name)
        .send()
        .await
        .ok()?
        .parameter()?
        .value()
        .map(str::to_owned)
}

#[tokio::test]
async fn example_monorepo_deploys_only_what_changed() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let p = &mono.project;
    let sdk = bed.sdk_config().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let revisions = || async {
        ecs.list_task_definitions()
            .family_prefix(format!("{p}-app-api"))
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .len()
    };

    // 1. The first deploy builds three images and a zip and rolls all four out.
    let first = mono.deploy(bed, &["--all"]);
    first.assert_success();
    let json = first.json();
    assert_eq!(
        actions(&json),
        pairs(&[
            ("app-api", "updated"),
            ("artifact-render", "updated"),
            ("embeddings", "updated"),
            ("inference-api", "updated"),
            ("rag-ingestion", "updated"),
            ("repositories", "updated")
        ])
    );
    for name in ["app-api", "embeddings", "inference-api", "rag-ingestion"] {
        assert_eq!(
            service(&json, name)["built"],
            true,
            "{name} is built on the first deploy"
        );
    }
    for name in [
        "app-api",
        "artifact-render",
        "embeddings",
        "inference-api",
        "rag-ingestion",
        "repositories",
    ] {
        let tag = service(&json, name)["tag"].as_str().unwrap();
        assert_eq!(
            ssm(bed, &format!("/{p}/{name}/image-tag")).await.as_deref(),
            Some(tag),
            "SSM records {name}'s tag"
        );
    }
    assert_eq!(revisions().await, 2, "one new task-definition revision");

    // 2. The second deploy does nothing: no build, no push, no update call.
    let second = mono.deploy(bed, &["--all"]);
    second.assert_success();
    let again = second.json();
    assert_eq!(
        actions(&again),
        pairs(&[
            ("app-api", "unchanged"),
            ("artifact-render", "unchanged"),
            ("embeddings", "unchanged"),
            ("inference-api", "unchanged"),
            ("rag-ingestion", "unchanged"),
            ("repositories", "unchanged")
        ])
    );
    for name in [
        "app-api",
        "artifact-render",
        "embeddings",
        "inference-api",
        "rag-ingestion",
        "repositories",
    ] {
        let report = service(&again, name);
        assert_eq!(report["built"], false);
        assert_eq!(report["ssm_written"], false);
        assert!(
            report["durations_ms"].get("build").is_none()
                && report["durations_ms"].get("apply").is_none(),
            "{report}"
        );
        eprintln!("unchanged {name}: {} ms", report["durations_ms"]["total"]);
    }
    assert_eq!(
        service(&again, "app-api")["ids"]["task_definition"],
        service(&json, "app-api")["ids"]["task_definition"]
    );
    assert_eq!(
        service(&again, "inference-api")["ids"]["version"],
        service(&json, "inference-api")["ids"]["version"]
    );
    assert_eq!(revisions().await, 2, "no new revision");

    // plan agrees, and says so through its exit code.
    let plan = mono.run(bed, &["plan", "--json", "--detailed-exitcode"]);
    plan.assert_success();
    assert!(
        plan.json()["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "unchanged")
    );

    // status: everything in sync.
    let status = mono.run(bed, &["status", "--json"]);
    status.assert_success();
    for entry in status.json()["services"].as_array().unwrap() {
        assert_eq!(entry["in_sync"], true, "{entry}");
    }

    // 3. A change under agents/ rolls exactly inference-api.
    let agent = "backend/src/agents/planner.py";
    mono.repo
        .write(agent, mono.repo.read(agent) + "\nMAX_STEPS = 8\n");
    mono.repo.commit("planner: cap the steps");
    let plan = mono.run(bed, &["plan", "--json", "--detailed-exitcode"]);
    plan.assert_code(2);
    let planned = plan.json();
    assert_eq!(service(&planned, "inference-api")["action"], "build+deploy");
    assert_eq!(service(&planned, "inference-api")["in_registry"], false);
    for name in [
        "app-api",
        "artifact-render",
        "embeddings",
        "rag-ingestion",
        "repositories",
    ] {
        assert_eq!(service(&planned, name)["action"], "unchanged");
    }
    let matrix = mono.run(bed, &["plan", "--github-matrix"]);
    matrix.assert_success();
    let matrix: Value = serde_json::from_str(matrix.stdout.trim()).unwrap();
    assert_eq!(
        matrix,
        serde_json::json!({"include": [{"service": "inference-api", "kind": "agentcore"}]})
    );
    let changed = mono.deploy(bed, &["--changed"]);
    changed.assert_success();
    let json = changed.json();
    assert_eq!(
        actions(&json),
        pairs(&[
            ("app-api", "unchanged"),
            ("artifact-render", "unchanged"),
            ("embeddings", "unchanged"),
            ("inference-api", "updated"),
            ("rag-ingestion", "unchanged"),
            ("repositories", "unchanged")
        ])
    );
    assert_eq!(service(&json, "inference-api")["built"], true);
    let inference_tag = service(&json, "inference-api")["tag"]
        .as_str()
        .unwrap()
        .to_owned();
    let previous_inference = service(&first.json(), "inference-api")["new_artifact"]
        .as_str()
        .unwrap()
        .to_owned();

    // 4. A broken service fails alone: exit 1, the others deploy, its SSM tag stays.
    let app_tag = ssm(bed, &format!("/{p}/app-api/image-tag")).await;
    mono.repo
        .write("backend/Dockerfile.app-api", "FROM scratch\nRUN exit 3\n");
    mono.repo.write(
        "backend/src/lambdas/rag_ingestion/handler.py",
        "def handler(event, context):\n    return 2\n",
    );
    mono.repo.commit("break app-api, change rag-ingestion");
    let broken = mono.deploy(bed, &["--all"]);
    broken.assert_code(1);
    let json = broken.json();
    assert_eq!(json["ok"], false);
    assert_eq!(service(&json, "app-api")["action"], "failed");
    assert!(
        service(&json, "app-api")["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RUN exit 3")
    );
    assert_eq!(service(&json, "rag-ingestion")["action"], "updated");
    assert_eq!(service(&json, "inference-api")["action"], "unchanged");
    assert_eq!(
        ssm(bed, &format!("/{p}/app-api/image-tag")).await,
        app_tag,
        "a failed service's SSM tag is untouched"
    );
    let status = mono.run(bed, &["status", "--json"]);
    let app = status.json()["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "app-api")
        .unwrap()
        .clone();
    // The build failed before the deploy took the service's lock: reported, not recorded (only
    // the holder of the lock writes the deploy state; the last outcome is the earlier success).
    assert_eq!(app["last"]["ok"], true, "{app}");
    mono.repo.write(
        "backend/Dockerfile.app-api",
        std::fs::read_to_string(example_dir().join("backend/Dockerfile.app-api")).unwrap(),
    );
    mono.repo.commit("repair app-api");

    // 5. Rollback returns inference-api to its previous successful deploy.
    let rollback = mono.run(bed, &["rollback", "--service", "inference-api", "--json"]);
    rollback.assert_success();
    let json = rollback.json();
    assert_eq!(service(&json, "inference-api")["action"], "rolled_back");
    assert_eq!(
        service(&json, "inference-api")["new_artifact"].as_str(),
        Some(previous_inference.as_str())
    );
    let first_inference_tag = service(&first.json(), "inference-api")["tag"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ssm(bed, &format!("/{p}/inference-api/image-tag"))
            .await
            .as_deref(),
        Some(first_inference_tag.as_str())
    );
    assert_ne!(first_inference_tag, inference_tag);
    let status = mono.run(bed, &["status", "--service", "inference-api", "--json"]);
    assert_eq!(
        status.json()["services"][0]["in_sync"],
        true,
        "{}",
        status.stdout
    );

    // 6. --no-wait starts the rollout and records it as pending; `wait` confirms it (the smoke
    // check included: the example's expects "rendered") and records it.
    mono.repo.write(
        "backend/src/lambdas/artifact_render/handler.py",
        "def handler(event, context):\n    return {\"rendered\": \"v2\"}\n",
    );
    let started = mono.deploy(bed, &["--service", "artifact-render", "--no-wait"]);
    started.assert_success();
    assert_eq!(
        service(&started.json(), "artifact-render")["action"],
        "started"
    );
    let status = mono.run(bed, &["status", "--service", "artifact-render", "--json"]);
    assert_eq!(status.json()["services"][0]["in_sync"], false);
    assert!(status.json()["services"][0]["pending"].is_object());
    let waited = mono.run(bed, &["wait", "--service", "artifact-render", "--json"]);
    waited.assert_success();
    let json = waited.json();
    assert_eq!(service(&json, "artifact-render")["action"], "updated");
    let tag = service(&json, "artifact-render")["tag"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ssm(bed, &format!("/{p}/artifact-render/image-tag")).await,
        Some(tag)
    );
    let status = mono.run(bed, &["status", "--service", "artifact-render", "--json"]);
    assert_eq!(
        status.json()["services"][0]["in_sync"],
        true,
        "{}",
        status.stdout
    );
}

#[tokio::test]
async fn deploy_requires_a_selection_and_dry_run_changes_nothing() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let mono = monorepo(bed);
    let bare = mono.run(bed, &["deploy"]);
    bare.assert_code(2);
    assert!(bare.stderr.contains("--service <name>"), "{}", bare.stderr);
    let dry = mono.deploy(bed, &["--all", "--dry-run"]);
    dry.assert_success();
    let json = dry.json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(service(&json, "app-api")["action"], "build+deploy");
    assert_eq!(service(&json, "artifact-render")["action"], "deploy");
    assert_eq!(
        ssm(bed, &format!("/{}/app-api/image-tag", mono.project)).await,
        None,
        "a dry run writes nothing"
    );
}

#[tokio::test]
async fn generated_workflow_has_a_job_pair_per_service_with_its_paths() {
    let Some(bed) = testbed!(moto) else { return };
    let repo = FixtureRepo::new();
    copy_into(&repo, example_dir(), "");
    repo.commit("example");
    let out = Deployer::new()
        .current_dir(repo.path())
        .args(["ci", "github", "--write"])
        .run();
    out.assert_success();
    let check = Deployer::new()
        .current_dir(repo.path())
        .args(["ci", "github", "--check"])
        .run();
    check.assert_success();
    // Parse the YAML with a real parser (PyYAML, in the bed's venv) and check it as data.
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let output = Command::new(&bed.moto().python)
        .args(["-c", script])
        .arg(repo.join(".github/workflows/deployer.yml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let workflow: Value = serde_json::from_slice(&output.stdout).unwrap();
    let jobs = workflow["jobs"].as_object().unwrap();
    let filter_step = jobs["changes"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "filter")
        .unwrap();
    let filters: Value = {
        let output = Command::new(&bed.moto().python)
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.argv[1])))",
            ])
            .arg(filter_step["with"]["filters"].as_str().unwrap())
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let expected_paths = [
        (
            "app-api",
            vec![
                "backend/src/apis/app_api/**",
                "backend/pyproject.toml",
                "backend/uv.lock",
                "backend/Dockerfile.app-api",
                // the ignore file is in the tag: either place BuildKit reads it from
                "backend/Dockerfile.app-api.dockerignore",
                "backend/.dockerignore",
                "deployer.toml",
            ],
        ),
        (
            "inference-api",
            vec![
                "backend/src/apis/inference_api/**",
                "backend/src/agents/**",
                "backend/pyproject.toml",
                "backend/Dockerfile.inference-api",
                // the ignore file is in the tag: either place BuildKit reads it from
                "backend/Dockerfile.inference-api.dockerignore",
                "backend/.dockerignore",
                "deployer.toml",
            ],
        ),
        (
            "rag-ingestion",
            vec![
                "backend/src/lambdas/rag_ingestion/**",
                "backend/Dockerfile.rag-ingestion",
                // the ignore file is in the tag: either place BuildKit reads it from
                "backend/Dockerfile.rag-ingestion.dockerignore",
                "backend/.dockerignore",
                "deployer.toml",
            ],
        ),
        (
            "artifact-render",
            vec!["backend/src/lambdas/artifact_render/**", "deployer.toml"],
        ),
        (
            "repositories",
            vec![
                "config/repositories/**",
                "config/repository.schema.json",
                "deployer.toml",
            ],
        ),
        (
            "embeddings",
            vec![
                "backend/src/models/embeddings/**",
                "backend/Dockerfile.embeddings",
                // the ignore file is in the tag: either place BuildKit reads it from
                "backend/Dockerfile.embeddings.dockerignore",
                "backend/.dockerignore",
                "deployer.toml",
            ],
        ),
    ];
    assert_eq!(
        jobs.len(),
        1 + 2 * expected_paths.len(),
        "a changes job and one build + deploy pair per service"
    );
    for (name, paths) in expected_paths {
        assert_eq!(filters[name], serde_json::json!(paths), "paths of {name}");
        let build = &jobs[&format!("build-{name}")];
        let deploy = &jobs[&format!("deploy-{name}")];
        assert_eq!(build["needs"], "changes");
        assert_eq!(
            deploy["needs"],
            serde_json::json!(["changes", format!("build-{name}")])
        );
        for (job, command) in [(build, "build"), (deploy, "deploy")] {
            assert_eq!(
                job["if"],
                format!("needs.changes.outputs['{name}'] == 'true'")
            );
            let runs: Vec<&str> = job["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["run"].as_str())
                .collect();
            assert!(
                runs.contains(&format!("deployer {command} --service {name}").as_str()),
                "{runs:?}"
            );
        }
    }
    // Editing the manifest makes the committed workflow stale.
    repo.write(
        "deployer.toml",
        repo.read("deployer.toml").replace(
            "backend/uv.lock",
            "backend/uv.lock\", \"backend/src/agents/**",
        ),
    );
    let stale = Deployer::new()
        .current_dir(repo.path())
        .args(["ci", "github", "--check"])
        .run();
    stale.assert_code(1);
}
