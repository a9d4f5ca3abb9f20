"""The checks on every field a worker reads from a task message, made before anything acts
on it: headers and properties (``check_envelope``), then the body with the canvas it
embeds (``check_body``). A bad field raises ``InvalidTaskError`` naming the field, its
value (shortened) and what was expected; the worker dead-letters the message as
``malformed``. Pure logic: imports leaves only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from celeriac.exceptions import InvalidTaskError

_VALUE_LIMIT = 80  # characters of a bad value quoted in an error
_ISO = "an ISO 8601 date and time string (e.g. '2024-05-01T12:30:00+00:00')"


def parse_iso(text: str) -> dt.datetime:
    """An ``eta`` or ``expires`` header as a datetime; ``ValueError`` when it is not one.
    A trailing ``Z`` (UTC, as other languages write it) is read on every Python version."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return dt.datetime.fromisoformat(text)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_LIMIT else text[: _VALUE_LIMIT - 3] + "..."


def _bad(field: str, value: Any, expected: str) -> InvalidTaskError:
    return InvalidTaskError(f"{field} must be {expected}, not {_short(value)}")


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value: Any) -> bool:
    # NaN fails the comparison; infinity means "no limit", as for the settings.
    return value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    )


def _is_timelimit(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_seconds, value))


def _is_iso(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_iso(value)
    except ValueError:
        return False
    return True


def _is_priority(value: Any) -> bool:
    return _is_count(value) and value <= 9


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


def _is_stamps(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)


Rule = tuple[Callable[[Any], bool], str]
_TEXT: Rule = (_is_str, "a string")
_NAMES: Rule = (_is_names, "a list of stamp names (non-empty strings)")

# Header -> (check, what it must be); a header that is absent or null is never checked.
HEADER_RULES: dict[str, Rule] = {
    "shadow": _TEXT,
    "eta": (_is_iso, _ISO),
    "expires": (_is_iso, _ISO),
    "group": (_is_str, "a string (the group id)"),
    "group_index": (_is_count, "a non-negative integer"),
    "retries": (_is_count, "a non-negative integer"),
    # [hard, soft], Celery's order: apply_async(time_limit=..., soft_time_limit=...).
    "timelimit": (_is_timelimit, "a 2-item list [hard, soft] of seconds (a number >= 0 or null)"),
    "root_id": _TEXT,
    "parent_id": _TEXT,
    "argsrepr": _TEXT,
    "kwargsrepr": _TEXT,
    "origin": _TEXT,
    "ignore_result": (lambda value: isinstance(value, bool), "true or false"),
    "idempotency_key": _TEXT,
    "stamped_headers": _NAMES,
    "stamps": (_is_stamps, "an object of stamps (stamp name -> value)"),
}
PROPERTY_RULES: dict[str, Rule] = {
    "priority": (_is_priority, "an integer from 0 to 9"),
    "reply_to": _TEXT,
    "correlation_id": _TEXT,
}


def check_envelope(headers: Mapping[str, Any], properties: Mapping[str, Any]) -> None:
    """Check the headers and properties a worker reads (``id`` and ``task`` are checked
    when the envelope is decoded); other headers are the caller's own and pass as they are."""
    for where, fields, rules in (("header", headers, HEADER_RULES),
                                 ("property", properties, PROPERTY_RULES)):  # fmt: skip
        for name, value in fields.items():
            rule = rules.get(name)
            if rule is not None and value is not None and not rule[0](value):
                raise _bad(f"{where} {name!r}", value, rule[1])


def valid_fields(fields: Mapping[str, Any], rules: Mapping[str, Rule]) -> dict[str, Any]:
    """``fields`` without those that break their rule (``HEADER_RULES``/``PROPERTY_RULES``):
    what a worker may still read from a message it refuses for one bad field."""
    return {
        name: value
        for name, value in fields.items()
        if (rule := rules.get(name)) is None or value is None or rule[0](value)
    }


def check_body(value: Any) -> tuple[list[Any] | tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """Check a decoded body ``[args, kwargs, embed]`` and the canvas the embed carries
    (``callbacks``, ``errbacks``, ``chain``, ``chord``); return its three parts."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise _bad("the task body", value, "a 3-item array [args, kwargs, embed]")
    args, kwargs, embed = value
    if not isinstance(args, (list, tuple)):
        raise _bad("task args", args, "an array")
    _check_kwargs(kwargs, "task kwargs")
    embed = {} if embed is None else embed
    if not isinstance(embed, dict):
        raise _bad("task embed", embed, "an object")
    try:
        for name, check in EMBED_CHECKS.items():
            if embed.get(name) is not None:
                check(embed[name], f"embed {name!r}")
    except RecursionError:
        raise InvalidTaskError("the embedded canvas is nested too deeply to read") from None
    return args, kwargs, embed


def _check_kwargs(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise _bad(field, value, "an object")
    for key in value:
        if not isinstance(key, str):
            raise _bad(f"a key of {field}", key, "a string (a keyword argument's name)")


def check_signature(value: Any, field: str) -> None:
    """A signature in its wire form: a task name, args, kwargs, options; a chain or group
    its ``tasks``, a chord its ``header`` and ``body``, each checked the same way."""
    if not isinstance(value, dict):
        raise _bad(field, value, "a signature (an object with a 'task' name)")
    task = value.get("task")
    if not isinstance(task, str) or not task:
        raise _bad(f"{field}.task", task, "a task name (a non-empty string)")
    for name, (valid, expected) in SIGNATURE_RULES.items():
        item = value.get(name)
        if item is not None and not valid(item):
            raise _bad(f"{field}.{name}", item, expected)
    kwargs = value.get("kwargs") or {}
    _check_kwargs(kwargs, f"{field}.kwargs")
    kind = value.get("subtask_type")
    if kind in ("chain", "group") and kwargs.get("tasks") is not None:
        _check_signatures(kwargs["tasks"], f"{field}.kwargs.tasks")
    elif kind == "chord":  # followups reads both parts
        check_signature(kwargs.get("header"), f"{field}.kwargs.header")
        check_signature(kwargs.get("body"), f"{field}.kwargs.body")
    options = value.get("options") or {}
    for name, check in OPTION_CHECKS.items():
        if options.get(name) is not None:
            check(options[name], f"{field}.options.{name}")


def _check_signatures(value: Any, field: str) -> None:
    if not isinstance(value, (list, tuple)):
        raise _bad(field, value, "a list of signatures")
    for index, item in enumerate(value):
        check_signature(item, f"{field}[{index}]")


def _check_links(value: Any, field: str) -> None:
    """``link`` and ``link_error`` options: one signature or a list of them."""
    if isinstance(value, dict):
        check_signature(value, field)
    else:
        _check_signatures(value, field)


def _checker(rule: Rule) -> Callable[[Any, str], None]:
    def check(value: Any, field: str) -> None:
        if not rule[0](value):
            raise _bad(field, value, rule[1])

    return check


Check = Callable[[Any, str], None]  # raises InvalidTaskError naming the field
EMBED_CHECKS: dict[str, Check] = {
    "callbacks": _check_signatures,
    "errbacks": _check_signatures,
    "chain": _check_signatures,  # the steps still to run, the next one last
    "chord": check_signature,  # the body this task's group completes
}
SIGNATURE_RULES: dict[str, Rule] = {
    "args": (lambda value: isinstance(value, (list, tuple)), "an array"),
    "options": (lambda value: isinstance(value, dict), "an object"),
    "subtask_type": _TEXT,
    "immutable": (lambda value: isinstance(value, bool), "true or false"),
    "chord_size": (_is_count, "a non-negative integer"),
}
# The options followups read when a task ends. The others are apply_async's options,
# which apply_async checks when the signature is sent.
OPTION_CHECKS: dict[str, Check] = {
    "link": _check_links,
    "link_error": _check_links,
    "chain": _check_signatures,
    "chord": check_signature,
    "task_id": _checker(_TEXT),
    "group_id": _checker(_TEXT),
    "group_index": _checker((_is_count, "a non-negative integer")),
    "root_id": _checker(_TEXT),
    "parent_id": _checker(_TEXT),
    "stamped_headers": _checker(_NAMES),
}
