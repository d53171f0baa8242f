"""The text view: an aligned timeline."""

from __future__ import annotations

from shimeji.views.text import render_text, short_id
from tests.views.scenarios import example_log


def test_columns_are_aligned():
    """Every line starts each column at the same offset as the header."""
    lines = render_text(example_log("orders")).splitlines()
    header = lines[0]
    starts = [header.index(name) for name in ("replica", "event", "target", "call", "corr")]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2 : start] == "  ", line
            assert line[start] != " ", line
    assert header.split() == ["time", "replica", "event", "target", "call", "corr", "detail"]


def test_details_show_arguments_senders_and_results():
    """Publishes show their arguments, deliveries their sender, replies their result."""
    text = render_text(example_log("calculator"))
    publish = "publish        calculator.divide    standalone_rpc_proxy.call.4  c4    divide(1, 0)"
    assert publish in text
    assert "from client" in text
    assert "reply from calculator-1: ValueError: Division by zero" in text
    assert (
        "worker_end     calculator.divide    calculator.divide.2          c4    "
        "ValueError: Division by zero" in text
    )


def test_short_ids_abbreviate_uuids_only():
    """Raw ids are cut to 8 hex digits; canonical ones are short already."""
    assert short_id("calc.add.1a2b3c4d-0000-4000-8000-000000000000") == "calc.add.1a2b3c4d"
    assert short_id("c12") == "c12"
    assert short_id(None) == "-"
