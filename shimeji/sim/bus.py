"""SimBus: an in-memory message broker with RabbitMQ's RPC-relevant behaviour.

What it models, because RPC depends on it:

- topic exchanges with ``*`` / ``#`` bindings, and the default exchange;
- mandatory publishing: a message no queue takes raises ``Unroutable``;
- competing consumers on one queue, served round-robin, each holding at most
  ``prefetch`` unacked deliveries; the rest wait in the queue;
- ack / requeue / reject; a closing consumer gives its unacked messages back,
  marked redelivered, ahead of the messages that never left the queue;
- auto-delete and expiring queues;
- connections: each replica and client talks to the broker through its own
  ``SimConnection``. A connection can be cut (its consumers vanish and their
  unacked messages are requeued; its publishes fail) and restored (its
  queues, bindings and consumers are declared again, as kombu does on
  reconnection); the whole broker can be down for a while.

Every delivery takes ``latency`` of virtual time. Faults (``shimeji.sim.faults``)
hook into publishing to drop, delay or copy messages. All state belongs to
one bus, owned by one cluster; nothing is global.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from shimeji.core.events import Event
from shimeji.core.tracing import Tracer, stepper
from shimeji.core.transport import (
    Delivery,
    Message,
    QueueNotFound,
    Unroutable,
)
from shimeji.sim.connection import SimConnection
from shimeji.sim.routing import Exchange, topic_matches
from shimeji.sim.scheduler import SimulationLivelock

if TYPE_CHECKING:
    from shimeji.sim.scheduler import Scheduler, SimTimer

#: What the bus asks of message faults for each message it accepts:
#: ``(copies, extra delay in us, the message to deliver, why it cannot be decoded)``.
MessageFaults = Callable[[Message], tuple[int, int, Message, "str | None"]]

__all__ = ["SimBus", "SimConnection", "SimConsumer", "SimQueue", "topic_matches"]


#: How often one message may go back to its (classic) queue before the simulator
#: calls it a livelock: a consumer that always gives it back, such as an event
#: handler that always fails with requeue_on_error=True.
REDELIVERY_LOOP = 10_000


def _loop_found(queue: str, delivery: Delivery, since: float) -> None:
    message = delivery.message
    raise SimulationLivelock(
        f"the simulation is in a livelock: a message on queue {queue!r} (routing key "
        f"{message.routing_key!r}, correlation id {message.correlation_id}) went back to its "
        f"queue {REDELIVERY_LOOP:,} times, the last time by {delivery.consumer.label}. On "
        "RabbitMQ it would be redelivered for ever. Is it an event handler that always fails "
        "with requeue_on_error=True? Let it succeed or fail for good, or use "
        "RPC_QUEUE_TYPE quorum, whose delivery limit drops such a message."
    )


class _Queued:
    __slots__ = ("malformed", "message", "redelivered", "returns")

    def __init__(
        self, message: Message, redelivered: bool, malformed: str | None = None, returns: int = 0
    ) -> None:
        self.message = message
        self.redelivered = redelivered
        self.malformed = malformed  # why its deliveries cannot be decoded (a fault)
        self.returns = returns  # how often a consumer gave it back


class SimQueue:
    __slots__ = (
        "auto_delete",
        "consumers",
        "delivery_limit",
        "durable",
        "expires_us",
        "expiry_timer",
        "name",
        "owner",
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
        self.delivery_limit: int | None = None  # quorum queues: returns before a drop
        self.owner: str | None = None  # the connection an exclusive queue belongs to

    def __repr__(self) -> str:
        return f"<SimQueue {self.name} ready={len(self.ready)} consumers={len(self.consumers)}>"


class SimConsumer:
    """One subscription to a queue, made through a connection."""

    __slots__ = (
        "active",
        "auto_ack",
        "bindings",
        "bus",
        "closed",
        "connection",
        "label",
        "on_delivery",
        "on_lost",
        "prefetch",
        "queue",
        "suspended",
        "unacked",
    )

    def __init__(
        self,
        bus: SimBus,
        connection: SimConnection | None,
        queue: SimQueue,
        on_delivery: Callable[[Delivery], None],
        prefetch: int,
        label: str,
        auto_ack: bool,
    ) -> None:
        self.bus = bus
        self.connection = connection
        self.queue = queue
        self.on_delivery = on_delivery
        self.prefetch = prefetch
        self.label = label
        self.auto_ack = auto_ack
        self.unacked: dict[int, Delivery] = {}
        self.on_lost: Callable[[str], None] | None = None  # told when its queue vanished
        self.active = True  # receiving deliveries
        self.closed = False  # for good
        self.suspended = False  # its connection is cut; it comes back on reconnect
        self.bindings: list[tuple[str, str]] = []  # remembered while suspended

    def settle(self, delivery: Delivery, outcome: str) -> None:
        # The bus's side of settling, here: one frame fewer on every call's path.
        tag = delivery.delivery_tag
        if self.unacked.pop(tag, None) is None:
            return  # already settled, or given back when the consumer closed
        queue = self.queue
        bus = self.bus
        if bus.tracer.enabled:
            correlation_id = delivery.message.correlation_id
            bus._step(outcome, self.label, None, None, None, correlation_id, "", None)
        returns = bus.returns.pop(tag, 0) if bus.returns else 0
        if outcome == "requeue":
            bus._give_back(queue, delivery, returns)
        if queue.ready:
            bus._dispatch(queue, 1)  # its room, for one message

    def cancel(self) -> None:
        self.bus._cancel(self)

    def close(self) -> None:
        self.bus.close_consumer(self)

    def __repr__(self) -> str:
        return f"<SimConsumer {self.label} on {self.queue.name} unacked={len(self.unacked)}>"


class SimBus:
    """The simulator's broker. ``connect(label)`` gives each party its Transport."""

    def __init__(self, scheduler: Scheduler, tracer: Tracer, latency: float) -> None:
        self.scheduler = scheduler
        self.tracer = tracer
        self._step = stepper(tracer)
        self.latency_us = round(latency * 1_000_000)
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, SimQueue] = {}
        self.connections: dict[str, SimConnection] = {}
        self.cut_off: list[str] = []  # labels whose connection is cut
        #: the fault injector's verdict on each accepted message, if faults are armed
        self.on_publish: MessageFaults | None = None
        self.outage_end_us: int | None = None  # set while the broker is down
        self._restart_cut: list[str] = []  # connections a restart dropped, to restore
        self._next_tag = 0
        self.returns: dict[int, int] = {}  # delivery tag -> returns of its message so far
        self.published = 0
        self.delivered = 0

    @property
    def outage(self) -> bool:
        """Whether the broker is down (publishes fail, nothing is delivered)."""
        return self.outage_end_us is not None

    def drop_exclusive_queues(self, owner: str, why: str) -> None:
        """Delete the exclusive queues of a connection that closed or dropped."""
        for name, queue in list(self.queues.items()):
            if queue.owner == owner:
                self.delete_queue(name, f"deleted with its exclusive connection ({why})")

    def begin_outage(self, seconds: float, restart: bool = False) -> None:
        """The broker is down for ``seconds``. With ``restart``, it restarts as
        RabbitMQ does: every connection drops (consumers give back what they
        held), non-durable queues and transient messages are lost, and when it
        is back the clients reconnect and declare their queues again."""
        self.outage_end_us = self.scheduler.clock.now_us + round(seconds * 1_000_000)
        what = "restarting" if restart else "down"
        self.tracer.emit(
            Event(kind="fault_outage", replica="broker", detail=f"broker {what} for {seconds:g}s")
        )
        if restart:
            self._restart()
        self.scheduler.call_at(self.outage_end_us, self._end_outage, self.outage_end_us)

    def _restart(self) -> None:
        for label, connection in list(self.connections.items()):
            if connection.connected:
                self.disconnect(label)
                self._restart_cut.append(label)
        for name, queue in list(self.queues.items()):
            if not queue.durable:
                self.delete_queue(name, "lost in the broker restart")
                continue
            kept = [item for item in queue.ready if item.message.delivery_mode == 2]
            lost = len(queue.ready) - len(kept)
            if lost:
                queue.ready = deque(kept)
                self.tracer.emit(
                    Event(
                        kind="drop",
                        replica="broker",
                        detail=f"{name}: {lost} transient message(s) lost in the broker restart",
                    )
                )

    def _end_outage(self, end_us: int) -> None:
        if self.outage_end_us == end_us:
            self.outage_end_us = None
            self.tracer.emit(Event(kind="fault_outage_end", replica="broker", detail="broker back"))
            cut, self._restart_cut = self._restart_cut, []
            for label in cut:  # as each client library reconnects
                self.reconnect(label)

    def connect(self, label: str) -> SimConnection:
        """A new connection for ``label`` (replacing any earlier one of that label).

        A label that is cut off stays cut off: its new connection is down too.
        """
        connection = SimConnection(self, label)
        connection.connected = label not in self.cut_off
        self.connections[label] = connection
        return connection

    def reachable(self, label: str) -> bool:
        """Whether ``label`` can reach the broker now."""
        return self.outage_end_us is None and label not in self.cut_off

    # -- broker-wide operations (the Transport contract, without a connection) ---------

    def declare_exchange(self, name: str) -> None:
        if name not in self.exchanges:
            self.exchanges[name] = Exchange(name)

    def declare_queue(
        self,
        name: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        expires: float | None = None,
        queue_type: str = "classic",
        delivery_limit: int | None = None,
        owner: str | None = None,
    ) -> None:
        queue = self.queues.get(name)
        if queue is None:
            expires_us = None if expires is None else round(expires * 1_000_000)
            queue = self.queues[name] = SimQueue(name, durable, auto_delete, expires_us)
            # A quorum queue drops a message given back more than this.
            queue.delivery_limit = delivery_limit if queue_type == "quorum" else None
            queue.owner = owner
        self._arm_expiry(queue)  # (re)declaring counts as use

    def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        if queue not in self.queues:
            raise QueueNotFound(queue, "bind")
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
            for tag in consumer.unacked:
                self.returns.pop(tag, None)
            consumer.unacked.clear()
        queue.consumers.clear()
        if self.tracer.enabled:
            lost = f", {len(queue.ready)} message(s) lost" if queue.ready else ""
            self.tracer.emit(
                Event(kind="queue_deleted", replica="broker", detail=f"{name} {reason}{lost}")
            )
        queue.ready.clear()

    def route(self, message: Message) -> tuple[str, ...]:
        """The queues a message would reach."""
        if not message.exchange:
            return (message.routing_key,) if message.routing_key in self.queues else ()
        exchange = self.exchanges.get(message.exchange)
        return exchange.route(message.routing_key) if exchange is not None else ()

    def publish(self, message: Message, *, mandatory: bool) -> None:
        exchange = self.exchanges.get(message.exchange) if message.exchange else None
        if exchange is not None:  # the path of every request and reply: route inline
            targets = exchange.cache.get(message.routing_key)
            if targets is None:
                targets = exchange.route(message.routing_key)
        else:
            targets = self.route(message)
        if not targets:
            if mandatory:
                raise Unroutable(message.exchange, message.routing_key)
            if self.tracer.enabled:
                self.tracer.emit(
                    Event(
                        kind="drop",
                        replica="broker",
                        correlation_id=message.correlation_id,
                        detail=f"unroutable: no queue bound for {message.routing_key}",
                        message=message,
                    )
                )
            return
        self.published += 1
        if self.on_publish is None:
            if len(targets) == 1:
                queue = self.queues[targets[0]]
                ready = queue.ready
                if ready:
                    # Others wait ahead of it, so every consumer is full (see
                    # _dispatch): it waits behind them (what _enqueue does).
                    ready.append(_Queued(message, False))
                    return
                # Nothing waits ahead of it: straight to a consumer with room
                # (what _enqueue then _dispatch do, without queueing it).
                consumers = queue.consumers
                if consumers and self._hand_over(queue, message, False, None, 0):
                    return
            self._enqueue(message, 1, targets, None)
            return
        copies, delay_us, message, malformed = self.on_publish(message)
        if copies == 0:
            return
        if delay_us:
            # Routed again when it arrives: its queue may be gone by then.
            self.scheduler.call_at(
                self.scheduler.clock.now_us + delay_us,
                self._enqueue,
                message,
                copies,
                None,
                malformed,
            )
        else:
            self._enqueue(message, copies, targets, malformed)

    def _enqueue(
        self,
        message: Message,
        copies: int,
        targets: tuple[str, ...] | None,
        malformed: str | None = None,
    ) -> None:
        if targets is None:
            targets = self.route(message)
        if not targets and self.tracer.enabled:
            self.tracer.emit(
                Event(
                    kind="drop",
                    replica="broker",
                    correlation_id=message.correlation_id,
                    detail=f"no queue bound for {message.routing_key} any more",
                    message=message,
                )
            )
        for name in targets:
            queue = self.queues[name]
            # Messages waiting already: every consumer is full (see _dispatch), and
            # these wait behind them.
            waiting = bool(queue.ready)
            queue.ready.append(_Queued(message, False, malformed))
            if copies > 1:
                for _ in range(copies - 1):  # a duplicate arrives as a redelivery would
                    queue.ready.append(_Queued(message, True, malformed))
            if not waiting:
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
            raise QueueNotFound(queue, "consume from")
        consumer = SimConsumer(self, None, target, on_delivery, prefetch, label, auto_ack)
        self._attach(consumer, target)
        return consumer

    def _attach(self, consumer: SimConsumer, queue: SimQueue) -> None:
        consumer.queue = queue
        consumer.active = True
        queue.consumers.append(consumer)
        if queue.expiry_timer is not None:
            queue.expiry_timer.cancel()
            queue.expiry_timer = None
        self._dispatch(queue)

    # -- connections cut and restored -------------------------------------------------

    def disconnect(self, label: str) -> None:
        """Cut ``label``'s connection: its consumers vanish, their unacked messages
        are requeued (marked redelivered), and its operations fail until reconnect."""
        if label not in self.cut_off:
            self.cut_off.append(label)
        if label in self._restart_cut:  # cut for good now, not only by the restart
            self._restart_cut.remove(label)
        connection = self.connections.get(label)
        if connection is None or not connection.connected:
            return
        connection.connected = False
        for consumer in connection.consumers:
            if consumer.closed or consumer.suspended:
                continue
            consumer.bindings = [
                (exchange.name, key)
                for exchange in self.exchanges.values()
                for key in exchange.bindings_of(consumer.queue.name)
            ]
            self.close_consumer(consumer, reason="its connection was cut")
            consumer.closed = False
            consumer.suspended = True
        self.drop_exclusive_queues(label, "its connection was cut")

    def reconnect(self, label: str) -> None:
        """Restore ``label``'s connection: declare its queues and bindings again and
        resume its consumers, as a client library does after reconnecting."""
        if label in self.cut_off:
            self.cut_off.remove(label)
        connection = self.connections.get(label)
        if connection is None or connection.connected:
            return
        connection.connected = True
        for consumer in connection.consumers:
            if not consumer.suspended:
                continue
            consumer.suspended = False
            old = consumer.queue
            queue = self.queues.get(old.name)
            lost = queue is None
            if queue is None:
                expires = None if old.expires_us is None else old.expires_us / 1_000_000
                self.declare_queue(
                    old.name,
                    durable=old.durable,
                    auto_delete=old.auto_delete,
                    expires=expires,
                    owner=old.owner,
                )
                queue = self.queues[old.name]
                queue.delivery_limit = old.delivery_limit
            for exchange, key in consumer.bindings:
                self.bind_queue(queue.name, exchange, key)
            self._attach(consumer, queue)
            if lost and consumer.on_lost is not None:
                consumer.on_lost(f"queue {old.name} vanished, with the messages in it")

    # -- delivery ---------------------------------------------------------------------

    def _dispatch(self, queue: SimQueue, room: int = -1) -> None:
        """Hand ready messages to consumers with room, round-robin, as RabbitMQ does,
        until every consumer is full or ``room`` messages are handed (-1: no limit).

        So a queue whose messages wait has no consumer with room: whatever makes
        room (a settlement, an auto-ack, a consumer attached) dispatches, and a
        message joining others in the queue need not look for a consumer.
        A consumer's settlement makes room for one message (``room=1``): after
        it, every consumer is full again.
        """
        ready = queue.ready
        while ready and room and queue.consumers:
            item = ready[0]
            handed = self._hand_over(
                queue, item.message, item.redelivered, item.malformed, item.returns
            )
            if not handed:
                return  # every consumer is full: the message waits in the queue
            ready.popleft()
            room -= 1

    def _hand_over(
        self,
        queue: SimQueue,
        message: Message,
        redelivered: bool,
        malformed: str | None,
        returns: int,
    ) -> bool:
        """Deliver a message to the next consumer of ``queue`` with room, in
        ``latency``; False if every consumer is full."""
        consumers = queue.consumers
        count = len(consumers)
        if count == 1:  # the usual queue: no turn to take
            consumer = consumers[0]
            if consumer.prefetch and len(consumer.unacked) >= consumer.prefetch:
                return False
            queue.rr = 0
        else:
            start = queue.rr % count
            for offset in range(count):
                consumer = consumers[(start + offset) % count]
                if consumer.prefetch == 0 or len(consumer.unacked) < consumer.prefetch:
                    queue.rr = (start + offset + 1) % count
                    break
            else:
                return False
        self._next_tag += 1
        tag = self._next_tag
        delivery = Delivery(message, tag, redelivered, consumer, malformed)
        consumer.unacked[tag] = delivery
        if returns:
            self.returns[tag] = returns
        scheduler = self.scheduler
        scheduler.schedule(
            scheduler.clock.now_us + self.latency_us, self._deliver, (delivery,), consumer
        )
        return True

    def _deliver(self, delivery: Delivery) -> None:
        consumer: SimConsumer = delivery.consumer  # type: ignore[assignment]
        if consumer.closed or delivery.delivery_tag not in consumer.unacked:
            return  # the consumer went away in flight: the message went back to its queue
        if self.outage_end_us is not None:
            # Nothing reaches consumers while the broker is down: after it is back.
            self.scheduler.call_at(self.outage_end_us, self._deliver, delivery, lane=consumer)
            return
        self.delivered += 1
        tracer = self.tracer
        if tracer.enabled:
            message = delivery.message
            self._step(
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
            if consumer.queue.ready:  # room made: for one message
                self._dispatch(consumer.queue, 1)
        consumer.on_delivery(delivery)

    def _give_back(self, queue: SimQueue, delivery: Delivery, returns: int) -> None:
        """Put an unsettled message back at the head of its queue, unless the
        queue's delivery limit drops it (a quorum queue)."""
        returns += 1
        if queue.delivery_limit is None and returns == REDELIVERY_LOOP:
            # RabbitMQ would redeliver it for ever; a test must not spin for ever.
            self.scheduler.call_urgent(
                partial(_loop_found, queue.name, delivery, self.scheduler.clock.elapsed())
            )
        if queue.delivery_limit is not None and returns > queue.delivery_limit:
            if self.tracer.enabled:
                self.tracer.emit(
                    Event(
                        kind="drop",
                        replica="broker",
                        correlation_id=delivery.message.correlation_id,
                        detail=f"{queue.name}: given back {returns} times, over its delivery limit",
                        message=delivery.message,
                    )
                )
            return
        queue.ready.appendleft(_Queued(delivery.message, True, delivery.malformed, returns))

    def _cancel(self, consumer: SimConsumer) -> None:
        consumer.suspended = False
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

    def close_consumer(self, consumer: SimConsumer, reason: str = "its consumer closed") -> None:
        """Close a consumer for good: its unsettled deliveries go back to the queue."""
        if consumer.closed:
            return
        self._cancel(consumer)
        consumer.closed = True
        queue = consumer.queue
        given_back = list(consumer.unacked.values())
        consumer.unacked.clear()
        if self.queues.get(queue.name) is not queue:
            return
        if self.tracer.enabled:
            for delivery in given_back:
                self.tracer.emit(
                    Event(
                        kind="requeue",
                        replica=consumer.label,
                        correlation_id=delivery.message.correlation_id,
                        detail=f"unacked when {reason}",
                    )
                )
        # Back at the head of the queue, in the order they were first delivered.
        for delivery in reversed(given_back):
            returns = self.returns.pop(delivery.delivery_tag, 0)
            self._give_back(queue, delivery, returns)
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
