"""Serving the dashboard with uvicorn, secure by default.

Runtime layer (dashboard). Binds 127.0.0.1 unless told otherwise; any other address needs
authentication (``Auth`` with users or a token), else ``serve`` refuses to start. A
loopback dashboard without authentication answers only requests addressed to a loopback
name (``Host``), so a web page cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import uvicorn

from celeriac.dashboard.security import Auth
from celeriac.dashboard.web import create_app
from celeriac.exceptions import ImproperlyConfigured

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(address: str, auth: Auth) -> None:
    """Refuse to listen on a non-loopback ``address`` without authentication."""
    if not is_loopback(address) and not auth.enabled:
        raise ImproperlyConfigured(
            f"the dashboard will not listen on {address} without authentication: give "
            f"--basic-auth user:HASH (from 'celeriac dashboard --hash-password') or "
            f"--token-file PATH, or keep --address 127.0.0.1 behind your own proxy"
        )


def build(app: Any, address: str, auth: Auth, url_prefix: str = "",
          queues: Sequence[str] = ()) -> Any:  # fmt: skip
    """The ASGI app for ``address``, after the exposure check."""
    check_exposure(address, auth)
    hosts = LOOPBACK_NAMES if is_loopback(address) and not auth.enabled else ()
    return create_app(app, auth=auth, url_prefix=url_prefix, queues=queues, allowed_hosts=hosts)


def serve(app: Any, address: str = "127.0.0.1", port: int = 5555, auth: Auth | None = None,
          url_prefix: str = "", queues: Sequence[str] = ()) -> None:  # fmt: skip
    """Run the dashboard until interrupted (SIGINT or SIGTERM)."""
    asgi = build(app, address, auth or Auth(), url_prefix, queues)
    config = uvicorn.Config(
        asgi, host=address.strip("[]"), port=port, log_level="warning", access_log=False,
        lifespan="on", server_header=False,
    )  # fmt: skip
    uvicorn.Server(config).run()


__all__ = ["build", "check_exposure", "is_loopback", "serve"]
