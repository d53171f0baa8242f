"""Consumers: one subscription to one queue, on its own channel of the consumer connection.

Each consumer has a channel of its own on the consumer connection: its
prefetch is that channel's QoS, and closing the channel gives its unacked
deliveries back to the queue. Only the consumer loop (``loop.py``) touches
that connection, so what other threads ask of a consumer (settling a
delivery, cancelling, closing) is handed to the loop as a command; a worker
therefore never waits for its ack. Deliveries are read, and handed to
``on_delivery``, on the loop's thread.

Auto-acked deliveries (replies) are acked on the broker in batches, one frame
for many, at most ``AUTO_ACK_DELAY`` late (the loop flushes them); until then
a lost connection gives them back, to be delivered again.

When the connection is lost, the broker gives back the deliveries of the
consumer's channel: settling one of them later is a no-op. The loop starts
the consumer again once it is reconnected; if its queue had vanished
meanwhile, the consumer's ``on_lost`` is told.

A consumer is given its loop, the tracer its deliveries and settlements are
reported to, and ``on_gone(queue)``, called when it is cancelled or closed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import amqp
import amqp.exceptions
import kombu

from shimeji.amqp_adapter.errors import CONNECTION_ERRORS
from shimeji.amqp_adapter.wire import from_amqp, open_channel
from shimeji.core.events import Event
from shimeji.core.exceptions import describe
from shimeji.core.quoting import quote
from shimeji.core.tracing import Tracer
from shimeji.core.transport import BrokerUnavailable, Delivery, Message

if TYPE_CHECKING:
    from shimeji.amqp_adapter.loop import ConsumerLoop

__all__ = ["AmqpConsumer"]

log = logging.getLogger("shimeji.amqp")


class AmqpConsumer:
    """A subscription to one queue on its own channel of the consumer connection.

    ``settle``, ``cancel`` and ``close`` (the Consumer contract) may be called
    from any thread; the other methods run on the loop's thread.
    """

    def __init__(
        self,
        loop: ConsumerLoop,
        queue: str,
        on_delivery: Callable[[Delivery], None],
        prefetch: int,
        label: str,
        auto_ack: bool,
        on_lost: Callable[[str], None] | None = None,
        *,
        tracer: Tracer,
        on_gone: Callable[[str], None],
    ) -> None:
        self.loop = loop
        self.tracer = tracer
        self._on_gone = on_gone
        self.queue = queue
        self.on_delivery = on_delivery
        self.on_lost = on_lost
        self.prefetch = prefetch
        self.label = label
        self.auto_ack = auto_ack
        self.active = True
        self.closed = False
        self._channel: Any = None
        self._tag: str | None = None
        #: delivery tag -> delivery not settled yet (read by the loop)
        self.unsettled: dict[int, Delivery] = {}
        self._auto_ack_upto = 0

    @property
    def attached(self) -> bool:
        """Whether the consumer has a channel on the current connection (any thread)."""
        return self._channel is not None

    # -- the Consumer contract (any thread) ---------------------------------------------

    def settle(self, delivery: Delivery, outcome: str) -> None:
        loop = self.loop
        command = partial(self._settle_now, delivery, outcome)
        if outcome == "ack" and loop.polling_acks and len(self.unsettled) < self.prefetch:
            # The loop picks acks up within ACK_POLL; one consumer at its
            # prefetch limit waits for this ack to receive more: wake it then.
            loop.enqueue(command)
            if not loop.polling_acks:
                # The loop stopped polling while we queued: it clears the flag
                # before it looks at its commands, so either it saw ours, or
                # this second look sees the flag down and wakes it.
                loop.wake()
        else:
            loop.submit(command)

    def cancel(self) -> None:
        if not self.active:
            return
        if self.loop.connected:
            with contextlib.suppress(BrokerUnavailable):
                self.loop.call(self._cancel_now)
                return
        if self.active:
            # The broker is out of reach: there is nothing to cancel on it. Mark
            # the consumer so that a reconnection does not resume it.
            self.active = False
            self.loop.submit(lambda: self._forget_after_outage(close=False))

    def close(self) -> None:
        if self.closed:
            return
        if self.loop.connected:
            with contextlib.suppress(BrokerUnavailable):
                self.loop.call(self._close_now)
                return
        if not self.closed:
            self.active = False
            self.closed = True
            self.loop.submit(lambda: self._forget_after_outage(close=True))

    # -- on the loop thread ------------------------------------------------------------

    def start(self, conn: kombu.Connection) -> None:
        """Open the consumer's channel on ``conn`` and consume from its queue."""
        channel = open_channel(conn)
        if self.prefetch:
            channel.basic_qos(0, self.prefetch, False)
        self._channel = channel
        self.unsettled = {}
        self._auto_ack_upto = 0
        self._tag = channel.basic_consume(queue=self.queue, callback=self._on_message, no_ack=False)

    def _on_message(self, raw: amqp.Message) -> None:
        tag = raw.delivery_info["delivery_tag"]
        self.loop.last_delivery = time.monotonic()
        malformed = getattr(raw, "undecodable", None)
        try:
            message = from_amqp(raw)
        except Exception as exc:  # properties of types no publisher of ours sends
            message = Message(b"", routing_key=str(raw.delivery_info.get("routing_key", "")))
            malformed = f"its properties are not usable ({quote(describe(exc))})"
        delivery = Delivery(
            message, tag, bool(raw.delivery_info.get("redelivered")), self, malformed=malformed
        )
        if self.auto_ack:
            if not self._auto_ack_upto:
                self.loop.auto_acks_pending()
            self._auto_ack_upto = tag
        else:
            self.unsettled[tag] = delivery
        tracer = self.tracer
        if tracer.enabled:
            tracer.emit(
                Event(
                    kind="deliver",
                    replica=self.label,
                    correlation_id=message.correlation_id,
                    detail="redelivered" if delivery.redelivered else "",
                    message=message,
                )
            )
        try:
            self.on_delivery(delivery)
        except Exception as exc:
            # A bug, not the message's fault (core answers every bad message):
            # never let it stop the consumer, never let the message loop.
            log.error(
                "%s: handling a message from %s failed; rejecting it: %s",
                self.label,
                self.queue,
                quote(describe(exc)),
                exc_info=True,
            )
            if not self.auto_ack:
                self._settle_now(delivery, "reject")

    def flush_auto_acks(self) -> None:
        """Ack on the broker, at once, every auto-acked delivery not acked yet."""
        if self._auto_ack_upto and self._channel is not None:
            upto, self._auto_ack_upto = self._auto_ack_upto, 0
            self._channel.basic_ack(upto, multiple=True)

    def _settle_now(self, delivery: Delivery, outcome: str) -> None:
        if self.unsettled.get(delivery.delivery_tag) is not delivery:
            # Already settled, or its channel is gone (the broker gave it back).
            return
        del self.unsettled[delivery.delivery_tag]
        channel = self._channel
        if outcome == "ack":
            channel.basic_ack(delivery.delivery_tag)
        elif outcome == "requeue":
            channel.basic_reject(delivery.delivery_tag, requeue=True)
        elif outcome == "reject":
            channel.basic_reject(delivery.delivery_tag, requeue=False)
        else:
            raise ValueError(f"unknown outcome {outcome!r}: use ack, requeue or reject")
        tracer = self.tracer
        if tracer.enabled:
            tracer.emit(
                Event(
                    kind=outcome, replica=self.label, correlation_id=delivery.message.correlation_id
                )
            )

    def _cancel_now(self) -> None:
        if not self.active:
            return
        self.active = False
        channel, tag = self._channel, self._tag
        if channel is not None and tag is not None and self.loop.connected:
            channel.basic_cancel(tag)
        self.loop.forget(self)
        if not self.unsettled:
            self._on_gone(self.queue)

    def _close_now(self) -> None:
        if self.closed:
            return
        self._flush_auto_acks_quietly()
        self._cancel_now()
        self.closed = True
        channel, self._channel = self._channel, None
        self.unsettled = {}
        if channel is not None and self.loop.connected:
            channel.close()  # the broker gives every unacked delivery back
        self._on_gone(self.queue)

    def _forget_after_outage(self, close: bool) -> None:
        self.loop.forget(self)
        channel = self._channel
        if channel is not None:  # resumed by a reconnection that raced with us
            if close:
                self._channel = None
                channel.close()
            elif self._tag is not None:
                channel.basic_cancel(self._tag)
        self._on_gone(self.queue)

    def _flush_auto_acks_quietly(self) -> None:
        with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
            self.flush_auto_acks()

    def discard(self) -> None:
        """Drop a consumer that could not start (its queue does not exist): it
        is neither consumed nor resumed, and its channel is closed."""
        self.active = False
        self.closed = True
        channel, self._channel = self._channel, None
        self._tag = None
        self.unsettled = {}
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.close()

    def queue_lost(self, reason: str) -> None:
        """Tell ``on_lost`` that the queue vanished, with the messages in it."""
        if self.on_lost is None:
            return
        try:
            self.on_lost(reason)
        except Exception:
            log.exception("%s: a queue-loss callback failed", self.label)

    def connection_lost(self) -> None:
        """Forget the channel and the deliveries of a lost connection."""
        self._channel = None
        self._tag = None
        self.unsettled = {}
        self._auto_ack_upto = 0

    def __repr__(self) -> str:
        return f"<AmqpConsumer {self.label} on {self.queue} unacked={len(self.unsettled)}>"
