"""Which beat leads: a lease held in the broker (``Broker.hold_lease``), with its fencing token.

Runtime layer (beat); imports the broker seam only. Every scheduler tries to hold the
lease ``LEASE``; the one that holds it leads and sends, the others stand by and try again
each tick. The leader counts its lease as valid only until ``ttl * SAFE`` after the moment
it asked for it (its own monotonic clock), so a leader paused past its lease stops acting
before it sends, and asks the broker again. Every change of leader is logged with who and
why.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from celeriac.brokers.base import Broker
from celeriac.exceptions import BrokerError

logger = logging.getLogger("celeriac.beat")
LEASE = "celeriac.beat.leader"
SAFE = 0.8  # share of the ttl the leader acts on after asking (renewal is due by then)


def new_holder() -> str:
    """This scheduler's name in the lease: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leadership:
    """This scheduler's view of the lease."""

    def __init__(
        self,
        broker: Broker,
        ttl: float,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.ttl = ttl
        self.holder = holder or new_holder()
        self.monotonic = monotonic
        self.token: int | None = None
        self._valid_until = -1.0
        self._standby_logged = False

    @property
    def leading(self) -> bool:
        return self.token is not None

    def valid(self) -> bool:
        """True while the lease this scheduler last confirmed certainly still runs."""
        return self.token is not None and self.monotonic() < self._valid_until

    def renew(self) -> bool:
        """Hold or renew the lease; True when this scheduler leads now. A new term (a new
        token) means the caller must read the state again: others may have sent meanwhile."""
        asked = self.monotonic()
        try:
            token = self.broker.hold_lease(LEASE, self.holder, self.ttl)
        except BrokerError as exc:  # the broker is down: whoever cannot renew must not lead
            self._lose(f"the broker could not be reached to renew the lease ({exc})")
            return False
        if token is None:
            if self.token is not None:
                self._lose("another beat holds the lease (this one missed its renewal)")
            elif not self._standby_logged:
                logger.info("beat %s: standing by; another beat leads", self.holder)
                self._standby_logged = True
            return False
        if token != self.token:
            was = self.token
            self.token = token
            why = (
                "the lease was free (no beat led, or the leader stopped or stopped renewing)"
                if was is None
                else f"the lease had lapsed and was taken again (token {was} -> {token})"
            )
            logger.warning("beat %s: leading now, fencing token %d: %s", self.holder, token, why)
            self._standby_logged = False
        self._valid_until = asked + self.ttl * SAFE
        return True

    def confirm(self) -> bool:
        """Ask the broker again, right before sending, whether this scheduler still holds
        the lease under the same token; a leader that paused since ``renew`` learns here
        that it lost it."""
        token = self.token
        return token is not None and self.renew() and self.token == token

    def _lose(self, why: str) -> None:
        if self.token is not None:
            logger.warning(
                "beat %s: no longer leading (token %d): %s", self.holder, self.token, why
            )
        self.token = None
        self._valid_until = -1.0

    def step_down(self) -> None:
        """Give the lease up (a clean stop), so a standby takes over at its next try."""
        if self.token is None:
            return
        token, self.token = self.token, None
        try:
            self.broker.drop_lease(LEASE, self.holder)
        except BrokerError as exc:  # stopping anyway: the lease lapses by itself
            logger.warning("beat %s: could not give up the lease: %s", self.holder, exc)
            return
        logger.warning("beat %s: gave up the lease (token %d): shutting down", self.holder, token)
