"""Instructions per simulated call, counted by valgrind: a measure of the
simulator's speed that a busy machine does not move.

    python benchmarks/sim_instructions.py                  # this tree
    python benchmarks/sim_instructions.py --against HEAD~5 # and a revision, same run

Wall-clock rates (``benchmarks/sim_rpc.py``) move by a third when other
processes share the machine's two cores; the instructions a call executes
move by well under 1% (hash randomization). For each scenario of
``sim_rpc.py`` (tracing on, JSON serialization) it runs the calls under
``valgrind --tool=callgrind`` twice, with 1,000 and with 3,000 calls, and
reports the difference divided by 2,000: the cost of one call, without the
start-up of the interpreter and of the cluster. With ``--against``, the same
for another revision of this repository (extracted with ``git archive``),
and the ratio. Needs valgrind (``apt-get install valgrind``); takes a few
minutes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCENARIOS = {
    "sequential round trips (client -> service)": "calculator",
    "two-hop chain (client -> front -> calculator)": "front",
    "1000 concurrent call_async (3 replicas)": "concurrent",
}

CALLS = """
import sys
sys.path.insert(0, sys.argv[1])
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster

class Calculator:
    name = "calculator"

    @rpc
    def multiply(self, a, b):
        return a * b

class Front:
    name = "front"
    calculator = RpcProxy("calculator")

    @rpc
    def multiply(self, a, b):
        return self.calculator.multiply(a, b)

mode, calls = sys.argv[2], int(sys.argv[3])
with SimCluster(trace=True) as cluster:
    cluster.add_service(Calculator, replicas=3 if mode == "concurrent" else 1)
    cluster.add_service(Front)
    if mode == "concurrent":
        method = cluster.rpc.calculator.multiply
        for start in range(0, calls, 1000):
            replies = [method.call_async(i, 2) for i in range(start, start + 1000)]
            assert [reply.result() for reply in replies][-1] == (start + 999) * 2
    else:
        method = cluster.rpc[mode].multiply
        for i in range(calls):
            method(i, 2)
"""


def instructions(root: Path, mode: str, calls: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            CALLS,
            str(root),
            mode,
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_call(root: Path, mode: str) -> float:
    return (instructions(root, mode, 3000) - instructions(root, mode, 1000)) / 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", help="a git revision to measure as well")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.against:
            archive = subprocess.run(
                ["git", "archive", args.against], cwd=ROOT, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            trees = {args.against: Path(tmp), **trees}
        print(f"instructions per call (valgrind callgrind), Python {sys.version.split()[0]}")
        header = "".join(f"{name:>16}" for name in trees)
        print(f"{'scenario':<48}{header}{'   ratio' if args.against else ''}")
        for label, mode in SCENARIOS.items():
            counts = [per_call(root, mode) for root in trees.values()]
            row = "".join(f"{count:>16,.0f}" for count in counts)
            ratio = f"   {counts[0] / counts[-1]:.2f}x fewer" if len(counts) > 1 else ""
            print(f"{label:<48}{row}{ratio}")


if __name__ == "__main__":
    main()
