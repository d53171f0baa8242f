"""The simulated broker on its own: routing, prefetch, requeue, expiry."""

from __future__ import annotations

import random

import pytest

from shimeji.core.transport import Message, QueueLocked, Unroutable
from shimeji.sim.bus import SimBus, topic_matches
from shimeji.sim.clock import VirtualClock
from shimeji.sim.scheduler import Scheduler
from shimeji.sim.trace import Trace


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("svc.*", "svc.add", True),
        ("svc.*", "svc.a.b", False),
        ("svc.*", "svc", False),
        ("svc.#", "svc", True),
        ("svc.#", "svc.a.b", True),
        ("#.add", "x.y.add", True),
        ("#", "anything.at.all", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
    ],
)
def test_topic_matching(pattern, key, matches):
    """AMQP topic rules: * is one word, # is zero or more."""
    assert topic_matches(pattern, key) is matches


@pytest.fixture
def bus():
    clock = VirtualClock()
    scheduler = Scheduler(clock, random.Random(0))
    bus = SimBus(scheduler, Trace(clock), latency=0.001)
    bus.declare_exchange("ex")
    bus.declare_queue("q")
    bus.bind_queue("q", "ex", "k.*")
    return bus


def msg(key="k.x", corr="c"):
    return Message(body=b"{}", routing_key=key, exchange="ex", correlation_id=corr)


def test_mandatory_unroutable_raises(bus):
    """A mandatory message no queue takes raises Unroutable; otherwise it is dropped."""
    with pytest.raises(Unroutable):
        bus.publish(msg("other.x"), mandatory=True)
    bus.publish(msg("other.x"), mandatory=False)
    assert bus.tracer.filter("drop")


def test_close_requeues_unacked_as_redelivered(bus):
    """Closing a consumer gives its unacked messages back, marked redelivered."""
    got = []
    first = bus.consume("q", got.append, prefetch=2, label="one")
    for i in range(3):
        bus.publish(msg(corr=f"m{i}"), mandatory=True)
    bus.scheduler.run()
    assert [d.message.correlation_id for d in got] == ["m0", "m1"]
    first.close()
    second_got = []
    bus.consume("q", second_got.append, prefetch=5, label="two")
    bus.scheduler.run()
    assert [(d.message.correlation_id, d.redelivered) for d in second_got] == [
        ("m0", True),
        ("m1", True),
        ("m2", False),
    ]


def test_cancel_keeps_deliveries_ackable(bus):
    """After cancel(), deliveries in hand can still be acked; no new ones arrive."""
    got = []
    consumer = bus.consume("q", got.append, prefetch=1, label="one")
    bus.publish(msg(corr="a"), mandatory=True)
    bus.publish(msg(corr="b"), mandatory=True)
    bus.scheduler.run()
    consumer.cancel()
    got[0].ack()
    bus.scheduler.run()
    assert [d.message.correlation_id for d in got] == ["a"]
    assert len(bus.queues["q"].ready) == 1


def test_expiring_queue_is_deleted_when_unused(bus):
    """A queue with an expiry is deleted after that long without consumers."""
    bus.declare_queue("temp", durable=False, expires=2.0)
    bus.scheduler.run_root_until(1_000_000)
    assert "temp" in bus.queues
    bus.scheduler.run()
    assert "temp" not in bus.queues
    assert bus.scheduler.clock.now_us == 2_000_000


def test_an_exclusive_queue_is_its_connections_alone(bus):
    """Another connection gets QueueLocked, as RabbitMQ's RESOURCE_LOCKED; the queue
    goes when its connection closes."""
    owner, other = bus.connect("owner"), bus.connect("other")
    owner.declare_queue("mine", auto_delete=True, exclusive=True)
    owner.bind_queue("mine", "ex", "k.*")
    owner.consume("mine", lambda delivery: None, prefetch=1, label="owner")
    assert owner.inspect_queue("mine") == (0, 1)
    for attempt in (
        lambda: other.inspect_queue("mine"),
        lambda: other.consume("mine", lambda delivery: None, prefetch=1, label="other"),
        lambda: other.bind_queue("mine", "ex", "other"),
        lambda: other.declare_queue("mine", exclusive=True),
        lambda: other.delete_queue("mine"),
    ):
        with pytest.raises(QueueLocked, match="exclusive to the connection"):
            attempt()
    owner.close()
    assert other.inspect_queue("mine") is None


def test_delete_exchange_if_unused(bus):
    """if_unused spares an exchange a queue is bound to, and deletes it once not."""
    conn = bus.connect("c")
    conn.delete_exchange("ex", if_unused=True)
    assert "ex" in bus.exchanges
    conn.delete_queue("q")
    conn.delete_exchange("ex", if_unused=True)
    assert "ex" not in bus.exchanges


# -- when queued messages are handed over: whenever a consumer has room again, and
# only then (a message joining others in the queue waits behind them) ---------------


def test_an_auto_ack_consumer_with_a_prefetch_limit_gets_every_queued_message(bus):
    """An auto-acked delivery makes room: the next queued message follows it,
    without waiting for another publish."""
    got = []
    bus.consume("q", got.append, prefetch=1, label="one", auto_ack=True)
    for i in range(4):
        bus.publish(msg(corr=f"m{i}"), mandatory=True)
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
        bus.publish(msg(corr=f"m{i}"), mandatory=True)
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
        bus.publish(msg(corr=f"m{i}"), mandatory=True)
    bus.scheduler.run()
    assert got == [("a", "m0", False), ("b", "m1", False), ("a", "m0", True)]
    assert [item.message.correlation_id for item in bus.queues["q"].ready] == ["m2"]
    for delivery in list(held):
        delivery.ack()
    bus.scheduler.run()
    assert got[-1][1] == "m2"
    assert not bus.queues["q"].ready
