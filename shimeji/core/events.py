"""Events: every step a call takes, as one record that every tracer and view shares.

Core, the transports and the simulator report each step with
``tracer.emit(Event(kind=..., replica=..., ...))``. A trace gives the event its place
(``seq``) and time (``shimeji.sim.Trace``, or the recording tracer of the
``cluster`` fixture on RabbitMQ); a log (``shimeji.views.EventLog``) holds the
same records with their messages decoded and sensitive arguments redacted,
and every view is rendered from it.

The kinds of event are listed once, here, in ``KINDS``, each with how views
draw it. A new kind (an entrypoint's own steps, say) is added to ``KINDS``
and nowhere else; a kind a view does not know is shown plainly (a row in a
timeline, a note in a diagram).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

__all__ = ["KINDS", "Event", "EventKind", "kind_of", "new_event"]


@dataclasses.dataclass(slots=True)
class Event:
    """One step of a call.

    ``replica`` is who took the step: a replica (``calculator-1``), a client
    (``client``) or the broker (``broker``). ``message`` is the message the
    step concerns, as it travelled (a ``shimeji.core.transport.Message``; in a
    log, a ``shimeji.views.MessageRecord``). ``seq`` and ``time`` are given by
    whoever records the event: its position, and seconds since the recording
    began (virtual seconds on the simulator).

    Treat an event as immutable once emitted (``dataclasses.replace`` makes a changed
    copy). It is not frozen only because one is made for every step of every
    call, and a frozen class costs twice as much to make; the recorder stamps
    ``seq`` and ``time`` on the events it is the first to record.
    """

    seq: int = -1
    time: float = 0.0
    kind: str = ""
    replica: str = ""
    service: str | None = None
    method: str | None = None
    call_id: str | None = None
    correlation_id: str | None = None
    detail: str = ""
    message: Any = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def target(self) -> str:
        """``service.method`` (or what is known of it)."""
        if self.service and self.method:
            return f"{self.service}.{self.method}"
        return self.service or ""

    @property
    def time_us(self) -> int:
        """The time in whole microseconds (as the simulator counts it)."""
        return round(self.time * 1_000_000)

    @property
    def is_reply(self) -> bool:
        """Whether the event concerns a reply rather than a request."""
        if self.kind in ("reply", "reply_dropped"):
            return True
        message = self.message
        return (
            message is not None
            and message.reply_to is None
            and (self.service is None or message.routing_key != f"{self.service}.{self.method}")
        )

    def as_dict(self, messages: bool = True) -> dict[str, Any]:
        """The event's facts in a fixed order; with ``messages``, its message too
        (a raw message's body decoded as UTF-8, with escapes where it is not)."""
        data = self.fields()
        message = self.message
        if messages and message is not None:
            as_dict = getattr(message, "as_dict", None)
            if as_dict is not None:
                data["message"] = as_dict()
            else:
                data["message"] = {
                    "routing_key": message.routing_key,
                    "exchange": message.exchange,
                    "reply_to": message.reply_to,
                    "content_type": message.content_type,
                    "headers": dict(message.headers),
                    "body": message.body.decode("utf-8", "backslashreplace"),
                }
        return data

    def fields(self) -> dict[str, Any]:
        """The event's facts, without its message, in a fixed order."""
        return {
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


def new_event(
    kind: str,
    replica: str,
    service: str | None = None,
    method: str | None = None,
    call_id: str | None = None,
    correlation_id: str | None = None,
    detail: str = "",
    message: Any = None,
) -> Event:
    """``Event(kind=..., replica=..., ...)``, not yet recorded, at half the cost.

    A class called with keyword arguments first gathers them into a dict; a
    function does not, and calls the class positionally. The steps every call
    takes (publish, deliver, worker start and end, reply, ack) are made here.
    """
    return Event(-1, 0.0, kind, replica, service, method, call_id, correlation_id, detail, message)


#: How a diagram shows a kind of event.
ARROW = "arrow"  # a message handed over (deliver): an arrow from its sender
LOST = "lost"  # a message lost on its way: an arrow ending in a cross
NOTE = "note"  # something worth seeing happened: a note on the lifeline
ACTIVATE = "activate"  # a worker starts: an activation bar opens
DEACTIVATE = "deactivate"  # a worker ends: the bar closes
ROW = "row"  # a row of the timelines only (publishing, acks, lifecycle)


class EventKind(NamedTuple):
    """A kind of event: its name, how diagrams draw it, what it means (``about``,
    the legend's text), whether it ends the call it concerns (for its caller),
    and whether it is ``routine``: bookkeeping every run has (replicas
    starting and stopping, queues deleted), which summaries fold away
    (``shimeji sim`` hides them unless ``--all``)."""

    name: str
    drawn: str
    about: str
    ends_call: bool = False
    routine: bool = False


def _kinds(*kinds: EventKind) -> dict[str, EventKind]:
    return {kind.name: kind for kind in kinds}


#: Every kind of event shimeji emits, by name.
KINDS: dict[str, EventKind] = _kinds(
    # messages
    EventKind("publish", ROW, "a request was published"),
    EventKind("resend", NOTE, "a request the broker may have lost was published again"),
    EventKind("deliver", ARROW, "the broker handed a message to a consumer"),
    EventKind("reply", ROW, "a replica published the reply to a request"),
    EventKind("ack", ROW, "a consumer settled a message: done with"),
    EventKind("requeue", NOTE, "a message went back to its queue, to be delivered again"),
    EventKind("reject", NOTE, "a message was refused for good (dead-lettered where configured)"),
    EventKind("drop", LOST, "the broker lost a message: no queue took it"),
    EventKind("reply_dropped", LOST, "a reply came for no waiting call"),
    EventKind("publish_refused", NOTE, "a publish failed: the broker is out of reach"),
    EventKind("retry", NOTE, "a failed publish will be tried again"),
    EventKind("publish_failed", NOTE, "a publish gave up: nothing was sent", ends_call=True),
    EventKind("unroutable", NOTE, "no queue is bound for a request", ends_call=True),
    EventKind("timeout", NOTE, "a call got no reply in time", ends_call=True),
    EventKind("bad_request", NOTE, "a request that cannot be served was answered with its error"),
    EventKind(
        "http_refused",
        NOTE,
        "the HTTP front answered a request itself (no route, a body too large, no replica "
        "running, or the replica died with it)",
        ends_call=True,
    ),
    EventKind("queue_deleted", ROW, "a queue was deleted (and the messages in it)", routine=True),
    # events and timers
    EventKind("dispatch", ROW, "a service (or a client) dispatched an event"),
    EventKind("timer_tick", NOTE, "a timer fired: its method runs"),
    # workers
    EventKind("worker_start", ACTIVATE, "a worker started handling a call"),
    EventKind("worker_end", DEACTIVATE, "a worker finished: ok, or the error it raised"),
    # replicas
    EventKind("replica_start", ROW, "a replica started", routine=True),
    EventKind("replica_stop", ROW, "a replica stopped", routine=True),
    EventKind("replica_killed", NOTE, "a replica died; its unacked messages went back"),
    EventKind("replica_waiting", NOTE, "a replica waits for the broker before it starts"),
    # faults (the simulator's fault plans and controls)
    EventKind("fault_drop", LOST, "a fault lost a message"),
    EventKind("fault_delay", NOTE, "a fault held a message back"),
    EventKind("fault_duplicate", NOTE, "a fault will deliver a message twice"),
    EventKind("fault_corrupt", NOTE, "a fault damaged a message"),
    EventKind("fault_crash", NOTE, "a fault (or the test) killed a replica"),
    EventKind("fault_restart", NOTE, "a killed replica was started again"),
    EventKind("fault_partition", NOTE, "a replica or client was cut off from the broker"),
    EventKind("fault_heal", NOTE, "a cut-off replica or client reconnected"),
    EventKind("fault_outage", NOTE, "the broker went down (or restarted)"),
    EventKind("fault_outage_end", NOTE, "the broker is back"),
)

_UNKNOWN_FAULT = "a fault"
_UNKNOWN = "an event of a kind this version does not know"


def kind_of(name: str) -> EventKind:
    """The kind called ``name``; one it does not know is shown plainly, as a note."""
    kind = KINDS.get(name)
    if kind is not None:
        return kind
    return EventKind(name, NOTE, _UNKNOWN_FAULT if name.startswith("fault") else _UNKNOWN)
