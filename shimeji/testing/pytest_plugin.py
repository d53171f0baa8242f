"""The pytest plugin (registered through the ``pytest11`` entry point).

Fixture ``sim_cluster``: a started ``SimCluster``, stopped after the test.

Options:

- ``--shimeji-seed N`` (default 0) seeds it;
- ``--shimeji-faults PLAN`` arms a fault plan in it (the Python a plan prints
  as, or a file holding it); the services, methods, replicas and clients it
  names are checked at the test's first call, against what the test added
  (``FaultPlanError``, with a did-you-mean);
- ``--shimeji-check-determinism`` runs each test that uses it a second time,
  on a fresh cluster, and fails the test if the two traces differ, naming the
  first event that differs and which of its values.

Marker ``@pytest.mark.shimeji_explore(runs=1000, seed=0, kinds=FAULT_KINDS,
max_faults=3, horizon=5.0, processes=1, max_virtual_seconds=86400)`` on a test
taking ``sim_cluster``:
the test body runs ``runs`` times, each on a fresh cluster with its own seed,
fault plan (swarm testing: a random subset of the fault kinds) and schedule
(``shimeji.testing.explore``); the first failure is shrunk, written to
``.shimeji/failures/`` (``--shimeji-failures-dir``), and the report prints the
line that replays it: ``pytest NODEID --shimeji-replay=FILE``.
``--shimeji-explore-runs N`` and ``--shimeji-explore-processes N`` override
the marker for the whole session.

Virtual time's patches of the process (``shimeji.sim.clock.VirtualTime``) are
made at a test's first cluster and kept to the test's end, not made and
undone for each cluster: a Hypothesis test that builds a cluster per example
pays for them once. They are kept on into the next test if it takes
``sim_cluster``, and undone before any other test starts, so a run of
``sim_cluster`` tests pays once too (``shimeji.sim.clock.OnDemand``). Between
two clusters, time and sleep are real, as after ``keep_virtual_time()``.
``--shimeji-patch-per-cluster`` (or the marker
``@pytest.mark.shimeji_patch_per_cluster`` on one test) undoes them each time
a cluster stops.

When a test that used the fixture fails, its report shows the seed, the fault
plan, a command that replays it, and the end of its trace.

PYTHONHASHSEED: the order of a set of strings (``list({"a", "b"})``) depends
on it, and a process cannot learn the hash seed it was started with when it
was random. So when pytest starts without PYTHONHASHSEED, the plugin picks
one and starts the same pytest command again under it, once, before
collecting anything (``SHIMEJI_PIN_HASHSEED=0`` turns this off); every replay
line then starts with ``PYTHONHASHSEED=N``, and workers of pytest-xdist share
that value.
"""

from __future__ import annotations

import difflib
import os
import random
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shimeji.core.exceptions import ConfigurationError
from shimeji.sim import SimCluster
from shimeji.sim.clock import OnDemand, real_perf_counter
from shimeji.sim.faults import FaultPlan
from shimeji.testing import explore as exploration

__all__ = [
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_load_initial_conftests",
    "pytest_pyfunc_call",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "replay_command",
    "sim_cluster",
]

# The `cluster` fixture on either transport, and its options.
pytest_plugins = ["shimeji.testing.transports"]

_CLUSTER = pytest.StashKey[SimCluster]()
_EXPLORED = pytest.StashKey[dict[str, Any]]()
_REPLAY = pytest.StashKey[dict[str, Any]]()
TRACE_TAIL = 40
EXPLORE_DEFAULTS = {
    "runs": 1000,
    "seed": 0,
    "kinds": exploration.FAULT_KINDS,
    "max_faults": 3,
    "horizon": 5.0,
    "processes": 1,
    "max_virtual_seconds": exploration.MAX_VIRTUAL_SECONDS,
}


_configured = False


def _pytest_command_line() -> bool:
    """Whether this process is the ``pytest`` command (not pytest.main() in a program)."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is None:
        return False
    return argv0.name in ("pytest", "py.test") or (
        argv0.name == "__main__.py" and argv0.parent.name == "pytest"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Pin PYTHONHASHSEED (see the module docstring): start again under one."""
    if (
        _configured  # a pytest run inside this one (pytester): never replace the process
        or "PYTHONHASHSEED" in os.environ
        or os.environ.get("SHIMEJI_PIN_HASHSEED", "1") == "0"
        or not sys.flags.hash_randomization
        or not _pytest_command_line()
        or not getattr(sys, "orig_argv", None)
    ):
        return
    os.environ["PYTHONHASHSEED"] = str(random.SystemRandom().randrange(1, 2**32))
    # pytest already captures output at this point: give the terminal back first.
    capture = early_config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


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
    group.addoption(
        "--shimeji-replay",
        default=None,
        metavar="FILE",
        help="run the test a failure file (written by an exploring test) names, exactly as "
        "it failed, and only that test",
    )
    group.addoption(
        "--shimeji-explore-runs",
        type=int,
        default=None,
        metavar="N",
        help="runs per exploring test (@pytest.mark.shimeji_explore), overriding its marker",
    )
    group.addoption(
        "--shimeji-explore-processes",
        type=int,
        default=None,
        metavar="N",
        help="processes each exploring test spreads its runs over (default: the marker's, 1)",
    )
    group.addoption(
        "--shimeji-patch-per-cluster",
        action="store_true",
        default=False,
        help="patch the process for virtual time and undo it for each cluster, rather than "
        "once per test at its first cluster (the default: a Hypothesis test building a "
        "cluster per example then pays it once)",
    )
    group.addoption(
        "--shimeji-failures-dir",
        default=None,
        metavar="DIR",
        help=f"where exploring tests write failing runs (default: <rootdir>/"
        f"{exploration.FAILURES_DIR})",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _configured
    _configured = True
    config.addinivalue_line(
        "markers",
        "shimeji_explore(runs=1000, seed=0, kinds=FAULT_KINDS, max_faults=3, horizon=5.0, "
        "processes=1, max_virtual_seconds=86400): run a sim_cluster test over many seeds, "
        "fault plans and schedules; "
        "shrink and save the first failure",
    )
    config.addinivalue_line(
        "markers",
        "shimeji_patch_per_cluster: undo virtual time's patches of the process as each "
        "cluster stops in this test (for a test of the process after a cluster)",
    )
    _fault_plan(config)  # a bad plan is a usage error before any test runs
    for option in ("--shimeji-explore-runs", "--shimeji-explore-processes"):
        value = config.getoption(option)
        if value is not None and value < 1:
            raise pytest.UsageError(f"{option} takes a whole number >= 1, got {value}")
    config.pluginmanager.register(_ExplorationSummary(), "shimeji-exploration-summary")
    replay = config.getoption("--shimeji-replay")
    if replay:
        try:
            config.stash[_REPLAY] = exploration.load_failure(replay)
        except ConfigurationError as exc:
            raise pytest.UsageError(f"--shimeji-replay: {exc}") from None
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


_KEPT = pytest.StashKey[OnDemand]()


def _per_cluster(item: pytest.Item) -> bool:
    return bool(
        item.config.getoption("--shimeji-patch-per-cluster")
        or item.get_closest_marker("shimeji_patch_per_cluster")
    )


@pytest.fixture(autouse=True)
def _shimeji_virtual_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Virtual time's patches, made at a test's first cluster and kept to its end,
    and on into the next test if that one takes ``sim_cluster`` (see the module
    docstring). An autouse fixture, so that it ends after the test's own; an
    undo that fails is an error of the set-up of the test it was undone for
    (or of the session's end)."""
    config = request.config
    per_cluster = _per_cluster(request.node)
    kept = config.stash.get(_KEPT, None)
    if kept is not None and (per_cluster or "sim_cluster" not in request.fixturenames):
        del config.stash[_KEPT]
        kept.end()  # this test starts from the process as it was
        kept = None
    if per_cluster:
        yield
        return
    on_demand = kept or OnDemand()
    if kept is None and not on_demand.arm():  # a longer-lived fixture's cluster runs
        yield
        return
    try:
        yield
    finally:
        if on_demand.patched:
            config.stash[_KEPT] = on_demand
        else:
            on_demand.disarm()


def pytest_sessionfinish(session: pytest.Session) -> None:
    kept = session.config.stash.get(_KEPT, None)
    if kept is not None:
        del session.config.stash[_KEPT]
        kept.end()


def replay_command(
    nodeid: str, seed: int, faults: str | None = None, replay: str | None = None
) -> str:
    """The command that runs one test again with the same seed (and fault plan), or
    the failure file ``replay``, under this process's PYTHONHASHSEED when it is fixed."""
    hash_seed = exploration.hash_seed()
    command = f"PYTHONHASHSEED={hash_seed} " if hash_seed is not None else ""
    if replay is not None:
        return command + f"pytest {shlex.quote(nodeid)} --shimeji-replay={shlex.quote(replay)}"
    command += f"pytest {shlex.quote(nodeid)} --shimeji-seed={seed}"
    if faults:
        command += f" --shimeji-faults={_quote(faults)}"
    return command


def _hash_seed_note() -> list[str]:
    if exploration.hash_seed() is not None:
        return []
    return [
        "PYTHONHASHSEED was random in this run: if the failure does not come back, the order "
        "of a set or dict of strings in the code may be why; run with PYTHONHASHSEED=0 (or "
        "leave it unset under pytest: shimeji then pins one and prints it)"
    ]


def _quote(text: str) -> str:
    # Plans print with single quotes: double quotes keep them readable.
    if not any(char in text for char in '"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield
    first = item.stash.get(_CLUSTER, None)
    if (
        first is None
        or not item.config.getoption("--shimeji-check-determinism")
        or _EXPLORED in item.stash  # exploring and replaying check their own runs
    ):
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
            f"different traces (something depends on the real clock, hashing, id(), a "
            f"thread or a generator the seed does not reach).\n"
            f"{exploration.first_difference(one, two, diff=False)}\n{diff}"
        )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    explored = item.stash.get(_EXPLORED, None)
    if explored is not None and call.when == "call":
        report.user_properties.append(("shimeji_explore", explored["summary"]))
        if report.failed and "lines" in explored:
            report.sections.append(("shimeji", "\n".join(explored["lines"])))
        return report
    cluster = item.stash.get(_CLUSTER, None)
    if cluster is not None and report.failed:
        given = item.config.getoption("--shimeji-faults")
        plan = cluster.fault_plan
        lines = [
            f"seed: {cluster.seed}",
            f"fault plan: {plan!r}",
            f"replay: {replay_command(item.nodeid, cluster.seed, repr(plan) if given else None)}",
            *_hash_seed_note(),
            *(f"not under the seed's control: {what}" for what in cluster.uncontrolled),
        ]
        events = cluster.trace.events
        if events:
            tail = events[-TRACE_TAIL:]
            shown = f"last {len(tail)} of {len(events)}" if len(events) > len(tail) else "all"
            lines.append(f"trace ({shown} events):")
            lines.append(cluster.trace.to_text(tail))
        report.sections.append(("shimeji", "\n".join(lines)))
    return report


# -- exploration and replay ----------------------------------------------------------


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """With --shimeji-replay, keep only the test the failure file names."""
    data = config.stash.get(_REPLAY, None)
    if data is None:
        return
    wanted = data.get("test")
    kept = [item for item in items if item.nodeid == wanted]
    if not kept:
        raise pytest.UsageError(
            f"--shimeji-replay: the failure file is for the test {wanted!r}, which was not "
            f"collected; run pytest from the directory it was written under (the rootdir), "
            f"as its replay line says"
        )
    deselected = [item for item in items if item.nodeid != wanted]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept


def _explore_options(item: pytest.Function) -> dict[str, Any]:
    marker = item.get_closest_marker("shimeji_explore")
    assert marker is not None
    if marker.args:
        raise pytest.UsageError(
            f"{item.nodeid}: shimeji_explore takes keyword arguments only "
            f"(e.g. @pytest.mark.shimeji_explore(runs=500)), got {marker.args!r}"
        )
    unknown = sorted(set(marker.kwargs) - set(EXPLORE_DEFAULTS))
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: shimeji_explore does not take {', '.join(unknown)}; it takes "
            f"{', '.join(EXPLORE_DEFAULTS)}"
        )
    options = {**EXPLORE_DEFAULTS, **marker.kwargs}
    for option in ("runs", "processes"):
        given = item.config.getoption(f"--shimeji-explore-{option}")
        if given is not None:
            options[option] = given
    return options


def _body(item: pytest.Function) -> Any:
    names = item._fixtureinfo.argnames
    if "sim_cluster" not in names:
        raise pytest.UsageError(
            f"{item.nodeid}: an exploring or replayed test takes the sim_cluster fixture "
            f"(def {item.name}(sim_cluster): ...); each run gets a fresh cluster through it"
        )
    given = {name: item.funcargs[name] for name in names}

    def body(cluster: SimCluster) -> None:
        item.obj(**{**given, "sim_cluster": cluster})

    return body


def _failures_dir(config: pytest.Config) -> Path:
    given = config.getoption("--shimeji-failures-dir")
    return Path(given) if given else config.rootpath / exploration.FAILURES_DIR


def _shown_path(config: pytest.Config, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(config.rootpath.resolve()))
    except ValueError:
        return str(path)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    replaying = pyfuncitem.config.stash.get(_REPLAY, None)
    if replaying is None and pyfuncitem.get_closest_marker("shimeji_explore") is None:
        return None
    body = _body(pyfuncitem)
    fixture_cluster = pyfuncitem.stash.get(_CLUSTER, None)
    if fixture_cluster is not None:
        fixture_cluster.stop()  # each run makes its own
    if replaying is not None:
        _replay(pyfuncitem, body, replaying)
    else:
        _explore(pyfuncitem, body)
    return True


def _replay(item: pytest.Function, body: Any, data: dict[str, Any]) -> None:
    outcome, difference = exploration.replay(body, data)
    path = item.config.getoption("--shimeji-replay")
    events = outcome.cluster.trace.to_text().splitlines()
    tail = events[:1] + events[1:][-TRACE_TAIL:]
    item.stash[_EXPLORED] = {
        "summary": f"replayed {path}: "
        + ("the recorded trace, event for event" if difference is None else "it diverged"),
        "lines": [
            f"replayed {path}: seed {data['seed']}, fault plan {data['faults']}, "
            f"schedule {data['schedule']}",
            "the trace is the recorded one, event for event"
            if difference is None
            else f"the trace differs from the recorded one: {difference}",
            f"replay: {replay_command(item.nodeid, data['seed'], replay=path)}",
            *_hash_seed_note(),
            f"trace ({len(events) - 1} events, last {len(tail) - 1}):",
            *tail,
        ],
    }
    recorded = data.get("python_hash_seed")
    if difference is not None:
        hint = ""
        if recorded is not None and recorded != exploration.hash_seed():
            hint = f" It was recorded under PYTHONHASHSEED={recorded}; run under it."
        raise AssertionError(
            f"the replay did not follow the recorded run.{hint} {difference}"
        ) from outcome.error
    if outcome.error is not None:
        raise outcome.error
    raise AssertionError(
        f"the recorded run failed ({data.get('error')}), but replayed with the same trace it "
        "passes: the failure depends on state outside the simulation (module globals the "
        "test does not reset, files, the real clock of another thread)"
    )


def _explore(item: pytest.Function, body: Any) -> None:
    options = _explore_options(item)
    try:
        result = exploration.explore(body, **options)
    except ConfigurationError as exc:
        raise pytest.UsageError(f"{item.nodeid}: shimeji_explore: {exc}") from None
    summary = (
        f"{result.runs} run{'s' if result.runs > 1 else ''} in {result.seconds:.2f}s "
        f"({result.runs_per_second:,.0f} runs/s, {options['processes']} "
        f"process{'es' if options['processes'] > 1 else ''})"
    )
    explored: dict[str, Any] = {"summary": summary}
    item.stash[_EXPLORED] = explored
    failure = result.failure
    if failure is None:
        explored["summary"] = f"{summary}, no failure"
        return
    started = real_perf_counter()
    shrunk = exploration.shrink(body, failure, max_virtual_seconds=options["max_virtual_seconds"])
    path = exploration.write_failure(
        shrunk,
        _failures_dir(item.config),
        test=item.nodeid,
        file=str(item.path.relative_to(item.config.rootpath))
        if item.path.is_relative_to(item.config.rootpath)
        else str(item.path),
        function=item.obj.__qualname__,
        max_virtual_seconds=options["max_virtual_seconds"],
    )
    # The file must replay here before it is offered: run it once more.
    outcome, difference = exploration.replay(body, exploration.load_failure(path))
    shown = _shown_path(item.config, path)
    explored["summary"] = (
        f"{summary}; run {failure.run.index} failed, shrunk in {shrunk.shrink_runs} runs "
        f"({real_perf_counter() - started:.2f}s) to {shown}"
    )
    run = shrunk.run
    events = shrunk.trace_text.splitlines()
    lines = [
        f"exploration: run {failure.run.index} of {options['runs']} failed "
        f"({failure.error_text.splitlines()[0] if failure.error_text else ''}); "
        f"{summary}",
        f"shrunk in {shrunk.shrink_runs} runs to: seed {run.seed}, fault plan {run.plan!r}, "
        f"schedule {list(run.schedule)} (fault kinds of the run: {', '.join(run.kinds) or 'none'})",
        f"failure file: {shown}",
        f"replay: {replay_command(item.nodeid, run.seed, replay=shown)}",
        *_hash_seed_note(),
        *(f"not under the seed's control: {what}" for what in outcome.cluster.uncontrolled),
    ]
    if difference is not None:
        lines.append(f"warning: the failure file did not replay exactly: {difference}")
    tail = events[:1] + events[1:][-TRACE_TAIL:]
    lines.append(f"trace of the shrunk run ({len(events) - 1} events, last {len(tail) - 1}):")
    lines.extend(tail)
    explored["lines"] = lines
    raise shrunk.error


class _ExplorationSummary:
    """Collects what each exploring test reported (from xdist workers too) and
    prints one line per test at the end of the session."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == "shimeji_explore":
                self.lines.append((report.nodeid, str(value)))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.lines:
            return
        terminalreporter.section("shimeji exploration")
        for nodeid, summary in self.lines:
            terminalreporter.write_line(f"{nodeid}: {summary}")
