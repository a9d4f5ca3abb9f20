"""The project's celeriac app, as in Celery's "First steps with Django", with only the
import changed. No broker URL in the settings: the project's embedded Redis serves as
broker and result store."""

import os

from celeriac import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")

app = Celery("shopsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # orders/tasks.py, and tasks.py in every other installed app
