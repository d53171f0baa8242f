"""The publisher: one connection shared by every thread that publishes or declares.

kombu channels are not thread-safe; this connection is shared by every
thread under a lock. It has one channel in confirm mode, and the publishing
thread itself writes and reads it, so a reply or a request costs no thread
hand-off. A reply waits for its confirm. A request waits for a round trip on
the channel only (see ``Publisher``); its confirm is read later, by the next
publishing thread or by the consumer loop (every ``CONFIRM_POLL`` while some
are due, through ``service``). Declarations (exchanges, queues, bindings) go
through this connection too, and the consumer loop services its heartbeats
when it is idle.

Mandatory publishing: a message no queue takes comes back as
``basic.return``, before the answer to any later method on the channel; the
publisher registers a return handler and raises ``Unroutable``.

Connection loss: the publisher connects again on its next publish, one
attempt per publish (the caller's retry policy, ``publish_with_retry`` in
core, paces the attempts); a request it had not seen confirmed is reported
to the ``on_lost`` given with it.

The publisher knows nothing of the transport that owns it: it is given a
``connect`` function (which picks the node of a cluster to try), the broker's
URI for its error messages, the confirm timeout, a way to reach the consumer
loop, and the function that reports a lost request.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import amqp
import amqp.exceptions
import kombu

from shimeji.amqp_adapter.errors import (
    CONNECTION_ERRORS,
    TRANSLATED_ERRORS,
    broker_errors,
    describe_error,
    translate_error,
)
from shimeji.amqp_adapter.wire import to_amqp
from shimeji.core.config import redact_uri
from shimeji.core.exceptions import UnserializableValueError
from shimeji.core.transport import BrokerUnavailable, Message, MessageRefused, Unroutable

__all__ = [
    "CONFIRM_POLL",
    "DEFAULT_CONFIRM_TIMEOUT",
    "LostCallback",
    "Publisher",
    "RequestLost",
]

#: What ``publish`` is given as ``on_lost`` (see the Transport contract).
LostCallback = Callable[[BrokerUnavailable], None]
#: ``request_lost(on_lost, error)``: report a lost request to its ``on_lost``.
RequestLost = Callable[[LostCallback, BrokerUnavailable], None]

log = logging.getLogger("shimeji.amqp")

DEFAULT_CONFIRM_TIMEOUT = 30.0
#: How often the consumer loop reads confirms still due when no thread publishes (seconds).
CONFIRM_POLL = 0.05


class Publisher:
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

    - ``connect(retry)``: a connected kombu connection to the broker; with
      ``retry``, after as many attempts as the retry policy allows, else after
      one (and the next call tries the next node of a cluster);
    - ``uri``: the broker, as errors name it (redacted);
    - ``confirm_timeout``: how long a publish waits for its confirm (seconds);
    - ``confirm_reader()``: the function that tells the consumer loop a request
      awaits its confirm, or None while there is no loop (a request then waits
      for its confirm, as no other thread would read it);
    - ``request_lost(on_lost, error)``: report a request the broker refused or
      may have lost.
    """

    def __init__(
        self,
        connect: Callable[[bool], kombu.Connection],
        uri: str,
        *,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
        confirm_reader: Callable[[], Callable[[], None] | None],
        request_lost: RequestLost,
    ) -> None:
        self._connect = connect
        self.uri = uri
        self.redacted_uri = redact_uri(uri)
        self.confirm_timeout = float(confirm_timeout)
        self._confirm_reader = confirm_reader
        self._request_lost = request_lost
        self.lock = threading.Lock()
        self._conn: kombu.Connection | None = None
        self._channel: Any = None
        self._writer: Any = None  # the connection's frame writer, when it can be corked
        self._returned = False
        self._tag = 0  # delivery tag of the last message published on the channel
        # tag -> (the on_lost of a request whose confirm is read lazily, or None
        # for one awaited now; when it was published), in publishing order
        self._unconfirmed: dict[int, tuple[LostCallback | None, float]] = {}
        #: when the oldest confirm still awaited was published (monotonic), or None
        self.oldest_unconfirmed: float | None = None
        self._nacked: set[int] = set()

    @property
    def unconfirmed(self) -> int:
        """How many published messages await their confirm."""
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
                self._request_lost(on_lost, MessageRefused(failure))
        self._note_oldest()

    def _note_oldest(self) -> None:
        # Called with the lock held, after confirms were awaited or forgotten.
        unconfirmed = self._unconfirmed
        self.oldest_unconfirmed = next(iter(unconfirmed.values()))[1] if unconfirmed else None

    def awaited_since(self) -> float | None:
        """When the oldest confirm still awaited was published (monotonic), or
        None if no confirm is awaited (any thread)."""
        return self.oldest_unconfirmed

    def confirms_overdue(self) -> bool:
        """Whether a confirm has been awaited for ``CONFIRM_POLL`` or longer (any thread)."""
        oldest = self.oldest_unconfirmed
        return oldest is not None and time.monotonic() - oldest >= CONFIRM_POLL

    def _ensure_channel(self, retry: bool = False) -> Any:
        # Called with the lock held.
        if self._channel is not None:
            return self._channel
        if self._conn is None:
            # Without retry, one attempt: the caller paces retries (and the
            # next one goes to the next node of a cluster).
            self._conn = self._connect(retry)
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
        writer = self._conn.connection._frame_writer
        self._writer = writer if hasattr(writer, "cork") else None
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
                self._request_lost(
                    on_lost,
                    BrokerUnavailable(
                        f"the connection to {self.redacted_uri} was lost before the "
                        "broker confirmed it"
                    ),
                )

    def connect(self) -> None:
        """Connect now, retrying as the retry policy says."""
        with self.lock, broker_errors("connecting the publisher", self.uri):
            self._ensure_channel(retry=True)

    def run(
        self, what: str, fn: Callable[[Any], Any], *, queue: str | None = None, verb: str = "use"
    ) -> Any:
        """Run ``fn(channel)`` under the lock, translating errors; one attempt.

        With ``queue``, the broker saying it has no such queue raises
        ``QueueNotFound(queue, verb)`` (see ``broker_errors``).
        """
        with self.lock, broker_errors(what, self.uri, queue=queue, verb=verb):
            channel = self._ensure_channel()
            try:
                return fn(channel)
            except amqp.exceptions.ChannelError:
                self._reset(connection_too=False)
                raise
            except CONNECTION_ERRORS:
                self._reset(connection_too=True)
                raise

    def probe(
        self, what: str, fn: Callable[[Any], Any], *, queue: str | None = None, verb: str = "use"
    ) -> Any:
        """Run ``fn(channel)`` on a throwaway channel (one a channel error may close);
        errors naming ``queue`` as ``run``."""
        with self.lock, broker_errors(what, self.uri, queue=queue, verb=verb):
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
        raw = to_amqp(message)
        confirms_pending = self._confirm_reader()
        lazy = mandatory and on_lost is not None and confirms_pending is not None
        with self.lock:
            try:
                returned = self._publish_locked(raw, message, mandatory, on_lost, lazy)
            except TRANSLATED_ERRORS as exc:
                # As broker_errors does, without a context manager on every publish.
                what = f"publishing {message.routing_key!r}"
                raise translate_error(exc, what, self.uri) from None  # type: ignore[misc]
            if not returned and lazy and confirms_pending is not None:
                confirms_pending()
        if returned and mandatory:
            raise Unroutable(message.exchange, message.routing_key)

    def _publish_locked(
        self,
        raw: amqp.Message,
        message: Message,
        mandatory: bool,
        on_lost: LostCallback | None,
        lazy: bool,
    ) -> bool:
        # Called with the lock held; whether the broker returned the message.
        channel = self._ensure_channel()
        self._returned = False
        tag = None
        # A request and its round trip go out in one write: the writer holds the
        # message back until basic.qos waits for its answer.
        writer = self._writer if lazy else None
        try:
            if writer is not None:
                writer.cork()
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
            finally:
                if writer is not None:
                    writer.uncork()
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
        return returned

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
                self.redacted_uri,
                describe_error(exc),
            )
            self._reset(connection_too=True)
        finally:
            self.lock.release()

    def close(self) -> None:
        with self.lock:
            self._reset(connection_too=True)
