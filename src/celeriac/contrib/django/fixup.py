"""``fixup(app)``: what the app calls, by name, when ``DJANGO_SETTINGS_MODULE`` is set
(``celeriac.app.fixups``), as Celery's built-in Django fix-up.

Edge layer. Checks that Django is there and recent enough before anything imports it;
the fix-up itself is ``app_fixup.DjangoFixup``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import FixupWarning, ImproperlyConfigured

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac
    from celeriac.contrib.django.app_fixup import DjangoFixup

#: The oldest Django this integration supports (the 4.2 LTS).
MINIMUM = (4, 2)


def fixup(app: Celeriac) -> DjangoFixup | None:
    """The installed fix-up, or None (with a ``FixupWarning``) when Django is missing."""
    try:
        django: Any = importlib.import_module("django")
    except ImportError:
        warnings.warn(
            "DJANGO_SETTINGS_MODULE is set but Django is not installed: the Django "
            "fix-up is not applied (install Django, or unset the variable)",
            FixupWarning,
            stacklevel=4,
        )
        return None
    if tuple(django.VERSION[:2]) < MINIMUM:
        raise ImproperlyConfigured(
            f"celeriac's Django integration needs Django 4.2 or later, not "
            f"{django.get_version()}: upgrade Django"
        )
    # Imported here, once Django is known to be installed: the fix-up's modules import it.
    from celeriac.contrib.django.app_fixup import DjangoFixup

    return DjangoFixup(app).install()


__all__ = ["MINIMUM", "fixup"]
