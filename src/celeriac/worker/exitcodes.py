"""Named exit codes of ``celeriac worker`` (BSD sysexits, as Celery uses)."""

from __future__ import annotations

EX_OK = 0  # stopped normally (warm or cold shutdown, nothing lost)
EX_FAILURE = 1  # stopped because of an error while running
EX_USAGE = 64  # bad command line (unknown option, app not found)
EX_UNAVAILABLE = 69  # the broker could not be reached at start
EX_SOFTWARE = 70  # an internal error
EX_CONFIG = 78  # the configuration cannot work (e.g. an evicting Redis with refuse)
