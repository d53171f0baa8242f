"""Hostile requests on the simulator: short, escaped log lines and small error replies."""

from __future__ import annotations

import json
import logging

import pytest

from shimeji.core.transport import Message
from shimeji.sim import SimCluster

from .services import CalculatorService


@pytest.fixture
def wired(caplog):
    """A cluster, and ``send(routing_key, body)`` publishing a raw request whose
    reply lands in ``replies``."""
    with SimCluster() as cluster:
        cluster.add_service(CalculatorService)
        bus, exchange = cluster.bus, cluster.settings.rpc_exchange
        replies: list = []
        bus.declare_queue("inbox", durable=False)
        bus.bind_queue("inbox", exchange, "inbox")
        bus.consume("inbox", replies.append, prefetch=0, label="inbox", auto_ack=True)

        def send(routing_key: str, body: bytes) -> dict:
            replies.clear()
            message = Message(body, routing_key, exchange, correlation_id="c1", reply_to="inbox")
            with caplog.at_level(logging.WARNING):
                bus.publish(message, mandatory=True)
                cluster.run_until_idle()
            (reply,) = replies
            return json.loads(reply.message.body)

        yield cluster, send


def bad_request_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "bad request" in r.getMessage()]


def test_a_method_name_with_a_newline_cannot_forge_a_log_line(wired, caplog):
    """The routing key and the method name are escaped in the one log line."""
    _, send = wired
    reply = send("calculator.add\nINFO shimeji: all is well", b'{"args": [], "kwargs": {}}')
    assert reply["error"]["exc_type"] == "MethodNotFound"
    (line,) = bad_request_lines(caplog)
    assert "\n" not in line
    assert "add\\nINFO shimeji: all is well" in line


def test_a_megabyte_argument_name_gives_a_short_error_and_log_line(wired, caplog):
    """An unexpected keyword argument a million characters long is named, cut short,
    in the error reply and in the log line."""
    _, send = wired
    body = json.dumps({"args": [1, 2], "kwargs": {"k" * 1_000_000: 1}}).encode()
    reply = send("calculator.add", body)
    assert reply["error"]["exc_type"] == "IncorrectSignature"
    assert len(json.dumps(reply)) < 2_000
    assert reply["error"]["value"].endswith("... (1000037 characters)")
    (line,) = bad_request_lines(caplog)
    assert len(line) < 1_000


def test_a_megabyte_header_value_of_the_wrong_type_gives_a_short_error(wired, caplog):
    """A call id stack that is not a list of strings is quoted short."""
    cluster, _ = wired
    replies: list = []
    cluster.bus.declare_queue("inbox2", durable=False)
    cluster.bus.bind_queue("inbox2", cluster.settings.rpc_exchange, "inbox2")
    cluster.bus.consume("inbox2", replies.append, prefetch=0, label="inbox2", auto_ack=True)
    message = Message(
        b'{"args": [1, 2], "kwargs": {}}',
        "calculator.add",
        cluster.settings.rpc_exchange,
        headers={"nameko.call_id_stack": "x" * 1_000_000},
        correlation_id="c2",
        reply_to="inbox2",
    )
    cluster.bus.publish(message, mandatory=True)
    cluster.run_until_idle()
    (reply,) = replies
    error = json.loads(reply.message.body)["error"]
    assert error["exc_type"] == "MalformedRequest"
    assert len(error["value"]) < 500
    assert len(reply.message.body) < 2_000
