"""The mermaid view: a ``sequenceDiagram`` of the calls in a log.

- one participant per client (an actor) and per replica that took part, plus
  the broker when a message was lost or handed over by it;
- a solid arrow per request delivered (``multiply(6, 7)``, marked
  ``redelivered`` when it is), a dotted arrow per reply delivered (its result
  or error);
- a worker is an activation bar on its replica, from worker_start to
  worker_end (or to the replica's death);
- lost messages end in a cross (``-x``): a message dropped by the broker or
  a fault, a reply that arrived after its caller gave up;
- timeouts, retries, failed publishes, unroutable requests, bad requests,
  requeues, kills and faults are notes on the lifeline concerned.
"""

from __future__ import annotations

from shimeji.views.log import EventLog, EventRecord
from shimeji.views.model import (
    BROKER,
    CLIENT,
    LOST_KINDS,
    TraceModel,
    describe_dispatch,
    describe_reply,
    describe_request,
    noted,
)

__all__ = ["escape", "render_mermaid"]


def escape(text: str) -> str:
    """Text that mermaid shows as is in a message or note.

    ``#`` starts an entity code and ``;`` ends a statement, so both (and the
    angle brackets mermaid would take for HTML) become entity codes.
    """
    return text.translate(_ESCAPES)


# One pass (str.translate), so that the ';' of an entity code is not escaped again.
_ESCAPES = {
    ord("#"): "#35;",
    ord(";"): "#59;",
    ord("<"): "#lt;",
    ord(">"): "#gt;",
    ord("\r"): " ",
    ord("\n"): " ",
}


def _note(record: EventRecord) -> str:
    text = record.kind.replace("_", " ")
    if record.correlation_id and record.kind not in ("replica_killed",):
        target = f"{record.target} " if record.target else ""
        text += f" {target}({record.correlation_id})"
    elif record.target and record.kind != "replica_killed":
        text += f" {record.target}"
    if record.detail:
        text += f": {record.detail}"
    return escape(text)


def render_mermaid(log: EventLog) -> str:
    """The ``sequenceDiagram`` source for ``log``, ending with a newline."""
    model = TraceModel(log)
    alias: dict[str, str] = {}
    lines = ["sequenceDiagram"]
    for index, (label, role) in enumerate(model.participants):
        alias[label] = f"P{index}"
        keyword = "actor" if role == CLIENT else "participant"
        lines.append(f"    {keyword} P{index} as {escape(label)}")

    def who(label: str | None) -> str:
        return alias.get(label or BROKER) or alias.setdefault(label or BROKER, _add(label))

    def _add(label: str | None) -> str:
        # A label no participant line declared (cannot happen for a log the
        # simulator wrote; a hand-edited log still renders).
        name = f"P{len(alias)}"
        lines.insert(len(alias) + 1, f"    participant {name} as {escape(label or BROKER)}")
        return name

    active: dict[str, int] = {}
    started: set[str] = set()
    for record in log.records:
        kind, label = record.kind, record.replica
        if kind == "deliver" and record.seq in model.unclaimed:
            continue  # drawn as lost at its reply_dropped event
        if kind == "deliver":
            sender = model.sender(record)
            if model.is_event(record):  # an asynchronous arrow: nobody waits for it
                dispatch = model.dispatches[record.correlation_id or ""]
                text = describe_dispatch(dispatch.method, dispatch.message)
                if record.detail == "redelivered":
                    text += " (redelivered)"
                lines.append(f"    {who(sender)}-){who(label)}: {escape(text)}")
            elif model.is_request(record):
                text = describe_request(record.method, record.message)
                if record.detail == "redelivered":
                    text += " (redelivered)"
                lines.append(f"    {who(sender)}->>{who(label)}: {escape(text)}")
            else:
                text = describe_reply(record.message)
                lines.append(f"    {who(sender)}-->>{who(label)}: {escape(text)}")
        elif kind == "worker_start":
            active[label] = active.get(label, 0) + 1
            lines.append(f"    activate {who(label)}")
        elif kind == "worker_end":
            if active.get(label, 0) > 0:
                active[label] -= 1
                lines.append(f"    deactivate {who(label)}")
        elif kind in LOST_KINDS:
            sender = model.sender(record)
            if kind == "reply_dropped":
                text = f"reply dropped: {record.detail}"
                lines.append(f"    {who(sender)}--x{who(label)}: {escape(text)}")
            else:
                text = f"lost: {record.detail}" if record.detail else "lost"
                call = model.call(record.correlation_id)
                arrow = "--x" if call is not None and sender != call.caller else "-x"
                lines.append(f"    {who(sender)}{arrow}{who(BROKER)}: {escape(text)}")
        elif kind == "replica_killed":
            for _ in range(active.pop(label, 0)):
                lines.append(f"    deactivate {who(label)}")
            lines.append(f"    Note over {who(label)}: {_note(record)}")
        elif kind == "replica_start":
            if label in started and label in alias:
                lines.append(f"    Note over {who(label)}: {escape('replica started again')}")
            started.add(label)
        elif noted(kind):
            lines.append(f"    Note over {who(label)}: {_note(record)}")
        elif kind == "queue_deleted" and "lost" in record.detail:
            owner = _reply_queue_owner(record, model)
            lines.append(f"    Note over {who(owner)}: {_note(record)}")
    return "\n".join(lines) + "\n"


def _reply_queue_owner(record: EventRecord, model: TraceModel) -> str:
    for reply_id, owner in model.reply_owner.items():
        if reply_id in record.detail:
            return owner
    return BROKER
