"""Exploration: run one test over many seeds, fault plans and schedules, find a
failure, shrink it, and write it down so that it replays exactly.

A *body* is a function taking a running ``SimCluster`` (a pytest test taking
``sim_cluster``). Run ``i`` of an exploration is a pure function of the
exploration's seed and ``i``:

- a cluster seed (ids, probabilities, and service code's ``random``/``uuid``);
- swarm testing: a random subset of ``FAULT_KINDS`` is enabled for the run, so
  that each kind is also tried without the others masking it;
- a fault plan of those kinds, drawn when the simulation first runs, from the
  services, methods, replicas, clients and events the body has set up by then;
- a schedule: which of several events due at the same instant runs first.

``explore`` stops at the first failing run (the lowest index, whatever the
number of processes), ``shrink`` makes it smaller (fewer faults, simpler
fields, a shorter schedule, seed 0) while it fails the same way, and
``write_failure`` saves it as JSON (seed, fault plan, schedule, trace) that
``replay`` runs again: ``pytest --shimeji-replay FILE`` or ``shimeji sim
--replay FILE``, in any process.
"""

from __future__ import annotations

import difflib
import json
import multiprocessing
import os
import queue
import random
import re
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import attrs

from shimeji.core.exceptions import ConfigurationError, SimulationStalled
from shimeji.sim.clock import VirtualTime, real_perf_counter
from shimeji.sim.cluster import SimCluster
from shimeji.sim.faults import (
    BrokerOutage,
    Corrupt,
    Crash,
    CrashDuring,
    Delay,
    Drop,
    Duplicate,
    FaultPlan,
    Partition,
    PlanGraph,
)
from shimeji.sim.scheduler import to_us

__all__ = [
    "FAILURES_DIR",
    "FAULT_KINDS",
    "MAX_VIRTUAL_SECONDS",
    "Exploration",
    "Failure",
    "Outcome",
    "Run",
    "explore",
    "first_difference",
    "hash_seed",
    "load_failure",
    "plan_run",
    "random_plan",
    "replay",
    "replay_run",
    "run_once",
    "shrink",
    "write_failure",
]

#: Where failing runs are written, relative to the rootdir (or the working directory).
FAILURES_DIR = ".shimeji/failures"

#: The kinds of fault exploration draws from (as ``shimeji.sim.strategies``).
FAULT_KINDS = (
    "drop",
    "delay",
    "duplicate",
    "corrupt",
    "crash",
    "crash_during",
    "partition",
    "outage",
)

#: A run whose virtual time passes this many seconds is stopped and counted as a
#: failure: a caller waiting without a timeout for what never comes, while timers
#: keep the simulation busy, would otherwise run for ever.
MAX_VIRTUAL_SECONDS = 86_400.0

#: Schedule choices drawn per run; a run uses as many as it has ties.
SCHEDULE_LENGTH = 256
#: a byte's two nibbles, low first
_NIBBLES = tuple((byte & 15, byte >> 4) for byte in range(256))
FORMAT = 1


@attrs.frozen
class Run:
    """One run: the cluster's seed, its fault plan (or, before it ran, the kinds
    its plan is drawn from), and its schedule."""

    index: int
    seed: int
    kinds: tuple[str, ...]
    schedule: tuple[int, ...]
    plan: FaultPlan | None = None


@attrs.define
class Failure:
    """A failing run, with what it raised and its trace."""

    run: Run
    error: BaseException
    trace_jsonl: str
    trace_text: str
    runs: int = 0
    shrink_runs: int = 0
    seconds: float = 0.0
    #: the error as text, taken when it was raised
    error_text: str = ""


@attrs.define
class Exploration:
    """What ``explore`` did: ``runs`` made, in ``seconds``; ``failure`` if one failed."""

    runs: int
    seconds: float
    failure: Failure | None = None

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds if self.seconds > 0 else float("inf")


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise ConfigurationError(
            f"unknown fault kind(s) {unknown}: choose among {', '.join(FAULT_KINDS)}"
        )
    return tuple(kind for kind in FAULT_KINDS if kind in kinds)


def plan_run(index: int, base_seed: int = 0, kinds: Sequence[str] = FAULT_KINDS) -> Run:
    """Run ``index`` of the exploration seeded ``base_seed`` (a pure function)."""
    rng = random.Random(f"shimeji-explore:{base_seed}:{index}")
    seed = rng.getrandbits(32)
    # Swarm testing: each kind is in this run's swarm with probability 1/2.
    swarm = tuple(kind for kind in _check_kinds(kinds) if rng.random() < 0.5)
    # One draw, cut into nibbles (0-15) in C: drawing them one by one took a
    # sixth of an exploring run's time, for choices most runs never use.
    drawn = rng.getrandbits(4 * SCHEDULE_LENGTH).to_bytes(SCHEDULE_LENGTH // 2, "little")
    schedule = tuple(chain.from_iterable(map(_NIBBLES.__getitem__, drawn)))
    return Run(index=index, seed=seed, kinds=swarm, schedule=schedule)


def _tenths(rng: random.Random, low: int, high: float) -> float:
    return rng.randint(low, max(low, round(high * 10))) / 10


def random_plan(
    graph: PlanGraph,
    kinds: Sequence[str],
    rng: random.Random,
    *,
    max_faults: int = 3,
    horizon: float = 5.0,
) -> FaultPlan:
    """A plan of up to ``max_faults`` faults of ``kinds``, aimed at what ``graph``
    holds (the same vocabulary as ``shimeji.sim.strategies.faults``)."""
    services = sorted(graph.services)
    replicas = list(graph.replicas or ())
    clients = list(graph.clients or ())
    usable = [
        kind
        for kind in kinds
        if (services and (kind not in ("crash", "partition") or replicas)) or kind == "outage"
    ]
    if not usable:
        return FaultPlan()

    def maybe(options: Sequence[Any]) -> Any:
        return rng.choice(list(options)) if options and rng.random() < 0.5 else None

    def target(directions: Sequence[str]) -> dict[str, Any]:
        events = sorted(graph.events)
        if events and rng.random() < 0.3:
            source = maybe(events)
            return {
                "direction": "event",
                "service": source,
                "method": maybe(sorted(graph.events[source])) if source else None,
            }
        service = maybe(services)
        methods = sorted(graph.services[service]) if service else ()
        return {
            "direction": rng.choice(list(directions)),
            "service": service,
            "method": maybe(methods),
        }

    def restart() -> float | None:
        return _tenths(rng, 1, horizon) if rng.random() < 0.5 else None

    faults: list[Any] = []
    for _ in range(rng.randint(1, max(1, max_faults))):
        kind = rng.choice(usable)
        if kind == "drop":
            fault: Any = Drop(
                **target(("request", "reply")), skip=rng.randint(0, 3), count=rng.randint(1, 3)
            )
        elif kind == "delay":
            fault = Delay(
                seconds=_tenths(rng, 1, horizon),
                **target(("reply", "request")),
                skip=rng.randint(0, 3),
                count=rng.randint(1, 3),
            )
        elif kind == "duplicate":
            fault = Duplicate(
                **target(("request",)), skip=rng.randint(0, 3), count=rng.randint(1, 2)
            )
        elif kind == "corrupt":
            fault = Corrupt(
                part=rng.choice(["body", "properties"]),
                **target(("request", "reply")),
                skip=rng.randint(0, 3),
                count=rng.randint(1, 2),
            )
        elif kind == "crash":
            fault = Crash(
                replica=rng.choice(replicas), at=_tenths(rng, 0, horizon), restart_after=restart()
            )
        elif kind == "crash_during":
            service = rng.choice(services)
            fault = CrashDuring(
                service=service,
                method=maybe(sorted(graph.services[service])),
                nth=rng.randint(1, 3),
                restart_after=restart(),
            )
        elif kind == "partition":
            fault = Partition(
                replica=rng.choice(replicas + clients),
                at=_tenths(rng, 0, horizon),
                duration=_tenths(rng, 1, horizon),
            )
        else:
            fault = BrokerOutage(
                at=_tenths(rng, 0, horizon),
                duration=_tenths(rng, 1, min(horizon, 2.0)),
                restart=rng.random() < 0.5,
            )
        faults.append(fault)
    return FaultPlan(faults)


@attrs.define
class Outcome:
    """One run's result: the run as made (its plan, the schedule choices it took),
    what the body raised (None if it passed), and the stopped cluster."""

    run: Run
    error: BaseException | None
    cluster: SimCluster


def run_once(
    body: Callable[[SimCluster], Any],
    run: Run,
    *,
    max_faults: int = 3,
    horizon: float = 5.0,
    max_virtual_seconds: float = MAX_VIRTUAL_SECONDS,
    cluster_options: dict[str, Any] | None = None,
) -> Outcome:
    """Run ``body`` once on a fresh cluster as ``run`` says. ``run.plan`` is armed
    when the simulation first runs; without one, a plan of ``run.kinds`` is drawn
    then. The outcome's run holds the plan used and the schedule choices taken.
    Virtual time may not pass ``max_virtual_seconds``: the run then fails with
    ``SimulationStalled``.

    Exceptions that are not ``Exception`` (pytest's skip, KeyboardInterrupt)
    propagate."""
    cluster = SimCluster(seed=run.seed, schedule=run.schedule, **(cluster_options or {}))
    limit_us = to_us(max_virtual_seconds)

    def bounded(now_us: int) -> None:
        if now_us > limit_us:
            raise SimulationStalled(
                f"virtual time passed {max_virtual_seconds:g} s, the limit of an exploring "
                "run: something waits without a timeout for what never comes while timers "
                "keep the simulation going (give the call a timeout, or advance() less)"
            )

    cluster.clock.on_change(bounded)
    chosen: list[FaultPlan] = []

    def plan_for(graph: PlanGraph) -> FaultPlan:
        if run.plan is not None:
            plan = run.plan
        elif run.kinds:
            rng = random.Random(f"shimeji-explore-plan:{run.seed}:{run.index}")
            plan = random_plan(graph, run.kinds, rng, max_faults=max_faults, horizon=horizon)
        else:
            plan = FaultPlan()
        chosen.append(plan)
        return plan

    cluster.plan_at_first_run = plan_for
    error: BaseException | None = None
    cluster.start()
    try:
        body(cluster)
    except Exception as exc:
        error = exc
    finally:
        try:
            cluster.stop(raise_crashes=error is None)
        except Exception as exc:
            error = error or exc
    chooser = cluster.scheduler.chooser
    used = getattr(chooser, "used", len(run.schedule))
    plan = chosen[0] if chosen else (run.plan or FaultPlan())
    return Outcome(attrs.evolve(run, plan=plan, schedule=run.schedule[:used]), error, cluster)


def _failure(outcome: Outcome, **counts: Any) -> Failure:
    assert outcome.error is not None
    trace = outcome.cluster.trace
    return Failure(
        outcome.run,
        outcome.error,
        trace.to_jsonl(messages=True),
        trace.to_text(),
        **counts,
        error_text=f"{type(outcome.error).__name__}: {outcome.error}".strip(),
    )


def explore(
    body: Callable[[SimCluster], Any],
    *,
    runs: int = 1000,
    seed: int = 0,
    kinds: Sequence[str] = FAULT_KINDS,
    max_faults: int = 3,
    horizon: float = 5.0,
    processes: int = 1,
    max_virtual_seconds: float = MAX_VIRTUAL_SECONDS,
    cluster_options: dict[str, Any] | None = None,
) -> Exploration:
    """Run ``body`` ``runs`` times (``plan_run(i, seed, kinds)``); stop at the
    first failure. With ``processes`` > 1 the runs are shared among forked
    processes; the failure reported is still the one of lowest index, as with
    one process."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ConfigurationError(f"runs must be a whole number >= 1, got {runs!r}")
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigurationError(f"processes must be a whole number >= 1, got {processes!r}")
    if (
        isinstance(max_virtual_seconds, bool)
        or not isinstance(max_virtual_seconds, (int, float))
        or not max_virtual_seconds > 0
    ):
        raise ConfigurationError(
            f"max_virtual_seconds must be seconds > 0, got {max_virtual_seconds!r}"
        )
    kinds = _check_kinds(kinds)
    options = {
        "max_faults": max_faults,
        "horizon": horizon,
        "max_virtual_seconds": max_virtual_seconds,
        "cluster_options": cluster_options,
    }
    started = real_perf_counter()
    if processes == 1:
        # The process is patched once for all the runs (VirtualTime.hosting).
        with VirtualTime.hosting():
            for index in range(runs):
                outcome = run_once(body, plan_run(index, seed, kinds), **options)
                if outcome.error is not None:
                    return Exploration(
                        index + 1,
                        real_perf_counter() - started,
                        _failure(outcome, runs=index + 1),
                    )
        return Exploration(runs, real_perf_counter() - started)
    with VirtualTime.hosting():
        first, made = _explore_forked(body, runs, seed, kinds, processes, options)
    seconds = real_perf_counter() - started
    if first is None:
        return Exploration(made, seconds)
    # Run the failing index again here, for its error and trace.
    outcome = run_once(body, plan_run(first, seed, kinds), **options)
    if outcome.error is None:
        raise AssertionError(
            f"run {first} failed in a worker process but passed when run again: the test "
            "depends on something outside the simulation (see docs/fidelity.md)"
        )
    return Exploration(made, seconds, _failure(outcome, runs=made))


def _explore_forked(
    body: Callable[[SimCluster], Any],
    runs: int,
    seed: int,
    kinds: tuple[str, ...],
    processes: int,
    options: dict[str, Any],
) -> tuple[int | None, int]:
    context = multiprocessing.get_context("fork")
    best = context.Value("q", runs)  # the lowest failing index found so far
    results = context.Queue()

    def work(worker: int) -> None:
        made = 0
        failing = None
        raised = None
        try:
            for index in range(worker, runs, processes):
                if index >= best.value:
                    break
                made += 1
                if run_once(body, plan_run(index, seed, kinds), **options).error is not None:
                    failing = index
                    with best.get_lock():
                        best.value = min(best.value, index)
                    break
        except BaseException as exc:  # a skip, an interrupt: the parent re-raises it
            raised = f"{type(exc).__name__}: {exc}"
        results.put((failing, made, raised))
        results.close()
        results.join_thread()

    workers = [context.Process(target=work, args=(k,), daemon=True) for k in range(processes)]
    for worker in workers:
        worker.start()
    found: list[int] = []
    made = 0
    problems = []
    for _ in workers:
        while True:
            try:
                failing, count, raised = results.get(timeout=1.0)
                break
            except queue.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"an exploring process died (exit code {dead[0].exitcode}) before "
                        "reporting; run with processes=1 to see why"
                    ) from None
        made += count
        if failing is not None:
            found.append(failing)
        if raised is not None:
            problems.append(raised)
    for worker in workers:
        worker.join()
    if problems:
        raise RuntimeError(
            f"an exploring process stopped on {problems[0]}; run with processes=1 to see it "
            "where it happens"
        )
    return (min(found) if found else None), made


def _same_failure(error: BaseException | None, original: BaseException) -> bool:
    return error is not None and type(error) is type(original)


def _simpler_faults(fault: Any) -> list[Any]:
    """Simpler variants of one fault, simplest first."""
    options: list[dict[str, Any]] = []
    fields = attrs.fields_dict(type(fault))
    for name, simple in (
        ("skip", 0),
        ("count", 1),
        ("nth", 1),
        ("restart_after", None),
        ("method", None),
        ("service", None),
        ("restart", False),
        ("at", 0.0),
        ("probability", None),
        ("jitter", 0.0),
    ):
        if name in fields and getattr(fault, name) != simple:
            if name == "service" and type(fault) is CrashDuring:
                continue
            options.append({name: simple})
    for name in ("seconds", "duration", "at", "restart_after"):
        value = getattr(fault, name, None) if name in fields else None
        if isinstance(value, (int, float)) and value > 0.1:
            options.append({name: max(0.1, round(value / 2, 1))})
    variants = []
    for change in options:
        try:
            variants.append(attrs.evolve(fault, **change))
        except ConfigurationError:
            continue
    return variants


def shrink(
    body: Callable[[SimCluster], Any],
    failure: Failure,
    *,
    budget: int = 300,
    max_virtual_seconds: float = MAX_VIRTUAL_SECONDS,
    cluster_options: dict[str, Any] | None = None,
) -> Failure:
    """A smaller run that fails the same way (same exception type): fewer
    faults, simpler fields, a shorter schedule, seed 0. At most ``budget``
    runs."""
    best = failure
    tried = 0

    def attempt(candidate: Run) -> bool:
        nonlocal best, tried
        tried += 1
        outcome = run_once(
            body,
            candidate,
            max_virtual_seconds=max_virtual_seconds,
            cluster_options=cluster_options,
        )
        if _same_failure(outcome.error, failure.error):
            best = _failure(outcome, runs=failure.runs)
            return True
        return False

    def search() -> None:
        improved = True
        while improved and tried < budget:
            improved = False
            run = best.run
            plan = list(run.plan or ())
            # Fewer faults.
            for i in range(len(plan)):
                if tried >= budget:
                    break
                if attempt(attrs.evolve(run, plan=FaultPlan(plan[:i] + plan[i + 1 :]))):
                    improved = True
                    break
            if improved:
                continue
            # A shorter schedule: none, then halves, then one choice at a time to 0.
            schedule = run.schedule
            candidates = [()] if schedule else []
            if len(schedule) > 1:
                candidates.append(schedule[: len(schedule) // 2])
            candidates += [
                (*schedule[:i], 0, *schedule[i + 1 :]) for i in range(len(schedule)) if schedule[i]
            ][:16]
            for candidate in candidates:
                if tried >= budget:
                    break
                if attempt(attrs.evolve(run, schedule=candidate)):
                    improved = True
                    break
            if improved:
                continue
            # Simpler faults.
            for i, fault in enumerate(plan):
                for variant in _simpler_faults(fault):
                    if tried >= budget:
                        break
                    if attempt(
                        attrs.evolve(run, plan=FaultPlan([*plan[:i], variant, *plan[i + 1 :]]))
                    ):
                        improved = True
                        break
                if improved:
                    break
            if improved:
                continue
            if run.seed != 0 and tried < budget and attempt(attrs.evolve(run, seed=0)):
                improved = True

    # The process is patched once for all the runs (VirtualTime.hosting).
    with VirtualTime.hosting():
        search()
    best.shrink_runs = tried
    return best


def hash_seed() -> str | None:
    """This process's PYTHONHASHSEED, when it is a fixed number (else None: random)."""
    value = os.environ.get("PYTHONHASHSEED", "")
    return value if value.isdigit() else None


def _file_name(test: str, seed: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", test).strip("_")[-120:] or "run"
    return f"{stem}-seed{seed}.json"


def write_failure(
    failure: Failure,
    folder: Path,
    *,
    test: str,
    file: str | None = None,
    function: str | None = None,
    max_virtual_seconds: float = MAX_VIRTUAL_SECONDS,
) -> Path:
    """Write ``failure`` as JSON under ``folder``; returns its path.

    ``test`` names it (a pytest node id); ``file`` and ``function`` let
    ``shimeji sim --replay`` find the body without pytest."""
    folder.mkdir(parents=True, exist_ok=True)
    run = failure.run
    data = {
        "format": FORMAT,
        "test": test,
        "file": file,
        "function": function,
        "seed": run.seed,
        "faults": repr(run.plan or FaultPlan()),
        "schedule": list(run.schedule),
        "kinds": list(run.kinds),
        "run": run.index,
        "python_hash_seed": hash_seed(),
        "max_virtual_seconds": max_virtual_seconds,
        "error": failure.error_text,
        "trace": failure.trace_jsonl.splitlines(),
    }
    path = folder / _file_name(test, run.seed)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)
    return path


def load_failure(path: str | Path) -> dict[str, Any]:
    """Read a failure written by ``write_failure``; ``ConfigurationError`` says
    what is wrong with a file that is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"no failure file at {str(path)!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path} is not a failure file (JSON): {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(
            f"{path} is not a shimeji failure file (format {FORMAT}): write one with "
            "an exploring test (@pytest.mark.shimeji_explore)"
        )
    problems = []
    if not isinstance(data.get("seed"), int) or isinstance(data.get("seed"), bool):
        problems.append("seed must be an integer")
    schedule = data.get("schedule")
    if not isinstance(schedule, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in schedule
    ):
        problems.append("schedule must be a list of whole numbers >= 0")
    if not isinstance(data.get("trace"), list):
        problems.append("trace must be a list of JSON lines")
    if not isinstance(data.get("faults"), str):
        problems.append("faults must be a fault plan's Python")
    if problems:
        raise ConfigurationError(f"{path}: {'; '.join(problems)}")
    data["plan"] = FaultPlan.from_python(data["faults"])
    return data


def replay_run(data: dict[str, Any]) -> Run:
    """The run a failure file describes."""
    return Run(
        index=int(data.get("run", 0)),
        seed=data["seed"],
        kinds=tuple(data.get("kinds", ())),
        schedule=tuple(data["schedule"]),
        plan=data["plan"],
    )


def replay(
    body: Callable[[SimCluster], Any],
    data: dict[str, Any],
    cluster_options: dict[str, Any] | None = None,
) -> tuple[Outcome, str | None]:
    """Run a failure file's run again; returns the outcome and, if its trace is not
    the recorded one, where they part (``first_difference``)."""
    limit = data.get("max_virtual_seconds", MAX_VIRTUAL_SECONDS)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
        raise ConfigurationError(f"max_virtual_seconds must be seconds > 0, got {limit!r}")
    outcome = run_once(
        body, replay_run(data), max_virtual_seconds=limit, cluster_options=cluster_options
    )
    recorded = "".join(line + "\n" for line in data["trace"])
    now = outcome.cluster.trace.to_jsonl(messages=True)
    return outcome, (
        first_difference(recorded, now, "recorded", "replayed") if recorded != now else None
    )


def _differing(one: Any, two: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(one, dict) and isinstance(two, dict):
        found = []
        for key in list(one) + [k for k in two if k not in one]:
            found += _differing(one.get(key), two.get(key), f"{path}.{key}" if path else key)
        return found
    return [] if one == two else [(path, one, two)]


def _short(value: Any, width: int = 120) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def first_difference(
    one: str, two: str, first: str = "first run", second: str = "second run", diff: bool = True
) -> str:
    """Where two JSONL traces part: the first event that differs, which of its
    values differ, and (with ``diff``) a short diff of the events around it."""
    lines_one, lines_two = one.splitlines(), two.splitlines()
    index = next(
        (i for i, (a, b) in enumerate(zip(lines_one, lines_two, strict=False)) if a != b),
        min(len(lines_one), len(lines_two)),
    )
    if index >= len(lines_one) or index >= len(lines_two):
        if len(lines_one) > len(lines_two):
            longer, name = lines_one, first
        else:
            longer, name = lines_two, second
        head = (
            f"the traces agree for {index} events, then only the {name} goes on: "
            f"{_short(json.loads(longer[index]))}"
        )
    else:
        event_one, event_two = json.loads(lines_one[index]), json.loads(lines_two[index])
        values = _differing(event_one, event_two)
        where = (
            f"{event_one.get('time', 0):.6f} {event_one.get('replica')} {event_one.get('kind')} "
            f"{'.'.join(p for p in (event_one.get('service'), event_one.get('method')) if p)}"
        )
        head = f"event {index} ({where}) is the first that differs; " + "; ".join(
            f"{path}: {_short(a)} in the {first}, {_short(b)} in the {second}"
            for path, a, b in values[:4]
        )
    if not diff:
        return head
    around = "\n".join(
        difflib.unified_diff(
            lines_one[max(0, index - 2) : index + 3],
            lines_two[max(0, index - 2) : index + 3],
            first,
            second,
            lineterm="",
            n=2,
        )
    )
    return f"{head}\n{around}"
