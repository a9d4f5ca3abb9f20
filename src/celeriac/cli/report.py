"""``celeriac report``: versions, platform, URLs and changed settings for a bug report.

Edge layer (cli). The text is ``app.bugreport()`` (``celeriac.app.report``): passwords in
URLs and values of secret-looking settings are masked, so the output can be pasted.
"""

from __future__ import annotations

import click

from celeriac.cli.base import CLIContext


@click.command("report", short_help="Print what to include in a bug report.")
@click.pass_obj
def report_command(obj: CLIContext) -> None:
    """Print celeriac's and Python's versions, the platform, the broker and result URLs
    (passwords masked) and every setting that differs from its default (secrets masked)."""
    app = obj.load_app()
    app.finalize()  # imports the task modules, as a worker would: their settings count
    click.echo(app.bugreport(), nl=False)


__all__ = ["report_command"]
