use std::fs;
use std::time::Duration;

use super::*;

/// A repository with the files the example manifest names.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "backend/Dockerfile.app-api",
        "backend/Dockerfile.inference-api",
        "backend/Dockerfile.rag-ingestion",
        "backend/src/lambdas/artifact_render/handler.py",
        "backend/pyproject.toml",
    ] {
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "x").unwrap();
    }
    dir
}

const EXAMPLE: &str = r#"[project]
name = "acme"
region = "us-east-1"
ssm_prefix = "/acme"
registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

[services.app-api]
kind = "ecs"
dockerfile = "backend/Dockerfile.app-api"
context = "backend"
platform = "linux/amd64"
inputs = ["backend/src/apis/app_api/**", "backend/pyproject.toml", "backend/uv.lock"]
repository = "acme/app-api"
build_args = { PYTHON_VERSION = "3.12" }
cluster = "acme"
service = "app-api"
container = "app"

[services.inference-api]
kind = "agentcore"
dockerfile = "backend/Dockerfile.inference-api"
context = "backend"
platform = "linux/arm64"
inputs = ["backend/src/apis/inference_api/**", "backend/src/agents/**"]
repository = "acme/inference-api"
runtime_id = "acme_inference-AbCdE12345"

[services.rag-ingestion]
kind = "lambda-image"
dockerfile = "backend/Dockerfile.rag-ingestion"
context = "backend"
platform = "linux/amd64"
inputs = ["backend/src/lambdas/rag_ingestion/**"]
repository = "acme/rag-ingestion"
function = "acme-rag-ingestion"

[services.artifact-render]
kind = "lambda-zip"
source = "backend/src/lambdas/artifact_render"
function = "acme-artifact-render"
"#;

fn parse(dir: &tempfile::TempDir, text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(Path::new("deployer.toml"), text, dir.path())
}

/// Parses `text`, expects exactly one diagnostic, and returns it.
fn one_error(dir: &tempfile::TempDir, text: &str) -> Diagnostic {
    let error = parse(dir, text).unwrap_err();
    let diagnostics = error.diagnostics();
    assert_eq!(
        diagnostics.len(),
        1,
        "expected one diagnostic, got:\n{error}"
    );
    diagnostics[0].clone()
}

/// The 1-based line and column where `needle` first occurs in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[test]
fn example_manifest_parses() {
    let dir = repo();
    let manifest = parse(&dir, EXAMPLE).unwrap();
    assert_eq!(manifest.project.name, "acme");
    assert_eq!(manifest.project.ssm_prefix, "/acme");
    assert_eq!(manifest.project.concurrency, 4);
    assert_eq!(manifest.project.ssm_write, SsmWrite::AfterRollout);
    assert_eq!(manifest.services.len(), 4);
    let app = &manifest.services["app-api"];
    assert_eq!(app.kind, Kind::Ecs);
    assert_eq!(app.timeout, Duration::from_secs(900));
    let image = app.image.as_ref().unwrap();
    assert_eq!(image.platform.to_string(), "linux/amd64");
    assert_eq!(image.build_args["PYTHON_VERSION"], "3.12");
    assert_eq!(
        app.target,
        Target::Ecs(EcsTarget {
            cluster: "acme".into(),
            service: "app-api".into(),
            container: Some("app".into()),
            force_new_deployment: false,
        })
    );
    assert_eq!(
        app.tag_parameter(&manifest.project),
        "/acme/app-api/image-tag"
    );
    let render = &manifest.services["artifact-render"];
    assert!(render.image.is_none());
    assert_eq!(render.timeout, Duration::from_secs(600));
    match &render.target {
        Target::LambdaZip(zip) => assert_eq!(zip.lambda.function, "acme-artifact-render"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ssm_prefix_defaults_to_name() {
    let dir = repo();
    let text = EXAMPLE.replace("ssm_prefix = \"/acme\"\n", "");
    assert_eq!(parse(&dir, &text).unwrap().project.ssm_prefix, "/acme");
}

#[test]
fn unknown_service_key_suggests_the_close_one() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "dockerfile = \"backend/Dockerfile.app-api\"",
        "dockerfle = \"backend/Dockerfile.app-api\"",
    );
    let error = parse(&dir, &text).unwrap_err();
    // one diagnostic: the missing `dockerfile` is explained by the suggestion
    assert_eq!(error.diagnostics().len(), 1, "{error}");
    let unknown = &error.diagnostics()[0];
    assert_eq!((unknown.line, unknown.column), position(&text, "dockerfle"));
    assert_eq!(
        unknown.message,
        "unknown key `dockerfle` in [services.app-api] (kind `ecs`)"
    );
    assert_eq!(unknown.help.as_deref(), Some("did you mean `dockerfile`?"));
    let rendered = error.to_string();
    assert!(
        rendered.starts_with(&format!("deployer.toml:{}:1: unknown key", unknown.line)),
        "{rendered}"
    );
    assert!(rendered.contains("^"), "{rendered}");
}

#[test]
fn unknown_project_key() {
    let dir = repo();
    let text = EXAMPLE.replace("region = ", "regoin = ");
    let d = one_error(&dir, &text);
    assert_eq!((d.line, d.column), (3, 1));
    assert_eq!(d.help.as_deref(), Some("did you mean `region`?"));
}

#[test]
fn key_of_another_kind() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        "runtime_id = \"x\"\ncluster = \"acme\"",
    );
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "`cluster` is not a field of kind `agentcore` (service `inference-api`)"
    );
    assert_eq!(d.help.as_deref(), Some("`cluster` belongs to kind ecs"));
}

#[test]
fn agentcore_endpoints_are_named_endpoints_in_order() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        "runtime_id = \"x\"\nendpoints = [\"prod\", \"canary_2\"]",
    );
    let manifest = parse(&dir, &text).unwrap();
    assert_eq!(
        manifest.services["inference-api"].target,
        Target::Agentcore(AgentcoreTarget {
            runtime_id: "x".into(),
            endpoints: vec!["prod".into(), "canary_2".into()],
        })
    );
}

#[test]
fn agentcore_endpoint_names_follow_the_api_pattern() {
    let dir = repo();
    for (endpoints, bad, message) in [
        (
            "[\"prod\", \"2nd\"]",
            "\"2nd\"",
            "`2nd` is not an AgentCore endpoint name (a letter, then up to 47 letters, digits or `_`)",
        ),
        (
            "[\"pro-d\"]",
            "\"pro-d\"",
            "`pro-d` is not an AgentCore endpoint name (a letter, then up to 47 letters, digits or `_`)",
        ),
        (
            "[\"DEFAULT\"]",
            "\"DEFAULT\"",
            "`DEFAULT` follows the latest version by itself; list only named endpoints",
        ),
        (
            "[\"prod\", \"prod\"]",
            "\"prod\"]",
            "endpoint `prod` is listed twice",
        ),
    ] {
        let text = EXAMPLE.replace(
            "runtime_id = \"acme_inference-AbCdE12345\"",
            &format!("runtime_id = \"x\"\nendpoints = {endpoints}"),
        );
        let d = one_error(&dir, &text);
        assert_eq!(d.message, message, "{endpoints}");
        assert_eq!((d.line, d.column), position(&text, bad), "{endpoints}");
    }
    let long = format!("a{}", "b".repeat(47));
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        &format!("runtime_id = \"x\"\nendpoints = [\"{long}\"]"),
    );
    assert!(parse(&dir, &text).is_ok());
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        &format!("runtime_id = \"x\"\nendpoints = [\"{long}c\"]"),
    );
    assert!(
        one_error(&dir, &text)
            .message
            .contains("is not an AgentCore endpoint name")
    );
}

#[test]
fn endpoints_are_an_agentcore_key() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "cluster = \"acme\"",
        "cluster = \"acme\"\nendpoints = [\"prod\"]",
    );
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "`endpoints` is not a field of kind `ecs` (service `app-api`)"
    );
}

#[test]
fn unknown_kind_suggests() {
    let dir = repo();
    let text = EXAMPLE.replace("kind = \"lambda-zip\"", "kind = \"lamda-zip\"");
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "unknown kind `lamda-zip` for service `artifact-render`"
    );
    assert!(d.help.unwrap().starts_with("did you mean `lambda-zip`?"));
    assert_eq!((d.line, d.column), position(&text, "\"lamda-zip\""));
}

#[test]
fn missing_field_for_kind() {
    let dir = repo();
    let text = EXAMPLE.replace("cluster = \"acme\"\n", "");
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "service `app-api` (kind `ecs`) is missing `cluster`"
    );
    assert_eq!(d.line, position(&text, "[services.app-api]").0);
}

#[test]
fn path_leaving_the_repository() {
    let dir = repo();
    let text = EXAMPLE.replace("context = \"backend\"\nplatform = \"linux/amd64\"\ninputs = [\"backend/src/apis/app_api/**\"", "context = \"../backend\"\nplatform = \"linux/amd64\"\ninputs = [\"backend/src/apis/app_api/**\"");
    let d = one_error(&dir, &text);
    assert_eq!(d.message, "`context` leaves the repository (`..`)");
    assert_eq!((d.line, d.column), position(&text, "\"../backend\""));
}

#[test]
fn absolute_dockerfile() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "dockerfile = \"backend/Dockerfile.app-api\"",
        "dockerfile = \"/etc/passwd\"",
    );
    let d = one_error(&dir, &text);
    assert!(d.message.contains("is absolute"), "{}", d.message);
}

#[test]
fn glob_leaving_the_repository() {
    let dir = repo();
    let text = EXAMPLE.replace("\"backend/uv.lock\"", "\"backend/../../secrets/**\"");
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "glob `backend/../../secrets/**` leaves the repository (`..`)"
    );
    assert_eq!(
        (d.line, d.column),
        position(&text, "\"backend/../../secrets/**\"")
    );
}

#[cfg(unix)]
#[test]
fn symlink_out_of_the_repository() {
    let dir = repo();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("Dockerfile"), "FROM scratch").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
    let text = EXAMPLE.replace(
        "dockerfile = \"backend/Dockerfile.app-api\"",
        "dockerfile = \"escape/Dockerfile\"",
    );
    let d = one_error(&dir, &text);
    assert!(
        d.message
            .contains("leads out of the repository through a symlink"),
        "{}",
        d.message
    );
    let text = EXAMPLE.replace("\"backend/uv.lock\"", "\"escape/**\"");
    let d = one_error(&dir, &text);
    assert!(
        d.message
            .starts_with("glob `escape/**`: `escape` leads out"),
        "{}",
        d.message
    );
    let text = EXAMPLE.replace(
        "source = \"backend/src/lambdas/artifact_render\"",
        "source = \"escape\"",
    );
    let d = one_error(&dir, &text);
    assert!(
        d.message.contains("leads out of the repository"),
        "{}",
        d.message
    );
}

#[test]
fn dockerfile_that_does_not_exist() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "backend/Dockerfile.rag-ingestion",
        "backend/Dockerfile.missing",
    );
    let d = one_error(&dir, &text);
    assert!(
        d.message
            .starts_with("dockerfile `backend/Dockerfile.missing` does not exist"),
        "{}",
        d.message
    );
    assert_eq!(
        (d.line, d.column),
        position(&text, "\"backend/Dockerfile.missing\"")
    );
}

#[test]
fn source_that_does_not_exist() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "source = \"backend/src/lambdas/artifact_render\"",
        "source = \"backend/nope\"",
    );
    let d = one_error(&dir, &text);
    assert!(
        d.message
            .starts_with("source `backend/nope` does not exist"),
        "{}",
        d.message
    );
}

#[test]
fn source_that_is_a_file() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "source = \"backend/src/lambdas/artifact_render\"",
        "source = \"backend/pyproject.toml\"",
    );
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "source `backend/pyproject.toml` is not a directory"
    );
}

#[test]
fn invalid_platform() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "platform = \"linux/amd64\"\ninputs = [\"backend/src/lambdas",
        "platform = \"linux/amd46\"\ninputs = [\"backend/src/lambdas",
    );
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "unknown architecture `amd46` in `linux/amd46`; did you mean `linux/amd64`?"
    );
    let text = EXAMPLE.replace("platform = \"linux/arm64\"", "platform = \"arm64\"");
    let d = one_error(&dir, &text);
    assert!(d.message.contains("is not a platform"), "{}", d.message);
}

#[test]
fn agentcore_needs_arm64() {
    let dir = repo();
    let text = EXAMPLE.replace("platform = \"linux/arm64\"", "platform = \"linux/amd64\"");
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "AgentCore runtimes run linux/arm64 images, not linux/amd64"
    );
}

#[test]
fn empty_inputs() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "inputs = [\"backend/src/lambdas/rag_ingestion/**\"]",
        "inputs = []",
    );
    let d = one_error(&dir, &text);
    assert!(d.message.starts_with("`inputs` is empty"), "{}", d.message);
    assert_eq!((d.line, d.column), position(&text, "[]"));
}

#[test]
fn syntax_error_is_located() {
    let dir = repo();
    let text = EXAMPLE.replace("cluster = \"acme\"", "cluster = \"acme");
    let d = one_error(&dir, &text);
    assert_eq!(d.line, position(&text, "cluster = \"acme\n").0);
}

#[test]
fn wrong_type_is_located() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "inputs = [\"backend/src/lambdas/rag_ingestion/**\"]",
        "inputs = \"backend/**\"",
    );
    let d = one_error(&dir, &text);
    assert_eq!(d.line, position(&text, "inputs = \"backend/**\"").0);
}

#[test]
fn bad_duration() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        "runtime_id = \"r\"\ntimeout = \"15 minutes-ish\"",
    );
    let d = one_error(&dir, &text);
    assert!(
        d.message.starts_with("`15 minutes-ish` is not a duration"),
        "{}",
        d.message
    );
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        "runtime_id = \"r\"\ntimeout = \"20m\"",
    );
    assert_eq!(
        parse(&dir, &text).unwrap().services["inference-api"].timeout,
        Duration::from_secs(1200)
    );
}

#[test]
fn image_services_need_a_registry() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "registry = \"123456789012.dkr.ecr.us-east-1.amazonaws.com\"\n",
        "",
    );
    let d = one_error(&dir, &text);
    assert!(d.message.contains("has no `registry`"), "{}", d.message);
}

#[test]
fn alias_needs_publish() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "function = \"acme-artifact-render\"",
        "function = \"acme-artifact-render\"\nalias = \"live\"",
    );
    let d = one_error(&dir, &text);
    assert!(
        d.message.starts_with("`alias` needs `publish = true`"),
        "{}",
        d.message
    );
}

#[test]
fn bad_repository_name() {
    let dir = repo();
    let text = EXAMPLE.replace("repository = \"acme/app-api\"", "repository = \"Acme/App\"");
    let d = one_error(&dir, &text);
    assert!(
        d.message.contains("is not a valid repository name"),
        "{}",
        d.message
    );
}

#[test]
fn every_problem_is_reported() {
    let dir = repo();
    let text = EXAMPLE
        .replace("platform = \"linux/arm64\"", "platform = \"linux/arm65\"")
        .replace(
            "inputs = [\"backend/src/lambdas/rag_ingestion/**\"]",
            "inputs = []",
        );
    let error = parse(&dir, &text).unwrap_err();
    assert_eq!(error.diagnostics().len(), 2, "{error}");
    assert!(error.to_string().ends_with("2 problems in the manifest"));
}

#[test]
fn select_unknown_service_suggests() {
    let dir = repo();
    let manifest = parse(&dir, EXAMPLE).unwrap();
    let error = manifest.select(&["app-apii".into()]).unwrap_err();
    assert!(error.contains("did you mean `app-api`?"), "{error}");
    assert_eq!(manifest.select(&[]).unwrap().len(), 4);
    assert_eq!(
        manifest
            .select(&["app-api".into(), "app-api".into()])
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn literal_prefix_of_globs() {
    assert_eq!(literal_prefix("a/b/**/*.py"), "a/b");
    assert_eq!(literal_prefix("a/b/c.txt"), "a/b/c.txt");
    assert_eq!(literal_prefix("**/x"), "");
    assert_eq!(literal_prefix("a/{b,c}/d"), "a");
}

#[test]
fn lookups_are_kept_until_resolved() {
    let dir = repo();
    let text = EXAMPLE
        .replace("runtime_id = \"acme_inference-AbCdE12345\"", "runtime_id = { ssm = \"/acme/inference-api/runtime-id\" }")
        .replace("cluster = \"acme\"", "cluster = { cfn_output = { stack = \"AcmeCompute\", output = \"Cluster\" } }")
        .replace("function = \"acme-rag-ingestion\"", "function = { env = \"RAG_FUNCTION\" }")
        .replace("registry = \"123456789012.dkr.ecr.us-east-1.amazonaws.com\"", "registry = { tf_output = { state = \"infra/terraform.tfstate\", output = \"registry\" } }");
    let mut manifest = parse(&dir, &text).unwrap();
    assert_eq!(
        manifest.project.lookups["registry"],
        Lookup::TfOutput {
            state: "infra/terraform.tfstate".into(),
            output: "registry".into()
        }
    );
    let inference = manifest.services.get_mut("inference-api").unwrap();
    assert_eq!(
        inference.lookups["runtime_id"],
        Lookup::Ssm {
            name: "/acme/inference-api/runtime-id".into()
        }
    );
    assert!(inference.resolve("runtime_id", "rt-123".into()));
    assert!(inference.lookups.is_empty());
    assert_eq!(
        inference.target,
        Target::Agentcore(AgentcoreTarget {
            runtime_id: "rt-123".into(),
            endpoints: Vec::new(),
        })
    );
    let app = &manifest.services["app-api"];
    assert_eq!(
        app.lookups["cluster"],
        Lookup::CfnOutput {
            stack: "AcmeCompute".into(),
            output: "Cluster".into()
        }
    );
    assert_eq!(
        manifest.services["rag-ingestion"].lookups["function"],
        Lookup::Env {
            var: "RAG_FUNCTION".into()
        }
    );
    manifest
        .project
        .resolve("registry", "127.0.0.1:5000".into());
    assert_eq!(manifest.project.registry.as_deref(), Some("127.0.0.1:5000"));
}

#[test]
fn bad_lookups_are_located() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        "runtime_id = { smm = \"/x\" }",
    );
    let d = one_error(&dir, &text);
    assert_eq!(d.message, "`runtime_id`: unknown lookup `smm`");
    assert_eq!(d.help.as_deref(), Some("did you mean `ssm`?"));
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        "runtime_id = { ssm = \"/x\", env = \"Y\" }",
    );
    assert!(
        one_error(&dir, &text)
            .message
            .contains("exactly one source")
    );
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        "runtime_id = { cfn_output = { stack = \"S\" } }",
    );
    assert!(one_error(&dir, &text).message.contains("has no `output`"));
    let text = EXAMPLE.replace(
        "runtime_id = \"acme_inference-AbCdE12345\"",
        "runtime_id = 42",
    );
    assert!(
        one_error(&dir, &text)
            .message
            .starts_with("`runtime_id`: expected a string, or a lookup")
    );
}

#[test]
fn smoke_checks() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "container = \"app\"",
        "container = \"app\"\nsmoke = { http = \"https://api.acme.test/health\", expect_status = 204, timeout_s = 30 }\nrollback_on_smoke_failure = true",
    );
    let manifest = parse(&dir, &text).unwrap();
    let app = &manifest.services["app-api"];
    assert_eq!(
        app.smoke,
        Some(Smoke {
            check: SmokeCheck::Http {
                url: "https://api.acme.test/health".into(),
                expect_status: 204,
                expect: None
            },
            timeout: Duration::from_secs(30)
        })
    );
    assert!(app.rollback_on_smoke_failure);
    let text = EXAMPLE.replace("function = \"acme-artifact-render\"", "function = \"acme-artifact-render\"\nsmoke = { invoke = { artifact = \"x\" }, expect = \"rendered\" }");
    match &parse(&dir, &text).unwrap().services["artifact-render"]
        .smoke
        .as_ref()
        .unwrap()
        .check
    {
        SmokeCheck::Invoke { payload, expect } => {
            assert_eq!(payload, "{\"artifact\":\"x\"}");
            assert_eq!(expect.as_deref(), Some("rendered"));
        }
        other => panic!("{other:?}"),
    }
    let text = EXAMPLE.replace(
        "container = \"app\"",
        "container = \"app\"\nsmoke = { invoke = \"{}\" }",
    );
    assert!(
        one_error(&dir, &text)
            .message
            .contains("works for agentcore and lambda services, not ecs")
    );
    let text = EXAMPLE.replace(
        "container = \"app\"",
        "container = \"app\"\nsmoke = { http = \"x\", command = [\"y\"] }",
    );
    assert!(one_error(&dir, &text).message.contains("exactly one of"));
    let text = EXAMPLE.replace(
        "container = \"app\"",
        "container = \"app\"\nsmoke = { http = \"https://x\", expect_stat = 200 }",
    );
    assert!(
        one_error(&dir, &text)
            .message
            .contains("unknown field `expect_stat`")
    );
    let text = EXAMPLE.replace(
        "container = \"app\"",
        "container = \"app\"\nrollback_on_smoke_failure = true",
    );
    assert!(
        one_error(&dir, &text)
            .message
            .contains("needs a `smoke` check")
    );
}

const SAGEMAKER: &str = r#"
[services.inference]
kind = "sagemaker"
dockerfile = "backend/Dockerfile.app-api"
context = "backend"
platform = "linux/amd64"
inputs = ["backend/pyproject.toml"]
repository = "acme/inference"
endpoint = "acme-inference"
blue_green = { traffic = "canary", canary_percent = 10, wait_interval = "2m", rollback_alarms = ["acme-5xx"] }
"#;

#[test]
fn sagemaker_services() {
    let dir = repo();
    let manifest = parse(&dir, &format!("{EXAMPLE}{SAGEMAKER}")).unwrap();
    let inference = &manifest.services["inference"];
    assert_eq!(inference.timeout, Duration::from_secs(1800));
    assert_eq!(
        inference.target,
        Target::Sagemaker(SagemakerTarget {
            endpoint: "acme-inference".into(),
            variant: None,
            blue_green: Some(BlueGreen {
                traffic: Traffic::Canary { percent: 10 },
                wait_interval: Duration::from_secs(120),
                rollback_alarms: vec!["acme-5xx".into()],
                termination_wait: None,
                max_execution: None,
            }),
            keep: 2,
        })
    );
    let text = format!(
        "{EXAMPLE}{}",
        SAGEMAKER.replace("canary_percent = 10, ", "")
    );
    assert!(
        one_error(&dir, &text)
            .message
            .contains("needs `canary_percent`")
    );
    let text = format!(
        "{EXAMPLE}{}",
        SAGEMAKER.replace("endpoint = \"acme-inference\"\n", "")
    );
    assert!(
        one_error(&dir, &text)
            .message
            .contains("is missing `endpoint`")
    );
}

#[test]
fn depends_on_unknown_and_cycles() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "container = \"app\"",
        "container = \"app\"\ndepends_on = [\"inference-apii\"]",
    );
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "service `app-api` depends on `inference-apii`, which is not a service"
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `inference-api`?"));
    assert_eq!(d.line, position(&text, "[\"inference-apii\"]").0);
    let text = EXAMPLE
        .replace(
            "container = \"app\"",
            "container = \"app\"\ndepends_on = [\"inference-api\"]",
        )
        .replace(
            "runtime_id = \"acme_inference-AbCdE12345\"",
            "runtime_id = \"x\"\ndepends_on = [\"rag-ingestion\"]",
        )
        .replace(
            "function = \"acme-rag-ingestion\"",
            "function = \"f\"\ndepends_on = [\"app-api\"]",
        );
    let d = one_error(&dir, &text);
    assert_eq!(
        d.message,
        "dependency cycle: app-api → inference-api → rag-ingestion → app-api"
    );
}

#[test]
fn stages_follow_dependencies() {
    let dir = repo();
    let text = EXAMPLE
        .replace("container = \"app\"", "container = \"app\"\ndepends_on = [\"inference-api\"]\nrestart_on_dependency_change = true")
        .replace("function = \"acme-artifact-render\"", "function = \"r\"\ndepends_on = [\"app-api\"]");
    let manifest = parse(&dir, &text).unwrap();
    assert!(manifest.services["app-api"].restart_on_dependency_change);
    let all: Vec<String> = manifest.services.keys().cloned().collect();
    assert_eq!(
        manifest.stages(&all),
        vec![
            vec!["inference-api".to_owned(), "rag-ingestion".to_owned()],
            vec!["app-api".to_owned()],
            vec!["artifact-render".to_owned()]
        ]
    );
    // without the middle service, the order through it still holds
    assert_eq!(
        manifest.stages(&["artifact-render".into(), "inference-api".into()]),
        vec![
            vec!["inference-api".to_owned()],
            vec!["artifact-render".to_owned()]
        ]
    );
    assert_eq!(
        manifest
            .dependencies_of("artifact-render")
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["app-api", "inference-api"]
    );
}

#[test]
fn inputs_may_be_left_out_to_derive_them_from_the_dockerfile() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "inputs = [\"backend/src/apis/app_api/**\", \"backend/pyproject.toml\", \"backend/uv.lock\"]\n",
        "",
    );
    assert_ne!(text, EXAMPLE, "the example's app-api inputs line");
    let manifest = parse(&dir, &text).unwrap();
    assert_eq!(
        manifest.services["app-api"].image.as_ref().unwrap().inputs,
        None
    );
    let listed = parse(&dir, EXAMPLE).unwrap();
    assert!(
        listed.services["app-api"]
            .image
            .as_ref()
            .unwrap()
            .inputs
            .is_some()
    );
    // An explicit empty list is still refused: it says "no file decides the image".
    let empty = text.replace("[services.app-api]\n", "[services.app-api]\ninputs = []\n");
    let error = one_error(&dir, &empty);
    assert!(error.message.contains("`inputs` is empty"), "{error:?}");
}

#[test]
fn base_images_are_as_written_unless_resolve_is_asked() {
    let dir = repo();
    assert_eq!(
        parse(&dir, EXAMPLE).unwrap().project.base_images,
        BaseImages::AsWritten
    );
    let resolve = EXAMPLE.replace("[project]\n", "[project]\nbase_images = \"resolve\"\n");
    assert_eq!(
        parse(&dir, &resolve).unwrap().project.base_images,
        BaseImages::Resolve
    );
    let wrong = EXAMPLE.replace("[project]\n", "[project]\nbase_images = \"latest\"\n");
    let error = one_error(&dir, &wrong);
    assert!(
        error.message.contains("unknown base_images `latest`"),
        "{error:?}"
    );
}

const CONFIG: &str = r#"[project]
name = "acme"

[services.repos]
kind = "config"
source = "config/repos"
schema = "config/repo.schema.json"
dynamodb = { table = { ssm = "/acme/repos/table" }, key = ["pk", "sk"] }
secret = ["webhook_secret"]
prune = true
s3_bucket = "acme-deployer"
"#;

fn config_repo() -> tempfile::TempDir {
    let dir = repo();
    fs::create_dir_all(dir.path().join("config/repos")).unwrap();
    fs::write(dir.path().join("config/repo.schema.json"), "{}").unwrap();
    dir
}

#[test]
fn a_config_service_parses_with_its_lookups() {
    let dir = config_repo();
    let manifest = parse(&dir, CONFIG).unwrap();
    let service = &manifest.services["repos"];
    assert_eq!(service.kind, Kind::Config);
    assert!(!service.kind.is_image());
    assert!(service.image.is_none());
    assert_eq!(
        service.lookups["table"],
        Lookup::Ssm {
            name: "/acme/repos/table".into()
        }
    );
    let Target::Config(target) = &service.target else {
        panic!("not a config target: {:?}", service.target);
    };
    assert_eq!(target.source, "config/repos");
    assert_eq!(target.schema.as_deref(), Some("config/repo.schema.json"));
    assert_eq!(target.secret, ["webhook_secret"]);
    assert!(target.prune && !target.adopt);
    assert_eq!(
        target.store,
        ConfigStore::Dynamodb {
            table: String::new(),
            key: vec!["pk".into(), "sk".into()]
        }
    );
    let mut resolved = service.clone();
    assert!(resolved.resolve("table", "acme-repositories".into()));
    assert!(resolved.lookups.is_empty());
    let Target::Config(target) = &resolved.target else {
        unreachable!()
    };
    assert!(
        matches!(&target.store, ConfigStore::Dynamodb { table, .. } if table == "acme-repositories")
    );
    assert!(!resolved.resolve("prefix", "/x".into()));
}

#[test]
fn a_config_service_writes_to_exactly_one_store() {
    let dir = config_repo();
    let both = CONFIG.replace("secret = ", "ssm = { prefix = \"/acme/flags\" }\nsecret = ");
    let error = one_error(&dir, &both);
    assert!(
        error.message.contains("both `dynamodb` and `ssm`"),
        "{error}"
    );
    let neither = CONFIG.replace(
        "dynamodb = { table = { ssm = \"/acme/repos/table\" }, key = [\"pk\", \"sk\"] }\n",
        "",
    );
    let error = one_error(&dir, &neither);
    assert!(
        error.message.contains("needs `dynamodb` or `ssm`"),
        "{error}"
    );
    assert_eq!(error.line, 4);
}

#[test]
fn config_keys_are_checked_where_they_are_written() {
    let dir = config_repo();
    let bad_key = CONFIG.replace("key = [\"pk\", \"sk\"]", "key = [\"pk\", \"pk\"]");
    let error = one_error(&dir, &bad_key);
    assert!(error.message.contains("`dynamodb.key`"), "{error}");
    assert_eq!(error.line, 8);
    let no_bucket = CONFIG.replace("s3_bucket = \"acme-deployer\"\n", "");
    let error = one_error(&dir, &no_bucket);
    assert!(error.message.contains("missing `s3_bucket`"), "{error}");
    let bad_prefix = CONFIG.replace(
        "dynamodb = { table = { ssm = \"/acme/repos/table\" }, key = [\"pk\", \"sk\"] }",
        "ssm = { prefix = \"acme/flags/\" }",
    );
    let error = one_error(&dir, &bad_prefix);
    assert!(
        error.message.contains("ssm prefix `acme/flags/`"),
        "{error}"
    );
    let missing_schema = CONFIG.replace("repo.schema.json", "nope.json");
    let error = one_error(&dir, &missing_schema);
    assert!(
        error
            .message
            .contains("schema `config/nope.json` does not exist"),
        "{error}"
    );
    let bad_secret = CONFIG.replace("[\"webhook_secret\"]", "[\"a..b\"]");
    let error = one_error(&dir, &bad_secret);
    assert!(error.message.contains("`secret` entry `a..b`"), "{error}");
    let unknown = CONFIG.replace("key = [", "keys = [");
    let error = one_error(&dir, &unknown);
    assert!(error.message.contains("keys"), "{error}");
    let foreign = CONFIG.replace("prune = true", "publish = true");
    let error = one_error(&dir, &foreign);
    assert!(
        error.message.contains("not a field of kind `config`"),
        "{error}"
    );
}

#[test]
fn codebuild_settings_merge_per_field_and_may_be_lookups() {
    let dir = repo();
    let text = EXAMPLE
        .replace(
            "[project]\n",
            "[project]\nbuilder = \"codebuild\"\ncodebuild = { project = { ssm = \"/acme/codebuild/project\" }, bucket = \"acme-build-contexts\" }\n",
        )
        .replace(
            "[services.rag-ingestion]\n",
            "[services.rag-ingestion]\nbuilder = \"local\"\n",
        )
        .replace(
            "[services.inference-api]\n",
            "[services.inference-api]\ncodebuild = { compute = \"BUILD_GENERAL1_MEDIUM\", bucket = { env = \"ARM_BUCKET\" } }\n",
        );
    let mut manifest = parse(&dir, &text).unwrap();
    assert_eq!(manifest.project.build_on, BuildOn::CodeBuild);
    assert_eq!(manifest.project.builder, None);
    assert_eq!(
        manifest.project.lookups["codebuild.project"],
        Lookup::Ssm {
            name: "/acme/codebuild/project".into()
        }
    );
    let app = manifest.codebuild(&manifest.services["app-api"]).unwrap();
    assert_eq!(app.bucket, "acme-build-contexts");
    assert_eq!(app.project, "", "a lookup not resolved yet");
    assert_eq!(app.compute, CodeBuild::DEFAULT_COMPUTE);
    assert!(!app.arm, "linux/amd64 builds on the x86 fleet");
    assert_eq!(
        manifest.codebuild(&manifest.services["rag-ingestion"]),
        None,
        "builder = \"local\" overrides [project]"
    );
    assert_eq!(
        manifest.codebuild(&manifest.services["artifact-render"]),
        None
    );
    manifest
        .project
        .resolve("codebuild.project", "acme-images".into());
    assert!(
        manifest
            .services
            .get_mut("inference-api")
            .unwrap()
            .resolve("codebuild.bucket", "acme-arm-contexts".into())
    );
    let agent = manifest
        .codebuild(&manifest.services["inference-api"])
        .unwrap();
    assert_eq!(
        agent,
        CodeBuild {
            project: "acme-images".into(),
            bucket: "acme-arm-contexts".into(),
            compute: "BUILD_GENERAL1_MEDIUM".into(),
            arm: true,
        }
    );
    assert!(manifest.project.lookups.is_empty());
    assert!(manifest.services["inference-api"].lookups.is_empty());
}

#[test]
fn codebuild_needs_a_project_and_a_bucket_and_an_arm_that_fits() {
    let dir = repo();
    let text = EXAMPLE.replace(
        "[services.app-api]\n",
        "[services.app-api]\nbuilder = \"codebuild\"\ncodebuild = { project = \"acme-images\" }\n",
    );
    let error = one_error(&dir, &text);
    assert!(error.message.contains("no `codebuild.bucket`"), "{error:?}");
    let arm = EXAMPLE.replace(
        "[services.app-api]\n",
        "[services.app-api]\nbuilder = \"codebuild\"\ncodebuild = { project = \"p\", bucket = \"acme-b\", arm = true }\n",
    );
    let error = one_error(&dir, &arm);
    assert!(error.message.contains("ARM fleet"), "{error:?}");
    let typo = EXAMPLE.replace(
        "[services.app-api]\n",
        "[services.app-api]\nbuilder = \"codebuild\"\ncodebuild = { project = \"p\", bucket = \"acme-b\", compte = \"BUILD_GENERAL1_SMALL\" }\n",
    );
    let error = one_error(&dir, &typo);
    assert!(error.message.contains("unknown key `compte`"), "{error:?}");
    assert!(
        error.help.as_deref().unwrap_or("").contains("compute"),
        "{error:?}"
    );
    let local_name = EXAMPLE.replace(
        "[services.app-api]\n",
        "[services.app-api]\nbuilder = \"podman\"\n",
    );
    let error = one_error(&dir, &local_name);
    assert!(
        error.message.contains("unknown builder `podman`"),
        "{error:?}"
    );
    let zip = EXAMPLE.replace(
        "[services.artifact-render]\n",
        "[services.artifact-render]\nbuilder = \"codebuild\"\n",
    );
    let error = one_error(&dir, &zip);
    assert!(
        error.message.contains("not a field of kind `lambda-zip`"),
        "{error:?}"
    );
}

#[test]
fn ci_install_is_a_pinned_release_or_a_commit() {
    let dir = repo();
    assert_eq!(parse(&dir, EXAMPLE).unwrap().ci.install, None);
    let sha = "a".repeat(64);
    let release = format!(
        "{EXAMPLE}\n[ci]\ninstall = {{ release = \"https://github.com/acme/deployer/releases/download/v0.1.0/\", version = \"0.1.0\", sha256 = \"{sha}\" }}\n"
    );
    assert_eq!(
        parse(&dir, &release).unwrap().ci.install,
        Some(CiInstall::Release {
            url: "https://github.com/acme/deployer/releases/download/v0.1.0".into(),
            version: "0.1.0".into(),
            sha256: sha.clone(),
        })
    );
    let rev = "0123456789abcdef0123456789abcdef01234567";
    let git = format!(
        "{EXAMPLE}\n[ci]\ninstall = {{ git = \"https://github.com/acme/deployer\", rev = \"{rev}\" }}\n"
    );
    assert_eq!(
        parse(&dir, &git).unwrap().ci.install,
        Some(CiInstall::Git {
            url: "https://github.com/acme/deployer".into(),
            rev: rev.into(),
        })
    );
    for (bad, needle) in [
        (
            "{ git = \"https://github.com/acme/deployer\", rev = \"main\" }",
            "full commit id",
        ),
        (
            "{ git = \"\", rev = \"0123456789abcdef0123456789abcdef01234567\" }",
            "not an https URL",
        ),
        (
            "{ release = \"https://x.example/r\", version = \"0.1.0\", sha256 = \"abc\" }",
            "64 lowercase hex",
        ),
        (
            "{ git = \"https://github.com/acme/deployer\", branch = \"main\" }",
            "either `release`",
        ),
    ] {
        let error = one_error(&dir, &format!("{EXAMPLE}\n[ci]\ninstall = {bad}\n"));
        assert!(error.message.contains(needle), "{bad}: {error:?}");
    }
    let error = one_error(&dir, &format!("{EXAMPLE}\n[ci]\ninstal = \"x\"\n"));
    assert!(
        error.message.contains("unknown key `instal` in [ci]"),
        "{error:?}"
    );
}

#[test]
fn iac_names_a_stack_or_a_state_and_address() {
    let dir = repo();
    let with = |iac: &str| {
        EXAMPLE.replace(
            "container = \"app\"",
            &format!("container = \"app\"\niac = {iac}"),
        )
    };
    let manifest = parse(&dir, &with("{ cfn_stack = \"AcmeCompute\" }")).unwrap();
    assert_eq!(
        manifest.services["app-api"].iac,
        Some(Iac {
            source: IacSource::CfnStack("AcmeCompute".into()),
            ignores_image: false,
        })
    );
    let manifest = parse(
        &dir,
        &with("{ tf_state = \"infra/terraform.tfstate\", address = \"aws_ecs_task_definition.app\", ignores_image = true }"),
    )
    .unwrap();
    assert_eq!(
        manifest.services["app-api"].iac,
        Some(Iac {
            source: IacSource::TfState {
                state: "infra/terraform.tfstate".into(),
                address: "aws_ecs_task_definition.app".into(),
            },
            ignores_image: true,
        })
    );
    assert_eq!(parse(&dir, EXAMPLE).unwrap().services["app-api"].iac, None);
    for (iac, message) in [
        (
            "{ tf_state = \"infra/terraform.tfstate\" }",
            "needs `address`",
        ),
        (
            "{ cfn_stack = \"S\", address = \"a.b\" }",
            "belongs to `tf_state`",
        ),
        (
            "{ cfn_stack = \"S\", tf_state = \"t\", address = \"a.b\" }",
            "exactly one of",
        ),
        ("{ ignores_image = true }", "exactly one of"),
        (
            "{ tf_state = \"../state\", address = \"a.b\" }",
            "`iac.tf_state`",
        ),
        ("{ cfn_stak = \"S\" }", "unknown field `cfn_stak`"),
    ] {
        let error = one_error(&dir, &with(iac));
        assert!(error.message.contains(message), "{iac}: {}", error.message);
    }
    // Not a key of kinds without an image.
    let text = EXAMPLE.replace(
        "function = \"acme-artifact-render\"",
        "function = \"acme-artifact-render\"\niac = { cfn_stack = \"S\" }",
    );
    assert!(
        one_error(&dir, &text)
            .message
            .contains("`iac` is not a field of kind")
    );
}
