"""A queue the broker does not have raises QueueNotFound; inspect_queue gives a QueueInfo.

The broker tests run with ``--shimeji-transport=amqp`` (or ``--amqp-uri``);
the translation tests need no broker.
"""

from __future__ import annotations

import logging
import time
import uuid

import amqp.exceptions
import pytest

from shimeji.amqp_adapter import AmqpTransport
from shimeji.amqp_adapter.errors import broker_errors
from shimeji.config import Settings
from shimeji.core.transport import BrokerUnavailable, Message, QueueInfo, QueueNotFound, Unroutable

URI = "amqp://guest:secret@127.0.0.1:1/"


def test_not_found_naming_a_queue_is_queue_not_found():
    """NOT_FOUND naming a queue becomes QueueNotFound where the caller names the queue."""
    with (
        pytest.raises(QueueNotFound, match="cannot bind queue 'q'") as caught,
        broker_errors("binding queue 'q'", URI, queue="q", verb="bind"),
    ):
        raise amqp.exceptions.NotFound("NOT_FOUND - no queue 'q' in vhost '/'")
    assert caught.value.queue == "q"


def test_not_found_naming_an_exchange_stays_broker_unavailable():
    """A missing exchange is not a missing queue; without a queue named, neither is anything."""
    with (
        pytest.raises(BrokerUnavailable),
        broker_errors("binding queue 'q'", URI, queue="q", verb="bind"),
    ):
        raise amqp.exceptions.NotFound("NOT_FOUND - no exchange 'x' in vhost '/'")
    with pytest.raises(BrokerUnavailable), broker_errors("publishing 'k'", URI):
        raise amqp.exceptions.NotFound("NOT_FOUND - no queue 'q' in vhost '/'")


@pytest.fixture
def transport(amqp_uri):
    made = AmqpTransport(Settings.from_config({"AMQP_URI": amqp_uri}), name="qnf")
    yield made
    made.close()


def test_consuming_from_a_missing_queue_raises_and_the_transport_works_on(transport, caplog):
    """consume() on a queue never declared raises QueueNotFound at once; the consumer
    connection is not dropped (no reconnection), and consuming from a real queue works."""
    missing = f"test-missing-{uuid.uuid4().hex}"
    transport.connect()
    with caplog.at_level(logging.INFO, logger="shimeji.amqp"):
        with pytest.raises(QueueNotFound) as caught:
            transport.consume(missing, lambda delivery: None, prefetch=1, label="qnf")
        assert caught.value.queue == missing
        assert transport.consuming

        queue = f"test-present-{uuid.uuid4().hex}"
        transport.declare_queue(queue, durable=False, auto_delete=True, expires=30)
        try:
            received = []
            consumer = transport.consume(queue, received.append, prefetch=1, label="qnf")
            transport.publish(Message(b"hello", routing_key=queue), mandatory=True)
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [d.message.body for d in received] == [b"hello"]
            received[0].ack()
            assert transport.consuming
            consumer.close()
        finally:
            transport.delete_queue(queue)
    assert not [r for r in caplog.records if "reconnect" in r.getMessage()]


def test_binding_a_missing_queue_raises_and_unroutable_is_unchanged(transport):
    """bind_queue() on a queue never declared raises QueueNotFound; publishing to an
    exchange that does not exist is still Unroutable; the publisher works on."""
    missing = f"test-missing-{uuid.uuid4().hex}"
    with pytest.raises(QueueNotFound, match="cannot bind queue"):
        transport.bind_queue(missing, "amq.topic", "some.key")
    with pytest.raises(Unroutable):
        transport.publish(
            Message(b"{}", routing_key="k", exchange=f"test-no-exchange-{uuid.uuid4().hex}"),
            mandatory=True,
        )
    assert transport.inspect_queue(missing) is None


def test_inspect_queue_gives_a_queue_info(transport):
    """inspect_queue() returns QueueInfo(ready, consumers), a tuple, or None."""
    queue = f"test-inspect-{uuid.uuid4().hex}"
    transport.declare_queue(queue, durable=False, auto_delete=True, expires=30)
    try:
        transport.publish(Message(b"one", routing_key=queue), mandatory=True)
        info = transport.inspect_queue(queue)
        assert isinstance(info, QueueInfo)
        ready, consumers = info
        assert (ready, consumers) == (info.ready, info.consumers) == (1, 0)
    finally:
        transport.delete_queue(queue)
    assert transport.inspect_queue(queue) is None
