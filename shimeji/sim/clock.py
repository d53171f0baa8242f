"""Virtual time: the simulator's clock, and how service code gets to see it.

``VirtualClock`` counts whole microseconds since the simulation started;
integers keep every sum exact, so the same run prints the same times.

``VirtualTime`` makes ``time.time()``, ``datetime.now()`` and friends read
that clock while a cluster runs (through freezegun, started once per cluster
and moved as the clock moves), and turns ``time.sleep()`` into a virtual
sleep. Only one cluster at a time can own the process's notion of time.
"""

from __future__ import annotations

import datetime as _dt
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from shimeji.core.exceptions import ConfigurationError

__all__ = ["DEFAULT_START", "VirtualClock", "VirtualTime"]

#: Where virtual time starts unless a cluster is told otherwise.
DEFAULT_START = _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc)

# Kept in a tuple, not as module globals: freezegun replaces module globals
# that hold the real clock functions, and shimeji needs the real ones.
_REAL = (time.sleep, time.perf_counter)

#: Modules whose calls to the clock keep getting real time (freezegun's ignore list).
_REAL_TIME_USERS = ["hypothesis.", "_pytest.", "pluggy."]


class VirtualClock:
    """Virtual time in microseconds since the start of a simulation.

    Invariant: the clock never goes backwards. It only moves when the event
    loop reaches an event scheduled later than now.
    """

    __slots__ = ("_listeners", "_now_us", "start", "start_us")

    def __init__(self, start: _dt.datetime | float = DEFAULT_START) -> None:
        if isinstance(start, _dt.datetime):
            if start.tzinfo is None:
                start = start.replace(tzinfo=_dt.timezone.utc)
            start_us = round(start.timestamp() * 1_000_000)
        elif isinstance(start, (int, float)) and not isinstance(start, bool):
            start_us = round(start * 1_000_000)
        else:
            raise ConfigurationError(
                f"start_time must be a datetime or epoch seconds, got {start!r}"
            )
        self.start_us = start_us
        self.start = start_us / 1_000_000
        self._now_us = 0
        self._listeners: list[Callable[[int], None]] = []

    @property
    def now_us(self) -> int:
        """Microseconds since the simulation started."""
        return self._now_us

    def time(self) -> float:
        """Virtual epoch seconds."""
        return (self.start_us + self._now_us) / 1_000_000

    def elapsed(self) -> float:
        """Virtual seconds since the simulation started."""
        return self._now_us / 1_000_000

    def advance_to(self, now_us: int) -> None:
        if now_us < self._now_us:
            raise ValueError(
                f"virtual time cannot go backwards: asked to move from {self._now_us}us "
                f"to {now_us}us"
            )
        if now_us != self._now_us:
            self._now_us = now_us
            for listener in self._listeners:
                listener(now_us)

    def on_change(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    def datetime(self) -> _dt.datetime:
        """Virtual now as a naive UTC datetime (freezegun's representation)."""
        return _EPOCH + _dt.timedelta(microseconds=self.start_us + self._now_us)


_EPOCH = _dt.datetime(1970, 1, 1)

_owner_lock = threading.Lock()
_owner: VirtualTime | None = None


class VirtualTime:
    """Patches the process's clocks to a VirtualClock while a cluster runs.

    ``sleeper(seconds)`` is called for ``time.sleep`` made on the cluster's
    thread; it returns False to fall back to a real sleep.
    """

    def __init__(self, clock: VirtualClock, sleeper: Callable[[float], bool]) -> None:
        self.clock = clock
        self.sleeper = sleeper
        self._freezer: Any = None
        self._factory: Any = None
        self._thread: threading.Thread | None = None
        self._patched: list[tuple[Any, str]] = []
        self._inspection_limit: int | None = None

    def start(self) -> None:
        global _owner
        import freezegun

        with _owner_lock:
            if _owner is not None:
                raise ConfigurationError(
                    "another SimCluster already runs on virtual time in this process; stop it "
                    "first, or create this one with virtual_time=False"
                )
            _owner = self
        self._thread = threading.current_thread()
        # Test runners keep the real clock: Hypothesis times examples and
        # enforces deadlines with it, pytest reports durations. freezegun gives
        # real time to calls made *from* those modules; looking one frame up
        # only (not freezegun's default five) keeps the code they call, such as
        # a test body, on virtual time.
        from freezegun import api

        self._inspection_limit = getattr(api, "call_stack_inspection_limit", None)
        if self._inspection_limit is not None:
            api.call_stack_inspection_limit = 1
        self._freezer = freezegun.freeze_time(self.clock.datetime(), ignore=_REAL_TIME_USERS)
        self._factory = self._freezer.start()
        if not self._read_clock_on_demand():
            self.clock.on_change(self._moved)
        self._patch_sleep()

    def stop(self) -> None:
        global _owner
        if self._freezer is None:
            return
        for namespace, name in self._patched:
            if namespace.get(name) is _virtual_sleep:
                namespace[name] = _REAL[0]
        self._patched.clear()
        self._freezer.stop()
        self._freezer = self._factory = None
        if self._inspection_limit is not None:
            from freezegun import api

            api.call_stack_inspection_limit = self._inspection_limit
        with _owner_lock:
            _owner = None

    def _read_clock_on_demand(self) -> bool:
        """Have freezegun ask the clock for the time only when code reads it.

        freezegun reads the current time by calling the last factory in
        ``freezegun.api.freeze_factories``; putting the clock's own reader
        there avoids building a datetime at every tick of virtual time. If
        freezegun's layout is not the expected one, the clock pushes every
        change instead (``_moved``).
        """
        from freezegun import api

        factories = getattr(api, "freeze_factories", None)
        if not isinstance(factories, list) or not factories or factories[-1] is not self._factory:
            return False
        factories[-1] = self.clock.datetime
        return True

    def _moved(self, now_us: int) -> None:
        if self._factory is not None:
            # FrozenDateTimeFactory reads this attribute on every time() call.
            self._factory.time_to_freeze = self.clock.datetime()

    def _patch_sleep(self) -> None:
        real_sleep = _REAL[0]
        # The time module itself, and every module holding time.sleep under any
        # name (`from time import sleep`), as freezegun does for time.time.
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for name, value in list(namespace.items()):
                if value is real_sleep:
                    namespace[name] = _virtual_sleep
                    self._patched.append((namespace, name))


def _virtual_sleep(seconds: float) -> None:
    owner = _owner
    if owner is not None and threading.current_thread() is owner._thread and owner.sleeper(seconds):
        return
    _REAL[0](seconds)


def real_perf_counter() -> float:
    """The real perf_counter, even while freezegun is active."""
    return _REAL[1]()
