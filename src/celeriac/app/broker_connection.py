"""``app.connection_for_write()`` / ``connection_for_read()`` / ``connection()``: a handle
on a broker, for the places Celery code passes a kombu ``Connection`` around.

App core. A ``Connection`` names a broker: the app's own (no URL, or the app's
``broker_url``), shared with the app and never closed by the handle, or another one built
from a URL with the app's transport settings, which the handle owns and closes on
``release()`` or at the end of its ``with`` block. ``task.apply_async(connection=conn)``
sends through it. It is not a kombu connection: it has no channels, and raw publishing
goes through ``apply_async``/``send_task`` (see docs/differences-from-celery.md).
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, cast

from celeriac.app.connections import create_broker, wire_formats
from celeriac.app.engine_options import amqp_settings, broker_options, queue_max_priority
from celeriac.app.urls import read_url, write_url
from celeriac.brokers.base import Broker

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac
    from celeriac.app.producer import Producer

_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@;]*(@)")


def broker_for_url(conf: Any, url: str | None) -> Broker:
    """A broker for ``url`` (None: the embedded default) built with the app's broker
    settings (transport options and queue type, TLS, heartbeat, timeouts, delivery
    limit, wire format, priorities), as ``app.broker`` is."""
    return create_broker(
        url,
        broker_options(conf, url),
        conf.task_delivery_limit,
        conf.broker_use_ssl,
        heartbeat=conf.broker_heartbeat,
        connect_timeout=conf.broker_connection_timeout,
        wire_format=wire_formats(conf.wire_format)[0],
        max_priority=queue_max_priority(conf),
        amqp=amqp_settings(conf),
    )


class Connection:
    """A handle on a broker: ``with app.connection_for_write() as conn: ...``."""

    def __init__(self, app: Celeriac, url: str | None = None) -> None:
        if url is not None and not isinstance(url, str):
            raise TypeError(f"a broker URL is a string, not {type(url).__name__}")
        self.app = app
        self.url = url
        # Another broker than the app's: this handle builds it, and closes it.
        self.owned = url is not None and url != write_url(app.conf)
        self._broker: Broker | None = None

    @property
    def broker(self) -> Broker:
        """The broker this handle sends to (built on first use)."""
        if not self.owned:
            return self.app.broker
        if self._broker is None:
            assert self.url is not None
            self._broker = broker_for_url(self.app.conf, self.url)
        return self._broker

    def as_uri(self, include_password: bool = False) -> str:
        """The broker's URL (its password masked unless ``include_password``)."""
        url = self.url if self.owned else write_url(self.app.conf)
        url = str(url if url is not None else getattr(self.broker, "url", "memory://"))
        return url if include_password else _PASSWORD.sub(r"\1**\2", url)

    def ensure_connection(self) -> Connection:
        """Reach the broker now (one round trip); raises ``BrokerConnectionError`` if it
        cannot be reached, or ``BrokerAccessRefused`` if it refuses the login."""
        self.broker.queue_length(str(self.app.conf.task_default_queue))
        return self

    connect = ensure_connection

    def release(self) -> None:
        """Close the broker if this handle built it (the app's own stays open)."""
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    close = release

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Connection {self.as_uri()}{'' if self.owned else ' (the app broker)'}>"


class ConnectionMembers:
    """The app's connection and producer helpers, on a mixin of ``Celeriac``:
    ``connection_for_write()``/``connection_for_read()`` and Celery's older names, each
    handing out a ``Connection`` handle or the app's producer."""

    def connection_for_write(self, url: str | None = None) -> Connection:
        """A handle on the broker (``url``, else the app's) to send through:
        ``with app.connection_for_write() as conn: add.apply_async((2, 2), connection=conn)``."""
        return Connection(cast("Celeriac", self), url)

    def connection_for_read(self, url: str | None = None) -> Connection:
        """A handle on the broker (``url``, else the app's ``broker_read_url``, else its
        broker) to consume from."""
        app = cast("Celeriac", self)
        return Connection(app, url or read_url(app.conf))

    def connection(self, hostname: str | None = None) -> Connection:
        """``connection_for_write``; ``hostname`` is a broker URL, as in Celery."""
        return Connection(cast("Celeriac", self), hostname)

    broker_connection = connection

    def connection_or_acquire(
        self, connection: Connection | None = None, pool: bool = True
    ) -> contextlib.AbstractContextManager[Connection]:
        """``with app.connection_or_acquire(conn) as c``: the handle given (left open),
        else a handle on the app's broker. ``pool`` is Celery's: there is no pool to
        take from, and the app's broker stays open either way."""
        if connection is not None:
            return contextlib.nullcontext(connection)
        return Connection(cast("Celeriac", self))

    default_connection = connection_or_acquire

    def producer_or_acquire(
        self, producer: Producer | None = None
    ) -> contextlib.AbstractContextManager[Producer]:
        """``with app.producer_or_acquire() as p: task.apply_async(producer=p)``: the
        producer given, else the app's own (it holds no connection of its own to release)."""
        app = cast("Celeriac", self)
        return contextlib.nullcontext(producer if producer is not None else app.producer)

    default_producer = producer_or_acquire


__all__ = ["Connection", "ConnectionMembers", "broker_for_url"]
