"""nameko's service testing tools (``nameko.testing.services``), on shimeji.

    from shimeji.testing.services import entrypoint_hook, entrypoint_waiter

    def test_score(container_factory):
        container = container_factory(UserService)
        calculator = replace_dependencies(container, "calculator_rpc")
        calculator.multiply.return_value = 30
        container.start()
        with entrypoint_hook(container, "calculate_user_score") as score:
            assert score("u1", 10, 3)["score"] == 30

What plays nameko's *container* here: a ``SimContainer`` from the
``container_factory`` or ``runner_factory`` fixtures (one replica of a
service in the test's ``SimCluster``, built before it starts), a replica of a
cluster (``sim_cluster.replica("orders-1")``, once started), or a
``ServiceContainer`` itself. ``entrypoint_hook`` and ``entrypoint_waiter``
take any of them, on any transport; ``replace_dependencies`` and
``restrict_entrypoints`` need one that has not started yet.

Waiting happens in the container's runtime: on the simulator, timeouts are
virtual seconds, and a wait that nothing left in the simulation can end
raises ``SimulationStalled`` instead of hanging.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from unittest.mock import MagicMock

from shimeji.core.container import ExcInfo, ServiceContainer, WorkerContext
from shimeji.core.exceptions import ExtensionNotFound
from shimeji.core.extensions import DependencyProvider, Entrypoint
from shimeji.testing.containers import raise_to_test as _raise_crash
from shimeji.testing.utils import get_extension
from shimeji.testing.waiting import WaitResult as _CallOutcome
from shimeji.testing.waiting import check_timeout
from shimeji.testing.workers import worker_factory

__all__ = [
    "EntrypointWaiterTimeout",
    "MockDependencyProvider",
    "Once",
    "WaitResult",
    "dummy",
    "entrypoint_hook",
    "entrypoint_waiter",
    "once",
    "replace_dependencies",
    "restrict_entrypoints",
    "worker_factory",
]


class EntrypointWaiterTimeout(Exception):
    """An entrypoint did not run within the waiter's timeout
    (``entrypoint_waiter.Timeout``)."""


class WaitResult(_CallOutcome):
    """What an ``entrypoint_waiter`` yields: the result of the worker it waited for.

    ``get()`` returns the method's result or raises its exception;
    ``worker_ctx`` is that worker's context. Before the worker has run,
    ``get()`` raises ``WaitResult.NotReady``.
    """

    _not_ready = "the entrypoint has not run yet: call get() after the entrypoint_waiter block"

    def __init__(self) -> None:
        super().__init__()
        self.worker_ctx: WorkerContext | None = None

    def send(  # type: ignore[override]
        self, worker_ctx: WorkerContext | None, result: Any, exc_info: ExcInfo | None
    ) -> None:
        """Record the outcome (the first one only)."""
        if self._record(result, exc_info):
            self.worker_ctx = worker_ctx


def _service_container(container: Any, what: str) -> ServiceContainer:
    """The ``ServiceContainer`` behind what a test passes as nameko's container."""
    if isinstance(container, ServiceContainer):
        return container
    inner = getattr(container, "service_container", None)  # SimContainer
    if isinstance(inner, ServiceContainer):
        return inner
    if hasattr(container, "container") and hasattr(container, "service_cls"):  # a replica
        inner = container.container
        if isinstance(inner, ServiceContainer):
            return inner
        prepared = getattr(container, "prepared", None)
        if isinstance(prepared, ServiceContainer):
            return prepared
        raise RuntimeError(
            f"{what}: replica {getattr(container, 'name', container)!r} has no container yet: "
            "start it first, or make the container with the container_factory fixture"
        )
    raise TypeError(
        f"{what} takes a container: one from the container_factory or runner_factory "
        f"fixture, a replica (sim_cluster.replica('name-1')) or a ServiceContainer; "
        f"got {container!r}"
    )


def _cluster_of(container: Any) -> Any:
    cluster = getattr(container, "cluster", None)
    return cluster if hasattr(cluster, "crashes") else None


def _find_entrypoint(service_container: ServiceContainer, method_name: str) -> Entrypoint | None:
    found = get_extension(service_container, Entrypoint, method_name=method_name)
    return found if isinstance(found, Entrypoint) else None


class _Waiter:
    """Waits in the container's runtime for a worker of one method to be torn down."""

    def __init__(
        self,
        service_container: ServiceContainer,
        method_name: str,
        timeout: float | None,
        callback: Callable[[WorkerContext, Any, ExcInfo | None], Any] | None,
        only: Callable[[WorkerContext], bool] | None = None,
    ) -> None:
        self.container = service_container
        self.method_name = method_name
        self.timeout = timeout
        self.callback = callback
        self.only = only
        self.result = WaitResult()
        self.chosen: WorkerContext | None = None
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        runtime = service_container.runtime
        self.done = runtime.new_waiter(
            f"a worker of {service_container.service_name}.{method_name} to finish "
            "(an entrypoint waiter)"
        )
        self.timer = runtime.call_later(timeout, self._time_out) if timeout is not None else None

    def _time_out(self) -> None:
        self.done.set_exception(
            EntrypointWaiterTimeout(
                f"Timeout on {self.container.service_name}.{self.method_name} "
                f"after {self.timeout} seconds"
            )
        )

    def on_result(self, worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None) -> None:
        if worker_ctx.entrypoint.method_name != self.method_name:
            return
        if self.only is not None and not self.only(worker_ctx):
            return
        # On threads, workers of the method may end together: one is chosen.
        with self.lock:
            self._consider(worker_ctx, result, exc_info)

    def _consider(self, worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None) -> None:
        if self.chosen is not None or self.done.done:
            return
        try:
            complete = self.callback is None or self.callback(worker_ctx, result, exc_info)
        except Exception as exc:  # the test's callback: its error is the test's
            self.error = exc
            self.done.set_exception(exc)
            return
        if complete:
            self.chosen = worker_ctx
            self.result.send(worker_ctx, result, exc_info)

    def on_end(self, worker_ctx: WorkerContext) -> None:
        if worker_ctx is self.chosen:
            self.done.set_result(None)

    def on_death(self, container: ServiceContainer) -> None:
        crash = container.crash
        self.done.set_exception(
            crash
            if crash is not None
            else RuntimeError(
                f"{container.replica_name} was killed before a worker of "
                f"{self.method_name} finished"
            )
        )

    def __enter__(self) -> _Waiter:
        container = self.container
        # Lists are rebuilt rather than changed in place: a worker elsewhere may
        # be going through them.
        container.on_worker_result = [*container.on_worker_result, self.on_result]
        container.on_worker_end = [*container.on_worker_end, self.on_end]
        container.on_death = [*container.on_death, self.on_death]
        return self

    def __exit__(self, *exc: Any) -> None:
        container = self.container
        container.on_worker_result = [h for h in container.on_worker_result if h != self.on_result]
        container.on_worker_end = [h for h in container.on_worker_end if h != self.on_end]
        container.on_death = [h for h in container.on_death if h != self.on_death]
        if self.timer is not None:
            self.timer.cancel()

    def wait(self) -> None:
        self.done.wait()


@contextlib.contextmanager
def entrypoint_waiter(
    container: Any,
    method_name: str,
    timeout: float | None = 30,
    callback: Callable[[WorkerContext, Any, ExcInfo | None], Any] | None = None,
) -> Iterator[WaitResult]:
    """Wait, when the block ends, until a worker of ``method_name`` has run and
    been torn down; yields a ``WaitResult`` holding its result.

    With ``callback(worker_ctx, result, exc_info)``, only a worker for which it
    returns true counts. ``timeout`` (seconds of the container's clock: virtual
    on the simulator; None for none) counts from the start of the block, and
    ``entrypoint_waiter.Timeout`` is raised when it passes first. On the
    simulator the block itself is not interrupted: the timeout is judged once
    it ends.
    """
    service_container = _service_container(container, "entrypoint_waiter")
    timeout = check_timeout(timeout, "entrypoint_waiter")
    if callback is not None and not callable(callback):
        raise TypeError(
            "entrypoint_waiter: callback is a function (worker_ctx, result, exc_info) -> bool, "
            f"got {callback!r}"
        )
    if _find_entrypoint(service_container, method_name) is None:
        raise RuntimeError(f"{service_container.service_name} has no entrypoint `{method_name}`")
    with _Waiter(service_container, method_name, timeout, callback) as waiter:
        yield waiter.result
        try:
            waiter.wait()
        except BaseException as exc:
            _raise_crash(exc, _cluster_of(container))


entrypoint_waiter.Timeout = EntrypointWaiterTimeout  # type: ignore[attr-defined]


@contextlib.contextmanager
def entrypoint_hook(
    container: Any,
    method_name: str,
    context_data: Mapping[str, Any] | None = None,
    timeout: float | None = 30,
) -> Iterator[Callable[..., Any]]:
    """Yield a function that runs ``method_name`` in a worker of the running
    ``container``, as its entrypoint would, and returns the method's result (or
    raises its exception) once the worker is torn down.

    Any entrypoint works: ``@rpc``, ``@event_handler`` (pass the event data),
    ``@timer`` (no arguments), ``@http`` (pass the request and the URL's
    values). Nothing travels through the broker: no request, no reply, the
    value is what the method returned. ``context_data`` reaches the worker as
    a caller's would (``call_id_stack`` in it names the callers). ``timeout``
    as for ``entrypoint_waiter``. If the container dies running the worker,
    the error it died of is raised.
    """
    service_container = _service_container(container, "entrypoint_hook")
    timeout = check_timeout(timeout, "entrypoint_hook")
    if context_data is not None and not isinstance(context_data, Mapping):
        raise TypeError(f"entrypoint_hook: context_data is a mapping, got {context_data!r}")
    entrypoint = _find_entrypoint(service_container, method_name)
    if entrypoint is None:
        raise ExtensionNotFound(
            f"No entrypoint for '{method_name}' found on container {container!r}; its "
            f"entrypoints are {sorted({e.method_name for e in service_container.entrypoints})}"
        )
    data = dict(context_data or {})
    stack = list(data.pop("call_id_stack", None) or [])

    def hook(*args: Any, **kwargs: Any) -> Any:
        if service_container.state != "running":
            raise RuntimeError(
                f"entrypoint_hook: {service_container.replica_name} is "
                f"{service_container.state}; start the container first (container.start())"
            )
        # The worker is known by its handle_result, which runs before the waiter's
        # hooks: on threads it may end before spawn_worker has even returned.
        handled: list[WorkerContext] = []

        def handle_result(
            worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None
        ) -> tuple[Any, ExcInfo | None]:
            handled.append(worker_ctx)
            return result, exc_info

        def mine(worker_ctx: WorkerContext) -> bool:
            return any(ctx is worker_ctx for ctx in handled)

        with _Waiter(service_container, method_name, timeout, None, only=mine) as waiter:
            service_container.spawn_worker(entrypoint, args, kwargs, data, stack, handle_result)
            try:
                waiter.wait()
            except BaseException as exc:
                _raise_crash(exc, _cluster_of(container))
        return waiter.result.get()

    yield hook


def _pass_through(
    worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None
) -> tuple[Any, ExcInfo | None]:
    return result, exc_info


class MockDependencyProvider(DependencyProvider):
    """Injects ``dependency`` (a ``MagicMock`` when None) under ``attr_name``."""

    def __init__(self, attr_name: str, dependency: Any = None) -> None:
        self.attr_name = attr_name
        self.dependency = MagicMock() if dependency is None else dependency

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        return self.dependency


def _not_started(container: Any, what: str) -> ServiceContainer:
    service_container = _service_container(container, what)
    if service_container.state != "created":
        raise RuntimeError(
            f"{what}: {service_container.replica_name} is {service_container.state}; "
            f"call {what} before the container is started"
        )
    return service_container


def replace_dependencies(container: Any, *dependencies: str, **dependency_map: Any) -> Any:
    """Replace dependency providers of a container that has not started.

    Each name in ``dependencies`` gets a ``MagicMock``; each keyword gets the
    value given. Returns the mock when one name was given positionally, and
    an iterator over the mocks, in order, otherwise (keywords are not
    returned). Only this container changes: the class, and any other
    container of it (a restarted replica too), keep their providers.
    """
    both = sorted(set(dependencies) & set(dependency_map))
    if both:
        raise RuntimeError(f"Cannot replace the same dependency via both args and kwargs: {both}")
    service_container = _not_started(container, "replace_dependencies")
    mocks = {name: MagicMock() for name in dependencies}
    replacements = {**dependency_map, **mocks}
    names = [provider.attr_name for provider in service_container.dependencies]
    missing = [name for name in replacements if name not in names]
    if missing:
        raise ExtensionNotFound(
            f"Dependency(s) {missing} not found on {service_container.service_name}; "
            f"its dependencies are {names}"
        )
    swapped: list[DependencyProvider] = []
    for provider in service_container.dependencies:
        if provider.attr_name in replacements:
            value = replacements[provider.attr_name]
            if value is None:
                value = replacements[provider.attr_name] = MagicMock()
            template = MockDependencyProvider(provider.attr_name, value)
            provider = template.bind(service_container, provider.attr_name)
        swapped.append(provider)
    service_container.dependencies = swapped
    values = [mocks[name] for name in dependencies]
    if len(values) == 1:
        return values[0]
    return iter(values)


def restrict_entrypoints(container: Any, *entrypoints: str) -> None:
    """Keep only the entrypoints on the methods named, on a container that has
    not started (every entrypoint of a method named stays)."""
    service_container = _not_started(container, "restrict_entrypoints")
    names = sorted({entrypoint.method_name for entrypoint in service_container.entrypoints})
    missing = [name for name in entrypoints if name not in names]
    if missing:
        raise ExtensionNotFound(
            f"Entrypoint(s) {missing} not found on {service_container.service_name}; "
            f"its entrypoints are {names}"
        )
    service_container.entrypoints = [
        entrypoint
        for entrypoint in service_container.entrypoints
        if entrypoint.method_name in entrypoints
    ]


class Once(Entrypoint):
    """An entrypoint that runs its method once, with the arguments given, as the
    container starts (``@once(*args, **kwargs)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        expected = kwargs.pop("expected_exceptions", ())
        sensitive = kwargs.pop("sensitive_arguments", ())
        super().__init__(expected_exceptions=expected, sensitive_arguments=sensitive)
        self.args = args
        self.kwargs = kwargs

    def start(self) -> None:
        container = self.container
        assert container is not None
        container.spawn_worker(self, self.args, self.kwargs, {}, [], _pass_through)


once = Once.decorator

#: An entrypoint that never fires by itself: a method ``entrypoint_hook`` can call.
dummy = Entrypoint.decorator
