"""The services of a cluster or a runner, and their replicas.

``SimCluster`` and ``ServiceRunner`` keep the same book: which class serves
each service name, and its replicas in the order they were added
(``calculator-1``, ``calculator-2`` ...). The replicas themselves differ (a
simulated one, or one on RabbitMQ), so the registry is handed a factory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from shimeji.core.config import DEFAULT_CONFIG, Settings, check_known_keys
from shimeji.core.container import get_service_name
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.extensions import iter_dependencies

__all__ = ["RoundRobin", "ServiceRegistry", "Unconnected", "check_service", "settings_for"]


class _Named(Protocol):
    name: str


R = TypeVar("R", bound=_Named)
C = TypeVar("C")


class RoundRobin:
    """Turns taken per service over what can serve it now (HTTP requests across
    replicas, as a queue spreads RPC requests); safe across threads."""

    def __init__(self) -> None:
        self._turns: dict[str, int] = {}
        self._lock = threading.Lock()

    def pick(self, service: str, candidates: Sequence[C]) -> C | None:
        """The next of ``candidates`` for ``service``; None if there is none."""
        if not candidates:
            return None
        with self._lock:
            turn = self._turns.get(service, 0)
            self._turns[service] = turn + 1
        return candidates[turn % len(candidates)]


def settings_for(config: Mapping[str, Any] | None) -> tuple[dict[str, Any], Settings]:
    """``(raw config, Settings)`` with every check but unknown keys, which are
    judged by ``ServiceRegistry.check_config_keys`` once the services have
    declared theirs."""
    raw = dict(config or {})
    return raw, Settings.from_config(raw, extra_keys=set(raw) - set(DEFAULT_CONFIG))


class ServiceRegistry(Generic[R]):
    """Service name -> (class, replicas). ``owner`` names the holder in errors."""

    def __init__(self, owner: str, make_replica: Callable[[type, str, int], R]) -> None:
        self.owner = owner
        self._make_replica = make_replica
        self._services: dict[str, tuple[type, list[R]]] = {}

    def add(self, service_cls: type, replicas: int, check: Callable[[type], None]) -> list[R]:
        """Record ``replicas`` new replicas of ``service_cls`` (not started).

        ``check(service_cls)`` runs once per new class, to fail loudly on a broken one.
        """
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ConfigurationError(f"replicas must be a whole number >= 1, got {replicas!r}")
        name = get_service_name(service_cls)
        known = self._services.get(name)
        if known is not None and known[0] is not service_cls:
            raise ConfigurationError(
                f"a different class ({known[0].__qualname__}) already serves {name!r}; "
                "give each service class its own name"
            )
        if known is None:
            check(service_cls)
            known = self._services[name] = (service_cls, [])
        added = []
        for _ in range(replicas):
            replica = self._make_replica(service_cls, name, len(known[1]) + 1)
            known[1].append(replica)
            added.append(replica)
        return added

    def replicas(self, service: str | None = None) -> list[R]:
        """Every replica (of one service), in the order they were added."""
        if service is not None:
            if service not in self._services:
                raise KeyError(
                    f"no service {service!r} in this {self.owner}; it has {sorted(self._services)}"
                )
            return list(self._services[service][1])
        return [replica for _, replicas in self._services.values() for replica in replicas]

    def replica(self, name: str) -> R:
        """The replica named ``name`` (e.g. ``"calculator-2"``)."""
        for replica in self.replicas():
            if replica.name == name:
                return replica
        raise KeyError(f"no replica {name!r}; replicas: {[r.name for r in self.replicas()]}")

    @property
    def services(self) -> list[str]:
        return list(self._services)

    def check_config_keys(self, raw: Mapping[str, Any], extra: Iterable[str] = ()) -> None:
        """Refuse configuration keys that neither shimeji nor any service's providers
        (``config_keys``) nor ``extra`` declare."""
        allowed = set(extra)
        for service_cls, _ in self._services.values():
            for _, provider in iter_dependencies(service_cls):
                allowed.update(provider.config_keys)
        check_known_keys(raw, allowed)  # (the values were checked by settings_for)


class Unconnected:
    """Stands in for a transport and a runtime while a class is only checked."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a service class being checked used its transport/runtime ({name})")


def check_service(
    service_cls: type, settings: Settings, tracer: Any, *, entrypoints_required: bool = True
) -> None:
    """Build a container of ``service_cls`` without connecting anything, so that a
    broken class (no name, a bad provider; no entrypoints, unless not
    ``entrypoints_required``) fails here, loudly."""
    from shimeji.core.container import ServiceContainer

    container = ServiceContainer(
        service_cls,
        settings,
        transport=Unconnected(),  # type: ignore[arg-type]
        runtime=Unconnected(),  # type: ignore[arg-type]
        tracer=tracer,
        replica_name=get_service_name(service_cls),
    )
    if entrypoints_required and not container.entrypoints:
        raise ConfigurationError(
            f"service class {service_cls.__qualname__} has no entrypoints: "
            "decorate at least one method with @rpc, @event_handler, @timer or @http"
        )
