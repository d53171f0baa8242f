"""A broker restart, for real: RabbitMQ's application is stopped and started again.

It disturbs every user of the broker, so it runs only when asked:
SHIMEJI_DISRUPTIVE_TESTS=1 (CI sets it; it needs rabbitmqctl).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from shimeji.exceptions import BrokerUnavailable
from shimeji.runner import ServiceRunner
from shimeji.standalone import ClusterRpcProxy
from tests.conformance.services import Calculator, Slow

from .broker import clean_broker

pytestmark = pytest.mark.skipif(
    os.environ.get("SHIMEJI_DISRUPTIVE_TESTS") != "1" or shutil.which("rabbitmqctl") is None,
    reason="restarts the broker: set SHIMEJI_DISRUPTIVE_TESTS=1 (needs rabbitmqctl)",
)


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def restartable(amqp_uri):
    yield
    # Whatever happened, leave the broker running.
    subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], capture_output=True, timeout=120)


def test_a_broker_restart_fails_calls_in_flight_and_services_carry_on(amqp_uri, restartable):
    """A call waiting while the broker restarts fails with BrokerUnavailable (its reply
    queue is gone) instead of waiting forever; services and clients reconnect and
    serve again; stopping while the broker is down does not hang."""
    config = {"AMQP_URI": amqp_uri, "rpc_exchange": "shimeji-restart-test"}
    runner = ServiceRunner(config)
    runner.add_service(Calculator)
    runner.add_service(Slow)
    runner.start()
    proxy = ClusterRpcProxy(config, timeout=None)
    try:
        rpc = proxy.start()
        assert rpc.calculator.add(1, 2) == 3
        reply = rpc.slow.sleep.call_async(1.0, "in flight")
        time.sleep(0.3)
        rabbitmqctl("stop_app")
        time.sleep(1.0)
        rabbitmqctl("start_app")
        with pytest.raises(BrokerUnavailable, match="vanished"):
            reply.result()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert rpc.calculator.add(2, 3) == 5
                break
            except BrokerUnavailable:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        rabbitmqctl("stop_app")
        began = time.monotonic()
        proxy.stop()
        runner.stop(timeout=5)
        assert time.monotonic() - began < 20
    finally:
        rabbitmqctl("start_app")
        runner.kill()
        proxy.stop()
        subprocess.run(["rabbitmqctl", "await_startup"], capture_output=True, timeout=120)
        clean_broker(amqp_uri, "rpc-calculator", "rpc-slow", exchange="shimeji-restart-test")
