"""The text view: an aligned timeline, one line per event, for a terminal.

        time  replica       event    target               call  corr  detail
    0.001000  calculator-1  deliver  calculator.multiply  -     c1    from client

Columns: virtual seconds since the start, the replica (or client) that took
the step, the event's kind, ``service.method``, the worker's call id, the
correlation id, and what else there is to say: the (redacted) arguments of a
publish, the sender of a delivery, the result of a reply, the detail of the
event.
"""

from __future__ import annotations

from shimeji.core.events import Event
from shimeji.views.log import EventLog
from shimeji.views.model import TraceModel, describe_event

__all__ = ["HEADER", "render_text", "short_id", "timeline_row"]

HEADER = ("time", "replica", "event", "target", "call", "corr", "detail")


def short_id(value: str | None) -> str:
    """A readable abbreviation of a uuid-bearing id (``svc.m.1a2b3c4d``)."""
    if not value:
        return "-"
    head, _, tail = value.rpartition(".")
    tail = tail[:8]
    return f"{head}.{tail}" if head else tail


def timeline_row(
    record: Event, model: TraceModel, limit: int, arrow: str = "->", reply_limit: int | None = None
) -> tuple[str, str, str, str, str, str, str]:
    """The cells of one timeline row (the columns of ``HEADER``); the text and
    html views both lay out these."""
    return (
        f"{record.time:.6f}",
        record.replica,
        record.kind,
        record.target or "-",
        short_id(record.call_id),
        short_id(record.correlation_id),
        describe_event(record, model, limit=limit, arrow=arrow, reply_limit=reply_limit),
    )


def render_text(log: EventLog) -> str:
    """The aligned timeline of ``log``, ending with a newline."""
    model = TraceModel(log)
    rows = [timeline_row(record, model, limit=60) for record in log.records]
    widths = [max([len(HEADER[i])] + [len(row[i]) for row in rows]) for i in range(6)]
    lines = []
    for row in [HEADER, *rows]:
        cells = [row[0].rjust(widths[0])] + [row[i].ljust(widths[i]) for i in range(1, 6)]
        lines.append(("  ".join(cells) + "  " + row[6]).rstrip())
    return "\n".join(lines) + "\n"
