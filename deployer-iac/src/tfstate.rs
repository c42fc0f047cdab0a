//! Terraform state (format version 4): the image a resource was last applied with.

use serde_json::Value;

use crate::{IacError, Kind};

/// What the state says about the resource at an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateImage {
    /// The resource's type, e.g. `aws_ecs_task_definition`.
    pub resource_type: String,
    /// The attribute the image was read from, e.g. `container_definitions[app].image`.
    pub attribute: String,
    /// The image the last apply wrote.
    pub image: String,
    /// The state also reads `parameter` through `data "aws_ssm_parameter"`, and the image's
    /// tag is the value that data source had at that apply: the configuration takes the tag
    /// from SSM, so the next apply reads it again instead of putting `image` back.
    pub reads_parameter: bool,
}

/// The image of the resource at `address` in the state `state` (v4 `resources[].instances[]`):
/// an ECS task definition's container (`container_definitions`, the container named
/// `container` or the only one), a Lambda function's `image_uri`, an AgentCore runtime's
/// `agent_runtime_artifact[0].container_configuration[0].container_uri`, a SageMaker model's
/// `primary_container[0].image`. `parameter` is the SSM parameter deployer records the tag in.
pub fn image(
    state: &Value,
    address: &str,
    kind: Kind,
    container: Option<&str>,
    parameter: &str,
) -> Result<StateImage, IacError> {
    let not_found = |why: String| IacError::State {
        address: address.to_owned(),
        why,
    };
    if let Some(version) = state["version"].as_i64().filter(|v| *v != 4) {
        return Err(not_found(format!(
            "the state is format version {version}; only version 4 (Terraform 0.12 and later) is read"
        )));
    }
    let wanted = Address::parse(address).ok_or_else(|| {
        not_found("it is not a resource address such as `aws_ecs_task_definition.app` or `module.api.aws_lambda_function.this[0]`".into())
    })?;
    let resource = state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["module"].as_str().unwrap_or_default() == wanted.module
                && r["mode"].as_str().unwrap_or("managed") == wanted.mode
                && r["type"] == wanted.resource_type
                && r["name"] == wanted.name
        })
        .ok_or_else(|| not_found("the state has no such resource".into()))?;
    let instances = resource["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let instance = match &wanted.index {
        Some(index) => instances.iter().find(|i| &i["index_key"] == index),
        None if instances.len() == 1 => instances.first(),
        None => None,
    }
    .ok_or_else(|| {
        not_found(format!(
            "the resource has {} instance(s); name one with its index (`{address}[0]`, `{address}[\"key\"]`)",
            instances.len()
        ))
    })?;
    let attributes = &instance["attributes"];
    let expected = kind.tf_type();
    if wanted.resource_type != expected {
        return Err(not_found(format!(
            "it is a `{}`; the image of this service is in a `{expected}`",
            wanted.resource_type
        )));
    }
    let (attribute, image) = match kind {
        Kind::Ecs => {
            let text = attributes["container_definitions"]
                .as_str()
                .ok_or_else(|| not_found("it has no `container_definitions`".into()))?;
            let definitions: Value = serde_json::from_str(text).map_err(|error| {
                not_found(format!("its `container_definitions` are not JSON: {error}"))
            })?;
            let definitions = definitions.as_array().cloned().unwrap_or_default();
            let chosen = match container {
                Some(name) => definitions.iter().find(|d| d["name"] == name),
                None if definitions.len() == 1 => definitions.first(),
                None => None,
            }
            .ok_or_else(|| {
                not_found(match container {
                    Some(name) => format!("it has no container `{name}`"),
                    None => "it has several containers; set `container` for the service".into(),
                })
            })?;
            let name = chosen["name"].as_str().unwrap_or_default();
            (
                format!("container_definitions[{name}].image"),
                chosen["image"].as_str().map(str::to_owned),
            )
        }
        Kind::Lambda => (
            "image_uri".to_owned(),
            attributes["image_uri"].as_str().map(str::to_owned),
        ),
        Kind::Agentcore => (
            "agent_runtime_artifact[0].container_configuration[0].container_uri".to_owned(),
            attributes["agent_runtime_artifact"][0]["container_configuration"][0]["container_uri"]
                .as_str()
                .map(str::to_owned),
        ),
        Kind::Sagemaker => (
            "primary_container[0].image".to_owned(),
            attributes["primary_container"][0]["image"]
                .as_str()
                .map(str::to_owned),
        ),
    };
    let image = image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| not_found(format!("it has no `{attribute}`")))?;
    let reads_parameter = parameter_values(state, parameter)
        .iter()
        .any(|value| crate::ImageRef::parse(&image).tag.as_deref() == Some(value.as_str()));
    Ok(StateImage {
        resource_type: wanted.resource_type,
        attribute,
        image,
        reads_parameter,
    })
}

/// The values the state's `data "aws_ssm_parameter"` instances of `parameter` had.
fn parameter_values(state: &Value, parameter: &str) -> Vec<String> {
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["mode"] == "data" && r["type"] == "aws_ssm_parameter")
        .flat_map(|r| r["instances"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["attributes"]["name"] == parameter)
        .filter_map(|i| {
            let attributes = &i["attributes"];
            attributes["insecure_value"]
                .as_str()
                .or_else(|| attributes["value"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// A resource address: `[module.<m>.]*[data.]<type>.<name>[<index>]`.
#[derive(Debug, PartialEq)]
struct Address {
    module: String,
    mode: &'static str,
    resource_type: String,
    name: String,
    index: Option<Value>,
}

impl Address {
    fn parse(address: &str) -> Option<Address> {
        let (path, index) = match address.strip_suffix(']') {
            Some(rest) => {
                let (path, index) = rest.rsplit_once('[')?;
                let index = match index.strip_prefix('"').and_then(|i| i.strip_suffix('"')) {
                    Some(key) => Value::String(key.to_owned()),
                    None => Value::Number(index.parse::<u64>().ok()?.into()),
                };
                (path, Some(index))
            }
            None => (address, None),
        };
        let mut parts: Vec<&str> = path.split('.').collect();
        let mut module = Vec::new();
        while parts.first() == Some(&"module") && parts.len() > 2 {
            module.push(format!("module.{}", parts[1]));
            parts.drain(..2);
        }
        let mode = if parts.first() == Some(&"data") {
            parts.remove(0);
            "data"
        } else {
            "managed"
        };
        let [resource_type, name] = parts.as_slice() else {
            return None;
        };
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(Address {
            module: module.join("."),
            mode,
            resource_type: (*resource_type).to_owned(),
            name: (*name).to_owned(),
            index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_modules_data_and_indexes() {
        let a = Address::parse("module.api.aws_lambda_function.this[0]").unwrap();
        assert_eq!(
            (
                a.module.as_str(),
                a.mode,
                a.resource_type.as_str(),
                a.name.as_str()
            ),
            ("module.api", "managed", "aws_lambda_function", "this")
        );
        assert_eq!(a.index, Some(Value::from(0)));
        let b = Address::parse("aws_ecs_task_definition.app[\"blue\"]").unwrap();
        assert_eq!(b.index, Some(Value::from("blue")));
        assert_eq!(b.module, "");
        assert_eq!(
            Address::parse("data.aws_ssm_parameter.tag").unwrap().mode,
            "data"
        );
        assert!(Address::parse("aws_ecs_task_definition").is_none());
        assert!(Address::parse("a.b.c").is_none());
    }
}
