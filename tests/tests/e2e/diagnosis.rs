//! Why a rollout failed, through the real `deployer` against the bed (issue 16).
//!
//! The bed's ECS patch (`xtask/testbed/patches/ecs.py`, "Why the tasks of a failing rollout
//! stopped") fails the new tasks of a service whose task definition carries
//! `deployer-testbed:rollout = fail`, keeps them as STOPPED tasks with the stop code, reason
//! and exit code its tags choose, and writes the log lines its `deployer-testbed:log` tag holds
//! to moto's CloudWatch Logs through the task definition's `awslogs` configuration. The
//! deploy must fail (exit 1) and say why in text, `--json` and the GitHub step summary; a
//! diagnosis that cannot be read must not change the deploy's own error.

use deployer_tests::faultproxy::{Rule, RuleAction};
use deployer_tests::{Deployer, FaultProxy, Faults, RunOutput, Testbed, testbed};
use serde_json::Value;

use crate::ecs::{FAIL_TAG, Setup, setup, web};

/// The value of the container's `DATABASE_URL` (the setup's environment): it must never be shown.
const SECRET: &str = "postgres://app:pw@db/app";

pub(crate) const OOM: &[(&str, &str)] = &[
    FAIL_TAG,
    (
        "deployer-testbed:stop-reason",
        "OutOfMemoryError: Container killed due to memory usage",
    ),
    ("deployer-testbed:exit-code", "137"),
    (
        "deployer-testbed:log",
        "listening on :8080;connecting to postgres://app:pw@db/app;loading the catalog into memory;fatal: heap exhausted after 512 MiB",
    ),
];

const PULL: &[(&str, &str)] = &[
    FAIL_TAG,
    ("deployer-testbed:stop-code", "TaskFailedToStart"),
    (
        "deployer-testbed:stop-reason",
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref registry.example/web:gone: not found",
    ),
    ("deployer-testbed:exit-code", "none"),
    ("deployer-testbed:log", "image pull started"),
];

/// `deployer deploy --service web` (`--json` when `json`), its step summary, and its output.
fn deploy(bed: &Testbed, setup: &Setup, json: bool, endpoint: Option<&str>) -> (RunOutput, String) {
    let summary = setup.repo.path().join("step-summary.md");
    let _ = std::fs::remove_file(&summary);
    let mut deployer = Deployer::new()
        .current_dir(setup.repo.path())
        .bed(bed)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_ACTIONS", "true")
        .args([
            "deploy",
            "--service",
            "web",
            "--builder",
            &bed.builder().name,
        ]);
    if json {
        deployer = deployer.arg("--json");
    }
    if let Some(endpoint) = endpoint {
        deployer = deployer.env("AWS_ENDPOINT_URL", endpoint);
    }
    for (key, value) in &bed.builder().env {
        deployer = deployer.env(key, value);
    }
    let out = deployer.run();
    let summary = std::fs::read_to_string(&summary).unwrap_or_default();
    (out, summary)
}

fn assert_no_secret(texts: &[&str]) {
    for text in texts {
        assert!(
            !text.contains(SECRET) && !text.contains("pw@db"),
            "a secret value is shown:\n{text}"
        );
    }
}

fn diagnosis(json: &Value) -> &Value {
    let diagnosis = &web(json)["diagnosis"];
    assert!(diagnosis.is_object(), "no diagnosis in {json}");
    diagnosis
}

/// An OOM-killed task: the exit code 137, `OutOfMemoryError` and the container's last log lines
/// (the secret among them redacted) in `--json`, in text and in the step summary.
#[tokio::test]
async fn an_oom_killed_rollout_says_why_with_the_last_log_lines() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, "bootstrap", OOM, "").await;

    let (out, summary) = deploy(bed, &setup, true, None);
    out.assert_code(1);
    let json = out.json();
    let report = web(&json);
    assert_eq!(report["action"], "failed", "{json}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit breaker"),
        "the rollout's own error stays the error: {json}"
    );
    let diagnosis = diagnosis(&json);
    eprintln!("--- the JSON diagnosis of a failed rollout:\n{diagnosis:#}");
    let task = &diagnosis["stopped_tasks"][0];
    assert_eq!(task["stop_code"], "EssentialContainerExited", "{diagnosis}");
    assert_eq!(task["containers"][0]["name"], "web", "{diagnosis}");
    assert_eq!(task["containers"][0]["exit_code"], 137, "{diagnosis}");
    assert!(
        task["containers"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("OutOfMemoryError"),
        "{diagnosis}"
    );
    let logs: Vec<&str> = diagnosis["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no logs in {diagnosis}"))
        .iter()
        .map(|line| line["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        logs,
        [
            "listening on :8080",
            "connecting to ***",
            "loading the catalog into memory",
            "fatal: heap exhausted after 512 MiB"
        ],
        "{diagnosis}"
    );
    assert!(
        diagnosis["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("deployment failed")),
        "{diagnosis}"
    );
    assert!(diagnosis.get("unavailable").is_none(), "{diagnosis}");
    assert!(
        summary.contains("<details><summary>Why <b>web</b> failed: stopped task")
            && summary.contains("web exit 137: OutOfMemoryError")
            && summary.contains("| fatal: heap exhausted after 512 MiB"),
        "{summary}"
    );
    assert_no_secret(&[&out.stdout, &out.stderr, &summary]);

    // The same failure again, in text (a re-run rolls out again and fails the same way).
    let (out, _) = deploy(bed, &setup, false, None);
    out.assert_code(1);
    eprintln!("--- the text output of a failed rollout:\n{}", out.stdout);
    assert!(
        out.stdout.contains("stopped tasks:")
            && out
                .stdout
                .contains("web exit 137: OutOfMemoryError: Container killed due to memory usage")
            && out.stdout.contains("last log lines:")
            && out.stdout.contains("| connecting to ***")
            && out.stdout.contains("| fatal: heap exhausted after 512 MiB"),
        "{}",
        out.stdout
    );
    // The annotation: the error, then the diagnosis's gist on its second line.
    let annotation = out
        .stderr
        .lines()
        .find(|line| line.starts_with("::error title=deployer web::"))
        .unwrap_or_else(|| panic!("no ::error:: annotation:\n{}", out.stderr));
    assert!(
        annotation.contains("circuit breaker")
            && annotation.contains("%0Astopped task ")
            && annotation.contains("web exit 137: OutOfMemoryError"),
        "{annotation}"
    );
    assert_no_secret(&[&out.stdout, &out.stderr]);

    // The day after: `status` shows the failure recorded, with what the target said then.
    let status = |json: bool| {
        let mut deployer = Deployer::new()
            .current_dir(setup.repo.path())
            .bed(bed)
            .args(["status", "--service", "web"]);
        if json {
            deployer = deployer.arg("--json");
        }
        deployer.run()
    };
    let out = status(true);
    out.assert_success();
    let json = out.json();
    let last = &json["services"][0]["last"];
    assert_eq!(last["ok"], false, "{json}");
    let recorded = &last["diagnosis"];
    assert_eq!(
        recorded["stopped_tasks"][0]["containers"][0]["exit_code"], 137,
        "status shows the recorded diagnosis: {json}"
    );
    assert!(
        recorded["logs"].as_array().is_some_and(|lines| lines
            .iter()
            .any(|l| l["message"] == "fatal: heap exhausted after 512 MiB")),
        "{json}"
    );
    let out = status(false);
    out.assert_success();
    eprintln!("--- `deployer status` after the failure:\n{}", out.stdout);
    assert!(
        out.stdout.contains("last failure:")
            && out.stdout.contains("web exit 137: OutOfMemoryError")
            && out.stdout.contains("| fatal: heap exhausted after 512 MiB"),
        "{}",
        out.stdout
    );
    assert_no_secret(&[&out.stdout, &out.stderr]);
}

/// A task that could not pull its image: `TaskFailedToStart` and `CannotPullContainerError`, no
/// exit code, in `--json`, text and the step summary.
#[tokio::test]
async fn an_image_pull_failure_says_why() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, "bootstrap", PULL, "").await;

    let (out, summary) = deploy(bed, &setup, true, None);
    out.assert_code(1);
    let json = out.json();
    let task = &diagnosis(&json)["stopped_tasks"][0];
    assert_eq!(task["stop_code"], "TaskFailedToStart", "{json}");
    assert!(
        task["stopped_reason"]
            .as_str()
            .unwrap()
            .starts_with("CannotPullContainerError:"),
        "{json}"
    );
    assert!(task["containers"][0].get("exit_code").is_none(), "{json}");
    assert_eq!(
        diagnosis(&json)["logs"][0]["message"],
        "image pull started",
        "{json}"
    );
    assert!(
        summary.contains("TaskFailedToStart: CannotPullContainerError"),
        "{summary}"
    );

    let (out, _) = deploy(bed, &setup, false, None);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("TaskFailedToStart: CannotPullContainerError: pull image manifest")
            && out.stdout.contains("| image pull started"),
        "{}",
        out.stdout
    );
}

/// A diagnosis call that fails (every `DescribeTasks` denied by the fault proxy) is shown as
/// "diagnosis unavailable: …"; the deploy still fails with exit 1 and the rollout's own error.
#[tokio::test]
async fn a_failing_diagnosis_call_keeps_the_rollouts_own_error() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, "bootstrap", OOM, "").await;
    let rule = Rule::new("^DescribeTasks$", RuleAction::Deny).times(0);
    let proxy = FaultProxy::start(bed, &Faults::new().rule(rule));

    let (out, summary) = deploy(bed, &setup, true, Some(proxy.url()));
    out.assert_code(1);
    let json = out.json();
    let report = web(&json);
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rollout failed") && message.contains("circuit breaker"),
        "{json}"
    );
    assert!(!message.contains("DescribeTasks"), "{json}");
    let unavailable = diagnosis(&json)["unavailable"][0].as_str().unwrap();
    assert!(
        unavailable.starts_with("DescribeTasks failed: AccessDeniedException"),
        "{json}"
    );
    assert!(
        summary.contains("diagnosis unavailable: DescribeTasks failed"),
        "{summary}"
    );
    assert_eq!(
        proxy.stats().rules[0].fired,
        1,
        "one DescribeTasks, not retried"
    );
}

/// A Lambda update that fails: its reason code and reason are the diagnosis, in `--json`, text
/// and the step summary; the update's error stays the error.
#[tokio::test]
async fn a_failed_lambda_update_shows_its_reason_code() {
    let Some(bed) = testbed!(moto) else { return };
    let client = crate::lambda::lambda(bed).await;
    let name = deployer_tests::unique_name("zip-why");
    let reason = "Lambda was unable to create an ENI in the VPC of the function because the limit for network interfaces has been reached.";
    crate::lambda::zip_function(
        bed,
        &client,
        &name,
        &[
            ("deployer-testbed:update", "fail"),
            ("deployer-testbed:update-reason-code", "EniLimitExceeded"),
            ("deployer-testbed:update-reason", reason),
        ],
    )
    .await;
    let repo = crate::lambda::zip_repo(&name, "");
    let summary = repo.path().join("step-summary.md");
    let run = |json: bool| {
        let mut deployer = Deployer::new()
            .current_dir(repo.path())
            .bed(bed)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .args(["deploy", "--service", "render"]);
        if json {
            deployer = deployer.arg("--json");
        }
        deployer.run()
    };

    let out = run(true);
    out.assert_code(1);
    let json = out.json();
    let report = &json["services"][0];
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("EniLimitExceeded"),
        "{json}"
    );
    assert_eq!(
        report["diagnosis"]["reasons"][0],
        format!("EniLimitExceeded: {reason}"),
        "{json}"
    );
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.contains(
            "<details><summary>Why <b>render</b> failed: EniLimitExceeded: Lambda was unable"
        ),
        "{summary}"
    );

    let out = run(false);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains(&format!("  reason: EniLimitExceeded: {reason}\n")),
        "{}",
        out.stdout
    );
}

/// An `invoke` smoke check whose function raises: the function error and the tail of its log
/// (`LogType=Tail`), with the function's secret environment value it printed redacted.
#[tokio::test]
async fn a_failed_invoke_smoke_check_shows_the_functions_log_tail() {
    let Some(bed) = testbed!(moto, registry) else {
        return;
    };
    let mono = crate::monorepo::monorepo(bed);
    let secret = deployer_tests::example::fixture_secrets()
        .into_iter()
        .find(|s| s.contains("db-password"))
        .unwrap();
    // A good deploy first: the failed one is then rolled back to it (exit 1, not 2).
    mono.deploy(bed, &["--service", "artifact-render"])
        .assert_success();
    mono.repo.write(
        "backend/src/lambdas/artifact_render/handler.py",
        "import os\n\ndef handler(event, context):\n    print('rendering', event)\n    print('connecting with', os.environ['DB_PASSWORD'])\n    raise RuntimeError('template store unreachable')\n",
    );
    let out = mono.deploy(bed, &["--service", "artifact-render"]);
    out.assert_code(1);
    let json = out.json();
    let report = crate::monorepo::service(&json, "artifact-render");
    let smoke = report["smoke"]["output"].as_str().unwrap();
    assert!(
        smoke.contains("the function failed (")
            && smoke.contains("\nlog tail:\n")
            && smoke.contains("  rendering {")
            && smoke.contains("  connecting with ***")
            && smoke.contains("RuntimeError: template store unreachable"),
        "{smoke}"
    );
    assert!(
        !out.stdout.contains(&secret) && !out.stderr.contains(&secret),
        "{}",
        out.stdout
    );
}

/// A target group whose targets fail their health checks (the bed's `elbv2.py` patch), created
/// with the bed's boto3 (this test binary carries no EC2 or ELB SDK); returns its ARN.
pub(crate) fn unhealthy_target_group(bed: &Testbed, name: &str) -> String {
    let script = format!(
        r#"
import boto3
ec2 = boto3.client("ec2", region_name="us-east-1")
elb = boto3.client("elbv2", region_name="us-east-1")
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
group = elb.create_target_group(Name="{name}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip",
    Tags=[{{"Key": "deployer-testbed:target-health", "Value": "unhealthy"}}])["TargetGroups"][0]["TargetGroupArn"]
elb.register_targets(TargetGroupArn=group, Targets=[{{"Id": "10.0.1.7", "Port": 8080}}])
print(group)
"#
    );
    let mut command = std::process::Command::new(&bed.moto().python);
    bed.apply_env(&mut command);
    let output = command.args(["-c", &script]).output().expect("run boto3");
    assert!(
        output.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A rollout behind a load balancer whose new targets fail their health checks: the targets
/// that are not healthy, with ELB's reason, in `--json` and text.
#[tokio::test]
async fn a_failed_rollout_behind_a_load_balancer_shows_the_unhealthy_targets() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let name = deployer_tests::unique_name("tg");
    let group = unhealthy_target_group(bed, &name);
    let setup = crate::ecs::setup_with(bed, "bootstrap", OOM, "", Some(&group)).await;
    let (out, _) = deploy(bed, &setup, true, None);
    out.assert_code(1);
    let json = out.json();
    let diagnosis = diagnosis(&json);
    assert_eq!(
        diagnosis["target_health"],
        serde_json::json!([format!(
            "target group {name}: 10.0.1.7:8080 unhealthy: Target.FailedHealthChecks: Health checks failed with these codes: [502]"
        )]),
        "{diagnosis}"
    );
    let (out, _) = deploy(bed, &setup, false, None);
    out.assert_code(1);
    assert!(
        out.stdout.contains("load balancer targets not healthy:")
            && out
                .stdout
                .contains("10.0.1.7:8080 unhealthy: Target.FailedHealthChecks"),
        "{}",
        out.stdout
    );
}
