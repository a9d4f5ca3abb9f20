"""The eviction check: a Redis that may evict keys can silently lose queued tasks.

Engine helper: imports redis-py and leaves. The worker runs it at start; only
``noeviction`` is safe for a broker (under memory pressure writes fail loudly instead).
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from celeriac.exceptions import ImproperlyConfigured

logger = logging.getLogger("celeriac.brokers.redis")
SAFE_POLICY = "noeviction"


def eviction_policy(client: redis.Redis) -> str | None:
    """The server's maxmemory-policy; INFO when CONFIG is disabled (managed Redis)."""
    try:
        reply: Any = client.config_get("maxmemory-policy")
        value = reply.get("maxmemory-policy") or reply.get(b"maxmemory-policy")
    except redis.ResponseError:
        info: Any = client.info("memory")
        value = info.get("maxmemory_policy")
    if isinstance(value, bytes):
        value = value.decode()
    return str(value) if value else None


def check_eviction_policy(client: redis.Redis, url: str, *, refuse: bool) -> str | None:
    """Warn (or raise, with ``refuse``) when the broker's keys may be evicted.

    Returns the warning text, or None when the policy is safe or cannot be read.
    """
    policy = eviction_policy(client)
    if policy is None or policy == SAFE_POLICY:
        return None
    problem = (
        f"Redis at {url} has maxmemory-policy={policy}: when it reaches maxmemory it may "
        f"EVICT queue keys and lose tasks without an error. Set maxmemory-policy to "
        f"noeviction (redis.conf, or CONFIG SET maxmemory-policy noeviction), or use a "
        f"separate Redis for caching."
    )
    if refuse:
        raise ImproperlyConfigured(
            problem + " (The worker refuses to start because "
            "broker_transport_options['eviction_policy'] is 'refuse'.)"
        )
    logger.warning("%s", problem)
    return problem
