"""Exclusive queues (a non-reliable broadcast handler's) on RabbitMQ: declared by
the connection that consumes them, locked to others, declared and bound again
after that connection drops; event exchanges are deleted only when unused."""

from __future__ import annotations

import time
import uuid

import amqp.exceptions
import kombu
import pytest

from shimeji.amqp_adapter import AmqpTransport
from shimeji.config import Settings
from shimeji.core.transport import Message, QueueLocked
from shimeji.events import BROADCAST, event_handler
from shimeji.runner import ServiceRunner

from .broker import clean_broker
from .cuttable import CuttableProxy

SEEN: list[tuple[str, int]] = []


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:8]
    return {"exchange": f"test-excl-{tag}", "queue": f"test-excl-{tag}", "source": f"src_{tag}"}


@pytest.fixture
def pair(broker_uri, names):
    settings = Settings.from_config({"AMQP_URI": broker_uri})
    owner, other = AmqpTransport(settings, name="owner"), AmqpTransport(settings, name="other")
    yield owner, other
    owner.close()
    other.close()
    clean_broker(broker_uri, names["queue"], exchange=names["exchange"])


def test_an_exclusive_queue_is_its_consumers_alone(pair, names):
    """The owner consumes and inspects it; another connection gets QueueLocked
    (not a broker error); cancelling the consumer deletes it."""
    owner, other = pair
    exchange, queue = names["exchange"], names["queue"]
    owner.declare_exchange(exchange)
    owner.declare_queue(queue, auto_delete=True, exclusive=True)
    owner.bind_queue(queue, exchange, "key")
    got = []
    consumer = owner.consume(queue, got.append, prefetch=1, label="owner", auto_ack=True)
    other.publish(Message(body=b"{}", routing_key="key", exchange=exchange), mandatory=True)
    wait_for(lambda: got)
    assert owner.inspect_queue(queue) == (0, 1)
    with pytest.raises(QueueLocked, match="exclusive to the connection"):
        other.inspect_queue(queue)
    with pytest.raises(QueueLocked):
        other.consume(queue, got.append, prefetch=1, label="other")
    consumer.cancel()
    wait_for(lambda: other.inspect_queue(queue) is None)


def exchange_exists(uri, name):
    with kombu.Connection(uri) as conn:
        channel = conn.channel()
        try:
            channel.exchange_declare(name, "topic", passive=True)
        except amqp.exceptions.NotFound:
            return False
        return True


def test_delete_exchange_if_unused_spares_an_exchange_with_bindings(broker_uri, pair, names):
    owner, other = pair
    exchange, queue = names["exchange"], names["queue"]
    owner.declare_exchange(exchange)
    owner.declare_queue(queue, auto_delete=False)
    owner.bind_queue(queue, exchange, "key")
    other.delete_exchange(exchange, if_unused=True)
    assert exchange_exists(broker_uri, exchange)
    other.publish(Message(body=b"{}", routing_key="key", exchange=exchange), mandatory=True)
    assert other.inspect_queue(queue) == (1, 0)
    owner.delete_queue(queue)
    other.delete_exchange(exchange, if_unused=True)
    assert not exchange_exists(broker_uri, exchange)


def test_a_broadcast_handler_gets_events_again_after_its_connection_drops(broker_uri, names):
    """The exclusive queue dies with the replica's connection; the transport
    declares and binds it again when it reconnects, and events flow again."""
    source = names["source"]

    class Listener:
        name = f"listener_{source}"

        @event_handler(source, "ping", handler_type=BROADCAST, reliable_delivery=False)
        def on_ping(self, payload):
            SEEN.append(("ping", payload["n"]))

    SEEN.clear()
    proxy = CuttableProxy(broker_uri)
    runner = ServiceRunner(
        {"AMQP_URI": proxy.uri, "RPC_RETRY_POLICY": {"interval_start": 0.1, "interval_step": 0.1}}
    )
    runner.add_service(Listener)
    sender = AmqpTransport(Settings.from_config({"AMQP_URI": broker_uri}), name="sender")
    exchange = f"{source}.events"

    def ping(n):
        sender.publish(
            Message(
                body=f'{{"n": {n}}}'.encode(),
                routing_key="ping",
                exchange=exchange,
                content_type="application/json",
            ),
            mandatory=False,
        )

    try:
        runner.start()
        sender.declare_exchange(exchange)
        ping(1)
        wait_for(lambda: ("ping", 1) in SEEN)
        proxy.cut()
        time.sleep(0.5)
        proxy.restore()
        n = 2
        # Events sent before the queue is back are lost (it is not reliable):
        # keep sending until one arrives.
        deadline = time.monotonic() + 20
        while not any(n_seen >= 2 for _, n_seen in SEEN):
            assert time.monotonic() < deadline, "no event after the reconnection"
            ping(n)
            n += 1
            time.sleep(0.2)
    finally:
        runner.stop()
        proxy.close()
        sender.close()
        clean_broker(broker_uri, exchange=exchange)
