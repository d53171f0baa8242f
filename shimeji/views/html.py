"""The html view: one self-contained page, the sequence diagram beside the timeline.

The page needs nothing but itself: the diagram is an SVG drawn here, in
Python, at generation time (no mermaid.js, no network); styles and the small
script are inline, and a Content-Security-Policy forbids every fetch.

Each event is a row of the timeline; the diagram is drawn on the same rows,
so an arrow starts at the row of its publish and ends at the row of its
delivery, and a worker's activation bar spans its rows. Clicking a row (or an
arrow, a bar, a mark) shows the event in the side panel: its fields, and for
a message its properties, context data, call id stack, headers and body
(sensitive arguments already redacted in the log). Arrow keys move the
selection; the filter box dims the rows that do not match.
"""

from __future__ import annotations

import html
import json
from typing import Any

from shimeji.views.log import EventLog, EventRecord
from shimeji.views.model import (
    BROKER,
    LOST_KINDS,
    TraceModel,
    describe_reply,
    describe_request,
    noted,
)
from shimeji.views.text import timeline_row

__all__ = ["GENERATOR", "render_html"]

#: Marks a page as written by shimeji (``shimeji sim`` overwrites only such a page).
GENERATOR = '<meta name="generator" content="shimeji">'

ROW = 22  # height of a timeline row, in pixels; the diagram uses the same rows
HEAD = 30  # height of the header row
COLUMN = 130  # distance between two lifelines
MARGIN = 70


def _row_y(index: int) -> float:
    """The vertical middle of row ``index``."""
    return HEAD + index * ROW + ROW / 2


def _svg(log: EventLog, model: TraceModel) -> str:
    participants = model.participants
    # Wide enough for the longest name (about 7.3 px a character in 12 px monospace).
    column = max([COLUMN] + [int(len(label) * 7.3) + 16 for label, _ in participants])
    x_of = {label: MARGIN + index * column for index, (label, _) in enumerate(participants)}
    width = MARGIN * 2 + max(0, len(participants) - 1) * column
    height = HEAD + len(log.records) * ROW + 4
    index_of = {record.seq: index for index, record in enumerate(log.records)}
    parts: list[str] = [
        f'<svg id="diagram" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="sequence diagram">',
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker>'
        "</defs>",
        '<rect id="band" x="0" y="-100" width="100%" height="22" />',
    ]
    for label, role in participants:
        x = x_of[label]
        parts.append(
            f'<line class="lifeline" x1="{x}" y1="{HEAD}" x2="{x}" y2="{height}" />'
            f'<text class="participant {role}" x="{x}" y="{HEAD - 10}" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )

    def x(label: str | None) -> int:
        return x_of.get(label or BROKER, x_of.get(BROKER, MARGIN))

    # Worker activations, under the arrows.
    for worker in model.workers:
        if worker.replica not in x_of:
            continue
        top = _row_y(index_of[worker.start_seq]) - 4
        end_seq = worker.end_seq if worker.end_seq is not None else log.records[-1].seq
        bottom = _row_y(index_of[end_seq]) + 4
        parts.append(
            f'<rect class="worker{" killed" if worker.outcome == "killed" else ""}" '
            f'data-seq="{worker.start_seq}" x="{x_of[worker.replica] - 5}" y="{top}" '
            f'width="10" height="{bottom - top}"><title>{html.escape(worker.call_id)}: '
            f"{html.escape(worker.outcome or 'running')}</title></rect>"
        )

    sources: dict[tuple[str, str], int] = {}
    for record in log.records:
        kind, label = record.kind, record.replica
        y = _row_y(index_of[record.seq])
        if kind in ("publish", "reply") and record.correlation_id:
            sources[(record.correlation_id, kind)] = record.seq
        if kind == "deliver" and record.seq not in model.unclaimed:
            request = model.is_request(record)
            sender = model.sender(record)
            source = sources.get((record.correlation_id or "", "publish" if request else "reply"))
            y0 = _row_y(index_of[source]) if source is not None else y
            text = (
                describe_request(record.method, record.message, limit=28)
                if request
                else describe_reply(record.message, limit=28)
            )
            css = "request" if request else "reply"
            if record.detail == "redelivered":
                css += " redelivered"
            parts.append(_arrow(record.seq, x(sender), y0, x(label), y, css, text))
        elif kind in LOST_KINDS:
            sender = model.sender(record)
            call = model.call(record.correlation_id)
            is_request = kind == "drop" and call is not None and sender == call.caller
            source_kind = "publish" if is_request else "reply"
            source = sources.get((record.correlation_id or "", source_kind))
            y0 = _row_y(index_of[source]) if source is not None else y
            target = label if kind == "reply_dropped" else BROKER
            parts.append(
                _arrow(record.seq, x(sender), y0, x(target), y, "lost", record.detail or "lost")
            )
            parts.append(_cross(record.seq, x(target), y))
        elif label in x_of and (noted(kind) or (kind == "replica_start" and record.time > 0)):
            parts.append(_mark(record, x(label), y))
    parts.append("</svg>")
    return "".join(parts)


def _arrow(seq: int, x0: float, y0: float, x1: float, y1: float, css: str, text: str) -> str:
    if x0 == x1:  # to itself: a small loop to the right
        path = f"M{x0},{y0} C{x0 + 40},{y0} {x1 + 40},{y1} {x1 + 6},{y1}"
        tx, ty = x0 + 44, (y0 + y1) / 2
    else:
        end = x1 - 6 if x1 > x0 else x1 + 6
        path = f"M{x0},{y0} L{end},{y1}"
        tx, ty = (x0 + x1) / 2, (y0 + y1) / 2 - 3
    label = html.escape(text)
    return (
        f'<g class="message {css}" data-seq="{seq}"><path d="{path}" marker-end="url(#arrow)" />'
        f'<text x="{tx}" y="{ty}" text-anchor="middle">{label}</text><title>{label}</title></g>'
    )


def _cross(seq: int, x: float, y: float) -> str:
    return (
        f'<path class="cross" data-seq="{seq}" d="M{x - 5},{y - 5}L{x + 5},{y + 5}'
        f'M{x - 5},{y + 5}L{x + 5},{y - 5}" />'
    )


def _mark(record: EventRecord, x: float, y: float) -> str:
    text = f"{record.kind} {record.target}".strip()
    if record.detail:
        text += f": {record.detail}"
    return (
        f'<g class="mark kind-{html.escape(record.kind)}" data-seq="{record.seq}">'
        f'<rect x="{x - 6}" y="{y - 6}" width="12" height="12" rx="2" '
        f'transform="rotate(45 {x} {y})" /><title>{html.escape(text)}</title></g>'
    )


def _rows(log: EventLog, model: TraceModel) -> str:
    rows = []
    for record in log.records:
        cells = timeline_row(record, model, limit=70, arrow="→", reply_limit=50)
        tds = "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
        rows.append(
            f'<tr class="event kind-{html.escape(record.kind)}" data-seq="{record.seq}" '
            f'tabindex="-1">{tds}</tr>'
        )
    return "\n".join(rows)


def _data(log: EventLog, model: TraceModel) -> str:
    items: list[dict[str, Any]] = []
    for record in log.records:
        item = record.as_dict()
        sender = model.sender(record)
        if sender is not None:
            item["sender"] = sender
        if record.message is not None:
            item["context_data"] = record.message.context_data
            item["call_id_stack"] = record.message.call_id_stack
        items.append(item)
    text = json.dumps(items, sort_keys=True, ensure_ascii=False)
    # Inside <script>, "</" could end the element and "<!--" open a comment.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_STYLE = """
:root { --row: %(row)dpx; --head: %(head)dpx; font-family: system-ui, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; color: #1d232b; background: #fff; }
header { display: flex; align-items: baseline; gap: 1.2em; padding: 8px 14px;
  border-bottom: 1px solid #d5dbe3; background: #f6f8fa; }
header h1 { font-size: 15px; margin: 0; font-family: ui-monospace, monospace; }
header .summary { color: #57606a; font-size: 13px; }
header input { margin-left: auto; padding: 3px 6px; width: 16em; }
main { display: flex; height: calc(100vh - 44px); }
#trace { flex: 1 1 auto; overflow: auto; display: flex; align-items: flex-start; }
#diagram { flex: none; display: block; background: #fff; border-right: 1px solid #d5dbe3; }
#diagram .lifeline { stroke: #aab3bf; stroke-dasharray: 4 3; }
#diagram .participant { font: 600 12px ui-monospace, monospace; fill: #1d232b; }
#diagram .participant.client { fill: #0b5cad; }
#diagram .worker { fill: #dbe9f7; stroke: #4a7fb5; cursor: pointer; }
#diagram .worker.killed { fill: #f6d5d5; stroke: #b03030; }
#diagram .message { cursor: pointer; }
#diagram .message path { fill: none; stroke: #2f3a45; stroke-width: 1.3; }
#diagram .message text { font: 10px ui-monospace, monospace; fill: #3d4955;
  paint-order: stroke; stroke: #fff; stroke-width: 3px; }
#diagram .message.reply path { stroke-dasharray: 5 3; stroke: #4b6b45; }
#diagram .message.redelivered path { stroke: #9a5b00; }
#diagram .message.lost path { stroke: #b03030; stroke-dasharray: 2 3; }
#diagram .cross { stroke: #b03030; stroke-width: 2.2; }
#diagram marker path { fill: #2f3a45; }
#diagram .mark rect { fill: #f2b33d; stroke: #8a5a00; cursor: pointer; }
#diagram .mark.kind-timeout rect, #diagram .mark.kind-publish_failed rect,
#diagram .mark.kind-unroutable rect { fill: #e35d5d; stroke: #7d1f1f; }
#diagram .mark.kind-replica_killed rect { fill: #222; stroke: #000; }
#diagram #band { fill: #fff3bf; opacity: 0.7; }
#timeline { border-collapse: collapse; font: 12px ui-monospace, monospace; flex: none; }
#timeline thead th { height: var(--head); text-align: left; padding: 0 8px; position: sticky;
  top: 0; background: #f6f8fa; border-bottom: 1px solid #d5dbe3; }
#timeline td { height: var(--row); padding: 0 8px; white-space: nowrap; max-width: 40em;
  overflow: hidden; text-overflow: ellipsis; }
#timeline tr.event { cursor: pointer; }
#timeline tr.event:hover { background: #f0f4f8; }
#timeline tr.selected { background: #fff3bf; }
#timeline tr.dim { opacity: 0.3; }
#timeline td:first-child { text-align: right; color: #57606a; }
#timeline tr.kind-timeout, #timeline tr.kind-replica_killed, #timeline tr.kind-drop,
#timeline tr.kind-reply_dropped, #timeline tr.kind-publish_failed,
#timeline tr.kind-unroutable { color: #b03030; }
#details { flex: 0 0 400px; overflow: auto; border-left: 1px solid #d5dbe3; padding: 10px 14px;
  font-size: 13px; background: #fbfcfd; }
#details h2 { font-size: 14px; margin: 0 0 8px; font-family: ui-monospace, monospace; }
#details h3 { font-size: 12px; margin: 14px 0 4px; color: #57606a; text-transform: uppercase; }
#details table { border-collapse: collapse; font: 12px ui-monospace, monospace; }
#details th { text-align: left; padding: 1px 10px 1px 0; color: #57606a; font-weight: normal;
  vertical-align: top; }
#details pre { margin: 0; padding: 6px 8px; background: #f0f3f6; border-radius: 4px;
  font-size: 12px; white-space: pre-wrap; word-break: break-word; }
"""

_SCRIPT = """
(function () {
  "use strict";
  var events = JSON.parse(document.getElementById("events-data").textContent);
  var bySeq = {};
  events.forEach(function (event, index) { bySeq[event.seq] = index; });
  var rows = Array.prototype.slice.call(document.querySelectorAll("#timeline tr.event"));
  var band = document.getElementById("band");
  var details = document.getElementById("details");
  var selected = -1;

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function section(title, value) {
    var box = document.createDocumentFragment();
    box.appendChild(el("h3", title));
    box.appendChild(el("pre", JSON.stringify(value, null, 2)));
    return box;
  }
  function fields(pairs) {
    var table = el("table");
    pairs.forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") { return; }
      var tr = el("tr");
      tr.appendChild(el("th", pair[0]));
      tr.appendChild(el("td", pair[1]));
      table.appendChild(tr);
    });
    return table;
  }
  function show(index) {
    if (index < 0 || index >= events.length) { return; }
    if (selected >= 0) { rows[selected].classList.remove("selected"); }
    selected = index;
    var row = rows[index];
    row.classList.add("selected");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
    band.setAttribute("y", String(__HEAD__ + index * __ROW__));
    var event = events[index];
    details.replaceChildren();
    details.appendChild(el("h2", "#" + event.seq + " " + event.kind + " " +
      (event.service ? event.service + "." + (event.method || "") : "")));
    details.appendChild(fields([
      ["time", event.time.toFixed(6) + " s"], ["replica", event.replica],
      ["sender", event.sender], ["service", event.service], ["method", event.method],
      ["call id", event.call_id], ["correlation id", event.correlation_id],
      ["detail", event.detail]
    ]));
    var message = event.message;
    if (message) {
      details.appendChild(el("h3", "message"));
      details.appendChild(fields([
        ["exchange", message.exchange], ["routing key", message.routing_key],
        ["reply to", message.reply_to], ["correlation id", message.correlation_id],
        ["content type", message.content_type], ["body encoding", message.body_encoding]
      ]));
      details.appendChild(section("context data", event.context_data));
      details.appendChild(section("call id stack", event.call_id_stack));
      details.appendChild(section("headers", message.headers));
      details.appendChild(section("body", message.body));
    } else {
      details.appendChild(el("p", "No message travels with this event."));
    }
  }
  rows.forEach(function (row, index) {
    row.addEventListener("click", function () { show(index); });
  });
  document.querySelectorAll("#diagram [data-seq]").forEach(function (node) {
    node.addEventListener("click", function () {
      var index = bySeq[node.getAttribute("data-seq")];
      if (index !== undefined) { show(index); }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.target && event.target.id === "filter") { return; }
    if (event.key === "ArrowDown" || event.key === "j") {
      show(selected + 1);
      event.preventDefault();
    }
    if (event.key === "ArrowUp" || event.key === "k") {
      show(selected - 1);
      event.preventDefault();
    }
  });
  document.getElementById("filter").addEventListener("input", function (event) {
    var needle = event.target.value.toLowerCase();
    rows.forEach(function (row) {
      row.classList.toggle("dim", needle !== "" &&
        row.textContent.toLowerCase().indexOf(needle) < 0);
    });
  });
  document.body.setAttribute("data-ready", "true");
})();
"""

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def render_html(log: EventLog, title: str = "shimeji trace") -> str:
    """The page, as one string: no external resource of any kind."""
    model = TraceModel(log)
    end = log.records[-1].time if log.records else 0.0
    summary = (
        f"{len(log.records)} events · {len(model.calls)} calls · "
        f"{len(model.participants)} participants · {end:.6f} s of virtual time"
    )
    head = "".join(
        f"<th>{name}</th>"
        for name in ("time", "replica", "event", "target", "call", "corr", "detail")
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
{GENERATOR}
<title>{html.escape(title)}</title>
<style>{_STYLE % {"row": ROW, "head": HEAD}}</style>
</head>
<body>
<header><h1>{html.escape(title)}</h1><span class="summary">{html.escape(summary)}</span>
<input id="filter" type="search" placeholder="filter rows" aria-label="filter rows"></header>
<main>
<div id="trace">
{_svg(log, model)}
<table id="timeline"><thead><tr>{head}</tr></thead>
<tbody>
{_rows(log, model)}
</tbody></table>
</div>
<aside id="details"><p>Click an event, an arrow or a bar to see its message: headers,
body and context data. Arrow keys move through the events.</p></aside>
</main>
<script type="application/json" id="events-data">{_data(log, model)}</script>
<script>{_SCRIPT.replace("__HEAD__", str(HEAD)).replace("__ROW__", str(ROW))}</script>
</body>
</html>
"""
