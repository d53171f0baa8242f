"""Randomness drawn from the cluster's seed, and what the simulator cannot control.

``SeededEntropy`` is started and stopped by ``VirtualTime`` (``shimeji.sim.clock``),
as part of the one documented patching of the process while a cluster runs.
It makes service code's randomness a function of the cluster's seed, so that a
run replays exactly, and it notices the things service code does that no seed
can replay (a thread, a real network connection) and reports them.

What it changes, all undone by the undo it returns from ``start()``:

1. The ``random`` module's shared generator (behind ``random.random``,
   ``random.choice``, ``random.shuffle`` ... and ``from random import choice``)
   is seeded from the cluster's seed; its previous state is put back at the end.
2. ``os.urandom`` is replaced, in ``os`` and in every module holding it
   (``random._urandom``): on the thread that runs the simulation it returns
   bytes from a generator seeded from the cluster's seed, on any other
   thread the operating system's. ``uuid.uuid4``, ``secrets`` and
   ``random.SystemRandom`` read ``os.urandom``, so they follow.
3. ``uuid.uuid1`` is replaced, in ``uuid`` and wherever a module holds it:
   on the simulation's thread its time is the virtual clock's, and its clock
   sequence and node are drawn from the seed (a random node, multicast bit
   set, as RFC 4122 says for a node that is not a MAC address).
4. ``threading.Thread.start`` is wrapped: a thread started from the
   simulation's thread is reported, then started as usual.
5. A ``sys.audit`` hook (added once per process, never removed: Python has no
   way to remove one; it does nothing while no cluster runs) reports a socket
   connection or datagram made from the simulation's thread.

A report (4, 5) goes to the ``report`` callback given to ``SeededEntropy``:
the cluster warns with ``UncontrolledEffectWarning`` and keeps the report in
``cluster.uncontrolled``; the pytest plugin prints them with a failing test.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["SeededEntropy", "UncontrolledEffectWarning", "current", "start_unreported"]

# The real functions, kept in a tuple so that module scans never find them here.
_REAL = (os.urandom, uuid.uuid1, threading.Thread.start)

# uuid1 counts 100 ns intervals since 1582-10-15 (RFC 4122).
_UUID_EPOCH = 0x01B21DD213814000

_owner: SeededEntropy | None = None
_audit_hook_added = False


class UncontrolledEffectWarning(RuntimeWarning):
    """Service code did something the simulator cannot control or replay: it
    started a thread, or opened a real network connection."""


def current() -> SeededEntropy | None:
    """The SeededEntropy of the cluster running now, if any."""
    return _owner


class SeededEntropy:
    """Seeded randomness for one cluster run (see the module docstring).

    ``seed`` is the cluster's seed, ``now_us`` reads virtual time in
    microseconds since the epoch (for ``uuid1``), ``report(kind, detail)`` is
    told of each uncontrolled effect.
    """

    def __init__(
        self,
        seed: int,
        now_us: Callable[[], int],
        report: Callable[[str, str], None] | None = None,
    ) -> None:
        self.seed = seed
        self.now_us = now_us
        self.report = report
        # str seeds hash with SHA-512: the same in every process and hash seed.
        self.rng = random.Random(f"shimeji:{seed}:entropy")
        self.node = self.rng.getrandbits(48) | 0x010000000000
        self._last_uuid1 = 0
        self._thread_id: int | None = None

    def on_own_thread(self) -> bool:
        return threading.get_ident() == self._thread_id

    def start(self) -> Callable[[], None]:
        """Seed ``random`` and wrap ``Thread.start``; returns the undo. The caller
        replaces ``os.urandom`` and ``uuid.uuid1`` in the modules that hold them
        (``replacements()``), with ``time.sleep``, in one scan."""
        global _owner, _audit_hook_added
        self._thread_id = threading.get_ident()
        state = random.getstate()
        random.seed(f"shimeji:{self.seed}:random")
        threading.Thread.start = _thread_start  # type: ignore[method-assign]
        _owner = self
        if not _audit_hook_added:
            sys.addaudithook(_audit)
            _audit_hook_added = True

        def undo() -> None:
            global _owner
            _owner = None
            self._thread_id = None
            threading.Thread.start = _REAL[2]  # type: ignore[method-assign]
            random.setstate(state)

        return undo

    @staticmethod
    def replacements() -> list[tuple[Any, Any]]:
        """(real function, its seeded stand-in) pairs, for the module scan."""
        return [(_REAL[0], _seeded_urandom), (_REAL[1], _seeded_uuid1)]

    def urandom(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def uuid1(self, node: int | None, clock_seq: int | None) -> uuid.UUID:
        timestamp = self.now_us() * 10 + _UUID_EPOCH
        if timestamp <= self._last_uuid1:
            timestamp = self._last_uuid1 + 1
        self._last_uuid1 = timestamp
        if clock_seq is None:
            clock_seq = self.rng.getrandbits(14)
        if node is None:
            node = self.node
        time_low = timestamp & 0xFFFFFFFF
        time_mid = (timestamp >> 32) & 0xFFFF
        time_hi_version = (timestamp >> 48) & 0x0FFF
        fields = (
            time_low,
            time_mid,
            time_hi_version,
            (clock_seq >> 8) & 0x3F,
            clock_seq & 0xFF,
            node,
        )
        return uuid.UUID(fields=fields, version=1)

    def tell(self, kind: str, detail: str) -> None:
        if self.report is not None:
            self.report(kind, detail)


def _seeded_urandom(size: int) -> bytes:
    """``os.urandom`` while a cluster runs: seeded on the simulation's thread."""
    owner = _owner
    if owner is None or not owner.on_own_thread():
        return _REAL[0](size)
    return owner.urandom(size)


def _seeded_uuid1(node: int | None = None, clock_seq: int | None = None) -> uuid.UUID:
    """``uuid.uuid1`` while a cluster runs: virtual time and seeded fields on the
    simulation's thread."""
    owner = _owner
    if owner is None or not owner.on_own_thread():
        return _REAL[1](node, clock_seq)
    return owner.uuid1(node, clock_seq)


def start_unreported(thread: threading.Thread) -> None:
    """Start ``thread`` without the report of ``Thread.start``: for a thread
    whose caller reports it in words of its own (``shimeji.sim.bridge``)."""
    _REAL[2](thread)


def _thread_start(self: threading.Thread) -> None:
    owner = _owner
    if owner is not None and owner.on_own_thread():
        owner.tell(
            "thread",
            f"a thread was started ({self.name}, target {_name_of(self)}): it runs outside "
            "virtual time and the cluster's seed",
        )
    _REAL[2](self)


def _name_of(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    if target is None:
        return type(thread).__qualname__ + ".run"
    return getattr(target, "__qualname__", repr(target))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in ("socket.connect", "socket.sendto"):
        return
    owner = _owner
    if owner is None or not owner.on_own_thread():
        return
    address = args[1] if len(args) > 1 else "?"
    verb = "a network connection was opened" if event == "socket.connect" else "a datagram was sent"
    owner.tell(
        "network",
        f"{verb} to {address!r}: a real peer answers in real time, outside the cluster's "
        "seed and faults",
    )
