"""One party's connection to the simulated broker: its Transport.

Each replica and client talks to the ``SimBus`` through a ``SimConnection`` of
its own, which implements ``shimeji.core.transport.Transport``. While the
connection is cut (``SimBus.disconnect``), or after it is closed, every
operation raises ``BrokerUnavailable``; the bus restores a cut connection's
queues, bindings and consumers when it reconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shimeji.core.events import Event
from shimeji.core.transport import BrokerUnavailable, Delivery, Message, QueueInfo, QueueLocked

if TYPE_CHECKING:
    from shimeji.sim.bus import SimBus, SimConsumer

__all__ = ["SimConnection"]


class SimConnection:
    """One client's or replica's connection to the SimBus: a Transport of its own.

    While the connection is cut (``SimBus.disconnect``) every operation on it
    raises ``BrokerUnavailable``.
    """

    __slots__ = ("bus", "closed", "connected", "consumers", "label")

    def __init__(self, bus: SimBus, label: str) -> None:
        self.bus = bus
        self.label = label
        self.connected = True
        self.closed = False
        self.consumers: list[SimConsumer] = []

    def connect(self) -> None:
        self._check("connect")

    def close(self) -> None:
        if self.closed:
            return
        for consumer in self.consumers:
            consumer.suspended = False
            self.bus.close_consumer(consumer, reason="its connection closed")
        self.bus.drop_exclusive_queues(self.label, "its connection closed")
        self.closed = True

    def _check(self, what: str) -> None:
        if self.closed:
            raise BrokerUnavailable(f"{self.label} cannot {what}: its connection is closed")
        if not self.connected:
            raise BrokerUnavailable(f"{self.label} cannot {what}: its connection is cut")
        if self.bus.outage:
            raise BrokerUnavailable(f"{self.label} cannot {what}: the broker is down")

    def _check_owner(self, name: str, what: str) -> None:
        # An exclusive queue is for the connection that declared it only.
        queue = self.bus.queues.get(name)
        if queue is not None and queue.owner is not None and queue.owner != self.label:
            raise QueueLocked(name, what)

    def declare_exchange(self, name: str) -> None:
        self._check("declare an exchange")
        self.bus.declare_exchange(name)

    def declare_queue(
        self,
        name: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        expires: float | None = None,
        queue_type: str = "classic",
        delivery_limit: int | None = None,
        exclusive: bool = False,
    ) -> None:
        self._check("declare a queue")
        self._check_owner(name, "declare")
        self.bus.declare_queue(
            name,
            durable=durable,
            auto_delete=auto_delete,
            expires=expires,
            queue_type=queue_type,
            delivery_limit=delivery_limit,
            owner=self.label if exclusive else None,
        )

    def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        self._check("bind a queue")
        self._check_owner(queue, "bind")
        self.bus.bind_queue(queue, exchange, routing_key)

    def delete_queue(self, name: str) -> None:
        self._check("delete a queue")
        self._check_owner(name, "delete")
        self.bus.delete_queue(name)

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        self._check("delete an exchange")
        exchange = self.bus.exchanges.get(name)
        if exchange is not None and not (if_unused and exchange.in_use):
            del self.bus.exchanges[name]

    def inspect_queue(self, name: str) -> QueueInfo | None:
        self._check("inspect a queue")
        self._check_owner(name, "inspect")
        queue = self.bus.queues.get(name)
        return None if queue is None else QueueInfo(len(queue.ready), len(queue.consumers))

    def publish(
        self,
        message: Message,
        *,
        mandatory: bool,
        on_lost: Callable[[BrokerUnavailable], None] | None = None,
    ) -> None:
        # The simulated broker holds what it accepted: on_lost is never called.
        bus = self.bus
        if self.connected and not self.closed and bus.outage_end_us is None:
            bus.publish(message, mandatory=mandatory)
            return
        if not self.connected or bus.outage:
            self.bus.tracer.emit(
                Event(
                    kind="publish_refused",
                    replica=self.label,
                    correlation_id=message.correlation_id,
                    detail="connection cut" if not self.connected else "broker down",
                )
            )
        self._check("publish")
        self.bus.publish(message, mandatory=mandatory)

    def consume(
        self,
        queue: str,
        on_delivery: Callable[[Delivery], None],
        *,
        prefetch: int,
        label: str,
        auto_ack: bool = False,
        on_lost: Callable[[str], None] | None = None,
    ) -> SimConsumer:
        self._check("consume")
        self._check_owner(queue, "consume from")
        consumer = self.bus.consume(
            queue, on_delivery, prefetch=prefetch, label=label, auto_ack=auto_ack
        )
        consumer.connection = self
        consumer.on_lost = on_lost
        self.consumers.append(consumer)
        return consumer

    def __repr__(self) -> str:
        state = "connected" if self.connected else "cut"
        return f"<SimConnection {self.label} {state}>"
