"""nameko's pytest fixtures, under nameko's names, on the simulator.

Enable the plugin explicitly, so that its fixture names do not shadow
anything in projects that do not want them::

    pytest -p shimeji.testing.nameko_fixtures
    # or, in the top conftest.py:
    pytest_plugins = ["shimeji.testing.nameko_fixtures"]

Every fixture works on the test's ``sim_cluster`` (seeded by
``--shimeji-seed``, its trace in the report of a failing test):

- ``container_factory(service_cls, config=None)``: a ``SimContainer``
  (``shimeji.testing.containers``), one replica of the service, not started;
  ``container.start()`` starts it. As in nameko, the config may hold any
  key (the services' own settings, read through ``Config``);
- ``runner_factory(config, *service_classes)``: a ``SimRunner``, a container
  per class;
- ``rabbit_config``: ``{"AMQP_URI": "sim://test-N"}``, a plain dict whose
  ``AMQP_URI`` names the test's cluster, so that ``ServiceRpcProxy``,
  ``ClusterRpcProxy`` and ``event_dispatcher`` of ``shimeji.standalone``
  (nameko's ``nameko.standalone`` under ``shimeji.compat.nameko``) call and
  dispatch on it, as nameko's tests do on a broker; ``empty_config`` (``{}``),
  ``web_config`` and ``web_config_port`` as nameko's: a real listener on a
  free port of 127.0.0.1 answers with the cluster's routes
  (``shimeji.sim.listener``);
- ``web_session``: a requests-like client (``get``, ``post`` ...) of the HTTP
  routes of the cluster's services, in virtual time;
- ``mock_container``: a ``ServiceContainer`` stand-in (``create_autospec``)
  with a configuration, for unit tests of extensions.

Calls to services also go through ``sim_cluster.rpc`` (or
``sim_cluster.rpc_proxy(...)``) and events through ``sim_cluster.dispatch``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from unittest.mock import create_autospec
from urllib.parse import urlencode, urlsplit

import pytest

from shimeji.core.config import Settings, parse_address
from shimeji.core.container import ServiceContainer
from shimeji.core.web import ClientResponse, HttpClient
from shimeji.sim import SimCluster
from shimeji.sim.cluster import register_uri
from shimeji.sim.listener import RealHttpListener
from shimeji.testing.containers import SimContainer, SimRunner

__all__ = [
    "WebSession",
    "container_factory",
    "empty_config",
    "mock_container",
    "rabbit_config",
    "runner_factory",
    "web_config",
    "web_config_port",
    "web_session",
]


def _current_cluster(request: pytest.FixtureRequest, sim_cluster: SimCluster) -> SimCluster:
    """The test's cluster now: ``--shimeji-check-determinism`` runs a test a second
    time on a fresh one."""
    funcargs = getattr(request.node, "funcargs", {})
    current = funcargs.get("sim_cluster", sim_cluster)
    return current if isinstance(current, SimCluster) else sim_cluster


def _any_key(config: Mapping[str, Any] | None, extra: Iterable[str]) -> set[str]:
    """nameko takes any key in a container's config: the services read their own."""
    return set(extra) | set(config or ())


_TEST_NUMBERS = iter(range(1, 1 << 62))


@pytest.fixture
def _sim_uri(request: pytest.FixtureRequest, sim_cluster: SimCluster) -> Iterator[str]:
    """``sim://test-N``, naming the test's cluster (the fresh one of a
    ``--shimeji-check-determinism`` rerun too) while the test runs."""
    uri = f"sim://test-{next(_TEST_NUMBERS)}"
    forget = register_uri(uri, lambda: _current_cluster(request, sim_cluster))
    yield uri
    forget()


@pytest.fixture
def container_factory(
    request: pytest.FixtureRequest, sim_cluster: SimCluster
) -> Iterator[Callable[..., SimContainer]]:
    """``make(service_cls, config=None, *, extra_config_keys=())``: a container (one
    replica of the service in ``sim_cluster``), not started. Each call adds a
    replica, so two containers of one class compete for its requests."""

    def make_container(
        service_cls: type,
        config: Mapping[str, Any] | None = None,
        *,
        extra_config_keys: Iterable[str] = (),
    ) -> SimContainer:
        return SimContainer(
            _current_cluster(request, sim_cluster),
            service_cls,
            config,
            extra_config_keys=_any_key(config, extra_config_keys),
        )

    yield make_container


@pytest.fixture
def runner_factory(
    request: pytest.FixtureRequest, sim_cluster: SimCluster
) -> Iterator[Callable[..., SimRunner]]:
    """``make(config, *service_classes, extra_config_keys=())``: a runner with a
    container of each class, not started."""

    def make_runner(
        config: Mapping[str, Any] | None = None,
        *service_classes: type,
        extra_config_keys: Iterable[str] = (),
    ) -> SimRunner:
        runner = SimRunner(
            _current_cluster(request, sim_cluster),
            config,
            extra_config_keys=_any_key(config, extra_config_keys),
        )
        for service_cls in service_classes:
            runner.add_service(service_cls)
        return runner

    yield make_runner


@pytest.fixture
def empty_config() -> dict[str, Any]:
    """An empty configuration: shimeji's defaults apply."""
    return {}


@pytest.fixture
def rabbit_config(_sim_uri: str) -> dict[str, Any]:
    """``{"AMQP_URI": "sim://test-N"}``: standalone clients given it (or a dict
    with its ``AMQP_URI``) call and dispatch on the test's cluster."""
    return {"AMQP_URI": _sim_uri}


@pytest.fixture
def web_config(
    request: pytest.FixtureRequest, sim_cluster: SimCluster, empty_config: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """``empty_config`` with ``WEB_SERVER_ADDRESS``, where a real listener
    (``shimeji.sim.listener``) answers with the cluster's routes, as nameko's
    server would: ``web_session`` sends requests in virtual time, while a
    client on a real socket (``requests.get``) reaches the same routes."""
    listener = RealHttpListener(lambda: _current_cluster(request, sim_cluster))
    empty_config["WEB_SERVER_ADDRESS"] = listener.address
    yield empty_config
    listener.close()


@pytest.fixture
def web_config_port(web_config: dict[str, Any]) -> int:
    """The port of ``web_config``'s address."""
    return parse_address(web_config["WEB_SERVER_ADDRESS"])[1]


class WebSession(HttpClient):
    """A requests-like session on the simulated HTTP front of a SimCluster.

    ``request(method, url, params=None, data=None, headers=None, json=None)``
    and ``get``, ``post``, ``put``, ``patch``, ``delete``, ``head``,
    ``options``. The URL is a path (``/orders/1``), or a full URL whose path
    and query are used. ``data`` may be a mapping (sent form-encoded, as
    requests does), bytes or text. Responses have ``status_code``,
    ``headers``, ``content``, ``text``, ``json()`` and ``ok``.
    """

    def __init__(self, cluster: SimCluster | Callable[[], SimCluster]) -> None:
        self._cluster = cluster

    @property
    def cluster(self) -> SimCluster:
        cluster = self._cluster
        return cluster if isinstance(cluster, SimCluster) else cluster()

    def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        **unsupported: Any,
    ) -> ClientResponse:
        if unsupported:
            raise TypeError(
                f"web_session.{method.lower()}() on the simulator takes params, data, headers "
                f"and json; not {sorted(unsupported)}"
            )
        if not isinstance(url, str):
            raise TypeError(f"a URL is a string such as '/orders/1', got {url!r}")
        parts = urlsplit(url)
        path = parts.path or "/"
        if not path.startswith("/"):
            path = "/" + path
        if parts.query:
            path = f"{path}?{parts.query}"
        out_headers = dict(headers or {})
        if isinstance(data, Mapping):
            if not any(key.lower() == "content-type" for key in out_headers):
                out_headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(list(data.items()), doseq=True)
        return self.cluster.http.request(
            method, path, headers=out_headers, json=json, data=data, params=params
        )

    def close(self) -> None:
        """Nothing to release (a requests Session closes its connections)."""

    def __enter__(self) -> WebSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WebSession on {self.cluster!r}>"


@pytest.fixture
def web_session(request: pytest.FixtureRequest, sim_cluster: SimCluster) -> Iterator[WebSession]:
    """A requests-like client of the cluster's HTTP routes, in virtual time."""
    with WebSession(lambda: _current_cluster(request, sim_cluster)) as session:
        yield session


@pytest.fixture
def mock_container() -> Any:
    """A ``create_autospec(ServiceContainer)`` with ``config`` (shimeji's
    defaults), ``settings``, ``service_name`` "service" and ``replica_name``
    "service-1": for unit tests of extensions (no cluster, real time)."""
    container = create_autospec(ServiceContainer, instance=True)
    settings = Settings.from_config({})
    container.settings = settings
    container.config = settings.config
    container.service_name = "service"
    container.replica_name = "service-1"
    container.shared_extensions = {}
    return container
