//! Field preservation: a task definition with every member set, served as a real
//! `DescribeTaskDefinition` JSON response, goes through `read_live` and `apply`; the JSON body
//! sent to `RegisterTaskDefinition` must equal what was read, except the target container's image
//! and the read-only members.
//!
//! "Every member" is checked against the SDK's own schemas, so that an SDK upgrade that brings a
//! new member fails here until the fixture sets it and the copy handles it (or the member is
//! declared read-only).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput;
use aws_sdk_ecs::types::TaskDefinition;
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::http::{Request, Response, StatusCode};
use aws_smithy_schema::Schema;
use aws_smithy_schema::serde::{SerdeError, SerializableStruct, ShapeSerializer};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::{BigDecimal, BigInteger, Blob, DateTime, Document};
use deployer_core::Deployer;
use serde_json::{Value, json};

use super::*;
use crate::{COPIED_FIELDS, EcsDeployer, FROM_DESCRIBE_OUTPUT, READ_ONLY_FIELDS};

/// The `DescribeTaskDefinition` response: every member of every structure set at least once.
const FIXTURE: &str = include_str!("describe-task-definition.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).unwrap()
}

fn response(body: Value) -> Response<SdkBody> {
    let mut response = Response::new(
        StatusCode::try_from(200).unwrap(),
        SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    response
}

fn event(body: Value) -> ReplayEvent {
    ReplayEvent::new(Request::new(SdkBody::empty()), response(body))
}

/// A client answering, in order: DescribeServices, DescribeTaskDefinition (the fixture),
/// DescribeTaskDefinition of the family (the fixture again: nothing newer to reuse),
/// RegisterTaskDefinition, UpdateService.
fn replay() -> StaticReplayClient {
    replay_with(fixture())
}

/// Like [`replay`], with `describe` as the `DescribeTaskDefinition` response.
fn replay_with(describe: Value) -> StaticReplayClient {
    let deployments = |td: &str, id: &str| json!([{"id": id, "status": "PRIMARY", "taskDefinition": td, "rolloutState": "IN_PROGRESS", "desiredCount": 2, "runningCount": 0, "pendingCount": 0}]);
    StaticReplayClient::new(vec![
        event(json!({"services": [{
            "serviceArn": SERVICE_ARN, "serviceName": SERVICE, "clusterArn": CLUSTER_ARN, "status": "ACTIVE",
            "taskDefinition": OLD_TD, "desiredCount": 2, "runningCount": 2, "pendingCount": 0,
            "deployments": deployments(OLD_TD, OLD_DEPLOYMENT), "events": []
        }], "failures": []})),
        event(describe.clone()),
        event(describe),
        event(
            json!({"taskDefinition": {"taskDefinitionArn": NEW_TD, "family": "app-api", "revision": 8}}),
        ),
        event(json!({"service": {
            "serviceArn": SERVICE_ARN, "serviceName": SERVICE, "clusterArn": CLUSTER_ARN, "status": "ACTIVE",
            "taskDefinition": NEW_TD, "deployments": deployments(NEW_TD, NEW_DEPLOYMENT)
        }})),
    ])
}

fn replay_client(http: &StaticReplayClient) -> Client {
    Client::from_conf(
        aws_sdk_ecs::Config::builder()
            .with_test_defaults_v2()
            .http_client(http.clone())
            .build(),
    )
}

/// What `RegisterTaskDefinition` must receive: the fixture's task definition without the
/// read-only members, `web` on the new image, the user tags.
fn expected_request() -> Value {
    let fixture = fixture();
    let mut expected = fixture["taskDefinition"].clone();
    let object = expected.as_object_mut().unwrap();
    for field in READ_ONLY_FIELDS {
        object.remove(*field);
    }
    object["containerDefinitions"][0]["image"] = json!(new_image());
    let tags: Vec<Value> = fixture["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|tag| !tag["key"].as_str().unwrap().starts_with("aws:"))
        .cloned()
        .collect();
    object.insert("tags".into(), Value::Array(tags));
    expected
}

/// Every leaf of `left` and `right` by path: `containerDefinitions[0].secrets[1].valueFrom` →
/// value.
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

#[tokio::test]
async fn register_request_keeps_every_field_of_the_live_task_definition() {
    let http = replay();
    let deployer = EcsDeployer::new(replay_client(&http), target(Some("web"), false));
    let progress = Progress::discard(SERVICE);

    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, Some(old_image()));
    assert!(
        !live.summary.contains("not-a-secret"),
        "the summary shows no environment: {}",
        live.summary
    );
    let applied = deployer.apply(&live, &wanted(), &progress).await.unwrap();
    assert_eq!(applied.ids["task_definition"], NEW_TD);
    assert_eq!(applied.ids["deployment"], NEW_DEPLOYMENT);

    let requests: Vec<_> = http.actual_requests().collect();
    assert_eq!(requests.len(), 5);
    let target = |i: usize| {
        requests[i]
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        target(3).ends_with(".RegisterTaskDefinition"),
        "{}",
        target(3)
    );
    let sent: Value = serde_json::from_slice(requests[3].body().bytes().unwrap()).unwrap();

    // Field by field, so that a failure names the field.
    let (sent_leaves, expected_leaves) = (by_path(&sent), by_path(&expected_request()));
    let read_leaves = by_path(&fixture()["taskDefinition"]);
    let mut problems = Vec::new();
    for (path, value) in &expected_leaves {
        match sent_leaves.get(path) {
            None => problems.push(format!("dropped: {path} (read {value})")),
            Some(sent) if sent != value => {
                problems.push(format!("changed: {path}: read {value}, sent {sent}"))
            }
            Some(_) => {}
        }
    }
    for (path, value) in &sent_leaves {
        if !expected_leaves.contains_key(path) {
            problems.push(format!("unexpected: {path} = {value}"));
        }
    }
    assert!(
        problems.is_empty(),
        "RegisterTaskDefinition differs from the live task definition:\n{}",
        problems.join("\n")
    );
    // The whole body, to be sure (order-insensitive JSON equality).
    assert_eq!(sent, expected_request());

    // The only differences from what was read: the image and the read-only members.
    let changed: BTreeSet<&str> = read_leaves
        .iter()
        .filter(|(path, value)| sent_leaves.get(*path) != Some(value))
        .map(|(path, _)| path.as_str())
        .collect();
    for path in &changed {
        let top = path.split(['.', '[']).next().unwrap();
        assert!(
            READ_ONLY_FIELDS.contains(&top) || *path == "containerDefinitions[0].image",
            "{path} was read but not sent as read"
        );
    }
    assert!(changed.contains("containerDefinitions[0].image"));
    assert!(
        sent["secrets"].is_null()
            && sent["containerDefinitions"][0]["secrets"]
                .as_array()
                .unwrap()
                .len()
                == 2
    );
    assert!(
        !sent["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|tag| tag["key"] == "aws:cloudformation:stack-name")
    );

    // UpdateService changes the task definition and nothing else.
    let update: Value = serde_json::from_slice(requests[4].body().bytes().unwrap()).unwrap();
    assert_eq!(
        update,
        json!({"cluster": CLUSTER, "service": SERVICE, "taskDefinition": NEW_TD})
    );
    // And the reads asked for the tags.
    let describe: Value = serde_json::from_slice(requests[1].body().bytes().unwrap()).unwrap();
    assert_eq!(
        describe,
        json!({"taskDefinition": OLD_TD, "include": ["TAGS"]})
    );
}

/// A member AWS returns that this SDK does not model (top level or nested) cannot be carried
/// over: the raw-body check refuses before anything is registered, naming the paths, never the
/// values.
#[tokio::test]
async fn members_the_sdk_does_not_know_are_refused_not_dropped() {
    let mut describe = fixture();
    describe["taskDefinition"]["containerDefinitions"][0]["futureSetting"] =
        json!({"mode": "s3cr3t-mode"});
    describe["taskDefinition"]["futureTopLevel"] = json!(true);
    let http = replay_with(describe);
    let deployer = EcsDeployer::new(replay_client(&http), target(Some("web"), false));
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &Progress::discard(SERVICE))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, deployer_core::DeployError::Mismatch(_)),
        "{error:?}"
    );
    assert!(
        message.contains("`containerDefinitions[0].futureSetting`, `futureTopLevel`")
            && message.contains("upgrade deployer"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
    // DescribeServices and DescribeTaskDefinition (the live revision, then the family's latest)
    // only: RegisterTaskDefinition never left.
    assert_eq!(http.actual_requests().count(), 3);
}

/// Every member of the SDK's `TaskDefinition` is either copied or read-only, and every member of
/// `RegisterTaskDefinitionInput` is filled. A new SDK member fails here until someone decides.
#[test]
fn every_sdk_member_is_copied_or_read_only() {
    let names = |schema: &Schema<'_>| -> BTreeSet<String> {
        schema
            .members()
            .iter()
            .filter_map(|m| m.member_name())
            .map(str::to_owned)
            .collect()
    };
    let task_definition = names(TaskDefinition::SCHEMA);
    let register = names(RegisterTaskDefinitionInput::SCHEMA);
    assert!(
        task_definition.len() > 20 && register.len() > 15,
        "{task_definition:?} {register:?}"
    );
    for member in &task_definition {
        assert!(
            COPIED_FIELDS.contains(&member.as_str()) || READ_ONLY_FIELDS.contains(&member.as_str()),
            "TaskDefinition.{member} is new in the SDK: copy it in taskdef::new_revision and list it in \
             COPIED_FIELDS, or list it in READ_ONLY_FIELDS if RegisterTaskDefinition does not take it; \
             then set it in the fixture"
        );
    }
    for member in &register {
        assert!(
            COPIED_FIELDS.contains(&member.as_str())
                || FROM_DESCRIBE_OUTPUT.contains(&member.as_str()),
            "RegisterTaskDefinitionInput.{member} is new in the SDK and not filled from the live task definition"
        );
    }
    for member in COPIED_FIELDS {
        assert!(
            task_definition.contains(*member) && register.contains(*member),
            "{member} is not in both shapes"
        );
    }
    for member in READ_ONLY_FIELDS {
        assert!(
            task_definition.contains(*member) && !register.contains(*member),
            "{member}"
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
        let members = schema
            .members()
            .iter()
            .filter_map(|m| m.member_name())
            .map(str::to_owned)
            .collect();
        self.members
            .insert(schema.shape_id().shape_name().to_owned(), members);
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

/// The fixture sets every member of `TaskDefinition` and of every structure inside it (container
/// definitions, volumes, linux parameters, …) at least once, and the tags: read through the SDK
/// and walked along the SDK's schemas. A member the SDK gains fails here until the fixture sets
/// it, and then the comparison above proves it is copied.
#[tokio::test]
async fn the_fixture_sets_every_member_the_sdk_knows() {
    let http = StaticReplayClient::new(vec![event(fixture())]);
    let output = replay_client(&http)
        .describe_task_definition()
        .task_definition(OLD_TD)
        .send()
        .await
        .unwrap();
    let mut coverage = Coverage::default();
    coverage.visit(output.task_definition().unwrap()).unwrap();
    for tag in output.tags() {
        coverage.visit(tag).unwrap();
    }
    let missing = coverage.missing();
    assert!(missing.is_empty(), "the fixture does not set: {missing:#?}");
    for shape in [
        "TaskDefinition",
        "ContainerDefinition",
        "LinuxParameters",
        "Volume",
        "FSxWindowsFileServerAuthorizationConfig",
        "Tag",
    ] {
        assert!(
            coverage.members.contains_key(shape),
            "{shape} not visited: {:?}",
            coverage.members.keys()
        );
    }
}
