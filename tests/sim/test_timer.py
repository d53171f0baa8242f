"""Timers on the simulator: nameko's schedule, in virtual time.

The expected start times are those nameko 2.14.1 shows on a real clock with
the same intervals and run times (ticks anchored at start, missed slots made
up one after the other, never two runs at once).
"""

from __future__ import annotations

import time

import pytest

from shimeji.exceptions import ConfigurationError
from shimeji.rpc import rpc
from shimeji.sim import SimCluster
from shimeji.timer import timer

STARTS: list[float] = []


@pytest.fixture(autouse=True)
def clear():
    STARTS.clear()
    yield
    STARTS.clear()


def service(interval, eager=False, run_for=(0.0,), fail=False):
    """A service whose timer records its start times; run ``n`` takes
    ``run_for[n]`` seconds (the last value after that)."""

    class Ticking:
        name = "ticking"

        @timer(interval=interval, eager=eager)
        def tick(self):
            STARTS.append(round(time.time() - ORIGIN[0], 6))
            taken = run_for[min(len(STARTS) - 1, len(run_for) - 1)]
            if taken:
                time.sleep(taken)
            if fail:
                raise RuntimeError(f"tick {len(STARTS)} failed")

    return Ticking


ORIGIN = [0.0]


def run(service_cls, seconds):
    with SimCluster(seed=1) as cluster:
        ORIGIN[0] = cluster.now()
        cluster.add_service(service_cls)
        cluster.advance(seconds)
        return cluster


def test_an_hour_of_a_30s_timer_is_120_ticks():
    run(service(30), 3600)
    assert len(STARTS) == 120
    assert STARTS[:3] == [30.0, 60.0, 90.0]


def test_eager_ticks_at_start():
    run(service(30, eager=True), 3600)
    assert len(STARTS) == 121
    assert STARTS[:2] == [0.0, 30.0]


def test_a_slow_tick_delays_the_next_and_never_overlaps():
    """interval 1 s, runs of 2.5 s: a run starts when the last ends (nameko:
    1.0 3.5 6.0 8.5)."""
    run(service(1, run_for=(2.5,)), 10)
    assert STARTS == [1.0, 3.5, 6.0, 8.5]


def test_eager_slow_ticks():
    """nameko with eager=True: 0.0 2.5 5.0 7.5."""
    run(service(1, eager=True, run_for=(2.5,)), 9.9)
    assert STARTS == [0.0, 2.5, 5.0, 7.5]


def test_missed_slots_are_made_up_in_a_burst():
    """Three runs of 2.5 s, then quick ones: the slots missed (4 to 8) run one
    after the other, then the schedule is back on the whole seconds (nameko:
    1.0 3.5 6.0 8.5 8.55 8.6 8.65 8.7 9.0 10.0 11.0 12.0)."""
    run(service(1, run_for=(2.5, 2.5, 2.5, 0.05)), 12.01)
    assert STARTS == [1.0, 3.5, 6.0, 8.5, 8.55, 8.6, 8.65, 8.7, 9.0, 10.0, 11.0, 12.0]


def test_a_failing_tick_does_not_stop_the_timer():
    run(service(0.5, fail=True), 2.2)
    assert STARTS == [0.5, 1.0, 1.5, 2.0]


def test_stop_lets_a_running_tick_finish_and_starts_no_other():
    """Stopped at 1.0 s in a 3 s run: the run ends at 3.0 s, no other starts
    (nameko: stop() returns at 3.0)."""
    with SimCluster(seed=1) as cluster:
        ORIGIN[0] = cluster.now()
        (replica,) = cluster.add_service(service(1, eager=True, run_for=(3.0,)))
        cluster.advance(1.0)
        replica.container.begin_stop()
        cluster.advance(10)
        ends = [e.time for e in cluster.trace.events if e.kind == "worker_end"]
    assert STARTS == [0.0]
    assert ends == [pytest.approx(3.0)]


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), "5", True, None])
def test_an_interval_is_seconds_above_zero(interval):
    with pytest.raises(ConfigurationError, match="interval must be seconds > 0"):
        timer(interval=interval)


class TickAndCall:
    name = "tick_and_call"

    @timer(interval=1)
    def tick(self):
        pass

    @rpc
    def hit(self):
        pass


@pytest.mark.parametrize(("schedule", "first"), [((), "timer_tick"), ((1,), "deliver")])
def test_a_tick_racing_a_message_is_a_tie_the_schedule_decides(schedule, first):
    """A tick and a request due at the same instant: the schedule (as
    ``strategies.schedules`` draws it) says which runs first."""
    with SimCluster(seed=0, schedule=schedule) as cluster:
        cluster.add_service(TickAndCall)
        cluster.advance(0.999)
        cluster.rpc.tick_and_call.hit.call_async()  # delivered 1 ms later: at 1.0
        cluster.advance(0.5)
        at_one = [
            e.kind
            for e in cluster.trace.events
            if e.time == pytest.approx(1.0) and e.kind in ("timer_tick", "deliver")
        ]
    assert at_one[0] == first
    assert sorted(at_one) == ["deliver", "timer_tick"]
