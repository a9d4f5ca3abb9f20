"""The app: ``Celeriac`` (alias ``Celery``), its registry, routing, producer and connections.

App core: imports the task layer, seams and engines; runtimes (worker, beat) and edges
(cli, testing) import it, never the reverse.
"""

from celeriac.app.base import Celeriac
from celeriac.app.shared import shared_task

Celery = Celeriac

__all__ = ["Celeriac", "Celery", "shared_task"]
