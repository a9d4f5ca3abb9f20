"""Every declared setting is either read by celeriac or marked as not in effect; a marked
one warns when given a value of its own, and the configuration page says so plainly."""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from celeriac import Celery
from celeriac.config import SETTINGS, NotInEffectWarning

SRC = Path(__file__).resolve().parents[2] / "src" / "celeriac"
ROOT = SRC.parents[1]


def reads(name: str) -> str:
    """What reading a setting looks like: ``conf.name``, or the quoted name (``conf["name"]``,
    ``conf.get("name")``, a table of task attributes and the settings behind them)."""
    return rf"conf\.{name}\b|[\"']{name}[\"']"


def test_every_declared_setting_is_read_or_marked_not_in_effect() -> None:
    # The config package declares and stores settings; reading them happens elsewhere.
    code = "\n".join(path.read_text() for path in SRC.rglob("*.py") if path.parent.name != "config")
    unread = sorted(
        name
        for name, setting in SETTINGS.items()
        if setting.not_in_effect is None and not re.search(reads(name), code)
    )
    assert unread == [], (
        f"nothing in src/celeriac reads {unread}: make them work, or declare them with "
        f"not_in_effect='why' in config/settings.py"
    )


def test_a_setting_not_in_effect_warns_once_when_given_a_value_of_its_own() -> None:
    app = Celery("marked", broker="memory://", set_as_current=False)
    with pytest.warns(NotInEffectWarning) as caught:
        app.conf.beat_schedule_filename = "/var/lib/beat/schedule"
        app.conf.update(beat_schedule_filename="celerybeat-schedule")  # the default again
    [warning] = caught
    assert str(warning.message) == (
        "setting 'beat_schedule_filename' is not in effect in celeriac yet: beat keeps its "
        "state (last run of each entry) in the broker, so no file is written or read; the "
        "value is kept, but nothing reads it"
    )
    assert app.conf.beat_schedule_filename == "celerybeat-schedule"


def test_defaults_and_settings_in_effect_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = Celery("quiet", broker="memory://", enable_utc=True, task_protocol=2)
        app.conf.update(worker_concurrency=2, task_annotations={"*": {"rate_limit": "1/s"}})


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_config_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_page_marks_exactly_the_settings_not_in_effect() -> None:
    text = _generator().render()
    marked = sorted(name for name, s in SETTINGS.items() if s.not_in_effect)
    rows = re.findall(r"^\| `([a-z_]+)` \|.*\*\*Not in effect yet:\*\*", text, re.MULTILINE)
    assert sorted(rows) == marked
    section = text.split("**Not everything is in effect yet.**", 1)[1].split("\n\n", 1)[0]
    assert sorted(re.findall(r"`([a-z_]+)`", section)) == marked
    assert "not yet enforced" not in text  # time limits are enforced
