"""SimCluster: a whole graph of services on the simulator, driven by a test.

    with SimCluster(seed=0) as cluster:
        cluster.add_service(CalculatorService, replicas=3)
        assert cluster.rpc.calculator.multiply(6, 7) == 42
        print(cluster.trace)

Every replica is a real ``ServiceContainer`` on the simulated bus, so
requests and replies are serialized, routed, load-balanced, acked and
redelivered as on RabbitMQ, in virtual time, from one seeded RNG.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from shimeji.core.config import FROM_CONFIG, Settings
from shimeji.core.container import ServiceContainer, get_service_name
from shimeji.core.events import Event
from shimeji.core.exceptions import (
    ConfigurationError,
    FaultPlanError,
    ReplicaCrashed,
    ShimejiError,
)
from shimeji.core.extensions import class_memo, iter_entrypoints
from shimeji.core.protocol import validate_service_name
from shimeji.core.pubsub import publish_event, subscriptions
from shimeji.core.registry import ServiceRegistry, check_service, settings_for
from shimeji.core.rpc import RpcClient, StandaloneProxy
from shimeji.core.tracing import Tracer, Tracers
from shimeji.core.web import check_routes
from shimeji.sim.bus import SimBus
from shimeji.sim.clock import DEFAULT_START, VirtualClock, VirtualTime
from shimeji.sim.connection import SimConnection
from shimeji.sim.entropy import SeededEntropy, UncontrolledEffectWarning
from shimeji.sim.faults import FaultPlan, PlanGraph, check_plan, plan_problems
from shimeji.sim.http import SimHttpClient
from shimeji.sim.injector import FaultInjector, FaultTarget
from shimeji.sim.replica import SimReplica
from shimeji.sim.scheduler import ROOT_WAIT_US, Scheduler, SimTimer, SimulationStalled, to_us
from shimeji.sim.stall import describe_stall
from shimeji.sim.trace import Trace

__all__ = [
    "STOP_HOOKS",
    "SimCluster",
    "current_cluster",
    "register_uri",
    "running_cluster",
    "running_clusters",
]

#: Called with each SimCluster as it stops. The pytest plugin (and
#: ``shimeji.sim.strategies``) add one that attaches the cluster's seed, fault
#: plan and trace to the report of a failing Hypothesis example.
STOP_HOOKS: list[Callable[[SimCluster], None]] = []


#: Running clusters by ``uri`` (``sim://cluster-N``), for standalone clients.
_RUNNING: weakref.WeakValueDictionary[str, SimCluster] = weakref.WeakValueDictionary()
_CLUSTER_NUMBERS = itertools.count(1)
#: Other names for a cluster, each resolved when used (a test's fixtures name
#: "the test's cluster", whichever cluster that is when a client starts).
_ALIASES: dict[str, Callable[[], SimCluster]] = {}


def register_uri(uri: str, resolve: Callable[[], SimCluster]) -> Callable[[], None]:
    """Make ``uri`` (``sim://...``) name the cluster ``resolve()`` gives when a
    standalone client uses it; returns the function that forgets it."""
    if not uri.startswith("sim://") or uri in _ALIASES or uri in _RUNNING:
        raise ConfigurationError(f"cannot register {uri!r}: not a sim:// uri, or taken")
    _ALIASES[uri] = resolve
    return lambda: _ALIASES.pop(uri, None) and None


def current_cluster() -> SimCluster | None:
    """The running cluster on virtual time (at most one runs at once), else None."""
    for cluster in reversed(list(_RUNNING.values())):
        if cluster.state == "running" and cluster._virtual_time is not None:
            return cluster
    return None


def running_clusters() -> list[SimCluster]:
    """Every running cluster, on virtual time or not, in the order they started."""
    return [cluster for cluster in list(_RUNNING.values()) if cluster.state == "running"]


def running_cluster(uri: str) -> SimCluster:
    """The running cluster an ``AMQP_URI`` of ``sim://...`` names."""
    uri = uri.strip()
    cluster = _RUNNING.get(uri)
    if cluster is None and uri in _ALIASES:
        found = _ALIASES[uri]()
        cluster = found if found.state == "running" else None
    if cluster is None:
        running = ", ".join(sorted(_RUNNING)) or "none"
        raise ConfigurationError(
            f"AMQP_URI {uri!r} names no running simulated cluster (running: {running}); "
            "use the uri of a started SimCluster (cluster.uri), e.g. from the rabbit_config "
            "fixture"
        )
    return cluster


#: Under this key of a class's ``class_memo``: what its ``check_service`` passes
#: depended on (see ``SimCluster._check_service``). A property test builds a
#: cluster per example and adds the same classes to each: a class checked
#: already, unchanged, under equal settings, is not built once more for the
#: check, which cost as much as a replica. (Its replicas' containers are built
#: as always: a class that broke since would fail there, or here, changed.)
_CHECKED = "shimeji.sim.checked"
_CHECKED_MAX = 8  # the checks remembered per class


class SimCluster:
    """A deterministic, in-memory cluster of services.

    ``seed`` drives every choice (ids, and the faults and delays given to
    it); ``config`` is a shimeji configuration mapping. ``latency`` is the
    virtual time each message takes from broker to consumer. With
    ``virtual_time`` (the default) service code reads the virtual clock via
    ``time.time()`` / ``datetime.now()`` and ``time.sleep()`` sleeps in
    virtual time, from ``start_time`` on; and its randomness (``random``,
    ``uuid.uuid1``/``uuid4``, ``os.urandom``, ``secrets``) is drawn from
    ``seed`` (``shimeji.sim.entropy``). Threads and real network connections
    started from the simulation are outside its control: each is reported
    once, as an ``UncontrolledEffectWarning``, and kept in ``uncontrolled``.
    ``trace=False`` records nothing.
    ``tracer`` is one more tracer that sees every event as the trace does
    (e.g. ``shimeji.otel.OpenTelemetryTracer``).

    ``faults`` is a ``FaultPlan`` (or a list of faults) armed at start; the
    services, methods, replicas and clients it names are checked once the test
    has set the cluster up (see ``add_faults``).
    ``schedule`` is a sequence of choices deciding which of several events due
    at the same instant runs first (each choice is taken modulo the number of
    candidates; when they run out, the first scheduled runs first): property
    tests draw it to explore interleavings.
    ``max_wait`` is the longest the test waits for one thing (a call's reply,
    workers to finish), in virtual seconds (None: no limit): a wait that
    nothing can bring stalls at once (``SimulationStalled``), and one that
    other events keep going for ever (a timer ticking) stalls once it has
    waited that long, rather than run for ever.
    """

    def __init__(
        self,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
        *,
        latency: float = 0.001,
        start_time: Any = DEFAULT_START,
        virtual_time: bool = True,
        trace: bool = True,
        extra_config_keys: Iterable[str] = (),
        faults: Any = None,
        schedule: Sequence[int] | None = None,
        tracer: Tracer | None = None,
        max_wait: float | None = ROOT_WAIT_US / 1_000_000,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigurationError(f"seed must be an integer, got {seed!r}")
        if (
            isinstance(latency, bool)
            or not isinstance(latency, (int, float))
            or not math.isfinite(latency)
            or latency < 0
        ):
            raise ConfigurationError(f"latency must be seconds >= 0, got {latency!r}")

        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = VirtualClock(start_time)
        self.scheduler = Scheduler(self.clock, self.rng)
        self.max_wait = max_wait
        self.scheduler.stall_reporter = lambda: describe_stall(
            [r.container for r in self.replicas() if r.container is not None],
            self._clients,
            self.bus,
            self.clock,
            self.settings,
        )
        self.trace = Trace(self.clock, enabled=trace)
        # What containers, clients and the bus report to: the trace, and the extra tracer.
        self.tracer: Tracer = self.trace if tracer is None else Tracers(self.trace, tracer)
        self.bus = SimBus(self.scheduler, self.tracer, latency)
        self._raw_config, self.settings = settings_for(config)
        self._extra_config_keys = set(extra_config_keys)
        #: what service code did that the seed cannot replay (threads, sockets)
        self.uncontrolled: list[str] = []
        self.scheduler.report_uncontrolled = self._uncontrolled
        self._virtual_time = (
            VirtualTime(
                self.clock,
                self._sleep,
                SeededEntropy(
                    seed, lambda: self.clock.start_us + self.clock.now_us, self._uncontrolled
                ),
            )
            if virtual_time
            else None
        )
        self.faults = FaultInjector(
            self.scheduler,
            self.rng,
            self.tracer,
            FaultTarget(
                crash=self._crash,
                partition=self._planned(self.partition),
                heal=self._planned(self.heal),
                outage=self.bus.begin_outage,
            ),
        )
        self._pending_faults = FaultPlan(faults) if faults is not None else FaultPlan()
        # Plans armed before the simulation first ran, whose names are checked then.
        self._unchecked: list[tuple[FaultPlan, list[SimTimer]]] = []
        self._has_run = False
        #: Given the cluster's PlanGraph when the simulation first runs (once the
        #: test has added its services), returns a fault plan to arm then:
        #: exploration draws its plans this way (``shimeji.testing.explore``).
        self.plan_at_first_run: Callable[[PlanGraph], FaultPlan] | None = None
        self.scheduler.before_first_run = self._first_run
        self.schedule = tuple(schedule) if schedule is not None else None
        if self.schedule is not None:
            self.scheduler.chooser = _Choices(self.schedule)
        self._registry: ServiceRegistry[SimReplica] = ServiceRegistry(
            "cluster", lambda cls, name, index: SimReplica(self, cls, name, index)
        )
        self._clients: list[RpcClient] = []
        self._uri: str | None = None
        self._dispatcher: SimConnection | None = None
        self._http: SimHttpClient | None = None
        self._rpc: StandaloneProxy | None = None
        self.crashes: list[ReplicaCrashed] = []
        self.state = "created"

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> SimCluster:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop(raise_crashes=exc_type is None)

    @property
    def max_wait(self) -> float | None:
        """The longest the test waits for one thing, in virtual seconds (None: no
        limit); settable at any time (``sim_cluster.max_wait = None``)."""
        limit = self.scheduler.root_wait_us
        return None if limit is None else limit / 1_000_000

    @max_wait.setter
    def max_wait(self, value: float | None) -> None:
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigurationError(
                f"max_wait must be virtual seconds > 0 or None (no limit), got {value!r}"
            )
        self.scheduler.root_wait_us = None if value is None else round(value * 1_000_000)

    @property
    def real_managed_threads(self) -> bool | None:
        """Whether ``spawn_managed_thread`` runs code from outside shimeji on a real
        OS thread, outside virtual time (``shimeji.sim.bridge``): True, False, or
        None (the default: under the nameko layer only, where nameko code may
        block on real I/O in one). Set it before the replicas start."""
        return self.scheduler.real_managed_threads

    @real_managed_threads.setter
    def real_managed_threads(self, value: bool | None) -> None:
        if value is not None and not isinstance(value, bool):
            raise ConfigurationError(
                f"real_managed_threads is True, False or None (the default), got {value!r}"
            )
        self.scheduler.real_managed_threads = value

    @property
    def uri(self) -> str:
        """``sim://cluster-N``: as ``AMQP_URI``, it points shimeji's standalone
        proxies and dispatchers (``ClusterRpcProxy(config)``, ``event_dispatcher``)
        at this cluster while it runs, as nameko's tests point theirs at a broker."""
        if self._uri is None:
            self._uri = f"sim://cluster-{next(_CLUSTER_NUMBERS)}"
        return self._uri

    def start(self) -> None:
        """Start virtual time and every replica added so far."""
        if self.state != "created":
            raise RuntimeError(f"this SimCluster is already {self.state}; create a new one")
        self._registry.check_config_keys(self._raw_config, self._extra_config_keys)
        self.scheduler.thread_id = threading.get_ident()  # where the simulation runs
        if self._virtual_time is not None:
            self._virtual_time.start()
        self.state = "running"
        _RUNNING[self.uri] = self
        try:
            for replica in self._registry.replicas():
                replica.start()
            if self._pending_faults:
                self.add_faults(self._pending_faults)
        except BaseException:
            self.stop(raise_crashes=False)
            raise

    def stop(self, raise_crashes: bool = True) -> None:
        """Stop gracefully: no new calls are taken, running workers finish (or are
        killed if they can never finish), virtual time is released.

        Raises ReplicaCrashed if a replica died of an extension error during the
        run (clear ``cluster.crashes`` first if that was expected).
        """
        if self.state != "running":
            return
        self.state = "stopping"
        _RUNNING.pop(self.uri, None)
        if self.scheduler.outside is not None:
            # Real threads are not waited for as the cluster stops: what they
            # post from now on is refused (shimeji.sim.bridge).
            self.scheduler.outside.close()
        # A plan whose names were never checked (nothing ran) is checked at the end.
        first_run, self.scheduler.before_first_run = self.scheduler.before_first_run, None
        try:
            containers = [r.container for r in self.replicas() if r.container and r.alive]
            for container in containers:
                container.begin_stop()
            # Workers that can never finish (the loop stalls) are killed below.
            with contextlib.suppress(SimulationStalled):
                self.scheduler.run_root(
                    lambda: all(c.worker_count == 0 for c in containers if c.alive),
                    "the running workers to finish, as the cluster stops",
                )
            for container in containers:
                if container.alive and container.worker_count:
                    container.kill()
                else:
                    container.end_stop()
            for client in self._clients:
                client.close(delete_queue=True)
        finally:
            try:
                if self._virtual_time is not None:
                    self._virtual_time.stop()
            finally:
                self.scheduler.close()
                self.state = "stopped"
                for hook in STOP_HOOKS:
                    hook(self)
        if raise_crashes:
            if first_run is not None:
                first_run()
            self._raise_crashes()

    def _uncontrolled(self, kind: str, detail: str) -> None:
        """Told by the seeded entropy of a thread or a socket the simulation started."""
        if detail in self.uncontrolled:
            return
        self.uncontrolled.append(detail)
        warnings.warn(
            UncontrolledEffectWarning(
                f"while SimCluster(seed={self.seed}) ran, {detail}; a run with this seed may "
                "not replay exactly (see docs/fidelity.md, 'What the simulator cannot "
                "control')"
            ),
            stacklevel=4,
        )

    def _raise_crashes(self) -> None:
        crashes, self.crashes = self.crashes, []
        if crashes:
            raise crashes[0]
        if self.scheduler.errors:
            errors, self.scheduler.errors = self.scheduler.errors, []
            raise ShimejiError(
                f"simulated task(s) {', '.join(errors)} crashed; see the log for tracebacks"
            )

    def container_died(self, container: ServiceContainer) -> None:
        """Told by each replica's container when it dies: its crash, if it was
        one, is raised by ``stop()``."""
        if container.crash is not None:
            self.crashes.append(container.crash)

    def _require_running(self, what: str) -> None:
        if self.state != "running":
            raise RuntimeError(
                f"cannot {what}: the SimCluster is {self.state}. Use `with SimCluster() as "
                "cluster:` or call cluster.start() first"
            )

    # -- services --------------------------------------------------------------------

    def add_service(
        self,
        service_cls: type,
        replicas: int = 1,
        *,
        start: bool = True,
        entrypoints_required: bool = True,
    ) -> list[SimReplica]:
        """Add ``replicas`` replicas of a service (started at once if the cluster runs,
        unless ``start`` is False: then ``replica.start()`` starts each).

        Adding the same class again adds more replicas to it. A class without
        entrypoints is refused (a forgotten ``@rpc``, most likely) unless
        ``entrypoints_required`` is False, as for nameko's containers.
        """
        added = self._registry.add(
            service_cls,
            replicas,
            lambda cls: self._check_service(cls, entrypoints_required=entrypoints_required),
        )
        self.trace.redactor.add(service_cls)
        if self.state == "running" and start:
            for replica in added:
                replica.start()
        return added

    def _check_service(self, service_cls: type, *, entrypoints_required: bool = True) -> None:
        services = {r.service_name: r.service_cls for r in self.replicas()}
        # What the checks depend on: the class as it is now (its memo, which a
        # change to the class empties), the settings, the rule on entrypoints,
        # the kind of tracer its container would report to, and the services
        # already here (whose routes it must not claim), held weakly: what is
        # remembered of one class must not keep another alive.
        checked = (
            self.settings,
            entrypoints_required,
            type(self.tracer),
            tuple((name, weakref.ref(cls)) for name, cls in services.items()),
        )
        passed = class_memo(service_cls).setdefault(_CHECKED, [])
        if checked in passed:
            return
        check_service(
            service_cls, self.settings, self.tracer, entrypoints_required=entrypoints_required
        )
        # Its HTTP routes must not be claimed by another service already here.
        check_routes(services.items(), get_service_name(service_cls), service_cls)
        passed[:] = [*passed[-(_CHECKED_MAX - 1) :], checked]

    def replicas(self, service: str | None = None) -> list[SimReplica]:
        """Every replica (of one service), in the order they were added."""
        return self._registry.replicas(service)

    def replica(self, name: str) -> SimReplica:
        """The replica named ``name`` (e.g. ``"calculator-2"``)."""
        return self._registry.replica(name)

    @property
    def services(self) -> list[str]:
        return self._registry.services

    # -- faults ----------------------------------------------------------------------

    @property
    def fault_plan(self) -> FaultPlan:
        """Every fault armed so far (from ``faults=`` and ``add_faults``)."""
        return self.faults.plan if self.state != "created" else self._pending_faults

    def add_faults(self, plan: Any) -> None:
        """Arm more faults (a FaultPlan, a fault, or a list of faults).

        Every service, method, replica and client the plan names must exist, or
        the plan could never fire: ``FaultPlanError`` says which name is wrong
        (with a did-you-mean). Once the simulation has run (a call, ``advance``,
        ``run_until_idle``), a plan is checked here, before it is armed. A plan
        given before that (``SimCluster(faults=...)``, the pytest option
        ``--shimeji-faults``, ``add_faults`` before the first call) is checked
        when the simulation first runs, against the services, replicas and
        clients added by then: add the services a plan names before the first
        call.
        """
        plan = FaultPlan(plan)
        if self.state == "created":
            self._pending_faults = self._pending_faults + plan
            return
        self._require_running("add faults")
        if self._has_run:
            check_plan(plan, self.fault_graph())
            self._arm(plan)
        else:
            self._unchecked.append((plan, self._arm(plan)))

    def _arm(self, plan: FaultPlan) -> list[SimTimer]:
        timers = self.faults.add(plan)
        if self.faults.has_message_faults:
            self.bus.on_publish = self.faults.on_publish
        if self.faults.has_call_faults:
            for replica in self.replicas():
                hooks = replica.container.on_worker_start if replica.container else None
                if hooks is not None and self.faults.worker_started not in hooks:
                    hooks.append(self.faults.worker_started)
        return timers

    def _first_run(self) -> None:
        """The simulation runs for the first time: check the names of the plans
        armed so far; disarm them all if one names what the cluster lacks."""
        self._has_run = True
        unchecked, self._unchecked = self._unchecked, []
        if self.plan_at_first_run is not None:
            plan = FaultPlan(self.plan_at_first_run(self.fault_graph()))
            if plan:
                check_plan(plan, self.fault_graph())
                self._arm(plan)
        if not unchecked:
            return
        graph = self.fault_graph()
        problems = [p for plan, _ in unchecked for p in plan_problems(plan, graph)]
        if problems:
            for plan, timers in unchecked:
                self.faults.disarm(plan, timers)
            raise FaultPlanError(problems)

    def fault_graph(self) -> PlanGraph:
        """What a fault plan may name in this cluster now: its services and their
        methods, its replicas and its clients."""
        services: dict[str, tuple[str, ...]] = {}
        for replica in self.replicas():
            if replica.service_name not in services:
                services[replica.service_name] = tuple(
                    name for name, _ in iter_entrypoints(replica.service_cls)
                )
        return PlanGraph(
            services,
            tuple(replica.name for replica in self.replicas()),
            tuple(client.label for client in self._clients),
            subscriptions(dict.fromkeys(r.service_cls for r in self.replicas())),
        )

    def kill(self, replica: str | SimReplica) -> None:
        """Kill a replica now, as a crash would: its unacked requests are redelivered."""
        self._require_running("kill a replica")
        self._crash(self._replica(replica).name, "killed by the test", None)

    def restart(self, replica: str | SimReplica) -> SimReplica:
        """Start a killed replica again (a fresh container under the same name)."""
        self._require_running("restart a replica")
        target = self._replica(replica)
        if target.alive or target.waiting:
            raise RuntimeError(f"replica {target.name} is already running")
        self.tracer.emit(
            Event(
                kind="fault_restart",
                replica=target.name,
                service=target.service_name,
                detail="replica restarted",
            )
        )
        target.start()
        return target

    def partition(self, name: str | SimReplica) -> None:
        """Cut a replica or a client (``"client"``) off the broker until ``heal``."""
        self._require_running("cut a connection")
        label = self._label(name)
        self.tracer.emit(
            Event(kind="fault_partition", replica=label, detail="cut off from the broker")
        )
        self.bus.disconnect(label)

    def heal(self, name: str | SimReplica) -> None:
        """Reconnect a partitioned replica or client."""
        self._require_running("restore a connection")
        label = self._label(name)
        self.tracer.emit(
            Event(kind="fault_heal", replica=label, detail="reconnected to the broker")
        )
        self.bus.reconnect(label)
        for replica in self.replicas():
            if replica.name == label:
                replica.start_when_back()

    def broker_outage(self, seconds: float, restart: bool = False) -> None:
        """Take the broker down for ``seconds`` of virtual time, from now; with
        ``restart``, it restarts (see ``BrokerOutage``)."""
        self._require_running("stop the broker")
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            raise ConfigurationError(f"broker_outage() takes seconds > 0, got {seconds!r}")
        self.bus.begin_outage(seconds, restart)

    def _labels(self) -> list[str]:
        labels = [r.name for r in self.replicas()] + [c.label for c in self._clients]
        return labels + (["dispatcher"] if self._dispatcher is not None else [])

    def _label(self, name: str | SimReplica) -> str:
        label = name.name if isinstance(name, SimReplica) else name
        if label not in self._labels():
            raise ConfigurationError(
                f"no replica or client named {label!r}; replicas and clients: {self._labels()}"
            )
        return label

    def _replica(self, replica: str | SimReplica) -> SimReplica:
        if isinstance(replica, SimReplica):
            return replica
        try:
            return self.replica(replica)
        except KeyError:
            raise ConfigurationError(
                f"no replica named {replica!r}; replicas: {[r.name for r in self.replicas()]}"
            ) from None

    def _crash(self, name: str, reason: str, restart_after: float | None) -> None:
        replica = self._replica(name)
        if not replica.alive:
            self.tracer.emit(
                Event(
                    kind="fault_crash",
                    replica=name,
                    service=replica.service_name,
                    detail=f"{reason} (already down)",
                )
            )
            return
        self.tracer.emit(
            Event(kind="fault_crash", replica=name, service=replica.service_name, detail=reason)
        )
        assert replica.container is not None
        replica.container.kill()
        if restart_after is not None:
            self.scheduler.call_later(restart_after, self._restart_later, name)

    def _planned(self, action: Callable[[str], None]) -> Callable[[str], None]:
        """A fault plan's partition or heal: done while the cluster runs, skipped
        once it is stopping (a timer may fall due while it lets workers finish),
        as a planned restart is."""

        def planned(name: str) -> None:
            if self.state == "running":
                action(name)

        return planned

    def _restart_later(self, name: str) -> None:
        replica = self._replica(name)
        if self.state == "running" and not replica.alive and not replica.waiting:
            self.restart(name)

    # -- clients ------------------------------------------------------------------------

    def _new_client(self, settings: Settings | None = None) -> RpcClient:
        label = "client" if not self._clients else f"client-{len(self._clients) + 1}"
        client = RpcClient(
            settings or self.settings,
            transport=self.bus.connect(label),
            runtime=self.scheduler,
            tracer=self.tracer,
            owner="standalone_rpc_proxy",
            label=label,
        )
        self._clients.append(client)
        return client

    @property
    def rpc(self) -> StandaloneProxy:
        """A client with no context data: ``cluster.rpc.service.method(...)``."""
        self._require_running("make calls")
        if self._rpc is None:
            self._rpc = StandaloneProxy(self._new_client())
        return self._rpc

    def rpc_proxy(
        self,
        context_data: Mapping[str, Any] | None = None,
        timeout: Any = FROM_CONFIG,
        retry_policy: Any = None,
        *,
        settings: Settings | None = None,
    ) -> StandaloneProxy:
        """A new client (its own reply queue) sending ``context_data`` with every call.

        ``timeout`` (seconds, or None for none) overrides RPC_TIMEOUT; ``settings``
        (the cluster's unless given) are the client's own, its serializer say.
        """
        self._require_running("make calls")
        return StandaloneProxy(
            self._new_client(settings),
            context_data=context_data,
            timeout=timeout,
            retry_policy=retry_policy,
        )

    # -- events ------------------------------------------------------------------------

    @property
    def http(self) -> SimHttpClient:
        """The HTTP client: ``cluster.http.get("/orders/1", headers=...)``,
        ``.post(url, json=...)``, returning status, headers, text and
        ``json()``; requests travel in virtual time (``shimeji.sim.http``)."""
        self._require_running("send HTTP requests")
        if self._http is None:
            self._http = SimHttpClient(self)
        return self._http

    def dispatch(
        self,
        source_service: str,
        event_type: str,
        event_data: Any,
        context_data: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        """Dispatch an event as ``source_service`` would, from outside any service
        (the connection labelled ``"dispatcher"``), with ``context_data``;
        ``settings`` (the cluster's unless given) are the dispatcher's own."""
        self._require_running("dispatch events")
        problem = validate_service_name(source_service)
        if problem:
            raise ConfigurationError(f"dispatch: {problem}")
        if context_data is not None and not isinstance(context_data, Mapping):
            raise ConfigurationError(f"context_data must be a mapping, got {context_data!r}")
        if self._dispatcher is None:
            self._dispatcher = self.bus.connect("dispatcher")
        if not isinstance(event_type, str) or not event_type:
            raise ConfigurationError(
                f"dispatch: an event type is a non-empty string, not {event_type!r}"
            )
        publish_event(
            transport=self._dispatcher,
            runtime=self.scheduler,
            tracer=self.tracer,
            settings=settings or self.settings,
            label="dispatcher",
            source_service=source_service,
            event_type=event_type,
            event_data=event_data,
            context_data=dict(context_data or {}),
            call_id_stack=[],
        )

    # -- time --------------------------------------------------------------------------

    def now(self) -> float:
        """Virtual time, in epoch seconds."""
        return self.clock.time()

    def elapsed(self) -> float:
        """Virtual seconds since the simulation started."""
        return self.clock.elapsed()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, running everything that falls due."""
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ConfigurationError(f"advance() takes a number of seconds >= 0, got {seconds!r}")
        self._require_root("advance()")
        self.scheduler.run_root_until(self.clock.now_us + to_us(seconds))

    def run_until_idle(self) -> None:
        """Run until no event is left (workers blocked forever stay blocked)."""
        self._require_root("run_until_idle()")
        self.scheduler.run()

    def _require_root(self, what: str) -> None:
        if self.scheduler.running or self.scheduler.current_task() is not None:
            raise RuntimeError(f"{what} is for the test itself, not for service code")

    def _sleep(self, seconds: float) -> bool:
        """time.sleep() on the cluster's thread: virtual in a worker or in the test;
        False from a loop callback, where VirtualTime raises."""
        if self.scheduler.current_task() is not None or not self.scheduler.running:
            self.scheduler.sleep(seconds)
            return True
        return False

    def __repr__(self) -> str:
        return (
            f"<SimCluster seed={self.seed} {self.state} t={self.elapsed():.6f}s "
            f"services={self.services}>"
        )


class _Choices:
    """Feeds a fixed sequence of choices to the scheduler (see ``schedule``)."""

    def __init__(self, choices: tuple[int, ...]) -> None:
        self.choices = choices
        self.used = 0

    def __call__(self, candidates: int) -> int:
        if self.used >= len(self.choices):
            return 0
        choice = self.choices[self.used]
        self.used += 1
        return choice % candidates
