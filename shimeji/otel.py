"""OpenTelemetry for shimeji: a span per call, on the simulator and on RabbitMQ alike.

    pip install 'shimeji[otel]'

    from shimeji.otel import OpenTelemetryTracer

    tracer = OpenTelemetryTracer()                 # the global tracer provider
    with SimCluster(tracer=tracer) as cluster:     # or the container of a real runner
        ...

``OpenTelemetryTracer`` is a shimeji tracer (``shimeji.core.tracing.Tracer``):
it sees the same events the simulator's trace records, on any transport,
and turns them into spans following the OpenTelemetry RPC and messaging
conventions:

- a CLIENT span per call, ``{service}/{method}``, from just before the
  request is published until its reply arrives, it times out, or publishing
  fails; a reply carrying an error sets its status to ERROR;
- a SERVER span per worker, ``{service}/{method}``, from worker start to
  worker end, current while the method runs (spans the method opens are its
  children); an exception in the method sets its status to ERROR;
- a PRODUCER span per event dispatched, ``{source}.events {event_type}
  publish``, from dispatch until the broker has the event (publish retries
  are events of the span; a publish that fails sets ERROR), and a CONSUMER
  span (in place of the SERVER one) for each handler's worker,
  ``{service}/{method}``, a child of the PRODUCER span.

The trace context crosses services in the context data: the client span is
written as W3C ``traceparent`` (and ``tracestate``) context data keys, which
travel as the ``nameko.traceparent`` header, and the worker at the other end
continues the trace from them. A call made by a worker is a child of that
worker's server span; a call from outside any service is a child of the
current span of the caller, if any.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("shimeji.otel needs OpenTelemetry: pip install 'shimeji[otel]'") from exc

import shimeji
from shimeji.core.events import Event
from shimeji.core.protocol import HEADER_PREFIX, event_source
from shimeji.core.transport import Message

__all__ = ["CONTEXT_KEYS", "OpenTelemetryTracer"]

#: The context data keys that carry the trace context (W3C Trace Context).
CONTEXT_KEYS = ("traceparent", "tracestate")
_PREFIX = HEADER_PREFIX + "."
_FAILED_CALL = {
    "timeout": "RpcTimeout",
    "unroutable": "ServiceNotFound",
    "publish_failed": "PublishFailed",
}


class OpenTelemetryTracer:
    """A shimeji tracer that records calls and workers as OpenTelemetry spans.

    ``tracer_provider`` defaults to the global one. Thread-safe: a production
    runner may call it from several threads.
    """

    enabled = True

    def __init__(self, tracer_provider: Any = None) -> None:
        self._tracer = trace.get_tracer(
            "shimeji", shimeji.__version__, tracer_provider=tracer_provider
        )
        self._propagator = TraceContextTextMapPropagator()
        self._lock = threading.Lock()
        self._calls: dict[str, Span] = {}  # correlation id -> client span
        self._callers: dict[str, str] = {}  # correlation id -> label of the caller
        # (replica, correlation id) -> (headers, exchange, routing key, is an
        # event) of a request or event delivered
        self._requests: dict[tuple[str, str], tuple[Mapping[str, Any], str, str, bool]] = {}
        self._workers: dict[str, tuple[Span, Any, str]] = {}  # call id -> (span, token, replica)

    # -- client side --------------------------------------------------------------------

    def request_context(
        self,
        context_data: Mapping[str, Any],
        *,
        caller: str,
        service: str,
        method: str,
        call_id: str | None,
        correlation_id: str,
        exchange: str = "",
        event: bool = False,
    ) -> Mapping[str, Any]:
        """Start the call's CLIENT span and add its trace context to the context
        data. With ``event`` (``service`` the source, ``method`` the event type),
        a PRODUCER span for an event dispatched instead, ended once it is
        published (``published``) or publishing fails."""
        with self._lock:
            worker = self._workers.get(call_id or "")
        parent = None  # the current context: the caller's own spans, if any
        if worker is not None:
            current = trace.get_current_span().get_span_context()
            if not current.is_valid or current.trace_id != worker[0].get_span_context().trace_id:
                # Not inside the worker's trace (a runtime that does not carry
                # context into the worker): the worker's span is the parent.
                parent = trace.set_span_in_context(worker[0])
        if event:
            span = self._tracer.start_span(
                f"{exchange} {method} publish",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "publish",
                    "messaging.destination.name": exchange,
                    "messaging.rabbitmq.destination.routing_key": method,
                    "messaging.message.id": correlation_id,
                    "shimeji.caller": caller,
                    **({"shimeji.caller_call_id": call_id} if call_id else {}),
                },
            )
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier, context=trace.set_span_in_context(span))
            # Open until the broker has the event (``published``) or publishing
            # fails (``publish_failed``); its retries are events of the span.
            with self._lock:
                self._calls[correlation_id] = span
            return {**context_data, **carrier}
        span = self._tracer.start_span(
            f"{service}/{method}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "nameko",
                "rpc.service": service,
                "rpc.method": method,
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "publish",
                "messaging.destination.name": exchange,
                "messaging.rabbitmq.destination.routing_key": f"{service}.{method}",
                "messaging.message.conversation_id": correlation_id,
                "shimeji.caller": caller,
                **({"shimeji.caller_call_id": call_id} if call_id else {}),
            },
        )
        with self._lock:
            self._calls[correlation_id] = span
            self._callers[correlation_id] = caller
        carrier = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        return {**context_data, **carrier}

    def _end_call(self, correlation_id: str | None, error: str | None, detail: str = "") -> None:
        with self._lock:
            span = self._calls.pop(correlation_id or "", None)
            self._callers.pop(correlation_id or "", None)
        if span is None:
            return
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, detail or error))
        span.end()

    def published(self, correlation_id: str) -> None:
        """The event that travels with ``correlation_id`` reached the broker: its
        PRODUCER span ends."""
        self._end_call(correlation_id, None)

    # -- events -----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        kind, replica, correlation_id, message = (
            event.kind,
            event.replica,
            event.correlation_id,
            event.message,
        )
        service, method, call_id, detail = event.service, event.method, event.call_id, event.detail
        if kind == "deliver" and message is not None:
            is_event = event_source(message.exchange) is not None
            if message.reply_to is not None or is_event:  # a request or event reaches a replica
                with self._lock:
                    self._requests[(replica, correlation_id or "")] = (
                        message.headers,
                        message.exchange,
                        message.routing_key,
                        is_event,
                    )
            else:
                with self._lock:
                    mine = self._callers.get(correlation_id or "") == replica
                if mine:
                    self._end_call(correlation_id, *_reply_error(message))
        elif kind in _FAILED_CALL:
            self._end_call(correlation_id, _FAILED_CALL[kind], detail)
        elif kind == "retry":
            with self._lock:
                span = self._calls.get(correlation_id or "")
            if span is not None:
                span.add_event("publish retry", {"shimeji.detail": detail})
        elif kind == "worker_start" and call_id is not None:
            self._start_worker(replica, service, method, call_id, correlation_id)
        elif kind == "worker_end" and call_id is not None:
            self._end_worker(call_id, None if detail in ("", "ok") else detail)
        elif kind == "replica_killed":
            with self._lock:
                killed = [cid for cid, (_, _, rep) in self._workers.items() if rep == replica]
            for killed_call in killed:
                self._end_worker(killed_call, f"ReplicaKilled: {detail}", detach=False)

    # -- server side ------------------------------------------------------------------------

    def _start_worker(
        self,
        replica: str,
        service: str | None,
        method: str | None,
        call_id: str,
        correlation_id: str | None,
    ) -> None:
        with self._lock:
            headers, exchange, routing_key, is_event = self._requests.pop(
                (replica, correlation_id or ""), None
            ) or ({}, "", f"{service}.{method}", False)
        carrier = {
            key[len(_PREFIX) :]: value
            for key, value in headers.items()
            if key.startswith(_PREFIX) and key[len(_PREFIX) :] in CONTEXT_KEYS
        }
        parent = self._propagator.extract(carrier) if carrier else None
        span = self._tracer.start_span(
            f"{service}/{method}",
            context=parent,
            kind=SpanKind.CONSUMER if is_event else SpanKind.SERVER,
            attributes={
                "rpc.system": "nameko",
                "rpc.service": service or "",
                "rpc.method": method or "",
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": exchange,
                "messaging.rabbitmq.destination.routing_key": routing_key,
                "messaging.message.conversation_id": correlation_id or "",
                "shimeji.call_id": call_id,
                "shimeji.replica": replica,
            },
        )
        # Current while the method runs (worker_start and worker_end are emitted
        # by the worker itself, in its own thread or greenlet).
        token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._workers[call_id] = (span, token, replica)

    def _end_worker(self, call_id: str, error: str | None, detach: bool = True) -> None:
        with self._lock:
            entry = self._workers.pop(call_id, None)
        if entry is None:
            return
        span, token, _ = entry
        if error is not None:
            span.set_attribute("error.type", error.split(":", 1)[0])
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        if detach:
            otel_context.detach(token)

    def __repr__(self) -> str:
        return f"<OpenTelemetryTracer {len(self._calls)} calls open>"


def _reply_error(message: Message) -> tuple[str | None, str]:
    """``(error type, description)`` of an error reply; ``(None, "")`` otherwise."""
    try:
        body = json.loads(message.body)
    except (ValueError, TypeError):
        return None, ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, ""
    exc_type = str(error.get("exc_type") or "RemoteError")
    return exc_type, f"{exc_type}: {error.get('value', '')}"
