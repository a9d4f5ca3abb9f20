"""The project package. Loading the celeriac app here (as Celery's guide does) makes
@shared_task in the Django apps use it."""

from .celery import app as celery_app

__all__ = ("celery_app",)
