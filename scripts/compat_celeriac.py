"""Which of Celery's public names celeriac has, each looked up where a Celery user looks.

Used by ``scripts/gen_compat_doc.py``: ``survey(groups)`` takes Celery's surface (group →
names) and answers, per name, whether celeriac has it at the matching place
(``celeriac.<name>``, ``app.<member>``, ``celeriac.signals.<name>``, ...) and, when it has
it, whether it only looks offered: a setting declared but marked not in effect, or a
signal that nothing in celeriac sends.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Found:
    """celeriac's side of one name: there at the matching place, and if so, in effect."""

    present: bool
    inert: str | None = None  # present but does nothing: why (read from the code)
    default_differs: str | None = None  # a setting whose default is not Celery's: Celery's


ABSENT = Found(False)
PRESENT = Found(True)


def has_member(obj: Any, name: str) -> bool:
    """``name`` on ``obj`` (class or instance attribute), without running properties if
    possible; a property that raises still counts as a member."""
    if obj is None:
        return False
    try:
        inspect.getattr_static(obj, name)
        return True
    except AttributeError:
        pass
    try:
        return hasattr(obj, name)
    except Exception:  # a property that exists but fails without a running service
        return True


def has_path(path: str) -> bool:
    """A dotted path: a module, or an attribute of a module."""
    try:
        importlib.import_module(path)
        return True
    except ImportError:
        pass
    module, _, name = path.rpartition(".")
    try:
        return has_member(importlib.import_module(module), name)
    except ImportError:
        return False


def celeriac_path(celery_path: str) -> str:
    return "celeriac" + celery_path[len("celery") :]


def _signal_senders() -> str:
    """The source of every celeriac module but the one declaring the signals."""
    import celeriac

    root = Path(celeriac.__file__).parent
    return "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*.py"))
        if path != root / "signals.py"
    )


def signal_found(name: str, senders: str) -> Found:
    """A signal counts when some module other than ``celeriac.signals`` uses it."""
    import celeriac.signals as signals

    if not has_member(signals, name):
        return ABSENT
    if name == "Signal":
        return PRESENT
    used = re.search(rf"\bsignals\.{name}\b", senders) or re.search(
        rf"from celeriac\.signals import [^\n]*\b{name}\b", senders
    )
    return PRESENT if used else Found(True, "declared, but nothing in celeriac sends it")


def setting_found(name: str) -> Found:
    from celeriac.config.settings import SETTINGS

    setting = SETTINGS.get(name)
    if setting is None:
        return ABSENT
    if setting.not_in_effect:
        return Found(True, f"declared but not in effect: {setting.not_in_effect}")
    return Found(True, default_differs=setting.differs)


def _loaded_commands() -> dict[str, Any]:
    """Every top-level command, imported: the CLI loads its subcommands lazily, so
    ``cli.commands`` alone holds only those something has used so far."""
    import click

    from celeriac.cli import cli

    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def _cli_commands() -> set[str]:
    """celeriac's commands, subcommands of groups, and choices of a command's arguments."""
    import click

    names: set[str] = set()
    for name, command in _loaded_commands().items():
        names.add(name)
        if isinstance(command, click.Group):
            names |= {f"{name} {sub}" for sub in command.commands}
        for param in command.params:
            if isinstance(param, click.Argument) and isinstance(param.type, click.Choice):
                names |= {f"{name} {choice}" for choice in param.type.choices}
    return names


def _option_answers() -> dict[str, list[tuple[set[str], Found]]]:
    """Per command (``celery`` and ``worker``): each celeriac option's names and whether it
    works; an option declared only to be refused (its help says so) does not."""
    import click

    from celeriac.cli import cli
    from celeriac.cli.refused import REFUSED

    reasons = {name: reason for names, _, _, reason in REFUSED for name in names}
    answers: dict[str, list[tuple[set[str], Found]]] = {}
    worker = _loaded_commands()["worker"]
    for command, params in (("celery", cli.params), ("worker", worker.params)):
        for param in params:
            if not isinstance(param, click.Option):
                continue
            names = {*param.opts, *param.secondary_opts}
            refused = (param.help or "").startswith("Refused")
            help_text = (param.help or "").removeprefix("Refused: ").rstrip(".")
            reason = next((reasons[n] for n in names if n in reasons), help_text)
            found = Found(True, f"refused: {reason}") if refused else PRESENT
            answers.setdefault(command, []).append((names, found))
    return answers


def option_found(name: str, answers: dict[str, list[tuple[set[str], Found]]]) -> Found:
    """``worker --concurrency``: found when celeriac's option shares a name with Celery's."""
    command, _, option = name.partition(" ")
    for names, found in answers.get(command, []):
        if option in names:
            return found
    return ABSENT


@contextlib.contextmanager
def objects() -> Iterator[dict[str, Any]]:
    """One of each object whose members are compared, on an in-process app."""
    from celeriac import AsyncResult, Celery, GroupResult, ResultSet, chain, chord, group

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = Celery("compat", broker="memory://", backend="cache+memory://", set_as_current=False)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    control = app.control
    try:
        yield {
            "app": app,
            "task": add,
            "signature": add.s(1, 2),
            "chain": chain(add.s(1, 2), add.s(3)),
            "group": group(add.s(1, 2), add.s(3, 4)),
            "chord": chord([add.s(1, 2)], add.s(3)),
            "asyncresult": AsyncResult("id", app=app),
            "resultset": ResultSet([], app=app),
            "groupresult": GroupResult("id", [], app=app),
            "control": control,
            "inspect": control.inspect() if has_member(control, "inspect") else None,
        }
    finally:
        app.close()


MODULE_GROUPS = {
    "top-level": "celeriac",
    "states": "celeriac.states",
    "exceptions": "celeriac.exceptions",
    "pytest": "celeriac.contrib.pytest",
}


def survey(groups: dict[str, list[str]]) -> dict[str, dict[str, Found]]:
    """celeriac's answer for every name of every group of Celery's surface."""
    senders = _signal_senders()
    commands = _cli_commands()
    answers: dict[str, dict[str, Found]] = {}
    with objects() as instances:
        for group, names in groups.items():
            lookup = _lookup(group, instances, senders, commands)
            answers[group] = {name: lookup(name) for name in names}
    return answers


def _lookup(
    group: str, instances: dict[str, Any], senders: str, commands: set[str]
) -> Callable[[str], Found]:
    def found(present: bool) -> Found:
        return PRESENT if present else ABSENT

    if group in instances:
        obj = instances[group]
        return lambda name: found(has_member(obj, name))
    if group in MODULE_GROUPS:
        module = importlib.import_module(MODULE_GROUPS[group])
        return lambda name: found(has_member(module, name))
    if group == "signals":
        return lambda name: signal_found(name, senders)
    if group == "settings":
        return setting_found
    if group == "cli":
        return lambda name: found(name in commands)
    if group == "cli-options":
        options = _option_answers()
        return lambda name: option_found(name, options)
    if group in ("testing", "paths"):
        return lambda name: found(has_path(celeriac_path(name)))
    raise ValueError(f"no lookup for the group {group!r}: add one to scripts/compat_celeriac.py")
