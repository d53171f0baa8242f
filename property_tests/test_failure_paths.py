"""Properties of RPC under faults, over random service graphs and fault plans.

Graphs: services s0..s3 with 1..4 replicas, plans with chains, fan-out with
call_async, sleeps and failures (see graphs.py). Faults: every kind, drawn by
``shimeji.sim.strategies.fault_plans``; interleavings drawn by ``schedules``.
"""

from __future__ import annotations

import functools
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from shimeji.exceptions import (
    MalformedReply,
    MalformedRequest,
    PublishFailed,
    RemoteError,
    RpcTimeout,
    ServiceNotFound,
)
from shimeji.sim import SimCluster
from shimeji.sim.faults import FaultPlan
from shimeji.sim.strategies import FAULT_KINDS, fault_plans, schedules, seeds

from .graphs import Call, Failure, Plan, consistent, expected, make_services, plans
from .replay import recorded

CLIENT_TIMEOUT = 8.0
NESTED_TIMEOUT = 2.0
ENDINGS = (RemoteError, RpcTimeout, ServiceNotFound, PublishFailed)
# A corrupted request or reply (the Corrupt fault) ends its call with these.
DAMAGED = (MalformedRequest, MalformedReply)


@st.composite
def worlds(draw, kinds=None, max_faults=3, min_replicas=1):
    count = draw(COUNTS)
    replicas = draw(_replicas(min_replicas, count))
    calls = draw(_calls(count))
    ghost = draw(st.booleans())
    plan = draw(_plans(tuple(replicas), tuple(kinds or FAULT_KINDS), max_faults))
    return {
        "seed": draw(SEEDS),
        "replicas": replicas,
        "calls": calls,
        "ghost": ghost,
        "plan": plan,
        "schedule": draw(SCHEDULES),
    }


# The strategies worlds() draws from, each made once (for its arguments) rather
# than at every draw, where Hypothesis would validate a new one each time.
COUNTS = st.integers(1, 4)
SEEDS = seeds()
SCHEDULES = schedules()


@functools.cache
def _replicas(min_replicas, count):
    return st.lists(st.integers(min_replicas, 4), min_size=count, max_size=count)


@functools.cache
def _calls(count):
    return st.lists(
        st.tuples(st.sampled_from(["sync", "async"]), plans(0, count, depth=2)),
        min_size=1,
        max_size=2,
    )


@functools.cache
def _plans(replicas, kinds, max_faults):
    services = {f"s{i}": n for i, n in enumerate(replicas)}
    return fault_plans(services, kinds=kinds, max_faults=max_faults, horizon=4.0)


def simulate(world, config=None):
    """Run a world; return each call's outcome and duration, and the cluster."""
    config = {"RPC_TIMEOUT": NESTED_TIMEOUT, **(config or {})}
    outcomes = []
    cluster = SimCluster(
        seed=world["seed"], config=config, faults=world["plan"], schedule=world["schedule"]
    )
    with cluster:
        for service, count in zip(
            make_services(len(world["replicas"])), world["replicas"], strict=True
        ):
            cluster.add_service(service, replicas=count)
        client = cluster.rpc_proxy(timeout=CLIENT_TIMEOUT)
        pending = []
        for mode, plan in world["calls"]:
            start = cluster.elapsed()
            if mode == "async":
                try:
                    pending.append((plan, start, client.s0.run.call_async(plan.to_wire())))
                except (*ENDINGS, *DAMAGED) as exc:
                    outcomes.append((plan, exc, cluster.elapsed() - start))
                continue
            try:
                outcome = client.s0.run(plan.to_wire())
            except (*ENDINGS, *DAMAGED) as exc:
                outcome = exc
            outcomes.append((plan, outcome, cluster.elapsed() - start))
        for plan, start, reply in pending:
            try:
                outcome = reply.result()
            except (*ENDINGS, *DAMAGED) as exc:
                outcome = exc
            outcomes.append((plan, outcome, cluster.elapsed() - start))
        if world["ghost"]:
            start = cluster.elapsed()
            try:
                client.ghost.run({})
                outcomes.append((None, "answered", 0.0))
            except (ServiceNotFound, PublishFailed) as exc:
                outcomes.append((None, exc, cluster.elapsed() - start))
        cluster.advance(NESTED_TIMEOUT * 4)  # let every nested call end before stopping
    return outcomes, cluster


# Virtual time a nested call may take besides its plan's sleeps: its messages'
# latency, generously.
HOPS_SLACK = 0.01


def longest(plan):
    """The most virtual time a worker running ``plan`` can take: its sleep and
    each of its calls one after the other, with their messages' latency."""
    return plan.sleep + sum(longest(call.plan) + HOPS_SLACK for call in plan.calls)


def as_expected_but_for_slow_calls(plan, outcome):
    """Whether ``outcome`` is what ``plan`` returns, but for nested calls that ran
    out of their time (RPC_TIMEOUT) on a plan that can take that long: with no
    fault, nothing else may differ."""
    if not isinstance(outcome, dict) or plan.fail or outcome.get("value") != plan.value:
        return outcome == expected(plan)
    children = outcome.get("children")
    if not isinstance(children, list) or len(children) != len(plan.calls):
        return False
    for call, child in zip(plan.calls, children, strict=True):
        want = expected(call.plan)
        if isinstance(want, Failure):
            want = {"error": f"ValueError failed {want.value}"}
        if child == want:
            continue
        timed_out = isinstance(child, dict) and str(child.get("error", "")).startswith("RpcTimeout")
        if timed_out and longest(call.plan) >= NESTED_TIMEOUT:
            continue
        if not as_expected_but_for_slow_calls(call.plan, child):
            return False
    return True


def test_a_slow_nested_call_is_the_only_difference_allowed_without_faults():
    """The check of the property above: a nested call that times out is allowed
    only when its plan can take RPC_TIMEOUT or longer; any other difference fails."""
    slow = Plan(value=2, calls=(Call(3, "sync", Plan(value=3, sleep=0.5)),) * 3, sleep=0.5)
    quick = Plan(value=2, sleep=0.5)
    timeout = {"error": "RpcTimeout: no reply in time"}
    assert as_expected_but_for_slow_calls(
        Plan(value=1, calls=(Call(2, "sync", slow),)), {"value": 1, "children": [timeout]}
    )
    assert not as_expected_but_for_slow_calls(
        Plan(value=1, calls=(Call(2, "sync", quick),)), {"value": 1, "children": [timeout]}
    )
    assert not as_expected_but_for_slow_calls(
        Plan(value=1, calls=(Call(2, "sync", slow),)),
        {"value": 1, "children": [{"value": 2, "children": [timeout] * 3}]},
    )


def check_replies_reach_their_callers(cluster):
    trace = cluster.trace
    for event in trace.filter("deliver"):
        if event.is_reply:
            assert event.replica == trace.caller_of(event.correlation_id), event


def executions_per_request(cluster):
    return Counter(e.correlation_id for e in cluster.trace.filter("worker_start"))


@given(worlds())
def test_every_call_ends_rightly_and_in_time(world):
    """Every call ends within its timeout (publish retries included), with the right
    result or one of the documented errors; replies reach only their callers;
    a method runs twice for one call only under a plan that can redeliver."""
    outcomes, cluster = simulate(world)
    for plan, outcome, took in outcomes:
        assert took <= CLIENT_TIMEOUT + 1e-9  # publish retries included
        if plan is None:  # the ghost service
            assert isinstance(outcome, (ServiceNotFound, PublishFailed))
            continue
        if isinstance(outcome, DAMAGED):
            assert "Corrupt" in world["plan"].kinds(), outcome  # only a fault damages
            continue
        if isinstance(outcome, ENDINGS):
            if isinstance(outcome, RemoteError) and not world["plan"]:
                assert isinstance(expected(plan), Failure)
            continue
        assert consistent(plan, outcome), (plan, outcome)
        if not world["plan"]:
            assert as_expected_but_for_slow_calls(plan, outcome), (plan, outcome)
    check_replies_reach_their_callers(cluster)
    if not world["plan"].may_redeliver:
        runs = executions_per_request(cluster)
        assert max(runs.values(), default=1) == 1, runs


@given(worlds(kinds=("crash", "crash_during"), max_faults=2, min_replicas=3))
def test_crashes_mid_call_still_complete_with_a_healthy_replica(world):
    """Crashes of at most two replicas of services that have three: every call
    still completes, with the exact result, through redelivery."""
    outcomes, _ = simulate(world, config={"RPC_TIMEOUT": 60})
    for plan, outcome, _ in outcomes:
        if plan is None:
            continue
        want = expected(plan)
        if isinstance(want, Failure):
            assert isinstance(outcome, RemoteError)
        else:
            assert outcome == want


@given(worlds(kinds=("drop",), max_faults=0))
def test_round_robin_keeps_replicas_even_without_faults(world):
    """With no faults, each service's replicas get within one delivery of each other."""
    _, cluster = simulate(world, config={"max_workers": 1000})
    per_replica = Counter(e.replica for e in cluster.trace.filter("deliver") if not e.is_reply)
    for index, count in enumerate(world["replicas"]):
        got = [per_replica.get(f"s{index}-{i}", 0) for i in range(1, count + 1)]
        assert max(got) - min(got) <= 1, got


@given(worlds())
def test_same_seed_and_plan_replay_byte_for_byte(world):
    """The same seed, plan and schedule give a byte-identical trace."""
    _, first = simulate(world)
    _, second = simulate(world)
    assert recorded(first.trace) == recorded(second.trace)


def test_plans_print_as_python():
    """Plans drawn by the strategy print as Python that rebuilds them."""

    @given(fault_plans({"a": 2, "b": 1}, max_faults=5))
    def check(plan):
        assert FaultPlan.from_python(repr(plan)) == plan

    check()
