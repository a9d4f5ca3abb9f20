"""A TCP proxy a test can cut and restore, to give one process an outage of a shared server
(RabbitMQ) without stopping the server under every other test."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Coroutine
from typing import Any

from tests.integration.conftest import free_port


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``host:target_port`` on its own loop thread.
    ``cut()`` closes the listener and every connection through it; ``restore()`` listens
    again on the same port."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host, self.target_port = host, target_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._links = itertools.count()

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    def restore(self) -> None:
        self._call(self._listen())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self._call(self._cut())
        self._call(self._end_links())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()  # a lost network, not a polite close
        self._open.clear()

    async def _end_links(self) -> None:
        """End what still runs on the proxy's loop: a link whose connection to the target
        is still being made (the target down or stalled) closes its socket on the way out,
        instead of leaving it to the garbage collector once the loop is gone."""
        running = asyncio.all_tasks() - {asyncio.current_task()}
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=5)
        # A link accepted after the last cut joined ``_open`` then: end it too.
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        await asyncio.sleep(0)  # (an abort closes its socket in a callback: let it run)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)  # from the accept on: a cut meanwhile aborts it too
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except BaseException as exc:  # refused, or cancelled: the proxy is closing
            self._open.discard(writer)
            writer.transport.abort()
            if isinstance(exc, OSError):
                return
            raise
        if writer.transport.is_closing():  # cut while the upstream connection was made
            up_writer.transport.abort()
            return
        self._open.add(up_writer)
        link = next(self._links)
        await asyncio.gather(
            self._pipe(reader, up_writer, to_server=True, link=link),
            self._pipe(up_reader, writer, to_server=False, link=link),
        )
        self._open -= {writer, up_writer}

    async def _before_forwarding(self) -> None:
        """Called before each chunk is passed on: a subclass may hold it back."""
        return None

    def _seen(self, data: bytes, to_server: bool, link: int) -> None:
        """Called with each chunk as it is read, before it is passed on (``link`` numbers
        the client connection it belongs to): a subclass may record the traffic."""
        return None

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        to_server: bool,
        link: int,
    ) -> None:
        try:
            while data := await reader.read(65536):
                self._seen(data, to_server, link)
                await self._before_forwarding()
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass  # the other side was cut
        finally:
            writer.transport.abort()
