"""Celery's environment variables for the broker and result store URLs.

``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` come before ``broker_url`` and
``result_backend`` set in code, as in Celery; only a command-line ``-b`` /
``--result-backend`` comes before them. Read when a URL is looked up, never at import.
Celery's split ``CELERY_BROKER_READ_URL`` / ``CELERY_BROKER_WRITE_URL`` are refused.
"""

from __future__ import annotations

import os

from celeriac.exceptions import ImproperlyConfigured

# setting -> the variable that overrides it
VARIABLES = {"broker_url": "CELERY_BROKER_URL", "result_backend": "CELERY_RESULT_BACKEND"}
SPLIT_BROKER = ("CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL")


def from_environment(setting: str) -> str | None:
    """The variable's value for ``setting``, or None when it is unset or empty."""
    variable = VARIABLES.get(setting)
    return (os.environ.get(variable) or None) if variable else None


def check_split_broker(url: str | None) -> None:
    """Refuse a read or write URL that differs from the one broker URL celeriac uses:
    publishing or consuming somewhere else than asked would lose work silently."""
    for variable in SPLIT_BROKER:
        value = os.environ.get(variable)
        if value and value != url:
            raise ImproperlyConfigured(
                f"{variable} is set, but celeriac consumes and publishes through one "
                f"broker URL: set broker_url (or CELERY_BROKER_URL) to the broker you "
                f"want and unset {variable}"
            )
