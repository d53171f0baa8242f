"""A service whose dependency takes long to set up: ``shimeji run`` is still
starting it for as long as the test wants (tests/amqp/test_liveness.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from shimeji.extensions import DependencyProvider
from shimeji.rpc import rpc

__all__ = ["SlowToStart"]


class Sluggish(DependencyProvider):
    def setup(self) -> None:
        Path(os.environ["SHIMEJI_TEST_MARKER"]).write_text("setting up")
        time.sleep(60)

    def get_dependency(self, worker_ctx: object) -> None:
        return None


class SlowToStart:
    name = "slow_to_start"
    sluggish = Sluggish()

    @rpc
    def ping(self) -> str:
        return "pong"
