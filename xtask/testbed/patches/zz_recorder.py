"""Request recorder: every AWS API call moto receives, queryable by tests.

What it is for
--------------
A test that must know which AWS calls a command made (the IAM-policy test checks the policy
``deployer iam-policy`` prints against the calls a real ``deployer deploy --all`` made) asks this
recorder instead of guessing. Nothing about moto's behaviour changes: requests pass through
untouched.

Why the name sorts last
-----------------------
moto_launcher.py applies ``wrap_app`` in module-name order, so the module sorting last is the
outermost wrapper and sees each request first. ``zz_`` makes this module outermost: it records
calls that another patch answers itself (an injected fault, a route moto lacks) as well.

What is recorded
----------------
One entry per request to an AWS API (not ``/moto-api/`` or ``/_deployer/`` routes)::

    {"seq": 17, "time": 1767225600.123, "access_key": "AKIDTEST1",
     "service": "ecs", "api": "ecs", "action": "DescribeServices",
     "params": {"cluster": "acme", "services": ["app-api"]},
     "method": "POST", "path": "/", "status": 200}

- ``access_key``: the access key id of the SigV4 ``Authorization`` header (``null`` when the
  request is not signed). Tests use it as their marker: a child process run with
  ``AWS_ACCESS_KEY_ID=<unique>`` has exactly its own calls under that key (moto accepts any key
  and answers for its default account).
- ``service``: the SigV4 signing name, which is also the IAM action prefix for every service
  deployer calls (``ecs``, ``ssm``, ``lambda``, ``bedrock-agentcore``, ``s3``, ...).
- ``api``: the botocore service model the request matched (``bedrock-agentcore-control`` and
  ``bedrock-agentcore`` share the signing name ``bedrock-agentcore``).
- ``action``: the API operation name, from ``X-Amz-Target`` (JSON protocols), the ``Action``
  form field (query protocols), the RPCv2 path, or else the botocore model's HTTP method and
  request URI (REST protocols; an operation whose required header members are absent does
  not match, so a ``PutObject`` is not taken for a ``CopyObject``, which has the same URI but
  requires ``x-amz-copy-source``; the most specific match wins). ``null`` when nothing matched.
  The IAM action usually has the same name; where it does not (``Invoke`` is authorized as
  ``lambda:InvokeFunction``, ``HeadObject`` as ``s3:GetObject``) the test maps it.
- ``params``: what identifies the resources: the URI labels (decoded) and query string of REST
  calls, the form fields of query calls, and the top-level members of a JSON request body of at
  most 256 KiB; a string member longer than 2 KiB (a base64 zip) is replaced by
  ``"<N bytes>"``.
- ``status``: the HTTP status moto answered (an error still means the call was made).

``params`` hold what the requests held, secrets included (a task definition's environment):
the recorder is a test-bed tool on loopback, and tests should not print whole entries.

Routes
------
``GET /_deployer/calls``
    ``{"calls": [...]}`` in arrival order. Filters (query string, combinable):
    ``access_key=K`` (only calls signed with K), ``since=N`` (only ``seq > N``).
``DELETE /_deployer/calls``
    Forgets recorded calls (with ``access_key=K``: only that key's), answers
    ``{"deleted": N}``. Tests sharing one moto should filter by their own key rather than
    reset: other tests run at the same time.

At most ``MAX_CALLS`` (200,000) calls are kept; the oldest go first.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.parse
from collections import deque
from typing import Any, Callable, Iterable

MAX_CALLS = 200_000
MAX_BODY = 256 * 1024
MAX_MEMBER = 2048
ROUTE = "/_deployer/calls"

# Signing names whose botocore models are not named like them, most likely first.
_MODELS_BY_SIGNING_NAME = {
    "bedrock-agentcore": ["bedrock-agentcore-control", "bedrock-agentcore"],
    "sagemaker": ["sagemaker", "sagemaker-runtime"],
    "execute-api": [],
}

_lock = threading.Lock()
_calls: deque[dict[str, Any]] = deque(maxlen=MAX_CALLS)
_seq = 0
_models: dict[str, Any] = {}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/aws4_request")


def wrap_app(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Records each AWS call, answers ``/_deployer/calls`` (module doc)."""

    def recorder(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == ROUTE:
            return _answer(environ, start_response)
        if path.startswith("/_deployer/") or path.startswith("/moto-api"):
            return app(environ, start_response)
        call = _describe(environ)
        status: dict[str, int] = {}

        def recording_start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                status["code"] = int(code.split(" ", 1)[0])
            except ValueError:
                pass
            return start_response(code, headers, exc_info)

        try:
            return app(environ, recording_start)
        finally:
            call["status"] = status.get("code")
            _record(call)

    return recorder


def _record(call: dict[str, Any]) -> None:
    global _seq
    with _lock:
        _seq += 1
        call["seq"] = _seq
        _calls.append(call)


def _answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    key = query.get("access_key", [None])[0]
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "DELETE":
        with _lock:
            kept = [c for c in _calls if key is not None and c["access_key"] != key]
            deleted = len(_calls) - len(kept)
            _calls.clear()
            _calls.extend(kept)
        body = {"deleted": deleted}
    elif method == "GET":
        since = int(query.get("since", ["0"])[0] or 0)
        with _lock:
            calls = [c for c in _calls if c["seq"] > since and (key is None or c["access_key"] == key)]
        body = {"calls": calls}
    else:
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _describe(environ: dict[str, Any]) -> dict[str, Any]:
    """What the request is: its signer, service, operation and identifying parameters."""
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    access_key, service = (match.group(1), match.group(2)) if match else (None, None)
    method = environ.get("REQUEST_METHOD", "GET")
    raw_path = _raw_path(environ)
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    params: dict[str, Any] = {k: (v[0] if len(v) == 1 else v) for k, v in query.items()}
    body = _body(environ)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    content_type = environ.get("CONTENT_TYPE", "")
    api, action = None, None
    if target:
        action = target.rsplit(".", 1)[-1]
        params.update(_json_members(body))
    elif "x-www-form-urlencoded" in content_type and body:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({k: (v[0] if len(v) == 1 else v) for k, v in form.items() if len(v[0]) <= MAX_MEMBER})
        action = params.pop("Action", None)
        params.pop("Version", None)
    elif "Action" in params and method == "GET":
        action = params.pop("Action")
        params.pop("Version", None)
    else:
        rpc = re.fullmatch(r"/service/[^/]+/operation/([^/]+)", raw_path)
        if rpc:
            action = rpc.group(1)
        elif service:
            headers = {k[5:].replace("_", "-").lower() for k in environ if k.startswith("HTTP_")}
            headers |= {k.replace("_", "-").lower() for k in ("CONTENT_TYPE", "CONTENT_LENGTH") if environ.get(k)}
            api, action, labels = _rest_operation(service, method, raw_path, query, headers)
            params.update(labels)
            if "json" in content_type:
                params.update(_json_members(body))
    return {
        "time": time.time(),
        "access_key": access_key,
        "service": service,
        "api": api or service,
        "action": action,
        "params": params,
        "method": method,
        "path": urllib.parse.unquote(raw_path),
        "status": None,
    }


def _raw_path(environ: dict[str, Any]) -> str:
    """The request path as sent (labels still percent-encoded: an encoded `/` inside an ARN
    label must not split it)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw.split("?", 1)[0]
    return urllib.parse.quote(environ.get("PATH_INFO", ""))


def _body(environ: dict[str, Any]) -> bytes:
    """The request body when small enough to look at; the stream is put back for moto."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return b""
    if length <= 0 or length > MAX_BODY:
        return b""
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _json_members(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    members = {}
    for key, value in document.items():
        # Only long strings (a base64 zip) are cut; lists and objects are kept whole (the body is
        # at most MAX_BODY): a transaction's writes are what identifies its resources.
        long = isinstance(value, str) and len(value) > MAX_MEMBER
        members[key] = f"<{len(value)} bytes>" if long else value
    return members


def _rest_operation(
    service: str, method: str, raw_path: str, query: dict[str, list[str]], headers: set[str] = frozenset()
) -> tuple[Any, Any, dict[str, str]]:
    """The operation of a REST call: the model operation with this method whose request URI
    matches and whose required headers the request carries (S3's `CopyObject` is a `PUT` of
    the same URI as `PutObject`, with `x-amz-copy-source`), preferring the most specific
    (required query keys and headers, then literal characters)."""
    best = None
    for api in _MODELS_BY_SIGNING_NAME.get(service, [service]):
        for operation in _operations(api):
            if operation["method"] != method:
                continue
            if not all(key in query for key in operation["query"]):
                continue
            if not all(header in headers for header in operation["headers"]):
                continue
            found = operation["regex"].fullmatch(raw_path.rstrip("/") or "/")
            if not found:
                continue
            rank = (len(operation["query"]) + len(operation["headers"]), operation["literal"])
            if best is None or rank > best[0]:
                labels = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
                best = (rank, api, operation["name"], labels)
    if best is None:
        return None, None, {}
    return best[1], best[2], best[3]


def _operations(api: str) -> list[dict[str, Any]]:
    """The HTTP bindings of a botocore model, compiled once."""
    with _lock:
        if api in _models:
            return _models[api]
    compiled: list[dict[str, Any]] = []
    try:
        import botocore.loaders

        model = botocore.loaders.Loader().load_service_model(api, "service-2")
    except Exception:  # an unknown model: no REST matching for it
        model = {"operations": {}}
    for name, operation in model["operations"].items():
        http = operation.get("http", {})
        uri = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        pattern, literal = "", 0
        for piece in re.split(r"(\{[^}]+\})", path.rstrip("/") or "/"):
            if piece.startswith("{"):
                label = piece[1:-1]
                greedy = label.endswith("+")
                label = re.sub(r"\W", "_", label.rstrip("+"))
                pattern += f"(?P<{label}>.+)" if greedy else f"(?P<{label}>[^/]+)"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        keys = [part.split("=", 1)[0] for part in query.split("&") if part]
        shape = model.get("shapes", {}).get((operation.get("input") or {}).get("shape", ""), {})
        members = shape.get("members", {})
        required_headers = [
            members[m]["locationName"].lower()
            for m in shape.get("required", [])
            if members.get(m, {}).get("location") == "header" and "locationName" in members[m]
        ]
        compiled.append({"name": name, "method": http.get("method", "POST"), "regex": re.compile(pattern), "query": keys, "headers": required_headers, "literal": literal})
    with _lock:
        _models[api] = compiled
    return compiled
