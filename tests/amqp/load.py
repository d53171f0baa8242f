"""Continuous load: client threads calling a service until told to stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Load"]


class Load:
    """``threads`` threads, each calling ``call(tag, value)`` in a loop and checking
    that it returns ``value * 2``; every failure is kept with its tag."""

    def __init__(self, call: Callable[[str, int], Any], threads: int = 4) -> None:
        self.call = call
        self.answered: list[str] = []  # tags of the calls answered rightly
        self.failures: list[tuple[str, BaseException | str]] = []
        self.times: list[float] = []  # when each call ended (monotonic)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _run(self, worker: int) -> None:
        count = 0
        while not self._stop.is_set():
            count += 1
            tag = f"w{worker}-{count}"
            try:
                result = self.call(tag, count)
            except Exception as exc:
                with self._lock:
                    self.failures.append((tag, exc))
                continue
            with self._lock:
                if result != count * 2:
                    self.failures.append((tag, f"wrong result {result!r}"))
                else:
                    self.answered.append(tag)
                self.times.append(time.monotonic())

    def stop(self, timeout: float = 120) -> None:
        """Stop making new calls; wait for those in flight to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a call never ended"
