//! The run-time half of "nothing is dropped": the raw JSON of the response a full replacement
//! is copied from ([`ResponseRecorder`]), held against the raw JSON body of the request that
//! sends it back ([`BodyCheck`]).
//!
//! The SDK deserializes only the members its model knows; a member AWS added since (at the top
//! level, or nested in a structure the SDK knows) is skipped without a word, and a copy built
//! from the SDK's value would silently lose it. So the response is recorded raw, and the
//! serialized request is checked before it is sent: every member expected (what was read, as
//! the deployer decides: the read-only members aside, the image replaced) must be sent exactly
//! as expected, or the request is not sent at all.
//!
//! One comparison rule for every deployer: `null` and an absent member are the same, numbers
//! compare by value (`1` and `1.0`), arrays element by element, objects member by member; what
//! the body sends beyond the members expected is either the SDK's defaults ([`Unread::Allowed`])
//! or a difference too ([`Unread::Refused`]). Differences are member paths
//! (`containerDefinitions[0].linuxParameters.tmpfs`), sorted, never values.
//!
//! The raw JSON contains environment values: nothing here prints it (the `Debug`
//! implementations show member names only).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{Map, Value};

/// A JSON object.
pub type Object = Map<String, Value>;

/// A raw JSON response object, shared cheaply. Its `Debug` form lists member names only.
#[derive(Clone, PartialEq)]
pub struct RawJson(Arc<Object>);

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawJson")
            .field("members", &self.members())
            .finish()
    }
}

impl From<Object> for RawJson {
    fn from(object: Object) -> Self {
        RawJson(Arc::new(object))
    }
}

/// A JSON object; any other value is given back.
impl TryFrom<Value> for RawJson {
    type Error = Value;

    fn try_from(value: Value) -> Result<Self, Value> {
        match value {
            Value::Object(object) => Ok(RawJson::from(object)),
            other => Err(other),
        }
    }
}

impl RawJson {
    /// The member `name`, as read.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The object member `name` (e.g. `taskDefinition` of `DescribeTaskDefinition`), as a
    /// [`RawJson`] of its own.
    pub fn nested(&self, name: &str) -> Option<RawJson> {
        self.get(name)
            .and_then(Value::as_object)
            .map(|object| RawJson::from(object.clone()))
    }

    /// The top-level member names, sorted.
    pub fn members(&self) -> Vec<&str> {
        let mut members: Vec<&str> = self.0.keys().map(String::as_str).collect();
        members.sort_unstable();
        members
    }

    /// The members `names` that were read and are not `null`, without `null`s inside: what a
    /// copy that carries exactly these members must send.
    pub fn select<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Object {
        names
            .into_iter()
            .filter_map(|name| {
                let value = without_nulls(self.get(name)?.clone())?;
                Some((name.to_owned(), value))
            })
            .collect()
    }

    /// Every member read but the `read_only` ones, without `null`s: what a copy must send.
    pub fn writable(&self, read_only: &[&str]) -> Object {
        self.select(
            self.0
                .keys()
                .map(String::as_str)
                .filter(|name| !read_only.contains(name)),
        )
    }

    /// The top-level members read that are in neither list, sorted: members AWS returns that
    /// this build's SDK does not model (so the deployer cannot copy them).
    pub fn unknown_members(&self, copied: &[&str], read_only: &[&str]) -> Vec<String> {
        let mut unknown: Vec<String> = self
            .0
            .keys()
            .filter(|name| !copied.contains(&name.as_str()) && !read_only.contains(&name.as_str()))
            .cloned()
            .collect();
        unknown.sort();
        unknown
    }
}

/// Keeps the raw JSON object of the last response of the operation it is attached to
/// (`.customize().interceptor(recorder.clone())`).
#[derive(Clone, Default)]
pub struct ResponseRecorder(Arc<Mutex<Option<RawJson>>>);

impl fmt::Debug for ResponseRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResponseRecorder")
            .field(&self.recorded())
            .finish()
    }
}

impl ResponseRecorder {
    /// What was recorded; `None` before a response, or when it had no JSON object body (e.g.
    /// under aws-smithy-mocks, which hands the SDK modelled outputs).
    pub fn recorded(&self) -> Option<RawJson> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Intercept for ResponseRecorder {
    fn name(&self) -> &'static str {
        "deployer_aws::ResponseRecorder"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let object = context
            .response()
            .body()
            .bytes()
            .and_then(|bytes| serde_json::from_slice::<Object>(bytes).ok());
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = object.map(RawJson::from);
        Ok(())
    }
}

/// What a request body may send inside the members expected that was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unread {
    /// The SDK's defaults (a container's `cpu` of 0, an empty `value` it models as required):
    /// not losses, not checked.
    Allowed,
    /// A difference like any other: the request replaces the resource's whole configuration,
    /// and a member it sets that the resource did not have would change it. (Top-level members
    /// not expected, such as an idempotency token, are not checked.)
    Refused,
}

/// Refuses to send a request whose JSON body does not carry every member expected as expected
/// (see the module doc). Attach it with `.customize().interceptor(check.clone())`; when the
/// call fails, [`BodyCheck::problem`] says whether this check stopped it.
#[derive(Clone)]
pub struct BodyCheck {
    expected: Arc<Object>,
    unread: Unread,
    problem: Arc<Mutex<Option<Vec<String>>>>,
}

impl fmt::Debug for BodyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyCheck")
            .field("members", &self.expected.keys().collect::<Vec<_>>())
            .field("unread", &self.unread)
            .finish_non_exhaustive()
    }
}

impl BodyCheck {
    /// A check that the body sends every member of `expected` as it is there.
    pub fn new(expected: Object, unread: Unread) -> Self {
        BodyCheck {
            expected: Arc::new(expected),
            unread,
            problem: Arc::default(),
        }
    }

    /// The member paths that would not have been sent as expected, when the check refused the
    /// request.
    pub fn problem(&self) -> Option<Vec<String>> {
        self.problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The member paths `body` does not send as expected, sorted.
    pub fn differences(&self, body: &[u8]) -> Vec<String> {
        match serde_json::from_slice::<Object>(body) {
            Ok(sent) => differences(&self.expected, &sent, self.unread),
            Err(_) => vec!["(the request body is not a JSON object)".to_owned()],
        }
    }
}

impl Intercept for BodyCheck {
    fn name(&self) -> &'static str {
        "deployer_aws::BodyCheck"
    }

    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let paths = self.differences(context.request().body().bytes().unwrap_or_default());
        if paths.is_empty() {
            return Ok(());
        }
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(paths.clone());
        Err(Box::new(NotSentBack { paths }))
    }
}

/// The error [`BodyCheck`] stops a request with.
#[derive(Debug, thiserror::Error)]
#[error("the request would not send back what was read at {}", .paths.join(", "))]
pub struct NotSentBack {
    /// The member paths, sorted.
    pub paths: Vec<String>,
}

/// The member paths of `expected` that `sent` lacks or sends differently, sorted (see the
/// module doc for the rule). Top-level members only `sent` has are never differences.
pub fn differences(expected: &Object, sent: &Object, unread: Unread) -> Vec<String> {
    let mut paths = Vec::new();
    for (member, expected) in expected {
        let sent = sent.get(member).cloned().and_then(without_nulls);
        diff(member, Some(expected), sent.as_ref(), unread, &mut paths);
    }
    paths.sort();
    paths.dedup();
    paths
}

fn diff(
    path: &str,
    expected: Option<&Value>,
    sent: Option<&Value>,
    unread: Unread,
    out: &mut Vec<String>,
) {
    match (expected, sent) {
        (None, None) => {}
        (Some(Value::Object(expected)), Some(Value::Object(sent))) => {
            for (key, value) in expected {
                diff(
                    &format!("{path}.{key}"),
                    Some(value),
                    sent.get(key),
                    unread,
                    out,
                );
            }
            if unread == Unread::Refused {
                for key in sent.keys().filter(|key| !expected.contains_key(*key)) {
                    out.push(format!("{path}.{key}"));
                }
            }
        }
        (Some(Value::Array(expected)), Some(Value::Array(sent)))
            if expected.len() == sent.len() =>
        {
            for (i, (expected, sent)) in expected.iter().zip(sent).enumerate() {
                diff(
                    &format!("{path}[{i}]"),
                    Some(expected),
                    Some(sent),
                    unread,
                    out,
                );
            }
        }
        (Some(expected), Some(sent)) if expected == sent || numbers_equal(expected, sent) => {}
        (None, Some(_)) if unread == Unread::Allowed => {}
        _ => out.push(path.to_owned()),
    }
}

/// `1` and `1.0` are the same number to the API (a SageMaker variant weight is a float, an ECS
/// port an integer: the SDK may write either).
fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `value` with every `null` member removed (`null` and absent mean the same to the API);
/// `None` when `value` itself is `null`. Array elements stay where they are.
pub fn without_nulls(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(object) => Some(Value::Object(
            object
                .into_iter()
                .filter_map(|(key, value)| Some((key, without_nulls(value)?)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items
                .into_iter()
                .map(|item| without_nulls(item).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other),
    }
}

/// One step of a path into a JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathStep<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

/// Sets `member` of the object at `path` in `root` to `value`, when that object exists (where
/// a copy replaces the image: `PrimaryContainer.Image`, `Containers[1].Image`).
pub fn set_at(root: &mut Object, path: &[PathStep<'_>], member: &str, value: Value) {
    let Some((first, rest)) = path.split_first() else {
        root.insert(member.to_owned(), value);
        return;
    };
    let PathStep::Key(key) = first else {
        return;
    };
    let Some(mut current) = root.get_mut(*key) else {
        return;
    };
    for step in rest {
        let next = match (step, current) {
            (PathStep::Key(key), Value::Object(object)) => object.get_mut(*key),
            (PathStep::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return;
        };
        current = next;
    }
    if let Value::Object(object) = current {
        object.insert(member.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Object {
        match value {
            Value::Object(object) => object,
            _ => Object::new(),
        }
    }

    #[test]
    fn differences_name_paths_not_values() {
        let raw = RawJson::from(object(json!({
            "ModelName": "m", "ModelArn": "arn", "CreationTime": 1.5,
            "PrimaryContainer": {"Image": "old", "Environment": {"TOKEN": "s3cr3t"}, "FutureSetting": {"On": true}},
            "Containers": [{"Image": "a", "Mode": "SingleModel"}, {"Image": "b"}],
            "FutureTopLevel": "x",
            "VpcConfig": null
        })));
        let mut expected = raw.writable(&["ModelName", "ModelArn", "CreationTime"]);
        set_at(
            &mut expected,
            &[PathStep::Key("PrimaryContainer")],
            "Image",
            json!("new"),
        );
        set_at(
            &mut expected,
            &[PathStep::Key("Containers"), PathStep::Index(1)],
            "Image",
            json!("new"),
        );
        let check = BodyCheck::new(expected, Unread::Allowed);
        let sent = json!({
            "ModelName": "m2",
            "PrimaryContainer": {"Image": "new", "Environment": {"TOKEN": "other"}},
            "Containers": [{"Image": "a", "Mode": "MultiModel"}, {"Image": "new"}],
            "Tags": [{"Key": "k", "Value": "v"}]
        });
        assert_eq!(
            check.differences(sent.to_string().as_bytes()),
            [
                "Containers[0].Mode",
                "FutureTopLevel",
                "PrimaryContainer.Environment.TOKEN",
                "PrimaryContainer.FutureSetting",
            ]
        );
        assert!(!format!("{check:?} {raw:?}").contains("s3cr3t"));
    }

    /// The one numeric rule, for both policies: a number read as `1` may be sent as `1.0`
    /// (AgentCore's check had no such rule before it was shared).
    #[test]
    fn numbers_compare_by_value() {
        for unread in [Unread::Allowed, Unread::Refused] {
            let expected = object(json!({
                "ProductionVariants": [{"InitialVariantWeight": 1, "Port": 8080}],
                "lifecycleConfiguration": {"maxLifetime": 28800}
            }));
            let sent = object(json!({
                "ProductionVariants": [{"InitialVariantWeight": 1.0, "Port": 8080.0}],
                "lifecycleConfiguration": {"maxLifetime": 28800.0}
            }));
            assert!(
                differences(&expected, &sent, unread).is_empty(),
                "{unread:?}"
            );
            let other = object(json!({
                "ProductionVariants": [{"InitialVariantWeight": 0.5, "Port": "8080"}],
                "lifecycleConfiguration": {"maxLifetime": 28801}
            }));
            assert_eq!(
                differences(&expected, &other, unread),
                [
                    "ProductionVariants[0].InitialVariantWeight",
                    "ProductionVariants[0].Port",
                    "lifecycleConfiguration.maxLifetime",
                ]
            );
        }
    }

    #[test]
    fn unread_members_are_defaults_or_differences_as_asked() {
        let expected = object(json!({
            "containerDefinitions": [{"name": "web", "image": "i"}],
            "authorizerConfiguration": {"customJWTAuthorizer": {"discoveryUrl": "u"}}
        }));
        let sent = object(json!({
            "containerDefinitions": [{"name": "web", "image": "i", "cpu": 0}],
            "authorizerConfiguration": {"customJWTAuthorizer": {"discoveryUrl": "u", "allowedAudience": []}},
            "clientToken": "t"
        }));
        assert!(differences(&expected, &sent, Unread::Allowed).is_empty());
        assert_eq!(
            differences(&expected, &sent, Unread::Refused),
            [
                "authorizerConfiguration.customJWTAuthorizer.allowedAudience",
                "containerDefinitions[0].cpu",
            ]
        );
    }

    #[test]
    fn nulls_count_as_absent_and_lengths_must_match() {
        let expected = object(
            json!({"description": "d", "lifecycleConfiguration": {"maxLifetime": 5}, "ports": [1, 2]}),
        );
        let sent = object(
            json!({"description": "d", "lifecycleConfiguration": {"maxLifetime": 5, "idleRuntimeSessionTimeout": null}, "ports": [1, 2], "extra": null}),
        );
        assert!(differences(&expected, &sent, Unread::Refused).is_empty());
        let shorter = object(
            json!({"description": null, "lifecycleConfiguration": {"maxLifetime": 5}, "ports": [1]}),
        );
        assert_eq!(
            differences(&expected, &shorter, Unread::Allowed),
            ["description", "ports"]
        );
        assert_eq!(
            BodyCheck::new(expected, Unread::Allowed).differences(b"[]"),
            ["(the request body is not a JSON object)"]
        );
    }

    #[test]
    fn raw_members_select_and_unknown() {
        let raw = RawJson::from(object(json!({
            "taskDefinition": {"family": "f", "revision": 3, "futureMember": {"a": null}},
            "tags": []
        })));
        assert_eq!(raw.members(), ["tags", "taskDefinition"]);
        let td = raw.nested("taskDefinition").unwrap();
        assert_eq!(
            td.writable(&["revision"]),
            object(json!({"family": "f", "futureMember": {}}))
        );
        assert_eq!(
            td.select(["family", "missing"]),
            object(json!({"family": "f"}))
        );
        assert_eq!(
            td.unknown_members(&["family"], &["revision"]),
            ["futureMember"]
        );
        assert!(raw.nested("tags").is_none());
        assert_eq!(RawJson::try_from(json!([1])), Err(json!([1])));
    }

    #[test]
    fn set_at_follows_keys_and_indexes_and_leaves_missing_paths_alone() {
        let mut root = object(json!({"Containers": [{"Image": "a"}, {"Image": "b"}]}));
        set_at(
            &mut root,
            &[PathStep::Key("Containers"), PathStep::Index(1)],
            "Image",
            json!("new"),
        );
        set_at(
            &mut root,
            &[PathStep::Key("Containers"), PathStep::Index(5)],
            "Image",
            json!("x"),
        );
        set_at(
            &mut root,
            &[PathStep::Key("PrimaryContainer")],
            "Image",
            json!("x"),
        );
        set_at(&mut root, &[], "Top", json!(1));
        assert_eq!(
            root,
            object(json!({"Containers": [{"Image": "a"}, {"Image": "new"}], "Top": 1}))
        );
    }

    /// Through a real client: the recorder keeps the answer's raw JSON, the check refuses a
    /// body that does not send it back, and says why through `problem`; nothing is sent.
    #[tokio::test]
    async fn the_interceptors_record_answers_and_refuse_bodies() {
        use aws_smithy_http_client_test_util::test_util::{ReplayEvent, StaticReplayClient};
        use aws_smithy_runtime_api::http::{Request, Response, StatusCode};
        use aws_smithy_types::body::SdkBody;

        let answer = r#"{"Parameter":{"Name":"/a","Value":"s3cr3t","Type":"String","FutureMember":{"on":true}}}"#;
        let http = StaticReplayClient::new(vec![ReplayEvent::new(
            Request::new(SdkBody::empty()),
            Response::new(StatusCode::try_from(200).unwrap(), SdkBody::from(answer)),
        )]);
        let config = aws_sdk_ssm::Config::builder()
            .with_test_defaults_v2()
            .http_client(http.clone())
            .build();
        let client = aws_sdk_ssm::Client::from_conf(config);
        let recorder = ResponseRecorder::default();
        client
            .get_parameter()
            .name("/a")
            .customize()
            .interceptor(recorder.clone())
            .send()
            .await
            .unwrap();
        let raw = recorder.recorded().unwrap();
        let parameter = raw.nested("Parameter").unwrap();
        assert_eq!(
            parameter.unknown_members(&["Name", "Value", "Type"], &[]),
            ["FutureMember"]
        );
        assert!(!format!("{recorder:?}").contains("s3cr3t"));

        let check = BodyCheck::new(
            parameter.select(["Name", "Value", "FutureMember"]),
            Unread::Allowed,
        );
        let error = client
            .put_parameter()
            .name("/a")
            .value("s3cr3t")
            .customize()
            .interceptor(check.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(check.problem(), Some(vec!["FutureMember".to_owned()]));
        assert_eq!(
            http.actual_requests().count(),
            1,
            "the refused request was not sent"
        );
        assert!(!deployer_core::cause_chain(&error).contains("s3cr3t"));
    }
}
