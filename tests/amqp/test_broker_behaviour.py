"""What the kombu transport does on a real broker, beyond the conformance suite:
bad input at a consumer, the wire format, dropped replies, lost queues,
reconnection, redaction."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time

import pytest

from shimeji.amqp_adapter import AmqpTransport, LoggingTracer
from shimeji.core.transport import BrokerUnavailable, Delivery, Message
from shimeji.rpc import rpc
from shimeji.testing.transports import AmqpCluster
from tests.conformance.services import Calculator, Slow

from .broker import Inbox


@pytest.fixture
def amqp_cluster(amqp_uri):
    with AmqpCluster(amqp_uri) as made:
        yield made


@pytest.fixture
def inbox(amqp_cluster):
    made = Inbox(amqp_cluster.settings, amqp_cluster.exchange)
    yield made
    made.close()


GOOD = b'{"args": [1, 2], "kwargs": {}}'


@pytest.mark.parametrize(
    ("body", "properties", "expected"),
    [
        (b"not json{", {}, "request body cannot be decoded as json"),
        (b'{"args": [1, 2]}', {}, "request body lacks 'kwargs'"),
        (b'{"kwargs": {}}', {}, "request body lacks 'args'"),
        (b'["a", "list"]', {}, "request body must be a mapping"),
        (b'{"args": 5, "kwargs": {}}', {}, "request 'args' must be a list"),
        (GOOD, {"content_type": "application/x-python-serialize"}, "is not accepted"),
        (GOOD, {"content_type": "text/plain"}, "is not accepted"),
        (GOOD, {"headers": {"nameko.call_id_stack": "not-a-list"}}, "must be a list of call id"),
        (GOOD, {"headers": {"nameko.call_id_stack": [1, 2]}}, "must be a list of call id"),
    ],
)
def test_bad_requests_get_an_error_reply_and_leave_the_service_alive(
    amqp_cluster, inbox, caplog, body, properties, expected
):
    """A request that cannot be served is answered with MalformedRequest, acked,
    logged once, and the service goes on serving."""
    amqp_cluster.add_service(Calculator)
    with caplog.at_level(logging.WARNING, logger="shimeji.rpc"):
        correlation_id = inbox.send("calculator.add", body, **properties)
        reply = inbox.reply_to(correlation_id)
    assert reply["result"] is None
    assert reply["error"]["exc_type"] == "MalformedRequest"
    assert expected in reply["error"]["value"]
    warnings = [r for r in caplog.records if correlation_id in r.getMessage()]
    assert len(warnings) == 1
    assert amqp_cluster.rpc.calculator.add(1, 2) == 3
    # Acked, not left unacked: after the replica stops nothing goes back to the queue.
    amqp_cluster.runner.stop()
    probe = AmqpTransport(amqp_cluster.settings, name="probe")
    try:
        count = probe.inspect_queue("rpc-calculator")[0]
    finally:
        probe.close()
    assert count == 0


def test_a_bad_request_without_reply_to_is_acked_and_logged(amqp_cluster, inbox, caplog):
    """With nowhere to answer, a bad request is logged once and acked."""
    amqp_cluster.add_service(Calculator)
    with caplog.at_level(logging.WARNING, logger="shimeji.rpc"):
        inbox.transport.publish(
            Message(
                body=b"garbage",
                routing_key="calculator.add",
                exchange=amqp_cluster.exchange,
                correlation_id="no-reply-to",
            ),
            mandatory=True,
        )
        deadline = time.monotonic() + 5
        while not any("no-reply-to" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert sum("no-reply-to" in r.getMessage() for r in caplog.records) == 1
    assert amqp_cluster.rpc.calculator.add(2, 2) == 4


def test_requests_on_the_wire_are_nameko_shaped(amqp_cluster, inbox):
    """A request is persistent JSON with reply_to, a correlation id and nameko.
    context headers, routed <service>.<method> on the exchange."""
    seen: list[Delivery] = []
    transport = inbox.transport
    transport.declare_queue("rpc-spy", durable=True)
    transport.bind_queue("rpc-spy", amqp_cluster.exchange, "spy.*")
    consumer = transport.consume("rpc-spy", seen.append, prefetch=1, label="spy")
    try:
        client = amqp_cluster.rpc_proxy(context_data={"user_id": "u1"}, timeout=0.5)
        reply = client.spy.method.call_async(1, b=2)
        deadline = time.monotonic() + 5
        while not seen:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        message = seen[0].message
        assert message.routing_key == "spy.method"
        assert message.exchange == amqp_cluster.exchange
        assert message.delivery_mode == 2
        assert message.content_type == "application/json"
        assert json.loads(message.body) == {"args": [1], "kwargs": {"b": 2}}
        assert message.correlation_id == reply.correlation_id
        assert message.reply_to
        assert message.headers["nameko.user_id"] == "u1"
        stack = message.headers["nameko.call_id_stack"]
        assert len(stack) == 1 and stack[0].startswith("standalone_rpc_proxy.call.")
        seen[0].ack()
    finally:
        consumer.close()
        transport.delete_queue("rpc-spy")


def test_replies_for_unknown_correlation_ids_are_dropped_with_a_debug_log(
    amqp_cluster, inbox, caplog
):
    """A reply no call waits for is dropped, logged at DEBUG, and harms nothing."""
    amqp_cluster.add_service(Calculator)
    client = amqp_cluster.rpc_proxy()
    assert client.calculator.add(1, 1) == 2
    reply_to = client._client.reply_to
    with caplog.at_level(logging.DEBUG, logger="shimeji.rpc"):
        inbox.transport.publish(
            Message(
                body=b'{"result": 1, "error": null}',
                routing_key=reply_to,
                exchange=amqp_cluster.exchange,
                correlation_id="nobody-waits",
            ),
            mandatory=True,
        )
        deadline = time.monotonic() + 5
        while not any("nobody-waits" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    record = next(r for r in caplog.records if "nobody-waits" in r.getMessage())
    assert record.levelno == logging.DEBUG
    assert "no call waits for this correlation id" in record.getMessage()
    assert client.calculator.add(2, 3) == 5


def test_a_call_survives_the_loss_of_its_reply_queue(amqp_cluster, inbox):
    """A caller whose reply queue vanishes (deleted, or dropped by a broker restart)
    still gets its reply: the queue is declared again and the waiting call is
    published again (it runs at least once, as every request does)."""
    amqp_cluster.add_service(Slow)
    client = amqp_cluster.rpc_proxy(timeout=30)
    reply = client.slow.sleep.call_async(1.0, "answered")
    queue = client._client.reply_queue
    inbox.transport.delete_queue(queue)
    assert reply.result()[0] == "answered"
    resent = [e for e in amqp_cluster.trace.events if e.kind == "resend"]
    assert [e.correlation_id for e in resent] == [reply.correlation_id]
    assert "its reply queue was lost" in resent[0].detail
    assert client.slow.sleep(0.0, "later")[0] == "later"


class Secretive:
    name = "secretive"

    @rpc(sensitive_arguments=("password", "card.number"))
    def login(self, user, password, card):
        return user


def test_sensitive_arguments_never_reach_the_logs(amqp_uri, caplog):
    """With every logger at DEBUG and the logging tracer on, neither a sensitive
    argument nor the broker password appears in the logs."""
    with caplog.at_level(logging.DEBUG), AmqpCluster(amqp_uri) as made:
        made.runner.tracer = LoggingTracer()
        made.add_service(Secretive)
        assert made.rpc.secretive.login("ann", "hunter2-pw", {"number": "4111-1111"}) == "ann"
    assert caplog.records
    assert "hunter2-pw" not in caplog.text and "4111-1111" not in caplog.text
    password = amqp_uri.split("://", 1)[1].split("@")[0].partition(":")[2]
    if len(password) > 5:
        assert password not in caplog.text


requires_rabbitmqctl = pytest.mark.skipif(
    shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl on this machine"
)


def close_all_connections() -> None:
    done = subprocess.run(
        ["rabbitmqctl", "close_all_connections", "shimeji test: connection loss"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot close connections here: {done.stderr.strip()}")


@requires_rabbitmqctl
def test_services_and_clients_reconnect_and_calls_in_flight_complete(amqp_cluster):
    """When the broker drops every connection, services and clients reconnect; a
    call in flight still gets its reply, and later calls work."""
    amqp_cluster.add_service(Slow)
    amqp_cluster.add_service(Calculator)
    client = amqp_cluster.rpc_proxy(timeout=20)
    assert client.calculator.add(1, 1) == 2
    reply = client.slow.sleep.call_async(0.5, "in flight")
    time.sleep(0.2)
    close_all_connections()
    assert reply.result()[0] == "in flight"
    assert client.calculator.add(20, 22) == 42
    assert amqp_cluster.rpc.calculator.add(1, 2) == 3


def test_context_data_the_broker_cannot_carry_is_refused(amqp_cluster):
    """A context value AMQP headers cannot hold raises UnserializableValueError before
    anything is sent (the simulator carries headers without encoding them)."""
    from shimeji.exceptions import UnserializableValueError

    amqp_cluster.add_service(Calculator)
    client = amqp_cluster.rpc_proxy(context_data={"roles": {"admin", "ops"}})
    with pytest.raises(UnserializableValueError, match="context data"):
        client.calculator.add(1, 2)
    assert amqp_cluster.rpc.calculator.add(1, 2) == 3


def test_heartbeats_keep_idle_connections_open(amqp_uri, caplog):
    """With a 1 s heartbeat, idle consumer and publisher connections stay open: the
    broker would close them after two missed beats."""
    with (
        caplog.at_level(logging.INFO, logger="shimeji.amqp"),
        AmqpCluster(amqp_uri, {"HEARTBEAT": 1}) as made,
    ):
        made.add_service(Calculator)
        assert made.rpc.calculator.add(1, 2) == 3
        time.sleep(5)
        assert made.rpc.calculator.add(2, 2) == 4
        # A connection the broker had closed would show as a failed publish
        # attempt (a retry) or a reconnection.
        retries = [e for e in made.trace.events if e.kind in ("retry", "publish_failed")]
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert lost == []
    assert retries == []


def test_a_request_the_broker_refuses_fails_its_call(amqp_cluster, inbox):
    """A request the broker nacks after routing it (a full queue that rejects
    publishes) fails its call with BrokerUnavailable, promptly, not by timing out."""

    def declare_full_queue(channel):
        channel.queue_declare(
            "rpc-full",
            durable=True,
            auto_delete=False,
            arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
        )
        channel.queue_bind("rpc-full", amqp_cluster.exchange, "full.*")

    inbox.transport._publisher.probe("declaring a full queue", declare_full_queue)
    try:
        client = amqp_cluster.rpc_proxy(timeout=30)
        first = client.full.method.call_async(1)
        second = client.full.method.call_async(2)
        began = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="nacked"):
            second.result()
        assert time.monotonic() - began < 5
        assert repr(first).endswith("pending>")
    finally:
        inbox.transport.delete_queue("rpc-full")
