"""RPC: the ``@rpc`` entrypoint, the ``RpcProxy`` dependency and the client.

Server side: each replica has one ``RpcConsumer`` on the queue
``rpc-<service>``; it hands each request to the ``Rpc`` entrypoint of its
method, which checks it and spawns a worker. The reply is published before
the request is acked, so a replica that dies mid-call leaves its request to
be redelivered.

Client side: an ``RpcClient`` owns one reply queue; it sends requests and
matches replies to callers by correlation id. ``RpcProxy`` gives a worker a
client of its replica; ``ClusterProxy`` is the standalone form.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

from shimeji.core import protocol
from shimeji.core.config import RetryPolicy, Settings
from shimeji.core.container import ExcInfo, WorkerContext
from shimeji.core.events import Event
from shimeji.core.exceptions import (
    BadRequest,
    ConfigurationError,
    ContainerBeingKilled,
    IncorrectSignature,
    MalformedReply,
    MalformedRequest,
    MethodNotFound,
    PublishFailed,
    RpcTimeout,
    ServiceNotFound,
    ShimejiError,
    UnserializableValueError,
    safe_str,
)
from shimeji.core.extensions import DependencyProvider, Entrypoint, SharedExtension
from shimeji.core.quoting import escape, quote, shorten
from shimeji.core.runtime import Runtime, Timer, Waiter
from shimeji.core.serialization import Codec
from shimeji.core.tracing import Tracer
from shimeji.core.transport import (
    BrokerUnavailable,
    Delivery,
    Message,
    MessageRefused,
    Transport,
    Unroutable,
)

__all__ = [
    "ClusterProxy",
    "MethodProxy",
    "ReplyListener",
    "Rpc",
    "RpcClient",
    "RpcConsumer",
    "RpcProxy",
    "RpcReply",
    "ServiceProxy",
    "publish_with_retry",
    "rpc",
    "with_retry",
]

log = logging.getLogger("shimeji.rpc")

_UNSET: Any = object()
_NO_HEADERS: Mapping[str, Any] = MappingProxyType({})


def with_retry(
    operation: Callable[[], Any],
    *,
    runtime: Runtime,
    tracer: Tracer,
    policy: RetryPolicy,
    label: str,
    what: str,
    correlation_id: str | None = None,
    call_id: str | None = None,
    deadline: float | None = None,
) -> Any:
    """Run ``operation``, retrying on ``BrokerUnavailable`` as ``policy`` says.

    Raises ``PublishFailed`` naming ``what`` when every attempt failed, or when
    the next attempt would come after ``deadline`` (a time on ``runtime``'s
    clock: a call's timeout bounds its retries). Other errors (``Unroutable``
    among them: retrying cannot create a queue) pass through at once.
    """
    attempts = 0
    waits = None
    while True:
        attempts += 1
        try:
            return operation()
        except BrokerUnavailable as exc:
            if waits is None:
                waits = policy.intervals()
            wait = next(waits, None)
            if wait is not None and deadline is not None and runtime.now() + wait > deadline:
                wait = None  # the caller would have given up by then
            if wait is None:
                tracer.emit(
                    Event(
                        kind="publish_failed",
                        replica=label,
                        call_id=call_id,
                        correlation_id=correlation_id,
                        detail=f"{what}: gave up after {attempts} attempt(s): {exc}",
                    )
                )
                raise PublishFailed(what, attempts, exc) from None
            tracer.emit(
                Event(
                    kind="retry",
                    replica=label,
                    call_id=call_id,
                    correlation_id=correlation_id,
                    detail=f"{what}: attempt {attempts} failed ({exc}); next in {wait:g}s",
                )
            )
            runtime.sleep(wait)


def publish_with_retry(
    transport: Transport,
    runtime: Runtime,
    tracer: Tracer,
    message: Message,
    *,
    mandatory: bool,
    policy: RetryPolicy,
    label: str,
    call_id: str | None = None,
    deadline: float | None = None,
    on_lost: Callable[[BrokerUnavailable], None] | None = None,
) -> None:
    """Publish, retrying as ``policy`` says; ``PublishFailed`` if it never works
    (then nothing was sent). ``on_lost``: see ``Transport.publish``."""
    if on_lost is None:
        operation = partial(transport.publish, message, mandatory=mandatory)
    else:
        operation = partial(transport.publish, message, mandatory=mandatory, on_lost=on_lost)
    with_retry(
        operation,
        runtime=runtime,
        tracer=tracer,
        policy=policy,
        label=label,
        what=message.routing_key,
        correlation_id=message.correlation_id,
        call_id=call_id,
        deadline=deadline,
    )


# -- server side ---------------------------------------------------------------


class RpcConsumer(SharedExtension):
    """Consumes ``rpc-<service>`` for one replica and dispatches by method name."""

    def __init__(self) -> None:
        self._providers: dict[str, Rpc] = {}
        self._consumer: Any = None

    def register_provider(self, provider: Rpc) -> None:
        self._providers[provider.method_name] = provider

    def start(self) -> None:
        if self._consumer is not None:
            return
        container = self.container
        assert container is not None
        transport, settings = container.transport, container.settings
        queue = protocol.service_queue_name(container.service_name)
        transport.declare_exchange(settings.rpc_exchange)
        transport.declare_queue(
            queue,
            durable=True,
            queue_type=settings.queue_type,
            delivery_limit=settings.delivery_limit,
        )
        transport.bind_queue(
            queue, settings.rpc_exchange, protocol.service_binding_key(container.service_name)
        )
        self._consumer = transport.consume(
            queue,
            self.handle_delivery,
            prefetch=settings.prefetch_count,
            label=container.replica_name,
        )

    def stop(self) -> None:
        # No new requests; those in hand are finished and acked by their workers.
        if self._consumer is not None:
            self._consumer.cancel()

    def kill(self) -> None:
        # Unacked requests go back to the queue, marked redelivered.
        if self._consumer is not None:
            self._consumer.close()

    def handle_delivery(self, delivery: Delivery) -> None:
        if delivery.malformed is not None:
            self.reject_request(
                delivery,
                MalformedRequest(f"the message cannot be decoded: {delivery.malformed}"),
                None,
            )
            return
        _, method_name = protocol.split_routing_key(delivery.message.routing_key)
        provider = self._providers.get(method_name)
        if provider is None:
            self.reject_request(delivery, MethodNotFound(method_name), None)
            return
        provider.handle_request(delivery)

    def reject_request(self, delivery: Delivery, exc: BadRequest, codec: Codec | None) -> None:
        """Answer a request that cannot be served with its error, then settle it.

        A request that could be read (an unknown method, wrong arguments) is
        acked once answered, as nameko does. One that could not be read
        (``MalformedRequest``) is rejected: it leaves the queue for good,
        to the dead-letter exchange where the queue has one, and is never
        redelivered in a loop.
        """
        container = self.container
        assert container is not None
        message = delivery.message
        log.warning(
            "%s: bad request %s (correlation id %s): %s: %s",
            container.replica_name,
            quote(message.routing_key),
            quote(message.correlation_id),
            type(exc).__name__,
            escape(safe_str(exc)),
        )
        outcome = "reject" if isinstance(exc, MalformedRequest) else "ack"
        container.tracer.emit(
            Event(
                kind="bad_request",
                replica=container.replica_name,
                service=container.service_name,
                method=protocol.split_routing_key(message.routing_key)[1],
                correlation_id=message.correlation_id,
                detail=f"{type(exc).__name__}: {shorten(safe_str(exc))}",
            )
        )
        if not message.reply_to or message.correlation_id is None:
            delivery.settle(outcome)
            return
        codec = codec or container.settings.serializer
        reply = _reply_message(
            container.settings, message, codec, protocol.encode_reply(codec, None, exc)
        )
        # Publishing may wait for retries, which only a task may do.
        container.runtime.spawn(
            self._send_reply,
            delivery,
            reply,
            outcome,
            name=f"{container.replica_name}:bad-request",
        )

    def _send_reply(self, delivery: Delivery, reply: Message, outcome: str) -> None:
        container = self.container
        assert container is not None
        try:
            container.tracer.emit(
                Event(
                    kind="reply",
                    replica=container.replica_name,
                    correlation_id=reply.correlation_id,
                    message=reply,
                )
            )
            publish_with_retry(
                container.transport,
                container.runtime,
                container.tracer,
                reply,
                mandatory=False,
                policy=container.settings.retry_policy,
                label=container.replica_name,
            )
        except PublishFailed:
            log.error(
                "%s: could not send an error reply; requeueing the request",
                container.replica_name,
                exc_info=True,
            )
            delivery.requeue()
            return
        delivery.settle(outcome)


def _reply_message(settings: Settings, request: Message, codec: Codec, body: bytes) -> Message:
    return Message(
        body=body,
        routing_key=request.reply_to or "",
        exchange=settings.rpc_exchange,
        content_type=codec.content_type,
        content_encoding=codec.content_encoding,
        headers=_NO_HEADERS,
        correlation_id=request.correlation_id,
    )


class Rpc(Entrypoint):
    """The entrypoint behind ``@rpc``: one method callable over RPC."""

    rpc_consumer = RpcConsumer()

    def setup(self) -> None:
        container = self.container
        assert container is not None
        fn = inspect.getattr_static(container.service_cls, self.method_name)
        if isinstance(fn, (staticmethod, classmethod)):
            raise ConfigurationError(
                f"@rpc method {container.service_cls.__qualname__}.{self.method_name} must be "
                "a plain method, not a static or class method"
            )
        self._function: Callable[..., Any] = fn
        self._signature = inspect.signature(fn)
        parameters = list(self._signature.parameters)[1:]
        # Calls passing exactly the plain positional parameters need no binding.
        kinds = [p.kind for p in list(self._signature.parameters.values())[1:]]
        plain = all(kind == inspect.Parameter.POSITIONAL_OR_KEYWORD for kind in kinds)
        self._plain_arity = len(kinds) if plain else -1
        for path in self.sensitive_arguments:
            head = path.split(".")[0]
            if head not in parameters:
                raise ConfigurationError(
                    f"sensitive_arguments of {container.service_name}.{self.method_name} names "
                    f"{head!r}, which is not one of its arguments {parameters}"
                )
        self.rpc_consumer.register_provider(self)

    def check_signature(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        if not kwargs and len(args) == self._plain_arity:
            return
        try:
            self._signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            params = ", ".join(list(self._signature.parameters)[1:])
            # The error names what was sent (an unexpected keyword): keep it short.
            raise IncorrectSignature(f"{self.method_name}({params}): {shorten(str(exc))}") from None

    def handle_request(self, delivery: Delivery) -> None:
        container = self.container
        assert container is not None
        message = delivery.message
        codec = container.settings.accept.get(message.content_type or "")
        try:
            if codec is None:
                accepted = ", ".join(sorted(container.settings.accept))
                raise MalformedRequest(
                    f"content type {quote(message.content_type)} is not accepted (accepted: "
                    f"{accepted}); send JSON, or add the serializer to ACCEPT"
                )
            args, kwargs = protocol.decode_request(codec, message.body)
            context_data, parent_stack = protocol.context_from_headers(message.headers)
            self.check_signature(args, kwargs)
        except BadRequest as exc:
            self.rpc_consumer.reject_request(delivery, exc, codec)
            return
        try:
            container.spawn_worker(
                self,
                args,
                kwargs,
                context_data,
                parent_stack,
                partial(self.handle_result, delivery, codec),
                correlation_id=message.correlation_id,
            )
        except ContainerBeingKilled:
            delivery.requeue()

    def handle_result(
        self,
        delivery: Delivery,
        codec: Codec,
        worker_ctx: WorkerContext,
        result: Any,
        exc_info: ExcInfo | None,
    ) -> tuple[Any, ExcInfo | None]:
        """Publish the reply, then ack the request: never the other way round."""
        container = self.container
        assert container is not None
        if not container.alive:
            return result, exc_info  # killed mid-call: no reply, the request is redelivered
        request = delivery.message
        if exc_info is not None:
            body = protocol.encode_reply(codec, None, exc_info[1])
        else:
            try:
                body = codec.dumps({"result": result, "error": None}, "the result")
            except UnserializableValueError as exc:
                log.error(
                    "%s: %s returned a value that cannot be sent: %s",
                    container.replica_name,
                    self.method_name,
                    exc,
                )
                result, exc_info = None, (type(exc), exc, None)
                body = protocol.encode_reply(codec, None, exc)
        if request.reply_to:
            reply = _reply_message(container.settings, request, codec, body)
            tracer = container.tracer
            if tracer.enabled:
                tracer.emit(
                    Event(
                        kind="reply",
                        replica=container.replica_name,
                        service=container.service_name,
                        method=self.method_name,
                        call_id=worker_ctx.call_id,
                        correlation_id=request.correlation_id,
                        message=reply,
                    )
                )
            try:
                publish_with_retry(
                    container.transport,
                    container.runtime,
                    tracer,
                    reply,
                    mandatory=False,
                    policy=container.settings.retry_policy,
                    label=container.replica_name,
                    call_id=worker_ctx.call_id,
                )
            except PublishFailed as exc:
                # The request goes back to its queue (if our consumer still holds
                # it) to be answered again, by us or by another replica.
                log.error(
                    "%s: the reply to %s was not sent: %s",
                    container.replica_name,
                    worker_ctx.call_id,
                    exc,
                )
                delivery.requeue()
                return result, exc_info
        delivery.ack()
        return result, exc_info


rpc = Rpc.decorator


# -- client side -----------------------------------------------------------------


class _PendingCall:
    __slots__ = (
        "call_id",
        "correlation_id",
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
        service: str,
        method: str,
        message: Message,
        call_id: str | None,
        waiter: Waiter,
        timeout: float | None,
        since: float,
        retry_policy: RetryPolicy,
    ) -> None:
        self.service = service
        self.method = method
        self.message = message  # kept to publish again if the broker may have lost it
        self.correlation_id: str = message.correlation_id or ""
        self.call_id = call_id
        self.waiter = waiter
        self.timeout = timeout
        self.since = since
        self.retry_policy = retry_policy
        self.timer: Timer | None = None

    @property
    def deadline(self) -> float | None:
        """When the call times out (runtime clock), if it has a timeout."""
        return None if self.timeout is None else self.since + self.timeout

    def describe(self) -> str:
        return f"{self.service}.{self.method} (correlation id {self.correlation_id})"


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
        self._pending: dict[str, _PendingCall] = {}
        self._expired: dict[str, str] = {}

    @property
    def pending(self) -> list[_PendingCall]:
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

    def _fail(self, call: _PendingCall, error: BaseException) -> None:
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

    def _resend(self, calls: list[_PendingCall], reason: str) -> None:
        if calls and not self.closed:
            # Publishing may wait for retries, which only a task may do.
            self.runtime.spawn(self._resend_now, calls, reason, name=f"{self.label}:resend")

    def _resend_now(self, calls: list[_PendingCall], reason: str) -> None:
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

    def _publish(self, call: _PendingCall) -> None:
        publish_with_retry(
            self.transport,
            self.runtime,
            self.tracer,
            call.message,
            mandatory=True,
            policy=call.retry_policy,
            label=self.label,
            call_id=call.call_id,
            deadline=call.deadline,
            on_lost=partial(self._request_lost, call.correlation_id),
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
        codec = self.settings.serializer
        body = protocol.encode_request(codec, args, kwargs)
        correlation_id = self.runtime.new_id()
        caller_call_id = call_id_stack[-1] if call_id_stack else None
        tracer = self.tracer
        if tracer.enabled:
            context_data = tracer.request_context(
                context_data,
                caller=self.label,
                service=service,
                method=method,
                call_id=caller_call_id,
                correlation_id=correlation_id,
                exchange=self.settings.rpc_exchange,
            )
        message = Message(
            body=body,
            routing_key=protocol.request_routing_key(service, method),
            exchange=self.settings.rpc_exchange,
            content_type=codec.content_type,
            content_encoding=codec.content_encoding,
            headers=protocol.headers_from_context(context_data, call_id_stack),
            correlation_id=correlation_id,
            reply_to=self.reply_to,
        )
        waiter = self.runtime.new_waiter(f"{self.label} waiting for {service}.{method}")
        call = _PendingCall(
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
            tracer.emit(
                Event(
                    kind="publish",
                    replica=self.label,
                    service=service,
                    method=method,
                    call_id=caller_call_id,
                    correlation_id=correlation_id,
                    message=message,
                )
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
        return RpcReply(call)

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
    """The pending result of a call made with ``call_async``."""

    __slots__ = ("_call", "_error", "_has_outcome", "_value")

    def __init__(self, call: _PendingCall) -> None:
        self._call = call
        self._has_outcome = False
        self._value: Any = None
        self._error: Exception | None = None

    @property
    def correlation_id(self) -> str:
        return self._call.correlation_id

    def result(self) -> Any:
        """Wait for the reply; return its result or raise its error (the same each time)."""
        if not self._has_outcome:
            try:
                self._value = self._call.waiter.wait()
            except Exception as exc:
                self._error = exc
            self._has_outcome = True
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self) -> str:
        state = "done" if self._has_outcome or self._call.waiter.done else "pending"
        return f"<RpcReply {self._call.describe()} {state}>"


class MethodProxy:
    """``proxy.service.method``: call it, or ``call_async`` it."""

    __slots__ = ("method_name", "service_proxy")

    def __init__(self, service_proxy: ServiceProxy, method_name: str) -> None:
        self.service_proxy = service_proxy
        self.method_name = method_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call_async(*args, **kwargs).result()

    def call_async(self, *args: Any, **kwargs: Any) -> RpcReply:
        proxy = self.service_proxy
        return proxy.client.call(
            proxy.service_name,
            self.method_name,
            args,
            kwargs,
            context_data=proxy.context_data,
            call_id_stack=proxy.call_id_stack(),
            timeout=proxy.timeout,
            retry_policy=proxy.retry_policy,
        )

    def __repr__(self) -> str:
        return f"<MethodProxy {self.service_proxy.service_name}.{self.method_name}>"


class ServiceProxy:
    """``proxy.service``: attribute access gives a MethodProxy per method."""

    def __init__(
        self,
        client: RpcClient,
        service_name: str,
        *,
        context_data: Mapping[str, Any],
        worker_ctx: WorkerContext | None,
        timeout: float | None,
        retry_policy: RetryPolicy,
    ) -> None:
        self.client = client
        self.service_name = service_name
        self.context_data = context_data
        self.worker_ctx = worker_ctx
        self.timeout = timeout
        self.retry_policy = retry_policy

    def call_id_stack(self) -> list[str]:
        if self.worker_ctx is not None:
            return self.worker_ctx.call_id_stack
        # A call from outside any service starts a chain of its own.
        return [f"{protocol.STANDALONE_SERVICE}.call.{self.client.runtime.new_id()}"]

    def __getattr__(self, name: str) -> MethodProxy:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> MethodProxy:
        if not isinstance(name, str) or not name or any(c in name for c in ".*# \t\n"):
            raise ConfigurationError(
                f"{name!r} cannot be a method name (it becomes the last word of the "
                f"routing key {self.service_name}.<method>): use the method's own name"
            )
        return MethodProxy(self, name)

    def __repr__(self) -> str:
        return f"<ServiceProxy {self.service_name} via {self.client.label}>"


def _resolve_timeout(timeout: Any, settings: Settings, what: str) -> float | None:
    if timeout is _UNSET:
        return settings.rpc_timeout
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigurationError(f"{what} timeout must be seconds > 0 or None, got {timeout!r}")
    return float(timeout)


class ClusterProxy:
    """A standalone client's entry: ``proxy.service.method(...)`` or ``proxy["service"]``."""

    def __init__(
        self,
        client: RpcClient,
        *,
        context_data: Mapping[str, Any] | None = None,
        timeout: Any = _UNSET,
        retry_policy: Any = None,
    ) -> None:
        if context_data is not None and not isinstance(context_data, Mapping):
            raise ConfigurationError(f"context_data must be a mapping, got {context_data!r}")
        self._client = client
        self._context_data = dict(context_data or {})
        self._timeout = _resolve_timeout(timeout, client.settings, "rpc_proxy")
        self._retry_policy = (
            client.settings.retry_policy
            if retry_policy is None
            else RetryPolicy.from_value(retry_policy, "retry_policy")
        )

    @property
    def label(self) -> str:
        """The client's name in traces and for faults (``"client"``, ``"client-2"``...)."""
        return self._client.label

    def __getattr__(self, name: str) -> ServiceProxy:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, service_name: str) -> ServiceProxy:
        return ServiceProxy(
            self._client,
            service_name,
            context_data=self._context_data,
            worker_ctx=None,
            timeout=self._timeout,
            retry_policy=self._retry_policy,
        )

    def __repr__(self) -> str:
        return f"<ClusterProxy via {self._client.label}>"


class ReplyListener(SharedExtension):
    """The replica's RpcClient, shared by all its RpcProxy dependencies."""

    def __init__(self) -> None:
        self.client: RpcClient | None = None

    def setup(self) -> None:
        container = self.container
        assert container is not None
        self.client = RpcClient(
            container.settings,
            transport=container.transport,
            runtime=container.runtime,
            tracer=container.tracer,
            owner=container.service_name,
            label=container.replica_name,
        )

    def start(self) -> None:
        assert self.client is not None
        self.client.start()

    def stop(self) -> None:
        assert self.client is not None
        self.client.close(delete_queue=True)

    def kill(self) -> None:
        if self.client is not None:
            self.client.close()


class RpcProxy(DependencyProvider):
    """Injects a proxy to another service; ``self.other.method(...)`` calls it.

    ``timeout`` (seconds) overrides ``RPC_TIMEOUT`` for these calls;
    ``retry_policy`` overrides ``RPC_RETRY_POLICY`` for publishing them.
    """

    reply_listener = ReplyListener()

    def __init__(
        self, target_service: str, timeout: Any = _UNSET, retry_policy: Any = None, **options: Any
    ) -> None:
        problem = protocol.validate_service_name(target_service)
        if problem:
            raise ConfigurationError(f"RpcProxy: {problem}")
        if options:
            raise ConfigurationError(
                f"RpcProxy({target_service!r}) got unknown options {sorted(options)}; "
                "it accepts timeout and retry_policy"
            )
        self.target_service = target_service
        self.timeout = timeout
        self.retry_policy = retry_policy
        if timeout is not _UNSET and timeout is not None:
            _resolve_timeout(timeout, Settings.from_config({}), f"RpcProxy({target_service!r})")
        self._retry: RetryPolicy | None = (
            None if retry_policy is None else RetryPolicy.from_value(retry_policy, "retry_policy")
        )

    def setup(self) -> None:
        container = self.container
        assert container is not None
        self._timeout = _resolve_timeout(self.timeout, container.settings, "RpcProxy")
        if self._retry is None:
            self._retry = container.settings.retry_policy

    def get_dependency(self, worker_ctx: WorkerContext) -> ServiceProxy:
        client = self.reply_listener.client
        assert client is not None and self._retry is not None
        return ServiceProxy(
            client,
            self.target_service,
            context_data=worker_ctx.context_data,
            worker_ctx=worker_ctx,
            timeout=self._timeout,
            retry_policy=self._retry,
        )
