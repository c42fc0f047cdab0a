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
    format!("{} (deployers: {kinds})", env!("CARGO_PKG_VERSION"))
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

/// The deployer for `service`, with the SDK clients it needs.
pub(crate) fn deployer(
    ctx: &crate::context::Context,
    service: &Service,
) -> Result<Box<dyn deployer_core::Deployer>, UsageError> {
    #[allow(unused_imports)]
    use deployer_core::manifest::Target;
    require(service)?;
    #[allow(unused_variables)]
    let sdk = &ctx.sdk;
    match &service.target {
        #[cfg(feature = "ecs")]
        Target::Ecs(target) => Ok(Box::new(deployer_ecs::EcsDeployer::new(
            crate::aws::client!(aws_sdk_ecs, sdk),
            target.clone(),
        ))),
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
                format!("deployer/{}/{}/", ctx.manifest.project.name, service.name)
            });
            Ok(Box::new(
                deployer_lambda_zip::LambdaZipDeployer::new(
                    crate::aws::client!(aws_sdk_lambda, sdk),
                    target.clone(),
                    s3,
                    prefix,
                )
                .with_policy(service.wait_policy()),
            ))
        }
        #[cfg(feature = "sagemaker")]
        Target::Sagemaker(target) => {
            let image = service.image.as_ref().ok_or_else(|| {
                UsageError(format!("service `{}` has no image settings", service.name))
            })?;
            let registry = ctx.manifest.project.registry.clone().unwrap_or_default();
            Ok(Box::new(
                deployer_sagemaker::SagemakerDeployer::new(
                    crate::aws::client!(aws_sdk_sagemaker, sdk),
                    target.clone(),
                    format!("{registry}/{}", image.repository),
                )
                .with_poll_policy(service.wait_policy()),
            ))
        }
        #[allow(unreachable_patterns)]
        _ => Err(UsageError(format!(
            "service `{}`: kind {} is not compiled into this build",
            service.name, service.kind
        ))),
    }
}
