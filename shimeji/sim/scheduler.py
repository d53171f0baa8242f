"""The simulator's runtime: a discrete-event scheduler running greenlets.

Everything happens on one OS thread. Each task (a worker, a reply to send)
is a greenlet. A task runs until it blocks (waits for a reply, sleeps) and
then switches back to the event loop, which picks the next event. Events are
ordered by (virtual time, sequence number): ties break on the order in which
they were scheduled, never on ``id()`` or hashing, so a run is a pure
function of its seed and its code.

Who runs the loop: the test itself. A blocking call made by the test (the
*root*, outside any task) runs the loop until what it waits for is done.
When nothing is left to run and the root still waits with no deadline, the
simulation has stalled, and ``SimulationStalled`` says what was stuck.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn

import greenlet

from shimeji.core.exceptions import OutsideVirtualTime, SimulationLivelock, SimulationStalled
from shimeji.sim.clock import VirtualClock

# SimulationStalled and SimulationLivelock are defined with every other
# exception (shimeji.exceptions).
__all__ = [
    "Scheduler",
    "SimTask",
    "SimTimer",
    "SimWaiter",
    "SimulationLivelock",
    "SimulationStalled",
]

log = logging.getLogger("shimeji.sim")

GreenletExit = greenlet.GreenletExit


# Bits of a 128-bit draw that new_id() clears, then sets: the version (4) and variant (10).
_UUID4_CLEAR = ~((0xF << 76) | (0xC << 60))
_UUID4_SET = (0x4 << 76) | (0x8 << 60)


def to_us(seconds: float) -> int:
    """Seconds to whole microseconds (how the scheduler counts time)."""
    return round(seconds * 1_000_000)


class SimTimer:
    """A scheduled call that may be cancelled; cancelling it leaves it in the
    heap, skipped when reached. (Events nobody can cancel are heap entries
    without one: see ``Scheduler._heap``.)

    ``lane`` groups events whose order must be kept among themselves (the
    deliveries to one consumer, the wake-ups of one task); a schedule chooser
    may reorder events of different lanes that fall due at the same instant.
    """

    __slots__ = ("args", "cancelled", "fn", "lane")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], lane: Any = None) -> None:
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.lane = lane

    def cancel(self) -> None:
        self.cancelled = True


class _TaskGreenlet(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet that runs tasks one after another (creating greenlets is costly).

    Idle ones wait in a pool of their thread's, for the next task of whichever
    scheduler runs there: a cluster starts with greenlets its predecessors
    made. A parked greenlet holds nothing of the tasks it ran.
    """

    task: SimTask | None = None
    scheduler: Scheduler | None = None  # whose task it runs (set by SimTask._start)

    def __init__(self) -> None:
        super().__init__(run=self._serve)

    def _serve(self) -> None:
        # The task comes in an attribute (SimTask._start), not as an argument of
        # switch(): the first call's arguments live as long as the greenlet.
        while True:
            task = self.task
            assert task is not None
            # The task runs in this frame: one frame fewer per task.
            try:
                if not task.killed:
                    task.fn(*task.args)
            except GreenletExit:
                pass
            except Exception:
                # Workers catch their own errors; reaching here is a bug in an
                # extension or in shimeji, and must not pass silently.
                log.exception("simulated task %s crashed", task.name)
                task.scheduler.errors.append(task.name)
            finally:
                task.done = True
                task.waiting_on = None
                task.fn = task.args = None  # type: ignore[assignment]
            self.task = task = None
            scheduler = self.scheduler
            assert scheduler is not None
            hub = scheduler._hub
            idle = scheduler._idle
            if hub is None or len(idle) >= _POOL_SIZE:
                return  # let it end
            # Parked, this frame keeps its locals: none may lead to the cluster.
            self.scheduler = scheduler = None  # type: ignore[assignment]
            idle.append(self)
            hub.switch()  # parked idle until handed the next task


_POOL_SIZE = 64


def _when_seq(entry: tuple[int, int, Any, Any, Any]) -> tuple[int, int]:
    return entry[0], entry[1]


_pools = threading.local()


def _idle_pool() -> list[_TaskGreenlet]:
    """This thread's idle task greenlets (greenlets cannot change threads)."""
    pool: list[_TaskGreenlet] | None = getattr(_pools, "idle", None)
    if pool is None:
        pool = _pools.idle = []
    return pool


#: The longest the root waits for one thing by default: a day of virtual time
#: (``SimCluster.max_wait``). A one-second timer ticks 86,400 times in it,
#: about a second of wall time.
ROOT_WAIT_US = 86_400 * 1_000_000


class SimTask:
    """A unit of concurrent work, run by a greenlet, parked while it waits."""

    __slots__ = (
        "_glet",
        "_park_token",
        "args",
        "done",
        "fn",
        "killed",
        "name",
        "scheduler",
        "waiting_on",
    )

    def __init__(
        self, scheduler: Scheduler, fn: Callable[..., Any], args: tuple[Any, ...], name: str
    ) -> None:
        self.scheduler = scheduler
        self.fn = fn
        self.args = args
        self.name = name
        self.done = False
        self.killed = False
        self.waiting_on: str | None = None
        self._glet: _TaskGreenlet | None = None
        self._park_token = 0

    def _start(self) -> None:
        if self.done:
            return
        scheduler = self.scheduler
        hub = greenlet.getcurrent()
        glet = scheduler._idle.pop() if scheduler._idle else _TaskGreenlet()
        glet.scheduler = scheduler
        glet.task = self
        if glet.parent is not hub:
            glet.parent = hub
        self._glet = glet
        glet.switch()

    def park(self, description: str) -> Any:
        """Block this task (it must be the current one) until ``resume(token)``."""
        if self.killed:
            raise GreenletExit
        self.waiting_on = description
        hub = self.scheduler._hub
        assert hub is not None, "a task runs only inside the event loop"
        value = hub.switch()
        self.waiting_on = None
        if self.killed:
            raise GreenletExit
        return value

    def next_token(self) -> int:
        """A token for the next park: a resume with an older token is ignored."""
        self._park_token += 1
        return self._park_token

    def resume(self, token: int, value: Any = None) -> None:
        glet = self._glet
        if self.done or glet is None or glet.task is not self or token != self._park_token:
            return
        self._park_token += 1  # one resume per park
        hub = greenlet.getcurrent()
        if glet.parent is not hub:
            glet.parent = hub
        glet.switch(value)

    def kill(self) -> None:
        """Unwind the task with GreenletExit (at once if parked, at its next block
        if it is the task calling kill)."""
        if self.done or self.killed:
            return
        self.killed = True
        if self._glet is not None and greenlet.getcurrent() is self._glet:
            return  # it stops at its next blocking call
        self.scheduler.call_urgent(self._throw)

    def _throw(self) -> None:
        glet = self._glet
        if glet is None:
            self.done = True  # never started: it never will
            return
        if not self.done and glet.task is self:
            hub = greenlet.getcurrent()
            if glet.parent is not hub:
                glet.parent = hub
            glet.throw(GreenletExit)

    def __repr__(self) -> str:
        state = (
            "done"
            if self.done
            else (f"waiting on {self.waiting_on}" if self.waiting_on else "ready")
        )
        return f"<SimTask {self.name} {state}>"


class SimWaiter:
    """A one-shot result. Tasks park on it; the root runs the loop until it is done."""

    __slots__ = ("_exc", "_parked", "_value", "description", "done", "scheduler")

    def __init__(self, scheduler: Scheduler, description: str) -> None:
        self.scheduler = scheduler
        self.description = description
        self.done = False
        self._value: Any = None
        self._exc: BaseException | None = None
        # the tasks parked on it, with their tokens; made by the first (the root
        # waits without parking: most waiters never have one)
        self._parked: list[tuple[SimTask, int]] | None = None

    def set_result(self, value: Any) -> None:
        if self.done:
            return
        self.done = True
        self._value = value
        if self._parked:  # (the root waits without parking)
            self._wake()

    def set_exception(self, exc: BaseException) -> None:
        if self.done:
            return
        self.done = True
        self._exc = exc
        if self._parked:
            self._wake()

    def _wake(self) -> None:
        scheduler = self.scheduler
        heap = scheduler._heap
        now = scheduler.clock.now_us
        parked, self._parked = self._parked or [], None
        for task, token in parked:
            scheduler._seq += 1
            heapq.heappush(heap, (now, scheduler._seq, task.resume, (token,), task))

    def wait(self) -> Any:
        if not self.done:
            scheduler = self.scheduler
            # scheduler.current_task(), inline: the root waits here for every call.
            current = greenlet.getcurrent()
            task = (
                current.task
                if isinstance(current, _TaskGreenlet) and current.scheduler is scheduler
                else None
            )
            if task is None:
                # run_root(None, description, self), without its frame when the
                # loop brings the result
                horizon = scheduler.root_wait_us
                if horizon is not None:
                    horizon += scheduler.clock.now_us
                if not scheduler.run(None, None, self, horizon):
                    scheduler.stalled(self.description)
            else:
                if self._parked is None:
                    self._parked = []
                self._parked.append((task, task.next_token()))
                task.park(self.description)
        if self._exc is not None:
            raise self._exc
        return self._value


class Scheduler:
    """The simulator's Runtime: virtual clock, seeded ids, tasks and timers."""

    def __init__(self, clock: VirtualClock, rng: random.Random) -> None:
        self.clock = clock
        self.rng = rng
        # The Runtime's now(), without a frame of its own (read for every call).
        self.now = clock.time  # type: ignore[method-assign]
        self.errors: list[str] = []
        #: called to describe what is stuck when the root stalls
        self.stall_reporter: Callable[[], list[str]] = lambda: []
        # Entries (when, seq, fn, args, lane), in (when, seq) order (seq is
        # unique: nothing further is compared). An event that may be cancelled
        # is (when, seq, None, timer, lane): its SimTimer holds fn and args.
        self._heap: list[tuple[int, int, Any, Any, Any]] = []
        self._seq = 0
        #: seqs of entries the chooser ran out of order, left in the heap
        self._taken: set[int] = set()
        self._urgent: deque[Callable[[], None]] = deque()
        self._hub: greenlet.greenlet | None = None
        self._idle = _idle_pool()
        #: picks which of k events due at the same instant runs next (None: the
        #: first scheduled). Hypothesis drives it to explore interleavings.
        self.chooser: Callable[[int], int] | None = None
        #: the longest the root waits for one thing, in virtual microseconds
        #: (None: for ever): past it, a wait that other events (a timer's ticks)
        #: keep going, and that nothing brings, is stalled (``SimCluster.max_wait``)
        self.root_wait_us: int | None = ROOT_WAIT_US
        #: called once, before the loop first runs (the cluster checks its fault
        #: plan's names there, once the test has added its services)
        self.before_first_run: Callable[[], None] | None = None
        # -- the bridge to real threads (shimeji.sim.bridge), unused by default --
        #: the thread the simulation runs on
        self.thread_id = threading.get_ident()
        #: whether spawn_managed_thread gives code outside shimeji a real OS thread
        #: (None: under the nameko layer only; see bridge.wants_real_thread)
        self.real_managed_threads: bool | None = None
        #: told (kind, detail) of what runs outside virtual time (the cluster's report)
        self.report_uncontrolled: Callable[[str, str], None] | None = None
        #: the inbox of work from real threads, made on first use
        self.outside: Any = None
        #: how many real sources may still post to it: while any, the loop waits
        #: for them in real time rather than jump ahead or stall
        self._outside_live = 0
        self._outside_gave_up: float | None = None

    # -- the Runtime contract ---------------------------------------------------

    def now(self) -> float:
        return self.clock.time()

    def new_id(self) -> str:
        # A version-4 UUID drawn from the seeded RNG, formatted by hand (uuid.UUID
        # is several times slower, and ids are made for every call): the version
        # nibble set to 4 and the variant bits to 10, as uuid4 does.
        h = (self.rng.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET).to_bytes(16, "big").hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> SimTask:
        task = SimTask(self, fn, args, name)
        self._seq += 1
        heapq.heappush(self._heap, (self.clock.now_us, self._seq, task._start, (), None))
        return task

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> SimTimer:
        return self.call_at(self.clock.now_us + max(0, to_us(delay)), fn, *args)

    def new_waiter(self, description: str) -> SimWaiter:
        return SimWaiter(self, description)

    def sleep(self, seconds: float) -> None:
        target = self.clock.now_us + max(0, to_us(seconds))
        task = self.current_task()
        if task is not None:
            token = task.next_token()
            self._seq += 1
            heapq.heappush(self._heap, (target, self._seq, task.resume, (token,), task))
            task.park(f"its sleep to end at t={target / 1e6:.6f}")
            return
        self.run_root_until(target)

    # -- scheduling ----------------------------------------------------------------

    def call_at(
        self, when_us: int, fn: Callable[..., Any], *args: Any, lane: Any = None
    ) -> SimTimer:
        timer = SimTimer(fn, args, lane)
        self._seq += 1
        heapq.heappush(self._heap, (when_us, self._seq, None, timer, lane))
        return timer

    def call_soon(self, fn: Callable[..., Any], *args: Any, lane: Any = None) -> SimTimer:
        timer = SimTimer(fn, args, lane)
        self._seq += 1
        heapq.heappush(self._heap, (self.clock.now_us, self._seq, None, timer, lane))
        return timer

    def schedule(
        self, when_us: int, fn: Callable[..., Any], args: tuple[Any, ...], lane: Any
    ) -> None:
        """``call_at`` for an event nobody will cancel: no ``SimTimer`` is made."""
        self._seq += 1
        heapq.heappush(self._heap, (when_us, self._seq, fn, args, lane))

    def call_urgent(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` before any other event (used to unwind killed tasks)."""
        self._urgent.append(fn)
        if self._hub is None and self.current_task() is None:
            # Called by the root between runs: unwind now, so that a killed
            # replica's workers are gone when kill() returns.
            self.run(lambda: not self._urgent)

    def current_task(self) -> SimTask | None:
        current = greenlet.getcurrent()
        if isinstance(current, _TaskGreenlet) and current.scheduler is self:
            return current.task
        return None

    @property
    def running(self) -> bool:
        return self._hub is not None

    def _dead(self, entry: tuple[int, int, Any, Any, Any]) -> bool:
        """Whether a heap entry will never run (cancelled, or run by the chooser)."""
        return (entry[2] is None and entry[3].cancelled) or entry[1] in self._taken

    def idle(self) -> bool:
        return not self._urgent and all(self._dead(entry) for entry in self._heap)

    # -- the event loop ------------------------------------------------------------

    def run(
        self,
        until: Callable[[], bool] | None = None,
        limit_us: int | None = None,
        waiter: SimWaiter | None = None,
        horizon_us: int | None = None,
    ) -> bool:
        """Run events in order until ``until()`` holds or ``waiter`` is done
        (True), or until nothing is left or the next event lies beyond
        ``limit_us`` (False): virtual time runs up to it (real threads'
        work awaited meanwhile). ``horizon_us`` is how far the root waits
        (``root_wait_us``): past it, the loop stops (False) with events left."""
        if self.outside is not None and threading.get_ident() != self.thread_id:
            raise OutsideVirtualTime(
                "code running on a real thread, outside virtual time, waited for the "
                "simulation (an RPC, a dispatch, a sleep in virtual time ...): only the "
                "simulation's thread can. Make the call from a worker instead"
            )
        if self._hub is not None:
            raise RuntimeError(
                "blocking call from inside the simulation's event loop: only service code "
                "(in a worker) and the test itself (outside the loop) may block"
            )
        current = greenlet.getcurrent()  # (current_task(), inline)
        if isinstance(current, _TaskGreenlet) and current.scheduler is self:
            raise RuntimeError("a simulated task cannot run the event loop itself")
        hook = self.before_first_run
        if hook is not None:
            self.before_first_run = None
            hook()
        self._hub = current
        heap, urgent, clock, taken = self._heap, self._urgent, self.clock, self._taken
        heappop = heapq.heappop
        try:
            # This while loop is the event loop. Each turn runs exactly one
            # thing: an urgent call (unwinding a killed task) first, else the
            # earliest timer. Time jumps straight to that timer: no event, no
            # time passing, which is why a 60 s timeout costs nothing.
            while True:
                if waiter is not None and waiter.done:
                    return True
                if until is not None and until():
                    return True
                if urgent:
                    urgent.popleft()()
                    continue
                if not heap:
                    if self._outside_live and self._wait_outside(limit_us):
                        continue
                    return False
                entry = heap[0]
                when = entry[0]
                if limit_us is not None and when > limit_us:
                    if self._outside_live and self._wait_outside(limit_us):
                        continue
                    return False
                if horizon_us is not None and when > horizon_us:
                    if self._outside_live and self._wait_outside(None):
                        continue
                    return False
                if self._outside_live and when > clock.now_us and self._wait_outside(when):
                    continue  # work from a real thread came first
                if self.chooser is not None and not self._dead(entry):
                    entry = self._choose(when)
                    if entry is heap[0]:
                        heappop(heap)
                    else:
                        taken.add(entry[1])  # it runs now; its heap entry is left behind
                else:
                    heappop(heap)
                    if taken and entry[1] in taken:
                        taken.discard(entry[1])
                        continue
                fn = entry[2]
                args = entry[3]
                if fn is None:  # a SimTimer
                    if args.cancelled:
                        continue  # a cancelled timer never moves the clock
                    fn, args = args.fn, args.args
                if when > clock.now_us:
                    clock.advance_to(when)
                fn(*args)
        finally:
            self._hub = None

    def _wait_outside(self, deadline_us: int | None) -> bool:
        """Nothing is due now and real threads may still post: wait for them in
        real time (``shimeji.sim.bridge``)."""
        from shimeji.sim.bridge import wait_outside

        return wait_outside(self, deadline_us)

    def outside_inbox(self) -> Any:
        """The inbox for work from real threads (``shimeji.sim.bridge.Outside``)."""
        if self.outside is None:
            from shimeji.sim.bridge import Outside

            self.outside = Outside(self)
        return self.outside

    def start_real_thread(self, container: Any, fn: Callable[[], Any], name: str) -> Any:
        """``spawn_managed_thread``'s hook: a ``RealManagedThread`` running ``fn``,
        or None when it runs as a task (``shimeji.sim.bridge.wants_real_thread``)."""
        from shimeji.sim.bridge import start_managed_thread

        return start_managed_thread(self, container, fn, name)

    def _choose(self, when: int) -> tuple[int, int, Any, Any, Any]:
        """Let the chooser pick among the events due at ``when``: the first event of
        each lane is a candidate, so each lane keeps its own order."""
        due = sorted(
            (entry for entry in self._heap if entry[0] == when and not self._dead(entry)),
            key=_when_seq,
        )
        candidates: list[tuple[int, int, Any, Any, Any]] = []
        lanes: list[Any] = []
        for entry in due:
            lane = entry[4]
            if lane is None:
                candidates.append(entry)
            elif not any(seen is lane for seen in lanes):
                lanes.append(lane)
                candidates.append(entry)
        if len(candidates) == 1:
            return candidates[0]
        assert self.chooser is not None
        return candidates[self.chooser(len(candidates)) % len(candidates)]

    def run_root(
        self,
        done: Callable[[], bool] | None,
        description: str,
        waiter: SimWaiter | None = None,
    ) -> None:
        """The root waits for ``done()`` (or for ``waiter``): run the loop;
        stalled if it never holds.

        ``description`` names what the root waits for, as a noun phrase ("a
        reply from calculator.multiply")."""
        horizon = self.root_wait_us
        if horizon is not None:
            horizon += self.clock.now_us
        if not self.run(done, None, waiter, horizon):
            self.stalled(description)

    def stalled(self, description: str) -> NoReturn:
        """Raise ``SimulationStalled``: the root waits for ``description``, and
        nothing left to run can bring it."""
        stuck = self.stall_reporter()
        if self.outside is not None and self._outside_gave_up is not None:
            waited, self._outside_gave_up = self._outside_gave_up, None
            stuck = [
                *stuck,
                f"the loop waited {waited:.1f} real seconds for real threads "
                f"({'; '.join(self.outside.sources()) or 'none left'}), and nothing came",
            ]
        lines = "\n".join(f"  - {line}" for line in stuck) or "  (nothing else is pending)"
        if not self.idle() and self.root_wait_us is not None:
            # Events are left (a timer ticks on), but the wait passed its limit.
            raise SimulationStalled(
                f"the simulation stalled at t={self.clock.elapsed():.6f}s: the test waited "
                f"{self.root_wait_us / 1e6:g} virtual seconds for {description}, and nothing "
                "brought it; other events (a timer's ticks) kept the simulation going, as "
                "they would for ever.\n"
                f"What waits, and for what:\n{lines}\n"
                "To fix it:\n"
                "  - give the call a timeout (rpc_proxy(timeout=...) or RPC_TIMEOUT): it then "
                "raises RpcTimeout;\n"
                "  - or look for a lost message (a fault plan) or a service that is not "
                "running;\n"
                "  - or, if the wait is meant to be longer, raise SimCluster(max_wait=...).",
                stuck,
            )
        raise SimulationStalled(
            f"the simulation stalled at t={self.clock.elapsed():.6f}s: the test waits for "
            f"{description}, and nothing left to run can ever bring it.\n"
            f"What waits, and for what:\n{lines}\n"
            "To fix it:\n"
            "  - give the call a timeout (rpc_proxy(timeout=...) or RPC_TIMEOUT): it then raises "
            "RpcTimeout;\n"
            "  - or look for a lost message (a fault plan), a replica calling itself with too few "
            "workers\n    (max_workers), or a service that is not running.",
            stuck,
        )

    def run_root_until(self, target_us: int) -> None:
        """The root lets virtual time pass up to ``target_us``, running what falls due."""
        self.run(limit_us=target_us)
        if target_us > self.clock.now_us:
            self.clock.advance_to(target_us)

    def close(self) -> None:
        """Let go of the thread's pool of idle greenlets. They stay there for the
        next scheduler of this thread: each holds nothing of the tasks it ran
        (see ``_TaskGreenlet``)."""
        self._idle = []
