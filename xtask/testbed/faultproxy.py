"""A fault-injecting HTTP proxy in front of moto, on 127.0.0.1: AWS throttling, 5xx and lost connections.

    python faultproxy.py --target http://127.0.0.1:<moto port> [--port 0] [--port-file PATH]
                         [--config JSON]

Tests start one per test (``tests/src/faultproxy.rs``), point ``AWS_ENDPOINT_URL`` at it, read
its counts and stop it. It is not part of the shared moto server on purpose: a fault share is a
property of one test, and tests run in parallel against one moto.

What it does with each request
------------------------------
Every request is forwarded to ``--target`` unless the dice say otherwise. One draw per request
picks at most one fault, with the configured shares (``throttle + http500 + http503 + drop``
must not exceed 1):

``throttle``
    The throttling error of the request's protocol, as the AWS SDKs recognise it (the error code
    is what they classify: ``aws-runtime``'s ``THROTTLING_ERRORS``):

    - awsJson 1.0/1.1 (an ``X-Amz-Target`` header: SSM, ECS, ECR, SageMaker): HTTP 400,
      ``{"__type": "ThrottlingException", "message": "Rate exceeded"}``;
    - REST-JSON (Lambda, bedrock-agentcore-control): HTTP 429 with ``x-amzn-errortype`` —
      ``TooManyRequestsException`` for Lambda (``"Reason": "CallerRateLimitExceeded"``),
      ``ThrottlingException`` for the others;
    - awsQuery (STS, IAM, CloudFormation): HTTP 400, ``<ErrorResponse>`` with code ``Throttling``;
    - REST-XML (S3): HTTP 503 ``SlowDown``.
``http500`` / ``http503``
    ``500 Internal Server Error`` / ``503 Service Unavailable`` with the protocol's error body
    (``InternalFailure`` / ``ServiceUnavailable``).
``drop``
    The request is read, never forwarded, and the connection is closed without an answer.

Independently, ``latency`` (a share) delays requests by ``latency_ms`` before they go on.
``services`` (signing names, e.g. ``["ecs", "lambda"]``; empty: all) limits the dice to those
services. Faulted requests never reach moto, so a fault has no side effect.

``holds`` (a list of ``{"operation": regex, "body": substring, "ms": n}``) hold every matching
request for ``ms`` milliseconds, then forward it if the client is still connected; a request
whose client goes away meanwhile (killed) is dropped at once, counted as ``abandoned``, and never
reaches moto. ``operation`` is matched against the operation: the ``X-Amz-Target`` operation
(``PutParameter``), the awsQuery ``Action``, or ``METHOD /path`` for REST protocols
(``PUT /2015-03-31/functions/f/code``). Held requests are not faulted. A test uses a hold to make
a kill land between two calls ("the tag write has been sent and not applied: kill now"), watching
``holding`` in the counts.

``rules`` (a list) inject one fault into chosen requests rather than a share of all of them::

    {"operation": "^PutParameter$", "body": "/lock\"", "service": "ssm",
     "action": "lose_answer", "times": 1, "after": 0}

A request matches a rule when ``operation`` (a regex, as for holds) matches its operation, the
body contains ``body`` (a substring; omitted: any body) and, when given, ``service`` is its
signing name. Each rule counts its matching requests: the first ``after`` (default 0) go on
untouched, the next ``times`` (default 1; 0: all of them) get the rule's ``action``; later
matches go on untouched. Rules are tried in list order and the first that fires decides (later
rules do not see that request); a request a rule fired on is neither held nor diced. Actions:

``lose_answer``
    The request IS forwarded to the target (it takes effect there), then the connection is
    closed without an answer: a reply lost on the way back. The SDK retries (a dropped
    connection is transient), and the retry meets the state the first attempt created
    (``ParameterAlreadyExists``, a conflict, ...).
``deny``
    A non-retryable ``AccessDeniedException`` in the request's protocol (HTTP 400 for
    awsJson, which is how AWS sends it there; 403 ``AccessDenied`` for the others); never
    forwarded. The SDK does not retry it: the calling code gets it at once.
``throttle``, ``http500``, ``http503``, ``drop``
    As the share-driven faults above (never forwarded).

Rules and their counts are replaced with the configuration (``PUT /_faultproxy/config``).

Control endpoints (never faulted, never forwarded)
--------------------------------------------------
- ``GET /_faultproxy/stats``: the counts as JSON (below).
- ``PUT /_faultproxy/config``: replace the configuration (same JSON as ``--config``); counts stay.
- ``POST /_faultproxy/reset``: zero the counts.

Counts: ``requests`` (AWS requests seen), ``forwarded``, ``faulted`` (by kind: ``throttle``,
``http500``, ``http503``, ``drop``), ``delayed`` and ``delay_ms`` (latency added),
``held``/``holding``/``abandoned`` (holds), ``retries`` (requests whose SDK attempt number, from
the ``amz-sdk-request: attempt=N; max=M`` header, is above 1), ``exhausted`` (faults injected
into an SDK call's last attempt: the calling code saw the error), ``max_attempt``, ``invocations``
(distinct ``amz-sdk-invocation-id`` values: SDK operation calls), and per signing name
``services`` and per operation ``operations`` (``requests``, ``faulted``, ``retries``).
``rules`` lists each configured rule (in order) with ``matched`` (matching requests seen) and
``fired`` (requests it acted on); faults a rule injects are also counted in ``faulted`` (under
their kind, with ``deny`` and ``lose_answer`` as kinds of their own) and in the per-service and
per-operation ``faulted`` counts (a lost answer counts as forwarded and faulted).

Only the standard library is used; SIGTERM stops it; with ``DEPLOYER_TESTBED_OWNER_PID`` set it
ends when that process ends (owner.py). Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import owner  # noqa: E402  (after the path setup above)

FAULT_KINDS = ("throttle", "http500", "http503", "drop")
# What a rule may do: the share-driven kinds, and two that only rules inject.
RULE_ACTIONS = (*FAULT_KINDS, "deny", "lose_answer")
# Headers that belong to one hop, not to the request or response.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
QUERY_SERVICES = {"sts", "iam", "cloudformation", "sqs", "sns", "ec2", "elasticloadbalancing"}
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
ATTEMPT = re.compile(r"attempt=(\d+)")
MAX_ATTEMPTS = re.compile(r"max=(\d+)")


class Config:
    """What to inject; see the module doc."""

    def __init__(self, raw: dict[str, Any]) -> None:
        known = {"seed", "latency", "latency_ms", "services", "holds", "rules", *FAULT_KINDS}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
        self.shares = {kind: float(raw.get(kind, 0.0)) for kind in FAULT_KINDS}
        if any(share < 0 for share in self.shares.values()) or sum(self.shares.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault shares must be >= 0 and add up to at most 1: {self.shares}")
        self.latency = float(raw.get("latency", 0.0))
        self.latency_ms = int(raw.get("latency_ms", 0))
        self.services = set(raw.get("services") or [])
        self.holds = [
            (re.compile(hold.get("operation", "")), hold.get("body"), int(hold.get("ms", 0)))
            for hold in raw.get("holds") or []
        ]
        self.rules = [Rule(rule) for rule in raw.get("rules") or []]
        self.seed = raw.get("seed")
        self.raw = raw


class Rule:
    """One targeted fault (module doc, ``rules``), with its counts."""

    KEYS = {"operation", "body", "service", "action", "times", "after"}

    def __init__(self, raw: dict[str, Any]) -> None:
        if not isinstance(raw, dict):
            raise ValueError(f"a rule is an object, not {raw!r}")
        unknown = set(raw) - self.KEYS
        if unknown:
            raise ValueError(f"unknown rule keys: {sorted(unknown)}")
        self.action = raw.get("action")
        if self.action not in RULE_ACTIONS:
            raise ValueError(f"rule action must be one of {RULE_ACTIONS}, not {self.action!r}")
        self.operation = re.compile(raw.get("operation", ""))
        self.body = raw.get("body")
        self.service = raw.get("service")
        self.times = int(raw.get("times", 1))
        self.after = int(raw.get("after", 0))
        if self.times < 0 or self.after < 0:
            raise ValueError(f"rule times and after must be >= 0: {raw}")
        self.raw = raw
        self.matched = 0
        self.fired = 0

    def matches(self, service: str, operation: str, body: bytes) -> bool:
        return (
            (self.service is None or self.service == service)
            and self.operation.search(operation) is not None
            and (self.body is None or self.body.encode() in body)
        )

    def take(self) -> bool:
        """Counts one matching request; whether the rule acts on it. Call under the state lock."""
        self.matched += 1
        if self.matched <= self.after:
            return False
        if self.times and self.fired >= self.times:
            return False
        self.fired += 1
        return True

    def as_json(self) -> dict[str, Any]:
        return {**self.raw, "matched": self.matched, "fired": self.fired}


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.forwarded = 0
        self.faulted = {kind: 0 for kind in RULE_ACTIONS}
        self.delayed = 0
        self.delay_ms = 0
        self.held = 0
        self.holding = 0
        self.abandoned = 0
        self.retries = 0
        self.exhausted = 0
        self.max_attempt = 0
        self.invocation_ids: set[str] = set()
        self.services: dict[str, dict[str, int]] = {}
        self.operations: dict[str, dict[str, int]] = {}

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "forwarded": self.forwarded,
            "faulted": dict(self.faulted),
            "delayed": self.delayed,
            "delay_ms": self.delay_ms,
            "held": self.held,
            "holding": self.holding,
            "abandoned": self.abandoned,
            "retries": self.retries,
            "exhausted": self.exhausted,
            "max_attempt": self.max_attempt,
            "invocations": len(self.invocation_ids),
            "services": self.services,
            "operations": self.operations,
            "rules": [rule.as_json() for rule in STATE.config.rules],
        }


class State:
    """Shared by every handler thread."""

    def __init__(self, target: str, config: Config) -> None:
        parsed = urllib.parse.urlsplit(target)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"--target must be http://host:port, not {target!r}")
        self.target_host = parsed.hostname
        self.target_port = parsed.port or 80
        self.stats = Stats()
        self.lock = threading.Lock()
        self.set_config(config)

    def set_config(self, config: Config) -> None:
        with self.lock:
            self.config = config
            self.random = random.Random(config.seed)

    def draw(self, service: str) -> tuple[str | None, bool]:
        """The fault for one request (or None), and whether to add latency."""
        with self.lock:
            config = self.config
            if config.services and service not in config.services:
                return None, False
            roll = self.random.random()
            fault = None
            edge = 0.0
            for kind in FAULT_KINDS:
                edge += config.shares[kind]
                if roll < edge:
                    fault = kind
                    break
            delay = config.latency > 0 and self.random.random() < config.latency
            return fault, delay

    def rule_for(self, service: str, operation: str, body: bytes) -> str | None:
        """The action of the first rule that fires on this request, or None. Every rule tried
        that matches counts the request."""
        with self.lock:
            for rule in self.config.rules:
                if rule.matches(service, operation, body) and rule.take():
                    return rule.action
            return None

    def reset_rules(self) -> None:
        with self.lock:
            for rule in self.config.rules:
                rule.matched = 0
                rule.fired = 0


STATE: State


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "deployer-faultproxy"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the base's naming
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    # ------------------------------------------------------------------ plumbing

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def client_gone(self) -> bool:
        """Whether the client closed its side (or was killed) since it sent the request."""
        try:
            data = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return data == b""

    # ------------------------------------------------------------------ requests

    def handle_any(self) -> None:
        body = self.read_body()
        if self.path.startswith("/_faultproxy/"):
            self.control(body)
            return
        service = self.service()
        operation = self.operation(service, body)
        sdk_request = self.headers.get("amz-sdk-request", "")
        attempt_match = ATTEMPT.search(sdk_request)
        attempt = int(attempt_match.group(1)) if attempt_match else 1
        max_match = MAX_ATTEMPTS.search(sdk_request)
        last_attempt = max_match is not None and attempt >= int(max_match.group(1))
        fault = STATE.rule_for(service, operation, body)
        hold = None if fault is not None else self.hold_for(operation, body)
        if fault is not None or hold is not None:
            delay = False
        else:
            fault, delay = STATE.draw(service)
        stats = STATE.stats
        with stats.lock:
            stats.requests += 1
            if attempt > 1:
                stats.retries += 1
            stats.max_attempt = max(stats.max_attempt, attempt)
            invocation = self.headers.get("amz-sdk-invocation-id")
            if invocation:
                stats.invocation_ids.add(invocation)
            for table, key in ((stats.services, service), (stats.operations, f"{service} {operation}")):
                row = table.setdefault(key, {"requests": 0, "faulted": 0, "retries": 0})
                row["requests"] += 1
                row["faulted"] += fault is not None
                row["retries"] += attempt > 1
            if fault is not None:
                stats.faulted[fault] += 1
                if last_attempt:
                    stats.exhausted += 1
            if hold is not None:
                stats.held += 1
                stats.holding += 1
        if hold is not None:
            try:
                deadline = time.monotonic() + hold / 1000
                gone = self.client_gone()
                while not gone and time.monotonic() < deadline:
                    time.sleep(0.02)
                    gone = self.client_gone()
            finally:
                with stats.lock:
                    stats.holding -= 1
            if gone:
                with stats.lock:
                    stats.abandoned += 1
                self.close_connection = True
                return
        if delay:
            config = STATE.config
            time.sleep(config.latency_ms / 1000)
            with stats.lock:
                stats.delayed += 1
                stats.delay_ms += config.latency_ms
        if fault == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault == "lose_answer":
            # Forwarded (it takes effect), then the answer is lost on the way back.
            self.forward(body, answer=False)
            with stats.lock:
                stats.forwarded += 1
            return
        if fault is not None:
            self.reply(*error_response(fault, self.protocol(service), service))
            return
        self.forward(body)
        with stats.lock:
            stats.forwarded += 1

    def service(self) -> str:
        match = CREDENTIAL_SCOPE.search(self.headers.get("Authorization", ""))
        return match.group(1) if match else "unsigned"

    def protocol(self, service: str) -> str:
        if self.headers.get("X-Amz-Target"):
            return "json"
        if service in QUERY_SERVICES:
            return "query"
        if service == "s3":
            return "restxml"
        return "restjson"

    def operation(self, service: str, body: bytes) -> str:
        target = self.headers.get("X-Amz-Target")
        if target:
            return target.rsplit(".", 1)[-1]
        if service in QUERY_SERVICES:
            action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
            if action:
                return action[0]
        return f"{self.command} {urllib.parse.urlsplit(self.path).path}"

    def hold_for(self, operation: str, body: bytes) -> int | None:
        for pattern, needle, ms in STATE.config.holds:
            if pattern.search(operation) and (needle is None or needle.encode() in body):
                return ms
        return None

    def forward(self, body: bytes, answer: bool = True) -> None:
        """Sends the request to the target and its answer back; with ``answer=False`` the
        target's answer is read and thrown away, and the client's connection closed unanswered."""
        connection = http.client.HTTPConnection(STATE.target_host, STATE.target_port, timeout=300)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            if not answer:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            self.reply(response.status, out, data)
        except OSError as error:
            message = f"deployer-faultproxy: the target did not answer: {error}".encode()
            self.reply(502, [("Content-Type", "text/plain")], message)
        finally:
            connection.close()

    def control(self, body: bytes) -> None:
        route = (self.command, self.path.split("?", 1)[0])
        try:
            if route == ("GET", "/_faultproxy/stats"):
                with STATE.stats.lock:
                    document: Any = STATE.stats.as_json()
            elif route == ("PUT", "/_faultproxy/config"):
                STATE.set_config(Config(json.loads(body or b"{}")))
                document = {"config": STATE.config.raw}
            elif route == ("POST", "/_faultproxy/reset"):
                with STATE.stats.lock:
                    STATE.stats.reset()
                STATE.reset_rules()
                document = {"reset": True}
            else:
                self.reply(404, [("Content-Type", "text/plain")], b"unknown control route\n")
                return
        except (ValueError, TypeError, re.error) as error:
            self.reply(400, [("Content-Type", "text/plain")], f"{error}\n".encode())
            return
        self.reply(200, [("Content-Type", "application/json")], json.dumps(document).encode())


def error_response(fault: str, protocol: str, service: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The status, headers and body of an injected error in the request's protocol."""
    request_id = f"faultproxy-{random.getrandbits(64):016x}"
    if fault == "deny":
        return deny_response(protocol, request_id)
    status, code, message = {
        "throttle": (400, "ThrottlingException", "Rate exceeded"),
        "http500": (500, "InternalFailure", "deployer-faultproxy: injected HTTP 500"),
        "http503": (503, "ServiceUnavailable", "deployer-faultproxy: injected HTTP 503"),
    }[fault]
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return status, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)], body
    if protocol == "restjson":
        document: dict[str, Any] = {"message": message}
        if fault == "throttle":
            status = 429
            if service == "lambda":
                code = "TooManyRequestsException"
                document.update({"Type": "User", "Reason": "CallerRateLimitExceeded"})
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-errortype", code),
            ("x-amzn-RequestId", request_id),
        ]
        return status, headers, json.dumps(document).encode()
    if protocol == "query":
        code = "Throttling" if fault == "throttle" else code
        body = (
            f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/">'
            f"<Error><Type>{'Sender' if fault == 'throttle' else 'Receiver'}</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    # REST-XML (S3)
    if fault == "throttle":
        status, code, message = 503, "SlowDown", "Please reduce your request rate."
    body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>".encode()
    return status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body


def deny_response(protocol: str, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A non-retryable access-denied error in the request's protocol (rule action ``deny``)."""
    message = "deployer-faultproxy: injected AccessDeniedException (a rule denied this request)"
    if protocol == "json":
        body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        return 400, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)], body
    if protocol == "restjson":
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-errortype", "AccessDeniedException"),
            ("x-amzn-RequestId", request_id),
        ]
        return 403, headers, json.dumps({"message": message}).encode()
    if protocol == "query":
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return 403, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    body = f"<Error><Code>AccessDenied</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>".encode()
    return 403, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # The SDK keeps connections open; a busy test may open many at once.
    request_queue_size = 128


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="http://127.0.0.1:<port> of moto")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: let the kernel choose")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--config", default="{}", help="the configuration as JSON (module doc)")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the fault proxy listens on loopback only")

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    owner.die_with_owner()

    global STATE
    STATE = State(args.target, Config(json.loads(args.config)))
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]
    if args.port_file is not None:
        partial = args.port_file.with_name(args.port_file.name + ".partial")
        partial.write_text(f"{port}\n")
        os.replace(partial, args.port_file)
    print(f"faultproxy: http://{args.host}:{port} -> {args.target}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
