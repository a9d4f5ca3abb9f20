"""Write docs/compat.md: every public name of Celery 5.7's API and celeriac's status for it.

Celery's surface is introspected once, with Celery's own interpreter, and cached in
docs/data/celery-5.7-surface.json; celeriac is introspected in-process on every run; the
reviewed reasons and differences live in scripts/compat_notes.py.

    python scripts/gen_compat_doc.py                  # rewrite docs/compat.md
    python scripts/gen_compat_doc.py --check          # exit 1 if stale or a gap is unargued
    python scripts/gen_compat_doc.py --stats          # print the figures, write nothing
    python scripts/gen_compat_doc.py --refresh-celery [--celery-python PATH]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent
DOC = ROOT / "docs" / "compat.md"
DIFFERENCES = ROOT / "docs" / "differences-from-celery.md"
SURFACE = ROOT / "docs" / "data" / "celery-5.7-surface.json"
CELERY_REQUIREMENT = "celery[redis]==5.7.*"
VENV = SCRIPTS / ".compat-venv"

sys.path.insert(0, str(SCRIPTS))
try:
    import celeriac  # noqa: F401 - only to learn whether it is importable
except ImportError:  # run from a checkout without installing: use ./src
    sys.path.insert(1, str(ROOT / "src"))

import compat_notes  # noqa: E402 - after the path is set
from compat_celeriac import Found, has_path, survey  # noqa: E402
from compat_notes import Note  # noqa: E402
from compat_page import GROUPS, HEADER  # noqa: E402

SAME, DIFFERS, ABSENT = "same", "differs on purpose", "not offered"
OUTSIDE = "not counted"  # another result store's setting: listed, outside the totals


@dataclass(frozen=True)
class Row:
    name: str
    status: str
    note: str  # the reason, or how it differs (Markdown)


@dataclass
class Verdict:
    rows: dict[str, list[Row]]
    problems: list[str]  # each fails --check
    pending: list[str]  # absent, being built, no reason argued (only --strict fails them)


# -- Celery's side ----------------------------------------------------------------------------
def celery_python(given: str | None) -> str:
    """The interpreter to introspect Celery with: the one given, else a venv made here."""
    if given:
        return given
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", CELERY_REQUIREMENT]
    subprocess.run(pip, check=True)
    return str(python)


def refresh_surface(python: str) -> dict[str, Any]:
    done = subprocess.run(
        [python, str(SCRIPTS / "compat_celery_surface.py")],
        capture_output=True, text=True, check=True, cwd=SCRIPTS.parent.parent,
    )  # fmt: skip
    surface: dict[str, Any] = json.loads(done.stdout)
    version = surface["celery_version"]
    if not version.startswith("5.7."):
        raise SystemExit(f"{python} has Celery {version}; this page describes 5.7")
    SURFACE.parent.mkdir(parents=True, exist_ok=True)
    SURFACE.write_text(json.dumps(surface, indent=1) + "\n", encoding="utf-8")
    return surface


def load_surface() -> dict[str, Any]:
    if not SURFACE.exists():
        raise SystemExit(f"{SURFACE} is missing: run with --refresh-celery")
    loaded: dict[str, Any] = json.loads(SURFACE.read_text(encoding="utf-8"))
    return loaded


# -- classification ---------------------------------------------------------------------------
def differences_anchors() -> set[str]:
    """Anchors of docs/differences-from-celery.md: ``<a id>`` tags and headings."""
    text = DIFFERENCES.read_text(encoding="utf-8")
    found = set(re.findall(r"<a\s[^>]*\bid=\"([^\"]+)\"", text))
    for heading in re.findall(r"^#{1,6}\s+(.*)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
        found.add(slug.replace(" ", "-"))
    return found


def note_for(group: str, name: str) -> tuple[str | None, Note | None]:
    """The reviewed note for ``name``: (its key, the note); an exact key before a pattern."""
    notes = compat_notes.NOTES.get(group, {})
    if name in notes:
        return name, notes[name]
    for key, note in notes.items():
        if any(c in key for c in "*?[") and fnmatch.fnmatchcase(name, key):
            return key, note
    return None, None


def _differs_text(note: Note) -> str:
    link = f"[why](differences-from-celery.md#{note.anchor})" if note.anchor else ""
    where = f"In celeriac: `{note.at}`. " if note.at else ""
    return f"{where}{note.text} {link}".strip()


def judge(group: str, name: str, found: Found, anchors: set[str]) -> tuple[Row, list[str], bool]:
    """One name's row, the problems it raises for --check, and whether it is pending."""
    key, note = note_for(group, name)
    exact = key == name
    where = f"{group}: {name}"
    pending = name in compat_notes.PENDING.get(group, set())
    works = found.present and found.inert is None
    if pending and works:
        problem = f"{where} is listed as being built but celeriac has it: remove it from PENDING"
        return Row(name, SAME, ""), [problem], False
    if pending and note is None:
        return Row(name, ABSENT, "Not built yet."), [], True
    if note is not None and note.kind == "differs":
        problems = []
        if note.anchor not in anchors:
            problems.append(f"{where}: no anchor #{note.anchor} in {DIFFERENCES.name}")
        offered = works or (note.at is not None and has_path(note.at))
        if not offered:
            problems.append(f"{where} is noted as differing but celeriac does not offer it")
        return Row(name, DIFFERS if offered else ABSENT, _differs_text(note)), problems, False
    if note is not None and note.kind == "outside":
        problems = [f"{where}: celeriac has it now; drop its note"] if works else []
        return Row(name, SAME if works else OUTSIDE, "" if works else note.text), problems, False
    if note is not None and note.kind == "stub":
        problems = [] if found.present else [f"{where}: noted as a stub but absent; say absent"]
        return Row(name, ABSENT, note.text), problems, False
    if works:
        if note is not None and exact:
            return Row(name, SAME, ""), [f"{where}: celeriac has it now; drop its note"], False
        if found.default_differs is not None:  # declared so in config/settings.py
            text = f"Default differs (Celery: `{found.default_differs}`); see [Configuration]"
            return Row(name, DIFFERS, text + "(configuration.md)."), [], False
        return Row(name, SAME, ""), [], False
    if note is not None:  # absent (or inert) with a reason
        return Row(name, ABSENT, note.text), [], False
    if found.inert is not None and group in ("settings", "cli-options"):  # argued in code
        return Row(name, ABSENT, found.inert[0].upper() + found.inert[1:] + "."), [], False
    detail = f" ({found.inert})" if found.inert else ""
    return Row(name, ABSENT, ""), [f"{where} is not offered{detail} and has no reason"], False


def classify(surface: dict[str, Any], answers: dict[str, dict[str, Found]]) -> Verdict:
    anchors = differences_anchors()
    verdict = Verdict({}, [], [])
    for group, names in surface["groups"].items():
        rows = verdict.rows.setdefault(group, [])
        for name in names:
            row, problems, pending = judge(group, name, answers[group][name], anchors)
            rows.append(row)
            verdict.problems += problems
            if pending:
                verdict.pending.append(f"{group}: {name}")
    verdict.problems += unused_notes(surface, verdict.rows)
    return verdict


def unused_notes(surface: dict[str, Any], rows: dict[str, list[Row]]) -> list[str]:
    """Notes that name nothing in Celery's surface, and patterns no unoffered name matches."""
    problems = []
    for group, notes in compat_notes.NOTES.items():
        if group not in surface["groups"]:
            problems.append(f"notes for an unknown group {group!r}")
            continue
        names = set(surface["groups"][group])
        unoffered = {r.name for r in rows[group] if r.status in (ABSENT, OUTSIDE)}
        for key in notes:
            if any(c in key for c in "*?["):
                if not fnmatch.filter(unoffered, key):
                    problems.append(f"{group}: the pattern {key!r} matches no unoffered name")
            elif key not in names:
                problems.append(f"{group}: {key!r} is not a Celery name of this group")
    for group, pending in compat_notes.PENDING.items():
        problems += [
            f"{group}: {n!r} (PENDING) is not a Celery name"
            for n in sorted(pending - set(surface["groups"].get(group, [])))
        ]
    return problems


# -- the page ---------------------------------------------------------------------------------
def counts(rows: list[Row]) -> tuple[int, int, int, int]:
    rows = [r for r in rows if r.status != OUTSIDE]
    same = sum(r.status == SAME for r in rows)
    differs = sum(r.status == DIFFERS for r in rows)
    return len(rows), same, differs, len(rows) - same - differs


def percent(rows: list[Row]) -> str:
    total, same, differs, _ = counts(rows)
    if not total:
        return "-"
    tenths = 1000 * (same + differs) // total  # rounded down: 89.96 % is not 90 %
    return f"{tenths // 10}.{tenths % 10} %"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(surface: dict[str, Any], verdict: Verdict) -> str:
    lines = [HEADER.format(version=surface["celery_version"]).rstrip("\n"), ""]
    lines += ["| Group | Celery names | same | differs on purpose | not offered | offered |"]
    lines += ["|---|---|---|---|---|---|"]
    everything: list[Row] = []
    for group, rows in verdict.rows.items():
        title, _ = GROUPS[group]
        total, same, differs, absent = counts(rows)
        anchor = slug(title)
        lines.append(
            f"| [{title}](#{anchor}) | {total} | {same} | {differs} | {absent} | {percent(rows)} |"
        )
        everything += rows
    total, same, differs, absent = counts(everything)
    lines.append(
        f"| **All** | **{total}** | **{same}** | **{differs}** | **{absent}** | "
        f"**{percent(everything)}** |"
    )
    outside = sum(r.status == OUTSIDE for r in everything)
    if outside:
        lines += [
            "",
            f"Not counted above: the {outside} settings of Celery result stores "
            "celeriac does not ship (Cassandra, S3, Azure, GCS, MongoDB, ...), each listed "
            "with its group as **not counted**: a project on Redis, RabbitMQ or a SQL "
            "database never sets them.",
        ]
    for group, rows in verdict.rows.items():
        title, intro = GROUPS[group]
        lines += ["", f"## {title}", "", intro, "", "| Name | Status | Notes |", "|---|---|---|"]
        lines += [f"| `{_cell(r.name)}` | {r.status} | {_cell(r.note)} |" for r in rows]
    return "\n".join(lines) + "\n"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
    return text.replace(" ", "-")


# -- command line -----------------------------------------------------------------------------
def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def build(args: argparse.Namespace) -> tuple[dict[str, Any], Verdict]:
    if args.refresh_celery:
        surface = refresh_surface(celery_python(args.celery_python))
    else:
        surface = load_surface()
    return surface, classify(surface, survey(surface["groups"]))


def stats(verdict: Verdict) -> str:
    everything = [r for rows in verdict.rows.values() for r in rows]
    lines = [f"{group}: {percent(rows)} of {len(rows)}" for group, rows in verdict.rows.items()]
    total, same, differs, absent = counts(everything)
    lines.append(
        f"all: {percent(everything)} offered ({same} same + {differs} differ of {total}; "
        f"{absent} not offered)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if stale or unargued")
    parser.add_argument("--strict", action="store_true", help="with --check: pending fails too")
    parser.add_argument("--stats", action="store_true", help="print the figures, write nothing")
    parser.add_argument(
        "--refresh-celery", action="store_true", help=f"re-read Celery into {_shown(SURFACE)}"
    )
    parser.add_argument("--celery-python", help="a python with Celery 5.7 (default: a new venv)")
    args = parser.parse_args(argv)
    surface, verdict = build(args)
    if args.stats:
        print(stats(verdict))
        return 0
    text = render(surface, verdict)
    for line in verdict.pending:
        print(f"being built, no reason argued: {line}", file=sys.stderr)
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        problems = list(verdict.problems)
        if args.strict:
            problems += [f"{p} is not offered and has no reason" for p in verdict.pending]
        if current != text:
            problems.append(f"{_shown(DOC)} is stale: run `python scripts/gen_compat_doc.py`")
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        print(f"{_shown(DOC)} is up to date")
        return 0
    DOC.write_text(text, encoding="utf-8")
    for problem in verdict.problems:
        print(problem, file=sys.stderr)
    print(f"wrote {_shown(DOC)}; {stats(verdict).splitlines()[-1]}")
    return 1 if verdict.problems else 0


if __name__ == "__main__":
    sys.exit(main())
