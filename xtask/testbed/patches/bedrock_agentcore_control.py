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

Versions
--------
Every version a CreateAgentRuntime or UpdateAgentRuntime made keeps the configuration it was
made with: GetAgentRuntime with ``agentRuntimeVersion`` (query ``version``) returns that
version's configuration (``status`` READY once it settled; a version that never existed is a
ResourceNotFoundException), as AWS does for a rollback target.

Endpoints
---------
moto's own endpoints never leave UPDATING, never move ``liveVersion`` and have no ``DEFAULT``.
This patch replaces CreateAgentRuntimeEndpoint, GetAgentRuntimeEndpoint,
UpdateAgentRuntimeEndpoint, ListAgentRuntimeEndpoints and DeleteAgentRuntimeEndpoint with
endpoints that behave as the API documents:

- ARN ``arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>/runtime-endpoint/<name>``
  (the resource IAM authorizes endpoint calls on).
- CreateAgentRuntimeEndpoint: CREATING for the next ``SETTLE_POLLS`` GetAgentRuntimeEndpoint
  calls, then READY with ``liveVersion`` = ``targetVersion`` = the requested version (default:
  the runtime's latest). A name that exists is a ConflictException.
- UpdateAgentRuntimeEndpoint: the version must exist (ValidationException) and the endpoint
  must not be CREATING or UPDATING (ConflictException); it is then UPDATING with
  ``targetVersion`` = the requested version and ``liveVersion`` still the old one, and after
  ``SETTLE_POLLS`` GetAgentRuntimeEndpoint calls READY with ``liveVersion`` = ``targetVersion``.
  ``description`` is replaced when sent and kept otherwise.
- ``DEFAULT`` exists for every runtime without being created and follows the latest version
  that settled READY; it cannot be updated (ValidationException). GetAgentRuntimeEndpoint and
  ListAgentRuntimeEndpoints (``DEFAULT`` first, then the named ones by creation) show it.
- A missing endpoint is a ResourceNotFoundException naming it.

Making an endpoint update stick or fail
---------------------------------------
Tag the endpoint (CreateAgentRuntimeEndpoint's ``tags``, or TagResource on its ARN later: read
at each update) with ``deployer-testbed:endpoint-update``:

- ``stick``: an update never completes: the endpoint stays UPDATING with ``targetVersion`` = the
  requested version and ``liveVersion`` = the old one (a deploy's wait runs out of time);
- ``fail``: the update settles to UPDATE_FAILED with ``failureReason`` =
  ``ENDPOINT_FAILURE_REASON`` and ``liveVersion`` still the old one.

InvokeAgentRuntime
------------------
moto has no bedrock-agentcore data plane. ``POST /runtimes/<runtime ARN>/invocations`` (signed
for ``bedrock-agentcore``) is answered here: ``qualifier`` names the endpoint (default
``DEFAULT``; an unknown one is a ResourceNotFoundException), and the answer is JSON naming what
served it: ``{"runtimeId", "qualifier", "version", "containerUri", "payload"}`` (the endpoint's
live version and that version's image; the request payload echoed as text).

Used by ``tests/tests/e2e/agentcore.rs`` and ``tests/tests/e2e/iam.rs``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.parse
from typing import Any

FAIL_TAG_KEY = "deployer-testbed:update"
FAIL_TAG_VALUE = "fail"
FAILURE_REASON = (
    "deployer-testbed: the new container failed its health check: "
    "exec /usr/local/bin/agent: exec format error"
)
# GetAgentRuntime calls that still see UPDATING after an update (GetAgentRuntimeEndpoint calls
# for an endpoint).
SETTLE_POLLS = 2
ENDPOINT_TAG_KEY = "deployer-testbed:endpoint-update"
ENDPOINT_FAILURE_REASON = (
    "deployer-testbed: the endpoint could not be moved to the requested version: "
    "its sessions did not drain"
)
DEFAULT_ENDPOINT = "DEFAULT"
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
    from moto.bedrockagentcorecontrol.exceptions import ConflictException, ResourceNotFoundException
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
            runtime.deployer_versions = {
                runtime.agent_runtime_version: copy.deepcopy(runtime.deployer_config)
            }
            runtime.deployer_ready_version = runtime.agent_runtime_version
            runtime.deployer_endpoints = {}
        return result

    def get_agent_runtime(self: Any) -> Any:
        runtime_id = self._get_param("agentRuntimeId")
        version = self._get_param("agentRuntimeVersion") or self._get_param("version")
        with _lock:
            runtime = self.backend._get_runtime(runtime_id)
            if version and version != runtime.agent_runtime_version:
                return _get_version(self, runtime, version)
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
            if not hasattr(runtime, "deployer_versions"):
                runtime.deployer_versions = {}
            runtime.deployer_versions[runtime.agent_runtime_version] = copy.deepcopy(runtime.deployer_config)
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

    def _get_version(self: Any, runtime: Any, version: str) -> Any:
        config = getattr(runtime, "deployer_versions", {}).get(version)
        if config is None:
            raise ResourceNotFoundException(
                f"Version {version} of Agent Runtime {runtime.agent_runtime_id} does not exist"
            )
        body: dict[str, Any] = {
            "agentRuntimeArn": runtime.agent_runtime_arn.rsplit(":", 1)[0] + f":{version}",
            "agentRuntimeName": runtime.agent_runtime_name,
            "agentRuntimeId": runtime.agent_runtime_id,
            "agentRuntimeVersion": version,
            "createdAt": runtime.created_at,
            "lastUpdatedAt": runtime.last_updated_at,
            "status": "READY",
            "workloadIdentityDetails": runtime.workload_identity_details,
        }
        body.update(copy.deepcopy(config))
        body.setdefault("lifecycleConfiguration", dict(DEFAULT_LIFECYCLE))
        return ActionResult(body)

    # ---------------------------------------------------------------- endpoints

    def endpoints_of(runtime: Any) -> dict[str, dict[str, Any]]:
        if not hasattr(runtime, "deployer_endpoints"):
            runtime.deployer_endpoints = {}
        return runtime.deployer_endpoints

    def endpoint_arn(self: Any, runtime: Any, name: str) -> str:
        return (
            f"arn:aws:bedrock-agentcore:{self.backend.region_name}:{self.backend.account_id}:"
            f"runtime/{runtime.agent_runtime_id}/runtime-endpoint/{name}"
        )

    def default_endpoint(self: Any, runtime: Any) -> dict[str, Any]:
        version = getattr(runtime, "deployer_ready_version", None) or runtime.agent_runtime_version
        return {
            "name": DEFAULT_ENDPOINT,
            "id": f"{runtime.agent_runtime_id}-{DEFAULT_ENDPOINT}",
            "agentRuntimeEndpointArn": endpoint_arn(self, runtime, DEFAULT_ENDPOINT),
            "agentRuntimeArn": runtime.agent_runtime_arn,
            "status": "READY",
            "liveVersion": version,
            "targetVersion": version,
            "createdAt": runtime.created_at,
            "lastUpdatedAt": runtime.last_updated_at,
        }

    def find_endpoint(self: Any, runtime: Any, name: str) -> dict[str, Any]:
        if name == DEFAULT_ENDPOINT:
            return default_endpoint(self, runtime)
        endpoint = endpoints_of(runtime).get(name)
        if endpoint is None:
            raise ResourceNotFoundException(
                f"Could not find endpoint {name} for Agent Runtime {runtime.agent_runtime_id}"
            )
        return endpoint

    def shown(endpoint: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in endpoint.items() if not k.startswith("_") and v is not None}

    def create_agent_runtime_endpoint(self: Any) -> Any:
        runtime_id = self._get_param("agentRuntimeId")
        params = self._get_params()
        name = params.get("name")
        with _lock:
            runtime = self.backend._get_runtime(runtime_id)
            endpoints = endpoints_of(runtime)
            if name == DEFAULT_ENDPOINT or name in endpoints:
                raise ConflictException(f"Endpoint {name} already exists for Agent Runtime {runtime_id}")
            version = params.get("agentRuntimeVersion") or runtime.agent_runtime_version
            if version not in getattr(runtime, "deployer_versions", {runtime.agent_runtime_version: None}):
                raise JsonRESTError("ValidationException", f"Version {version} of Agent Runtime {runtime_id} does not exist")
            from moto.core.utils import utcnow

            now = utcnow()
            arn = endpoint_arn(self, runtime, name)
            endpoints[name] = {
                "name": name,
                "id": f"{runtime_id}-{name}",
                "agentRuntimeEndpointArn": arn,
                "agentRuntimeArn": runtime.agent_runtime_arn,
                "description": params.get("description"),
                "status": "CREATING",
                "liveVersion": None,
                "targetVersion": version,
                "failureReason": None,
                "createdAt": now,
                "lastUpdatedAt": now,
                "_settle": {"polls": 0},
            }
            if params.get("tags"):
                self.backend.tag_resource(arn, params["tags"])
            return ActionResult(
                {
                    "targetVersion": version,
                    "agentRuntimeEndpointArn": arn,
                    "agentRuntimeArn": runtime.agent_runtime_arn,
                    "agentRuntimeId": runtime_id,
                    "endpointName": name,
                    "status": "CREATING",
                    "createdAt": now,
                }
            )

    def get_agent_runtime_endpoint(self: Any) -> Any:
        runtime_id = self._get_param("agentRuntimeId")
        name = self._get_param("endpointName")
        with _lock:
            runtime = self.backend._get_runtime(runtime_id)
            endpoint = find_endpoint(self, runtime, name)
            _endpoint_step(endpoint)
            return ActionResult(shown(endpoint))

    def update_agent_runtime_endpoint(self: Any) -> Any:
        runtime_id = self._get_param("agentRuntimeId")
        name = self._get_param("endpointName")
        params = self._get_params()
        with _lock:
            runtime = self.backend._get_runtime(runtime_id)
            if name == DEFAULT_ENDPOINT:
                raise JsonRESTError(
                    "ValidationException", "The DEFAULT endpoint follows the latest version and cannot be updated"
                )
            endpoint = find_endpoint(self, runtime, name)
            version = params.get("agentRuntimeVersion") or runtime.agent_runtime_version
            if version not in getattr(runtime, "deployer_versions", {}):
                raise JsonRESTError("ValidationException", f"Version {version} of Agent Runtime {runtime_id} does not exist")
            if endpoint["status"] in ("CREATING", "UPDATING"):
                raise ConflictException(
                    f"Endpoint {name} of Agent Runtime {runtime_id} is {endpoint['status']}; wait for it to settle"
                )
            from moto.core.utils import utcnow

            mode = self.backend.list_tags_for_resource(endpoint["agentRuntimeEndpointArn"]).get(ENDPOINT_TAG_KEY)
            endpoint["status"] = "UPDATING"
            endpoint["targetVersion"] = version
            endpoint["failureReason"] = None
            endpoint["lastUpdatedAt"] = utcnow()
            if params.get("description") is not None:
                endpoint["description"] = params["description"]
            endpoint["_settle"] = {"polls": 0, "mode": mode}
            return ActionResult(
                {
                    "agentRuntimeEndpointArn": endpoint["agentRuntimeEndpointArn"],
                    "agentRuntimeArn": endpoint["agentRuntimeArn"],
                    "status": "UPDATING",
                    "createdAt": endpoint["createdAt"],
                    "lastUpdatedAt": endpoint["lastUpdatedAt"],
                    "liveVersion": endpoint["liveVersion"],
                    "targetVersion": version,
                }
            )

    def list_agent_runtime_endpoints(self: Any) -> Any:
        runtime_id = self._get_param("agentRuntimeId")
        with _lock:
            runtime = self.backend._get_runtime(runtime_id)
            listed = [default_endpoint(self, runtime)] + list(endpoints_of(runtime).values())
            return ActionResult({"runtimeEndpoints": [shown(e) for e in listed]})

    def delete_agent_runtime_endpoint(self: Any) -> Any:
        runtime_id = self._get_param("agentRuntimeId")
        name = self._get_param("endpointName")
        with _lock:
            runtime = self.backend._get_runtime(runtime_id)
            if name == DEFAULT_ENDPOINT:
                raise JsonRESTError("ValidationException", "The DEFAULT endpoint cannot be deleted")
            find_endpoint(self, runtime, name)
            endpoints_of(runtime).pop(name)
            return ActionResult({"status": "DELETING", "agentRuntimeId": runtime_id, "endpointName": name})

    BedrockAgentCoreControlResponse.create_agent_runtime = create_agent_runtime
    BedrockAgentCoreControlResponse.get_agent_runtime = get_agent_runtime
    BedrockAgentCoreControlResponse.update_agent_runtime = update_agent_runtime
    BedrockAgentCoreControlResponse.create_agent_runtime_endpoint = create_agent_runtime_endpoint
    BedrockAgentCoreControlResponse.get_agent_runtime_endpoint = get_agent_runtime_endpoint
    BedrockAgentCoreControlResponse.update_agent_runtime_endpoint = update_agent_runtime_endpoint
    BedrockAgentCoreControlResponse.list_agent_runtime_endpoints = list_agent_runtime_endpoints
    BedrockAgentCoreControlResponse.delete_agent_runtime_endpoint = delete_agent_runtime_endpoint


def _endpoint_step(endpoint: dict[str, Any]) -> None:
    """Counts one GetAgentRuntimeEndpoint of a moving endpoint; settles it after SETTLE_POLLS."""
    pending = endpoint.get("_settle")
    if pending is None:
        return
    pending["polls"] += 1
    if pending["polls"] <= SETTLE_POLLS or pending.get("mode") == "stick":
        return
    endpoint["_settle"] = None
    if pending.get("mode") == "fail":
        endpoint["status"] = "UPDATE_FAILED"
        endpoint["failureReason"] = ENDPOINT_FAILURE_REASON
        return
    endpoint["status"] = "READY"
    endpoint["liveVersion"] = endpoint["targetVersion"]


_INVOKE = re.compile(r"/runtimes/([^/?]+)/invocations/?")


def wrap_app(app: Any) -> Any:
    """Answers InvokeAgentRuntime (module doc): moto has no bedrock-agentcore data plane."""

    def invoke(environ: dict[str, Any], start_response: Any) -> Any:
        raw = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
        match = _INVOKE.fullmatch(raw) if environ.get("REQUEST_METHOD") == "POST" else None
        signed_for = "/bedrock-agentcore/aws4_request" in environ.get("HTTP_AUTHORIZATION", "")
        if not match or not signed_for:
            return app(environ, start_response)
        arn = urllib.parse.unquote(match.group(1))
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        qualifier = query.get("qualifier", [DEFAULT_ENDPOINT])[0]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        payload = environ["wsgi.input"].read(length) if length > 0 else b""
        status, body = _invoke(arn, qualifier, payload)
        data = json.dumps(body).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        if status != "200 OK":
            headers.append(("X-Amzn-ErrorType", body["__type"]))
        start_response(status, headers)
        return [data]

    return invoke


def _invoke(arn: str, qualifier: str, payload: bytes) -> tuple[str, dict[str, Any]]:
    from moto.bedrockagentcorecontrol.models import bedrockagentcorecontrol_backends

    def not_found(message: str) -> tuple[str, dict[str, Any]]:
        return "404 Not Found", {"__type": "ResourceNotFoundException", "message": message}

    parts = arn.split(":")
    if len(parts) < 6:
        return not_found(f"no agent runtime {arn}")
    region, account = parts[3], parts[4]
    with _lock:
        backend = bedrockagentcorecontrol_backends[account][region]
        runtime = next(
            (
                r
                for r in backend.agent_runtimes.values()
                if arn in (r.agent_runtime_arn, r.agent_runtime_arn.rsplit(":", 1)[0])
                or r.agent_runtime_id in arn
            ),
            None,
        )
        if runtime is None:
            return not_found(f"no agent runtime {arn}")
        if qualifier == DEFAULT_ENDPOINT:
            version = getattr(runtime, "deployer_ready_version", None) or runtime.agent_runtime_version
        else:
            endpoint = getattr(runtime, "deployer_endpoints", {}).get(qualifier)
            if endpoint is None or endpoint.get("liveVersion") is None:
                return not_found(f"Could not find endpoint {qualifier} for Agent Runtime {runtime.agent_runtime_id}")
            version = endpoint["liveVersion"]
        config = getattr(runtime, "deployer_versions", {}).get(version) or {}
        uri = ((config.get("agentRuntimeArtifact") or {}).get("containerConfiguration") or {}).get("containerUri")
    return "200 OK", {
        "runtimeId": runtime.agent_runtime_id,
        "qualifier": qualifier,
        "version": version,
        "containerUri": uri,
        "payload": payload.decode("utf-8", "replace"),
    }


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
        runtime.deployer_ready_version = runtime.agent_runtime_version
