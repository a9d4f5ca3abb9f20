"""app.conf: Celery's setting names, defaults, loading from objects, and misspelling warnings."""

from __future__ import annotations

import datetime as dt
import sys
import types
import warnings

import pytest

from celeriac import Celery
from celeriac.config import SETTINGS, UnknownSettingWarning
from celeriac.exceptions import ImproperlyConfigured
from tests.unit.test_celery_project_examples import EMAIL_PROJECT_SETTINGS


def test_defaults_are_readable_as_attributes_and_items(app: Celery) -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf["task_default_queue"] == "celery"
    assert app.conf.result_expires == dt.timedelta(days=1)


def test_production_defaults_differ_from_celery_on_purpose(app: Celery) -> None:
    # a typical production settings table, as defaults
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_constructor_arguments_and_update(app: Celery) -> None:
    app.conf.update(task_serializer="msgpack", worker_concurrency=4)
    assert app.conf.broker_url == "memory://"
    assert app.conf.result_backend == "cache+memory://"
    assert (app.conf.task_serializer, app.conf.worker_concurrency) == ("msgpack", 4)


def test_email_project_configuration_is_accepted_without_a_warning() -> None:
    # timezone is in effect: crontab schedules read their fields in that zone.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = Celery("myapp", broker="memory://", backend="cache+memory://")
        app.conf.update(EMAIL_PROJECT_SETTINGS)
    assert caught == []
    assert app.conf.result_expires == 86400 and app.conf.timezone == "Asia/Seoul"


def test_misspelt_setting_warns_with_the_closest_name(app: Celery) -> None:
    with pytest.warns(UnknownSettingWarning, match="did you mean 'task_acks_late'"):
        app.conf.update(task_ack_late=True)


def test_unknown_setting_without_a_close_name_still_warns(app: Celery) -> None:
    with pytest.warns(UnknownSettingWarning, match="unknown setting 'zzzz_qqqq'"):
        app.conf.zzzz_qqqq = 1


def test_misspelt_attribute_read_names_the_closest_setting(app: Celery) -> None:
    with pytest.raises(AttributeError, match="did you mean 'broker_url'"):
        _ = app.conf.broker_ulr


def test_wrong_type_is_refused_with_the_expected_type(app: Celery) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"worker_concurrency.*must be int"):
        app.conf.worker_concurrency = [4]


def test_numbers_and_booleans_are_read_from_strings(app: Celery) -> None:
    app.conf.update(worker_concurrency="8", task_always_eager="true")
    assert app.conf.worker_concurrency == 8
    assert app.conf.task_always_eager is True


def test_config_from_object_with_celery_namespace(app: Celery) -> None:
    class DjangoSettings:
        CELERY_BROKER_URL = "memory://other"
        CELERY_TASK_ALWAYS_EAGER = True
        DEBUG = True  # not in the namespace: ignored

    app.config_from_object(DjangoSettings, namespace="CELERY")
    assert app.conf.broker_url == "memory://other"
    assert app.conf.task_always_eager is True


def test_config_from_module_path_and_attribute(app: Celery) -> None:
    module = types.ModuleType("celeriac_test_cfg")
    module.task_default_queue = "from-module"
    module.datetime = dt  # imported modules are not settings
    holder_module = types.ModuleType("celeriac_test_cfg_holder")
    holder_module.holder = types.SimpleNamespace(task_default_priority=5)
    sys.modules["celeriac_test_cfg"] = module
    sys.modules["celeriac_test_cfg_holder"] = holder_module
    try:
        app.config_from_object("celeriac_test_cfg")
        assert app.conf.task_default_queue == "from-module"
        fresh = Celery("other", broker="memory://")
        fresh.config_from_object("celeriac_test_cfg_holder:holder")
        assert fresh.conf.task_default_priority == 5
    finally:
        del sys.modules["celeriac_test_cfg"], sys.modules["celeriac_test_cfg_holder"]


def test_config_from_missing_module_says_which(app: Celery) -> None:
    with pytest.raises(ImproperlyConfigured, match="no_such_module_xyz"):
        app.config_from_object("no_such_module_xyz")


def test_defaults_are_not_shared_between_apps() -> None:
    first, second = Celery("a", broker="memory://"), Celery("b", broker="memory://")
    first.conf.accept_content.append("msgpack")
    assert second.conf.accept_content == ["json"]


def test_every_setting_has_a_doc_and_a_default_of_its_declared_type() -> None:
    for setting in SETTINGS.values():
        assert setting.doc, setting.name
        assert setting.accepts(setting.default), setting.name


def test_task_routes_may_be_a_router_function_from_a_config_module(app: Celery) -> None:
    module = types.ModuleType("celeriac_test_routes_cfg")

    def route_everything(name: str, *args: object, **kwargs: object) -> str:
        return "routed-by-function"

    module.task_routes = route_everything
    module.helper = route_everything  # not a setting: skipped
    app.config_from_object(module)
    assert app.conf.task_routes is route_everything
    assert app.router.route("any.task", (), {}, {})["queue"] == "routed-by-function"


def test_old_style_uppercase_settings_warn_with_the_new_name(app: Celery) -> None:
    class OldConfig:
        BROKER_URL = "memory://"
        CELERY_ALWAYS_EAGER = True
        SOME_CONSTANT = 3  # not a setting name: silently ignored

    with pytest.warns(UnknownSettingWarning) as record:
        app.config_from_object(OldConfig)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "'BROKER_URL' is not read: use 'broker_url'" in messages[0]
    assert "'CELERY_ALWAYS_EAGER' is not read: use 'task_always_eager'" in messages[1]


def test_results_stay_readable_when_accept_content_omits_the_result_serializer() -> None:
    from celeriac.testing import drain

    app = Celery("mp", broker="memory://", backend="cache+memory://")
    app.conf.update(task_serializer="msgpack", accept_content=["msgpack"])

    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    drain(app)
    assert result.get(timeout=1) == 1
