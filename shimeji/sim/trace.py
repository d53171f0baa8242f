"""The trace: every step of every call in a simulation, in order.

Each ``TraceEvent`` has a sequence number, the virtual time, a kind, the
replica that took the step, the service and method concerned, the worker's
call id and the message's correlation id. ``str(trace)`` is an aligned
timeline; ``to_jsonl()`` one JSON object per event; ``to_mermaid()`` a
sequence diagram.

Kinds: publish, deliver, worker_start, worker_end, reply, ack, requeue,
reject, timeout, reply_dropped, unroutable, drop, retry, publish_failed,
bad_request, replica_start, replica_stop, replica_killed, queue_deleted, and
the fault kinds of ``shimeji.sim.faults``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from shimeji.core.transport import Message
from shimeji.sim.clock import VirtualClock

__all__ = ["Trace", "TraceEvent"]


@attrs.frozen(slots=True)
class TraceEvent:
    """One step of the simulation."""

    seq: int
    time: float  # virtual seconds since the simulation started
    kind: str
    replica: str
    service: str | None = None
    method: str | None = None
    call_id: str | None = None
    correlation_id: str | None = None
    detail: str = ""
    message: Message | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def target(self) -> str:
        """``service.method`` (or what is known of it)."""
        if self.service and self.method:
            return f"{self.service}.{self.method}"
        return self.service or ""

    @property
    def is_reply(self) -> bool:
        """Whether this event concerns a reply message rather than a request."""
        if self.kind in ("reply", "reply_dropped"):
            return True
        message = self.message
        return (
            message is not None
            and message.reply_to is None
            and (self.service is None or message.routing_key != f"{self.service}.{self.method}")
        )

    def as_dict(self, messages: bool = False) -> dict[str, Any]:
        """The event's fields; with ``messages``, also its message (raw: bodies are
        not redacted here; ``shimeji.views`` builds redacted logs)."""
        data: dict[str, Any] = {
            "seq": self.seq,
            "time": round(self.time, 6),
            "kind": self.kind,
            "replica": self.replica,
            "service": self.service,
            "method": self.method,
            "call_id": self.call_id,
            "correlation_id": self.correlation_id,
            "detail": self.detail,
        }
        if messages and self.message is not None:
            message = self.message
            data["message"] = {
                "routing_key": message.routing_key,
                "exchange": message.exchange,
                "reply_to": message.reply_to,
                "content_type": message.content_type,
                "headers": dict(message.headers),
                "body": message.body.decode("utf-8", "backslashreplace"),
            }
        return data


def short_id(value: str | None) -> str:
    """A readable abbreviation of a uuid-bearing id (``svc.m.1a2b3c4d``)."""
    if not value:
        return "-"
    head, _, tail = value.rpartition(".")
    tail = tail[:8]
    return f"{head}.{tail}" if head else tail


class Trace:
    """The events of one simulation, with views of them."""

    def __init__(self, clock: VirtualClock, enabled: bool = True) -> None:
        self.clock = clock
        self._recording = enabled
        self._listener: Any = None
        #: whether events are wanted (recorded, or watched by a listener); an
        #: attribute, not a property, as core code reads it for every event
        self.enabled = enabled
        # Events are recorded as plain tuples (cheap, and mostly invisible to the
        # garbage collector) and turned into TraceEvent objects when read.
        self._rows: list[tuple[Any, ...]] = []
        self._messages: list[Message] = []
        self._events: list[TraceEvent] = []
        # correlation id -> (service, method, caller label, caller call id)
        self._calls: dict[str, tuple[str | None, str | None, str, str | None]] = {}
        self._repliers: dict[str, str] = {}  # correlation id -> replica that replied

    def emit(
        self,
        kind: str,
        replica: str,
        service: str | None = None,
        method: str | None = None,
        call_id: str | None = None,
        correlation_id: str | None = None,
        detail: str = "",
        message: Message | None = None,
    ) -> None:
        if self._listener is not None:
            self._listener(kind, replica, service, method)
        if not self._recording:
            return
        if correlation_id is not None:
            if kind == "publish":
                self._calls[correlation_id] = (service, method, replica, call_id)
            elif kind == "reply":
                self._repliers[correlation_id] = replica
            if service is None:
                known = self._calls.get(correlation_id)
                if known is not None:
                    service, method = known[0], known[1]
        if message is not None:
            # Rows hold the position of their message, not the message: rows of
            # plain values are dropped from the garbage collector's watch,
            # which keeps long traces cheap to hold.
            self._messages.append(message)
            message = len(self._messages) - 1  # type: ignore[assignment]
        self._rows.append(
            (
                self.clock._now_us,
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

    def request_context(self, context_data: Mapping[str, Any], **call: Any) -> Mapping[str, Any]:
        """The trace records requests as they are; it adds no context data."""
        return context_data

    @property
    def events(self) -> list[TraceEvent]:
        """Every event so far, in order."""
        events, rows = self._events, self._rows
        for seq in range(len(events), len(rows)):
            row = rows[seq]
            message = None if row[8] is None else self._messages[row[8]]
            events.append(TraceEvent(seq, row[0] / 1_000_000, *row[1:8], message))
        return events

    @property
    def recording(self) -> bool:
        return self._recording

    @recording.setter
    def recording(self, value: bool) -> None:
        self._recording = value
        self.enabled = value or self._listener is not None

    @property
    def listener(self) -> Any:
        """Called with (kind, replica, service, method) before each event is recorded."""
        return self._listener

    @listener.setter
    def listener(self, value: Any) -> None:
        self._listener = value
        self.enabled = self._recording or value is not None

    def caller_of(self, correlation_id: str | None) -> str | None:
        """The label of whoever published the request with this correlation id."""
        known = self._calls.get(correlation_id or "")
        return known[2] if known else None

    # -- access ------------------------------------------------------------------

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._rows)

    def filter(self, kind: str | None = None, **fields: Any) -> list[TraceEvent]:
        """Events of ``kind`` whose attributes equal ``fields``."""
        selected: list[TraceEvent] = []
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
        self._rows.clear()
        self._messages.clear()
        self._events.clear()

    # -- views -------------------------------------------------------------------

    def __str__(self) -> str:
        return self.to_text()

    def to_text(self, events: list[TraceEvent] | None = None) -> str:
        """An aligned timeline: time, replica, event, call, correlation id, detail."""
        rows = [
            (
                f"{event.time:.6f}",
                event.replica,
                event.kind,
                event.target or "-",
                short_id(event.call_id),
                short_id(event.correlation_id),
                event.detail,
            )
            for event in (self.events if events is None else events)
        ]
        header = ("time", "replica", "event", "target", "call", "corr", "detail")
        widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(6)]
        lines = []
        for row in [header, *rows]:
            cells = [row[0].rjust(widths[0])] + [row[i].ljust(widths[i]) for i in range(1, 6)]
            lines.append(("  ".join(cells) + "  " + row[6]).rstrip())
        return "\n".join(lines)

    def to_jsonl(self, messages: bool = False) -> str:
        """One JSON object per event, one per line (with ``messages``, each event's
        message too: headers and body)."""
        return "".join(
            json.dumps(event.as_dict(messages), sort_keys=True, default=repr) + "\n"
            for event in self.events
        )

    def to_mermaid(self) -> str:
        """A mermaid ``sequenceDiagram`` of the messages between clients and replicas."""
        participants: list[str] = []

        def alias(label: str) -> str:
            if label not in participants:
                participants.append(label)
            return f"P{participants.index(label)}"

        body: list[str] = []
        for event in self.events:
            kind = event.kind
            if kind == "deliver":
                if event.is_reply:
                    sender = alias(self._replier(event) or "broker")
                    target = alias(event.replica)
                    body.append(f"    {sender}-->>{target}: {_label(event, 'reply')}")
                else:
                    sender = alias(self.caller_of(event.correlation_id) or "broker")
                    target = alias(event.replica)
                    redelivered = " (redelivered)" if event.detail == "redelivered" else ""
                    body.append(f"    {sender}->>{target}: {event.method or '?'}{redelivered}")
            elif kind in (
                "timeout",
                "retry",
                "publish_failed",
                "replica_killed",
                "reply_dropped",
                "unroutable",
                "bad_request",
            ) or kind.startswith("fault"):
                note = f"{kind} {event.target}".strip()
                if event.detail:
                    note += f": {event.detail}"
                body.append(f"    Note over {alias(event.replica)}: {_escape(note)}")
            elif kind == "drop":
                sender = self.caller_of(event.correlation_id) or "broker"
                body.append(f"    {alias(sender)}-x{alias('broker')}: {_escape(event.detail)}")
        head = ["sequenceDiagram"] + [
            f"    participant P{index} as {_escape(label)}"
            for index, label in enumerate(participants)
        ]
        return "\n".join(head + body) + "\n"

    def _replier(self, event: TraceEvent) -> str | None:
        return self._repliers.get(event.correlation_id or "")


def _label(event: TraceEvent, default: str) -> str:
    return f"{default} {event.method}" if event.method else default


def _escape(text: str) -> str:
    # ';' and '#' end or escape a mermaid statement; keep the diagram parseable.
    return text.replace(";", ",").replace("#", "no.").replace("\n", " ")
