"""Celery 3's upper-case setting names and the lower-case names that replaced them.

Pure logic; imports nothing from celeriac. ``new_name`` answers for one old name, by the
rules Celery 4 renamed them with: ``CELERYD_X`` became ``worker_x``, ``CELERYBEAT_X``
``beat_x``, most ``CELERY_X`` ``task_x`` or plain ``x``, and the few irregular ones are
listed below. ``celeriac upgrade settings`` uses it to rewrite a settings file.
"""

from __future__ import annotations

#: ``CELERY_<word>`` names that became ``task_<word>`` (lower-cased).
_TASK_GROUP = frozenset(
    [
        "ACKS_LATE",
        "ACKS_ON_FAILURE",
        "ACKS_ON_FAILURE_OR_TIMEOUT",
        "ACKS_ON_TIMEOUT",
        "ALLOW_ERROR_CB_ON_CHORD_HEADER",
        "ALWAYS_EAGER",
        "ANNOTATIONS",
        "CREATE_MISSING_QUEUES",
        "CREATE_MISSING_QUEUE_EXCHANGE_TYPE",
        "CREATE_MISSING_QUEUE_TYPE",
        "IGNORE_RESULT",
        "INHERIT_PARENT_PRIORITY",
        "QUEUES",
        "QUEUE_MAX_PRIORITY",
        "REJECT_ON_WORKER_LOST",
        "REMOTE_TRACEBACKS",
        "REPR_MAXLEVELS",
        "RETRY_ON_WORKER_LOST",
        "ROUTES",
        "STORE_EAGER_RESULT",
        "STORE_ERRORS_EVEN_IF_IGNORED",
        "TRACK_STARTED",
        "TASK_PROTOCOL",
        "TASK_PUBLISH_RETRY",
        "TASK_PUBLISH_RETRY_POLICY",
        "TASK_SERIALIZER",
    ]
)

#: Names whose new form follows none of the rules.
_IRREGULAR = {
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_WORKER_LOST_WAIT": "worker_lost_wait",
    "CELERY_DISABLE_RATE_LIMITS": "worker_disable_rate_limits",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_ENABLE_REMOTE_CONTROL": "worker_enable_remote_control",
    "CELERY_MAX_CACHED_RESULTS": "result_cache_max",
    "CELERY_MESSAGE_COMPRESSION": "task_compression",
    "CELERY_REDIRECT_STDOUTS": "worker_redirect_stdouts",
    "CELERY_REDIRECT_STDOUTS_LEVEL": "worker_redirect_stdouts_level",
    "CELERY_RESULT_DBURI": "database_url",
    "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS": "database_short_lived_sessions",
    "CELERY_RESULT_DB_TABLENAMES": "database_table_names",
    "CELERY_RESULT_ENGINE_OPTIONS": "database_engine_options",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_SEND_TASK_SENT_EVENT": "task_send_sent_event",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
}

#: ``CELERY_<word>`` names that kept ``<word>`` (lower-cased), the prefix dropped.
_PLAIN_GROUP = frozenset(
    [
        "ACCEPT_CONTENT",
        "IMPORTS",
        "INCLUDE",
        "TIMEZONE",
        "ENABLE_UTC",
        "WORKER_DIRECT",
        "EVENT_SERIALIZER",
        "EVENT_QUEUE_TTL",
        "EVENT_QUEUE_EXPIRES",
        "EVENT_QUEUE_PREFIX",
        "EVENT_EXCHANGE",
        "EVENT_QUEUE_DURABLE",
        "EVENT_QUEUE_EXCLUSIVE",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_DB",
        "REDIS_PASSWORD",
        "REDIS_MAX_CONNECTIONS",
        "REDIS_USERNAME",
        "REDIS_SOCKET_TIMEOUT",
        "REDIS_SOCKET_CONNECT_TIMEOUT",
        "REDIS_SOCKET_KEEPALIVE",
        "REDIS_RETRY_ON_TIMEOUT",
        "REDIS_BACKEND_USE_SSL",
        "CACHE_BACKEND",
        "CACHE_BACKEND_OPTIONS",
        "MONGODB_BACKEND_SETTINGS",
        "SECURITY_KEY",
        "SECURITY_CERTIFICATE",
        "SECURITY_CERT_STORE",
        "SECURITY_DIGEST",
        "SECURITY_KEY_PASSWORD",
    ]
)

#: Old names without a ``CELERY`` prefix that are only upper-cased (``BROKER_URL``).
_UPPER_PREFIXES = ("BROKER_", "CONTROL_", "ENABLE_UTC", "RESULT_", "DATABASE_")


def new_name(old: str) -> str | None:
    """The lower-case name that replaced Celery 3's ``old``, or None if it is not one."""
    if old in _IRREGULAR:
        return _IRREGULAR[old]
    if old.startswith("CELERYD_"):
        return "worker_" + old.removeprefix("CELERYD_").lower()
    if old.startswith("CELERYBEAT_"):
        return "beat_" + old.removeprefix("CELERYBEAT_").lower()
    if old.startswith("CELERY_DEFAULT_"):
        return "task_default_" + old.removeprefix("CELERY_DEFAULT_").lower()
    if old.startswith("CELERY_"):
        word = old.removeprefix("CELERY_")
        if word in _TASK_GROUP:
            return word.lower() if word.startswith("TASK_") else "task_" + word.lower()
        if word in _PLAIN_GROUP or word.startswith("RESULT_"):
            return word.lower()
        return None
    if old.startswith(_UPPER_PREFIXES):
        return old.lower()
    return None


def django_name(new: str) -> str:
    """The form a Django settings module uses with ``namespace='CELERY'``."""
    return "CELERY_" + new.upper()


__all__ = ["django_name", "new_name"]
