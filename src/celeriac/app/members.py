"""Members of Celery's app that projects reach for, on a mixin of ``Celeriac``.

Each works as Celery's: ``app.configured``, ``app.current_task``, ``app.timezone``,
``app.now()`` and ``app.uses_utc_timezone()``, ``app.either(key, value)``,
``app.select_queues(...)``, ``app.set_default()``, ``app.ResultSet(...)``, ``app.clock``,
``app.add_defaults(...)``, ``app.annotations``, ``app.oid`` and ``app.thread_oid``,
``app.setup_security(...)`` (message signing, ``app.signer``), the
``on_init``/``on_configure`` subclass hooks, the platform flags, and how a task is bound
to the app (``strict_typing``, ``Task.on_bound``, ``autofinalize``). Kept apart from
``app.base`` so the app's core stays small.
"""

from __future__ import annotations

import functools
import inspect
import os
import platform
import sys
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar, cast

from celeriac._context import get_current_request, set_current_app
from celeriac._localtime import local_zone
from celeriac.app import signing
from celeriac.app.annotations import prepare_annotations
from celeriac.result import ResultSet as _ResultSet
from celeriac.task import Task

# Task's own from_config pairs: resolved on each use by Task.resolve, not set at binding.
_RESOLVED_ON_USE = frozenset(Task.from_config)

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac
    from celeriac.app.registry import TaskRegistry
    from celeriac.config.conf import Settings
    from celeriac.events import LamportClock
    from celeriac.security.signing import Signer


class AppMembers:
    """Celery's smaller app members (mixed into ``Celeriac``)."""

    conf: Settings
    _configured: bool
    _tasks: TaskRegistry
    finalized: bool
    autofinalize: bool
    strict_typing: bool

    IS_WINDOWS: ClassVar[bool] = sys.platform.startswith("win")
    IS_macOS: ClassVar[bool] = sys.platform == "darwin"
    SYSTEM: ClassVar[str] = platform.system()

    def on_init(self) -> None:
        """Called at the end of ``__init__``: override it in an app subclass."""

    def on_configure(self) -> None:
        """Called once, when the app first reads its configuration (just before the
        ``on_after_configure`` signal): override it in an app subclass."""

    @property
    def configured(self) -> bool:
        """Whether the configuration has been read (``on_after_configure`` was sent)."""
        return self._configured

    @property
    def current_task(self) -> Any:
        """The task running in this thread or coroutine (eager runs too), or None."""
        request = get_current_request()
        return None if request is None or request.task is None else self._tasks.get(request.task)

    @property
    def timezone(self) -> tzinfo:
        """The ``timezone`` setting as a ``tzinfo``; unset, UTC, or with ``enable_utc``
        off the host's local zone, as in Celery."""
        name = self.conf.timezone
        if name:
            from zoneinfo import ZoneInfo  # (with its tz database: only when a zone is set)

            return ZoneInfo(name)
        return timezone.utc if self.conf.enable_utc else local_zone()

    def now(self) -> datetime:
        """The current time, aware, in the app's ``timezone`` (UTC unless ``timezone`` is
        set or ``enable_utc`` is off), as Celery's. Messages carry UTC whatever it is."""
        return datetime.now(timezone.utc).astimezone(self.timezone)

    def uses_utc_timezone(self) -> bool:
        """Whether the app's time zone is UTC."""
        zone = self.timezone
        return zone is timezone.utc or getattr(zone, "key", None) in ("UTC", "Etc/UTC")

    def type_checker(self, fun: Callable[..., Any], bound: bool = False) -> staticmethod[..., None]:
        """Celery's: a function taking what ``fun`` takes (less its first argument when
        ``bound``) and doing nothing else; a call ``fun`` would refuse raises TypeError."""
        signature = inspect.signature(fun)
        if bound:
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])

        def check(*args: Any, **kwargs: Any) -> None:
            signature.bind(*args, **kwargs)

        check.__name__ = getattr(fun, "__name__", "check")
        return staticmethod(check)

    def either(self, default_key: str, *defaults: Any) -> Any:
        """The first of ``defaults`` that is not None, else the setting ``default_key``."""
        for value in defaults:
            if value is not None:
                return value
        return self.conf[default_key]

    def select_queues(self, queues: Iterable[str] | None = None) -> None:
        """Consume only these of the declared queues (``app.amqp.queues.select``); None
        leaves the selection as it is, as in Celery."""
        if queues:
            cast("Celeriac", self).amqp.queues.select(queues)

    def set_default(self) -> None:
        """Make this the app used where none is given (the current app, process-wide)."""
        set_current_app(self)

    @property
    def clock(self) -> LamportClock:
        """This process's Lamport clock, which stamps the events the app sends and orders
        those it receives (``app.events.clock``)."""
        return cast("Celeriac", self).events.clock

    def _check_finalized(self) -> None:
        """With ``Celery(autofinalize=False)``: refuse to use tasks before ``finalize()``."""
        if not self.finalized and not self.autofinalize:
            raise RuntimeError(
                "Contract breach: app not finalized: this app was made with "
                "autofinalize=False, so call app.finalize() before using its tasks"
            )

    def _bind_task(self, task: Any) -> None:
        """A task just registered, bound as Celery binds one: ``typing`` from
        ``strict_typing`` and the attributes of a base class's own ``from_config`` pairs
        from their settings, where the task leaves them unset (the built-in pairs are read
        on each use, so later setting changes count), ``task_annotations``
        (``Task.annotate()``), then ``on_bound(app)``."""
        self._bind_task_class(type(task))

    def _bind_task_class(self, cls: Any) -> None:
        """``_bind_task`` for a class (``Task.bind(app)``, Celery's classmethod)."""
        if cls.typing is None:
            cls.typing = self.strict_typing
        for attribute, setting in cls.from_config:
            pair = (attribute, setting)
            if pair not in _RESOLVED_ON_USE and getattr(cls, attribute, None) is None:
                setattr(cls, attribute, self.conf[setting])
        self._annotate(cls)
        cls.on_bound(self)

    def _annotate(self, cls: Any) -> None:
        """Apply ``task_annotations`` to a task class once (``Task.annotate()``): when it is
        bound, or at ``finalize`` for a task bound before the setting was."""
        if self.conf.task_annotations is None or cls in self._annotated:
            return
        self._annotated.add(cls)
        cls.annotate()

    @functools.cached_property
    def _annotated(self) -> weakref.WeakSet[type]:
        return weakref.WeakSet()

    @functools.cached_property
    def oid(self) -> str:
        """A unique id of this app in this process (a UUID, the same on every read)."""
        return _oid(self)

    @property
    def thread_oid(self) -> str:
        """A unique id of this app in this thread (a UUID, the same on every read there)."""
        local = self._oids
        if not hasattr(local, "oid"):
            local.oid = _oid(self, threading.get_ident())
        return str(local.oid)

    @functools.cached_property
    def _oids(self) -> threading.local:
        return threading.local()

    @property
    def annotations(self) -> list[Any]:
        """``task_annotations`` prepared: objects whose ``annotate(task)`` gives a task's
        attributes and ``annotate_any()`` every task's (a mapping becomes one)."""
        return prepare_annotations(self.conf.task_annotations)

    def add_defaults(self, fun: Any) -> None:
        """Defaults under every setting's value: a mapping (or object), or a callable
        returning one, read when the configuration is first used. An extension declares
        its own settings this way (``app.conf.add_defaults``)."""
        self.conf.add_defaults(fun)

    def setup_security(
        self,
        allowed_serializers: Iterable[str] | None = None,
        key: str | None = None,
        key_password: str | bytes | None = None,
        cert: str | None = None,
        store: str | None = None,
        digest: str | None = None,
        serializer: str = "json",
    ) -> None:
        """Sign task messages with an X.509 key (Celery's ``auth`` serializer): calls sent
        with ``task_serializer='auth'`` are signed with ``key``, and this app's worker runs
        only messages whose signature a certificate of ``store`` verifies. Arguments left
        out come from the ``security_*`` settings; ``serializer`` writes the signed body,
        and ``allowed_serializers`` names other serializers a signed body may be in."""
        signing.setup_security(
            cast("Celeriac", self), allowed_serializers, key, key_password, cert, store,
            digest, serializer,
        )  # fmt: skip

    @property
    def signer(self) -> Signer | None:
        """What signs this app's task messages and verifies received ones: set up by
        ``setup_security()`` or the ``security_keys`` setting; None when not signing."""
        return signing.signer_of(cast("Celeriac", self))

    def ResultSet(self, results: Iterable[Any], **kwargs: Any) -> _ResultSet:
        """``celeriac.ResultSet`` bound to this app."""
        return _ResultSet(results, app=cast("Celeriac", self), **kwargs)


def _oid(app: object, thread: int | None = None) -> str:
    """A name-based UUID of this host, process, (thread) and app object."""
    parts = [uuid.getnode(), os.getpid(), *([] if thread is None else [thread]), id(app)]
    return str(uuid.uuid3(uuid.NAMESPACE_OID, "-".join(f"{part:x}" for part in parts)))
