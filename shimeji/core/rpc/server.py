"""RPC, the server side: the ``@rpc`` entrypoint and the consumer of its queue.

Each replica has one ``RpcConsumer`` on the queue ``rpc-<service>``; it hands
each request to the ``Rpc`` entrypoint of its method, which checks it and
spawns a worker. The reply is published before the request is acked, so a
replica that dies mid-call leaves its request to be redelivered. A request
that cannot be served is answered with its error: acked when it could be
read (an unknown method, wrong arguments), rejected when it could not.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from shimeji.core import protocol
from shimeji.core.config import Settings
from shimeji.core.container import ExcInfo, WorkerContext
from shimeji.core.events import Event
from shimeji.core.exceptions import (
    BadRequest,
    ConfigurationError,
    ContainerBeingKilled,
    MalformedRequest,
    MethodNotFound,
    PublishFailed,
    UnserializableValueError,
    safe_str,
)
from shimeji.core.extensions import Entrypoint, SharedExtension
from shimeji.core.quoting import escape, quote, shorten
from shimeji.core.retry import publish_with_retry, with_retry
from shimeji.core.serialization import Codec
from shimeji.core.transport import NO_HEADERS, BrokerUnavailable, Delivery, Message

__all__ = ["Rpc", "RpcConsumer", "rpc"]

log = logging.getLogger("shimeji.rpc")


class RpcConsumer(SharedExtension):
    """Consumes ``rpc-<service>`` for one replica and dispatches by method name."""

    def __init__(self) -> None:
        self._providers: dict[str, Rpc] = {}
        #: routing key -> its provider, as found: a caller sends the same key
        #: string every time, so that this lookup hashes nothing new
        self._by_key: dict[str, Rpc] = {}
        self._consumer: Any = None

    def register_provider(self, provider: Rpc) -> None:
        self._providers[provider.method_name] = provider
        self._by_key.clear()

    def _provider_of(self, routing_key: str) -> Rpc | None:
        # The method is the last word of the routing key (protocol.split_routing_key).
        provider = self._providers.get(routing_key.rpartition(".")[2])
        if provider is not None:
            if len(self._by_key) >= 1_000:  # keys made up at run time: keep it bounded
                self._by_key.clear()
            self._by_key[routing_key] = provider
        return provider

    def unregister_provider(self, provider: Rpc) -> None:
        """An entrypoint stopped: once none is left, consume no more (requests
        in hand are finished and acked by their workers; new ones stay in the
        queue for the other replicas), as nameko's consumer does."""
        if self._providers.get(provider.method_name) is provider:
            del self._providers[provider.method_name]
            self._by_key.clear()
        if not self._providers and self._consumer is not None:
            self._consumer.cancel()

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
        message = delivery.message
        provider = self._by_key.get(message.routing_key)
        if provider is None:
            provider = self._provider_of(message.routing_key)
            if provider is None:
                method_name = message.routing_key.rpartition(".")[2]
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


def _not_accepted(message: Message, accept: Mapping[str, Codec]) -> MalformedRequest:
    accepted = ", ".join(sorted(accept))
    return MalformedRequest(
        f"content type {quote(message.content_type)} is not accepted (accepted: "
        f"{accepted}); send JSON, or add the serializer to ACCEPT"
    )


def _reply_message(settings: Settings, request: Message, codec: Codec, body: bytes) -> Message:
    # Positional: a class called with keywords first gathers them into a dict.
    return Message(
        body,  # body
        request.reply_to or "",  # routing_key
        settings.rpc_exchange,  # exchange
        codec.content_type,  # content_type
        codec.content_encoding,  # content_encoding
        NO_HEADERS,  # headers
        request.correlation_id,  # correlation_id
    )


class Rpc(Entrypoint):
    """The entrypoint behind ``@rpc``: one method callable over RPC."""

    rpc_consumer = RpcConsumer()

    def setup(self) -> None:
        container = self.container
        assert container is not None
        fn = self.plain_method("@rpc")
        self._function: Callable[..., Any] = fn
        self._signature = self.method_signature(fn)
        parameters = list(self._signature.parameters)[1:]
        # Calls passing exactly the plain positional parameters need no binding.
        kinds = [p.kind for p in list(self._signature.parameters.values())[1:]]
        plain = all(kind == inspect.Parameter.POSITIONAL_OR_KEYWORD for kind in kinds)
        self._plain_arity = len(kinds) if plain else -1
        self._target = f"{container.service_name}.{self.method_name}"  # for error messages
        for path in self.sensitive_arguments:
            head = path.split(".")[0]
            if head not in parameters:
                raise ConfigurationError(
                    f"sensitive_arguments of {container.service_name}.{self.method_name} names "
                    f"{head!r}, which is not one of its arguments {parameters}"
                )
        self.rpc_consumer.register_provider(self)

    def stop(self) -> None:
        self.rpc_consumer.unregister_provider(self)

    def check_signature(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        if not kwargs and len(args) == self._plain_arity:
            return
        self.bind_arguments(self._signature, args, kwargs)

    def handle_request(self, delivery: Delivery) -> None:
        container = self.container
        assert container is not None
        message = delivery.message
        codec = container.settings.accept.get(message.content_type or "")
        try:
            if codec is None:
                raise _not_accepted(message, container.settings.accept)
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
                body = protocol.encode_result(codec, result, self._target)
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
                container.step(
                    "reply",
                    container.replica_name,
                    container.service_name,
                    self.method_name,
                    worker_ctx.call_id,
                    request.correlation_id,
                    "",
                    reply,
                )
            try:
                # publish_with_retry's first attempt, made here: publishing
                # usually works, and this is on the path of every call.
                failed: BrokerUnavailable | None = None
                try:
                    container.transport.publish(reply, mandatory=False)
                except BrokerUnavailable as refused:
                    failed = refused
                if failed is not None:
                    with_retry(
                        partial(container.transport.publish, reply, mandatory=False),
                        runtime=container.runtime,
                        tracer=tracer,
                        policy=container.settings.retry_policy,
                        label=container.replica_name,
                        what=reply.routing_key,
                        correlation_id=reply.correlation_id,
                        call_id=worker_ctx.call_id,
                        failed=failed,
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
