"""A TCP proxy the harness controls: cut connections mid-stream, stall (packets dropped
until the link heals, as TCP retransmission sees it), or delay every chunk."""

from __future__ import annotations

import asyncio

from tests.integration.proxy import Proxy


class FaultyProxy(Proxy):
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``, listening from the start;
    ``cut``/``restore`` as the test proxy, plus ``stall``/``resume`` and ``delay``."""

    def __init__(self, target_port: int) -> None:
        super().__init__("127.0.0.1", target_port)
        self.delay = 0.0  # seconds added before each forwarded chunk
        self._flowing = asyncio.Event()  # cleared: a stall; bytes wait, nothing moves
        self._flowing.set()
        self.restore()

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        self.resume()
        super().close()

    async def _before_forwarding(self) -> None:
        await self._flowing.wait()  # stalled: hold the bytes until the link heals
        if self.delay:
            await asyncio.sleep(self.delay)
