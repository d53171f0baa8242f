"""The html view: one self-contained page, checked in a real headless Chromium."""

from __future__ import annotations

import itertools
import re

import pytest

from shimeji.views import EventLog
from shimeji.views.html import FULL, ROW, layout_diagram, render_html
from shimeji.views.model import TraceModel
from tests.views.browser import Browser
from tests.views.scenarios import example_log, secret_cluster, timeout_cluster
from tests.views.tools import require_chromium


def test_the_page_references_nothing_outside_itself():
    """No src, no link, no url() but the page's own SVG marker; a CSP forbids fetching."""
    page = render_html(example_log("orders"))
    assert re.findall(r"\b(?:src|href)\s*=", page) == []
    assert re.findall(r"url\((?!#arrow\))", page) == []
    assert "<link" not in page and "@import" not in page
    assert "default-src 'none'" in page


def test_event_data_cannot_close_its_script_element():
    """A body holding </script> is escaped inside the page's JSON data."""
    from shimeji.views.log import EventRecord, MessageRecord

    record = EventRecord(
        0,
        0.0,
        "publish",
        "client",
        "a",
        "b",
        None,
        "c1",
        "",
        MessageRecord("a.b", body={"args": ["</script><script>x()"]}),
    )
    page = render_html(EventLog([record]))
    assert page.count("</script>") == 2  # the data's and the script's own
    assert page.count("<script") == 2


def test_every_arrow_and_mark_has_a_slot_of_its_own():
    """The diagram's layout: arrows and marks one under the other, in the log's order,
    never sharing a slot; each worker's bar from its start to its end."""
    log = example_log("orders")
    diagram = layout_diagram(log, TraceModel(log))
    tops = [item["y"] for item in diagram.items]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    assert all(b - a >= 24 for a, b in itertools.pairwise(tops))
    assert [item["name"] for item in diagram.items if item["css"] == "request"] == [
        "process_order_parallel",
        "process_payment",
        "reserve_items",
        "send_confirmation",
    ]
    assert len(diagram.bars) == 4 and all(bar["y1"] > bar["y0"] for bar in diagram.bars)
    # A publish row points at the arrow that delivers its request.
    publish = next(i for i, r in enumerate(log) if r.kind == "publish")
    assert diagram.anchors[publish][2] == 0


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    with Browser.launch() as launched:
        yield launched


def open_page(browser, tmp_path, log, name="trace.html"):
    path = tmp_path / name
    path.write_text(render_html(log, title=name))
    return browser.open(path.as_uri()), path


def test_the_page_loads_cleanly_with_a_row_per_event(browser, tmp_path):
    """No console error, no request but the file, one row per event (a short trace
    is drawn whole), every row as high as the next."""
    log = example_log("orders")
    assert len(log) <= FULL
    page, path = open_page(browser, tmp_path, log)
    assert page.evaluate("document.body.dataset.ready") == "true"
    assert page.console_errors == []
    assert page.requested_urls == [path.as_uri()]
    assert page.evaluate("document.querySelectorAll('#timeline tbody tr.event').length") == len(log)
    offsets = page.evaluate(
        "[...document.querySelectorAll('#timeline tbody tr')].map(r => Math.round("
        "r.getBoundingClientRect().top - document.querySelector('#timeline tbody')"
        ".getBoundingClientRect().top))"
    )
    assert offsets == [index * ROW for index in range(len(log))]
    texts = page.evaluate(
        "[...document.querySelectorAll('#timeline tbody tr')].map(r => r.textContent)"
    )
    assert "order_service.process_order_parallel" in texts[7]


def test_clicking_an_event_shows_its_headers_body_and_context_data(browser, tmp_path):
    """The details panel shows the message of the clicked row, context data included."""
    log = example_log("audit")
    page, _ = open_page(browser, tmp_path, log)
    index = next(i for i, r in enumerate(log) if r.kind == "deliver")
    page.evaluate(f"document.querySelectorAll('#timeline tbody tr')[{index}].click()")
    details = page.evaluate("document.getElementById('details').textContent")
    assert "context data" in details and '"user_id": "u-42"' in details
    assert "headers" in details and '"nameko.correlation_id": "req-7"' in details
    assert "body" in details and '"login"' in details
    assert page.evaluate("document.querySelector('tr.selected').dataset.seq") == str(log[index].seq)
    # An arrow of the diagram selects its delivery too.
    page.evaluate(
        "document.querySelector('#diagram g.message.reply').dispatchEvent("
        "new MouseEvent('click', {bubbles: true}))"
    )
    selected = page.evaluate("document.querySelector('tr.selected').textContent")
    assert "reply from audit_service-1" in selected
    assert page.console_errors == []


def test_failure_paths_and_redaction_render_cleanly(browser, tmp_path):
    """Timeouts, lost replies and redacted arguments render with no error or secret."""
    for name, cluster in (("timeout.html", timeout_cluster()), ("secret.html", secret_cluster())):
        log = EventLog.from_cluster(cluster, canonical_ids=True)
        page, _ = open_page(browser, tmp_path, log, name)
        assert page.console_errors == []
        assert page.evaluate("document.querySelectorAll('#timeline tbody tr').length") == len(log)
        text = page.evaluate("document.documentElement.outerHTML")
        assert "hunter2" not in text and "s3cret" not in text
    assert page.evaluate("document.querySelectorAll('#diagram .message').length") > 0


def test_the_browser_check_sees_console_errors(browser, tmp_path):
    """A page that throws or logs an error is reported, so the checks above can fail."""
    path = tmp_path / "broken.html"
    path.write_text("<script>console.error('visible'); undefinedFunction();</script>")
    page = browser.open(path.as_uri())
    errors = " ".join(page.console_errors)
    assert "visible" in errors and "undefinedFunction" in errors


def test_find_and_filter_see_every_row(browser, tmp_path):
    """A short trace is drawn whole, so the browser's find sees every row; the filter
    box dims the rows and arrows that do not match."""
    log = example_log("orders")
    page, _ = open_page(browser, tmp_path, log)
    assert page.evaluate("window.find('shipping_service-1')")  # a replica_stop near the end
    page.evaluate(
        "(function(){var f=document.getElementById('filter');f.value='payment';"
        "f.dispatchEvent(new Event('input'));})()"
    )
    dim = page.evaluate("document.querySelectorAll('#timeline tbody tr.dim').length")
    lit = page.evaluate("document.querySelectorAll('#timeline tbody tr.event:not(.dim)').length")
    assert lit == sum(1 for line in render_text_rows(log) if "payment" in line.lower())
    assert dim == len(log) - lit
    assert page.evaluate("document.querySelectorAll('#diagram g.message.dim').length") > 0
    assert page.console_errors == []


def render_text_rows(log):
    from shimeji.views.html import DETAIL_LIMIT
    from shimeji.views.text import timeline_row

    model = TraceModel(log)
    return [" ".join(timeline_row(record, model, limit=DETAIL_LIMIT, arrow="→")) for record in log]
