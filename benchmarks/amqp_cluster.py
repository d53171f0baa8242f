"""What a RabbitMQ cluster costs shimeji: one node against three, in the same run.

    bash .ci/rabbitmq-cluster.sh start             # the three local nodes (about 30 s)
    python benchmarks/amqp_cluster.py              # full run (about a minute)
    python benchmarks/amqp_cluster.py --quick      # a smoke run

The same ``shimeji run benchmarks.amqp_services`` service and the same client
(sequential round trips, then 200 calls in flight) run against:

- ``single node, classic``: the broker on ``--uri`` (the baseline);
- ``cluster, classic``: the three-node cluster, nameko's classic queues;
- ``cluster, quorum``: the cluster with ``RPC_QUEUE_TYPE: quorum`` (the service
  queue replicated on three nodes: each request is confirmed once a majority
  wrote it).

The service and the client both list the three nodes, the client starting on
another node than the service, as they would run in production. Rounds are
interleaved and medians kept; it prints a Markdown table and the ratios to
the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import measure  # noqa: E402

DEFAULT_URI = "amqp://guest:guest@localhost:5672//"
CLUSTER = [f"amqp://guest:guest@127.0.0.1:{port}//" for port in (5681, 5682, 5683)]


def client(config: dict, sizes: dict[str, int]) -> dict:
    from shimeji.standalone import ClusterRpcProxy

    with ClusterRpcProxy(config) as rpc:
        echo = rpc.bench_echo.echo
        figures = measure.sequential(echo, sizes["calls"], sizes["warmup"])
        figures["pipelined_per_s"] = measure.pipelined(echo.call_async, sizes["pipelined"], 200)
    return figures


def serve_and_measure(config: dict, me: list[str], sizes: dict[str, int]) -> dict:
    """Start the service with ``config``, measure it from a client process, stop it."""
    from shimeji.amqp_adapter import AmqpTransport
    from shimeji.config import Settings

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "config.json")
        path.write_text(json.dumps(config))
        server = subprocess.Popen(
            [sys.executable, "-m", "shimeji", "run", "benchmarks.amqp_services:Echo",
             "--config", str(path), "--log-level", "warning"],
            cwd=ROOT, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        probe = AmqpTransport(Settings.from_config(config), name="bench-probe")
        try:
            deadline = time.monotonic() + 60
            while (probe.inspect_queue("rpc-bench_echo") or (0, 0))[1] == 0:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the service did not start")
                time.sleep(0.1)
            uris = config["AMQP_URI"]
            moved = (
                {**config, "AMQP_URI": uris[1:] + uris[:1]} if isinstance(uris, list) else config
            )
            done = subprocess.run(
                [*me, "--role", "client", "--arg", json.dumps(moved), "--arg", json.dumps(sizes)],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"the client failed:\n{done.stderr}")
            return json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            server.terminate()
            server.wait(30)
            try:
                probe.delete_queue("rpc-bench_echo")
                probe.delete_exchange(config["rpc_exchange"])
            finally:
                probe.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("SHIMEJI_AMQP_URI", DEFAULT_URI))
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--arg", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        figures = client(json.loads(args.arg[0]), json.loads(args.arg[1]))
        print(json.dumps(figures), flush=True)
        return
    sizes = (
        {"calls": 300, "warmup": 50, "pipelined": 1000}
        if args.quick
        else {"calls": 2000, "warmup": 200, "pipelined": 5000}
    )
    me = [sys.executable, str(Path(__file__).resolve())]
    exchange = f"shimeji-bench-{uuid.uuid4().hex[:8]}"
    systems = {
        "single node, classic": {"AMQP_URI": args.uri, "rpc_exchange": exchange},
        "cluster, classic": {"AMQP_URI": CLUSTER, "rpc_exchange": exchange},
        "cluster, quorum": {
            "AMQP_URI": CLUSTER,
            "rpc_exchange": exchange,
            "RPC_QUEUE_TYPE": "quorum",
        },
    }
    runs: dict[str, list[dict]] = {name: [] for name in systems}
    for _ in range(args.rounds):
        for name, config in systems.items():
            runs[name].append(serve_and_measure(config, me, sizes))
    table = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in runs.items()
    }
    print(f"\n{args.rounds} rounds, medians; {sizes['calls']} sequential calls, "
          f"{sizes['pipelined']} pipelined (200 in flight)\n")  # fmt: skip
    print("| system | p50 ms | p99 ms | sequential calls/s | pipelined calls/s |")
    print("|---|---|---|---|---|")
    for name, row in table.items():
        print(
            f"| {name} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
            f"{row['calls_per_s']:,.0f} | {row['pipelined_per_s']:,.0f} |"
        )
    base = table["single node, classic"]
    print()
    for name in ("cluster, classic", "cluster, quorum"):
        row = table[name]
        print(
            f"{name}: p50 {row['p50_ms'] / base['p50_ms']:.2f}x the single node's, "
            f"pipelined throughput {row['pipelined_per_s'] / base['pipelined_per_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
