"""The tests' TCP proxy leaves no socket open when it closes, whatever its links were doing
(an unclosed socket is a warning, and warnings fail the suite)."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from tests.integration.proxy import Proxy


@contextmanager
def a_target_that_never_answers() -> Iterator[int]:
    """A port whose connects hang: a listener that never accepts, its backlog full (Linux
    then drops further handshakes, so a connect waits)."""
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(2):  # fill the accept queue (a backlog of 0 holds one)
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        yield port


class WatchedProxy(Proxy):
    """Says when a link has been taken and its connect to the target is under way."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.connecting = threading.Event()

    async def _serve(self, reader: Any, writer: Any) -> None:
        # Runs once ``_serve`` has listed the link and is waiting on its connect.
        asyncio.get_running_loop().call_soon(self.connecting.set)
        await super()._serve(reader, writer)


def test_a_link_still_connecting_when_the_proxy_closes_is_closed() -> None:
    with a_target_that_never_answers() as port:
        proxy = WatchedProxy("127.0.0.1", port)
        proxy.restore()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
            assert proxy.connecting.wait(5), "the proxy never took the connection"
            assert proxy._open, "the link should be listed while it connects"
            # As if a cut had raced the accept: the link is no longer listed as open.
            asyncio.run_coroutine_threadsafe(_forget(proxy), proxy._loop).result(5)
            with warnings.catch_warnings():
                warnings.simplefilter("error", ResourceWarning)
                proxy.close()
                gc.collect()  # an unclosed socket would warn here


async def _forget(proxy: Proxy) -> None:
    proxy._open.clear()
