"""``app.fixups``: the built-in fix-ups unless ``Celery(fixups=...)`` names others; each
is called with the app when it is created, and what it returns can set the default task
class and the packages ``autodiscover_tasks()`` searches."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, Task
from celeriac.exceptions import ImproperlyConfigured

CALLS: list[str] = []


class AuditTask(Task[Any, Any]):
    pass


class ShopFixup:
    task_cls = AuditTask

    def autodiscover_tasks(self) -> list[str]:
        return ["shop_fixture_pkg"]


def shop_fixup(app: Celery) -> ShopFixup:
    CALLS.append(f"shop:{app.main}")
    return ShopFixup()


def quiet_fixup(app: Celery) -> None:
    CALLS.append(f"quiet:{app.main}")


@pytest.fixture
def fixup_module() -> Iterator[str]:
    module = types.ModuleType("fixups_for_test")
    module.shop = shop_fixup
    module.quiet = quiet_fixup
    sys.modules[module.__name__] = module
    CALLS.clear()
    yield module.__name__
    del sys.modules[module.__name__]


def test_an_app_has_the_builtin_fixups_and_django_is_not_imported_without_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    app = Celery("plain", broker="memory://", set_as_current=False)
    assert app.fixups == set(Celery.builtin_fixups) == {"celeriac.contrib.django.fixup:fixup"}
    assert app.task_cls is Task


def test_fixups_of_ones_own_run_in_order_and_shape_the_app(fixup_module: str) -> None:
    app = Celery(
        "shop",
        broker="memory://",
        set_as_current=False,
        fixups=[f"{fixup_module}:quiet", f"{fixup_module}.shop"],
    )
    assert CALLS == ["quiet:shop", "shop:shop"]
    assert app.task_cls is AuditTask  # the first fix-up that names a task class
    assert app.fixups == [f"{fixup_module}:quiet", f"{fixup_module}.shop"]


def test_a_fixup_that_cannot_be_imported_is_named_in_the_error() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"fix-up 'nowhere\.at_all:fixup' cannot be"):
        Celery("broken", broker="memory://", set_as_current=False, fixups=["nowhere.at_all:fixup"])
