"""The html view: one self-contained page, the sequence diagram, the timeline and
the details of the selected event, each in a pane of its own.

The page needs nothing but itself: styles, data and the small script are
inline, and a Content-Security-Policy forbids every fetch. It stays text: the
timeline is an HTML table (every column, names in full), the diagram an SVG
whose participants and labels are SVG text, so a browser can search both and
a test can read them.

Layout (any landscape window from 1366x768 up, without scrolling the page
sideways): the diagram and the details panel side by side on top, the
timeline across the whole width below. Each pane scrolls on its own; the
diagram's participants stay in view as it scrolls.

The diagram is laid out here, in Python: every arrow (a delivery, a lost
message) and every mark (a timeout, a crash) gets a slot of its own, one
under the other, in the log's order, so no two labels, and no label and
arrow, can share a place; activation bars span their worker's slots. The
script places the participants across the pane's width (never closer than
their names need), fits each label to its arrow (a method's name always in
full, its arguments cut first), and draws what is in view: a trace of
thousands of events draws as fast as a short one. Up to ``FULL`` events,
everything is drawn at once (so that a browser's find sees every row).

Clicking a row (or an arrow, a bar, a mark) selects the event: the row and
its arrow are scrolled into view in their panes (never the page), a band
marks the arrow, and the details panel shows the event's fields and its
message: properties, context data, call id stack, headers and body
(sensitive arguments already redacted in the log). Arrow keys (or j and k)
move the selection; the filter box dims the rows and arrows that do not
match.
"""

from __future__ import annotations

import html
import json
from typing import Any

from shimeji.views.log import EventLog
from shimeji.views.model import (
    BROKER,
    LOST_KINDS,
    TraceModel,
    describe_dispatch,
    describe_reply,
    describe_request,
    noted,
)
from shimeji.views.text import HEADER, timeline_row

__all__ = ["FULL", "GENERATOR", "ROW", "SLOT", "Diagram", "layout_diagram", "render_html"]

#: Marks a page as written by shimeji (``shimeji sim`` overwrites only such a page).
GENERATOR = '<meta name="generator" content="shimeji">'

ROW = 22  # height of a timeline row, in pixels
#: Heights of the diagram's slots: an arrow with its label above it, a mark with
#: its label beside it, and a worker starting or ending.
SLOT = {"arrow": 30, "mark": 24, "worker": 10}
TOP = 8  # space above the first slot
FULL = 2000  # up to this many events, every row and item is drawn at once
DETAIL_LIMIT = 200  # a timeline row's detail is cut there (the panel shows it all)


class Diagram:
    """The diagram's layout: ``items`` (arrows and marks) in slots from the top,
    ``bars`` (workers), and for each event the place to show when it is
    selected (``anchors``: its slot's top and height, and its item or bar)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.bars: list[dict[str, Any]] = []
        self.anchors: list[list[int]] = []  # per event: [y, height, item, bar]
        self.height = TOP


def layout_diagram(log: EventLog, model: TraceModel) -> Diagram:
    """Slots for every arrow and mark, and activation bars, from the log alone."""
    diagram = Diagram()
    index = {label: position for position, (label, _) in enumerate(model.participants)}

    def at(label: str | None) -> int:
        return index.get(label or BROKER, index.get(BROKER, 0))

    y = TOP
    open_bars: dict[str, list[int]] = {}  # replica -> indexes of its open bars
    by_call: dict[str, int] = {}  # worker call id -> bar index
    request_arrow: dict[str, int] = {}  # corr -> first arrow delivering its request
    request_to: dict[tuple[str, str], int] = {}  # (corr, replica) -> its request's arrow
    reply_arrow: dict[str, int] = {}  # corr -> the arrow bringing its reply back
    event_arrow: dict[str, int] = {}  # corr -> the first arrow delivering an event
    pending: list[tuple[int, str, str]] = []  # (event index, kind, corr) anchored later
    anchors: list[list[int]] = []

    def slot(kind: str) -> int:
        nonlocal y
        top = y
        y += SLOT[kind]
        return top

    for position, record in enumerate(log.records):
        kind, label, corr = record.kind, record.replica, record.correlation_id or ""
        anchor = [y, 0, -1, -1]
        if kind == "deliver" and model.is_event(record):
            top = slot("arrow")
            name = record.method or "?"
            dispatch = model.dispatches.get(corr)
            text = describe_dispatch(name, dispatch.message if dispatch else None, limit=None)
            item = {
                "t": "a",
                "seq": record.seq,
                "y": top,
                "from": at(model.sender(record)),
                "to": at(label),
                "css": "event",
                "name": name,
                "text": text[len(name) :],
            }
            if record.detail == "redelivered":
                item["css"] += " redelivered"
                item["text"] += " (redelivered)"
            event_arrow.setdefault(corr, len(diagram.items))
            request_to[(corr, label)] = len(diagram.items)
            anchor = [top, SLOT["arrow"], len(diagram.items), -1]
            diagram.items.append(item)
        elif kind == "deliver" and record.seq not in model.unclaimed:
            request = model.is_request(record)
            top = slot("arrow")
            item: dict[str, Any] = {
                "t": "a",
                "seq": record.seq,
                "y": top,
                "from": at(model.sender(record)),
                "to": at(label),
                "css": "request" if request else "reply",
            }
            if request:
                name = record.method or "?"
                item["name"] = name
                item["text"] = describe_request(name, record.message, limit=None)[len(name) :]
                if record.detail == "redelivered":
                    item["css"] += " redelivered"
                    item["text"] += " (redelivered)"
                request_arrow.setdefault(corr, len(diagram.items))
                request_to[(corr, label)] = len(diagram.items)
            else:
                item["name"] = ""
                item["text"] = describe_reply(record.message, limit=None)
                reply_arrow.setdefault(corr, len(diagram.items))
            anchor = [top, SLOT["arrow"], len(diagram.items), -1]
            diagram.items.append(item)
        elif kind in LOST_KINDS:
            sender = model.sender(record)
            target = label if kind == "reply_dropped" else BROKER
            top = slot("arrow")
            what = "reply dropped" if kind == "reply_dropped" else "lost"
            text = f"{what}: {record.detail}" if record.detail else what
            anchor = [top, SLOT["arrow"], len(diagram.items), -1]
            diagram.items.append(
                {
                    "t": "l",
                    "seq": record.seq,
                    "y": top,
                    "from": at(sender),
                    "to": at(target),
                    "css": "lost",
                    "name": "",
                    "text": text,
                }
            )
        elif kind == "worker_start" and record.call_id and label in index:
            top = slot("worker")
            depth = len(open_bars.setdefault(label, []))
            bar = {
                "seq": record.seq,
                "p": index[label],
                "y0": top + SLOT["worker"] // 2,
                "y1": None,
                "depth": depth,
                "css": "worker",
                "title": f"{record.call_id}: running",
            }
            open_bars[label].append(len(diagram.bars))
            by_call[record.call_id] = len(diagram.bars)
            anchor = [top, SLOT["worker"], -1, len(diagram.bars)]
            diagram.bars.append(bar)
        elif kind == "worker_end" and record.call_id in by_call:
            top = slot("worker")
            number = by_call.pop(record.call_id or "")
            bar = diagram.bars[number]
            bar["y1"] = top + SLOT["worker"] // 2
            bar["title"] = f"{record.call_id}: {record.detail or 'ok'}"
            if number in open_bars.get(label, []):
                open_bars[label].remove(number)
            anchor = [top, SLOT["worker"], -1, number]
        elif label in index and (noted(kind) or (kind == "replica_start" and record.time > 0)):
            top = slot("mark")
            if kind == "replica_killed":
                for number in open_bars.pop(label, []):
                    bar = diagram.bars[number]
                    bar["y1"] = top + SLOT["mark"] // 2
                    bar["css"] = "worker killed"
                    bar["title"] = bar["title"].replace(": running", ": killed")
            words = f"{kind} {record.target}".strip()
            anchor = [top, SLOT["mark"], len(diagram.items), -1]
            diagram.items.append(
                {
                    "t": "m",
                    "seq": record.seq,
                    "y": top,
                    "p": index[label],
                    "kind": kind,
                    "name": words,
                    "text": f"{words}: {record.detail}" if record.detail else words,
                }
            )
        elif kind in ("publish", "reply", "ack", "dispatch") and corr:
            pending.append((position, kind, f"{corr}\0{label}"))
        anchors.append(anchor)
    for bar in diagram.bars:  # still running when the log ends
        if bar["y1"] is None:
            bar["y1"] = y
    for position, kind, key in pending:  # rows that point at an arrow drawn elsewhere
        corr, _, label = key.partition("\0")
        if kind == "publish":
            found = request_arrow.get(corr)
        elif kind == "dispatch":
            found = event_arrow.get(corr)
        elif kind == "reply":
            found = reply_arrow.get(corr)
        else:
            found = request_to.get((corr, label))
            if found is None:
                found = reply_arrow.get(corr)
        if found is not None:
            item = diagram.items[found]
            anchors[position] = [item["y"], SLOT["arrow"], found, -1]
    diagram.anchors = anchors
    diagram.height = y + TOP
    return diagram


def _data(log: EventLog, model: TraceModel) -> str:
    diagram = layout_diagram(log, model)
    events: list[dict[str, Any]] = []
    rows: list[list[str]] = []
    for record in log.records:
        item = record.as_dict()
        sender = model.sender(record)
        if sender is not None:
            item["sender"] = sender
        if record.message is not None:
            item["context_data"] = record.message.context_data
            item["call_id_stack"] = record.message.call_id_stack
        events.append(item)
        rows.append(list(timeline_row(record, model, limit=DETAIL_LIMIT, arrow="→")))
    data = {
        "participants": [list(participant) for participant in model.participants],
        "header": list(HEADER),
        "rows": rows,
        "events": events,
        "items": diagram.items,
        "bars": diagram.bars,
        "anchors": diagram.anchors,
        "height": diagram.height,
        "full": len(log.records) <= FULL,
    }
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # Inside <script>, "</" could end the element and "<!--" open a comment.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_STYLE = """
:root { --row: %(row)dpx; --details: clamp(320px, 28vw, 520px);
  font-family: system-ui, sans-serif; }
* { box-sizing: border-box; }
html, body { height: 100%%; margin: 0; overflow: hidden; }
body { color: #1d232b; background: #fff; display: grid;
  grid-template-columns: minmax(0, 1fr) var(--details);
  grid-template-rows: auto minmax(0, 1.15fr) minmax(0, 1fr);
  grid-template-areas: "header header" "diagram details" "timeline timeline"; }
header { grid-area: header; display: flex; align-items: baseline; gap: 1.2em;
  padding: 8px 14px; border-bottom: 1px solid #d5dbe3; background: #f6f8fa; min-width: 0; }
header h1 { font-size: 15px; margin: 0; font-family: ui-monospace, monospace;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
header .summary { color: #57606a; font-size: 13px; white-space: nowrap; }
header input { margin-left: auto; padding: 3px 6px; width: 16em; flex: none; }
#diagram-pane { grid-area: diagram; overflow: auto; position: relative; min-width: 0;
  border-bottom: 1px solid #d5dbe3; }
#participants { position: sticky; top: 0; z-index: 2; display: block; background: #f6f8fa;
  border-bottom: 1px solid #d5dbe3; }
#participants text { font: 600 12px ui-monospace, monospace; fill: #1d232b; }
#participants text.client { fill: #0b5cad; }
#diagram { display: block; }
#diagram .lifeline { stroke: #aab3bf; stroke-dasharray: 4 3; }
#diagram .worker { fill: #dbe9f7; stroke: #4a7fb5; cursor: pointer; }
#diagram .worker.killed { fill: #f6d5d5; stroke: #b03030; }
#diagram .message { cursor: pointer; }
#diagram .message path { fill: none; stroke: #2f3a45; stroke-width: 1.3; }
#diagram text { font: 11px ui-monospace, monospace; fill: #3d4955;
  paint-order: stroke; stroke: #fff; stroke-width: 3px; }
#diagram .message.reply path { stroke-dasharray: 5 3; stroke: #4b6b45; }
#diagram .message.event path { stroke-dasharray: 1 3; stroke: #5a4b8a; }
#diagram .message.redelivered path { stroke: #9a5b00; }
#diagram .message.lost path { stroke: #b03030; stroke-dasharray: 2 3; }
#diagram .message.lost text { fill: #8a2020; }
#diagram .cross { stroke: #b03030; stroke-width: 2.2; }
#diagram marker path { fill: #2f3a45; }
#diagram .mark { cursor: pointer; }
#diagram .mark rect { fill: #f2b33d; stroke: #8a5a00; }
#diagram .mark.kind-timeout rect, #diagram .mark.kind-publish_failed rect,
#diagram .mark.kind-unroutable rect { fill: #e35d5d; stroke: #7d1f1f; }
#diagram .mark.kind-replica_killed rect { fill: #222; stroke: #000; }
#diagram .selected path { stroke-width: 2.6; }
#diagram rect.worker.selected { stroke: #c47f00; stroke-width: 2.5; }
#diagram .mark.selected rect { stroke-width: 2.5; }
#diagram .selected text { font-weight: 700; }
#diagram .dim { opacity: 0.25; }
#diagram #band { fill: #fff3bf; }
#details { grid-area: details; overflow: auto; border-left: 1px solid #d5dbe3;
  border-bottom: 1px solid #d5dbe3; padding: 10px 14px; font-size: 13px; background: #fbfcfd;
  min-width: 0; }
#details h2 { font-size: 14px; margin: 0 0 8px; font-family: ui-monospace, monospace;
  overflow-wrap: anywhere; }
#details h3 { font-size: 12px; margin: 14px 0 4px; color: #57606a; text-transform: uppercase; }
#details table { border-collapse: collapse; font: 12px ui-monospace, monospace; }
#details th { text-align: left; padding: 1px 10px 1px 0; color: #57606a; font-weight: normal;
  vertical-align: top; white-space: nowrap; }
#details td { overflow-wrap: anywhere; }
#details pre { margin: 0; padding: 6px 8px; background: #f0f3f6; border-radius: 4px;
  font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
#timeline-pane { grid-area: timeline; overflow-y: auto; overflow-x: hidden; min-width: 0; }
#timeline { border-collapse: separate; border-spacing: 0; font: 12px ui-monospace, monospace;
  table-layout: fixed; width: 100%%; }
#timeline thead th { height: var(--row); text-align: left; padding: 0 8px; position: sticky;
  top: 0; z-index: 1; background: #f6f8fa; border-bottom: 1px solid #d5dbe3;
  white-space: nowrap; overflow: hidden; }
#timeline td { height: var(--row); padding: 0 8px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; line-height: var(--row); }
#timeline tr.event { cursor: pointer; }
#timeline tr.event:hover { background: #f0f4f8; }
#timeline tr.selected { background: #fff3bf; }
#timeline tr.dim { opacity: 0.3; }
#timeline td:first-child { text-align: right; color: #57606a; }
#timeline tr.kind-timeout, #timeline tr.kind-replica_killed, #timeline tr.kind-drop,
#timeline tr.kind-reply_dropped, #timeline tr.kind-publish_failed,
#timeline tr.kind-unroutable, #timeline tr.kind-fault_drop { color: #b03030; }
#timeline tr.spacer td { padding: 0; border: 0; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("events-data").textContent);
  var ROW = __ROW__, ARROW = __ARROW__, MARK = __MARK__;
  var rows = data.rows, events = data.events, items = data.items, bars = data.bars;
  var anchors = data.anchors, count = rows.length;
  var bySeq = {};
  events.forEach(function (event, index) { bySeq[event.seq] = index; });
  var itemRow = items.map(function (item) { return bySeq[item.seq]; });
  var barRow = bars.map(function (bar) { return bySeq[bar.seq]; });

  var diagramPane = document.getElementById("diagram-pane");
  var head = document.getElementById("participants");
  var svg = document.getElementById("diagram");
  var layer = document.getElementById("drawn");
  var band = document.getElementById("band");
  var tablePane = document.getElementById("timeline-pane");
  var table = document.getElementById("timeline");
  var tbody = table.tBodies[0];
  var cols = table.querySelectorAll("col");
  var details = document.getElementById("details");
  var filter = document.getElementById("filter");
  var selected = -1, needle = "", matches = null;
  var xs = [], width = 0, charWidth = 6.6, headHeight = 30;

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function svgEl(tag, attrs, parent) {
    var node = document.createElementNS(SVG, tag);
    for (var key in attrs) { node.setAttribute(key, attrs[key]); }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  // -- participants, across the pane ------------------------------------------
  var names = data.participants.map(function (p) {
    var text = svgEl("text", {"class": "participant " + p[1], "text-anchor": "middle",
      y: 19}, head);
    text.textContent = p[0];
    return text;
  });
  var probe = svgEl("text", {x: 0, y: -50}, svg);
  probe.textContent = "0000000000000000000000000000000000000000";
  charWidth = probe.getComputedTextLength() / 40 || charWidth;
  svg.removeChild(probe);

  function layout() {
    var widths = names.map(function (text) { return text.getComputedTextLength(); });
    var gaps = [], need = 0;
    for (var i = 1; i < widths.length; i++) {
      gaps.push(Math.max(110, (widths[i - 1] + widths[i]) / 2 + 28));
      need += gaps[i - 1];
    }
    var margin = Math.max(60, (widths[0] || 0) / 2 + 16);
    var last = Math.max(60, (widths[widths.length - 1] || 0) / 2 + 16);
    var room = diagramPane.clientWidth - margin - last;
    var stretch = gaps.length && room > need ? Math.min(room / need, 3) : 1;
    xs = [margin];
    for (var g = 0; g < gaps.length; g++) { xs.push(xs[g] + gaps[g] * stretch); }
    width = Math.max(diagramPane.clientWidth, Math.ceil(xs[xs.length - 1] + last));
    names.forEach(function (text, index) { text.setAttribute("x", xs[index]); });
    head.setAttribute("width", width);
    head.setAttribute("height", headHeight);
    svg.setAttribute("width", width);
    svg.setAttribute("height", data.height);
    var lines = document.getElementById("lifelines");
    lines.replaceChildren();
    xs.forEach(function (x) {
      svgEl("line", {"class": "lifeline", x1: x, y1: 0, x2: x, y2: data.height}, lines);
    });
    band.setAttribute("width", width);
    drawn = {};
    layer.replaceChildren();
    document.getElementById("bars").replaceChildren();
    draw();
  }

  // -- what is in view of the diagram -----------------------------------------
  var drawn = {};
  function fit(name, text, room) {
    var most = Math.max(1, Math.floor(room / charWidth));
    var full = name + text;
    if (full.length <= most) { return full; }
    if (name && text.charAt(0) === "(") {
      var left = most - name.length;
      return name + (left >= 4 ? text.slice(0, left - 2) + "…)" : "(…)");
    }
    return name + text.slice(0, Math.max(4, most - name.length - 1)) + "…";
  }
  function place(text, x, anchor) {
    // Keep a label inside the diagram, whatever its length.
    var length = text.getComputedTextLength();
    var left = anchor === "middle" ? x - length / 2 : (anchor === "end" ? x - length : x);
    if (left < 4) { left = 4; }
    if (left + length > width - 4) { left = Math.max(4, width - 4 - length); }
    text.setAttribute("text-anchor", "start");
    text.setAttribute("x", left);
  }
  function drawItem(index) {
    var item = items[index];
    var g = svgEl("g", {"data-seq": item.seq, "data-item": index});
    var y = item.y;
    if (item.t === "m") {
      var x = xs[item.p];
      g.setAttribute("class", "mark kind-" + item.kind);
      svgEl("rect", {x: x - 6, y: y + MARK / 2 - 6, width: 12, height: 12, rx: 2,
        transform: "rotate(45 " + x + " " + (y + MARK / 2) + ")"}, g);
      var label = svgEl("text", {y: y + MARK / 2 + 4}, g);
      label.textContent = fit("", item.name, Math.max(width - x - 20, x - 20));
      layer.appendChild(g);
      if (x + 12 + label.getComputedTextLength() <= width - 4) { place(label, x + 12, "start"); }
      else { place(label, x - 12, "end"); }
    } else {
      var x0 = xs[item.from], x1 = xs[item.to], line = y + ARROW - 9;
      g.setAttribute("class", "message " + item.css);
      var path, room;
      if (x0 === x1) {
        path = "M" + x0 + "," + (line - 12) + " h28 v12 h-22";
        room = width - x0 - 40;
      } else {
        var end = x1 > x0 ? x1 - 6 : x1 + 6;
        path = "M" + x0 + "," + line + " L" + end + "," + line;
        room = Math.abs(x1 - x0) - 16;
      }
      svgEl("path", {d: path, "marker-end": item.t === "l" ? "" : "url(#arrow)"}, g);
      if (item.t === "l") {
        svgEl("path", {"class": "cross", d: "M" + (x1 - 5) + "," + (line - 5) + "L" + (x1 + 5) +
          "," + (line + 5) + "M" + (x1 - 5) + "," + (line + 5) + "L" + (x1 + 5) + "," +
          (line - 5)}, g);
      }
      var text = svgEl("text", {y: line - (x0 === x1 ? 16 : 6)}, g);
      text.textContent = fit(item.name, item.text, Math.max(room, 60));
      var title = svgEl("title", {}, g);
      title.textContent = item.name + item.text;
      layer.appendChild(g);
      if (x0 === x1) { place(text, x0 + 34, "start"); }
      else { place(text, (x0 + x1) / 2, "middle"); }
    }
    if (matches && !matches[itemRow[index]]) { g.classList.add("dim"); }
    if (itemRow[index] === selected) { g.classList.add("selected"); }
    return g;
  }
  function drawBar(index) {
    var bar = bars[index];
    var x = xs[bar.p] - 5 + bar.depth * 5;
    var rect = svgEl("rect", {"class": bar.css, "data-seq": bar.seq, "data-bar": index, x: x,
      y: bar.y0, width: 10, height: Math.max(4, bar.y1 - bar.y0)});
    var title = svgEl("title", {}, rect);
    title.textContent = bar.title;
    document.getElementById("bars").appendChild(rect);
    return rect;
  }
  function firstAtOrBelow(top) {
    var low = 0, high = items.length;
    while (low < high) {
      var mid = (low + high) >> 1;
      if (items[mid].y + ARROW < top) { low = mid + 1; } else { high = mid; }
    }
    return low;
  }
  function draw() {
    var top = 0, bottom = data.height;
    if (!data.full) {
      top = diagramPane.scrollTop - 600;
      bottom = diagramPane.scrollTop + diagramPane.clientHeight + 600;
    }
    var keep = {};
    for (var i = firstAtOrBelow(top); i < items.length && items[i].y <= bottom; i++) {
      keep["i" + i] = drawn["i" + i] || drawItem(i);
    }
    for (var b = 0; b < bars.length; b++) {
      if (bars[b].y0 <= bottom && bars[b].y1 >= top) {
        keep["b" + b] = drawn["b" + b] || drawBar(b);
      }
    }
    for (var key in drawn) {
      if (!keep[key]) { drawn[key].remove(); }
    }
    drawn = keep;
  }

  // -- the timeline: every column, the rows in view -----------------------------
  var longest = [0, 0, 0, 0, 0, 0];
  rows.forEach(function (row) {
    for (var c = 0; c < 6; c++) {
      if (row[c].length > longest[c]) { longest[c] = row[c].length; }
    }
  });
  function columns() {
    var room = tablePane.clientWidth;
    var pad = 16, want = [], total = 0;
    for (var c = 0; c < 6; c++) {
      want.push(Math.ceil(Math.max(longest[c], data.header[c].length) * charWidth * 12 / 11) +
        pad + 2);
      total += want[c];
    }
    var detail = 160;
    // Too wide: the widest of the name columns give way first (ellipsis, full
    // text in the cell and its title).
    while (total + detail > room) {
      var widest = 1;
      for (var w = 1; w < 6; w++) { if (want[w] > want[widest]) { widest = w; } }
      var cut = Math.min(want[widest] - 60, total + detail - room);
      if (cut <= 0) { break; }
      want[widest] -= cut;
      total -= cut;
    }
    for (var k = 0; k < 6; k++) { cols[k].style.width = want[k] + "px"; }
    cols[6].style.width = "auto";
  }
  var shownFirst = -1, shownLast = -1;
  function rowElement(index) {
    var row = rows[index];
    var tr = el("tr", null, "event kind-" + row[2]);
    tr.setAttribute("data-seq", events[index].seq);
    tr.setAttribute("data-index", index);
    tr.tabIndex = -1;
    for (var c = 0; c < 7; c++) {
      var td = el("td", row[c]);
      if (c >= 3) { td.title = row[c]; }
      tr.appendChild(td);
    }
    if (index === selected) { tr.classList.add("selected"); }
    if (matches && !matches[index]) { tr.classList.add("dim"); }
    return tr;
  }
  function spacer(height) {
    var tr = el("tr", null, "spacer");
    var td = el("td");
    td.colSpan = 7;
    td.style.height = height + "px";
    tr.appendChild(td);
    return tr;
  }
  function renderRows(force) {
    var first = 0, last = count;
    if (!data.full) {
      var top = tablePane.scrollTop;
      first = Math.max(0, Math.floor(top / ROW) - 40);
      last = Math.min(count, Math.ceil((top + tablePane.clientHeight) / ROW) + 40);
    }
    if (!force && first === shownFirst && last === shownLast) { return; }
    shownFirst = first;
    shownLast = last;
    var fragment = document.createDocumentFragment();
    if (first > 0) { fragment.appendChild(spacer(first * ROW)); }
    for (var i = first; i < last; i++) { fragment.appendChild(rowElement(i)); }
    if (last < count) { fragment.appendChild(spacer((count - last) * ROW)); }
    tbody.replaceChildren(fragment);
  }
  function rowNode(index) {
    return tbody.querySelector('tr[data-index="' + index + '"]');
  }

  // -- selection ------------------------------------------------------------------
  function section(title, value) {
    var box = document.createDocumentFragment();
    box.appendChild(el("h3", title));
    box.appendChild(el("pre", JSON.stringify(value, null, 2)));
    return box;
  }
  function fields(pairs) {
    var out = el("table");
    pairs.forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") { return; }
      var tr = el("tr");
      tr.appendChild(el("th", pair[0]));
      tr.appendChild(el("td", pair[1]));
      out.appendChild(tr);
    });
    return out;
  }
  function showDetails(event) {
    details.replaceChildren();
    details.appendChild(el("h2", "#" + event.seq + " " + event.kind + " " +
      (event.service || "") + (event.method ? "." + event.method : "")));
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
  function revealRow(index) {
    var top = index * ROW, head = ROW + 1;
    var view = tablePane.scrollTop, height = tablePane.clientHeight;
    if (top < view + head - 1) { tablePane.scrollTop = top; }
    else if (top + ROW > view + height) { tablePane.scrollTop = top + ROW - height + head; }
  }
  function revealAnchor(anchor) {
    var y = anchor[0], h = Math.max(anchor[1], ARROW);
    var view = diagramPane.scrollTop, height = diagramPane.clientHeight - headHeight;
    if (y < view || y + h > view + height) {
      diagramPane.scrollTop = Math.max(0, y - height / 3);
    }
    var left = null, right = null;
    if (anchor[2] >= 0) {
      var item = items[anchor[2]];
      if (item.t === "m") { left = xs[item.p] - 20; right = xs[item.p] + 160; }
      else {
        left = Math.min(xs[item.from], xs[item.to]) - 20;
        right = Math.max(xs[item.from], xs[item.to]) + 20;
      }
    } else if (anchor[3] >= 0) {
      left = xs[bars[anchor[3]].p] - 20;
      right = xs[bars[anchor[3]].p] + 20;
    }
    if (left !== null) {
      var viewLeft = diagramPane.scrollLeft, viewWidth = diagramPane.clientWidth;
      if (left < viewLeft || right > viewLeft + viewWidth) {
        diagramPane.scrollLeft = Math.max(0, Math.min(left, right - viewWidth));
      }
    }
    draw();
  }
  function select(index) {
    if (index < 0 || index >= count) { return; }
    var old = svg.querySelectorAll(".selected");
    for (var o = 0; o < old.length; o++) { old[o].classList.remove("selected"); }
    var previous = rowNode(selected);
    if (previous) { previous.classList.remove("selected"); }
    selected = index;
    revealRow(index);
    renderRows(false);
    var row = rowNode(index);
    if (row) {
      row.classList.add("selected");
      row.focus({preventScroll: true});
    }
    var anchor = anchors[index];
    band.setAttribute("y", anchor[0]);
    band.setAttribute("height", Math.max(anchor[1], 4));
    revealAnchor(anchor);
    var mine = svg.querySelectorAll('[data-seq="' + events[index].seq + '"]');
    for (var m = 0; m < mine.length; m++) { mine[m].classList.add("selected"); }
    var arrow = anchor[2] >= 0 ? drawn["i" + anchor[2]] : null;
    if (arrow) { arrow.classList.add("selected"); }
    showDetails(events[index]);
  }

  // -- the filter --------------------------------------------------------------------
  var haystack = null;
  function applyFilter() {
    needle = filter.value.toLowerCase();
    if (!needle) { matches = null; }
    else {
      if (!haystack) {
        haystack = rows.map(function (row) { return row.join(" ").toLowerCase(); });
      }
      matches = haystack.map(function (text) { return text.indexOf(needle) >= 0; });
    }
    renderRows(true);
    for (var key in drawn) {
      var number = +key.slice(1);
      var node = drawn[key], index = key.charAt(0) === "i" ? itemRow[number] : barRow[number];
      node.classList.toggle("dim", !!matches && !matches[index]);
    }
  }

  // -- wiring ---------------------------------------------------------------------------
  tbody.addEventListener("click", function (event) {
    var tr = event.target.closest("tr.event");
    if (tr) { select(+tr.getAttribute("data-index")); }
  });
  svg.addEventListener("click", function (event) {
    var node = event.target.closest("[data-seq]");
    if (node && bySeq[node.getAttribute("data-seq")] !== undefined) {
      select(bySeq[node.getAttribute("data-seq")]);
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.target && event.target.id === "filter") { return; }
    var step = event.key === "ArrowDown" || event.key === "j" ? 1 :
      (event.key === "ArrowUp" || event.key === "k" ? -1 : 0);
    if (step) { select(selected + step); event.preventDefault(); }
  });
  filter.addEventListener("input", applyFilter);
  var pendingFrame = false;
  function later(fn) {
    if (pendingFrame) { return; }
    pendingFrame = true;
    requestAnimationFrame(function () { pendingFrame = false; fn(); });
  }
  if (!data.full) {
    diagramPane.addEventListener("scroll", function () { later(draw); });
    tablePane.addEventListener("scroll", function () {
      later(function () { renderRows(false); });
    });
  }
  window.addEventListener("resize", function () { columns(); layout(); });

  columns();
  renderRows(true);
  layout();
  document.body.setAttribute("data-ready", "true");
  document.body.setAttribute("data-rendered-in", String(Math.round(performance.now())));
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
    head = "".join(f"<th>{name}</th>" for name in HEADER)
    cols = "".join(f'<col class="col-{name}">' for name in HEADER)
    script = (
        _SCRIPT.replace("__ROW__", str(ROW))
        .replace("__ARROW__", str(SLOT["arrow"]))
        .replace("__MARK__", str(SLOT["mark"]))
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
{GENERATOR}
<title>{html.escape(title)}</title>
<style>{_STYLE % {"row": ROW}}</style>
</head>
<body>
<header><h1 title="{html.escape(title)}">{html.escape(title)}</h1>
<span class="summary">{html.escape(summary)}</span>
<input id="filter" type="search" placeholder="filter rows" aria-label="filter rows"></header>
<div id="diagram-pane">
<svg id="participants" xmlns="http://www.w3.org/2000/svg" height="30" role="img"
aria-label="participants"></svg>
<svg id="diagram" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="sequence diagram">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9"
markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker></defs>
<rect id="band" x="0" y="-100" width="100%" height="0" />
<g id="lifelines"></g><g id="bars"></g><g id="drawn"></g>
</svg>
</div>
<aside id="details"><p>Click an event, an arrow or a bar to see its message: headers,
body and context data. Arrow keys move through the events.</p></aside>
<div id="timeline-pane">
<table id="timeline"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>
<tbody></tbody></table>
</div>
<script type="application/json" id="events-data">{_data(log, model)}</script>
<script>{script}</script>
</body>
</html>
"""
