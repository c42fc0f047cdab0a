//! The run-time half of "nothing is dropped": the raw JSON of `GetAgentRuntime` held against
//! the raw JSON body of `UpdateAgentRuntime`.
//!
//! The SDK deserializes only the members its model knows; a member AWS added since (at the top
//! level, or nested inside a configuration the SDK knows) is skipped without a word, and a full
//! replacement would then reset it. So the `GetAgentRuntime` that an update is built from is
//! recorded raw ([`ResponseRecorder`]), and the serialized update is checked against it before
//! it is sent ([`BodyCheck`]): every carried-over member must go back exactly as read (the
//! container URI aside), or the update is not sent at all.
//!
//! The raw JSON contains the environment variable values: it lives only for one `apply`, and
//! nothing here prints it (the `Debug` implementations show member names only; differences are
//! reported as member paths, never values).

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

use crate::fields::CARRIED_OVER;

type Object = Map<String, Value>;

/// Keeps the raw JSON object of the last response of the operation it is attached to.
#[derive(Clone, Default)]
pub(crate) struct ResponseRecorder(Arc<Mutex<Option<Object>>>);

impl fmt::Debug for ResponseRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseRecorder")
            .field("members", &self.members())
            .finish()
    }
}

impl ResponseRecorder {
    /// The top-level member names of the last response, when it was a JSON object.
    pub(crate) fn members(&self) -> Option<Vec<String>> {
        self.with(|object| object.keys().cloned().collect())
    }

    /// A check that the update body carries every carried-over member of the recorded response
    /// back unchanged, `agentRuntimeArtifact` with `new_uri` as its container URI. `None` when
    /// nothing was recorded (no raw body, e.g. under aws-smithy-mocks).
    pub(crate) fn body_check(&self, new_uri: &str) -> Option<BodyCheck> {
        let mut expected = self.with(|object| {
            CARRIED_OVER
                .iter()
                .filter_map(|field| {
                    let value = without_nulls(object.get(field.json)?.clone())?;
                    Some((field.json.to_owned(), value))
                })
                .collect::<Object>()
        })?;
        if let Some(uri) = expected
            .get_mut("agentRuntimeArtifact")
            .and_then(|artifact| artifact.get_mut("containerConfiguration"))
            .and_then(|container| container.get_mut("containerUri"))
        {
            *uri = Value::String(new_uri.to_owned());
        }
        Some(BodyCheck {
            expected: Arc::new(expected),
            problem: Arc::default(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Object) -> T) -> Option<T> {
        let slot = self.0.lock().ok()?;
        slot.as_ref().map(f)
    }
}

impl Intercept for ResponseRecorder {
    fn name(&self) -> &'static str {
        "deployer_agentcore::ResponseRecorder"
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
            *slot = object;
        }
        Ok(())
    }
}

/// Refuses to send an `UpdateAgentRuntime` whose body does not carry the recorded members back
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
    /// The member paths that would not have been sent back as read, when the check refused.
    pub(crate) fn problem(&self) -> Option<Vec<String>> {
        self.problem.lock().ok().and_then(|problem| problem.clone())
    }

    /// The member paths where `body` differs from what was read.
    fn differences(&self, body: &[u8]) -> Vec<String> {
        let Ok(sent) = serde_json::from_slice::<Object>(body) else {
            return vec!["(the request body is not a JSON object)".to_owned()];
        };
        let mut paths = Vec::new();
        for (member, expected) in self.expected.iter() {
            let sent = sent.get(member).cloned().and_then(without_nulls);
            diff(member, Some(expected), sent.as_ref(), &mut paths);
        }
        paths
    }
}

impl Intercept for BodyCheck {
    fn name(&self) -> &'static str {
        "deployer_agentcore::BodyCheck"
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
        let message = format!("the update would not send back {}", differences.join(", "));
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

/// Pushes the paths (`a.b[2].c`) where `expected` and `sent` differ.
fn diff(path: &str, expected: Option<&Value>, sent: Option<&Value>, out: &mut Vec<String>) {
    match (expected, sent) {
        (Some(Value::Object(expected)), Some(Value::Object(sent))) => {
            let mut keys: Vec<&String> = expected.keys().chain(sent.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                diff(
                    &format!("{path}.{key}"),
                    expected.get(key),
                    sent.get(key),
                    out,
                );
            }
        }
        (Some(Value::Array(expected)), Some(Value::Array(sent)))
            if expected.len() == sent.len() =>
        {
            for (i, (expected, sent)) in expected.iter().zip(sent).enumerate() {
                diff(&format!("{path}[{i}]"), Some(expected), Some(sent), out);
            }
        }
        (expected, sent) if expected == sent => {}
        _ => out.push(path.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(expected: Value) -> BodyCheck {
        let Value::Object(expected) = expected else {
            unreachable!()
        };
        BodyCheck {
            expected: Arc::new(expected),
            problem: Arc::default(),
        }
    }

    #[test]
    fn differences_name_paths_not_values() {
        let check = check(json!({
            "authorizerConfiguration": {"customJWTAuthorizer": {"discoveryUrl": "u", "certificateConfigurations": [{"s3": {"uri": "s3://b/c"}}]}},
            "environmentVariables": {"TOKEN": "s3cr3t"},
            "allowedPorts": [{"port": 1}, {"port": 2}],
        }));
        let sent = json!({
            "authorizerConfiguration": {"customJWTAuthorizer": {"discoveryUrl": "u"}},
            "environmentVariables": {"TOKEN": "other"},
            "allowedPorts": [{"port": 1}, {"port": 3}],
            "clientToken": "t",
        });
        let differences = check.differences(sent.to_string().as_bytes());
        assert_eq!(
            differences,
            [
                "authorizerConfiguration.customJWTAuthorizer.certificateConfigurations",
                "environmentVariables.TOKEN",
                "allowedPorts[1].port",
            ]
        );
        assert!(!format!("{check:?}").contains("s3cr3t"));
    }

    #[test]
    fn nulls_count_as_absent() {
        let check =
            check(json!({"description": "d", "lifecycleConfiguration": {"maxLifetime": 5}}));
        let sent = json!({"description": "d", "lifecycleConfiguration": {"maxLifetime": 5, "idleRuntimeSessionTimeout": null}});
        assert!(check.differences(sent.to_string().as_bytes()).is_empty());
    }
}
