"""A replica on the simulator: one running copy of a service in a SimCluster.

It is a real ``ServiceContainer`` on its own connection to the simulated bus,
in the cluster's scheduler and virtual time. One that cannot reach the broker
when it starts (an outage, a partition) waits and starts once it can, as a
client library retrying its connection would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shimeji.core.config import Settings
from shimeji.core.container import ServiceContainer
from shimeji.core.events import Event

if TYPE_CHECKING:
    from shimeji.sim.cluster import SimCluster

__all__ = ["SimReplica"]


class SimReplica:
    """A handle on one replica (``calculator-1``) of a service in a SimCluster."""

    def __init__(self, cluster: SimCluster, service_cls: type, service_name: str, index: int):
        self.cluster = cluster
        self.service_cls = service_cls
        self.service_name = service_name
        self.index = index
        self.name = f"{service_name}-{index}"
        self.container: ServiceContainer | None = None
        self.waiting = False  # its start waits for the broker to come back
        self.prepared: ServiceContainer | None = None  # built by prepare(), run by start()

    @property
    def alive(self) -> bool:
        return self.container is not None and self.container.alive

    def prepare(self, settings: Settings | None = None) -> ServiceContainer:
        """Build the container the next ``start()`` runs, without starting it, so
        that a test can change its extensions first (``shimeji.testing.services``).
        ``settings`` replace the cluster's for this container alone."""
        if self.alive or self.waiting:
            raise RuntimeError(f"replica {self.name} is already running")
        self.prepared = self._make_container(settings)
        return self.prepared

    def _make_container(self, settings: Settings | None = None) -> ServiceContainer:
        cluster = self.cluster
        container = ServiceContainer(
            self.service_cls,
            settings if settings is not None else cluster.settings,
            transport=cluster.bus.connect(self.name),
            runtime=cluster.scheduler,
            tracer=cluster.tracer,
            replica_name=self.name,
        )
        container.on_death.append(cluster.container_died)
        if cluster.faults.has_call_faults:
            container.on_worker_start.append(cluster.faults.worker_started)
        return container

    def start(self) -> None:
        if self.alive or self.waiting:
            raise RuntimeError(f"replica {self.name} is already running")
        cluster = self.cluster
        if not cluster.bus.reachable(self.name):
            # A replica cannot reach the broker: it connects once it can, as a
            # client library retrying its connection would (after the outage
            # ends, or when its partition heals).
            self.waiting = True
            outage_end = cluster.bus.outage_end_us
            why = "the broker is down" if outage_end is not None else "it is cut off"
            cluster.tracer.emit(
                Event(
                    kind="replica_waiting",
                    replica=self.name,
                    service=self.service_name,
                    detail=f"{why}; starting once it can connect",
                )
            )
            if outage_end is not None:
                cluster.scheduler.call_at(outage_end, self.start_when_back)
            return
        prepared, self.prepared = self.prepared, None
        self.container = prepared if prepared is not None else self._make_container()
        self.container.start()

    def start_when_back(self) -> None:
        """Start now if this replica waits for the broker (its outage ended, or
        its partition healed)."""
        if not self.waiting:
            return
        self.waiting = False
        if self.cluster.state == "running" and not self.alive:
            self.start()

    def __repr__(self) -> str:
        state = self.container.state if self.container else "not started"
        return f"<SimReplica {self.name} ({state})>"
