"""The text view: an aligned timeline, one line per event, for a terminal.

        time  replica       event    target               call  corr  detail
    0.001000  calculator-1  deliver  calculator.multiply  -     c1    from client

Columns: virtual seconds since the start, the replica (or client) that took
the step, the event's kind, ``service.method``, the worker's call id, the
correlation id, and what else there is to say: the (redacted) arguments of a
publish, the sender of a delivery, the result of a reply, the detail of the
event. This is ``str(cluster.trace)`` and the pytest report.

``shimeji sim`` asks for a summary fitted to a terminal instead
(``render_text(log, width=100, fold=True, legend=True, results=True)``):

- ``width``: five columns (time, replica, event, corr, and what happened:
  ``service.method`` with its arguments, result or detail, in one phrase),
  each line cut to ``width`` characters;
- ``fold``: routine events (``KINDS``' ``routine`` kinds: replicas starting
  and stopping, queues deleted) are left out, and a line says how many;
- ``legend``: what the columns and the kinds of event shown mean (from
  ``KINDS``' ``about``);
- ``results``: every call a client made, with its arguments and what it
  returned (or raised), in full, as indented JSON where one line is too short.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from shimeji.core.events import Event, kind_of
from shimeji.views.log import EventLog
from shimeji.views.model import (
    TraceModel,
    describe_dispatch,
    describe_event,
    describe_reply,
    describe_request,
)

__all__ = ["HEADER", "SUMMARY_HEADER", "fit_json", "render_text", "short_id", "timeline_row"]

HEADER = ("time", "replica", "event", "target", "call", "corr", "detail")
SUMMARY_HEADER = ("time", "replica", "event", "corr", "what happened")

#: The narrowest the last column of a summary gets, whatever ``width`` says.
MIN_WHAT = 24


def short_id(value: str | None) -> str:
    """A readable abbreviation of a uuid-bearing id (``svc.m.1a2b3c4d``)."""
    if not value:
        return "-"
    head, _, tail = value.rpartition(".")
    tail = tail[:8]
    return f"{head}.{tail}" if head else tail


def timeline_row(
    record: Event,
    model: TraceModel,
    limit: int | None,
    arrow: str = "->",
    reply_limit: int | None = None,
) -> tuple[str, str, str, str, str, str, str]:
    """The cells of one timeline row (the columns of ``HEADER``); the text and
    html views both lay out these. ``limit`` None: nothing is shortened."""
    return (
        f"{record.time:.6f}",
        record.replica,
        record.kind,
        record.target or "-",
        short_id(record.call_id),
        short_id(record.correlation_id),
        describe_event(record, model, limit=limit, arrow=arrow, reply_limit=reply_limit),
    )


def what_happened(record: Event, model: TraceModel, limit: int | None) -> str:
    """The last column of a summary: ``service.method`` and what there is to say
    of the event, as one phrase (``limit`` None: in full). A replica's own
    methods go by their name alone (``payment_service-1``'s ``process_payment``)."""
    kind, target = record.kind, record.target
    service = record.service
    own = service and record.replica.startswith(service + "-")
    if own and record.replica[len(service or "") + 1 :].isdigit():
        target = record.method or ""
    if kind == "publish":
        return describe_request(target or record.method, record.message, limit=limit)
    if kind == "reply":
        return f"{target} -> {describe_reply(record.message, limit=limit)}"
    if kind == "dispatch":
        return describe_dispatch(record.method, record.message, limit=limit)
    if kind == "deliver" and model.is_event(record):
        dispatch = model.dispatches.get(record.correlation_id or "")
        event_type = dispatch.method if dispatch is not None else record.method
        text = f"event {event_type or '?'} from {model.sender(record) or '?'}"
        return f"{text} (redelivered)" if record.detail == "redelivered" else text
    if kind == "deliver" and model.is_request(record):
        text = f"{target} from {model.sender(record) or '?'}"
        return f"{text} (redelivered)" if record.detail == "redelivered" else text
    if kind == "deliver":
        reply = describe_reply(record.message, limit=limit)
        return f"reply from {model.sender(record) or '?'}: {reply}"
    if kind == "worker_end":
        return f"{target}: {record.detail or 'ok'}"
    if target and record.detail:
        return f"{target}: {record.detail}"
    return target or record.detail


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_text(
    log: EventLog,
    *,
    width: int | None = None,
    fold: bool = False,
    legend: bool = False,
    results: bool = False,
    detail_limit: int | None = 60,
    hint: str = "",
) -> str:
    """The aligned timeline of ``log``, ending with a newline.

    Without options, the seven columns of ``HEADER`` (details shortened to
    ``detail_limit`` characters; None: in full). ``width``, ``fold``,
    ``legend`` and ``results`` make the summary the module docstring
    describes; ``hint`` (how to see more) ends the line under the timeline.
    """
    model = TraceModel(log)
    records = log.records
    hidden = 0
    if fold:
        shown = [record for record in records if not kind_of(record.kind).routine]
        hidden = len(records) - len(shown)
        records = shown
    if width is None:
        lines = _columns(records, model, detail_limit)
    else:
        lines = _summary(records, model, width)
    note = []
    if fold and hidden:
        routine = sorted({r.kind for r in log.records if kind_of(r.kind).routine})
        note.append(
            f"{hidden} routine event{'s' if hidden != 1 else ''} not shown: {', '.join(routine)}."
        )
    if hint:
        note.append(hint)
    if note:
        lines.extend(textwrap.wrap(" ".join(note), width or 100, break_long_words=False))
    if legend:
        lines += _legend(records, wide=width is None, width=width or 100)
    if results:
        lines += _results(model, width or 100)
    return "\n".join(lines) + "\n"


def _columns(records: list[Event], model: TraceModel, limit: int | None) -> list[str]:
    rows = [timeline_row(record, model, limit=limit) for record in records]
    widths = [max([len(HEADER[i])] + [len(row[i]) for row in rows]) for i in range(6)]
    lines = []
    for row in [HEADER, *rows]:
        cells = [row[0].rjust(widths[0])] + [row[i].ljust(widths[i]) for i in range(1, 6)]
        lines.append(("  ".join(cells) + "  " + row[6]).rstrip())
    return lines


def _summary(records: list[Event], model: TraceModel, width: int) -> list[str]:
    rows = [
        (
            f"{record.time:.6f}",
            record.replica,
            record.kind,
            short_id(record.correlation_id),
            what_happened(record, model, limit=None),
        )
        for record in records
    ]
    widths = [max([len(SUMMARY_HEADER[i])] + [len(row[i]) for row in rows]) for i in range(4)]
    room = max(MIN_WHAT, width - sum(widths) - 2 * 4)
    lines = []
    for row in [SUMMARY_HEADER, *rows]:
        cells = [row[0].rjust(widths[0])] + [row[i].ljust(widths[i]) for i in range(1, 4)]
        lines.append(("  ".join(cells) + "  " + _cut(row[4], room)).rstrip())
    return lines


def _legend(records: list[Event], wide: bool, width: int) -> list[str]:
    kinds: dict[str, None] = {}
    for record in records:
        kinds.setdefault(record.kind, None)
    columns = "time: virtual seconds; corr: the correlation id a request and its reply share"
    if wide:
        columns += "; call: the call id of the worker that took the step"
    lines = ["", *textwrap.wrap(f"Legend. {columns}.", width, break_long_words=False)]
    name_width = max((len(name) for name in kinds), default=0)
    for name in kinds:
        lines.extend(
            textwrap.wrap(
                f"  {name.ljust(name_width)}  {kind_of(name).about}",
                width,
                subsequent_indent=" " * (name_width + 4),
                break_long_words=False,
            )
        )
    return lines


# -- the calls of the clients, in full ---------------------------------------------------


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def fit_json(value: Any, width: int, column: int = 0, indent: int = 0) -> list[str]:
    """``value`` as JSON lines no wider than ``width`` where possible: on one line
    if it fits (starting at ``column``), else one item per line, each nested
    value fitted the same way, indented by two under ``indent``. The first line
    carries no indentation (it continues what precedes it)."""
    flat = _compact(value)
    if column + len(flat) <= width or not isinstance(value, (list, dict)) or not value:
        return [flat]
    opener, closer = ("{", "}") if isinstance(value, dict) else ("[", "]")
    inner = indent + 2
    items = (
        [(_compact(str(key)) + ": ", item) for key, item in value.items()]
        if isinstance(value, dict)
        else [("", item) for item in value]
    )
    lines = [opener]
    for index, (prefix, item) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        nested = fit_json(item, width - len(comma), inner + len(prefix), inner)
        nested[0] = " " * inner + prefix + nested[0]
        nested[-1] += comma
        lines.extend(nested)
    lines.append(" " * indent + closer)
    return lines


def _call_lines(name: str, body: Any, width: int, indent: int) -> list[str]:
    """``name(arguments)`` from a request body, fitted to ``width``."""
    args = body.get("args") if isinstance(body, dict) else None
    kwargs = body.get("kwargs") if isinstance(body, dict) else None
    parts: list[tuple[str, Any]] = [("", arg) for arg in args] if isinstance(args, list) else []
    if isinstance(kwargs, dict):
        parts += [(f"{key}=", value) for key, value in kwargs.items()]
    flat = f"{name}({', '.join(prefix + _compact(value) for prefix, value in parts)})"
    if indent + len(flat) <= width or not parts:
        return [flat]
    inner = indent + 2
    lines = [f"{name}("]
    for index, (prefix, value) in enumerate(parts):
        comma = "," if index < len(parts) - 1 else ""
        nested = fit_json(value, width - len(comma), inner + len(prefix), inner)
        nested[0] = " " * inner + prefix + nested[0]
        nested[-1] += comma
        lines.extend(nested)
    lines.append(" " * indent + ")")
    return lines


def _http_request_lines(request: Any, name: str, width: int, indent: int) -> list[str]:
    """``GET /orders/1  (gateway.get_order)`` and the request's body, fitted."""
    head = f"{request.headers.get('method', '?')} {request.headers.get('path', '?')}  ({name})"
    return [head, *_http_body(request, width, indent + 2, indent + 2)]


def _http_body(message: Any, width: int, first: int, indent: int) -> list[str]:
    """An HTTP message's body: JSON fitted to ``width``, text wrapped (nothing if empty)."""
    if message.body_encoding == "json":
        lines = fit_json(message.body, width, first, indent)
        return [" " * indent + lines[0], *lines[1:]]
    text = " ".join(str(message.body).split()) if message.body_encoding == "text" else ""
    if not text and message.body:
        text = "(binary body)"
    return _wrapped(text, width, indent) if text else []


def _outcome(model: TraceModel, call: Any, width: int, indent: int) -> list[str]:
    """What a call came to: ``-> result`` (fitted), ``raised Type: message``, or
    why no reply came."""
    if call.end_kind == "reply" and call.reply is not None and call.reply.exchange == "http":
        status = f"-> {call.reply.headers.get('status', '?')}"
        body = _http_body(call.reply, width, indent + len(status) + 1, indent + 3)
        if not body:
            return [status]
        if call.reply.body_encoding == "json":
            return [f"{status} {body[0].strip()}", *body[1:]]
        return [f"{status} {' '.join(line.strip() for line in body)}"]
    if call.end_kind == "reply" and call.reply is not None:
        body = call.reply.body
        if call.reply.body_encoding == "json" and isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                return [f"raised {describe_reply(call.reply, limit=None)}"]
            return _arrow(body.get("result"), width, indent)
        return [f"-> {describe_reply(call.reply, limit=None)}"]
    if call.end_kind:
        ending = next((r for r in model.records if r.seq == call.end_seq), None)
        detail = ending.detail if ending is not None else ""
        what = call.end_kind.replace("_", " ")
        return [f"{what}: {detail}" if detail else what]
    return ["no reply: the call was still waiting when the run ended"]


def _arrow(value: Any, width: int, indent: int) -> list[str]:
    lines = fit_json(value, width, indent + 3, indent + 3)
    lines[0] = "-> " + lines[0]
    return lines


def _wrapped(text: str, width: int, indent: int) -> list[str]:
    """``text`` wrapped to ``width``, its later lines indented two more than the first."""
    return textwrap.wrap(
        text,
        width,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 2),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [" " * indent]


def _results(model: TraceModel, width: int) -> list[str]:
    calls = [call for call in model.calls.values() if call.caller in model.clients]
    if not calls:
        return []
    lines = ["", "Calls made by clients, and what each returned, in full:"]
    for call in calls:
        corr = short_id(call.correlation_id)
        lead = f"{corr}  "
        name = f"{call.service}.{call.method}" if call.method else (call.service or "?")
        body = call.request.body if call.request is not None else None
        if call.request is None or call.request.body_encoding != "json":
            body = None
        if call.request is not None and call.request.exchange == "http":
            head = _http_request_lines(call.request, name, width, len(lead))
        else:
            head = _call_lines(name, body, width, len(lead))
        caller = f"  (from {call.caller})" if len(model.clients) > 1 else ""
        lines.append(lead + head[0] + (caller if len(head) == 1 else ""))
        lines.extend(head[1:])
        pad = " " * len(lead)
        outcome = _outcome(model, call, width, len(lead))
        if outcome[0].startswith("->"):
            lines.append(pad + outcome[0])
            lines.extend(outcome[1:])
        else:  # an error or why no reply came: prose, wrapped
            lines.extend(_wrapped(outcome[0], width, len(lead)))
    return lines
