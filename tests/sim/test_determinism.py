"""Determinism: the same seed and code give a byte-identical trace, in any process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .scenario import run

ROOT = Path(__file__).resolve().parents[2]


def _run_in_process(seed: int, hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-m", "tests.sim.scenario", str(seed)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout


def test_same_seed_same_trace_in_one_process():
    """Two runs in one process give the same bytes."""
    assert run(7) == run(7)


def test_same_seed_same_trace_across_processes_and_hash_seeds():
    """Two fresh processes with different PYTHONHASHSEED give the same bytes."""
    first = _run_in_process(3, "1")
    second = _run_in_process(3, "98765")
    assert first == second
    assert first == run(3)
    assert "calculate_user_score" in first and "RpcTimeout" in first


def test_different_seeds_differ_only_in_ids():
    """Another seed changes the ids, not what happens."""
    one, two = run(1), run(2)
    assert one != two
    kinds = lambda text: [line.split()[2] for line in text.splitlines()[9:60]]  # noqa: E731
    assert kinds(one) == kinds(two)
