"""Why a simulation stalled: what waits for what, when nothing is left to run.

When a caller waits with no deadline and the event loop has nothing more to
do, the scheduler raises ``SimulationStalled`` with these lines: the workers
blocked and on what, the calls waiting for a reply and since when, and the
queues holding messages nobody takes (and why).
"""

from __future__ import annotations

from collections.abc import Iterable

from shimeji.core.config import Settings
from shimeji.core.container import ServiceContainer
from shimeji.core.rpc import ReplyListener, RpcClient
from shimeji.sim.bus import SimBus
from shimeji.sim.clock import VirtualClock

__all__ = ["describe_stall"]


def describe_stall(
    containers: Iterable[ServiceContainer],
    clients: Iterable[RpcClient],
    bus: SimBus,
    clock: VirtualClock,
    settings: Settings,
) -> list[str]:
    """One line per thing that waits (see the module docstring)."""
    lines: list[str] = []
    waiting_clients = list(clients)
    for container in containers:
        for extension in container.shared_extensions.values():
            if isinstance(extension, ReplyListener) and extension.client is not None:
                waiting_clients.append(extension.client)
        for worker_ctx, task in container.running_workers():
            waiting_on = getattr(task, "waiting_on", None)
            if waiting_on:
                lines.append(
                    f"worker {worker_ctx.call_id} on {container.replica_name} is {waiting_on}"
                )
    for client in waiting_clients:
        for call in client.pending:
            lines.append(
                f"{client.label} waits for a reply from {call.describe()}, sent at "
                f"t={call.since - clock.start:.6f}s"
            )
    for queue, ready, consumers in bus.queue_stats():
        if ready:
            who = (
                f"its consumers {', '.join(consumers)} are all at their prefetch limit "
                f"(max_workers={settings.max_workers})"
                if consumers
                else "no replica consumes it"
            )
            lines.append(f"queue {queue} holds {ready} message(s): {who}")
    return lines
