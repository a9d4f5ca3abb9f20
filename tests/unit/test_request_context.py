"""``celeriac.app.task.Context``: Celery's request class, built from mappings and keywords,
read by attribute and with ``get``; a ``Request`` like ``self.request``."""

from __future__ import annotations

from typing import Any

from celeriac import Celery
from celeriac.app.task import Context
from celeriac.request import Request


def test_fields_come_from_mappings_and_keywords() -> None:
    context = Context({"id": "t1", "retries": 1}, retries=2, task="proj.add", args=(1, 2))
    fields = (context.id, context.retries, context.task, context.args)
    assert fields == ("t1", 2, "proj.add", (1, 2))
    assert context.get("id") == "t1" and context.get("missing", "default") == "default"
    assert context.called_directly and context.is_eager is False  # Celery's defaults
    assert isinstance(context, Request)


def test_other_names_are_attributes_and_custom_headers() -> None:
    context = Context(id="t2", tenant="acme")
    assert context.tenant == "acme" and context.get("tenant") == "acme"
    assert context.headers == {"tenant": "acme"}
    given = Context(id="t3", tenant="acme", headers={"trace": "x"})
    assert given.headers == {"trace": "x"} and given.tenant == "acme"


def test_update_and_time_limits() -> None:
    context = Context(timelimit=(30, 20))
    assert (context.time_limit, context.soft_time_limit) == (30, 20)
    context.update({"retries": 4}, hostname="w1@host", tenant="b")
    assert (context.retries, context.hostname, context.tenant) == (4, "w1@host", "b")
    assert Context().time_limit is None
    assert repr(Context(id="t4")).startswith("<Context: {")


def test_a_context_serves_as_a_tasks_request() -> None:
    app = Celery("ctx", broker="memory://", set_as_current=False)

    @app.task(bind=True)
    def who(self: Any) -> tuple[str, int, str]:
        return self.request.id, self.request.retries, self.request.get("tenant")

    who.push_request(Context(id="t5", retries=3, tenant="c").__dict__)
    try:
        assert who() == ("t5", 3, "c")
    finally:
        who.pop_request()
