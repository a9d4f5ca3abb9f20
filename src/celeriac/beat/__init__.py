"""Beat: periodic tasks, sent exactly once per due time however many schedulers run.

Runtime layer, beside the worker (neither imports the other; ``worker -B`` is started by
the command line). Programs against the broker and result seams, never an engine. Celery's
import paths: ``from celeriac.beat import crontab, Scheduler, PersistentScheduler,
ScheduleEntry, Service``. See docs/beat.md.
"""

from celeriac.beat.entry import ScheduleEntry
from celeriac.beat.scheduler import PersistentScheduler, Scheduler, run_id, run_key
from celeriac.beat.service import EmbeddedService, Service
from celeriac.schedules import crontab, schedule

__all__ = [
    "EmbeddedService",
    "PersistentScheduler",
    "ScheduleEntry",
    "Scheduler",
    "Service",
    "crontab",
    "run_id",
    "run_key",
    "schedule",
]
