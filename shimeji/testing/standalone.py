"""nameko's standalone clients in tests, on the simulator.

nameko's integration tests call services with ``ServiceRpcProxy(name,
rabbit_config)`` or ``ClusterRpcProxy(rabbit_config)`` and dispatch events
with ``event_dispatcher(rabbit_config)``: the config names the broker. Under
the ``shimeji.testing.nameko_fixtures`` plugin, ``rabbit_config`` (like
``empty_config`` and ``web_config``) is a ``SimConfig``: a configuration
mapping that also names the test's simulated cluster, so that these calls,
imported from here, reach the services of ``container_factory`` and
``runner_factory``::

    from shimeji.testing.standalone import ServiceRpcProxy, event_dispatcher

    def test_convert(container_factory, rabbit_config):
        container_factory(ConversionService, rabbit_config).start()
        with ServiceRpcProxy("conversions", rabbit_config) as conversions:
            assert conversions.inches_to_cm(10) == 25.4
        event_dispatcher(rabbit_config)("src", "happened", {"n": 1})

``rabbit_config.copy()`` keeps the cluster; a plain ``dict`` made from it
does not, and is refused, saying so. For a real broker, use
``shimeji.standalone``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from shimeji.core.config import FROM_CONFIG
from shimeji.core.rpc import ServiceProxy, StandaloneProxy
from shimeji.sim import SimCluster

__all__ = ["ClusterRpcProxy", "ServiceRpcProxy", "SimConfig", "event_dispatcher"]


class SimConfig(dict):  # type: ignore[type-arg]
    """A configuration dict that also names the simulated cluster of a test
    (``cluster``; not a key, so it is never taken for configuration)."""

    def __init__(
        self, cluster: SimCluster | Callable[[], SimCluster], *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._cluster = cluster

    @property
    def cluster(self) -> SimCluster:
        """The cluster (given, or found when asked: a rerun has a fresh one)."""
        cluster = self._cluster
        return cluster if isinstance(cluster, SimCluster) else cluster()

    def copy(self) -> SimConfig:
        return SimConfig(self._cluster, self)

    def __repr__(self) -> str:
        return f"SimConfig({dict.__repr__(self)})"


def _cluster(config: Any, what: str) -> SimCluster:
    cluster = getattr(config, "cluster", None)
    if isinstance(config, Mapping) and isinstance(cluster, SimCluster):
        return cluster
    raise TypeError(
        f"{what} runs on the simulator and takes the rabbit_config fixture (or its .copy()) "
        f"of shimeji.testing.nameko_fixtures, which names the test's cluster; got {config!r}. "
        "For a broker, use shimeji.standalone"
    )


@contextlib.contextmanager
def ClusterRpcProxy(
    config: Mapping[str, Any],
    context_data: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Iterator[StandaloneProxy]:
    """``with ClusterRpcProxy(rabbit_config) as rpc: rpc.service.method(...)``: a
    client of its own, sending ``context_data`` with every call; ``timeout``
    (virtual seconds; None: RPC_TIMEOUT, no timeout by default)."""
    cluster = _cluster(config, "ClusterRpcProxy")
    yield cluster.rpc_proxy(
        context_data=context_data, timeout=timeout if timeout is not None else FROM_CONFIG
    )


@contextlib.contextmanager
def ServiceRpcProxy(
    service_name: str,
    config: Mapping[str, Any],
    context_data: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Iterator[ServiceProxy]:
    """``with ServiceRpcProxy("orders", rabbit_config) as orders: orders.place(...)``."""
    with ClusterRpcProxy(config, context_data, timeout) as proxy:
        yield proxy[service_name]


def event_dispatcher(config: Mapping[str, Any], **options: Any) -> Callable[[str, str, Any], None]:
    """``dispatch = event_dispatcher(rabbit_config)``; ``dispatch(source_service,
    event_type, event_data)`` dispatches as that service would, from outside any
    (nameko's delivery options are the simulator's own and are ignored)."""
    cluster = _cluster(config, "event_dispatcher")

    def dispatch(source_service: str, event_type: str, event_data: Any) -> None:
        cluster.dispatch(source_service, event_type, event_data)

    return dispatch
