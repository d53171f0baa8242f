"""The pytest plugin: the sim_cluster fixture, --shimeji-seed and failure reports."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SERVICE = """
from shimeji.rpc import rpc

class Calculator:
    name = "calculator"

    @rpc
    def add(self, a, b):
        return a + b
"""


def test_fixture_gives_a_running_cluster_with_the_seed(pytester: pytest.Pytester):
    """sim_cluster is started, seeded from --shimeji-seed, and stopped after the test."""
    pytester.makepyfile(
        SERVICE
        + """
seen = []

def test_one(sim_cluster):
    assert sim_cluster.state == "running"
    assert sim_cluster.seed == 42
    sim_cluster.add_service(Calculator)
    assert sim_cluster.rpc.calculator.add(1, 2) == 3
    seen.append(sim_cluster)

def test_stopped_after():
    assert seen[0].state == "stopped"
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-seed=42")
    result.assert_outcomes(passed=2)


def test_failure_reports_seed_replay_and_trace(pytester: pytest.Pytester):
    """A failing sim test prints its seed, a replay command and the trace."""
    pytester.makepyfile(
        SERVICE
        + """
def test_wrong(sim_cluster):
    sim_cluster.add_service(Calculator)
    assert sim_cluster.rpc.calculator.add(1, 2) == 4
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-seed=9")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*shimeji*",
            "seed: 9",
            "replay: pytest test_failure_reports_seed_replay_and_trace.py::test_wrong "
            "--shimeji-seed=9",
            "trace (all events):",
            "*client*publish*calculator.add*",
        ]
    )


def test_default_seed_is_zero(pytester: pytest.Pytester):
    """Without --shimeji-seed the seed is 0."""
    pytester.makepyfile("""
def test_seed(sim_cluster):
    assert sim_cluster.seed == 0
""")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_crash_during_test_fails_it(pytester: pytest.Pytester):
    """A replica killed by a failing hook makes the test fail at teardown, loudly."""
    pytester.makepyfile("""
from shimeji.extensions import DependencyProvider
from shimeji.rpc import rpc

class Broken(DependencyProvider):
    def worker_setup(self, worker_ctx):
        raise RuntimeError("broken provider")

class Svc:
    name = "svc"
    dep = Broken()

    @rpc
    def go(self):
        return 1

def test_crash(sim_cluster):
    sim_cluster.add_service(Svc)
    sim_cluster.rpc.svc.go.call_async()
    sim_cluster.run_until_idle()
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ReplicaCrashed*svc-1 crashed: RuntimeError: broken provider*"])
