"""Virtual time patches the process only while a cluster runs: every patch is undone on stop."""

from __future__ import annotations

import datetime
import os
import random
import sys
import threading
import time
import types
import uuid
from time import sleep as imported_sleep

import freezegun.api
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shimeji.extensions import DependencyProvider
from shimeji.rpc import rpc
from shimeji.sim import SimCluster
from shimeji.sim import clock as sim_clock
from shimeji.sim.clock import VirtualClock, VirtualTime, real_perf_counter
from shimeji.sim.entropy import UncontrolledEffectWarning

REAL = {
    "time.sleep": time.sleep,
    "os.urandom": os.urandom,
    "random._urandom": random._urandom,
    "uuid.uuid1": uuid.uuid1,
    "threading.Thread.start": threading.Thread.start,
    "time.time": time.time,
    "time.monotonic": time.monotonic,
    "time.perf_counter": time.perf_counter,
    "datetime.datetime": datetime.datetime,
    "datetime.date": datetime.date,
}
INSPECTION_LIMIT = freezegun.api.call_stack_inspection_limit

# These tests check the process as each cluster leaves it: the plugin's per-test
# patching (kept_on_demand) is turned off for them.
pytestmark = pytest.mark.shimeji_patch_per_cluster


def current() -> dict[str, object]:
    return {
        "time.sleep": time.sleep,
        "os.urandom": os.urandom,
        "random._urandom": random._urandom,
        "uuid.uuid1": uuid.uuid1,
        "threading.Thread.start": threading.Thread.start,
        "time.time": time.time,
        "time.monotonic": time.monotonic,
        "time.perf_counter": time.perf_counter,
        "datetime.datetime": datetime.datetime,
        "datetime.date": datetime.date,
    }


def holders(value: object) -> list[str]:
    """Every module attribute in the process that is ``value``, but its definition."""
    return [
        f"{module_name}.{name}"
        for module_name, module in list(sys.modules.items())
        if isinstance(getattr(module, "__dict__", None), dict)
        for name, held in list(vars(module).items())
        if held is value and getattr(value, "__module__", None) != module_name
    ]


def assert_no_patch_left(virtual_sleep: object = None) -> None:
    assert current() == REAL
    assert freezegun.api.freeze_factories == []  # no freeze_time active
    assert freezegun.api.call_stack_inspection_limit == INSPECTION_LIMIT
    assert VirtualTime.owner() is None
    assert sim_clock._owner is None
    assert imported_sleep is REAL["time.sleep"]
    if virtual_sleep is not None:
        assert holders(virtual_sleep) == []
    assert datetime.datetime.now().year >= 2025


class Clocky:
    name = "clocky"

    @rpc
    def nap(self, seconds):
        before = time.time()
        time.sleep(seconds)
        imported_sleep(seconds)
        return time.time() - before


def run_one_cluster(start: datetime.datetime, seconds: int) -> object:
    with SimCluster(start_time=start) as cluster:
        cluster.add_service(Clocky)
        virtual_sleep = time.sleep
        assert virtual_sleep is not REAL["time.sleep"]
        assert holders(virtual_sleep)  # the time module and this module, at least
        assert time.time() == start.timestamp()
        assert cluster.rpc.clocky.nap(seconds) == pytest.approx(2 * seconds)
        assert time.time() == pytest.approx(cluster.now())
    return virtual_sleep


def test_two_clusters_one_after_the_other_leave_no_patch():
    """Each stop restores clocks, sleep, freezegun and ownership; the next cluster starts clean."""
    assert_no_patch_left()
    first = run_one_cluster(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), 60)
    assert_no_patch_left(first)
    second = run_one_cluster(datetime.datetime(2031, 7, 1, tzinfo=datetime.timezone.utc), 5)
    assert_no_patch_left(second)


def test_clusters_inside_a_hypothesis_test_leave_no_patch():
    """A cluster per Hypothesis example: its body reads virtual time, no patch outlives it."""
    starts = st.datetimes(
        min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)
    ).map(lambda moment: moment.replace(microsecond=0, tzinfo=datetime.timezone.utc))

    @settings(max_examples=10, deadline=None, database=None)
    @given(starts, st.integers(min_value=0, max_value=3600))
    def example(start, seconds):
        assert_no_patch_left()
        virtual_sleep = run_one_cluster(start, seconds)
        assert_no_patch_left(virtual_sleep)

    example()
    assert_no_patch_left()


def test_a_module_imported_during_a_run_gets_the_real_sleep_back(monkeypatch):
    """A module that imports time.sleep while a cluster runs holds the real sleep after stop."""
    late = types.ModuleType("shimeji_late_import")
    with SimCluster():
        exec("from time import sleep", late.__dict__)
        monkeypatch.setitem(sys.modules, late.__name__, late)
        virtual_sleep = late.sleep
        assert virtual_sleep is not REAL["time.sleep"]
    assert late.sleep is REAL["time.sleep"]
    assert_no_patch_left(virtual_sleep)


def test_sleep_in_a_scheduler_callback_raises():
    """time.sleep() from a callback the event loop runs raises; it never sleeps for real."""

    def callback_that_sleeps():
        time.sleep(30)

    def callback_that_sleeps_imported():
        imported_sleep(30)

    with SimCluster() as cluster:
        for callback in (callback_that_sleeps, callback_that_sleeps_imported):
            cluster.scheduler.call_later(1, callback)
            wall = real_perf_counter()
            with pytest.raises(
                RuntimeError, match=r"time\.sleep\(30\) cannot be called from a simulator callback"
            ):
                cluster.advance(2)
            assert real_perf_counter() - wall < 5
        # the cluster goes on: the test itself may still sleep in virtual time
        time.sleep(10)
        assert cluster.elapsed() == 12
    assert_no_patch_left()


def test_other_threads_sleep_for_real():
    """A thread other than the cluster's is outside the simulation: its sleep is real."""
    slept: list[float] = []

    def sleeper():
        wall = real_perf_counter()
        time.sleep(0.05)
        slept.append(real_perf_counter() - wall)

    with SimCluster() as cluster:
        thread = threading.Thread(target=sleeper)
        with pytest.warns(UncontrolledEffectWarning, match="a thread was started"):
            thread.start()
        thread.join()
        assert cluster.elapsed() == 0
    assert slept and slept[0] >= 0.045


class FailsToSetUp(DependencyProvider):
    def setup(self):
        raise RuntimeError("cannot set up")


class Fragile:
    name = "fragile"
    broken = FailsToSetUp()

    @rpc
    def run(self):
        return "never"


def test_a_cluster_whose_replica_fails_to_start_leaves_no_patch():
    """A replica failing in start() stops the cluster: virtual time is released."""
    cluster = SimCluster()
    cluster.add_service(Fragile)
    with pytest.raises(RuntimeError, match="cannot set up"):
        cluster.start()
    assert_no_patch_left()
    with SimCluster() as other:  # the next cluster owns virtual time
        time.sleep(1)
        assert other.elapsed() == 1
    assert_no_patch_left()


def test_virtual_time_failing_midway_through_start_undoes_what_it_did(monkeypatch):
    """A failure after every patch is in place undoes them all and releases ownership."""
    patch = sim_clock._patch

    def patch_then_fail(patched, pairs):
        patch(patched, pairs)
        assert time.sleep is not REAL["time.sleep"]
        raise OSError("injected")

    monkeypatch.setattr(sim_clock, "_patch", patch_then_fail)
    with pytest.raises(OSError, match="injected"):
        SimCluster().start()
    assert_no_patch_left()


def test_stop_releases_everything_even_if_an_undo_step_fails(monkeypatch):
    """An undo step that raises does not keep the other patches or the ownership."""
    unpatch = sim_clock._unpatch

    def unpatch_then_fail(patched, modules_at_start, pairs):
        unpatch(patched, modules_at_start, pairs)
        raise OSError("injected")

    monkeypatch.setattr(sim_clock, "_unpatch", unpatch_then_fail)
    virtual_time = VirtualTime(VirtualClock(), lambda seconds: True)
    virtual_time.start()
    assert VirtualTime.owner() is virtual_time
    with pytest.raises(OSError, match="injected"):
        virtual_time.stop()
    assert_no_patch_left()
    virtual_time.stop()  # a second stop does nothing


def test_an_exception_in_the_test_releases_virtual_time():
    """Leaving a cluster's with-block through an exception still undoes every patch."""
    with pytest.raises(KeyError), SimCluster():
        raise KeyError("boom")
    assert_no_patch_left()


def test_hosting_patches_once_and_each_cluster_inside_is_a_guest():
    """Clusters started one after the other inside hosting() read their own clock,
    sleep on it and draw from their own seed; everything is undone at the end."""
    import random as random_module

    seen = []
    with VirtualTime.hosting() as host:
        assert sim_clock._owner is host and VirtualTime.owner() is None  # no cluster runs
        for seed in (1, 1, 2):
            with SimCluster(seed=seed) as cluster:
                time.sleep(2.5)
                assert cluster.elapsed() == 2.5
                assert time.time() == cluster.now()
                seen.append((random_module.random(), str(uuid.uuid4())))
                assert VirtualTime.owner() is not None
            assert sim_clock._owner is host and VirtualTime.owner() is None
    assert seen[0] == seen[1] != seen[2]
    assert_no_patch_left()


def test_hosting_takes_one_guest_at_a_time():
    """A second cluster while a guest runs is refused as any second cluster is."""
    with (
        VirtualTime.hosting(),
        SimCluster(),
        pytest.raises(Exception, match="another SimCluster already runs"),
    ):
        SimCluster().start()
    assert_no_patch_left()
