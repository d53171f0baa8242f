"""The html view: one self-contained page, checked in a real headless Chromium."""

from __future__ import annotations

import re

import pytest

from shimeji.views import EventLog
from shimeji.views.html import HEAD, ROW, render_html
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
    assert page.count("</script>") == 2


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
    """No console error, no request but the file, one row per event, rows on the diagram's grid."""
    log = example_log("orders")
    page, path = open_page(browser, tmp_path, log)
    assert page.evaluate("document.body.dataset.ready") == "true"
    assert page.console_errors == []
    assert page.requested_urls == [path.as_uri()]
    assert page.evaluate("document.querySelectorAll('#timeline tbody tr').length") == len(log)
    offsets = page.evaluate(
        "[...document.querySelectorAll('#timeline tbody tr')].map(r => Math.round("
        "r.getBoundingClientRect().top - document.querySelector('#timeline')"
        ".getBoundingClientRect().top))"
    )
    assert offsets == [HEAD + index * ROW for index in range(len(log))]


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
