//! Cleanup after a successful rollover: what is kept, what is deleted, and that failures do not
//! fail the deploy.

use aws_sdk_sagemaker::operation::delete_endpoint_config::DeleteEndpointConfigOutput;
use aws_sdk_sagemaker::operation::delete_model::DeleteModelOutput;
use aws_sdk_sagemaker::types::EndpointStatus as S;
use deployer_core::{Action, Applied, Deployer, deploy};

use super::*;

const E1: &str = "acme-inference-eeeeeeeeeeeeeeeeeeeeee01";
const E2: &str = "acme-inference-eeeeeeeeeeeeeeeeeeeeee02";
const E3: &str = "acme-inference-eeeeeeeeeeeeeeeeeeeeee03";
/// Named like deployer's but not tagged by it: someone else's.
const FOREIGN: &str = "acme-inference-handmade";
/// Created after the new config: another deploy in flight.
const LATER: &str = "acme-inference-ffffffffffffffffffffff01";

fn owned() -> ListTagsOutput {
    tags(&[(OWNER_TAG, ENDPOINT), ("team", "ml")])
}

fn delete_config(name: &'static str) -> Rule {
    mock!(Client::delete_endpoint_config)
        .match_requests(move |r| r.endpoint_config_name() == Some(name))
        .then_output(|| DeleteEndpointConfigOutput::builder().build())
}

fn delete_model(name: &'static str) -> Rule {
    mock!(Client::delete_model)
        .match_requests(move |r| r.model_name() == Some(name))
        .then_output(|| DeleteModelOutput::builder().build())
}

fn applied() -> Applied {
    Applied {
        old_artifact: Some(old_image()),
        new_artifact: new_image(),
        ids: [
            ("endpoint", ENDPOINT),
            ("old_endpoint_config", OLD_CONFIG),
            ("endpoint_config", NEW_CONFIG),
            ("old_models", OLD_MODEL),
            ("models", NEW_MODEL),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    }
}

/// keep = 2: the new config, the previous one (not deployer's, never deleted), and one more
/// of deployer's (E1) stay, with their models; E2 and E3 and their models go; a config or model
/// without deployer's tag, one created after the new config, and a model still used by a kept
/// config are left alone.
#[tokio::test(start_paused = true)]
async fn cleanup_keeps_the_previous_and_keep_earlier_ones_and_deletes_the_rest() {
    let rules = vec![
        describe_endpoint(endpoint(S::InService, NEW_CONFIG, None)),
        list_configs(vec![
            config_summary(LATER, 110),
            config_summary(NEW_CONFIG, 100),
            config_summary(OLD_CONFIG, 90),
            config_summary(E1, 80),
            config_summary(E2, 70),
            config_summary(FOREIGN, 65),
            config_summary(E3, 60),
        ]),
        // Ownership, newest first.
        list_tags(arn("endpoint-config", E1), owned()),
        list_tags(arn("endpoint-config", E2), owned()),
        list_tags(arn("endpoint-config", FOREIGN), tags(&[("team", "ml")])),
        list_tags(arn("endpoint-config", E3), owned()),
        // The models the kept configs use.
        describe_config(config(NEW_CONFIG, &[("AllTraffic", NEW_MODEL)])),
        describe_config(config(OLD_CONFIG, &[("AllTraffic", OLD_MODEL)])),
        describe_config(config(E1, &[("AllTraffic", "acme-inference-m1")])),
        delete_config(E2),
        delete_config(E3),
        list_models(vec![
            model_summary("acme-inference-later", 111),
            model_summary(NEW_MODEL, 99),
            model_summary(OLD_MODEL, 89),
            model_summary("acme-inference-m1", 79),
            model_summary("acme-inference-m2", 69),
            model_summary("acme-inference-handmade", 64),
            model_summary("acme-inference-m3", 59),
            model_summary("other-acme-inference", 1),
        ]),
        list_tags(arn("model", "acme-inference-m2"), owned()),
        delete_model("acme-inference-m2"),
        list_tags(arn("model", "acme-inference-handmade"), tags(&[])),
        list_tags(arn("model", "acme-inference-m3"), owned()),
        delete_model("acme-inference-m3"),
    ];
    let deployer = deployer(&refs(&rules), None);
    let (progress, sink) = collecting();
    deployer
        .wait(&applied(), &policy(), &progress)
        .await
        .unwrap();
    let messages = messages(&sink);
    for deleted in [
        format!("deleted earlier endpoint config {E2}"),
        format!("deleted earlier endpoint config {E3}"),
        "deleted earlier model acme-inference-m2".to_owned(),
        "deleted earlier model acme-inference-m3".to_owned(),
    ] {
        assert!(messages.contains(&deleted), "{deleted}: {messages:#?}");
    }
    assert_eq!(
        messages.iter().filter(|m| m.starts_with("deleted")).count(),
        4,
        "{messages:#?}"
    );
    for rule in &rules {
        assert!(rule.num_calls() > 0, "a rule was not used");
    }
}

#[tokio::test(start_paused = true)]
async fn keep_one_keeps_only_the_previous() {
    let rules = vec![
        describe_endpoint(endpoint(S::InService, NEW_CONFIG, None)),
        list_configs(vec![
            config_summary(NEW_CONFIG, 100),
            config_summary(OLD_CONFIG, 90),
            config_summary(E1, 80),
        ]),
        list_tags(arn("endpoint-config", E1), owned()),
        describe_config(config(NEW_CONFIG, &[("AllTraffic", NEW_MODEL)])),
        describe_config(config(OLD_CONFIG, &[("AllTraffic", OLD_MODEL)])),
        delete_config(E1),
        list_models(vec![
            model_summary(NEW_MODEL, 99),
            model_summary(OLD_MODEL, 89),
        ]),
    ];
    let client = client(&refs(&rules));
    let mut target = target(None);
    target.keep = 1;
    let deployer = SagemakerDeployer::new(client, target, REPO.into());
    deployer
        .wait(&applied(), &policy(), &Progress::discard("inference"))
        .await
        .unwrap();
    for rule in &rules {
        assert!(rule.num_calls() > 0, "a rule was not used");
    }
}

/// A failed delete, or a failed list, is reported and the deploy still succeeds.
#[tokio::test(start_paused = true)]
async fn cleanup_failures_do_not_fail_the_deploy() {
    let denied = || {
        Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                r#"{"__type":"AccessDeniedException","message":"no sagemaker:DeleteEndpointConfig"}"#,
            ),
        )
    };
    let polls = polls(vec![endpoint(S::InService, NEW_CONFIG, None)]);
    let list_denied = mock!(Client::list_models).then_http_response(move || {
        Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                r#"{"__type":"AccessDeniedException","message":"no sagemaker:ListModels"}"#,
            ),
        )
    });
    let mut rules = read_rules();
    rules.extend(apply_rules());
    rules.extend([
        polls,
        list_configs(vec![
            config_summary(NEW_CONFIG, 100),
            config_summary(OLD_CONFIG, 90),
            config_summary(E1, 80),
            config_summary(E2, 70),
        ]),
        list_tags(arn("endpoint-config", E1), owned()),
        list_tags(arn("endpoint-config", E2), owned()),
        describe_config(config(NEW_CONFIG, &[("AllTraffic", NEW_MODEL)])),
        describe_config(config(OLD_CONFIG, &[("AllTraffic", OLD_MODEL)])),
        describe_config(config(E1, &[("AllTraffic", "acme-inference-m1")])),
        mock!(Client::delete_endpoint_config).then_http_response(denied),
        list_denied,
    ]);
    let deployer = deployer(&refs(&rules), None);
    let (progress, sink) = collecting();
    let outcome = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    let messages = messages(&sink);
    assert!(
        messages.iter().any(|m| m
            == &format!("could not delete earlier endpoint config {E2}: DeleteEndpointConfig failed: AccessDeniedException: no sagemaker:DeleteEndpointConfig")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m
            == "cleanup of earlier models and endpoint configs stopped: ListModels failed: AccessDeniedException: no sagemaker:ListModels"),
        "{messages:#?}"
    );
}

/// A fence that says no: the run lost its deploy lock.
struct LockLost;

impl deployer_core::Fence for LockLost {
    fn check(&self) -> Result<(), String> {
        Err("the deploy lock of inference was taken over".into())
    }
}

/// Cleanup deletes are mutations too: a run that lost its lock deletes nothing and says so.
#[tokio::test(start_paused = true)]
async fn a_fenced_cleanup_deletes_nothing() {
    let delete = delete_config(E1);
    let rules = vec![
        describe_endpoint(endpoint(S::InService, NEW_CONFIG, None)),
        list_configs(vec![
            config_summary(NEW_CONFIG, 100),
            config_summary(OLD_CONFIG, 90),
            config_summary(E1, 80),
        ]),
        list_tags(arn("endpoint-config", E1), owned()),
        describe_config(config(NEW_CONFIG, &[("AllTraffic", NEW_MODEL)])),
        describe_config(config(OLD_CONFIG, &[("AllTraffic", OLD_MODEL)])),
        delete.clone(),
    ];
    let client = client(&refs(&rules));
    let mut target = target(None);
    target.keep = 1;
    let deployer = SagemakerDeployer::new(client, target, REPO.into());
    let progress = Progress::discard("inference").with_fence(Arc::new(LockLost));
    let error = deployer
        .wait(&applied(), &policy(), &progress)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, deployer_core::DeployError::Fenced { call, .. } if call == "DeleteEndpointConfig"),
        "{error:?}"
    );
    assert_eq!(delete.num_calls(), 0);
}
