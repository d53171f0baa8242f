"""Values from the wire, quoted in logs and errors: short, one line, inert."""

from __future__ import annotations

import pytest

from shimeji.core.quoting import MAX_QUOTED, escape, quote, shorten


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("add\nINFO forged line", "'add\\nINFO forged line'"),
        ("bidi\u202eevil", "'bidi\\u202eevil'"),
        ("esc\x1b[31mred", "'esc\\x1b[31mred'"),
        ("nul\x00", "'nul\\x00'"),
        ("line\u2028sep", "'line\\u2028sep'"),
        ("\udcff lone", "'\\udcff lone'"),
        ("plain", "'plain'"),
    ],
)
def test_invisible_and_line_breaking_characters_are_escaped(text, shown):
    """Line breaks, controls, bidi overrides, separators and lone surrogates appear as
    escapes, never as themselves."""
    assert quote(text) == shown
    assert escape(text) == shown[1:-1]


def test_long_values_are_cut_saying_how_long_they_were():
    """A 1 MB value gives a short quotation that says its length."""
    quoted = quote("x" * 1_000_000)
    assert len(quoted) < MAX_QUOTED + 40
    assert quoted.endswith("...' (1000000 characters)")
    assert escape("y" * 1_000_000).endswith("... (1000000 characters)")
    assert shorten("z" * 300, 10) == "zzzzzzzzzz... (300 characters)"


def test_any_value_quotes_safely():
    """Deep nesting, huge containers, failing or multi-line reprs, huge ints."""
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert quote(deep) == "[[[[...]]]]"
    assert len(quote(list(range(1_000_000)))) < MAX_QUOTED + 40

    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    class Forger:
        def __repr__(self):
            return "ok\nERROR forged"

    assert quote(Broken()) == "<Broken with failing repr>"
    assert quote(Forger()) == "ok\\nERROR forged"
    assert quote(10**10_000) == "<int with failing repr>"
    assert quote({"k": b"\xff" * 10_000}).startswith("{'k': b'\\xff")


def _raise_chained(message: str) -> BaseException:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError(message) from inner
    except ValueError as exc:
        return exc


def test_quoted_traceback_escapes_each_message_and_keeps_frames_and_chain():
    """A message that would forge a log line or clear a terminal is escaped and
    cut; frames and the chain of causes are written as Python writes them."""
    from shimeji.core.quoting import quoted_traceback

    exc = _raise_chained("bad\r\n2026-01-01 ERROR forged\x1b[2J" + "z" * 2000)
    text = quoted_traceback(exc)
    lines = text.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "KeyError: 'inner'" in lines
    assert "The above exception was the direct cause of the following exception:" in lines
    assert lines[-1].startswith("ValueError: bad\\r\\n2026-01-01 ERROR forged\\x1b[2Jzzz")
    assert lines[-1].endswith("... (2032 characters)")
    assert not any(line.startswith("2026-01-01") for line in lines)
    assert all(line.isprintable() and len(line) < 600 for line in lines)
    assert sum("in _raise_chained" in line for line in lines) == 2


def test_quoted_traceback_of_an_exception_without_a_message_or_traceback():
    from shimeji.core.quoting import quoted_traceback

    assert quoted_traceback(RuntimeError()) == "RuntimeError"
    assert quoted_traceback(OSError("x\ny")) == "OSError: x\\ny"


def test_log_error_prints_the_escaped_traceback_and_keeps_the_exception():
    """A formatting handler prints the escaped traceback; the record still
    carries the exception itself (for an error tracker)."""
    import io
    import logging

    from shimeji.core.quoting import log_error

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(funcName)s: %(message)s"))
    logger = logging.getLogger("shimeji.test_log_error")
    logger.addHandler(handler)
    records: list[logging.LogRecord] = []
    handler.addFilter(lambda record: records.append(record) or True)
    try:
        exc = _raise_chained("x\n2026-01-01 ERROR forged")
        log_error(logger, exc, "%s failed", "calc")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert (
        lines[0]
        == "ERROR test_log_error_prints_the_escaped_traceback_and_keeps_the_exception: calc failed"
    )
    assert lines[-1] == "ValueError: x\\n2026-01-01 ERROR forged"
    assert records[0].exc_info is not None and records[0].exc_info[1] is exc
