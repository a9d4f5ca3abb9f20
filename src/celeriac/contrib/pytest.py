"""``celery.contrib.pytest`` path: the pytest plugin's fixtures, for projects that list it
in ``pytest_plugins`` (celeriac's plugin also loads by itself once installed)."""

from celeriac.testing.plugin import (
    celeriac_app,
    celeriac_config,
    celeriac_worker,
    celeriac_worker_parameters,
    celeriac_worker_pool,
    celery_app,
    celery_class_tasks,
    celery_config,
    celery_enable_logging,
    celery_includes,
    celery_parameters,
    celery_session_app,
    celery_session_worker,
    celery_worker,
    celery_worker_parameters,
    celery_worker_pool,
    depends_on_current_app,
    use_celery_app_trap,
)

__all__ = [
    "celeriac_app",
    "celeriac_config",
    "celeriac_worker",
    "celeriac_worker_parameters",
    "celeriac_worker_pool",
    "celery_app",
    "celery_class_tasks",
    "celery_config",
    "celery_enable_logging",
    "celery_includes",
    "celery_parameters",
    "celery_session_app",
    "celery_session_worker",
    "celery_worker",
    "celery_worker_parameters",
    "celery_worker_pool",
    "depends_on_current_app",
    "use_celery_app_trap",
]
