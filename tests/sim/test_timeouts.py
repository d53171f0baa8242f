"""Timeouts in virtual time."""

from __future__ import annotations

import time

import pytest

from shimeji.exceptions import ConfigurationError, RpcTimeout
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster

from .services import CalculatorService


def test_timeout_raises_and_costs_no_wall_time():
    """A 60 s timeout expires in virtual time: the test does not wait a minute."""
    with SimCluster() as cluster:
        cluster.add_service(CalculatorService)
        client = cluster.rpc_proxy(timeout=60)
        wall = time.process_time()
        with pytest.raises(RpcTimeout) as caught:
            client.calculator.slow(3600)
        assert time.process_time() - wall < 5
        assert cluster.elapsed() == pytest.approx(60.0)
        assert caught.value.service == "calculator" and caught.value.method == "slow"
        assert "within 60s" in str(caught.value)
        assert cluster.trace.filter("timeout")


def test_late_reply_is_dropped_and_traced_and_client_stays_usable():
    """A reply arriving after the timeout is dropped (and traced); the client still works."""
    with SimCluster() as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        client = cluster.rpc_proxy(timeout=1)
        with pytest.raises(RpcTimeout):
            client.calculator.slow(2, "late")
        assert client.calculator.add(1, 2) == 3
        cluster.advance(5)
        dropped = cluster.trace.filter("reply_dropped")
        assert len(dropped) == 1
        assert "late reply for calculator.slow" in dropped[0].detail


def test_config_rpc_timeout_applies_to_every_call():
    """RPC_TIMEOUT in the config is every call's default."""
    with SimCluster(config={"RPC_TIMEOUT": 2}) as cluster:
        cluster.add_service(CalculatorService)
        with pytest.raises(RpcTimeout):
            cluster.rpc.calculator.slow(3)
        assert cluster.rpc.calculator.slow(1, "ok") == "ok"


def test_rpc_proxy_timeout_overrides_config():
    """rpc_proxy(timeout=...) overrides RPC_TIMEOUT, and None disables it."""
    with SimCluster(config={"RPC_TIMEOUT": 1}) as cluster:
        cluster.add_service(CalculatorService)
        assert cluster.rpc_proxy(timeout=10).calculator.slow(5, "x") == "x"
        assert cluster.rpc_proxy(timeout=None).calculator.slow(500, "y") == "y"


class Impatient:
    name = "impatient"
    calculator = RpcProxy("calculator", timeout=0.5)
    default = RpcProxy("calculator")

    @rpc
    def ask(self, seconds):
        try:
            return self.calculator.slow(seconds, "done")
        except RpcTimeout as exc:
            return f"gave up: {exc.timeout}"

    @rpc
    def ask_default(self, seconds):
        try:
            return self.default.slow(seconds, "done")
        except RpcTimeout as exc:
            return f"gave up: {exc.timeout}"


def test_rpc_proxy_dependency_timeout():
    """RpcProxy(timeout=...) bounds calls made by a service, over RPC_TIMEOUT."""
    with SimCluster(config={"RPC_TIMEOUT": 3}) as cluster:
        cluster.add_service(CalculatorService)
        cluster.add_service(Impatient)
        assert cluster.rpc.impatient.ask(0.1) == "done"
        assert cluster.rpc.impatient.ask(1) == "gave up: 0.5"
        assert cluster.rpc_proxy(timeout=20).impatient.ask_default(5) == "gave up: 3.0"


@pytest.mark.parametrize("bad", [0, -1, "10", True])
def test_bad_timeouts_are_refused(bad):
    """A timeout must be seconds > 0 or None."""
    with pytest.raises(ConfigurationError, match="timeout"):
        RpcProxy("calculator", timeout=bad)
    with SimCluster() as cluster, pytest.raises(ConfigurationError, match="timeout"):
        cluster.rpc_proxy(timeout=bad)
