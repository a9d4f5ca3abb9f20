"""Message signing: task messages signed by the sender, verified by the worker before any
of the message is decoded further; an unsigned or tampered one is dead-lettered
(``bad_signature``).

Two ways: Celery's ``auth`` serializer (X.509, ``app.setup_security()``; the ``auth``,
``certificate`` and ``key`` modules need ``cryptography``) and HMAC-SHA256 with rotating
shared keys (the ``security_keys`` setting, ``signing``). Pure logic: imports ``messages``
and leaves; the app hands each signer its settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celeriac._context import get_current_app
from celeriac.security.signing import HEADER, HmacSigner, Signer, Verified

__all__ = ["HEADER", "HmacSigner", "Signer", "Verified", "setup_security"]


def setup_security(
    allowed_serializers: Iterable[str] | None = None,
    key: str | None = None,
    key_password: str | bytes | None = None,
    cert: str | None = None,
    store: str | None = None,
    digest: str | None = None,
    serializer: str = "json",
    app: Any = None,
) -> None:
    """Celery's ``celery.security.setup_security``: ``app.setup_security(...)`` on
    ``app``, or on the current app."""
    app = get_current_app() if app is None else app
    app.setup_security(allowed_serializers, key, key_password, cert, store, digest, serializer)
