//! CloudFormation templates: find the resource a service runs and tell how its image property
//! is wired.

use serde_json::{Map, Value};

use crate::{Finding, IacError, Kind, Target, Wiring};

/// The type of the SSM-typed template parameters CloudFormation resolves at deploy time (what
/// CDK's `ssm.StringParameter.valueForStringParameter` declares).
pub const SSM_PARAMETER_TYPE: &str = "AWS::SSM::Parameter::Value<String>";

/// Parses a template body: JSON when it starts with `{`, else YAML with CloudFormation's
/// short-form tags turned into their long form (`!Sub x` → `{"Fn::Sub": x}`).
pub fn parse(body: &str) -> Result<Value, IacError> {
    let template = if body.trim_start().starts_with('{') {
        serde_json::from_str(body).map_err(|error| IacError::Template {
            line: error.line(),
            message: error.to_string(),
        })?
    } else {
        crate::yaml::parse(body)?
    };
    if !template.is_object() {
        return Err(IacError::Template {
            line: 1,
            message: "the template is not a map".into(),
        });
    }
    Ok(template)
}

/// Every resource of `template` that may be `target`, each image property of it, and how that
/// property is wired. Empty when the template has no resource of the target's type.
pub fn check(template: &Value, target: &Target<'_>) -> Vec<Finding> {
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let parameters = template
        .get("Parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let ids = candidates(&resources, target);
    let mut findings = Vec::new();
    for id in ids {
        let properties = &resources[&id]["Properties"];
        for (path, value) in image_properties(properties, target) {
            findings.push(Finding {
                resource: id.clone(),
                resource_type: target.kind.cfn_type().to_owned(),
                property: path,
                wiring: wiring(value, &parameters, target.parameter),
            });
        }
    }
    findings
}

/// The logical ids of the resources of the target's type that may be the target: narrowed by
/// name where the template names it (an ECS service pointing at its task definition, a
/// function name, a runtime name), else all of them.
fn candidates(resources: &Map<String, Value>, target: &Target<'_>) -> Vec<String> {
    let of_type: Vec<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == target.kind.cfn_type())
        .map(|(id, _)| id.clone())
        .collect();
    let Some(name) = target.name else {
        return of_type;
    };
    let narrowed: Vec<String> = match target.kind {
        Kind::Ecs => {
            // The task definition of the ECS service of that name.
            let by_service: Vec<String> = resources
                .values()
                .filter(|r| r["Type"] == "AWS::ECS::Service")
                .filter(|r| literal_name(&r["Properties"]["ServiceName"], name))
                .filter_map(|r| r["Properties"]["TaskDefinition"]["Ref"].as_str())
                .filter(|id| of_type.iter().any(|t| t.as_str() == *id))
                .map(str::to_owned)
                .collect();
            if by_service.is_empty() {
                // Else the task definitions holding the container.
                of_type
                    .iter()
                    .filter(|id| match target.container {
                        None => true,
                        Some(container) => containers(&resources[*id]["Properties"])
                            .iter()
                            .any(|(_, c)| c["Name"] == container),
                    })
                    .cloned()
                    .collect()
            } else {
                by_service
            }
        }
        Kind::Lambda => of_type
            .iter()
            .filter(|id| literal_name(&resources[*id]["Properties"]["FunctionName"], name))
            .cloned()
            .collect(),
        Kind::Agentcore => of_type
            .iter()
            .filter(|id| {
                resources[*id]["Properties"]["AgentRuntimeName"]
                    .as_str()
                    .is_some_and(|runtime| {
                        name == runtime || name.starts_with(&format!("{runtime}-"))
                    })
            })
            .cloned()
            .collect(),
        Kind::Sagemaker => Vec::new(),
    };
    if narrowed.is_empty() {
        of_type
    } else {
        narrowed
    }
}

/// Whether `value` is a literal naming `name` (or an ARN ending in it).
fn literal_name(value: &Value, name: &str) -> bool {
    let short = |s: &str| s.rsplit(['/', ':']).next().unwrap_or(s).to_owned();
    value.as_str().is_some_and(|v| short(v) == short(name))
}

/// The container definitions of a task definition's properties, with their index.
fn containers(properties: &Value) -> Vec<(usize, &Value)> {
    properties["ContainerDefinitions"]
        .as_array()
        .map(|list| list.iter().enumerate().collect())
        .unwrap_or_default()
}

/// The image properties of a resource: `(path, value)`.
fn image_properties<'v>(properties: &'v Value, target: &Target<'_>) -> Vec<(String, &'v Value)> {
    match target.kind {
        Kind::Ecs => {
            let all = containers(properties);
            let chosen: Vec<(usize, &Value)> = match target.container {
                Some(name) => all.into_iter().filter(|(_, c)| c["Name"] == name).collect(),
                None => all,
            };
            chosen
                .into_iter()
                .map(|(index, c)| {
                    (
                        format!("Properties.ContainerDefinitions[{index}].Image"),
                        &c["Image"],
                    )
                })
                .collect()
        }
        Kind::Lambda => vec![(
            "Properties.Code.ImageUri".into(),
            &properties["Code"]["ImageUri"],
        )],
        Kind::Agentcore => vec![(
            "Properties.AgentRuntimeArtifact.ContainerConfiguration.ContainerUri".into(),
            &properties["AgentRuntimeArtifact"]["ContainerConfiguration"]["ContainerUri"],
        )],
        Kind::Sagemaker => {
            let mut found = Vec::new();
            if !properties["PrimaryContainer"].is_null() {
                found.push((
                    "Properties.PrimaryContainer.Image".into(),
                    &properties["PrimaryContainer"]["Image"],
                ));
            }
            for (index, c) in properties["Containers"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                found.push((format!("Properties.Containers[{index}].Image"), &c["Image"]));
            }
            found
        }
    }
}

/// Whether `text` holds the dynamic reference `{{resolve:ssm:<parameter>}}`, with or without
/// a version (`{{resolve:ssm:<parameter>:<version>}}`).
pub fn resolves(text: &str, parameter: &str) -> bool {
    let needle = format!("{{{{resolve:ssm:{parameter}");
    text.match_indices(&needle).any(|(at, _)| {
        let rest = &text[at + needle.len()..];
        rest.starts_with("}}")
            || rest.strip_prefix(':').is_some_and(|r| {
                r.split_once("}}")
                    .is_some_and(|(version, _)| version.chars().all(|c| c.is_ascii_digit()))
            })
    })
}

/// How an image property's `value` reaches the image.
fn wiring(value: &Value, parameters: &Map<String, Value>, parameter: &str) -> Wiring {
    if value.is_null() {
        return Wiring::Other("the property is not set".into());
    }
    if wired(value, parameters, parameter) {
        return Wiring::Wired;
    }
    // Not wired: say what it is instead.
    match value {
        Value::String(text) if text.contains("{{resolve:ssm:") => {
            Wiring::Other(format!("`{text}` resolves another SSM parameter"))
        }
        Value::String(text) => Wiring::Literal(text.clone()),
        _ => {
            let mut refs = Vec::new();
            referenced_parameters(value, parameters, &mut refs);
            match refs.first() {
                Some(name) => {
                    let declared = &parameters[name];
                    Wiring::OtherParameter {
                        name: name.clone(),
                        kind: declared["Type"].as_str().unwrap_or("String").to_owned(),
                        default: declared["Default"].as_str().map(str::to_owned),
                    }
                }
                None => Wiring::Other(format!("`{}`", compact(value))),
            }
        }
    }
}

/// Whether `value` takes the image tag from `parameter`: a dynamic reference to it, a `Ref` to
/// an SSM-typed template parameter defaulting to it, or either inside `Fn::Sub`/`Fn::Join`
/// (and both branches of an `Fn::If`).
fn wired(value: &Value, parameters: &Map<String, Value>, parameter: &str) -> bool {
    match value {
        Value::String(text) => resolves(text, parameter),
        Value::Array(items) => items.iter().any(|v| wired(v, parameters, parameter)),
        Value::Object(map) if map.len() == 1 => {
            let Some((key, argument)) = map.iter().next() else {
                return false;
            };
            match key.as_str() {
                "Ref" => argument
                    .as_str()
                    .is_some_and(|name| ssm_typed(parameters, name, parameter)),
                "Fn::Join" => argument
                    .get(1)
                    .is_some_and(|parts| wired(parts, parameters, parameter)),
                "Fn::Sub" => {
                    let (text, variables) = match argument {
                        Value::String(text) => (text.as_str(), None),
                        Value::Array(items) => (
                            items.first().and_then(Value::as_str).unwrap_or_default(),
                            items.get(1).and_then(Value::as_object),
                        ),
                        _ => return false,
                    };
                    resolves(text, parameter)
                        || sub_variables(text).iter().any(|name| {
                            match variables.and_then(|v| v.get(name.as_str())) {
                                Some(value) => wired(value, parameters, parameter),
                                None => ssm_typed(parameters, name, parameter),
                            }
                        })
                }
                "Fn::If" => argument.as_array().is_some_and(|items| {
                    items.len() == 3
                        && wired(&items[1], parameters, parameter)
                        && wired(&items[2], parameters, parameter)
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether the template parameter `name` is SSM-typed and defaults to `parameter`.
fn ssm_typed(parameters: &Map<String, Value>, name: &str, parameter: &str) -> bool {
    parameters.get(name).is_some_and(|declared| {
        declared["Type"] == SSM_PARAMETER_TYPE && declared["Default"] == parameter
    })
}

/// The `${Name}` variables of an `Fn::Sub` string (not `${!Literal}`, not `${Res.Attr}`).
fn sub_variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('}') else { break };
        let name = &rest[..end];
        if !name.starts_with('!') && !name.contains('.') {
            names.push(name.to_owned());
        }
        rest = &rest[end..];
    }
    names
}

/// The template parameters `value` refers to (`Ref`, `Fn::Sub` variables), in order.
fn referenced_parameters(value: &Value, parameters: &Map<String, Value>, found: &mut Vec<String>) {
    match value {
        Value::Array(items) => items
            .iter()
            .for_each(|v| referenced_parameters(v, parameters, found)),
        Value::Object(map) => {
            for (key, argument) in map {
                match (key.as_str(), argument) {
                    ("Ref", Value::String(name)) if parameters.contains_key(name) => {
                        found.push(name.clone());
                    }
                    ("Fn::Sub", _) => {
                        let text = argument
                            .as_str()
                            .or_else(|| argument.get(0).and_then(Value::as_str))
                            .unwrap_or_default();
                        found.extend(
                            sub_variables(text)
                                .into_iter()
                                .filter(|n| parameters.contains_key(n)),
                        );
                        referenced_parameters(argument, parameters, found);
                    }
                    _ => referenced_parameters(argument, parameters, found),
                }
            }
        }
        _ => {}
    }
}

/// A value in one line of JSON, shortened.
fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}
