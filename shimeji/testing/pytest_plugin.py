"""The pytest plugin (registered through the ``pytest11`` entry point).

Fixture ``sim_cluster``: a started ``SimCluster``, stopped after the test.
Option ``--shimeji-seed N`` (default 0) seeds it. When a test that used the
fixture fails, its report shows the seed, a command that replays it, and the
end of its trace.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from shimeji.sim import SimCluster

__all__ = ["pytest_addoption", "pytest_runtest_makereport", "sim_cluster"]

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


@pytest.fixture
def sim_cluster(request: pytest.FixtureRequest) -> Iterator[SimCluster]:
    """A started SimCluster seeded from --shimeji-seed, stopped after the test."""
    seed = request.config.getoption("--shimeji-seed")
    cluster = SimCluster(seed=seed)
    request.node.stash[_CLUSTER] = cluster
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def replay_command(nodeid: str, seed: int) -> str:
    return f"pytest {shlex.quote(nodeid)} --shimeji-seed={seed}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    cluster = item.stash.get(_CLUSTER, None)
    if cluster is not None and report.failed:
        lines = [
            f"seed: {cluster.seed}",
            f"replay: {replay_command(item.nodeid, cluster.seed)}",
        ]
        events = cluster.trace.events
        if events:
            tail = events[-TRACE_TAIL:]
            shown = f"last {len(tail)} of {len(events)}" if len(events) > len(tail) else "all"
            lines.append(f"trace ({shown} events):")
            lines.append(cluster.trace.to_text(tail))
        report.sections.append(("shimeji", "\n".join(lines)))
    return report
