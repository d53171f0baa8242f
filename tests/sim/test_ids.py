"""The scheduler's seeded ids: version-4 UUIDs in the standard spelling."""

from __future__ import annotations

import random
import uuid

from shimeji.sim.clock import VirtualClock
from shimeji.sim.scheduler import Scheduler


def test_new_id_spells_the_seeded_draw_as_uuid_does() -> None:
    """Each id is ``str(uuid.UUID(...))`` of the same 128-bit draw with the
    version and variant bits set: the traces' ids are kept when the spelling's
    code changes."""
    scheduler = Scheduler(VirtualClock(), random.Random(7))
    draws = random.Random(7)
    # Draws with leading zero digits (the zero padding) and all ones (the masks).
    for _ in range(2_000):
        expected = uuid.UUID(int=draws.getrandbits(128), version=4)
        assert scheduler.new_id() == str(expected)
    for bits in (0, (1 << 128) - 1, 1, 1 << 127):
        scheduler.rng = _Fixed(bits)  # type: ignore[assignment]
        made = scheduler.new_id()
        assert made == str(uuid.UUID(int=bits, version=4))
        assert uuid.UUID(made).version == 4 and uuid.UUID(made).variant == uuid.RFC_4122


class _Fixed:
    def __init__(self, bits: int) -> None:
        self.bits = bits

    def getrandbits(self, count: int) -> int:
        assert count == 128
        return self.bits
