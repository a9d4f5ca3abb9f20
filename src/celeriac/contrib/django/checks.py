"""Django's system checks, run once when a worker of a Django project starts.

Edge layer. As Celery's fix-up does, the checks run after ``django.setup()`` unless
``--skip-checks`` (env ``SKIP_CHECKS``) or ``CELERIAC_SKIP_CHECKS``/``CELERY_SKIP_CHECKS``
says not to. Their findings are logged (errors as errors) and the worker carries on, as
under Celery: a check that only concerns the admin must not keep tasks from running.
"""

from __future__ import annotations

import logging
import os

from django.core import checks

logger = logging.getLogger("celeriac.contrib.django")

#: Any of these set to a non-empty value skips the checks.
SKIP_CHECKS_ENV = ("CELERIAC_SKIP_CHECKS", "CELERY_SKIP_CHECKS")


def checks_skipped() -> bool:
    return any(os.environ.get(name) for name in SKIP_CHECKS_ENV)


def run_system_checks() -> list[checks.CheckMessage]:
    """Run Django's checks (unless skipped) and log what they find; returns the findings."""
    if checks_skipped():
        return []
    found: list[checks.CheckMessage] = checks.run_checks()
    for message in found:
        level = logging.ERROR if message.is_serious() else logging.WARNING
        logger.log(level, "Django system check: %s", message)
    return found


__all__ = ["SKIP_CHECKS_ENV", "checks_skipped", "run_system_checks"]
