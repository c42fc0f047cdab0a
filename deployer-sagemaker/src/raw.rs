//! The run-time half of "nothing is dropped": the raw JSON of `DescribeModel` and
//! `DescribeEndpointConfig` held against the raw JSON bodies of `CreateModel` and
//! `CreateEndpointConfig`.
//!
//! The SDK deserializes only the members its model knows; a member AWS added since (at the top
//! level, or nested in a container definition, a production variant, …) is skipped without a
//! word, and the copy would silently lose it. So the responses a copy is built from are recorded
//! raw ([`ResponseRecorder`]), and the serialized create request is checked against them before
//! it is sent ([`BodyCheck`]): every member that was read (the read-only ones aside) must be sent
//! back exactly as read (the image and model names deployer replaces aside), or nothing is
//! created. The SDK may send more than was read (tags, which come from `ListTags`): not losses.
//!
//! The raw JSON contains environment values: it lives only as long as the deployer's snapshot
//! of the live endpoint, and nothing here prints it (the `Debug` implementations show member
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

pub(crate) type Object = Map<String, Value>;

/// A raw JSON response object.
#[derive(Clone)]
pub(crate) struct RawJson(Arc<Object>);

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawJson")
            .field("members", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RawJson {
    /// The members read, without `null`s and without `read_only` ones: what a copy must send.
    pub(crate) fn writable(&self, read_only: &[&str]) -> Object {
        self.0
            .iter()
            .filter(|(member, _)| !read_only.contains(&member.as_str()))
            .filter_map(|(member, value)| Some((member.clone(), without_nulls(value.clone())?)))
            .collect()
    }

    /// The top-level members read that are in neither list: members AWS returns that this
    /// build's SDK does not model.
    pub(crate) fn unknown_members(&self, copied: &[&str], read_only: &[&str]) -> Vec<String> {
        let mut unknown: Vec<String> = self
            .0
            .keys()
            .filter(|member| {
                !copied.contains(&member.as_str()) && !read_only.contains(&member.as_str())
            })
            .cloned()
            .collect();
        unknown.sort();
        unknown
    }

    #[cfg(test)]
    pub(crate) fn from_value(value: Value) -> Self {
        match value {
            Value::Object(object) => RawJson(Arc::new(object)),
            _ => RawJson(Arc::default()),
        }
    }
}

/// Keeps the raw JSON of the last response of the operation it is attached to.
#[derive(Clone, Default)]
pub(crate) struct ResponseRecorder(Arc<Mutex<Option<RawJson>>>);

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
    pub(crate) fn recorded(&self) -> Option<RawJson> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

impl Intercept for ResponseRecorder {
    fn name(&self) -> &'static str {
        "deployer_sagemaker::ResponseRecorder"
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
            *slot = object.map(|object| RawJson(Arc::new(object)));
        }
        Ok(())
    }
}

/// Refuses to send a create request whose body does not carry every expected member as
/// expected (see the module doc). The refusal is kept for [`BodyCheck::problem`].
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
    /// A check that the body sends every member of `expected` as it is there.
    pub(crate) fn new(expected: Object) -> Self {
        BodyCheck {
            expected: Arc::new(expected),
            problem: Arc::default(),
        }
    }

    /// The member paths that would not have been sent as read, when the check refused.
    pub(crate) fn problem(&self) -> Option<Vec<String>> {
        self.problem.lock().ok().and_then(|problem| problem.clone())
    }

    /// The member paths expected that `body` does not send as expected.
    pub(crate) fn differences(&self, body: &[u8]) -> Vec<String> {
        let Ok(sent) = serde_json::from_slice::<Object>(body) else {
            return vec!["(the request body is not a JSON object)".to_owned()];
        };
        let mut paths = Vec::new();
        for (member, expected) in self.expected.iter() {
            diff(member, expected, sent.get(member), &mut paths);
        }
        paths.sort();
        paths
    }
}

impl Intercept for BodyCheck {
    fn name(&self) -> &'static str {
        "deployer_sagemaker::BodyCheck"
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
        let message = format!("the copy would not carry {}", differences.join(", "));
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

/// Pushes the paths (`PrimaryContainer.ImageConfig.RepositoryAuthConfig`) of `expected` that
/// `sent` lacks or sends differently. Members only `sent` has are not losses.
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

/// `1` and `1.0` are the same number to the API (a variant weight is a float).
fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Sets `member` of the object at `path` (object keys and array indexes) in `root`, when the
/// path exists.
pub(crate) fn set_at(root: &mut Object, path: &[PathStep<'_>], member: &str, value: Value) {
    let Some((first, rest)) = path.split_first() else {
        root.insert(member.to_owned(), value);
        return;
    };
    let PathStep::Key(key) = first else {
        return;
    };
    let mut current = match root.get_mut(*key) {
        Some(current) => current,
        None => return,
    };
    for step in rest {
        current = match (step, current) {
            (PathStep::Key(key), Value::Object(object)) => match object.get_mut(*key) {
                Some(next) => next,
                None => return,
            },
            (PathStep::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                Some(next) => next,
                None => return,
            },
            _ => return,
        };
    }
    if let Value::Object(object) = current {
        object.insert(member.to_owned(), value);
    }
}

/// One step of a path into a JSON document.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PathStep<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn differences_name_paths_not_values() {
        let raw = RawJson::from_value(json!({
            "ModelName": "m", "ModelArn": "arn", "CreationTime": 1.5,
            "PrimaryContainer": {"Image": "old", "Environment": {"TOKEN": "s3cr3t"}, "FutureSetting": {"On": true}},
            "Containers": [{"Image": "a", "Mode": "SingleModel"}, {"Image": "b"}],
            "FutureTopLevel": "x",
            "VpcConfig": null
        }));
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
        let check = BodyCheck::new(expected);
        let sent = json!({
            "ModelName": "m2",
            "PrimaryContainer": {"Image": "new", "Environment": {"TOKEN": "other"}},
            "Containers": [{"Image": "a", "Mode": "MultiModel"}, {"Image": "new"}],
            "Tags": [{"Key": "k", "Value": "v"}]
        });
        let differences = check.differences(sent.to_string().as_bytes());
        assert_eq!(
            differences,
            [
                "Containers[0].Mode",
                "FutureTopLevel",
                "PrimaryContainer.Environment.TOKEN",
                "PrimaryContainer.FutureSetting",
            ]
        );
        assert!(!format!("{check:?} {raw:?}").contains("s3cr3t"));
    }

    #[test]
    fn numbers_compare_by_value() {
        let check = BodyCheck::new(
            RawJson::from_value(json!({"ProductionVariants": [{"InitialVariantWeight": 1}]}))
                .writable(&[]),
        );
        let sent = json!({"ProductionVariants": [{"InitialVariantWeight": 1.0}]});
        assert!(check.differences(sent.to_string().as_bytes()).is_empty());
    }
}
