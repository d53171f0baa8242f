"""What nameko's testing tools cost on the simulator.

    python benchmarks/testing_tools.py            # full run (about half a minute)
    python benchmarks/testing_tools.py --quick    # a smoke run
    SHIMEJI_NAMEKO_PYTHON=.ci/.nameko-venv/bin/python python benchmarks/testing_tools.py

Prints, measured in the same run:
- calls per second through ``entrypoint_hook`` (a worker run directly, no
  broker), against an RPC round trip through ``cluster.rpc`` and, as the
  baseline, a direct call of the method on a ``worker_factory`` instance;
- the set-up of a nameko-style test per second: a cluster, a container from
  ``SimContainer`` with a dependency replaced, started, one hooked call,
  stopped; with virtual time patched for each cluster, and once for a run
  of such tests, as the pytest plugin does;
- with nameko 2.14.1's python (``--nameko-python`` or
  ``SHIMEJI_NAMEKO_PYTHON``), nameko's own ``entrypoint_hook`` on a container
  whose only entrypoint is ``@dummy`` (nameko needs no broker for that),
  under eventlet, in its own process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shimeji.rpc import RpcProxy, rpc  # noqa: E402
from shimeji.sim import SimCluster  # noqa: E402
from shimeji.sim.clock import keep_virtual_time  # noqa: E402
from shimeji.sim.clock import real_perf_counter as clock  # noqa: E402
from shimeji.testing import worker_factory  # noqa: E402
from shimeji.testing.containers import SimContainer  # noqa: E402
from shimeji.testing.services import entrypoint_hook, replace_dependencies  # noqa: E402


class Calculator:
    name = "calculator"
    audit = RpcProxy("audit")

    @rpc
    def multiply(self, a, b):
        return a * b


def best_rate(run: Callable[[int], float], count: int, repeats: int) -> float:
    return max(count / run(count) for _ in range(repeats))


def direct(calls: int) -> float:
    service = worker_factory(Calculator)
    start = clock()
    for i in range(calls):
        service.multiply(i, 2)
    return clock() - start


def hooked(calls: int) -> float:
    with SimCluster() as cluster:
        (replica,) = cluster.add_service(Calculator)
        with entrypoint_hook(replica, "multiply") as multiply:
            start = clock()
            for i in range(calls):
                multiply(i, 2)
            elapsed = clock() - start
        assert len(cluster.trace) > calls
    return elapsed


def round_trips(calls: int) -> float:
    with SimCluster() as cluster:
        cluster.add_service(Calculator)
        method = cluster.rpc.calculator.multiply
        method(1, 2)
        start = clock()
        for i in range(calls):
            method(i, 2)
        return clock() - start


def test_setups(count: int, kept: bool = False) -> float:
    """``count`` test set-ups; ``kept``: virtual time's patches kept from one to
    the next, as the pytest plugin keeps them over a run of tests that take
    ``sim_cluster`` (as nameko's fixtures here do), else made per cluster."""
    block = keep_virtual_time() if kept else contextlib.nullcontext()
    start = clock()
    with block:
        for _ in range(count):
            one_setup()
    return clock() - start


def one_setup() -> None:
    with SimCluster() as cluster:
        container = SimContainer(cluster, Calculator, {"max_workers": 2})
        replace_dependencies(container, "audit")
        container.start()
        with entrypoint_hook(container, "multiply") as multiply:
            assert multiply(6, 7) == 42


NAMEKO_HOOK = """
import eventlet
eventlet.monkey_patch()
import sys, time
from nameko.containers import ServiceContainer
from nameko.testing.services import dummy, entrypoint_hook

class Calculator:
    name = "calculator"

    @dummy
    def multiply(self, a, b):
        return a * b

calls, repeats = int(sys.argv[1]), int(sys.argv[2])
container = ServiceContainer(Calculator, {})
container.start()
best = 0.0
with entrypoint_hook(container, "multiply") as multiply:
    multiply(1, 2)
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            multiply(i, 2)
        best = max(best, calls / (time.perf_counter() - start))
container.stop()
print(best)
"""


def nameko_hook_rate(python: str, calls: int, repeats: int) -> float | None:
    if not python or not Path(python).exists():
        return None
    done = subprocess.run(
        [python, "-c", NAMEKO_HOOK, str(calls), str(repeats)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        print(f"(nameko's hook did not run: {done.stderr.strip().splitlines()[-1:]})")
        return None
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(
        "--nameko-python",
        default=os.environ.get("SHIMEJI_NAMEKO_PYTHON")
        or str(ROOT / ".ci" / ".nameko-venv" / "bin" / "python"),
        help="python of nameko's virtualenv (skipped when absent)",
    )
    args = parser.parse_args()
    calls, setups, repeats = (2_000, 50, 1) if args.quick else (20_000, 500, 3)

    baseline = best_rate(direct, calls * 10, repeats)
    hook = best_rate(hooked, calls, repeats)
    rpc_rate = best_rate(round_trips, calls, repeats)
    setup_rate = best_rate(test_setups, setups, repeats)
    kept_rate = best_rate(lambda n: test_setups(n, kept=True), setups, repeats)
    nameko = nameko_hook_rate(args.nameko_python, calls, repeats)

    print(
        f"shimeji testing tools benchmark  (Python {platform.python_version()}, "
        f"{platform.machine()}, tracing on)"
    )
    print(f"baseline: direct call through worker_factory: {baseline:,.0f} calls/s")
    print()
    print(f"{'scenario':<52} {'per s':>10} {'vs direct':>10}")
    rows = [
        ("entrypoint_hook call (worker, no broker)", hook),
        ("RPC round trip through cluster.rpc", rpc_rate),
        ("test set-up: cluster, container, replace, hook, stop", setup_rate),
        ("  the same, patched once for a run of tests (pytest)", kept_rate),
    ]
    if nameko is not None:
        rows.append(("nameko 2.14.1 entrypoint_hook call (eventlet)", nameko))
    for label, rate in rows:
        print(f"{label:<52} {rate:>10,.0f} {baseline / rate:>9,.0f}x")
    print()
    print(f"entrypoint_hook against an RPC round trip: {hook / rpc_rate:.2f}x the rate")
    if nameko is not None:
        print(f"entrypoint_hook against nameko's: {hook / nameko:.2f}x the rate")


if __name__ == "__main__":
    main()
