"""Broker restarts and replica crashes under load, for real: no call fails, none is lost.

They disturb every user of the broker, so they run only when asked:
SHIMEJI_DISRUPTIVE_TESTS=1 (CI sets it; it needs rabbitmqctl).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections import Counter

import pytest

from shimeji.runner import ServiceRunner
from shimeji.standalone import ClusterRpcProxy

from .broker import clean_broker
from .ledger import Ledger, read_ledger
from .load import Load
from .processes import ServiceProcess

pytestmark = pytest.mark.skipif(
    os.environ.get("SHIMEJI_DISRUPTIVE_TESTS") != "1" or shutil.which("rabbitmqctl") is None,
    reason="restarts the broker: set SHIMEJI_DISRUPTIVE_TESTS=1 (needs rabbitmqctl)",
)

RESTARTS = int(os.environ.get("SHIMEJI_RESTARTS", "10"))
DOWN = 3.0  # seconds the broker stays down each time
KILLS = int(os.environ.get("SHIMEJI_KILLS", "50"))


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def restartable():
    yield
    # Whatever happened, leave the broker running.
    subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], capture_output=True, timeout=120)


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("SHIMEJI_TEST_LEDGER", str(path))
    return str(path)


def report(what: str, load: Load, ledger: str) -> Counter:
    runs = Counter(read_ledger(ledger))
    duplicates = sum(count - 1 for count in runs.values())
    print(
        f"\n{what}: {len(load.answered)} calls answered, {len(load.failures)} failed, "
        f"{duplicates} ran more than once"
    )
    return runs


def test_broker_restarts_under_load_fail_no_call(amqp_uri, restartable, ledger):
    """RESTARTS restarts of the broker, DOWN seconds each, under continuous calls from
    four threads, with the default configuration: every call is answered rightly,
    every answered call ran, and calls were answered after every restart."""
    exchange = f"shimeji-restart-{uuid.uuid4().hex[:8]}"
    config = {"AMQP_URI": amqp_uri, "rpc_exchange": exchange}
    runner = ServiceRunner(config)
    runner.add_service(Ledger, replicas=2)
    runner.start()
    proxy = ClusterRpcProxy(config, timeout=120)  # a bound, far above a restart: never hang
    rpc = proxy.start()
    back: list[float] = []
    try:
        assert rpc.ledger.record("warm-up", 1) == 2
        with Load(lambda tag, value: rpc.ledger.record(tag, value)) as load:
            for _ in range(RESTARTS):
                time.sleep(1.5)
                rabbitmqctl("stop_app")
                time.sleep(DOWN)
                rabbitmqctl("start_app")
                rabbitmqctl("await_startup")
                back.append(time.monotonic())
            time.sleep(3)
        assert not runner.crashes
    finally:
        proxy.stop()
        runner.stop(timeout=10)
        clean_broker(amqp_uri, "rpc-ledger", exchange=exchange)
    runs = report(f"{RESTARTS} broker restarts", load, ledger)
    assert load.failures == []
    assert all(runs[tag] >= 1 for tag in load.answered)  # every answer came from a run
    for when in back:  # the load went on after each restart
        assert any(t > when for t in load.times)


def test_replicas_killed_under_load_lose_no_call(amqp_uri, tmp_path, ledger):
    """KILLS SIGKILLs of ``shimeji run`` replicas (three processes, one killed and
    started again at a time) under continuous calls: no call fails or is lost; the
    calls that ran twice (redelivered after a kill) are counted."""
    exchange = f"shimeji-kill-{uuid.uuid4().hex[:8]}"
    config = {"AMQP_URI": amqp_uri, "rpc_exchange": exchange}
    path = tmp_path / "config.yaml"
    path.write_text(f"AMQP_URI: '{amqp_uri}'\nrpc_exchange: {exchange}\n")
    services = [ServiceProcess("tests/amqp/ledger.py", config=path) for _ in range(3)]
    proxy = ClusterRpcProxy(config, timeout=120)
    try:
        for service in services:
            service.wait_ready()
        rpc = proxy.start()
        with Load(lambda tag, value: rpc.ledger.record(tag, value)) as load:
            for kill in range(KILLS):
                victim = kill % len(services)
                time.sleep(0.2)
                services[victim].kill()
                services[victim] = ServiceProcess("tests/amqp/ledger.py", config=path)
                services[victim].wait_ready()
            time.sleep(1)
    finally:
        proxy.stop()
        for service in services:
            service.stop()
        clean_broker(amqp_uri, "rpc-ledger", exchange=exchange)
    runs = report(f"{KILLS} replica SIGKILLs", load, ledger)
    assert load.failures == []
    assert all(runs[tag] >= 1 for tag in load.answered)
    assert len(load.answered) > KILLS
