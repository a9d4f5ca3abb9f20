"""``celeriac shell``: an interactive Python with the app, its tasks and celeriac's names.

Edge layer (cli). IPython or bpython when installed (or asked for with ``-I``/``-B``),
else the standard interactive console (``--python`` forces it). Names given: ``app``
and ``celery`` (the app), ``celeriac``'s canvas (``chain``, ``group``, ``chord``,
``chunks``, ``xmap``, ``xstarmap``, ``signature``, ``subtask``), ``Task``, and each
registered task by its function's name unless ``-T``.
"""

from __future__ import annotations

import code
import importlib
from typing import Any

import click

import celeriac
from celeriac.cli.base import CLIContext, CLIError

_CANVAS = ("chain", "chord", "chunks", "group", "signature", "subtask", "xmap", "xstarmap")


def shell_namespace(app: Any, with_tasks: bool = True) -> dict[str, Any]:
    """The names the shell starts with."""
    names: dict[str, Any] = {"app": app, "celery": app, "celeriac": celeriac, "Task": celeriac.Task}
    names.update({name: getattr(celeriac, name) for name in _CANVAS})
    if with_tasks:
        for name in sorted(app.tasks.regular()):
            task = app.tasks[name]
            names[getattr(task, "__name__", name.rpartition(".")[2])] = task
    return names


def _ipython(names: dict[str, Any]) -> None:
    from IPython import start_ipython  # type: ignore[import-not-found]  # optional, untyped

    start_ipython(argv=[], user_ns=names)


def _bpython(names: dict[str, Any]) -> None:
    import bpython  # type: ignore[import-not-found]  # optional, no stubs

    bpython.embed(names)


def _python(names: dict[str, Any]) -> None:
    try:
        import readline
        import rlcompleter

        readline.set_completer(rlcompleter.Completer(names).complete)
        readline.parse_and_bind("tab: complete")
    except ImportError:  # no readline on this platform: a console without completion
        pass
    code.interact(local=names, banner=f"celeriac {celeriac.__version__} shell", exitmsg="")


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


@click.command("shell", short_help="Start a Python shell with the app and its tasks.")
@click.option("-I", "--ipython", is_flag=True, help="Use IPython (it must be installed).")
@click.option("-B", "--bpython", is_flag=True, help="Use bpython (it must be installed).")
@click.option("--python", "plain", is_flag=True, help="Use Python's own interactive console.")
@click.option("-T", "--without-tasks", is_flag=True, help="Do not add the tasks to the names.")
@click.pass_obj
def shell_command(
    obj: CLIContext, ipython: bool, bpython: bool, plain: bool, without_tasks: bool
) -> None:
    """Start an interactive shell with these names loaded: app (also celery), celeriac,
    Task, chain, chord, chunks, group, signature, subtask, xmap, xstarmap, and every
    registered task by its function's name (unless -T). IPython or bpython is used when
    installed, else Python's console."""
    app = obj.load_app()
    app.finalize()  # import the task modules named in imports/include
    names = shell_namespace(app, with_tasks=not without_tasks)
    for flag, module, run in ((ipython, "IPython", _ipython), (bpython, "bpython", _bpython)):
        if flag:
            if not _installed(module):
                raise CLIError(f"{module} is not installed: pip install {module.lower()}")
            run(names)
            return
    if not plain:
        for module, run in (("IPython", _ipython), ("bpython", _bpython)):
            if _installed(module):
                run(names)
                return
    _python(names)


__all__ = ["shell_command", "shell_namespace"]
