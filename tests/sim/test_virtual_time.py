"""Virtual time: service code reads the simulator's clock, and sleeps in it."""

from __future__ import annotations

import datetime
import time
from time import sleep as imported_sleep

import pytest

from shimeji.exceptions import ConfigurationError
from shimeji.rpc import rpc
from shimeji.sim import SimCluster


class Clocky:
    name = "clocky"

    @rpc
    def now(self):
        return {
            "time": time.time(),
            "datetime": datetime.datetime.now().isoformat(),
            "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }

    @rpc
    def nap(self, seconds):
        before = time.time()
        time.sleep(seconds)
        return time.time() - before

    @rpc
    def nap_imported(self, seconds):
        before = time.time()
        imported_sleep(seconds)
        return time.time() - before


def test_service_code_reads_the_virtual_clock():
    """time.time() and datetime.now() in a worker read virtual time from a fixed epoch."""
    with SimCluster() as cluster:
        cluster.add_service(Clocky)
        cluster.advance(10)
        seen = cluster.rpc.clocky.now()
        assert seen["time"] == pytest.approx(cluster.now() - 0.001)
        assert seen["time"] == 1704067210.001
        assert seen["datetime"] == "2024-01-01T00:00:10.001000"
        assert seen["utc"] == "2024-01-01T00:00:10.001000+00:00"


def test_start_time_is_configurable():
    """start_time sets where the virtual clock starts."""
    start = datetime.datetime(2030, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
    with SimCluster(start_time=start) as cluster:
        assert cluster.now() == start.timestamp()
        assert time.time() == start.timestamp()


def test_sleep_in_a_worker_is_virtual():
    """time.sleep() in a worker parks it in virtual time, costing no wall time."""
    with SimCluster() as cluster:
        cluster.add_service(Clocky)
        cpu = time.process_time()
        assert cluster.rpc.clocky.nap(3600) == pytest.approx(3600)
        assert cluster.rpc.clocky.nap_imported(120) == pytest.approx(120)
        assert time.process_time() - cpu < 5
        assert cluster.elapsed() == pytest.approx(3720.004)


def test_sleep_in_the_test_advances_virtual_time():
    """time.sleep() in the test itself lets virtual time pass."""
    with SimCluster() as cluster:
        time.sleep(30)
        assert cluster.elapsed() == 30


@pytest.mark.shimeji_patch_per_cluster  # the process as the cluster leaves it
def test_real_time_comes_back_after_stop():
    """After the cluster stops, the real clock and sleep are back."""
    with SimCluster():
        assert time.time() == 1704067200.0
    assert time.time() > 1704067200.0 + 365 * 86400
    assert time.sleep.__module__ == "time" or time.sleep.__name__ == "sleep"
    start = time.monotonic()
    time.sleep(0.01)
    assert time.monotonic() - start >= 0.009


def test_one_cluster_owns_virtual_time():
    """A second cluster on virtual time is refused while the first runs."""
    with SimCluster():
        with pytest.raises(ConfigurationError, match="virtual_time=False"):
            SimCluster().start()
        with SimCluster(virtual_time=False) as other:
            other.advance(5)
            assert other.elapsed() == 5


def test_advance_and_now():
    """advance() moves virtual time; now() is epoch seconds."""
    with SimCluster() as cluster:
        start = cluster.now()
        cluster.advance(1.5)
        assert cluster.now() - start == 1.5
        with pytest.raises(ConfigurationError):
            cluster.advance(-1)


def test_clock_never_goes_backwards():
    """The virtual clock rejects moving backwards with an exact message."""
    from shimeji.sim.clock import VirtualClock

    clock = VirtualClock()
    clock.advance_to(10)
    with pytest.raises(ValueError, match="cannot go backwards: asked to move from 10us to 5us"):
        clock.advance_to(5)


class Sleepy:
    name = "sleepy"

    @rpc
    def nap(self):
        time.sleep(100)


def test_hypothesis_keeps_real_time_while_a_cluster_runs():
    """Virtual waits inside a Hypothesis example do not count against its deadline:
    Hypothesis (like pytest) reads the real clock even while a cluster runs."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from shimeji.exceptions import RpcTimeout

    with SimCluster() as cluster:
        cluster.add_service(Sleepy)

        @settings(deadline=200, max_examples=5, database=None)
        @given(st.integers())
        def example(_):
            with pytest.raises(RpcTimeout):
                cluster.rpc_proxy(timeout=30).sleepy.nap()

        example()
        assert cluster.elapsed() >= 150  # five examples, each 30 s of virtual waiting
