"""``check_call_options``: a call's options checked before it is sent, so a misspelt one
(``countdwon=10``) fails loudly instead of being ignored.

Pure logic beside the canvas: imports the call-option tables, the stamping helpers, the
priority check of the broker seam and the settings' warning class.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from celeriac.brokers.base import check_priority
from celeriac.canvas import stamping
from celeriac.config.conf import NotInEffectWarning
from celeriac.messages.call_options import (
    CALL_OPTIONS,
    NO_EFFECT_CALL_OPTIONS,
    REFUSED_CALL_OPTIONS,
    WORKER_DIRECT_EXCHANGE,
)

IGNORED_CALL_OPTIONS = NO_EFFECT_CALL_OPTIONS | frozenset(REFUSED_CALL_OPTIONS)
# Options whose values the checks below never look at: a call with none but these (most
# calls: no options, or a queue and a countdown) is known good without the checks.
_UNCHECKED = CALL_OPTIONS - {"stamped_headers", "priority", "argsrepr", "kwargsrepr"}


def check_call_options(name: str, options: Mapping[str, Any]) -> None:
    """A misspelt option (``countdwon=10``) fails loudly instead of being ignored."""
    if options.keys() <= _UNCHECKED:
        return
    stamps = stamping.stamp_names(options)
    clash = set(stamps) & (CALL_OPTIONS | IGNORED_CALL_OPTIONS | {"task_id"})
    if clash:
        raise ValueError(
            f"task {name!r}: a stamp may not be named like a call option "
            f"({', '.join(sorted(clash))}); give the stamp another name"
        )
    for option, advice in REFUSED_CALL_OPTIONS.items():
        if options.get(option) is not None:
            raise TypeError(f"task {name!r}: {advice}")
    exchange = options.get("exchange")
    used = (options.get("queue"), options.get("routing_key"), WORKER_DIRECT_EXCHANGE)
    if exchange and exchange not in used:
        warnings.warn(
            f"task {name!r}: exchange={exchange!r} is not used: celeriac sends each message "
            f"to the queue it is routed to (queue=, routing_key= or task_routes), not "
            f"through an exchange of yours",
            NotInEffectWarning,
            stacklevel=4,
        )
    unknown = set(options) - CALL_OPTIONS - IGNORED_CALL_OPTIONS - set(stamps)
    if unknown:
        raise TypeError(
            f"apply_async() got unknown option(s) {', '.join(sorted(unknown))} for task "
            f"{name!r}; see docs/calling.md for the options"
        )
    if options.get("priority") is not None:
        check_priority(options["priority"])
    for shown in ("argsrepr", "kwargsrepr"):
        if not isinstance(options.get(shown, ""), str):
            raise TypeError(
                f"task {name!r}: {shown} is the text shown for the call's arguments (in "
                f"events and the dashboard), so it must be a string, not "
                f"{type(options[shown]).__name__}"
            )


__all__ = ["IGNORED_CALL_OPTIONS", "check_call_options"]
