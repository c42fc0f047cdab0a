//! The IaC revert guard: would the next infrastructure deploy put another image back?
//!
//! deployer rolls a service over to a new image and records its tag in SSM at
//! `<ssm_prefix>/<service>/image-tag`; the infrastructure code is meant to read that parameter,
//! so that a later `cdk deploy` or `terraform apply` keeps the image instead of reverting it.
//! This crate checks that it does, without calling anything but (optionally) CloudFormation's
//! `GetTemplate`:
//!
//! - [`template`]: a CloudFormation template (JSON, or YAML with the short-form tags `!Sub`,
//!   `!Ref`, `!Join`, `!GetAtt`, …) — the resource that is the service (an
//!   `AWS::ECS::TaskDefinition`'s container `Image`, an `AWS::Lambda::Function`'s
//!   `Code.ImageUri`, an `AWS::BedrockAgentCore::Runtime`'s
//!   `AgentRuntimeArtifact.ContainerConfiguration.ContainerUri`, an `AWS::SageMaker::Model`'s
//!   container `Image`) and whether that property is [`Wiring::Wired`] to the parameter:
//!   `{{resolve:ssm:<parameter>}}` (with or without a version), or a `Ref` to a template
//!   parameter of type `AWS::SSM::Parameter::Value<String>` whose `Default` is the parameter
//!   (CDK's `ssm.StringParameter.valueForStringParameter`), also inside `Fn::Sub` and
//!   `Fn::Join`. Anything else (a literal, another parameter) is a [`Finding`] whose
//!   [`warning`](Finding::warning) names the resource, the property path, the wiring expected
//!   and the CDK line that fixes it.
//! - [`tfstate`]: a Terraform state file (format 4) — the image the resource at an address was
//!   last applied with, compared with the live one by [`same_image`]; [`state_warning`] says
//!   when the next apply would put another one back, with the Terraform that fixes it.
//! - [`processed_template`]: `GetTemplate` (stage `Processed`) through an injected
//!   CloudFormation client, its errors in one line ([`IacError::Read`]).
//!
//! Pure functions over `serde_json::Value`; nothing here prints.
//!
//! # Using it alone
//!
//! `examples/iac-check.rs` checks a template file or a state file for one service
//! (`cargo run -p deployer-iac --example iac-check -- --help`).
//!
//! ```
//! use deployer_iac::{Kind, Target, template};
//!
//! let body = r#"
//! Parameters:
//!   Tag:
//!     Type: AWS::SSM::Parameter::Value<String>
//!     Default: /acme/app-api/image-tag
//! Resources:
//!   Task:
//!     Type: AWS::ECS::TaskDefinition
//!     Properties:
//!       ContainerDefinitions:
//!         - Name: app
//!           Image: !Sub "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app-api:${Tag}"
//!         - Name: proxy
//!           Image: public.ecr.aws/nginx/nginx:1.27
//! "#;
//! let target = Target {
//!     kind: Kind::Ecs,
//!     service: "app-api",
//!     name: Some("app-api"),
//!     container: Some("app"),
//!     parameter: "/acme/app-api/image-tag",
//! };
//! let template = template::parse(body)?;
//! let findings = template::check(&template, &target);
//! assert_eq!(findings.len(), 1);
//! assert!(findings[0].warning("AcmeCompute", &target).is_none(), "wired through the SSM-typed parameter");
//!
//! let literal = body.replace("${Tag}", "v41");
//! let findings = template::check(&template::parse(&literal)?, &target);
//! let warning = findings[0].warning("AcmeCompute", &target).unwrap();
//! assert!(warning.contains("Task (AWS::ECS::TaskDefinition) Properties.ContainerDefinitions[0].Image"));
//! # Ok::<(), deployer_iac::IacError>(())
//! ```
#![warn(missing_docs)]

pub mod template;
pub mod tfstate;
mod yaml;

use deployer_aws::{ErrorClass, classify, error_line};

/// Errors of the guard. Each one becomes a warning of `status` and `plan`, never a failure.
#[derive(Debug, thiserror::Error)]
pub enum IacError {
    /// The template or state could not be parsed.
    #[error("line {line}: {message}")]
    Template {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The Terraform state has no usable image at the address.
    #[error("cannot read `{address}` in the Terraform state: {why}")]
    State {
        /// The resource address from the manifest.
        address: String,
        /// Why not.
        why: String,
    },
    /// A call to read the IaC failed.
    #[error("{operation} of stack `{stack}` failed: {message}")]
    Read {
        /// The call, e.g. `GetTemplate`.
        operation: &'static str,
        /// The stack.
        stack: String,
        /// The error in one line, with a hint for the usual causes.
        message: String,
    },
}

/// The kind of compute resource whose image is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ECS task definition's container.
    Ecs,
    /// An image Lambda function.
    Lambda,
    /// A Bedrock AgentCore runtime.
    Agentcore,
    /// A SageMaker model's container.
    Sagemaker,
}

impl Kind {
    /// The CloudFormation resource type holding the image.
    pub fn cfn_type(self) -> &'static str {
        match self {
            Kind::Ecs => "AWS::ECS::TaskDefinition",
            Kind::Lambda => "AWS::Lambda::Function",
            Kind::Agentcore => "AWS::BedrockAgentCore::Runtime",
            Kind::Sagemaker => "AWS::SageMaker::Model",
        }
    }

    /// The Terraform resource type holding the image.
    pub fn tf_type(self) -> &'static str {
        match self {
            Kind::Ecs => "aws_ecs_task_definition",
            Kind::Lambda => "aws_lambda_function",
            Kind::Agentcore => "aws_bedrockagentcore_agent_runtime",
            Kind::Sagemaker => "aws_sagemaker_model",
        }
    }

    /// The CDK expression that takes the image from the tag parameter.
    pub fn cdk_fix(self, parameter: &str) -> String {
        let tag = format!("ssm.StringParameter.valueForStringParameter(this, '{parameter}')");
        match self {
            Kind::Ecs => format!("ecs.ContainerImage.fromEcrRepository(repo, {tag})"),
            Kind::Lambda => {
                format!("lambda.DockerImageCode.fromEcr(repo, {{ tagOrDigest: {tag} }})")
            }
            Kind::Agentcore => {
                format!("agentcore.AgentRuntimeArtifact.fromEcrRepository(repo, {tag})")
            }
            Kind::Sagemaker => format!("sagemaker.ContainerImage.fromEcrRepository(repo, {tag})"),
        }
    }

    /// The Terraform that keeps the image: the attribute read from the tag parameter, or the
    /// attribute ignored (with `ignores_image = true` in the manifest).
    pub fn terraform_fix(self, parameter: &str) -> String {
        let (attribute, ignored) = match self {
            Kind::Ecs => (
                "image = \"${aws_ecr_repository.app.repository_url}:${data.aws_ssm_parameter.image_tag.value}\" in container_definitions",
                "container_definitions",
            ),
            Kind::Lambda => (
                "image_uri = \"${aws_ecr_repository.app.repository_url}:${data.aws_ssm_parameter.image_tag.value}\"",
                "image_uri",
            ),
            Kind::Agentcore => (
                "container_uri = \"${aws_ecr_repository.app.repository_url}:${data.aws_ssm_parameter.image_tag.value}\"",
                "agent_runtime_artifact",
            ),
            Kind::Sagemaker => (
                "image = \"${aws_ecr_repository.app.repository_url}:${data.aws_ssm_parameter.image_tag.value}\" in primary_container",
                "primary_container",
            ),
        };
        format!(
            "`data \"aws_ssm_parameter\" \"image_tag\" {{ name = \"{parameter}\" }}` and `{attribute}`, \
             or `lifecycle {{ ignore_changes = [{ignored}] }}` and `ignores_image = true` in the service's `iac`"
        )
    }
}

/// The service a check is about.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// What holds the image.
    pub kind: Kind,
    /// The service's name in the manifest.
    pub service: &'a str,
    /// The target's own name where a template may name it: the ECS service, the function, the
    /// runtime id (a runtime named `n` has ids `n-<suffix>`). Narrows a template with several
    /// resources of the type to the one that is the target.
    pub name: Option<&'a str>,
    /// The ECS container whose image deployer replaces.
    pub container: Option<&'a str>,
    /// `<ssm_prefix>/<service>/image-tag`.
    pub parameter: &'a str,
}

/// How an image property gets its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wiring {
    /// From the tag parameter: the next deploy keeps what deployer recorded.
    Wired,
    /// A literal image.
    Literal(String),
    /// A template parameter that is not the SSM-typed one defaulting to the tag parameter.
    OtherParameter {
        /// The template parameter.
        name: String,
        /// Its declared `Type`.
        kind: String,
        /// Its `Default`.
        default: Option<String>,
    },
    /// Anything else, described in a few words.
    Other(String),
}

/// One image property of a resource that may be the target, and its wiring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The resource's logical id.
    pub resource: String,
    /// Its type, e.g. `AWS::ECS::TaskDefinition`.
    pub resource_type: String,
    /// The property path, e.g. `Properties.ContainerDefinitions[0].Image`.
    pub property: String,
    /// How it is wired.
    pub wiring: Wiring,
}

impl Finding {
    /// The warning for this property, `None` when it is wired to the tag parameter.
    pub fn warning(&self, stack: &str, target: &Target<'_>) -> Option<String> {
        let is = match &self.wiring {
            Wiring::Wired => return None,
            Wiring::Literal(image) => format!("the literal `{image}`"),
            Wiring::OtherParameter {
                name,
                kind,
                default,
            } => format!(
                "template parameter `{name}` (Type {kind}, Default {})",
                default
                    .as_deref()
                    .map_or_else(|| "none".to_owned(), |d| format!("`{d}`"))
            ),
            Wiring::Other(what) => what.clone(),
        };
        let parameter = target.parameter;
        Some(format!(
            "the next deploy of CloudFormation stack `{stack}` would revert the image: {} ({}) {} is {is}, \
             not the tag deployer records in SSM `{parameter}`; expected `{{{{resolve:ssm:{parameter}}}}}` \
             or a Ref to a parameter of Type {} with Default `{parameter}` (also inside Fn::Sub or Fn::Join); \
             fix with CDK: `{}`",
            self.resource,
            self.resource_type,
            self.property,
            template::SSM_PARAMETER_TYPE,
            target.kind.cdk_fix(parameter),
        ))
    }
}

/// The warnings for `template_body` of `stack`: one per image property of the target that is
/// not wired to the tag parameter, or one saying the target is not in the template.
pub fn template_warnings(stack: &str, template_body: &str, target: &Target<'_>) -> Vec<String> {
    let template = match template::parse(template_body) {
        Ok(template) => template,
        Err(error) => {
            return vec![format!(
                "cannot tell whether CloudFormation stack `{stack}` keeps the image: its template does not parse: {error}"
            )];
        }
    };
    let findings = template::check(&template, target);
    if findings.is_empty() {
        return vec![format!(
            "cannot tell whether CloudFormation stack `{stack}` keeps the image: its template has no {} \
             with an image property{}; name the stack that owns it with `iac = {{ cfn_stack = \"…\" }}`",
            target.kind.cfn_type(),
            target
                .container
                .map(|c| format!(" for container `{c}`"))
                .unwrap_or_default()
        )];
    }
    findings
        .iter()
        .filter_map(|f| f.warning(stack, target))
        .collect()
}

/// An image reference taken apart: `repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `registry/path`.
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits `image`; a `:` after the last `/` starts the tag (not a registry port).
    pub fn parse(image: &str) -> ImageRef {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (image, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[slash..].rfind(':') {
            Some(colon) => (
                rest[..slash + colon].to_owned(),
                Some(rest[slash + colon + 1..].to_owned()),
            ),
            None => (rest.to_owned(), None),
        };
        ImageRef {
            repository,
            tag,
            digest,
        }
    }
}

/// Whether the state's `image` is the `live` one: the same repository and the same digest,
/// or the same tag (the live one's, or `recorded_tag`, the tag deployer recorded for the
/// digest it rolled out).
pub fn same_image(image: &str, live: &str, recorded_tag: Option<&str>) -> bool {
    if image == live {
        return true;
    }
    let (state, live) = (ImageRef::parse(image), ImageRef::parse(live));
    if state.repository != live.repository {
        return false;
    }
    if let (Some(a), Some(b)) = (&state.digest, &live.digest) {
        return a == b;
    }
    match &state.tag {
        Some(tag) => live.tag.as_deref() == Some(tag) || recorded_tag == Some(tag.as_str()),
        None => false,
    }
}

/// The warning for a Terraform state whose resource holds `state` while the service runs
/// `live`; `None` when they are the same image or the configuration reads the tag parameter.
pub fn state_warning(
    path: &str,
    address: &str,
    state: &tfstate::StateImage,
    live: &str,
    recorded_tag: Option<&str>,
    target: &Target<'_>,
) -> Option<String> {
    if state.reads_parameter || same_image(&state.image, live, recorded_tag) {
        return None;
    }
    Some(format!(
        "the next `terraform apply` would revert the image: Terraform state `{path}` has `{address}` \
         {} = `{}` but the service runs `{live}`; fix with Terraform: {}",
        state.attribute,
        state.image,
        target.kind.terraform_fix(target.parameter)
    ))
}

/// `GetTemplate` of `stack` at stage `Processed` (transforms such as SAM's applied): the
/// template body as CloudFormation deploys it.
pub async fn processed_template(
    client: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<String, IacError> {
    let output = client
        .get_template()
        .stack_name(stack)
        .template_stage(aws_sdk_cloudformation::types::TemplateStage::Processed)
        .send()
        .await
        .map_err(|error| {
            let hint = match classify(&error) {
                ErrorClass::NotFound => " (the stack is gone, or in another account or region)",
                ErrorClass::AccessDenied => {
                    " (the role may not read the template: `deployer iam-policy` grants cloudformation:GetTemplate on the stacks named in `iac`)"
                }
                _ => "",
            };
            IacError::Read {
                operation: "GetTemplate",
                stack: stack.to_owned(),
                message: format!("{}{hint}", error_line(&error)),
            }
        })?;
    output
        .template_body
        .filter(|body| !body.trim().is_empty())
        .ok_or_else(|| IacError::Read {
            operation: "GetTemplate",
            stack: stack.to_owned(),
            message: "the answer has no TemplateBody".into(),
        })
}

#[cfg(test)]
mod tests;
