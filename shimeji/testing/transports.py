"""One test suite, two transports: the ``cluster`` fixture and its options.

``cluster`` is a started cluster with SimCluster's interface (``add_service``,
``rpc``, ``rpc_proxy``, ``replicas``, ``replica``, ``advance``, ``trace``,
``stop``). By default it is a ``SimCluster``; run pytest with
``--shimeji-transport=amqp`` (or ``SHIMEJI_TRANSPORT=amqp``) and it is an
``AmqpCluster`` on the broker of ``--amqp-uri`` (or ``SHIMEJI_AMQP_URI``,
default ``amqp://guest:guest@localhost:5672//``).

Each AmqpCluster is isolated by name: it publishes on an exchange of its own
(``rpc_exchange`` = ``shimeji-test-<id>``) and deletes every queue its
services and clients declared when it stops, so a test starts from an empty
broker as far as its services are concerned. Tests on one vhost run one at a
time (service queues are named ``rpc-<service>`` as nameko names them); give
each concurrent job a vhost of its own.

When the broker cannot be reached, tests that need it are skipped with the
reason, unless ``SHIMEJI_REQUIRE_AMQP=1`` (set it in CI), which makes that a
failure.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest

from shimeji.core.config import FROM_CONFIG, redact_uri
from shimeji.core.events import Event
from shimeji.core.rpc import StandaloneProxy
from shimeji.core.web import ClientResponse, HttpClient, request_body
from shimeji.views.log import EventLog
from shimeji.views.redaction import Redactor
from shimeji.views.text import render_text

__all__ = [
    "AmqpCluster",
    "LoopbackHttpClient",
    "RecordingTracer",
    "amqp_uri",
    "cluster",
    "cluster_factory",
    "pytest_addoption",
    "pytest_runtest_makereport",
    "require_broker",
    "shimeji_transport",
]

_AMQP_CLUSTER = pytest.StashKey["AmqpCluster"]()
TRACE_TAIL = 40

DEFAULT_AMQP_URI = "amqp://guest:guest@localhost:5672//"
#: RPC_TIMEOUT of an AmqpCluster whose configuration sets none (seconds).
STALL_TIMEOUT = 60.0
TRANSPORTS = ("sim", "amqp")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shimeji", "shimeji simulator")
    group.addoption(
        "--shimeji-transport",
        choices=TRANSPORTS,
        default=None,
        help="transport of the `cluster` fixture: sim (default) or amqp (env SHIMEJI_TRANSPORT)",
    )
    group.addoption(
        "--amqp-uri",
        default=None,
        metavar="URI",
        help="broker for --shimeji-transport=amqp and AMQP tests "
        f"(env SHIMEJI_AMQP_URI; default {DEFAULT_AMQP_URI})",
    )


def _option(config: pytest.Config, name: str, env: str, default: str) -> str:
    value = config.getoption(name, default=None)
    if value is None:
        value = os.environ.get(env) or default
    return str(value)


def transport_name(config: pytest.Config) -> str:
    name = _option(config, "--shimeji-transport", "SHIMEJI_TRANSPORT", "sim")
    if name not in TRANSPORTS:
        raise pytest.UsageError(
            f"SHIMEJI_TRANSPORT={name!r} is not a transport; use one of {', '.join(TRANSPORTS)}"
        )
    return name


_reachable: dict[str, str | None] = {}


def broker_problem(uri: str) -> str | None:
    """None if the broker at ``uri`` answers, else why not (checked once per run)."""
    if uri not in _reachable:
        from shimeji.amqp_adapter.errors import describe_error
        from shimeji.amqp_adapter.transport import connection_for
        from shimeji.core.config import Settings

        conn = connection_for(Settings.from_config({"AMQP_URI": uri}))
        try:
            conn.ensure_connection(max_retries=0)
            _reachable[uri] = None
        except Exception as exc:
            _reachable[uri] = f"no broker at {redact_uri(uri)}: {describe_error(exc)}"
        finally:
            conn.release()
    return _reachable[uri]


def amqp_configured(config: pytest.Config) -> bool:
    """Whether this run asked for RabbitMQ (the default run is the simulator only)."""
    return (
        transport_name(config) == "amqp"
        or config.getoption("--amqp-uri", default=None) is not None
        or bool(os.environ.get("SHIMEJI_AMQP_URI"))
        or os.environ.get("SHIMEJI_REQUIRE_AMQP") == "1"
    )


def require_broker(config: pytest.Config) -> str:
    """The broker's URI; skips the test when the run is not configured for RabbitMQ
    or the broker cannot be reached (with SHIMEJI_REQUIRE_AMQP=1, the latter fails)."""
    if not amqp_configured(config):
        pytest.skip(
            "AMQP test: runs with --shimeji-transport=amqp or --amqp-uri URI "
            "(or SHIMEJI_TRANSPORT=amqp / SHIMEJI_AMQP_URI)"
        )
    uri = _option(config, "--amqp-uri", "SHIMEJI_AMQP_URI", DEFAULT_AMQP_URI)
    problem = broker_problem(uri)
    if problem is not None:
        if os.environ.get("SHIMEJI_REQUIRE_AMQP") == "1":
            pytest.fail(f"SHIMEJI_REQUIRE_AMQP=1 but {problem}", pytrace=False)
        pytest.skip(f"AMQP test skipped: {problem} (set --amqp-uri or SHIMEJI_AMQP_URI)")
    return uri


class RecordingTracer:
    """Records events (thread-safe), as the simulator's trace does, in arrival
    order: ``shimeji.core.events.Event`` records, ``time`` in seconds since
    the tracer was made, on the real clock. ``redactor`` hides sensitive
    arguments in its text timeline."""

    enabled = True

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.redactor = Redactor()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(
                dataclasses.replace(event, seq=next(self._seq), time=time.monotonic() - self._start)
            )

    def request_context(self, context_data: Mapping[str, Any], **call: Any) -> Mapping[str, Any]:
        """Adds nothing to the context data of requests."""
        return context_data

    def to_text(self, events: Iterable[Event] | None = None) -> str:
        """The text timeline (``shimeji.views.text``) of every event, or of ``events``."""
        log = EventLog.from_events(self.events if events is None else list(events), self.redactor)
        return render_text(log).rstrip("\n")

    def __str__(self) -> str:
        return self.to_text()


class LoopbackHttpClient(HttpClient):
    """``SimCluster.http``'s interface over real HTTP to 127.0.0.1:``port``."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ClientResponse:
        import http.client
        from urllib.parse import urlencode

        out_headers, body = request_body(headers, json, data)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(dict(params))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method.upper(), url, body=body or None, headers=out_headers)
            response = conn.getresponse()
            return ClientResponse(response.status, response.getheaders(), response.read())
        finally:
            conn.close()


class AmqpCluster:
    """SimCluster's interface on a real RabbitMQ: services run in this process on
    the production transport and runtime (``ServiceRunner``), clients are
    ``ClusterRpcProxy`` instances.

    Time is real: ``advance(seconds)`` sleeps.
    """

    transport = "amqp"

    def __init__(
        self,
        uri: str,
        config: Mapping[str, Any] | None = None,
        *,
        extra_config_keys: Iterable[str] = (),
    ) -> None:
        from shimeji.runner import ServiceRunner

        self.uri = uri
        config = dict(config or {})
        # An exchange of its own, deleted afterwards, unless the test names one.
        self._own_exchange = "rpc_exchange" not in config
        self.exchange = config.get("rpc_exchange") or f"shimeji-test-{uuid.uuid4().hex[:12]}"
        # What the simulator reports as a stall (a call nothing can answer) would
        # hang on a broker: calls that set no timeout are bounded instead.
        config.setdefault("RPC_TIMEOUT", STALL_TIMEOUT)
        # HTTP routes on a free port of the loopback interface.
        config.setdefault("WEB_SERVER_ADDRESS", "127.0.0.1:0")
        self.config = {"AMQP_URI": uri, **config, "rpc_exchange": self.exchange}
        self.trace = RecordingTracer()
        self.runner = ServiceRunner(
            self.config, extra_config_keys=extra_config_keys, tracer=self.trace
        )
        self.settings = self.runner.settings
        self._clients: list[Any] = []
        self._rpc: StandaloneProxy | None = None
        self._dispatchers: dict[str, Any] = {}  # by context data (its repr)
        self._event_sources: set[str] = set()
        self._start = time.monotonic()
        self.state = "created"

    @property
    def crashes(self) -> list[Any]:
        return self.runner.crashes

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> AmqpCluster:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop(raise_crashes=exc_type is None)

    def start(self) -> None:
        self.runner.start()
        self.state = "running"

    def stop(self, raise_crashes: bool = True, timeout: float = 10.0) -> None:
        """Stop the services (workers still running after ``timeout`` are killed),
        close the clients and delete every queue the cluster declared."""
        if self.state != "running":
            return
        self.state = "stopping"
        try:
            self.runner.stop(timeout=timeout)
            for client in self._clients:
                client.stop()
            for dispatcher in self._dispatchers.values():
                dispatcher.close()
        finally:
            self._delete_queues()
            self.state = "stopped"
        if raise_crashes and self.runner.crashes:
            crashes, self.runner.crashes = self.runner.crashes, []
            raise crashes[0]

    def _delete_queues(self) -> None:
        """Delete the service queues, the event handlers' queues and the event
        exchanges of the services involved that nothing else is bound to (event
        exchanges are named after their service, not after this cluster)."""
        from shimeji.amqp_adapter import AmqpTransport
        from shimeji.core.protocol import event_exchange_name, service_queue_name
        from shimeji.core.pubsub import EventHandler

        queues = [service_queue_name(name) for name in self.runner.services]
        sources = set(self._event_sources) | set(self.runner.services)
        for replica in self.runner.replicas():
            container = getattr(replica, "container", None)
            for entrypoint in getattr(container, "entrypoints", ()):
                if isinstance(entrypoint, EventHandler) and entrypoint.queue_name:
                    queues.append(entrypoint.queue_name)
                    sources.add(entrypoint.source_service)
        cleaner = AmqpTransport(self.settings, name="cleanup")
        try:
            for queue in dict.fromkeys(queues):
                cleaner.delete_queue(queue)
            for source in sorted(sources):
                # Others (a nameko service, another program) may be bound to it.
                cleaner.delete_exchange(event_exchange_name(source), if_unused=True)
            if self._own_exchange:
                cleaner.delete_exchange(self.exchange)
        finally:
            cleaner.close()

    def _require_running(self, what: str) -> None:
        if self.state != "running":
            raise RuntimeError(f"cannot {what}: the AmqpCluster is {self.state}")

    # -- services --------------------------------------------------------------------------

    def add_service(self, service_cls: type, replicas: int = 1) -> list[Any]:
        """Add (and start, if running) ``replicas`` replicas of a service."""
        from shimeji.core.container import get_service_name
        from shimeji.core.protocol import service_queue_name

        name = get_service_name(service_cls)
        self.trace.redactor.add(service_cls)
        if name not in self.runner.services:
            self._claim_queue(service_queue_name(name))
        return self.runner.add_service(service_cls, replicas)

    def _claim_queue(self, queue: str) -> None:
        """Refuse a service queue another program consumes (its requests would be
        answered elsewhere); delete one left by an interrupted run."""
        from shimeji.amqp_adapter import AmqpTransport

        cleaner = AmqpTransport(self.settings, name="cleanup")
        try:
            state = cleaner.inspect_queue(queue)
            consumers = state[1] if state else 0
            if consumers:
                raise RuntimeError(
                    f"queue {queue} on {redact_uri(self.uri)} already has {consumers} "
                    "consumer(s) outside this test: they would take its requests. Stop them, "
                    "or run the tests on a vhost of their own (--amqp-uri amqp://.../tests)"
                )
            cleaner.delete_queue(queue)
        finally:
            cleaner.close()

    def replicas(self, service: str | None = None) -> list[Any]:
        return self.runner.replicas(service)

    def replica(self, name: str) -> Any:
        return self.runner.replica(name)

    @property
    def services(self) -> list[str]:
        return self.runner.services

    # -- clients ------------------------------------------------------------------------------

    @property
    def rpc(self) -> StandaloneProxy:
        """A client with no context data: ``cluster.rpc.service.method(...)``."""
        self._require_running("make calls")
        if self._rpc is None:
            self._rpc = self._new_client(None, FROM_CONFIG, None)
        return self._rpc

    def rpc_proxy(
        self,
        context_data: Mapping[str, Any] | None = None,
        timeout: Any = FROM_CONFIG,
        retry_policy: Any = None,
    ) -> StandaloneProxy:
        """A new client (its own reply queue) sending ``context_data`` with every call."""
        self._require_running("make calls")
        return self._new_client(context_data, timeout, retry_policy)

    def _new_client(self, context_data: Any, timeout: Any, retry_policy: Any) -> StandaloneProxy:
        from shimeji.standalone import ClusterRpcProxy

        client = ClusterRpcProxy(
            self.config, context_data, timeout, retry_policy, tracer=self.trace
        )
        proxy = client.start()
        self._clients.append(client)
        return proxy

    @property
    def http(self) -> LoopbackHttpClient:
        """An HTTP client of the routes the runner serves (real HTTP on 127.0.0.1)."""
        self._require_running("send HTTP requests")
        address = self.runner.web_address
        if address is None:
            raise RuntimeError("no service of this cluster has an @http route")
        return LoopbackHttpClient(address[1])

    def dispatch(
        self,
        source_service: str,
        event_type: str,
        event_data: Any,
        context_data: Mapping[str, Any] | None = None,
    ) -> None:
        """Dispatch an event as ``source_service`` would, from outside any service
        (a standalone dispatcher), with ``context_data``."""
        from shimeji.standalone import StandaloneDispatcher

        self._require_running("dispatch events")
        key = repr(sorted((context_data or {}).items()))
        dispatcher = self._dispatchers.get(key)
        if dispatcher is None:
            dispatcher = StandaloneDispatcher(self.config, context_data, tracer=self.trace)
            self._dispatchers[key] = dispatcher
        self._event_sources.add(source_service)
        dispatcher(source_service, event_type, event_data)

    # -- time -----------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (real time: it sleeps)."""
        time.sleep(seconds)

    def __repr__(self) -> str:
        return f"<AmqpCluster {redact_uri(self.uri)} exchange={self.exchange} {self.state}>"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def shimeji_transport(request: pytest.FixtureRequest) -> str:
    """The transport the ``cluster`` fixture runs on: "sim" or "amqp"."""
    return transport_name(request.config)


@pytest.fixture
def amqp_uri(request: pytest.FixtureRequest) -> str:
    """The broker's URI, for tests that always need RabbitMQ (skipped without one)."""
    return require_broker(request.config)


ClusterFactory = Callable[..., Any]


@pytest.fixture
def cluster_factory(request: pytest.FixtureRequest) -> Iterator[ClusterFactory]:
    """``cluster_factory(config=None, **kwargs)``: a started cluster on the configured
    transport (SimCluster kwargs such as ``latency`` apply to the simulator only).
    Every cluster made is stopped after the test."""
    from shimeji.sim import SimCluster
    from shimeji.testing.pytest_plugin import _CLUSTER

    name = transport_name(request.config)
    uri = require_broker(request.config) if name == "amqp" else None
    made: list[Any] = []

    def make(config: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        made_cluster: Any
        if uri is None:
            seed = request.config.getoption("--shimeji-seed")
            made_cluster = SimCluster(seed=seed, config=config, **kwargs)
        else:
            extra = kwargs.pop("extra_config_keys", ())
            made_cluster = AmqpCluster(uri, config, extra_config_keys=extra)
        if isinstance(made_cluster, AmqpCluster):
            request.node.stash[_AMQP_CLUSTER] = made_cluster
        else:
            request.node.stash[_CLUSTER] = made_cluster
        made_cluster.start()
        made.append(made_cluster)
        return made_cluster

    try:
        yield make
    finally:
        errors = []
        for made_cluster in reversed(made):
            try:
                made_cluster.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def cluster(cluster_factory: ClusterFactory) -> Any:
    """A started cluster with the default configuration, on the configured transport."""
    return cluster_factory()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """A failed test on the broker shows where it ran and the end of its trace."""
    report = yield
    made = item.stash.get(_AMQP_CLUSTER, None)
    if made is not None and report.failed:
        events = made.trace.events
        tail = events[-TRACE_TAIL:]
        lines = [f"transport: amqp ({redact_uri(made.uri)}, exchange {made.exchange})"]
        if tail:
            shown = f"last {len(tail)} of {len(events)}" if len(events) > len(tail) else "all"
            lines.append(f"trace ({shown} events, seconds since the cluster started):")
            lines.append(made.trace.to_text(tail))
        report.sections.append(("shimeji", "\n".join(lines)))
    return report
