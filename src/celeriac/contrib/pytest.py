"""``celery.contrib.pytest`` path: the pytest plugin's fixtures."""

from celeriac.testing.plugin import celeriac_app, celeriac_config, celery_app, celery_config

__all__ = ["celeriac_app", "celeriac_config", "celery_app", "celery_config"]
