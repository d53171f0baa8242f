"""Properties of the simulator over random call graphs: replay and correctness."""

from __future__ import annotations

import functools

from hypothesis import given
from hypothesis import strategies as st

from shimeji.exceptions import RemoteError
from shimeji.sim import SimCluster

from .graphs import Call, Failure, Plan, expected, make_services, plans
from .replay import recorded


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[int], object]:
    count = draw(st.integers(1, 4))
    replicas = draw(_replicas(count))
    plan = draw(plans(0, count, depth=3))
    seed = draw(SEEDS)
    return seed, replicas, plan


SEEDS = st.integers(0, 2**32)


@functools.cache  # made once per count rather than at every draw
def _replicas(count):
    return st.lists(st.integers(1, 4), min_size=count, max_size=count)


def simulate(seed: int, replicas: list[int], plan) -> tuple[object, str]:
    with SimCluster(seed=seed) as cluster:
        for service, count in zip(make_services(len(replicas)), replicas, strict=True):
            cluster.add_service(service, replicas=count)
        try:
            outcome: object = cluster.rpc.s0.run(plan.to_wire())
        except RemoteError as exc:
            outcome = exc
        trace = recorded(cluster.trace)
    return outcome, trace


@given(scenarios())
def test_same_seed_replays_byte_for_byte(scenario):
    """The same seed and graph give a byte-identical trace, and the right result."""
    seed, replicas, plan = scenario
    first_outcome, first_trace = simulate(seed, replicas, plan)
    second_outcome, second_trace = simulate(seed, replicas, plan)
    assert first_trace == second_trace
    want = expected(plan)
    if isinstance(want, Failure):
        assert isinstance(first_outcome, RemoteError)
        assert str(first_outcome) == f"ValueError failed {want.value}"
    else:
        assert first_outcome == want == second_outcome


def test_shared_service_classes_replay_the_run_of_fresh_ones():
    """The service classes every example shares (``make_services`` makes them once)
    carry nothing from one run to the next: a run on classes new to the process
    and runs on classes that served other graphs before record the same trace."""
    plan = Plan(
        value=1,
        calls=(
            Call(target=1, mode="async", plan=Plan(value=2, sleep=0.5)),
            Call(target=2, mode="sync", plan=Plan(value=3, fail=True)),
        ),
    )
    make_services.cache_clear()
    _, fresh = simulate(7, [2, 1, 3], plan)
    for seed in (1, 2):
        simulate(seed, [1, 3, 2], plan)
    _, again = simulate(7, [2, 1, 3], plan)
    assert again == fresh
