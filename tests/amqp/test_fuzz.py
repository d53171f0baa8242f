"""Hostile messages, on the real broker: nothing a publisher can send stops a service.

A ``shimeji run`` process with two replicas takes ``SHIMEJI_FUZZ_MESSAGES``
(10,000 by default) hostile messages from ``hostile.py`` (garbage and huge
bodies, every content type, headers of the wrong types, odd or missing
reply-to and correlation ids, invalid UTF-8 and unicode junk in routing keys
and properties, header timestamps past year 9999, headers nested thousands
deep, raw frames the broker itself refuses), interleaved with valid calls.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
import uuid

import pytest

from shimeji.config import Settings
from shimeji.standalone import ClusterRpcProxy

from .broker import Inbox, clean_broker
from .hostile import RawPublisher, hostile_messages
from .processes import ServiceProcess

FUZZ_MESSAGES = int(os.environ.get("SHIMEJI_FUZZ_MESSAGES", "10000"))
SEED = int(os.environ.get("SHIMEJI_FUZZ_SEED", "20261201"))
#: The longest log line a hostile message may cause (a traceback line aside).
MAX_LOG_LINE = 1000
#: The largest error reply a hostile message may get back.
MAX_REPLY = 4096

pytestmark = pytest.mark.skipif(
    shutil.which("rabbitmqctl") is None, reason="counts unacked messages with rabbitmqctl"
)


def queue_counts(queue: str) -> tuple[int, int, int]:
    """``(ready, unacked, consumers)`` of a queue, as the broker lists them."""
    done = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "messages_ready",
         "messages_unacknowledged", "consumers"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        name, *counts = line.split("\t")
        if name == queue:
            ready, unacked, consumers = (int(count) for count in counts)
            return ready, unacked, consumers
    raise AssertionError(f"no queue {queue} on the broker")


@pytest.fixture
def target(broker_uri, tmp_path):
    exchange = f"shimeji-fuzz-{uuid.uuid4().hex[:10]}"
    config = {"AMQP_URI": broker_uri, "rpc_exchange": exchange, "RPC_TIMEOUT": 30}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    service = ServiceProcess(
        "tests/amqp/fuzzed.py", config=path, replicas=2, extra=("--log-level", "warning")
    )
    try:
        service.wait_ready()
        yield service, config
    finally:
        service.stop()
        clean_broker(broker_uri, "rpc-fuzzed", exchange=exchange)


def test_hostile_messages_stop_no_replica_and_leave_nothing_behind(target):
    """Every valid call interleaved with the hostile messages is answered rightly;
    afterwards both replicas consume, the queue is drained with nothing unacked,
    memory stopped growing, every log line is short and printable, each bad
    message was logged once, and every error reply is small."""
    service, config = target
    inbox = Inbox(Settings.from_config(config), config["rpc_exchange"])
    rng = random.Random(SEED)
    messages = hostile_messages(
        rng,
        service="fuzzed",
        exchange=config["rpc_exchange"],
        reply_to=inbox.routing_key,
        count=FUZZ_MESSAGES,
    )
    answered = 0
    rss = []
    try:
        with (
            ClusterRpcProxy(config, timeout=30) as rpc,
            RawPublisher.from_uri(config["AMQP_URI"]) as publisher,
        ):
            assert rpc.fuzzed.ping() == "pong"
            rss.append(service.rss_kb())
            for index, message in enumerate(messages, 1):
                message.publish(publisher)
                if index % 100 == 0:
                    replies = [rpc.fuzzed.echo.call_async([index, n]) for n in range(5)]
                    assert [reply.result() for reply in replies] == [[index, n] for n in range(5)]
                    answered += 5
                if index == FUZZ_MESSAGES // 2:
                    rss.append(service.rss_kb())
            assert rpc.fuzzed.ping() == "pong"
            rss.append(service.rss_kb())
        deadline = time.monotonic() + 30
        while (counts := queue_counts("rpc-fuzzed"))[:2] != (0, 0):
            assert time.monotonic() < deadline, f"not drained: {counts}"
            time.sleep(0.2)
        replies = list(inbox.received)
    finally:
        inbox.close()

    assert answered >= FUZZ_MESSAGES // 100 * 5
    assert counts == (0, 0, 2)  # drained, nothing unacked, both replicas consuming
    status, health = service.probe("/readyz")
    assert status == 200, health
    assert health["replicas"] == {"fuzzed-1": "consuming", "fuzzed-2": "consuming"}
    assert service.proc.poll() is None

    # Memory: what 1 MB bodies cost, then a plateau (no growth per message).
    start, middle, end = rss
    assert end - start < 96 * 1024, rss
    assert end - middle < 16 * 1024, rss

    # Logs: short, one printable line each, every bad message logged once.
    lines = [line.rstrip("\n") for line in service.lines]
    bad = [line for line in lines if "bad request" in line]
    assert bad, "no hostile message was reported"
    for line in lines:
        if line.startswith(("Traceback", "  ")):
            continue
        assert len(line) <= MAX_LOG_LINE, line[:300]
        assert line.isprintable(), repr(line[:300])
    ids = [m.group(1) for line in bad if (m := re.search(r"correlation id '([0-9a-f]{32})'", line))]
    assert len(ids) == len(set(ids)), "a message was logged more than once"

    # Replies: a result (the hostile request was valid after all, say a 1 MB
    # argument echoed), or a small error naming what was wrong.
    assert replies, "no hostile message with a usable reply-to was answered"
    for delivery in replies:
        body = json.loads(delivery.message.body)
        assert set(body) == {"result", "error"}
        if body["error"] is not None:
            assert len(delivery.message.body) <= MAX_REPLY, delivery.message.body[:300]
            assert body["error"]["exc_type"] in (
                "MalformedRequest",
                "MethodNotFound",
                "IncorrectSignature",
            ), body
