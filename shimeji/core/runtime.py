"""The runtime contract: time and concurrency, as the RPC rules see them.

The simulator's runtime is a discrete-event scheduler running greenlets in
virtual time; the production runtime is a pool of threads and the real clock.
Core code only spawns tasks, waits on waiters, sets timers and reads the clock
through this contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Runtime", "Task", "Timer", "Waiter"]


class Waiter(Protocol):
    """A one-shot result that one task waits for and another provides."""

    @property
    def done(self) -> bool:
        """Whether a result or an exception has been set."""

    def set_result(self, value: Any) -> None:
        """Provide the value; later calls are ignored."""

    def set_exception(self, exc: BaseException) -> None:
        """Provide an exception to raise in the waiter; later calls are ignored."""

    def wait(self) -> Any:
        """Block the calling task until done; return the value or raise the exception."""


class Timer(Protocol):
    def cancel(self) -> None:
        """Prevent the timer from firing (no effect once it has)."""


class Task(Protocol):
    @property
    def done(self) -> bool:
        """Whether the task has finished."""

    def kill(self) -> None:
        """Stop the task; it unwinds with GreenletExit (sim) or is abandoned (threads)."""


class Runtime(Protocol):
    def now(self) -> float:
        """Seconds since the epoch on this runtime's clock."""

    def new_id(self) -> str:
        """A fresh unique identifier (uuid4 text form)."""

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> Task:
        """Run ``fn(*args)`` concurrently."""

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Call ``fn(*args)`` after ``delay`` seconds, outside of any task."""

    def new_waiter(self, description: str) -> Waiter:
        """A waiter; ``description`` names what is awaited, for stall reports."""

    def sleep(self, seconds: float) -> None:
        """Block the calling task for ``seconds``."""
