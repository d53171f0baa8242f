"""keep_virtual_time(): the patches of virtual time kept from one cluster to the next.

Inside the block each cluster reads its own clock, real time is back between
clusters, a run gives the same trace as outside the block, and nothing is
left patched once the block ends.
"""

from __future__ import annotations

import datetime
import time

import pytest

from shimeji.exceptions import ConfigurationError
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.clock import (
    OnDemand,
    VirtualTime,
    keep_virtual_time,
    kept_on_demand,
    real_perf_counter,
)

from .test_virtual_time_patches import REAL, assert_no_patch_left, current

UTC = datetime.timezone.utc

# keep_virtual_time() itself, from an unpatched process: the plugin's per-test
# patching (kept_on_demand) is turned off for these tests.
pytestmark = pytest.mark.shimeji_patch_per_cluster


class Sleeper:
    name = "sleeper"

    @rpc
    def nap(self, seconds):
        before = time.time()
        time.sleep(seconds)
        return {"slept": time.time() - before, "now": datetime.datetime.now().isoformat()}


class Front:
    name = "front"
    sleeper = RpcProxy("sleeper")

    @rpc
    def twice(self, seconds):
        first = self.sleeper.nap.call_async(seconds)
        second = self.sleeper.nap(seconds)
        return [first.result(), second]


def run(seed: int, start: datetime.datetime, seconds: float) -> tuple[object, str]:
    with SimCluster(seed=seed, start_time=start) as cluster:
        cluster.add_service(Sleeper, replicas=2)
        cluster.add_service(Front)
        assert time.time() == start.timestamp()
        result = cluster.rpc.front.twice(seconds)
        assert time.time() == pytest.approx(cluster.now())
        trace = str(cluster.trace) + cluster.trace.to_jsonl(messages=True)
    return result, trace


def assert_real_time() -> None:
    """Time, dates and sleep are the real ones (through freezegun's stand-ins)."""
    assert VirtualTime.owner() is None
    assert abs(time.time() - REAL["time.time"]()) < 5
    assert abs(datetime.datetime.now().timestamp() - REAL["time.time"]()) < 5
    began = real_perf_counter()
    time.sleep(0.02)
    assert real_perf_counter() - began >= 0.015


def test_each_cluster_reads_its_own_clock_and_real_time_is_back_between():
    first_start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    second_start = datetime.datetime(2031, 7, 1, 12, tzinfo=UTC)
    with keep_virtual_time():
        assert_real_time()
        result, _ = run(0, first_start, 60)
        assert [nap["slept"] for nap in result] == [60, 60]
        assert result[0]["now"].startswith("2024-01-01T00:01:00")
        assert_real_time()
        result, _ = run(0, second_start, 5)
        assert result[1]["now"].startswith("2031-07-01T12:00:")
        assert_real_time()
    assert_no_patch_left()


def test_runs_inside_the_block_replay_runs_outside_it_byte_for_byte():
    """No state of one cluster reaches the next: the same seed gives the same
    trace whatever ran before it, inside the block or not."""
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    outside = {seed: run(seed, start, 0.5) for seed in (0, 1)}
    assert_no_patch_left()
    with keep_virtual_time():
        inside = [(seed, run(seed, start, 0.5)) for seed in (0, 1, 0, 1, 0)]
    assert_no_patch_left()
    for seed, outcome in inside:
        assert outcome == outside[seed]
    assert outside[0][1] != outside[1][1]  # the seeds do make a difference


def test_a_failing_run_inside_the_block_leaves_the_next_one_clean():
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    expected = run(3, start, 1)
    with keep_virtual_time():
        with pytest.raises(RuntimeError, match="boom"), SimCluster(start_time=start) as cluster:
            cluster.add_service(Sleeper)
            cluster.rpc.sleeper.nap(1)
            raise RuntimeError("boom")
        assert_real_time()
        assert run(3, start, 1) == expected
    assert_no_patch_left()


def test_the_block_cannot_start_while_a_cluster_runs():
    block = keep_virtual_time()
    with SimCluster(), pytest.raises(ConfigurationError, match="while no SimCluster runs"):
        block.__enter__()
    assert_no_patch_left()


def test_nested_blocks_are_the_outer_one():
    with keep_virtual_time():
        patched_time = time.time
        with keep_virtual_time():
            assert time.time is patched_time
            run(0, datetime.datetime(2024, 1, 1, tzinfo=UTC), 1)
        assert time.time is patched_time
        assert_real_time()
    assert_no_patch_left()


# -- kept_on_demand(): patched at the first cluster, kept to the block's end --------------


def test_a_block_without_a_cluster_patches_nothing():
    with kept_on_demand():
        assert current() == REAL
        assert_real_time()
    assert_no_patch_left()


def test_the_first_cluster_patches_for_the_block_and_the_next_ones_reuse_it():
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    outside = run(5, start, 0.5)
    with kept_on_demand():
        assert current() == REAL
        first = run(5, start, 0.5)
        patched = current()
        assert patched["time.sleep"] is not REAL["time.sleep"]  # kept after it stopped
        assert_real_time()  # yet time and sleep are real between clusters
        second = run(5, start, 0.5)
        assert current() == patched  # the same stand-ins: nothing patched again
    assert_no_patch_left()
    assert first == second == outside  # the same trace as a cluster patching for itself


def test_a_cluster_running_at_the_end_of_the_block_keeps_the_patches_until_it_stops():
    """As a longer-lived fixture's cluster does: it started inside a test's block."""
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    block = kept_on_demand()
    block.__enter__()
    cluster = SimCluster(start_time=start)
    cluster.start()
    block.__exit__(None, None, None)
    try:
        cluster.add_service(Sleeper)
        assert cluster.rpc.sleeper.nap(30)["slept"] == 30
        assert time.time() == pytest.approx(start.timestamp() + 30, abs=0.01)
    finally:
        cluster.stop()
    assert_no_patch_left()
    assert run(0, start, 1)[0]  # and the next cluster patches for itself


def test_inside_a_block_nested_blocks_hosts_and_keep_virtual_time_are_the_block():
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    with kept_on_demand():
        run(0, start, 1)
        patched = current()
        with kept_on_demand(), keep_virtual_time(), VirtualTime.hosting():
            run(1, start, 1)
            assert current() == patched
        assert current() == patched
    assert_no_patch_left()


def test_a_block_entered_while_a_cluster_runs_is_a_no_op():
    with SimCluster() as cluster, kept_on_demand():
        cluster.add_service(Sleeper)
        assert cluster.rpc.sleeper.nap(1)["slept"] == 1
    assert_no_patch_left()


def test_a_block_entered_before_the_outer_one_patched_takes_its_place_until_it_ends():
    """As a pytest session run inside a test (``pytester``) does: the inner
    block's patches are undone at its end, and the outer one patches after."""
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    outer = OnDemand()
    assert outer.arm()
    with kept_on_demand():
        run(0, start, 1)
        inner = current()
        assert inner["time.sleep"] is not REAL["time.sleep"]
        assert not outer.patched
    assert current() == REAL  # the inner block undid its own patches
    run(0, start, 1)
    assert outer.patched and current()["time.sleep"] is not REAL["time.sleep"]
    outer.end()
    assert_no_patch_left()


def test_a_block_disarmed_while_another_took_its_place_is_not_armed_again():
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    outer, inner = OnDemand(), OnDemand()
    assert outer.arm() and inner.arm()
    outer.disarm()  # out of order: the outer one gives up first
    run(0, start, 1)
    assert inner.patched and not outer.patched
    inner.end()
    run(0, start, 1)  # patches for itself, for no one
    assert_no_patch_left()
