"""Settings of the example shop: SQLite, one app (orders), celeriac's settings under the
CELERY_ prefix."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["django.contrib.contenttypes", "orders"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "shopsite.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DATABASE", str(BASE_DIR / "db.sqlite3")),
        "ATOMIC_REQUESTS": True,  # each view runs in a transaction, committed at its end
    }
}

# celeriac (read by app.config_from_object("django.conf:settings", namespace="CELERY"))
CELERY_TASK_ACKS_LATE = True
CELERY_BEAT_SCHEDULE = {
    "ship-confirmed-orders": {"task": "orders.tasks.ship_confirmed", "schedule": 1.0},
}
