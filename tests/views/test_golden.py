"""Golden traces of the examples: any change in behaviour shows as a readable diff.

Regenerate after an intended change with:

    SHIMEJI_UPDATE_GOLDEN=1 pytest tests/views/test_golden.py

and review the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shimeji.sim import SimCluster
from shimeji.sim.faults import CrashDuring
from shimeji.testing.golden import GoldenMismatch, assert_golden
from shimeji.views import EventLog, render
from tests.views.scenarios import EXAMPLES, example_log

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_timelines(name):
    """The canonical text timeline of each example is the one in tests/golden."""
    assert_golden(render(example_log(name), "text"), GOLDEN / f"{name}.txt")


@pytest.mark.parametrize("name", ["orders", "user_score", "timeouts", "notifications", "gateway"])
def test_example_diagrams(name):
    """The mermaid diagram of the nested and the parallel calls, of events, and of
    HTTP requests through a gateway."""
    assert_golden(render(example_log(name), "mermaid"), GOLDEN / f"{name}.mmd")


def test_crash_and_redelivery_timeline():
    """A replica killed in the middle of a call: its request goes to the other replica."""
    from examples.user_score import scenario

    plan = [CrashDuring(service="calculator", method="multiply")]
    with SimCluster(seed=0, faults=plan) as cluster:
        scenario(cluster)
    log = EventLog.from_cluster(cluster, canonical_ids=True)
    assert_golden(render(log, "text"), GOLDEN / "crash_redelivery.txt")
    assert_golden(render(log, "mermaid"), GOLDEN / "crash_redelivery.mmd")


def test_a_changed_trace_fails_with_a_unified_diff(tmp_path, monkeypatch):
    """The failure shows what changed, line by line, and how to regenerate."""
    monkeypatch.delenv("SHIMEJI_UPDATE_GOLDEN", raising=False)
    golden = tmp_path / "trace.txt"
    golden.write_text("a\nb\nc\n")
    assert_golden("a\nb\nc\n", golden)
    with pytest.raises(GoldenMismatch) as error:
        assert_golden("a\nB\nc\n", golden)
    message = str(error.value)
    assert f"--- {golden} (golden)\n+++ {golden} (now)\n" in message
    assert "\n-b\n+B\n" in message
    assert "SHIMEJI_UPDATE_GOLDEN=1" in message


def test_a_missing_golden_file_fails_unless_updating(tmp_path, monkeypatch):
    """A forgotten golden file is an error; SHIMEJI_UPDATE_GOLDEN=1 writes it."""
    monkeypatch.delenv("SHIMEJI_UPDATE_GOLDEN", raising=False)
    golden = tmp_path / "sub" / "new.txt"
    with pytest.raises(GoldenMismatch, match="no golden file"):
        assert_golden("x\n", golden)
    monkeypatch.setenv("SHIMEJI_UPDATE_GOLDEN", "1")
    assert_golden("x\n", golden)
    assert golden.read_text() == "x\n"
