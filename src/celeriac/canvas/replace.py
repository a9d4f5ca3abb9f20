"""A running task handing its place to a signature (``Task.replace``), and a chord member
adding tasks to its chord (``Task.add_to_chord``).

App core, part of ``canvas``: imports the canvas kinds, ``exceptions`` and ``result``; sees
tasks only as types (``task.py`` sits above and calls these). The replacement takes the
task's id, its callbacks and errbacks, the rest of its chain and its chord membership, so
whoever holds the task's ``AsyncResult`` gets the replacement's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.canvas.workflows import chain, chord, group
from celeriac.exceptions import Ignore, ImproperlyConfigured
from celeriac.result import AsyncResult

if TYPE_CHECKING:
    from celeriac.task import Task

#: The built-in task that turns a group's list of results into one task's result, so a
#: group can take a single task's place (its id, its callbacks, the next chain step).
ACCUMULATE = "celeriac.accumulate"


def _single_result(sig: Signature) -> Signature:
    """A group becomes a chord whose body returns the group's list of results; so does a
    chain's last group."""
    accumulate = sig.app.signature(ACCUMULATE, kwargs={"index": 0})
    if isinstance(sig, group):
        return chord(sig, accumulate, app=sig._app_or_none())
    if isinstance(sig, chain) and isinstance(sig.tasks[-1], group):
        sig.tasks[-1] = chord(sig.tasks[-1], accumulate, app=sig._app_or_none())
    return sig


def _checked(task: Task[..., Any], sig: Any) -> Signature:
    if not isinstance(sig, Mapping):
        raise TypeError(
            f"{task.name}.replace() takes a signature (add.s(1, 2), a chain, group or "
            f"chord), not {type(sig).__name__}"
        )
    made: Signature = maybe_signature(sig, app=task.app).clone()
    if "chord" in made.options:
        raise ImproperlyConfigured(
            "A signature replacing a task must not be part of a chord: the replacement "
            "takes the replaced task's chord membership; pass the signature alone"
        )
    if isinstance(made, chain) and not made.tasks:
        raise ImproperlyConfigured("Cannot replace a task with an empty chain")
    return made


def replacement(task: Task[..., Any], sig: Any) -> Signature:
    """What takes ``task``'s place: ``sig`` with the running call's id (on its last task),
    callbacks, errbacks, chord membership and the rest of its chain.

    Applied here and now (``apply``, eager mode), the replacement's value becomes the
    task's return value, and the task's own callbacks and chain follow it as usual; so
    only the id is passed on.
    """
    request = task.request
    made = _single_result(_checked(task, sig))
    if request.is_eager:
        made.freeze(request.id, root_id=request.root_id)
        return made
    app = task.app
    for callback in request.callbacks or ():
        made.link(app.signature(callback))
    for errback in request.errbacks or ():
        made.link_error(app.signature(errback))
    made.freeze(
        request.id,
        group_id=request.group,
        chord=request.chord,
        group_index=request.group_index,
        root_id=request.root_id,
    )
    if request.chain:  # travels reversed: the next step is last
        steps = [app.signature(step) for step in reversed(request.chain)]
        made = chain(made, *steps, app=app)
    return made


def apply_replacement(task: Task[..., Any], sig: Signature) -> Any:
    """Apply the replacement: eagerly, returning its value; otherwise send it and end the
    running task with ``Ignore`` (nothing is recorded for it: the replacement records
    the result under the same id)."""
    if task.request.is_eager:
        return sig.apply().get(disable_sync_subtasks=False)
    sig.apply_async()
    raise Ignore("Replaced by new task")


def add_to_chord(task: Task[..., Any], sig: Any, lazy: bool) -> Any:
    """Make the chord ``task`` belongs to wait for ``sig`` too; its result goes to the body
    right after ``task``'s. Sent at once, or returned to be sent (``lazy``)."""
    request = task.request
    if not request.chord or not request.group or request.id is None:
        raise ValueError(
            f"{task.name}.add_to_chord(): the current task is not a member of any chord "
            f"(only a task in a chord's header, sent to a worker, can add to its chord)"
        )
    made: Signature = maybe_signature(sig, app=task.app)
    if isinstance(made, (group, chord)):
        raise TypeError(
            f"{task.name}.add_to_chord() adds one task (or a chain, whose last task joins "
            f"the chord); add each member of a group with its own add_to_chord() call"
        )
    result = cast(
        AsyncResult[Any],
        made.freeze(
            group_id=request.group,
            chord=request.chord,
            group_index=request.group_index,
            root_id=request.root_id,
        ),
    )
    task.backend.add_to_chord(request.group, str(result.id), added_by=request.id)
    return made if lazy else made.apply_async()
