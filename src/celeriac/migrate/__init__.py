"""Moving queued messages in Celery's wire format into celeriac's own: what
``celeriac migrate-queue`` runs, the last step of a move from Celery.

``sides`` opens the source (read in Celery's format) and the target (written in
celeriac's) from URLs and the app's settings; ``convert`` turns one received message into
the target's; ``move`` runs the loop, publishing each message and acking it on the source
only once the target holds it; ``tally`` counts what moved and what was left, and why.
Runtime layer: imports the app core and the broker seam, never an engine.
"""

from celeriac.migrate.move import MovePlan, move, run_move
from celeriac.migrate.sides import (
    FORMATS,
    Sides,
    check_urls,
    open_sides,
)
from celeriac.migrate.tally import Problem, QueueTally, SkipReason, Tally

__all__ = [
    "FORMATS",
    "MovePlan",
    "Problem",
    "QueueTally",
    "Sides",
    "SkipReason",
    "Tally",
    "check_urls",
    "move",
    "open_sides",
    "run_move",
]
