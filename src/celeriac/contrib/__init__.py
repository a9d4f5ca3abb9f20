"""Integrations and Celery-compatible import paths (``celeriac.contrib.pytest``)."""
