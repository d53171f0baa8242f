"""The tracer contract: where core code reports what happens to a call.

Every step of a call (publish, worker start and end, reply, timeout, retry...)
is reported here with the replica that took it. The simulator records the
events with virtual time; in production the default tracer drops them.

A tracer may also carry a trace context across services: just before a
request is published, ``request_context`` returns the context data to send
with it, so a tracer such as ``shimeji.otel.OpenTelemetryTracer`` adds its
``traceparent`` and the worker at the other end finds it in its context data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shimeji.core.events import Event, new_event

__all__ = [
    "NullTracer",
    "Step",
    "Tracer",
    "Tracers",
    "stepper",
    "tell_published",
    "tracer_adds_context",
]


class Tracer(Protocol):
    """Where events go. ``enabled`` False tells emitters they may skip building
    events (a disabled tracer drops them anyway).

    A tracer may also take the steps every call takes without an ``Event``
    being built for each: a method ``step(kind, replica, service, method,
    call_id, correlation_id, detail, message)`` recording what
    ``emit(new_event(...))`` would (the simulator's trace builds its events
    when it is read). Core reaches either through ``stepper(tracer)``.

    A tracer whose ``request_context`` always returns the context data it is
    given may say so with a class attribute ``adds_context = False``: clients
    then do not ask it, once per request (``tracer_adds_context``).

    A tracer may also have a method ``published(correlation_id)``, told when an
    event dispatched (``request_context(..., event=True)``) has reached the
    broker (``tell_published``); a failed publish is the ``publish_failed``
    event, as for a request.
    """

    enabled: bool

    def emit(self, event: Event) -> None:
        """Record one event (``shimeji.core.events.Event``)."""

    def request_context(
        self,
        context_data: Mapping[str, Any],
        *,
        caller: str,
        service: str,
        method: str,
        call_id: str | None,
        correlation_id: str,
        exchange: str,
        event: bool = False,
    ) -> Mapping[str, Any]:
        """The context data to send with a request that is about to be published.

        ``caller`` is the replica or client label, ``call_id`` the caller's
        call id, ``exchange`` the exchange the request is published to. With
        ``event``, it is an event being dispatched: ``service`` is its source,
        ``method`` its type, ``correlation_id`` the id it travels with, and no
        reply will come. Return ``context_data`` itself to add nothing; never
        change it in place.
        """
        ...


class NullTracer:
    """A tracer that records nothing."""

    enabled = False
    adds_context = False

    def emit(self, event: Event) -> None:
        return None

    def step(self, *fields: Any) -> None:
        return None

    def request_context(self, context_data: Mapping[str, Any], **call: Any) -> Mapping[str, Any]:
        return context_data


class Tracers:
    """Several tracers as one: each event goes to every enabled tracer, in order."""

    def __init__(self, *tracers: Tracer) -> None:
        self.tracers: tuple[Tracer, ...] = tracers

    @property
    def enabled(self) -> bool:
        return any(tracer.enabled for tracer in self.tracers)

    @property
    def adds_context(self) -> bool:
        return any(tracer_adds_context(tracer) for tracer in self.tracers)

    def emit(self, event: Event) -> None:
        for tracer in self.tracers:
            if tracer.enabled:
                tracer.emit(event)

    def step(self, *fields: Any) -> None:
        # One event for all of them, as emit() gives each the same event.
        self.emit(new_event(*fields))

    def request_context(self, context_data: Mapping[str, Any], **call: Any) -> Mapping[str, Any]:
        for tracer in self.tracers:
            if tracer.enabled:
                context_data = tracer.request_context(context_data, **call)
        return context_data

    def published(self, correlation_id: str) -> None:
        for tracer in self.tracers:
            if tracer.enabled:
                tell_published(tracer, correlation_id)

    def __repr__(self) -> str:
        return f"<Tracers {list(self.tracers)!r}>"


def tell_published(tracer: Tracer, correlation_id: str) -> None:
    """Tell ``tracer`` that the event travelling with ``correlation_id`` reached
    the broker, if it has a ``published`` method."""
    published = getattr(tracer, "published", None)
    if published is not None:
        published(correlation_id)


def tracer_adds_context(tracer: Tracer) -> bool:
    """Whether ``tracer.request_context`` may add to the context data (a tracer
    says it never does with ``adds_context = False``)."""
    return bool(getattr(tracer, "adds_context", True))


#: ``step(kind, replica, service, method, call_id, correlation_id, detail, message)``
Step = Callable[[str, str, "str | None", "str | None", "str | None", "str | None", str, Any], None]


def stepper(tracer: Tracer) -> Step:
    """How core reports a step of a call to ``tracer``: its ``step`` method if it
    has one, else ``emit`` of the ``new_event`` built from the same fields.
    Callers check ``tracer.enabled`` first, as before building an event."""
    step = getattr(tracer, "step", None)
    if step is not None:
        return step  # type: ignore[no-any-return]

    def emit_step(
        kind: str,
        replica: str,
        service: str | None,
        method: str | None,
        call_id: str | None,
        correlation_id: str | None,
        detail: str,
        message: Any,
    ) -> None:
        tracer.emit(
            new_event(kind, replica, service, method, call_id, correlation_id, detail, message)
        )

    return emit_step
