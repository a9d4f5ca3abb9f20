"""The tests' TCP proxy leaves no socket open when it closes, whatever its links were doing
(an unclosed socket is a warning, and warnings fail the suite)."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

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


def test_a_link_still_connecting_when_the_proxy_closes_is_closed() -> None:
    with a_target_that_never_answers() as port:
        proxy = Proxy("127.0.0.1", port)
        proxy.restore()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
            give_up = time.monotonic() + 5
            while not proxy._open:  # the proxy accepted it and is connecting to the target
                assert time.monotonic() < give_up, "the proxy never took the connection"
                time.sleep(0.01)
            # As if a cut had raced the accept: the link is no longer listed as open.
            asyncio.run_coroutine_threadsafe(_forget(proxy), proxy._loop).result(5)
            with warnings.catch_warnings():
                warnings.simplefilter("error", ResourceWarning)
                proxy.close()
                gc.collect()  # an unclosed socket would warn here


async def _forget(proxy: Proxy) -> None:
    proxy._open.clear()
