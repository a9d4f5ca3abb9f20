"""``celery.contrib.pytest`` path: the pytest plugin's fixtures."""

from celeriac.testing.plugin import (
    celeriac_app,
    celeriac_config,
    celeriac_worker,
    celeriac_worker_parameters,
    celeriac_worker_pool,
    celery_app,
    celery_config,
    celery_worker,
)

__all__ = [
    "celeriac_app",
    "celeriac_config",
    "celeriac_worker",
    "celeriac_worker_parameters",
    "celeriac_worker_pool",
    "celery_app",
    "celery_config",
    "celery_worker",
]
