"""Celery-compatible import paths (``celeriac.utils.log``); no helpers live here."""
