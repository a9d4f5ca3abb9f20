"""A Django project on disk, set up as in Celery's "First steps with Django" with only the
import changed, for the tests of ``celeriac.contrib.django``: ``proj`` (settings, the
app in ``proj/celery.py``), the Django app ``shop`` (a model, ``tasks.py`` with
``@shared_task``), and ``client.py``, which runs a scenario as a Django process would and
prints what it saw as JSON. The database and the broker come from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

FILES = {
    "proj/__init__.py": """
        # As Celery's guide: the app is loaded when Django starts, so @shared_task uses it.
        from .celery import app as celery_app

        __all__ = ("celery_app",)
    """,
    "proj/celery.py": """
        import os

        from celeriac import Celery

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

        app = Celery("proj")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.autodiscover_tasks()

        if os.environ.get("HOLD_PARENT_CONNECTION"):  # a query while the project loads
            import warnings

            from django.db import connection

            warnings.simplefilter("ignore", RuntimeWarning)  # Django 5.2: "discouraged"
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO shop_mark (name, value) VALUES ('parent', pg_backend_pid())"
                )
    """,
    "proj/settings.py": """
        import json
        import os

        SECRET_KEY = "not-secret"
        USE_TZ = True
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
        INSTALLED_APPS = ["django.contrib.contenttypes", "shop"]
        DATABASES = json.loads(os.environ["DJANGO_TEST_DATABASES"])

        CELERY_BROKER_URL = os.environ["CELERIAC_TEST_BROKER_URL"]
        CELERY_RESULT_BACKEND = os.environ.get("CELERIAC_TEST_RESULTS_URL")
        _PREFIX = os.environ.get("CELERIAC_TEST_PREFIX")
        if _PREFIX:
            CELERY_BROKER_TRANSPORT_OPTIONS = {"key_prefix": _PREFIX}
            CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"key_prefix": _PREFIX}
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models


        class Order(models.Model):
            total = models.IntegerField()


        class Mark(models.Model):
            name = models.CharField(max_length=50)
            value = models.BigIntegerField()
    """,
    "shop/tasks.py": """
        import os

        from celeriac import shared_task
        from django.db import connection

        from shop.models import Order  # needs django.setup() first


        @shared_task
        def count_orders():
            return Order.objects.count()


        @shared_task
        def order_total(order_id):
            return Order.objects.get(pk=order_id).total


        @shared_task
        def backend_pid():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                return {"backend": cursor.fetchone()[0], "pid": os.getpid()}

    """,
    "client.py": """
        import json
        import sys

        import django

        import proj

        django.setup()

        from celeriac.signals import after_task_publish
        from django.core.management import call_command
        from django.db import connection, transaction

        from shop.models import Order
        from shop.tasks import backend_pid, count_orders, order_total

        sent = []
        after_task_publish.connect(lambda headers, **_: sent.append(headers["id"]), weak=False)


        def migrate():
            call_command("migrate", run_syncdb=True, verbosity=0)
            Order.objects.bulk_create([Order(total=n) for n in (1, 2, 3)])
            return Order.objects.count()


        def read():
            return count_orders.delay().get(timeout=30)


        def pid():
            return backend_pid.delay().get(timeout=30)


        def commit():
            from celeriac.contrib.django.task import DjangoTask

            task = proj.celery_app.tasks["shop.tasks.order_total"]
            is_django_task = isinstance(task, DjangoTask)
            with transaction.atomic():
                order = Order.objects.create(total=42)
                result = order_total.delay_on_commit(order.pk)
                sent_inside = list(sent)
            return {"id": result.id, "sent_inside": sent_inside, "sent_after": sent,
                    "value": result.get(timeout=30), "is_django_task": is_django_task}


        def rollback():
            ids = []
            try:
                with transaction.atomic():
                    order = Order.objects.create(total=7)
                    ids.append(order_total.delay_on_commit(order.pk).id)
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            return {"ids": ids, "sent": sent, "after": count_orders.delay().get(timeout=30)}


        def fork():
            # A forked child that forgets the inherited connection and opens its own; the
            # parent's session must survive the child's exit.
            import os

            from celeriac.contrib.django.worker_fixup import close_all, forget_inherited

            def session():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    return cursor.fetchone()[0]

            before = session()
            reader, writer = os.pipe()
            child = os.fork()
            if child == 0:
                forget_inherited()
                close_all()
                os.write(writer, str(session()).encode())
                close_all()
                os._exit(0)
            os.close(writer)
            _, status = os.waitpid(child, 0)
            in_child = int(os.read(reader, 100))
            return {"before": before, "child": in_child, "after": session(), "status": status}


        print(json.dumps(globals()[sys.argv[1]]()))
    """,
}


def write_project(directory: Path) -> Path:
    for name, text in FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return directory


def project_env(directory: Path, databases: dict[str, Any], **extra: str) -> dict[str, str]:
    """The environment the project's processes run in (settings read from it)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return {
        **env,
        # An outer PYTHONPATH comes first: a Django of another version, say
        # PYTHONPATH=/tmp/django42 (pip install --target) to test the 4.2 LTS.
        "PYTHONPATH": os.pathsep.join(
            [p for p in (os.environ.get("PYTHONPATH"), str(ROOT / "src"), str(directory)) if p]
        ),
        "DJANGO_TEST_DATABASES": json.dumps(databases),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def run_client(directory: Path, env: dict[str, str], scenario: str) -> Any:
    """Run ``client.py <scenario>`` in its own process; what it printed, decoded."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "client.py", scenario],
        cwd=directory, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"client.py {scenario} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def postgres_databases(url: str, schema: str, **options: Any) -> dict[str, Any]:
    """Django's DATABASES for the schema ``schema`` of the PostgreSQL at ``url``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": parts.username or "postgres",
            "PASSWORD": parts.password or "",
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": parts.port or 5432,
            "OPTIONS": {"options": f"-c search_path={schema}"},
            **options,
        }
    }
