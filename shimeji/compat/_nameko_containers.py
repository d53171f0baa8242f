"""``nameko.containers`` and ``nameko.runners`` under shimeji's nameko layer.

``ServiceContainer(service_cls, config)`` and ``ServiceRunner(config)`` are
nameko's constructors on the simulator: made while a cluster runs with
virtual time (a test's ``sim_cluster``, say), a container is a replica of
that cluster; made outside any, it runs in a cluster of its own, started
with it and stopped with it. ``run_services`` is nameko's context manager.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from shimeji.core.container import WorkerContext, get_service_name
from shimeji.sim import SimCluster
from shimeji.sim.cluster import current_cluster
from shimeji.testing.containers import SimContainer, SimRunner

__all__ = [
    "ServiceContainer",
    "ServiceRunner",
    "WorkerContext",
    "get_container_cls",
    "get_service_name",
    "run_services",
]


def _cluster() -> tuple[SimCluster, bool]:
    """The running cluster to join, or a new one (and whether it is ours)."""
    cluster = current_cluster()
    if cluster is not None:
        return cluster, False
    cluster = SimCluster()
    cluster.start()
    return cluster, True


class ServiceContainer(SimContainer):
    """nameko's ``ServiceContainer(service_cls, config)``, on the simulator."""

    def __init__(self, service_cls: type, config: Mapping[str, Any] | None = None) -> None:
        cluster, self._owns_cluster = _cluster()
        try:
            super().__init__(cluster, service_cls, config, extra_config_keys=set(config or ()))
        except BaseException:
            if self._owns_cluster:
                cluster.stop(raise_crashes=False)
            raise

    def stop(self) -> None:
        super().stop()
        if self._owns_cluster:
            self.cluster.stop()

    def kill(self, exc_info: Any = None) -> None:
        super().kill(exc_info)
        if self._owns_cluster:
            self.cluster.stop(raise_crashes=False)


class ServiceRunner(SimRunner):
    """nameko's ``ServiceRunner(config)``, on the simulator."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self._cluster_owned: bool | None = None
        super().__init__(None, config, extra_config_keys=set(config or ()))  # type: ignore[arg-type]

    def add_service(self, service_cls: type) -> None:
        if self.cluster is None:
            self.cluster, self._cluster_owned = _cluster()
        super().add_service(service_cls)

    def stop(self) -> None:
        super().stop()
        self._release()

    def kill(self) -> None:
        super().kill()
        self._release()

    def _release(self) -> None:
        if self._cluster_owned and self.cluster is not None:
            self.cluster.stop(raise_crashes=False)


def get_container_cls(config: Mapping[str, Any] | None = None) -> type:
    """nameko's hook for a custom container class: always ``ServiceContainer``."""
    return ServiceContainer


@contextmanager
def run_services(
    *services: type, config: Mapping[str, Any] | None = None, **kwargs: Any
) -> Iterator[ServiceRunner]:
    """nameko's ``run_services(config, *services)``, also as ``run_services(*services,
    config=...)``: a started runner, stopped (``kill_on_exit=True``: killed) on exit."""
    if services and isinstance(services[0], Mapping):
        config, services = services[0], services[1:]
    runner = ServiceRunner(config)
    for service_cls in services:
        runner.add_service(service_cls)
    runner.start()
    try:
        yield runner
    finally:
        if kwargs.get("kill_on_exit"):
            runner.kill()
        else:
            runner.stop()
