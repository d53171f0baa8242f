"""The pytest plugin (registered through the ``pytest11`` entry point).

Fixture ``sim_cluster``: a started ``SimCluster``, stopped after the test.

Options:

- ``--shimeji-seed N`` (default 0) seeds it;
- ``--shimeji-faults PLAN`` arms a fault plan in it (the Python a plan prints
  as, or a file holding it); the services, methods, replicas and clients it
  names are checked at the test's first call, against what the test added
  (``FaultPlanError``, with a did-you-mean);
- ``--shimeji-check-determinism`` runs each test that uses it a second time,
  on a fresh cluster, and fails the test if the two traces differ.

When a test that used the fixture fails, its report shows the seed, the fault
plan, a command that replays it, and the end of its trace.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shimeji.core.exceptions import ConfigurationError
from shimeji.sim import SimCluster
from shimeji.sim.faults import FaultPlan

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "replay_command",
    "sim_cluster",
]

# The `cluster` fixture on either transport, and its options.
pytest_plugins = ["shimeji.testing.transports"]

_CLUSTER = pytest.StashKey[SimCluster]()
TRACE_TAIL = 40


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shimeji", "shimeji simulator")
    group.addoption(
        "--shimeji-seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the sim_cluster fixture (default 0); a failing test prints its seed",
    )
    group.addoption(
        "--shimeji-faults",
        default=None,
        metavar="PLAN",
        help="a fault plan to arm in sim_cluster: Python such as "
        "\"FaultPlan([Drop(service='x')])\", or a file holding it; the names in it are "
        "checked at each test's first call",
    )
    group.addoption(
        "--shimeji-check-determinism",
        action="store_true",
        default=False,
        help="run each sim_cluster test twice and fail it if the two traces differ",
    )


def pytest_configure(config: pytest.Config) -> None:
    _fault_plan(config)  # a bad plan is a usage error before any test runs
    try:
        from shimeji.sim import hypothesis_report
    except ImportError:  # Hypothesis is not installed: nothing to report to
        return
    hypothesis_report.install()


def _fault_plan(config: pytest.Config) -> FaultPlan | None:
    text = config.getoption("--shimeji-faults")
    if not text:
        return None
    path = Path(text)
    if not text.lstrip().startswith(("FaultPlan", "[", "(")) and path.is_file():
        text = path.read_text()
    try:
        return FaultPlan.from_python(text)
    except ConfigurationError as exc:
        raise pytest.UsageError(f"--shimeji-faults: {exc}") from None


def _new_cluster(config: pytest.Config) -> SimCluster:
    return SimCluster(seed=config.getoption("--shimeji-seed"), faults=_fault_plan(config))


@pytest.fixture
def sim_cluster(request: pytest.FixtureRequest) -> Iterator[SimCluster]:
    """A started SimCluster seeded from --shimeji-seed, stopped after the test."""
    cluster = _new_cluster(request.config)
    request.node.stash[_CLUSTER] = cluster
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def replay_command(nodeid: str, seed: int, faults: str | None = None) -> str:
    """The command that runs one test again with the same seed (and fault plan)."""
    command = f"pytest {shlex.quote(nodeid)} --shimeji-seed={seed}"
    if faults:
        command += f" --shimeji-faults={_quote(faults)}"
    return command


def _quote(text: str) -> str:
    # Plans print with single quotes: double quotes keep them readable.
    if not any(char in text for char in '"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield
    first = item.stash.get(_CLUSTER, None)
    if first is None or not item.config.getoption("--shimeji-check-determinism"):
        return result
    # Run the test body again on a fresh cluster and compare what happened.
    first.stop()
    second = _new_cluster(item.config)
    funcargs = getattr(item, "funcargs", {})
    second.start()
    try:
        funcargs["sim_cluster"] = second
        item.runtest()
    finally:
        funcargs["sim_cluster"] = first
        second.stop()
    # Messages included: two runs may take the same steps with other values.
    one, two = first.trace.to_jsonl(messages=True), second.trace.to_jsonl(messages=True)
    if one != two:
        if first.trace.to_jsonl() == second.trace.to_jsonl():
            # The same steps: show where the messages differ.
            text_one, text_two = one, two
        else:
            text_one, text_two = first.trace.to_text(), second.trace.to_text()
        diff = "\n".join(
            difflib.unified_diff(
                text_one.splitlines(),
                text_two.splitlines(),
                "first run",
                "second run",
                lineterm="",
                n=2,
            )
        )
        raise AssertionError(
            f"the simulation is not deterministic: two runs with seed {first.seed} gave "
            f"different traces (something depends on the real clock, hashing, id() or an "
            f"unseeded random generator):\n{diff}"
        )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    cluster = item.stash.get(_CLUSTER, None)
    if cluster is not None and report.failed:
        given = item.config.getoption("--shimeji-faults")
        plan = cluster.fault_plan
        lines = [
            f"seed: {cluster.seed}",
            f"fault plan: {plan!r}",
            f"replay: {replay_command(item.nodeid, cluster.seed, repr(plan) if given else None)}",
        ]
        events = cluster.trace.events
        if events:
            tail = events[-TRACE_TAIL:]
            shown = f"last {len(tail)} of {len(events)}" if len(events) > len(tail) else "all"
            lines.append(f"trace ({shown} events):")
            lines.append(cluster.trace.to_text(tail))
        report.sections.append(("shimeji", "\n".join(lines)))
    return report
