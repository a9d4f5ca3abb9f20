"""Celery's environment variables for the broker and result store URLs.

``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` come before ``broker_url`` and
``result_backend`` set in code, as in Celery; only a command-line ``-b`` /
``--result-backend`` comes before them. ``CELERY_BROKER_READ_URL`` and
``CELERY_BROKER_WRITE_URL`` likewise come before ``broker_read_url`` and
``broker_write_url``. Read when a URL is looked up, never at import.
"""

from __future__ import annotations

import os

# setting -> the variable that overrides it
VARIABLES = {
    "broker_url": "CELERY_BROKER_URL",
    "broker_read_url": "CELERY_BROKER_READ_URL",
    "broker_write_url": "CELERY_BROKER_WRITE_URL",
    "result_backend": "CELERY_RESULT_BACKEND",
}


def from_environment(setting: str) -> str | None:
    """The variable's value for ``setting``, or None when it is unset or empty."""
    variable = VARIABLES.get(setting)
    return (os.environ.get(variable) or None) if variable else None
