"""The ``celeriac`` command group: global options (``-A``, ``-b``, ...) and the app they load.

Edge layer: may import every part of celeriac; nothing imports ``celeriac.cli``. The app
is loaded only when a subcommand needs it, so ``--help`` works with a broken ``-A``.
Every command-line mistake exits with ``EX_USAGE`` (64), as ``worker/exitcodes`` says.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

import click

import celeriac
from celeriac.app.base import Celeriac
from celeriac.app.logsetup import LEVELS
from celeriac.cli import user_options
from celeriac.cli.configmodule import ConfigModuleError, add_config_module
from celeriac.cli.loading import AppLoadError, load_app
from celeriac.exceptions import CeleryCommandException
from celeriac.worker.exitcodes import EX_USAGE


class CLIError(CeleryCommandException):
    """A clear refusal: printed as ``Error: ...``, exit status ``EX_USAGE`` unless a
    subclass or ``exit_code`` says another. Celery's ``CeleryCommandException``, so a
    command of one's own can raise either."""

    exit_code = EX_USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message, type(self).exit_code if exit_code is None else exit_code)


class CommandFailed(CLIError):
    """A command that could not do its work (the broker refused, a task raised): status 1."""

    exit_code = 1


_ARGV = "celeriac.argv"  # ctx.meta keys: the group's arguments, and what follows its options
_REST = "celeriac.rest"


class CeleriacGroup(click.Group):
    """A group whose usage errors (unknown option, bad value) exit with ``EX_USAGE``, and
    which points a group option given after the command (``worker -A proj``) back in front.

    ``lazy_commands`` (name -> ``"module:attribute"``) are imported when first used or
    listed: a worker process loads the worker command's code, not every subcommand's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.lazy_commands:
            module, _, attribute = self.lazy_commands[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGV] = list(args)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        ctx.meta[_REST] = list(args)
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and ctx.parent is None:  # the app's user options go on it
            command = ctx.meta[user_options.COMMAND] = user_options.private_copy(command)
        return name, command, rest

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
        except click.NoSuchOption as exc:
            hint = misplaced_hint(self, ctx, exc.option_name)
            if hint is None:
                exc.exit_code = EX_USAGE  # type: ignore[misc]  # per instance, by design
                raise
            error = click.UsageError(hint, exc.ctx)
            error.exit_code = EX_USAGE  # type: ignore[misc]  # per instance, by design
            raise error from None
        except click.UsageError as exc:  # raised while parsing a subcommand's options
            exc.exit_code = EX_USAGE  # type: ignore[misc]  # per instance, by design
            raise


def misplaced_hint(group: click.Group, ctx: click.Context, option: str) -> str | None:
    """For one of ``group``'s own options given after its command: where it goes, with
    the command line rewritten (``celeriac -A proj worker``); None for any other option."""
    param = next(
        (p for p in group.params if isinstance(p, click.Option) and option in p.opts),
        None,
    )
    argv, rest = ctx.meta.get(_ARGV), ctx.meta.get(_REST)
    if param is None or not argv or not rest:
        return None
    head = argv[: len(argv) - len(rest)]
    moved, tail = take_option(rest[1:], option, takes_value=not param.is_flag)
    prog = ctx.find_root().info_name or "celeriac"
    # Bundled with other flags (-EA), it cannot be moved alone: show its place instead.
    fixed = shlex.join([*head, *moved, rest[0], *tail]) if moved else f"{option} ... {rest[0]}"
    return (
        f"{option} is an option of '{prog}', not of '{rest[0]}': it goes before the "
        f"command: {prog} {fixed}"
    )


def take_option(args: list[str], option: str, *, takes_value: bool) -> tuple[list[str], list[str]]:
    """``(the option's words, the other words)``: ``-A proj``, ``--app=proj`` or
    ``-Aproj`` taken out of ``args`` (its first occurrence)."""
    for index, arg in enumerate(args):
        size = 0
        if arg == option:
            size = 2 if takes_value else 1
        elif takes_value and arg.startswith(option + "=" if option.startswith("--") else option):
            size = 1  # the value is in the same word
        if size:
            return args[index : index + size], args[:index] + args[index + size :]
    return [], args


@dataclass
class CLIContext:
    """The group's options, handed to subcommands as ``ctx.obj``."""

    app_spec: str | None = None
    broker: str | None = None
    result_backend: str | None = None
    loglevel: str | None = None
    config: str | None = None  # --config: a settings module under the app's own
    quiet: bool = False  # -q: no banner, no "N nodes online." summary
    no_color: bool = False  # -C: the worker's log lines are not coloured
    _app: Celeriac | None = field(default=None, repr=False)
    _load_error: CLIError | None = field(default=None, repr=False)

    def load_app(self) -> Celeriac:
        """The ``-A`` app with ``-b``/``--result-backend`` applied (loaded once)."""
        if self._load_error is not None:  # the app's module is not imported twice
            raise self._load_error
        if self._app is None:
            if not self.app_spec:
                raise CLIError("no app given: pass -A/--app (e.g. 'celeriac -A proj worker')")
            try:
                app = load_app(self.app_spec)
            except AppLoadError as exc:
                self._load_error = CLIError(str(exc))
                raise self._load_error from exc
            self.use_app(app)
        assert self._app is not None
        return self._app

    def early_app(self) -> Celeriac | None:
        """The app, loaded before the command's options are read (its ``user_options``
        may add some); None without ``-A``, or when it does not load: the command that
        needs it reports why (``--help`` still works)."""
        if self._app is None and not self.app_spec:
            return None
        try:
            return self.load_app()
        except CLIError:
            return None

    def use_app(self, app: Celeriac) -> None:
        """Run the commands for ``app``, with ``-b``/``--result-backend`` applied."""
        if self.config:
            try:
                add_config_module(app, self.config)
            except ConfigModuleError as exc:
                raise CLIError(str(exc)) from exc
        # Above CELERY_BROKER_URL / CELERY_RESULT_BACKEND too, as Celery's options are.
        if self.broker:
            app.conf.override("broker_url", self.broker)
        if self.result_backend:
            app.conf.override("result_backend", self.result_backend)
        self._app = app


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
    "--config", metavar="MODULE",
    help="Settings module read under the app's own settings (e.g. proj.celeryconfig).",
)  # fmt: skip
@click.option(
    "--workdir",
    type=click.Path(exists=True, file_okay=False),
    help="Change to this directory before loading the app.",
)
@click.option("-l", "--loglevel", type=LOGLEVEL, help="Default log level for subcommands.")
@click.option("-C", "--no-color", is_flag=True, help="No colours in the worker's log lines.")
@click.option("-q", "--quiet", is_flag=True, help="No banner and no summary lines.")
@click.option(
    "--loader", metavar="CLASS",
    help="The app's loader class, 'module:Class' (sets CELERY_LOADER before the app loads).",
)  # fmt: skip
@click.option(
    "--skip-checks", is_flag=True, envvar="SKIP_CHECKS",
    help="Skip Django's system checks when a worker starts (env SKIP_CHECKS).",
)  # fmt: skip
@click.version_option(celeriac.__version__, "--version", prog_name="celeriac")
@click.pass_context
def cli(
    ctx: click.Context,
    app_spec: str | None,
    broker: str | None,
    result_backend: str | None,
    workdir: str | None,
    loglevel: str | None,
    config: str | None = None,
    no_color: bool = False,
    quiet: bool = False,
    skip_checks: bool = False,
    loader: str | None = None,
) -> None:
    """celeriac: a task queue with Celery's API and production-safe defaults."""
    if workdir:
        os.chdir(workdir)
    if skip_checks:  # read by the Django fix-up when the worker starts, as Celery's is
        os.environ["CELERIAC_SKIP_CHECKS"] = "true"
    if loader:  # read by apps created from here on (the -A app among them), as Celery's is
        os.environ["CELERY_LOADER"] = loader
    put_cwd_on_path()
    preset = ctx.obj  # app.start(): the app it was called on, unless -A names another
    ctx.obj = CLIContext(app_spec, broker, result_backend, loglevel, config, quiet, no_color)
    if isinstance(preset, Celeriac) and not app_spec:
        ctx.obj.use_app(preset)
    app = ctx.obj.early_app()
    if app is not None:
        user_options.attach(ctx, app)


__all__ = [
    "LOGLEVEL",
    "CLIContext",
    "CLIError",
    "CeleriacGroup",
    "cli",
    "misplaced_hint",
    "put_cwd_on_path",
    "take_option",
]
