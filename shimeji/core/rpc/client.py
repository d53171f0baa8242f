"""RPC, the client side: sending requests and matching their replies.

An ``RpcClient`` owns one reply queue (per replica, or per standalone
client); it publishes each request with a fresh correlation id and hands the
reply to the call waiting for it, or fails the call when its timeout passes.
What the broker may have lost (a request it never confirmed, a reply queue
dropped by a restart) is published again: requests run at least once anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from shimeji.core import protocol
from shimeji.core.config import RetryPolicy, Settings
from shimeji.core.events import Event
from shimeji.core.exceptions import (
    ContainerBeingKilled,
    MalformedReply,
    RpcTimeout,
    ServiceNotFound,
    ShimejiError,
    safe_str,
)
from shimeji.core.quoting import quote, shorten
from shimeji.core.retry import with_retry
from shimeji.core.runtime import Runtime, Timer, Waiter
from shimeji.core.tracing import Tracer, stepper, tracer_adds_context
from shimeji.core.transport import (
    BrokerUnavailable,
    Delivery,
    Message,
    MessageRefused,
    Transport,
    Unroutable,
)

__all__ = ["RpcClient", "RpcReply"]

log = logging.getLogger("shimeji.rpc")


class RpcClient:
    """Sends requests and receives their replies on one reply queue.

    ``owner`` names the queue (``rpc.reply-<owner>-<id>``); ``label`` names
    the caller in traces (a replica, or a standalone client).

    A call is not failed because the broker lost something it held: requests
    run at least once anyway, so a request the broker may not have (its
    connection dropped before it confirmed it) is published again, and when
    the reply queue itself was lost (a broker restart drops it; the transport
    declares it again) every call still waiting is published again, since
    its reply may have gone with the queue. Each such call still ends within
    its timeout; one the broker refused outright (a nack) fails at once.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport,
        runtime: Runtime,
        tracer: Tracer,
        owner: str,
        label: str,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.runtime = runtime
        self.tracer = tracer
        self.owner = owner
        self.label = label
        self.reply_to: str | None = None
        self.reply_queue: str | None = None
        self.closed = False
        self._consumer: Any = None
        self._pending: dict[str, RpcReply] = {}
        self._expired: dict[str, str] = {}
        self._ask_context = tracer_adds_context(tracer)  # for each request, or never
        self._step = stepper(tracer)
        #: (service, method, label) -> (routing key, the waiter's description):
        #: made once, not for every call (the same string each time also keeps
        #: its hash for the routing and the server's lookups)
        self._names: dict[tuple[str, str, str], tuple[str, str]] = {}

    @property
    def pending(self) -> list[RpcReply]:
        return list(self._pending.values())

    def start(self) -> None:
        if self._consumer is not None:
            return
        reply_id = self.runtime.new_id()
        queue = protocol.reply_queue_name(self.owner, reply_id)
        exchange = self.settings.rpc_exchange
        self.transport.declare_exchange(exchange)
        # Not auto-deleted: a client that reconnects finds the replies sent while
        # it was away, unless it stayed away longer than the queue's expiry.
        self.transport.declare_queue(
            queue, durable=False, auto_delete=False, expires=self.settings.reply_queue_ttl
        )
        self.transport.bind_queue(queue, exchange, reply_id)
        self._consumer = self.transport.consume(
            queue,
            self._on_reply,
            prefetch=0,
            label=self.label,
            auto_ack=True,
            on_lost=self._reply_queue_lost,
        )
        self.reply_to, self.reply_queue = reply_id, queue

    def close(self, delete_queue: bool = False) -> None:
        """Stop receiving replies; calls still waiting fail with ContainerBeingKilled.

        ``delete_queue`` (a graceful stop) removes the reply queue; otherwise it is
        left to expire (RPC_REPLY_QUEUE_TTL), as after a crash.
        """
        if self.closed:
            return
        self.closed = True
        # Callers first: whatever the broker does next, nobody is left waiting.
        pending, self._pending = self._pending, {}
        for call in pending.values():
            if call.timer is not None:
                call.timer.cancel()
            call.waiter.set_exception(
                ContainerBeingKilled(f"{self.label} closed while waiting for {call.describe()}")
            )
        if self._consumer is not None:
            try:
                self._consumer.close()
                if delete_queue and self.reply_queue:
                    self.transport.delete_queue(self.reply_queue)
            except BrokerUnavailable as exc:
                # The queue expires by itself (RPC_REPLY_QUEUE_TTL).
                log.warning("%s: closed without tidying its reply queue: %s", self.label, exc)

    def _fail(self, call: RpcReply, error: BaseException) -> None:
        if self._pending.pop(call.correlation_id, None) is not call:
            return  # answered, timed out or failed meanwhile
        if call.timer is not None:
            call.timer.cancel()
        call.waiter.set_exception(error)

    def _request_lost(self, correlation_id: str, error: BrokerUnavailable) -> None:
        """The broker may not hold a request it was given after all (any thread)."""
        call = self._pending.get(correlation_id)
        if call is None:
            return
        if isinstance(error, MessageRefused):
            self._fail(
                call,
                BrokerUnavailable(
                    f"{call.describe()} was not delivered: {error}. Nothing ran; retry the "
                    "call once the broker takes messages again"
                ),
            )
            return
        self._resend([call], str(error))

    def _reply_queue_lost(self, reason: str) -> None:
        """The reply queue vanished with any replies in it, and was declared again."""
        self._resend(list(self._pending.values()), f"its reply queue was lost: {reason}")

    def _resend(self, calls: list[RpcReply], reason: str) -> None:
        if calls and not self.closed:
            # Publishing may wait for retries, which only a task may do.
            self.runtime.spawn(self._resend_now, calls, reason, name=f"{self.label}:resend")

    def _resend_now(self, calls: list[RpcReply], reason: str) -> None:
        for call in calls:
            if self._pending.get(call.correlation_id) is not call:
                continue  # its reply came, or it timed out, meanwhile
            self.tracer.emit(
                Event(
                    kind="resend",
                    replica=self.label,
                    service=call.service,
                    method=call.method,
                    call_id=call.call_id,
                    correlation_id=call.correlation_id,
                    detail=shorten(reason),
                    message=call.message,
                )
            )
            try:
                self._publish(call)
            except Unroutable:
                self._fail(call, ServiceNotFound(call.service))
            except ShimejiError as exc:  # PublishFailed, UnserializableValueError...
                self._fail(call, exc)

    def _publish(self, call: RpcReply) -> None:
        # publish_with_retry's first attempt, made here: publishing usually
        # works, and this is on the path of every call.
        on_lost = call.request_lost
        try:
            self.transport.publish(call.message, mandatory=True, on_lost=on_lost)
            return
        except BrokerUnavailable as exc:
            failed = exc
        message = call.message
        with_retry(
            partial(self.transport.publish, message, mandatory=True, on_lost=on_lost),
            runtime=self.runtime,
            tracer=self.tracer,
            policy=call.retry_policy,
            label=self.label,
            what=message.routing_key,
            correlation_id=message.correlation_id,
            call_id=call.call_id,
            deadline=call.deadline,
            failed=failed,
        )

    def call(
        self,
        service: str,
        method: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any],
        *,
        context_data: Mapping[str, Any],
        call_id_stack: list[str],
        timeout: float | None,
        retry_policy: RetryPolicy,
    ) -> RpcReply:
        """Send one request; return its RpcReply at once.

        Raises UnserializableValueError before anything is sent, ServiceNotFound
        when no queue takes the request, PublishFailed when the broker stays
        unavailable.
        """
        if self.closed:
            raise ContainerBeingKilled(f"{self.label} is closed and cannot make calls")
        since = self.runtime.now()
        if self._consumer is None:
            with_retry(
                self.start,
                runtime=self.runtime,
                tracer=self.tracer,
                policy=retry_policy,
                label=self.label,
                what=protocol.request_routing_key(service, method),
                deadline=None if timeout is None else since + timeout,
            )
        settings = self.settings
        codec = settings.serializer
        names = self._names.get((service, method, self.label))
        if names is None:
            names = self._names_of(service, method)
        target, description = names  # target: the routing key
        body = protocol.encode_request(codec, args, kwargs, target)
        correlation_id = self.runtime.new_id()
        caller_call_id = call_id_stack[-1] if call_id_stack else None
        tracer = self.tracer
        exchange = settings.rpc_exchange
        if self._ask_context and tracer.enabled:
            context_data = tracer.request_context(
                context_data,
                caller=self.label,
                service=service,
                method=method,
                call_id=caller_call_id,
                correlation_id=correlation_id,
                exchange=exchange,
            )
        # Positional: a class called with keywords first gathers them into a dict.
        message = Message(
            body,  # body
            target,  # routing_key
            exchange,  # exchange
            codec.content_type,  # content_type
            codec.content_encoding,  # content_encoding
            protocol.headers_from_context(context_data, call_id_stack),  # headers
            correlation_id,  # correlation_id
            self.reply_to,  # reply_to
        )
        waiter = self.runtime.new_waiter(description)
        call = RpcReply(
            self,
            service,
            method,
            message,
            caller_call_id,
            waiter,
            timeout,
            since,
            retry_policy,
        )
        # Registered before publishing: a reply can be faster than our return.
        self._pending[correlation_id] = call
        if tracer.enabled:
            self._step(
                "publish", self.label, service, method, caller_call_id, correlation_id, "", message
            )
        try:
            self._publish(call)
        except Unroutable:
            del self._pending[correlation_id]
            tracer.emit(
                Event(
                    kind="unroutable",
                    replica=self.label,
                    service=service,
                    method=method,
                    call_id=caller_call_id,
                    correlation_id=correlation_id,
                    detail=f"no queue bound for {message.routing_key}",
                )
            )
            raise ServiceNotFound(service) from None
        except BaseException:
            self._pending.pop(correlation_id, None)
            raise
        if timeout is not None and correlation_id in self._pending:
            # The timeout counts from the call, publish retries included.
            remaining = max(0.0, call.since + timeout - self.runtime.now())
            call.timer = self.runtime.call_later(remaining, self._expire, correlation_id)
        return call

    def _names_of(self, service: str, method: str) -> tuple[str, str]:
        """The routing key of a call (protocol.request_routing_key) and the
        description of the wait for its reply, remembered for the next call."""
        target = f"{service}.{method}"
        names = (target, f"a reply from {target} to {self.label}")
        if len(self._names) >= 1_000:  # names made up at run time: keep it bounded
            self._names.clear()
        self._names[service, method, self.label] = names
        return names

    def _expire(self, correlation_id: str) -> None:
        call = self._pending.pop(correlation_id, None)
        if call is None:
            return
        self._remember_expired(correlation_id, f"{call.service}.{call.method}")
        self.tracer.emit(
            Event(
                kind="timeout",
                replica=self.label,
                service=call.service,
                method=call.method,
                call_id=call.call_id,
                correlation_id=correlation_id,
                detail=f"no reply within {call.timeout:g}s",
            )
        )
        call.waiter.set_exception(
            RpcTimeout(call.service, call.method, call.timeout or 0.0, correlation_id)
        )

    def _remember_expired(self, correlation_id: str, what: str) -> None:
        self._expired[correlation_id] = what
        if len(self._expired) > 10_000:  # keep the memory of late replies bounded
            del self._expired[next(iter(self._expired))]

    def _on_reply(self, delivery: Delivery) -> None:
        message = delivery.message
        correlation_id = message.correlation_id or ""
        call = self._pending.pop(correlation_id, None)
        if call is None:
            late = self._expired.pop(correlation_id, None)
            reason = (
                f"late reply for {late}, which had timed out"
                if late
                else "no call waits for this correlation id"
            )
            log.debug("%s: dropping reply %s: %s", self.label, quote(correlation_id), reason)
            self.tracer.emit(
                Event(
                    kind="reply_dropped",
                    replica=self.label,
                    correlation_id=correlation_id,
                    detail=reason,
                    message=message,
                )
            )
            return
        if call.timer is not None:
            call.timer.cancel()
        if delivery.malformed is not None:
            call.waiter.set_exception(
                MalformedReply(
                    f"reply to {call.describe()} cannot be decoded: {delivery.malformed}"
                )
            )
            return
        codec = self.settings.accept.get(message.content_type or "")
        if codec is None:
            call.waiter.set_exception(
                MalformedReply(
                    f"reply to {call.describe()} has content type {quote(message.content_type)}, "
                    "which is not accepted"
                )
            )
            return
        try:
            result, error = protocol.decode_reply(codec, message.body)
        except Exception as exc:
            call.waiter.set_exception(
                MalformedReply(
                    f"reply to {call.describe()} cannot be decoded: {shorten(safe_str(exc))}"
                )
            )
            return
        if error is not None:
            call.waiter.set_exception(error)
        else:
            call.waiter.set_result(result)


class RpcReply:
    """The pending result of a call made with ``call_async``: ``result()`` waits for it.

    It is also the client's record of the call while its reply is awaited
    (``RpcClient.pending``): one object per call, not a reply holding a
    record of its call.
    """

    __slots__ = (
        "_client",
        "_error",
        "_has_outcome",
        "_value",
        "call_id",
        "correlation_id",
        "deadline",
        "message",
        "method",
        "retry_policy",
        "service",
        "since",
        "timeout",
        "timer",
        "waiter",
    )

    def __init__(
        self,
        client: RpcClient,
        service: str,
        method: str,
        message: Message,
        call_id: str | None,
        waiter: Waiter,
        timeout: float | None,
        since: float,
        retry_policy: RetryPolicy,
    ) -> None:
        self._client = client
        self.service = service
        self.method = method
        self.message = message  # kept to publish again if the broker may have lost it
        self.correlation_id: str = message.correlation_id or ""
        self.call_id = call_id  # the caller's
        self.waiter = waiter
        self.timeout = timeout
        self.since = since
        self.retry_policy = retry_policy
        self.timer: Timer | None = None
        #: when the call times out (runtime clock), if it has a timeout
        self.deadline: float | None = None if timeout is None else since + timeout
        self._has_outcome = False
        self._value: Any = None
        self._error: Exception | None = None

    def describe(self) -> str:
        return f"{self.service}.{self.method} (correlation id {self.correlation_id})"

    def request_lost(self, error: BrokerUnavailable) -> None:
        """The transport's ``on_lost``: the broker may not hold the request after all."""
        self._client._request_lost(self.correlation_id, error)

    def result(self) -> Any:
        """Wait for the reply; return its result or raise its error (the same each time)."""
        if not self._has_outcome:
            try:
                self._value = self.waiter.wait()
            except Exception as exc:
                self._error = exc
            self._has_outcome = True
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self) -> str:
        state = "done" if self._has_outcome or self.waiter.done else "pending"
        return f"<RpcReply {self.describe()} {state}>"
