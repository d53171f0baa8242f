"""How fast the simulator runs RPC, against a direct Python call.

    python benchmarks/sim_rpc.py            # full run (about a minute)
    python benchmarks/sim_rpc.py --quick    # a smoke run

Prints, with tracing on and full serialization:
- sequential round trips per second (client -> service -> reply);
- the same through a two-hop chain (client -> front -> calculator);
- 1,000 concurrent call_async calls;
- a fault-heavy run: 10% of messages dropped (calls time out after 1 s of
  virtual time) and one replica crash per 1,000 calls, against the same calls
  with no faults;
and, as the baseline measured in the same run, a direct Python call of the same
method on a ``worker_factory`` instance, with the ratio, and the floor the
project holds itself to for each of the first three (met or not). Then the
peak RSS and start time of a cluster of 100 services x 3 replicas (in a fresh
process).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shimeji.exceptions import RpcTimeout
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.clock import real_perf_counter as clock
from shimeji.sim.faults import Crash, Drop
from shimeji.testing import worker_factory


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


#: Calls per second the simulator must reach on the project's CI machine kind
#: (2 cores), tracing on, full serialization (docs/benchmarks.md).
FLOORS = {"sequential": 50_000, "two-hop": 20_000, "concurrent": 60_000}


def best_rate(run: Callable[[int], float], calls: int, repeats: int) -> float:
    """Calls per second: the best of ``repeats`` runs of ``calls`` calls."""
    return max(calls / run(calls) for _ in range(repeats))


def sequential(service: str, calls: int) -> float:
    with SimCluster(trace=True) as cluster:
        cluster.add_service(Calculator)
        cluster.add_service(Front)
        method = cluster.rpc[service].multiply
        method(1, 2)
        start = clock()
        for i in range(calls):
            method(i, 2)
        elapsed = clock() - start
        assert len(cluster.trace) > calls
    return elapsed


def concurrent(calls: int) -> float:
    with SimCluster(trace=True) as cluster:
        cluster.add_service(Calculator, replicas=3)
        method = cluster.rpc.calculator.multiply
        start = clock()
        replies = [method.call_async(i, 2) for i in range(calls)]
        results = [reply.result() for reply in replies]
        elapsed = clock() - start
        assert results[-1] == (calls - 1) * 2
    return elapsed


def with_faults(calls: int, faulty: bool) -> float:
    plan = [Drop(direction="any", count=None, probability=0.1)] if faulty else None
    with SimCluster(trace=True, faults=plan) as cluster:
        cluster.add_service(Calculator, replicas=3)
        method = cluster.rpc_proxy(timeout=1.0).calculator.multiply
        lost = 0
        start = clock()
        for i in range(calls):
            if faulty and i % 1_000 == 999:  # one crash per 1,000 calls
                victim = f"calculator-{i // 1_000 % 3 + 1}"
                cluster.add_faults(Crash(victim, at=cluster.elapsed(), restart_after=0.5))
            try:
                method(i, 2)
            except RpcTimeout:
                lost += 1
        elapsed = clock() - start
        if faulty:
            assert lost and cluster.trace.filter("fault_crash")
    return elapsed


def direct(calls: int) -> float:
    service = worker_factory(Calculator)
    start = clock()
    for i in range(calls):
        service.multiply(i, 2)
    return clock() - start


BIG_CLUSTER = """
import json, sys
sys.path.insert(0, {root!r})
from shimeji.rpc import rpc
from shimeji.sim import SimCluster
from shimeji.sim.clock import real_perf_counter as clock
from shimeji.sim.faults import Crash, Drop

def make(i):
    def ping(self, x):
        return x
    return type(f"S{{i}}", (), {{"name": f"svc{{i}}", "ping": rpc(ping)}})

def rss_kb(field):
    # /proc, not getrusage: ru_maxrss survives exec and would report the parent's peak
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

classes = [make(i) for i in range(100)]
before = rss_kb("VmRSS")
start = clock()
cluster = SimCluster()
cluster.start()
for cls in classes:
    cluster.add_service(cls, replicas=3)
started = clock() - start
assert cluster.rpc.svc99.ping(7) == 7
peak = rss_kb("VmHWM")
cluster.stop()
print(json.dumps({{"start_s": started, "peak_rss_kb": peak, "before_rss_kb": before}}))
"""


def big_cluster() -> dict[str, float]:
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", BIG_CLUSTER.format(root=root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    args = parser.parse_args()
    calls, repeats, burst = (2_000, 1, 1_000) if args.quick else (20_000, 3, 1_000)

    gc.collect()
    baseline = best_rate(direct, calls * 10, repeats)
    rows = [
        (
            "sequential round trips (client -> service)",
            best_rate(lambda n: sequential("calculator", n), calls, repeats),
            FLOORS["sequential"],
        ),
        (
            "two-hop chain (client -> front -> calculator)",
            best_rate(lambda n: sequential("front", n), calls // 2, repeats),
            FLOORS["two-hop"],
        ),
        (
            f"{burst} concurrent call_async",
            best_rate(concurrent, burst, repeats),
            FLOORS["concurrent"],
        ),
    ]
    clean = best_rate(lambda n: with_faults(n, False), calls // 2, repeats)
    faulty = best_rate(lambda n: with_faults(n, True), calls // 2, repeats)
    print(
        f"shimeji simulator benchmark  (Python {platform.python_version()}, "
        f"{platform.machine()}, tracing on, JSON serialization)"
    )
    print(f"baseline: direct call through worker_factory: {baseline:,.0f} calls/s")
    print()
    print(f"{'scenario':<48} {'calls/s':>12} {'vs direct':>10} {'floor':>9}")
    for label, rate, floor in rows:
        verdict = "met" if rate >= floor else f"{rate / floor:.0%} of it"
        print(f"{label:<48} {rate:>12,.0f} {baseline / rate:>9,.0f}x {floor:>9,}  {verdict}")
    print()
    print("faults (3 replicas, 1 s timeouts in virtual time):")
    print(f"  no faults:                                    {clean:>12,.0f} calls/s")
    print(
        f"  10% of messages dropped, a crash per 1,000:   {faulty:>12,.0f} calls/s "
        f"({faulty / clean:.2f}x the fault-free rate)"
    )
    big = big_cluster()
    rss_mb = (big["peak_rss_kb"] - big["before_rss_kb"]) / 1024
    print()
    print(
        f"100 services x 3 replicas: started in {big['start_s'] * 1000:,.0f} ms, "
        f"peak RSS {big['peak_rss_kb'] / 1024:,.1f} MB "
        f"({rss_mb:,.1f} MB above the interpreter with shimeji imported)"
    )


if __name__ == "__main__":
    main()
