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
from shimeji.core.rpc.client import RpcReply
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
    """One line per thing that waits (see the module docstring): the test's
    clients first, then each replica's blocked workers with the call each one
    waits on, then the queues whose messages nobody takes."""
    lines: list[str] = []

    def sent(call: RpcReply) -> str:
        return f"sent at t={call.since - clock.start:.6f}s"

    for client in clients:
        for call in client.pending:
            lines.append(f"{client.label} waits for a reply from {call.describe()}, {sent(call)}")
    for container in containers:
        replica = container.replica_name
        waits: dict[str | None, list[RpcReply]] = {}  # caller's call id -> its calls
        for extension in container.shared_extensions.values():
            if isinstance(extension, ReplyListener) and extension.client is not None:
                for call in extension.client.pending:
                    waits.setdefault(call.call_id, []).append(call)
        for worker_ctx, task in container.running_workers():
            running = f"{replica}, running {worker_ctx.call_id},"
            calls = waits.pop(worker_ctx.call_id, [])
            for call in calls:
                lines.append(f"{running} waits for a reply from {call.describe()}, {sent(call)}")
            waiting_on = getattr(task, "waiting_on", None)
            if not calls and waiting_on:
                lines.append(f"{running} waits for {waiting_on}")
        for calls in waits.values():
            for call in calls:
                lines.append(f"{replica} waits for a reply from {call.describe()}, {sent(call)}")
    for queue, ready, consumers in bus.queue_stats():
        if ready:
            held = f"queue {queue} holds {ready} message{'s' if ready != 1 else ''} nobody takes:"
            if not consumers:
                lines.append(f"{held} no replica consumes it")
            elif len(consumers) == 1:
                lines.append(
                    f"{held} its one consumer, {consumers[0]}, is at its prefetch limit "
                    f"(max_workers={settings.max_workers})"
                )
            else:
                lines.append(
                    f"{held} its consumers {', '.join(consumers)} are all at their prefetch "
                    f"limit (max_workers={settings.max_workers})"
                )
    return lines
