"""RPC on RabbitMQ: shimeji against plain kombu and nameko 2.14.1, same broker, same run.

    python benchmarks/amqp_rpc.py                     # full run (a few minutes)
    python benchmarks/amqp_rpc.py --quick             # a smoke run
    python benchmarks/amqp_rpc.py --nameko-python .ci/.nameko-venv/bin/python

Each system runs its service in a process of its own and is measured by a
client in another process, against the local broker (``--uri``):

- sequential round trips: p50 / p99 latency and calls per second;
- pipelined throughput: 200 calls in flight from one client;
- a two-hop chain (client -> front -> echo), p50 (services only);
- the RSS of the idle service process, once it has started (each tree's
  modules compiled to bytecode first, as an installed package's are).

Systems:

- ``shimeji``: ``shimeji run benchmarks.amqp_services`` and a ClusterRpcProxy;
- ``kombu (guaranteed)``: a minimal request/reply written with kombu with the
  same delivery guarantees as shimeji: persistent messages to a durable
  queue, publisher confirms, mandatory requests, ack after the reply,
  prefetch 10;
- ``kombu (none)``: the same with none of them (transient, no confirms, no
  acks): the floor any Python client pays on this broker;
- ``nameko 2.14.1``: ``nameko run`` and nameko's ClusterRpcProxy, from its own
  virtualenv (``.ci/nameko-venv.sh``); skipped if there is none;
- ``shimeji (before)``, with ``--before DIR``: shimeji from another checkout
  (``git worktree add DIR <commit>``), its service and client run from there,
  to compare a change with what it replaces in the same run.

It prints a Markdown table, then the ratios the project holds itself to.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import measure  # noqa: E402

DEFAULT_URI = "amqp://guest:guest@localhost:5672//"
PREFETCH = 10


# -- the raw kombu baselines ------------------------------------------------------------


def raw_server(uri: str, queue_name: str, guaranteed: bool) -> None:
    from kombu import Connection, Consumer, Producer, Queue

    conn = Connection(uri)
    channel = conn.channel()
    queue = Queue(queue_name, durable=guaranteed, auto_delete=False, channel=channel)
    queue.declare()
    # Replies go out on a connection of their own (as shimeji's do): publishing
    # on the consuming connection would read further deliveries from inside the
    # callback, recursively.
    publisher = Connection(uri, transport_options={"confirm_publish": guaranteed})
    producer = Producer(publisher.channel(), serializer="json")
    mode = 2 if guaranteed else 1

    def on_request(body: Any, message: Any) -> None:
        producer.publish(
            {"result": body["args"][0], "error": None},
            routing_key=message.properties["reply_to"],
            correlation_id=message.properties["correlation_id"],
            delivery_mode=mode,
            retry=False,
        )
        if guaranteed:
            message.ack()

    consumer = Consumer(
        channel, [queue], callbacks=[on_request], no_ack=not guaranteed, accept=["json"]
    )
    if guaranteed:
        consumer.qos(prefetch_count=PREFETCH)
    consumer.consume()
    while True:
        conn.drain_events()


class RawClient:
    def __init__(self, uri: str, queue_name: str, guaranteed: bool) -> None:
        from kombu import Connection, Consumer, Producer, Queue

        self.conn = Connection(uri, transport_options={"confirm_publish": guaranteed})
        channel = self.conn.channel()
        self.reply_queue = Queue(
            f"bench-reply-{uuid.uuid4().hex}", exclusive=True, auto_delete=True, channel=channel
        )
        self.reply_queue.declare()
        self.producer = Producer(channel, serializer="json")
        self.request_queue = queue_name
        self.guaranteed = guaranteed
        self.results: dict[str, Any] = {}
        consumer = Consumer(
            channel,
            [self.reply_queue],
            callbacks=[self._on_reply],
            no_ack=not guaranteed,
            accept=["json"],
        )
        consumer.consume()

    def _on_reply(self, body: Any, message: Any) -> None:
        self.results[message.properties["correlation_id"]] = body["result"]
        if self.guaranteed:
            message.ack()

    def call_async(self, value: int) -> Any:
        correlation_id = uuid.uuid4().hex
        self.producer.publish(
            {"args": [value], "kwargs": {}},
            routing_key=self.request_queue,
            reply_to=self.reply_queue.name,
            correlation_id=correlation_id,
            delivery_mode=2 if self.guaranteed else 1,
            mandatory=self.guaranteed,
            retry=False,
        )
        return _RawReply(self, correlation_id)

    def call(self, value: int) -> Any:
        return self.call_async(value).result()


class _RawReply:
    def __init__(self, client: RawClient, correlation_id: str) -> None:
        self.client = client
        self.correlation_id = correlation_id

    def result(self) -> Any:
        results = self.client.results
        while self.correlation_id not in results:
            self.client.conn.drain_events(timeout=10)
        return results.pop(self.correlation_id)


def raw_client(uri: str, queue_name: str, guaranteed: bool, sizes: dict[str, int]) -> dict:
    client = RawClient(uri, queue_name, guaranteed)
    figures = measure.sequential(client.call, sizes["calls"], sizes["warmup"])
    figures["pipelined_per_s"] = measure.pipelined(client.call_async, sizes["pipelined"], 200)
    return figures


# -- shimeji's client -------------------------------------------------------------------------


def shimeji_client(uri: str, exchange: str, sizes: dict[str, int]) -> dict:
    tree = os.environ.get("SHIMEJI_BENCH_TREE")
    if tree:  # another checkout's shimeji (--before)
        sys.path.insert(0, tree)
    from shimeji.standalone import ClusterRpcProxy

    suffix = os.environ.get("SHIMEJI_BENCH_SUFFIX", "")
    with ClusterRpcProxy({"AMQP_URI": uri, "rpc_exchange": exchange}) as rpc:
        echo = rpc[f"bench_echo{suffix}"].echo
        figures = measure.sequential(echo, sizes["calls"], sizes["warmup"])
        figures["pipelined_per_s"] = measure.pipelined(echo.call_async, sizes["pipelined"], 200)
        relay = rpc[f"bench_front{suffix}"].relay
        figures["chain_p50_ms"] = measure.sequential(relay, sizes["calls"] // 2, sizes["warmup"])[
            "p50_ms"
        ]
    return figures


# -- orchestration ------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def wait_for_consumer(uri: str, queue: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import amqp.exceptions
    from kombu import Connection

    deadline = time.monotonic() + timeout
    with Connection(uri) as conn:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}")
            channel = conn.channel()
            try:
                if channel.queue_declare(queue, passive=True).consumer_count:
                    return
            except amqp.exceptions.NotFound:
                pass
            finally:
                if channel.is_open:
                    channel.close()
            time.sleep(0.1)
    raise RuntimeError(f"no consumer on {queue} within {timeout}s")


def delete_queues(uri: str, *queues: str) -> None:
    from kombu import Connection

    with Connection(uri) as conn:
        for queue in queues:
            channel = conn.channel()
            try:
                channel.queue_delete(queue)
            except Exception:
                pass
            finally:
                if channel.is_open:
                    channel.close()


class System:
    """One system under test: its service process and the command of its client."""

    def __init__(
        self,
        label: str,
        server: list[str],
        client: list[str],
        queues: list[str],
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.label = label
        self.server = server
        self.client = client
        self.queues = queues
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.idle_rss_mb = 0.0
        self.rounds: list[dict] = []

    def start(self, uri: str) -> None:
        delete_queues(uri, *self.queues)
        self.proc = subprocess.Popen(
            self.server,
            cwd=self.cwd,
            env={**os.environ, **(self.env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for queue in self.queues:
            wait_for_consumer(uri, queue, self.proc)

    def measure_rss(self) -> None:
        assert self.proc is not None
        self.idle_rss_mb = rss_mb(self.proc.pid)

    def run_round(self) -> None:
        done = subprocess.run(
            self.client,
            cwd=ROOT,
            env={**os.environ, **(self.env or {})},
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.label} client failed:\n{done.stderr}")
        self.rounds.append(json.loads(done.stdout.strip().splitlines()[-1]))

    def stop(self, uri: str) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        delete_queues(uri, *self.queues)

    def figures(self) -> dict:
        """The median of each figure over the rounds, and the idle RSS."""
        keys = self.rounds[0].keys()
        merged = {key: statistics.median(r[key] for r in self.rounds) for key in keys}
        merged["idle_rss_mb"] = self.idle_rss_mb
        return merged


def add_broker_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The options every broker benchmark takes: the broker, a quick run (fewer
    ``what``), nameko's python, and the number of interleaved rounds."""
    parser.add_argument("--uri", default=os.environ.get("SHIMEJI_AMQP_URI", DEFAULT_URI))
    parser.add_argument("--quick", action="store_true", help=f"fewer {what} (a smoke run)")
    parser.add_argument(
        "--nameko-python",
        default=os.environ.get("SHIMEJI_NAMEKO_PYTHON")
        or str(ROOT / ".ci" / ".nameko-venv" / "bin" / "python"),
        help="python of nameko's virtualenv (.ci/nameko-venv.sh makes one)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds per system (3); medians kept"
    )


def fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_broker_arguments(parser, "calls")
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="also measure shimeji from this checkout (another commit), as 'shimeji (before)'",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--arg", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = (
        {"calls": 300, "warmup": 50, "pipelined": 1000}
        if args.quick
        else {"calls": 2000, "warmup": 200, "pipelined": 5000}
    )
    if args.role:
        sizes = json.loads(args.arg[-1])
        if args.role == "raw-server":
            raw_server(args.uri, args.arg[0], args.arg[1] == "guaranteed")
            return
        if args.role == "raw-client":
            figures = raw_client(args.uri, args.arg[0], args.arg[1] == "guaranteed", sizes)
        else:
            figures = shimeji_client(args.uri, args.arg[0], sizes)
        print(json.dumps(figures), flush=True)
        return

    # Bytecode first, as installing a package writes it: with
    # PYTHONDONTWRITEBYTECODE set (as on CI), a checkout's modules would
    # otherwise be compiled from source in every process, which the idle RSS
    # would count (about 0.45 MB) while kombu's and nameko's come compiled.
    for tree in (ROOT, *([Path(args.before)] if args.before else [])):
        for package in ("shimeji", "benchmarks"):
            compileall.compile_dir(str(tree / package), quiet=1)
    me = [sys.executable, str(Path(__file__).resolve()), "--uri", args.uri]
    size_arg = ["--arg", json.dumps(sizes)]
    systems: list[System] = []
    for label, mode in (("kombu (guaranteed)", "guaranteed"), ("kombu (none)", "none")):
        queue = f"bench-raw-{mode}"
        systems.append(
            System(
                label,
                [*me, "--role", "raw-server", "--arg", queue, "--arg", mode, *size_arg],
                [*me, "--role", "raw-client", "--arg", queue, "--arg", mode, *size_arg],
                [queue],
            )
        )
    exchange = "shimeji-bench"
    config_dir = tempfile.mkdtemp()
    shimeji_config = Path(config_dir, "shimeji.yaml")
    shimeji_config.write_text(f"AMQP_URI: '{args.uri}'\nrpc_exchange: {exchange}\n")
    systems.append(
        System(
            "shimeji",
            [
                sys.executable,
                "-m",
                "shimeji",
                "run",
                "benchmarks.amqp_services",
                "--config",
                str(shimeji_config),
                "--log-level",
                "warning",
            ],
            [*me, "--role", "shimeji-client", "--arg", exchange, *size_arg],
            ["rpc-bench_echo", "rpc-bench_front"],
        )
    )
    if args.before:
        before = Path(args.before).resolve()
        if not (before / "shimeji" / "__init__.py").exists():
            parser.error(f"--before {args.before}: no shimeji package there; give a checkout")
        before_config = Path(config_dir, "before.yaml")
        before_config.write_text(f"AMQP_URI: '{args.uri}'\nrpc_exchange: {exchange}-before\n")
        systems.append(
            System(
                "shimeji (before)",
                [
                    sys.executable,
                    "-m",
                    "shimeji",
                    "run",
                    str(HERE / "amqp_services.py"),
                    "--config",
                    str(before_config),
                    "--log-level",
                    "warning",
                ],
                [*me, "--role", "shimeji-client", "--arg", f"{exchange}-before", *size_arg],
                ["rpc-bench_echo_before", "rpc-bench_front_before"],
                env={"SHIMEJI_BENCH_SUFFIX": "_before", "SHIMEJI_BENCH_TREE": str(before)},
                cwd=before,
            )
        )
    nameko_python = Path(args.nameko_python)
    if nameko_python.exists():
        nameko_exchange = "nameko-bench"
        nameko_config = Path(config_dir, "nameko.yaml")
        nameko_config.write_text(f"AMQP_URI: '{args.uri}'\nrpc_exchange: {nameko_exchange}\n")
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
                    "benchmarks.nameko_bench:Echo",
                    "benchmarks.nameko_bench:Front",
                    "--config",
                    str(nameko_config),
                ],
                [
                    str(nameko_python),
                    "-W",
                    "ignore",
                    str(HERE / "nameko_bench.py"),
                    "client",
                    args.uri,
                    nameko_exchange,
                    str(sizes["calls"]),
                    str(sizes["warmup"]),
                    str(sizes["pipelined"]),
                ],
                ["rpc-nbench_echo", "rpc-nbench_front"],
                env={"PYTHONPATH": str(ROOT)},
            )
        )
    else:
        print(f"nameko skipped: no {nameko_python} (run .ci/nameko-venv.sh)", file=sys.stderr)

    try:
        for system in systems:
            system.start(args.uri)
        time.sleep(1.0)  # every service started and idle
        for system in systems:
            system.measure_rss()
        # Rounds interleave the systems, so that a change in the machine's load
        # during the run weighs on all of them alike; each figure is the median
        # over the rounds.
        for number in range(1, args.rounds + 1):
            try:
                for system in systems:
                    system.run_round()
            except RuntimeError as exc:
                if number == 1:
                    raise
                # The broker went away (a restart): keep the whole rounds measured.
                print(f"round {number} failed, kept {number - 1}: {exc}", file=sys.stderr)
                args.rounds = number - 1
                for system in systems:
                    del system.rounds[args.rounds :]
                break
            print(f"round {number} of {args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for system in systems:
            with contextlib.suppress(Exception):
                system.stop(args.uri)
        for path in Path(config_dir).iterdir():
            path.unlink()
        os.rmdir(config_dir)
    results = {system.label: system.figures() for system in systems}

    print(
        f"\nRabbitMQ RPC, {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; medians of {args.rounds} interleaved rounds of "
        f"{sizes['calls']} sequential calls and {sizes['pipelined']} pipelined "
        "(200 in flight)\n"
    )
    print(
        "| system | p50 ms | p99 ms | sequential calls/s | pipelined calls/s | "
        "two-hop p50 ms | idle RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, f in results.items():
        print(
            f"| {label} | {fmt(f['p50_ms'], 3)} | {fmt(f['p99_ms'], 3)} | "
            f"{fmt(f['calls_per_s'], 0)} | {fmt(f['pipelined_per_s'], 0)} | "
            f"{fmt(f.get('chain_p50_ms'), 3)} | {fmt(f['idle_rss_mb'], 1)} |"
        )
    raw, nameko = results["kombu (guaranteed)"], results.get("nameko 2.14.1")
    for label in ("shimeji", "shimeji (before)"):
        ours = results.get(label)
        if ours is None:
            continue
        print(f"\n{label}:")
        print(
            f"  p50 / guaranteed kombu p50: {ours['p50_ms'] / raw['p50_ms']:.2f}x (floor: <= 1.10x)"
        )
        print(
            f"  p99 / guaranteed kombu p99: {ours['p99_ms'] / raw['p99_ms']:.2f}x (floor: <= 1.30x)"
        )
        if nameko:
            print(
                "  pipelined / nameko pipelined: "
                f"{ours['pipelined_per_s'] / nameko['pipelined_per_s']:.2f}x (floor: >= 3x)"
            )
        print(
            f"  idle RSS: {ours['idle_rss_mb']:.1f} MB (floor: <= 28 MB; "
            f"guaranteed kombu {raw['idle_rss_mb']:.1f} MB)"
        )


if __name__ == "__main__":
    main()
