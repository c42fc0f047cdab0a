//! Resolving lookups: the target fields whose values come from the infrastructure itself (an
//! SSM parameter, an environment variable, a CloudFormation output, a Terraform output), once per
//! run, concurrently, each distinct lookup once, before anything is built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_config::SdkConfig;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::types::ParameterType;
use deployer_aws::error_line;
use deployer_core::Manifest;
use deployer_core::manifest::{Lookup, check_registry, check_repository};
use serde::Serialize;
use tokio::task::JoinSet;

/// A resolved field, for `plan` to show where each value came from.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Resolved {
    /// The service, or `None` for a `[project]` field.
    pub(crate) service: Option<String>,
    pub(crate) field: String,
    /// Where it came from, e.g. `ssm parameter /acme/inference-api/runtime-id`.
    pub(crate) from: String,
    /// The value (`(secure string)` for an SSM SecureString).
    pub(crate) value: String,
}

/// A lookup that could not be resolved: a configuration error (exit 2), raised before anything
/// is built.
#[derive(Debug, thiserror::Error)]
#[error("{owner}: `{field}` from {lookup}: {reason}")]
pub(crate) struct LookupError {
    owner: String,
    field: String,
    lookup: String,
    reason: String,
}

/// Resolves the lookups of `[project]` and of the `selected` services in `manifest` and writes
/// the values in.
/// Returns what was resolved, and the values that are secret (SecureStrings, sensitive
/// Terraform outputs) so that output can redact them.
///
/// `images_only` (`deployer build`): only what building and pushing needs (`registry`,
/// `repository`), so that a build job needs no access to the targets' identifiers.
pub(crate) async fn resolve(
    manifest: &mut Manifest,
    selected: &[String],
    sdk: &SdkConfig,
    images_only: bool,
) -> Result<(Vec<Resolved>, Vec<String>), LookupError> {
    let needs_registry = selected
        .iter()
        .any(|name| manifest.services[name].kind.is_image());
    // (owner, field, lookup) for every lookup to apply
    let mut wanted: Vec<(Option<String>, String, Lookup)> = Vec::new();
    if needs_registry {
        for (field, lookup) in &manifest.project.lookups {
            wanted.push((None, field.clone(), lookup.clone()));
        }
    }
    for name in selected {
        for (field, lookup) in &manifest.services[name].lookups {
            if images_only && field != "repository" && !field.starts_with("codebuild.") {
                continue;
            }
            wanted.push((Some(name.clone()), field.clone(), lookup.clone()));
        }
    }
    let distinct: BTreeSet<Lookup> = wanted.iter().map(|(_, _, lookup)| lookup.clone()).collect();
    let mut tasks = JoinSet::new();
    for lookup in distinct {
        let (sdk, root) = (sdk.clone(), manifest.root.clone());
        tasks.spawn(async move {
            let result = fetch(&lookup, &sdk, &root).await;
            (lookup, result)
        });
    }
    let mut values: BTreeMap<Lookup, Result<(String, bool), String>> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((lookup, result)) = joined {
            values.insert(lookup, result);
        }
    }
    let mut resolved = Vec::new();
    let mut secrets = Vec::new();
    for (owner, field, lookup) in wanted {
        let error = |reason: String| LookupError {
            owner: owner
                .as_ref()
                .map_or_else(|| "[project]".to_owned(), |s| format!("service `{s}`")),
            field: field.clone(),
            lookup: lookup.to_string(),
            reason,
        };
        let (value, secure) = match values.get(&lookup) {
            Some(Ok(found)) => found.clone(),
            Some(Err(reason)) => return Err(error(reason.clone())),
            None => return Err(error("the lookup task failed".into())),
        };
        let check = match field.as_str() {
            "registry" => check_registry(&value),
            "repository" => check_repository(&value),
            "prefix" if !value.starts_with('/') || value.ends_with('/') => Err(format!(
                "`{value}` is not an SSM path (it starts with `/` and does not end with `/`)"
            )),
            _ if value.trim().is_empty() => Err("the value is empty".into()),
            _ => Ok(()),
        };
        check.map_err(error)?;
        match &owner {
            None => manifest.project.resolve(&field, value.clone()),
            Some(name) => {
                if let Some(service) = manifest.services.get_mut(name) {
                    service.resolve(&field, value.clone());
                }
            }
        }
        if secure {
            secrets.push(value.clone());
        }
        resolved.push(Resolved {
            service: owner,
            field,
            from: lookup.to_string(),
            value: if secure {
                "(secure string)".into()
            } else {
                value
            },
        });
    }
    Ok((resolved, secrets))
}

/// The value of one lookup, and whether it is secret.
async fn fetch(lookup: &Lookup, sdk: &SdkConfig, root: &Path) -> Result<(String, bool), String> {
    match lookup {
        Lookup::Env { var } => match std::env::var(var) {
            Ok(value) => Ok((value, false)),
            Err(std::env::VarError::NotPresent) => Err("the variable is not set".into()),
            Err(std::env::VarError::NotUnicode(_)) => Err("the variable is not UTF-8".into()),
        },
        Lookup::Ssm { name } => {
            let ssm = crate::aws::client!(aws_sdk_ssm, sdk);
            match ssm.get_parameter().name(name).with_decryption(true).send().await {
                Ok(output) => {
                    let parameter = output.parameter().ok_or("GetParameter returned no parameter")?;
                    let value = parameter.value().ok_or("the parameter has no value")?.to_owned();
                    Ok((value, parameter.r#type() == Some(&ParameterType::SecureString)))
                }
                Err(error) if matches!(error.as_service_error(), Some(GetParameterError::ParameterNotFound(_))) => {
                    Err("the parameter does not exist (is the infrastructure deployed to this account and region?)".into())
                }
                Err(error) => Err(format!("GetParameter failed: {}", error_line(&error))),
            }
        }
        Lookup::CfnOutput { stack, output } => {
            let cfn = crate::aws::client!(aws_sdk_cloudformation, sdk);
            let described = cfn.describe_stacks().stack_name(stack).send().await.map_err(|error| {
                if deployer_aws::classify(&error) == deployer_aws::ErrorClass::NotFound {
                    format!("the stack {stack} does not exist (is the infrastructure deployed to this account and region?)")
                } else {
                    format!("DescribeStacks failed: {}", error_line(&error))
                }
            })?;
            let stack_outputs = described
                .stacks()
                .first()
                .map(|s| s.outputs())
                .unwrap_or_default();
            match stack_outputs
                .iter()
                .find(|o| o.output_key() == Some(output.as_str()))
            {
                Some(found) => Ok((found.output_value().unwrap_or_default().to_owned(), false)),
                None => {
                    let keys: Vec<&str> = stack_outputs
                        .iter()
                        .filter_map(|o| o.output_key())
                        .collect();
                    Err(format!(
                        "the stack has no output {output} (outputs: {})",
                        if keys.is_empty() {
                            "none".into()
                        } else {
                            keys.join(", ")
                        }
                    ))
                }
            }
        }
        Lookup::TfOutput { state, output } => {
            let bytes = if let Some(location) = state.strip_prefix("s3://") {
                let (bucket, key) = location
                    .split_once('/')
                    .ok_or("an s3:// state path is s3://<bucket>/<key>")?;
                let s3 = crate::aws::client!(aws_sdk_s3, sdk);
                let object = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|error| format!("GetObject failed: {}", error_line(&error)))?;
                object
                    .body
                    .collect()
                    .await
                    .map_err(|error| format!("reading the state failed: {error}"))?
                    .to_vec()
            } else {
                let path = root.join(state);
                std::fs::read(&path)
                    .map_err(|error| format!("cannot read {}: {error}", path.display()))?
            };
            let parsed: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|error| format!("the state is not JSON: {error}"))?;
            let value = parsed
                .get("outputs")
                .and_then(|outputs| outputs.get(output))
                .and_then(|o| o.get("value"));
            match value {
                Some(serde_json::Value::String(text)) => {
                    Ok((text.clone(), parsed["outputs"][output]["sensitive"] == true))
                }
                Some(serde_json::Value::Number(number)) => Ok((number.to_string(), false)),
                Some(other) => Err(format!(
                    "the output is a {}, not a string",
                    json_type(other)
                )),
                None => {
                    let names: Vec<&str> = parsed
                        .get("outputs")
                        .and_then(|o| o.as_object())
                        .map(|o| o.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    Err(format!(
                        "the state has no output {output} (outputs: {})",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    ))
                }
            }
        }
    }
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "map",
    }
}
