"""The trace's records: messages kept packed, read back equal, never walked by the collector."""

from __future__ import annotations

import gc
from types import MappingProxyType

import pytest

from shimeji.core.transport import NO_HEADERS, Message
from shimeji.sim.clock import VirtualClock
from shimeji.sim.trace import Trace

from .services import CalculatorService

HEADERS = [
    pytest.param(NO_HEADERS, id="none (a reply)"),
    pytest.param({"nameko.call_id_stack": ["a.b.1", "c.d.2"]}, id="the call id stack alone"),
    pytest.param({"nameko.call_id_stack": []}, id="an empty stack"),
    pytest.param(
        {"nameko.language": "fr", "nameko.n": 3, "nameko.call_id_stack": ["x"]},
        id="context data and the stack",
    ),
    pytest.param({"nameko.tags": ["a", {"b": [1]}]}, id="nested values"),
    pytest.param({}, id="an empty dict"),
    pytest.param(MappingProxyType({"k": "v"}), id="another mapping"),
    pytest.param({"nameko.call_id_stack": ("a", "b")}, id="a stack as a tuple"),
]


def _step(trace: Trace, kind: str, message: Message) -> None:
    trace.step(kind, "client", "calculator", "add", None, message.correlation_id, "", message)


@pytest.mark.parametrize("headers", HEADERS)
def test_a_message_reads_back_equal_with_its_headers_of_the_same_types(headers):
    """A message recorded by a step reads back equal to it, its headers of the same
    types (a list stays a list, NO_HEADERS stays that very object)."""
    trace = Trace(VirtualClock())
    message = Message(
        b'{"x":1}',
        "calculator.add",
        "nameko-rpc",
        headers=headers,
        correlation_id="c-1",
        reply_to="r-1",
        delivery_mode=1,
    )
    _step(trace, "publish", message)
    read = trace.events[0].message
    assert read == message
    assert type(read.headers) is type(headers)
    for name, value in headers.items():
        assert type(read.headers[name]) is type(value)
        assert read.headers[name] == value
    if headers is NO_HEADERS:
        assert read.headers is NO_HEADERS


def test_one_message_in_several_steps_reads_back_as_one_object():
    """Steps naming one message (published, delivered) give one Message when read,
    even with other messages recorded between them."""
    trace = Trace(VirtualClock())
    first = Message(b"1", "a.b", headers={"nameko.call_id_stack": ["s"]}, correlation_id="1")
    second = Message(b"2", "a.b", headers={"nameko.call_id_stack": ["s"]}, correlation_id="2")
    for message in (first, second, first, second):
        _step(trace, "publish", message)
    events = trace.events
    assert events[0].message is events[2].message and events[0].message == first
    assert events[1].message is events[3].message and events[1].message == second


def test_a_message_subclass_is_kept_as_it_is():
    """A message of another class is recorded as it is (not packed)."""

    class Tagged(Message):
        pass

    trace = Trace(VirtualClock())
    message = Tagged(b"1", "a.b")
    _step(trace, "publish", message)
    assert trace.events[0].message is message


def test_the_records_of_calls_are_not_tracked_by_the_collector(sim_cluster):
    """Once collections have seen them, the records of a call's steps hold nothing
    the collector tracks: a long trace adds nothing to what every full
    collection walks."""
    sim_cluster.add_service(CalculatorService)
    sim_cluster.trace.clear()
    for i in range(50):
        sim_cluster.rpc.calculator.add(i, 1)
    records = list(sim_cluster.trace._emitted)
    assert len(records) == 50 * 7
    for _ in range(3):  # a nested tuple is untracked one collection after what it holds
        gc.collect()
    assert not [record for record in records if gc.is_tracked(record)]
    # And they read back as the steps they were.
    assert [event.kind for event in sim_cluster.trace.events[:7]] == [
        "publish",
        "deliver",
        "worker_start",
        "worker_end",
        "reply",
        "ack",
        "deliver",
    ]
