"""The canonical event log: what it holds, its jsonl form, and reading it back."""

from __future__ import annotations

import json

import pytest

from shimeji.core.transport import Message
from shimeji.views import FORMATS, EventLog, LogFormatError, MessageRecord, render
from tests.views.scenarios import EXAMPLES, example_log, timeout_cluster


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_view_renders_the_same_from_the_jsonl_log(name):
    """A log written as jsonl and read back renders every view byte for byte the same."""
    log = example_log(name)
    again = EventLog.from_jsonl(log.to_jsonl())
    assert again == log
    for format in FORMATS:
        assert render(again, format, title=name) == render(log, format, title=name)


def test_jsonl_is_one_object_per_event_with_the_message():
    """Each line is one event; message events carry headers and the decoded body."""
    log = example_log("user_score")
    lines = log.to_jsonl().splitlines()
    assert len(lines) == len(log)
    first_publish = next(json.loads(line) for line in lines if '"publish"' in line)
    assert first_publish["kind"] == "publish"
    message = first_publish["message"]
    assert message["routing_key"] == "user_service.calculate_user_score"
    assert message["body"] == {"args": ["u1", 10, 3], "kwargs": {}}
    assert message["headers"]["nameko.call_id_stack"] == ["standalone_rpc_proxy.call.1"]
    assert message["reply_to"] == "r1"


def test_views_are_byte_identical_for_the_same_seed():
    """Two runs with one seed give the same log and views, raw ids included."""
    first = EventLog.from_cluster(timeout_cluster(seed=3))
    second = EventLog.from_cluster(timeout_cluster(seed=3))
    for format in FORMATS:
        assert render(first, format) == render(second, format)


def test_context_data_comes_from_nameko_headers():
    """Context data and the call id stack are read from the nameko.-prefixed headers."""
    log = example_log("audit")
    publish = next(record for record in log if record.kind == "publish")
    assert publish.message is not None
    assert publish.message.context_data == {"user_id": "u-42", "correlation_id": "req-7"}
    assert publish.message.call_id_stack == ["standalone_rpc_proxy.call.1"]


def test_bodies_that_are_not_json_are_kept_as_text_or_base64():
    """A body is decoded as JSON, else kept as text, else as base64."""
    text = MessageRecord.from_message(Message(b"hello", "a.b", content_type="text/plain"))
    assert (text.body, text.body_encoding) == ("hello", "text")
    binary = MessageRecord.from_message(Message(b"\xff\x00", "a.b"))
    assert (binary.body, binary.body_encoding) == ("/wA=", "base64")
    broken = MessageRecord.from_message(Message(b"{not json", "a.b"))
    assert (broken.body, broken.body_encoding) == ("{not json", "text")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"seq": 0, "time": 0.0, "kind": "ack", "replica": "a"}\n{oops\n', "<jsonl>:2: not JSON"),
        ("[1, 2]\n", "<jsonl>:1: expected a JSON object, got list"),
        (
            '{"seq": 0, "kind": "ack"}\n',
            "<jsonl>:1: not a shimeji trace event (missing time, replica)",
        ),
        (
            '{"seq": 0, "time": 0, "kind": "a", "replica": "r", "message": {"body": 1}}\n',
            "<jsonl>:1: malformed message field",
        ),
    ],
)
def test_reading_a_bad_log_names_the_line(text, problem):
    """A line that is not a trace event is refused with its line number."""
    with pytest.raises(LogFormatError) as error:
        EventLog.from_jsonl(text)
    assert str(error.value).startswith(problem)


def test_unknown_format_is_refused():
    """render() names the formats it knows."""
    with pytest.raises(ValueError, match="unknown view format 'svg'; choose one of text"):
        render(EventLog([]), "svg")
