"""Lambda: code updates that take time (and can fail), and image URIs from the test registry.

What moto does alone
--------------------
``UpdateFunctionCode`` replaces the code at once: every later read reports
``LastUpdateStatus: Successful``, so a deployer's wait for the update is never exercised, a
second update during the first one is accepted, and ``LastModified`` does not move. For image
functions it takes ``CodeSha256`` as the SHA-256 of the URI *string*, and builds
``Code.ResolvedImageUri`` by cutting the URI at its first ``:``, which for the test registry
(``127.0.0.1:<port>/repo``) leaves ``127.0.0.1@sha256:…``.

What this patch adds
--------------------
- ``UpdateFunctionCode`` (not a dry run) sets ``LastModified`` and starts an update, as on AWS:
  its response and the next ``IN_PROGRESS_READS`` (2) reads of ``$LATEST`` (``GetFunction``,
  ``GetFunctionConfiguration``) report ``LastUpdateStatus: InProgress``; the read after that
  reports ``Successful`` (deterministic: counted in reads, not in time). Another
  ``UpdateFunctionCode`` while one is in progress is refused with ``ResourceConflictException``
  ("An update is in progress for resource: …"), as Lambda does.
- Failing updates: a function tagged ``deployer-testbed:update = fail`` ends each update with
  ``LastUpdateStatus: Failed``, ``LastUpdateStatusReason`` = ``FAILED_REASON`` and
  ``LastUpdateStatusReasonCode: InvalidImage``, and keeps reporting it (as AWS does until the
  next update). The tags ``deployer-testbed:update-reason-code`` and
  ``deployer-testbed:update-reason`` choose another code and reason (e.g. ``EniLimitExceeded``).
- Image functions: a digest-pinned ``ImageUri`` (``…@sha256:<hex>``) gives ``CodeSha256 = <hex>``
  (the image digest, as on AWS), and ``ResolvedImageUri`` is ``<repository>@sha256:<CodeSha256>``
  with the tag cut after the last ``/``, so registry hosts with a port survive. URIs are still
  not checked against any registry (moto's ``MOTO_LAMBDA_STUB_ECR`` default).

Published versions are copies of ``$LATEST`` and are not affected. Used by
``tests/tests/e2e/lambda.rs``.
"""

from __future__ import annotations

import threading
from typing import Any

IN_PROGRESS_READS = 2
FAIL_TAG_KEY = "deployer-testbed:update"
FAIL_TAG_VALUE = "fail"
REASON_CODE_TAG_KEY = "deployer-testbed:update-reason-code"
REASON_TAG_KEY = "deployer-testbed:update-reason"
FAILED_REASON = "deployer-testbed: updates of this function fail (tag deployer-testbed:update = fail)"

_lock = threading.RLock()
# id(LambdaFunction for $LATEST) -> {"reads": reads left InProgress, "fail": bool, "counting": bool}
_updates: dict[int, dict[str, Any]] = {}


def apply() -> None:
    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.awslambda.exceptions import LambdaClientError
    from moto.core.utils import iso_8601_datetime_with_nanoseconds

    original_backend_update = LambdaBackend.update_function_code
    original_configuration = LambdaFunction.get_configuration
    original_code = LambdaFunction.get_code
    original_set_code = LambdaFunction._set_function_code

    class ResourceConflict(LambdaClientError):
        code = 409

        def __init__(self, arn: str) -> None:
            super().__init__(
                "ResourceConflictException",
                "The operation cannot be performed at this time. "
                f"An update is in progress for resource: {arn}",
            )

    def update_function_code(self: Any, function_name: str, qualifier: str, body: dict[str, Any]) -> Any:
        if body.get("DryRun"):
            return original_backend_update(self, function_name, qualifier, body)
        fn = self.get_function(function_name, qualifier)
        with _lock:
            state = _updates.get(id(fn))
            if state is not None and state["counting"] and state["reads"] > 0:
                raise ResourceConflict(fn.function_arn)
            _updates[id(fn)] = {"reads": IN_PROGRESS_READS, "fail": _fails(fn), "counting": False}
            try:
                fn.last_modified = iso_8601_datetime_with_nanoseconds()
                return original_backend_update(self, function_name, qualifier, body)
            finally:
                _updates[id(fn)]["counting"] = True

    def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
        config = original_configuration(self, on_create)
        if on_create:
            return config
        with _lock:
            state = _updates.get(id(self))
            if state is None:
                return config
            if not state["counting"] or state["reads"] > 0:
                if state["counting"]:
                    state["reads"] -= 1
                config["LastUpdateStatus"] = "InProgress"
            elif state["fail"]:
                config["LastUpdateStatus"] = "Failed"
                tags = self.tags or {}
                config["LastUpdateStatusReason"] = tags.get(REASON_TAG_KEY, FAILED_REASON)
                config["LastUpdateStatusReasonCode"] = tags.get(REASON_CODE_TAG_KEY, "InvalidImage")
            else:
                del _updates[id(self)]
        return config

    def get_code(self: Any) -> dict[str, Any]:
        response = original_code(self)
        code = response.get("Code")
        if code and code.get("ImageUri"):
            code["ResolvedImageUri"] = f"{_repository(code['ImageUri'])}@sha256:{self.code_sha_256}"
        return response

    def set_function_code(self: Any, updated_spec: dict[str, Any]) -> None:
        original_set_code(self, updated_spec)
        uri = updated_spec.get("ImageUri")
        if uri and "@sha256:" in uri and not (updated_spec is not self.code and updated_spec.get("DryRun")):
            self.code_sha_256 = uri.rsplit("@sha256:", 1)[1]

    LambdaBackend.update_function_code = update_function_code
    LambdaFunction.get_configuration = get_configuration
    LambdaFunction.get_code = get_code
    LambdaFunction._set_function_code = set_function_code


def _fails(fn: Any) -> bool:
    return (fn.tags or {}).get(FAIL_TAG_KEY) == FAIL_TAG_VALUE


def _repository(uri: str) -> str:
    """``host:port/repo:tag`` or ``host:port/repo@sha256:…`` → ``host:port/repo``."""
    name = uri.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name
