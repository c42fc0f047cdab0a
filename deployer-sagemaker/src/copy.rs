//! The live endpoint as read, the variants deployer targets, and the copies: a model with only
//! the image replaced, an endpoint config with only the targeted variants' model replaced.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aws_sdk_sagemaker::operation::describe_endpoint_config::DescribeEndpointConfigOutput;
use aws_sdk_sagemaker::operation::describe_model::DescribeModelOutput;
use aws_sdk_sagemaker::types::{
    AsyncInferenceConfig, ContainerDefinition, DataCaptureConfig, ExplainerConfig,
    InferenceExecutionConfig, MetricsConfig, ProductionVariant, Tag, VpcConfig,
};
use deployer_aws::Redactor;
use deployer_aws::raw::{Object, PathStep, RawJson, set_at};
use deployer_core::DeployError;
use serde_json::Value;

use crate::fields::{CONFIG_READ_ONLY, MODEL_READ_ONLY};

/// The tag deployer puts on the models and endpoint configs it creates: the endpoint's name.
/// Cleanup deletes only resources that carry it (and the name prefix).
pub const OWNER_TAG: &str = "deployer:endpoint";

/// A model as `DescribeModel` returned it.
#[derive(Clone)]
pub(crate) struct LiveModel {
    pub(crate) output: DescribeModelOutput,
    /// The raw response, to check the copy against (`None` under aws-smithy-mocks).
    pub(crate) raw: Option<RawJson>,
}

/// An endpoint config as `DescribeEndpointConfig` returned it.
#[derive(Clone)]
pub(crate) struct LiveConfig {
    pub(crate) name: String,
    pub(crate) output: DescribeEndpointConfigOutput,
    pub(crate) raw: Option<RawJson>,
}

/// Where a container sits in a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// `PrimaryContainer`.
    Primary,
    /// `Containers[i]`.
    Pipeline(usize),
}

/// A variant whose model's image deployer replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Targeted {
    pub(crate) variant: String,
    /// A shadow variant (`ShadowProductionVariants`).
    pub(crate) shadow: bool,
    /// Its index in its list.
    pub(crate) index: usize,
    pub(crate) model: String,
    /// The containers of the model whose image is replaced.
    pub(crate) slots: Vec<Slot>,
}

/// The containers of a model with their slots.
pub(crate) fn containers(model: &DescribeModelOutput) -> Vec<(Slot, &ContainerDefinition)> {
    let mut out = Vec::new();
    if let Some(primary) = model.primary_container() {
        out.push((Slot::Primary, primary));
    }
    out.extend(
        model
            .containers()
            .iter()
            .enumerate()
            .map(|(i, c)| (Slot::Pipeline(i), c)),
    );
    out
}

fn container_at(model: &DescribeModelOutput, slot: Slot) -> Option<&ContainerDefinition> {
    match slot {
        Slot::Primary => model.primary_container(),
        Slot::Pipeline(i) => model.containers().get(i),
    }
}

/// The repository of an image reference: `host:5000/a/b:tag@sha256:…` → `host:5000/a/b`.
pub(crate) fn repository(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(colon) => &name[..slash + colon],
        None => name,
    }
}

/// Every variant of a config: production ones first, then shadow ones.
pub(crate) fn variants(
    config: &DescribeEndpointConfigOutput,
) -> Vec<(bool, usize, &ProductionVariant)> {
    config
        .production_variants()
        .iter()
        .enumerate()
        .map(|(i, v)| (false, i, v))
        .chain(
            config
                .shadow_production_variants()
                .iter()
                .enumerate()
                .map(|(i, v)| (true, i, v)),
        )
        .collect()
}

/// `variant AllTraffic: model m runs image, …` for errors: every variant and its images.
fn listing(
    config: &DescribeEndpointConfigOutput,
    models: &BTreeMap<String, Option<LiveModel>>,
) -> String {
    let lines: Vec<String> = variants(config)
        .into_iter()
        .map(|(shadow, _, variant)| {
            let name = variant.variant_name().unwrap_or("?");
            let kind = if shadow { "shadow variant" } else { "variant" };
            let model = variant.model_name().unwrap_or("?");
            let images = match models.get(model) {
                Some(Some(live)) => {
                    let images: Vec<&str> = containers(&live.output)
                        .into_iter()
                        .map(|(_, c)| c.image().unwrap_or("(no image)"))
                        .collect();
                    if images.is_empty() {
                        "no containers".to_owned()
                    } else {
                        images.join(" + ")
                    }
                }
                _ => "(model not found)".to_owned(),
            };
            format!("{kind} `{name}` (model {model}) runs {images}")
        })
        .collect();
    if lines.is_empty() {
        "it has no variants".to_owned()
    } else {
        lines.join("; ")
    }
}

/// The variants deployer replaces the image of: the one `wanted` names, or every production
/// variant whose model has a container in `repository`.
pub(crate) fn select(
    config: &DescribeEndpointConfigOutput,
    models: &BTreeMap<String, Option<LiveModel>>,
    wanted: Option<&str>,
    repository_uri: &str,
    endpoint: &str,
) -> Result<Vec<Targeted>, DeployError> {
    let config_name = config.endpoint_config_name().unwrap_or("?");
    let in_repository = |model: &DescribeModelOutput| -> Vec<Slot> {
        containers(model)
            .into_iter()
            .filter(|(_, c)| {
                c.image()
                    .is_some_and(|image| repository(image) == repository_uri)
            })
            .map(|(slot, _)| slot)
            .collect()
    };
    if let Some(wanted) = wanted {
        let Some((shadow, index, variant)) = variants(config)
            .into_iter()
            .find(|(_, _, v)| v.variant_name() == Some(wanted))
        else {
            return Err(DeployError::Mismatch(format!(
                "endpoint {endpoint} (config {config_name}) has no variant `{wanted}`: {}; set `variant` to one of them",
                listing(config, models)
            )));
        };
        let model = variant.model_name().ok_or(DeployError::MissingField {
            operation: "DescribeEndpointConfig",
            field: "ProductionVariants[].ModelName",
        })?;
        let Some(Some(live)) = models.get(model) else {
            return Err(DeployError::Mismatch(format!(
                "the model {model} of variant `{wanted}` of endpoint {endpoint} does not exist; fix the endpoint config {config_name}"
            )));
        };
        let mut slots = in_repository(&live.output);
        if slots.is_empty() {
            // A named variant with one container is replaced whatever its image was (a first
            // deploy from a public image); with several, the repository must say which.
            match containers(&live.output).as_slice() {
                [(slot, container)] if container.image().is_some() => slots.push(*slot),
                _ => {
                    return Err(DeployError::Mismatch(format!(
                        "no container of model {model} (variant `{wanted}` of endpoint {endpoint}) runs an image of {repository_uri}: {}",
                        listing(config, models)
                    )));
                }
            }
        }
        return Ok(vec![Targeted {
            variant: wanted.to_owned(),
            shadow,
            index,
            model: model.to_owned(),
            slots,
        }]);
    }
    let mut targeted = Vec::new();
    for (index, variant) in config.production_variants().iter().enumerate() {
        let (Some(name), Some(model)) = (variant.variant_name(), variant.model_name()) else {
            continue;
        };
        let Some(Some(live)) = models.get(model) else {
            continue;
        };
        let slots = in_repository(&live.output);
        if !slots.is_empty() {
            targeted.push(Targeted {
                variant: name.to_owned(),
                shadow: false,
                index,
                model: model.to_owned(),
                slots,
            });
        }
    }
    if targeted.is_empty() {
        return Err(DeployError::Mismatch(format!(
            "no production variant of endpoint {endpoint} (config {config_name}) runs an image of {repository_uri}: {}; \
             set `variant` to the one to update, or fix the service's repository",
            listing(config, models)
        )));
    }
    Ok(targeted)
}

/// The images the targeted containers run, in order.
pub(crate) fn targeted_images<'a>(
    targeted: &[Targeted],
    models: &'a BTreeMap<String, Option<LiveModel>>,
) -> Vec<(&'a str, String)> {
    let mut out = Vec::new();
    for target in targeted {
        let Some(Some(live)) = models.get(&target.model) else {
            continue;
        };
        for slot in &target.slots {
            if let Some(image) = container_at(&live.output, *slot).and_then(|c| c.image()) {
                out.push((image, target.variant.clone()));
            }
        }
    }
    out
}

/// The redactor for every environment value of `models`.
pub(crate) fn redactor(models: &BTreeMap<String, Option<LiveModel>>) -> Redactor {
    Redactor::new(environment_values(models))
}

/// The environment values of every container of `models` (what [`redactor`] hides).
pub(crate) fn environment_values(models: &BTreeMap<String, Option<LiveModel>>) -> Vec<String> {
    models
        .values()
        .flatten()
        .flat_map(|live| containers(&live.output))
        .filter_map(|(_, c)| c.environment())
        .flat_map(HashMap::values)
        .cloned()
        .collect()
}

/// `A, B` environment variable names of a model (values are secrets).
pub(crate) fn environment_names(model: &DescribeModelOutput) -> Vec<String> {
    let mut names: Vec<String> = containers(model)
        .into_iter()
        .filter_map(|(_, c)| c.environment())
        .flat_map(|env| env.keys().cloned())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// What `CreateModel` receives besides the name and tags. Compared with an existing model of
/// the chosen name to tell a re-run (reuse it) from a clash (pick another name).
#[derive(Clone, PartialEq)]
pub(crate) struct ModelSpec {
    pub(crate) primary_container: Option<ContainerDefinition>,
    pub(crate) containers: Option<Vec<ContainerDefinition>>,
    pub(crate) inference_execution_config: Option<InferenceExecutionConfig>,
    pub(crate) execution_role_arn: Option<String>,
    pub(crate) vpc_config: Option<VpcConfig>,
    pub(crate) enable_network_isolation: Option<bool>,
}

/// Member names only: container definitions hold environment values.
impl fmt::Debug for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelSpec")
            .field("execution_role_arn", &self.execution_role_arn)
            .finish_non_exhaustive()
    }
}

impl ModelSpec {
    /// Every copied member of `live` ([`crate::fields::MODEL_COPIED`]).
    pub(crate) fn from_live(live: &DescribeModelOutput) -> Self {
        ModelSpec {
            primary_container: live.primary_container.clone(),
            containers: live.containers.clone(),
            inference_execution_config: live.inference_execution_config.clone(),
            execution_role_arn: live.execution_role_arn.clone(),
            vpc_config: live.vpc_config.clone(),
            enable_network_isolation: live.enable_network_isolation,
        }
    }

    /// `from_live` with the image at `slots` replaced by `image`.
    pub(crate) fn with_image(live: &DescribeModelOutput, slots: &[Slot], image: &str) -> Self {
        let mut spec = Self::from_live(live);
        for slot in slots {
            let container = match slot {
                Slot::Primary => spec.primary_container.as_mut(),
                Slot::Pipeline(i) => spec.containers.as_mut().and_then(|c| c.get_mut(*i)),
            };
            if let Some(container) = container {
                container.image = Some(image.to_owned());
            }
        }
        spec
    }

    /// The same model, as far as SageMaker's defaults go: an absent list is an empty one, an
    /// absent flag is false.
    pub(crate) fn same(&self, other: &ModelSpec) -> bool {
        fn normal(spec: &ModelSpec) -> ModelSpec {
            let mut spec = spec.clone();
            spec.containers = spec.containers.filter(|c| !c.is_empty());
            spec.enable_network_isolation = Some(spec.enable_network_isolation.unwrap_or(false));
            spec
        }
        normal(self) == normal(other)
    }

    /// What the `CreateModel` body must carry: the raw `DescribeModel` without the read-only
    /// members, the image at `slots` replaced.
    pub(crate) fn expected_body(raw: &RawJson, slots: &[Slot], image: &str) -> Object {
        let mut expected = raw.writable(MODEL_READ_ONLY);
        for slot in slots {
            let path: Vec<PathStep<'_>> = match slot {
                Slot::Primary => vec![PathStep::Key("PrimaryContainer")],
                Slot::Pipeline(i) => vec![PathStep::Key("Containers"), PathStep::Index(*i)],
            };
            set_at(
                &mut expected,
                &path,
                "Image",
                Value::String(image.to_owned()),
            );
        }
        expected
    }
}

/// What `CreateEndpointConfig` receives besides the name and tags.
#[derive(Clone, PartialEq)]
pub(crate) struct ConfigSpec {
    pub(crate) production_variants: Option<Vec<ProductionVariant>>,
    pub(crate) data_capture_config: Option<DataCaptureConfig>,
    pub(crate) kms_key_id: Option<String>,
    pub(crate) async_inference_config: Option<AsyncInferenceConfig>,
    pub(crate) explainer_config: Option<ExplainerConfig>,
    pub(crate) shadow_production_variants: Option<Vec<ProductionVariant>>,
    pub(crate) execution_role_arn: Option<String>,
    pub(crate) vpc_config: Option<VpcConfig>,
    pub(crate) enable_network_isolation: Option<bool>,
    pub(crate) metrics_config: Option<MetricsConfig>,
}

impl fmt::Debug for ConfigSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |variants: &Option<Vec<ProductionVariant>>| -> Vec<String> {
            variants
                .iter()
                .flatten()
                .map(|v| {
                    format!(
                        "{}={}",
                        v.variant_name().unwrap_or("?"),
                        v.model_name().unwrap_or("?")
                    )
                })
                .collect()
        };
        f.debug_struct("ConfigSpec")
            .field("production_variants", &names(&self.production_variants))
            .field(
                "shadow_production_variants",
                &names(&self.shadow_production_variants),
            )
            .finish_non_exhaustive()
    }
}

impl ConfigSpec {
    /// Every copied member of `live` ([`crate::fields::CONFIG_COPIED`]).
    pub(crate) fn from_live(live: &DescribeEndpointConfigOutput) -> Self {
        ConfigSpec {
            production_variants: live.production_variants.clone(),
            data_capture_config: live.data_capture_config.clone(),
            kms_key_id: live.kms_key_id.clone(),
            async_inference_config: live.async_inference_config.clone(),
            explainer_config: live.explainer_config.clone(),
            shadow_production_variants: live.shadow_production_variants.clone(),
            execution_role_arn: live.execution_role_arn.clone(),
            vpc_config: live.vpc_config.clone(),
            enable_network_isolation: live.enable_network_isolation,
            metrics_config: live.metrics_config.clone(),
        }
    }

    /// `from_live` with the targeted variants on their new models (`new_models`: old model
    /// name → new model name, per targeted variant).
    pub(crate) fn with_models(
        live: &DescribeEndpointConfigOutput,
        targeted: &[Targeted],
        new_models: &HashMap<String, String>,
    ) -> Self {
        let mut spec = Self::from_live(live);
        for target in targeted {
            let Some(new) = new_models.get(&target.model) else {
                continue;
            };
            let list = if target.shadow {
                spec.shadow_production_variants.as_mut()
            } else {
                spec.production_variants.as_mut()
            };
            if let Some(variant) = list.and_then(|list| list.get_mut(target.index)) {
                variant.model_name = Some(new.clone());
            }
        }
        spec
    }

    /// The same config, as far as SageMaker's defaults go.
    pub(crate) fn same(&self, other: &ConfigSpec) -> bool {
        fn normal(spec: &ConfigSpec) -> ConfigSpec {
            let mut spec = spec.clone();
            spec.shadow_production_variants =
                spec.shadow_production_variants.filter(|v| !v.is_empty());
            spec.enable_network_isolation = Some(spec.enable_network_isolation.unwrap_or(false));
            spec
        }
        normal(self) == normal(other)
    }

    /// What the `CreateEndpointConfig` body must carry: the raw `DescribeEndpointConfig`
    /// without the read-only members, the targeted variants on their new models.
    pub(crate) fn expected_body(
        raw: &RawJson,
        targeted: &[Targeted],
        new_models: &HashMap<String, String>,
    ) -> Object {
        let mut expected = raw.writable(CONFIG_READ_ONLY);
        for target in targeted {
            let Some(new) = new_models.get(&target.model) else {
                continue;
            };
            let list = if target.shadow {
                "ShadowProductionVariants"
            } else {
                "ProductionVariants"
            };
            set_at(
                &mut expected,
                &[PathStep::Key(list), PathStep::Index(target.index)],
                "ModelName",
                Value::String(new.clone()),
            );
        }
        expected
    }
}

/// The tags a copy carries: the live resource's, without `aws:` tags (only AWS may set them)
/// and with [`OWNER_TAG`] set to `endpoint`.
pub(crate) fn copied_tags(live: &[Tag], endpoint: &str) -> Vec<Tag> {
    let mut tags: Vec<Tag> = live
        .iter()
        .filter(|tag| {
            tag.key()
                .is_some_and(|key| !is_aws_reserved_key(key) && key != OWNER_TAG)
        })
        .cloned()
        .collect();
    tags.push(Tag::builder().key(OWNER_TAG).value(endpoint).build());
    tags
}

/// Whether a tag key is in the `aws:` namespace.
pub(crate) fn is_aws_reserved_key(key: &str) -> bool {
    key.get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_strips_tag_and_digest_not_port() {
        assert_eq!(repository("host:5000/a/b:t@sha256:1"), "host:5000/a/b");
        assert_eq!(repository("host:5000/a/b@sha256:1"), "host:5000/a/b");
        assert_eq!(repository("host:5000/a/b"), "host:5000/a/b");
        assert_eq!(repository("b:latest"), "b");
    }

    #[test]
    fn copied_tags_drop_aws_tags_and_set_the_owner() {
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let tags = copied_tags(
            &[
                tag("team", "ml"),
                tag("aws:cloudformation:stack-name", "s"),
                tag(OWNER_TAG, "other"),
            ],
            "ep",
        );
        assert_eq!(tags, [tag("team", "ml"), tag(OWNER_TAG, "ep")]);
    }
}
