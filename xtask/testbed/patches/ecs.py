"""ECS: deployments that roll forward (or fail and roll back) the way the ECS controller reports them.

What moto does alone
--------------------
``UpdateService`` sets the service's task definition and nothing else: no new deployment, the one
PRIMARY deployment keeps its id, its old ``taskDefinition`` and its counts, so a deployer cannot
tell its own rollout from the one before, and nothing ever progresses (``MOTO_ECS_SERVICE_RUNNING``
only fixes the counts of deployments created by ``CreateService``).

What this patch adds
--------------------
``UpdateService`` (ECS deployment controller) that changes the task definition, or has
``forceNewDeployment``, starts a new deployment, as on AWS:

- a new PRIMARY deployment ``ecs-svc/9…`` on the new task definition (resolved to its ARN),
  ``rolloutState = IN_PROGRESS``, ``runningCount = 0``, ``pendingCount = desiredCount``; the
  previous PRIMARY becomes ACTIVE and stays listed. The UpdateService response shows this.
  An UpdateService that changes neither starts nothing (as on AWS).

Then every ``DescribeServices`` moves each IN_PROGRESS PRIMARY deployment of the described
services one step (deterministic: steps are counted in calls, not in time):

- healthy: ``ceil(desired / 2)`` more tasks running per call, with a service event
  ``(service S) has started N tasks: …``; once running = desired the deployment is
  ``COMPLETED`` ("ECS deployment … completed."), the other deployments are removed, the service
  counts are running = desired, and the events ``(service S) (deployment …) deployment
  completed.`` and ``(service S) has reached a steady state.`` are added. With desired = 2 the
  first DescribeServices after the update sees 1/2 IN_PROGRESS, the second COMPLETED.
- failing (see below): each call one more failed task (``failedTasks``, event ``(service S)
  (task …) failed to start: …``); on the second call the deployment is ``FAILED``
  ("ECS deployment circuit breaker: tasks failed to start."), no longer PRIMARY (ACTIVE), and
  a rollback deployment starts as PRIMARY on the task definition that was PRIMARY before the
  update (the service's ``taskDefinition`` goes back to it), with the events ``(service S)
  (deployment …) deployment failed: tasks failed to start.`` and ``(service S) rolling back to
  deployment ….``. The rollback then completes like a healthy deployment, and the failed one is
  removed: the service ends "stable" on the old revision, the circuit-breaker rollback that a
  deployer must report as a failure.

Circuit breaker without rollback
--------------------------------
When the service's ``deploymentConfiguration.deploymentCircuitBreaker.rollback`` is ``false``
(set with ``UpdateService``; moto's ``CreateService`` drops ``deploymentConfiguration``, and a
service without one behaves as above), a failing deployment trips the same way (``FAILED``,
"ECS deployment circuit breaker: tasks failed to start.", the "deployment failed" event) but
nothing is rolled back, as on AWS: the failed deployment STAYS PRIMARY with
``rolloutState = FAILED``, no rollback deployment starts, the deployment it replaced stays
listed as ACTIVE, and the service's ``taskDefinition`` stays the new one. The service then
looks settled (no IN_PROGRESS deployment) on an image that never ran: a deployer must not take
it for a success. A later ``UpdateService`` (a new task definition, or ``forceNewDeployment``)
starts a new deployment as usual. Used by ``tests/tests/e2e/flow_trust.rs``.

Making a rollout fail
---------------------
Tag the task definition the update rolls to, or the service, with
``deployer-testbed:rollout = fail``. A deployer copies task-definition tags into the new
revision, so tagging the service's original task definition makes every rollout from it fail
(and proves the tags were copied). Deployments created by ``CreateService`` and rollback
deployments never fail.

Why the tasks of a failing rollout stopped
-----------------------------------------
Each failed task of a failing deployment (above) is also a real moto task, as ECS keeps it for
a while: ``ListTasks`` (``startedBy`` = the deployment id, ``desiredStatus = STOPPED``) lists it
and ``DescribeTasks`` shows it ``STOPPED`` with ``stopCode``, ``stoppedReason``, ``stoppedAt``
and its first container's ``exitCode`` and ``reason``. Tags on the task definition (or the
service) choose them:

- ``deployer-testbed:stop-reason = <text>`` — the container's ``reason`` (e.g.
  ``OutOfMemoryError: Container killed due to memory usage``). The task's ``stoppedReason`` is
  ``Essential container in task exited``, or the reason itself with ``stop-code =
  TaskFailedToStart`` (e.g. ``CannotPullContainerError: …``). Without the tag: no reason.
- ``deployer-testbed:exit-code = <n>`` — the container's ``exitCode`` (default ``1``;
  ``none`` for a container that never ran).
- ``deployer-testbed:stop-code = <code>`` — ``stopCode`` (default ``EssentialContainerExited``).
- ``deployer-testbed:log = <line>;<line>;…`` — log lines the container "wrote": put to moto's
  CloudWatch Logs through the first container's ``awslogs`` configuration (group created when
  missing; stream ``<awslogs-stream-prefix>/<container>/<task id>``), one event per line,
  timestamps a millisecond apart ending now. A task definition without ``awslogs`` options or
  without a stream prefix gets no log events.

Rollouts that never finish
--------------------------
Tag the task definition or the service with ``deployer-testbed:rollout = stuck``: the new
deployment starts ``ceil(desired / 2)`` tasks (never all of them) and then stays IN_PROGRESS for
good, with no failed task, as a service whose new tasks never become healthy while the circuit
breaker does not trip. A deployer's wait must run out of time and say where it was stuck (used by
``tests/tests/e2e/faults.rs``).

Members this SDK does not know
------------------------------
moto returns only the members of botocore's model. To show what a deployer does with a member
AWS returns that its SDK does not model, tag a task definition with
``deployer-testbed:unknown-member = <name>``: ``DescribeTaskDefinition`` responses that list that
tag (``include = [TAGS]``) then carry ``<name>: "testbed"`` in the task definition and in each
of its container definitions (``wrap_app``).

Events are listed newest first, as ECS does. Used by ``tests/tests/e2e/ecs.rs``.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from typing import Any, Callable, Iterable

FAIL_TAG_KEY = "deployer-testbed:rollout"
UNKNOWN_MEMBER_TAG_KEY = "deployer-testbed:unknown-member"
FAIL_TAG_VALUE = "fail"
STUCK_TAG_VALUE = "stuck"
STOP_REASON_TAG_KEY = "deployer-testbed:stop-reason"
EXIT_CODE_TAG_KEY = "deployer-testbed:exit-code"
STOP_CODE_TAG_KEY = "deployer-testbed:stop-code"
LOG_TAG_KEY = "deployer-testbed:log"
# Failed tasks after which the circuit breaker trips (AWS: a threshold derived from desired).
FAILURES_TO_TRIP = 2

_lock = threading.RLock()
_ids = itertools.count(9_000_000_000_001)
_tasks = itertools.count(1)
# Deployment id -> what this patch knows about it (moto serializes only the modelled keys of a
# deployment dict, but side state keeps the responses clean of anything AWS does not send).
_state: dict[str, dict[str, Any]] = {}


def apply() -> None:
    from moto.ecs.models import EC2ContainerServiceBackend

    original_update = EC2ContainerServiceBackend.update_service
    original_describe = EC2ContainerServiceBackend.describe_services

    def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
        props = dict(service_properties)
        force = bool(props.pop("force_new_deployment", False))
        cluster = props.get("cluster", "default")
        name = str(props["service"]).split("/")[-1]
        wanted = props.get("task_definition")
        with _lock:
            before = self._get_service(cluster, name)
            old_task_definition = before.task_definition
            # moto pops what it reads from the dict it is given.
            service = original_update(self, dict(props))
            if wanted:
                service.task_definition = self.describe_task_definition(wanted).arn
            changed = service.task_definition != old_task_definition
            if service.deployment_controller.get("type", "ECS") == "ECS" and (changed or force):
                _start(self, service, service.task_definition, previous=old_task_definition)
            return service

    def describe_services(self: Any, cluster_str: str, service_names_or_arns: list[str]) -> Any:
        services, failures = original_describe(self, cluster_str, service_names_or_arns)
        with _lock:
            for service in services:
                _advance(self, service)
        return services, failures

    EC2ContainerServiceBackend.update_service = update_service
    EC2ContainerServiceBackend.describe_services = describe_services


def wrap_app(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Adds the unknown member to tagged ``DescribeTaskDefinition`` responses (module doc)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").endswith(".DescribeTaskDefinition"):
            return app(environ, start_response)
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return chunks.append

        result = app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        body = _with_unknown_member(b"".join(chunks))
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], headers + [("Content-Length", str(len(body)))])
        return [body]

    return wrapped


def _with_unknown_member(body: bytes) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict) or not isinstance(document.get("taskDefinition"), dict):
        return body
    name = next(
        (t.get("value") for t in document.get("tags") or [] if t.get("key") == UNKNOWN_MEMBER_TAG_KEY),
        None,
    )
    if not name:
        return body
    task_definition = document["taskDefinition"]
    task_definition[name] = "testbed"
    for container in task_definition.get("containerDefinitions") or []:
        container[name] = "testbed"
    return json.dumps(document).encode()


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()


def _event(service: Any, message: str) -> None:
    from moto.moto_api._internal import mock_random

    service.events.insert(
        0,
        {"id": str(mock_random.uuid4()), "createdAt": _now(), "message": f"(service {service.name}) {message}"},
    )


def _start(backend: Any, service: Any, task_definition: str, previous: str | None, rollback: bool = False) -> dict[str, Any]:
    """A new PRIMARY deployment of ``task_definition``; the previous PRIMARY becomes ACTIVE."""
    primary = next((d for d in service.deployments if d.get("status") == "PRIMARY"), None)
    for deployment in service.deployments:
        if deployment.get("status") == "PRIMARY":
            deployment["status"] = "ACTIVE"
    now = _now()
    deployment_id = f"ecs-svc/{next(_ids)}"
    deployment = dict(primary or {})
    deployment.update(
        {
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": task_definition,
            "desiredCount": service.desired_count,
            "runningCount": 0,
            "pendingCount": service.desired_count,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        }
    )
    service.deployments.insert(0, deployment)
    fail = not rollback and (_tagged(backend, task_definition) or _tagged_service(service))
    stuck = not rollback and (
        _tagged(backend, task_definition, STUCK_TAG_VALUE) or _tagged_service(service, STUCK_TAG_VALUE)
    )
    _state[deployment_id] = {"fail": fail, "stuck": stuck, "previous": previous, "failures": 0}
    return deployment


def _rolls_back(service: Any) -> bool:
    """Whether the circuit breaker rolls back: unless UpdateService set ``rollback = false``."""
    configuration = getattr(service, "deployment_configuration", None) or {}
    breaker = configuration.get("deploymentCircuitBreaker") or {}
    return breaker.get("rollback", True) is not False


def _tagged(backend: Any, task_definition: str, value: str = FAIL_TAG_VALUE) -> bool:
    try:
        tags = backend.describe_task_definition(task_definition).tags or []
    except Exception:  # noqa: BLE001 - a deleted task definition has no say
        return False
    return _has_fail_tag(tags, value)


def _tagged_service(service: Any, value: str = FAIL_TAG_VALUE) -> bool:
    return _has_fail_tag(service.tags or [], value)


def _has_fail_tag(tags: list[dict[str, str]], value: str = FAIL_TAG_VALUE) -> bool:
    return any(t.get("key") == FAIL_TAG_KEY and t.get("value") == value for t in tags)


def _advance(backend: Any, service: Any) -> None:
    """Moves each IN_PROGRESS PRIMARY deployment of ``service`` one step."""
    for deployment in list(service.deployments):
        if deployment.get("status") != "PRIMARY" or deployment.get("rolloutState") != "IN_PROGRESS":
            continue
        state = _state.get(deployment["id"])
        if state is not None and state["fail"]:
            _fail_step(backend, service, deployment, state)
        else:
            _healthy_step(service, deployment, stuck=state is not None and state.get("stuck", False))


def _healthy_step(service: Any, deployment: dict[str, Any], stuck: bool = False) -> None:
    desired = int(deployment.get("desiredCount") or 0)
    running = int(deployment.get("runningCount") or 0)
    # A stuck deployment never gets all its tasks running.
    ceiling = max(0, desired - 1) if stuck else desired
    started = min(ceiling - running, max(1, math.ceil(desired / 2)))
    if started > 0:
        running += started
        tasks = " ".join(f"(task {next(_tasks):032x})" for _ in range(started))
        _event(service, f"has started {started} tasks: {tasks}.")
    deployment["runningCount"] = running
    deployment["pendingCount"] = desired - running
    deployment["updatedAt"] = _now()
    if running < desired:
        return
    deployment["rolloutState"] = "COMPLETED"
    deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."
    service.deployments[:] = [deployment]
    service.task_definition = deployment["taskDefinition"]
    service.running_count = desired
    service.pending_count = 0
    _event(service, f"(deployment {deployment['id']}) deployment completed.")
    _event(service, "has reached a steady state.")


def _fail_step(backend: Any, service: Any, deployment: dict[str, Any], state: dict[str, Any]) -> None:
    state["failures"] += 1
    deployment["failedTasks"] = state["failures"]
    deployment["pendingCount"] = int(deployment.get("desiredCount") or 0)
    deployment["updatedAt"] = _now()
    task_id = _stopped_task(backend, service, deployment)
    _event(
        service,
        f"(task {task_id}) failed to start: essential container in task exited "
        f"(deployer-testbed: {FAIL_TAG_KEY} = {FAIL_TAG_VALUE}).",
    )
    if state["failures"] < FAILURES_TO_TRIP:
        return
    deployment["rolloutState"] = "FAILED"
    deployment["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
    _event(service, f"(deployment {deployment['id']}) deployment failed: tasks failed to start.")
    if not _rolls_back(service):
        # Circuit breaker without rollback: the failed deployment stays PRIMARY (module doc).
        return
    previous = state.get("previous")
    if not previous:
        return
    rollback = _start(backend, service, previous, previous=None, rollback=True)
    service.task_definition = previous
    _event(service, f"rolling back to deployment {rollback['id']}.")


def _tag_values(backend: Any, service: Any, task_definition: str) -> dict[str, str]:
    """The ``deployer-testbed:*`` tags of the service, then of the task definition (which wins)."""
    values = {t.get("key"): t.get("value") for t in service.tags or []}
    try:
        tags = backend.describe_task_definition(task_definition).tags or []
    except Exception:  # noqa: BLE001 - a deleted task definition has no say
        tags = []
    values.update({t.get("key"): t.get("value") for t in tags})
    return {k: v for k, v in values.items() if k and v is not None}


def _stopped_task(backend: Any, service: Any, deployment: dict[str, Any]) -> str:
    """A STOPPED moto task of ``deployment``, and its log events (module doc); its id."""
    from moto.ecs.models import Task

    task_definition = backend.describe_task_definition(deployment["taskDefinition"])
    cluster = backend._get_cluster(service.cluster_name)
    tags = _tag_values(backend, service, deployment["taskDefinition"])
    # A stopped task holds no network interface: moto's Task would create one (and refuse an
    # awsvpc task definition without a network configuration), so it is built as if bridged.
    network_mode = task_definition.network_mode
    task_definition.network_mode = "bridge"
    try:
        task = Task(
            cluster,
            task_definition,
            None,
            None,
            backend,
            group=f"service:{service.name}",
            launch_type=service.launch_type or "",
            started_by=deployment["id"],
        )
    finally:
        task_definition.network_mode = network_mode
    reason = tags.get(STOP_REASON_TAG_KEY)
    stop_code = tags.get(STOP_CODE_TAG_KEY, "EssentialContainerExited")
    exit_code = tags.get(EXIT_CODE_TAG_KEY, "1")
    task.last_status = "STOPPED"
    task.desired_status = "STOPPED"
    task.stop_code = stop_code
    task.stopped_reason = (
        reason if stop_code == "TaskFailedToStart" and reason else "Essential container in task exited"
    )
    task.stopped_at = _now()
    task.stopping_at = task.stopped_at
    for container in task.containers:
        container.last_status = "STOPPED"
        container.exitCode = None if exit_code == "none" else int(exit_code)
        container.reason = reason
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    lines = tags.get(LOG_TAG_KEY)
    if lines:
        _write_logs(backend, task_definition, task.id, lines.split(";"))
    return task.id


def _write_logs(backend: Any, task_definition: Any, task_id: str, lines: list[str]) -> None:
    from moto.core.utils import unix_time_millis
    from moto.logs.models import logs_backends

    container = (task_definition.container_definitions or [{}])[0]
    configuration = container.get("logConfiguration") or {}
    options = configuration.get("options") or {}
    group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
    if configuration.get("logDriver") != "awslogs" or not group or not prefix:
        return
    region = options.get("awslogs-region") or backend.region_name
    logs = logs_backends[backend.account_id][region]
    if group not in logs.groups:
        logs.create_log_group(group, {})
    stream = f"{prefix}/{container.get('name')}/{task_id}"
    if stream not in logs.groups[group].streams:
        logs.create_log_stream(group, stream)
    now = int(unix_time_millis(_now()))
    events = [
        {"timestamp": now - len(lines) + index + 1, "message": line}
        for index, line in enumerate(lines)
    ]
    logs.put_log_events(group, stream, events)
