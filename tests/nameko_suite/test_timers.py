"""Timers on the simulator, test by test after nameko's ``test/test_timers.py``.

Time is virtual: ``time.sleep`` in the test and in the service moves the
simulation's clock, so the schedule is exact where nameko's test allows for
scheduling noise. (``test_expected_error_in_worker`` is in test_errors.py.)
"""

from __future__ import annotations

import logging
import time
from unittest.mock import Mock

import pytest

from shimeji.testing.utils import get_extension, wait_for_call
from shimeji.timer import Timer, timer

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


@pytest.fixture
def tracker():
    return Mock()


# follows nameko test/test_timers.py::test_timer_run
@pytest.mark.parametrize(
    ("interval", "eager", "call_duration", "expected_calls"),
    [
        (0.1, False, 0, 1),
        (0.1, True, 0, 2),
        (5, False, 0, 0),
        (5, True, 0, 1),
        # a call's duration delays the next one
        (0.1, False, 0.3, 1),  # fires at 0.1
        (0.1, True, 0.3, 1),  # fires at 0 (0.3 comes after the stop)
        (0.025, False, 0.07, 2),  # fires at 0.025, 0.095 (0.165 after the stop)
        (0.025, True, 0.07, 3),  # fires at 0, 0.07, 0.14
    ],
)
def test_timer_run(interval, eager, call_duration, expected_calls, container_factory, tracker):
    timeout = 0.15
    times = []

    class Service:
        name = "service"

        @timer(interval, eager)
        def tick(self):
            times.append(time.time())
            time.sleep(call_duration)
            tracker()

    container = container_factory(Service, {})
    instance = get_extension(container, Timer)
    assert instance.interval == interval
    assert instance.eager == eager

    t0 = time.time()
    container.start()
    time.sleep(timeout)
    container.stop()

    rel_times = [round(t - t0, 6) for t in times]
    assert tracker.call_count == expected_calls, rel_times


# follows nameko test/test_timers.py::test_kill_stops_timer
def test_kill_stops_timer(container_factory, tracker):
    class Service:
        name = "service"

        @timer(0.001)  # nameko's is @timer(0); shimeji asks for an interval > 0
        def tick(self):
            tracker()

    container = container_factory(Service, {})
    container.start()

    with wait_for_call(1, tracker):
        container.kill()

    # a live timer would fire a hundred times in this nap
    time.sleep(0.1)
    assert tracker.call_count == 1


# follows nameko test/test_timers.py::test_stop_while_sleeping
def test_stop_while_sleeping(container_factory, tracker):
    class Service:
        name = "service"

        @timer(5)
        def tick(self):
            tracker()  # pragma: no cover

    container = container_factory(Service, {})
    container.start()
    t0 = time.time()
    container.stop()
    assert time.time() - t0 < 1  # nameko: eventlet.Timeout(1); the timer's wait holds nothing up
    assert tracker.call_count == 0, "the timer should not have fired"


# follows nameko test/test_timers.py::test_timer_error
def test_timer_error(container_factory, caplog, tracker):
    class Service:
        name = "service"

        @timer(5, True)
        def tick(self):
            tracker()

    tracker.side_effect = ValueError("Boom!")
    container = container_factory(Service, {})
    with caplog.at_level(logging.CRITICAL):
        container.start()
        time.sleep(0.05)
        assert tracker.call_count == 1
        container.stop()
    # the error was the worker's: nothing critical, the container stopped cleanly
    assert len(caplog.records) == 0
