"""Call services on RabbitMQ from outside any service: scripts, web apps, shells.

    with ClusterRpcProxy(config) as rpc:
        rpc.calculator.add(2, 3)
        reply = rpc.calculator.multiply.call_async(6, 7)
        reply.result()

    with ServiceRpcProxy("calculator", config) as calculator:
        calculator.add(2, 3)

    dispatch = event_dispatcher(config)
    dispatch("orders", "order_placed", {"id": 1})
    dispatch.close()

``ClusterRpcProxy`` connects; what it gives (``with ... as rpc``) is a
``StandaloneProxy``, the object ``SimCluster.rpc_proxy`` returns too: what works
against the simulator works here. (nameko calls that object ``ClusterProxy``;
the name is kept here as an alias.)

With an ``AMQP_URI`` of ``sim://...`` (a running ``SimCluster``'s ``uri``, as
the ``rabbit_config`` fixture of ``shimeji.testing.nameko_fixtures`` gives),
they call and dispatch on that simulated cluster instead, in virtual time:
tests written against a broker run on the simulator unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from shimeji.amqp_adapter import AmqpTransport, ThreadRuntime
from shimeji.core import protocol
from shimeji.core.config import DEFAULT_CONFIG, FROM_CONFIG, SIM_SCHEME, RetryPolicy, Settings
from shimeji.core.exceptions import ConfigurationError, ShimejiError
from shimeji.core.pubsub import publish_event
from shimeji.core.rpc import RpcClient, ServiceProxy, StandaloneProxy
from shimeji.core.tracing import NullTracer, Tracer

__all__ = [
    "ClusterProxy",
    "ClusterRpcProxy",
    "ServiceRpcProxy",
    "StandaloneDispatcher",
    "StandaloneProxy",
    "event_dispatcher",
]

#: nameko's name for what ``ClusterRpcProxy`` gives.
ClusterProxy = StandaloneProxy

_count = iter(range(1, 1 << 62))
_count_lock = threading.Lock()


def _next_label() -> str:
    with _count_lock:
        return f"standalone-{next(_count)}"


def _simulated(settings: Settings) -> Any:
    """The running SimCluster an ``AMQP_URI`` of ``sim://...`` names, else None."""
    if not settings.amqp_uri.startswith(SIM_SCHEME):
        return None
    from shimeji.sim.cluster import running_cluster

    return running_cluster(settings.amqp_uri)


def _client_settings(config: Mapping[str, Any] | None) -> Settings:
    raw = dict(config or {})
    # A client reads no application key: those belong to the services.
    return Settings.from_config(raw, extra_keys=set(raw) - set(DEFAULT_CONFIG))


class ClusterRpcProxy:
    """A standalone client with its own connections and reply queue.

    ``context_data`` travels with every call. ``timeout`` (seconds) bounds each
    call; left out, ``RPC_TIMEOUT`` applies; ``None`` waits as long as it takes.
    ``retry_policy`` overrides ``RPC_RETRY_POLICY`` for publishing.

    Use it as a context manager, or call ``start()`` (which returns the proxy)
    and ``stop()``. It may be shared by threads.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        context_data: Mapping[str, Any] | None = None,
        timeout: Any = FROM_CONFIG,
        retry_policy: Any = None,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        self.settings = _client_settings(config)
        self.context_data = context_data
        self.timeout = timeout
        self.retry_policy = retry_policy
        self.tracer: Tracer = tracer if tracer is not None else NullTracer()
        self.label = _next_label()
        self._transport: AmqpTransport | None = None
        self._runtime: ThreadRuntime | None = None
        self._client: RpcClient | None = None
        self._proxy: StandaloneProxy | None = None

    def start(self) -> StandaloneProxy:
        """Connect and create the reply queue; raises ``BrokerUnavailable`` if the
        broker cannot be reached after the retry policy's attempts."""
        if self._proxy is not None:
            return self._proxy
        cluster = _simulated(self.settings)
        if cluster is not None:
            # The cluster's settings, but this client's serializer and ACCEPT, as a
            # client on a broker has its own.
            settings = dataclasses.replace(
                cluster.settings, serializer=self.settings.serializer, accept=self.settings.accept
            )
            self._proxy = cluster.rpc_proxy(
                self.context_data, self.timeout, self.retry_policy, settings=settings
            )
            return self._proxy
        transport = AmqpTransport(self.settings, tracer=self.tracer, name=self.label)
        runtime = ThreadRuntime(2, name=self.label)
        try:
            transport.connect()
            client = RpcClient(
                self.settings,
                transport=transport,
                runtime=runtime,
                tracer=self.tracer,
                owner=protocol.STANDALONE_SERVICE,
                label=self.label,
            )
            client.start()
            proxy = StandaloneProxy(
                client,
                context_data=self.context_data,
                timeout=self.timeout,
                retry_policy=self.retry_policy,
            )
        except BaseException:
            transport.close()
            runtime.close()
            raise
        self._transport, self._runtime, self._client = transport, runtime, client
        self._proxy = proxy
        return proxy

    def stop(self) -> None:
        """Close the reply queue and the connections; calls still waiting fail."""
        client, self._client = self._client, None
        proxy, self._proxy = self._proxy, None
        if client is None and proxy is not None:  # a proxy on a simulated cluster
            client = proxy._client
        if client is not None:
            with contextlib.suppress(ShimejiError):  # the connection may be gone already
                client.close(delete_queue=True)
        if self._transport is not None:
            self._transport.close()
        if self._runtime is not None:
            self._runtime.close()

    def __enter__(self) -> StandaloneProxy:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "started" if self._proxy is not None else "not started"
        return f"<ClusterRpcProxy {self.label} {state}>"


class ServiceRpcProxy(ClusterRpcProxy):
    """A standalone client for one service: ``proxy.method(...)``."""

    def __init__(
        self,
        service_name: str,
        config: Mapping[str, Any] | None = None,
        context_data: Mapping[str, Any] | None = None,
        timeout: Any = FROM_CONFIG,
        retry_policy: Any = None,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        problem = protocol.validate_service_name(service_name)
        if problem:
            raise ConfigurationError(f"ServiceRpcProxy: {problem}")
        super().__init__(config, context_data, timeout, retry_policy, tracer=tracer)
        self.service_name = service_name

    def start(self) -> ServiceProxy:  # type: ignore[override]
        """Connect; the proxy of the service (``proxy.method(...)``), as nameko's."""
        return super().start()[self.service_name]

    def __enter__(self) -> ServiceProxy:  # type: ignore[override]
        return self.start()


class StandaloneDispatcher:
    """Dispatch events from outside any service: ``dispatch(source_service,
    event_type, event_data)`` publishes as ``source_service`` would (its
    exchange declared first), with ``context_data`` in the headers.

    It connects on the first dispatch and keeps the connection until
    ``close()`` (or the end of a ``with`` block). It may be shared by threads.
    ``dispatch`` returns once the broker has the event; it raises
    ``UnserializableValueError`` before sending data the serializer refuses,
    and ``PublishFailed`` when the broker stays out of reach.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        context_data: Mapping[str, Any] | None = None,
        retry_policy: Any = None,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        if context_data is not None and not isinstance(context_data, Mapping):
            raise ConfigurationError(f"context_data must be a mapping, got {context_data!r}")
        self.settings = _client_settings(config)
        self.context_data = dict(context_data or {})
        self.retry_policy = (
            None if retry_policy is None else RetryPolicy.from_value(retry_policy, "retry_policy")
        )
        self.tracer: Tracer = tracer if tracer is not None else NullTracer()
        self.label = _next_label()
        self._lock = threading.Lock()
        self._transport: AmqpTransport | None = None
        self._runtime: ThreadRuntime | None = None

    def _connected(self) -> tuple[AmqpTransport, ThreadRuntime]:
        with self._lock:
            if self._transport is None or self._runtime is None:
                transport = AmqpTransport(self.settings, tracer=self.tracer, name=self.label)
                runtime = ThreadRuntime(1, name=self.label)
                try:
                    transport.connect()
                except BaseException:
                    transport.close()
                    runtime.close()
                    raise
                self._transport, self._runtime = transport, runtime
            return self._transport, self._runtime

    def __call__(self, source_service: str, event_type: str, event_data: Any) -> None:
        problem = protocol.validate_service_name(source_service)
        if problem:
            raise ConfigurationError(f"dispatch: {problem}")
        if not isinstance(event_type, str) or not event_type:
            raise ConfigurationError(
                f"dispatch: an event type is a non-empty string, not {event_type!r}"
            )
        cluster = _simulated(self.settings)
        if cluster is not None:
            settings = dataclasses.replace(cluster.settings, serializer=self.settings.serializer)
            cluster.dispatch(
                source_service, event_type, event_data, self.context_data, settings=settings
            )
            return
        transport, runtime = self._connected()
        publish_event(
            transport=transport,
            runtime=runtime,
            tracer=self.tracer,
            settings=self.settings,
            label=self.label,
            source_service=source_service,
            event_type=event_type,
            event_data=event_data,
            context_data=self.context_data,
            call_id_stack=[],
            retry_policy=self.retry_policy,
        )

    def close(self) -> None:
        """Close the connection (a later dispatch connects again)."""
        with self._lock:
            transport, self._transport = self._transport, None
            runtime, self._runtime = self._runtime, None
        if transport is not None:
            transport.close()
        if runtime is not None:
            runtime.close()

    def __enter__(self) -> StandaloneDispatcher:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self._transport is not None else "not connected"
        return f"<StandaloneDispatcher {self.label} {state}>"


def event_dispatcher(
    config: Mapping[str, Any] | None = None,
    context_data: Mapping[str, Any] | None = None,
    retry_policy: Any = None,
    *,
    tracer: Tracer | None = None,
) -> StandaloneDispatcher:
    """nameko's ``event_dispatcher(config)``: a ``dispatch(source_service,
    event_type, event_data)`` callable (a ``StandaloneDispatcher``; close it
    when done)."""
    return StandaloneDispatcher(config, context_data, retry_policy, tracer=tracer)
