"""The canonical event log: one JSON object per trace event, every view's source.

An ``EventLog`` is built from a simulation (``EventLog.from_cluster``) or read
back from its JSON lines (``EventLog.from_jsonl``); the text, mermaid,
perfetto and html views are all rendered from it, never from the simulator
itself, so a log saved today renders the same views tomorrow.

Each record holds the event's facts (sequence number, virtual time, kind,
replica, service, method, call id, correlation id, detail) and, for events
about a message, the message as it travelled: exchange, routing key,
reply-to, correlation id, content type, headers (context data lives in the
``nameko.``-prefixed ones) and the decoded body. Arguments declared in
``@rpc(sensitive_arguments=...)`` are redacted from request bodies when the
log is built, so no view can show them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from shimeji.core.events import Event
from shimeji.core.protocol import CALL_ID_STACK_HEADER, HEADER_PREFIX
from shimeji.views.ids import canonicalize
from shimeji.views.redaction import Redactor

__all__ = ["EventLog", "EventRecord", "LogFormatError", "MessageRecord"]

_CONTEXT_PREFIX = HEADER_PREFIX + "."


class LogFormatError(ValueError):
    """A line of an event log is not a record this module wrote."""


@attrs.frozen(slots=True)
class MessageRecord:
    """A message as it travelled: its properties, headers and decoded body.

    ``body_encoding`` says how ``body`` holds the bytes: ``"json"`` (the
    decoded value), ``"text"`` (a string) or ``"base64"``.
    """

    routing_key: str
    exchange: str = ""
    reply_to: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    headers: Mapping[str, Any] = attrs.field(factory=dict)
    body: Any = None
    body_encoding: str = "json"

    @property
    def context_data(self) -> dict[str, Any]:
        """The context data carried in ``nameko.`` headers (without the call id stack)."""
        return {
            key[len(_CONTEXT_PREFIX) :]: value
            for key, value in self.headers.items()
            if key.startswith(_CONTEXT_PREFIX) and key != CALL_ID_STACK_HEADER
        }

    @property
    def call_id_stack(self) -> list[str]:
        stack = self.headers.get(CALL_ID_STACK_HEADER)
        return list(stack) if isinstance(stack, list) else []

    def as_dict(self) -> dict[str, Any]:
        return {
            "routing_key": self.routing_key,
            "exchange": self.exchange,
            "reply_to": self.reply_to,
            "correlation_id": self.correlation_id,
            "content_type": self.content_type,
            "headers": dict(self.headers),
            "body": self.body,
            "body_encoding": self.body_encoding,
        }

    @classmethod
    def from_message(cls, message: Any, redactor: Redactor | None = None) -> MessageRecord:
        """From a ``shimeji.core.transport.Message``; request bodies are redacted."""
        body, encoding = _decode_body(message.body, message.content_type)
        if redactor is not None and encoding == "json":
            body = redactor.redact_request(message.routing_key, body)
        return cls(
            routing_key=message.routing_key,
            exchange=message.exchange,
            reply_to=message.reply_to,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            headers=_plain(dict(message.headers or {})),
            body=body,
            body_encoding=encoding,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MessageRecord:
        return cls(
            routing_key=data["routing_key"],
            exchange=data.get("exchange", ""),
            reply_to=data.get("reply_to"),
            correlation_id=data.get("correlation_id"),
            content_type=data.get("content_type"),
            headers=dict(data.get("headers") or {}),
            body=data.get("body"),
            body_encoding=data.get("body_encoding", "json"),
        )


#: A log's records are ``shimeji.core.events.Event`` records whose message is a
#: ``MessageRecord``.
EventRecord = Event


def _record_from_dict(data: Mapping[str, Any]) -> Event:
    message = data.get("message")
    return Event(
        seq=data["seq"],
        time=data["time"],
        kind=data["kind"],
        replica=data["replica"],
        service=data.get("service"),
        method=data.get("method"),
        call_id=data.get("call_id"),
        correlation_id=data.get("correlation_id"),
        detail=data.get("detail", ""),
        message=None if message is None else MessageRecord.from_dict(message),
    )


_REQUIRED = ("seq", "time", "kind", "replica")


class EventLog:
    """The events of one simulation, in order, as plain records."""

    def __init__(self, records: Iterable[EventRecord]) -> None:
        self.records: list[EventRecord] = list(records)

    # -- building --------------------------------------------------------------

    @classmethod
    def from_events(cls, events: Iterable[Any], redactor: Redactor | None = None) -> EventLog:
        """From the events of a trace (their messages as they travelled)."""
        records = []
        # A message is the subject of several events (published, delivered...):
        # decoded once. Records are frozen, so they can be shared.
        decoded: dict[int, tuple[Any, MessageRecord]] = {}
        for event in events:
            message = event.message
            record = None
            if message is not None:
                known = decoded.get(id(message))
                if known is not None and known[0] is message:
                    record = known[1]
                else:
                    record = MessageRecord.from_message(message, redactor)
                    decoded[id(message)] = (message, record)
            # What dataclasses.replace(event, time=..., message=...) makes, field by field.
            records.append(
                Event(
                    event.seq,
                    round(event.time, 6),
                    event.kind,
                    event.replica,
                    event.service,
                    event.method,
                    event.call_id,
                    event.correlation_id,
                    event.detail,
                    record,
                )
            )
        return cls(records)

    @classmethod
    def from_cluster(cls, cluster: Any, *, canonical_ids: bool = False) -> EventLog:
        """The log of a SimCluster's trace, with its services' sensitive arguments redacted.

        ``canonical_ids`` renames correlation ids, call ids and reply queue ids
        to stable names (``c1``, ``calculator.multiply.1``, ``r1``) in order of
        first appearance.
        """
        redactor = Redactor.from_service_classes(
            replica.service_cls for replica in cluster.replicas()
        )
        log = cls.from_events(cluster.trace.events, redactor)
        return log.canonical() if canonical_ids else log

    def canonical(self) -> EventLog:
        """This log with stable names for every id (see ``shimeji.views.ids``)."""
        return EventLog(canonicalize(self.records))

    # -- jsonl ---------------------------------------------------------------------

    def to_jsonl(self) -> str:
        """One JSON object per event, one per line: byte-stable.

        Keys come in a fixed order; bodies and headers keep the order they had
        on the wire (which the simulation makes deterministic), so that the
        views read from this text show them as they were.
        """
        return "".join(
            json.dumps(record.as_dict(), ensure_ascii=False) + "\n" for record in self.records
        )

    @classmethod
    def from_jsonl(cls, text: str, source: str = "<jsonl>") -> EventLog:
        """Read a log written by ``to_jsonl``; LogFormatError names the bad line."""
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LogFormatError(f"{source}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(data, dict):
                raise LogFormatError(
                    f"{source}:{number}: expected a JSON object, got {type(data).__name__}"
                )
            missing = [key for key in _REQUIRED if key not in data]
            if missing:
                raise LogFormatError(
                    f"{source}:{number}: not a shimeji trace event (missing {', '.join(missing)})"
                )
            try:
                records.append(_record_from_dict(data))
            except (KeyError, TypeError) as exc:
                raise LogFormatError(f"{source}:{number}: malformed message field: {exc}") from None
        return cls(records)

    # -- access ----------------------------------------------------------------------

    def __iter__(self) -> Any:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> EventRecord:
        return self.records[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventLog) and self.records == other.records

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<EventLog of {len(self.records)} events>"


def _decode_body(body: bytes, content_type: str | None) -> tuple[Any, str]:
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"
    if content_type in (None, "", "application/json"):
        try:
            return json.loads(text), "json"
        except ValueError:
            pass
    return text, "text"


def _plain(value: Any) -> Any:
    """Header values as JSON can hold them (tuples become lists, others their repr)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
