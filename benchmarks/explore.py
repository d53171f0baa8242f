"""How fast exploration runs the README's payments property, and how soon it finds its bug.

    python benchmarks/explore.py            # about a minute on 2 cores
    python benchmarks/explore.py --quick    # fewer runs and seeds

The README's ``test_payments.py`` (a charge that is not idempotent) and its
exploring test ``test_payments_explored.py`` are taken from README.md as
written. Printed:

1. Schedules explored per second: runs of the exploring test's body on the
   fixed service (each order charged once, so every run passes and none stops
   the exploration), on 1 process and on 2; the baseline, measured in the same
   run, is the README's Hypothesis property (``fault_plans``) on the same
   fixed service, in examples per second, patched for virtual time once for
   the test as under pytest (and, for reference, once per cluster, as
   outside pytest without ``keep_virtual_time``); and how long 100,000
   schedules take at the two-process rate.
2. Time to the bug from a cold start: for each of several exploration seeds,
   a fresh exploration of the buggy service until its first failure, and the
   shrinking after it; medians over the seeds. The baseline is Hypothesis
   finding and shrinking the same bug, with as many seeds (``@seed``) and no
   example database.
3. The whole command: ``pytest test_payments_explored.py`` in a new process
   (interpreter start, collection, exploration, shrinking, the failure file).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shimeji.sim.clock import kept_on_demand

ROOT = Path(__file__).resolve().parents[1]
FIX = (
    "        CHARGES.append(order_id)  # not idempotent: a second delivery charges again\n",
    "        if order_id not in CHARGED:\n"
    "            CHARGED[order_id] = amount\n"
    "            CHARGES.append(order_id)\n",
)


def readme_blocks() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    found = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL):
        first = block.splitlines()[0]
        if first.startswith("# ") and first.endswith(".py"):
            found[first[2:]] = block
    return found


def load(folder: Path, fixed: bool, examples: int = 200) -> tuple[Any, Any]:
    """(README's Hypothesis test, exploring body) for the buggy or the fixed service;
    the Hypothesis test runs ``examples`` examples, with no example database."""
    blocks = readme_blocks()
    payments = blocks["test_payments.py"]
    given = "@settings(max_examples=200, deadline=None)"
    assert given in payments, "the README's property changed its settings"
    payments = payments.replace(
        given, f"@settings(max_examples={examples}, deadline=None, database=None)"
    )
    if fixed:
        payments = payments.replace(*FIX).replace("CHARGES = []\n", "CHARGES = []\nCHARGED = {}\n")
        payments = payments.replace(
            "    CHARGES.clear()\n", "    CHARGES.clear()\n    CHARGED.clear()\n"
        )
    explored = blocks["test_payments_explored.py"]
    if fixed:
        explored = explored.replace(
            "    CHARGES.clear()", "    CHARGES.clear()\n    test_payments.CHARGED.clear()"
        )
        explored = explored.replace(
            "from test_payments import", "import test_payments\nfrom test_payments import"
        )
    (folder / "test_payments.py").write_text(payments)
    (folder / "test_payments_explored.py").write_text(explored)
    for name in ("test_payments", "test_payments_explored"):
        sys.modules.pop(name, None)
    hypothesis_test = importlib.import_module(
        "test_payments"
    ).test_each_order_is_charged_at_most_once
    explored_test = importlib.import_module("test_payments_explored").test_charged_at_most_once

    def body(cluster: Any) -> None:
        explored_test(sim_cluster=cluster)

    # The marker's options (its fault kinds), as pytest would give them.
    (marker,) = explored_test.pytestmark
    body.options = {k: v for k, v in marker.kwargs.items() if k != "runs"}  # type: ignore[attr-defined]
    return hypothesis_test, body


def hypothesis_rate(test: Any, examples: int, per_test: bool = True) -> float:
    """Examples a second; ``per_test``: patched for virtual time once for the
    test, as the pytest plugin does (``kept_on_demand``), else for each cluster."""
    block = kept_on_demand() if per_test else contextlib.nullcontext()
    started = time.perf_counter()
    with block:
        test()
    return examples / (time.perf_counter() - started)


def hypothesis_time_to_bug(test: Any, seed: int) -> float:
    from hypothesis import seed as hypothesis_seed

    inner = hypothesis_seed(seed)(test)
    started = time.perf_counter()
    try:
        with kept_on_demand():  # as under the pytest plugin
            inner()
    except AssertionError:
        return time.perf_counter() - started
    raise SystemExit(f"Hypothesis with seed {seed} did not find the bug")


def row(label: str, value: str, ratio: str = "") -> None:
    print(f"   {label:<52} {value:>11}  {ratio}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and seeds")
    args = parser.parse_args()
    runs = 300 if args.quick else 2000
    seeds = 5 if args.quick else 21
    from shimeji.testing import explore as exploration

    # Corrupted requests are logged by the services: not what is measured here.
    logging.getLogger("shimeji").setLevel(logging.CRITICAL)

    with tempfile.TemporaryDirectory() as folder:
        sys.path.insert(0, folder)
        examples = runs // 4
        hypothesis_fixed, body_fixed = load(Path(folder), fixed=True, examples=examples)
        exploration.explore(body_fixed, runs=20, **body_fixed.options)  # warm up imports and caches

        print(f"1. schedules explored per second (README payments property, fixed, {runs} runs)")
        baseline = hypothesis_rate(hypothesis_fixed, examples)
        row("Hypothesis fault_plans, examples/s (baseline)", f"{baseline:,.0f}", "1.00x")
        per_cluster = hypothesis_rate(hypothesis_fixed, examples, per_test=False)
        row(
            "  the same, patched for virtual time per cluster",
            f"{per_cluster:,.0f}",
            f"{per_cluster / baseline:.2f}x",
        )
        for processes in (1, 2):
            result = exploration.explore(
                body_fixed, runs=runs, processes=processes, **body_fixed.options
            )
            assert result.failure is None, result.failure and result.failure.error_text
            rate = result.runs_per_second
            row(
                f"exploration, {processes} process(es), runs/s",
                f"{rate:,.0f}",
                f"{rate / baseline:.2f}x",
            )
        row("100,000 schedules at the 2-process rate", f"{100_000 / rate:,.0f} s")

        hypothesis_buggy, body_buggy = load(Path(folder), fixed=False, examples=2000)
        print(f"\n2. time to the bug from a cold start (median over {seeds} seeds)")
        finds, shrinks, totals, made = [], [], [], []
        for seed in range(seeds):
            started = time.perf_counter()
            result = exploration.explore(body_buggy, runs=2000, seed=seed, **body_buggy.options)
            found = time.perf_counter()
            assert result.failure is not None, f"seed {seed}: no failure in 2000 runs"
            shrunk = exploration.shrink(body_buggy, result.failure)
            done = time.perf_counter()
            finds.append(found - started)
            shrinks.append(done - found)
            totals.append(done - started)
            made.append(result.runs)
            assert repr(shrunk.run.plan) == "FaultPlan([Duplicate()])", shrunk.run.plan
        hypothesis_totals = [
            hypothesis_time_to_bug(hypothesis_buggy, seed) for seed in range(seeds)
        ]
        found_median = statistics.median(totals)
        hypothesis_median = statistics.median(hypothesis_totals)
        row(
            "Hypothesis, found and shrunk (baseline)",
            f"{hypothesis_median * 1000:,.0f} ms",
            "1.00x",
        )
        row("exploration, runs to the first failure", f"{statistics.median(made):,.0f}")
        row("exploration, first failure found", f"{statistics.median(finds) * 1000:,.0f} ms")
        row(
            "exploration, shrunk to FaultPlan([Duplicate()])",
            f"{statistics.median(shrinks) * 1000:,.0f} ms",
        )
        row(
            "exploration, found and shrunk",
            f"{found_median * 1000:,.0f} ms",
            f"{found_median / hypothesis_median:.3f}x",
        )

        print("\n3. the whole command, in a new process")
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "test_payments_explored.py",
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        elapsed = time.perf_counter() - started
        assert done.returncode == 1 and "replay: " in done.stdout, done.stdout[-2000:]
        row("pytest test_payments_explored.py: fails, shrinks, saves", f"{elapsed:.2f} s")


if __name__ == "__main__":
    main()
