//! The run-time half of "nothing is dropped": the raw JSON of `DescribeTaskDefinition` held
//! against the raw JSON body of `RegisterTaskDefinition`.
//!
//! The SDK deserializes only the members its model knows; a member AWS added since (at the top
//! level, or nested in a container definition, a volume, …) is skipped without a word, and the
//! new revision would silently lose it. So the `DescribeTaskDefinition` a revision is built from
//! is recorded raw ([`ResponseRecorder`]), and the serialized `RegisterTaskDefinition` is checked
//! against it before it is sent ([`BodyCheck`]): every member that was read (the read-only ones
//! aside) must be sent back exactly as read (the target container's image aside), or the
//! revision is not registered at all. The SDK may send more than was read (a container's `cpu`
//! of 0, a resource requirement's empty `value`): those are its defaults, not losses.
//!
//! The raw JSON contains environment values: it lives only as long as the deployer's copy of
//! the live task definition, and nothing here prints it (the `Debug` implementations show member
//! names only; differences are reported as member paths, never values).

use std::fmt;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{Map, Value};

use crate::taskdef::{READ_ONLY_FIELDS, is_aws_reserved_key};

type Object = Map<String, Value>;

/// A raw `DescribeTaskDefinition` response: `{"taskDefinition": {…}, "tags": […]}`.
#[derive(Clone)]
pub(crate) struct RawTaskDefinition(Arc<Object>);

impl fmt::Debug for RawTaskDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<&String> = self
            .task_definition()
            .map(|td| td.keys().collect())
            .unwrap_or_default();
        f.debug_struct("RawTaskDefinition")
            .field("members", &members)
            .finish()
    }
}

impl RawTaskDefinition {
    fn task_definition(&self) -> Option<&Object> {
        self.0.get("taskDefinition").and_then(Value::as_object)
    }

    /// A check that a `RegisterTaskDefinition` body sends back every writable member read,
    /// with container `container`'s image replaced by `image`, and the user tags.
    pub(crate) fn body_check(&self, container: &str, image: &str) -> Option<BodyCheck> {
        let mut expected: Object = self
            .task_definition()?
            .iter()
            .filter(|(member, _)| !READ_ONLY_FIELDS.contains(&member.as_str()))
            .filter_map(|(member, value)| Some((member.clone(), without_nulls(value.clone())?)))
            .collect();
        if let Some(containers) = expected
            .get_mut("containerDefinitions")
            .and_then(Value::as_array_mut)
        {
            for definition in containers.iter_mut().filter_map(Value::as_object_mut) {
                if definition.get("name").and_then(Value::as_str) == Some(container) {
                    definition.insert("image".into(), Value::String(image.to_owned()));
                }
            }
        }
        let tags: Vec<Value> = self
            .0
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|tag| {
                !tag.get("key")
                    .and_then(Value::as_str)
                    .is_some_and(is_aws_reserved_key)
            })
            .filter_map(|tag| without_nulls(tag.clone()))
            .collect();
        if !tags.is_empty() {
            expected.insert("tags".into(), Value::Array(tags));
        }
        Some(BodyCheck {
            expected: Arc::new(expected),
            problem: Arc::default(),
        })
    }
}

/// Keeps the raw JSON of the last response of the operation it is attached to.
#[derive(Clone, Default)]
pub(crate) struct ResponseRecorder(Arc<Mutex<Option<RawTaskDefinition>>>);

impl fmt::Debug for ResponseRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResponseRecorder")
            .field(&self.recorded())
            .finish()
    }
}

impl ResponseRecorder {
    /// What was recorded; `None` when there was no raw JSON body (e.g. under aws-smithy-mocks,
    /// which hands the SDK modelled outputs).
    pub(crate) fn recorded(&self) -> Option<RawTaskDefinition> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

impl Intercept for ResponseRecorder {
    fn name(&self) -> &'static str {
        "deployer_ecs::ResponseRecorder"
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
        if let Ok(mut slot) = self.0.lock() {
            *slot = object.map(|object| RawTaskDefinition(Arc::new(object)));
        }
        Ok(())
    }
}

/// Refuses to send a `RegisterTaskDefinition` whose body does not carry every member read back
/// (see the module doc). The refusal is kept for [`BodyCheck::problem`].
#[derive(Clone)]
pub(crate) struct BodyCheck {
    expected: Arc<Object>,
    problem: Arc<Mutex<Option<Vec<String>>>>,
}

impl fmt::Debug for BodyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyCheck")
            .field("members", &self.expected.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BodyCheck {
    /// The member paths that would not have been sent as read, when the check refused.
    pub(crate) fn problem(&self) -> Option<Vec<String>> {
        self.problem.lock().ok().and_then(|problem| problem.clone())
    }

    /// The member paths read that `body` does not send back as read.
    fn differences(&self, body: &[u8]) -> Vec<String> {
        let Ok(sent) = serde_json::from_slice::<Object>(body) else {
            return vec!["(the request body is not a JSON object)".to_owned()];
        };
        let mut paths = Vec::new();
        for (member, expected) in self.expected.iter() {
            diff(member, expected, sent.get(member), &mut paths);
        }
        paths
    }
}

impl Intercept for BodyCheck {
    fn name(&self) -> &'static str {
        "deployer_ecs::BodyCheck"
    }

    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let differences = self.differences(context.request().body().bytes().unwrap_or_default());
        if differences.is_empty() {
            return Ok(());
        }
        let message = format!(
            "the new revision would not carry {}",
            differences.join(", ")
        );
        if let Ok(mut problem) = self.problem.lock() {
            *problem = Some(differences);
        }
        Err(message.into())
    }
}

/// `value` with every `null` member removed (`null` and absent mean the same to the API);
/// `None` when `value` itself is `null`.
fn without_nulls(value: Value) -> Option<Value> {
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

/// Pushes the paths (`containerDefinitions[0].linuxParameters.tmpfs`) of `expected` that `sent`
/// lacks or sends differently. Members only `sent` has are the SDK's defaults, not losses.
fn diff(path: &str, expected: &Value, sent: Option<&Value>, out: &mut Vec<String>) {
    match (expected, sent) {
        (Value::Object(expected), Some(Value::Object(sent))) => {
            for (key, expected) in expected {
                diff(&format!("{path}.{key}"), expected, sent.get(key), out);
            }
        }
        (Value::Array(expected), Some(Value::Array(sent))) if expected.len() == sent.len() => {
            for (i, (expected, sent)) in expected.iter().zip(sent).enumerate() {
                diff(&format!("{path}[{i}]"), expected, Some(sent), out);
            }
        }
        (expected, Some(sent)) if numbers_equal(expected, sent) || expected == sent => {}
        _ => out.push(path.to_owned()),
    }
}

/// `1` and `1.0` are the same number to the API.
fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(value: Value) -> RawTaskDefinition {
        let Value::Object(object) = value else {
            unreachable!()
        };
        RawTaskDefinition(Arc::new(object))
    }

    #[test]
    fn differences_name_paths_not_values() {
        let raw = raw(json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn", "revision": 3, "registeredAt": 1.5,
                "family": "f",
                "containerDefinitions": [
                    {"name": "web", "image": "old", "environment": [{"name": "TOKEN", "value": "s3cr3t"}], "futureSetting": {"on": true}},
                    {"name": "side", "image": "side:1", "portMappings": [{"containerPort": 1}, {"containerPort": 2}]}
                ],
                "futureTopLevel": "x",
                "description": null
            },
            "tags": [{"key": "team", "value": "api"}, {"key": "aws:cloudformation:stack-name", "value": "s"}]
        }));
        let check = raw.body_check("web", "new").unwrap();
        let sent = json!({
            "family": "f",
            "containerDefinitions": [
                {"name": "web", "image": "new", "cpu": 0, "environment": [{"name": "TOKEN", "value": "other"}]},
                {"name": "side", "image": "side:1", "cpu": 0, "portMappings": [{"containerPort": 1}, {"containerPort": 3}]}
            ],
            "tags": [{"key": "team", "value": "api"}]
        });
        let differences = check.differences(sent.to_string().as_bytes());
        assert_eq!(
            differences,
            [
                "containerDefinitions[0].environment[0].value",
                "containerDefinitions[0].futureSetting",
                "containerDefinitions[1].portMappings[1].containerPort",
                "futureTopLevel",
            ]
        );
        assert!(!format!("{check:?} {raw:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_image_read_only_members_and_aws_tags_are_not_expected() {
        let raw = raw(json!({
            "taskDefinition": {"taskDefinitionArn": "arn", "status": "ACTIVE", "family": "f", "containerDefinitions": [{"name": "web", "image": "old"}]},
            "tags": [{"key": "aws:cloudformation:stack-name", "value": "s"}]
        }));
        let check = raw.body_check("web", "new").unwrap();
        let sent = json!({"family": "f", "containerDefinitions": [{"name": "web", "image": "new", "cpu": 0}]});
        assert!(check.differences(sent.to_string().as_bytes()).is_empty());
        let stale =
            json!({"family": "f", "containerDefinitions": [{"name": "web", "image": "old"}]});
        assert_eq!(
            check.differences(stale.to_string().as_bytes()),
            ["containerDefinitions[0].image"]
        );
    }
}
