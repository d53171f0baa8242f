"""The kombu transport: shimeji's Transport contract on RabbitMQ.

Threads and channels (kombu channels are not thread-safe, so each one is
used by one thread at a time, and this is how):

- **The consumer connection** belongs to one thread at a time, the *loop*
  (``_ConsumerLoop``). It opens one channel per consumer (its prefetch is
  that channel's QoS; closing it gives unacked messages back), reads every
  frame, and calls ``on_delivery`` on that thread. Other threads never touch
  it: acks, rejects, new consumers and cancellations are handed to the loop
  as commands in a queue, and the loop is woken through a pipe. A worker
  therefore never waits for its ack; the ack of a request is queued only
  after its reply was confirmed, so the order (reply, then ack) holds.
  The loop is a role, not a thread (leader and followers): when a delivery
  spawns a worker, the thread that read it hands the connection to a thread
  standing by and runs the worker itself, then stands by in turn. A request
  thus reaches its worker without waiting for another thread to wake, and a
  worker that blocks never stops the connection from being read.
- **The publisher connection** (``_Publisher``) is shared by every thread
  under a lock. It has one channel in confirm mode, and the publishing
  thread itself writes and reads it, so a reply or a request costs no thread
  hand-off. A reply waits for its confirm. A request waits for a round trip
  on the channel only (see ``_Publisher``); its confirm is read later, by the
  next publishing thread or by the loop (every ``CONFIRM_POLL`` while some
  are due). Declarations (exchanges, queues, bindings) go through this
  connection too, and the loop services its heartbeats when it is idle.

Mandatory publishing: a message no queue takes comes back as
``basic.return``, before the answer to any later method on the channel; the
publisher registers a return handler and raises ``Unroutable``.

Connection loss: the loop reconnects with the retry policy's intervals
(forever: a service outlives a broker restart), re-declares the queues its
consumers use and consumes again. Deliveries of the lost channels were given
back by the broker; settling one of them later is a no-op. When a queue had
vanished with the connection (a broker restart drops non-durable queues), its
consumer's ``on_lost`` is told once it consumes again (core's client then
publishes its waiting calls again). The publisher reconnects on its next
publish, one attempt per publish (the caller's retry policy,
``publish_with_retry`` in core, paces the attempts); a request it had not seen
confirmed is reported to the ``on_lost`` given with it.

Queues declared ``auto_delete`` with ``expires`` are declared on the broker
with the expiry only, and deleted by this transport when their consumer is
cancelled or closed: the broker would otherwise delete them, and the
messages in them, whenever the connection drops.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import amqp
import amqp.exceptions
import kombu

from shimeji.amqp_adapter.errors import (
    CONNECTION_ERRORS,
    broker_errors,
    describe_error,
)
from shimeji.amqp_adapter.frames import TolerantSSLTransport, TolerantTransport
from shimeji.amqp_adapter.runtime import Lent, ThreadTask, WorkerKilled, current_task, lend_thread
from shimeji.core.config import Settings, redact_uri
from shimeji.core.events import Event
from shimeji.core.exceptions import UnserializableValueError, describe
from shimeji.core.quoting import escape, quote
from shimeji.core.tracing import NullTracer, Tracer
from shimeji.core.transport import (
    BrokerUnavailable,
    Delivery,
    Message,
    MessageRefused,
    Unroutable,
)

__all__ = ["AmqpConsumer", "AmqpTransport", "connection_for"]

#: What ``publish`` is given as ``on_lost`` (see the Transport contract).
LostCallback = Callable[[BrokerUnavailable], None]

log = logging.getLogger("shimeji.amqp")

#: TRANSPORT_OPTIONS keys read by this transport (the others go to kombu / py-amqp).
ADAPTER_OPTIONS = ("confirm_timeout",)
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_CONFIRM_TIMEOUT = 30.0
#: How often the loop reads confirms still due when no thread publishes (seconds).
CONFIRM_POLL = 0.05
#: How late auto-acked deliveries (replies) may be acked on the broker (seconds).
AUTO_ACK_DELAY = 0.05
#: How often the loop picks up acks queued by workers while it expects them, and
#: for how long after the last delivery it expects them (seconds).
ACK_POLL = 0.005
ACK_POLL_SPAN = 1.0


def connection_for(settings: Settings, first: int = 0) -> kombu.Connection:
    """A (not yet connected) kombu connection as the settings describe it.

    With several nodes in ``AMQP_URI``, the connection tries them in turn,
    starting with node ``first`` (counted from 0, modulo their number).

    ``AMQP_SSL`` is handed to kombu as it is (``true`` or a mapping of
    ``ssl`` options: ``ca_certs``, ``certfile``, ``keyfile``, ``cert_reqs``,
    ``server_hostname``...); ``TRANSPORT_OPTIONS`` too, but for the keys this
    transport reads itself (``confirm_timeout``).
    """
    options = {k: v for k, v in settings.transport_options.items() if k not in ADAPTER_OPTIONS}
    connect_timeout = options.pop("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    ssl = settings.amqp_ssl
    if isinstance(ssl, Mapping):
        ssl = dict(ssl)
    # py-amqp's own frame reader raises, ending the reading thread, on a
    # message that does not decode; these transports hand it over, marked.
    secure = settings.amqp_uri.startswith("amqps:")
    nodes = settings.amqp_uri.split(";")
    first %= len(nodes)
    return kombu.Connection(
        ";".join(nodes[first:] + nodes[:first]),
        transport=TolerantSSLTransport if secure else TolerantTransport,
        heartbeat=settings.heartbeat,
        ssl=ssl if ssl is not None else False,
        connect_timeout=connect_timeout,
        transport_options=options,
    )


def _declare_exchange(channel: Any, name: str) -> None:
    # nameko's exchange: a durable topic exchange that is never auto-deleted.
    channel.exchange_declare(name, "topic", durable=True, auto_delete=False)


def _to_amqp(message: Message) -> amqp.Message:
    properties: dict[str, Any] = {
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "delivery_mode": message.delivery_mode,
    }
    if message.headers:
        properties["application_headers"] = dict(message.headers)
    if message.correlation_id is not None:
        properties["correlation_id"] = message.correlation_id
    if message.reply_to is not None:
        properties["reply_to"] = message.reply_to
    return amqp.Message(message.body, **properties)


def _from_amqp(raw: amqp.Message) -> Message:
    properties = raw.properties
    info = raw.delivery_info
    body = raw.body
    if isinstance(body, str):  # channels are opened with auto_decode off; be safe
        body = body.encode(properties.get("content_encoding") or "utf-8", "surrogateescape")
    headers = properties.get("application_headers")
    delivery_mode = properties.get("delivery_mode")
    return Message(
        body=bytes(body),
        routing_key=info.get("routing_key", ""),
        exchange=info.get("exchange", ""),
        content_type=properties.get("content_type") or "",
        content_encoding=properties.get("content_encoding") or "",
        headers=headers if headers is not None else {},
        correlation_id=properties.get("correlation_id"),
        reply_to=properties.get("reply_to"),
        delivery_mode=delivery_mode if delivery_mode in (1, 2) else 1,
    )


def _open_channel(conn: kombu.Connection) -> Any:
    """A channel that hands message bodies over as the bytes that came.

    (py-amqp's default decodes every body by its content encoding, which a
    publisher chooses: a codec name like ``rot13`` or ``idna`` must not be
    run on a consumer's thread, and shimeji's codecs take bytes anyway.)
    """
    channel = conn.channel()
    channel.auto_decode = False
    return channel


# -- the publisher ---------------------------------------------------------------------


class _Publisher:
    """One connection and one confirm-mode channel, shared by all threads under a lock.

    Confirms are tracked by delivery tag. A reply (not mandatory) waits for its
    confirm. A request (mandatory) published with ``on_lost`` waits only for a
    round trip on the channel: a ``basic.return`` is sent before the answer to
    any later method, so once the round trip is back the request is known to
    be routed (``Unroutable`` otherwise), and its confirm, which for a
    persistent message in a durable queue waits for the disk, arrives while
    the caller already waits for the reply. A nack (``MessageRefused``), or a
    channel or connection lost before the confirm (``BrokerUnavailable``), is
    then reported to its ``on_lost``. Without it, a publish waits for its
    confirm.
    """

    def __init__(self, transport: AmqpTransport) -> None:
        self.transport = transport
        self.lock = threading.Lock()
        self._conn: kombu.Connection | None = None
        self._channel: Any = None
        self._returned = False
        self._tag = 0  # delivery tag of the last message published on the channel
        # tag -> (the on_lost of a request whose confirm is read lazily, or None
        # for one awaited now; when it was published), in publishing order
        self._unconfirmed: dict[int, tuple[LostCallback | None, float]] = {}
        #: when the oldest confirm still awaited was published (monotonic), or None
        self.oldest_unconfirmed: float | None = None
        self._nacked: set[int] = set()
        self.confirm_timeout = float(
            transport.settings.transport_options.get("confirm_timeout", DEFAULT_CONFIRM_TIMEOUT)
        )

    @property
    def unconfirmed(self) -> int:
        return len(self._unconfirmed)

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        self._returned = True

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._confirmed(tag, multiple, None)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._confirmed(tag, multiple, "the broker refused it (nacked)")

    def _confirmed(self, tag: int, multiple: bool, failure: str | None) -> None:
        if multiple:
            tags = []
            for pending in self._unconfirmed:  # in publishing order
                if pending > tag:
                    break
                tags.append(pending)
        else:
            tags = [tag] if tag in self._unconfirmed else []
        for done in tags:
            on_lost = self._unconfirmed.pop(done)[0]
            if failure is None:
                continue
            if on_lost is None:
                self._nacked.add(done)
            else:
                self.transport._request_lost(on_lost, MessageRefused(failure))
        self._note_oldest()

    def _note_oldest(self) -> None:
        # Called with the lock held, after confirms were awaited or forgotten.
        unconfirmed = self._unconfirmed
        self.oldest_unconfirmed = next(iter(unconfirmed.values()))[1] if unconfirmed else None

    def confirms_overdue(self) -> bool:
        """Whether a confirm has been awaited for ``CONFIRM_POLL`` or longer (any thread)."""
        oldest = self.oldest_unconfirmed
        return oldest is not None and time.monotonic() - oldest >= CONFIRM_POLL

    def _ensure_channel(self, retry: bool = False) -> Any:
        # Called with the lock held.
        if self._channel is not None:
            return self._channel
        if self._conn is None:
            conn = self.transport.new_connection()
            try:
                if retry:
                    self.transport.connect_with_policy(conn, "publisher")
                else:
                    # One attempt: the caller paces retries (and the next one
                    # goes to the next node of a cluster).
                    conn.ensure_connection(max_retries=0)
            except Exception:
                self.transport.next_node()
                raise
            self._conn = conn
        # py-amqp reads the socket before every publish to notice a
        # connection.blocked notice early; this connection also reads while it
        # waits for each round trip or confirm, where such a notice is handled
        # all the same, so the extra read (and its system calls) is skipped.
        properties = self._conn.connection.client_properties
        properties["capabilities"] = {
            **properties.get("capabilities", {}),
            "connection.blocked": False,
        }
        channel = self._conn.channel()
        channel.confirm_select()
        channel.events["basic_return"].add(self._on_return)
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self._channel = channel
        self._tag = 0
        return channel

    def _reset(self, connection_too: bool) -> None:
        channel, self._channel = self._channel, None
        lost, self._unconfirmed = self._unconfirmed, {}
        self.oldest_unconfirmed = None
        self._nacked = set()
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.close()
        if connection_too:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.release()
        for on_lost, _ in lost.values():
            if on_lost is not None:
                self.transport._request_lost(
                    on_lost,
                    BrokerUnavailable(
                        f"the connection to {self.transport.redacted_uri} was lost before the "
                        "broker confirmed it"
                    ),
                )

    def connect(self) -> None:
        with self.lock, broker_errors("connecting the publisher", self.transport.uri):
            self._ensure_channel(retry=True)

    def run(self, what: str, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(channel)`` under the lock, translating errors; one attempt."""
        with self.lock, broker_errors(what, self.transport.uri):
            channel = self._ensure_channel()
            try:
                return fn(channel)
            except amqp.exceptions.ChannelError:
                self._reset(connection_too=False)
                raise
            except CONNECTION_ERRORS:
                self._reset(connection_too=True)
                raise

    def probe(self, what: str, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(channel)`` on a throwaway channel (one a channel error may close)."""
        with self.lock, broker_errors(what, self.transport.uri):
            self._ensure_channel()
            assert self._conn is not None
            try:
                channel = self._conn.channel()
            except CONNECTION_ERRORS:
                self._reset(connection_too=True)
                raise
            try:
                return fn(channel)
            finally:
                with contextlib.suppress(Exception):
                    if channel.is_open:
                        channel.close()

    def publish(self, message: Message, mandatory: bool, on_lost: LostCallback | None) -> None:
        raw = _to_amqp(message)
        loop = self.transport._loop
        lazy = mandatory and on_lost is not None and loop is not None
        what = f"publishing {message.routing_key!r}"
        with self.lock, broker_errors(what, self.transport.uri):
            channel = self._ensure_channel()
            self._returned = False
            tag = None
            try:
                channel.basic_publish(
                    raw,
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    mandatory=mandatory,
                )
                self._tag += 1
                tag = self._tag
                now = time.monotonic()
                if not self._unconfirmed:
                    self.oldest_unconfirmed = now
                self._unconfirmed[tag] = (on_lost if lazy else None, now)
                if lazy:
                    # A round trip: a basic.return of this message comes before its answer.
                    channel.basic_qos(0, 0, False)
                else:
                    self._await_confirm(tag)
            except amqp.exceptions.NotFound:
                # The exchange does not exist: no queue can take the message.
                self._forget(tag)
                self._reset(connection_too=False)
                self._returned = True
            except amqp.exceptions.FrameSyntaxError as exc:
                self._forget(tag)
                self._reset(connection_too=True)
                raise UnserializableValueError(
                    dict(message.headers), "the message headers (context data)", str(exc)
                ) from None
            except amqp.exceptions.ChannelError:
                self._forget(tag)  # its caller learns of it by this exception
                self._reset(connection_too=False)
                raise
            except (*CONNECTION_ERRORS, amqp.exceptions.MessageNacked):
                self._forget(tag)
                self._reset(connection_too=True)
                raise
            returned = self._returned
            if returned and tag is not None:
                self._forget(tag)  # nothing to confirm: it went nowhere
            elif lazy and loop is not None:
                loop.confirms_pending()
        if returned and mandatory:
            raise Unroutable(message.exchange, message.routing_key)

    def _forget(self, tag: int | None) -> None:
        if tag is not None:
            self._unconfirmed.pop(tag, None)
            self._nacked.discard(tag)
            self._note_oldest()

    def _await_confirm(self, tag: int) -> None:
        assert self._conn is not None
        deadline = time.monotonic() + self.confirm_timeout
        while tag in self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no confirm within {self.confirm_timeout:g}s")
            self._conn.drain_events(timeout=remaining)
        if tag in self._nacked:
            self._nacked.discard(tag)
            raise amqp.exceptions.MessageNacked()

    def service(self, heartbeat: bool) -> None:
        """Read what the broker sent while no thread publishes (confirms, heartbeats)
        and send our heartbeat if due; never blocks."""
        if not self.lock.acquire(blocking=False):
            return  # busy publishing: that thread reads what arrives
        try:
            conn = self._conn
            if conn is None:
                return
            try:
                while True:
                    conn.drain_events(timeout=0)
            except TimeoutError:
                pass
            if heartbeat:
                conn.heartbeat_check()
        except Exception as exc:
            log.info(
                "publisher connection to %s lost (%s); it reconnects on the next publish",
                self.transport.redacted_uri,
                describe_error(exc),
            )
            self._reset(connection_too=True)
        finally:
            self.lock.release()

    def close(self) -> None:
        with self.lock:
            self._reset(connection_too=True)


# -- consumers ---------------------------------------------------------------------------


class AmqpConsumer:
    """A subscription to one queue on its own channel of the consumer connection."""

    def __init__(
        self,
        loop: _ConsumerLoop,
        queue: str,
        on_delivery: Callable[[Delivery], None],
        prefetch: int,
        label: str,
        auto_ack: bool,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.loop = loop
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
        self._unsettled: dict[int, Delivery] = {}
        self._auto_ack_upto = 0

    # -- the Consumer contract (any thread) ---------------------------------------------

    def settle(self, delivery: Delivery, outcome: str) -> None:
        loop = self.loop
        command = partial(self._settle_now, delivery, outcome)
        if outcome == "ack" and loop.polling_acks and len(self._unsettled) < self.prefetch:
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

    def _start(self, conn: kombu.Connection) -> None:
        channel = _open_channel(conn)
        if self.prefetch:
            channel.basic_qos(0, self.prefetch, False)
        self._channel = channel
        self._unsettled = {}
        self._auto_ack_upto = 0
        self._tag = channel.basic_consume(queue=self.queue, callback=self._on_message, no_ack=False)

    def _on_message(self, raw: amqp.Message) -> None:
        tag = raw.delivery_info["delivery_tag"]
        self.loop._last_delivery = time.monotonic()
        malformed = getattr(raw, "undecodable", None)
        try:
            message = _from_amqp(raw)
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
            self._unsettled[tag] = delivery
        tracer = self.loop.transport.tracer
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

    def _flush_auto_acks(self) -> None:
        if self._auto_ack_upto and self._channel is not None:
            upto, self._auto_ack_upto = self._auto_ack_upto, 0
            self._channel.basic_ack(upto, multiple=True)

    def _settle_now(self, delivery: Delivery, outcome: str) -> None:
        if self._unsettled.get(delivery.delivery_tag) is not delivery:
            # Already settled, or its channel is gone (the broker gave it back).
            return
        del self._unsettled[delivery.delivery_tag]
        channel = self._channel
        if outcome == "ack":
            channel.basic_ack(delivery.delivery_tag)
        elif outcome == "requeue":
            channel.basic_reject(delivery.delivery_tag, requeue=True)
        elif outcome == "reject":
            channel.basic_reject(delivery.delivery_tag, requeue=False)
        else:
            raise ValueError(f"unknown outcome {outcome!r}: use ack, requeue or reject")
        tracer = self.loop.transport.tracer
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
        if not self._unsettled:
            self.loop.transport._consumer_gone(self.queue)

    def _close_now(self) -> None:
        if self.closed:
            return
        self._flush_auto_acks_quietly()
        self._cancel_now()
        self.closed = True
        channel, self._channel = self._channel, None
        self._unsettled = {}
        if channel is not None and self.loop.connected:
            channel.close()  # the broker gives every unacked delivery back
        self.loop.transport._consumer_gone(self.queue)

    def _forget_after_outage(self, close: bool) -> None:
        self.loop.forget(self)
        channel = self._channel
        if channel is not None:  # resumed by a reconnection that raced with us
            if close:
                self._channel = None
                channel.close()
            elif self._tag is not None:
                channel.basic_cancel(self._tag)
        self.loop.transport._consumer_gone(self.queue)

    def _flush_auto_acks_quietly(self) -> None:
        with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
            self._flush_auto_acks()

    def _queue_lost(self, reason: str) -> None:
        if self.on_lost is None:
            return
        try:
            self.on_lost(reason)
        except Exception:
            log.exception("%s: a queue-loss callback failed", self.label)

    def _connection_lost(self) -> None:
        self._channel = None
        self._tag = None
        self._unsettled = {}
        self._auto_ack_upto = 0

    def __repr__(self) -> str:
        return f"<AmqpConsumer {self.label} on {self.queue} unacked={len(self._unsettled)}>"


class _Stopping(Exception):
    pass


class _GiveUp(Exception):
    """Reconnecting took longer than RECONNECT_TIMEOUT: the loop ends, failed."""


class _ConsumerLoop:
    """The thread that owns the consumer connection (see the module docstring)."""

    def __init__(self, transport: AmqpTransport, conn: kombu.Connection) -> None:
        self.transport = transport
        self._conn: kombu.Connection | None = conn
        self._consumers: list[AmqpConsumer] = []
        self._commands: deque[Callable[[], None]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._woken = False
        self._auto_acks_due: float | None = None
        self.polling_confirms = False
        self.polling_acks = False
        self._last_delivery = 0.0
        self._stopping = False
        self.connected = True
        self._next_tick: float | None = None
        # Leader and followers: the thread that reads the connection (the
        # leader) hands it to a thread standing by when a delivery spawned a
        # worker, and runs that worker itself (see ``lend_thread``).
        self._roles = threading.Lock()
        self._threads = itertools.count(1)
        self._standby: tuple[threading.Thread, threading.Lock] | None = None
        self._lent: Lent = []
        self._ended = threading.Event()
        self._confirm_poll_after = 0.0
        #: when the loop last went round (monotonic; liveness)
        self.last_beat = time.monotonic()
        #: since when the consumers have been down (monotonic), or None
        self._down_since: float | None = None
        #: why the loop ended without being asked to, or None
        self.failure: str | None = None
        self._leader, self._first_gate = self._new_thread()

    @property
    def thread(self) -> threading.Thread:
        """The thread reading the connection now (it changes as workers start)."""
        return self._leader

    def _new_thread(self) -> tuple[threading.Thread, threading.Lock]:
        gate = threading.Lock()
        gate.acquire()
        thread = threading.Thread(
            target=self._follow,
            args=(gate,),
            name=f"{self.transport.name}-amqp-loop-{next(self._threads)}",
            daemon=True,
        )
        return thread, gate

    def start(self) -> None:
        self._leader.start()
        self._first_gate.release()
        standby = self._new_thread()
        standby[0].start()
        with self._roles:
            if not self._stopping:
                self._standby = standby
                return
        standby[1].release()  # stopped already: it leaves

    def _follow(self, gate: threading.Lock) -> None:
        me = threading.current_thread()
        while True:
            gate.acquire()  # released when this thread is to lead
            if self._leader is not me:
                return  # stopped while standing by
            task = self._run()
            if task is None:
                return  # the loop ended
            task._run()
            # The gate is locked again (this thread took it to lead): stand by on it.
            with self._roles:
                if self._standby is not None or self._stopping:
                    return
                self._standby = (me, gate)

    def _to_pool(self, submit: Callable[[ThreadTask], None], task: ThreadTask) -> None:
        try:
            submit(task)
        except Exception:  # the runtime closed meanwhile
            log.warning("%s: %s not run: its runtime is closed", self.transport.name, task.name)

    def _hand_over(self) -> None:
        """Give the connection to the thread standing by (on the leader)."""
        with self._roles:
            standby, self._standby = self._standby, None
        if standby is None:
            standby = self._new_thread()
            standby[0].start()
        thread, gate = standby
        self._leader = thread
        gate.release()

    # -- commands from other threads -------------------------------------------------

    def enqueue(self, command: Callable[[], None]) -> None:
        """Queue ``command`` for the loop without waking it (it polls soon)."""
        self._commands.append(command)

    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the loop thread, soon; do not wait for it."""
        self._commands.append(command)
        if threading.current_thread() is not self._leader:
            self.wake()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the loop thread and return its result (or raise its error)."""
        if threading.current_thread() is self._leader:
            return fn()
        if not self._leader.is_alive():
            raise BrokerUnavailable(
                f"the connection to {self.transport.redacted_uri} is closed; create a new transport"
            )
        done = threading.Event()
        outcome: list[Any] = []

        def command() -> None:
            try:
                outcome.append((True, fn()))
            except BaseException as exc:
                outcome.append((False, exc))
                if isinstance(exc, (*CONNECTION_ERRORS, amqp.exceptions.ChannelError)):
                    done.set()
                    raise  # the loop reconnects
            done.set()

        self.submit(command)
        while not done.wait(0.1):
            if not self._leader.is_alive():
                raise BrokerUnavailable(
                    f"the connection to {self.transport.redacted_uri} was closed"
                )
            if not self.connected:
                # The loop is reconnecting and runs no commands until it is back,
                # which may be never: do not wait for it. (Commands are
                # idempotent: if this one runs after all, it finds nothing to do.)
                raise BrokerUnavailable(f"the connection to {self.transport.redacted_uri} is lost")
        ok, value = outcome[0]
        if ok:
            return value
        with broker_errors("consuming", self.transport.uri):
            raise value

    def add(self, consumer: AmqpConsumer) -> None:
        """Register and start a consumer (on the loop thread)."""
        self._consumers.append(consumer)
        if self._conn is not None and self.connected:
            consumer._start(self._conn)

    def forget(self, consumer: AmqpConsumer) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        with self._roles:
            standby, self._standby = self._standby, None
        if standby is not None:
            standby[1].release()  # not the leader: it leaves
        # Wait for the loop to end, not for a thread: the thread that led a
        # moment ago may be running a worker now.
        if threading.current_thread() is self._leader or not self._ended.wait(10):
            # Stopped from the loop itself, or still inside a reconnection
            # attempt: it stops at its next check. Its pipe stays open until
            # then, so that no reused descriptor is written to or selected on
            # by mistake.
            return
        with contextlib.suppress(OSError):
            os.close(self._wake_r)
        with contextlib.suppress(OSError):
            os.close(self._wake_w)

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> ThreadTask | None:
        """Lead: serve the connection until the loop stops (None), or until a
        delivery spawned a worker for this thread to run (that worker's task)."""
        task = None
        failure = None
        try:
            while True:
                if self._conn is None:
                    if self._stopping:
                        break
                    try:
                        self._reconnect()
                    except _Stopping:
                        break
                    except _GiveUp as exc:
                        failure = str(exc)
                        break
                    continue
                try:
                    # Even when stopping: _serve runs the commands queued so far
                    # (acks of answered requests) and flushes auto-acks first.
                    task = self._serve(self._conn)
                    if task is not None:
                        return task
                    break  # _serve returns None only when the loop stops
                except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError) as exc:
                    if self._stopping:
                        break
                    log.warning(
                        "%s: connection to %s lost (%s); reconnecting",
                        self.transport.name,
                        self.transport.redacted_uri,
                        describe_error(exc),
                    )
                    self._drop_connection()
        except BaseException as exc:
            # A bug, or an error no broker should cause: the replica cannot be
            # trusted to consume any more, and must not pretend it does.
            failure = f"its consumer loop failed: {escape(describe(exc))}"
            log.critical("%s: %s", self.transport.name, failure, exc_info=True)
        finally:
            if task is None:
                self._drop_connection()
                self.connected = False
                if failure is not None and not self._stopping:
                    self.failure = failure
                    self.transport._failed(failure)
                self._ended.set()
        return None

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if self._down_since is None:
            self._down_since = time.monotonic()
        self.connected = False
        self._auto_acks_due = None
        self._next_tick = None
        for consumer in self._consumers:
            consumer._connection_lost()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.release()

    def _reconnect(self) -> None:
        def stop_check() -> None:
            if self._stopping:
                raise _Stopping

        conn = self.transport.new_connection()
        settings = self.transport.settings
        policy = settings.retry_policy
        attempts = [0]
        limit = settings.reconnect_timeout
        down_since = self._down_since if self._down_since is not None else time.monotonic()

        def give_up_check() -> None:
            self.last_beat = time.monotonic()
            if limit is not None and time.monotonic() - down_since > limit:
                uri = self.transport.redacted_uri
                raise _GiveUp(
                    f"could not consume from {uri} again within {limit:g}s (RECONNECT_TIMEOUT)"
                )

        def errback(exc: BaseException, interval: float) -> None:
            attempts[0] += 1
            log.warning(
                "%s: cannot reach %s (%s); attempt %d, next in %.1fs",
                self.transport.name,
                self.transport.redacted_uri,
                describe_error(exc),
                attempts[0],
                interval,
            )
            stop_check()
            give_up_check()

        try:
            conn.ensure_connection(
                errback=errback,
                max_retries=None,
                interval_start=policy.interval_start or 0.1,
                interval_step=policy.interval_step,
                interval_max=max(policy.interval_max, 0.1),
                callback=stop_check,
            )
        except (_Stopping, _GiveUp):
            raise
        except Exception as exc:  # not recoverable (a refused login): keep trying, slowly
            log.error(
                "%s: cannot connect to %s: %s",
                self.transport.name,
                self.transport.redacted_uri,
                describe_error(exc),
            )
            for _ in range(50):
                stop_check()
                give_up_check()
                time.sleep(0.1)
            return
        self._conn = conn
        self.connected = True
        try:
            for consumer in list(self._consumers):
                if not consumer.active:
                    continue
                lost = self.transport._restore_queue(conn, consumer.queue)
                consumer._start(conn)
                if lost:
                    reason = (
                        f"queue {consumer.queue} vanished, with the messages in it (it was "
                        f"deleted, or a restart of the broker at {self.transport.redacted_uri} "
                        "dropped it)"
                    )
                    log.warning("%s: %s", consumer.label, reason)
                    consumer._queue_lost(reason)
        except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError) as exc:
            log.warning(
                "%s: reconnected to %s but could not resume consuming (%s); retrying",
                self.transport.name,
                self.transport.redacted_uri,
                describe_error(exc),
            )
            self._drop_connection()
            give_up_check()
            return
        self._down_since = None
        log.info("%s: reconnected to %s", self.transport.name, self.transport.redacted_uri)

    def _serve(self, conn: kombu.Connection) -> ThreadTask | None:
        sock = conn.connection.sock
        wake = self._wake_r
        commands = self._commands
        heartbeat = conn.heartbeat or 0
        tick = heartbeat / 4 if heartbeat else 5.0
        if self._next_tick is None:
            self._next_tick = time.monotonic() + tick
        lent = self._lent
        readers = [sock, wake]
        pending = getattr(sock, "pending", None)  # TLS sockets only
        while True:
            self.last_beat = time.monotonic()
            self._woken = False
            while commands:
                commands.popleft()()
            if self._stopping:
                self._flush_auto_acks()
                return  # settled what was asked before stopping
            timeout = max(0.0, self._next_tick - time.monotonic())
            # Both flags are cleared before what they depend on is looked at:
            # a request published, or an ack queued, after that look sees them
            # cleared, and wakes us (confirms_pending, settle).
            self.polling_confirms = False
            self.polling_acks = False
            now = time.monotonic()
            if now - self._last_delivery < ACK_POLL_SPAN and any(
                consumer._unsettled for consumer in self._consumers
            ):
                # Workers are answering recent requests: pick their acks up
                # within ACK_POLL, or with the next request, rather than be
                # woken for each one.
                self.polling_acks = True
                timeout = min(timeout, ACK_POLL)
            due = self._auto_acks_due
            if due is not None:
                left = due - time.monotonic()
                if left <= 0:
                    self._flush_auto_acks()
                else:
                    timeout = min(timeout, left)
            publisher = self.transport._publisher
            if publisher.unconfirmed:
                # Confirms still due: read them once they are CONFIRM_POLL old if
                # no thread publishing has read them by then, so that a nack fails
                # its call promptly. (The next publish usually reads them first.)
                self.polling_confirms = True
                oldest = publisher.oldest_unconfirmed
                due = max(
                    now if oldest is None else oldest + CONFIRM_POLL, self._confirm_poll_after
                )
                timeout = min(timeout, max(due - now, 0.0))
            if commands:
                continue  # queued while we looked: run it before sleeping
            readable, _, _ = select.select(readers, [], [], timeout)
            if wake in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 4096)
            if sock in readable:
                # One method per wake-up: whatever else the kernel holds makes
                # the socket readable again at once, and the next select is
                # cheaper than a read that finds nothing. A TLS socket may hold
                # decrypted bytes the kernel no longer shows: drain those too.
                # With a thread standing by to take the connection over, the
                # worker of a request read now starts on this thread.
                lend_thread(lent if self._standby is not None else None)
                try:
                    conn.drain_events(timeout=0)
                    while pending is not None and pending():
                        conn.drain_events(timeout=0)
                except TimeoutError:
                    pass
                except BaseException:
                    if lent:  # this thread goes on to reconnect: the pool runs it
                        self._to_pool(*lent.pop())
                    raise
                finally:
                    lend_thread(None)
                if lent:
                    submit, task = lent.pop()
                    try:
                        self._hand_over()
                    except Exception:  # no thread to take over: this one leads on
                        log.exception("%s: cannot hand the connection over", self.transport.name)
                        self._to_pool(submit, task)
                    else:
                        return task
            if time.monotonic() >= self._next_tick:
                self._next_tick = time.monotonic() + tick
                if heartbeat:
                    conn.heartbeat_check()
                publisher.service(heartbeat=True)
            elif publisher.confirms_overdue() and time.monotonic() >= self._confirm_poll_after:
                # At most every CONFIRM_POLL: a broker short of memory or disk
                # may hold confirms back for long.
                publisher.service(heartbeat=False)
                self._confirm_poll_after = time.monotonic() + CONFIRM_POLL

    def confirms_pending(self) -> None:
        """A request awaits its confirm: make sure the loop reads it soon (any thread)."""
        if not self.polling_confirms and threading.current_thread() is not self._leader:
            self.wake()

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"x")

    def auto_acks_pending(self) -> None:
        """A delivery of an auto-ack consumer awaits its ack (on the loop thread).

        Auto-acked deliveries (replies) are acked on the broker in batches, at
        most ``AUTO_ACK_DELAY`` late: one frame for many replies. Until then a
        lost connection gives them back, to be delivered again.
        """
        if self._auto_acks_due is None:
            self._auto_acks_due = time.monotonic() + AUTO_ACK_DELAY

    def _flush_auto_acks(self) -> None:
        self._auto_acks_due = None
        for consumer in self._consumers:
            if consumer._auto_ack_upto:
                consumer._flush_auto_acks()


# -- the transport ------------------------------------------------------------------------


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
        self.settings = settings
        self.uri = settings.amqp_uri
        self.redacted_uri = redact_uri(settings.amqp_uri)
        self.tracer: Tracer = tracer if tracer is not None else NullTracer()
        self.name = name
        self._node = 0  # which node of AMQP_URI new connections try first
        self._publisher = _Publisher(self)
        self._loop: _ConsumerLoop | None = None
        self._start_lock = threading.Lock()
        # name -> (durable, auto_delete, arguments), to declare it again after a reconnection
        self._queues: dict[str, tuple[bool, bool, dict[str, Any]]] = {}
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
        policy = self.settings.retry_policy

        def errback(exc: BaseException, interval: float) -> None:
            log.warning(
                "%s: cannot reach %s for the %s (%s); next attempt in %.1fs",
                self.name,
                self.redacted_uri,
                role,
                describe_error(exc),
                interval,
            )

        conn.ensure_connection(
            errback=errback,
            max_retries=policy.max_retries,
            interval_start=policy.interval_start,
            interval_step=policy.interval_step,
            interval_max=policy.interval_max,
        )

    def connect(self) -> None:
        """Connect both connections now, retrying as ``RPC_RETRY_POLICY`` says."""
        if self.closed:
            raise BrokerUnavailable(f"this transport to {self.redacted_uri} is closed")
        self._publisher.connect()
        self._ensure_loop()

    def _ensure_loop(self) -> _ConsumerLoop:
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
                loop = _ConsumerLoop(self, conn)
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
            arguments=arguments or None,
        )

    def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        bindings = self._bindings.setdefault(queue, [])
        if (exchange, routing_key) not in bindings:
            bindings.append((exchange, routing_key))
        self._publisher.run(
            f"binding queue {queue!r} to {exchange!r} with {routing_key!r}",
            lambda channel: channel.queue_bind(queue, exchange, routing_key),
        )

    def delete_queue(self, name: str) -> None:
        self._forget_queue(name)

        def delete(channel: Any) -> None:
            with contextlib.suppress(amqp.exceptions.NotFound):
                channel.queue_delete(name)

        self._publisher.probe(f"deleting queue {name!r}", delete)

    def _forget_queue(self, name: str) -> None:
        self._queues.pop(name, None)
        self._bindings.pop(name, None)
        self._emulated_auto_delete.discard(name)

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
        consumer = AmqpConsumer(loop, queue, on_delivery, prefetch, label, auto_ack, on_lost)
        loop.call(lambda: loop.add(consumer))
        return consumer

    def inspect_queue(self, name: str) -> tuple[int, int] | None:
        """``(ready messages, consumers)`` of a queue, or None if there is no such queue."""

        def probe(channel: Any) -> tuple[int, int] | None:
            try:
                ok = channel.queue_declare(name, passive=True)
            except amqp.exceptions.NotFound:
                return None
            return ok.message_count, ok.consumer_count

        return self._publisher.probe(f"inspecting queue {name!r}", probe)  # type: ignore[no-any-return]

    def delete_exchange(self, name: str) -> None:
        """Delete an exchange (no error if it is gone)."""
        self._exchanges.discard(name)
        self._publisher.probe(
            f"deleting exchange {name!r}", lambda channel: channel.exchange_delete(name)
        )

    # -- helpers for the loop ------------------------------------------------------------------

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
        return (
            loop is not None
            and loop.connected
            and loop.failure is None
            and all(c._channel is not None for c in loop._consumers if c.active)
        )

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
                    _declare_exchange(channel, exchange)
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
