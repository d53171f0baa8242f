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

from collections.abc import Collection, Mapping, Sequence

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
    """Choices of which event runs first among those due at the same instant.

    Shrinks towards ``()``: every tie broken in scheduling order.
    """
    return st.lists(st.integers(0, 15), max_size=max_choices).map(tuple)


def _times(horizon: float) -> st.SearchStrategy[float]:
    # Tenths of a second: shrinks towards 0 and prints short.
    return st.integers(0, max(0, round(horizon * 10))).map(lambda tenths: tenths / 10)


def _durations(horizon: float) -> st.SearchStrategy[float]:
    return st.integers(1, max(1, round(horizon * 10))).map(lambda tenths: tenths / 10)


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


#: A message fault's target: (direction, service or None, method or None).
Target = tuple[str, str | None, str | None]


def _faults(
    counts: dict[str, int],
    kinds: Collection[str],
    methods: Mapping[str, Sequence[str]] | None,
    clients: Sequence[str],
    horizon: float,
    restarts: bool,
    events: Mapping[str, Sequence[str]] | None,
) -> st.SearchStrategy[object]:
    names = sorted(counts)
    replicas = [f"{name}-{i}" for name in names for i in range(1, counts[name] + 1)]
    service = st.sampled_from(names)
    maybe_service = st.none() | service

    # Every strategy a flatmap below returns is made once, for its value, and
    # kept: one made at each draw is a new tree for Hypothesis to validate,
    # which costs more than the draw itself.
    chosen_methods: dict[str | None, st.SearchStrategy[str | None]] = {}

    def maybe_method(chosen: str | None) -> st.SearchStrategy[str | None]:
        if chosen not in chosen_methods:
            options = (methods or {}).get(chosen or "", ())
            chosen_methods[chosen] = (
                st.none() | st.sampled_from(list(options)) if options else st.none()
            )
        return chosen_methods[chosen]

    restart = st.none() | _durations(horizon) if restarts else st.none()
    sources = sorted(events or {})

    def targets(*directions: str) -> st.SearchStrategy[Target]:
        """(direction, service, method) of a message fault: a call's request or
        reply, or (with ``events``) an event, by its source and type."""
        aimed_rpc: dict[tuple[str, str | None], st.SearchStrategy[Target]] = {}
        aimed_event: dict[str | None, st.SearchStrategy[Target]] = {}

        def rpc_target(d_s: tuple[str, str | None]) -> st.SearchStrategy[Target]:
            if d_s not in aimed_rpc:
                aimed_rpc[d_s] = st.tuples(st.just(d_s[0]), st.just(d_s[1]), maybe_method(d_s[1]))
            return aimed_rpc[d_s]

        def event_target(src: str | None) -> st.SearchStrategy[Target]:
            if src not in aimed_event:
                aimed_event[src] = st.tuples(
                    st.just("event"),
                    st.just(src),
                    st.none() | st.sampled_from(list((events or {})[src]))
                    if src is not None and (events or {})[src]
                    else st.none(),
                )
            return aimed_event[src]

        rpc = st.tuples(st.sampled_from(directions), maybe_service).flatmap(rpc_target)
        if not sources:
            return rpc
        source = st.none() | st.sampled_from(sources)
        return rpc | source.flatmap(event_target)

    def message_fault(cls: type, directions: tuple[str, ...], **fields: object) -> object:
        built: dict[Target, st.SearchStrategy[object]] = {}

        def aimed(t: Target) -> st.SearchStrategy[object]:
            if t not in built:
                built[t] = st.builds(
                    cls,
                    direction=st.just(t[0]),
                    service=st.just(t[1]),
                    method=st.just(t[2]),
                    **fields,  # type: ignore[arg-type]
                )
            return built[t]

        return targets(*directions).flatmap(aimed)

    options: list[st.SearchStrategy[object]] = []
    if "drop" in kinds:
        options.append(
            message_fault(
                Drop, ("request", "reply"), skip=st.integers(0, 3), count=st.integers(1, 3)
            )
        )
    if "delay" in kinds:
        options.append(
            message_fault(
                Delay,
                ("reply", "request"),
                seconds=_durations(horizon),
                skip=st.integers(0, 3),
                count=st.integers(1, 3),
            )
        )
    if "duplicate" in kinds:
        options.append(
            message_fault(Duplicate, ("request",), skip=st.integers(0, 3), count=st.integers(1, 2))
        )
    if "corrupt" in kinds:
        options.append(
            message_fault(
                Corrupt,
                ("request", "reply"),
                part=st.sampled_from(["body", "properties"]),
                skip=st.integers(0, 3),
                count=st.integers(1, 2),
            )
        )
    if "crash" in kinds:
        options.append(
            st.builds(
                Crash, replica=st.sampled_from(replicas), at=_times(horizon), restart_after=restart
            )
        )
    if "crash_during" in kinds:
        crash_during: dict[str, st.SearchStrategy[object]] = {}

        def crash_in(s: str) -> st.SearchStrategy[object]:
            if s not in crash_during:
                crash_during[s] = st.builds(
                    CrashDuring,
                    service=st.just(s),
                    method=maybe_method(s),
                    nth=st.integers(1, 3),
                    restart_after=restart,
                )
            return crash_during[s]

        options.append(service.flatmap(crash_in))
    if "partition" in kinds:
        options.append(
            st.builds(
                Partition,
                replica=st.sampled_from([*replicas, *clients]),
                at=_times(horizon),
                duration=_durations(horizon),
            )
        )
    if "outage" in kinds:
        options.append(
            st.builds(
                BrokerOutage,
                at=_times(horizon),
                duration=_durations(min(horizon, 2.0)),
                restart=st.booleans(),
            )
        )
    return st.one_of(options)


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
