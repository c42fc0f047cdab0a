//! The workflow `deployer ci github` generates works as written (issue 18): for the example and
//! for a manifest with arm64 services (one built on CodeBuild) and a release install,
//!
//! - zizmor (pinned in the test bed's venv, offline audits) finds nothing;
//! - the YAML parses; every job's `needs` exist, and every `needs.<job>` a job's `if` reads is
//!   among its `needs`;
//! - every `uses:` is pinned to a full commit with its version as a comment; `permissions: {}`
//!   at the top, `id-token: write` only in the jobs that assume the deploy role; checkouts keep
//!   no credentials; no command has an empty URL;
//! - an arm64 image builds on an arm64 runner unless CodeBuild builds it;
//!
//! and without `[ci] install` the command exits 2 naming the key.

use std::path::Path;
use std::process::Command;

use deployer_tests::{Deployer, FixtureRepo, Testbed, example::example_dir, testbed};
use serde_json::Value;

fn copy_into(repo: &FixtureRepo, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let relative = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_into(repo, &entry.path(), &format!("{relative}/"));
            }
        } else {
            repo.write(&relative, std::fs::read(entry.path()).unwrap());
        }
    }
}

/// `deployer ci github --write` in `repo`; the workflow's text.
fn generate(repo: &FixtureRepo) -> String {
    Deployer::new()
        .current_dir(repo.path())
        .env("ACME_REGISTRY", "127.0.0.1:5000")
        .args(["ci", "github", "--write"])
        .run()
        .assert_success();
    repo.read(".github/workflows/deployer.yml")
}

/// zizmor's findings on `file` (JSON), offline: the pinned zizmor of the bed's venv.
fn zizmor(bed: &Testbed, file: &Path) -> Vec<Value> {
    let zizmor = bed.moto().python.with_file_name("zizmor");
    assert!(
        zizmor.is_file(),
        "no zizmor in the test bed's venv ({}): restart the bed (`cargo xtask testbed down && cargo xtask testbed up`)",
        zizmor.display()
    );
    let output = Command::new(&zizmor)
        .args(["--offline", "--no-progress", "--format", "json"])
        .arg(file)
        .output()
        .unwrap();
    // zizmor exits non-zero when it finds something; the JSON says what.
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "zizmor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The workflow as data (PyYAML in the bed's venv).
fn parse(bed: &Testbed, file: &Path) -> Value {
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let output = Command::new(&bed.moto().python)
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the workflow is not YAML: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn needs(job: &Value) -> Vec<String> {
    match &job["needs"] {
        Value::Null => Vec::new(),
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("needs is {other}"),
    }
}

/// Everything the module doc promises of one generated workflow.
fn check(bed: &Testbed, file: &Path, text: &str) -> Value {
    let findings = zizmor(bed, file);
    assert!(
        findings.is_empty(),
        "zizmor findings: {}\n{}",
        findings.len(),
        serde_json::to_string_pretty(&findings).unwrap()
    );
    let workflow = parse(bed, file);
    assert_eq!(workflow["permissions"], serde_json::json!({}));
    let jobs = workflow["jobs"].as_object().unwrap();
    for (id, job) in jobs {
        for need in needs(job) {
            assert!(
                jobs.contains_key(&need),
                "job {id} needs {need}, which does not exist"
            );
        }
        if let Some(condition) = job["if"].as_str() {
            for read in condition
                .split("needs.")
                .skip(1)
                .map(|rest| rest.split('.').next().unwrap())
            {
                assert!(
                    needs(job).iter().any(|n| n == read),
                    "job {id} reads needs.{read} but needs only {:?}",
                    needs(job)
                );
            }
        }
        let permissions = job["permissions"]
            .as_object()
            .unwrap_or_else(|| panic!("job {id} has no permissions"));
        assert_eq!(permissions["contents"], "read", "{id}");
        let assumes = job["steps"].as_array().unwrap().iter().any(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials@"))
        });
        assert_eq!(
            permissions.get("id-token").is_some(),
            assumes,
            "{id}: id-token: write exactly where AWS credentials are assumed"
        );
        // deployer is installed before any AWS credential is in the job's environment.
        let steps = job["steps"].as_array().unwrap();
        let installs = steps.iter().position(|s| {
            s["env"]["DEPLOYER_ASSET"].is_string() || s["env"]["DEPLOYER_GIT"].is_string()
        });
        let assumes_at = steps.iter().position(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials@"))
        });
        if let (Some(install), Some(credentials)) = (installs, assumes_at) {
            assert!(
                install < credentials,
                "{id}: deployer is installed after the credentials"
            );
        }
        for step in steps {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
            {
                assert_eq!(step["with"]["persist-credentials"], false, "{id}");
            }
        }
    }
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with("- uses:"))
    {
        let reference = line.split("- uses:").nth(1).unwrap().trim();
        let (action, rest) = reference.split_once('@').unwrap();
        let (commit, comment) = rest
            .split_once(" # ")
            .unwrap_or_else(|| panic!("{line}: no version comment"));
        assert!(
            commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{action} is not pinned to a full commit: {line}"
        );
        assert!(comment.starts_with('v'), "{line}");
    }
    assert!(
        !text.contains("--git  ") && !text.contains("--git \"\""),
        "an empty URL:\n{text}"
    );
    workflow
}

#[test]
fn the_generated_workflows_pass_zizmor_and_every_need_exists() {
    let Some(bed) = testbed!(moto) else { return };
    // The example (cargo install from a pinned commit, cached).
    let example = FixtureRepo::new();
    copy_into(&example, &example_dir(), "");
    example.commit("example");
    let text = generate(&example);
    let workflow = check(bed, &example.join(".github/workflows/deployer.yml"), &text);
    let jobs = workflow["jobs"].as_object().unwrap();
    let agent = &jobs["build-inference-api"];
    assert_eq!(
        agent["runs-on"], "ubuntu-24.04-arm",
        "linux/arm64 builds on an arm64 runner"
    );
    assert_eq!(jobs["deploy-inference-api"]["runs-on"], "ubuntu-latest");
    let steps = agent["steps"].as_array().unwrap();
    let cache = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .expect("the cargo install is cached");
    assert_eq!(
        cache["with"]["key"],
        "deployer-b17a924d1f0c9e2d6a3c4b5e6f708192a3b4c5d6-agentcore-${{ runner.os }}-${{ runner.arch }}"
    );
    assert!(
        text.contains("--git \"$DEPLOYER_GIT\" --rev \"$DEPLOYER_REV\""),
        "{text}"
    );

    // arm64 services, one built on CodeBuild, and a release download.
    let repo = FixtureRepo::new();
    copy_into(&repo, &example_dir(), "");
    let sums = "ab".repeat(32);
    let manifest = repo
        .read("deployer.toml")
        .replace(
            "[services.rag-ingestion]\n",
            "[services.rag-ingestion]\nbuilder = \"codebuild\"\ncodebuild = { project = { ssm = \"/acme/codebuild/project\" }, bucket = \"acme-contexts\" }\n",
        )
        .replace(
            "platform = \"linux/amd64\"\ninputs = [\"backend/src/lambdas/rag_ingestion/**\"]",
            "platform = \"linux/arm64\"\ninputs = [\"backend/src/lambdas/rag_ingestion/**\"]",
        );
    let manifest = manifest.split("[ci]").next().unwrap().to_owned()
        + &format!(
            "[ci]\ninstall = {{ release = \"https://github.com/acme/deployer/releases/download/v0.1.0\", version = \"0.1.0\", sha256 = \"{sums}\" }}\n"
        );
    assert!(
        manifest.contains("platform = \"linux/arm64\"\ninputs = [\"backend/src/lambdas"),
        "{manifest}"
    );
    repo.write("deployer.toml", manifest);
    repo.commit("arm64 and CodeBuild");
    let text = generate(&repo);
    let workflow = check(bed, &repo.join(".github/workflows/deployer.yml"), &text);
    let jobs = workflow["jobs"].as_object().unwrap();
    assert_eq!(
        jobs["build-rag-ingestion"]["runs-on"], "ubuntu-latest",
        "CodeBuild builds the arm64 image; the runner only follows it"
    );
    assert_eq!(jobs["build-inference-api"]["runs-on"], "ubuntu-24.04-arm");
    let asset = |job: &str| -> String {
        jobs[job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|s| s["env"]["DEPLOYER_ASSET"].as_str())
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        asset("build-rag-ingestion"),
        "deployer-0.1.0-x86_64-unknown-linux-gnu-lambda-image-codebuild"
    );
    assert_eq!(
        asset("build-inference-api"),
        "deployer-0.1.0-aarch64-unknown-linux-gnu-agentcore"
    );
    assert!(text.contains(&sums), "the pinned SHA256SUMS hash");
    assert!(text.contains("sha256sum --check --strict"), "{text}");
}

#[test]
fn ci_github_without_an_install_source_exits_2_naming_the_key() {
    let repo = FixtureRepo::new();
    copy_into(&repo, &example_dir(), "");
    let manifest = repo.read("deployer.toml");
    repo.write("deployer.toml", manifest.split("[ci]").next().unwrap());
    repo.commit("no [ci]");
    let out = Deployer::new()
        .current_dir(repo.path())
        .env("ACME_REGISTRY", "127.0.0.1:5000")
        .args(["ci", "github"])
        .run();
    out.assert_code(2);
    assert!(out.stdout.is_empty(), "no workflow printed: {}", out.stdout);
    for needle in ["[ci] install", "release =", "git =", "cargo xtask dist"] {
        assert!(
            out.stderr.contains(needle),
            "{needle} not in {}",
            out.stderr
        );
    }
}
