"""Our moto server: moto, plus deployer's extensions, on one 127.0.0.1 port.

    python moto_launcher.py [--host 127.0.0.1] [--port 0] [--port-file PATH]

`cargo xtask testbed up` runs this with the Python of the test-bed venv (target/testbed/venv, the
pinned ``moto[server]``). It

1. arms the owner watchdog (owner.py): under `cargo xtask test` the server ends with the run;
2. imports moto and applies every module of the ``patches`` package (below);
3. serves moto's WSGI app (the same one as ``moto_server``: requests are routed to a service by
   their SigV4 signing name and host, so SSM, ECS, ECR, Lambda, STS, S3, CloudFormation,
   SageMaker and bedrock-agentcore-control all answer on this one port) with werkzeug's threaded
   server; ``--port 0`` lets the kernel choose a free port, which is written to ``--port-file``
   (atomically) once the socket listens, and to ``MOTO_PORT`` (moto puts it in URLs it returns);
4. answers ``GET /_deployer/health`` with JSON: moto's version and the patches applied;
5. stops on SIGTERM or SIGINT.

How patches plug in
-------------------
``patches/`` is a package next to this file with one module per AWS service (``ecs.py``,
``bedrock_agentcore_control.py``, ``sagemaker.py``, ...) and one per cross-cutting tool (a
request recorder). Fault injection is not a patch: a fault share belongs to one test, and tests
share this server, so each test starts its own proxy in front of it (``faultproxy.py``). Every module whose name does not start with ``_``
is imported in name order, and may define either or both of

``apply() -> None``
    Called once after ``import moto`` and before the first request. Change moto's behaviour
    here, e.g. replace ``moto.ecs.models.EC2ContainerServiceBackend.update_service`` with a
    version that starts a new deployment and completes it after a few DescribeServices calls.
    Patch classes (backends are created lazily per account and region, after this runs).

``wrap_app(app) -> app``
    Receives the WSGI application built so far (moto's, possibly wrapped by earlier modules)
    and returns a WSGI application. Use it to record requests, inject faults or latency, or
    add routes under ``/_deployer/`` (e.g. ``GET /_deployer/requests`` for the recorder).
    Wrappers apply in name order, so the module sorting last sees each request first.

A module's docstring says what real AWS behaviour it adds and which tests rely on it. Modules
must be deterministic and must not reach the network: the test bed is loopback only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import owner  # noqa: E402  (after the path setup above)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def load_patches() -> list[ModuleType]:
    """Imports every public module of the ``patches`` package, in name order."""
    import patches

    names = sorted(
        info.name
        for info in pkgutil.iter_modules(patches.__path__)
        if not info.name.startswith("_")
    )
    return [importlib.import_module(f"patches.{name}") for name in names]


def build_app(modules: list[ModuleType]) -> WsgiApp:
    """moto's WSGI application with every patch applied and our health route in front."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    for module in modules:
        apply = getattr(module, "apply", None)
        if apply is not None:
            apply()
    app: WsgiApp = DomainDispatcherApplication(create_backend_app)
    for module in modules:
        wrap = getattr(module, "wrap_app", None)
        if wrap is not None:
            app = wrap(app)
    return _with_health(app, [m.__name__.removeprefix("patches.") for m in modules])


def _with_health(app: WsgiApp, patch_names: list[str]) -> WsgiApp:
    import moto

    body = json.dumps({"moto": moto.__version__, "patches": patch_names}).encode()

    def health(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/_deployer/health":
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return app(environ, start_response)

    return health


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def main() -> int:
    parser = argparse.ArgumentParser(description="moto server with deployer's patches")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: let the kernel choose")
    parser.add_argument("--port-file", type=Path, help="write the bound port here")
    args = parser.parse_args()

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    owner.die_with_owner()

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    app = build_app(load_patches())
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)
    if args.port_file is not None:
        _write_atomically(args.port_file, f"{port}\n")
    print(f"moto_launcher: serving on http://{args.host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        print("moto_launcher: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
