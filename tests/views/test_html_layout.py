"""The html view at ordinary screen sizes, in a real headless Chromium.

At 1366x768 and 1920x1080: the diagram, every column of the timeline and the
details panel are inside the window without scrolling the page sideways; no
label overlaps another label or an arrow; selecting a row keeps its arrow in
view; a trace of 10,000 events renders in well under three seconds and draws
only what is in view. Each check takes a screenshot (kept in
``$SHIMEJI_SCREENSHOTS`` when set) whose size and painted panes are checked
too, beside the element boxes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.faults import CrashDuring
from shimeji.views import EventLog
from shimeji.views.html import FULL, ROW, render_html
from shimeji.views.model import TraceModel
from tests.views.browser import Browser, png_pixels, png_size
from tests.views.scenarios import big_cluster, example_log, timeout_cluster
from tests.views.tools import require_chromium

SIZES = [(1366, 768), (1920, 1080)]

#: The boxes the checks below need, read in the page (client coordinates).
MEASURE = """
(function () {
  function box(node) {
    var r = node.getBoundingClientRect();
    return {l: r.left, t: r.top, r: r.right, b: r.bottom, w: r.width, h: r.height};
  }
  function all(selector) {
    return Array.prototype.map.call(document.querySelectorAll(selector), function (node) {
      var b = box(node);
      b.text = node.textContent;
      return b;
    });
  }
  var root = document.documentElement;
  var pane = document.getElementById("diagram-pane");
  return JSON.stringify({
    width: innerWidth, height: innerHeight,
    scrollWidth: root.scrollWidth, scrollHeight: root.scrollHeight,
    pageX: scrollX, pageY: scrollY,
    panes: {diagram: box(pane), timeline: box(document.getElementById("timeline-pane")),
            details: box(document.getElementById("details"))},
    diagramView: {l: box(pane).l, r: box(pane).l + pane.clientWidth,
                  t: document.getElementById("participants").getBoundingClientRect().bottom,
                  b: box(pane).t + pane.clientHeight},
    columns: all("#timeline thead th"),
    participants: all("#participants text"),
    labels: all("#diagram text"),
    arrows: all("#diagram g.message > path:not(.cross)"),
    truncated: Array.prototype.filter.call(
      document.querySelectorAll("#timeline tbody tr.event td:nth-child(-n+6)"),
      function (td) { return td.scrollWidth > td.clientWidth; }).map(function (td) {
        return td.textContent; })
  });
})()
"""


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    with Browser.launch() as launched:
        yield launched


def screenshots_dir(tmp_path: Path) -> Path:
    kept = os.environ.get("SHIMEJI_SCREENSHOTS")
    folder = Path(kept) if kept else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser, tmp_path, log, name, size):
    path = tmp_path / f"{name}.html"
    path.write_text(render_html(log, title=name))
    page = browser.open(path.as_uri())
    page.set_viewport(*size)
    page.evaluate("window.dispatchEvent(new Event('resize'))")
    assert page.evaluate("document.body.dataset.ready") == "true"
    return page


def inside(inner, outer, slack=0.5):
    return (
        inner["l"] >= outer["l"] - slack
        and inner["r"] <= outer["r"] + slack
        and inner["t"] >= outer["t"] - slack
        and inner["b"] <= outer["b"] + slack
    )


def overlap(one, two, margin=0.5):
    return (
        one["l"] < two["r"] - margin
        and two["l"] < one["r"] - margin
        and one["t"] < two["b"] - margin
        and two["t"] < one["b"] - margin
    )


def check_layout(page, tmp_path, name, size, names_in_full=True):
    """Every property the issue asks of the layout, on the page as it is now."""
    width, height = size
    shot = page.screenshot()
    (screenshots_dir(tmp_path) / f"{name}-{width}x{height}.png").write_bytes(shot)
    found = json.loads(page.evaluate(MEASURE))
    window = {"l": 0, "t": 0, "r": width, "b": height}
    # No scrolling of the page itself, in either direction.
    assert (found["width"], found["height"]) == size
    assert found["scrollWidth"] <= width and found["scrollHeight"] <= height
    assert found["pageX"] == 0 and found["pageY"] == 0
    # The three panes are inside the window, each big enough to use.
    for pane in found["panes"].values():
        assert inside(pane, window), (name, size, pane)
        assert pane["w"] >= 300 and pane["h"] >= 200, (name, size, pane)
    # Every column of the timeline is in its pane, wide enough to read.
    timeline = found["panes"]["timeline"]
    assert [column["text"] for column in found["columns"]] == [
        "time",
        "replica",
        "event",
        "target",
        "call",
        "corr",
        "detail",
    ]
    for column in found["columns"]:
        assert column["l"] >= timeline["l"] - 0.5 and column["r"] <= timeline["r"] + 0.5
        assert column["w"] >= 36, column
    if names_in_full:  # time, replica, event, target, call and corr are never cut
        assert found["truncated"] == []
    # No label overlaps another label (participants included) or an arrow, where
    # the diagram shows them (not under its header, which hides what scrolls by).
    view = found["diagramView"]
    shown = [label for label in found["labels"] if label["t"] >= view["t"] - 0.5]
    texts = found["participants"] + shown
    for index, one in enumerate(texts):
        for two in texts[index + 1 :]:
            assert not overlap(one, two), (name, size, one, two)
        for arrow in found["arrows"]:
            assert not overlap(one, {**arrow, "t": arrow["t"] - 1, "b": arrow["b"] + 1}), (
                name,
                size,
                one,
                arrow,
            )
    # Participants' names are whole, and far enough apart to read.
    for one, two in zip(found["participants"], found["participants"][1:], strict=False):
        assert two["l"] - one["r"] >= 8
    # The screenshot is the window, and each pane is painted in it.
    assert png_size(shot) == size
    shot_width, shot_height, pixels = png_pixels(page.screenshot(scale=0.25))
    assert abs(shot_width - width / 4) <= 1 and abs(shot_height - height / 4) <= 1
    channels = len(pixels[0]) // shot_width
    for pane in found["panes"].values():
        colours = {
            pixels[y][x * channels : x * channels + 3]
            for y in range(int(pane["t"] // 4) + 1, int(pane["b"] // 4) - 1)
            for x in range(int(pane["l"] // 4) + 1, int(pane["r"] // 4) - 1)
        }
        assert len(colours) > 3, (name, size, pane)  # text and lines, not a blank box
    return found


def crash_log() -> EventLog:
    from examples.user_score import scenario

    with SimCluster(seed=0, faults=[CrashDuring(service="calculator", method="multiply")]) as c:
        scenario(c)
    return EventLog.from_cluster(c, canonical_ids=True)


class Relay:
    """A service of a long name that calls the next one, to fill a wide diagram."""

    name = "a_service_with_a_rather_long_name"
    next_rpc = RpcProxy("another_service_with_a_long_name")

    @rpc
    def relay(self, depth):
        return self.next_rpc.answer(depth)


class Answerer:
    name = "another_service_with_a_long_name"

    @rpc
    def answer(self, depth):
        return {"depth": depth, "words": ["a long reply to make a long label"] * 3}


def wide_log() -> EventLog:
    """Thirteen participants with long names: wider than any pane."""
    with SimCluster() as cluster:
        cluster.add_service(Relay, replicas=6)
        cluster.add_service(Answerer, replicas=6)
        for depth in range(12):
            cluster.rpc.a_service_with_a_rather_long_name.relay(depth)
    return EventLog.from_cluster(cluster, canonical_ids=True)


LOGS = {
    "orders": lambda: example_log("orders"),
    "calculator": lambda: example_log("calculator"),
    "timeouts": lambda: EventLog.from_cluster(timeout_cluster(), canonical_ids=True),
    "crash": crash_log,
    "wide": wide_log,
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", sorted(LOGS))
def test_everything_fits_and_no_label_overlaps(browser, tmp_path, name, size):
    """Panes, columns and labels at both sizes, for calls, failures and a wide graph."""
    log = LOGS[name]()
    page = open_page(browser, tmp_path, log, name, size)
    found = check_layout(page, tmp_path, name, size)
    assert page.console_errors == []
    # Names are whole: every participant, and every method in its arrow's label.
    assert [p["text"] for p in found["participants"]] == [
        label for label, _ in TraceModel(log).participants
    ]
    methods = {
        r.method
        for r in log
        if r.kind == "deliver" and r.method and r.message and r.message.reply_to
    }
    labels = " ".join(label["text"] for label in found["labels"])
    for method in methods:
        assert f"{method}(" in labels


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_selecting_a_row_keeps_its_arrow_in_view(browser, tmp_path, size):
    """Click rows far apart in a long trace, and move with the arrow keys: the row
    stays in its pane, its arrow (or bar, or mark) in the diagram's, the page
    never moves."""
    log = EventLog.from_cluster(big_cluster(events=1500), canonical_ids=True)
    assert len(log) <= FULL
    page = open_page(browser, tmp_path, log, "long", size)
    targets = [i for i, r in enumerate(log) if r.kind in ("deliver", "publish", "ack")]
    for index in (targets[5], targets[len(targets) // 2], targets[-3], targets[10]):
        page.evaluate(
            "(function(){var pane=document.getElementById('timeline-pane');"
            f"pane.scrollTop={index * ROW}-100;"
            f"document.querySelector('#timeline tr[data-index=\"{index}\"]').click();}})()"
        )
        assert_in_view(page, index)
    for _ in range(3):
        page.evaluate("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowDown'}))")
    assert_in_view(page, targets[10] + 3)
    check_layout(page, tmp_path, "long-selected", size)
    # An arrow clicked in the diagram selects its row, scrolled into its pane.
    page.evaluate(
        "document.querySelector('#diagram g.message.reply').dispatchEvent("
        "new MouseEvent('click', {bubbles: true}))"
    )
    row = json.loads(
        page.evaluate(
            "JSON.stringify((function(){var r=document.querySelector('#timeline tr.selected')"
            ".getBoundingClientRect(), p=document.getElementById('timeline-pane')"
            ".getBoundingClientRect(); return [r.top, r.bottom, p.top, p.bottom];})())"
        )
    )
    assert row[0] >= row[2] and row[1] <= row[3]
    assert page.console_errors == []


def assert_in_view(page, index):
    found = json.loads(
        page.evaluate(f"""
    JSON.stringify((function () {{
      function box(node) {{ var r = node.getBoundingClientRect();
        return {{l: r.left, t: r.top, r: r.right, b: r.bottom}}; }}
      var pane = document.getElementById("diagram-pane");
      var head = document.getElementById("participants").getBoundingClientRect().height;
      var view = box(pane);
      view.t += head; view.r = view.l + pane.clientWidth;
      view.b = view.t + pane.clientHeight - head;
      var row = document.querySelector('#timeline tr[data-index="{index}"]');
      var tablePane = document.getElementById("timeline-pane");
      var table = box(tablePane);
      table.t += document.querySelector("#timeline thead").getBoundingClientRect().height;
      var marks = Array.prototype.map.call(
        document.querySelectorAll("#diagram g.selected, #diagram #band"), box);
      var bars = Array.prototype.map.call(document.querySelectorAll("#diagram rect.selected"), box);
      return {{row: row && row.classList.contains("selected") ? box(row) : null,
        table: table, view: view, marks: marks, bars: bars, pageX: scrollX, pageY: scrollY,
        band: +document.getElementById("band").getAttribute("y")}};
    }})())
    """)
    )
    assert found["row"] is not None, index
    assert inside(found["row"], found["table"], slack=1), found
    assert found["pageX"] == 0 and found["pageY"] == 0
    assert found["marks"], index
    view = found["view"]
    for mark in found["marks"]:  # the band, and the arrow or mark: whole, in view
        assert inside(mark, {**view, "l": mark["l"], "r": mark["r"]}, slack=1), (index, found)
        assert mark["r"] > view["l"] and mark["l"] < view["r"], (index, found)
    for bar in found["bars"]:  # a worker's bar: in view where it starts or ends
        assert bar["b"] > view["t"] and bar["t"] < view["b"], (index, found)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_ten_thousand_events_render_fast_and_only_what_is_in_view(browser, tmp_path, size):
    """10,000 events: ready well under 3 s, a few dozen rows and arrows in the page,
    more drawn as the panes scroll, the last event selectable."""
    log = EventLog.from_cluster(big_cluster(events=10_000), canonical_ids=True)
    assert len(log) >= 10_000
    page = open_page(browser, tmp_path, log, "big", size)
    rendered_in = int(page.evaluate("document.body.dataset.renderedIn"))
    assert rendered_in < 2000, rendered_in
    rows = page.evaluate("document.querySelectorAll('#timeline tbody tr.event').length")
    drawn = page.evaluate("document.querySelectorAll('#diagram [data-seq]').length")
    assert 10 < rows < 300 and 10 < drawn < 600, (rows, drawn)
    check_layout(page, tmp_path, "big", size)
    # Scrolled to the end, the end is drawn; selecting it shows its details.
    page.evaluate(
        "(function(){var t=document.getElementById('timeline-pane');t.scrollTop=t.scrollHeight;"
        "t.dispatchEvent(new Event('scroll'));})()"
    )
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    last = len(log) - 1
    assert page.evaluate(f"!!document.querySelector('#timeline tr[data-index=\"{last}\"]')")
    target = max(i for i, r in enumerate(log) if r.kind == "deliver")
    page.evaluate(
        f"(function(){{var t=document.getElementById('timeline-pane');t.scrollTop={target * ROW};"
        "t.dispatchEvent(new Event('scroll'));})()"
    )
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.evaluate(f"document.querySelector('#timeline tr[data-index=\"{target}\"]').click()")
    assert_in_view(page, target)
    assert f"#{log[target].seq} deliver" in page.evaluate(
        "document.querySelector('#details h2').textContent"
    )
    assert page.console_errors == []
