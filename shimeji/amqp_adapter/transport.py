"""The kombu transport: shimeji's Transport contract on RabbitMQ.

``AmqpTransport`` assembles the pieces, each in a module of its own and
given only what it needs:

- ``publisher.py``, ``Publisher``: the **publisher connection**, shared by
  every thread under a lock, with one channel in confirm mode; publishing
  and declaring (exchanges, queues, bindings) go through it;
- ``loop.py``, ``ConsumerLoop``: the **consumer connection**, read by one
  thread at a time (leader and followers, ``leaders.py``), which reconnects
  when it is lost and services the publisher's connection while idle;
- ``consumer.py``, ``AmqpConsumer``: a subscription, on a channel of its own
  of the consumer connection;
- ``wire.py``: connections, channels and the conversion of messages;
- ``errors.py``: every wire error translated into shimeji's own.

The transport keeps what outlives a connection: the queues, bindings and
exchanges declared, so that the loop can declare a consumer's queue again
after a reconnection (``_restore_queue``), and which node of ``AMQP_URI``
new connections try first (a connection that cannot be made moves on to the
next node).

Queues declared ``auto_delete`` with ``expires`` are declared on the broker
with the expiry only, and deleted by this transport when their consumer is
cancelled or closed: the broker would otherwise delete them, and the
messages in them, whenever the connection drops.

An operation on a queue the broker does not have (binding it, consuming
from it) raises ``QueueNotFound``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import amqp.exceptions
import kombu

from shimeji.amqp_adapter.consumer import AmqpConsumer
from shimeji.amqp_adapter.errors import broker_errors
from shimeji.amqp_adapter.loop import ConsumerLoop
from shimeji.amqp_adapter.publisher import DEFAULT_CONFIRM_TIMEOUT, LostCallback, Publisher
from shimeji.amqp_adapter.runtime import WorkerKilled, current_task
from shimeji.amqp_adapter.wire import connect_with_policy, connection_for, declare_exchange
from shimeji.core.config import SIM_SCHEME, Settings, redact_uri
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.tracing import NullTracer, Tracer
from shimeji.core.transport import BrokerUnavailable, Delivery, Message, QueueInfo

__all__ = ["AmqpConsumer", "AmqpTransport", "connection_for"]

log = logging.getLogger("shimeji.amqp")


class AmqpTransport:
    """shimeji's Transport on RabbitMQ, through kombu.

    ``settings`` gives the broker (``AMQP_URI``, ``AMQP_SSL``, ``HEARTBEAT``,
    ``TRANSPORT_OPTIONS``) and the reconnection intervals
    (``RPC_RETRY_POLICY``). ``connect()`` connects at once, or raises
    ``BrokerUnavailable`` after the retry policy's attempts; otherwise the
    first operation connects. ``close()`` releases both connections.
    """

    def __init__(
        self, settings: Settings, *, tracer: Tracer | None = None, name: str = "shimeji"
    ) -> None:
        if settings.amqp_uri.startswith(SIM_SCHEME):
            raise ConfigurationError(
                f"AMQP_URI {settings.amqp_uri!r} names a simulated cluster, which only "
                "standalone clients in the same process can use; give a broker's "
                "amqp:// URI to run on RabbitMQ"
            )
        self.settings = settings
        self.uri = settings.amqp_uri
        self.redacted_uri = redact_uri(settings.amqp_uri)
        self.tracer: Tracer = tracer if tracer is not None else NullTracer()
        self.name = name
        self._node = 0  # which node of AMQP_URI new connections try first
        self._loop: ConsumerLoop | None = None
        self._publisher = Publisher(
            self._connect_publisher,
            self.uri,
            confirm_timeout=settings.transport_options.get(
                "confirm_timeout", DEFAULT_CONFIRM_TIMEOUT
            ),
            confirm_reader=self._confirm_reader,
            request_lost=self._request_lost,
        )
        self._start_lock = threading.Lock()
        # name -> (durable, auto_delete, arguments), to declare it again after a reconnection
        self._queues: dict[str, tuple[bool, bool, dict[str, Any]]] = {}
        # queues only the consumer loop's connection may use: declared and bound
        # there, when consuming starts and after every reconnection
        self._exclusive: set[str] = set()
        self._bindings: dict[str, list[tuple[str, str]]] = {}
        self._emulated_auto_delete: set[str] = set()
        self._exchanges: set[str] = set()
        #: told ``(reason)`` once, from the loop's thread, when consuming has
        #: stopped for good (reconnecting gave up, or the loop failed)
        self.on_failure: list[Callable[[str], None]] = []
        self.closed = False

    # -- connections ---------------------------------------------------------------------

    def new_connection(self) -> kombu.Connection:
        """A connection to the node in turn (see ``next_node``)."""
        return connection_for(self.settings, first=self._node)

    def next_node(self) -> None:
        """New connections start with the next node of ``AMQP_URI`` (a cluster's
        nodes are tried in turn; one node: nothing changes)."""
        self._node += 1

    def connect_with_policy(self, conn: kombu.Connection, role: str) -> None:
        """Connect ``conn`` (the ``role`` connection, as logs name it), retrying
        as ``RPC_RETRY_POLICY`` says."""
        connect_with_policy(
            conn,
            self.settings.retry_policy,
            name=self.name,
            redacted_uri=self.redacted_uri,
            role=role,
        )

    def _connect_publisher(self, retry: bool) -> kombu.Connection:
        # The publisher's connect(retry): with retry, as the policy says; else
        # one attempt. A failed connection moves on to the next node.
        conn = self.new_connection()
        try:
            if retry:
                self.connect_with_policy(conn, "publisher")
            else:
                conn.ensure_connection(max_retries=0)
        except Exception:
            self.next_node()
            raise
        return conn

    def _confirm_reader(self) -> Callable[[], None] | None:
        # The publisher's confirm_reader(): how to tell the loop a request awaits
        # its confirm, or None without a loop.
        loop = self._loop
        return None if loop is None else loop.confirms_pending

    def connect(self) -> None:
        """Connect both connections now, retrying as ``RPC_RETRY_POLICY`` says."""
        if self.closed:
            raise BrokerUnavailable(f"this transport to {self.redacted_uri} is closed")
        self._publisher.connect()
        self._ensure_loop()

    def _ensure_loop(self) -> ConsumerLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._start_lock:
            if self._loop is None:
                if self.closed:
                    raise BrokerUnavailable(f"this transport to {self.redacted_uri} is closed")
                conn = self.new_connection()
                with broker_errors("connecting the consumer", self.uri):
                    self.connect_with_policy(conn, "consumer")
                publisher = self._publisher
                loop = ConsumerLoop(
                    conn,
                    name=self.name,
                    uri=self.uri,
                    new_connection=self.new_connection,
                    restore_queue=self._restore_queue,
                    retry_policy=self.settings.retry_policy,
                    reconnect_timeout=self.settings.reconnect_timeout,
                    confirms_since=publisher.awaited_since,
                    confirms_overdue=publisher.confirms_overdue,
                    service_publisher=publisher.service,
                    on_failure=self._failed,
                )
                loop.start()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        """Stop consuming (unacked deliveries go back to their queues) and disconnect."""
        if self.closed:
            return
        self.closed = True
        loop = self._loop
        if loop is not None:
            loop.stop()
        self._publisher.close()

    # -- the Transport contract ------------------------------------------------------------

    def declare_exchange(self, name: str) -> None:
        if name in self._exchanges:
            return
        self._publisher.run(
            f"declaring exchange {name!r}",
            lambda channel: channel.exchange_declare(
                name, "topic", durable=True, auto_delete=False
            ),
        )
        self._exchanges.add(name)

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
        arguments: dict[str, Any] = {}
        if expires is not None:
            arguments["x-expires"] = max(1, round(expires * 1000))
        if queue_type != "classic":
            arguments["x-queue-type"] = queue_type
            if delivery_limit is not None:
                arguments["x-delivery-limit"] = delivery_limit
        self._queues[name] = (durable, auto_delete, arguments)
        if auto_delete and expires is not None:
            self._emulated_auto_delete.add(name)
        if exclusive:
            # Owned by the connection that declares it: the consumer loop's, when
            # it starts consuming (see consume); the publisher's would lock it.
            self._exclusive.add(name)
            return
        self._publisher.run(
            f"declaring queue {name!r}", lambda channel: self._declare_on(channel, name)
        )

    def _declare_on(self, channel: Any, name: str) -> None:
        durable, auto_delete, arguments = self._queues[name]
        broker_auto_delete = auto_delete and name not in self._emulated_auto_delete
        channel.queue_declare(
            name,
            durable=durable,
            auto_delete=broker_auto_delete,
            exclusive=name in self._exclusive,
            arguments=arguments or None,
        )

    def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        bindings = self._bindings.setdefault(queue, [])
        if (exchange, routing_key) not in bindings:
            bindings.append((exchange, routing_key))
        if queue in self._exclusive:
            return  # bound by the connection that owns it, when it consumes
        self._publisher.run(
            f"binding queue {queue!r} to {exchange!r} with {routing_key!r}",
            lambda channel: channel.queue_bind(queue, exchange, routing_key),
            queue=queue,
            verb="bind",
        )

    def delete_queue(self, name: str) -> None:
        self._forget_queue(name)

        def delete(channel: Any) -> None:
            with contextlib.suppress(amqp.exceptions.NotFound):
                channel.queue_delete(name)

        self._publisher.probe(f"deleting queue {name!r}", delete, queue=name, verb="delete")

    def _forget_queue(self, name: str) -> None:
        self._queues.pop(name, None)
        self._bindings.pop(name, None)
        self._emulated_auto_delete.discard(name)
        self._exclusive.discard(name)

    def publish(
        self, message: Message, *, mandatory: bool, on_lost: LostCallback | None = None
    ) -> None:
        task = current_task()
        if task is not None and task.killed:
            # A worker of a killed replica: its request went back to the queue,
            # and another replica answers it. Publishing is a blocking call, where
            # a killed task unwinds.
            raise WorkerKilled
        if self.closed:
            raise BrokerUnavailable(f"this transport to {self.redacted_uri} is closed")
        self._publisher.publish(message, mandatory, on_lost)

    def consume(
        self,
        queue: str,
        on_delivery: Callable[[Delivery], None],
        *,
        prefetch: int,
        label: str,
        auto_ack: bool = False,
        on_lost: Callable[[str], None] | None = None,
    ) -> AmqpConsumer:
        loop = self._ensure_loop()
        consumer = AmqpConsumer(
            loop,
            queue,
            on_delivery,
            prefetch,
            label,
            auto_ack,
            on_lost,
            tracer=self.tracer,
            on_gone=self._consumer_gone,
        )
        prepare = None
        if queue in self._exclusive:

            def prepare(conn: kombu.Connection) -> None:
                self._restore_queue(conn, queue)

        # QueueNotFound if there is no such queue
        loop.call(lambda: loop.add(consumer, prepare=prepare))
        return consumer

    def inspect_queue(self, name: str) -> QueueInfo | None:
        """``QueueInfo(ready, consumers)`` of a queue, or None if there is no such
        queue; ``QueueLocked`` for another connection's exclusive queue."""

        def probe(channel: Any) -> QueueInfo | None:
            try:
                ok = channel.queue_declare(name, passive=True)
            except amqp.exceptions.NotFound:
                return None
            return QueueInfo(ok.message_count, ok.consumer_count)

        loop = self._loop
        if name in self._exclusive and loop is not None and loop.connected:
            # Ours, on the consumer loop's connection: only that one may look.
            with broker_errors(f"inspecting queue {name!r}", self.uri, queue=name, verb="inspect"):
                return loop.call(lambda: loop.with_channel(probe))  # type: ignore[no-any-return]
        return self._publisher.probe(  # type: ignore[no-any-return]
            f"inspecting queue {name!r}", probe, queue=name, verb="inspect"
        )

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        """Delete an exchange and its bindings (no error if it is gone);
        ``if_unused``: only if no queue is bound to it."""
        self._exchanges.discard(name)

        def delete(channel: Any) -> None:
            # RabbitMQ refuses (PRECONDITION_FAILED, closing the channel) to
            # delete an exchange in use when asked if_unused: nothing to do then.
            with contextlib.suppress(amqp.exceptions.PreconditionFailed):
                channel.exchange_delete(name, if_unused=if_unused)

        self._publisher.probe(f"deleting exchange {name!r}", delete)

    # -- health ---------------------------------------------------------------------------------

    @property
    def failure(self) -> str | None:
        """Why this transport stopped consuming for good, or None."""
        loop = self._loop
        return None if loop is None else loop.failure

    @property
    def consuming(self) -> bool:
        """Whether every subscription is attached to the broker now."""
        loop = self._loop
        return loop is not None and loop.consuming

    def seconds_since_beat(self) -> float | None:
        """How long ago the consumer loop last went round (None: no loop yet). It
        goes round at least every few seconds, connected or reconnecting."""
        loop = self._loop
        return None if loop is None else time.monotonic() - loop.last_beat

    def _failed(self, reason: str) -> None:
        log.error("%s: stopped consuming: %s", self.name, reason)
        for callback in list(self.on_failure):
            try:
                callback(reason)
            except Exception:
                log.exception("%s: a failure callback failed", self.name)

    def _request_lost(self, on_lost: LostCallback, error: BrokerUnavailable) -> None:
        log.info("%s: a request may not have reached the broker: %s", self.name, error)
        try:
            on_lost(error)
        except Exception:
            log.exception("%s: a request-loss callback failed", self.name)

    def _restore_queue(self, conn: kombu.Connection, queue: str) -> bool:
        """Declare ``queue`` again after a reconnection; True if it had vanished."""
        lost = False
        probe = conn.channel()
        try:
            probe.queue_declare(queue, passive=True)
        except amqp.exceptions.NotFound:
            lost = queue in self._queues
        finally:
            with contextlib.suppress(Exception):
                probe.close()
        if queue in self._queues:
            channel = conn.channel()
            try:
                self._declare_on(channel, queue)
                for exchange, routing_key in self._bindings.get(queue, ()):
                    declare_exchange(channel, exchange)
                    channel.queue_bind(queue, exchange, routing_key)
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
        return lost

    def _consumer_gone(self, queue: str) -> None:
        """A consumer was cancelled or closed: delete its queue if we emulate auto-delete."""
        if queue not in self._emulated_auto_delete:
            return
        self._forget_queue(queue)
        try:
            self._publisher.run(
                f"deleting queue {queue!r}",
                lambda channel: channel.queue_delete(queue),
            )
        except Exception as exc:  # it expires on its own anyway
            log.debug("could not delete queue %s: %s", queue, exc)

    def __repr__(self) -> str:
        return f"<AmqpTransport {self.name} {self.redacted_uri}>"
