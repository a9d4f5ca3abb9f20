"""``TaskRegistry``: task name -> task, with a helpful error for a missing name."""

from __future__ import annotations

from typing import Any

from celeriac.config.hints import closest
from celeriac.exceptions import NotRegistered


class TaskRegistry(dict[str, Any]):
    def __missing__(self, name: str) -> Any:
        close = closest(name, self)
        hint = f" Did you mean {close!r}?" if close else ""
        raise NotRegistered(
            f"Task {name!r} is not registered.{hint} Make sure the module that defines it is "
            f"imported where it runs: list it in include=/imports=, or call "
            f"app.autodiscover_tasks()."
        )

    def regular(self) -> dict[str, Any]:
        """User tasks (celeriac's own built-in tasks excluded)."""
        return {name: task for name, task in self.items() if not name.startswith("celeriac.")}
