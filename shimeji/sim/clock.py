"""Virtual time: the simulator's clock, and how service code gets to see it.

``VirtualClock`` counts whole microseconds since the simulation started;
integers keep every sum exact, so the same run prints the same times.

``VirtualTime`` is the one place the process is patched while a cluster runs:
it makes ``time.time()``, ``datetime.now()`` and friends read that clock,
turns ``time.sleep()`` into a virtual sleep, and (through
``shimeji.sim.entropy``) makes ``random``, ``os.urandom``, ``uuid`` and
``secrets`` draw from the cluster's seed, until ``stop()`` puts everything
back. Its docstring lists every change it makes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from shimeji.core.exceptions import ConfigurationError
from shimeji.sim.entropy import SeededEntropy

__all__ = [
    "DEFAULT_START",
    "OnDemand",
    "VirtualClock",
    "VirtualTime",
    "keep_virtual_time",
    "kept_on_demand",
]

#: Where virtual time starts unless a cluster is told otherwise.
DEFAULT_START = _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc)

# Kept in a tuple, not as module globals: freezegun replaces module globals
# that hold the real clock functions, and shimeji needs the real ones.
_REAL = (time.sleep, time.perf_counter, _dt.datetime)

#: Modules whose own calls to the clock keep getting real time (freezegun's ignore list).
_REAL_TIME_USERS = ["hypothesis.", "_pytest.", "pluggy."]


class VirtualClock:
    """Virtual time in microseconds since the start of a simulation.

    Invariant: the clock never goes backwards. It only moves when the event
    loop reaches an event scheduled later than now (``advance_to``).

    ``now_us`` is read for every event recorded: it is a plain attribute, to
    be read and never written but by ``advance_to``.
    """

    __slots__ = ("_listeners", "now_us", "start", "start_us")

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
        #: microseconds since the simulation started
        self.now_us = 0
        self._listeners: list[Callable[[int], None]] = []

    def time(self) -> float:
        """Virtual epoch seconds."""
        return (self.start_us + self.now_us) / 1_000_000

    def elapsed(self) -> float:
        """Virtual seconds since the simulation started."""
        return self.now_us / 1_000_000

    def advance_to(self, now_us: int) -> None:
        if now_us < self.now_us:
            raise ValueError(
                f"virtual time cannot go backwards: asked to move from {self.now_us}us "
                f"to {now_us}us"
            )
        if now_us != self.now_us:
            self.now_us = now_us
            for listener in self._listeners:
                listener(now_us)

    def on_change(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call ``listener(now_us)`` whenever the clock moves; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def datetime(self) -> _dt.datetime:
        """Virtual now as a naive UTC datetime (freezegun's representation)."""
        return _EPOCH + _dt.timedelta(microseconds=self.start_us + self.now_us)


_EPOCH = _dt.datetime(1970, 1, 1)

_owner_lock = threading.Lock()
_owner: VirtualTime | None = None


class VirtualTime:
    """The one place the process is patched while a cluster runs on virtual time.

    ``start()`` makes exactly these changes, and ``stop()`` undoes all of them:

    1. ``freezegun.freeze_time(<virtual now>, ignore=[hypothesis, _pytest,
       pluggy] + freezegun's default list)``, started and stopped through its
       public API. freezegun replaces ``time.time``, ``time.monotonic``,
       ``time.perf_counter``, ``time.localtime``, ``time.gmtime``,
       ``time.strftime`` (and the ``_ns`` forms), ``datetime.datetime`` and
       ``datetime.date``, in their modules and wherever a loaded module holds
       them (``from time import time``), and turns off uuid's time-based
       generator; its ``stop()`` puts them back.
    2. Two settings of freezegun that its public API cannot make, in
       ``_tune_freezegun`` (which says why): its call-stack inspection looks at
       the direct caller only, and its "now" is this clock's reader.
    3. ``time.sleep`` is replaced by a virtual sleep in the ``time`` module and
       in every loaded module that holds the real function (``from time import
       sleep``). ``stop()`` puts the real one back in each of those places and
       in any module imported while the cluster ran that picked up the virtual
       one. (A module loaded before that stores the virtual sleep at run time
       keeps it: it sleeps for real once no cluster runs.)

    4. Given ``entropy`` (a ``shimeji.sim.entropy.SeededEntropy``; the cluster
       gives one), randomness follows the cluster's seed: the ``random``
       module's shared generator is seeded (its state put back by ``stop()``),
       ``os.urandom`` (hence ``uuid.uuid4``, ``secrets``, ``SystemRandom``)
       and ``uuid.uuid1`` are replaced in their modules and wherever a loaded
       module holds them, as ``time.sleep`` is in 3, and return seeded values
       on this thread only; ``threading.Thread.start`` is wrapped and a
       ``sys.audit`` hook watches sockets, to report threads and network use
       started from the simulation. ``shimeji.sim.entropy`` says why each.

    A ``time.sleep(seconds)`` made on the thread that started this object
    calls ``sleeper(seconds)``: the cluster sleeps in virtual time (in a worker,
    or in the test itself) and returns True. If the sleeper declines (returns
    False: the call came from a callback run by the scheduler's loop, which
    cannot block), the sleep raises RuntimeError. The simulator never sleeps
    for real. Other threads are outside the simulation and sleep for real, as
    does a stale reference to the virtual sleep called after ``stop()``.

    freezegun's patches are process-wide, so only one VirtualTime can be started
    at a time (``VirtualTime.owner()``); starting a second raises
    ConfigurationError. The exception is ``VirtualTime.hosting()``, for many
    clusters run one after the other (exploration): it makes the changes once,
    and each cluster started inside it on the same thread, one at a time, is
    its *guest*: virtual time, sleeps and seeded randomness follow the guest's
    clock, sleeper and seed until the guest stops, without patching anything
    again. Ownership is released by ``stop()``, which runs every
    undo step even if one raises, and by ``start()`` itself when it fails
    midway, after undoing what it did. ``stop()`` may be called more than once.
    """

    def __init__(
        self,
        clock: VirtualClock,
        sleeper: Callable[[float], bool],
        entropy: SeededEntropy | None = None,
    ) -> None:
        self.clock = clock
        self.sleeper = sleeper
        self.entropy = entropy
        self._thread_id: int | None = None
        self._undo: contextlib.ExitStack | None = None
        self._hosting = False
        self._guest: VirtualTime | None = None
        #: a host's own end, due once its running guest stops (see ``OnDemand``)
        self._end_after_guest: Callable[[], None] | None = None
        # With freezegun's fallback (see _tune_freezegun): makes a clock push its moves.
        self._pusher: Callable[[VirtualClock], Callable[[], None]] | None = None

    @classmethod
    @contextlib.contextmanager
    def hosting(cls) -> Iterator[VirtualTime]:
        """Patch the process once for many clusters started one after the other on
        this thread (each a guest, see the class docstring); undo it all at the end.
        Inside a host of this thread's with no guest running, that host serves."""
        host = _owner
        if host is not None and host._free_host():
            yield host
            return
        host = cls(VirtualClock(), lambda seconds: False)
        host._hosting = True
        host.start()
        try:
            yield host
        finally:
            host.stop()

    def _free_host(self) -> bool:
        """Whether this is a host of ``hosting()`` on this thread with no guest running."""
        return self._hosting and self._guest is None and self._thread_id == threading.get_ident()

    def _active(self) -> VirtualTime:
        """The guest running now, or this VirtualTime itself."""
        return self._guest or self

    def _now(self) -> _dt.datetime:
        guest = self._guest
        if guest is not None:
            return guest.clock.datetime()
        if self._hosting:  # between guests: the real time, naive UTC as freezegun's
            return _REAL[2].now(_dt.timezone.utc).replace(tzinfo=None)
        return self.clock.datetime()

    @staticmethod
    def owner() -> VirtualTime | None:
        """The VirtualTime of the cluster running on virtual time, if any (a host
        of ``hosting()`` between its guests is none)."""
        owner = _owner
        if owner is not None and owner._hosting:
            return owner._guest
        return owner

    def start(self) -> None:
        global _owner
        import freezegun

        waiting: OnDemand | None = getattr(_on_demand, "pending", None)
        if waiting is not None and not self._hosting and _owner is None:
            waiting._patch()  # the first cluster since an OnDemand was armed
        with _owner_lock:
            host = _owner
            if host is not None and host._free_host():
                host._guest = self
            elif host is not None:
                raise ConfigurationError(
                    "another SimCluster already runs on virtual time in this process; stop it "
                    "first, or create this one with virtual_time=False"
                )
            else:
                _owner = self
        if host is not None:
            self._start_as_guest(host)
            return
        # Every change is followed at once by its undo; the stack runs them in
        # reverse order, all of them even if one raises, ownership last.
        undo = contextlib.ExitStack()
        undo.callback(self._release)
        try:
            self._thread_id = threading.get_ident()
            freezer = freezegun.freeze_time(self.clock.datetime(), ignore=_REAL_TIME_USERS)
            factory = freezer.start()
            undo.callback(freezer.stop)
            undo.callback(self._tune_freezegun(factory))
            patched: list[tuple[dict[str, Any], str]] = []
            pairs = [(_REAL[0], _virtual_sleep)]
            if self.entropy is not None:
                undo.callback(self.entropy.start())
            if self.entropy is not None or self._hosting:
                pairs += SeededEntropy.replacements()
            undo.callback(_unpatch, patched, set(sys.modules), pairs)
            _patch(patched, pairs)
        except BaseException:
            undo.close()
            raise
        self._undo = undo

    def _start_as_guest(self, host: VirtualTime) -> None:
        undo = contextlib.ExitStack()
        undo.callback(host._drop_guest, self)
        try:
            self._thread_id = host._thread_id
            if host._pusher is not None:
                undo.callback(host._pusher(self.clock))
            if self.entropy is not None:
                undo.callback(self.entropy.start())
        except BaseException:
            undo.close()
            raise
        self._undo = undo

    def _drop_guest(self, guest: VirtualTime) -> None:
        with _owner_lock:
            if self._guest is guest:
                self._guest = None
        guest._thread_id = None
        end, self._end_after_guest = self._end_after_guest, None
        if end is not None:
            end()

    def stop(self) -> None:
        """Undo everything ``start()`` did and release ownership (idempotent)."""
        undo, self._undo = self._undo, None
        if undo is not None:
            undo.close()

    def _release(self) -> None:
        global _owner
        with _owner_lock:
            if _owner is self:
                _owner = None
        self._thread_id = None

    def _tune_freezegun(self, factory: Any) -> Callable[[], None]:
        """The only place freezegun's internals are touched; returns the undo.

        freezegun (checked against 1.5.5) has no public way to get these two effects:

        - Test runners keep the real clock (Hypothesis times examples and
          enforces deadlines with it, pytest reports durations) while the test
          body they call sees virtual time. ``ignore=`` gives real time to a
          call when any of the last ``freezegun.api.call_stack_inspection_limit``
          frames (5 by default) is in an ignored module, so a test body called
          by Hypothesis or pytest would read the real clock. That module global
          is the only knob for the depth; it is set to 1 (the direct caller).
        - freezegun asks the virtual clock for the time only when code reads it.
          freezegun's "now" is ``freezegun.api.freeze_factories[-1]()``; its
          public alternative, ``factory.move_to(datetime)``, would build a
          datetime at every move of the clock (two per simulated RPC) whether
          or not anyone reads the time. The factory this freezer pushed is
          swapped for the clock's reader.

        The undo puts the factory back before the freezer's ``stop()`` pops it,
        and the old depth back. If freezegun's layout is not the expected one,
        nothing is touched and the clock pushes each move through the public
        ``move_to`` instead (test bodies under Hypothesis then read real time).
        """
        from freezegun import api

        undo = contextlib.ExitStack()
        limit = getattr(api, "call_stack_inspection_limit", None)
        if isinstance(limit, int):
            api.call_stack_inspection_limit = 1
            undo.callback(setattr, api, "call_stack_inspection_limit", limit)
        factories = getattr(api, "freeze_factories", None)
        if isinstance(factories, list) and factories and factories[-1] is factory:
            reader = self._now
            factories[-1] = reader

            def put_back() -> None:
                if factories and factories[-1] == reader:
                    factories[-1] = factory

            undo.callback(put_back)
        else:

            def pusher(clock: VirtualClock) -> Callable[[], None]:
                factory.move_to(clock.datetime())
                return clock.on_change(lambda _: factory.move_to(clock.datetime()))

            self._pusher = pusher
            undo.callback(pusher(self.clock))
        return undo.close


def _patch(patched: list[tuple[dict[str, Any], str]], pairs: Sequence[tuple[Any, Any]]) -> None:
    """Replace each real function of ``pairs`` (real, stand-in): ``time.sleep``, and
    with seeded entropy ``os.urandom`` and ``uuid.uuid1``, wherever a module holds it."""
    real_ids = {id(real) for real, _ in pairs}
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        # Most modules hold none of them: decide that in C (ids of live objects
        # are distinct, so an id match is an identity match).
        if real_ids.isdisjoint(map(id, namespace.values())):
            continue
        for name, value in list(namespace.items()):
            for real, stand_in in pairs:
                if value is real:
                    namespace[name] = stand_in
                    patched.append((namespace, name))
                    break


def _unpatch(
    patched: list[tuple[dict[str, Any], str]],
    modules_at_start: set[str],
    pairs: Sequence[tuple[Any, Any]],
) -> None:
    """Put the real functions back where they were replaced, and in modules
    imported since (``from time import sleep`` while the cluster ran)."""

    def put_back(namespace: dict[str, Any], name: str) -> None:
        value = namespace.get(name)
        for real, stand_in in pairs:
            if value is stand_in:
                namespace[name] = real
                return

    for namespace, name in patched:
        put_back(namespace, name)
    patched.clear()
    for module_name in set(sys.modules) - modules_at_start:
        namespace = getattr(sys.modules.get(module_name), "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name in list(namespace):
            put_back(namespace, name)


def _virtual_sleep(seconds: float) -> None:
    """``time.sleep`` while a VirtualTime is started (see VirtualTime)."""
    owner = _owner
    if owner is None or threading.get_ident() != owner._thread_id:
        _REAL[0](seconds)  # another thread, or after stop(): outside the simulation
    elif owner._hosting and owner._guest is None:
        _REAL[0](seconds)  # between the clusters of hosting(): real time
    elif not owner._active().sleeper(seconds):
        raise RuntimeError(
            f"time.sleep({seconds!r}) cannot be called from a simulator callback (code "
            "the scheduler's event loop runs directly, such as a timer), only from service "
            "code in a worker or from the test itself: schedule the later work with "
            "scheduler.call_later() instead"
        )


def real_perf_counter() -> float:
    """The real perf_counter, even while freezegun is active."""
    return _REAL[1]()


_on_demand = threading.local()


class OnDemand:
    """Virtual time's patches made by the first cluster started on virtual time
    on this thread once this is ``arm()``-ed, and kept for the clusters after it
    (as ``keep_virtual_time()`` keeps them) until ``end()``. Nothing is patched
    if no cluster starts. ``end()`` while a cluster still runs (one a
    longer-lived fixture holds) leaves the patches until it stops.

    One armed while another waits for its first cluster takes its place until
    it ends (a pytest session run inside a test by ``pytester``), then hands
    it back.

    The pytest plugin holds one across tests (``kept_on_demand`` is the block
    form): a Hypothesis test building a cluster per example patches the process
    once, and so does a run of tests on the ``sim_cluster`` fixture."""

    def __init__(self) -> None:
        self._undo: contextlib.ExitStack | None = None  # while armed or patched
        self._previous: OnDemand | None = None  # the one armed before, waiting
        #: whether a cluster started since ``arm()``: the process is patched
        self.patched = False

    def arm(self) -> bool:
        """Let the next cluster of this thread patch for this object; False (a
        no-op) if a cluster or a host already runs, or this one is armed."""
        if _owner is not None or self._undo is not None:
            return False
        self._previous = getattr(_on_demand, "pending", None)
        self._undo = contextlib.ExitStack()
        _on_demand.pending = self
        return True

    def _patch(self) -> None:
        """Called by the first cluster to start once armed (``VirtualTime.start``)."""
        assert self._undo is not None
        _on_demand.pending = None
        self.patched = True
        self._undo.enter_context(VirtualTime.hosting())

    def disarm(self) -> None:
        """No cluster is to patch for this object any more (patches made stay)."""
        if self.patched:
            return
        if getattr(_on_demand, "pending", None) is self:
            _on_demand.pending = self._previous
        self._undo = self._previous = None

    def end(self) -> None:
        """Undo the patches (once the cluster running now, if any, stops)."""
        if not self.patched:
            self.disarm()
            return
        undo, self._undo = self._undo, None
        previous, self._previous = self._previous, None
        self.patched = False
        if (
            getattr(_on_demand, "pending", None) is None
            and previous is not None
            and previous._undo is not None  # (still armed: not disarmed meanwhile)
        ):
            _on_demand.pending = previous
        assert undo is not None
        host = _owner  # this object's (hosts do not nest)
        if host is not None and host._guest is not None:
            host._end_after_guest = undo.close
        else:
            undo.close()


@contextlib.contextmanager
def kept_on_demand() -> Iterator[None]:
    """``keep_virtual_time()`` from the first cluster started on virtual time
    inside this block (on this thread) to the block's end (``OnDemand``).
    Blocks entered while a cluster runs, or inside a block whose cluster has
    patched, are no-ops."""
    on_demand = OnDemand()
    on_demand.arm()
    try:
        yield
    finally:
        on_demand.end()


@contextlib.contextmanager
def keep_virtual_time() -> Iterator[None]:
    """Patch the process for virtual time once, for every cluster started inside.

    Starting and stopping a cluster on virtual time patches and unpatches the
    process (``VirtualTime``), which walks every loaded module twice: about
    as long as a short simulation. Inside this block (on the thread that
    entered it) the patches stay in place from one cluster to the next
    (``VirtualTime.hosting()``): a cluster that starts only points them at
    its clock, sleeper and seed, and they go back to the real ones when it
    stops. So between clusters ``time.time()``, ``datetime.now()`` and
    ``time.sleep()`` are real, as outside the block; what stays is
    freezegun's stand-ins (``datetime.datetime`` is its ``FakeDatetime``, a
    subclass of the real class) and the virtual sleep function, which sleeps
    for real when no cluster runs. Every patch is undone when the block ends.
    Property tests use it for each test module (``property_tests/conftest.py``):
    each example builds fresh clusters, and nothing of one reaches the next.

    Only one cluster runs at a time, as always; the block itself must start
    while no cluster runs. Nested blocks are the outermost one.
    """
    host = _owner
    if host is not None and host._hosting and host._thread_id == threading.get_ident():
        yield
        return
    if host is not None:
        raise ConfigurationError(
            "keep_virtual_time() must start while no SimCluster runs on virtual time"
        )
    with VirtualTime.hosting():
        yield
