"""What one cluster leaves to the next in the same process: greenlets, and nothing else.

Task greenlets outlive their cluster in a pool of the thread's (creating one
costs more than a call), and virtual time's patches may be kept between
clusters (``keep_virtual_time``). Neither carries state: a cluster is
collected once the test lets go of it, and a run gives the same trace
whatever ran before it.
"""

from __future__ import annotations

import gc
import weakref

from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.scheduler import _idle_pool


class Leaf:
    name = "leaf"

    @rpc
    def echo(self, value):
        return value


class Branch:
    name = "branch"
    leaf = RpcProxy("leaf")

    @rpc
    def fan(self, count):
        replies = [self.leaf.echo.call_async(i) for i in range(count)]
        return [reply.result() for reply in replies]


def busy_run(seed: int) -> tuple[weakref.ref[SimCluster], str]:
    cluster = SimCluster(seed=seed)
    with cluster:
        cluster.add_service(Leaf, replicas=3)
        cluster.add_service(Branch, replicas=2)
        replies = [cluster.rpc.branch.fan.call_async(5) for _ in range(8)]
        assert [reply.result() for reply in replies] == [list(range(5))] * 8
        trace = cluster.trace.to_jsonl(messages=True)
    return weakref.ref(cluster), trace


def test_pooled_greenlets_hold_nothing_of_their_cluster():
    ref, _ = busy_run(0)
    pool = _idle_pool()
    assert pool  # the greenlets wait for the next cluster
    assert all(glet.task is None and glet.scheduler is None for glet in pool)
    gc.collect()
    assert ref() is None  # nothing kept the cluster alive


def test_a_run_after_busy_runs_is_the_run_of_a_fresh_process():
    _, first = busy_run(7)
    for seed in (1, 2, 3):
        busy_run(seed)
    _, again = busy_run(7)
    assert again == first
