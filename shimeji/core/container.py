"""The service container: one running replica of a service, and its workers.

A container binds the extensions its service class declares, starts them,
and runs one *worker* per incoming call. A worker is a fresh instance of the
service class, living for one call, in nameko's lifecycle order:

    get_dependency -> worker_setup -> method -> handle_result
                   -> worker_result -> worker_teardown

An error in any of these hooks (anything but the method itself) means the
replica can no longer be trusted: it is killed, loudly, and its unacked
messages go back to the queue for another replica.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shimeji.core import protocol
from shimeji.core.config import Settings
from shimeji.core.events import Event
from shimeji.core.exceptions import (
    ConfigurationError,
    ContainerBeingKilled,
    ReplicaCrashed,
    describe,
    safe_str,
)
from shimeji.core.extensions import (
    DependencyProvider,
    Entrypoint,
    Extension,
    SharedExtension,
    declared_extensions,
)
from shimeji.core.quoting import escape, log_error
from shimeji.core.runtime import Runtime, Task, Waiter
from shimeji.core.tracing import Tracer, stepper
from shimeji.core.transport import Transport

__all__ = ["REDACTED", "ServiceContainer", "WorkerContext", "get_service_name"]

log = logging.getLogger("shimeji.container")

ExcInfo = tuple[type[BaseException], BaseException, Any]
HandleResult = Callable[["WorkerContext", Any, "ExcInfo | None"], tuple[Any, "ExcInfo | None"]]


def _pass_result(
    worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None
) -> tuple[Any, ExcInfo | None]:
    return result, exc_info


#: What views show in place of a sensitive argument (``@rpc(sensitive_arguments=...)``).
REDACTED = "********"

# What a call may raise and still be an answer: any Exception, and SystemExit
# (sys.exit() in service code). GreenletExit, a killed thread's exception and
# KeyboardInterrupt still unwind the worker.
_CALL_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit)


def get_service_name(service_cls: Any) -> str:
    """The ``name`` of a service class; ConfigurationError saying how to fix it."""
    if not isinstance(service_cls, type):
        raise ConfigurationError(
            f"a service must be a class (pass the class itself), got {service_cls!r}"
        )
    name = getattr(service_cls, "name", None)
    if name is None:
        raise ConfigurationError(
            f"service class {service_cls.__qualname__} has no `name` attribute; "
            f"add e.g. name = {service_cls.__name__.lower()!r}"
        )
    problem = protocol.validate_service_name(name)
    if problem:
        raise ConfigurationError(f"service class {service_cls.__qualname__}: {problem}")
    return name  # type: ignore[no-any-return]


class WorkerContext:
    """Everything about one call being handled by one worker."""

    __slots__ = (
        "args",
        "call_id",
        "call_id_stack",
        "container",
        "correlation_id",
        "data",
        "entrypoint",
        "kwargs",
        "parent_call_id_stack",
        "service",
    )

    def __init__(
        self,
        container: ServiceContainer,
        service: Any,
        entrypoint: Entrypoint,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any],
        context_data: Mapping[str, Any],
        parent_call_id_stack: list[str],
        correlation_id: str | None = None,
    ) -> None:
        self.container = container
        self.correlation_id = correlation_id  # of the request that started this worker
        self.service = service
        self.entrypoint = entrypoint
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        #: the context data the call brought, without the call id stack: what
        #: calls and events made by this worker carry on (nameko's ``data``;
        #: a provider may add to it, as nameko's may)
        self.data: dict[str, Any] = dict(context_data)
        self.call_id = (
            f"{container.service_name}.{entrypoint.method_name}.{container.runtime.new_id()}"
        )
        tracked = container.settings.parent_calls_tracked
        #: the callers' call ids, oldest first, as far as they are tracked
        parents = parent_call_id_stack[-tracked:] if tracked else []  # a copy
        self.parent_call_id_stack: list[str] = parents if type(parents) is list else list(parents)
        self.call_id_stack: list[str] = [*self.parent_call_id_stack, self.call_id]

    @property
    def service_name(self) -> str:
        return self.container.service_name

    @property
    def method_name(self) -> str:
        return self.entrypoint.method_name

    @property
    def config(self) -> Mapping[str, Any]:
        """The container's configuration, as nameko's ``worker_ctx.config``."""
        return self.container.config

    @property
    def origin_call_id(self) -> str | None:
        """The first call of the chain that led here (as far as it is tracked);
        None at the origin of a chain, as in nameko."""
        return self.parent_call_id_stack[0] if self.parent_call_id_stack else None

    @property
    def immediate_parent_call_id(self) -> str | None:
        """The call that made this one; None at the origin of a chain."""
        return self.parent_call_id_stack[-1] if self.parent_call_id_stack else None

    @property
    def context_data(self) -> dict[str, Any]:
        """A copy of ``data`` with the call id stack, as it travels in headers
        (nameko's meaning: writing to it changes nothing; write to ``data``)."""
        return {**self.data, protocol.CALL_ID_STACK_KEY: list(self.call_id_stack)}

    def __repr__(self) -> str:
        return f"<WorkerContext {self.call_id} on {self.container.replica_name}>"


class ServiceContainer:
    """One replica of a service: its bound extensions and its running workers."""

    def __init__(
        self,
        service_cls: type,
        settings: Settings,
        *,
        transport: Transport,
        runtime: Runtime,
        tracer: Tracer,
        replica_name: str,
    ) -> None:
        self.service_cls = service_cls
        self.service_name = get_service_name(service_cls)
        try:
            # object's own __init__ and __new__ take nothing: no signature to read.
            if service_cls.__init__ is not object.__init__ or (  # type: ignore[misc]
                service_cls.__new__ is not object.__new__
            ):
                inspect.signature(service_cls).bind()
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"service class {service_cls.__qualname__} must be constructible with no "
                "arguments: a fresh instance serves each call"
            ) from None
        self.settings = settings
        self.config = settings.config
        self.transport = transport
        self.runtime = runtime
        self.tracer = tracer
        #: how the steps of each call are reported to the tracer (``stepper``)
        self.step = stepper(tracer)
        self.replica_name = replica_name
        self.state = "created"  # -> running -> stopping -> stopped, or -> dead
        self.crash: ReplicaCrashed | None = None
        self.on_death: list[Callable[[ServiceContainer], None]] = []
        #: called with each worker's context as it starts (before the method
        #: runs, before it is traced) and as it ends: what a test harness hooks
        #: into (the simulator's faults crash a replica mid-call from here)
        self.on_worker_start: list[Callable[[WorkerContext], None]] = []
        self.on_worker_end: list[Callable[[WorkerContext], None]] = []
        #: called with each worker's context, result and exc_info once its
        #: entrypoint has handled the result (``shimeji.testing``'s waiters)
        self.on_worker_result: list[Callable[[WorkerContext, Any, ExcInfo | None], None]] = []

        self.shared_extensions: dict[Any, SharedExtension] = {}
        entrypoints, dependencies = declared_extensions(service_cls)
        self.entrypoints: list[Entrypoint] = [
            template.bind(self, method_name) for method_name, template in entrypoints
        ]
        # A class without entrypoints runs and does nothing, as in nameko.
        self.dependencies: list[DependencyProvider] = [
            template.bind(self, attr_name) for attr_name, template in dependencies
        ]
        self._workers: dict[WorkerContext, Task] = {}
        self._managed: list[Task] = []  # spawn_managed_thread's
        #: real threads (by ident) whose calls into this replica must run on the
        #: runtime's own thread, each with the function that runs them there
        #: (the simulator's real managed threads, ``shimeji.sim.bridge``)
        self.off_loop: dict[int, Callable[..., Any]] = {}
        self._task_names: dict[str, str] = {}  # method -> its workers' task name
        self._backlog: deque[tuple[WorkerContext, HandleResult]] = deque()
        self._idle: Waiter | None = None
        # Guards the worker bookkeeping above. On the simulator one OS thread
        # runs everything and the lock is never contended; on the threaded
        # runtime deliveries arrive on the consumer thread while workers end
        # on theirs. Reentrant, and never held across a blocking call.
        self._lock = threading.RLock()

    # -- extensions -----------------------------------------------------------

    @property
    def extensions(self) -> list[Extension]:
        """Every bound extension: dependencies, entrypoints, then shared ones."""
        return [*self.dependencies, *self.entrypoints, *self.shared_extensions.values()]

    def config_keys(self) -> set[str]:
        """Application configuration keys declared by this service's providers."""
        return {key for dep in self.dependencies for key in dep.config_keys}

    def _call_all(self, hook: str, extensions: Iterable[Extension]) -> None:
        for extension in extensions:
            getattr(extension, hook)()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Set up every extension, then start them; entrypoints last, so a call
        never reaches a half-started replica."""
        if self.state != "created":
            raise RuntimeError(f"replica {self.replica_name} cannot start: it is {self.state}")
        self._call_all("setup", self.extensions)
        self._call_all("start", [*self.dependencies, *self.shared_extensions.values()])
        self.state = "running"
        self._call_all("start", self.entrypoints)
        self.tracer.emit(
            Event(kind="replica_start", replica=self.replica_name, service=self.service_name)
        )

    def stop(self) -> None:
        """Stop taking calls, let running workers finish, then stop everything."""
        if self.state != "running":
            return
        self.begin_stop()
        with self._lock:
            idle = None
            if self._workers or self._backlog:
                idle = self._idle = self.runtime.new_waiter(
                    f"the workers of {self.replica_name} to finish"
                )
        if idle is not None:
            idle.wait()
        self.end_stop()

    def begin_stop(self) -> None:
        """First half of a graceful stop: entrypoints stop taking new calls."""
        if self.state == "running":
            self.state = "stopping"
            self._call_all("stop", self.entrypoints)

    def end_stop(self) -> None:
        """Second half, once no worker runs: stop dependencies and shared extensions."""
        if self.state != "stopping":
            return
        self._kill_managed_threads()
        self._call_all("stop", [*self.dependencies, *self.shared_extensions.values()])
        self.state = "stopped"
        self.tracer.emit(
            Event(kind="replica_stop", replica=self.replica_name, service=self.service_name)
        )

    def kill(self, cause: BaseException | None = None) -> None:
        """Die now: extensions killed, unacked messages requeued, workers stopped."""
        if self.state in ("dead", "stopped"):
            return
        self.state = "dead"
        if cause is not None:
            self.crash = (
                cause
                if isinstance(cause, ReplicaCrashed)
                else ReplicaCrashed(self.replica_name, cause)
            )
        detail = str(self.crash) if self.crash else "killed"
        self.tracer.emit(
            Event(
                kind="replica_killed",
                replica=self.replica_name,
                service=self.service_name,
                detail=detail,
            )
        )
        for extension in self.extensions:
            try:
                extension.kill()
            except Exception:
                log.exception("%s: %r failed to die cleanly", self.replica_name, extension)
        with self._lock:
            self._backlog.clear()
            tasks = list(self._workers.values())
            self._workers.clear()
            idle = self._idle
        for task in tasks:
            task.kill()
        self._kill_managed_threads()
        if idle is not None:
            idle.set_result(None)
        for callback in self.on_death:
            callback(self)

    @property
    def alive(self) -> bool:
        return self.state in ("running", "stopping")

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    def running_workers(self) -> list[tuple[WorkerContext, Task]]:
        """The workers running now, with their tasks (for diagnosis)."""
        with self._lock:
            return list(self._workers.items())

    # -- workers --------------------------------------------------------------

    def spawn_worker(
        self,
        entrypoint: Entrypoint,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any],
        context_data: Mapping[str, Any] | None = None,
        parent_call_id_stack: list[str] | None = None,
        handle_result: HandleResult | None = None,
        correlation_id: str | None = None,
    ) -> WorkerContext:
        """Run the entrypoint's method for one call, in a worker of its own.

        At most ``max_workers`` run at once; others wait their turn in order.
        Raises ContainerBeingKilled when the replica no longer takes work.

        As in nameko, an entrypoint of one's own may leave out all but the
        first three (``spawn_worker(self, args, kwargs, handle_result=...)``):
        the callers' call ids are then read from ``context_data``'s
        ``call_id_stack``, and without ``handle_result`` the result is dropped.
        """
        if self.off_loop:
            on_loop = self.off_loop.get(threading.get_ident())
            if on_loop is not None:
                return on_loop(  # type: ignore[no-any-return]
                    self.spawn_worker,
                    entrypoint,
                    args,
                    kwargs,
                    context_data,
                    parent_call_id_stack,
                    handle_result,
                    correlation_id,
                )
        if self.state != "running":
            raise ContainerBeingKilled(f"replica {self.replica_name} is {self.state}")
        if parent_call_id_stack is None:
            data = dict(context_data or {})
            stack = data.pop("call_id_stack", None)
            context_data = data
            parent_call_id_stack = list(stack) if isinstance(stack, (list, tuple)) else []
        elif context_data is None:
            context_data = {}
        if handle_result is None:
            handle_result = _pass_result
        worker_ctx = WorkerContext(
            self,
            None,  # the service instance is made in the worker, as its first step
            entrypoint,
            args,
            kwargs,
            context_data,
            parent_call_id_stack,
            correlation_id,
        )
        with self._lock:
            if len(self._workers) >= self.settings.max_workers:
                self._backlog.append((worker_ctx, handle_result))
            else:
                self._start_worker(worker_ctx, handle_result)
        return worker_ctx

    def spawn_managed_thread(self, fn: Callable[[], Any], identifier: str | None = None) -> Task:
        """Run ``fn()`` beside the workers (an entrypoint's polling loop, say), as
        nameko's ``spawn_managed_thread``: it is killed when the replica stops
        or dies. On the simulator it is a task of the scheduler, in virtual time,
        or a real thread that the replica abandons when it stops, for code that
        blocks on the real world (``shimeji.sim.bridge``); an error escaping it
        kills the replica, as in nameko."""
        name = f"{self.replica_name}:{identifier or getattr(fn, '__name__', 'thread')}"
        start_real = getattr(self.runtime, "start_real_thread", None)
        if start_real is not None:
            real = start_real(self, fn, name)
            if real is not None:
                self._managed.append(real)
                return real  # type: ignore[no-any-return]

        def run() -> None:
            try:
                fn()
            except Exception as exc:  # a kill unwinds as a BaseException, not caught
                if self.alive:
                    log.error(
                        "%s: managed thread %s failed",
                        self.replica_name,
                        name,
                        exc_info=(type(exc), exc, exc.__traceback__),
                    )
                    self.kill(exc)

        task = self.runtime.spawn(run, name=name)
        self._managed.append(task)
        return task

    def _kill_managed_threads(self) -> None:
        threads, self._managed = self._managed, []
        for task in threads:
            task.kill()

    def _start_worker(self, worker_ctx: WorkerContext, handle_result: HandleResult) -> None:
        # Called with the lock held: a worker thread that ends at once cannot
        # report itself done before it is registered.
        method = worker_ctx.entrypoint.method_name
        name = self._task_names.get(method)
        if name is None:
            name = self._task_names[method] = f"{self.replica_name}:{method}"
        self._workers[worker_ctx] = self.runtime.spawn(
            self._run_worker, worker_ctx, handle_result, name=name
        )

    def _run_worker(self, worker_ctx: WorkerContext, handle_result: HandleResult) -> None:
        # The worker's whole life, in one frame (it runs once per call).
        try:
            if self.on_worker_start:
                for hook in self.on_worker_start:
                    hook(worker_ctx)
            tracer = self.tracer
            if tracer.enabled:
                self.step(
                    "worker_start",
                    self.replica_name,
                    self.service_name,
                    worker_ctx.entrypoint.method_name,
                    worker_ctx.call_id,
                    worker_ctx.correlation_id,
                    "",
                    None,
                )
            result: Any = None
            exc_info: ExcInfo | None = None
            try:
                # The service's own code, like the method: its failure is the call's.
                worker_ctx.service = self.service_cls()
            except _CALL_ERRORS as exc:
                exc_info = (type(exc), exc, exc.__traceback__)
                self._log_worker_error(worker_ctx, exc)
            set_up = exc_info is None
            if set_up:
                stage = "get_dependency"
                provider: DependencyProvider | None = None
                try:
                    for provider in self.dependencies:
                        setattr(
                            worker_ctx.service,
                            provider.attr_name,
                            provider.get_dependency(worker_ctx),
                        )
                    stage = "worker_setup"
                    for provider in self.dependencies:
                        provider.worker_setup(worker_ctx)
                except Exception as exc:
                    self._hook_failed(worker_ctx, stage, provider, exc)
                    return
                method = getattr(worker_ctx.service, worker_ctx.entrypoint.method_name)
                kwargs = worker_ctx.kwargs
                try:
                    # (no keyword arguments: no dict made to pass none)
                    result = (
                        method(*worker_ctx.args, **kwargs) if kwargs else method(*worker_ctx.args)
                    )
                except _CALL_ERRORS as exc:
                    exc_info = (type(exc), exc, exc.__traceback__)
                    self._log_worker_error(worker_ctx, exc)
            if tracer.enabled:
                self.step(
                    "worker_end",
                    self.replica_name,
                    self.service_name,
                    worker_ctx.entrypoint.method_name,
                    worker_ctx.call_id,
                    worker_ctx.correlation_id,
                    "ok" if exc_info is None else describe(exc_info[1]),
                    None,
                )

            stage, provider = "handle_result", None
            try:
                result, exc_info = handle_result(worker_ctx, result, exc_info)
                if set_up:  # providers see only the workers they set up
                    stage = "worker_result"
                    for provider in self.dependencies:
                        provider.worker_result(worker_ctx, result, exc_info)
                stage, provider = "on_worker_result", None
                for result_hook in self.on_worker_result:
                    result_hook(worker_ctx, result, exc_info)
                if set_up:
                    stage = "worker_teardown"
                    for provider in self.dependencies:
                        provider.worker_teardown(worker_ctx)
            except Exception as exc:
                self._hook_failed(worker_ctx, stage, provider, exc)
            finally:
                exc_info = None  # no reference cycle through the traceback
            if self.on_worker_end:
                for hook in self.on_worker_end:
                    hook(worker_ctx)
        finally:
            self._worker_done(worker_ctx)

    def _log_worker_error(self, worker_ctx: WorkerContext, exc: BaseException) -> None:
        # nameko's lines and levels, the traceback with both (expected at WARNING,
        # the others at ERROR); the message and the traceback's messages escaped and
        # bounded, as they may quote what a client sent.
        if isinstance(exc, worker_ctx.entrypoint.expected_exceptions):
            log_error(
                log,
                exc,
                "(expected) error handling worker %s: %s",
                worker_ctx,
                escape(safe_str(exc)),
                level=logging.WARNING,
            )
        else:
            log_error(log, exc, "error handling worker %s: %s", worker_ctx, escape(safe_str(exc)))

    def _hook_failed(
        self,
        worker_ctx: WorkerContext,
        stage: str,
        provider: DependencyProvider | None,
        exc: Exception,
    ) -> None:
        where = (
            f"{stage} of {provider.attr_name!r} ({type(provider).__name__})" if provider else stage
        )
        log.error(
            "%s: %s failed during call %s; killing the replica",
            self.replica_name,
            where,
            worker_ctx.call_id,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        self.kill(ReplicaCrashed(self.replica_name, exc))

    def _worker_done(self, worker_ctx: WorkerContext) -> None:
        with self._lock:
            if self._workers.pop(worker_ctx, None) is None:
                return  # killed: the container already forgot it
            if self._backlog and self.state in ("running", "stopping"):
                self._start_worker(*self._backlog.popleft())
                return
            idle = self._idle if not self._workers and not self._backlog else None
        if idle is not None:
            idle.set_result(None)

    def __repr__(self) -> str:
        return f"<ServiceContainer {self.replica_name} ({self.state})>"
