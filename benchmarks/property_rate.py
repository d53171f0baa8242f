"""How many Hypothesis examples per second the property tests run.

    python benchmarks/property_rate.py                        # the default (ci) profile
    python benchmarks/property_rate.py --against main --rounds 3
    python benchmarks/property_rate.py --against main --rounds 3 --seed 1   # same examples
    SHIMEJI_HYPOTHESIS_PROFILE=thorough python benchmarks/property_rate.py

Runs ``pytest property_tests --hypothesis-show-statistics`` and prints, per
property, the examples run and the time Hypothesis spent generating and
running them (its "generate phase": the examples themselves, without pytest's
start-up or collection), then the total rate. It also prints the CPU seconds
of the whole pytest process (start-up included), which other processes on
the machine move less than they move the wall-clock times.

With ``--against REV``, the same for another revision of this repository
(extracted with ``git archive``, imported from there), run alternately with
this tree ``--rounds`` times: each property's best time of the rounds, for
both trees, and the ratio of their rates from the same run. Both trees run
under one ``PYTHONHASHSEED`` (the pytest plugin would otherwise start pytest
again under a random one).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, seed: int | None = None) -> tuple[dict[str, tuple[int, float]], float]:
    """``({property: (examples, seconds)}, CPU seconds of the pytest process)``."""
    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    if tree != ROOT:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "property_tests",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-show-statistics",
            *([f"--hypothesis-seed={seed}"] if seed is not None else []),
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        sys.stdout.write(done.stdout[-3000:])
        raise SystemExit(f"the property tests failed in {tree}")
    found: dict[str, tuple[int, float]] = {}
    name, seconds = None, None
    for line in done.stdout.splitlines():
        if match := re.match(r"property_tests/\S+::(\S+):$", line):
            name = match.group(1)
        elif match := re.search(r"during generate phase \(([\d.]+) seconds\)", line):
            seconds = float(match.group(1))
        elif (match := re.search(r"(\d+) passing, (\d+) failing", line)) and name and seconds:
            found[name] = (int(match.group(1)) + int(match.group(2)), seconds)
            name = seconds = None
    if not found:
        raise SystemExit("no Hypothesis statistics found in the pytest output")
    return found, cpu


def best(runs: list[tuple[dict[str, tuple[int, float]], float]]) -> tuple[dict, float]:
    """Each property's fastest round, and the least CPU of the rounds."""
    merged: dict[str, tuple[int, float]] = {}
    for found, _ in runs:
        for name, (examples, seconds) in found.items():
            if name not in merged or seconds < merged[name][1]:
                merged[name] = (examples, seconds)
    return merged, min(cpu for _, cpu in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="a git revision to measure in the same run")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each tree (best kept)")
    parser.add_argument(
        "--seed",
        type=int,
        help="Hypothesis' seed (--hypothesis-seed): every run draws the same examples, so "
        "that rounds and trees differ only in how fast they run them (where the two trees' "
        "strategies are the same); random by default",
    )
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory() as scratch:
        if args.against:
            base = Path(scratch) / "base"
            base.mkdir()
            archive = subprocess.run(
                ["git", "archive", args.against], cwd=ROOT, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            trees[args.against] = base
        rounds: dict[str, list] = {label: [] for label in trees}
        for _ in range(max(1, args.rounds)):
            for label, tree in trees.items():
                rounds[label].append(run(tree, args.seed))
    results = {label: best(runs) for label, runs in rounds.items()}
    labels = list(trees)
    header = f"{'property':<66}" + "".join(
        f" {'examples':>8} {'seconds':>8} {'per s':>6}" for _ in labels
    )
    if len(labels) > 1:
        header += f" {'ratio':>6}"
        print(f"{'':<66}" + "".join(f" {label[:24]:>24}" for label in labels))
    print(header)
    names = list(results[labels[0]][0])
    totals = {label: [0, 0.0] for label in labels}
    for name in [*names, "all properties"]:
        row, rates = f"{name:<66}", []
        for label in labels:
            found = results[label][0]
            if name == "all properties":
                examples, seconds = totals[label]
            elif name in found:
                examples, seconds = found[name]
                totals[label][0] += examples
                totals[label][1] += seconds
            else:
                row += f" {'-':>8} {'-':>8} {'-':>6}"
                rates.append(None)
                continue
            rates.append(examples / seconds)
            row += f" {examples:>8} {seconds:>8.2f} {examples / seconds:>6.0f}"
        if len(labels) > 1 and None not in rates:
            row += f" {rates[0] / rates[1]:>5.2f}x"
        print(row)
    for label in labels:
        found, cpu = results[label]
        examples = sum(e for e, _ in found.values())
        print(
            f"{label}: {cpu:.1f} CPU seconds for the whole pytest process, "
            f"{cpu / examples * 1000:.1f} ms per example (start-up included)"
        )


if __name__ == "__main__":
    main()
