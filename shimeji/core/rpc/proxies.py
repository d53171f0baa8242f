"""RPC, what callers hold: proxies to services and their methods.

``proxy.service.method(...)`` calls, ``.call_async(...)`` returns an
``RpcReply``. ``RpcProxy`` is the dependency that gives a worker such a proxy
(on its replica's ``RpcClient``, shared through ``ReplyListener``);
``StandaloneProxy`` is the form a client outside any service holds
(``SimCluster.rpc``, ``ClusterRpcProxy``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shimeji.core import protocol
from shimeji.core.config import FROM_CONFIG, RetryPolicy, Settings
from shimeji.core.container import WorkerContext
from shimeji.core.exceptions import ConfigurationError, ContainerBeingKilled
from shimeji.core.extensions import DependencyProvider, SharedExtension
from shimeji.core.rpc.client import RpcClient, RpcReply

#: Characters a method name cannot hold: it becomes the last word of a routing key.
_NOT_IN_NAMES = frozenset(".*# \t\n")

__all__ = [
    "STOPPED_PROXY",
    "MethodProxy",
    "ReplyListener",
    "RpcProxy",
    "ServiceProxy",
    "StandaloneProxy",
    "resolve_timeout",
]


STOPPED_PROXY = "This consumer has been stopped, and can no longer be used"


class MethodProxy:
    """``proxy.service.method``: call it, or ``call_async`` it."""

    __slots__ = ("method_name", "service_proxy")

    def __init__(self, service_proxy: ServiceProxy, method_name: str) -> None:
        self.service_proxy = service_proxy
        self.method_name = method_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Through the same _send as call_async: one place decides how a call
        # goes out and what a stopped proxy raises.
        return self._send(args, kwargs).result()

    def call_async(self, *args: Any, **kwargs: Any) -> RpcReply:
        return self._send(args, kwargs)

    def _send(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RpcReply:
        proxy = self.service_proxy
        try:
            return proxy.client.call(
                proxy.service_name,
                self.method_name,
                args,
                kwargs,
                context_data=proxy.context_data,
                call_id_stack=proxy.call_id_stack(),
                timeout=proxy.timeout,
                retry_policy=proxy.retry_policy,
            )
        except ContainerBeingKilled:
            if proxy.worker_ctx is None and proxy.client.closed:
                # A standalone proxy used after its stop: nameko's error and words.
                raise RuntimeError(STOPPED_PROXY) from None
            raise

    def __repr__(self) -> str:
        return f"<MethodProxy {self.service_proxy.service_name}.{self.method_name}>"


class ServiceProxy:
    """``proxy.service``: attribute access gives a MethodProxy per method."""

    def __init__(
        self,
        client: RpcClient,
        service_name: str,
        *,
        context_data: Mapping[str, Any],
        worker_ctx: WorkerContext | None,
        timeout: float | None,
        retry_policy: RetryPolicy,
    ) -> None:
        self.client = client
        self.service_name = service_name
        self.context_data = context_data
        self.worker_ctx = worker_ctx
        self.timeout = timeout
        self.retry_policy = retry_policy

    def call_id_stack(self) -> list[str]:
        if self.worker_ctx is not None:
            return self.worker_ctx.call_id_stack
        # A call from outside any service starts a chain of its own.
        return [f"{protocol.STANDALONE_SERVICE}.call.{self.client.runtime.new_id()}"]

    def __getattr__(self, name: str) -> MethodProxy:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        proxy = self[name]
        if self.worker_ctx is None:
            # A standalone proxy lives on: the next ``proxy.method`` finds this at once.
            self.__dict__[name] = proxy
        return proxy

    def __getitem__(self, name: str) -> MethodProxy:
        if not isinstance(name, str) or not name or not _NOT_IN_NAMES.isdisjoint(name):
            raise ConfigurationError(
                f"{name!r} cannot be a method name (it becomes the last word of the "
                f"routing key {self.service_name}.<method>): use the method's own name"
            )
        return MethodProxy(self, name)

    def __repr__(self) -> str:
        return f"<ServiceProxy {self.service_name} via {self.client.label}>"


def resolve_timeout(timeout: Any, settings: Settings, what: str) -> float | None:
    """A call timeout as given (seconds, or None for none), or ``RPC_TIMEOUT`` when
    it is ``FROM_CONFIG``; ConfigurationError naming ``what`` when it is not one."""
    if timeout is FROM_CONFIG:
        return settings.rpc_timeout
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigurationError(f"{what} timeout must be seconds > 0 or None, got {timeout!r}")
    return float(timeout)


class StandaloneProxy:
    """A standalone client's entry: ``proxy.service.method(...)`` or ``proxy["service"]``."""

    def __init__(
        self,
        client: RpcClient,
        *,
        context_data: Mapping[str, Any] | None = None,
        timeout: Any = FROM_CONFIG,
        retry_policy: Any = None,
    ) -> None:
        if context_data is not None and not isinstance(context_data, Mapping):
            raise ConfigurationError(f"context_data must be a mapping, got {context_data!r}")
        self._client = client
        self._context_data = dict(context_data or {})
        self._timeout = resolve_timeout(timeout, client.settings, "rpc_proxy")
        self._retry_policy = (
            client.settings.retry_policy
            if retry_policy is None
            else RetryPolicy.from_value(retry_policy, "retry_policy")
        )

    @property
    def label(self) -> str:
        """The client's name in traces and for faults (``"client"``, ``"client-2"``...)."""
        return self._client.label

    def __getattr__(self, name: str) -> ServiceProxy:
        if name.startswith("_"):
            raise AttributeError(name)
        # Kept as an attribute: the next ``proxy.service`` finds it at once.
        proxy = self.__dict__[name] = self[name]
        return proxy

    def __getitem__(self, service_name: str) -> ServiceProxy:
        return ServiceProxy(
            self._client,
            service_name,
            context_data=self._context_data,
            worker_ctx=None,
            timeout=self._timeout,
            retry_policy=self._retry_policy,
        )

    def __repr__(self) -> str:
        return f"<StandaloneProxy via {self._client.label}>"


class ReplyListener(SharedExtension):
    """The replica's RpcClient, shared by all its RpcProxy dependencies."""

    def __init__(self) -> None:
        self.client: RpcClient | None = None

    def setup(self) -> None:
        container = self.container
        assert container is not None
        self.client = RpcClient(
            container.settings,
            transport=container.transport,
            runtime=container.runtime,
            tracer=container.tracer,
            owner=container.service_name,
            label=container.replica_name,
        )

    def start(self) -> None:
        assert self.client is not None
        self.client.start()

    def stop(self) -> None:
        assert self.client is not None
        self.client.close(delete_queue=True)

    def kill(self) -> None:
        if self.client is not None:
            self.client.close()


class RpcProxy(DependencyProvider):
    """Injects a proxy to another service; ``self.other.method(...)`` calls it.

    ``timeout`` (seconds) overrides ``RPC_TIMEOUT`` for these calls;
    ``retry_policy`` overrides ``RPC_RETRY_POLICY`` for publishing them.
    """

    reply_listener = ReplyListener()

    def __init__(
        self,
        target_service: str,
        timeout: Any = FROM_CONFIG,
        retry_policy: Any = None,
        **options: Any,
    ) -> None:
        problem = protocol.validate_service_name(target_service)
        if problem:
            raise ConfigurationError(f"RpcProxy: {problem}")
        if options:
            raise ConfigurationError(
                f"RpcProxy({target_service!r}) got unknown options {sorted(options)}; "
                "it accepts timeout and retry_policy"
            )
        self.target_service = target_service
        self.timeout = timeout
        self.retry_policy = retry_policy
        if timeout is not FROM_CONFIG and timeout is not None:
            resolve_timeout(timeout, Settings.from_config({}), f"RpcProxy({target_service!r})")
        self._retry: RetryPolicy | None = (
            None if retry_policy is None else RetryPolicy.from_value(retry_policy, "retry_policy")
        )

    def setup(self) -> None:
        container = self.container
        assert container is not None
        self._timeout = resolve_timeout(self.timeout, container.settings, "RpcProxy")
        if self._retry is None:
            self._retry = container.settings.retry_policy

    def get_dependency(self, worker_ctx: WorkerContext) -> ServiceProxy:
        client = self.reply_listener.client
        assert client is not None and self._retry is not None
        return ServiceProxy(
            client,
            self.target_service,
            context_data=worker_ctx.data,
            worker_ctx=worker_ctx,
            timeout=self._timeout,
            retry_policy=self._retry,
        )
