"""call_async: parallel calls whose replies are collected later, in any order."""

from __future__ import annotations

import pytest

from shimeji.exceptions import RemoteError
from shimeji.rpc import RpcProxy, RpcReply, rpc

from .services import CalculatorService


def test_replies_collected_in_any_order(sim_cluster):
    """Replies can be collected in reverse order of the calls."""
    sim_cluster.add_service(CalculatorService, replicas=3)
    replies = [sim_cluster.rpc.calculator.multiply.call_async(i, 2) for i in range(10)]
    assert all(isinstance(reply, RpcReply) for reply in replies)
    assert [r.result() for r in reversed(replies)] == [i * 2 for i in reversed(range(10))]


def test_result_twice_is_the_same(sim_cluster):
    """result() twice returns the same value, or raises the same error."""
    sim_cluster.add_service(CalculatorService)
    ok = sim_cluster.rpc.calculator.echo.call_async([1, 2])
    bad = sim_cluster.rpc.calculator.divide.call_async(1, 0)
    first = ok.result()
    assert ok.result() is first
    with pytest.raises(RemoteError) as one:
        bad.result()
    with pytest.raises(RemoteError) as two:
        bad.result()
    assert one.value is two.value


def test_calls_run_in_parallel(sim_cluster):
    """Three 1 s calls made with call_async finish together, not one after another."""
    sim_cluster.add_service(CalculatorService, replicas=3)
    start = sim_cluster.elapsed()
    replies = [sim_cluster.rpc.calculator.slow.call_async(1.0, i) for i in range(3)]
    assert [r.result() for r in replies] == [0, 1, 2]
    assert sim_cluster.elapsed() - start == pytest.approx(1.002)


class FanOut:
    name = "fan_out"
    calculator = RpcProxy("calculator")

    @rpc
    def squares(self, n):
        replies = [self.calculator.multiply.call_async(i, i) for i in range(n)]
        return [reply.result() for reply in replies]


def test_call_async_inside_a_service(sim_cluster):
    """A worker fans out with call_async and gathers the results."""
    sim_cluster.add_service(CalculatorService, replicas=2)
    sim_cluster.add_service(FanOut)
    assert sim_cluster.rpc.fan_out.squares(6) == [0, 1, 4, 9, 16, 25]
