"""One AMQP connection and its channels, kept on the broker's I/O loop and made again after a
loss; and the one boundary where driver errors become celeriac errors.

Channels are named by purpose (``publish`` with publisher confirms, ``consume``, ``admin``);
a channel the server closed (an error on it) is opened again on next use, and the object
identity of the ``consume`` channel is what fences deliveries from a channel that died.
With several nodes (``nodes``), each connection goes to the first node that answers, in
the failover strategy's order, and the node it is on is logged (password hidden).
Engine helper: imports aiormq, ``params``, ``nodes``, ``celeriac.config.tls`` and
``celeriac.exceptions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import aiormq.abc
import aiormq.exceptions

from celeriac.brokers.amqp.nodes import Nodes
from celeriac.brokers.amqp.params import Target, server_version
from celeriac.config import tls
from celeriac.exceptions import BrokerAccessRefused, BrokerConnectionError, BrokerError

logger = logging.getLogger("celeriac.brokers.amqp")
Channel = aiormq.abc.AbstractChannel
# A lost or unreachable server; a channel used after its connection died.
DOWN: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)
# What RabbitMQ says when it answers but will not let this client in (see ``refused``).
_REFUSALS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.ConnectionClosed,
    aiormq.exceptions.InvalidFrameError,
)
_CONNECT_FAILURES = (*DOWN, *_REFUSALS)


WRITTEN_WAIT = 5.0  # seconds a close waits for queued frames to be written


class _DriverNoise(logging.Filter):
    """Turns two of aiormq's lines into DEBUG ones: the ERROR it logs for each failed
    connect before raising it, and the WARNING with a traceback for a dropped socket.
    ``Link`` raises one ``BrokerConnectionError`` naming the URL and the fix, and the
    worker reports an outage once; the driver's lines would repeat it on every attempt."""

    QUIET = ("error when creating transport", "Cancelling cause reader exited abnormally")

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.QUIET):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return _DRIVER_LOG.isEnabledFor(logging.DEBUG)


_DRIVER_LOG = logging.getLogger("aiormq.connection")
_DRIVER_LOG.addFilter(_DriverNoise())


def _reason(exc: BaseException) -> str:
    """A driver error for the middle of a sentence: its type and its text, not its repr."""
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer within the connect timeout"
    text = "; ".join(str(a) for a in exc.args if isinstance(a, str)) or str(exc)
    return f"{type(exc).__name__}: {text.rstrip('. ')}" if text else type(exc).__name__


def refused(target: Target, exc: BaseException) -> BrokerAccessRefused | None:
    """The celeriac error for a connect RabbitMQ refused (bad login, vhost missing or
    not permitted, a TLS certificate either side would not accept), naming the fix; None
    for any other failure."""
    handshake = tls.refused_handshake(
        exc, what="RabbitMQ broker", url=target.safe_url, setting="broker_use_ssl", prefix=""
    )
    if handshake is not None:  # a certificate problem: retrying cannot fix it
        return BrokerAccessRefused(f"{handshake}.")
    text = str(exc)
    vhost, user = shlex.quote(target.vhost), shlex.quote(target.user)
    grant = f"rabbitmqctl set_permissions -p {vhost} {user} '.*' '.*' '.*'"
    if isinstance(exc, aiormq.exceptions.AuthenticationError):  # no such SASL mechanism
        offered = exc.args[0] if exc.args else "?"
        return BrokerAccessRefused(
            f"RabbitMQ at {target.safe_url} does not offer the login mechanism celeriac "
            f"asked for (broker_login_method); it offers {offered}. Set broker_login_method "
            f"to one of them, or enable the mechanism in RabbitMQ (auth_mechanisms)."
        )
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError) and "vhost" not in text:
        return BrokerAccessRefused(
            f"RabbitMQ at {target.safe_url} refused the login of user {target.user!r} "
            f"(ACCESS_REFUSED): the user does not exist or the password is wrong. Fix the "
            f"user and password in the broker URL, or create the user (rabbitmqctl add_user "
            f"{user} PASSWORD; {grant})."
        )
    # aiormq reports RabbitMQ closing the connection in answer to Connection.Open (the
    # vhost step) as an InvalidFrameError that has lost the server's reply text.
    if not isinstance(exc, _REFUSALS) or ("vhost" not in text and "Connection.Close" not in text):
        return None
    return BrokerAccessRefused(
        f"RabbitMQ at {target.safe_url} refused to open the vhost {target.vhost!r} for user "
        f"{target.user!r}: the vhost does not exist, or the user has no permissions on it. "
        f"Create it and let the user in (rabbitmqctl add_vhost {vhost}; {grant}), or fix "
        f"the vhost in the URL (the path after the port; amqp://host// is the default "
        f"vhost '/')."
    )


def _hint(target: Target, exc: BaseException) -> str:
    if target.ssl_context is None or target.client_certificate:
        return ""
    return tls.client_certificate_hint(exc, setting="broker_use_ssl", prefix="")


def _none_answered(failures: list[tuple[Target, BaseException]]) -> BrokerConnectionError:
    each = "; ".join(f"{target.safe_url}: {_reason(exc)}" for target, exc in failures)
    return BrokerConnectionError(
        f"cannot reach any of the {len(failures)} RabbitMQ nodes of the broker URL ({each}). "
        f"Check that the nodes are running and the URLs (hosts, ports, user, password, "
        f"vhost) are right.{_hint(*failures[-1])}"
    )


class Link:
    """The connection of one broker; every method runs on the broker's I/O loop."""

    def __init__(self, nodes: Nodes, name: str) -> None:
        self.nodes = nodes
        self.target = nodes.targets[0]  # the node connected to (or last tried)
        self.name = name
        self._order = nodes.order()
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channels: dict[str, Channel] = {}
        self._lock: asyncio.Lock | None = None
        self._opening: asyncio.Lock | None = None  # (asyncio locks: made on the I/O loop)
        self._closing: set[asyncio.Task[None]] = set()  # channels replaced, closed later
        self._node: str | None = None  # the node of the last connection made
        self.generation = 0  # raised on every new connection

    def down(self, exc: BaseException) -> BrokerConnectionError:
        return BrokerConnectionError(
            f"cannot reach the RabbitMQ broker at {self.target.safe_url}: "
            f"{_reason(exc)}. Check that RabbitMQ is running and the URL (host, port, user, "
            f"password, vhost) is right.{_hint(self.target, exc)}"
        )

    @property
    def alive(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def connection(self) -> aiormq.abc.AbstractConnection:
        if self.alive:
            assert self._connection is not None
            return self._connection
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.alive:
                assert self._connection is not None
                return self._connection
            await self._drop()
            connection = await self._connect()
            self._connection = connection
            self.generation += 1
            return connection

    async def _connect(self) -> aiormq.abc.AbstractConnection:
        """A connection to the first node that answers; when none does, the refusal of
        one that refused (retrying cannot fix it), else the error naming each node."""
        failures: list[tuple[Target, BaseException]] = []
        for target in self._order.attempt():
            self.target = target
            try:
                connection = await asyncio.wait_for(
                    aiormq.connect(
                        target.url,
                        **target.connect_options(),
                        client_properties={"connection_name": self.name},
                    ),
                    target.connect_timeout,
                )
            except _CONNECT_FAILURES as exc:
                logger.debug("%s: RabbitMQ node %s: %s", self.name, target.safe_url, exc)
                failures.append((target, exc))
                continue
            self._connected_to(target, failures)
            return connection
        for target, error in failures:
            refusal = refused(target, error)
            if refusal is not None:
                raise refusal from error
        last = failures[-1][1]
        raise (self.down(last) if len(failures) == 1 else _none_answered(failures)) from last

    def _connected_to(self, target: Target, failures: list[tuple[Target, BaseException]]) -> None:
        """Log the node a broker with several nodes is on now, and why, if it moved."""
        previous, self._node = self._node, target.safe_url
        if not self.nodes.several:
            return
        if previous is None or previous == target.safe_url:
            logger.info("%s: connected to RabbitMQ node %s", self.name, target.safe_url)
            return
        passed = "; ".join(f"{t.safe_url}: {_reason(exc)}" for t, exc in failures)
        logger.warning(
            "%s: connected to RabbitMQ node %s, the connection to %s having been lost%s",
            self.name, target.safe_url, previous, f" (passed over {passed})" if passed else "",
        )  # fmt: skip

    async def server_version(self) -> tuple[int, ...] | None:
        """The RabbitMQ version the connection's server announced (None: it did not)."""
        connection = await self.connection()
        return server_version(getattr(connection, "server_properties", None) or {})

    async def channel(self, purpose: str, *, confirms: bool = False) -> Channel:
        """The channel for ``purpose``, opened (again) if it is not open."""
        channel = self._channels.get(purpose)
        if channel is not None and not channel.is_closed and self.alive:
            return channel
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:  # callers at once share the one channel opened
            channel = self._channels.get(purpose)
            if channel is not None and not channel.is_closed and self.alive:
                return channel
            connection = await self.connection()
            with self.guard():
                channel = await connection.channel(publisher_confirms=confirms)
            self._channels[purpose] = channel
            return channel

    async def renewed(self, purpose: str, stale: Channel, grace: float) -> Channel:
        """A new publish channel for ``purpose`` in place of ``stale``, which is closed
        after ``grace`` seconds, once the confirms it still owes have come or timed out."""
        if self._channels.get(purpose) is stale:
            del self._channels[purpose]
            task = asyncio.create_task(self._close_later(stale, grace))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return await self.channel(purpose, confirms=True)

    @staticmethod
    async def _close_later(channel: Channel, grace: float) -> None:
        await asyncio.sleep(grace)  # not a synchronisation: the longest a confirm may take
        with contextlib.suppress(Exception):
            await channel.close()

    def current(self, purpose: str) -> Channel | None:
        return self._channels.get(purpose)

    @contextlib.asynccontextmanager
    async def scratch(self) -> AsyncIterator[Channel]:
        """A channel of its own, closed afterwards (unacked messages on it go back)."""
        connection = await self.connection()
        with self.guard():
            channel = await connection.channel(publisher_confirms=False)
        try:
            yield channel
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    @contextlib.contextmanager
    def guard(self) -> Any:
        """Driver errors become ``BrokerConnectionError`` (down) or ``BrokerError``."""
        try:
            yield
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            raise BrokerError(
                f"RabbitMQ refused an operation as inconsistent with what exists on "
                f"{self.target.safe_url} ({exc!r}). Usually a queue was declared before with "
                f"other arguments (another queue_type, delivery_limit or x-max-priority): "
                f"delete it or use the same settings."
            ) from exc
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            if "down or inaccessible" not in str(exc):
                raise BrokerError(f"RabbitMQ at {self.target.safe_url} refused: {exc!r}") from exc
            # (not ``from exc``: a missing queue is not missing, its node is down)
            raise BrokerConnectionError(
                f"RabbitMQ at {self.target.safe_url}: {_reason(exc)}. A classic queue lives on "
                f"one node and is out of reach while that node is down; quorum queues "
                f"(queue_type 'quorum', the default when the broker URL lists several nodes) "
                f"stay available while most of the cluster's nodes are up"
            ) from None
        except aiormq.exceptions.ChannelClosed as exc:
            raise BrokerError(f"RabbitMQ at {self.target.safe_url} refused: {exc!r}") from exc
        except DOWN as exc:
            raise self.down(exc) from exc

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._channels.clear()
        for task in list(self._closing):  # their channels end with the connection
            task.cancel()
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

    async def close(self) -> None:
        connection = self._connection
        if connection is not None and not connection.is_closed:
            await _written(connection)
        await self._drop()


async def _written(connection: aiormq.abc.AbstractConnection) -> None:
    """Wait (bounded) until every frame queued on ``connection`` went to its socket.

    Acks are queued without waiting for the write (``Consumption.ack_many``), and
    aiormq's close stops its writer, dropping what is still queued: a warm stop must not
    leave an acked message to be delivered again. The writer marks each frame done as it
    writes it."""
    queue = getattr(connection, "write_queue", None)
    if queue is None:
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(queue.join(), WRITTEN_WAIT)
