"""``celeriac upgrade settings FILE``: rename Celery 3's upper-case settings in a file.

Edge layer (cli). A line that assigns an old name (``CELERY_ALWAYS_EAGER = True``) gets
the new name (``task_always_eager``), or with ``--django`` the ``CELERY_``-prefixed form
a Django settings module reads (``CELERY_TASK_ALWAYS_EAGER``). The file is kept as
``FILE.orig`` first unless ``--no-backup``. Names elsewhere (say in a string naming an
environment variable) are left as written.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click

from celeriac.config.oldnames import django_name, new_name

# An upper-case name assigned at the start of a line: ``NAME = ...`` or ``NAME: type = ...``.
_ASSIGNED = re.compile(r"^(\s*)([A-Z][A-Z0-9_]*)(?=\s*(?::[^=]*)?=(?!=))")


def upgrade_line(line: str, django: bool) -> tuple[str, str] | None:
    """``(old name, new name)`` when ``line`` assigns an old setting name, else None."""
    match = _ASSIGNED.match(line)
    if match is None:
        return None
    new = new_name(match[2])
    if new is None:
        return None
    return match[2], django_name(new) if django else new


def upgrade_text(text: str, django: bool) -> tuple[str, list[tuple[str, str]]]:
    """The upgraded text and the ``(old, new)`` names renamed, in order."""
    renamed: list[tuple[str, str]] = []
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        names = upgrade_line(line, django)
        if names is not None and names[0] != names[1]:
            renamed.append(names)
            line = line.replace(names[0], names[1], 1)  # the first word: the one assigned
        out.append(line)
    return "".join(out), renamed


@click.group("upgrade", short_help="Upgrade settings from older Celery versions.")
def upgrade_group() -> None:
    """Upgrade a project's files from older Celery versions."""


@upgrade_group.command("settings")
@click.argument("filename", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--django", is_flag=True,
    help="Write CELERY_-prefixed upper-case names (a Django settings module read with "
    "config_from_object(..., namespace='CELERY')).",
)  # fmt: skip
@click.option("--no-backup", is_flag=True, help="Do not keep the original as FILENAME.orig.")
def settings_command(filename: Path, django: bool, no_backup: bool) -> None:
    """Rename Celery 3's upper-case settings (CELERY_ALWAYS_EAGER, BROKER_URL, CELERYD_*)
    in FILENAME to the lower-case names (task_always_eager, broker_url, worker_*)."""
    with filename.open(encoding="utf-8", newline="") as file:  # keep the line endings
        text = file.read()
    click.echo(f"processing {filename}...", err=True)
    upgraded, renamed = upgrade_text(text, django)
    if not renamed:
        click.echo("No old setting names found: nothing to change.")
        return
    if not no_backup:
        backup = filename.with_name(filename.name + ".orig")
        shutil.copyfile(filename, backup)
        click.echo(f"writing backup to {backup}...", err=True)
    with filename.open("w", encoding="utf-8", newline="") as file:
        file.write(upgraded)
    for old, new in renamed:
        click.echo(f"  {old} -> {new}")
    click.echo(f"Renamed {len(renamed)} setting(s) in {filename}.")


__all__ = ["settings_command", "upgrade_group", "upgrade_line", "upgrade_text"]
