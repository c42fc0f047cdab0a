//! Which deployers this build carries, chosen by cargo feature.

use deployer_core::{Kind, Service};

use crate::exit::UsageError;

/// Whether the deployer for `kind` is compiled into this build.
pub(crate) fn compiled_in(kind: Kind) -> bool {
    match kind {
        Kind::Ecs => cfg!(feature = "ecs"),
        Kind::Agentcore => cfg!(feature = "agentcore"),
        Kind::LambdaImage => cfg!(feature = "lambda-image"),
        Kind::LambdaZip => cfg!(feature = "lambda-zip"),
        Kind::Sagemaker => cfg!(feature = "sagemaker"),
        Kind::Config => cfg!(feature = "config"),
    }
}

/// The kinds compiled in.
pub(crate) fn compiled() -> Vec<Kind> {
    Kind::ALL.into_iter().filter(|k| compiled_in(*k)).collect()
}

/// `--version`: the version and the deployers compiled in.
pub(crate) fn version_string() -> String {
    let kinds: Vec<&str> = compiled().iter().map(|k| k.as_str()).collect();
    let kinds = if kinds.is_empty() {
        "none".to_owned()
    } else {
        kinds.join(", ")
    };
    let builders = if cfg!(feature = "codebuild") {
        "local, codebuild"
    } else {
        "local"
    };
    format!(
        "{} (deployers: {kinds}; builders: {builders})",
        env!("CARGO_PKG_VERSION")
    )
}

/// Fails loudly when `service`'s kind is compiled out, naming the feature to enable.
pub(crate) fn require(service: &Service) -> Result<(), UsageError> {
    if compiled_in(service.kind) {
        return Ok(());
    }
    Err(UsageError(format!(
        "service `{}`: {kind} support is not compiled into this build (enable feature `{kind}` of deployer-cli, e.g. `cargo install deployer-cli --features {kind}`)",
        service.name,
        kind = service.kind
    )))
}

/// The deployers compiled into this build, with the SDK clients they need: the engine's
/// [`Targets`](deployer_engine::Targets).
pub(crate) struct CliTargets {
    sdk: aws_config::SdkConfig,
    #[cfg_attr(
        not(any(feature = "lambda-zip", feature = "sagemaker", feature = "config")),
        allow(dead_code)
    )]
    manifest: std::sync::Arc<deployer_core::Manifest>,
    /// The pipeline that moves an ECS service's mutable tag (`force_new_deployment`).
    #[cfg(feature = "ecs")]
    images: Option<std::sync::Arc<deployer_image::Pipeline>>,
}

impl CliTargets {
    pub(crate) fn new(ctx: &crate::context::Context) -> Self {
        CliTargets {
            sdk: ctx.sdk.clone(),
            manifest: ctx.manifest.clone(),
            #[cfg(feature = "ecs")]
            images: ctx.images.clone(),
        }
    }
}

impl deployer_engine::Targets for CliTargets {
    fn deployer(
        &self,
        service: &Service,
    ) -> Result<Box<dyn deployer_core::Deployer>, deployer_engine::External> {
        self.build(service)
            .map_err(|error| deployer_engine::External::usage(error.0))
    }
}

impl CliTargets {
    /// The deployer for `service`.
    fn build(&self, service: &Service) -> Result<Box<dyn deployer_core::Deployer>, UsageError> {
        #[allow(unused_imports)]
        use deployer_core::manifest::Target;
        require(service)?;
        #[allow(unused_variables)]
        let sdk = &self.sdk;
        match &service.target {
            #[cfg(feature = "ecs")]
            Target::Ecs(target) => {
                let mut deployer = deployer_ecs::EcsDeployer::new(
                    crate::aws::client!(aws_sdk_ecs, sdk),
                    target.clone(),
                )
                .with_logs(crate::aws::client!(aws_sdk_cloudwatchlogs, sdk))
                .with_load_balancing(crate::aws::client!(aws_sdk_elasticloadbalancingv2, sdk));
                if target.force_new_deployment
                    && let Some(images) = &self.images
                {
                    deployer = deployer.with_mutable_tags(std::sync::Arc::new(RegistryTags {
                        pipeline: images.clone(),
                    }));
                }
                Ok(Box::new(deployer))
            }
            #[cfg(feature = "agentcore")]
            Target::Agentcore(target) => Ok(Box::new(
                deployer_agentcore::AgentcoreDeployer::new(
                    crate::aws::client!(aws_sdk_bedrockagentcorecontrol, sdk),
                    target.clone(),
                )
                .with_poll_policy(service.wait_policy()),
            )),
            #[cfg(feature = "lambda-image")]
            Target::LambdaImage(target) => {
                let platform = service
                    .image
                    .as_ref()
                    .map(|image| image.platform.clone())
                    .ok_or_else(|| {
                        UsageError(format!("service `{}` has no image platform", service.name))
                    })?;
                Ok(Box::new(
                    deployer_lambda_image::LambdaImageDeployer::new(
                        crate::aws::client!(aws_sdk_lambda, sdk),
                        target.clone(),
                        platform,
                    )
                    .with_policy(service.wait_policy()),
                ))
            }
            #[cfg(feature = "lambda-zip")]
            Target::LambdaZip(target) => {
                let s3 = target
                    .s3_bucket
                    .as_ref()
                    .map(|_| crate::aws::client!(aws_sdk_s3, sdk));
                let prefix = target.s3_key_prefix.clone().unwrap_or_else(|| {
                    format!("deployer/{}/{}/", self.manifest.project.name, service.name)
                });
                Ok(Box::new(
                    deployer_lambda_zip::LambdaZipDeployer::new(
                        crate::aws::client!(aws_sdk_lambda, sdk),
                        target.lambda.clone(),
                        deployer_lambda_zip::ZipPackage::new(target, s3, prefix),
                    )
                    .with_policy(service.wait_policy()),
                ))
            }
            #[cfg(feature = "sagemaker")]
            Target::Sagemaker(target) => {
                let image = service.image.as_ref().ok_or_else(|| {
                    UsageError(format!("service `{}` has no image settings", service.name))
                })?;
                let registry = self.manifest.project.registry.clone().unwrap_or_default();
                Ok(Box::new(
                    deployer_sagemaker::SagemakerDeployer::new(
                        crate::aws::client!(aws_sdk_sagemaker, sdk),
                        target.clone(),
                        format!("{registry}/{}", image.repository),
                    )
                    .with_poll_policy(service.wait_policy()),
                ))
            }
            #[cfg(feature = "config")]
            Target::Config(target) => {
                let project = &self.manifest.project;
                let names = deployer_config::Names::of(
                    &project.name,
                    &project.ssm_prefix,
                    &service.name,
                    target.s3_key_prefix.as_deref(),
                );
                let clients = deployer_config::Clients {
                    dynamodb: matches!(
                        target.store,
                        deployer_core::manifest::ConfigStore::Dynamodb { .. }
                    )
                    .then(|| crate::aws::client!(aws_sdk_dynamodb, sdk)),
                    ssm: crate::aws::client!(aws_sdk_ssm, sdk),
                    s3: crate::aws::client!(aws_sdk_s3, sdk),
                };
                deployer_config::ConfigDeployer::new(clients, target.clone(), names)
                    .map(|deployer| Box::new(deployer) as Box<dyn deployer_core::Deployer>)
                    .map_err(|error| UsageError(format!("service `{}`: {error}", service.name)))
            }
            #[allow(unreachable_patterns)]
            _ => Err(UsageError(format!(
                "service `{}`: kind {} is not compiled into this build",
                service.name, service.kind
            ))),
        }
    }
}

/// ECS `force_new_deployment`: the mutable tag the task definition runs, read and moved in
/// the project's registry.
#[cfg(feature = "ecs")]
struct RegistryTags {
    pipeline: std::sync::Arc<deployer_image::Pipeline>,
}

#[cfg(feature = "ecs")]
impl RegistryTags {
    fn repository<'a>(
        &self,
        repository_uri: &'a str,
    ) -> Result<&'a str, deployer_core::DeployError> {
        let host = self.pipeline.registry().host();
        repository_uri
            .strip_prefix(host)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| {
                deployer_core::DeployError::Mismatch(format!(
                    "`force_new_deployment`: {repository_uri} is not in the project's registry {host}, so its mutable tag cannot be moved"
                ))
            })
    }
}

#[cfg(feature = "ecs")]
fn registry_error(error: &deployer_image::ImageError) -> deployer_core::DeployError {
    if error.is_config() {
        deployer_core::DeployError::Mismatch(error.to_string())
    } else {
        deployer_core::DeployError::api("registry", None, error.to_string())
    }
}

#[cfg(feature = "ecs")]
#[async_trait::async_trait]
impl deployer_ecs::MutableTags for RegistryTags {
    async fn digest(
        &self,
        repository_uri: &str,
        tag: &str,
    ) -> Result<Option<String>, deployer_core::DeployError> {
        let repository = self.repository(repository_uri)?;
        self.pipeline
            .check(repository, tag)
            .await
            .map_err(|error| registry_error(&error))
    }

    async fn point(
        &self,
        repository_uri: &str,
        tag: &str,
        digest: &str,
    ) -> Result<(), deployer_core::DeployError> {
        let repository = self.repository(repository_uri)?;
        // The deployer passed its fence right before this call.
        self.pipeline
            .retag(
                repository,
                digest,
                tag,
                &deployer_core::Progress::discard(tag),
            )
            .await
            .map_err(|error| registry_error(&error))
    }
}
