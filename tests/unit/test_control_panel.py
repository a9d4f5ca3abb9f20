"""Celery's older registry, ``Panel.register``: a command registered with it is answered
by a worker like one registered with ``control_command`` / ``inspect_command``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery
from celeriac.control.registry import COMMANDS, commands_of
from celeriac.testing import start_worker
from celeriac.worker.control import Panel

NODE = "panel@unit"


@pytest.fixture
def panel_commands() -> Iterator[None]:
    @Panel.register
    def wave(state: Any, who: str = "you") -> dict[str, str]:
        """Wave at someone."""
        return {"ok": f"{state.hostname} waves at {who}"}

    @Panel.register(type="inspect", name="queue_names", alias="queues_named")
    def names(state: Any) -> list[str]:
        return list(state.consumer.queues)

    yield
    for name in ("wave", "queue_names", "queues_named"):
        COMMANDS.pop(name, None)


def test_a_worker_answers_commands_registered_with_panel(panel_commands: None) -> None:
    app = Celery("panel", broker="memory://", set_as_current=False)
    with start_worker(app, hostname=NODE):
        waved = app.control.broadcast(
            "wave", {"who": "Ann"}, reply=True, destination=[NODE], timeout=10.0
        )
        assert waved == [{NODE: {"ok": f"{NODE} waves at Ann"}}]
        for name in ("queue_names", "queues_named"):  # the name and the alias
            replies = app.control.broadcast(name, reply=True, destination=[NODE], timeout=10.0)
            assert replies == [{NODE: ["celery"]}]
    assert "wave" in commands_of("control") and "queue_names" in commands_of("inspect")
    assert Panel.data["wave"].__name__ == "wave" and "queues_named" in Panel.data
    assert commands_of("control")["wave"].help == "Wave at someone."


def test_panel_refuses_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="type is 'control' or 'inspect'"):
        Panel.register(type="query")
