"""A replica never pretends: it reports whether it consumes, and exits when it cannot.

``shimeji run --health`` answers /livez, /readyz and /healthz; a replica that
cannot consume again within RECONNECT_TIMEOUT, or whose consumer loop fails,
makes ``shimeji run`` exit with status 1 and a one-line reason.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from shimeji.amqp_adapter import AmqpTransport
from shimeji.config import Settings
from shimeji.core.transport import Message

from .broker import clean_broker
from .cuttable import CuttableProxy
from .processes import ServiceProcess


@pytest.fixture
def behind_proxy(broker_uri, tmp_path):
    """A config file for ``shimeji run`` reaching the broker through a proxy to cut."""
    exchange = f"shimeji-live-{uuid.uuid4().hex[:8]}"
    proxy = CuttableProxy(broker_uri)
    path = tmp_path / "config.yaml"
    path.write_text(
        json.dumps(
            {
                "AMQP_URI": proxy.uri,
                "rpc_exchange": exchange,
                "RECONNECT_TIMEOUT": 3,
                "RPC_RETRY_POLICY": {"interval_start": 0.1, "interval_max": 0.2},
            }
        )
    )
    yield path, proxy
    proxy.close()
    clean_broker(broker_uri, "rpc-fuzzed", exchange=exchange)


def wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_readiness_follows_the_connection_and_a_short_cut_is_ridden_out(behind_proxy):
    """While the broker is out of reach the replica is live but not ready; once it is
    back the replica consumes again and is ready, and the process never exited."""
    path, proxy = behind_proxy
    service = ServiceProcess("tests/amqp/fuzzed.py", config=path)
    try:
        service.wait_ready()
        assert service.probe("/healthz")[0] == 200
        proxy.cut()
        _, body = wait_for(lambda: (got := service.probe("/readyz"))[0] == 503 and got)
        assert body["replicas"] == {"fuzzed-1": "reconnecting"}
        assert service.probe("/livez")[0] == 200
        assert service.probe("/healthz")[0] == 503
        time.sleep(1)
        proxy.restore()
        wait_for(lambda: service.probe("/readyz")[0] == 200)
        assert service.proc.poll() is None
    finally:
        service.stop()


def test_a_replica_that_cannot_consume_again_exits_with_a_one_line_reason(behind_proxy):
    """Cut off for longer than RECONNECT_TIMEOUT, ``shimeji run`` exits with status 1
    and says why in one line, so that a supervisor restarts it."""
    path, proxy = behind_proxy
    service = ServiceProcess("tests/amqp/fuzzed.py", config=path)
    try:
        service.wait_ready()
        proxy.cut()
        began = time.monotonic()
        assert service.wait(timeout=30) == 1
        assert time.monotonic() - began < 15
    finally:
        service.stop()
    last = service.lines[-1].rstrip("\n")
    assert last.startswith("shimeji run: replica fuzzed-1 crashed: BrokerUnavailable: ")
    assert "within 3s (RECONNECT_TIMEOUT)" in last
    assert "Traceback" not in "".join(service.lines)


def test_a_consumer_loop_that_fails_says_so_and_stops_consuming(broker_uri):
    """An error escaping the consumer loop (a bug, here a BaseException raised by the
    consumer's callback) ends it: the transport reports the failure once, and no
    longer claims to consume."""
    settings = Settings.from_config({"AMQP_URI": broker_uri})
    transport = AmqpTransport(settings, name="doomed")
    queue = f"shimeji-doomed-{uuid.uuid4().hex[:8]}"
    failures: list[str] = []
    told = threading.Event()

    def on_failure(reason: str) -> None:
        failures.append(reason)
        told.set()

    def explode(delivery):
        raise SystemExit("a bug")

    transport.on_failure.append(on_failure)
    try:
        transport.declare_queue(queue, durable=False, expires=30)
        transport.consume(queue, explode, prefetch=1, label="doomed")
        assert transport.consuming
        transport.publish(Message(b"{}", routing_key=queue), mandatory=True)
        assert told.wait(10)
        assert failures == ["its consumer loop failed: SystemExit: a bug"]
        assert transport.failure == failures[0]
        assert not transport.consuming
    finally:
        transport.close()
        clean_broker(broker_uri, queue)


def test_sigterm_while_starting_stops_at_once(broker_uri, tmp_path, monkeypatch):
    """SIGTERM while the services are still starting (a dependency taking its
    time to set up) stops what started and exits 0, without waiting for the
    start to finish, and /readyz never said ready."""
    marker = tmp_path / "marker"
    monkeypatch.setenv("SHIMEJI_TEST_MARKER", str(marker))
    config = tmp_path / "config.yaml"
    exchange = f"shimeji-slow-{uuid.uuid4().hex[:8]}"
    config.write_text(json.dumps({"AMQP_URI": broker_uri, "rpc_exchange": exchange}))
    process = ServiceProcess("tests.amqp.slow_start", config=config)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert process.proc.poll() is None, "".join(process.lines)
            assert time.monotonic() < deadline, "".join(process.lines)
            time.sleep(0.05)
        assert process.probe("/readyz")[0] == 503
        started = time.monotonic()
        assert process.stop() == 0, "".join(process.lines)
        assert time.monotonic() - started < 10
        assert "terminated while starting" in "".join(process.lines)
    finally:
        process.stop()
        clean_broker(broker_uri, "rpc-slow_to_start", exchange=exchange)
