"""``pickle.dumps(app)``: an app pickles as its class and what it was made with, as
Celery's (``app.Pickler``, ``app.__reduce_keys__()``).

App core. The copy is rebuilt, not made current, and registers its tasks as any new app
does (importing ``include``/``imports``, or the modules that define them). Settings left
at their defaults are not carried; an object that does not pickle (a broker engine given
to ``Celery(broker=...)``) fails the dump, as any unpicklable value does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from celeriac.config.settings import SETTINGS

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac


class AppPickler:
    """Celery's ``app.Pickler``: builds an app back from its class and the keys
    ``app.__reduce_keys__()`` gave."""

    def __call__(self, cls: type[Celeriac], keys: dict[str, Any]) -> Celeriac:
        kwargs = dict(keys)
        changes = kwargs.pop("changes", {})
        return cls(set_as_current=False, **kwargs, **changes)


def unpickle_app(cls: type[Celeriac], keys: dict[str, Any]) -> Celeriac:
    return cls.Pickler()(cls, keys)


class PicklingMembers:
    """How an app pickles (mixed into ``Celeriac``)."""

    Pickler = AppPickler

    def __reduce_keys__(self) -> dict[str, Any]:
        """What the app was made with: its name, the settings given a value of their own,
        its part classes, fix-ups, task base class and choices."""
        app = cast("Celeriac", self)
        changes = {
            name: value
            for name, value in app.conf.changes().items()
            if name not in SETTINGS or value != SETTINGS[name].default
        }
        return {
            "main": app.main,
            "changes": changes,
            "loader": app.loader_cls,
            "amqp": app.amqp_cls,
            "events": app.events_cls,
            "log": app.log_cls,
            "control": app.control_cls,
            "fixups": list(app.fixups),
            "task_cls": app.task_cls,
            "namespace": app.namespace,
            "autofinalize": app.autofinalize,
            "strict_typing": app.strict_typing,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        return unpickle_app, (type(self), self.__reduce_keys__())


__all__ = ["AppPickler", "PicklingMembers", "unpickle_app"]
