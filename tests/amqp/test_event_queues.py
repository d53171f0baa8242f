"""Event handler queues on RabbitMQ: of RPC_QUEUE_TYPE when reliable."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest

from shimeji.events import event_handler
from shimeji.runner import ServiceRunner
from shimeji.standalone import event_dispatcher

from .broker import clean_broker

SEEN: list[int] = []


def queue_type(queue):
    """The type RabbitMQ lists for ``queue`` (rabbitmqctl, on this machine)."""
    done = subprocess.run(
        ["rabbitmqctl", "list_queues", "--quiet", "--no-table-headers", "name", "type"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot list queues here: {done.stderr.strip()}")
    for line in done.stdout.splitlines():
        name, _, kind = line.strip().partition("\t")
        if name == queue:
            return kind.strip()
    return None


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
@pytest.mark.parametrize("queue_type_name", ["classic", "quorum"])
def test_a_reliable_handler_queue_is_of_rpc_queue_type(broker_uri, queue_type_name):
    source = f"src_{uuid.uuid4().hex[:8]}"

    class Handler:
        name = f"handler_{source}"

        @event_handler(source, "happened")
        def on_happened(self, payload):
            SEEN.append(payload["n"])

    SEEN.clear()
    queue = f"evt-{source}-happened--{Handler.name}.on_happened"
    config = {"AMQP_URI": broker_uri, "RPC_QUEUE_TYPE": queue_type_name}
    runner = ServiceRunner(config)
    runner.add_service(Handler)
    try:
        runner.start()
        with event_dispatcher({"AMQP_URI": broker_uri}) as dispatch:
            dispatch(source, "happened", {"n": 1})
        deadline = time.monotonic() + 10
        while not SEEN:
            assert time.monotonic() < deadline, "the event was not handled"
            time.sleep(0.05)
        runner.stop()
        assert queue_type(queue) == queue_type_name
    finally:
        runner.kill()
        clean_broker(broker_uri, queue, f"rpc-{Handler.name}", exchange=f"{source}.events")
