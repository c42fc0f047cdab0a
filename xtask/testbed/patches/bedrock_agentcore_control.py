"""bedrock-agentcore-control: AgentCore runtimes whose updates replace, settle and can fail, as on AWS.

What moto does alone
--------------------
moto 5.2.5 keeps only nine fields of a runtime (artifact, role, network, description,
authorizer, request headers, protocol, lifecycle, environment variables) and silently drops the
rest of a CreateAgentRuntime or UpdateAgentRuntime request (metadataConfiguration,
filesystemConfigurations, capacityProviderConfiguration, platformVersion, allowedPorts,
hooksConfiguration, resourceConfigurations, ...). Its UpdateAgentRuntime *keeps* every optional
field the request left out, where AWS resets it, so a deployer that drops a field passes; it sets
the runtime to UPDATING for good (moto's state manager only knows CREATING -> READY); and
GetAgentRuntime never reports a ``failureReason``.

What this patch adds
--------------------
- Every field kept: CreateAgentRuntime and UpdateAgentRuntime store every configurable member
  of the request, that is every member of botocore's ``UpdateAgentRuntime`` input except
  ``agentRuntimeId`` and ``clientToken`` (read from the venv's botocore model, so the list
  follows moto's pin), and GetAgentRuntime returns exactly what was stored.
- Full replacement: UpdateAgentRuntime replaces the whole stored configuration, as AWS does: an
  optional member the request left out is gone afterwards, and ``lifecycleConfiguration`` falls
  back to AWS's defaults (``idleRuntimeSessionTimeout`` 900, ``maxLifetime`` 28800). A deployer
  that drops a field is caught by comparing GetAgentRuntime before and after a deploy.
  ``agentRuntimeArtifact`` and ``roleArn`` are required (ValidationException); an update while
  the runtime is CREATING or UPDATING is a ConflictException.
- Settling: after an update, the runtime is UPDATING for the next ``SETTLE_POLLS`` (2)
  GetAgentRuntime calls and READY from the one after (deterministic: counted in calls, not in
  time), with the new ``agentRuntimeVersion`` the update returned.

Making an update fail
---------------------
Create the runtime with the tag ``deployer-testbed:update = fail`` (CreateAgentRuntime's
``tags``). Every update of that runtime then settles to ``UPDATE_FAILED`` instead of READY, with
``failureReason`` = ``FAILURE_REASON`` below; the stored configuration is the one the update
sent (a later update may succeed only on a runtime without the tag). Tags are not part of the
update request, so a deployer cannot carry them away by accident.

Used by ``tests/tests/e2e/agentcore.rs``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

FAIL_TAG_KEY = "deployer-testbed:update"
FAIL_TAG_VALUE = "fail"
FAILURE_REASON = (
    "deployer-testbed: the new container failed its health check: "
    "exec /usr/local/bin/agent: exec format error"
)
# GetAgentRuntime calls that still see UPDATING after an update.
SETTLE_POLLS = 2
# What AWS reports when no lifecycle configuration was sent.
DEFAULT_LIFECYCLE = {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800}
# Members of the UpdateAgentRuntime input that are not configuration.
NOT_CONFIGURATION = {"agentRuntimeId", "clientToken"}

_lock = threading.RLock()


def _configurable_members() -> list[str]:
    """Every configurable member of a runtime, from the botocore model moto serves."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock-agentcore-control")
    members = model.operation_model("UpdateAgentRuntime").input_shape.members
    return sorted(set(members) - NOT_CONFIGURATION)


def apply() -> None:
    from moto.bedrockagentcorecontrol.exceptions import ConflictException
    from moto.bedrockagentcorecontrol.responses import BedrockAgentCoreControlResponse
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult

    configurable = _configurable_members()
    original_create = BedrockAgentCoreControlResponse.create_agent_runtime
    original_get = BedrockAgentCoreControlResponse.get_agent_runtime

    def configuration(params: dict[str, Any]) -> dict[str, Any]:
        return {key: copy.deepcopy(params[key]) for key in configurable if params.get(key) is not None}

    def create_agent_runtime(self: Any) -> Any:
        params = self._get_params()
        with _lock:
            result = original_create(self)
            runtime = self.backend.agent_runtimes[result.result["agentRuntimeId"]]
            runtime.deployer_config = configuration(params)
            runtime.deployer_fail = (params.get("tags") or {}).get(FAIL_TAG_KEY) == FAIL_TAG_VALUE
            runtime.deployer_settle = None
            runtime.deployer_failure_reason = None
        return result

    def get_agent_runtime(self: Any) -> Any:
        runtime_id = self._get_param("agentRuntimeId")
        with _lock:
            runtime = self.backend._get_runtime(runtime_id)
            _settle_step(runtime)
            result = original_get(self)
            config = getattr(runtime, "deployer_config", None)
            if config is not None:
                body = result.result
                for key in configurable:
                    body.pop(key, None)
                body.update(copy.deepcopy(config))
                body.setdefault("lifecycleConfiguration", dict(DEFAULT_LIFECYCLE))
                if runtime.deployer_failure_reason:
                    body["failureReason"] = runtime.deployer_failure_reason
        return result

    def update_agent_runtime(self: Any) -> Any:
        runtime_id = self._get_param("agentRuntimeId")
        params = self._get_params()
        with _lock:
            runtime = self.backend._get_runtime(runtime_id)
            for required in ("agentRuntimeArtifact", "roleArn"):
                if not params.get(required):
                    raise JsonRESTError("ValidationException", f"{required} is required")
            if runtime.status in ("CREATING", "UPDATING"):
                raise ConflictException(
                    f"Agent Runtime {runtime_id} is {runtime.status}; wait for it to settle before updating"
                )
            # moto's own update: a new version and ARN, UPDATING, a version snapshot. It keeps
            # what is not sent; the stored configuration below is what GetAgentRuntime shows.
            runtime.update(
                agent_runtime_artifact=params["agentRuntimeArtifact"],
                role_arn=params["roleArn"],
                network_configuration=params.get("networkConfiguration") or {},
                description=params.get("description"),
                authorizer_configuration=params.get("authorizerConfiguration"),
                request_header_configuration=params.get("requestHeaderConfiguration"),
                protocol_configuration=params.get("protocolConfiguration"),
                lifecycle_configuration=params.get("lifecycleConfiguration"),
                environment_variables=params.get("environmentVariables"),
            )
            runtime.deployer_config = configuration(params)
            runtime.deployer_settle = {"polls": 0}
            runtime.deployer_failure_reason = None
            if not hasattr(runtime, "deployer_fail"):
                runtime.deployer_fail = False
            return ActionResult(
                {
                    "agentRuntimeArn": runtime.agent_runtime_arn,
                    "agentRuntimeId": runtime.agent_runtime_id,
                    "workloadIdentityDetails": runtime.workload_identity_details,
                    "agentRuntimeVersion": runtime.agent_runtime_version,
                    "createdAt": runtime.created_at,
                    "lastUpdatedAt": runtime.last_updated_at,
                    "status": "UPDATING",
                }
            )

    BedrockAgentCoreControlResponse.create_agent_runtime = create_agent_runtime
    BedrockAgentCoreControlResponse.get_agent_runtime = get_agent_runtime
    BedrockAgentCoreControlResponse.update_agent_runtime = update_agent_runtime


def _settle_step(runtime: Any) -> None:
    """Counts one GetAgentRuntime of an updating runtime; settles it after SETTLE_POLLS."""
    pending = getattr(runtime, "deployer_settle", None)
    if pending is None:
        return
    pending["polls"] += 1
    if pending["polls"] <= SETTLE_POLLS:
        runtime.status = "UPDATING"
        return
    runtime.deployer_settle = None
    if getattr(runtime, "deployer_fail", False):
        runtime.status = "UPDATE_FAILED"
        runtime.deployer_failure_reason = FAILURE_REASON
    else:
        runtime.status = "READY"
