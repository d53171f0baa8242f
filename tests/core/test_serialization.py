"""The JSON codec: what crosses the wire, and precise errors for what cannot."""

from __future__ import annotations

import datetime

import pytest

from shimeji.core.serialization import codec_by_name
from shimeji.exceptions import UnserializableValueError

JSON = codec_by_name("json")


def roundtrip(value):
    return JSON.loads(JSON.dumps(value, "value"))


def test_json_types_round_trip():
    """JSON types come back equal; tuples as lists; keys as strings."""
    assert roundtrip({"a": [1, 2.5, None, True, "é"]}) == {"a": [1, 2.5, None, True, "é"]}
    assert roundtrip((1, (2,))) == [1, [2]]
    assert roundtrip({1: "x"}) == {"1": "x"}


@pytest.mark.parametrize(
    ("value", "where", "reason"),
    [
        ({"when": datetime.date(2024, 1, 1)}, "value['when']", "date is not a JSON type"),
        ([1, {2, 3}], "value[1]", "set is not a JSON type"),
        ([float("inf")], "value[0]", "NaN and infinity are not valid JSON"),
        ({(1, 2): "x"}, "value key (1, 2)", "JSON object keys must be strings"),
        (b"bytes", "value", "bytes is not a JSON type"),
    ],
)
def test_unserializable_values_say_where(value, where, reason):
    """Each refusal names the path to the bad value and why."""
    with pytest.raises(UnserializableValueError) as caught:
        JSON.dumps(value, "value")
    assert caught.value.where == where
    assert reason in str(caught.value)


def test_cycles_are_refused():
    """A value containing itself is refused, not a RecursionError."""
    loop: list = []
    loop.append(loop)
    with pytest.raises(UnserializableValueError, match="contains itself"):
        JSON.dumps(loop, "value")


def test_broken_repr_does_not_hide_the_error():
    """A value whose repr fails still gets a clear error."""

    class Ugly:
        def __repr__(self):
            raise RuntimeError("no repr")

    with pytest.raises(UnserializableValueError, match="Ugly with failing repr"):
        JSON.dumps([Ugly()], "value")


def test_json_bodies_in_other_unicode_encodings_are_read():
    """Bodies in UTF-8 (with or without a byte order mark), UTF-16 or UTF-32 decode."""
    text = '{"a": "é"}'
    for body in (
        text.encode(),
        b"\xef\xbb\xbf" + text.encode(),
        text.encode("utf-16"),
        text.encode("utf-32"),
    ):
        assert JSON.loads(body) == {"a": "é"}
