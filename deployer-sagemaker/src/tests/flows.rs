//! The deploy flows against aws-smithy-mocks: every call in order (`RuleMode::Sequential`
//! panics on a call out of order or one too many), polls as `.sequence()`s, paused time.

use std::time::Duration;

use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType,
    DeploymentConfig, EndpointStatus as S, TrafficRoutingConfig, TrafficRoutingConfigType,
};
use deployer_core::manifest::{BlueGreen, Traffic};
use deployer_core::{Action, DeployError, Deployer, ZipArtifact, deploy};

use super::*;

fn all(groups: &[Vec<Rule>]) -> Vec<Rule> {
    groups.iter().flatten().cloned().collect()
}

fn assert_no_secret(texts: &[String]) {
    for text in texts {
        assert!(!text.contains(SECRET), "a secret leaked: {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn happy_path_creates_copies_updates_and_waits_for_the_new_config() {
    let polls = polls(vec![
        endpoint(S::Updating, OLD_CONFIG, None),
        endpoint(S::Updating, OLD_CONFIG, None),
        endpoint(S::InService, NEW_CONFIG, None),
    ]);
    let rules = all(&[
        read_rules(),
        apply_rules(),
        vec![polls.clone()],
        quiet_cleanup_rules(),
    ]);
    let deployer = deployer(&refs(&rules), None);
    let (progress, sink) = collecting();

    let outcome = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap();

    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.old_artifact, Some(old_image()));
    assert_eq!(outcome.new_artifact, Some(new_image()));
    assert_eq!(outcome.ids["endpoint"], ENDPOINT);
    assert_eq!(outcome.ids["old_endpoint_config"], OLD_CONFIG);
    assert_eq!(outcome.ids["endpoint_config"], NEW_CONFIG);
    assert_eq!(outcome.ids["old_models"], OLD_MODEL);
    assert_eq!(outcome.ids["models"], NEW_MODEL);
    assert_eq!(outcome.ids["variants"], "AllTraffic");
    assert_eq!(polls.num_calls(), 3);
    let messages = messages(&sink);
    assert!(
        messages
            .iter()
            .any(|m| m == "Updating on endpoint config acme-inference-config-1"),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m == "InService on endpoint config acme-inference-c0ffee0123456789abcdef01"),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("environment API_KEY, LOG_LEVEL (values hidden)")),
        "{messages:#?}"
    );
    assert_no_secret(&messages);
    for rule in &rules {
        assert!(
            rule.is_exhausted() || rule.num_calls() > 0,
            "a rule was not used"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn unchanged_calls_no_create_and_no_update() {
    let mut read = read_rules();
    read[2] = describe_model(model(OLD_MODEL, &new_image()));
    let deployer = deployer(&refs(&read), None);
    let (progress, sink) = collecting();
    let outcome = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Unchanged);
    assert_eq!(outcome.ids["endpoint_config"], OLD_CONFIG);
    assert_eq!(outcome.ids["models"], OLD_MODEL);
    assert_eq!(outcome.ids["status"], "InService");
    assert_no_secret(&messages(&sink));
}

#[tokio::test(start_paused = true)]
async fn the_tag_form_of_the_wanted_image_is_current_too() {
    let mut read = read_rules();
    read[2] = describe_model(model(OLD_MODEL, &format!("{REPO}:{TAG}")));
    let deployer = deployer(&refs(&read), None);
    let live = deployer.read_live().await.unwrap();
    assert!(deployer.is_current(&live, &wanted()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_endpoint_on_the_wanted_image_is_not_current() {
    let mut read = read_rules();
    read[0] = describe_endpoint(endpoint(S::Failed, OLD_CONFIG, Some("capacity")));
    read[2] = describe_model(model(OLD_MODEL, &new_image()));
    let deployer = deployer(&refs(&read), None);
    let live = deployer.read_live().await.unwrap();
    assert!(!deployer.is_current(&live, &wanted()));
    assert!(
        live.summary.contains("last failure: capacity"),
        "{}",
        live.summary
    );
}

#[tokio::test(start_paused = true)]
async fn an_update_in_flight_is_waited_for_first() {
    let read = polls(vec![
        endpoint(S::Updating, OLD_CONFIG, None),
        endpoint(S::Updating, OLD_CONFIG, None),
        endpoint(S::InService, OLD_CONFIG, None),
    ]);
    let rest = read_rules()[1..].to_vec();
    let mut rules = vec![read.clone()];
    rules.extend(rest);
    let deployer = deployer(&refs(&rules), None);
    let started = tokio::time::Instant::now();
    let live = deployer.read_live().await.unwrap();
    assert_eq!(read.num_calls(), 3);
    assert_eq!(live.ids["status"], "InService");
    assert_eq!(live.artifact, Some(old_image()));
    assert!(started.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn apply_waits_for_an_update_that_started_after_the_read() {
    let mut rules = read_rules();
    let mut apply = apply_rules();
    let in_flight = polls(vec![
        endpoint(S::Updating, OLD_CONFIG, None),
        endpoint(S::InService, OLD_CONFIG, None),
    ]);
    apply[0] = in_flight.clone();
    rules.extend(apply);
    let deployer = deployer(&refs(&rules), None);
    let (progress, sink) = collecting();
    let live = deployer.read_live().await.unwrap();
    deployer.apply(&live, &wanted(), &progress).await.unwrap();
    assert_eq!(in_flight.num_calls(), 2);
    assert!(
        messages(&sink)
            .iter()
            .any(|m| m.starts_with("waiting for an update in flight: Updating")),
        "{:#?}",
        messages(&sink)
    );
}

/// Runs a deploy whose wait sees `states`, and returns the error.
async fn failing_deploy(
    states: Vec<aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput>,
    policy: PollPolicy,
) -> (DeployError, Vec<String>) {
    let rules = all(&[read_rules(), apply_rules(), vec![polls(states)]]);
    let deployer = deployer(&refs(&rules), None);
    let (progress, sink) = collecting();
    let error = deploy(&deployer, &wanted(), &progress, &policy)
        .await
        .unwrap_err();
    (error, messages(&sink))
}

#[tokio::test(start_paused = true)]
async fn failed_is_an_error_with_the_failure_reason_redacted() {
    let reason = format!("The container failed the ping health check (API_KEY={SECRET})");
    let (error, messages) = failing_deploy(
        vec![
            endpoint(S::Updating, OLD_CONFIG, None),
            endpoint(S::Failed, OLD_CONFIG, Some(&reason)),
        ],
        policy(),
    )
    .await;
    let DeployError::RolloutFailed { reason, events } = &error else {
        panic!("{error:?}");
    };
    assert!(
        reason.contains("is Failed on endpoint config acme-inference-config-1: The container failed the ping health check (API_KEY=***)"),
        "{reason}"
    );
    assert_eq!(
        events,
        &[
            "Updating on endpoint config acme-inference-config-1",
            "Failed on endpoint config acme-inference-config-1"
        ]
    );
    assert_no_secret(&[error.to_string(), format!("{error:?}")]);
    assert_no_secret(&messages);
}

#[tokio::test(start_paused = true)]
async fn update_rollback_failed_is_an_error() {
    let (error, _) = failing_deploy(
        vec![
            endpoint(S::Updating, OLD_CONFIG, None),
            endpoint(
                S::UpdateRollbackFailed,
                NEW_CONFIG,
                Some("rollback could not finish"),
            ),
        ],
        policy(),
    )
    .await;
    assert!(
        matches!(&error, DeployError::RolloutFailed { reason, .. }
            if reason.contains("UpdateRollbackFailed") && reason.contains("rollback could not finish")),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn in_service_on_the_old_config_is_a_rollback_and_an_error() {
    let (error, _) = failing_deploy(
        vec![
            endpoint(S::Updating, OLD_CONFIG, None),
            endpoint(S::RollingBack, OLD_CONFIG, None),
            endpoint(
                S::InService,
                OLD_CONFIG,
                Some("Alarm inference-5xx fired: rolling back"),
            ),
        ],
        policy(),
    )
    .await;
    let DeployError::RolloutFailed { reason, events } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        reason,
        "SageMaker endpoint acme-inference rolled back to endpoint config acme-inference-config-1 (InService): \
         Alarm inference-5xx fired: rolling back"
    );
    assert_eq!(events.len(), 3, "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn in_service_on_another_config_is_an_error() {
    let (error, _) = failing_deploy(
        vec![endpoint(S::InService, "someone-elses-config", None)],
        policy(),
    )
    .await;
    assert!(
        matches!(&error, DeployError::RolloutFailed { reason, .. } if reason.contains("another deploy replaced this one")),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_carries_the_last_state() {
    let started = tokio::time::Instant::now();
    let short = policy().with_timeout(Duration::from_secs(60));
    let states = vec![endpoint(S::Updating, OLD_CONFIG, None); 12];
    let (error, _) = failing_deploy(states, short).await;
    let DeployError::Timeout {
        last_state,
        after,
        events,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        last_state,
        "Updating on endpoint config acme-inference-config-1"
    );
    assert_eq!(*after, Duration::from_secs(60));
    assert_eq!(
        events,
        &["Updating on endpoint config acme-inference-config-1"]
    );
    assert!(started.elapsed() >= Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn throttled_describe_is_retried_by_the_sdk_when_reading() {
    let read = mock!(Client::describe_endpoint)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(2)
        .output(|| endpoint(S::InService, OLD_CONFIG, None))
        .build();
    let mut rules = vec![read.clone()];
    rules.extend(read_rules()[1..].to_vec());
    let deployer = deployer(&refs(&rules), None);
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, Some(old_image()));
    assert_eq!(read.num_calls(), 3);
}

/// Throttling beyond the SDK's three attempts inside the wait counts as "still updating".
#[tokio::test(start_paused = true)]
async fn throttled_describe_inside_the_wait_is_a_pending_poll() {
    let polls = mock!(Client::describe_endpoint)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(3)
        .output(|| endpoint(S::InService, NEW_CONFIG, None))
        .build();
    let rules = all(&[
        read_rules(),
        apply_rules(),
        vec![polls.clone()],
        quiet_cleanup_rules(),
    ]);
    let deployer = deployer(&refs(&rules), None);
    let (progress, sink) = collecting();
    let outcome = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(polls.num_calls(), 4);
    assert!(
        messages(&sink)
            .iter()
            .any(|m| m
                .contains("DescribeEndpoint failed, retrying: ThrottlingException: Rate exceeded")),
        "{:#?}",
        messages(&sink)
    );
}

#[tokio::test(start_paused = true)]
async fn access_denied_inside_the_wait_fails_at_once() {
    let polls = mock!(Client::describe_endpoint).then_http_response(|| {
        Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(r#"{"__type":"AccessDeniedException","message":"not allowed"}"#),
        )
    });
    let rules = all(&[read_rules(), apply_rules(), vec![polls]]);
    let deployer = deployer(&refs(&rules), None);
    let error = deploy(
        &deployer,
        &wanted(),
        &Progress::discard("inference"),
        &policy(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, DeployError::Api { operation, code: Some(code), message }
            if operation == "DescribeEndpoint" && code == "AccessDeniedException" && message == "AccessDeniedException: not allowed"),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn blue_green_config_is_passed_exactly() {
    let blue_green = BlueGreen {
        traffic: Traffic::Canary { percent: 10 },
        wait_interval: Duration::from_secs(600),
        rollback_alarms: vec!["inference-5xx".into(), "inference-latency".into()],
        termination_wait: Some(Duration::from_secs(120)),
        max_execution: Some(Duration::from_secs(3600)),
    };
    let expected = DeploymentConfig::builder()
        .blue_green_update_policy(
            BlueGreenUpdatePolicy::builder()
                .traffic_routing_configuration(
                    TrafficRoutingConfig::builder()
                        .r#type(TrafficRoutingConfigType::Canary)
                        .wait_interval_in_seconds(600)
                        .canary_size(
                            CapacitySize::builder()
                                .r#type(CapacitySizeType::CapacityPercent)
                                .value(10)
                                .build(),
                        )
                        .build(),
                )
                .termination_wait_in_seconds(120)
                .maximum_execution_timeout_in_seconds(3600)
                .build(),
        )
        .auto_rollback_configuration(
            AutoRollbackConfig::builder()
                .alarms(Alarm::builder().alarm_name("inference-5xx").build())
                .alarms(Alarm::builder().alarm_name("inference-latency").build())
                .build(),
        )
        .build();
    let update = mock!(Client::update_endpoint)
        .match_requests(move |r| {
            r.endpoint_config_name() == Some(NEW_CONFIG)
                && r.retain_all_variant_properties() == Some(true)
                && r.deployment_config() == Some(&expected)
                && r.retain_deployment_config().is_none()
        })
        .then_output(|| {
            aws_sdk_sagemaker::operation::update_endpoint::UpdateEndpointOutput::builder().build()
        });
    let mut apply = apply_rules();
    *apply.last_mut().unwrap() = update.clone();
    let rules = all(&[read_rules(), apply]);
    let mut target = target(None);
    target.blue_green = Some(blue_green);
    let deployer = SagemakerDeployer::new(client(&refs(&rules)), target, REPO.into());
    let live = deployer.read_live().await.unwrap();
    deployer
        .apply(&live, &wanted(), &Progress::discard("inference"))
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
}

#[test]
fn linear_and_all_at_once_traffic() {
    let mut blue_green = BlueGreen {
        traffic: Traffic::Linear { percent: 25 },
        wait_interval: Duration::from_secs(300),
        rollback_alarms: vec![],
        termination_wait: None,
        max_execution: None,
    };
    let config = crate::deployment::deployment_config(&blue_green);
    let routing = config
        .blue_green_update_policy()
        .and_then(|p| p.traffic_routing_configuration())
        .unwrap();
    assert_eq!(routing.r#type(), Some(&TrafficRoutingConfigType::Linear));
    assert_eq!(routing.linear_step_size().and_then(|s| s.value()), Some(25));
    assert!(routing.canary_size().is_none());
    assert!(config.auto_rollback_configuration().is_none());
    blue_green.traffic = Traffic::AllAtOnce;
    let config = crate::deployment::deployment_config(&blue_green);
    let policy = config.blue_green_update_policy().unwrap();
    let routing = policy.traffic_routing_configuration().unwrap();
    assert_eq!(routing.r#type(), Some(&TrafficRoutingConfigType::AllAtOnce));
    assert_eq!(routing.wait_interval_in_seconds(), Some(300));
    assert!(policy.termination_wait_in_seconds().is_none());
}

#[tokio::test(start_paused = true)]
async fn the_last_deployment_config_is_retained_without_blue_green() {
    let mut with_config = endpoint(S::InService, OLD_CONFIG, None);
    with_config.last_deployment_config = Some(crate::deployment::deployment_config(&BlueGreen {
        traffic: Traffic::AllAtOnce,
        wait_interval: Duration::from_secs(60),
        rollback_alarms: vec!["iac-alarm".into()],
        termination_wait: None,
        max_execution: None,
    }));
    let update = mock!(Client::update_endpoint)
        .match_requests(|r| {
            r.deployment_config().is_none()
                && r.retain_deployment_config() == Some(true)
                && r.retain_all_variant_properties() == Some(true)
        })
        .then_output(|| {
            aws_sdk_sagemaker::operation::update_endpoint::UpdateEndpointOutput::builder().build()
        });
    let mut read = read_rules();
    read[0] = describe_endpoint(with_config.clone());
    let mut apply = apply_rules();
    apply[0] = describe_endpoint(with_config);
    *apply.last_mut().unwrap() = update.clone();
    let rules = all(&[read, apply]);
    let deployer = deployer(&refs(&rules), None);
    let live = deployer.read_live().await.unwrap();
    deployer
        .apply(&live, &wanted(), &Progress::discard("inference"))
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
}

/// A re-run after a kill: the model and config of that name exist with the same content.
#[tokio::test(start_paused = true)]
async fn existing_copies_with_the_same_content_are_reused() {
    let mut apply = apply_rules();
    // DescribeModel of the new name finds the earlier run's copy: no CreateModel.
    let earlier_model = model(NEW_MODEL, &new_image());
    let earlier_config = config(NEW_CONFIG, &[("AllTraffic", NEW_MODEL)]);
    apply.splice(2..4, [describe_model(earlier_model)]);
    apply.splice(4..6, [describe_config(earlier_config)]);
    let rules = all(&[read_rules(), apply]);
    let deployer = deployer(&refs(&rules), None);
    let (progress, sink) = collecting();
    let live = deployer.read_live().await.unwrap();
    let applied = deployer.apply(&live, &wanted(), &progress).await.unwrap();
    assert_eq!(applied.ids["models"], NEW_MODEL);
    assert_eq!(applied.ids["endpoint_config"], NEW_CONFIG);
    let messages = messages(&sink);
    assert!(
        messages.iter().any(|m| m.contains(
            "model acme-inference-c0ffee0123456789abcdef01 already exists with this content"
        )),
        "{messages:#?}"
    );
}

/// A model of the chosen name with other content (say, other environment values) is not
/// touched: the next name is used.
#[tokio::test(start_paused = true)]
async fn a_name_taken_by_other_content_moves_to_the_next_name() {
    const SECOND: &str = "acme-inference-c0ffee0123456789abcdef01-2";
    // The config then names the second model.
    let rules = {
        let mut apply = apply_rules();
        let mut other = model(NEW_MODEL, &new_image());
        other.execution_role_arn = Some("arn:aws:iam::123456789012:role/other".into());
        apply.splice(
            2..4,
            [
                describe_model(other),
                model_not_found(SECOND),
                create_model(SECOND),
            ],
        );
        let last = apply.len() - 2;
        apply[last] = create_config(NEW_CONFIG, SECOND);
        all(&[read_rules(), apply])
    };
    let deployer = deployer(&refs(&rules), None);
    let live = deployer.read_live().await.unwrap();
    let applied = deployer
        .apply(&live, &wanted(), &Progress::discard("inference"))
        .await
        .unwrap();
    assert_eq!(applied.ids["models"], SECOND);
}

#[tokio::test(start_paused = true)]
async fn a_missing_endpoint_is_not_found() {
    let read = mock!(Client::describe_endpoint)
        .then_http_response(|| validation("Could not find endpoint \\\"arn:aws:sagemaker:us-east-1:123456789012:endpoint/acme-inference\\\"."));
    let deployer = deployer(&[&read], None);
    let error = deployer.read_live().await.unwrap_err();
    assert!(matches!(error, DeployError::NotFound { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("SageMaker endpoint acme-inference was not found"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_named_variant_that_is_absent_is_an_error_listing_the_variants() {
    let deployer = deployer(&refs(&read_rules()), Some("Canary"));
    let error = deployer.read_live().await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
    assert!(
        message.contains("has no variant `Canary`")
            && message.contains(&format!(
                "variant `AllTraffic` (model {OLD_MODEL}) runs {}",
                old_image()
            )),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_variant_on_the_repository_is_an_error_listing_the_variants() {
    let other = format!("{OTHER_REPO}:v1");
    let rules = vec![
        describe_endpoint(endpoint(S::InService, OLD_CONFIG, None)),
        describe_config(config(OLD_CONFIG, &[("AllTraffic", OLD_MODEL)])),
        describe_model(model(OLD_MODEL, &other)),
    ];
    let deployer = deployer(&refs(&rules), None);
    let error = deployer.read_live().await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
    assert!(
        message.contains(&format!("no production variant of endpoint {ENDPOINT}"))
            && message.contains(&format!("runs {other}"))
            && message.contains("set `variant`"),
        "{message}"
    );
}

/// Two variants on the repository, on different images: both are targeted, the endpoint is not
/// current, and each model gets its own copy named after its variant.
#[tokio::test(start_paused = true)]
async fn variants_on_different_images_are_not_current_and_each_is_copied() {
    const MODEL_B: &str = "acme-inference-model-b";
    let two = config(OLD_CONFIG, &[("A", OLD_MODEL), ("B", MODEL_B)]);
    let rules = vec![
        describe_endpoint(endpoint(S::InService, OLD_CONFIG, None)),
        describe_config(two),
        describe_model(model(OLD_MODEL, &old_image())),
        describe_model(model(MODEL_B, &new_image())),
    ];
    let deployer = deployer(&refs(&rules), None);
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, None);
    assert!(!deployer.is_current(&live, &wanted()));
    assert!(
        live.summary
            .contains("the targeted variants run different images")
            && live.summary.contains(&format!("`A` runs {}", old_image()))
            && live.summary.contains(&format!("`B` runs {}", new_image())),
        "{}",
        live.summary
    );
    assert_eq!(live.ids["models"], format!("{OLD_MODEL},{MODEL_B}"));
    assert_eq!(live.ids["variants"], "A,B");
    assert_eq!(
        crate::names::base(ENDPOINT, Some("A"), TAG),
        "acme-inference-A-c0ffee0123456789abcdef01"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shadow_variant_is_replaced_only_when_named() {
    const SHADOW_MODEL: &str = "acme-inference-shadow";
    let mut with_shadow = config(OLD_CONFIG, &[("AllTraffic", OLD_MODEL)]);
    with_shadow.shadow_production_variants = Some(vec![variant("Shadow", SHADOW_MODEL)]);
    let rules = |shadow_model: DescribeModelOutput| {
        vec![
            describe_endpoint(endpoint(S::InService, OLD_CONFIG, None)),
            describe_config(with_shadow.clone()),
            describe_model(model(OLD_MODEL, &old_image())),
            describe_model(shadow_model),
        ]
    };
    let candidate = format!("{REPO}:candidate");
    let rules_default = rules(model(SHADOW_MODEL, &candidate));
    let live = deployer(&refs(&rules_default), None)
        .read_live()
        .await
        .unwrap();
    assert_eq!(live.ids["variants"], "AllTraffic");
    let rules_named = rules(model(SHADOW_MODEL, &candidate));
    let live = deployer(&refs(&rules_named), Some("Shadow"))
        .read_live()
        .await
        .unwrap();
    assert_eq!(live.ids["variants"], "Shadow");
    assert_eq!(live.artifact, Some(candidate));
}

#[tokio::test(start_paused = true)]
async fn a_zip_is_refused() {
    let deployer = deployer(&[], None);
    let zip = Artifact::Zip(ZipArtifact {
        tag: "t".into(),
        sha256_b64: "x".into(),
        size: 1,
        files: 1,
        bytes: std::sync::Arc::from(vec![0u8]),
    });
    let error = deployer
        .apply(
            &deployer_core::LiveState::default(),
            &zip,
            &Progress::discard("x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn nothing_prints_the_environment() {
    let rules = all(&[read_rules(), apply_rules()]);
    let deployer = deployer(&refs(&rules), None);
    let (progress, sink) = collecting();
    let live = deployer.read_live().await.unwrap();
    let applied = deployer.apply(&live, &wanted(), &progress).await.unwrap();
    assert_no_secret(&[
        live.summary.clone(),
        format!("{live:?}"),
        format!("{applied:?}"),
        format!("{deployer:?}"),
    ]);
    assert_no_secret(&messages(&sink));
    assert!(
        live.summary
            .contains("environment API_KEY, LOG_LEVEL (values hidden)"),
        "{}",
        live.summary
    );
}

#[tokio::test(start_paused = true)]
async fn a_create_error_is_one_line_with_secrets_redacted() {
    let create = mock!(Client::create_model).then_http_response(|| {
        let body = format!(
            r#"{{"__type":"ValidationException","message":"Environment value\n{SECRET} is too long"}}"#
        );
        Response::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
    });
    let mut apply = apply_rules();
    apply.truncate(3);
    apply.push(create);
    let rules = all(&[read_rules(), apply]);
    let deployer = deployer(&refs(&rules), None);
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &Progress::discard("inference"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "CreateModel failed: ValidationException: Environment value *** is too long"
    );
}

/// A fence that says no: the run lost its deploy lock.
struct LockLost;

impl deployer_core::Fence for LockLost {
    fn check(&self) -> Result<(), String> {
        Err("the deploy lock of inference was taken over".into())
    }
}

/// A run that lost its deploy lock creates no model, no endpoint config, and sends no
/// `UpdateEndpoint`.
#[tokio::test(start_paused = true)]
async fn a_fenced_run_creates_nothing_and_updates_nothing() {
    let rules = all(&[read_rules(), apply_rules()]);
    let deployer = deployer(&refs(&rules), None);
    let progress = Progress::discard("inference").with_fence(Arc::new(LockLost));
    let error = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "CreateModel"),
        "{error:?}"
    );
    // read_rules: 3, apply_rules: DescribeEndpoint, ListTags, DescribeModel, then CreateModel.
    let mutating = [&rules[6], &rules[9], &rules[10]];
    for rule in mutating {
        assert_eq!(rule.num_calls(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn the_diagnosis_is_the_failure_reason_redacted_and_the_log_group_hides_the_models_environment()
 {
    use deployer_core::Applied;
    let reason = format!("The container failed the ping health check (API_KEY={SECRET})");
    let rules = all(&[
        read_rules(),
        vec![describe_endpoint(endpoint(
            S::Failed,
            OLD_CONFIG,
            Some(&reason),
        ))],
    ]);
    let deployer = deployer(&refs(&rules), None);
    let live = deployer.read_live().await.unwrap();
    let diagnosis = deployer.diagnose(&Applied::default()).await;
    assert_eq!(
        diagnosis.reasons,
        ["Failed: The container failed the ping health check (API_KEY=***)"]
    );
    let sources = deployer.log_sources(&live).await.unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].group, "/aws/sagemaker/Endpoints/acme-inference");
    assert!(sources[0].redact.iter().any(|value| value == SECRET));
}
