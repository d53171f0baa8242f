"""Who may wait on what: the root runs the loop, a task parks, and a task
cannot run the loop it runs in."""

from __future__ import annotations

import random

import pytest

from shimeji.sim.clock import VirtualClock
from shimeji.sim.scheduler import Scheduler


def _scheduler() -> Scheduler:
    return Scheduler(VirtualClock(), random.Random(0))


def test_a_task_waiting_parks_and_the_root_runs_the_loop() -> None:
    scheduler = _scheduler()
    waiter = scheduler.new_waiter("a value from the timer")
    seen: list[object] = []
    scheduler.spawn(lambda: seen.append(waiter.wait()), name="parked")
    scheduler.call_later(2.0, waiter.set_result, "done")
    done = scheduler.new_waiter("the task's end")
    scheduler.call_later(3.0, done.set_result, None)
    done.wait()  # the root: runs the loop until done
    assert seen == ["done"]
    assert scheduler.clock.now_us == 3_000_000


def test_a_task_cannot_run_the_loop() -> None:
    scheduler = _scheduler()
    errors: list[str] = []

    def runs_the_loop() -> None:
        try:
            scheduler.run()
        except RuntimeError as exc:
            errors.append(str(exc))

    scheduler.spawn(runs_the_loop, name="bad")
    scheduler.run()
    assert errors and "blocking call from inside the simulation's event loop" in errors[0]


def test_the_root_waiting_on_nothing_to_come_stalls() -> None:
    scheduler = _scheduler()
    with pytest.raises(Exception, match="never"):
        scheduler.new_waiter("a reply that never comes").wait()
