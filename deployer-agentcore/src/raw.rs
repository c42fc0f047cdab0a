//! The run-time half of "nothing is dropped" for AgentCore: what the raw JSON body of
//! `UpdateAgentRuntime` must send back of the raw `GetAgentRuntime` the update is built from.
//! The recorder, the check and the comparison rule are `deployer_aws::raw`'s; this module says
//! what is expected: every carried-over member ([`CARRIED_OVER`]) as read, the container URI
//! replaced. The update replaces the runtime's whole configuration, so inside those members a
//! member the body sends that was not read is a difference too ([`Unread::Refused`]): it would
//! set what the runtime does not have.

use deployer_aws::raw::RawJson;
use deployer_aws::{BodyCheck, Unread};
use serde_json::Value;

use crate::fields::CARRIED_OVER;

/// A check that the update body carries every carried-over member of `raw` back unchanged,
/// `agentRuntimeArtifact` with `new_uri` as its container URI.
pub(crate) fn body_check(raw: &RawJson, new_uri: &str) -> BodyCheck {
    let mut expected = raw.select(CARRIED_OVER.iter().map(|field| field.json));
    if let Some(uri) = expected
        .get_mut("agentRuntimeArtifact")
        .and_then(|artifact| artifact.get_mut("containerConfiguration"))
        .and_then(|container| container.get_mut("containerUri"))
    {
        *uri = Value::String(new_uri.to_owned());
    }
    BodyCheck::new(expected, Unread::Refused)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The check of an update to the URI `new`, from the raw `GetAgentRuntime` `read`.
    fn check_against(read: Value) -> BodyCheck {
        body_check(&RawJson::try_from(read).unwrap(), "new")
    }

    #[test]
    fn differences_name_paths_not_values() {
        let check = check_against(json!({
            "authorizerConfiguration": {"customJWTAuthorizer": {"discoveryUrl": "u", "certificateConfigurations": [{"s3": {"uri": "s3://b/c"}}]}},
            "environmentVariables": {"TOKEN": "s3cr3t"},
            "allowedPorts": [{"port": 1}, {"port": 2}],
            "agentRuntimeArn": "arn",
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
                "allowedPorts[1].port",
                "authorizerConfiguration.customJWTAuthorizer.certificateConfigurations",
                "environmentVariables.TOKEN",
            ]
        );
        assert!(!format!("{check:?}").contains("s3cr3t"));
    }

    #[test]
    fn nulls_count_as_absent() {
        let check = check_against(
            json!({"description": "d", "lifecycleConfiguration": {"maxLifetime": 5}}),
        );
        let sent = json!({"description": "d", "lifecycleConfiguration": {"maxLifetime": 5, "idleRuntimeSessionTimeout": null}});
        assert!(check.differences(sent.to_string().as_bytes()).is_empty());
    }

    /// The container URI is the one member replaced; a member the runtime did not have is a
    /// difference; numbers compare by value (the check had no such rule before it was shared
    /// with ECS and SageMaker).
    #[test]
    fn the_uri_is_replaced_unread_members_are_refused_numbers_compare_by_value() {
        let check = check_against(json!({
            "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "old"}},
            "lifecycleConfiguration": {"maxLifetime": 28800},
        }));
        let sent = json!({
            "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "new"}},
            "lifecycleConfiguration": {"maxLifetime": 28800.0},
        });
        assert!(check.differences(sent.to_string().as_bytes()).is_empty());
        let reset = json!({
            "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "old"}},
            "lifecycleConfiguration": {"maxLifetime": 28800, "idleRuntimeSessionTimeout": 900},
        });
        assert_eq!(
            check.differences(reset.to_string().as_bytes()),
            [
                "agentRuntimeArtifact.containerConfiguration.containerUri",
                "lifecycleConfiguration.idleRuntimeSessionTimeout",
            ]
        );
    }
}
