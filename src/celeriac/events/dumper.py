"""``Dumper``: one line per event, as ``celery events --dump`` prints them.

``<hostname> [<UTC time>] <what>: <task> <field=value, ...>``: a task event names its task
(``name(uuid) args=... kwargs=...``, remembered from its received or sent event), a worker
event reads ``started``, ``heartbeat`` or ``shutdown``. ``as_json`` prints each event as
one JSON object instead. Imports the stdlib only.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import OrderedDict
from typing import Any, TextIO

HUMAN_TYPES = {
    "worker-offline": "shutdown",
    "worker-online": "started",
    "worker-heartbeat": "heartbeat",
}
TASK_NAMES_KEPT = 4095


def humanize_type(type_: str) -> str:
    """``task-succeeded`` -> ``task succeeded``; the worker events by Celery's words."""
    return HUMAN_TYPES.get(type_.lower(), type_.lower().replace("-", " "))


class Dumper:
    """Prints each event it is handed (``on_event``) to ``out``, flushed at once."""

    def __init__(self, out: TextIO | None = None, *, as_json: bool = False) -> None:
        self.out = out or sys.stdout
        self.as_json = as_json
        self._task_names: OrderedDict[str, str] = OrderedDict()

    def say(self, message: str) -> None:
        print(message, file=self.out)
        self.out.flush()  # the output may be piped into another program

    def on_event(self, event: dict[str, Any]) -> None:
        if self.as_json:
            self.say(json.dumps(event, default=repr, sort_keys=True))
            return
        event = dict(event)
        when = dt.datetime.fromtimestamp(float(event.pop("timestamp")), dt.timezone.utc)
        type_ = str(event.pop("type")).lower()
        hostname = event.pop("hostname", None)
        task = ""
        if type_.startswith("task-") and "uuid" in event:
            uuid = str(event.pop("uuid"))
            if type_ in ("task-received", "task-sent"):
                task = (
                    f"{event.pop('name', None)}({uuid}) "
                    f"args={event.pop('args', None)} kwargs={event.pop('kwargs', None)}"
                )
                self._remember(uuid, task)
            else:
                task = self._task_names.get(uuid, "")
        fields = ", ".join(f"{key}={event[key]}" for key in sorted(event))
        separator = ":" if fields else ""
        what = f"{humanize_type(type_)}{separator}"
        line = (
            f"{hostname} [{when}] {what} {task} {fields}"
            if task
            else (f"{hostname} [{when}] {what} {fields}")
        )
        self.say(line)

    def _remember(self, uuid: str, task: str) -> None:
        self._task_names[uuid] = task
        while len(self._task_names) > TASK_NAMES_KEPT:
            self._task_names.popitem(last=False)


__all__ = ["Dumper", "humanize_type"]
