"""The ``redis_*`` settings of the Redis result store (``result_backend_transport_options``
win over these), declared here and added to ``settings.SETTINGS`` unchanged.

Pure data; imports nothing from celeriac. Each row is ``(name, default, types, doc,
extra)``, ``extra`` being ``Setting``'s other fields.
"""

from __future__ import annotations

from typing import Any

_NUM = (int, float)
_SECONDS = "Redis result store: seconds to wait for %s; None waits forever."

REDIS_RESULTS: list[tuple[str, Any, tuple[type, ...], str, dict[str, Any]]] = [
    ("redis_socket_timeout", 30.0, _NUM, _SECONDS % "a reply", {"differs": "120.0"}),
    ("redis_socket_connect_timeout", 5.0, _NUM, _SECONDS % "a connection", {"differs": "None"}),
    ("redis_retry_on_timeout", False, (bool,), "Retry a Redis command once after a timeout.", {}),
    ("redis_max_connections", None, (int,), "Most connections in the result store's pool.", {}),
    ("redis_socket_keepalive", False, (bool,), "TCP keepalive on result store connections.", {}),
    (
        "redis_backend_health_check_interval",
        None,
        _NUM,
        "Seconds a connection may sit idle before it is checked (PING) on next use.",
        {},
    ),
    ("redis_client_name", None, (str,), "Name the result store's connections (CLIENT LIST).", {}),
    ("redis_username", None, (str,), "ACL user, when the result_backend URL names none.", {}),
    ("redis_password", None, (str,), "Password, when the result_backend URL has none.", {}),
]
