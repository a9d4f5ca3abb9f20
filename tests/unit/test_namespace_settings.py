"""``config_from_object(..., namespace='CELERY')`` reads a Django project's settings: its
own ``CELERY_`` constants are kept quietly, a near-miss of a setting still gets a hint."""

from __future__ import annotations

import warnings

import pytest

from celeriac import Celery
from celeriac.config import NotInEffectWarning
from celeriac.config.hints import UnknownSettingWarning


class DjangoSettings:
    CELERY_BROKER_URL = "memory://"
    CELERY_MY_APP_FLAG = 1  # the project's own constant, not meant for Celery
    CELERY_PDF_RENDERER = "weasyprint"
    DEBUG = True


def _app() -> Celery:
    return Celery("django", broker="memory://", set_as_current=False)


def test_a_projects_own_constants_under_the_prefix_are_kept_without_a_warning() -> None:
    app = _app()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.config_from_object(DjangoSettings, namespace="CELERY")
    assert app.conf.my_app_flag == 1 and app.conf.pdf_renderer == "weasyprint"
    assert app.conf.broker_url == "memory://"


def test_a_mistyped_setting_under_the_prefix_still_gets_a_hint() -> None:
    class Typo:
        CELERY_BROKER_UR = "redis://localhost"

    with pytest.warns(UnknownSettingWarning, match="did you mean 'broker_url'"):
        _app().config_from_object(Typo, namespace="CELERY")


def test_a_name_in_one_of_celerys_groups_still_warns() -> None:
    class Unoffered:
        CELERY_WORKER_STATE_DB = "/var/run/celery/state"

    with pytest.warns(UnknownSettingWarning, match="unknown setting 'worker_state_db'"):
        _app().config_from_object(Unoffered, namespace="CELERY")


def test_result_chord_join_timeout_says_why_it_is_not_in_effect() -> None:
    with pytest.warns(NotInEffectWarning, match="a chord's join never waits"):
        Celery("x", broker="memory://", set_as_current=False, result_chord_join_timeout=10)
