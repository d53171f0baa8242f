"""SimBus: an in-memory message broker with RabbitMQ's RPC-relevant behaviour.

What it models, because RPC depends on it:

- topic exchanges with ``*`` / ``#`` bindings, and the default exchange;
- mandatory publishing: a message no queue takes raises ``Unroutable``;
- competing consumers on one queue, served round-robin, each holding at most
  ``prefetch`` unacked deliveries; the rest wait in the queue;
- ack / requeue / reject; a closing consumer gives its unacked messages back,
  marked redelivered, ahead of the messages that never left the queue;
- auto-delete and expiring queues.

Every delivery takes ``latency`` of virtual time. All state belongs to one
bus, owned by one cluster; nothing is global.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from shimeji.core.tracing import Tracer
from shimeji.core.transport import Delivery, Message, Unroutable

if TYPE_CHECKING:
    from shimeji.sim.faults import FaultInjector
    from shimeji.sim.scheduler import Scheduler, SimTimer

__all__ = ["SimBus", "SimConsumer", "SimQueue", "topic_matches"]


def _match_words(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match_words(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match_words(rest, words[1:])


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""
    return _match_words(pattern.split("."), routing_key.split("."))


class _Queued:
    __slots__ = ("message", "redelivered")

    def __init__(self, message: Message, redelivered: bool) -> None:
        self.message = message
        self.redelivered = redelivered


class SimQueue:
    __slots__ = (
        "auto_delete",
        "consumers",
        "durable",
        "expires_us",
        "expiry_timer",
        "name",
        "ready",
        "rr",
    )

    def __init__(self, name: str, durable: bool, auto_delete: bool, expires_us: int | None):
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.expires_us = expires_us
        self.ready: deque[_Queued] = deque()
        self.consumers: list[SimConsumer] = []
        self.rr = 0  # index of the consumer whose turn is next
        self.expiry_timer: SimTimer | None = None

    def __repr__(self) -> str:
        return f"<SimQueue {self.name} ready={len(self.ready)} consumers={len(self.consumers)}>"


class SimConsumer:
    """One subscription to a queue."""

    __slots__ = (
        "active",
        "auto_ack",
        "bus",
        "closed",
        "label",
        "on_delivery",
        "prefetch",
        "queue",
        "unacked",
    )

    def __init__(
        self,
        bus: SimBus,
        queue: SimQueue,
        on_delivery: Callable[[Delivery], None],
        prefetch: int,
        label: str,
        auto_ack: bool,
    ) -> None:
        self.auto_ack = auto_ack
        self.bus = bus
        self.queue = queue
        self.on_delivery = on_delivery
        self.prefetch = prefetch
        self.label = label
        self.unacked: dict[int, Delivery] = {}
        self.active = True
        self.closed = False

    def has_room(self) -> bool:
        return self.prefetch == 0 or len(self.unacked) < self.prefetch

    def settle(self, delivery: Delivery, outcome: str) -> None:
        self.bus._settle(self, delivery, outcome)

    def cancel(self) -> None:
        self.bus._cancel(self)

    def close(self) -> None:
        self.bus._close(self)

    def __repr__(self) -> str:
        return f"<SimConsumer {self.label} on {self.queue.name} unacked={len(self.unacked)}>"


class _Exchange:
    __slots__ = ("exact", "name", "one_word", "patterns")

    def __init__(self, name: str) -> None:
        self.name = name
        # Bindings indexed for speed; routing order is exact, one-word, patterns.
        self.exact: dict[str, list[str]] = {}
        self.one_word: dict[str, list[str]] = {}  # "svc.*" indexed by "svc"
        self.patterns: list[tuple[str, str]] = []

    def bind(self, pattern: str, queue: str) -> None:
        words = pattern.split(".")
        if "*" not in words and "#" not in words:
            targets = self.exact.setdefault(pattern, [])
        elif words[-1] == "*" and "*" not in words[:-1] and "#" not in words:
            targets = self.one_word.setdefault(pattern[:-2], [])
        else:
            if (pattern, queue) not in self.patterns:
                self.patterns.append((pattern, queue))
            return
        if queue not in targets:
            targets.append(queue)

    def unbind_queue(self, queue: str) -> None:
        for table in (self.exact, self.one_word):
            for targets in table.values():
                if queue in targets:
                    targets.remove(queue)
        self.patterns = [entry for entry in self.patterns if entry[1] != queue]

    def route(self, routing_key: str) -> list[str]:
        found = list(self.exact.get(routing_key, ()))
        prefix, dot, _ = routing_key.rpartition(".")
        if dot:
            for queue in self.one_word.get(prefix, ()):
                if queue not in found:
                    found.append(queue)
        for pattern, queue in self.patterns:
            if queue not in found and topic_matches(pattern, routing_key):
                found.append(queue)
        return found


class SimBus:
    """The simulator's Transport."""

    def __init__(self, scheduler: Scheduler, tracer: Tracer, latency: float) -> None:
        self.scheduler = scheduler
        self.tracer = tracer
        self.latency_us = round(latency * 1_000_000)
        self.exchanges: dict[str, _Exchange] = {}
        self.queues: dict[str, SimQueue] = {}
        self.faults: FaultInjector | None = None
        self._next_tag = 0
        self.published = 0
        self.delivered = 0

    # -- the Transport contract -------------------------------------------------

    def declare_exchange(self, name: str) -> None:
        if name not in self.exchanges:
            self.exchanges[name] = _Exchange(name)

    def declare_queue(
        self,
        name: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        expires: float | None = None,
    ) -> None:
        queue = self.queues.get(name)
        if queue is None:
            expires_us = None if expires is None else round(expires * 1_000_000)
            queue = self.queues[name] = SimQueue(name, durable, auto_delete, expires_us)
        self._arm_expiry(queue)  # (re)declaring counts as use

    def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        if queue not in self.queues:
            raise KeyError(f"cannot bind queue {queue!r}: it was never declared")
        self.declare_exchange(exchange)
        self.exchanges[exchange].bind(routing_key, queue)

    def delete_queue(self, name: str, reason: str = "deleted") -> None:
        queue = self.queues.pop(name, None)
        if queue is None:
            return
        for exchange in self.exchanges.values():
            exchange.unbind_queue(name)
        if queue.expiry_timer is not None:
            queue.expiry_timer.cancel()
        for consumer in list(queue.consumers):
            consumer.active = False
            consumer.closed = True
            consumer.unacked.clear()
        queue.consumers.clear()
        if self.tracer.enabled:
            lost = f", {len(queue.ready)} message(s) lost" if queue.ready else ""
            self.tracer.emit("queue_deleted", "broker", detail=f"{name} {reason}{lost}")
        queue.ready.clear()

    def route(self, message: Message) -> list[str]:
        """The queues a message would reach."""
        if not message.exchange:
            return [message.routing_key] if message.routing_key in self.queues else []
        exchange = self.exchanges.get(message.exchange)
        return exchange.route(message.routing_key) if exchange is not None else []

    def publish(self, message: Message, *, mandatory: bool) -> None:
        if self.faults is not None:
            # Raises BrokerUnavailable during an outage; may drop, delay or copy.
            self.faults.before_publish(message)
        targets = self.route(message)
        if not targets:
            if mandatory:
                raise Unroutable(message.exchange, message.routing_key)
            if self.tracer.enabled:
                self.tracer.emit(
                    "drop",
                    "broker",
                    correlation_id=message.correlation_id,
                    detail=f"unroutable: no queue bound for {message.routing_key}",
                    message=message,
                )
            return
        self.published += 1
        copies = 1 if self.faults is None else self.faults.copies(message)
        for name in targets:
            queue = self.queues[name]
            for _ in range(copies):
                queue.ready.append(_Queued(message, False))
            self._dispatch(queue)

    def consume(
        self,
        queue: str,
        on_delivery: Callable[[Delivery], None],
        *,
        prefetch: int,
        label: str,
        auto_ack: bool = False,
    ) -> SimConsumer:
        target = self.queues.get(queue)
        if target is None:
            raise KeyError(f"cannot consume from queue {queue!r}: it was never declared")
        consumer = SimConsumer(self, target, on_delivery, prefetch, label, auto_ack)
        target.consumers.append(consumer)
        if target.expiry_timer is not None:
            target.expiry_timer.cancel()
            target.expiry_timer = None
        self._dispatch(target)
        return consumer

    # -- delivery --------------------------------------------------------------

    def _dispatch(self, queue: SimQueue) -> None:
        """Hand ready messages to consumers with room, round-robin, as RabbitMQ does."""
        consumers = queue.consumers
        while queue.ready and consumers:
            count = len(consumers)
            start = queue.rr % count
            for offset in range(count):
                consumer = consumers[(start + offset) % count]
                if consumer.prefetch == 0 or len(consumer.unacked) < consumer.prefetch:
                    queue.rr = (start + offset + 1) % count
                    break
            else:
                return  # every consumer is full: the message waits in the queue
            item = queue.ready.popleft()
            self._next_tag += 1
            delivery = Delivery(item.message, self._next_tag, item.redelivered, consumer)
            consumer.unacked[delivery.delivery_tag] = delivery
            delay = self.latency_us
            if self.faults is not None:
                delay += self.faults.extra_delay_us(item.message, consumer)
            self.scheduler.call_at(self.scheduler.clock.now_us + delay, self._deliver, delivery)

    def _deliver(self, delivery: Delivery) -> None:
        consumer = delivery.consumer
        assert isinstance(consumer, SimConsumer)
        if consumer.closed or delivery.delivery_tag not in consumer.unacked:
            return  # the consumer died in flight: the message went back to its queue
        if self.faults is not None and self.faults.lose_delivery(delivery):
            # The message vanished on its way (a simulated network loss): it is
            # settled as if the consumer had rejected it.
            consumer.unacked.pop(delivery.delivery_tag, None)
            self._dispatch(consumer.queue)
            return
        self.delivered += 1
        if self.tracer.enabled:
            message = delivery.message
            self.tracer.emit(
                "deliver",
                consumer.label,
                None,
                None,
                None,
                message.correlation_id,
                "redelivered" if delivery.redelivered else "",
                message,
            )
        if consumer.auto_ack:
            del consumer.unacked[delivery.delivery_tag]
        consumer.on_delivery(delivery)

    def _settle(self, consumer: SimConsumer, delivery: Delivery, outcome: str) -> None:
        if consumer.unacked.pop(delivery.delivery_tag, None) is None:
            return  # already settled, or given back when the consumer closed
        queue = consumer.queue
        if self.tracer.enabled:
            self.tracer.emit(
                outcome, consumer.label, None, None, None, delivery.message.correlation_id
            )
        if outcome == "requeue":
            queue.ready.appendleft(_Queued(delivery.message, True))
        self._dispatch(queue)

    def _cancel(self, consumer: SimConsumer) -> None:
        if not consumer.active:
            return
        consumer.active = False
        queue = consumer.queue
        if consumer in queue.consumers:
            index = queue.consumers.index(consumer)
            queue.consumers.remove(consumer)
            if index < queue.rr:
                queue.rr -= 1
        if not queue.consumers:
            if queue.auto_delete and not consumer.unacked:
                self.delete_queue(queue.name, "auto-deleted (its last consumer left)")
                return
            self._arm_expiry(queue)

    def _close(self, consumer: SimConsumer) -> None:
        if consumer.closed:
            return
        self._cancel(consumer)
        consumer.closed = True
        queue = consumer.queue
        given_back = list(consumer.unacked.values())
        consumer.unacked.clear()
        if queue.name not in self.queues:
            return
        # Back at the head of the queue, in the order they were first delivered.
        for delivery in reversed(given_back):
            queue.ready.appendleft(_Queued(delivery.message, True))
        if self.tracer.enabled:
            for delivery in given_back:
                self.tracer.emit(
                    "requeue",
                    consumer.label,
                    correlation_id=delivery.message.correlation_id,
                    detail="unacked when its consumer closed",
                )
        if not queue.consumers and queue.auto_delete:
            self.delete_queue(queue.name, "auto-deleted (its last consumer left)")
            return
        self._dispatch(queue)

    def _arm_expiry(self, queue: SimQueue) -> None:
        if queue.expires_us is None or queue.consumers:
            return
        if queue.expiry_timer is not None:
            queue.expiry_timer.cancel()
        queue.expiry_timer = self.scheduler.call_at(
            self.scheduler.clock.now_us + queue.expires_us, self._expire, queue
        )

    def _expire(self, queue: SimQueue) -> None:
        if self.queues.get(queue.name) is queue and not queue.consumers:
            self.delete_queue(queue.name, f"expired after {queue.expires_us / 1e6:g}s unused")

    def queue_stats(self) -> list[tuple[str, int, list[str]]]:
        """``(queue, ready messages, consumer labels)`` for every queue, in declaration order."""
        return [
            (q.name, len(q.ready), [c.label for c in q.consumers]) for q in self.queues.values()
        ]
