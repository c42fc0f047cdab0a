//! The IaC revert guard of `status` and `plan`: per image service, the IaC that owns the
//! target (the manifest's `iac`, else the stack of the target's `aws:cloudformation:stack-name`
//! tag) and whether its next deploy would put another image back. The analysis is
//! `deployer_iac`'s; this module finds the IaC and reads it. Whatever cannot be read is a
//! warning saying so, never an error: the guard does not change an exit code.

use deployer_core::manifest::{IacSource, Target as ManifestTarget};
use deployer_core::{Deployer, Kind, Service};
use deployer_engine::records::Names;
use deployer_iac::Target;

use crate::context::Context;

/// The warnings for `service`, whose target is `deployer` and runs `live` (its artifact),
/// recorded under `recorded_tag`.
pub(crate) async fn warnings(
    ctx: &Context,
    service: &Service,
    deployer: &dyn Deployer,
    live: Option<&str>,
    recorded_tag: Option<&str>,
) -> Vec<String> {
    let Some(kind) = iac_kind(service.kind) else {
        return Vec::new();
    };
    let names = Names::of(&ctx.manifest.project, &service.name);
    let (name, container) = match &service.target {
        ManifestTarget::Ecs(t) => (Some(t.service.as_str()), t.container.as_deref()),
        ManifestTarget::Agentcore(t) => (Some(t.runtime_id.as_str()), None),
        ManifestTarget::LambdaImage(t) => (Some(t.function.as_str()), None),
        _ => (None, None),
    };
    let target = Target {
        kind,
        service: &service.name,
        name,
        container,
        parameter: &names.tag,
    };
    let (source, explicit) = match &service.iac {
        Some(iac) if iac.ignores_image => return Vec::new(),
        Some(iac) => (iac.source.clone(), true),
        None => match deployer.owning_stack().await {
            Ok(Some(stack)) => (IacSource::CfnStack(stack), false),
            Ok(None) => return Vec::new(),
            Err(error) => {
                return vec![format!(
                    "cannot tell whether the IaC would revert the image: reading the target's `{}` tag failed: {error}; \
                     name the IaC with `iac = {{ cfn_stack = \"…\" }}` or `iac = {{ tf_state = \"…\", address = \"…\" }}`",
                    deployer_core::STACK_NAME_TAG
                )];
            }
        },
    };
    match source {
        IacSource::CfnStack(stack) => {
            let client = crate::aws::client!(aws_sdk_cloudformation, &ctx.sdk);
            match deployer_iac::processed_template(&client, &stack).await {
                Ok(body) => deployer_iac::template_warnings(&stack, &body, &target),
                Err(error) => vec![format!(
                    "cannot tell whether CloudFormation stack `{stack}`{} keeps the image: {error}",
                    if explicit {
                        ""
                    } else {
                        " (from the target's stack-name tag)"
                    }
                )],
            }
        }
        IacSource::TfState { state, address } => {
            let cannot = |why: String| {
                vec![format!(
                    "cannot tell whether Terraform state `{state}` keeps the image: {why}"
                )]
            };
            let Some(live) = live else {
                return cannot("the service runs no image deployer recognises".into());
            };
            let path = ctx.manifest.root.join(&state);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => return cannot(format!("reading {} failed: {error}", path.display())),
            };
            let document = match serde_json::from_str(&text) {
                Ok(document) => document,
                Err(error) => return cannot(format!("it is not JSON: {error}")),
            };
            match deployer_iac::tfstate::image(&document, &address, kind, container, &names.tag) {
                Ok(image) => deployer_iac::state_warning(
                    &state,
                    &address,
                    &image,
                    live,
                    recorded_tag,
                    &target,
                )
                .into_iter()
                .collect(),
                Err(error) => cannot(error.to_string()),
            }
        }
    }
}

/// What holds the image of a kind; `None` for kinds without one.
fn iac_kind(kind: Kind) -> Option<deployer_iac::Kind> {
    match kind {
        Kind::Ecs => Some(deployer_iac::Kind::Ecs),
        Kind::Agentcore => Some(deployer_iac::Kind::Agentcore),
        Kind::LambdaImage => Some(deployer_iac::Kind::Lambda),
        Kind::Sagemaker => Some(deployer_iac::Kind::Sagemaker),
        Kind::LambdaZip | Kind::Config => None,
    }
}
