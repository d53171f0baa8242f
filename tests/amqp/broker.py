"""Helpers of the tests that run on RabbitMQ."""

from __future__ import annotations

import json
import time
import uuid

from shimeji.amqp_adapter import AmqpTransport
from shimeji.config import Settings
from shimeji.core.transport import Delivery, Message

__all__ = ["Inbox", "clean_broker"]


def clean_broker(uri: str, *queues: str, exchange: str | None = None) -> None:
    """Delete the queues (and the exchange) a test declared, through a connection
    of its own; what is gone already is no error."""
    cleaner = AmqpTransport(Settings.from_config({"AMQP_URI": uri}), name="cleanup")
    try:
        for queue in queues:
            cleaner.delete_queue(queue)
        if exchange is not None:
            cleaner.delete_exchange(exchange)
    finally:
        cleaner.close()


class Inbox:
    """A reply queue of our own on ``exchange``, read with the transport."""

    def __init__(self, settings: Settings, exchange: str) -> None:
        self.transport = AmqpTransport(settings, name="inbox")
        self.exchange = exchange
        self.routing_key = uuid.uuid4().hex
        self.queue = f"test-inbox-{self.routing_key}"
        self.received: list[Delivery] = []
        self.transport.declare_exchange(self.exchange)
        self.transport.declare_queue(self.queue, durable=False, auto_delete=True, expires=60)
        self.transport.bind_queue(self.queue, self.exchange, self.routing_key)
        self.consumer = self.transport.consume(
            self.queue, self.received.append, prefetch=0, label="inbox", auto_ack=True
        )

    def send(self, routing_key: str, body: bytes, **properties) -> str:
        correlation_id = uuid.uuid4().hex
        properties.setdefault("reply_to", self.routing_key)
        self.transport.publish(
            Message(
                body=body,
                routing_key=routing_key,
                exchange=self.exchange,
                correlation_id=correlation_id,
                **properties,
            ),
            mandatory=True,
        )
        return correlation_id

    def reply_to(self, correlation_id: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for delivery in self.received:
                if delivery.message.correlation_id == correlation_id:
                    return json.loads(delivery.message.body)
            time.sleep(0.01)
        raise AssertionError(f"no reply for {correlation_id} within {timeout}s")

    def close(self) -> None:
        self.consumer.close()
        self.transport.close()
