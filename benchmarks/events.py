"""Events: the simulator's speed, and shimeji against nameko 2.14.1 on RabbitMQ.

    python benchmarks/events.py            # full run (a few minutes)
    python benchmarks/events.py --quick    # a smoke run
    python benchmarks/events.py --sim-only # no broker needed

On the simulator (in this process, wall-clock time):

- events dispatched from outside any service to a SERVICE_POOL handler (two
  replicas) and a BROADCAST handler (two replicas), per second of wall time,
  every delivery handled;
- timer ticks per second of wall time: an hour of a one-second timer.

On RabbitMQ, each system runs a counting handler (``bench_sink`` /
``nbench_sink``) in a process of its own; a client in another process
dispatches events with its system's standalone dispatcher, one after the
other, then polls the handler's RPC ``count()`` until every event was
handled: dispatches per second, and events handled per second from the
first dispatch to the last one handled. Rounds interleave the systems;
figures are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import measure  # noqa: E402
from amqp_rpc import System, add_broker_arguments  # noqa: E402

# -- the simulator -------------------------------------------------------------------------


def sim_figures(events: int, hours: float) -> dict[str, float]:
    from shimeji.events import BROADCAST, event_handler
    from shimeji.sim import SimCluster
    from shimeji.timer import timer

    class Pool:
        name = "pool"

        @event_handler("source", "tick")
        def handle(self, payload):
            pass

    class Everyone:
        name = "everyone"

        @event_handler("source", "tick", handler_type=BROADCAST, reliable_delivery=False)
        def handle(self, payload):
            pass

    class Ticking:
        name = "ticking"

        @timer(interval=1)
        def tick(self):
            pass

    clock = time.perf_counter
    with SimCluster(seed=0) as cluster:
        cluster.add_service(Pool, replicas=2)
        cluster.add_service(Everyone, replicas=2)
        began = clock()
        for i in range(events):
            cluster.dispatch("source", "tick", {"n": i})
        cluster.advance(1)
        event_s = clock() - began
        handled = sum(1 for e in cluster.trace.filter("worker_end"))
    assert handled == events * 3, handled  # one pool replica and both broadcast ones
    with SimCluster(seed=0) as cluster:
        cluster.add_service(Ticking)
        began = clock()
        cluster.advance(hours * 3600)
        tick_s = clock() - began
        ticks = sum(1 for e in cluster.trace.filter("timer_tick"))
    assert ticks == round(hours * 3600), ticks
    return {
        "events_per_s": events / event_s,
        "deliveries_per_s": handled / event_s,
        "ticks_per_s": ticks / tick_s,
        "ticks": ticks,
    }


# -- shimeji's client on RabbitMQ ----------------------------------------------------------


def shimeji_client(uri: str, exchange: str, events: int) -> dict:
    from shimeji.standalone import ClusterRpcProxy, event_dispatcher

    config = {"AMQP_URI": uri, "rpc_exchange": exchange}
    with event_dispatcher(config) as dispatch, ClusterRpcProxy(config) as rpc:
        return measure.events(
            lambda i: dispatch("bench_source", "tick", {"n": i}), rpc.bench_sink.count, events
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_broker_arguments(parser, "events")
    parser.add_argument("--sim-only", action="store_true", help="the simulator only")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--arg", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    events = 500 if args.quick else 3000
    if args.role == "shimeji-client":
        print(json.dumps(shimeji_client(args.uri, args.arg[0], int(args.arg[1]))), flush=True)
        return

    sim = sim_figures(events=2000 if args.quick else 10_000, hours=1 if args.quick else 6)
    print(
        f"\nSimulator, {platform.python_implementation()} {platform.python_version()}: "
        f"{sim['events_per_s']:,.0f} events/s dispatched and handled "
        f"({sim['deliveries_per_s']:,.0f} deliveries/s: a pool handler and two broadcast "
        f"replicas); {sim['ticks_per_s']:,.0f} timer ticks/s ({sim['ticks']:,} ticks of a "
        "one-second timer)"
    )
    if args.sim_only:
        return

    me = [sys.executable, str(Path(__file__).resolve()), "--uri", args.uri]
    config_dir = tempfile.mkdtemp()
    shimeji_config = Path(config_dir, "shimeji.yaml")
    shimeji_config.write_text(f"AMQP_URI: '{args.uri}'\nrpc_exchange: shimeji-ebench\n")
    systems = [
        System(
            "shimeji",
            [
                sys.executable,
                "-m",
                "shimeji",
                "run",
                "benchmarks.event_services",
                "--config",
                str(shimeji_config),
                "--log-level",
                "warning",
            ],
            [*me, "--role", "shimeji-client", "--arg", "shimeji-ebench", "--arg", str(events)],
            ["evt-bench_source-tick--bench_sink.on_tick", "rpc-bench_sink"],
        )
    ]
    nameko_python = Path(args.nameko_python)
    if nameko_python.exists():
        nameko_config = Path(config_dir, "nameko.yaml")
        nameko_config.write_text(f"AMQP_URI: '{args.uri}'\nrpc_exchange: nameko-ebench\n")
        systems.append(
            System(
                "nameko 2.14.1",
                [
                    str(nameko_python),
                    "-W",
                    "ignore",
                    "-m",
                    "nameko",
                    "run",
                    "benchmarks.nameko_bench:Sink",
                    "--config",
                    str(nameko_config),
                ],
                [
                    str(nameko_python),
                    "-W",
                    "ignore",
                    str(HERE / "nameko_bench.py"),
                    "events",
                    args.uri,
                    "nameko-ebench",
                    str(events),
                ],
                ["evt-nbench_source-tick--nbench_sink.on_tick", "rpc-nbench_sink"],
                env={"PYTHONPATH": str(ROOT)},
            )
        )
    else:
        print(f"nameko skipped: no {nameko_python} (run .ci/nameko-venv.sh)", file=sys.stderr)
    try:
        for system in systems:
            system.start(args.uri)
        time.sleep(1.0)
        for system in systems:
            system.measure_rss()
        for number in range(1, args.rounds + 1):
            for system in systems:
                system.run_round()
            print(f"round {number} of {args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for system in systems:
            system.stop(args.uri)
        for path in Path(config_dir).iterdir():
            path.unlink()
        os.rmdir(config_dir)
    print(
        f"\nRabbitMQ events, medians of {args.rounds} interleaved rounds of {events} events "
        "dispatched one after the other\n"
    )
    print("| system | dispatched/s | handled/s (end to end) |")
    print("|---|---:|---:|")
    results = {}
    for system in systems:
        figures = {
            key: statistics.median(r[key] for r in system.rounds) for key in system.rounds[0]
        }
        results[system.label] = figures
        print(
            f"| {system.label} | {figures['dispatch_per_s']:,.0f} | "
            f"{figures['handled_per_s']:,.0f} |"
        )
    if "nameko 2.14.1" in results:
        ours, theirs = results["shimeji"], results["nameko 2.14.1"]
        dispatch = ours["dispatch_per_s"] / theirs["dispatch_per_s"]
        handled = ours["handled_per_s"] / theirs["handled_per_s"]
        print(f"\nshimeji / nameko: dispatch {dispatch:.2f}x, handled {handled:.2f}x")


if __name__ == "__main__":
    main()
