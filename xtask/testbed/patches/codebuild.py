"""CodeBuild: a started build really runs, on this machine, with the local Docker engine.

What moto does alone
--------------------
``StartBuild`` records a build in ``QUEUED`` and keeps none of the overrides (source, buildspec,
environment); the first ``BatchGetBuilds`` reports it ``SUCCEEDED`` with every phase done and a
random duration. Nothing is fetched, built or logged, so a deployer's build could never fail
and its image would never be pushed.

What this patch adds
--------------------
A ``StartBuild`` with ``sourceTypeOverride = S3`` and an inline ``buildspecOverride`` (what
``deployer-codebuild`` sends) starts a real build in a thread of this server:

1. ``PROVISIONING``: the log stream ``<build uuid>`` is created in the group
   ``/aws/codebuild/<project>`` (the project's ``logsConfig.cloudWatchLogs.groupName`` when it
   has one) in moto's CloudWatch Logs; the build's ``logs`` name both, as on AWS.
2. ``DOWNLOAD_SOURCE``: the object ``sourceLocationOverride`` (``bucket/key``) is read from
   moto's S3 (in process) and unzipped into a temporary directory (symlinks kept); a missing
   object fails the phase with ``CLIENT_ERROR``, as on AWS.
3. ``INSTALL``, ``PRE_BUILD``, ``BUILD``, ``POST_BUILD``: each command of the buildspec's phase
   runs with ``bash -c`` in that directory (``CODEBUILD_SRC_DIR``, ``CODEBUILD_BUILD_ID``,
   ``CODEBUILD_BUILD_ARCH`` set; this server's environment otherwise, so ``docker`` is the local
   engine and pushes to the bed's registry on 127.0.0.1). Every output line goes to the log
   stream (``PutLogEvents``), with CodeBuild's own ``[Container] … Running command …`` and
   ``Phase complete: … State: …`` lines. A command that exits non-zero fails its phase
   (``COMMAND_EXECUTION_ERROR: Error while executing command: … Reason: exit status N``) and
   the build: ``FAILED``. More than ``timeoutInMinutesOverride`` (default 60) fails it with
   ``TIMED_OUT``.
4. ``UPLOAD_ARTIFACTS``, ``FINALIZING``, ``COMPLETED``: ``buildComplete = true``, ``endTime``.

``BatchGetBuilds`` reports such a build as it is (phases with their status, ``currentPhase``,
``buildStatus`` ``IN_PROGRESS`` until the end). ``StopBuild`` kills its running command (the
whole process group) and ends it ``STOPPED``. Builds started otherwise keep moto's behaviour.

Provisioning takes time on AWS (tens of seconds): a project tagged
``deployer-testbed:provisioning-seconds = N`` spends N seconds in ``PROVISIONING``, so a test
can see builds of several services run at once even when each build takes a fraction of a
second (``StopBuild`` ends a build that is still provisioning at once).

A build runs only what its buildspec says: the test bed has no CodeBuild images, so the local
engine stands in for the build container (an ``ARM_CONTAINER`` build runs on this machine's
architecture; a ``FROM scratch`` image builds for any platform). Used by
``tests/tests/e2e/codebuild.rs``.
"""

from __future__ import annotations

import copy
import io
import os
import signal
import subprocess
import tempfile
import threading
import time
import zipfile
from typing import Any

DEFAULT_TIMEOUT_MINUTES = 60
PROVISIONING_TAG = "deployer-testbed:provisioning-seconds"
PHASES = ["INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD"]
STEPS = [
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
    "COMPLETED",
]

_lock = threading.RLock()
# Build id -> {"stop": bool, "process": Popen | None}
_managed: dict[str, dict[str, Any]] = {}


def apply() -> None:
    from moto.codebuild.models import CodeBuildBackend
    from moto.codebuild.responses import CodeBuildResponse

    original_start = CodeBuildResponse.start_build
    original_batch = CodeBuildBackend.batch_get_builds
    original_stop = CodeBuildBackend.stop_build

    def start_build(self: Any) -> Any:
        result = original_start(self)
        source_type = self._get_param("sourceTypeOverride")
        spec = self._get_param("buildspecOverride")
        if source_type != "S3" or not spec:
            return result
        backend = self.codebuild_backend
        project_name = self._get_param("projectName")
        build = backend.build_metadata[project_name].build_metadata
        project = backend.codebuild_projects[project_name].project_metadata
        overrides = {
            "location": self._get_param("sourceLocationOverride") or "",
            "buildspec": spec,
            "environment_type": self._get_param("environmentTypeOverride"),
            "image": self._get_param("imageOverride"),
            "compute": self._get_param("computeTypeOverride"),
            "privileged": self._get_param("privilegedModeOverride"),
            "timeout": self._get_param("timeoutInMinutesOverride") or DEFAULT_TIMEOUT_MINUTES,
            "provisioning": next(
                (float(t.get("value") or 0) for t in project.get("tags") or [] if t.get("key") == PROVISIONING_TAG),
                0.0,
            ),
        }
        _begin(backend, project, build, overrides)
        return result

    def batch_get_builds(self: Any, ids: list[str]) -> list[dict[str, Any]]:
        with _lock:
            ours = [i for i in ids if i in _managed]
        others = [i for i in ids if i not in ours]
        found = original_batch(self, others) if others else []
        with _lock:
            for history in self.build_metadata_history.values():
                for build in history:
                    if build["id"] in ours:
                        found.append(copy.deepcopy(build))
        return found

    def stop_build(self: Any, build_id: str) -> Any:
        with _lock:
            state = _managed.get(build_id)
            if state is None:
                return original_stop(self, build_id)
            state["stop"] = True
            process = state.get("process")
            if process is not None and process.poll() is None:
                _kill(process)
            for history in self.build_metadata_history.values():
                for build in history:
                    if build["id"] == build_id:
                        return copy.deepcopy(build)
        return None

    CodeBuildResponse.start_build = start_build
    CodeBuildBackend.batch_get_builds = batch_get_builds
    CodeBuildBackend.stop_build = stop_build


def _now() -> str:
    from moto.core.utils import iso_8601_datetime_with_milliseconds

    return iso_8601_datetime_with_milliseconds()


def _begin(backend: Any, project: dict[str, Any], build: dict[str, Any], overrides: dict[str, Any]) -> None:
    build_id = build["id"]
    region, account = backend.region_name, backend.account_id
    group = ((project.get("logsConfig") or {}).get("cloudWatchLogs") or {}).get("groupName")
    group = group or f"/aws/codebuild/{build['projectName']}"
    stream = build_id.split(":", 1)[1]
    with _lock:
        _managed[build_id] = {"stop": False, "process": None}
        build["source"] = {"type": "S3", "location": overrides["location"], "buildspec": overrides["buildspec"]}
        environment = build["environment"]
        environment["type"] = overrides["environment_type"] or environment["type"]
        environment["image"] = overrides["image"] or environment["image"]
        environment["computeType"] = overrides["compute"] or environment["computeType"]
        environment["privilegedMode"] = bool(overrides["privileged"])
        build["timeoutInMinutes"] = int(overrides["timeout"])
        build["logs"] = {
            "groupName": group,
            "streamName": stream,
            "deepLink": f"https://console.aws.amazon.com/cloudwatch/home?region={region}#logEvent:group={group};stream={stream}",
            "cloudWatchLogsArn": f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:{stream}",
            "cloudWatchLogs": {"status": "ENABLED", "groupName": group, "streamName": stream},
            "s3Logs": {"status": "DISABLED", "encryptionDisabled": False},
        }
    runner = threading.Thread(
        target=_run, args=(account, region, build, overrides, group, stream), name=f"codebuild {build_id}", daemon=True
    )
    runner.start()


def _enter(build: dict[str, Any], phase: str) -> None:
    """Ends the current phase (SUCCEEDED) and starts ``phase``."""
    with _lock:
        now = _now()
        for existing in build["phases"]:
            if "endTime" not in existing:
                existing["phaseStatus"] = existing.get("phaseStatus") or "SUCCEEDED"
                existing["endTime"] = now
                existing["durationInSeconds"] = 0
        entry: dict[str, Any] = {"phaseType": phase, "startTime": now}
        if phase == "COMPLETED":
            entry = {"phaseType": phase, "startTime": now}
        build["phases"].append(entry)
        build["currentPhase"] = phase


def _fail_phase(build: dict[str, Any], status: str, code: str, message: str) -> None:
    with _lock:
        current = build["phases"][-1]
        current["phaseStatus"] = status
        current["endTime"] = _now()
        current["durationInSeconds"] = 0
        current["contexts"] = [{"statusCode": code, "message": message}]
        build["buildStatus"] = status


def _stopped(build_id: str) -> bool:
    with _lock:
        return bool(_managed.get(build_id, {}).get("stop"))


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Log:
    """The build's log stream in moto's CloudWatch Logs."""

    def __init__(self, account: str, region: str, group: str, stream: str) -> None:
        from moto.logs.models import logs_backends

        self.backend = logs_backends[account][region]
        self.group, self.stream = group, stream
        with _lock:
            if group not in self.backend.groups:
                self.backend.create_log_group(group, {})
            self.backend.create_log_stream(group, stream)

    def line(self, text: str) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": text.rstrip("\n")}
        with _lock:
            self.backend.put_log_events(self.group, self.stream, [event])

    def container(self, text: str) -> None:
        self.line(f"[Container] {time.strftime('%Y/%m/%d %H:%M:%S')} {text}")


def _run(account: str, region: str, build: dict[str, Any], overrides: dict[str, Any], group: str, stream: str) -> None:
    build_id = build["id"]
    deadline = time.monotonic() + int(overrides["timeout"]) * 60
    try:
        _enter(build, "PROVISIONING")
        log = _Log(account, region, group, stream)
        log.container(f"Waiting for agent ping (deployer test bed: build {build_id})")
        provisioned = time.monotonic() + overrides["provisioning"]
        while time.monotonic() < provisioned:
            if _stopped(build_id):
                _fail_phase(build, "STOPPED", "BUILD_STOPPED", "the build was stopped")
                return
            time.sleep(0.05)
        _enter(build, "DOWNLOAD_SOURCE")
        with tempfile.TemporaryDirectory(prefix="deployer-codebuild-") as src:
            if not _download(overrides["location"], account, src):
                log.container(f"Phase complete: DOWNLOAD_SOURCE State: FAILED")
                _fail_phase(build, "FAILED", "CLIENT_ERROR", f"no such source object: {overrides['location']}")
                return
            import yaml

            spec = yaml.safe_load(overrides["buildspec"]) or {}
            phases = spec.get("phases") or {}
            environment = dict(os.environ)
            environment.update(
                {
                    "CODEBUILD_SRC_DIR": src,
                    "CODEBUILD_BUILD_ID": build_id,
                    "CODEBUILD_BUILD_ARCH": "arm64" if build["environment"]["type"] == "ARM_CONTAINER" else "x86_64",
                }
            )
            for name in PHASES:
                _enter(build, name)
                commands = (phases.get(name.lower()) or {}).get("commands") or []
                for command in commands:
                    if _stopped(build_id):
                        _fail_phase(build, "STOPPED", "BUILD_STOPPED", "the build was stopped")
                        return
                    log.container(f"Running command {command}")
                    status = _command(build_id, command, src, environment, log, deadline)
                    if status == "stopped":
                        _fail_phase(build, "STOPPED", "BUILD_STOPPED", "the build was stopped")
                        return
                    if status == "timeout":
                        _fail_phase(build, "TIMED_OUT", "BUILD_TIMED_OUT", f"Build has timed out. Timeout: {overrides['timeout']} minutes")
                        return
                    if status != 0:
                        message = f"Error while executing command: {command}. Reason: exit status {status}"
                        log.container(f"Command did not exit successfully {command} exit status {status}")
                        log.container(f"Phase complete: {name} State: FAILED")
                        log.container(f"Phase context status code: COMMAND_EXECUTION_ERROR Message: {message}")
                        _fail_phase(build, "FAILED", "COMMAND_EXECUTION_ERROR", message)
                        return
                if commands:
                    log.container(f"Phase complete: {name} State: SUCCEEDED")
            _enter(build, "UPLOAD_ARTIFACTS")
            _enter(build, "FINALIZING")
            with _lock:
                build["buildStatus"] = "SUCCEEDED"
    except Exception as error:  # noqa: BLE001 - a broken test bed must not leave a build running
        _fail_phase(build, "FAULT", "INTERNAL_ERROR", f"deployer test bed: {error}")
    finally:
        with _lock:
            if build["buildStatus"] == "IN_PROGRESS":
                build["buildStatus"] = "FAULT"
        _enter(build, "COMPLETED")
        with _lock:
            build["phases"][-1]["endTime"] = build["phases"][-1]["startTime"]
            build["endTime"] = _now()
            build["buildComplete"] = True


def _download(location: str, account: str, into: str) -> bool:
    from moto.s3.models import s3_backends

    bucket, _, key = location.partition("/")
    try:
        found = s3_backends[account]["aws"].get_object(bucket, key)
    except Exception:  # noqa: BLE001 - a missing bucket is a missing source
        found = None
    if found is None:
        return False
    with zipfile.ZipFile(io.BytesIO(found.value)) as archive:
        for info in archive.infolist():
            target = os.path.join(into, info.filename)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            mode = info.external_attr >> 16
            if mode & 0o170000 == 0o120000:
                os.symlink(archive.read(info).decode(), target)
            elif not info.is_dir():
                with open(target, "wb") as out:
                    out.write(archive.read(info))
                os.chmod(target, mode & 0o777 or 0o644)
    return True


def _command(build_id: str, command: str, cwd: str, env: dict[str, str], log: _Log, deadline: float) -> Any:
    """Runs one command; its exit status, or ``"stopped"`` / ``"timeout"``."""
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    with _lock:
        _managed[build_id]["process"] = process
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), _kill, args=(process,))
    timer.start()
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            log.line(raw.decode("utf-8", "replace"))
        code = process.wait()
    finally:
        timer.cancel()
        with _lock:
            _managed[build_id]["process"] = None
    if _stopped(build_id):
        return "stopped"
    if time.monotonic() >= deadline:
        return "timeout"
    return code
