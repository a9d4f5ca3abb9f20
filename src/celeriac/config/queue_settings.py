"""The settings that shape RabbitMQ's queues and login (the type of queues made on first
use, the type of the delay queues, the SASL mechanism) and how long the Redis result
store keeps a chord's join bookkeeping. Declared here, added to ``settings.SETTINGS``.

Pure data; imports nothing from celeriac. Rows are ``(name, default, types, doc, extra)``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

Row = tuple[str, Any, tuple[type, ...], str, dict[str, Any]]

QUEUES_AND_CHORDS: list[Row] = [
    (
        "task_create_missing_queue_type", None, (str,),
        "RabbitMQ: 'classic' or 'quorum', the type of a queue celeriac creates on first use "
        "because it is neither in `task_queues` nor the default queue (a route or `-Q` "
        "names it). Unset: `task_default_queue_type`, so every queue has one type.",
        {"differs": "'classic'"},
    ),
    (
        "broker_native_delayed_delivery_queue_type", None, (str,),
        "RabbitMQ: 'classic' or 'quorum', the type of the 32 delay queues celeriac declares "
        "for countdowns, etas and retries, shared by every queue. Unset: quorum on RabbitMQ "
        "3.10 and later (read from the server), which dead-letters between them at least "
        "once, so a broker crash loses no countdown; classic on older servers, with one "
        "warning, since a crash can then lose a countdown moving between them.",
        {"differs": "'quorum'"},
    ),
    (
        "broker_login_method", None, (str,),
        "RabbitMQ: the SASL mechanism of the login, 'PLAIN' (the URL's user and password) "
        "or 'EXTERNAL' (the TLS client certificate of `broker_use_ssl`). Unset: PLAIN.",
        {},
    ),
    (
        "result_chord_expires", None, (dt.timedelta, int, float),
        "Redis result store: time a chord's join bookkeeping (which header tasks ended, "
        "who completed it, tasks added to it) is kept (seconds or timedelta; 0 forever); "
        "unset: `result_expires`. Another store warns that it does not apply it.",
        {},
    ),
]  # fmt: skip
