//! A new task-definition revision from the live one: every writable field copied, one image
//! replaced.

use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinition};
use deployer_aws::Redactor;
use deployer_core::DeployError;

/// The `TaskDefinition` members (wire names) copied into `RegisterTaskDefinition` unchanged,
/// except the named container's `image` inside `containerDefinitions`.
///
/// Together with [`READ_ONLY_FIELDS`] this lists every member of the SDK's `TaskDefinition`;
/// a test fails when an SDK upgrade brings a member that is in neither list.
pub const COPIED_FIELDS: &[&str] = &[
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
];

/// The `TaskDefinition` members (wire names) that ECS sets itself and `RegisterTaskDefinition`
/// does not accept: they are never sent.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// The `RegisterTaskDefinition` members (wire names) that are not `TaskDefinition` members:
/// `tags` come from `DescribeTaskDefinition`'s `tags` (read with `include = [TAGS]`), minus the
/// `aws:`-prefixed ones, which only AWS may set.
pub const FROM_DESCRIBE_OUTPUT: &[&str] = &["tags"];

/// The redactor for the environment values of every container of `task_definition`: they
/// travel in `RegisterTaskDefinition`, and its errors may echo them.
pub(crate) fn redactor(task_definition: &TaskDefinition) -> Redactor {
    Redactor::new(environment_values(task_definition))
}

/// The environment values of every container of `task_definition` (what [`redactor`] hides),
/// each once.
pub(crate) fn environment_values(task_definition: &TaskDefinition) -> Vec<String> {
    let mut values: Vec<String> = task_definition
        .container_definitions()
        .iter()
        .flat_map(ContainerDefinition::environment)
        .filter_map(|variable| variable.value())
        .map(str::to_owned)
        .collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// The container whose image is replaced: the named one, or the only one.
pub(crate) fn select_container<'a>(
    task_definition: &'a TaskDefinition,
    wanted: Option<&str>,
) -> Result<&'a ContainerDefinition, DeployError> {
    let containers = task_definition.container_definitions();
    let arn = task_definition
        .task_definition_arn()
        .unwrap_or("the task definition");
    let names = || {
        containers
            .iter()
            .map(|c| format!("`{}`", c.name().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(name) => containers.iter().find(|c| c.name() == Some(name)).ok_or_else(|| {
            DeployError::Mismatch(format!(
                "{arn} has no container `{name}`; its containers are {}: set `container` to one of them",
                names()
            ))
        }),
        None => match containers {
            [only] => Ok(only),
            [] => Err(DeployError::Mismatch(format!("{arn} has no container definitions"))),
            _ => Err(DeployError::Mismatch(format!(
                "{arn} has {} containers ({}): set `container` to the one whose image deployer replaces",
                containers.len(),
                names()
            ))),
        },
    }
}

/// Fills `request` with every writable field of `live` (see [`COPIED_FIELDS`]) and its
/// user tags, with the image of `container` replaced by `image`.
pub(crate) fn new_revision(
    request: RegisterTaskDefinitionFluentBuilder,
    live: &TaskDefinition,
    tags: &[Tag],
    container: &str,
    image: &str,
) -> Result<RegisterTaskDefinitionFluentBuilder, DeployError> {
    let family = live.family().ok_or(DeployError::MissingField {
        operation: "DescribeTaskDefinition",
        field: "taskDefinition.family",
    })?;
    let containers = live
        .container_definitions
        .iter()
        .flatten()
        .map(|definition| {
            let mut definition = definition.clone();
            if definition.name() == Some(container) {
                definition.image = Some(image.to_owned());
            }
            definition
        })
        .collect();
    let tags: Vec<Tag> = tags
        .iter()
        .filter(|tag| !is_aws_reserved(tag))
        .cloned()
        .collect();
    // Elastic Inference is retired and its setter deprecated; a live definition that still has
    // accelerators keeps them (ECS decides whether it accepts them), nothing is dropped quietly.
    #[allow(deprecated)]
    let request = request.set_inference_accelerators(live.inference_accelerators.clone());
    Ok(request
        .family(family)
        .set_task_role_arn(live.task_role_arn.clone())
        .set_execution_role_arn(live.execution_role_arn.clone())
        .set_network_mode(live.network_mode.clone())
        .set_container_definitions(Some(containers))
        .set_volumes(live.volumes.clone())
        .set_placement_constraints(live.placement_constraints.clone())
        .set_requires_compatibilities(live.requires_compatibilities.clone())
        .set_cpu(live.cpu.clone())
        .set_memory(live.memory.clone())
        .set_pid_mode(live.pid_mode.clone())
        .set_ipc_mode(live.ipc_mode.clone())
        .set_proxy_configuration(live.proxy_configuration.clone())
        .set_ephemeral_storage(live.ephemeral_storage.clone())
        .set_runtime_platform(live.runtime_platform.clone())
        .set_enable_fault_injection(live.enable_fault_injection)
        .set_tags((!tags.is_empty()).then_some(tags)))
}

/// Tags whose key starts with `aws:` are AWS's own (CloudFormation stacks, …): registering a
/// revision with them fails, and AWS adds them back itself where it manages the resource.
fn is_aws_reserved(tag: &Tag) -> bool {
    tag.key().is_some_and(is_aws_reserved_key)
}

/// Whether a tag key is in the `aws:` namespace.
pub(crate) fn is_aws_reserved_key(key: &str) -> bool {
    key.get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws:"))
}

/// `family:revision` for messages.
pub(crate) fn short_name(task_definition: &TaskDefinition) -> String {
    match task_definition.family() {
        Some(family) => format!("{family}:{}", task_definition.revision()),
        None => task_definition
            .task_definition_arn()
            .unwrap_or("?")
            .to_owned(),
    }
}

/// `family:revision` from a task-definition ARN (`arn:…:task-definition/family:7`).
pub(crate) fn short_arn(arn: &str) -> &str {
    arn.rsplit_once('/').map_or(arn, |(_, name)| name)
}
