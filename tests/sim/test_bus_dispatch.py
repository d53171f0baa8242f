"""When the simulated broker hands queued messages over: whenever a consumer has
room again, and only then (a message joining others in the queue waits behind
them)."""

from __future__ import annotations

import random

import pytest

from shimeji.core.transport import Message
from shimeji.sim.bus import SimBus
from shimeji.sim.clock import VirtualClock
from shimeji.sim.scheduler import Scheduler
from shimeji.sim.trace import Trace


@pytest.fixture
def bus():
    clock = VirtualClock()
    scheduler = Scheduler(clock, random.Random(0))
    bus = SimBus(scheduler, Trace(clock), latency=0.001)
    bus.declare_exchange("ex")
    bus.declare_queue("q")
    bus.bind_queue("q", "ex", "k.*")
    return bus


def msg(corr: str) -> Message:
    return Message(body=b"{}", routing_key="k.x", exchange="ex", correlation_id=corr)


def test_an_auto_ack_consumer_with_a_prefetch_limit_gets_every_queued_message(bus):
    """An auto-acked delivery makes room: the next queued message follows it,
    without waiting for another publish."""
    got = []
    bus.consume("q", got.append, prefetch=1, label="one", auto_ack=True)
    for i in range(4):
        bus.publish(msg(f"m{i}"), mandatory=True)
    assert bus.scheduler.run() is False  # nothing left to run
    assert [d.message.correlation_id for d in got] == ["m0", "m1", "m2", "m3"]
    assert bus.scheduler.clock.now_us == 4 * 1_000  # one latency after another
    assert not bus.queues["q"].ready


def test_settlements_hand_queued_messages_round_robin(bus):
    """Three consumers with prefetch 1 and more messages than room: each ack lets
    exactly the next queued message through, to the consumer whose turn it is
    among those with room."""
    got: list[tuple[str, str]] = []

    def consumer(label: str):
        def on_delivery(delivery):
            got.append((label, delivery.message.correlation_id))
            delivery.ack()

        return on_delivery

    for label in ("a", "b", "c"):
        bus.consume("q", consumer(label), prefetch=1, label=label)
    for i in range(9):
        bus.publish(msg(f"m{i}"), mandatory=True)
    assert len(bus.queues["q"].ready) == 6  # three handed over, six wait
    bus.scheduler.run()
    assert [corr for _, corr in got] == [f"m{i}" for i in range(9)]
    assert [label for label, _ in got] == ["a", "b", "c"] * 3
    assert not bus.queues["q"].ready


def test_a_requeued_message_goes_to_the_next_consumer_with_room(bus):
    """A message given back while others wait goes first, to the consumer with room."""
    got: list[tuple[str, str, bool]] = []
    held = []

    def first(delivery):
        got.append(("a", delivery.message.correlation_id, delivery.redelivered))
        if delivery.message.correlation_id == "m0" and not delivery.redelivered:
            delivery.requeue()
        else:
            held.append(delivery)

    def second(delivery):
        got.append(("b", delivery.message.correlation_id, delivery.redelivered))
        held.append(delivery)

    bus.consume("q", first, prefetch=1, label="a")
    bus.consume("q", second, prefetch=1, label="b")
    for i in range(3):
        bus.publish(msg(f"m{i}"), mandatory=True)
    bus.scheduler.run()
    assert got == [("a", "m0", False), ("b", "m1", False), ("a", "m0", True)]
    assert [item.message.correlation_id for item in bus.queues["q"].ready] == ["m2"]
    for delivery in list(held):
        delivery.ack()
    bus.scheduler.run()
    assert got[-1][1] == "m2"
    assert not bus.queues["q"].ready
