//! Deploys through a fault-injecting proxy (`xtask/testbed/faultproxy.py`): AWS throttling
//! errors, HTTP 500/503, dropped connections and latency between `deployer` and moto. The
//! example monorepo still converges: every service ends on its artifact, checked through the
//! SDK straight against moto. And a wait that runs out of time says where it was stuck and
//! exits 1.
//!
//! The proxy's counts are printed (`faults: …` lines on stderr; `--nocapture` shows them).

use std::time::Duration;

use deployer_tests::{ExampleRepo, Testbed, testbed};
use deployer_tests::{FaultProxy, Faults, ProxyStats};
use serde_json::Value;

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(600);

fn service<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["services"]
        .as_array()
        .and_then(|services| services.iter().find(|s| s["service"] == name))
        .unwrap_or_else(|| panic!("no service {name} in {json}"))
}

/// Every service runs its wanted artifact (read from moto, not through the proxy), SSM names
/// it, status agrees, nothing piled up.
async fn assert_converged(bed: &Testbed, example: &ExampleRepo, context: &str) {
    let wanted = example.wanted(bed);
    let observed = example.observe(bed, &bed.sdk_config().await).await;
    let mut problems = observed.mismatches(&wanted);
    problems.extend(observed.tag_problems());
    problems.extend(observed.pile_ups());
    let tags = example.tags(bed);
    for (service, tag) in &tags {
        if observed.ssm_tags.get(service) != Some(tag) {
            problems.push(format!(
                "{service}: SSM has {:?}, the deploy was of {tag}",
                observed.ssm_tags.get(service)
            ));
        }
    }
    problems.extend(example.out_of_sync(bed));
    assert!(
        problems.is_empty(),
        "{context}: not converged:\n  {}\nobserved: {observed:#?}",
        problems.join("\n  ")
    );
}

#[allow(clippy::print_stderr)] // the figures for the closing note
fn report(what: &str, stats: &ProxyStats) {
    eprintln!("faults: {what}: {stats}");
    for (operation, row) in &stats.operations {
        if row.faulted > 0 {
            eprintln!(
                "faults:   {operation}: {} requests, {} faulted, {} retries",
                row.requests, row.faulted, row.retries
            );
        }
    }
}

/// 30% throttling and 5% 5xx on every API: the first deploy of the example (four builds, five
/// rollouts, lookups, locks, SSM records) succeeds and every service ends on its artifact.
#[tokio::test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow: `cargo xtask test` runs it (--features deployer-tests/slow)"
)]
async fn example_monorepo_converges_under_throttling_and_5xx() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let faults = Faults::new()
        .seed(8)
        .throttle(0.30)
        .http500(0.025)
        .http503(0.025);
    let proxy = FaultProxy::start(bed, &faults);
    let started = std::time::Instant::now();
    let out = example
        .deployer(bed, Some(proxy.url()))
        .timeout(DEPLOY_TIMEOUT)
        .args([
            "deploy",
            "--all",
            "--json",
            "--builder",
            &bed.builder().name,
        ])
        .run();
    let seconds = started.elapsed().as_secs_f64();
    let stats = proxy.stop();
    report(
        &format!("30% throttling, 5% 5xx: deploy in {seconds:.0}s"),
        &stats,
    );
    out.assert_success();
    let json = out.json();
    for name in deployer_tests::example::SERVICES {
        assert_eq!(service(&json, name)["action"], "updated", "{name}");
    }
    assert_converged(bed, &example, "30% throttling, 5% 5xx").await;
    assert!(
        stats.faulted.throttle > 0 && stats.faulted.http500 + stats.faulted.http503 > 0,
        "the proxy injected nothing: {stats}"
    );
    for service in ["ecs", "lambda", "ssm", "bedrock-agentcore", "sagemaker"] {
        assert!(
            stats.services.contains_key(service),
            "no {service} call went through the proxy: {stats}"
        );
    }
}

/// Dropped connections (never answered, never forwarded) and slow answers: the SDK retries the
/// first, waits out the second; the deploy converges.
#[tokio::test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow: `cargo xtask test` runs it (--features deployer-tests/slow)"
)]
async fn example_monorepo_converges_through_dropped_connections_and_latency() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let faults = Faults::new()
        .seed(3)
        .drop_connections(0.10)
        .latency(0.20, 300);
    let proxy = FaultProxy::start(bed, &faults);
    let out = example
        .deployer(bed, Some(proxy.url()))
        .timeout(DEPLOY_TIMEOUT)
        .args([
            "deploy",
            "--all",
            "--json",
            "--builder",
            &bed.builder().name,
        ])
        .run();
    let stats = proxy.stop();
    report("drops and latency", &stats);
    out.assert_success();
    assert!(
        stats.faulted.drop > 0 && stats.delayed > 0,
        "nothing injected: {stats}"
    );
    assert_converged(bed, &example, "drops and latency").await;
}

/// Every status poll of a rollout throttled for a few seconds (100% of one service's API while
/// the wait runs), with the SDK allowed only two attempts per call (`AWS_MAX_ATTEMPTS=2`) so that
/// its retries give up inside the window: the wait counts throttling as "still rolling", not as a
/// failed deploy, for each kind of target.
#[tokio::test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow: `cargo xtask test` runs it (--features deployer-tests/slow)"
)]
async fn throttling_during_the_wait_is_waited_out() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let proxy = FaultProxy::start(bed, &Faults::new());
    let builder = bed.builder().name.clone();
    for (name, signing_name) in [
        ("rag-ingestion", "lambda"),
        ("artifact-render", "lambda"),
        ("app-api", "ecs"),
        ("inference-api", "bedrock-agentcore"),
        ("embeddings", "sagemaker"),
    ] {
        proxy.configure(&Faults::new());
        proxy.reset();
        let mut run = deployer_tests::LiveRun::spawn({
            let mut command = example.command(bed, Some(proxy.url()));
            command.env("AWS_MAX_ATTEMPTS", "2").args([
                "deploy",
                "--service",
                name,
                "-v",
                "--builder",
                &builder,
            ]);
            command
        });
        let waiting = run.wait_for(Duration::from_secs(300), |line| {
            line.service == name && line.phase == "wait"
        });
        assert!(
            waiting.is_some(),
            "{name} never reached its wait:\n{}",
            run.stderr_so_far()
        );
        proxy.configure(&Faults::new().throttle(1.0).only(&[signing_name]));
        std::thread::sleep(Duration::from_secs(5));
        proxy.configure(&Faults::new());
        let out = run.finish(DEPLOY_TIMEOUT);
        let stats = proxy.stats();
        report(&format!("{name}'s wait throttled"), &stats);
        out.assert_success();
        assert!(
            stats.exhausted > 0,
            "{name}: the SDK's two attempts never ran out inside the wait, nothing was tested: {stats}"
        );
    }
    // A config service's wait is one read back of its table, not a poll of a rollout: it is
    // deployed here only so that the whole example converges.
    example
        .deployer(bed, None)
        .args(["deploy", "--service", "repositories"])
        .run()
        .assert_success();
    assert_converged(bed, &example, "throttled waits").await;
}

/// A rollout that never completes (the ECS service's tasks never all start) and `timeout =
/// "5s"`: the deploy fails with exit 1, naming the wait, the timeout and the last state
/// observed; the SSM tag is not written.
#[tokio::test]
async fn a_wait_that_times_out_reports_the_last_state_and_exits_1() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let ecs = aws_sdk_ecs::Client::new(&bed.sdk_config().await);
    let arn = ecs
        .describe_services()
        .cluster(&example.project)
        .services("app-api")
        .send()
        .await
        .unwrap()
        .services()[0]
        .service_arn()
        .unwrap()
        .to_owned();
    ecs.tag_resource()
        .resource_arn(&arn)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("deployer-testbed:rollout")
                .value("stuck")
                .build(),
        )
        .send()
        .await
        .unwrap();
    example.edit_manifest(|manifest| {
        manifest.replacen(
            "[services.app-api]\n",
            "[services.app-api]\ntimeout = \"5s\"\npoll_interval = \"1s\"\n",
            1,
        )
    });
    let builder = bed.builder().name.clone();
    let text = example
        .deployer(bed, None)
        .args(["deploy", "--service", "app-api", "--builder", &builder])
        .run();
    text.assert_code(1);
    let error = text
        .stderr
        .lines()
        .chain(text.stdout.lines())
        .find(|line| line.contains("timed out"))
        .unwrap_or_else(|| {
            panic!(
                "no timeout message:\n--- stdout\n{}\n--- stderr\n{}",
                text.stdout, text.stderr
            )
        });
    assert!(
        error.contains("timed out after 5s")
            && error.contains("last state: IN_PROGRESS, running 1/2"),
        "{error}"
    );
    let json = example
        .deployer(bed, None)
        .args([
            "deploy",
            "--service",
            "app-api",
            "--json",
            "--builder",
            &builder,
        ])
        .run();
    json.assert_code(1);
    let report = json.json();
    let app = service(&report, "app-api");
    assert_eq!(app["action"], "failed");
    assert_eq!(app["error"]["exit_code"], 1);
    let message = app["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("timed out after 5s") && message.contains("last state: IN_PROGRESS"),
        "{message}"
    );
    assert_eq!(app["ssm_written"], false);
    let observed = example.observe(bed, &bed.sdk_config().await).await;
    assert_eq!(observed.ssm_tags.get("app-api"), None, "{observed:#?}");
}
