"""The transport contract: what a message broker must do for shimeji.

A transport moves bytes and keeps broker state (exchanges, queues, bindings,
consumers, prefetch, acks, redelivery). It knows nothing of RPC: every rule of
the protocol lives in ``shimeji.core``. The simulator's bus and the kombu
adapter implement this contract as equals, so the code above them cannot tell
which one it runs on.

The exceptions a transport raises, and no others:

- ``BrokerUnavailable``: the broker cannot be reached, or the transport is
  closed; retrying may help (``MessageRefused``: the broker refused a
  message it had routed);
- ``Unroutable``: a mandatory message matched no queue;
- ``QueueNotFound``: an operation named a queue the broker does not have;
- ``shimeji.exceptions.ConfigurationError``: an exchange or queue exists with
  other settings;
- ``shimeji.exceptions.UnserializableValueError``: headers the wire cannot
  carry.

What a broker may lose after the fact is reported, not raised: see
``publish(on_lost=)`` and ``consume(on_lost=)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from shimeji.core.exceptions import ShimejiError

__all__ = [
    "NO_HEADERS",
    "BrokerUnavailable",
    "Consumer",
    "Delivery",
    "Message",
    "MessageRefused",
    "QueueInfo",
    "QueueLocked",
    "QueueNotFound",
    "Transport",
    "Unroutable",
]


class Unroutable(ShimejiError):
    """A mandatory publish matched no queue (the broker returned the message)."""

    def __init__(self, exchange: str, routing_key: str) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        super().__init__(f"no queue is bound to {exchange!r} for routing key {routing_key!r}")


class QueueNotFound(ShimejiError):
    """An operation named a queue the broker does not have (never declared, or
    deleted since)."""

    def __init__(self, queue: str, what: str = "use") -> None:
        self.queue = queue
        super().__init__(f"cannot {what} queue {queue!r}: the broker has no such queue")


class QueueLocked(ShimejiError):
    """An operation named an exclusive queue that belongs to another connection
    (a non-reliable broadcast handler's queue belongs to its replica's)."""

    def __init__(self, queue: str, what: str = "use") -> None:
        self.queue = queue
        super().__init__(
            f"cannot {what} queue {queue!r}: it is exclusive to the connection that "
            "declared it; only that connection may use it, until it closes"
        )


class BrokerUnavailable(ShimejiError):
    """The broker cannot be reached or refused the operation; retrying may help."""


class MessageRefused(BrokerUnavailable):
    """The broker refused a message it had accepted for routing (a nack): it will
    not be delivered. Retrying later may work."""


class QueueInfo(NamedTuple):
    """What ``Transport.inspect_queue`` tells of a queue."""

    ready: int  # messages waiting to be delivered
    consumers: int


#: The headers of a message that carries none, shared (replies carry none).
NO_HEADERS: Mapping[str, Any] = MappingProxyType({})


@dataclasses.dataclass(slots=True, unsafe_hash=True)
class Message:
    """One AMQP message as shimeji sends it: a body of bytes and its properties.

    Treat a message as immutable once made (``dataclasses.replace`` makes a changed
    copy): a publisher, the broker and the trace may all hold it. It is not
    frozen only because two are made for every call (a request and its reply)
    and a frozen class costs four times as much to make; it compares and
    hashes by its fields, as a frozen one would.
    """

    body: bytes
    routing_key: str
    exchange: str = ""
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    headers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    correlation_id: str | None = None
    reply_to: str | None = None
    delivery_mode: int = 2  # persistent


@dataclasses.dataclass(slots=True, eq=False)
class Delivery:
    """A message handed to a consumer, to be settled exactly once.

    ``malformed`` says why the message could not be read in full (properties
    or routing key that do not decode, on RabbitMQ): ``message`` then holds
    what could be salvaged, and the consumer must not trust the rest.

    ``payload`` is the body as the entrypoint that consumed it decoded it
    (kombu's ``message.payload``, which nameko's custom event handlers read
    in ``handle_result``); None until it has been decoded. ``headers`` are
    the message's.
    """

    message: Message
    delivery_tag: int
    redelivered: bool
    consumer: Consumer
    malformed: str | None = None
    payload: Any = None

    @property
    def headers(self) -> Mapping[str, Any]:
        """The message's headers (kombu's ``message.headers``)."""
        return self.message.headers

    def ack(self) -> None:
        """The message is done with; the broker forgets it."""
        self.consumer.settle(self, "ack")

    def requeue(self) -> None:
        """Give the message back to its queue, to be redelivered."""
        self.consumer.settle(self, "requeue")

    def reject(self) -> None:
        """Refuse the message for good (dead-lettered where the queue says so)."""
        self.consumer.settle(self, "reject")

    def settle(self, outcome: str) -> None:
        """``ack``, ``requeue`` or ``reject``, by name."""
        if outcome not in ("ack", "requeue", "reject"):
            raise ValueError(f"unknown outcome {outcome!r}: use ack, requeue or reject")
        self.consumer.settle(self, outcome)


class Consumer(Protocol):
    """A subscription to one queue, created by ``Transport.consume``."""

    label: str

    def settle(self, delivery: Delivery, outcome: str) -> None:
        """Ack, requeue or reject one of this consumer's deliveries."""

    def cancel(self) -> None:
        """Stop new deliveries. Deliveries already made stay unacked and can be settled."""

    def close(self) -> None:
        """Cancel and give every unsettled delivery back to the queue, as a dying
        connection does."""


class Transport(Protocol):
    """What the RPC protocol needs from a broker: one party's connection to it.

    Operations connect on first use; ``connect()`` does it now. After
    ``close()`` every operation raises ``BrokerUnavailable``.
    """

    def connect(self) -> None:
        """Connect now; ``BrokerUnavailable`` if the broker cannot be reached."""

    def close(self) -> None:
        """Close every consumer (their unsettled deliveries go back to their
        queues) and the connection; idempotent."""

    def declare_exchange(self, name: str) -> None:
        """Declare a durable topic exchange (idempotent)."""

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
        """Declare a queue (idempotent). ``expires``: seconds unused before the
        broker deletes it. ``queue_type="quorum"``: a queue replicated across the
        nodes of a cluster (durable), which drops (or dead-letters) a message
        given back more than ``delivery_limit`` times. ``exclusive``: only this
        connection may consume it, and it is deleted when the connection
        closes or drops (the transport declares it again on reconnecting)."""

    def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        """Route messages whose key matches ``routing_key`` (a topic pattern) to
        ``queue`` (``QueueNotFound`` if it was never declared)."""

    def delete_queue(self, name: str) -> None:
        """Delete a queue and the messages in it (no error if it is gone)."""

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        """Delete an exchange, and the bindings to it (no error if it is gone).
        ``if_unused``: only if no queue is bound to it (else nothing happens)."""

    def inspect_queue(self, name: str) -> QueueInfo | None:
        """How many messages wait in a queue and how many consumers it has; None
        if there is no such queue."""

    def publish(
        self,
        message: Message,
        *,
        mandatory: bool,
        on_lost: Callable[[BrokerUnavailable], None] | None = None,
    ) -> None:
        """Publish and return once the broker has it. Raise ``Unroutable`` for a
        mandatory message that matched no queue, ``BrokerUnavailable`` when the
        broker cannot take it.

        With ``on_lost``, the transport may return as soon as the message is
        routed, before the broker has confirmed that it holds it; if the broker
        then refuses it (``MessageRefused``) or may have lost it (the connection
        dropped before the confirm: ``BrokerUnavailable``), it calls
        ``on_lost(error)`` once, from any thread.
        """

    def consume(
        self,
        queue: str,
        on_delivery: Callable[[Delivery], None],
        *,
        prefetch: int,
        label: str,
        auto_ack: bool = False,
        on_lost: Callable[[str], None] | None = None,
    ) -> Consumer:
        """Subscribe to ``queue`` (``QueueNotFound`` if there is no such queue); at
        most ``prefetch`` deliveries unsettled at once (0: no limit). ``label``
        names the consumer in traces and logs. With ``auto_ack`` a delivery is
        settled as it is handed over (``ack()`` is then a no-op).

        The subscription outlives a lost connection: the transport connects
        again, declares the queue again and resumes. When the queue had
        vanished meanwhile, with the messages in it (a broker restart drops
        non-durable queues), it calls ``on_lost(reason)`` once it consumes again.
        """
