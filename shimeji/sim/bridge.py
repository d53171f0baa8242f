"""The bridge between the simulation and the real world: real threads feeding it.

The simulation runs on one OS thread, in virtual time. Some code written for
nameko cannot: an entrypoint whose polling loop blocks on a real
``threading.Condition`` (moto's SQS long poll), or a worker that calls, over
a real socket, an HTTP route served by the same test. The bridge lets such
code run, outside virtual time, and feed the simulation:

- ``Outside`` is the scheduler's inbox for work posted from other threads
  (``post``, ``call``). While something outside may still feed the
  simulation (a live *source*: a real managed thread, an HTTP request being
  answered), the event loop, when nothing is due now, waits for that inbox
  in real time instead of jumping ahead or stalling: at most until the next
  event falls due (virtual time then follows real time) and at most
  ``idle_limit`` real seconds, after which a root left waiting stalls with a
  message naming the sources. Posted work runs on the simulation's thread,
  in virtual time, in the order it arrived.
- ``start_managed_thread``: ``spawn_managed_thread`` on a real OS thread
  (see ``Scheduler.real_managed_threads`` for when). Its calls to the
  replica's ``spawn_worker`` are run on the simulation's thread through the
  inbox. The thread is abandoned (it is a daemon) when its replica stops;
  what it asks of the stopped replica is refused with ``ContainerBeingKilled``
  in the thread, which ends it quietly.
- ``OutsideVirtualTime``: what code running on a real thread gets when it
  waits for the simulation (an RPC, say) where the simulation cannot answer.

Everything here is reported as an uncontrolled effect (``cluster.uncontrolled``,
``UncontrolledEffectWarning``): a run using it is not a function of its seed.
A simulation that uses none of it never creates an ``Outside``: the event loop
reads one integer per time step, and nothing else changes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shimeji.core.exceptions import ContainerBeingKilled, OutsideClosed, OutsideVirtualTime
from shimeji.sim.clock import real_perf_counter

if TYPE_CHECKING:
    from shimeji.core.container import ServiceContainer
    from shimeji.sim.scheduler import Scheduler

# OutsideClosed and OutsideVirtualTime are defined with every other exception
# (shimeji.exceptions).
__all__ = [
    "IDLE_LIMIT",
    "Outside",
    "OutsideClosed",
    "OutsideVirtualTime",
    "RealManagedThread",
    "start_managed_thread",
    "wait_outside",
    "wants_real_thread",
]

log = logging.getLogger("shimeji.sim")

#: How long, in real seconds, the loop waits for the outside when nothing else
#: can ever happen, before the waiting root stalls.
IDLE_LIMIT = 30.0


class _Call:
    """A call posted by a real thread, which waits for its outcome."""

    __slots__ = ("args", "done", "error", "fn", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args)
        except BaseException as exc:
            # the waiting thread gets the error; one that is not an Exception
            # (KeyboardInterrupt ...) also goes on up the simulation's thread
            self.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            self.done.set()

    def refuse(self, why: str) -> None:
        if not self.done.is_set():
            self.error = OutsideClosed(why)
            self.done.set()


class Outside:
    """The scheduler's inbox for work from real threads (see the module).

    Every method but ``take`` may be called from any thread.
    """

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.idle_limit = IDLE_LIMIT
        self._cond = threading.Condition(threading.Lock())
        self._inbox: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._calls: list[_Call] = []
        self._sources: dict[int, str] = {}
        self._numbers = iter(range(1, 1 << 62))
        self.closed = False

    # -- sources: what may still post ------------------------------------------------

    def add_source(self, description: str) -> int:
        """Something outside may post until ``drop_source(token)``: the loop waits for it."""
        with self._cond:
            token = next(self._numbers)
            self._sources[token] = description
            self.scheduler._outside_live = len(self._sources)
            return token

    def drop_source(self, token: int) -> None:
        with self._cond:
            self._sources.pop(token, None)
            self.scheduler._outside_live = len(self._sources)
            self._cond.notify_all()  # the loop need not wait for it any more

    def sources(self) -> list[str]:
        with self._cond:
            return list(self._sources.values())

    # -- posting, from any thread ------------------------------------------------------

    def _refuse_if_closed(self) -> None:
        """Under the lock: ``OutsideClosed`` once the simulation has stopped."""
        if self.closed:
            raise OutsideClosed(
                "the simulation has stopped: work from real threads is no longer taken "
                "(post or call only while its cluster runs)"
            )

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the simulation's thread, as an event, in arrival order."""
        with self._cond:
            self._refuse_if_closed()
            self._inbox.append((fn, args))
            self._cond.notify_all()

    def _enqueue(self, call: _Call) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """Under the lock: post ``call``, kept to be refused if the simulation stops."""
        self._refuse_if_closed()
        entry: tuple[Callable[..., Any], tuple[Any, ...]] = (call.run, ())
        self._calls.append(call)
        self._inbox.append(entry)
        self._cond.notify_all()
        return entry

    def _outcome(self, call: _Call) -> Any:
        """Wait for ``call`` to have run (or been refused): its result, or its error."""
        call.done.wait()
        with self._cond:
            if call in self._calls:
                self._calls.remove(call)
        error = call.error
        if error is not None and not isinstance(error, Exception):
            # KeyboardInterrupt, SystemExit ...: the simulation's thread is on its
            # way out; this thread is told so, as when the simulation stops
            raise OutsideClosed(
                f"the simulation's thread was interrupted ({type(error).__name__}) while "
                "running this call: the simulation is ending"
            ) from error
        if error is not None:
            raise error
        return call.value

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the simulation's thread; the calling (real) thread waits
        for its result, or its exception. Refused (``OutsideClosed``) once closed."""
        call = _Call(fn, args)
        with self._cond:
            self._enqueue(call)
        return self._outcome(call)

    def offer(self, fn: Callable[..., Any], *args: Any, grace: float) -> tuple[bool, Any]:
        """``call(fn, *args)`` if the simulation's thread takes it within ``grace``
        real seconds: (True, its result); else it is withdrawn: (False, None).
        (A simulation thread that does not take it is busy, perhaps blocked in
        a real call waiting for the very thread that offers.)"""
        call = _Call(fn, args)
        with self._cond:
            entry = self._enqueue(call)
            taken = self._cond.wait_for(lambda: entry not in self._inbox, grace)
            if not taken:
                self._inbox.remove(entry)
                self._calls.remove(call)
                return False, None
        return True, self._outcome(call)

    # -- the simulation's side -----------------------------------------------------------

    def take(self, budget: float) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
        """What was posted, waiting up to ``budget`` real seconds for something (or
        until no source is left)."""
        cond = self._cond
        with cond:
            if not self._inbox and self._sources and budget > 0:
                cond.wait_for(lambda: self._inbox or not self._sources, budget)
            items = list(self._inbox)
            self._inbox.clear()
            if items:
                cond.notify_all()  # an offer waits to see its work taken
            return items

    def close(self) -> None:
        """Take nothing more: pending and later calls are refused, sources dropped."""
        with self._cond:
            self.closed = True
            self._sources.clear()
            self.scheduler._outside_live = 0
            calls, self._calls = self._calls, []
            self._inbox.clear()
        for call in calls:
            call.refuse("the simulation stopped before it could take this call")

    def __repr__(self) -> str:
        return f"<Outside sources={self.sources()}>"


def wait_outside(scheduler: Scheduler, deadline_us: int | None) -> bool:
    """The loop has nothing due now: wait in real time for work from outside,
    until virtual ``deadline_us`` (the next event; None: none) at most. Posted
    work is scheduled now, virtual time having moved on by the real time
    waited (never past the deadline). False if nothing came."""
    outside = scheduler.outside
    assert outside is not None
    clock = scheduler.clock
    now = clock.now_us
    budget = outside.idle_limit
    if deadline_us is not None:
        budget = min(budget, (deadline_us - now) / 1_000_000)
    started = real_perf_counter()
    items = outside.take(budget)
    waited_us = round((real_perf_counter() - started) * 1_000_000)
    if not items:
        if deadline_us is None:
            scheduler._outside_gave_up = real_perf_counter() - started
        return False
    target = now + waited_us
    if deadline_us is not None and target > deadline_us:
        target = deadline_us
    if target > now:
        clock.advance_to(target)
    for fn, args in items:
        scheduler.schedule(clock.now_us, fn, args, None)
    return True


# -- managed threads on real threads -----------------------------------------------------------


class RealManagedThread:
    """A managed thread of a replica running on a real OS thread (a ``Task``)."""

    def __init__(
        self, scheduler: Scheduler, container: ServiceContainer, fn: Callable[[], Any], name: str
    ) -> None:
        self.scheduler = scheduler
        self.container = container
        self.fn = fn
        self.name = name
        self.abandoned = False
        outside = scheduler.outside_inbox()
        self.outside = outside
        self._token = outside.add_source(f"managed thread {name}, on a real thread")
        self.thread = threading.Thread(target=self._run, name=f"shimeji:{name}", daemon=True)

    @property
    def done(self) -> bool:
        return self.abandoned or (not self.thread.is_alive() and self.thread.ident is not None)

    def start(self) -> None:
        report = self.scheduler.report_uncontrolled
        if report is not None:
            report(
                "thread",
                f"managed thread {self.name} runs on a real thread, outside virtual time and "
                "the cluster's seed (what it feeds the simulation arrives in real time)",
            )
        from shimeji.sim.entropy import start_unreported

        start_unreported(self.thread)

    def _run(self) -> None:
        container = self.container
        ident = threading.get_ident()
        container.off_loop[ident] = self.outside.call
        try:
            if self.abandoned:  # killed before it began: run nothing
                return
            self.fn()
        except Exception as exc:
            if self.abandoned or not container.alive or isinstance(exc, ContainerBeingKilled):
                log.debug("%s ended after its replica stopped: %r", self.name, exc)
            else:
                log.error(
                    "%s: managed thread %s failed",
                    container.replica_name,
                    self.name,
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
                # an error escaping it kills the replica, as in nameko
                with contextlib.suppress(OutsideClosed):
                    self.outside.post(_kill_if_alive, container, exc)
        finally:
            container.off_loop.pop(ident, None)
            self.outside.drop_source(self._token)

    def kill(self) -> None:
        """Abandon the thread (Python cannot stop one): the simulation stops
        waiting for it, and the replica refuses what it asks from now on."""
        if self.abandoned:
            return
        self.abandoned = True
        ident = self.thread.ident
        if ident is not None:
            self.container.off_loop.pop(ident, None)
        self.outside.drop_source(self._token)

    def __repr__(self) -> str:
        state = "abandoned" if self.abandoned else "alive" if self.thread.is_alive() else "done"
        return f"<RealManagedThread {self.name} {state}>"


def _kill_if_alive(container: ServiceContainer, exc: BaseException) -> None:
    if container.alive:
        container.kill(exc)


def start_managed_thread(
    scheduler: Scheduler, container: ServiceContainer, fn: Callable[[], Any], name: str
) -> RealManagedThread | None:
    """``fn`` on a real thread if it is to run on one (``Scheduler.real_managed_threads``),
    else None (it runs as a task, in virtual time)."""
    if not wants_real_thread(scheduler, fn):
        return None
    thread = RealManagedThread(scheduler, container, fn, name)
    thread.start()
    return thread


def wants_real_thread(scheduler: Scheduler, fn: Callable[..., Any]) -> bool:
    """Whether a managed thread running ``fn`` gets a real OS thread.

    ``Scheduler.real_managed_threads`` decides when set; when None (the
    default), code written for nameko does, under the nameko layer
    (``shimeji.compat.nameko``): nameko's managed threads may block on real
    I/O, as eventlet's green threads do. shimeji's own functions never do.
    """
    choice = scheduler.real_managed_threads
    module = getattr(fn, "__module__", None) or ""
    if module == "shimeji" or module.startswith("shimeji."):
        return False
    if choice is not None:
        return choice
    from shimeji.compat.nameko import is_installed

    return is_installed()
