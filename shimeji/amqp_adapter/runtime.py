"""The production runtime: OS threads, the real clock, uuid4 ids.

``ThreadRuntime`` implements ``shimeji.core.runtime.Runtime`` with

- a bounded pool of worker threads (``spawn``): threads are started on
  demand up to ``max_threads`` and then reused; tasks beyond that wait their
  turn in order;
- one timer thread (``call_later``) running callbacks in deadline order;
- waiters built on a lock (``new_waiter``): ``wait()`` blocks the calling
  thread until another thread provides the outcome.

A thread cannot be stopped from outside. ``Task.kill()`` therefore marks the
task killed and wakes it if it is blocked in ``Waiter.wait()`` or
``sleep()``; the task unwinds from there with ``WorkerKilled`` (a
``BaseException``, like the simulator's ``GreenletExit``, so that
``except Exception`` in service code does not swallow it). A task busy
elsewhere (say, in a database call) runs on until its next blocking call on
this runtime.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from shimeji.core.exceptions import ConfigurationError

__all__ = [
    "ThreadRuntime",
    "ThreadTask",
    "ThreadTimer",
    "ThreadWaiter",
    "WorkerKilled",
    "current_task",
    "lend_thread",
]

log = logging.getLogger("shimeji.amqp.runtime")

_local = threading.local()


class WorkerKilled(BaseException):
    """Unwinds a task whose replica was killed, at its next blocking call."""


#: How many ids one read of the system's random source makes.
_ID_BATCH = 128
_ready_ids: list[str] = []


def _new_id() -> str:
    """A uuid4 in its text form (``str(uuid.uuid4())``), made ``_ID_BATCH`` at a
    time from one read of ``os.urandom``: a call costs a list pop, not a system
    call and a ``UUID`` object. Any thread; a forked child starts afresh."""
    try:
        return _ready_ids.pop()
    except IndexError:
        pass
    raw = bytearray(os.urandom(16 * _ID_BATCH))
    raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # variant RFC 4122
    text = raw.hex()
    ids = [
        f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-{text[i + 12 : i + 16]}-"
        f"{text[i + 16 : i + 20]}-{text[i + 20 : i + 32]}"
        for i in range(0, 32 * _ID_BATCH, 32)
    ]
    made = ids.pop()
    _ready_ids.extend(ids)  # other threads may take from them already
    return made


os.register_at_fork(after_in_child=_ready_ids.clear)


def current_task() -> ThreadTask | None:
    """The task the calling thread runs, if it is one of a ThreadRuntime's."""
    return getattr(_local, "task", None)


_current_task = current_task

#: What ``lend_thread`` takes: ``(submit, task)`` pairs, where ``submit(task)``
#: hands the task to its pool after all.
Lent = list[tuple[Callable[["ThreadTask"], None], "ThreadTask"]]


def lend_thread(slot: Lent | None) -> None:
    """Offer the calling thread for the next task spawned on it, or withdraw it.

    While ``slot`` is set, the first task a ThreadRuntime spawns on this thread
    is put in ``slot`` instead of its pool; the thread then runs it itself,
    or hands it to the pool with the ``submit`` beside it. The transport's
    consumer loop lends itself this way while it reads a delivery: a request's
    worker then starts on the thread that read it, without waking another one
    (the loop hands the connection to a thread standing by instead).
    """
    _local.lend = slot


class ThreadTask:
    """A unit of work run by one of the pool's threads."""

    __slots__ = ("_blocked_on", "args", "done", "fn", "killed", "name")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> None:
        self.fn: Callable[..., Any] | None = fn
        self.args: tuple[Any, ...] | None = args
        self.name = name
        self.done = False
        self.killed = False
        self._blocked_on: ThreadWaiter | None = None

    def kill(self) -> None:
        """Mark the task killed; wake it if it is blocked on this runtime."""
        if self.done or self.killed:
            return
        self.killed = True
        waiter = self._blocked_on
        if waiter is not None:
            waiter._interrupt()

    def run(self) -> None:
        """Run the task on the calling thread (a pool thread, or one it was lent)."""
        fn, args = self.fn, self.args
        self.fn = self.args = None
        _local.task = self
        try:
            if not self.killed and fn is not None:
                fn(*(args or ()))
        except WorkerKilled:
            pass
        except BaseException:
            # Workers catch their own errors; reaching here is a bug in an
            # extension or in shimeji, and must not pass silently. The pool
            # thread lives on: a thread lost here would shrink the pool for good.
            log.exception("task %s crashed", self.name)
        finally:
            _local.task = None
            self.done = True

    def __repr__(self) -> str:
        state = "done" if self.done else ("killed" if self.killed else "running")
        return f"<ThreadTask {self.name} {state}>"


class ThreadWaiter:
    """A one-shot outcome that one thread waits for and another provides.

    The first of ``set_result`` / ``set_exception`` wins (a reply and its
    timeout may race from two threads); later calls are ignored.
    """

    __slots__ = ("_claims", "_exc", "_gate", "_value", "description", "done")

    def __init__(self, description: str) -> None:
        self.description = description
        self.done = False
        self._value: Any = None
        self._exc: BaseException | None = None
        # next() on a count is atomic: exactly one setter gets 0.
        self._claims = itertools.count()
        # Held until the outcome is set; waiters pass through it once released.
        self._gate = threading.Lock()
        self._gate.acquire()

    def set_result(self, value: Any) -> None:
        if next(self._claims):
            return
        self._value = value
        self.done = True
        self._gate.release()

    def set_exception(self, exc: BaseException) -> None:
        if next(self._claims):
            return
        self._exc = exc
        self.done = True
        self._gate.release()

    def _interrupt(self) -> None:
        # A killed task blocked here: it waits for nobody else's outcome.
        self.set_exception(WorkerKilled())

    def wait(self, timeout: float | None = None) -> Any:
        task = _current_task()
        if task is not None:
            if task.killed:
                raise WorkerKilled
            task._blocked_on = self
            if task.killed:  # killed between the check and registering
                task._blocked_on = None
                raise WorkerKilled
        try:
            if not self.done:
                acquired = self._gate.acquire(timeout=-1 if timeout is None else timeout)
                if not acquired:
                    return None
                self._gate.release()  # let any other waiter through too
        finally:
            if task is not None:
                task._blocked_on = None
        if task is not None and task.killed:
            raise WorkerKilled
        if self._exc is not None:
            raise self._exc
        return self._value

    def __repr__(self) -> str:
        return f"<ThreadWaiter {self.description} {'done' if self.done else 'pending'}>"


class ThreadTimer:
    __slots__ = ("args", "cancelled", "fn")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Pool:
    """Threads started on demand up to ``max_threads``, then reused."""

    def __init__(self, max_threads: int, name: str) -> None:
        self.max_threads = max_threads
        self.name = name
        self._work: queue.SimpleQueue[ThreadTask | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0
        self._closed = False

    def submit(self, task: ThreadTask) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the runtime {self.name} is closed; it runs no more tasks")
            self._queued += 1
            start = self._queued > self._idle and self._threads < self.max_threads
            if start:
                self._threads += 1
                number = self._threads
        self._work.put(task)
        if start:
            thread = threading.Thread(
                target=self._serve, name=f"{self.name}-worker-{number}", daemon=True
            )
            thread.start()

    def _serve(self) -> None:
        work, lock = self._work, self._lock
        while True:
            with lock:
                self._idle += 1
            task = work.get()
            with lock:
                self._idle -= 1
                self._queued -= 1
            if task is None:
                with lock:
                    self._threads -= 1
                return
            task.run()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
            self._queued += threads
        for _ in range(threads):
            self._work.put(None)


class _TimerThread:
    """Runs timer callbacks in deadline order on one thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._heap: list[tuple[float, int, ThreadTimer]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    def schedule(self, delay: float, timer: ThreadTimer) -> None:
        when = time.monotonic() + max(0.0, delay)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the runtime {self.name} is closed; it sets no more timers")
            heapq.heappush(self._heap, (when, next(self._seq), timer))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-timers", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is timer:
                self._cond.notify()

    def _serve(self) -> None:
        heap, cond = self._heap, self._cond
        while True:
            with cond:
                while True:
                    if self._closed:
                        return
                    while heap and heap[0][2].cancelled:
                        heapq.heappop(heap)
                    if not heap:
                        cond.wait()
                        continue
                    delay = heap[0][0] - time.monotonic()
                    if delay <= 0:
                        timer = heapq.heappop(heap)[2]
                        break
                    cond.wait(delay)
            if timer.cancelled:
                continue
            try:
                timer.fn(*timer.args)
            except Exception:
                log.exception("timer callback %r failed", timer.fn)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()


class ThreadRuntime:
    """The production Runtime: a bounded thread pool, a timer thread, the real clock.

    ``max_threads`` bounds the threads running tasks at once; the container
    already bounds its workers to ``max_workers``, so give it a little more
    than that for the short tasks shimeji spawns itself (error replies).
    """

    def __init__(self, max_threads: int = 16, name: str = "shimeji") -> None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ConfigurationError(
                f"max_threads must be a whole number >= 1, got {max_threads!r}"
            )
        self.name = name
        self._pool = _Pool(max_threads, name)
        self._timers = _TimerThread(name)

    # -- the Runtime contract ---------------------------------------------------

    def now(self) -> float:
        return time.time()

    def new_id(self) -> str:
        return _new_id()

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> ThreadTask:
        task = ThreadTask(fn, args, name)
        pool = self._pool
        slot: Lent | None = getattr(_local, "lend", None)
        if slot is not None and not slot and not pool.closed:
            slot.append((pool.submit, task))
            return task
        pool.submit(task)
        return task

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> ThreadTimer:
        timer = ThreadTimer(fn, args)
        self._timers.schedule(delay, timer)
        return timer

    def new_waiter(self, description: str) -> ThreadWaiter:
        return ThreadWaiter(description)

    def sleep(self, seconds: float) -> None:
        task = _current_task()
        if task is None:
            time.sleep(max(0.0, seconds))
            return
        # A private waiter nobody sets: only a kill ends the wait early.
        ThreadWaiter(f"{task.name} sleeping").wait(max(0.0, seconds))

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Stop the timer thread and let idle pool threads end; running tasks finish."""
        self._timers.close()
        self._pool.close()

    def __repr__(self) -> str:
        return f"<ThreadRuntime {self.name}>"
