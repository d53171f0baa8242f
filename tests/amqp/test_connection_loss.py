"""Losing the broker mid-flight: stopping never hangs, waiting callers are told."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from shimeji.exceptions import PublishFailed, ShimejiError
from shimeji.rpc import rpc
from shimeji.runner import ServiceRunner
from shimeji.standalone import ClusterRpcProxy

from .broker import clean_broker
from .cuttable import CuttableProxy

HANG = 20  # seconds: far above any retry interval; reaching it means a hang


class Dawdler:
    name = f"dawdler_{uuid.uuid4().hex[:8]}"

    @rpc
    def wait(self, seconds):
        time.sleep(seconds)
        return "done"


def in_thread(fn):
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture
def setup(broker_uri):
    exchange = f"shimeji-cut-{uuid.uuid4().hex[:8]}"
    config = {
        "rpc_exchange": exchange,
        "RPC_RETRY_POLICY": {"max_retries": 1, "interval_start": 0.1},
    }
    proxy = CuttableProxy(broker_uri)
    runner = ServiceRunner({**config, "AMQP_URI": broker_uri})
    runner.add_service(Dawdler)
    runner.start()
    yield config, proxy
    proxy.close()
    runner.stop()
    clean_broker(broker_uri, f"rpc-{Dawdler.name}", exchange=exchange)


@pytest.mark.parametrize("attempt", range(3))
def test_a_client_cut_off_mid_call_stops_and_its_caller_is_told(setup, attempt):
    """Stopping a client whose broker vanished returns, and its waiting call fails."""
    config, proxy = setup
    client = ClusterRpcProxy({**config, "AMQP_URI": proxy.uri}, timeout=None)
    rpc_proxy = client.start()
    caller, outcome = in_thread(lambda: rpc_proxy[Dawdler.name].wait(3))
    time.sleep(0.5)
    proxy.cut()
    stopper, _ = in_thread(client.stop)
    stopper.join(HANG)
    assert not stopper.is_alive(), "ClusterRpcProxy.stop() hung with the broker gone"
    caller.join(HANG)
    assert not caller.is_alive(), "the caller still waits after stop()"
    assert isinstance(outcome.get("error"), ShimejiError), outcome


@pytest.mark.parametrize("attempt", range(3))
def test_a_runner_cut_off_stops(broker_uri, attempt):
    """Stopping a runner whose broker vanished returns."""
    exchange = f"shimeji-cut-{uuid.uuid4().hex[:8]}"
    proxy = CuttableProxy(broker_uri)
    runner = ServiceRunner({"AMQP_URI": proxy.uri, "rpc_exchange": exchange})
    runner.add_service(Dawdler)
    runner.start()
    try:
        proxy.cut()
        time.sleep(0.3)
        stopper, _ = in_thread(runner.stop)
        stopper.join(HANG)
        assert not stopper.is_alive(), "ServiceRunner.stop() hung with the broker gone"
    finally:
        proxy.close()
        runner.kill()
        clean_broker(broker_uri, f"rpc-{Dawdler.name}", exchange=exchange)


def test_a_call_made_while_the_broker_is_out_of_reach_is_retried_until_it_is_back(setup):
    """RPC_RETRY_POLICY on the broker: publishing retries at the policy's intervals
    and the call completes once the broker is back; a proxy's own retry_policy,
    when it runs out of attempts first, ends the call with PublishFailed."""
    config, proxy = setup
    patient = {"max_retries": 40, "interval_start": 0.1, "interval_step": 0.1, "interval_max": 0.2}
    client = ClusterRpcProxy(
        {**config, "AMQP_URI": proxy.uri, "RPC_RETRY_POLICY": patient}, timeout=HANG
    )
    rpc_proxy = client.start()
    try:
        assert rpc_proxy[Dawdler.name].wait(0) == "done"
        proxy.cut()
        restorer = threading.Timer(1.0, proxy.restore)
        restorer.start()
        started = time.monotonic()
        assert rpc_proxy[Dawdler.name].wait(0) == "done"
        assert time.monotonic() - started >= 0.9  # it waited for the broker
        restorer.join()
    finally:
        client.stop()
    impatient = {"max_retries": 2, "interval_start": 0.05, "interval_step": 0, "interval_max": 0.05}
    client = ClusterRpcProxy(
        {**config, "AMQP_URI": proxy.uri, "RPC_RETRY_POLICY": patient},
        timeout=HANG,
        retry_policy=impatient,
    )
    rpc_proxy = client.start()
    try:
        assert rpc_proxy[Dawdler.name].wait(0) == "done"
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(PublishFailed) as caught:
            rpc_proxy[Dawdler.name].wait(0)
        assert caught.value.attempts == 3
        assert time.monotonic() - started < 5  # the proxy's policy, not the config's
    finally:
        proxy.restore()
        client.stop()
