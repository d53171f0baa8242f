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
match them: by direction (``"request"``, ``"reply"``, ``"event"`` or ``"any"``),
service, method and an optional predicate (for an event: the service that
dispatched it and the event type, at the moment it is published, so a
fault hits every handler's copy); the first ``skip`` matches pass, then at
most ``count`` are hit (None: all), each with ``probability`` drawn from the
cluster's seeded RNG (None: always). Time faults (``Crash``, ``Partition``,
``BrokerOutage``) happen at ``at`` seconds of virtual time since the cluster
started (at once if that is past); ``CrashDuring`` kills the replica running
the ``nth`` matching call, after its worker started and before it replies.

``repr(plan)`` is Python that rebuilds the plan (``FaultPlan.from_python``
reads it back), so a failing run can be pasted into a test or a command line.
Every fault shows in the trace as an event whose kind starts with ``fault``.

A plan that names a service, method, replica or client the cluster does not
have could never fire: ``check_plan`` finds such names against a
``PlanGraph`` and raises ``FaultPlanError`` (with a did-you-mean). A
``SimCluster`` checks every plan it is given, once the test has added its
services (see ``SimCluster.add_faults``).
"""

from __future__ import annotations

import ast
import importlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from shimeji.core.exceptions import ConfigurationError, FaultPlanError
from shimeji.core.suggest import closest

__all__ = [
    "BrokerOutage",
    "Corrupt",
    "Crash",
    "CrashDuring",
    "Delay",
    "Drop",
    "Duplicate",
    "Fault",
    "FaultPlan",
    "Partition",
    "PlanGraph",
    "check_plan",
    "plan_problems",
    "resolve_predicate",
]

DIRECTIONS = ("request", "reply", "event", "any")


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


def resolve_predicate(path: str) -> Callable[..., bool]:
    """The function a ``"module:function"`` predicate names; ConfigurationError if none."""
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


# -- names a plan may use -------------------------------------------------------------


@attrs.frozen
class PlanGraph:
    """What a fault plan may name: ``services`` maps each service to its methods
    (entrypoint names); ``replicas`` and ``clients`` are the labels of its
    replicas (``calculator-2``) and clients (``client``, ``client-2``);
    ``events`` maps each service whose events some handler listens to (it
    may not run in the cluster) to those event types, which an event fault
    names as its ``service`` and ``method``.

    ``None`` for ``replicas`` or ``clients`` means not known yet: a replica
    name is then only checked for its service (``<service>-<n>``), a client
    label only for its form (``client`` or ``client-<n>``).
    """

    services: Mapping[str, Sequence[str]]
    replicas: Sequence[str] | None = None
    clients: Sequence[str] | None = None
    events: Mapping[str, Sequence[str]] = attrs.field(factory=dict)


_CLIENT_LABEL = re.compile(r"client(-[0-9]+)?")
_REPLICA_NAME = re.compile(r"(.+)-([0-9]+)")


def _hint(name: str, known: Sequence[str]) -> str:
    found = closest(name, known)
    return f" (did you mean {found!r}?)" if found is not None else ""


def _listed(names: Sequence[str], what: str) -> str:
    return f"{what}: {', '.join(names)}" if names else f"{what}: none"


def _event_problem(fault: Any, graph: PlanGraph) -> str | None:
    sources = list(graph.events)
    source, event_type = fault.service, fault.method
    if source is not None and source not in graph.events:
        return (
            f"{fault!r} names events from {source!r}, which no handler in the cluster "
            f"listens to{_hint(source, sources)}; {_listed(sources, 'handlers listen to')}"
        )
    if event_type is None:
        return None
    types = sorted({t for s, ts in graph.events.items() if source in (None, s) for t in ts})
    if event_type not in types:
        whose = f"{source}'s" if source is not None else "any"
        return (
            f"{fault!r} names event type {event_type!r}, which no handler of {whose} "
            f"events listens to{_hint(event_type, types)}; {_listed(types, 'they listen to')}"
        )
    return None


def _service_problem(fault: Any, graph: PlanGraph) -> str | None:
    direction = getattr(fault, "direction", None)
    if direction == "event":
        return _event_problem(fault, graph)
    if direction == "any" and (_event_problem(fault, graph) is None):
        return None  # it names events (an "any" fault may hit both)
    services = list(graph.services)
    service, method = fault.service, fault.method
    if service is not None and service not in graph.services:
        return (
            f"{fault!r} names service {service!r}, which the cluster does not run"
            f"{_hint(service, services)}; {_listed(services, 'it runs')}"
        )
    if method is None:
        return None
    if service is not None:
        methods = list(graph.services[service])
        if method not in methods:
            return (
                f"{fault!r} names method {method!r}, which {service} does not have"
                f"{_hint(method, methods)}; {_listed(methods, 'its methods')}"
            )
        return None
    every = sorted({m for methods in graph.services.values() for m in methods})
    if method not in every:
        return (
            f"{fault!r} names method {method!r}, which no service has"
            f"{_hint(method, every)}; {_listed(every, 'the methods are')}"
        )
    return None


def _label_problem(fault: Any, graph: PlanGraph, clients_allowed: bool) -> str | None:
    label = fault.replica
    services = list(graph.services)
    is_client_form = _CLIENT_LABEL.fullmatch(label) is not None
    if not clients_allowed and is_client_form and label not in (graph.replicas or ()):
        return (
            f"{fault!r} names {label!r}, a client: a Crash kills replicas; cut a client off "
            "the broker with Partition instead"
        )
    if graph.replicas is None:
        match = _REPLICA_NAME.fullmatch(label)
        if clients_allowed and is_client_form and graph.clients is None:
            return None
        if match is not None and match.group(1) in graph.services:
            return None
        number = match.group(2) if match is not None else "1"
        guesses = [f"{service}-{number}" for service in services]
        what = "neither a client nor a replica" if clients_allowed else "not a replica"
        return (
            f"{fault!r} names {label!r}, which is {what} of a service the cluster "
            f"runs{_hint(label, guesses)}; replicas are named <service>-<n>, "
            f"{_listed(services, 'its services')}"
        )
    known = list(graph.replicas)
    if clients_allowed:
        if graph.clients is None:
            if is_client_form:
                return None
        else:
            known += list(graph.clients)
    if label in known:
        return None
    what = "replica or client" if clients_allowed else "replica"
    return (
        f"{fault!r} names {what} {label!r}, which the cluster does not have"
        f"{_hint(label, known)}; {_listed(known, 'it has')}"
    )


def plan_problems(plan: Any, graph: PlanGraph) -> list[str]:
    """One sentence for each name in ``plan`` that ``graph`` does not have."""
    problems: list[str] = []
    for fault in FaultPlan(plan):
        problem: str | None = None
        if isinstance(fault, (_MessageFault, CrashDuring)):
            problem = _service_problem(fault, graph)
        elif isinstance(fault, Crash):
            problem = _label_problem(fault, graph, clients_allowed=False)
        elif isinstance(fault, Partition):
            problem = _label_problem(fault, graph, clients_allowed=True)
        if problem is not None and problem not in problems:
            problems.append(problem)
    return problems


def check_plan(plan: Any, graph: PlanGraph) -> None:
    """Raise ``FaultPlanError`` if ``plan`` names anything ``graph`` does not have."""
    problems = plan_problems(plan, graph)
    if problems:
        raise FaultPlanError(problems)
