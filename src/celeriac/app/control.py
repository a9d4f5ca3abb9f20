"""``app.control``: commands to the workers, sent through the app's broker (``revoke``).

App core: reads the app's settings and talks only to the ``Broker`` seam. A revoke is
cluster-wide: it is stored on the broker for ``worker_revoke_expires`` seconds, so a worker
that starts later still skips the task, and announced to the workers running now.
"""

from __future__ import annotations

import re
import signal as os_signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

_SIGNAL_NAME = re.compile(r"SIG[A-Z0-9]+")


def signal_name(signal: str | int) -> str:
    """Celery's forms, ``"SIGKILL"``, ``"KILL"``, ``9`` or ``signal.SIGKILL``, as ``"SIGKILL"``.

    A name is not checked against this machine's signals: the worker may run elsewhere.
    """
    if isinstance(signal, int):  # signal.Signals members are ints too
        try:
            return os_signal.Signals(signal).name
        except ValueError:
            raise ValueError(f"{signal!r} is not a signal number on this machine") from None
    name = str(signal).strip().upper()
    if not name.startswith("SIG"):
        name = f"SIG{name}"
    if not _SIGNAL_NAME.fullmatch(name):
        raise ValueError(f"{signal!r} is not a signal name: use e.g. 'SIGTERM' or 'SIGKILL'")
    return name


class Control:
    """Worker remote control; ``app.control``."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
    ) -> None:
        """Revoke one task id or several: no worker starts them from now on.

        ``terminate=True`` also stops them where they are running now, with ``signal``
        (Celery's ``revoke(task_id, terminate=True, signal='SIGKILL')``). A revoke reaches
        every worker, so ``destination`` (accepted for Celery's signature) narrows nothing:
        a task id names one task wherever it is.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        if not all(isinstance(i, str) and i for i in ids):
            raise TypeError(f"revoke() takes task ids (non-empty strings), not {task_id!r}")
        ttl = float(self.app.conf.worker_revoke_expires)
        self.app.broker.revoke(ids, ttl, terminate=bool(terminate), signal=signal_name(signal))
