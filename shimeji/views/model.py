"""What the views need to know about a log beyond its records, derived from it.

``TraceModel`` reads an ``EventLog`` once and answers: who takes part
(clients, replicas, the broker), who sent the message a ``deliver`` event
hands over, whether it is a request or a reply, which worker ran each call
and when, and how each call ended. Everything here is computed from the log
alone, in the log's order, so every view agrees with every other.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from shimeji.core.events import KINDS, LOST, NOTE, kind_of
from shimeji.views.log import EventLog, EventRecord, MessageRecord

__all__ = [
    "CLIENT",
    "ENDING_KINDS",
    "LOST_KINDS",
    "NOTE_KINDS",
    "REPLICA",
    "Call",
    "TraceModel",
    "Worker",
    "describe_dispatch",
    "describe_event",
    "describe_reply",
    "describe_request",
    "noted",
    "shorten",
]

CLIENT, REPLICA, BROKER = "client", "replica", "broker"

#: Kinds shown as a note on the participant's lifeline (``shimeji.core.events``).
NOTE_KINDS = frozenset(name for name, kind in KINDS.items() if kind.drawn == NOTE)
#: Kinds that mean a message was lost on its way (fault_drop: lost by a fault plan).
LOST_KINDS = frozenset(name for name, kind in KINDS.items() if kind.drawn == LOST)
#: Kinds that end the call they concern, seen from its caller (besides its reply).
ENDING_KINDS = frozenset(name for name, kind in KINDS.items() if kind.ends_call)

_LIFECYCLE_ONLY = frozenset({"replica_start", "replica_stop"})


def noted(kind: str) -> bool:
    """Whether diagrams show an event of this kind as a note (kinds they do not
    know included: every kind is shown somehow)."""
    return kind_of(kind).drawn == NOTE


def _drawn(kind: str) -> bool:
    """Whether diagrams show an event of this kind on its participant's lifeline."""
    return kind_of(kind).drawn in (NOTE, LOST)


@attrs.define(slots=True)
class Worker:
    """One worker: a call handled by a replica, from worker_start to worker_end."""

    call_id: str
    replica: str
    service: str | None
    method: str | None
    correlation_id: str | None
    start_seq: int
    start_us: int
    end_seq: int | None = None
    end_us: int | None = None
    outcome: str = ""  # worker_end's detail ("ok" or the error), "killed" or ""


@attrs.define(slots=True)
class Call:
    """One request and what became of it, seen from its caller."""

    correlation_id: str
    service: str | None
    method: str | None
    caller: str
    caller_call_id: str | None
    publish_seq: int
    publish_us: int
    request: MessageRecord | None
    end_seq: int | None = None
    end_us: int | None = None
    end_kind: str = ""  # "reply", "timeout", "unroutable", "publish_failed" or ""
    reply: MessageRecord | None = None


class TraceModel:
    """Relationships between the records of one log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.records = log.records
        self.replicas: list[str] = []
        self.clients: list[str] = []
        self.uses_broker = False
        self.workers: list[Worker] = []
        self.calls: dict[str, Call] = {}
        self.senders: dict[int, str] = {}  # seq of a deliver / lost event -> sender label
        self.requests: set[int] = set()  # seqs of deliver events that hand over a request
        #: correlation id of a dispatched event -> its dispatch record
        self.dispatches: dict[str, EventRecord] = {}
        self.events: set[int] = set()  # seqs of deliver events that hand over an event
        self.reply_owner: dict[str, str] = {}  # reply queue id -> client label
        #: seqs of deliver events whose reply nobody took (a reply_dropped follows)
        self.unclaimed: set[int] = set()
        self._analyse()

    # -- analysis ------------------------------------------------------------------

    def _analyse(self) -> None:
        seen_replicas: dict[str, None] = {}
        labels: dict[str, None] = {}
        open_workers: dict[str, Worker] = {}
        # who replied to each correlation id, in order: a request run twice (a
        # duplicate, a redelivery) has two replies, delivered in that order
        repliers: dict[str, list[str]] = {}
        last_sender: dict[str, str] = {}  # of the reply delivered last, per id
        delivered: dict[tuple[str, str], int] = {}  # (corr, receiver) -> last deliver seq
        for record in self.records:
            kind, label = record.kind, record.replica
            if kind == "replica_start":
                seen_replicas.setdefault(label, None)
            if label == "broker":
                pass
            elif kind not in _LIFECYCLE_ONLY:
                labels.setdefault(label, None)
            corr = record.correlation_id
            if kind == "publish" and corr is not None:
                self.calls[corr] = Call(
                    corr,
                    record.service,
                    record.method,
                    label,
                    record.call_id,
                    record.seq,
                    record.time_us,
                    record.message,
                )
                if record.message is not None and record.message.reply_to:
                    self.reply_owner.setdefault(record.message.reply_to, label)
            elif kind == "reply" and corr is not None:
                repliers.setdefault(corr, []).append(label)
            elif kind == "dispatch" and corr is not None:
                self.dispatches[corr] = record
            elif kind == "deliver" and corr in self.dispatches:
                self.events.add(record.seq)
                self.senders[record.seq] = self.dispatches[corr].replica
            elif kind == "deliver":
                delivered[(corr or "", label)] = record.seq
                call = self.calls.get(corr or "")
                if self._is_request(record, call):
                    self.requests.add(record.seq)
                    self.senders[record.seq] = call.caller if call else BROKER
                else:
                    queue = repliers.get(corr or "")
                    sender = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else BROKER
                    self.senders[record.seq] = last_sender[corr or ""] = sender
                    if call is not None and call.end_seq is None and label == call.caller:
                        self._end_call(call, record, "reply")
                        call.reply = record.message
            elif kind in LOST_KINDS:
                call = self.calls.get(corr or "")
                if kind == "reply_dropped":
                    self.senders[record.seq] = last_sender.get(corr or "", BROKER)
                    if (corr or "", label) in delivered:
                        self.unclaimed.add(delivered[(corr or "", label)])
                elif repliers.get(corr or ""):
                    self.senders[record.seq] = repliers[corr or ""][0]
                else:
                    self.senders[record.seq] = call.caller if call else BROKER
            elif kind in ENDING_KINDS:
                call = self.calls.get(corr or "")
                if call is not None and call.end_seq is None:
                    self._end_call(call, record, kind)
            elif kind == "worker_start" and record.call_id:
                worker = Worker(
                    record.call_id,
                    label,
                    record.service,
                    record.method,
                    corr,
                    record.seq,
                    record.time_us,
                )
                self.workers.append(worker)
                open_workers[record.call_id] = worker
            elif kind == "worker_end" and record.call_id in open_workers:
                worker = open_workers.pop(record.call_id or "")
                worker.end_seq, worker.end_us = record.seq, record.time_us
                worker.outcome = record.detail or "ok"
            elif kind == "replica_killed":
                for call_id, worker in list(open_workers.items()):
                    if worker.replica == label:
                        worker.end_seq, worker.end_us = record.seq, record.time_us
                        worker.outcome = "killed"
                        del open_workers[call_id]
        for label in labels:
            if label in seen_replicas:
                self.replicas.append(label)
            else:
                self.clients.append(label)
        self.uses_broker = any(sender == BROKER for sender in self.senders.values()) or any(
            record.replica == BROKER and _drawn(record.kind) for record in self.records
        )

    @staticmethod
    def _is_request(record: EventRecord, call: Call | None) -> bool:
        message = record.message
        if call is not None and call.service and call.method and message is not None:
            return message.routing_key == f"{call.service}.{call.method}"
        return message is not None and message.reply_to is not None

    @staticmethod
    def _end_call(call: Call, record: EventRecord, kind: str) -> None:
        call.end_seq, call.end_us, call.end_kind = record.seq, record.time_us, kind

    # -- questions -------------------------------------------------------------------

    @property
    def participants(self) -> list[tuple[str, str]]:
        """``(label, role)`` in display order: clients, replicas, then the broker."""
        shown = [(label, CLIENT) for label in self.clients]
        shown += [(label, REPLICA) for label in self.replicas]
        if self.uses_broker:
            shown.append(("broker", BROKER))
        return shown

    def sender(self, record: EventRecord) -> str | None:
        """Who sent the message of a deliver or lost-message event."""
        return self.senders.get(record.seq)

    def is_request(self, record: EventRecord) -> bool:
        """Whether a deliver event hands a request (not a reply) to its replica."""
        return record.seq in self.requests

    def is_event(self, record: EventRecord) -> bool:
        """Whether a deliver event hands a dispatched event to a handler."""
        return record.seq in self.events

    def call(self, correlation_id: str | None) -> Call | None:
        return self.calls.get(correlation_id or "")


# -- one-line summaries of messages -----------------------------------------------


def shorten(text: str, limit: int | None = 48) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (None: never cut)."""
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=False)


def describe_request(
    method: str | None, message: MessageRecord | None, limit: int | None = 48
) -> str:
    """``multiply(6, 7)``: the method and its (redacted) arguments, shortened; an
    HTTP request as ``GET /orders/1`` and its body."""
    name = method or "?"
    if message is not None and message.exchange == "http":
        return shorten(
            _http_line(
                message, f"{message.headers.get('method', '?')} {message.headers.get('path', '?')}"
            ),
            limit,
        )
    body = message.body if message is not None else None
    if not isinstance(body, dict) or message is None or message.body_encoding != "json":
        return name
    args = body.get("args")
    kwargs = body.get("kwargs")
    parts = [_compact(arg) for arg in args] if isinstance(args, list) else []
    if isinstance(kwargs, dict):
        parts += [f"{key}={_compact(value)}" for key, value in kwargs.items()]
    return shorten(f"{name}({', '.join(parts)})", limit)


def _http_line(message: MessageRecord, head: str) -> str:
    """``head`` and the body of an HTTP message (JSON compacted, text on one line)."""
    body = message.body
    if message.body_encoding == "json":
        text = _compact(body)
    elif message.body_encoding == "text":
        text = " ".join(str(body).split())
    else:
        text = "(binary body)" if body else ""
    return f"{head} {text}" if text and text != '""' else head


def describe_dispatch(
    event_type: str | None, message: MessageRecord | None, limit: int | None = 48
) -> str:
    """``order_placed {"id": 1}``: the event type and its (redacted) data, shortened."""
    name = event_type or "?"
    if message is None or message.body_encoding != "json":
        return name
    return shorten(f"{name} {_compact(message.body)}", limit)


def describe_reply(message: MessageRecord | None, limit: int | None = 48) -> str:
    """The result, or ``ValueError: Division by zero`` for an error reply."""
    if message is None:
        return "reply"
    if message.exchange == "http":
        return shorten(_http_line(message, str(message.headers.get("status", "?"))), limit)
    body = message.body
    if message.body_encoding != "json" or not isinstance(body, dict):
        return shorten(str(body), limit)
    error = body.get("error")
    if isinstance(error, dict):
        exc_type = error.get("exc_type", "error")
        value = error.get("value", "")
        return shorten(f"{exc_type}: {value}" if value else str(exc_type), limit)
    return shorten(_compact(body.get("result")), limit)


def describe_event(
    record: EventRecord,
    model: TraceModel,
    limit: int | None,
    arrow: str = "->",
    reply_limit: int | None = None,
) -> str:
    """What a timeline row says of one event: the call a publish makes, the
    result a reply carries (after ``arrow``), who a delivery came from (a
    delivered reply shortened to ``reply_limit``), or the event's detail."""
    kind = record.kind
    if kind == "publish":
        return describe_request(record.method, record.message, limit=limit)
    if kind == "dispatch":
        return describe_dispatch(record.method, record.message, limit=limit)
    if kind == "reply":
        return f"{arrow} " + describe_reply(record.message, limit=limit)
    if kind == "deliver":
        sender = model.sender(record) or "?"
        if model.is_event(record):
            event_type = model.dispatches[record.correlation_id or ""].method
            text = f"event {event_type or '?'} from {sender}"
            return f"{text} (redelivered)" if record.detail == "redelivered" else text
        if model.is_request(record):
            text = f"from {sender}"
            return f"{text} (redelivered)" if record.detail == "redelivered" else text
        reply = describe_reply(record.message, limit=limit if reply_limit is None else reply_limit)
        return f"reply from {sender}: {reply}"
    return record.detail
