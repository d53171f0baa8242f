"""Fault plans: what goes wrong in a simulation, written down as plain data.

    plan = FaultPlan([
        Drop(direction="reply", service="payment_service", count=1),
        Delay(seconds=2.0, service="inventory_service"),
        CrashDuring(service="email_service", method="send_confirmation"),
        Partition("order_service-1", at=0.5, duration=3.0),
        BrokerOutage(at=10.0, duration=0.4),
    ])
    with SimCluster(seed=7, faults=plan) as cluster:
        ...

Message faults (``Drop``, ``Delay``, ``Duplicate``, ``Corrupt``) act on the messages that
match them: by direction (``"request"``, ``"reply"`` or ``"any"``), service,
method and an optional predicate; the first ``skip`` matches pass, then at
most ``count`` are hit (None: all), each with ``probability`` drawn from the
cluster's seeded RNG (None: always). Time faults (``Crash``, ``Partition``,
``BrokerOutage``) happen at ``at`` seconds of virtual time since the cluster
started (at once if that is past); ``CrashDuring`` kills the replica running
the ``nth`` matching call, after its worker started and before it replies.

``repr(plan)`` is Python that rebuilds the plan (``FaultPlan.from_python``
reads it back), so a failing run can be pasted into a test or a command line.
Every fault shows in the trace as an event whose kind starts with ``fault``.
"""

from __future__ import annotations

import ast
import importlib
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from shimeji.core.events import Event
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.transport import Message
from shimeji.sim.scheduler import GreenletExit, to_us

if TYPE_CHECKING:
    from shimeji.sim.cluster import SimCluster

__all__ = [
    "BrokerOutage",
    "Corrupt",
    "Crash",
    "CrashDuring",
    "Delay",
    "Drop",
    "Duplicate",
    "Fault",
    "FaultInjector",
    "FaultPlan",
    "Partition",
]

DIRECTIONS = ("request", "reply", "any")


def _predicate_path(value: Any) -> str | None:
    """A predicate as ``"module:function"``, so that the plan prints as Python."""
    if value is None or isinstance(value, str):
        return value
    if callable(value):
        module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
        if module and name and "<" not in name:
            return f"{module}:{name}"
    raise ConfigurationError(
        f"predicate must be a module-level function (or 'module:function'), got {value!r}; "
        "a lambda cannot be written back into a plan"
    )


def _resolve(path: str) -> Callable[..., bool]:
    module_name, _, name = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        raise ConfigurationError(f"predicate {path!r} cannot be imported") from None
    if not callable(target):
        raise ConfigurationError(f"predicate {path!r} is not callable")
    return target  # type: ignore[no-any-return]


class _PlainRepr:
    """A repr listing only the fields that differ from their defaults: short,
    and valid Python."""

    def __repr__(self) -> str:
        parts = []
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if field.default is not attrs.NOTHING and value == field.default:
                continue
            parts.append(f"{field.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _check(condition: bool, fault: Any, message: str) -> None:
    if not condition:
        raise ConfigurationError(f"{type(fault).__name__}: {message}")


def _is_seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _check_names(fault: Any, *names: str) -> None:
    for name in names:
        value = getattr(fault, name)
        _check(
            value is None or (isinstance(value, str) and value != ""),
            fault,
            f"{name} must be a non-empty string or None, got {value!r}",
        )


class _MessageFault(_PlainRepr):
    direction: str
    service: str | None
    method: str | None
    skip: int
    count: int | None
    probability: float | None
    predicate: str | None

    def _validate(self) -> None:
        _check_names(self, "service", "method")
        _check(
            self.direction in DIRECTIONS,
            self,
            f"direction must be one of {DIRECTIONS}, got {self.direction!r}",
        )
        _check(
            type(self.skip) is int and self.skip >= 0,
            self,
            f"skip must be a whole number >= 0, got {self.skip!r}",
        )
        _check(
            self.count is None or (type(self.count) is int and self.count >= 1),
            self,
            f"count must be a whole number >= 1 or None, got {self.count!r}",
        )
        _check(
            self.probability is None or (_is_seconds(self.probability) and self.probability <= 1),
            self,
            f"probability must be between 0 and 1 or None, got {self.probability!r}",
        )

    def matches(self, direction: str, service: str | None, method: str | None) -> bool:
        return (
            (self.direction == "any" or self.direction == direction)
            and (self.service is None or self.service == service)
            and (self.method is None or self.method == method)
        )


@attrs.frozen(repr=False)
class Drop(_MessageFault):
    """Lose matching messages: the broker takes them, nobody ever receives them."""

    direction: str = "request"
    service: str | None = None
    method: str | None = None
    skip: int = 0
    count: int | None = 1
    probability: float | None = None
    predicate: str | None = attrs.field(default=None, converter=_predicate_path)

    def __attrs_post_init__(self) -> None:
        self._validate()


@attrs.frozen(repr=False)
class Delay(_MessageFault):
    """Hold matching messages ``seconds`` (plus up to ``jitter``, drawn from the
    seeded RNG) before they reach their queue: replies can overtake each other
    and arrive after a timeout."""

    seconds: float = 1.0
    jitter: float = 0.0
    direction: str = "any"
    service: str | None = None
    method: str | None = None
    skip: int = 0
    count: int | None = None
    probability: float | None = None
    predicate: str | None = attrs.field(default=None, converter=_predicate_path)

    def __attrs_post_init__(self) -> None:
        self._validate()
        _check(
            _is_seconds(self.seconds) and _is_seconds(self.jitter),
            self,
            f"seconds and jitter must be numbers >= 0, got {self.seconds!r} and {self.jitter!r}",
        )


@attrs.frozen(repr=False)
class Duplicate(_MessageFault):
    """Deliver matching messages twice; the copy arrives marked redelivered, as a
    broker redelivery would."""

    direction: str = "request"
    service: str | None = None
    method: str | None = None
    skip: int = 0
    count: int | None = 1
    probability: float | None = None
    predicate: str | None = attrs.field(default=None, converter=_predicate_path)

    def __attrs_post_init__(self) -> None:
        self._validate()


#: What ``Corrupt`` puts in place of a body: bytes no codec reads (not UTF-8, not JSON).
CORRUPT_BODY = b"\xff\xfe\x00corrupted\x00"
CORRUPT_PARTS = ("body", "properties")


@attrs.frozen(repr=False)
class Corrupt(_MessageFault):
    """Deliver matching messages damaged, as a broken or hostile publisher can send
    them to RabbitMQ. ``part="body"``: a body no codec can read;
    ``part="properties"``: properties that do not decode (a content type that is
    not UTF-8), so that the consumer gets only what could be salvaged. A service
    answers such a request with ``MalformedRequest`` and drops it (dead-lettered
    where its queue says so); a caller gets ``MalformedReply`` for such a reply.
    """

    part: str = "body"
    direction: str = "request"
    service: str | None = None
    method: str | None = None
    skip: int = 0
    count: int | None = 1
    probability: float | None = None
    predicate: str | None = attrs.field(default=None, converter=_predicate_path)

    def __attrs_post_init__(self) -> None:
        self._validate()
        _check(
            self.part in CORRUPT_PARTS,
            self,
            f"part must be one of {CORRUPT_PARTS}, got {self.part!r}",
        )


def _check_replica(fault: Any) -> None:
    _check(
        isinstance(fault.replica, str) and fault.replica != "",
        fault,
        f"replica must name a replica (e.g. 'calculator-2') or a client, got {fault.replica!r}",
    )


def _check_time(fault: Any, *names: str) -> None:
    for name in names:
        value = getattr(fault, name)
        _check(
            value is None or _is_seconds(value),
            fault,
            f"{name} must be seconds >= 0, got {value!r}",
        )


@attrs.frozen(repr=False)
class Crash(_PlainRepr):
    """Kill ``replica`` (e.g. ``"calculator-2"``) at ``at`` seconds; its unacked
    requests are redelivered to other replicas. ``restart_after``: bring it back
    that many seconds later."""

    replica: str
    at: float = 0.0
    restart_after: float | None = None

    def __attrs_post_init__(self) -> None:
        _check_replica(self)
        _check_time(self, "at", "restart_after")


@attrs.frozen(repr=False)
class CrashDuring(_PlainRepr):
    """Kill the replica running the ``nth`` call of ``service`` (and ``method``),
    once its worker has started and before it replies."""

    service: str
    method: str | None = None
    nth: int = 1
    restart_after: float | None = None

    def __attrs_post_init__(self) -> None:
        _check_names(self, "service", "method")
        _check(self.service is not None, self, "service must name a service")
        _check(
            type(self.nth) is int and self.nth >= 1,
            self,
            f"nth must be a whole number >= 1, got {self.nth!r}",
        )
        _check_time(self, "restart_after")


@attrs.frozen(repr=False)
class Partition(_PlainRepr):
    """Cut ``replica`` (or a client, e.g. ``"client"``) off the broker from ``at`` for
    ``duration`` seconds: its consumers vanish, its unacked messages are
    requeued, its publishes fail; then it reconnects."""

    replica: str
    at: float = 0.0
    duration: float = 1.0

    def __attrs_post_init__(self) -> None:
        _check_replica(self)
        _check_time(self, "at", "duration")


@attrs.frozen(repr=False)
class BrokerOutage(_PlainRepr):
    """The broker is down from ``at`` for ``duration`` seconds: every publish fails
    (and is retried by RPC_RETRY_POLICY), nothing is delivered. With
    ``restart``, it restarts as RabbitMQ does: every connection drops,
    non-durable queues (reply queues) and transient messages are lost, and the
    clients reconnect and declare their queues again when it is back."""

    at: float = 0.0
    duration: float = 1.0
    restart: bool = False

    def __attrs_post_init__(self) -> None:
        _check_time(self, "at", "duration")
        _check(
            isinstance(self.restart, bool),
            self,
            f"restart must be True or False, got {self.restart!r}",
        )


Fault = Drop | Delay | Duplicate | Corrupt | Crash | CrashDuring | Partition | BrokerOutage
FAULT_TYPES: tuple[type, ...] = (
    Drop,
    Delay,
    Duplicate,
    Corrupt,
    Crash,
    CrashDuring,
    Partition,
    BrokerOutage,
)


def _as_faults(value: Any) -> tuple[Any, ...]:
    if isinstance(value, FaultPlan):
        return value.faults
    if isinstance(value, FAULT_TYPES):
        return (value,)
    items = tuple(value)
    for item in items:
        if not isinstance(item, FAULT_TYPES):
            raise ConfigurationError(
                f"a fault plan holds faults ({', '.join(t.__name__ for t in FAULT_TYPES)}), "
                f"not {item!r}"
            )
    return items


@attrs.frozen(repr=False)
class FaultPlan:
    """An ordered collection of faults. ``repr()`` is Python that rebuilds it."""

    faults: tuple[Any, ...] = attrs.field(default=(), converter=_as_faults)

    def __repr__(self) -> str:
        return f"FaultPlan([{', '.join(repr(f) for f in self.faults)}])"

    def __iter__(self) -> Iterator[Any]:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def __add__(self, other: Any) -> FaultPlan:
        return FaultPlan(self.faults + _as_faults(other))

    def kinds(self) -> set[str]:
        return {type(fault).__name__ for fault in self.faults}

    @property
    def may_redeliver(self) -> bool:
        """Whether a call may legitimately run more than once under this plan."""
        # A crash or a cut connection requeues unacked requests; an outage can make
        # a reply unpublishable, and its request is requeued to be answered again.
        return bool(
            self.kinds() & {"Duplicate", "Crash", "CrashDuring", "Partition", "BrokerOutage"}
        )

    @classmethod
    def from_python(cls, text: str) -> FaultPlan:
        """Read a plan back from its repr (or a bare list of faults, or one fault).

        Only fault constructors, literals, lists and tuples are allowed: the text
        is checked before it is evaluated.
        """
        names = {t.__name__: t for t in (*FAULT_TYPES, FaultPlan)}
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ConfigurationError(f"fault plan is not valid Python: {exc.msg}") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                if not isinstance(node.func, ast.Name) or node.func.id not in names:
                    raise ConfigurationError(
                        f"fault plan may only call {', '.join(sorted(names))}; "
                        f"found {ast.unparse(node.func)}(...)"
                    )
            elif isinstance(node, ast.Name):
                if node.id not in names and node.id not in ("None", "True", "False"):
                    raise ConfigurationError(f"fault plan uses an unknown name {node.id!r}")
            elif not isinstance(
                node,
                (
                    ast.Expression,
                    ast.Constant,
                    ast.List,
                    ast.Tuple,
                    ast.keyword,
                    ast.Load,
                    ast.UnaryOp,
                    ast.USub,
                ),
            ):
                raise ConfigurationError(
                    f"fault plan may hold only fault constructors and literals; found "
                    f"{type(node).__name__}"
                )
        value = eval(compile(tree, "<fault plan>", "eval"), {"__builtins__": {}}, names)
        return value if isinstance(value, FaultPlan) else cls(value)


class _Rule:
    """A message fault and how many messages it has seen and hit."""

    __slots__ = ("fault", "hit", "predicate", "seen")

    def __init__(self, fault: Any) -> None:
        self.fault = fault
        self.seen = 0
        self.hit = 0
        self.predicate = _resolve(fault.predicate) if fault.predicate else None


class FaultInjector:
    """Applies fault plans to one cluster's bus and replicas."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.plan = FaultPlan()
        self._rules: list[_Rule] = []
        self._crash_during: list[list[Any]] = []  # [fault, calls seen]
        self._requests: dict[str, tuple[str, str]] = {}  # correlation id -> (service, method)

    def add(self, plan: FaultPlan) -> None:
        """Arm the faults of ``plan`` (time faults are scheduled from now on)."""
        self.plan = self.plan + plan
        scheduler = self.cluster.scheduler
        start = scheduler.clock.now_us
        for fault in plan:
            if isinstance(fault, (Drop, Delay, Duplicate, Corrupt)):
                self._rules.append(_Rule(fault))
            elif isinstance(fault, CrashDuring):
                self._crash_during.append([fault, 0])
            elif isinstance(fault, Crash):
                when = max(start, to_us(fault.at))
                scheduler.call_at(
                    when,
                    self.cluster._crash,
                    fault.replica,
                    f"fault plan: {fault!r}",
                    fault.restart_after,
                )
            elif isinstance(fault, Partition):
                when = max(start, to_us(fault.at))
                scheduler.call_at(when, self.cluster.partition, fault.replica)
                scheduler.call_at(when + to_us(fault.duration), self.cluster.heal, fault.replica)
            elif isinstance(fault, BrokerOutage):
                when = max(start, to_us(fault.at))
                scheduler.call_at(
                    when, self.cluster.bus.begin_outage, fault.duration, fault.restart
                )

    # -- message faults, called by the bus ----------------------------------------------

    def on_publish(self, message: Message) -> tuple[int, int, Message, str | None]:
        """``(copies, extra delay in us, message, malformed)`` for a message the broker
        accepted: 0 copies means it is lost; ``message`` is what is delivered
        (its body corrupted, maybe); ``malformed`` says why its deliveries cannot
        be decoded, if they cannot."""
        correlation_id = message.correlation_id or ""
        if "." in message.routing_key:  # service.method: a request
            direction = "request"
            service, _, method = message.routing_key.rpartition(".")
            self._requests[correlation_id] = (service, method)
        else:  # a reply id
            direction = "reply"
            service, method = self._requests.get(correlation_id, ("", ""))
        copies, delay_us, malformed = 1, 0, None
        trace = self.cluster.trace
        for rule in self._rules:
            fault = rule.fault
            if not fault.matches(direction, service, method):
                continue
            if rule.predicate is not None and not rule.predicate(
                direction, service, method, message
            ):
                continue
            rule.seen += 1
            if rule.seen <= fault.skip or (fault.count is not None and rule.hit >= fault.count):
                continue
            if fault.probability is not None and self.cluster.rng.random() >= fault.probability:
                continue
            rule.hit += 1
            what = f"{direction} {service}.{method}"
            if isinstance(fault, Drop):
                trace.emit(
                    Event(
                        kind="fault_drop",
                        replica="broker",
                        service=service,
                        method=method,
                        correlation_id=correlation_id,
                        detail=f"{what} lost",
                        message=message,
                    )
                )
                return 0, 0, message, None
            if isinstance(fault, Corrupt):
                if fault.part == "body":
                    message = attrs.evolve(message, body=CORRUPT_BODY)
                    damage = "its body replaced by bytes no codec reads"
                else:
                    malformed = "its content_type is not UTF-8"
                    damage = "its properties made undecodable"
                trace.emit(
                    Event(
                        kind="fault_corrupt",
                        replica="broker",
                        service=service,
                        method=method,
                        correlation_id=correlation_id,
                        detail=f"{what} corrupted: {damage}",
                        message=message,
                    )
                )
            elif isinstance(fault, Duplicate):
                copies += 1
                trace.emit(
                    Event(
                        kind="fault_duplicate",
                        replica="broker",
                        service=service,
                        method=method,
                        correlation_id=correlation_id,
                        detail=f"{what} will be delivered twice",
                        message=message,
                    )
                )
            else:
                seconds = fault.seconds
                if fault.jitter:
                    seconds += self.cluster.rng.uniform(0, fault.jitter)
                delay_us += to_us(seconds)
                trace.emit(
                    Event(
                        kind="fault_delay",
                        replica="broker",
                        service=service,
                        method=method,
                        correlation_id=correlation_id,
                        detail=f"{what} held {seconds:.6f}s",
                        message=message,
                    )
                )
        return copies, delay_us, message, malformed

    # -- call faults, called by the containers ------------------------------------------

    def worker_started(self, worker_ctx: Any) -> None:
        """A worker starts (``ServiceContainer.on_worker_start``): crash its replica
        if a ``CrashDuring`` fault aims at this call."""
        if not self._crash_during:
            return
        service, method = worker_ctx.service_name, worker_ctx.method_name
        firing = None
        for entry in self._crash_during:  # every matching fault counts the call
            fault, seen = entry
            if fault.service != service or fault.method not in (None, method):
                continue
            entry[1] = seen = seen + 1
            if seen == fault.nth and firing is None:
                firing = fault, seen
        if firing is not None:
            fault, seen = firing
            current = self.cluster.scheduler.current_task()
            self.cluster._crash(
                worker_ctx.container.replica_name,
                f"fault plan: {fault!r} during call {seen}",
                fault.restart_after,
            )
            if current is not None and current.killed:
                raise GreenletExit  # the worker stops here, mid-call
