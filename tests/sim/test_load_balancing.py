"""Replicas compete on one queue: round-robin, prefetch = max_workers, ack after reply."""

from __future__ import annotations

from collections import Counter

import pytest

from shimeji.rpc import rpc
from shimeji.sim import SimCluster

from .services import CalculatorService


def _delivered_to(cluster, method):
    return [e.replica for e in cluster.trace.filter("deliver", method=method) if not e.is_reply]


def test_round_robin_over_replicas(sim_cluster):
    """Sequential calls rotate over the replicas in order, as RabbitMQ does."""
    sim_cluster.add_service(CalculatorService, replicas=3)
    for i in range(9):
        sim_cluster.rpc.calculator.add(i, i)
    assert _delivered_to(sim_cluster, "add") == ["calculator-1", "calculator-2", "calculator-3"] * 3


def test_round_robin_with_parallel_calls(sim_cluster):
    """A burst of calls spreads evenly (within one) over the replicas."""
    sim_cluster.add_service(CalculatorService, replicas=4)
    replies = [sim_cluster.rpc.calculator.multiply.call_async(i, 1) for i in range(30)]
    assert [r.result() for r in replies] == list(range(30))
    counts = Counter(_delivered_to(sim_cluster, "multiply"))
    assert max(counts.values()) - min(counts.values()) <= 1
    assert sorted(counts) == [f"calculator-{i}" for i in range(1, 5)]


def test_prefetch_bounds_unacked_per_replica():
    """A replica holds at most max_workers unacked requests; the rest wait in the queue."""
    with SimCluster(config={"max_workers": 2}) as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        replies = [cluster.rpc.calculator.slow.call_async(1.0, i) for i in range(8)]
        cluster.advance(0.5)
        # 4 are running (2 per replica), 4 still wait in the queue
        running = [r.container.worker_count for r in cluster.replicas("calculator")]
        assert running == [2, 2]
        assert (
            cluster.bus.queues["rpc-calculator"].ready
            and len(cluster.bus.queues["rpc-calculator"].ready) == 4
        )
        assert [r.result() for r in replies] == list(range(8))
        # two waves of one second each
        assert cluster.elapsed() == pytest.approx(2.004, abs=0.003)


def test_ack_comes_after_reply(sim_cluster):
    """Each request is acked only after its reply is published."""
    sim_cluster.add_service(CalculatorService, replicas=2)
    for i in range(4):
        sim_cluster.rpc.calculator.add(i, 1)
    for publish in sim_cluster.trace.filter("publish"):
        corr = publish.correlation_id
        kinds = [e.kind for e in sim_cluster.trace.events if e.correlation_id == corr]
        assert kinds.index("reply") < kinds.index("ack")
        assert kinds.count("ack") == 1


class Recursive:
    name = "recursive"

    @rpc
    def noop(self):
        return None


def test_max_workers_one_serializes_calls():
    """With max_workers=1, a replica runs one call at a time."""
    with SimCluster(config={"max_workers": 1}) as cluster:
        cluster.add_service(CalculatorService)
        replies = [cluster.rpc.calculator.slow.call_async(1, i) for i in range(3)]
        assert [r.result() for r in replies] == [0, 1, 2]
        assert cluster.elapsed() == pytest.approx(3.004, abs=0.003)


def test_replicas_added_after_start_join_the_rotation(sim_cluster):
    """A replica added to a running cluster starts taking calls."""
    sim_cluster.add_service(CalculatorService)
    sim_cluster.rpc.calculator.add(1, 1)
    sim_cluster.add_service(CalculatorService)
    for _ in range(4):
        sim_cluster.rpc.calculator.add(1, 1)
    assert set(_delivered_to(sim_cluster, "add")) == {"calculator-1", "calculator-2"}
