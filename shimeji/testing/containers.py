"""nameko's "container" on the simulator: one replica of a service in a SimCluster.

nameko's testing tools take a ``ServiceContainer``: one running copy of a
service, built from a class and a configuration, started and stopped by the
test. On the simulator that copy is a replica (``orders-1``) of a
``SimCluster``. ``SimContainer`` is a handle on one, with nameko's container
interface (``start``, ``stop``, ``kill``, ``wait``, ``started``,
``entrypoints``, ``dependencies``, ``extensions``, ``config``,
``spawn_worker``), built before it starts so that ``replace_dependencies`` and
``restrict_entrypoints`` can change it first. ``SimRunner`` is nameko's
``ServiceRunner`` on the same cluster: one ``SimContainer`` per service class.

The ``container_factory`` and ``runner_factory`` fixtures
(``shimeji.testing.nameko_fixtures``) make them on the test's ``sim_cluster``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from shimeji.core.config import DEFAULT_CONFIG, Settings
from shimeji.core.container import ExcInfo, ServiceContainer, WorkerContext, get_service_name
from shimeji.core.exceptions import ConfigurationError, ReplicaCrashed
from shimeji.core.extensions import DependencyProvider, Entrypoint, Extension, iter_dependencies

if TYPE_CHECKING:
    from shimeji.sim.cluster import SimCluster
    from shimeji.sim.replica import SimReplica

__all__ = ["SimContainer", "SimRunner", "container_settings"]


def container_settings(
    service_classes: Iterable[type],
    config: Mapping[str, Any] | None,
    extra_config_keys: Iterable[str] = (),
) -> Settings:
    """The checked ``Settings`` of ``config`` for replicas of ``service_classes``.

    Keys are shimeji's, those the services' providers declare (``config_keys``,
    ``Config("KEY")``) and ``extra_config_keys``; any other is refused, naming it.
    """
    if config is not None and not isinstance(config, Mapping):
        raise ConfigurationError(
            f"a container's config is a mapping (nameko's config dict), got {config!r}"
        )
    allowed = set(extra_config_keys)
    for service_cls in service_classes:
        for _, provider in iter_dependencies(service_cls):
            allowed.update(provider.config_keys)
    unknown = [key for key in config or {} if key not in DEFAULT_CONFIG and key not in allowed]
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise ConfigurationError(
            f"configuration key(s) {names} are neither shimeji's nor declared by the service. "
            f"Declare the application's keys: Config({unknown[0]!r}) or a provider's "
            f"config_keys, or pass extra_config_keys=[{unknown[0]!r}] to the factory"
        )
    return Settings.from_config(config or {}, extra_keys=allowed)


def raise_to_test(exc: BaseException, cluster: Any) -> NoReturn:
    """Raise ``exc`` to the test; a crash seen by the test is the test's: the
    cluster (if any) does not raise it again when it stops, and the error the
    replica died of is raised, as nameko raises it."""
    if isinstance(exc, ReplicaCrashed):
        if cluster is not None:
            cluster.crashes = [c for c in cluster.crashes if c is not exc]
        raise exc.cause
    raise exc


class SimContainer:
    """One replica of ``service_cls`` in ``cluster``, in nameko's container role.

    It is added to the running cluster when made, not started: ``start()``
    starts it. ``config`` (None: the cluster's) applies to this replica alone,
    as a nameko container's config does; the cluster's own clients
    (``cluster.rpc``) use the cluster's.
    """

    def __init__(
        self,
        cluster: SimCluster,
        service_cls: type,
        config: Mapping[str, Any] | None = None,
        *,
        extra_config_keys: Iterable[str] = (),
    ) -> None:
        get_service_name(service_cls)
        if cluster.state != "running":
            raise RuntimeError(
                f"containers are made on a running SimCluster; this one is {cluster.state}"
            )
        settings = (
            container_settings([service_cls], config, extra_config_keys)
            if config is not None
            else None
        )
        self.cluster = cluster
        self.service_cls = service_cls
        # nameko builds a container of a class without entrypoints: it does nothing
        self.replica: SimReplica = cluster.add_service(
            service_cls, start=False, entrypoints_required=False
        )[0]
        self._prepared = self.replica.prepare(settings)

    # -- what nameko's ServiceContainer offers -----------------------------------

    @property
    def service_container(self) -> ServiceContainer:
        """The replica's container now: the one built for it until it runs, then
        the running one (a restarted replica has a fresh one)."""
        return self.replica.container or self._prepared

    @property
    def service_name(self) -> str:
        return self.service_container.service_name

    @property
    def config(self) -> Mapping[str, Any]:
        """The configuration, shimeji's defaults filled in."""
        return self.service_container.config

    @property
    def max_workers(self) -> int:
        return self.service_container.settings.max_workers

    @property
    def entrypoints(self) -> list[Entrypoint]:
        return self.service_container.entrypoints

    @property
    def dependencies(self) -> list[DependencyProvider]:
        return self.service_container.dependencies

    @property
    def shared_extensions(self) -> dict[Any, Any]:
        return self.service_container.shared_extensions

    @property
    def extensions(self) -> list[Extension]:
        return self.service_container.extensions

    @property
    def started(self) -> bool:
        """True from ``start()`` until it stops or dies."""
        return self.replica.alive or self.replica.waiting

    def start(self) -> None:
        """Start the replica (it waits, as any replica does, while the broker
        is out of reach)."""
        self.replica.start()

    def stop(self) -> None:
        """Stop gracefully: no new work, running workers finish (in virtual time)."""
        container = self.replica.container
        if container is not None:
            container.stop()

    def kill(self, exc_info: ExcInfo | None = None) -> None:
        """Kill the replica now; with ``exc_info``, ``wait()`` raises its exception.

        A kill asked for by the test is not a crash: the cluster does not raise
        it when it stops."""
        container = self.replica.container
        if container is None or not container.alive:
            return
        if exc_info is None:
            self.cluster.kill(self.replica)
            return
        cause = exc_info[1]
        container.kill(ReplicaCrashed(self.replica.name, cause))
        self.cluster.crashes = [c for c in self.cluster.crashes if c is not container.crash]

    def wait(self) -> None:
        """Block (in virtual time) until the replica has stopped or died; raise the
        exception it died of, if it died of one (the crash is then the test's:
        the cluster does not raise it again as it stops). A replica nothing
        stops makes the simulation stall (``SimulationStalled``)."""
        container = self.service_container
        if container.state != "created":
            self.cluster.scheduler.run_root(
                lambda: not container.alive,
                f"{self.replica.name} to stop (container.wait())",
            )
        self._raise_crash()

    def _raise_crash(self) -> None:
        crash = self.service_container.crash
        if crash is not None:
            raise_to_test(crash, self.cluster)

    def spawn_worker(
        self,
        entrypoint: Entrypoint,
        args: Iterable[Any],
        kwargs: Mapping[str, Any],
        context_data: Mapping[str, Any] | None = None,
        handle_result: Callable[[WorkerContext, Any, ExcInfo | None], Any] | None = None,
    ) -> WorkerContext:
        """Run ``entrypoint``'s method in a worker (nameko's signature).

        ``context_data`` may hold ``call_id_stack`` (the callers' call ids)."""
        data = dict(context_data or {})
        stack = list(data.pop("call_id_stack", None) or [])

        def passed_through(
            worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None
        ) -> tuple[Any, ExcInfo | None]:
            if handle_result is None:
                return result, exc_info
            return handle_result(worker_ctx, result, exc_info)  # type: ignore[no-any-return]

        return self.service_container.spawn_worker(
            entrypoint, tuple(args), dict(kwargs), data, stack, passed_through
        )

    def __repr__(self) -> str:
        return f"<SimContainer {self.replica.name} ({self.service_container.state})>"


class SimRunner:
    """nameko's ``ServiceRunner`` on the simulator: a container per service class,
    started and stopped together, with one configuration."""

    def __init__(
        self,
        cluster: SimCluster,
        config: Mapping[str, Any] | None = None,
        *,
        extra_config_keys: Iterable[str] = (),
    ) -> None:
        self.cluster = cluster
        self.config = config
        self._extra_config_keys = tuple(extra_config_keys)
        self._containers: dict[str, SimContainer] = {}

    @property
    def service_names(self) -> list[str]:
        return list(self._containers)

    @property
    def containers(self) -> list[SimContainer]:
        return list(self._containers.values())

    def add_service(self, service_cls: type) -> None:
        """Add a container of ``service_cls`` (one per service name, as nameko's)."""
        name = get_service_name(service_cls)
        if name in self._containers:
            return
        self._containers[name] = SimContainer(
            self.cluster, service_cls, self.config, extra_config_keys=self._extra_config_keys
        )

    def start(self) -> None:
        for container in self.containers:
            if not container.started:
                container.start()

    def stop(self) -> None:
        for container in self.containers:
            container.stop()

    def kill(self) -> None:
        for container in self.containers:
            container.kill()

    def wait(self) -> None:
        """Block (in virtual time) until every container has stopped, or one has
        died of an error: then the others are stopped, gracefully, and that
        error is raised, as nameko's runner does."""
        running = [c for c in self.containers if c.service_container.state != "created"]

        def settled() -> bool:
            return all(not c.service_container.alive for c in running) or any(
                c.service_container.crash is not None for c in running
            )

        self.cluster.scheduler.run_root(
            settled, f"the containers of {self.service_names} to stop (runner.wait())"
        )
        for container in running:
            if container.service_container.crash is not None:
                self.stop()
                container._raise_crash()

    def __repr__(self) -> str:
        return f"<SimRunner {self.service_names}>"
