"""CloudWatch Logs: ``FilterLogEvents`` narrowed by ``logStreamNamePrefix``.

What moto does alone
--------------------
``FilterLogEvents`` ignores ``logStreamNamePrefix``: every stream of the group is searched, so a
reader that asks for one ECS container's streams (``<awslogs-stream-prefix>/<container>/``) gets
every container's lines, and a reader that forgot the prefix could not be told apart from one
that sent it.

What this patch adds
--------------------
- ``logStreamNamePrefix`` searches only the streams whose name starts with it, as on AWS; a
  prefix no stream has returns no events (moto would read an empty stream list as "all").
- Both ``logStreamNames`` and ``logStreamNamePrefix`` in one request is refused with
  ``InvalidParameterException``, as AWS does.

Everything else (``startTime`` inclusive, ``eventId``, pages of ``limit`` with ``nextToken``, a
missing group's ``ResourceNotFoundException``) is moto's. Used by ``tests/tests/e2e/logs.rs``
and the diagnosis tests.
"""

from __future__ import annotations

import json
from typing import Any


def apply() -> None:
    from moto.logs.exceptions import InvalidParameterException, ResourceNotFoundException
    from moto.logs.responses import LogsResponse

    original = LogsResponse.filter_log_events

    def filter_log_events(self: Any) -> str:
        prefix = self._get_param("logStreamNamePrefix")
        if not prefix:
            return original(self)
        if self._get_param("logStreamNames"):
            raise InvalidParameterException(
                msg="Cannot specify both logStreamNames and logStreamNamePrefix"
            )
        group_name = self._get_param("logGroupName")
        group = self.logs_backend.groups.get(group_name)
        if group is None:
            raise ResourceNotFoundException()
        streams = [name for name in group.streams if name.startswith(prefix)]
        if not streams:
            return json.dumps({"events": [], "searchedLogStreams": []})
        events, next_token, searched = self.logs_backend.filter_log_events(
            group_name,
            streams,
            self._get_param("startTime"),
            self._get_param("endTime"),
            self._get_param("limit"),
            self._get_param("nextToken"),
            self._get_param("filterPattern"),
            self._get_param("interleaved", False),
        )
        return json.dumps(
            {"events": events, "nextToken": next_token, "searchedLogStreams": searched}
        )

    LogsResponse.filter_log_events = filter_log_events
