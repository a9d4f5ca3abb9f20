"""``celeriac --config MODULE``: settings read from a module, under the app's own.

Edge layer (cli). As with Celery's ``--config`` (the loader's configuration module), the
module's settings apply where the app sets none itself: whatever the app's code sets
(``Celery(broker=...)``, ``app.conf.x = ...``, ``config_from_object``) wins, and the
command line's ``-b``/``--result-backend`` win over both. The module is read with the
same rules as ``config_from_object`` (lower-case names; Celery 3's upper-case names warn).
"""

from __future__ import annotations

from celeriac.app.base import Celeriac
from celeriac.config.conf import Settings
from celeriac.exceptions import ImproperlyConfigured


class ConfigModuleError(ValueError):
    """The module named by ``--config`` cannot be read."""


def add_config_module(app: Celeriac, name: str) -> None:
    """Put the settings of module ``name`` (``'proj.celeryconfig'``, or ``'mod:obj'``)
    under ``app``'s own."""
    scratch = Settings()
    try:
        scratch.config_from_object(name)
    except ImproperlyConfigured as exc:
        raise ConfigModuleError(
            f"--config {name}: {exc} (give a module importable from the current directory "
            f"or the Python path, e.g. --config proj.celeryconfig)"
        ) from exc
    app.conf.add_defaults(scratch.changes())


__all__ = ["ConfigModuleError", "add_config_module"]
