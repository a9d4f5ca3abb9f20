"""Property tests: the headers and properties any AMQP publisher may set are read into a
usable id, counts and priority, never an exception (a reader raising here would stop the
worker's fetch, not just refuse one message)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from aiormq import spec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from celeriac.brokers.amqp import topology as t
from celeriac.brokers.amqp.fields import Incoming, incoming, number, text

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
    | st.decimals() | st.datetimes(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
NAMES = [t.H_ID, t.H_DELIVERIES, "x-delivery-count"]
header_maps = st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=8), values, max_size=4)


@settings(max_examples=150, deadline=1000, database=None)
@given(header_maps | values, values, values, values, values)
@example({t.H_DELIVERIES: float("inf"), "x-delivery-count": float("nan")}, None, None, None, 0)
@example({t.H_ID: b"\xff\xfe"}, None, None, None, 1)
@example({t.H_DELIVERIES: decimal.Decimal("Infinity")}, None, None, None, 0)
@example({t.H_DELIVERIES: 10**400}, 300, None, None, 0)
def test_any_properties_read_as_an_id_counts_and_a_priority(
    headers: Any, priority: Any, correlation_id: Any, message_id: Any, redelivered: Any
) -> None:
    properties = spec.Basic.Properties(
        headers=headers, priority=priority, correlation_id=correlation_id, message_id=message_id
    )
    found = incoming(properties, redelivered)
    assert isinstance(found, Incoming)
    assert isinstance(found.message_id, str)
    assert found.before >= 0 and found.lost >= 0 and 0 <= found.priority <= t.MAX_PRIORITY


def test_readers_name_what_they_could_read() -> None:
    assert number("7") == 7 and number(decimal.Decimal("2.5")) == 2 and number(True) is None
    assert number(float("nan")) is None and number(dt.date(2024, 1, 1)) is None
    assert text(b"caf\xc3\xa9") == "café" and text(b"\xff") == "\ufffd" and text(5) == "5"
