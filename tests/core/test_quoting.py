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
