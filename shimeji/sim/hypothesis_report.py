"""What a failing Hypothesis example shows of the simulations it ran.

``install()`` adds ``note_cluster`` to ``shimeji.sim.cluster.STOP_HOOKS``: each
SimCluster stopping inside a Hypothesis test notes its seed, fault plan,
schedule and trace, which Hypothesis prints for the minimal failing example
only (the report is built only then). The pytest plugin installs it when
Hypothesis is installed, and ``shimeji.sim.strategies`` on import.
"""

from __future__ import annotations

from hypothesis import control

from shimeji.sim.cluster import STOP_HOOKS, SimCluster

__all__ = ["install", "note_cluster"]


class _Report:
    """Built into text only if Hypothesis prints the note."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster

    def __repr__(self) -> str:
        cluster = self.cluster
        lines = [
            f"shimeji: seed={cluster.seed}",
            f"fault plan: {cluster.fault_plan!r}",
        ]
        if cluster.schedule is not None:
            lines.append(f"schedule: {cluster.schedule!r}")
        lines.append(f"trace ({len(cluster.trace)} events):")
        lines.append(cluster.trace.to_text())
        return "\n".join(lines)


def note_cluster(cluster: SimCluster) -> None:
    """Note ``cluster`` for the report of the Hypothesis example running it, if any."""
    if control.currently_in_test_context():
        control.note(_Report(cluster))


def install() -> None:
    """Have every SimCluster note itself when it stops inside a Hypothesis test."""
    if note_cluster not in STOP_HOOKS:
        STOP_HOOKS.append(note_cluster)
