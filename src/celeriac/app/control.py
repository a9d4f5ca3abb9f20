"""``app.control``: commands to the workers, sent through the app's broker (``revoke``,
``revoke_by_stamped_headers``).

App core: reads the app's settings and talks only to the ``Broker`` seam. A revoke is
cluster-wide: it is stored on the broker for ``worker_revoke_expires`` seconds, so a worker
that starts later still skips the task, and announced to the workers running now. A revoke
by stamped header is the same record, keyed by stamp (``messages.revocation``).
"""

from __future__ import annotations

import re
import signal as os_signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.messages import revocation

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
        reserved = [i for i in ids if revocation.is_stamp_key(i)]
        if reserved:  # the record would read it as a revoked stamp
            raise ValueError(
                f"revoke(): task ids starting with {revocation.STAMP_PREFIX + '['!r} name "
                f"revocations by stamped header, not tasks: {reserved[0]!r}"
            )
        self._record(ids, terminate, signal)

    def revoke_by_stamped_headers(
        self,
        headers: Mapping[str, Any] | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
    ) -> None:
        """Revoke every task stamped with one of ``headers`` (``{name: value or [values]}``,
        or Celery's command-line form ``["name=value", ...]``): no worker starts one from
        now on, and ``terminate=True`` also stops those running now, with ``signal``.

        Kept on the broker like ``revoke`` (``worker_revoke_expires``), so a task sent or a
        worker started later is covered too. ``destination`` narrows nothing, as for
        ``revoke``.
        """
        if not isinstance(headers, Mapping):
            headers = _parse_pairs(headers)
        if not headers:
            raise ValueError("revoke_by_stamped_headers() needs at least one stamped header")
        self._record(revocation.stamp_keys(headers), terminate, signal)

    def _record(self, keys: list[str], terminate: bool, signal: str | int) -> None:
        ttl = float(self.app.conf.worker_revoke_expires)
        self.app.broker.revoke(keys, ttl, terminate=bool(terminate), signal=signal_name(signal))


def _parse_pairs(pairs: Sequence[str]) -> dict[str, list[str]]:
    """``["name=value", ...]`` as ``{name: [values]}``."""
    if isinstance(pairs, str):
        pairs = [pairs]
    parsed: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=") if isinstance(pair, str) else ("", "", "")
        if not sep or not name:
            raise ValueError(
                f"revoke_by_stamped_headers(): {pair!r} is not 'name=value'; pass a dict "
                "{name: value} or strings 'name=value'"
            )
        parsed.setdefault(name, []).append(value)
    return parsed
