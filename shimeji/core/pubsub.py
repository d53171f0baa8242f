"""Events: nameko's publish-subscribe, with nameko's wire format.

A service dispatches an event (``EventDispatcher``: ``self.dispatch(event_type,
event_data)``) to its own topic exchange, ``<service>.events``, the event type
as routing key, the event data as the body, the worker's context data (with
its call id stack) in ``nameko.`` headers. Handlers (``@event_handler``) of
other services consume queues bound to that exchange with the event type:

- ``SERVICE_POOL``: one queue per handler method of a service, shared by its
  replicas: each subscribing service handles each event once;
- ``SINGLETON``: one queue for every handler of the event, whatever the
  service: one handler in all handles it;
- ``BROADCAST``: one queue per replica (named with its broadcast identifier):
  every replica handles it.

With ``reliable_delivery`` (the default) a handler's queue is durable and
outlives its replicas: events wait for a handler, and one that dies mid-event
leaves the event to be redelivered. Without it the queue is deleted with its
last consumer (and, for a broadcast handler, is exclusive to its replica):
events published while nobody consumes are lost, as on RabbitMQ. A handler
that raises acks the event (the error is logged), or puts it back with
``requeue_on_error``. An event is published once its exchange exists; no
queue bound to it means no handler receives it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from shimeji.core import protocol
from shimeji.core.config import RetryPolicy, Settings
from shimeji.core.container import ExcInfo, WorkerContext
from shimeji.core.events import Event
from shimeji.core.exceptions import (
    BadRequest,
    ConfigurationError,
    ContainerBeingKilled,
    EventHandlerConfigurationError,
    MalformedRequest,
    safe_str,
)
from shimeji.core.extensions import DependencyProvider, Entrypoint
from shimeji.core.quoting import escape, quote
from shimeji.core.retry import with_retry
from shimeji.core.runtime import Runtime
from shimeji.core.tracing import Tracer, tell_published
from shimeji.core.transport import Consumer, Delivery, Message, Transport

__all__ = [
    "BROADCAST",
    "HANDLER_TYPES",
    "SERVICE_POOL",
    "SINGLETON",
    "EventDispatcher",
    "EventHandler",
    "event_handler",
    "publish_event",
    "subscriptions",
]

log = logging.getLogger("shimeji.events")

SERVICE_POOL = "service_pool"
SINGLETON = "singleton"
BROADCAST = "broadcast"
HANDLER_TYPES = (SERVICE_POOL, SINGLETON, BROADCAST)


def _check_event_type(event_type: Any, what: str) -> str:
    if not isinstance(event_type, str) or not event_type:
        raise ConfigurationError(f"{what}: an event type is a non-empty string, not {event_type!r}")
    return event_type


def publish_event(
    *,
    transport: Transport,
    runtime: Runtime,
    tracer: Tracer,
    settings: Settings,
    label: str,
    source_service: str,
    event_type: str,
    event_data: Any,
    context_data: Mapping[str, Any],
    call_id_stack: list[str],
    call_id: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> str:
    """Publish one event as ``source_service`` (its exchange declared first);
    returns the id it travels with (its correlation id, for traces).

    Raises ``UnserializableValueError`` before anything is sent, and
    ``PublishFailed`` when the broker stays out of reach.
    """
    codec = settings.serializer
    body = codec.dumps(event_data, "the event data")
    exchange = protocol.event_exchange_name(source_service)
    event_id = runtime.new_id()
    if tracer.enabled:
        context_data = tracer.request_context(
            context_data,
            caller=label,
            service=source_service,
            method=event_type,
            call_id=call_id,
            correlation_id=event_id,
            exchange=exchange,
            event=True,
        )
    message = Message(
        body=body,
        routing_key=event_type,
        exchange=exchange,
        content_type=codec.content_type,
        content_encoding=codec.content_encoding,
        headers=protocol.headers_from_context(context_data, call_id_stack),
        correlation_id=event_id,
    )
    policy = retry_policy or settings.retry_policy
    if tracer.enabled:
        tracer.emit(
            Event(
                kind="dispatch",
                replica=label,
                service=source_service,
                method=event_type,
                call_id=call_id,
                correlation_id=event_id,
                message=message,
            )
        )

    def declare_and_publish() -> None:
        transport.declare_exchange(exchange)
        transport.publish(message, mandatory=False)

    with_retry(
        declare_and_publish,
        runtime=runtime,
        tracer=tracer,
        policy=policy,
        label=label,
        what=f"{exchange}/{event_type}",
        correlation_id=event_id,
        call_id=call_id,
    )
    if tracer.enabled:
        tell_published(tracer, event_id)
    return event_id


class EventDispatcher(DependencyProvider):
    """Injects ``dispatch(event_type, event_data)``: publish an event as this service.

    The event carries the worker's context data and call id stack. It returns
    once the broker has the event; whether any handler gets it depends on the
    queues bound at that moment.
    """

    def setup(self) -> None:
        container = self.container
        assert container is not None
        self.exchange = protocol.event_exchange_name(container.service_name)

    def start(self) -> None:
        # Declared once the replica starts, as nameko's dispatcher does, so that
        # a handler's queue can be bound before the first event; each dispatch
        # declares it again (an event to an exchange nobody declared is lost).
        container = self.container
        assert container is not None
        container.transport.declare_exchange(self.exchange)

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        container = self.container
        assert container is not None

        def dispatch(event_type: str, event_data: Any) -> None:
            _check_event_type(event_type, "dispatch")
            publish_event(
                transport=container.transport,
                runtime=container.runtime,
                tracer=container.tracer,
                settings=container.settings,
                label=container.replica_name,
                source_service=container.service_name,
                event_type=event_type,
                event_data=event_data,
                context_data=worker_ctx.data,
                call_id_stack=worker_ctx.call_id_stack,
                call_id=worker_ctx.call_id,
            )

        return dispatch


class EventHandler(Entrypoint):
    """The entrypoint behind ``@event_handler(source_service, event_type, ...)``.

    The method receives the event data as its one argument. See the module's
    docstring for ``handler_type``, ``reliable_delivery`` and
    ``requeue_on_error``.
    """

    def __init__(
        self,
        source_service: str,
        event_type: str,
        handler_type: str = SERVICE_POOL,
        reliable_delivery: bool = True,
        requeue_on_error: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        problem = protocol.validate_service_name(source_service)
        if problem:
            raise ConfigurationError(f"event_handler: {problem}")
        _check_event_type(event_type, "event_handler")
        if handler_type not in HANDLER_TYPES:
            raise ConfigurationError(
                f"event_handler: handler_type must be one of SERVICE_POOL, SINGLETON or "
                f"BROADCAST, not {handler_type!r}"
            )
        self.source_service = source_service
        self.event_type = event_type
        self.handler_type = handler_type
        self.reliable_delivery = bool(reliable_delivery)
        self.requeue_on_error = bool(requeue_on_error)
        self._consumer: Consumer | None = None
        self.queue_name = ""

    @property
    def broadcast_identifier(self) -> str | None:
        """What tells this replica's broadcast queue from the others' (None for
        other handler types).

        The default is drawn afresh when the replica starts, so a restarted
        replica gets a new queue: events broadcast to the old one are lost,
        which is why it cannot go with reliable delivery. Override it (with
        a name that survives restarts and is unique per replica) to have both.
        """
        if self.handler_type != BROADCAST:
            return None
        if self.reliable_delivery:
            raise EventHandlerConfigurationError(
                "You are using the default broadcast identifier which is not compatible "
                "with reliable delivery: pass reliable_delivery=False, or subclass "
                "EventHandler and override broadcast_identifier with a name that is unique "
                "per replica and survives restarts"
            )
        container = self.container
        assert container is not None
        return container.runtime.new_id().replace("-", "")

    def setup(self) -> None:
        container = self.container
        assert container is not None
        fn = inspect.getattr_static(container.service_cls, self.method_name)
        fn = getattr(fn, "__func__", fn)
        try:
            self.method_signature(fn).bind(None, None)
        except TypeError:
            raise ConfigurationError(
                f"@event_handler method {container.service_cls.__qualname__}.{self.method_name} "
                "must take the event data as its one argument"
            ) from None
        service, method = container.service_name, self.method_name
        if self.handler_type == SERVICE_POOL:
            self.queue_name = protocol.pool_queue_name(
                self.source_service, self.event_type, service, method
            )
        elif self.handler_type == SINGLETON:
            self.queue_name = protocol.singleton_queue_name(self.source_service, self.event_type)
        else:
            identifier = self.broadcast_identifier
            self.queue_name = protocol.broadcast_queue_name(
                self.source_service, self.event_type, service, method, str(identifier)
            )

    def start(self) -> None:
        container = self.container
        assert container is not None
        transport = container.transport
        exchange = protocol.event_exchange_name(self.source_service)
        transport.declare_exchange(exchange)
        settings = container.settings
        if self.reliable_delivery:
            # A queue that outlives its consumers: of RPC_QUEUE_TYPE, like the
            # service queues (quorum on a cluster; its delivery limit also ends
            # a requeue_on_error loop).
            transport.declare_queue(
                self.queue_name,
                durable=True,
                queue_type=settings.queue_type,
                delivery_limit=settings.delivery_limit,
            )
        else:
            transport.declare_queue(
                self.queue_name,
                durable=True,
                auto_delete=True,
                exclusive=self.handler_type == BROADCAST,
            )
        transport.bind_queue(self.queue_name, exchange, self.event_type)
        self._consumer = transport.consume(
            self.queue_name,
            self.handle_delivery,
            prefetch=container.settings.prefetch_count,
            label=container.replica_name,
        )

    def stop(self) -> None:
        # No new events; those in hand are finished and settled by their workers.
        if self._consumer is not None:
            self._consumer.cancel()

    def kill(self) -> None:
        # Unsettled events go back to their queue, marked redelivered.
        if self._consumer is not None:
            self._consumer.close()

    def handle_delivery(self, delivery: Delivery) -> None:
        container = self.container
        assert container is not None
        message = delivery.message
        try:
            if delivery.malformed is not None:
                raise MalformedRequest(f"the message cannot be decoded: {delivery.malformed}")
            codec = container.settings.accept.get(message.content_type or "")
            if codec is None:
                raise MalformedRequest(
                    f"content type {quote(message.content_type)} is not accepted (accepted: "
                    f"{', '.join(sorted(container.settings.accept))})"
                )
            try:
                event_data = codec.loads(message.body)
            except Exception as exc:
                raise MalformedRequest(
                    f"event body cannot be decoded as {codec.name}: {escape(safe_str(exc))}"
                ) from None
            context_data, parent_stack = protocol.context_from_headers(message.headers)
        except BadRequest as exc:
            self._reject(delivery, exc)
            return
        delivery.payload = event_data  # for handle_result, as kombu's message.payload
        try:
            container.spawn_worker(
                self,
                (event_data,),
                {},
                context_data,
                parent_stack,
                partial(self.handle_result, delivery),
                correlation_id=message.correlation_id,
            )
        except ContainerBeingKilled:
            delivery.requeue()

    def _reject(self, delivery: Delivery, exc: BadRequest) -> None:
        """An event that cannot be read: logged once, rejected for good (to a
        dead-letter exchange where one is configured), never redelivered."""
        container = self.container
        assert container is not None
        log.warning(
            "%s: bad event %s on %s: %s",
            container.replica_name,
            quote(delivery.message.routing_key),
            quote(delivery.message.exchange),
            escape(safe_str(exc)),
        )
        container.tracer.emit(
            Event(
                kind="bad_request",
                replica=container.replica_name,
                service=self.source_service,
                method=self.event_type,
                correlation_id=delivery.message.correlation_id,
                detail=f"{type(exc).__name__}: {escape(safe_str(exc))}",
            )
        )
        delivery.reject()

    def handle_result(
        self,
        delivery: Delivery,
        worker_ctx: WorkerContext,
        result: Any,
        exc_info: ExcInfo | None,
    ) -> tuple[Any, ExcInfo | None]:
        """Ack the event, or put it back if the handler raised and asks for that."""
        container = self.container
        assert container is not None
        if not container.alive:
            return result, exc_info  # killed mid-event: the event goes back by itself
        if exc_info is not None and self.requeue_on_error:
            delivery.requeue()
        else:
            delivery.ack()
        return result, exc_info


event_handler = EventHandler.decorator


def subscriptions(service_classes: Any) -> dict[str, tuple[str, ...]]:
    """The events the handlers of ``service_classes`` listen to: source service ->
    event types, in the order first met."""
    from shimeji.core.extensions import iter_entrypoints

    found: dict[str, dict[str, None]] = {}
    for service_cls in service_classes:
        for _, entrypoint in iter_entrypoints(service_cls):
            if isinstance(entrypoint, EventHandler):
                found.setdefault(entrypoint.source_service, {})[entrypoint.event_type] = None
    return {source: tuple(types) for source, types in found.items()}
