"""The ``beat_*`` settings, declared here and added to ``settings.SETTINGS`` unchanged.

Pure data; imports nothing from celeriac. Each row is ``(name, default, types, doc,
extra)``, ``extra`` being ``Setting``'s other fields (``ours``, ``not_in_effect``).
"""

from __future__ import annotations

from typing import Any

_NUM = (int, float)
_FILE = "beat keeps its state (last run of each entry) in the broker, so no file is written or read"

BEAT: list[tuple[str, Any, tuple[type, ...], str, dict[str, Any]]] = [
    (
        "beat_schedule", {}, (dict,),
        "Periodic tasks: name -> {task, schedule, args, kwargs, options, relative}, plus "
        "celeriac's catchup, max_catchup, misfire_grace_time and enabled (docs/beat.md).",
        {},
    ),
    (
        "beat_scheduler", "celeriac.beat:PersistentScheduler", (str,),
        "The scheduler class beat runs: 'module:Class', a subclass of celeriac.beat.Scheduler.",
        {},
    ),
    (
        "beat_schedule_filename", "celerybeat-schedule", (str,), "Beat state file.",
        {"not_in_effect": _FILE},
    ),
    (
        "beat_sync_every", 0, (int,), "Periodic tasks sent before beat writes its state.",
        {"not_in_effect": "beat writes its state to the broker after every tick that sent "
                          "a task, so there is nothing to batch"},
    ),
    (
        "beat_max_loop_interval", 300.0, _NUM,
        "Longest beat sleep between checks of the schedule (beat also wakes at each due "
        "time and to renew its lease).",
        {},
    ),
    (
        "beat_cron_starting_deadline", None, _NUM,
        "Seconds late a crontab run may still be sent (None: no limit): the default "
        "misfire_grace_time of crontab entries.",
        {},
    ),
    (
        "beat_lease_timeout", 10.0, _NUM,
        "Seconds the leading beat's lease lasts unrenewed: a standby beat takes over within "
        "about this long after the leader dies or stops.",
        {"ours": True},
    ),
    (
        "beat_catchup", "latest", (str,),
        "What beat sends for due times missed while no beat led: 'latest' (one run), 'all' "
        "(each, up to beat_max_catchup) or 'none'; an entry's 'catchup' wins.",
        {"ours": True},
    ),
    (
        "beat_max_catchup", 100, (int,),
        "With catchup='all', the most missed runs of one entry sent at once (the latest).",
        {"ours": True},
    ),
    (
        "beat_misfire_grace_time", None, _NUM,
        "Seconds late a run may still be sent (None: no limit); an entry's "
        "'misfire_grace_time' wins.",
        {"ours": True},
    ),
]  # fmt: skip
