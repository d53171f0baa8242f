"""Hypothesis strategies for property tests of failure paths.

    from hypothesis import given
    from shimeji.sim import SimCluster
    from shimeji.sim.strategies import fault_plans, schedules

    @given(plan=fault_plans({"payment_service": 2, "order_service": 1}),
           schedule=schedules())
    def test_orders_survive(plan, schedule):
        with SimCluster(faults=plan, schedule=schedule) as cluster:
            ...

Hypothesis owns every choice: which faults, which message or replica, when,
and (with ``schedules``) which of several events due at the same instant runs
first. Nothing is left to a hidden random generator, so a failure shrinks to
a minimal plan: fewer faults, earlier times, the first replica, the default
order. The failing example prints the plan as Python, and the SimCluster adds
its seed, schedule and trace to Hypothesis' report.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs
from hypothesis import strategies as st

from shimeji.core.exceptions import ConfigurationError
from shimeji.sim import hypothesis_report
from shimeji.sim.faults import (
    BrokerOutage,
    Corrupt,
    Crash,
    CrashDuring,
    Delay,
    Drop,
    Duplicate,
    FaultPlan,
    Partition,
)

__all__ = ["FAULT_KINDS", "fault_plans", "faults", "schedules", "seeds"]

hypothesis_report.install()

#: The kinds of fault ``fault_plans`` can draw, by name.
FAULT_KINDS = (
    "drop",
    "delay",
    "duplicate",
    "corrupt",
    "crash",
    "crash_during",
    "partition",
    "outage",
)


def seeds() -> st.SearchStrategy[int]:
    """Cluster seeds (they decide ids, and faults given a probability)."""
    return st.integers(0, 2**32 - 1)


def schedules(max_choices: int = 64) -> st.SearchStrategy[tuple[int, ...]]:
    """Choices (each 0 to 15) of which event runs first among those due at the
    same instant, at most ``max_choices``.

    Shrinks towards ``()``: every tie broken in scheduling order. Drawn as
    bytes, two choices to a byte: one choice for Hypothesis, where a list of
    integers costs it two per element (and as long, on average, as such a list).
    """
    return st.binary(max_size=(max_choices + 1) // 2).map(functools.partial(_nibbles, max_choices))


def _nibbles(limit: int, raw: bytes) -> tuple[int, ...]:
    return tuple(half for byte in raw for half in (byte & 15, byte >> 4))[:limit]


def _normalise(services: Mapping[str, int] | Sequence[str]) -> dict[str, int]:
    counts = dict(services) if isinstance(services, Mapping) else {name: 1 for name in services}
    if not counts:
        raise ConfigurationError("fault_plans needs at least one service name")
    for name, count in counts.items():
        if not isinstance(name, str) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(
                f"fault_plans takes service names, or a mapping of names to replica counts "
                f"(>= 1); got {name!r}: {count!r}"
            )
    return counts


#: Strategies made so far, by their arguments: a composite strategy that asks
#: for ``fault_plans(...)`` at each draw gets the same one back, rather than a
#: new tree of strategies for Hypothesis to build (which costs more than a run).
_MADE: dict[tuple[object, ...], st.SearchStrategy[object]] = {}
_MADE_MAX = 512


def _frozen(value: object) -> object:
    """A hashable copy of a mapping or sequence of names (for ``_MADE``'s keys)."""
    if isinstance(value, Mapping):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = tuple(_frozen(item) for item in value)
        return tuple(sorted(items)) if isinstance(value, (set, frozenset)) else items
    return value


def faults(
    services: Mapping[str, int] | Sequence[str],
    *,
    kinds: Collection[str] = FAULT_KINDS,
    methods: Mapping[str, Sequence[str]] | None = None,
    clients: Sequence[str] = ("client",),
    horizon: float = 5.0,
    restarts: bool = True,
    events: Mapping[str, Sequence[str]] | None = None,
) -> st.SearchStrategy[object]:
    """One fault of the given ``kinds``, aimed at ``services`` (names, or a mapping
    of names to replica counts: replicas are ``<name>-1`` ... ``<name>-<n>``).
    ``events`` maps services that dispatch events to their event types: message
    faults may then hit events too (``direction="event"``)."""
    counts = _normalise(services)
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown or not kinds:
        raise ConfigurationError(f"fault kinds must be some of {FAULT_KINDS}; got {sorted(kinds)}")
    key = tuple(
        _frozen(part)
        for part in ("faults", counts, kinds, methods, clients, horizon, restarts, events)
    )
    try:
        made = _MADE.get(key)
    except TypeError:  # something unhashable among the names: made afresh
        return _faults(counts, kinds, methods, clients, horizon, restarts, events)
    if made is None:
        if len(_MADE) >= _MADE_MAX:
            _MADE.clear()
        # Made from copies: a later change to the caller's mappings changes nothing.
        made = _MADE[key] = _faults(
            dict(counts),
            tuple(kinds),
            None if methods is None else {k: tuple(v) for k, v in methods.items()},
            tuple(clients),
            horizon,
            restarts,
            None if events is None else {k: tuple(v) for k, v in events.items()},
        )
    return made


def _faults(
    counts: dict[str, int],
    kinds: Collection[str],
    methods: Mapping[str, Sequence[str]] | None,
    clients: Sequence[str],
    horizon: float,
    restarts: bool,
    events: Mapping[str, Sequence[str]] | None,
) -> st.SearchStrategy[object]:
    # Each kind of fault is drawn by one composite (defined once, below) that
    # draws its fields directly: ``st.builds`` and ``flatmap`` (a new strategy
    # per drawn target) cost Hypothesis more bookkeeping than the draws
    # themselves. The choices, and their order, are those of the fields.
    names = sorted(counts)
    replicas = [f"{name}-{i}" for name in names for i in range(1, counts[name] + 1)]
    service = st.sampled_from(names)
    maybe_service = st.none() | service
    no_method = st.none()
    chosen_methods = {
        name: st.none() | st.sampled_from(list(options)) if options else no_method
        for name, options in (methods or {}).items()
    }
    tenths = st.integers(0, max(0, round(horizon * 10)))
    durations = st.integers(1, max(1, round(horizon * 10)))
    restart = st.none() | durations if restarts else st.none()
    sources = sorted(events or {})
    source = st.none() | st.sampled_from(sources) if sources else None
    event_types = {
        src: st.none() | st.sampled_from(list(types)) if types else no_method
        for src, types in (events or {}).items()
    }
    pick = _Pick(maybe_service, chosen_methods, no_method, source, event_types)

    def message_fault(
        cls: type, directions: tuple[str, ...], **fields: st.SearchStrategy[Any]
    ) -> st.SearchStrategy[object]:
        return _message_fault(cls, st.sampled_from(directions), pick, tuple(fields.items()))

    skips = st.integers(0, 3)
    options: list[st.SearchStrategy[object]] = []
    if "drop" in kinds:
        options.append(
            message_fault(Drop, ("request", "reply"), skip=skips, count=st.integers(1, 3))
        )
    if "delay" in kinds:
        options.append(
            message_fault(
                Delay,
                ("reply", "request"),
                seconds=durations.map(_tenths),
                skip=skips,
                count=st.integers(1, 3),
            )
        )
    if "duplicate" in kinds:
        options.append(message_fault(Duplicate, ("request",), skip=skips, count=st.integers(1, 2)))
    if "corrupt" in kinds:
        options.append(
            message_fault(
                Corrupt,
                ("request", "reply"),
                part=st.sampled_from(["body", "properties"]),
                skip=skips,
                count=st.integers(1, 2),
            )
        )
    if "crash" in kinds:
        options.append(_crash(st.sampled_from(replicas), tenths, restart))
    if "crash_during" in kinds:
        options.append(_crash_during(service, pick, st.integers(1, 3), restart))
    if "partition" in kinds:
        options.append(_partition(st.sampled_from([*replicas, *clients]), tenths, durations))
    if "outage" in kinds:
        outage_durations = st.integers(1, max(1, round(min(horizon, 2.0) * 10)))
        options.append(_outage(tenths, outage_durations, st.booleans()))
    return st.one_of(options)


#: A message fault's target: (direction, service or None, method or None).
Target = tuple[str, str | None, str | None]


def _tenths(tenths: int) -> float:
    return tenths / 10


@attrs.frozen(eq=False)
class _Pick:
    """The strategies that aim a fault at a service, a method, an event."""

    service: st.SearchStrategy[str | None]
    methods: Mapping[str, st.SearchStrategy[str | None]]
    no_method: st.SearchStrategy[None]
    source: st.SearchStrategy[str | None] | None  # None: no events to aim at
    event_types: Mapping[str, st.SearchStrategy[str | None]]

    def method(self, draw: st.DrawFn, service: str | None) -> str | None:
        """A method of ``service`` (or None: any), if faults may single one out."""
        if service is None:
            return draw(self.no_method)
        return draw(self.methods.get(service, self.no_method))

    def target(self, draw: st.DrawFn, direction: st.SearchStrategy[str]) -> Target:
        """A call's request or reply, or (with events) an event by source and type."""
        if self.source is not None and draw(_EVENT_OR_RPC):
            src = draw(self.source)
            return "event", src, draw(self.event_types[src] if src else self.no_method)
        chosen_direction = draw(direction)
        chosen = draw(self.service)
        return chosen_direction, chosen, self.method(draw, chosen)


_EVENT_OR_RPC = st.booleans()


@st.composite
def _message_fault(
    draw: st.DrawFn,
    cls: type,
    direction: st.SearchStrategy[str],
    pick: _Pick,
    fields: tuple[tuple[str, st.SearchStrategy[Any]], ...],
) -> object:
    direction_drawn, service, method = pick.target(draw, direction)
    values = {name: draw(field) for name, field in fields}
    return cls(direction=direction_drawn, service=service, method=method, **values)


def _restart_after(draw: st.DrawFn, restart: st.SearchStrategy[int | None]) -> float | None:
    tenths = draw(restart)
    return None if tenths is None else tenths / 10


@st.composite
def _crash(
    draw: st.DrawFn,
    replica: st.SearchStrategy[str],
    at: st.SearchStrategy[int],
    restart: st.SearchStrategy[int | None],
) -> object:
    chosen = draw(replica)
    at_tenths = draw(at)
    return Crash(replica=chosen, at=at_tenths / 10, restart_after=_restart_after(draw, restart))


@st.composite
def _crash_during(
    draw: st.DrawFn,
    service: st.SearchStrategy[str],
    pick: _Pick,
    nth: st.SearchStrategy[int],
    restart: st.SearchStrategy[int | None],
) -> object:
    chosen = draw(service)
    method = pick.method(draw, chosen)
    return CrashDuring(
        service=chosen, method=method, nth=draw(nth), restart_after=_restart_after(draw, restart)
    )


@st.composite
def _partition(
    draw: st.DrawFn,
    replica: st.SearchStrategy[str],
    at: st.SearchStrategy[int],
    duration: st.SearchStrategy[int],
) -> object:
    chosen = draw(replica)
    at_tenths = draw(at)
    return Partition(replica=chosen, at=at_tenths / 10, duration=draw(duration) / 10)


@st.composite
def _outage(
    draw: st.DrawFn,
    at: st.SearchStrategy[int],
    duration: st.SearchStrategy[int],
    restart: st.SearchStrategy[bool],
) -> object:
    at_tenths = draw(at)
    duration_tenths = draw(duration)
    return BrokerOutage(at=at_tenths / 10, duration=duration_tenths / 10, restart=draw(restart))


def fault_plans(
    services: Mapping[str, int] | Sequence[str],
    *,
    kinds: Collection[str] = FAULT_KINDS,
    min_faults: int = 0,
    max_faults: int = 3,
    methods: Mapping[str, Sequence[str]] | None = None,
    clients: Sequence[str] = ("client",),
    horizon: float = 5.0,
    restarts: bool = True,
    events: Mapping[str, Sequence[str]] | None = None,
) -> st.SearchStrategy[FaultPlan]:
    """Fault plans of ``min_faults`` to ``max_faults`` faults (see ``faults``).

    ``kinds`` picks which faults may appear (``FAULT_KINDS``); ``methods`` maps
    service names to method names that faults may single out; ``clients`` are
    the client labels partitions may cut; times fall within ``horizon`` seconds;
    ``restarts=False`` keeps crashed replicas down; ``events`` maps services
    that dispatch events to the event types message faults may hit.
    """
    if not 0 <= min_faults <= max_faults:
        raise ConfigurationError(
            f"need 0 <= min_faults <= max_faults, got {min_faults} and {max_faults}"
        )
    one = faults(
        services,
        kinds=kinds,
        methods=methods,
        clients=clients,
        horizon=horizon,
        restarts=restarts,
        events=events,
    )
    key = ("fault_plans", one, min_faults, max_faults)  # the same faults(), the same plans
    made = _MADE.get(key)
    if made is None:
        made = _MADE[key] = st.lists(one, min_size=min_faults, max_size=max_faults).map(FaultPlan)
    return made  # type: ignore[return-value]
