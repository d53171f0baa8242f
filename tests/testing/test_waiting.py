"""wait_for_call (shimeji.testing.waiting and .utils): waits run the simulation
in virtual time, time out in virtual seconds, and fail at once when nothing
left can make the call. (nameko's own tests of it: tests/nameko_suite/test_waiting.py.)"""

from __future__ import annotations

import threading
import time
from unittest.mock import Mock

import pytest

from shimeji.exceptions import SimulationStalled
from shimeji.rpc import Rpc, rpc
from shimeji.sim import SimCluster
from shimeji.testing.services import entrypoint_hook, once
from shimeji.testing.utils import get_extension
from shimeji.testing.utils import wait_for_call as wait_for_mock
from shimeji.testing.waiting import Timeout, WaitResult, wait_for_call
from shimeji.timer import timer

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class Ledger:
    def record(self, entry):
        return f"recorded {entry}"


ledger = Ledger()


class Bookkeeper:
    name = "bookkeeper"

    @rpc
    def book_later(self, delay, entry):
        time.sleep(delay)
        return ledger.record(entry)


class Ticker:
    """Keeps the simulation busy without calling anything the tests wait for."""

    name = "ticker"

    @timer(1)
    def tick(self):
        pass


def test_the_wait_runs_the_simulation_until_the_call(sim_cluster):
    """Virtual time passes up to the call, and no further."""
    sim_cluster.add_service(Bookkeeper)
    t0 = time.time()
    with wait_for_call(Ledger, "record") as result:
        sim_cluster.rpc.bookkeeper.book_later.call_async(10, "rent")
    assert result.get() == "recorded rent"
    assert time.time() - t0 == pytest.approx(10, abs=0.01)


def test_nothing_left_to_make_the_call_fails_at_once(sim_cluster):
    """With nothing pending, the wait is a stall naming what it waited for,
    raised without letting virtual time pass, even with a long timeout."""
    sim_cluster.add_service(Bookkeeper)
    t0 = time.time()
    stall = pytest.raises(SimulationStalled, match=r"waits for a call to Ledger\.record")
    with stall as raised, wait_for_call(ledger, "record", timeout=3600):
        pass
    assert "Start what makes the call inside the with block" in str(raised.value)
    assert time.time() == t0


def test_a_mock_never_called_stalls_at_once(sim_cluster):
    sim_cluster.add_service(Bookkeeper)
    tracker = Mock(name="tracker")
    t0 = time.time()
    stall = pytest.raises(SimulationStalled, match="waits for a call to <Mock name='tracker'")
    with stall as e, wait_for_mock(30, tracker):
        pass  # pragma: no cover
    assert "before wait_for_call (it waits before its block runs)" in str(e.value)
    assert time.time() == t0


def test_timeout_is_virtual_seconds_while_the_simulation_is_busy(sim_cluster):
    """A timer keeps events coming: the wait ends with Timeout exactly at its
    deadline, with eventlet.Timeout's text."""
    sim_cluster.add_service(Ticker)
    t0 = time.time()
    with pytest.raises(Timeout) as raised, wait_for_mock(5, Mock()):
        pass  # pragma: no cover
    assert (str(raised.value), raised.value.seconds) == ("5 seconds", 5)
    assert time.time() - t0 == 5

    with pytest.raises(Timeout, match=r"^1 second$"), wait_for_call(ledger, "record", timeout=1):
        pass
    assert time.time() - t0 == 6


def test_a_call_inside_the_block_ends_the_wait_at_once(sim_cluster):
    sim_cluster.add_service(Ticker)
    t0 = time.time()
    with wait_for_call(ledger, "record", timeout=0) as result:
        ledger.record("x")
    assert result.get() == "recorded x"
    assert time.time() == t0


def test_service_code_may_wait_too(container_factory):
    """Inside a worker the wait parks the worker while the rest runs on."""
    seen = Mock()

    class Watcher:
        name = "watcher"

        @rpc
        def watch(self):
            with wait_for_mock(10, seen):
                return time.time()

    class Caller:
        name = "caller"

        @once()
        def go(self):
            time.sleep(3)
            seen()

    watcher = container_factory(Watcher)
    watcher.start()
    t0 = time.time()
    with entrypoint_hook(watcher, "watch") as watch:
        container_factory(Caller).start()
        assert watch() - t0 == pytest.approx(3, abs=0.01)

    with entrypoint_hook(watcher, "watch") as watch:
        seen.reset_mock()
        with pytest.raises(Timeout, match=r"^10 seconds$"):
            watch()


def test_without_a_simulation_it_waits_in_real_time_for_threads():
    tracker = Mock()
    threading.Timer(0.01, tracker).start()
    with wait_for_mock(60, tracker) as waited:  # ends at the call: a bound for a loaded machine
        assert waited is tracker
    with pytest.raises(Timeout, match=r"^0\.01 seconds$"), wait_for_mock(0.01, Mock()):
        pass  # pragma: no cover


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: wait_for_mock(1, ledger.record), TypeError, "waits for a mock"),
        (lambda: wait_for_mock(-1, Mock()), ValueError, "timeout is seconds >= 0"),
        (lambda: wait_for_mock(None, Mock()), ValueError, "got None"),
        (lambda: wait_for_call(ledger, 3), TypeError, "attribute name"),
        (lambda: wait_for_call(ledger, "nope"), AttributeError, "nope"),
        (lambda: wait_for_call(Ledger, "__doc__"), TypeError, "not callable"),
        (lambda: wait_for_call(ledger, "record", 3), TypeError, "callback is a function"),
        (
            lambda: wait_for_call(ledger, "record", timeout=float("nan")),
            ValueError,
            "timeout is seconds",
        ),
    ],
)
def test_bad_arguments_are_refused_saying_what_is_expected(call, error, words):
    with pytest.raises(error, match=words), call():
        pass  # pragma: no cover


def test_the_patch_is_undone_after_the_block():
    with wait_for_call(Ledger, "record"):
        assert Ledger.record is not Ledger.__dict__.get("_original")
        ledger.record("a")
    assert Ledger.__dict__["record"].__qualname__ == "Ledger.record"


def test_wait_result_not_ready_says_when_to_ask():
    with pytest.raises(WaitResult.NotReady, match="after the wait_for_call block"):
        WaitResult().get()


@pytest.mark.filterwarnings("ignore::shimeji.sim.entropy.UncontrolledEffectWarning")
def test_while_a_simulation_runs_a_threads_later_call_is_not_awaited(sim_cluster):
    """The simulation has nothing left to run: the wait stalls at once, though
    a thread of the test's own would call the mock a little later."""
    sim_cluster.add_service(Bookkeeper)
    tracker = Mock()
    later = threading.Event()  # set once the wait is over: the call comes after it

    def call_later() -> None:
        later.wait()
        tracker()

    caller = threading.Thread(target=call_later, daemon=True)
    caller.start()
    try:
        with pytest.raises(SimulationStalled), wait_for_mock(30, tracker):
            pass  # pragma: no cover
        assert not tracker.called
    finally:
        later.set()
        caller.join(60)
    assert tracker.called  # the thread did call it, once the wait had stalled


def test_a_worker_waiting_for_a_call_nothing_makes_stalls(container_factory):
    """A worker's wait without a timeout ends, once nothing else is left to
    run, with SimulationStalled rather than polling for ever."""

    class Watcher:
        name = "watcher"

        @rpc
        def watch(self):
            with wait_for_call(ledger, "record"):
                pass

    watcher = container_factory(Watcher)
    watcher.start()
    with (
        pytest.raises(SimulationStalled, match=r"a worker waits for a call to Ledger\.record"),
        entrypoint_hook(watcher, "watch", timeout=None) as watch,
    ):
        watch()


def test_a_fixture_containers_spawned_workers_can_be_awaited(container_factory, sim_cluster):
    """wait_for_call(container, "spawn_worker") sees the workers the replica
    spawns for its entrypoints, as in nameko's tests, and direct calls too."""
    container = container_factory(Bookkeeper)
    container.start()
    with wait_for_call(container, "spawn_worker") as spawned:
        sim_cluster.rpc.bookkeeper.book_later.call_async(1, "rent")
    worker_ctx = spawned.get()
    assert (worker_ctx.method_name, worker_ctx.args) == ("book_later", (1, "rent"))
    assert type(container).spawn_worker is container.spawn_worker.__func__  # unpatched after

    entrypoint = get_extension(container, Rpc, method_name="book_later")
    with wait_for_call(container, "spawn_worker") as spawned:
        direct = container.spawn_worker(entrypoint, (0, "tax"), {})
    assert spawned.get() is direct


def test_a_cluster_without_virtual_time_is_run_by_the_wait():
    """A cluster made with virtual_time=False runs its events only when the test's
    thread runs them: the wait runs it (it does not poll real time for ever),
    and a call nothing can make stalls at once."""
    with SimCluster(virtual_time=False) as cluster:
        cluster.add_service(Bookkeeper)
        t0 = cluster.clock.elapsed()
        with wait_for_call(Ledger, "record") as result:
            cluster.rpc.bookkeeper.book_later.call_async(0, "rent")
        assert result.get() == "recorded rent"
        assert cluster.clock.elapsed() > t0  # the simulation's time moved
        tracker = Mock(name="tracker")
        stall = pytest.raises(SimulationStalled, match="waits for a call to <Mock name='tracker'")
        with stall, wait_for_mock(3600, tracker):
            pass  # pragma: no cover


def test_several_clusters_without_virtual_time_are_ambiguous():
    """With two clusters running and none on virtual time, the wait cannot tell
    which to run: it says so, naming them, instead of waiting."""
    with SimCluster(virtual_time=False) as one, SimCluster(virtual_time=False) as two:
        ambiguous = pytest.raises(RuntimeError, match="2 simulated clusters run")
        with ambiguous as raised, wait_for_call(ledger, "record"):
            pass
        assert one.uri in str(raised.value) and two.uri in str(raised.value)
