"""Every setting celeriac knows, declared once: name, default, accepted types, one-line doc.

Pure data; imports nothing from celeriac. ``docs/configuration.md`` is checked against
this table by a test. ``ours=True`` marks a setting Celery does not have;
``differs`` names a default that is not Celery's (see docs/differences-from-celery.md);
``not_in_effect`` says why nothing reads a setting yet (a test keeps that list honest).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from celeriac.config.beat_settings import BEAT
from celeriac.config.cache_settings import CACHE
from celeriac.config.database_settings import DATABASE
from celeriac.config.outbox_settings import OUTBOX
from celeriac.config.queue_settings import QUEUES_AND_CHORDS
from celeriac.config.redis_result_settings import REDIS_RESULTS
from celeriac.config.security_settings import SECURITY
from celeriac.config.url_settings import BROKER_ADDRESS, REDIS_ADDRESS

_NUM = (int, float)
_SEQ = (list, tuple, set, frozenset)
_CALLABLE = cast(type, Callable)  # router functions and callable router objects


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: Any
    types: tuple[type, ...]
    doc: str
    ours: bool = False
    differs: str | None = None  # Celery's default, when ours differs
    not_in_effect: str | None = None  # why nothing reads it yet; set, it warns
    url_list: bool = False  # a list of URLs is kept as kombu's failover list, 'a;b'

    def accepts(self, value: Any) -> bool:
        if value is None:
            return True
        if bool in self.types or not isinstance(value, bool):
            return isinstance(value, self.types)
        return False


def _s(name: str, default: Any, types: tuple[type, ...], doc: str, **kw: Any) -> Setting:
    return Setting(name, default, types, doc, **kw)


# Why a group of settings is not read yet (the `not_in_effect` of their declarations).
_EVENTS = "events travel on a capped stream that every receiver reads, not a queue per receiver"


_DECLARED = [
    # -- broker ------------------------------------------------------------------------------
    _s(
        "broker_url",
        None,
        (str,),
        "Broker URL: `memory://`, `redis://`, `rediss://`, "
        "`unix://`, `sentinel://`, `redis+cluster://`, `amqp://`, `amqps://`; several "
        "RabbitMQ nodes as a list or `'amqp://a//;amqp://b//'`, tried in turn. "
        "`CELERY_BROKER_URL` in the environment comes first. Unset: an embedded Redis "
        "shared by the project's processes (`celeriac[embedded]`), else `memory://` (in-process).",
        differs="amqp://guest@localhost//",
        url_list=True,
    ),
    _s(
        "broker_transport_options",
        {},
        (dict,),
        "Engine options; `visibility_timeout` "
        "(seconds) is the lease length of an in-flight message (default 30).",
        differs="visibility_timeout 3600 on Redis",
    ),
    _s(
        "broker_connection_retry",
        True,
        (bool,),
        "Worker: after start, retry a lost broker connection (waits of 1 s doubling to "
        "10 s). Off: the first failure stops the worker cold, exit status 1.",
    ),
    _s(
        "broker_connection_retry_on_startup",
        True,
        (bool,),
        "Worker: retry reaching the broker at start, one warning per attempt. Off: exit "
        "status 69 at once. A refused login or vhost is never retried.",
    ),
    _s(
        "broker_connection_max_retries",
        100,
        (int,),
        "Retries of each of the two above before the worker gives up (exit status 69 at "
        "start, 1 after). None: no limit; 0: no retry.",
    ),
    _s(
        "broker_connection_timeout",
        4.0,
        _NUM,
        "Seconds to wait for a RabbitMQ connection (Redis: the `socket_connect_timeout` "
        "transport option).",
    ),
    _s("broker_heartbeat", 120.0, _NUM, "AMQP heartbeat interval in seconds."),
    _s(
        "broker_failover_strategy",
        None,
        (str, _CALLABLE),
        "RabbitMQ, with several nodes in the broker URL: the order they are tried in, "
        "'round-robin' (the URL's order, a new connection starting at the next node) or "
        "'shuffle' (a random order), or a function that takes the list of URLs and yields "
        "them, as `itertools.cycle` does. Unset: round-robin.",
    ),
    _s(
        "broker_pool_limit",
        10,
        (int,),
        "Connections kept per process for publishing.",
        not_in_effect="each broker engine manages its own connections; there is no "
        "publishing pool to size",
    ),
    _s(
        "broker_use_ssl",
        None,
        (bool, dict),
        "TLS options for an `amqps://` or `rediss://` broker: True, or a dict. Redis: "
        "`ssl_cert_reqs`, `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_check_hostname`;"
        " RabbitMQ: `cert_reqs`, `ca_certs`, `certfile`, `keyfile`, `server_hostname`, "
        "`ciphers`, `tls_minimum_version`, `tls_maximum_version`. The server's certificate "
        "and host name are verified unless `ssl_cert_reqs`/`cert_reqs` is CERT_NONE. See "
        "[TLS](tls.md).",
    ),
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in BROKER_ADDRESS),
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in QUEUES_AND_CHORDS),
    # -- results -----------------------------------------------------------------------------
    _s(
        "result_backend",
        None,
        (str,),
        "Result store URL: `redis://`, `rediss://`, `unix://`, `sentinel://`, "
        "`redis+cluster://`, "
        "`db+<SQLAlchemy URL>`, `rpc://` (sent back to the caller through the broker), "
        "`cache+memory://`. `CELERY_RESULT_BACKEND` in the "
        "environment comes first. Unset, "
        "with `broker_url` unset too: the embedded Redis (its database 1), as for the broker; "
        "otherwise results are not stored and `AsyncResult.get()` raises a clear error.",
    ),
    _s(
        "result_expires",
        dt.timedelta(days=1),
        (dt.timedelta, int, float),
        "Time a result is kept (seconds or timedelta); None or 0 keeps it forever.",
    ),
    _s("result_serializer", "json", (str,), "Serializer for stored results."),
    _s("result_compression", None, (str,), "Compress stored results: zlib, bzip2, lzma, ..."),
    _s(
        "result_accept_content",
        None,
        _SEQ,
        "Content types read back from the result store; unset: `accept_content` plus "
        "`result_serializer` (pickle only if named).",
    ),
    _s(
        "result_extended",
        False,
        (bool,),
        "Store the call's name, args, kwargs, worker, retries and queue with its result "
        "(`AsyncResult.args`, `.kwargs`, `.worker`, `.retries`, `.queue`).",
    ),
    _s(
        "result_failure_expires",
        None,
        (dt.timedelta, int, float),
        "Redis result store: time a FAILURE is kept (seconds or timedelta; 0 forever); "
        "unset: `result_expires`. Another store warns that it does not apply it.",
    ),
    _s("result_cache_max", -1, (int,), "Successes kept once read: -1 none, 0 all, N the last N."),
    _s("result_backend_transport_options", {}, (dict,), "Result engine options."),
    _s("result_backend_always_retry", False, (bool,), "Retry store calls lost to an outage."),
    _s("result_backend_max_retries", float("inf"), _NUM, "Retries of one store call, at most."),
    _s("result_backend_base_sleep_between_retries_ms", 10, _NUM, "Retry backoff base (ms)."),
    _s("result_backend_max_sleep_between_retries_ms", 10000, _NUM, "Retry backoff cap (ms)."),
    _s(
        "result_persistent",
        None,
        (bool,),
        "rpc://: whether result messages survive a broker restart.",
        not_in_effect="rpc:// states travel to a reply queue (or Redis channel) that goes "
        "with its client, so there is nothing for persistence to keep",
    ),
    _s(
        "result_exchange",
        "celeryresults",
        (str,),
        "The exchange of Celery 4's amqp result backend.",
        not_in_effect="Celery's rpc:// does not use it either; celeriac's rpc:// replies "
        "go through the broker's channel exchange",
    ),
    _s(
        "result_exchange_type",
        "direct",
        (str,),
        "The type of `result_exchange`.",
        not_in_effect="Celery's rpc:// does not use it either; celeriac's rpc:// replies "
        "go through the broker's channel exchange",
    ),
    _s(
        "result_chord_join_timeout",
        3.0,
        _NUM,
        "Seconds a chord's join may wait for its header's results.",
        not_in_effect="a chord's join never waits: the header task that ends last reads "
        "every header result at once, each stored before its task counted itself",
    ),
    # -- the Redis result store (result_backend_transport_options win over these) ------------
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in REDIS_RESULTS),
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in REDIS_ADDRESS),
    _s(
        "redis_backend_use_ssl",
        None,
        (dict,),
        "TLS options for a `rediss://` result store: `ssl_cert_reqs` (default "
        "CERT_REQUIRED), `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_check_hostname`."
        " Options in the URL's query (`?ssl_ca_certs=...`) win. See [TLS](tls.md).",
    ),
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in DATABASE),
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in CACHE),
    # -- tasks -------------------------------------------------------------------------------
    _s(
        "task_serializer",
        "json",
        (str,),
        "Serializer for task messages: json, msgpack, pickle (pickle also needs "
        "`accept_content`), or auth (signed; `app.setup_security()`).",
    ),
    _s(
        "task_compression",
        None,
        (str,),
        "Compress task message bodies: zlib (gzip), bzip2, lzma (xz), and brotli or zstd "
        "when their packages are installed; unset: no compression. The call option "
        "`compression` overrides it.",
    ),
    _s("accept_content", ["json"], _SEQ, "Serializers (or content types) a worker accepts."),
    _s("task_always_eager", False, (bool,), "Run tasks locally on `apply_async`/`delay`."),
    _s("task_eager_propagates", False, (bool,), "Eager tasks re-raise their exception."),
    _s("task_store_eager_result", False, (bool,), "Eager tasks store results in the backend."),
    _s("task_ignore_result", False, (bool,), "Do not store task results."),
    _s("task_store_errors_even_if_ignored", False, (bool,), "Store failures when ignoring."),
    _s("task_track_started", False, (bool,), "Record a STARTED state when a task starts."),
    _s("task_remote_tracebacks", False, (bool,), "Re-raise with the worker's frames (tblib)."),
    _s("task_allow_error_cb_on_chord_header", False, (bool,), "chord.link_error: header too."),
    _s(
        "task_acks_late",
        True,
        (bool,),
        "Ack a message after its outcome, not before.",
        differs="False",
    ),
    _s(
        "task_acks_on_failure_or_timeout",
        True,
        (bool,),
        "With `task_acks_late`: ack the message of a task that failed or timed out (its "
        "failure is recorded either way). Off, a failed task's message goes to the dead "
        "letters (reason `failed`), Celery's reject without requeue, and a timed-out "
        "task's is requeued (bounded by `task_delivery_limit`).",
    ),
    _s(
        "task_acks_on_failure",
        None,
        (bool,),
        "`task_acks_on_failure_or_timeout` for failures only (None: that setting).",
    ),
    _s(
        "task_acks_on_timeout",
        None,
        (bool,),
        "`task_acks_on_failure_or_timeout` for hard time limits only (None: that setting).",
    ),
    _s(
        "task_reject_on_worker_lost",
        True,
        (bool,),
        "Redeliver a task whose worker died (bounded by `task_delivery_limit`).",
        differs="None (False)",
    ),
    _s(
        "task_retry_on_worker_lost",
        False,
        (bool,),
        "Send a task whose worker died again as `retry()` would (`max_retries`, "
        "`default_retry_delay`); it fails with `WorkerLostError` once the retries run out.",
    ),
    _s(
        "task_delivery_limit",
        5,
        (int,),
        "Deliveries without an outcome before a message goes to the dead letters.",
        ours=True,
    ),
    _s(
        "task_message_max_size",
        1_048_576,
        (int,),
        "Largest message in bytes (the body before compression, and the whole message); "
        "larger calls fail at call time, and a worker dead-letters a larger message as "
        "`oversized`. None: no limit.",
        ours=True,
    ),
    _s(
        "task_idempotency_ttl",
        86400.0,
        _NUM,
        "Seconds an `idempotency_key` is held: within it, a second call with the same key "
        "sends nothing and returns the first call's result.",
        ours=True,
    ),
    _s("task_default_queue", "celery", (str,), "Queue for tasks with no route."),
    _s(
        "task_default_queue_type",
        "classic",
        (str,),
        "RabbitMQ: 'classic' (priorities 0-9) or 'quorum' (replicated, FIFO; declared with "
        "`x-queue-type: quorum`) for every celeriac queue. Other brokers: no effect.",
    ),
    _s("task_default_priority", None, (int,), "Priority 0-9 (9 first) for calls without one."),
    _s(
        "task_queue_max_priority",
        9,
        (int,),
        "RabbitMQ: `x-max-priority` of the classic queues celeriac declares (priorities "
        "above it count as it); None or 0: queues without priorities (first in, first "
        "out). Other brokers: no effect, as in Celery.",
        differs="None",
    ),
    _s(
        "task_default_delivery_mode",
        2,
        (int, str),
        "RabbitMQ: `'persistent'` (2) messages survive a broker restart, `'transient'` "
        "(1) ones need no disk write and are lost if it restarts. The call option "
        "`delivery_mode` overrides it. Other brokers: no effect, as in Celery.",
    ),
    _s("task_queues", None, (*_SEQ, dict), "Declared queues (names, or a name->options mapping)."),
    _s(
        "task_routes",
        None,
        (*_SEQ, dict, _CALLABLE),
        "Routes: a mapping of task name or glob to options, a router function, or a list of those.",
    ),
    _s("task_create_missing_queues", True, (bool,), "Create queues named by routes on use."),
    _s("task_time_limit", None, _NUM, "Hard time limit in seconds for every task."),
    _s("task_soft_time_limit", None, _NUM, "Soft time limit in seconds for every task."),
    _s("task_default_rate_limit", None, (str, int, float), "Rate limit for every task."),
    _s(
        "task_rate_limit_scope",
        "worker",
        (str,),
        "Where a task's rate_limit holds: 'worker' (each worker alone, as Celery) or "
        "'cluster' (one budget shared by every worker, through the broker). A task's "
        "rate_limit_scope option overrides it.",
        ours=True,
    ),
    _s(
        "task_annotations",
        None,
        (*_SEQ, dict, str, object),  # also an object with annotate(task), checked on use
        "Task attributes set from the configuration: a mapping of task name (or `'*'`, "
        "every task) to attributes, an object whose `annotate(task)` returns such "
        "attributes, an import path of one, or a list of these (the first match by name, "
        "then `'*'`). A key `'@method'` wraps that method: `{'@__call__': fun}` sets "
        "`fun(original)` in its place (`Task.add_around`).",
    ),
    _s("task_publish_retry", True, (bool,), "Retry publishing when the broker is down."),
    _s(
        "task_publish_retry_policy",
        {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        (dict,),
        "How publishing retries.",
        differs="{'max_retries': 3, 'interval_start': 0, 'interval_step': 0.2, 'interval_max': 1}",
    ),
    _s("task_inherit_parent_priority", False, (bool,), "Subtasks take the caller's priority."),
    _s("task_repr_maxlevels", 3, (int,), "Nesting shown in `argsrepr`/`kwargsrepr`; 0: all."),
    _s("task_protocol", 2, (int,), "Task message protocol: only 2 is written; others raise."),
    _s(
        "task_send_sent_event",
        False,
        (bool,),
        "Emit a task-sent event on publish.",
    ),
    # -- worker ------------------------------------------------------------------------------
    _s("worker_concurrency", None, (int,), "Pool size; unset: the number of CPUs."),
    _s("worker_prefetch_multiplier", 1, (int,), "Messages held per pool slot.", differs="4"),
    _s(
        "worker_disable_prefetch",
        False,
        (bool,),
        "Hold only messages a free pool slot can start (a prefetch multiplier of 1, "
        "whatever `worker_prefetch_multiplier` says); `--disable-prefetch` sets it too.",
    ),
    _s(
        "worker_max_tasks_per_child",
        None,
        (int,),
        "Tasks a pool process runs before it is replaced.",
    ),
    _s(
        "worker_max_memory_per_child",
        None,
        (int,),
        "Resident KiB after which a pool process is replaced.",
    ),
    _s("worker_pool", "prefork", (str,), "Pool: prefork, threads, asyncio, solo."),
    _s(
        "worker_direct",
        False,
        (bool,),
        "Each worker also consumes a queue of its own, `<node name>.dq2` "
        "(`apply_async(queue='w1@example.com.dq2')` reaches that worker only).",
    ),
    _s(
        "worker_pool_start_method",
        "fork",
        (str,),
        "How prefork children start: `'fork'`, the only one offered (they inherit the "
        "loaded app); `'spawn'` is refused at start with what to use instead.",
    ),
    _s(
        "worker_pool_restarts",
        False,
        (bool,),
        "Allow the `pool_restart` remote control command: import (or reload) task modules "
        "in the worker and replace its prefork children, which fork from it again.",
    ),
    _s(
        "worker_shutdown_timeout",
        60.0,
        _NUM,
        "Warm shutdown: seconds to let running tasks finish before their messages are "
        "given back. None: wait for them however long they take.",
        ours=True,
    ),
    _s("worker_soft_shutdown_timeout", 0.0, _NUM, "Seconds a cold shutdown lets tasks run on."),
    _s("worker_enable_soft_shutdown_on_idle", False, (bool,), "Soft shutdown when idle too."),
    _s(
        "worker_revoke_expires",
        10800.0,
        _NUM,
        "Seconds every worker (also one started later) remembers a revoked task id; "
        "read by `revoke()`.",
        ours=True,
    ),
    _s("worker_disable_rate_limits", False, (bool,), "Ignore task rate limits."),
    _s(
        "worker_metrics_port",
        None,
        (int,),
        "Serve Prometheus metrics on this port at /metrics from the worker process "
        "(needs the metrics extra); None serves none. The --metrics-port option wins.",
        ours=True,
    ),
    _s(
        "worker_tune_gc",
        True,
        (bool,),
        "At start: freeze start-up objects out of the garbage collector's scans and raise "
        "its young threshold (700 to 10,000) unless the app set one.",
        ours=True,
    ),
    _s(
        "worker_send_task_events",
        False,
        (bool,),
        "Emit task events (`-E`).",
    ),
    _s("worker_hijack_root_logger", True, (bool,), "The worker configures the root logger."),
    _s(
        "worker_log_format",
        "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
        (str,),
        "Format of worker log lines.",
    ),
    _s(
        "worker_task_log_format",
        "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s",
        (str,),
        "Format of task log lines.",
    ),
    _s("worker_log_datefmt", None, (str,), "`strftime` format of `%(asctime)s` in worker lines."),
    _s(
        "worker_log_color",
        None,
        (bool,),
        "Colour log lines by level when they go to a terminal (unset or True); False never "
        "does, nor does a `--logfile` or `celeriac -C` (`--no-color`).",
    ),
    _s("worker_task_log_datefmt", None, (str,), "`strftime` format of task lines' `%(asctime)s`."),
    _s(
        "worker_redirect_stdouts",
        True,
        (bool,),
        "`celeriac worker`: what tasks print (stdout and stderr) is logged on "
        "`celeriac.redirected`, one record a line, instead of written to the streams.",
    ),
    _s("worker_redirect_stdouts_level", "WARNING", (str, int), "Level of what tasks print."),
    _s(
        "worker_lost_wait",
        10.0,
        _NUM,
        "Seconds to wait for a lost child's result.",
        not_in_effect="a lost prefork child is noticed at once and its task settled "
        "without waiting",
    ),
    _s(
        "worker_proc_alive_timeout",
        4.0,
        _NUM,
        "Prefork: seconds a new child has to finish starting (`worker_process_init` "
        "included); one that takes longer is killed, logged as an error, and replaced.",
    ),
    _s(
        "worker_enable_remote_control",
        True,
        (bool,),
        "Answer remote control and inspect commands (`celeriac inspect`/`control`); off: "
        "the worker does not listen (revocations reach it through the broker either way).",
    ),
    _s(
        "worker_deduplicate_successful_tasks",
        False,
        (bool,),
        "Skip redelivered tasks that already succeeded (needs a result backend).",
    ),
    # -- events, beat, time, imports ---------------------------------------------------------
    _s(
        "event_exchange",
        "celeryev",
        (str,),
        "Name of the stream events travel on (Redis: a capped stream; RabbitMQ: a stream "
        "behind the events exchange).",
    ),
    _s(
        "event_serializer",
        "json",
        (str,),
        "How events are written: `json`, or `msgpack` (about five times cheaper for a busy "
        "worker; needs `celeriac[msgpack]`). Receivers read both.",
    ),
    _s("event_queue_ttl", 5.0, _NUM, "Seconds an event message lives.", not_in_effect=_EVENTS),
    _s(
        "event_queue_expires",
        60.0,
        _NUM,
        "Seconds an unused event queue lives.",
        not_in_effect=_EVENTS,
    ),
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in BEAT),
    _s(
        "timezone",
        None,
        (str,),
        "IANA time zone that crontab (and relative interval) schedules read their fields "
        "in, and `app.now()` answers in; unset, UTC (with `enable_utc` off, the host's "
        "zone). Other dates stay UTC (a naive eta or expires is read as UTC, as in Celery).",
    ),
    _s(
        "enable_utc",
        True,
        (bool,),
        "Off, with `timezone` unset: the app's time zone (`app.timezone`, `app.now()`, "
        "crontab fields) is the host's local one instead of UTC. Messages carry UTC "
        "either way; a naive eta or expires is read as UTC, as in Celery.",
    ),
    _s("imports", (), _SEQ, "Modules imported when the worker starts."),
    _s("include", (), _SEQ, "Like `imports`, imported after them."),
    _s(
        "wire_format",
        "celeriac",
        (str,),
        "How messages and result records are framed on the broker and the result store: "
        "`celeriac` (the `CLR1` envelope), or `celery` (Celery's task protocol 2 in AMQP "
        "headers, queues declared as Celery declares them, and Celery's result records), "
        "so that Celery and celeriac workers and producers share RabbitMQ queues and a "
        "Redis result store. Another value raises `ImproperlyConfigured` naming the "
        "choices when the broker or store is built.",
        ours=True,
    ),
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in OUTBOX),
    *(_s(name, default, types, doc, **kw) for name, default, types, doc, kw in SECURITY),
]

SETTINGS: dict[str, Setting] = {s.name: s for s in _DECLARED}
