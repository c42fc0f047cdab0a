//! The run-time half of "nothing is dropped" for ECS: what the raw JSON body of
//! `RegisterTaskDefinition` must send back of the raw `DescribeTaskDefinition` a revision is
//! built from. The recorder, the check and the comparison rule are `deployer_aws::raw`'s; this
//! module says what is expected: every member read but the read-only ones, the target
//! container's image replaced, the tags minus the `aws:` ones. The SDK may send more than was
//! read (a container's `cpu` of 0, a resource requirement's empty `value`): its defaults, not
//! losses ([`Unread::Allowed`]).

use deployer_aws::raw::{RawJson, without_nulls};
use deployer_aws::{BodyCheck, Unread};
use serde_json::Value;

use crate::taskdef::{READ_ONLY_FIELDS, is_aws_reserved_key};

/// A check that a `RegisterTaskDefinition` body sends back every writable member of `raw` (a
/// `DescribeTaskDefinition` answer: `{"taskDefinition": {…}, "tags": […]}`), with container
/// `container`'s image replaced by `image`, and the user tags. `None` when `raw` has no
/// `taskDefinition`.
pub(crate) fn body_check(raw: &RawJson, container: &str, image: &str) -> Option<BodyCheck> {
    let mut expected = raw.nested("taskDefinition")?.writable(READ_ONLY_FIELDS);
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
    let tags: Vec<Value> = raw
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
    Some(BodyCheck::new(expected, Unread::Allowed))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(value: Value) -> RawJson {
        RawJson::try_from(value).unwrap()
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
        let check = body_check(&raw, "web", "new").unwrap();
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
        let check = body_check(&raw, "web", "new").unwrap();
        let sent = json!({"family": "f", "containerDefinitions": [{"name": "web", "image": "new", "cpu": 0}]});
        assert!(check.differences(sent.to_string().as_bytes()).is_empty());
        let stale =
            json!({"family": "f", "containerDefinitions": [{"name": "web", "image": "old"}]});
        assert_eq!(
            check.differences(stale.to_string().as_bytes()),
            ["containerDefinitions[0].image"]
        );
        let no_task_definition = self::raw(json!({"tags": []}));
        assert!(body_check(&no_task_definition, "web", "new").is_none());
    }
}
