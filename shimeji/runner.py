"""Run services on RabbitMQ: ``ServiceRunner``.

    runner = ServiceRunner(load_config("config.yaml"))
    runner.add_service(CalculatorService)
    runner.start()
    try:
        runner.wait()          # until stop() / kill(), or a replica crashes
    finally:
        runner.stop()

Each replica is a ``ServiceContainer`` (the same one the simulator runs) on
its own ``AmqpTransport`` (a consumer connection and its thread, and a
publisher connection) and its own ``ThreadRuntime`` (at most ``max_workers``
workers at once, the broker's prefetch being ``PREFETCH_COUNT``, by default
``max_workers`` too).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from shimeji.amqp_adapter import AmqpTransport, ThreadRuntime
from shimeji.core.container import ServiceContainer, get_service_name
from shimeji.core.exceptions import ReplicaCrashed, ShimejiError
from shimeji.core.registry import RoundRobin, ServiceRegistry, check_service, settings_for
from shimeji.core.tracing import NullTracer, Tracer
from shimeji.core.transport import BrokerUnavailable

if TYPE_CHECKING:
    from shimeji.core.web import WebServer
    from shimeji.http_server import HttpServer

__all__ = ["LIVENESS_WINDOW", "Health", "RunnerReplica", "ServiceRunner"]

log = logging.getLogger("shimeji.runner")


def _http_in_use() -> bool:
    """Whether any service may have HTTP routes: only if ``shimeji.core.web``
    (where ``@http`` lives) was imported. A process without routes then never
    loads werkzeug or cheroot (a few MB of memory per replica process)."""
    return "shimeji.core.web" in sys.modules


#: A replica whose consumer loop has not gone round for this long (seconds) is
#: not live: its loop wakes every few seconds at most, even while reconnecting.
LIVENESS_WINDOW = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    """What ``ServiceRunner.health()`` reports.

    ``live``: the runner and every replica's consumer loop are working (a
    supervisor restarts the process otherwise). ``ready``: the runner has
    started everything (replicas and HTTP routes) and every replica consumes
    its queue now (not while starting, connecting or reconnecting).
    ``replicas`` maps each replica to its status (``RunnerReplica.status``).
    """

    live: bool
    ready: bool
    state: str
    replicas: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "ready": self.ready,
            "state": self.state,
            "replicas": dict(self.replicas),
        }


class RunnerReplica:
    """One running copy of a service (``calculator-1``): its container, transport and
    runtime."""

    def __init__(self, runner: ServiceRunner, service_cls: type, service_name: str, index: int):
        self.runner = runner
        self.service_cls = service_cls
        self.service_name = service_name
        self.index = index
        self.name = f"{service_name}-{index}"
        self.container: ServiceContainer | None = None
        self.transport: AmqpTransport | None = None
        self.runtime: ThreadRuntime | None = None
        self.started = False  # its container started: it consumes, or tries to

    @property
    def alive(self) -> bool:
        return self.container is not None and self.container.alive

    def start(self) -> None:
        runner = self.runner
        settings = runner.settings
        transport = AmqpTransport(settings, tracer=runner.tracer, name=self.name)
        runtime = ThreadRuntime(settings.max_workers + 2, name=self.name)
        self.transport, self.runtime = transport, runtime
        try:
            transport.connect()
            container = ServiceContainer(
                self.service_cls,
                settings,
                transport=transport,
                runtime=runtime,
                tracer=runner.tracer,
                replica_name=self.name,
            )
            container.on_death.append(runner._container_died)
            self.container = container
            transport.on_failure.append(partial(runner._replica_failed, self))
            container.start()
            self.started = True
        except BaseException:
            self.release()
            raise

    def status(self) -> str:
        """``consuming``, ``reconnecting``, ``failed: <why>``, ``starting`` or ``stopped``."""
        container, transport = self.container, self.transport
        if transport is not None and transport.failure is not None:
            return f"failed: {transport.failure}"
        if container is not None and not container.alive:
            return "stopped"
        if not self.started or transport is None:
            return "starting" if self.runner.state == "running" else "stopped"
        return "consuming" if transport.consuming else "reconnecting"

    def live(self) -> bool:
        """Whether the replica's threads go round: its consumer loop beat lately."""
        transport = self.transport
        if transport is None:
            return True  # not started yet: nothing can be stuck
        if transport.failure is not None:
            return False
        since = transport.seconds_since_beat()
        return since is None or since < LIVENESS_WINDOW

    def kill(self) -> None:
        """Die at once: unacked requests go back to the queue for other replicas."""
        if self.container is not None:
            self.container.kill()
        self.release()

    def release(self) -> None:
        """Close the replica's connections and threads."""
        if self.transport is not None:
            self.transport.close()
        if self.runtime is not None:
            self.runtime.close()

    def __repr__(self) -> str:
        state = self.container.state if self.container else "not started"
        return f"<RunnerReplica {self.name} ({state})>"


class ServiceRunner:
    """Runs service classes on RabbitMQ, as configured by ``config``.

    ``config`` is a configuration mapping (``shimeji.config.load_config``
    reads one from YAML). Keys of your application are declared by your
    providers' ``config_keys`` or listed in ``extra_config_keys``.
    ``tracer`` receives every trace event (``LoggingTracer`` logs them).
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        extra_config_keys: Iterable[str] = (),
        tracer: Tracer | None = None,
    ) -> None:
        self._raw_config, self.settings = settings_for(config)
        self._extra_config_keys = set(extra_config_keys)
        self.config = self.settings.config
        self.tracer: Tracer = tracer if tracer is not None else NullTracer()
        self._registry: ServiceRegistry[RunnerReplica] = ServiceRegistry(
            "runner", lambda cls, name, index: RunnerReplica(self, cls, name, index)
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.crashes: list[ReplicaCrashed] = []
        self.state = "created"
        # Replicas or routes being started: not ready until every one is in place
        # (readiness must not be reported before the HTTP routes are served).
        self._starting = 0
        self.http: HttpServer | None = None  # serving the HTTP routes, if any service has one
        self._web_turns = RoundRobin()

    # -- services ------------------------------------------------------------------------

    def add_service(self, service_cls: type, replicas: int = 1) -> list[RunnerReplica]:
        """Add ``replicas`` replicas of a service (started at once if the runner runs).

        Adding the same class again adds more replicas of it.
        """
        added = self._registry.add(service_cls, replicas, self._check_service)
        if self.state == "running":
            self._starting += 1
            try:
                for replica in added:
                    replica.start()
                self._serve_http()
            finally:
                self._starting -= 1
        return added

    def _check_service(self, service_cls: type) -> None:
        check_service(service_cls, self.settings, self.tracer)
        # Its HTTP routes must not be claimed by another service already here.
        if not _http_in_use():
            return
        from shimeji.core.web import check_routes

        services = {r.service_name: r.service_cls for r in self.replicas()}
        check_routes(services.items(), get_service_name(service_cls), service_cls)

    def replicas(self, service: str | None = None) -> list[RunnerReplica]:
        """Every replica (of one service), in the order they were added."""
        return self._registry.replicas(service)

    def replica(self, name: str) -> RunnerReplica:
        """The replica named ``name`` (e.g. ``"calculator-2"``)."""
        return self._registry.replica(name)

    @property
    def services(self) -> list[str]:
        return self._registry.services

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ServiceRunner:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Connect and start every replica added so far.

        Raises ``BrokerUnavailable`` when the broker cannot be reached (after the
        retry policy's attempts) and ``ConfigurationError`` for a bad configuration.
        """
        if self.state != "created":
            raise RuntimeError(f"this ServiceRunner is already {self.state}; create a new one")
        self._registry.check_config_keys(self._raw_config, self._extra_config_keys)
        self.state = "running"
        self._starting += 1
        try:
            for replica in self.replicas():
                replica.start()
            self._serve_http()
        except BaseException:
            self.kill()
            raise
        finally:
            self._starting -= 1

    # -- HTTP ---------------------------------------------------------------------------------

    @property
    def web_address(self) -> tuple[str, int] | None:
        """Where the HTTP routes are served (the port bound when it was 0), or None."""
        return self.http.address if self.http is not None else None

    def _serve_http(self) -> None:
        if not _http_in_use():
            return
        from shimeji.http_server import HttpServer

        services = [(name, self.replicas(name)[0].service_cls) for name in self.services]
        if self.http is None:
            server = HttpServer(self.settings, services, self._pick_web_server)
            if not server.has_routes:
                return
            server.start()
            self.http = server
        else:
            for name, service_cls in services:
                self.http.add_service(name, service_cls)

    def _pick_web_server(self, service: str) -> WebServer | None:
        running = [
            replica.container
            for replica in self.replicas(service)
            if replica.container is not None and replica.container.state == "running"
        ]
        container = self._web_turns.pick(service, running)
        if container is None:
            return None
        from shimeji.core.web import web_servers

        servers = web_servers([container])
        return servers[0] if servers else None

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully: take no new calls, let running workers finish and ack
        (killing those still running after ``timeout`` seconds), disconnect."""
        if self.state != "running":
            return
        self.state = "stopping"
        if self.http is not None:
            # No new requests; those in hand finish (their workers still run).
            self.http.stop()
        replicas = [r for r in self.replicas() if r.alive]
        for replica in replicas:
            assert replica.container is not None
            replica.container.begin_stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        for replica in replicas:
            container = replica.container
            assert container is not None
            while container.alive and container.worker_count:
                if deadline is not None and time.monotonic() >= deadline:
                    log.warning("%s: workers still running; killing the replica", replica.name)
                    container.kill()
                    break
                time.sleep(0.01)
            try:
                container.end_stop()
            except ShimejiError as exc:  # the broker is out of reach: nothing left to tidy
                log.warning(
                    "%s: stopped, but could not tidy up on the broker: %s", replica.name, exc
                )
        for replica in self.replicas():
            replica.release()
        self._finish("stopped")

    def kill(self) -> None:
        """Stop at once: running calls are abandoned, their requests go back to the queue."""
        if self.state in ("stopped", "killed"):
            return
        self.state = "killing"
        if self.http is not None:
            threading.Thread(target=self.http.stop, name="shimeji-http-stop", daemon=True).start()
        for replica in self.replicas():
            if replica.container is not None:
                replica.container.kill()
            replica.release()
        self._finish("killed")

    def _finish(self, state: str) -> None:
        with self._changed:
            self.state = state
            self._changed.notify_all()

    def _replica_failed(self, replica: RunnerReplica, reason: str) -> None:
        """A replica stopped consuming for good (its transport says why)."""
        with self._changed:
            self.crashes.append(ReplicaCrashed(replica.name, BrokerUnavailable(reason)))
            self._changed.notify_all()

    def health(self) -> Health:
        """Liveness and readiness, for a process supervisor or a Kubernetes probe."""
        statuses = {replica.name: replica.status() for replica in self.replicas()}
        live = self.state in ("created", "running") and not self.crashes
        live = live and all(replica.live() for replica in self.replicas())
        ready = (
            live
            and self.state == "running"
            and not self._starting
            and all(status == "consuming" for status in statuses.values())
        )
        return Health(live=live, ready=ready, state=self.state, replicas=statuses)

    def _container_died(self, container: ServiceContainer) -> None:
        with self._changed:
            if container.crash is not None:
                self.crashes.append(container.crash)
            self._changed.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the runner is stopped or killed, or a replica crashes.

        Raises the first ``ReplicaCrashed``; returns False if ``timeout`` passed
        first, True otherwise.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self.state in ("created", "running", "stopping", "killing") and not (
                self.crashes
            ):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                # Wake now and then, so that Ctrl-C reaches the waiting thread.
                self._changed.wait(0.5 if remaining is None else min(remaining, 0.5))
            if self.crashes:
                raise self.crashes[0]
        return True

    def __repr__(self) -> str:
        return f"<ServiceRunner {self.state} services={self.services}>"
