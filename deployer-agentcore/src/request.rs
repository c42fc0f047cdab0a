//! The `UpdateAgentRuntime` request built from what `GetAgentRuntime` returned.

use aws_sdk_bedrockagentcorecontrol::Client;
use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime::GetAgentRuntimeOutput;
use aws_sdk_bedrockagentcorecontrol::operation::update_agent_runtime::builders::UpdateAgentRuntimeFluentBuilder;
use aws_sdk_bedrockagentcorecontrol::types::AgentRuntimeArtifact;
use deployer_core::DeployError;

use crate::GET;

/// The live container URI, or why the runtime does not run a container image.
pub(crate) fn container_uri<'a>(
    live: &'a GetAgentRuntimeOutput,
    runtime_id: &str,
) -> Result<&'a str, DeployError> {
    match live.agent_runtime_artifact() {
        Some(AgentRuntimeArtifact::ContainerConfiguration(container))
            if !container.container_uri().is_empty() =>
        {
            Ok(container.container_uri())
        }
        Some(AgentRuntimeArtifact::ContainerConfiguration(_)) => Err(DeployError::MissingField {
            operation: GET,
            field: "agentRuntimeArtifact.containerConfiguration.containerUri",
        }),
        Some(AgentRuntimeArtifact::CodeConfiguration(_)) => Err(DeployError::Mismatch(format!(
            "AgentCore runtime {runtime_id} runs a code artifact (codeConfiguration), not a container image; \
             `kind = \"agentcore\"` deploys container images"
        ))),
        Some(_) => Err(DeployError::Mismatch(format!(
            "AgentCore runtime {runtime_id} has an artifact type this build of deployer does not know; \
             upgrade deployer"
        ))),
        None => Err(DeployError::MissingField {
            operation: GET,
            field: "agentRuntimeArtifact",
        }),
    }
}

/// `UpdateAgentRuntime` for `runtime_id`: every field `live` returned that the update accepts
/// (see [`crate::fields::CARRIED_OVER`]), with the container URI replaced by `new_uri`.
///
/// The copy is field by field on purpose: the update input and the get output are different
/// SDK types, and a field forgotten here is exactly the bug the tests in `tests::request_body`
/// and `tests::fields` exist to catch.
pub(crate) fn update_request(
    client: &Client,
    runtime_id: &str,
    live: &GetAgentRuntimeOutput,
    new_uri: &str,
) -> Result<UpdateAgentRuntimeFluentBuilder, DeployError> {
    // A container runtime, or the reason it is not.
    container_uri(live, runtime_id)?;
    let Some(AgentRuntimeArtifact::ContainerConfiguration(container)) =
        live.agent_runtime_artifact()
    else {
        return Err(DeployError::MissingField {
            operation: GET,
            field: "agentRuntimeArtifact.containerConfiguration",
        });
    };
    // Clone and replace the one member, so that any other member of the container
    // configuration is carried over as well.
    let mut container = container.clone();
    container.container_uri = new_uri.to_owned();
    let artifact = AgentRuntimeArtifact::ContainerConfiguration(container);
    if live.role_arn().is_empty() {
        return Err(DeployError::MissingField {
            operation: GET,
            field: "roleArn",
        });
    }
    Ok(client
        .update_agent_runtime()
        .agent_runtime_id(runtime_id)
        .agent_runtime_artifact(artifact)
        .role_arn(live.role_arn())
        .set_network_configuration(live.network_configuration().cloned())
        .set_description(live.description().map(str::to_owned))
        .set_authorizer_configuration(live.authorizer_configuration().cloned())
        .set_request_header_configuration(live.request_header_configuration().cloned())
        .set_protocol_configuration(live.protocol_configuration().cloned())
        .set_lifecycle_configuration(live.lifecycle_configuration().cloned())
        .set_metadata_configuration(live.metadata_configuration().cloned())
        .set_environment_variables(live.environment_variables().cloned())
        .set_filesystem_configurations(live.filesystem_configurations.clone())
        .set_capacity_provider_configuration(live.capacity_provider_configuration().cloned())
        .set_platform_version(live.platform_version().map(str::to_owned))
        .set_allowed_ports(live.allowed_ports.clone()))
}
