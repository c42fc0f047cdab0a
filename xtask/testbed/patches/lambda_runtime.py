"""Lambda: Invoke runs Python zip functions for real, in a local subprocess, without Docker.

What moto does alone
--------------------
``Invoke`` starts the function in a Docker container of the AWS Lambda runtime image, pulled
from a public registry. The test bed has no internet and pulls nothing, so every invoke fails.

What this patch adds
--------------------
For a function with ``PackageType: Zip`` and a ``python3.*`` runtime, ``Invoke`` unpacks the
function's *deployed* zip (the bytes of the last ``UpdateFunctionCode``) into a temporary
directory and calls its handler (``Handler: module.function``) in a subprocess of this Python:
``handler(event, None)`` with the invoke payload as the event and the function's environment
variables set. The JSON of the return value is the response payload; an exception gives
``X-Amz-Function-Error: Unhandled`` with the error as payload, as on AWS. A 30-second limit
applies. Other functions (images, other runtimes) keep moto's behaviour.

What the handler prints (stdout and stderr) and the traceback of an exception are the
invocation's log: moto returns it base64-encoded in ``X-Amz-Log-Result`` when the request asks
for ``LogType: Tail``, as Lambda returns the last 4 KB of the log.

So a smoke check that invokes a deployed zip function runs the code deployer uploaded. Used by
the smoke-check tests (``tests/tests/e2e/smoke.rs``) and the demo.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from typing import Any

TIMEOUT_SECONDS = 30

RUNNER = r"""
import importlib, json, sys, traceback
sys.path.insert(0, sys.argv[1])
module_name, function_name = sys.argv[2].rsplit(".", 1)
event = json.loads(sys.stdin.read() or "{}")
answer = sys.stdout
sys.stdout = sys.stderr  # what the function prints is its log, as on Lambda
try:
    handler = getattr(importlib.import_module(module_name), function_name)
    result = handler(event, None)
    sys.stdout = answer
    print(json.dumps(result))
except Exception as error:
    traceback.print_exc()
    sys.stdout = answer
    print(json.dumps({"errorMessage": str(error), "errorType": type(error).__name__,
                      "stackTrace": traceback.format_exc().splitlines()}))
    sys.exit(3)
"""


def apply() -> None:
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction._invoke_lambda

    def invoke_locally(self: Any, event: Any = None) -> tuple[str, bool, str]:
        runtime = str(getattr(self, "run_time", "") or "")
        package_type = getattr(self, "package_type", "Zip") or "Zip"
        code = getattr(self, "code_bytes", b"") or b""
        if package_type != "Zip" or not runtime.startswith("python") or not code:
            return original(self, event)
        payload = event if isinstance(event, str) else json.dumps(event if event is not None else {})
        environment = dict(os.environ)
        variables = (getattr(self, "environment_vars", None) or {})
        environment.update({str(k): str(v) for k, v in variables.items()})
        with tempfile.TemporaryDirectory(prefix="deployer-lambda-") as directory:
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(directory)
            try:
                done = subprocess.run(
                    [sys.executable, "-c", RUNNER, directory, self.handler or "handler.handler"],
                    input=payload,
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT_SECONDS,
                    env=environment,
                )
            except subprocess.TimeoutExpired:
                error = {"errorMessage": f"Task timed out after {TIMEOUT_SECONDS} seconds", "errorType": "TimeoutError"}
                return json.dumps(error), True, ""
        output = done.stdout.strip().splitlines()
        result = output[-1] if output else "null"
        return result, done.returncode != 0, done.stderr

    LambdaFunction._invoke_lambda = invoke_locally
