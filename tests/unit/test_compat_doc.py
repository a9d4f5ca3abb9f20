"""docs/compat.md is what scripts/gen_compat_doc.py generates, and every Celery name that
celeriac does not offer has a reviewed reason in scripts/compat_notes.py.

Celery's surface comes from the JSON cached in docs/data, so no Celery install is needed;
celeriac is introspected in this process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_compat_doc.py"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_compat_doc", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def surface(generator: ModuleType) -> dict[str, Any]:
    loaded: dict[str, Any] = generator.load_surface()
    return loaded


def _verdict(generator: ModuleType, surface: dict[str, Any]) -> Any:
    return generator.classify(surface, generator.survey(surface["groups"]))


def test_the_page_is_generated_from_celery_celeriac_and_the_notes(
    generator: ModuleType, surface: dict[str, Any]
) -> None:
    expected = generator.render(surface, _verdict(generator, surface))
    assert generator.DOC.read_text(encoding="utf-8") == expected, (
        "docs/compat.md is stale: run `python scripts/gen_compat_doc.py`"
    )


def test_every_name_not_offered_has_a_reason_and_every_note_is_current(
    generator: ModuleType, surface: dict[str, Any]
) -> None:
    problems = _verdict(generator, surface).problems
    assert problems == [], "\n".join(problems)


def test_the_surface_is_celery_57(surface: dict[str, Any]) -> None:
    assert surface["celery_version"].startswith("5.7.")
    groups = surface["groups"]
    assert "send_task" in groups["app"] and "task_acks_late" in groups["settings"]
    assert all(not name.startswith("_") for names in groups.values() for name in names)


def _classify(
    generator: ModuleType,
    groups: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    notes: dict[str, Any] | None = None,
) -> Any:
    """Classify a made-up surface with only ``notes`` (none by default) reviewed."""
    monkeypatch.setattr(generator.compat_notes, "NOTES", notes or {})
    monkeypatch.setattr(generator.compat_notes, "PENDING", {})
    surface = {"celery_version": "5.7.0", "groups": groups}
    return generator.classify(surface, generator.survey(groups))


def test_a_name_not_offered_without_a_reason_fails_the_check(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    verdict = _classify(generator, {"top-level": ["Celery", "no_such_name"]}, monkeypatch)
    assert verdict.problems == ["top-level: no_such_name is not offered and has no reason"]
    assert [row.status for row in verdict.rows["top-level"]] == ["same", "not offered"]


def test_a_note_for_a_name_celeriac_has_fails_the_check(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = {"top-level": {"Celery": generator.compat_notes.absent("gone")}}
    verdict = _classify(generator, {"top-level": ["Celery"]}, monkeypatch, notes)
    assert verdict.problems == ["top-level: Celery: celeriac has it now; drop its note"]


def test_a_setting_not_in_effect_counts_as_not_offered(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celeriac.config.settings import SETTINGS

    inert = next(s.name for s in SETTINGS.values() if s.not_in_effect and not s.ours)
    row = _classify(generator, {"settings": [inert]}, monkeypatch).rows["settings"][0]
    assert row.status == "not offered"
    assert "not in effect" in row.note


def test_a_differs_note_needs_its_anchor(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = generator.compat_notes.differs("Works otherwise.", "no-such-anchor")
    verdict = _classify(
        generator, {"top-level": ["Celery"]}, monkeypatch, {"top-level": {"Celery": note}}
    )
    assert verdict.rows["top-level"][0].status == "differs on purpose"
    assert verdict.problems == [
        "top-level: Celery: no anchor #no-such-anchor in differences-from-celery.md"
    ]


def test_check_exits_1_on_a_stale_page_and_0_once_written(
    generator: ModuleType, surface: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "compat.md"
    page.write_text("# stale\n", encoding="utf-8")
    monkeypatch.setattr(generator, "DOC", page)
    assert generator.main(["--check"]) == 1
    unargued = bool(_verdict(generator, surface).problems)
    generator.main([])
    assert page.read_text(encoding="utf-8").startswith("# Compatibility with Celery 5.7")
    assert generator.main(["--check"]) == (1 if unargued else 0)
