"""The settings of the memcached result store (``result_backend = 'cache+memcached://...'``
or ``'cache'`` with ``cache_backend``). Declared here, added to ``settings.SETTINGS``.

Pure data; imports nothing from celeriac. Rows are ``(name, default, types, doc, extra)``.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, Any, tuple[type, ...], str, dict[str, Any]]

CACHE: list[Row] = [
    (
        "cache_backend",
        None,
        (str,),
        "The cache store when `result_backend` is `'cache'`: `'memcached://h1:11211;h2:11211/'`"
        " or `'memory'`. A `result_backend='cache+memcached://…'` URL names it directly.",
        {},
    ),
    (
        "cache_backend_options",
        {},
        (dict,),
        "Options for pymemcache's client (`PooledClient`, or `HashClient` for several "
        "servers), e.g. `{'timeout': 2}`; `retry_attempts`, `retry_delay`, `retry_for`, "
        "`do_not_retry_for` wrap it in a `RetryingClient`.",
        {},
    ),
]

__all__ = ["CACHE"]
