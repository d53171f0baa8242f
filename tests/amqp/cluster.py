"""Drives the three-node RabbitMQ cluster of .ci/rabbitmq-cluster.sh, for tests
of what the death of a node does to quorum queues and their clients."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

__all__ = [
    "CLUSTER_SCRIPT",
    "ClusterError",
    "cluster_available",
    "kill_node",
    "leader_of",
    "start_cluster",
    "start_node",
    "stop_cluster",
    "stop_node",
]

CLUSTER_SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "rabbitmq-cluster.sh"
#: Exit status of the script when the cluster cannot run on this machine.
UNAVAILABLE = 3


class ClusterError(RuntimeError):
    """The cluster script failed (its message is the script's error output)."""


def _run(*args: str, timeout: float) -> str:
    """Runs the script with ``args``; its standard output, or ClusterError."""
    command = f"rabbitmq-cluster.sh {' '.join(args)}"
    try:
        done = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{command}: no answer in {timeout}s") from exc
    if done.returncode != 0:
        raise ClusterError(f"{command} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def cluster_available() -> str | None:
    """None if the cluster can run here (RabbitMQ installed, root, cookie), else
    why not: the reason to skip with. Starts nothing."""
    if not CLUSTER_SCRIPT.exists():
        return f"no {CLUSTER_SCRIPT}"
    try:
        done = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), "check"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"rabbitmq-cluster.sh check failed: {exc}"
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"rabbitmq-cluster.sh check exited {done.returncode}"


def start_cluster() -> list[str]:
    """Starts the cluster unless it runs already; the AMQP URIs of nodes 1, 2, 3.
    Takes about 30 s from nothing, 1 s when running."""
    out = _run("start", timeout=300)
    return [line for line in out.splitlines() if line.startswith("amqp://")]


def stop_cluster() -> None:
    """Stops the three nodes (no process is left) and deletes their data."""
    _run("stop", timeout=180)


def stop_node(n: int) -> None:
    """Shuts node ``n``'s Erlang VM down: its connections close and the other
    nodes see it leave, as when a machine of a cluster goes away."""
    _run("stop-node", str(n), timeout=180)


def kill_node(n: int) -> None:
    """Kills node ``n``'s VM with SIGKILL: a crash, with no orderly shutdown."""
    _run("kill-node", str(n), timeout=60)


def start_node(n: int) -> None:
    """Boots node ``n`` again with its data; it rejoins the cluster."""
    _run("start-node", str(n), timeout=300)


def leader_of(queue: str, vhost: str = "/") -> int:
    """The number of the node that leads quorum queue ``queue``, as the cluster
    records it (the dead node's until a new leader is elected)."""
    out = _run("leader", queue, vhost, timeout=60).strip()
    found = re.fullmatch(r"shimeji([123])@localhost", out)
    if found is None:
        raise ClusterError(f"unexpected leader {out!r} of queue {queue!r}")
    return int(found.group(1))
