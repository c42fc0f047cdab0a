"""SageMaker: endpoint updates that go through Updating and settle (or fail, or roll back), and
models and endpoint configs that keep what they were created with, as on AWS.

What moto does alone
--------------------
moto 5.2 implements models, endpoint configs and endpoints, but:

- ``UpdateEndpoint`` is not implemented (moto answers 500);
- ``CreateModel`` and ``CreateEndpointConfig`` of a name that exists silently replace it (AWS
  refuses: models and endpoint configs are immutable);
- ``CreateModel`` drops ``EnableNetworkIsolation`` and ``InferenceExecutionConfig``;
  ``CreateEndpointConfig`` drops ``ShadowProductionVariants``, ``ExplainerConfig``,
  ``ExecutionRoleArn``, ``VpcConfig``, ``EnableNetworkIsolation`` and ``MetricsConfig``;
- ``DescribeModel`` / ``DescribeEndpointConfig`` answer ``"Containers": []``, ``"VpcConfig": {}``
  and ``"DataCaptureConfig": {}`` for members that were never set (AWS leaves them out).

What this patch adds
--------------------
- ``CreateModel`` and ``CreateEndpointConfig`` of an existing name fail with AWS's
  ``ValidationException`` ("Cannot create already existing model …", "… endpoint
  configuration …"), so a deployer must pick a new name or reuse the existing resource.
- Every member the request carried is kept and described back (the dropped members above
  included); members never set are left out of the Describe responses. ``EnableNetworkIsolation``
  is always reported on models (``false`` by default), as AWS does.
- ``UpdateEndpoint`` (``EndpointName``, ``EndpointConfigName``, ``DeploymentConfig``,
  ``RetainDeploymentConfig``, ``RetainAllVariantProperties``) validates like AWS (the endpoint and
  the config must exist; an endpoint that is not ``InService``, ``Failed`` or
  ``UpdateRollbackFailed`` answers "Cannot update in-progress endpoint") and sets the endpoint
  ``Updating`` at once, still on its old config. Then every ``DescribeEndpoint`` of it moves the
  update one step (deterministic: steps are counted in calls, not in time):

  - calls 1 and 2: ``Updating`` on the old config;
  - call 3: ``InService`` on the new config (its variants described from the new config),
    ``FailureReason`` cleared, ``LastDeploymentConfig`` the one given (or kept with
    ``RetainDeploymentConfig``).

Making an update fail
---------------------
Tag the endpoint (``CreateEndpoint`` or ``AddTags``) with ``deployer-testbed:update``:

- ``fail``: call 2 is ``Updating``, call 3 ends ``Failed`` on the old config with the
  ``FailureReason`` "The primary container for production variant … did not pass the ping
  health check …";
- ``rollback``: call 2 is ``RollingBack``, call 3 ends ``InService`` on the *old* config (an
  automatic rollback: the new config never took over) with the ``FailureReason`` "… rolled back
  …": what a deployer must report as a failure even though the endpoint looks healthy.

A ``Failed`` endpoint can be updated again (as on AWS). Used by ``tests/tests/e2e/sagemaker.rs``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

UPDATE_TAG_KEY = "deployer-testbed:update"
# DescribeEndpoint calls after UpdateEndpoint before the update settles.
SETTLE_AFTER = 3

# Members moto's CreateModel / CreateEndpointConfig do not keep, kept here.
MODEL_EXTRA = ("InferenceExecutionConfig", "EnableNetworkIsolation")
CONFIG_EXTRA = (
    "ShadowProductionVariants",
    "ExplainerConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
    "MetricsConfig",
)
UPDATABLE = ("InService", "Failed", "UpdateRollbackFailed")

_lock = threading.RLock()
# Endpoint ARN -> the update in flight: target and previous config, outcome, calls seen.
_updates: dict[str, dict[str, Any]] = {}
# Model / endpoint-config ARN -> the extra members it was created with.
_extra: dict[str, dict[str, Any]] = {}


def apply() -> None:
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, Model, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemaker.utils import arn_formatter

    from moto.core.responses import ActionResult

    original_create_model = SageMakerResponse.create_model
    original_create_config = SageMakerResponse.create_endpoint_config
    original_describe_endpoint = SageMakerModelBackend.describe_endpoint

    def create_model(self: Any) -> Any:
        backend = self.sagemaker_backend
        name = self._get_param("ModelName")
        with _lock:
            if name in backend._models:
                arn = arn_formatter("model", name, backend.account_id, backend.region_name)
                raise ValidationError(message=f'Cannot create already existing model "{arn}".')
            result = original_create_model(self)
            model = backend._models[name]
            _extra[model.arn] = _params(self, MODEL_EXTRA)
            return result

    def create_endpoint_config(self: Any) -> Any:
        backend = self.sagemaker_backend
        name = self._get_param("EndpointConfigName")
        with _lock:
            if name in backend.endpoint_configs:
                arn = FakeEndpointConfig.arn_formatter(name, backend.account_id, backend.region_name)
                raise ValidationError(
                    message=f'Cannot create already existing endpoint configuration "{arn}".'
                )
            extra = _params(self, CONFIG_EXTRA)
            backend.validate_production_variants(extra.get("ShadowProductionVariants") or [])
            result = original_create_config(self)
            config = backend.endpoint_configs[name]
            _extra[config.endpoint_config_arn] = extra
            return result

    def model_response(self: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ModelName": self.model_name,
            "ModelArn": self.arn,
            "CreationTime": self.creation_time,
        }
        for key, value in (
            ("PrimaryContainer", self.primary_container),
            ("Containers", self.containers),
            ("ExecutionRoleArn", self.execution_role_arn),
            ("VpcConfig", self.vpc_config),
        ):
            if value:
                out[key] = value
        out["EnableNetworkIsolation"] = False
        out.update(_extra.get(self.arn, {}))
        return out

    def config_response(self: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "EndpointConfigName": self.endpoint_config_name,
            "EndpointConfigArn": self.endpoint_config_arn,
            "CreationTime": self.creation_time,
        }
        for key, value in (
            ("ProductionVariants", self.production_variants),
            ("DataCaptureConfig", self.data_capture_config),
            ("KmsKeyId", self.kms_key_id),
            ("AsyncInferenceConfig", self.async_inference_config),
        ):
            if value:
                out[key] = value
        out.update(_extra.get(self.endpoint_config_arn, {}))
        return out

    def update_endpoint(self: Any) -> Any:
        backend = self.sagemaker_backend
        name = self._get_param("EndpointName")
        config_name = self._get_param("EndpointConfigName")
        with _lock:
            endpoint = backend.endpoints.get(name)
            if endpoint is None:
                arn = FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
                raise ValidationError(message=f'Could not find endpoint "{arn}".')
            if endpoint.endpoint_status not in UPDATABLE:
                raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
            if config_name not in backend.endpoint_configs:
                arn = FakeEndpointConfig.arn_formatter(
                    config_name, backend.account_id, backend.region_name
                )
                raise ValidationError(message=f'Could not find endpoint configuration "{arn}".')
            deployment_config = self._get_param("DeploymentConfig")
            if deployment_config is None and self._get_param("RetainDeploymentConfig"):
                deployment_config = getattr(endpoint, "last_deployment_config", None)
            _updates[endpoint.arn] = {
                "target": config_name,
                "previous": endpoint.endpoint_config_name,
                "outcome": _outcome(endpoint),
                "calls": 0,
                "deployment_config": deployment_config,
            }
            endpoint.endpoint_status = "Updating"
            endpoint.failure_reason = None
            return ActionResult({"EndpointArn": endpoint.arn})

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        # moto's reads the config's Describe response, which no longer has empty members.
        config = self.endpoint_configs.get(endpoint_config_name)
        if config is None:
            arn = FakeEndpointConfig.arn_formatter(endpoint_config_name, self.account_id, self.region_name)
            raise ValidationError(message=f'Could not find endpoint configuration "{arn}".')
        endpoint = FakeEndpoint(
            account_id=self.account_id,
            region_name=self.region_name,
            endpoint_name=endpoint_name,
            endpoint_config_name=endpoint_config_name,
            production_variants=config.production_variants,
            data_capture_config=config.data_capture_config,
            tags=tags,
        )
        self.endpoints[endpoint_name] = endpoint
        return endpoint

    def describe_endpoint(self: Any, endpoint_name: str) -> dict[str, Any]:
        with _lock:
            endpoint = self.endpoints.get(endpoint_name)
            if endpoint is not None:
                _advance(self, endpoint)
            return original_describe_endpoint(self, endpoint_name)

    SageMakerResponse.create_model = create_model
    SageMakerResponse.create_endpoint_config = create_endpoint_config
    SageMakerResponse.update_endpoint = update_endpoint
    SageMakerModelBackend.create_endpoint = create_endpoint
    SageMakerModelBackend.describe_endpoint = describe_endpoint
    Model.response_object = property(model_response)
    FakeEndpointConfig.response_object = property(config_response)


def _params(response: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The members ``names`` of the request, where set."""
    out = {}
    for name in names:
        value = response._get_param(name)
        if value is not None:
            out[name] = copy.deepcopy(value)
    return out


def _outcome(endpoint: Any) -> str:
    for tag in endpoint.tags or []:
        if tag.get("Key") == UPDATE_TAG_KEY:
            return str(tag.get("Value", ""))
    return "ok"


def _advance(backend: Any, endpoint: Any) -> None:
    """Moves the update in flight on ``endpoint`` one step (module doc)."""
    update = _updates.get(endpoint.arn)
    if update is None:
        return
    update["calls"] += 1
    calls, outcome = update["calls"], update["outcome"]
    if calls < SETTLE_AFTER:
        endpoint.endpoint_status = "RollingBack" if outcome == "rollback" and calls > 1 else "Updating"
        return
    del _updates[endpoint.arn]
    variant = _first_variant(backend, update["target"])
    if outcome == "fail":
        endpoint.endpoint_status = "Failed"
        endpoint.failure_reason = (
            f"The primary container for production variant {variant} did not pass the ping health "
            "check. Please check CloudWatch logs for this endpoint. (deployer-testbed:update = fail)"
        )
        return
    if outcome == "rollback":
        endpoint.endpoint_status = "InService"
        endpoint.failure_reason = (
            f"Deployment was rolled back to endpoint config {update['previous']}: CloudWatch alarm "
            "deployer-testbed-5xx went into ALARM state during the update. "
            "(deployer-testbed:update = rollback)"
        )
        return
    config = backend.endpoint_configs[update["target"]]
    endpoint.endpoint_config_name = update["target"]
    endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
    endpoint.data_capture_config = config.data_capture_config
    endpoint.last_deployment_config = update["deployment_config"]
    endpoint.endpoint_status = "InService"
    endpoint.failure_reason = None


def _first_variant(backend: Any, config_name: str) -> str:
    config = backend.endpoint_configs.get(config_name)
    variants = getattr(config, "production_variants", None) or [{}]
    return str(variants[0].get("VariantName", "AllTraffic"))
