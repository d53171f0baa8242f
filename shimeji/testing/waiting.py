"""Waiting for a call in a test (nameko's ``nameko.testing.waiting``), on shimeji.

    with wait_for_call(TrackingDependency, "worker_teardown") as result:
        dispatch("orders", "placed", {"id": 1})
    assert result.get() is None

``wait_for_call(obj, target, callback=None)`` replaces ``obj.target`` for the
block with a wrapper that calls the original and records each call; when the
block ends it waits until a call has happened (one for which
``callback(args, kwargs, result, exc_info)`` returns true, if given). It
yields a ``WaitResult``: ``get()`` gives that call's result or raises its
exception.

Where it waits: while a simulated cluster runs (the ``sim_cluster`` and
nameko fixtures; one made with ``virtual_time=False`` too, whose events run
only when the test's thread runs them), it runs the simulation until the call
happens, in the simulation's time. If nothing left in the simulation can make the
call, it raises ``SimulationStalled`` at once, saying what it waited for,
rather than waiting for ever; with ``timeout`` (virtual seconds, a shimeji
addition: nameko's waits without one) it raises ``Timeout`` once that much
virtual time has passed. Called by service code (in a worker), the worker
waits, looking every virtual millisecond, while the rest of the simulation
runs on. With no simulation running it waits in real time, for calls from
other threads, as nameko's does.

``shimeji.testing.utils.wait_for_call(timeout, mock_method)``, nameko's other
``wait_for_call``, waits the same way for a mock to have been called.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn
from unittest.mock import patch

from shimeji.core.container import ExcInfo
from shimeji.core.exceptions import SimulationStalled

__all__ = ["Timeout", "WaitResult", "wait_for_call"]

#: How often a wait with no simulation running looks again (real seconds).
_POLL = 0.001


class Timeout(Exception):
    """A wait did not end within its timeout: nameko's tests get
    ``eventlet.Timeout`` here, and its text is eventlet's (``1 second``,
    ``0.5 seconds``). ``seconds`` is the timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(seconds)

    def __str__(self) -> str:
        return f"{self.seconds} second{'' if self.seconds == 1 else 's'}"


class WaitResult:
    """The outcome of the call ``wait_for_call`` waited for.

    ``send(result, exc_info)`` records the first outcome only; ``get()``
    returns its result or raises its exception, and raises
    ``WaitResult.NotReady`` while there is none. ``has_result`` is true once
    an outcome is recorded, a result of None included.
    """

    class NotReady(Exception):
        """No outcome has been recorded yet."""

    #: what ``get()`` says before there is an outcome
    _not_ready = "no call has been recorded yet: call get() after the wait_for_call block"

    def __init__(self) -> None:
        self.has_result = False
        self._result: Any = None
        self._exc_info: ExcInfo | None = None

    def _record(self, result: Any, exc_info: ExcInfo | None) -> bool:
        """Keep the first outcome: False (nothing kept) if there is one already."""
        if self.has_result:
            return False
        self.has_result = True
        self._result = result
        self._exc_info = exc_info
        return True

    def send(self, result: Any, exc_info: ExcInfo | None) -> None:
        self._record(result, exc_info)

    def get(self) -> Any:
        if not self.has_result:
            raise self.NotReady(self._not_ready)
        if self._exc_info is not None:
            raise self._exc_info[1].with_traceback(self._exc_info[2])
        return self._result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'ready' if self.has_result else 'not ready'}>"


def check_timeout(timeout: Any, what: str) -> float | None:
    """``timeout`` as seconds >= 0 (or None), else a ``ValueError`` saying so."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout < 0
    ):
        raise ValueError(
            f"{what}: timeout is seconds >= 0, or None to wait without one; got {timeout!r}"
        )
    return timeout


def wait_until(
    done: Callable[[], bool], timeout: float | None, description: str, hint: str
) -> None:
    """Return once ``done()`` holds; ``description`` names what is awaited, as a
    noun phrase ("a call to Counter.count"), and ``hint`` says how to fix a stall.

    On a running simulated cluster the simulation runs until it holds:
    ``SimulationStalled`` if nothing left to run can make it hold, ``Timeout``
    once ``timeout`` of the simulation's seconds have passed. Without one,
    real time passes, ``done()`` being looked at every millisecond.
    """
    if done():
        return
    cluster = _cluster_to_run(description)
    if cluster is None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(timeout)  # type: ignore[arg-type]
            time.sleep(_POLL)
        return
    scheduler = cluster.scheduler
    if scheduler.current_task() is not None:
        _wait_in_task(scheduler, done, timeout, description, hint)
        return
    from shimeji.sim.scheduler import to_us

    limit = None if timeout is None else scheduler.clock.now_us + to_us(timeout)
    if scheduler.run(done, limit):
        return
    if scheduler.idle():
        _stalled(scheduler, "the test", description, hint)
    assert limit is not None  # without a limit the loop stops only when idle
    scheduler.clock.advance_to(limit)
    raise Timeout(timeout)  # type: ignore[arg-type]


def _cluster_to_run(description: str) -> Any:
    """The simulated cluster a wait runs: the one on virtual time, else the one
    running without it (``virtual_time=False``: its events still run only when
    the test's thread runs them, so polling real time would wait for ever);
    None when no cluster runs."""
    # the simulator imports the testing tools: imported here, not at the top
    from shimeji.sim.cluster import current_cluster, running_clusters

    cluster = current_cluster()
    if cluster is not None:
        return cluster
    running = running_clusters()
    if len(running) > 1:
        uris = ", ".join(c.uri for c in running)
        raise RuntimeError(
            f"waiting for {description}: {len(running)} simulated clusters run ({uris}), none "
            "on virtual time, and a wait can run only one of them. Stop the clusters the "
            "test no longer needs, or drive the one you mean (cluster.advance, "
            "cluster.scheduler.run_root) instead of waiting"
        )
    return running[0] if running else None


def _stalled(scheduler: Any, who: str, description: str, hint: str) -> NoReturn:
    stuck = scheduler.stall_reporter()
    lines = "\n".join(f"  - {line}" for line in stuck) or "  (nothing else is pending)"
    raise SimulationStalled(
        f"the simulation stalled at t={scheduler.clock.elapsed():.6f}s: {who} waits "
        f"for {description}, and nothing left to run can ever make it.\n"
        f"What waits, and for what:\n{lines}\n{hint}",
        stuck,
    )


def _wait_in_task(
    scheduler: Any,
    done: Callable[[], bool],
    timeout: float | None,
    description: str,
    hint: str,
) -> None:
    """Service code waits: the task sleeps a virtual millisecond at a time
    (other tasks run meanwhile) until ``done()`` holds or the timeout passes;
    when nothing else is left to run, it has stalled."""
    from shimeji.sim.scheduler import to_us

    limit = None if timeout is None else scheduler.clock.now_us + to_us(timeout)
    while not done():
        if limit is not None and scheduler.clock.now_us >= limit:
            raise Timeout(timeout)  # type: ignore[arg-type]
        scheduler.sleep(_POLL)
        if not done() and scheduler.idle():
            _stalled(scheduler, "a worker", description, hint)


def _patched_object(obj: Any, target: str) -> Any:
    """What to patch for ``obj.target``: ``obj`` itself, but for the workers of a
    container of the nameko fixtures (a ``SimContainer``), which its replica's
    ``ServiceContainer`` spawns: ``wait_for_call(container, "spawn_worker")``
    waits for one, as in nameko's tests (the call seen is the inner one's)."""
    from shimeji.testing.containers import SimContainer  # it imports the testing tools

    if target == "spawn_worker" and isinstance(obj, SimContainer):
        return obj.service_container
    return obj


def _describe(obj: Any, target: str) -> str:
    owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    return f"a call to {owner}.{target} (wait_for_call)"


@contextlib.contextmanager
def wait_for_call(
    obj: Any,
    target: str,
    callback: Callable[[tuple[Any, ...], dict[str, Any], Any, ExcInfo | None], Any] | None = None,
    *,
    timeout: float | None = None,
) -> Iterator[WaitResult]:
    """Patch ``obj.target`` for the block; when the block ends, wait until it
    has been called (and ``callback(args, kwargs, result, exc_info)``, if
    given, returned true for the call). Yields the ``WaitResult`` of that call.

    The wrapper calls the original and passes its result or exception on;
    the block's own calls count. ``obj`` may be a class (every instance's
    calls count), an instance or a module. See the module's documentation
    for where the wait happens, and for ``timeout``.
    """
    if not isinstance(target, str):
        raise TypeError(f"wait_for_call: target is an attribute name (a str), got {target!r}")
    obj = _patched_object(obj, target)
    original = getattr(obj, target)  # AttributeError, as patch.object would raise
    if not callable(original):
        raise TypeError(f"wait_for_call: {target!r} of {obj!r} is not callable: {original!r}")
    if callback is not None and not callable(callback):
        raise TypeError(
            "wait_for_call: callback is a function (args, kwargs, result, exc_info) -> bool, "
            f"got {callback!r}"
        )
    timeout = check_timeout(timeout, "wait_for_call")
    result = WaitResult()
    lock = threading.Lock()

    def record(
        args: tuple[Any, ...], kwargs: dict[str, Any], res: Any, exc: ExcInfo | None
    ) -> None:
        if callback is None or callback(args, kwargs, res, exc):
            with lock:
                result.send(res, exc)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            res = original(*args, **kwargs)
        except Exception:
            exc_info: ExcInfo = sys.exc_info()  # type: ignore[assignment]
            record(args, kwargs, None, exc_info)
            raise
        record(args, kwargs, res, None)
        return res

    with patch.object(obj, target, new=wrapper):
        yield result
        wait_until(
            lambda: result.has_result,
            timeout,
            _describe(obj, target),
            "Start what makes the call inside the with block (dispatch the event, start "
            "the container, call the service), or check that the object patched is the "
            "one the code calls.",
        )
