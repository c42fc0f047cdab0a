//! Tests: the deploy flows against aws-smithy-mocks sequences ([`flows`]), cleanup
//! ([`cleanup`]), and field preservation over real JSON ([`fields`]).

mod cleanup;
mod fields;
mod flows;

use std::sync::Arc;

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::config::retry::RetryConfig;
use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::operation::describe_endpoint_config::DescribeEndpointConfigOutput;
use aws_sdk_sagemaker::operation::describe_model::DescribeModelOutput;
use aws_sdk_sagemaker::operation::list_endpoint_configs::ListEndpointConfigsOutput;
use aws_sdk_sagemaker::operation::list_models::ListModelsOutput;
use aws_sdk_sagemaker::operation::list_tags::ListTagsOutput;
use aws_sdk_sagemaker::primitives::DateTime;
use aws_sdk_sagemaker::types::{
    ContainerDefinition, EndpointConfigSummary, EndpointStatus, ModelSummary, ProductionVariant,
    ProductionVariantInstanceType, Tag,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use deployer_core::manifest::SagemakerTarget;
use deployer_core::poll::PollPolicy;
use deployer_core::progress::Collect;
use deployer_core::{Artifact, ImageArtifact, Progress};

use crate::{OWNER_TAG, SagemakerDeployer};

const ENDPOINT: &str = "acme-inference";
const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/inference";
const OTHER_REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/tokenizer";
const OLD_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const TAG: &str = "c0ffee0123456789abcdef01";
/// The config and model the infrastructure code created.
const OLD_CONFIG: &str = "acme-inference-config-1";
const OLD_MODEL: &str = "acme-inference-model-1";
/// The names deployer gives the copies.
const NEW_CONFIG: &str = "acme-inference-c0ffee0123456789abcdef01";
const NEW_MODEL: &str = "acme-inference-c0ffee0123456789abcdef01";
const ROLE: &str = "arn:aws:iam::123456789012:role/inference";
/// An environment value: never in output.
const SECRET: &str = "s3cr3t-api-key-value";
const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:sagemaker:us-east-1:123456789012:{kind}/{name}")
}

fn target(variant: Option<&str>) -> SagemakerTarget {
    SagemakerTarget {
        endpoint: ENDPOINT.into(),
        variant: variant.map(Into::into),
        blue_green: None,
        keep: 2,
    }
}

fn old_image() -> String {
    format!("{REPO}@{OLD_DIGEST}")
}

fn new_image() -> String {
    format!("{REPO}@{NEW_DIGEST}")
}

fn wanted() -> Artifact {
    Artifact::Image(ImageArtifact {
        repository_uri: REPO.into(),
        tag: TAG.into(),
        digest: Some(NEW_DIGEST.into()),
    })
}

fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, rules, |config| {
        config.retry_config(RetryConfig::standard().with_max_attempts(3))
    })
}

fn deployer(rules: &[&Rule], variant: Option<&str>) -> SagemakerDeployer {
    SagemakerDeployer::new(client(rules), target(variant), REPO.into()).with_poll_policy(policy())
}

fn policy() -> PollPolicy {
    PollPolicy {
        interval: std::time::Duration::from_secs(5),
        max_interval: std::time::Duration::from_secs(15),
        timeout: std::time::Duration::from_secs(600),
        call_timeout: std::time::Duration::from_secs(30),
    }
}

fn collecting() -> (Progress, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    (Progress::new("inference", sink.clone()), sink)
}

fn messages(sink: &Collect) -> Vec<String> {
    sink.events()
        .into_iter()
        .map(|event| event.message)
        .collect()
}

fn at(seconds: i64) -> DateTime {
    DateTime::from_secs(1_700_000_000 + seconds)
}

/// The endpoint `status` on `config`.
fn endpoint(status: EndpointStatus, config: &str, failure: Option<&str>) -> DescribeEndpointOutput {
    DescribeEndpointOutput::builder()
        .endpoint_name(ENDPOINT)
        .endpoint_arn(arn("endpoint", ENDPOINT))
        .endpoint_config_name(config)
        .endpoint_status(status)
        .set_failure_reason(failure.map(Into::into))
        .creation_time(at(0))
        .last_modified_time(at(0))
        .build()
}

fn variant(name: &str, model: &str) -> ProductionVariant {
    ProductionVariant::builder()
        .variant_name(name)
        .model_name(model)
        .instance_type(ProductionVariantInstanceType::MlM5Large)
        .initial_instance_count(2)
        .initial_variant_weight(1.0)
        .build()
}

/// An endpoint config with `variants` (name, model).
fn config(name: &str, variants: &[(&str, &str)]) -> DescribeEndpointConfigOutput {
    DescribeEndpointConfigOutput::builder()
        .endpoint_config_name(name)
        .endpoint_config_arn(arn("endpoint-config", name))
        .set_production_variants(Some(variants.iter().map(|(v, m)| variant(v, m)).collect()))
        .kms_key_id("alias/inference")
        .creation_time(at(0))
        .build()
}

fn container(image: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .image(image)
        .model_data_url("s3://acme-models/inference/model.tar.gz")
        .environment("API_KEY", SECRET)
        .environment("LOG_LEVEL", "info")
        .build()
}

/// A model whose primary container runs `image`.
fn model(name: &str, image: &str) -> DescribeModelOutput {
    DescribeModelOutput::builder()
        .model_name(name)
        .model_arn(arn("model", name))
        .primary_container(container(image))
        .execution_role_arn(ROLE)
        .creation_time(at(0))
        .build()
}

fn tags(pairs: &[(&str, &str)]) -> ListTagsOutput {
    ListTagsOutput::builder()
        .set_tags(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

/// A SageMaker `ValidationException` (how it reports missing resources, too).
fn validation(message: &'static str) -> Response<SdkBody> {
    let mut response = Response::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(format!(
            r#"{{"__type":"ValidationException","message":"{message}"}}"#
        )),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    response
}

// --- rules, one call each -------------------------------------------------------------

fn describe_endpoint(output: DescribeEndpointOutput) -> Rule {
    mock!(Client::describe_endpoint)
        .match_requests(|r| r.endpoint_name() == Some(ENDPOINT))
        .then_output(move || output.clone())
}

fn describe_config(output: DescribeEndpointConfigOutput) -> Rule {
    let name = output.endpoint_config_name().unwrap_or_default().to_owned();
    mock!(Client::describe_endpoint_config)
        .match_requests(move |r| r.endpoint_config_name() == Some(name.as_str()))
        .then_output(move || output.clone())
}

fn config_not_found(name: &'static str) -> Rule {
    mock!(Client::describe_endpoint_config)
        .match_requests(move |r| r.endpoint_config_name() == Some(name))
        .then_http_response(|| validation("Could not find endpoint configuration"))
}

fn describe_model(output: DescribeModelOutput) -> Rule {
    let name = output.model_name().unwrap_or_default().to_owned();
    mock!(Client::describe_model)
        .match_requests(move |r| r.model_name() == Some(name.as_str()))
        .then_output(move || output.clone())
}

fn model_not_found(name: &'static str) -> Rule {
    mock!(Client::describe_model)
        .match_requests(move |r| r.model_name() == Some(name))
        .then_http_response(|| validation("Could not find model"))
}

fn list_tags(resource_arn: String, output: ListTagsOutput) -> Rule {
    mock!(Client::list_tags)
        .match_requests(move |r| r.resource_arn() == Some(resource_arn.as_str()))
        .then_output(move || output.clone())
}

/// `CreateModel` of `name` running the new image, everything else as [`model`] has it, the
/// live tags plus deployer's.
fn create_model(name: &'static str) -> Rule {
    mock!(Client::create_model)
        .match_requests(move |r| {
            let expected = model(OLD_MODEL, &new_image());
            r.model_name() == Some(name)
                && r.primary_container() == expected.primary_container()
                && r.execution_role_arn() == Some(ROLE)
                && r.containers.is_none()
                && r.vpc_config().is_none()
                && r.tags()
                    == [
                        Tag::builder().key("team").value("ml").build(),
                        Tag::builder().key(OWNER_TAG).value(ENDPOINT).build(),
                    ]
        })
        .then_output(move || {
            aws_sdk_sagemaker::operation::create_model::CreateModelOutput::builder()
                .model_arn(arn("model", name))
                .build()
        })
}

/// `CreateEndpointConfig` of `name` with `AllTraffic` on `model`.
fn create_config(name: &'static str, model: &'static str) -> Rule {
    mock!(Client::create_endpoint_config)
        .match_requests(move |r| {
            let expected = config(OLD_CONFIG, &[("AllTraffic", model)]);
            r.endpoint_config_name() == Some(name)
                && r.production_variants() == expected.production_variants()
                && r.kms_key_id() == Some("alias/inference")
                && r.tags() == [Tag::builder().key(OWNER_TAG).value(ENDPOINT).build()]
        })
        .then_output(move || {
            aws_sdk_sagemaker::operation::create_endpoint_config::CreateEndpointConfigOutput::builder()
                .endpoint_config_arn(arn("endpoint-config", name))
                .build()
        })
}

/// `UpdateEndpoint` to `config` with retained variant properties and nothing else.
fn update_endpoint(config: &'static str) -> Rule {
    mock!(Client::update_endpoint)
        .match_requests(move |r| {
            r.endpoint_name() == Some(ENDPOINT)
                && r.endpoint_config_name() == Some(config)
                && r.retain_all_variant_properties() == Some(true)
                && r.deployment_config().is_none()
                && r.retain_deployment_config().is_none()
                && r.exclude_retained_variant_properties.is_none()
        })
        .then_output(|| {
            aws_sdk_sagemaker::operation::update_endpoint::UpdateEndpointOutput::builder()
                .endpoint_arn(arn("endpoint", ENDPOINT))
                .build()
        })
}

fn config_summary(name: &str, created: i64) -> EndpointConfigSummary {
    EndpointConfigSummary::builder()
        .endpoint_config_name(name)
        .endpoint_config_arn(arn("endpoint-config", name))
        .creation_time(at(created))
        .build()
}

fn model_summary(name: &str, created: i64) -> ModelSummary {
    ModelSummary::builder()
        .model_name(name)
        .model_arn(arn("model", name))
        .creation_time(at(created))
        .build()
}

fn list_configs(configs: Vec<EndpointConfigSummary>) -> Rule {
    mock!(Client::list_endpoint_configs)
        .match_requests(|r| r.name_contains() == Some(ENDPOINT))
        .then_output(move || {
            ListEndpointConfigsOutput::builder()
                .set_endpoint_configs(Some(configs.clone()))
                .build()
        })
}

fn list_models(models: Vec<ModelSummary>) -> Rule {
    mock!(Client::list_models)
        .match_requests(|r| r.name_contains() == Some(ENDPOINT))
        .then_output(move || {
            ListModelsOutput::builder()
                .set_models(Some(models.clone()))
                .build()
        })
}

// --- flows ----------------------------------------------------------------------------

/// The endpoint before the update: InService on the infrastructure's config and model.
fn read_rules() -> Vec<Rule> {
    vec![
        describe_endpoint(endpoint(EndpointStatus::InService, OLD_CONFIG, None)),
        describe_config(config(OLD_CONFIG, &[("AllTraffic", OLD_MODEL)])),
        describe_model(model(OLD_MODEL, &old_image())),
    ]
}

/// `apply` after `read_live`: the endpoint again, tags, the copies, the update.
fn apply_rules() -> Vec<Rule> {
    vec![
        describe_endpoint(endpoint(EndpointStatus::InService, OLD_CONFIG, None)),
        list_tags(
            arn("model", OLD_MODEL),
            tags(&[("team", "ml"), ("aws:cloudformation:stack-name", "infra")]),
        ),
        model_not_found(NEW_MODEL),
        create_model(NEW_MODEL),
        list_tags(arn("endpoint-config", OLD_CONFIG), tags(&[])),
        config_not_found(NEW_CONFIG),
        create_config(NEW_CONFIG, NEW_MODEL),
        update_endpoint(NEW_CONFIG),
    ]
}

/// Cleanup with nothing to delete: only the new and the old config and models exist.
fn quiet_cleanup_rules() -> Vec<Rule> {
    vec![
        list_configs(vec![
            config_summary(NEW_CONFIG, 100),
            config_summary(OLD_CONFIG, 0),
        ]),
        describe_config(config(NEW_CONFIG, &[("AllTraffic", NEW_MODEL)])),
        describe_config(config(OLD_CONFIG, &[("AllTraffic", OLD_MODEL)])),
        list_models(vec![
            model_summary(NEW_MODEL, 99),
            model_summary(OLD_MODEL, 0),
        ]),
    ]
}

/// `DescribeEndpoint` polls answering `states` in order.
fn polls(states: Vec<DescribeEndpointOutput>) -> Rule {
    let mut sequence = mock!(Client::describe_endpoint).sequence();
    for state in states {
        sequence = sequence.output(move || state.clone());
    }
    sequence.build()
}

fn refs(rules: &[Rule]) -> Vec<&Rule> {
    rules.iter().collect()
}
