"""A service that writes down every call it runs, for counting lost and repeated calls.

Each run appends one line to the file named by ``SHIMEJI_TEST_LEDGER`` (opened
for appending, so that several processes share it safely).
"""

from __future__ import annotations

import os

from shimeji.rpc import rpc

__all__ = ["Ledger", "read_ledger"]


class Ledger:
    name = "ledger"

    @rpc
    def record(self, tag, value):
        with open(os.environ["SHIMEJI_TEST_LEDGER"], "a") as ledger:
            ledger.write(f"{tag}\n")
        return value * 2


def read_ledger(path: str) -> list[str]:
    """The tags of every run, in the order they were written."""
    with open(path) as ledger:
        return ledger.read().split()
