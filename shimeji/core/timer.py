"""Timers: a method run every ``interval`` seconds (nameko's ``@timer``).

The schedule is anchored at the replica's start: the method runs at
``start + interval``, ``start + 2 * interval``... (from ``start`` itself with
``eager``). A run never overlaps the next one: a tick that outlasts its
interval delays the next, and the slots it missed are made up one after the
other, as soon as each run ends, as nameko does (``max(slot - now, 0)``).
On stop, a tick running finishes and no new one starts.

The runtime's clock keeps the time: virtual on the simulator (an hour of a
30 s timer costs milliseconds), the real one on RabbitMQ.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from shimeji.core.container import ExcInfo, WorkerContext
from shimeji.core.events import Event
from shimeji.core.exceptions import ConfigurationError, ContainerBeingKilled
from shimeji.core.extensions import Entrypoint
from shimeji.core.runtime import Timer as RuntimeTimer

__all__ = ["Timer", "timer"]


class Timer(Entrypoint):
    """The entrypoint behind ``@timer(interval, eager=False)``."""

    def __init__(self, interval: float, eager: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise ConfigurationError(f"@timer interval must be seconds > 0, got {interval!r}")
        self.interval = float(interval)
        self.eager = bool(eager)
        self._lock = threading.Lock()  # the tick timer, between the timer and worker threads
        self._pending: RuntimeTimer | None = None
        self._stopped = False
        self._started_at = 0.0
        self._count = 0

    def start(self) -> None:
        container = self.container
        assert container is not None
        self._stopped = False
        self._started_at = container.runtime.now()
        self._count = 0 if self.eager else 1
        self._schedule()

    def _schedule(self) -> None:
        container = self.container
        assert container is not None
        runtime = container.runtime
        with self._lock:
            if self._stopped:
                return
            slot = self._started_at + self._count * self.interval
            self._pending = runtime.call_later(max(slot - runtime.now(), 0.0), self._tick)

    def _tick(self) -> None:
        container = self.container
        assert container is not None
        with self._lock:
            self._pending = None
            if self._stopped:
                return
        if container.tracer.enabled:
            container.tracer.emit(
                Event(
                    kind="timer_tick",
                    replica=container.replica_name,
                    service=container.service_name,
                    method=self.method_name,
                    detail=f"every {self.interval:g}s",
                )
            )
        try:
            container.spawn_worker(self, (), {}, {}, [], self.handle_result)
        except ContainerBeingKilled:
            return

    def handle_result(
        self, worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None
    ) -> tuple[Any, ExcInfo | None]:
        """The run is over (an error is logged, and the timer goes on): schedule
        the next tick."""
        self._count += 1
        self._schedule()
        return result, exc_info

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()

    def kill(self) -> None:
        self.stop()


timer = Timer.decorator
