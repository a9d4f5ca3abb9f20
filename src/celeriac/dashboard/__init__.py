"""celeriac's web dashboard: ``celeriac -A proj dashboard`` (or ``flower``).

Runtime layer: follows the event stream and reads the broker through its seam; never
imports an engine. Needs the ``dashboard`` extra (Starlette, uvicorn, Jinja2).
``create_app(app, auth=...)`` is the ASGI application, ``serve`` runs it with uvicorn.
"""

from __future__ import annotations

from celeriac.dashboard.monitor import Monitor
from celeriac.dashboard.security import Auth, hash_password
from celeriac.dashboard.server import serve
from celeriac.dashboard.web import create_app

__all__ = ["Auth", "Monitor", "create_app", "hash_password", "serve"]
