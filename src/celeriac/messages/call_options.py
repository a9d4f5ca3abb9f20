"""The options ``apply_async`` takes, by what celeriac does with them.

Pure data, read by ``task.check_call_options`` (which refuses any other option, so a typo
such as ``countdwon=60`` fails loudly) and by stamping (a stamp may not take an option's
name). docs/calling.md describes each.
"""

from __future__ import annotations

#: Celery's exchange of ``worker_direct``: ``exchange="C.dq2", routing_key="w1@host"``
#: routes to the queue ``w1@host.dq2``, which only that worker consumes.
WORKER_DIRECT_EXCHANGE = "C.dq2"

#: Options that work as in Celery.
CALL_OPTIONS = frozenset({
    "countdown", "eta", "expires", "queue", "routing_key", "priority", "serializer",
    "compression", "retries", "root_id", "parent_id", "group_id", "group_index", "time_limit",
    "soft_time_limit", "ignore_result", "link", "link_error", "chain", "chord", "shadow",
    "reply_to", "headers", "idempotency_key", "retry", "retry_policy", "add_to_parent",
    "stamped_headers",  # the names of the call's stamps, each an option too
    "producer", "publisher", "connection",  # the app's producer, or another broker's
    "result_cls", "route_name",
    "argsrepr", "kwargsrepr",  # the text shown for the arguments (to hide secrets)
    "delivery_mode",  # 'persistent' (2) or 'transient' (1): RabbitMQ's delivery mode
    "outbox",  # ours: write the message to an outbox table in the caller's transaction
})  # fmt: skip

#: Options Celery hands to kombu that change nothing here, each for the reason given
#: (docs/calling.md): taken so that Celery code runs, and documented.
NO_EFFECT_CALL_OPTIONS = frozenset({
    "exchange",  # a message goes to the queue it is routed to (warned when it names another)
    "exchange_type",  # likewise
    "mandatory",  # every celeriac queue is declared, so a message is always routable
    "immediate",  # RabbitMQ removed it; Celery's kombu refuses it too
    "declare",  # celeriac declares the queues it publishes to itself
    "max_retries",  # a retry limit belongs to the task or to retry_policy
})  # fmt: skip

#: Options celeriac refuses, with what to do instead.
REFUSED_CALL_OPTIONS = {
    "router": (
        "apply_async(router=...) is not supported: route with task_routes (a router function "
        "works there) or pass queue=..."
    ),
}
