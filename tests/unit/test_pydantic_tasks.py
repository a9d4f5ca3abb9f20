"""``@app.task(pydantic=True)``: model arguments validated in, a returned model dumped
out, models the caller passes sent as plain data; the options Celery 5.7 has."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from celeriac import Celery, states
from celeriac.testing import drain


class Order(BaseModel):
    item: str
    quantity: int


class Receipt(BaseModel):
    total: float
    when: dt.date


class Tagged(BaseModel):
    tag: str
    note: str | None = None

    @field_validator("tag")
    @classmethod
    def prefixed(cls, value: str, info: Any) -> str:
        return f"{info.context['prefix']}{value}:{info.context['celery_task_name']}"


def test_dict_arguments_become_models_and_a_returned_model_becomes_data(app: Celery) -> None:
    seen: list[Any] = []

    @app.task(pydantic=True)
    def checkout(order: Order, note: str | None = None) -> Receipt:
        seen.append(order)
        return Receipt(total=order.quantity * 2.5, when=dt.date(2026, 1, 2))

    result = checkout.delay({"item": "pear", "quantity": "4"}, note="gift")
    drain(app)

    assert seen == [Order(item="pear", quantity=4)]  # lax by default: "4" became 4
    assert result.get(timeout=1) == {"total": 10.0, "when": "2026-01-02"}  # mode="json"


def test_models_the_caller_passes_are_sent_as_plain_data(app: Celery) -> None:
    @app.task(pydantic=True)
    def checkout(order: Order) -> int:
        assert isinstance(order, Order)
        return order.quantity

    result = checkout.delay(Order(item="fig", quantity=3))
    drain(app)
    assert result.get(timeout=1) == 3

    signature_result = checkout.s(order=Order(item="fig", quantity=5)).delay()
    drain(app)
    assert signature_result.get(timeout=1) == 5


def test_a_validation_error_fails_the_task_naming_the_field(app: Celery) -> None:
    ran: list[Any] = []

    @app.task(pydantic=True)
    def checkout(order: Order) -> None:
        ran.append(order)

    result = checkout.delay({"item": "pear", "quantity": "many"})
    drain(app)

    assert ran == [] and result.state == states.FAILURE
    with pytest.raises(Exception, match="quantity") as caught:
        result.get(timeout=1)
    assert type(caught.value).__name__ == "ValidationError"


def test_strict_context_and_dump_kwargs(app: Celery) -> None:
    @app.task(
        name="shop.tag",
        pydantic=True,
        pydantic_strict=True,
        pydantic_context={"prefix": "#"},
        pydantic_dump_kwargs={"exclude_none": True},
    )
    def tag(value: Tagged) -> Tagged:
        return value

    assert tag.apply(({"tag": "a"},)).get() == {"tag": "#a:shop.tag"}  # note left out
    with pytest.raises(ValidationError):
        tag.apply(({"tag": 5},), throw=True)  # strict: no int -> str coercion


def test_bound_and_async_tasks(app: Celery) -> None:
    @app.task(bind=True, pydantic=True)
    def bound(self: Any, order: Order) -> Order:
        return Order(item=self.name, quantity=order.quantity)

    @app.task(pydantic=True)
    async def later(order: Order) -> Order:
        return order

    assert bound.apply(({"item": "x", "quantity": 1},)).get()["item"] == bound.name
    assert later.apply(({"item": "y", "quantity": 2},)).get() == {"item": "y", "quantity": 2}


def test_pydantic_options_need_pydantic_true(app: Celery) -> None:
    with pytest.raises(TypeError, match=r"pydantic_strict= .* needs pydantic=True"):

        @app.task(pydantic_strict=True)
        def plain(order: Order) -> None: ...


def test_without_pydantic_installed_the_error_names_the_extra(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celeriac.exceptions import ImproperlyConfigured

    monkeypatch.setitem(sys.modules, "pydantic", None)  # as if it were not installed
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'celeriac\[pydantic\]'"):

        @app.task(pydantic=True)
        def checkout(order: dict[str, Any]) -> None: ...
