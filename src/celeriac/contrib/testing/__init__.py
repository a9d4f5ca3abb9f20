"""``celery.contrib.testing`` paths: ``worker.start_worker``, ``app.TestApp`` and
``setup_default_app``, and the ``celery.ping`` task of ``tasks``."""
