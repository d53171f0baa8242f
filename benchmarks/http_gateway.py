"""HTTP through a gateway on RabbitMQ: shimeji against nameko 2.14.1, same run.

    python benchmarks/http_gateway.py               # full run (a few minutes)
    python benchmarks/http_gateway.py --quick       # a smoke run
    python benchmarks/http_gateway.py --nameko-python .ci/.nameko-venv/bin/python

(Not named ``http.py``: run as a script, this directory comes first on the
path, and the file would hide the standard library's ``http`` package.)

Each system runs, in two processes of its own, a gateway whose route
``GET /echo/<int:value>`` makes one RPC call to a backend and answers its
result, and a backend answering it:

- ``shimeji``: ``shimeji run benchmarks.http_services`` (served by cheroot)
  and ``shimeji run benchmarks.amqp_services:Echo``;
- ``nameko 2.14.1``: ``nameko run benchmarks.nameko_bench:HttpGateway`` (its
  eventlet server) and ``nameko run benchmarks.nameko_bench:Echo``, from its
  own virtualenv (``.ci/nameko-venv.sh``); skipped if there is none.

Both use their defaults (``max_workers`` 10). The client is this process, the
standard library's ``http.client`` on keep-alive connections:

- sequential: one connection, one request after another: p50 / p99 latency
  and requests per second;
- concurrent: ``--threads`` connections (4), each in a thread of its own,
  requests back to back: requests per second over all of them.

Rounds interleave the systems (each figure is the median over the rounds);
every answer is checked. It prints a Markdown table, then the ratios.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from benchmarks.amqp_rpc import (  # noqa: E402
    add_broker_arguments,
    delete_queues,
    wait_for_consumer,
)
from benchmarks.measure import percentile  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """A keep-alive connection to a gateway; ``get(value)`` checks the answer."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, value: int) -> None:
        self.conn.request("GET", f"/echo/{value}")
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200 or body != str(value).encode():
            raise AssertionError(f"GET /echo/{value}: {response.status} {body[:200]!r}")

    def close(self) -> None:
        self.conn.close()


def sequential(port: int, requests: int, warmup: int) -> dict[str, float]:
    client = Client(port)
    try:
        for i in range(warmup):
            client.get(i)
        latencies = []
        clock = time.perf_counter
        began = clock()
        for i in range(requests):
            start = clock()
            client.get(i)
            latencies.append(clock() - start)
        elapsed = clock() - began
    finally:
        client.close()
    latencies.sort()
    return {
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "sequential_per_s": requests / elapsed,
    }


def concurrent(port: int, requests: int, threads: int) -> float:
    """Requests per second with ``threads`` keep-alive connections busy at once."""
    clients = [Client(port) for _ in range(threads)]
    for number, client in enumerate(clients):
        client.get(number)  # connected before the clock starts
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    each = requests // threads

    def work(client: Client, offset: int) -> None:
        start.wait()
        try:
            for i in range(each):
                client.get(offset + i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [
        threading.Thread(target=work, args=(client, n * each)) for n, client in enumerate(clients)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    for client in clients:
        client.close()
    if errors:
        raise errors[0]
    return each * threads / elapsed


class System:
    """A gateway process and a backend process, and the figures of each round."""

    def __init__(
        self,
        label: str,
        commands: list[list[str]],
        queues: list[str],
        port: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.label = label
        self.commands = commands
        self.queues = queues
        self.port = port
        self.env = env
        self.procs: list[subprocess.Popen] = []
        self.rounds: list[dict[str, float]] = []

    def start(self, uri: str) -> None:
        delete_queues(uri, *self.queues)
        for command in self.commands:
            self.procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env={**os.environ, **(self.env or {})},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for queue in self.queues:
            wait_for_consumer(uri, queue, self.procs[-1])
        deadline = time.monotonic() + 60
        while True:
            try:
                Client(self.port).get(0)
                return
            except (OSError, http.client.HTTPException, AssertionError):
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                    raise RuntimeError(f"{self.label}: the gateway never answered") from None
                time.sleep(0.2)

    def run_round(self, sizes: dict[str, int], threads: int) -> None:
        figures = sequential(self.port, sizes["sequential"], sizes["warmup"])
        figures["concurrent_per_s"] = concurrent(self.port, sizes["concurrent"], threads)
        self.rounds.append(figures)

    def stop(self, uri: str) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        delete_queues(uri, *self.queues)

    def figures(self) -> dict[str, float]:
        keys = self.rounds[0].keys()
        return {key: statistics.median(r[key] for r in self.rounds) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_broker_arguments(parser, "requests")
    parser.add_argument("--threads", type=int, default=4, help="concurrent connections (4)")
    args = parser.parse_args()
    sizes = (
        {"sequential": 300, "warmup": 50, "concurrent": 800}
        if args.quick
        else {"sequential": 2000, "warmup": 200, "concurrent": 6000}
    )

    config_dir = Path(tempfile.mkdtemp())
    systems: list[System] = []
    port = free_port()
    shimeji_config = config_dir / "shimeji.yaml"
    shimeji_config.write_text(
        f"AMQP_URI: '{args.uri}'\nrpc_exchange: shimeji-http-bench\n"
        f"WEB_SERVER_ADDRESS: '127.0.0.1:{port}'\n"
    )
    shimeji_run = [sys.executable, "-m", "shimeji", "run", "--config", str(shimeji_config)]
    quiet = ["--log-level", "warning"]
    systems.append(
        System(
            "shimeji",
            [
                [*shimeji_run, "benchmarks.amqp_services:Echo", *quiet],
                [*shimeji_run, "benchmarks.http_services", *quiet],
            ],
            ["rpc-bench_echo"],
            port,
        )
    )
    nameko_python = Path(args.nameko_python)
    if nameko_python.exists():
        port = free_port()
        nameko_config = config_dir / "nameko.yaml"
        nameko_config.write_text(
            f"AMQP_URI: '{args.uri}'\nrpc_exchange: nameko-http-bench\n"
            f"WEB_SERVER_ADDRESS: '127.0.0.1:{port}'\n"
        )
        nameko_run = [str(nameko_python), "-W", "ignore", "-m", "nameko", "run"]
        systems.append(
            System(
                "nameko 2.14.1",
                [
                    [*nameko_run, "benchmarks.nameko_bench:Echo", "--config", str(nameko_config)],
                    [
                        *nameko_run,
                        "benchmarks.nameko_bench:HttpGateway",
                        "--config",
                        str(nameko_config),
                    ],
                ],
                ["rpc-nbench_echo"],
                port,
                env={"PYTHONPATH": str(ROOT)},
            )
        )
    else:
        print(f"nameko skipped: no {nameko_python} (run .ci/nameko-venv.sh)", file=sys.stderr)

    try:
        for system in systems:
            system.start(args.uri)
        time.sleep(1.0)  # every service started and idle
        # Rounds interleave the systems, so that a change in the machine's load
        # during the run weighs on all of them alike.
        for number in range(1, args.rounds + 1):
            for system in systems if number % 2 else reversed(systems):
                system.run_round(sizes, args.threads)
            print(f"round {number} of {args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for system in systems:
            system.stop(args.uri)
        for path in config_dir.iterdir():
            path.unlink()
        config_dir.rmdir()
    results = {system.label: system.figures() for system in systems}

    print(
        f"\nHTTP -> gateway -> RPC -> backend on RabbitMQ, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; medians of {args.rounds} "
        f"interleaved rounds of {sizes['sequential']} sequential requests and "
        f"{sizes['concurrent']} over {args.threads} concurrent keep-alive connections\n"
    )
    print("| system | p50 ms | p99 ms | sequential req/s | concurrent req/s |")
    print("|---|---:|---:|---:|---:|")
    for label, f in results.items():
        print(
            f"| {label} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} | "
            f"{f['sequential_per_s']:,.0f} | {f['concurrent_per_s']:,.0f} |"
        )
    ours, nameko = results["shimeji"], results.get("nameko 2.14.1")
    if nameko:
        print()
        print(f"p50 / nameko p50: {ours['p50_ms'] / nameko['p50_ms']:.2f}x (lower is faster)")
        print(
            "concurrent req/s / nameko concurrent req/s: "
            f"{ours['concurrent_per_s'] / nameko['concurrent_per_s']:.2f}x (higher is faster)"
        )


if __name__ == "__main__":
    main()
