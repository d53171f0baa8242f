"""Poison messages on the real broker: each message py-amqp cannot decode is answered,
rejected and logged once, and the replica that read it goes on consuming.

Without shimeji's frame reader each of these ends the thread reading the
connection (the kinds and why are in ``hostile.py``).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
import time
import uuid

import pytest

from shimeji.testing.transports import AmqpCluster

from .broker import Inbox, clean_broker
from .fuzzed import Fuzzed
from .hostile import RawPublisher, hostile_message

#: Kinds py-amqp raises on while it reads them, and whether a usable reply-to and
#: correlation id survive to answer them.
POISON = {
    "ct-invalid-utf8": True,
    "ce-invalid-utf8": True,
    "reply-to-invalid-utf8": False,
    "corr-invalid-utf8": False,
    "prop-shortstrs-invalid-utf8": False,
    "hdr-timestamp-year-10000": True,
    "hdr-timestamp-u64-max": True,
    "hdr-nested-tables": True,
    "hdr-nested-arrays": True,
    "rk-invalid-utf8": True,
}


@pytest.fixture
def poisoned(amqp_uri):
    with AmqpCluster(amqp_uri) as made:
        made.add_service(Fuzzed, replicas=2)
        inbox = Inbox(made.settings, made.exchange)
        try:
            yield made, inbox
        finally:
            inbox.close()


def wait_until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("kind", sorted(POISON))
def test_a_message_py_amqp_cannot_decode_is_answered_rejected_and_survived(kind, poisoned, caplog):
    """The message is answered with MalformedRequest when it says where to, rejected
    (the queue is empty, nothing unacked), logged once; both replicas consume on."""
    made, inbox = poisoned
    message = hostile_message(kind, random.Random(kind), "fuzzed", inbox.routing_key, made.exchange)
    with caplog.at_level(logging.WARNING), RawPublisher.from_uri(made.uri) as publisher:
        assert message.publish(publisher).accepted
        for n in range(6):  # round-robin: each replica reads valid calls after it
            assert made.rpc.fuzzed.echo(n) == n
    wait_until(lambda: made.runner.replica("fuzzed-1").transport._publisher.unconfirmed == 0)
    logged = [r for r in caplog.records if "bad request" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    assert "the message cannot be decoded" in logged[0].getMessage()
    assert "\n" not in logged[0].getMessage()
    if POISON[kind]:
        wait_until(lambda: inbox.received)
        (reply,) = inbox.received
        error = json.loads(reply.message.body)["error"]
        assert error["exc_type"] == "MalformedRequest"
        assert "the message cannot be decoded" in error["value"]
    for replica in made.runner.replicas():
        assert replica.status() == "consuming"
    ready, consumers = made.runner.replica("fuzzed-1").transport.inspect_queue("rpc-fuzzed")
    assert (ready, consumers) == (0, 2)


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="sets a policy with rabbitmqctl")
def test_a_poison_message_is_dead_lettered_where_a_policy_says_so(amqp_uri):
    """With a dead-letter exchange set for the service queue (by a policy, as
    RabbitMQ advises), a rejected poison message lands there, not in a loop."""
    name = f"poisoned_{uuid.uuid4().hex[:8]}"
    service = type("Poisoned", (Fuzzed,), {"name": name})
    with AmqpCluster(amqp_uri) as made:
        dead = Inbox(made.settings, f"{made.exchange}-dlx")
        policy = f"shimeji-dlx-{name}"
        subprocess.run(
            ["rabbitmqctl", "set_policy", policy, f"^rpc-{name}$",
             json.dumps({"dead-letter-exchange": dead.exchange,
                         "dead-letter-routing-key": dead.routing_key}),
             "--apply-to", "queues"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        try:
            made.add_service(service)
            message = hostile_message(
                "ct-invalid-utf8", random.Random(0), name, "nowhere", made.exchange
            )
            with RawPublisher.from_uri(made.uri) as publisher:
                wait_until(lambda: _policy_applied(f"rpc-{name}", policy), timeout=20)
                assert message.publish(publisher).accepted
            assert made.rpc[name].ping() == "pong"
            wait_until(lambda: dead.received)
            (corpse,) = dead.received
            assert corpse.message.body == message.body
            assert corpse.malformed == "content_type is not UTF-8"  # as it was sent
            assert corpse.message.headers["x-death"][0]["reason"] == "rejected"
        finally:
            subprocess.run(["rabbitmqctl", "clear_policy", policy], capture_output=True)
            dead.close()
            clean_broker(amqp_uri, exchange=dead.exchange)


def _policy_applied(queue: str, policy: str) -> bool:
    done = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "policy"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return f"{queue}\t{policy}" in done.stdout
