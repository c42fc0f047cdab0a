//! `deployer logs` through the real binary against the bed (issue 16): the lines the live
//! service wrote (an ECS container's `awslogs` streams, a function's `/aws/lambda/<name>`),
//! interleaved by time, redacted, limited by `--since`, in text and `--json`; `--follow`
//! prints new lines as they are written. The lines are written to moto's CloudWatch Logs here;
//! the bed's `logs.py` patch makes `logStreamNamePrefix` narrow the streams as on AWS, so a
//! line of another container proves the prefix was sent.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::Client as Logs;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use deployer_tests::{Deployer, RunOutput, Testbed, deployer_command, testbed, unique_name};
use serde_json::Value;

use crate::ecs::setup;

/// The `DATABASE_URL` of the ECS setup's `web` container.
const ECS_SECRET: &str = "postgres://app:pw@db/app";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn write(logs: &Logs, group: &str, stream: &str, lines: &[(i64, &str)]) {
    if logs
        .create_log_group()
        .log_group_name(group)
        .send()
        .await
        .is_err()
    {
        // it exists
    }
    let _ = logs
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await;
    let mut put = logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream);
    for (at, message) in lines {
        put = put.log_events(
            InputLogEvent::builder()
                .timestamp(*at)
                .message(*message)
                .build()
                .unwrap(),
        );
    }
    put.send().await.unwrap();
}

fn logs_run(bed: &Testbed, dir: &std::path::Path, args: &[&str]) -> RunOutput {
    Deployer::new()
        .current_dir(dir)
        .bed(bed)
        .arg("logs")
        .args(args)
        .run()
}

fn messages(json: &Value) -> Vec<String> {
    json["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines in {json}"))
        .iter()
        .map(|line| {
            format!(
                "{} | {}",
                line["source"].as_str().unwrap(),
                line["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn logs_prints_the_containers_lines_interleaved_redacted_and_since() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let setup = setup(bed, "bootstrap", &[], "").await;
    let logs = Logs::new(&bed.sdk_config().await);
    let group = format!("/ecs/{}", setup.name);
    let t0 = now_ms() - 60_000;
    write(
        &logs,
        &group,
        "app/web/task1",
        &[(t0, "listening on :8080"), (t0 + 2, "GET /health 200")],
    )
    .await;
    write(
        &logs,
        &group,
        "app/web/task2",
        &[(t0 + 1, &format!("connecting to {ECS_SECRET}"))],
    )
    .await;
    // Another container's stream in the same group, and a line older than --since.
    write(
        &logs,
        &group,
        "app/log-router/task1",
        &[(t0 + 1, "not this container")],
    )
    .await;
    write(
        &logs,
        &group,
        "app/web/task0",
        &[(t0 - 3_600_000, "an hour before")],
    )
    .await;

    let out = logs_run(bed, setup.repo.path(), &["--service", "web", "--json"]);
    out.assert_success();
    let json = out.json();
    assert_eq!(
        messages(&json),
        [
            "web/task1 | listening on :8080",
            "web/task2 | connecting to ***",
            "web/task1 | GET /health 200"
        ],
        "{json}"
    );
    assert!(!out.stdout.contains("pw@db") && !out.stderr.contains("pw@db"));

    let out = logs_run(
        bed,
        setup.repo.path(),
        &["--service", "web", "--since", "2h"],
    );
    out.assert_success();
    eprintln!("--- `deployer logs --since 2h`:\n{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(
        lines[0].ends_with(" web/task0 | an hour before"),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].ends_with(" web/task2 | connecting to ***"),
        "{}",
        out.stdout
    );

    let out = logs_run(
        bed,
        setup.repo.path(),
        &["--service", "web", "--json", "--limit", "1"],
    );
    out.assert_success();
    assert_eq!(messages(&out.json()), ["web/task1 | GET /health 200"]);
}

/// A `deployer logs --follow --json` whose stdout lines arrive one by one; killed when dropped.
struct Following {
    child: Child,
    lines: Receiver<String>,
}

impl Following {
    fn start(bed: &Testbed, dir: &std::path::Path, service: &str) -> Following {
        let mut command = deployer_command(bed);
        command
            .current_dir(dir)
            .args(["logs", "--service", service, "--follow", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("start deployer logs --follow");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Following { child, lines }
    }

    /// The next line's message, within `limit`.
    fn next(&self, limit: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(limit).ok()?;
        let json: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        Some(json["message"].as_str().unwrap().to_owned())
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn logs_follow_prints_a_functions_new_lines_as_they_come() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let client = crate::lambda::lambda(bed).await;
    let name = unique_name("logs-fn");
    crate::lambda::zip_function(bed, &client, &name, &[]).await;
    let repo = crate::lambda::zip_repo(&name, "");
    let logs = Logs::new(&bed.sdk_config().await);
    let group = format!("/aws/lambda/{name}");
    let stream = "2026/12/04/[$LATEST]0123456789abcdef";
    write(
        &logs,
        &group,
        stream,
        &[(now_ms() - 5_000, "START RequestId: 1")],
    )
    .await;

    let follow = Following::start(bed, repo.path(), "render");
    assert_eq!(
        follow.next(Duration::from_secs(60)).as_deref(),
        Some("START RequestId: 1")
    );
    let started = Instant::now();
    write(
        &logs,
        &group,
        stream,
        &[
            (now_ms(), "e2e-secret-never-printed in a line"),
            (now_ms() + 1, "END RequestId: 1"),
        ],
    )
    .await;
    assert_eq!(
        follow.next(Duration::from_secs(30)).as_deref(),
        Some("*** in a line"),
        "the function's environment values are hidden"
    );
    assert_eq!(
        follow.next(Duration::from_secs(30)).as_deref(),
        Some("END RequestId: 1")
    );
    eprintln!(
        "logs --follow: a new line arrived {:.1}s after it was written",
        started.elapsed().as_secs_f64()
    );
    // Each line once: nothing more arrives while nothing is written.
    assert_eq!(follow.next(Duration::from_secs(5)), None);
}

#[tokio::test]
async fn logs_of_a_function_that_never_ran_says_its_group_does_not_exist() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let client = crate::lambda::lambda(bed).await;
    let name = unique_name("logs-none");
    crate::lambda::zip_function(bed, &client, &name, &[]).await;
    let repo = crate::lambda::zip_repo(&name, "");
    let out = logs_run(bed, repo.path(), &["--service", "render", "--json"]);
    out.assert_success();
    let json = out.json();
    assert_eq!(json["lines"], serde_json::json!([]), "{json}");
    assert_eq!(
        json["missing_groups"][0],
        format!("/aws/lambda/{name}"),
        "{json}"
    );
    assert!(
        out.stderr
            .contains("does not exist (nothing was written to it yet)"),
        "{}",
        out.stderr
    );
}
