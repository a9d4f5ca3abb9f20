"""``celeriac.contrib.django`` without servers: the project of ``tests/django_project.py``
on SQLite and the memory broker, each scenario in a process of its own (Django is set
up once per process). What the fix-up changes in the app, and the calls sent on commit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.django_project import project_env, write_project

pytest.importorskip("django")

PRELUDE = """
import json, os
import django
from django.db import transaction
from celeriac.signals import after_task_publish

sent = []
after_task_publish.connect(lambda headers, **_: sent.append(headers["id"]), weak=False)

def setup(extra_apps=()):
    import proj
    django.setup()
    from django.core.management import call_command
    for alias in ("default", "other"):
        call_command("migrate", run_syncdb=True, verbosity=0, database=alias)
    return proj.celery_app
"""


def run(tmp_path: Path, body: str, *, django_settings: bool = True) -> Any:
    """Run ``body`` after the prelude in the project's directory; its printed JSON."""
    project = write_project(tmp_path)
    databases = {
        alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / f"{alias}.db")}
        for alias in ("default", "other")
    }
    env = project_env(project, databases, CELERIAC_TEST_BROKER_URL="memory://")
    if not django_settings:
        env["DJANGO_SETTINGS_MODULE"] = ""
    script = textwrap.dedent(PRELUDE) + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_fixup_makes_djangotask_the_default_and_discovers_installed_apps(
    tmp_path: Path,
) -> None:
    seen = run(
        tmp_path,
        """
        app = setup()
        from celeriac.contrib.django.task import DjangoTask
        names = sorted(n for n in app.tasks if n.startswith("shop."))
        print(json.dumps({"names": names, "django_task": issubclass(app.Task, DjangoTask),
                          "order_total": isinstance(app.tasks["shop.tasks.order_total"],
                                                    DjangoTask)}))
        """,
    )
    assert seen == {
        "names": ["shop.tasks.backend_pid", "shop.tasks.count_orders", "shop.tasks.order_total"],
        "django_task": True,
        "order_total": True,
    }


def test_a_task_cls_of_ones_own_is_kept(tmp_path: Path) -> None:
    seen = run(
        tmp_path,
        """
        os.environ["DJANGO_SETTINGS_MODULE"] = "proj.settings"
        from celeriac import Celery, Task
        class Mine(Task):
            pass
        app = Celery("other", task_cls=Mine, broker="memory://")
        print(json.dumps(issubclass(app.Task, Mine)))
        """,
    )
    assert seen is True


def test_without_django_settings_nothing_changes(tmp_path: Path) -> None:
    seen = run(
        tmp_path,
        """
        import sys
        from celeriac import Celery, Task
        app = Celery("plain", broker="memory://")
        app.autodiscover_tasks()
        names = [n for n in app.tasks if n.startswith("shop.")]
        print(json.dumps({"names": names, "django_loaded": "celeriac.contrib.django" in sys.modules,
                          "plain_task": app.Task.__mro__[1] is Task}))
        """,
        django_settings=False,
    )
    assert seen == {"names": [], "django_loaded": False, "plain_task": True}


def test_settings_without_django_warn(tmp_path: Path) -> None:
    seen = run(
        tmp_path,
        """
        import sys, warnings
        sys.modules["django"] = None  # as if Django were not installed
        os.environ["DJANGO_SETTINGS_MODULE"] = "proj.settings"
        from celeriac import Celery
        from celeriac.exceptions import FixupWarning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Celery("x", broker="memory://")
        print(json.dumps([str(w.message) for w in caught if w.category is FixupWarning]))
        """,
    )
    assert len(seen) == 1 and "Django is not installed" in seen[0]


def test_delay_on_commit_sends_after_the_commit_only(tmp_path: Path) -> None:
    seen = run(
        tmp_path,
        """
        app = setup()
        from shop.models import Order
        from shop.tasks import order_total
        with transaction.atomic():
            order = Order.objects.create(total=5)
            committed = order_total.delay_on_commit(order.pk)
            inside = list(sent)
        try:
            with transaction.atomic():
                rolled_back = order_total.delay_on_commit(order.pk)
                raise RuntimeError
        except RuntimeError:
            pass
        outside = order_total.delay_on_commit(order.pk)  # autocommit: sent at once
        print(json.dumps({"inside": inside, "sent": sent, "committed": committed.id,
                          "rolled_back": rolled_back.id, "outside": outside.id,
                          "queued": app.broker.queue_length("celery")}))
        """,
    )
    assert seen["inside"] == []
    assert seen["sent"] == [seen["committed"], seen["outside"]]
    assert seen["rolled_back"] not in seen["sent"]
    assert seen["queued"] == 2


def test_apply_async_on_commit_follows_the_database_named_by_using(tmp_path: Path) -> None:
    seen = run(
        tmp_path,
        """
        app = setup()
        from shop.tasks import count_orders
        steps = {}
        with transaction.atomic(using="other"):
            with transaction.atomic():  # the default database's block ends first
                result = count_orders.apply_async_on_commit(
                    using="other", task_id="chosen", countdown=10)
            steps["after default commit"] = list(sent)
        steps["after other commit"] = list(sent)
        steps["id"] = result.id
        print(json.dumps(steps))
        """,
    )
    assert seen == {"after default commit": [], "after other commit": ["chosen"], "id": "chosen"}


def test_a_bad_call_fails_at_the_call_not_at_the_commit(tmp_path: Path) -> None:
    seen = run(
        tmp_path,
        """
        app = setup()
        from shop.tasks import count_orders
        try:
            with transaction.atomic():
                count_orders.apply_async_on_commit(countdwon=3)
        except TypeError as exc:
            print(json.dumps(str(exc)))
        """,
    )
    assert "countdwon" in seen


def test_an_eager_call_leaves_the_callers_transaction_alone(tmp_path: Path) -> None:
    seen = run(
        tmp_path,
        """
        app = setup()
        from django.db import connection
        from shop.models import Order
        from shop.tasks import count_orders
        with transaction.atomic():
            Order.objects.create(total=1)
            counted = count_orders.apply().get()
            still = connection.in_atomic_block
        print(json.dumps({"counted": counted, "in_block": still}))
        """,
    )
    assert seen == {"counted": 1, "in_block": True}


def test_a_process_django_already_set_up_is_not_set_up_again(tmp_path: Path) -> None:
    seen = run(
        tmp_path,
        """
        import logging
        import proj
        django.setup()  # a web process: Django is set up before the app is first used
        logging.getLogger("django").handlers.clear()  # django.setup() would add them back
        app = proj.celery_app
        names = [n for n in app.tasks if n.startswith("shop.")]  # finalizes the app
        print(json.dumps({"found": len(names), "handlers": logging.getLogger("django").handlers}))
        """,
    )
    assert seen == {"found": 3, "handlers": []}


CHECKS_SCENARIO = """
import logging
from django.core import checks
from celeriac.testing import start_worker

app = setup()
app.conf.result_backend = "cache+memory://"

@checks.register()
def reminder(app_configs, **kwargs):
    return [checks.Warning("no payment provider is set", id="shop.W001"),
            checks.Error("the price list is missing", id="shop.E001")]

seen = []
class Keep(logging.Handler):
    def emit(self, record):
        seen.append([record.levelname, record.getMessage()])
logging.getLogger("celeriac.contrib.django").addHandler(Keep())
if SKIP:
    os.environ["CELERIAC_SKIP_CHECKS"] = "true"  # what `celeriac --skip-checks` sets
with start_worker(app, pool="solo") as worker:
    ran = app.tasks["shop.tasks.count_orders"].delay().get(timeout=10)
print(json.dumps({"seen": seen, "ran": ran}))
"""


@pytest.mark.parametrize("skip", [False, True])
def test_a_starting_worker_runs_djangos_system_checks_unless_told_to_skip(
    tmp_path: Path, skip: bool
) -> None:
    seen = run(tmp_path, f"SKIP = {skip}\n" + CHECKS_SCENARIO)
    # Findings are logged (errors as errors) and the worker still runs tasks, as Celery's
    assert seen["ran"] == 0
    if skip:
        assert seen["seen"] == []
    else:
        assert seen["seen"] == [
            ["WARNING", "Django system check: ?: (shop.W001) no payment provider is set"],
            ["ERROR", "Django system check: ?: (shop.E001) the price list is missing"],
        ]


def test_skip_checks_on_the_command_line_reaches_the_fixup() -> None:
    done = subprocess.run(
        [sys.executable, "-c", (
            "import os, sys; from celeriac.cli import cli\n"
            "sys.argv = ['celeriac', '--skip-checks', 'list', '--help']\n"
            "try:\n    cli()\nexcept SystemExit:\n    pass\n"
            "from celeriac.contrib.django.checks import checks_skipped\n"
            "print('skipped' if checks_skipped() else 'run')"
        )],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "skipped", done.stderr
