"""The trace: every step of every call in a simulation, in order.

The trace records the ``shimeji.core.events.Event`` objects the simulation
emits, giving each its sequence number and virtual time. It only records:
``str(trace)`` (the text timeline), ``to_mermaid()`` and every other view are
rendered by ``shimeji.views`` from the same events, with the arguments of
``@rpc(sensitive_arguments=...)`` redacted. The kinds of event are listed in
``shimeji.core.events.KINDS``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any

from shimeji.core.events import Event
from shimeji.core.protocol import CALL_ID_STACK_HEADER
from shimeji.core.transport import NO_HEADERS, Message
from shimeji.sim.clock import VirtualClock
from shimeji.views.log import EventLog
from shimeji.views.redaction import Redactor

__all__ = ["Trace", "TraceEvent"]

#: The events of a trace are ``shimeji.core.events.Event`` records.
TraceEvent = Event


# -- records the garbage collector never walks ------------------------------------
#
# A trace keeps every message of every call. Kept as objects (the record's
# tuple, the Message, its headers dict, the call id list in it), each is one
# more object that every full collection of the process walks, for as long as
# the trace lives: about a tenth of a round trip's cost went there. A step's
# message is therefore kept as a flat tuple of its fields (``_pack``), the
# usual headers (none, or only the call id stack) spelled into it as strings:
# a tuple of strings, bytes and numbers, which CPython stops tracking the
# first time a collection sees it. Reading the trace makes an equal Message
# again (``_unpack``). Other headers are kept as they are.

#: what to_jsonl writes each event with (json.dumps would make one per event)
_JSONL = json.JSONEncoder(sort_keys=True, default=repr)

#: How a packed message holds its headers (its field 8); the fields after it
#: are the call ids of the stack, or the headers object itself.
_HEADERS_NONE = 0  # NO_HEADERS
_HEADERS_STACK = 1  # {CALL_ID_STACK_HEADER: [call ids...]}
_HEADERS_AS_IS = 2  # anything else, kept as it is


def _pack(message: Message) -> tuple[Any, ...]:
    """A message's fields as a flat tuple (``_unpack`` makes an equal Message)."""
    headers = message.headers
    if headers is NO_HEADERS:
        tail: tuple[Any, ...] = (_HEADERS_NONE,)
    elif (
        type(headers) is dict
        and len(headers) == 1
        and type(stack := headers.get(CALL_ID_STACK_HEADER)) is list
    ):
        tail = (_HEADERS_STACK, *stack)
    else:
        tail = (_HEADERS_AS_IS, headers)
    return (
        message.body,
        message.routing_key,
        message.exchange,
        message.content_type,
        message.content_encoding,
        message.correlation_id,
        message.reply_to,
        message.delivery_mode,
        *tail,
    )


def _unpack(packed: tuple[Any, ...]) -> Message:
    """The Message ``_pack`` was given (an equal one: same fields, same types)."""
    how = packed[8]
    if how == _HEADERS_NONE:
        headers: Any = NO_HEADERS
    elif how == _HEADERS_STACK:
        headers = {CALL_ID_STACK_HEADER: list(packed[9:])}
    else:
        headers = packed[9]
    return Message(
        packed[0],  # body
        packed[1],  # routing_key
        packed[2],  # exchange
        packed[3],  # content_type
        packed[4],  # content_encoding
        headers,
        packed[5],  # correlation_id
        packed[6],  # reply_to
        packed[7],  # delivery_mode
    )


class Trace:
    """The events of one simulation, with views of them.

    ``redactor`` hides sensitive arguments in the views (the cluster keeps it
    up to date with the services it runs).
    """

    #: request_context adds nothing (clients need not ask)
    adds_context = False

    def __init__(self, clock: VirtualClock, enabled: bool = True) -> None:
        self.clock = clock
        #: whether events are recorded; an attribute, not a property, as core
        #: code reads it before building each event
        self.enabled = enabled
        self.redactor = Redactor()
        self._events: list[Event] = []
        # Recording costs one append, of the event (or of its fields) with the
        # virtual time: events are numbered, timed and their calls named when
        # the trace is read (``_catch_up``), not as they come.
        self._emitted: list[tuple[Any, ...]] = []
        # correlation id -> (service, method, caller label, caller call id)
        self._calls: dict[str, tuple[str | None, str | None, str, str | None]] = {}
        # The message last packed, and its packing: a message is the subject of
        # consecutive steps (published, then delivered), packed once for both.
        self._last_message: Any = None
        self._last_packed: Any = None

    def emit(self, event: Event) -> None:
        if self.enabled:
            self._emitted.append((event, self.clock.now_us))

    def step(
        self,
        kind: str,
        replica: str,
        service: str | None,
        method: str | None,
        call_id: str | None,
        correlation_id: str | None,
        detail: str,
        message: Any,
    ) -> None:
        """Record what ``emit(new_event(kind, replica, ...))`` would: the fields
        now, the ``Event`` when the trace is read (``shimeji.core.tracing``).
        A ``Message`` is kept packed into a tuple (``_pack``)."""
        if self.enabled:
            if message is not None and type(message) is Message:
                if message is self._last_message:
                    message = self._last_packed
                else:
                    self._last_message = message
                    message = self._last_packed = _pack(message)
            self._emitted.append(
                (
                    kind,
                    replica,
                    service,
                    method,
                    call_id,
                    correlation_id,
                    detail,
                    message,
                    self.clock.now_us,
                )
            )

    def _catch_up(self) -> None:
        """Number, time and name the events emitted since the trace was last read."""
        emitted = self._emitted
        if not emitted:
            return
        events, calls = self._events, self._calls
        # Each packing made into one Message (equal packings into the same one:
        # the message they came from was most likely one).
        unpacked: dict[Any, Message] = {}
        last_packed: Any = None
        last_message: Any = None
        for record in emitted:
            if len(record) == 9:  # recorded by step(): the event is made here
                (
                    kind,
                    replica,
                    service,
                    method,
                    call_id,
                    correlation_id,
                    detail,
                    message,
                    now_us,
                ) = record
                if type(message) is tuple:
                    if message is not last_packed:
                        last_packed = message
                        try:
                            last_message = unpacked.get(message)
                            if last_message is None:
                                last_message = unpacked[message] = _unpack(message)
                        except TypeError:  # headers kept as they are, not hashable
                            last_message = _unpack(message)
                    message = last_message
                if correlation_id is not None:
                    if kind in ("publish", "dispatch"):
                        calls[correlation_id] = (service, method, replica, call_id)
                    elif service is None:
                        known = calls.get(correlation_id)
                        if known is not None:
                            service, method = known[0], known[1]
                events.append(
                    Event(
                        len(events),
                        now_us / 1_000_000,
                        kind,
                        replica,
                        service,
                        method,
                        call_id,
                        correlation_id,
                        detail,
                        message,
                    )
                )
                continue
            event, now_us = record
            if event.seq != -1:  # recorded already, by another recorder: keep its stamps
                event = dataclasses.replace(event)
            correlation_id = event.correlation_id
            if correlation_id is not None:
                if event.kind in ("publish", "dispatch"):
                    calls[correlation_id] = (
                        event.service,
                        event.method,
                        event.replica,
                        event.call_id,
                    )
                elif event.service is None:
                    # Deliveries and settlements know only the message: name its call.
                    known = calls.get(correlation_id)
                    if known is not None:
                        event.service, event.method = known[0], known[1]
            event.seq = len(events)
            event.time = now_us / 1_000_000
            events.append(event)
        emitted.clear()

    def request_context(self, context_data: Mapping[str, Any], **call: Any) -> Mapping[str, Any]:
        """The trace records requests as they are; it adds no context data."""
        return context_data

    @property
    def events(self) -> list[Event]:
        """Every event so far, in order."""
        self._catch_up()
        return self._events

    @property
    def recording(self) -> bool:
        return self.enabled

    @recording.setter
    def recording(self, value: bool) -> None:
        self.enabled = value

    def caller_of(self, correlation_id: str | None) -> str | None:
        """The label of whoever published the request with this correlation id."""
        self._catch_up()
        known = self._calls.get(correlation_id or "")
        return known[2] if known else None

    # -- access ------------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._events) + len(self._emitted)

    def filter(self, kind: str | None = None, **fields: Any) -> list[Event]:
        """Events of ``kind`` whose attributes equal ``fields``."""
        selected: list[Event] = []
        for event in self.events:
            if kind is not None and event.kind != kind:
                continue
            if all(getattr(event, name) == value for name, value in fields.items()):
                selected.append(event)
        return selected

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    def clear(self) -> None:
        """Forget the events so far (sequence numbers start again at 0)."""
        self._catch_up()  # the calls they name are still known
        self._events.clear()

    # -- views -------------------------------------------------------------------

    def log(self, events: list[Event] | None = None) -> EventLog:
        """The events (all, or ``events``) as a log: messages decoded, redacted."""
        return EventLog.from_events(self.events if events is None else events, self.redactor)

    def __str__(self) -> str:
        return self.to_text()

    def to_text(self, events: list[Event] | None = None) -> str:
        """The text timeline (``shimeji.views.text``) of every event, or of ``events``."""
        from shimeji.views.text import render_text

        return render_text(self.log(events)).rstrip("\n")

    def to_jsonl(self, messages: bool = False) -> str:
        """One JSON object per event, one per line (with ``messages``, each event's
        message too: headers and body, as they travelled, not redacted)."""
        encode = _JSONL.encode
        return "".join([encode(event.as_dict(messages)) + "\n" for event in self.events])

    def to_mermaid(self) -> str:
        """A mermaid ``sequenceDiagram`` (``shimeji.views.mermaid``) of the calls."""
        from shimeji.views.mermaid import render_mermaid

        return render_mermaid(self.log())
