"""``shimeji sim --replay FILE``: run a failing exploration run again, outside pytest.

The failure file (written by a test marked ``shimeji_explore``, see
``shimeji.testing.explore``) names the test's file and function, the seed, the
fault plan and the schedule of the run. The function is imported, given a
fresh ``SimCluster`` as its ``sim_cluster`` argument, run exactly as recorded,
and its trace shown as ``shimeji sim`` shows any run; the command then says
whether the trace is the recorded one, event for event.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any

from shimeji.cli import CommandError
from shimeji.cli.loading import describe_exception, load_module
from shimeji.core.exceptions import ConfigurationError
from shimeji.testing import explore as exploration
from shimeji.views import EventLog
from shimeji.views.ids import IdNamer, canonicalize

__all__ = ["find_test", "run_replay"]


def _test_file(data: dict[str, Any], path: Path) -> Path:
    """The test's file: relative to the folder holding ``.shimeji/failures``, or
    to the working directory."""
    name = data.get("file")
    if not isinstance(name, str) or not name:
        raise CommandError(f"{path} does not name the test's file; replay it with pytest")
    candidates = []
    folder = path.resolve().parent
    if folder.name == "failures" and folder.parent.name == ".shimeji":
        candidates.append(folder.parent.parent / name)
    candidates += [Path.cwd() / name, Path(name)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CommandError(
        f"cannot find {name} (the test {data.get('test')}); run from the directory the "
        "failure was written under"
    )


def find_test(data: dict[str, Any], path: Path) -> Any:
    """The test function a failure file names, as a function of the cluster."""
    file = _test_file(data, path)
    module = load_module(str(file))
    qualname = data.get("function") or ""
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise CommandError(f"{file} has no {qualname}; has the test been renamed?")
        if inspect.isclass(target):
            target = target()  # a test class: its methods are bound to an instance
    if not callable(target):
        raise CommandError(f"{qualname} in {file} is not a function")
    parameters = inspect.signature(target).parameters
    others = [
        name
        for name, parameter in parameters.items()
        if name != "sim_cluster" and parameter.default is inspect.Parameter.empty
    ]
    if "sim_cluster" not in parameters or others:
        raise CommandError(
            f"{qualname} takes {', '.join(others) or 'no sim_cluster'} besides sim_cluster: "
            f"replay it with pytest, as its replay line says "
            f"(pytest '{data.get('test')}' --shimeji-replay={path})"
        )
    return lambda cluster: target(sim_cluster=cluster)


def run_replay(args: argparse.Namespace, render: Any, write: Any) -> int:
    path = Path(args.replay)
    try:
        data = exploration.load_failure(path)
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None
    body = find_test(data, path)
    outcome, difference = exploration.replay(body, data)
    args.module = data.get("file")
    args.scenario = data.get("function")
    args.seed = data["seed"]
    args.faults = data["faults"] if data["plan"] else None
    log = EventLog.from_cluster(outcome.cluster)
    failure = describe_exception(outcome.error) if outcome.error is not None else None
    if args.ids == "canonical":
        namer = IdNamer()
        log = EventLog(canonicalize(log.records, namer))
        failure = namer.rewrite(failure)
    write(render(log, args), args.out, len(log), args.format)
    print(
        f"shimeji sim: replayed {data.get('test')}: seed {data['seed']}, fault plan "
        f"{data['faults']}, schedule {data['schedule']}",
        file=sys.stderr,
    )
    recorded = data.get("python_hash_seed")
    if recorded is not None and recorded != exploration.hash_seed():
        print(
            f"shimeji sim: note: recorded under PYTHONHASHSEED={recorded}; run "
            f"`PYTHONHASHSEED={recorded} shimeji sim --replay {path}` for the same order "
            "of sets of strings",
            file=sys.stderr,
        )
    if difference is None:
        print(
            f"shimeji sim: the trace is the recorded one, event for event ({len(data['trace'])} "
            "events)",
            file=sys.stderr,
        )
    else:
        print(
            f"shimeji sim: the trace differs from the recorded one: {difference}", file=sys.stderr
        )
    if failure is not None:
        print(f"shimeji sim: error: the test raised {failure}", file=sys.stderr)
    return 1 if failure is not None or difference is not None else 0
