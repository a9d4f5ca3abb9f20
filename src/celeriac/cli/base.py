"""The ``celeriac`` command group: global options (``-A``, ``-b``, ...) and the app they load.

Edge layer: may import every part of celeriac; nothing imports ``celeriac.cli``. The app
is loaded only when a subcommand needs it, so ``--help`` works with a broken ``-A``.
Every command-line mistake exits with ``EX_USAGE`` (64), as ``worker/exitcodes`` says.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import click

import celeriac
from celeriac.app.base import Celeriac
from celeriac.cli.loading import AppLoadError, load_app
from celeriac.worker.exitcodes import EX_USAGE
from celeriac.worker.logsetup import LEVELS


class CLIError(click.ClickException):
    """A clear refusal: printed as ``Error: ...``, exit status ``EX_USAGE``."""

    exit_code = EX_USAGE


class CeleriacGroup(click.Group):
    """A group whose usage errors (unknown option, bad value) exit with ``EX_USAGE``."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = EX_USAGE  # type: ignore[misc]  # per instance, by design
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # raised while parsing a subcommand's options
            exc.exit_code = EX_USAGE  # type: ignore[misc]
            raise


@dataclass
class CLIContext:
    """The group's options, handed to subcommands as ``ctx.obj``."""

    app_spec: str | None = None
    broker: str | None = None
    result_backend: str | None = None
    loglevel: str | None = None
    _app: Celeriac | None = field(default=None, repr=False)

    def load_app(self) -> Celeriac:
        """The ``-A`` app with ``-b``/``--result-backend`` applied (loaded once)."""
        if self._app is None:
            if not self.app_spec:
                raise CLIError("no app given: pass -A/--app (e.g. 'celeriac -A proj worker')")
            try:
                app = load_app(self.app_spec)
            except AppLoadError as exc:
                raise CLIError(str(exc)) from exc
            if self.broker:
                app.conf.broker_url = self.broker
            if self.result_backend:
                app.conf.result_backend = self.result_backend
            self._app = app
        return self._app


def put_cwd_on_path() -> None:
    """Let ``-A proj`` find ``./proj``, as Celery does (the console script's path lacks it)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


LOGLEVEL = click.Choice([*LEVELS, "WARN", "FATAL"], case_sensitive=False)


@click.group(cls=CeleriacGroup, name="celeriac", context_settings={"max_content_width": 100})
@click.option(
    "-A",
    "--app",
    "app_spec",
    envvar=["CELERIAC_APP", "CELERY_APP"],
    metavar="APP",
    help="The app: 'proj', 'proj.celery', 'proj:app' (env CELERIAC_APP).",
)
@click.option("-b", "--broker", metavar="URL", help="Broker URL (overrides broker_url).")
@click.option("--result-backend", metavar="URL", help="Result backend URL (overrides setting).")
@click.option(
    "--workdir",
    type=click.Path(exists=True, file_okay=False),
    help="Change to this directory before loading the app.",
)
@click.option("-l", "--loglevel", type=LOGLEVEL, help="Default log level for subcommands.")
@click.version_option(celeriac.__version__, "--version", prog_name="celeriac")
@click.pass_context
def cli(
    ctx: click.Context,
    app_spec: str | None,
    broker: str | None,
    result_backend: str | None,
    workdir: str | None,
    loglevel: str | None,
) -> None:
    """celeriac: a task queue with Celery's API and production-safe defaults."""
    if workdir:
        os.chdir(workdir)
    put_cwd_on_path()
    ctx.obj = CLIContext(app_spec, broker, result_backend, loglevel)


__all__ = ["LOGLEVEL", "CLIContext", "CLIError", "CeleriacGroup", "cli", "put_cwd_on_path"]
