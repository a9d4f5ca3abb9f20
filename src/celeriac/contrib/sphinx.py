"""``celery.contrib.sphinx``: document tasks with Sphinx's autodoc.

Add ``"celeriac.contrib.sphinx"`` to ``extensions`` in ``conf.py``: ``automodule`` then
documents each ``@app.task`` of a module as a task, with the function's signature and
docstring and a ``(task)`` prefix (``celery_task_prefix``); ``.. autotask::
proj.tasks.add`` documents one, ``.. py:task::`` writes one by hand, and
``:py:task:`proj.tasks.add``` links to it. Needs Sphinx (``pip install sphinx``); on
Sphinx 9 autodoc's class-based mode is turned on, as Celery's extension does.
"""

from __future__ import annotations

import inspect
from typing import Any

from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.domains.python import PyFunction, PyXRefRole
from sphinx.ext.autodoc import FunctionDocumenter

from celeriac.task import Task

__all__ = ["TaskDirective", "TaskDocumenter", "autodoc_skip_member_handler", "setup"]


def _is_task(member: Any) -> bool:
    """A task made from a function (``@app.task``): it has the function as ``__wrapped__``."""
    return isinstance(member, Task) and getattr(member, "__wrapped__", None) is not None


class TaskDocumenter(FunctionDocumenter):
    """Documents a task as its function: signature (without ``self`` for a bound task)
    and docstring."""

    objtype = "task"
    member_order = 11  # after functions

    @classmethod
    def can_document_member(cls, member: Any, membername: str, isattr: bool, parent: Any) -> bool:
        return _is_task(member)

    def format_args(self, **kwargs: Any) -> str:
        wrapped = getattr(self.object, "__wrapped__", None)
        if wrapped is None:
            return ""
        signature = inspect.signature(wrapped)
        parameters = list(signature.parameters.values())
        if parameters and parameters[0].name in ("self", "cls"):  # bind=True: the task itself
            signature = signature.replace(parameters=parameters[1:])
        return str(signature)

    def document_members(self, all_members: bool = False) -> None:
        """A task has no members to document."""

    def check_module(self) -> bool:
        # The task object is made by the decorator; its function tells where it was defined.
        wrapped = getattr(self.object, "__wrapped__", None)
        if wrapped is not None and getattr(wrapped, "__module__", None) == self.modname:
            return True
        return bool(super().check_module())


class TaskDirective(PyFunction):
    """``.. py:task:: name(args)``: a function entry with the task prefix."""

    def get_signature_prefix(self, sig: str) -> list[Any]:
        prefix = str(self.env.config.celery_task_prefix)
        return [addnodes.desc_sig_keyword("", prefix), addnodes.desc_sig_space()]


def autodoc_skip_member_handler(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """Keep tasks that autodoc would skip: a task's docstring is its class's, which autodoc
    takes for an undocumented instance."""
    if _is_task(obj) and skip:
        return False
    return None


def _legacy_autodoc(app: Sphinx, config: Config) -> None:
    """Sphinx 9's rewritten autodoc does not take documenters of one's own: turn its
    class-based mode on (``autodoc_use_legacy_class_based``), as Celery's extension does."""
    if "autodoc_use_legacy_class_based" in config:
        config.autodoc_use_legacy_class_based = True


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("config-inited", _legacy_autodoc, priority=400)  # before autodoc reads it
    app.add_autodocumenter(TaskDocumenter)
    app.add_directive_to_domain("py", "task", TaskDirective)
    app.add_role_to_domain("py", "task", PyXRefRole(fix_parens=True))
    app.add_config_value("celery_task_prefix", "(task)", "env")
    app.connect("autodoc-skip-member", autodoc_skip_member_handler)
    return {"parallel_read_safe": True}
