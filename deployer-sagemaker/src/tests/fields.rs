//! Field preservation: a model and an endpoint config with every member set, served as real
//! `DescribeModel` / `DescribeEndpointConfig` JSON responses, go through `read_live` and
//! `apply`; the JSON bodies sent to `CreateModel` and `CreateEndpointConfig` must equal what was
//! read, except the targeted images, the model names of the targeted variants, the names and
//! the read-only members.
//!
//! "Every member" is checked against the SDK's own schemas, so that an SDK upgrade that brings a
//! new member fails here until the fixture sets it and the copy handles it (or the member is
//! declared read-only).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::operation::create_endpoint_config::CreateEndpointConfigInput;
use aws_sdk_sagemaker::operation::create_model::CreateModelInput;
use aws_sdk_sagemaker::operation::describe_endpoint_config::DescribeEndpointConfigOutput;
use aws_sdk_sagemaker::operation::describe_model::DescribeModelOutput;
use aws_sdk_sagemaker::operation::update_endpoint::UpdateEndpointInput;
use aws_smithy_http_client_test_util::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::http::Request;
use aws_smithy_schema::Schema;
use aws_smithy_schema::serde::{SerdeError, SerializableStruct, ShapeSerializer};
use aws_smithy_types::{BigDecimal, BigInteger, Blob, Document};
use deployer_core::{DeployError, Deployer};
use serde_json::{Value, json};

use super::*;
use crate::fields::{
    CONFIG_COPIED, CONFIG_READ_ONLY, CONFIG_SET_BY_DEPLOYER, MODEL_COPIED, MODEL_READ_ONLY,
    MODEL_SET_BY_DEPLOYER, UPDATE_ENDPOINT,
};

/// `DescribeModel`: every member of every structure set at least once. The primary container
/// and the second pipeline container run the service's image; the first runs another one.
const MODEL_FIXTURE: &str = include_str!("describe-model.json");
/// `DescribeEndpointConfig`: every member set; `AllTraffic` runs the model above.
const CONFIG_FIXTURE: &str = include_str!("describe-endpoint-config.json");
/// The secret-looking environment value of the fixture.
const FIXTURE_SECRET: &str = "not-a-secret-but-treated-as-one";

fn model_fixture() -> Value {
    serde_json::from_str(MODEL_FIXTURE).unwrap()
}

fn config_fixture() -> Value {
    serde_json::from_str(CONFIG_FIXTURE).unwrap()
}

fn response(status: u16, body: Value) -> Response<SdkBody> {
    let mut response = Response::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    response
}

fn event(body: Value) -> ReplayEvent {
    ReplayEvent::new(Request::new(SdkBody::empty()), response(200, body))
}

fn not_found(message: &str) -> ReplayEvent {
    ReplayEvent::new(
        Request::new(SdkBody::empty()),
        response(
            400,
            json!({"__type": "ValidationException", "message": message}),
        ),
    )
}

fn small_model(name: &str, image: &str) -> Value {
    json!({
        "ModelName": name,
        "ModelArn": arn("model", name),
        "PrimaryContainer": {"Image": image},
        "ExecutionRoleArn": ROLE
    })
}

fn live_endpoint() -> Value {
    json!({
        "EndpointName": ENDPOINT, "EndpointArn": arn("endpoint", ENDPOINT),
        "EndpointConfigName": OLD_CONFIG, "EndpointStatus": "InService",
        "CreationTime": 1700000000, "LastModifiedTime": 1700000000
    })
}

fn model_tags() -> Value {
    json!({"Tags": [
        {"Key": "team", "Value": "ml"},
        {"Key": "aws:cloudformation:stack-name", "Value": "infra"},
        {"Key": OWNER_TAG, "Value": "some-other-endpoint"}
    ]})
}

fn config_tags() -> Value {
    json!({"Tags": [{"Key": "cost-center", "Value": "42"}]})
}

/// A client answering, in order, a `read_live` then an `apply` of the fixtures.
fn replay_with(model: Value, config: Value) -> StaticReplayClient {
    StaticReplayClient::new(vec![
        // read_live
        event(live_endpoint()),
        event(config),
        event(model),
        event(small_model(
            "acme-tokenizer-model",
            &format!("{OTHER_REPO}:v7"),
        )),
        event(small_model(
            "acme-inference-candidate",
            &format!("{REPO}:candidate"),
        )),
        // apply
        event(live_endpoint()),
        event(model_tags()),
        not_found("Could not find model"),
        event(json!({"ModelArn": arn("model", NEW_MODEL)})),
        event(config_tags()),
        not_found("Could not find endpoint configuration"),
        event(json!({"EndpointConfigArn": arn("endpoint-config", NEW_CONFIG)})),
        event(json!({"EndpointArn": arn("endpoint", ENDPOINT)})),
    ])
}

fn replay_client(http: &StaticReplayClient) -> Client {
    Client::from_conf(
        aws_sdk_sagemaker::Config::builder()
            .with_test_defaults_v2()
            .http_client(http.clone())
            .build(),
    )
}

/// What `CreateModel` must receive: the fixture without the read-only members, the service's
/// containers on the new image, the new name, the copied tags.
fn expected_model_request() -> Value {
    let mut expected = model_fixture();
    let object = expected.as_object_mut().unwrap();
    for field in MODEL_READ_ONLY {
        object.remove(*field);
    }
    object["PrimaryContainer"]["Image"] = json!(new_image());
    object["Containers"][1]["Image"] = json!(new_image());
    object.insert("ModelName".into(), json!(NEW_MODEL));
    object.insert(
        "Tags".into(),
        json!([{"Key": "team", "Value": "ml"}, {"Key": OWNER_TAG, "Value": ENDPOINT}]),
    );
    expected
}

/// What `CreateEndpointConfig` must receive: the fixture without the read-only members,
/// `AllTraffic` on the new model, the new name, the copied tags.
fn expected_config_request() -> Value {
    let mut expected = config_fixture();
    let object = expected.as_object_mut().unwrap();
    for field in CONFIG_READ_ONLY {
        object.remove(*field);
    }
    object["ProductionVariants"][0]["ModelName"] = json!(NEW_MODEL);
    object.insert("EndpointConfigName".into(), json!(NEW_CONFIG));
    object.insert(
        "Tags".into(),
        json!([{"Key": "cost-center", "Value": "42"}, {"Key": OWNER_TAG, "Value": ENDPOINT}]),
    );
    expected
}

/// Every leaf by path: `PrimaryContainer.ImageConfig.RepositoryAccessMode` → value.
fn leaves(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                leaves(value, path, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, format!("{path}[{i}]"), out);
            }
        }
        other => {
            out.insert(path, other.clone());
        }
    }
}

fn by_path(value: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    leaves(value, String::new(), &mut out);
    out
}

/// `1` and `1.0` are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-6,
        _ => a == b,
    }
}

/// Field-by-field differences between `sent` and `expected`, each naming the field.
fn compare(sent: &Value, expected: &Value) -> Vec<String> {
    let (sent, expected) = (by_path(sent), by_path(expected));
    let mut problems = Vec::new();
    for (path, value) in &expected {
        match sent.get(path) {
            None => problems.push(format!("dropped: {path} (read {value})")),
            Some(got) if !same(got, value) => {
                problems.push(format!("changed: {path}: read {value}, sent {got}"))
            }
            Some(_) => {}
        }
    }
    for (path, value) in &sent {
        if !expected.contains_key(path) {
            problems.push(format!("unexpected: {path} = {value}"));
        }
    }
    problems
}

/// The paths read that were not sent as read.
fn changed_from_read(read: &Value, sent: &Value) -> BTreeSet<String> {
    let sent = by_path(sent);
    by_path(read)
        .into_iter()
        .filter(|(path, value)| !sent.get(path).is_some_and(|got| same(got, value)))
        .map(|(path, _)| path)
        .collect()
}

fn operation(request: &aws_smithy_runtime_api::http::Request<SdkBody>) -> String {
    request
        .headers()
        .get("x-amz-target")
        .unwrap_or_default()
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn body(request: &aws_smithy_runtime_api::http::Request<SdkBody>) -> Value {
    serde_json::from_slice(request.body().bytes().unwrap()).unwrap()
}

#[tokio::test]
async fn create_requests_keep_every_field_of_the_live_model_and_config() {
    let http = replay_with(model_fixture(), config_fixture());
    let deployer = SagemakerDeployer::new(replay_client(&http), target(None), REPO.into());
    let (progress, sink) = collecting();

    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, Some(old_image()));
    assert_eq!(live.ids["variants"], "AllTraffic");
    assert!(!live.summary.contains(FIXTURE_SECRET), "{}", live.summary);
    let applied = deployer.apply(&live, &wanted(), &progress).await.unwrap();
    assert_eq!(applied.ids["models"], NEW_MODEL);
    assert_eq!(applied.ids["endpoint_config"], NEW_CONFIG);
    for message in messages(&sink) {
        assert!(!message.contains(FIXTURE_SECRET), "{message}");
    }

    let requests: Vec<_> = http.actual_requests().collect();
    let operations: Vec<String> = requests.iter().map(|r| operation(r)).collect();
    assert_eq!(
        operations,
        [
            "DescribeEndpoint",
            "DescribeEndpointConfig",
            "DescribeModel",
            "DescribeModel",
            "DescribeModel",
            "DescribeEndpoint",
            "ListTags",
            "DescribeModel",
            "CreateModel",
            "ListTags",
            "DescribeEndpointConfig",
            "CreateEndpointConfig",
            "UpdateEndpoint",
        ]
    );

    // CreateModel: field by field, so that a failure names the field, then whole.
    let sent = body(requests[8]);
    let problems = compare(&sent, &expected_model_request());
    assert!(
        problems.is_empty(),
        "CreateModel differs from the live model:\n{}",
        problems.join("\n")
    );
    assert_eq!(sent, expected_model_request());
    let changed = changed_from_read(&model_fixture(), &sent);
    for path in &changed {
        let top = path.split(['.', '[']).next().unwrap();
        assert!(
            MODEL_READ_ONLY.contains(&top)
                || path == "PrimaryContainer.Image"
                || path == "Containers[1].Image",
            "{path} was read but not sent as read"
        );
    }
    assert!(changed.contains("PrimaryContainer.Image") && changed.contains("Containers[1].Image"));
    assert!(
        !changed.contains("Containers[0].Image"),
        "another repository's image is kept"
    );

    // CreateEndpointConfig.
    let sent = body(requests[11]);
    let problems = compare(&sent, &expected_config_request());
    assert!(
        problems.is_empty(),
        "CreateEndpointConfig differs from the live config:\n{}",
        problems.join("\n")
    );
    assert_eq!(sent, expected_config_request());
    for path in changed_from_read(&config_fixture(), &sent) {
        let top = path.split(['.', '[']).next().unwrap();
        assert!(
            CONFIG_READ_ONLY.contains(&top) || path == "ProductionVariants[0].ModelName",
            "{path} was read but not sent as read"
        );
    }

    // UpdateEndpoint changes the config and keeps the live variant properties.
    assert_eq!(
        body(requests[12]),
        json!({"EndpointName": ENDPOINT, "EndpointConfigName": NEW_CONFIG, "RetainAllVariantProperties": true})
    );
}

/// Members AWS returns that this SDK does not model cannot be carried over: an unknown
/// top-level member stops the deploy before anything is created, naming the members, never the
/// values.
#[tokio::test]
async fn model_members_the_sdk_does_not_know_are_refused_not_dropped() {
    let mut model = model_fixture();
    model["FutureTopLevel"] = json!("s3cr3t-value");
    let http = replay_with(model, config_fixture());
    let deployer = SagemakerDeployer::new(replay_client(&http), target(None), REPO.into());
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &Progress::discard("inference"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
    assert!(
        message.contains("model acme-inference-model-1 has fields")
            && message.contains("`FutureTopLevel`")
            && message.contains("upgrade deployer"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
    let operations: Vec<String> = http.actual_requests().map(operation).collect();
    assert!(
        !operations
            .iter()
            .any(|o| o.starts_with("Create") || o == "UpdateEndpoint"),
        "{operations:?}"
    );
}

/// A nested unknown member is caught by the body check when the copy is serialized: the request
/// never leaves.
#[tokio::test]
async fn nested_model_members_the_sdk_does_not_know_are_refused_when_sending() {
    let mut model = model_fixture();
    model["PrimaryContainer"]["FutureSetting"] = json!({"Mode": "s3cr3t-mode"});
    model["Containers"][0]["ImageConfig"] = json!({"FutureAuth": "x"});
    let http = replay_with(model, config_fixture());
    let deployer = SagemakerDeployer::new(replay_client(&http), target(None), REPO.into());
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &Progress::discard("inference"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message
            .contains("`Containers[0].ImageConfig.FutureAuth`, `PrimaryContainer.FutureSetting`"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
    // Nothing after the lookup of the new name: CreateModel was stopped before it left.
    let operations: Vec<String> = http.actual_requests().map(operation).collect();
    assert_eq!(
        operations.last().map(String::as_str),
        Some("DescribeModel"),
        "{operations:?}"
    );
}

#[tokio::test]
async fn config_members_the_sdk_does_not_know_are_refused_not_dropped() {
    let mut config = config_fixture();
    config["FutureTopLevel"] = json!("x");
    let http = replay_with(model_fixture(), config);
    let deployer = SagemakerDeployer::new(replay_client(&http), target(None), REPO.into());
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &Progress::discard("inference"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("endpoint config acme-inference-config-1 has fields")
            && message.contains("`FutureTopLevel`"),
        "{message}"
    );
    let operations: Vec<String> = http.actual_requests().map(operation).collect();
    assert!(
        !operations
            .iter()
            .any(|o| o.starts_with("Create") || o == "UpdateEndpoint"),
        "{operations:?}"
    );
}

/// A nested unknown member of the config is caught when the config is sent (the new model
/// exists by then: a re-run reuses it, a later cleanup deletes it).
#[tokio::test]
async fn nested_config_members_the_sdk_does_not_know_are_refused_when_sending() {
    let mut config = config_fixture();
    config["ProductionVariants"][1]["FutureScaling"] = json!({"Max": 9});
    let http = replay_with(model_fixture(), config);
    let deployer = SagemakerDeployer::new(replay_client(&http), target(None), REPO.into());
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &Progress::discard("inference"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("endpoint config acme-inference-config-1 has fields")
            && message.contains("`ProductionVariants[1].FutureScaling`"),
        "{message}"
    );
    let operations: Vec<String> = http.actual_requests().map(operation).collect();
    assert!(
        !operations
            .iter()
            .any(|o| o == "CreateEndpointConfig" || o == "UpdateEndpoint"),
        "{operations:?}"
    );
}

fn names(schema: &Schema<'_>) -> BTreeSet<String> {
    schema
        .members()
        .iter()
        .filter_map(|m| m.member_name())
        .map(str::to_owned)
        .collect()
}

/// Checks one copy's tables against the SDK's shapes: every member of the Describe output is
/// copied or read-only, every member of the Create input is copied or set by deployer.
fn check_tables(
    describe: &Schema<'_>,
    create: &Schema<'_>,
    copied: &[&str],
    read_only: &[&str],
    set_by_deployer: &[&str],
    what: &str,
) {
    let (describe, create) = (names(describe), names(create));
    assert!(
        describe.len() >= 4 && create.len() >= 4,
        "{describe:?} {create:?}"
    );
    for member in &describe {
        assert!(
            copied.contains(&member.as_str()) || read_only.contains(&member.as_str()),
            "{what}: the Describe output's `{member}` is new in the SDK: copy it (ModelSpec/ConfigSpec in copy.rs, \
             the request in lib.rs) and list it in fields.rs and the crate doc, or list it as read-only; \
             then set it in the fixture"
        );
    }
    for member in &create {
        assert!(
            copied.contains(&member.as_str()) || set_by_deployer.contains(&member.as_str()),
            "{what}: the Create input's `{member}` is new in the SDK and not filled from the live resource"
        );
    }
    for member in copied {
        assert!(
            describe.contains(*member) && create.contains(*member),
            "{what}: {member} is not in both shapes"
        );
    }
    for member in read_only {
        assert!(
            describe.contains(*member),
            "{what}: {member} is gone from the SDK"
        );
    }
}

/// The tables of fields.rs against the SDK's schemas. A new SDK member fails here until
/// someone decides.
#[test]
fn every_sdk_member_is_copied_or_read_only() {
    check_tables(
        DescribeModelOutput::SCHEMA,
        CreateModelInput::SCHEMA,
        MODEL_COPIED,
        MODEL_READ_ONLY,
        MODEL_SET_BY_DEPLOYER,
        "model",
    );
    check_tables(
        DescribeEndpointConfigOutput::SCHEMA,
        CreateEndpointConfigInput::SCHEMA,
        CONFIG_COPIED,
        CONFIG_READ_ONLY,
        CONFIG_SET_BY_DEPLOYER,
        "endpoint config",
    );
    let update = names(UpdateEndpointInput::SCHEMA);
    let ours: BTreeSet<String> = UPDATE_ENDPOINT
        .iter()
        .map(|(m, _)| (*m).to_owned())
        .collect();
    assert_eq!(
        update, ours,
        "UpdateEndpointInput changed with the SDK: decide what deployer sends (fields::UPDATE_ENDPOINT)"
    );
}

#[test]
fn the_crate_doc_lists_every_copied_field() {
    let doc: String = include_str!("../lib.rs")
        .lines()
        .take_while(|line| line.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    for member in MODEL_COPIED.iter().chain(CONFIG_COPIED) {
        assert!(
            doc.contains(&format!("`{member}`")),
            "the crate doc does not list `{member}`"
        );
    }
}

/// Records, for every structure serialized, which of its members were written.
#[derive(Default)]
struct Coverage {
    /// Structure name → all its members (from its schema).
    members: BTreeMap<String, BTreeSet<String>>,
    /// (structure, member) written at least once.
    written: BTreeSet<(String, String)>,
}

impl Coverage {
    fn note(&mut self, schema: &Schema<'_>) {
        // Member schemas carry their name and, as shape id, `namespace#Parent$member`.
        if let Some(member) = schema.member_name() {
            self.written
                .insert((schema.shape_id().shape_name().to_owned(), member.to_owned()));
        }
    }

    fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for (shape, members) in &self.members {
            for member in members {
                if !self.written.contains(&(shape.clone(), member.clone())) {
                    missing.push(format!("{shape}.{member}"));
                }
            }
        }
        missing
    }

    fn visit(&mut self, value: &dyn SerializableStruct) -> Result<(), SerdeError> {
        let schema = value.schema();
        self.members
            .insert(schema.shape_id().shape_name().to_owned(), names(schema));
        value.serialize_members(self)
    }
}

impl ShapeSerializer for Coverage {
    fn write_struct(
        &mut self,
        schema: &Schema<'_>,
        value: &dyn SerializableStruct,
    ) -> Result<(), SerdeError> {
        self.note(schema);
        self.visit(value)
    }
    fn write_list(
        &mut self,
        schema: &Schema<'_>,
        write_elements: &dyn Fn(&mut dyn ShapeSerializer) -> Result<(), SerdeError>,
    ) -> Result<(), SerdeError> {
        self.note(schema);
        write_elements(self)
    }
    fn write_map(
        &mut self,
        schema: &Schema<'_>,
        write_entries: &dyn Fn(&mut dyn ShapeSerializer) -> Result<(), SerdeError>,
    ) -> Result<(), SerdeError> {
        self.note(schema);
        write_entries(self)
    }
    fn write_boolean(&mut self, schema: &Schema<'_>, _: bool) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_byte(&mut self, schema: &Schema<'_>, _: i8) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_short(&mut self, schema: &Schema<'_>, _: i16) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_integer(&mut self, schema: &Schema<'_>, _: i32) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_long(&mut self, schema: &Schema<'_>, _: i64) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_float(&mut self, schema: &Schema<'_>, _: f32) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_double(&mut self, schema: &Schema<'_>, _: f64) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_big_integer(&mut self, schema: &Schema<'_>, _: &BigInteger) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_big_decimal(&mut self, schema: &Schema<'_>, _: &BigDecimal) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_string(&mut self, schema: &Schema<'_>, _: &str) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_blob(&mut self, schema: &Schema<'_>, _: Blob) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_timestamp(&mut self, schema: &Schema<'_>, _: &DateTime) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_document(&mut self, schema: &Schema<'_>, _: &Document) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
    fn write_null(&mut self, schema: &Schema<'_>) -> Result<(), SerdeError> {
        self.note(schema);
        Ok(())
    }
}

/// The fixtures set every member of the Describe outputs and of every structure inside them
/// (containers, data sources, variants, scaling, routing, capture, async and explainer
/// configs, …): read through the SDK and walked along the SDK's schemas. A member the SDK gains
/// fails here until the fixture sets it, and then the comparison above proves it is copied.
#[tokio::test]
async fn the_fixtures_set_every_member_the_sdk_knows() {
    let http = StaticReplayClient::new(vec![event(model_fixture()), event(config_fixture())]);
    let client = replay_client(&http);
    let model = client
        .describe_model()
        .model_name(OLD_MODEL)
        .send()
        .await
        .unwrap();
    let config = client
        .describe_endpoint_config()
        .endpoint_config_name(OLD_CONFIG)
        .send()
        .await
        .unwrap();
    let mut coverage = Coverage::default();
    coverage.visit(&model).unwrap();
    coverage.visit(&config).unwrap();
    let missing = coverage.missing();
    assert!(missing.is_empty(), "the fixtures do not set: {missing:#?}");
    for shape in [
        "DescribeModelOutput",
        "ContainerDefinition",
        "S3ModelDataSource",
        "DescribeEndpointConfigOutput",
        "ProductionVariant",
        "ProductionVariantManagedInstanceScaling",
        "ClarifyShapConfig",
    ] {
        assert!(
            coverage.members.contains_key(shape),
            "{shape} not visited: {:?}",
            coverage.members.keys()
        );
    }
}
