"""The pytest plugin: the sim_cluster fixture, --shimeji-seed and failure reports."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]

# Replay lines start with the hash seed when it is fixed (the plugin pins it).
HASH_SEED = (
    f"PYTHONHASHSEED={os.environ['PYTHONHASHSEED']} "
    if os.environ.get("PYTHONHASHSEED", "").isdigit()
    else ""
)

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
            f"replay: {HASH_SEED}pytest test_failure_reports_seed_replay_and_trace.py::test_wrong "
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


def test_faults_option_arms_a_plan_and_the_report_replays_it(pytester: pytest.Pytester):
    """--shimeji-faults arms the plan; a failure prints it and a replay line with it."""
    pytester.makepyfile(
        SERVICE
        + """
from shimeji.exceptions import RpcTimeout

def test_timeouts(sim_cluster):
    sim_cluster.add_service(Calculator)
    assert sim_cluster.rpc_proxy(timeout=1).calculator.add(1, 2) == 3
"""
    )
    plan = "FaultPlan([Drop(service='calculator')])"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--shimeji-seed=4", f"--shimeji-faults={plan}"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RpcTimeout*",
            "seed: 4",
            f"fault plan: {plan}",
            f"replay: {HASH_SEED}pytest "
            "test_faults_option_arms_a_plan_and_the_report_replays_it.py::"
            "test_timeouts --shimeji-seed=4 "
            f'--shimeji-faults="{plan}"',
            "*fault_drop*",
        ]
    )


def test_faults_option_reads_a_file_and_rejects_nonsense(pytester: pytest.Pytester):
    """--shimeji-faults takes a file; an invalid plan is a usage error."""
    pytester.makepyfile(
        SERVICE
        + """
def test_plan(sim_cluster):
    sim_cluster.add_service(Calculator)
    assert repr(sim_cluster.fault_plan) == "FaultPlan([Crash(replica='calculator-1', at=2.0)])"
"""
    )
    path = pytester.path / "plan.py"
    path.write_text("FaultPlan([Crash('calculator-1', at=2.0)])\n")
    pytester.runpytest("-p", "no:cacheprovider", f"--shimeji-faults={path}").assert_outcomes(
        passed=1
    )
    bad = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-faults=os.system('x')")
    bad.stderr.fnmatch_lines(["*--shimeji-faults: fault plan may only call*"])


def test_a_faults_option_naming_what_the_test_lacks_fails_it(pytester: pytest.Pytester):
    """A plan from --shimeji-faults is checked at the test's first call, against the
    services it added: a misspelt service fails the test, with a did-you-mean."""
    pytester.makepyfile(
        SERVICE
        + """
def test_calls(sim_cluster):
    sim_cluster.add_service(Calculator)
    assert sim_cluster.rpc.calculator.add(1, 2) == 3
"""
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--shimeji-faults=Drop(service='calculater')"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FaultPlanError: the fault plan can never fire as written: Drop(service='calculater')"
            " names service 'calculater', which the cluster does not run (did you mean"
            " 'calculator'?); it runs: calculator",
        ]
    )
    fine = pytester.runpytest(
        "-p", "no:cacheprovider", "--shimeji-faults=Drop(service='calculator', method='add')"
    )
    fine.assert_outcomes(failed=1)  # the one call is lost: the fault fired
    fine.stdout.fnmatch_lines(["*SimulationStalled*"])


def test_check_determinism_passes_a_deterministic_test(pytester: pytest.Pytester):
    """--shimeji-check-determinism runs each sim test twice; same traces pass."""
    pytester.makepyfile(
        SERVICE
        + """
runs = []

def test_same(sim_cluster):
    runs.append(1)
    sim_cluster.add_service(Calculator, replicas=2)
    for i in range(3):
        sim_cluster.rpc.calculator.add(i, i)

def test_ran_twice():
    assert runs == [1, 1]
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-check-determinism")
    result.assert_outcomes(passed=2)


def test_check_determinism_catches_state_leaking_between_runs(pytester: pytest.Pytester):
    """A test whose simulation changes from one run to the next fails, with a diff."""
    pytester.makepyfile(
        SERVICE
        + """
calls = []

def test_leaky(sim_cluster):
    calls.append(1)
    sim_cluster.add_service(Calculator)
    for _ in calls:
        sim_cluster.rpc.calculator.add(1, 1)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-check-determinism")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the simulation is not deterministic: two runs with seed 0 gave different traces*",
            "*event 8 (0.002000 calculator-1 replica_stop calculator) is the first that "
            "differs; call_id: null in the first run, 'standalone_rpc_proxy.call.*' in the "
            "second run; *kind: 'replica_stop' in the first run, 'publish' in the second run*",
            "*+++ second run*",
            "*+*client*publish*calculator.add*",
        ]
    )


def test_check_determinism_catches_values_that_differ(pytester: pytest.Pytester):
    """Same steps, different values (a generator seeded by the system, which the
    cluster's seed does not reach): the check fails."""
    pytester.makepyfile("""
import random

from shimeji.rpc import rpc

class Dice:
    name = "dice"

    @rpc
    def roll(self):
        return random.Random().random()

def test_roll(sim_cluster):
    sim_cluster.add_service(Dice)
    sim_cluster.rpc.dice.roll()
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-check-determinism")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the simulation is not deterministic*",
            "*event 5 (0.001000 dice-1 reply dice.roll) is the first that differs; "
            "message.body: *result* in the first run, *result* in the second run*",
            '*"body"*result*',
        ]
    )


PATCHES_PER_TEST = (
    SERVICE
    + """
import time

from hypothesis import given, settings, strategies as st

from shimeji.sim import SimCluster

REAL_SLEEP = time.sleep
seen = []

@settings(max_examples=20, deadline=None, database=None)
@given(st.integers(0, 100))
def test_a_cluster_per_example(a):
    with SimCluster() as cluster:
        cluster.add_service(Calculator)
        assert cluster.rpc.calculator.add(a, 1) == a + 1
        time.sleep(3600)  # virtual: the test would not end otherwise
        seen.append(time.sleep)
    seen.append(time.sleep)

def test_after():
    assert time.sleep is REAL_SLEEP
    print("stand-ins between clusters:", len({id(f) for f in seen if f is not REAL_SLEEP}))
    print("real between clusters:", sum(f is REAL_SLEEP for f in seen))
"""
)


def test_a_test_patches_for_virtual_time_once_and_undoes_it_at_its_end(
    pytester: pytest.Pytester,
):
    """A Hypothesis test building a cluster per example patches the process at its
    first cluster and keeps the patches to its end (one stand-in throughout);
    the next test finds the process as it was."""
    pytester.makepyfile(PATCHES_PER_TEST)
    # In a process of its own: the patches are the process's.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*stand-ins between clusters: 1", "real between clusters: 0"])


def test_patch_per_cluster_undoes_the_patches_as_each_cluster_stops(pytester: pytest.Pytester):
    pytester.makepyfile(PATCHES_PER_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s", "--shimeji-patch-per-cluster"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["real between clusters: 20"])


def test_a_run_of_sim_cluster_tests_patches_once_and_the_next_other_test_finds_none(
    pytester: pytest.Pytester,
):
    """Patches made for a sim_cluster test are kept for the next sim_cluster test
    (the same host), and undone before a test that does not take the fixture."""
    pytester.makepyfile(
        SERVICE
        + """
import time

from shimeji.sim import clock

REAL = {"sleep": time.sleep}  # (a module global holding it would be patched too)
hosts = []

def test_one(sim_cluster):
    sim_cluster.add_service(Calculator)
    assert sim_cluster.rpc.calculator.add(1, 2) == 3
    hosts.append(clock._owner)

def test_two(sim_cluster):
    assert time.sleep is not REAL["sleep"]
    hosts.append(clock._owner)

def test_plain():
    assert time.sleep is REAL["sleep"] and clock._owner is None
    assert len(hosts) == 2 and hosts[0] is hosts[1] and hosts[0]._hosting

def test_three(sim_cluster):
    hosts.append(clock._owner)

def test_last():
    assert time.sleep is REAL["sleep"] and clock._owner is None
    assert hosts[2] is not hosts[0]  # patched again after test_plain
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_a_cluster_left_running_keeps_its_patches_until_it_stops(pytester: pytest.Pytester):
    """A cluster a test leaves running (for a later test to stop) keeps virtual
    time past the end of the patches it started under."""
    pytester.makepyfile(
        SERVICE
        + """
import time

from shimeji.sim import SimCluster, clock

LEFT = []

def test_start():
    cluster = SimCluster()
    cluster.start()
    cluster.add_service(Calculator)
    LEFT.append(cluster)

def test_use_then_stop():
    cluster = LEFT[0]
    assert cluster.rpc.calculator.add(1, 2) == 3
    before = cluster.now()
    time.sleep(30)  # virtual, still
    assert cluster.now() - before == 30
    cluster.stop()
    assert clock._owner is None and time.sleep.__module__ == "time"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
