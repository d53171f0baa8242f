"""The consumer loop: the one reader of the consumer connection, and its reconnection.

kombu channels are not thread-safe: the consumer connection belongs to one
thread at a time, the *loop* (``ConsumerLoop``). It opens one channel per
consumer (``consumer.py``), reads every frame, and calls ``on_delivery`` on
that thread. Other threads never touch the connection: acks, rejects, new
consumers and cancellations are handed to the loop as commands in a queue,
and the loop is woken through a pipe (or, for acks while workers answer
recent requests, picks them up every ``ACK_POLL``). A worker therefore never
waits for its ack; the ack of a request is queued only after its reply was
confirmed, so the order (reply, then ack) holds.

The loop is a role, not a thread (leader and followers, ``leaders.py``):
when a delivery spawns a worker, the thread that read it hands the
connection to a thread standing by and runs the worker itself.

While it is idle the loop also services the publisher's connection
(``publisher.py``): it reads the confirms still due every ``CONFIRM_POLL``,
and heartbeats.

Connection loss: the loop reconnects with the retry policy's intervals
(forever: a service outlives a broker restart), has the queues its consumers
use declared again and consumes again. When a queue had vanished with the
connection (a broker restart drops non-durable queues), its consumer's
``on_lost`` is told once it consumes again (core's client then publishes its
waiting calls again).

Liveness: the loop notes when it last went round (``last_beat``), connected
or reconnecting. It gives up, and reports why to ``on_failure``, when it
cannot consume again within ``RECONNECT_TIMEOUT``, or when an error escapes
it.

The loop knows nothing of the transport that owns it; it is given narrow
functions: ``new_connection()``, ``restore_queue(conn, queue)`` (declare a
queue again after a reconnection; True if it had vanished), the publisher's
``confirms_since()``, ``confirms_overdue()`` and ``service_publisher(heartbeat)``,
and ``on_failure(reason)``, with the name and broker URI its logs show.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import amqp
import amqp.exceptions
import kombu

from shimeji.amqp_adapter.errors import (
    CONNECTION_ERRORS,
    broker_errors,
    describe_error,
    is_missing_queue,
)
from shimeji.amqp_adapter.frames import frame_ready
from shimeji.amqp_adapter.leaders import LeaderFollowers
from shimeji.amqp_adapter.publisher import CONFIRM_POLL
from shimeji.amqp_adapter.runtime import Lent, ThreadTask, lend_thread
from shimeji.amqp_adapter.wire import StopConnecting, connect_patiently
from shimeji.core.config import RetryPolicy, redact_uri
from shimeji.core.exceptions import describe
from shimeji.core.quoting import escape
from shimeji.core.transport import BrokerUnavailable, QueueLocked, QueueNotFound

if TYPE_CHECKING:
    from shimeji.amqp_adapter.consumer import AmqpConsumer

__all__ = ["ACK_POLL", "ACK_POLL_SPAN", "AUTO_ACK_DELAY", "ConsumerLoop"]

log = logging.getLogger("shimeji.amqp")

#: How late auto-acked deliveries (replies) may be acked on the broker (seconds).
AUTO_ACK_DELAY = 0.05
#: How often the loop picks up acks queued by workers while it expects them, and
#: for how long after the last delivery it expects them (seconds).
ACK_POLL = 0.005
ACK_POLL_SPAN = 1.0


class _Stopping(StopConnecting):
    pass


class _GiveUp(StopConnecting):
    """Reconnecting took longer than RECONNECT_TIMEOUT: the loop ends, failed."""


class ConsumerLoop:
    """The thread that owns the consumer connection (see the module docstring).

    ``conn`` is the connection to serve first (connected); ``name`` and ``uri``
    name the loop's threads and the broker in logs and errors.
    """

    def __init__(
        self,
        conn: kombu.Connection,
        *,
        name: str,
        uri: str,
        new_connection: Callable[[], kombu.Connection],
        restore_queue: Callable[[kombu.Connection, str], bool],
        retry_policy: RetryPolicy,
        reconnect_timeout: float | None,
        confirms_since: Callable[[], float | None],
        confirms_overdue: Callable[[], bool],
        service_publisher: Callable[[bool], None],
        on_failure: Callable[[str], None],
    ) -> None:
        self.name = name
        self.uri = uri
        self.redacted_uri = redact_uri(uri)
        self._new_connection = new_connection
        self._restore_queue = restore_queue
        self._retry_policy = retry_policy
        self._reconnect_timeout = reconnect_timeout
        self._confirms_since = confirms_since
        self._confirms_overdue = confirms_overdue
        self._service_publisher = service_publisher
        self._on_failure = on_failure
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
        #: when a consumer last received a delivery (monotonic)
        self.last_delivery = 0.0
        self._stopping = False
        self.connected = True
        self._next_tick: float | None = None
        # The thread that reads the connection hands it over when a delivery
        # spawned a worker, and runs that worker itself (see ``leaders.py``).
        self._roles = LeaderFollowers(self._run, f"{name}-amqp-loop")
        self._lent: Lent = []
        self._ended = threading.Event()
        self._confirm_poll_after = 0.0
        #: when the loop last went round (monotonic; liveness)
        self.last_beat = time.monotonic()
        #: since when the consumers have been down (monotonic), or None
        self._down_since: float | None = None
        #: why the loop ended without being asked to, or None
        self.failure: str | None = None

    @property
    def consuming(self) -> bool:
        """Whether the loop is connected, has not failed, and every active
        consumer is attached to the broker."""
        return (
            self.connected
            and self.failure is None
            and all(consumer.attached for consumer in self._consumers if consumer.active)
        )

    @property
    def thread(self) -> threading.Thread:
        """The thread reading the connection now (it changes as workers start)."""
        return self._roles.leader

    def start(self) -> None:
        """Start reading the connection, on a thread of the loop's own."""
        self._roles.start()

    def _to_pool(self, submit: Callable[[ThreadTask], None], task: ThreadTask) -> None:
        try:
            submit(task)
        except Exception:  # the runtime closed meanwhile
            log.warning("%s: %s not run: its runtime is closed", self.name, task.name)

    # -- commands from other threads -------------------------------------------------

    def enqueue(self, command: Callable[[], None]) -> None:
        """Queue ``command`` for the loop without waking it (it polls soon)."""
        self._commands.append(command)

    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the loop thread, soon; do not wait for it."""
        self._commands.append(command)
        if threading.current_thread() is not self._roles.leader:
            self.wake()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the loop thread and return its result (or raise its error)."""
        leader = self._roles.leader
        if threading.current_thread() is leader:
            return fn()
        if not leader.is_alive():
            raise BrokerUnavailable(
                f"the connection to {self.redacted_uri} is closed; create a new transport"
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
            if not self._roles.leader.is_alive():
                raise BrokerUnavailable(f"the connection to {self.redacted_uri} was closed")
            if not self.connected:
                # The loop is reconnecting and runs no commands until it is back,
                # which may be never: do not wait for it. (Commands are
                # idempotent: if this one runs after all, it finds nothing to do.)
                raise BrokerUnavailable(f"the connection to {self.redacted_uri} is lost")
        ok, value = outcome[0]
        if ok:
            return value
        with broker_errors("consuming", self.uri):
            raise value

    def add(
        self,
        consumer: AmqpConsumer,
        *,
        prepare: Callable[[kombu.Connection], None] | None = None,
    ) -> None:
        """Register and start a consumer (on the loop thread); ``prepare(conn)``
        first, if given (it declares a queue only this connection may use).

        ``QueueNotFound`` if the broker has no such queue, ``QueueLocked`` if it
        is another connection's exclusive queue: the consumer is then dropped,
        and the connection serves on (the broker closed the consumer's channel
        only).
        """
        self._consumers.append(consumer)
        if self._conn is not None and self.connected:
            try:
                if prepare is not None:
                    prepare(self._conn)
                consumer.start(self._conn)
            except amqp.exceptions.NotFound as exc:
                if not is_missing_queue(exc):
                    raise
                self.forget(consumer)
                consumer.discard()
                raise QueueNotFound(consumer.queue, "consume from") from None
            except amqp.exceptions.ResourceLocked:
                # Another connection's exclusive queue.
                self.forget(consumer)
                consumer.discard()
                raise QueueLocked(consumer.queue, "consume from") from None

    def with_channel(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(channel)`` on a throwaway channel of the loop's connection (on
        the loop thread): for the queues only this connection may use."""
        if self._conn is None or not self.connected:
            raise BrokerUnavailable(f"not connected to {self.redacted_uri}")
        channel = self._conn.channel()
        try:
            return fn(channel)
        finally:
            with contextlib.suppress(Exception):
                if channel.is_open:
                    channel.close()

    def forget(self, consumer: AmqpConsumer) -> None:
        """Unregister a consumer (on the loop thread): it is not resumed after a
        reconnection."""
        if consumer in self._consumers:
            self._consumers.remove(consumer)

    def stop(self) -> None:
        """Stop consuming and close the connection; unacked deliveries go back
        to their queues. Waits (up to 10 s) for the loop to end."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._roles.dismiss()
        # Wait for the loop to end, not for a thread: the thread that led a
        # moment ago may be running a worker now.
        if threading.current_thread() is self._roles.leader or not self._ended.wait(10):
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
                        self.name,
                        self.redacted_uri,
                        describe_error(exc),
                    )
                    self._drop_connection()
        except BaseException as exc:
            # A bug, or an error no broker should cause: the replica cannot be
            # trusted to consume any more, and must not pretend it does.
            failure = f"its consumer loop failed: {escape(describe(exc))}"
            log.critical("%s: %s", self.name, failure, exc_info=True)
        finally:
            if task is None:
                self._drop_connection()
                self.connected = False
                if failure is not None and not self._stopping:
                    self.failure = failure
                    self._on_failure(failure)
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
            consumer.connection_lost()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.release()

    def _reconnect(self) -> None:
        def stop_check() -> None:
            if self._stopping:
                raise _Stopping

        limit = self._reconnect_timeout
        down_since = self._down_since if self._down_since is not None else time.monotonic()

        def give_up_check() -> None:
            self.last_beat = time.monotonic()
            if limit is not None and time.monotonic() - down_since > limit:
                uri = self.redacted_uri
                raise _GiveUp(
                    f"could not consume from {uri} again within {limit:g}s (RECONNECT_TIMEOUT)"
                )

        conn = self._new_connection()
        if not connect_patiently(
            conn,
            self._retry_policy,
            stop_check=stop_check,
            give_up_check=give_up_check,
            name=self.name,
            redacted_uri=self.redacted_uri,
        ):
            return
        self._conn = conn
        self.connected = True
        try:
            for consumer in list(self._consumers):
                if not consumer.active:
                    continue
                lost = self._restore_queue(conn, consumer.queue)
                consumer.start(conn)
                if lost:
                    reason = (
                        f"queue {consumer.queue} vanished, with the messages in it (it was "
                        f"deleted, or a restart of the broker at {self.redacted_uri} "
                        "dropped it)"
                    )
                    log.warning("%s: %s", consumer.label, reason)
                    consumer.queue_lost(reason)
        except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError) as exc:
            log.warning(
                "%s: reconnected to %s but could not resume consuming (%s); retrying",
                self.name,
                self.redacted_uri,
                describe_error(exc),
            )
            self._drop_connection()
            give_up_check()
            return
        self._down_since = None
        log.info("%s: reconnected to %s", self.name, self.redacted_uri)

    def _serve(self, conn: kombu.Connection) -> ThreadTask | None:
        sock = conn.connection.sock
        wake = self._wake_r
        commands = self._commands
        heartbeat = conn.heartbeat or 0
        tick = heartbeat / 4 if heartbeat else 5.0
        if self._next_tick is None:
            self._next_tick = time.monotonic() + tick
        lent = self._lent
        roles = self._roles
        readers = [sock, wake]
        pending = getattr(sock, "pending", None)  # TLS sockets only
        transport = conn.connection.transport
        writer = conn.connection.frame_writer
        cork = getattr(writer, "cork", None)
        while True:
            self.last_beat = time.monotonic()
            self._woken = False
            if cork is not None and len(commands) > 1:
                # Commands come in batches (acks picked up every ACK_POLL): their
                # frames go out together, in one system call.
                cork()
                try:
                    while commands:
                        commands.popleft()()
                finally:
                    writer.uncork()
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
            if now - self.last_delivery < ACK_POLL_SPAN and any(
                consumer.unsettled for consumer in self._consumers
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
            oldest = self._confirms_since()
            if oldest is not None:
                # Confirms still due: read them once they are CONFIRM_POLL old if
                # no thread publishing has read them by then, so that a nack fails
                # its call promptly. (The next publish usually reads them first.)
                self.polling_confirms = True
                due = max(oldest + CONFIRM_POLL, self._confirm_poll_after)
                timeout = min(timeout, max(due - now, 0.0))
            if commands:
                continue  # queued while we looked: run it before sleeping
            if frame_ready(transport) or (pending is not None and pending()):
                # Read already (with an earlier frame, or by the thread that led
                # before): the kernel no longer shows it, and select would wait.
                readable = [sock]
            else:
                readable, _, _ = select.select(readers, [], [], timeout)
            if wake in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 4096)
            if sock in readable:
                # Reads take what the kernel holds (``ChunkedTCPTransport``), so
                # methods that arrived together are handled together, until one
                # spawns a worker for this thread: the thread then hands the
                # connection over, and the next leader handles the rest without
                # waiting for select (``frame_ready``). A TLS socket may hold
                # decrypted bytes the kernel no longer shows: drain those too.
                lend_thread(lent if roles.standby is not None else None)
                try:
                    conn.drain_events(timeout=0)
                    while not lent and (
                        frame_ready(transport) or (pending is not None and pending())
                    ):
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
                        roles.hand_over()
                    except Exception:  # no thread to take over: this one leads on
                        log.exception("%s: cannot hand the connection over", self.name)
                        self._to_pool(submit, task)
                    else:
                        return task
            if time.monotonic() >= self._next_tick:
                self._next_tick = time.monotonic() + tick
                if heartbeat:
                    conn.heartbeat_check()
                self._service_publisher(True)
            elif self._confirms_overdue() and time.monotonic() >= self._confirm_poll_after:
                # At most every CONFIRM_POLL: a broker short of memory or disk
                # may hold confirms back for long.
                self._service_publisher(False)
                self._confirm_poll_after = time.monotonic() + CONFIRM_POLL

    def confirms_pending(self) -> None:
        """A request awaits its confirm: make sure the loop reads it soon (any thread)."""
        if not self.polling_confirms and threading.current_thread() is not self._roles.leader:
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
            consumer.flush_auto_acks()
