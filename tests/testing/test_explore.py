"""Exploration: runs are pure functions of their index, failures shrink and replay exactly."""

from __future__ import annotations

import contextlib
import json
import random

import pytest

from shimeji.core.exceptions import ConfigurationError
from shimeji.exceptions import RpcTimeout
from shimeji.rpc import rpc
from shimeji.sim.faults import Duplicate, FaultPlan, PlanGraph, check_plan
from shimeji.testing import explore as exploration
from shimeji.timer import timer

CHARGES: list[int] = []


class PaymentService:
    name = "payment_service"

    @rpc
    def charge(self, order_id, amount):
        CHARGES.append(order_id)  # not idempotent
        return {"order_id": order_id, "charged": amount}


def charge_three_orders(cluster):
    CHARGES.clear()
    cluster.add_service(PaymentService, replicas=2)
    client = cluster.rpc_proxy(timeout=5)
    for order_id in range(3):
        with contextlib.suppress(RpcTimeout):
            client.payment_service.charge(order_id, 10)
    cluster.advance(10)
    assert sorted(CHARGES) == sorted(set(CHARGES)), f"charged {list(CHARGES)}"


def test_a_run_is_a_pure_function_of_its_index():
    """The same index gives the same seed, swarm and schedule; other indexes differ."""
    assert exploration.plan_run(7, 3) == exploration.plan_run(7, 3)
    runs = [exploration.plan_run(i) for i in range(200)]
    assert len({run.seed for run in runs}) == 200
    swarms = {run.kinds for run in runs}
    assert len(swarms) > 50  # swarm testing: many subsets of the kinds
    assert all(set(kinds) <= set(exploration.FAULT_KINDS) for kinds in swarms)
    assert exploration.plan_run(7, 3) != exploration.plan_run(7, 4)


def test_random_plans_name_only_what_the_cluster_has():
    """Every drawn plan passes the cluster's own name check, and each kind shows up."""
    graph = PlanGraph(
        {"orders": ("place", "cancel"), "payments": ("charge",)},
        ("orders-1", "payments-1", "payments-2"),
        ("client",),
        {"orders": ("order_placed",)},
    )
    rng = random.Random(1)
    seen = set()
    for _ in range(300):
        plan = exploration.random_plan(graph, exploration.FAULT_KINDS, rng)
        check_plan(plan, graph)
        assert 1 <= len(plan) <= 3
        seen |= plan.kinds()
    assert seen == {
        "Drop",
        "Delay",
        "Duplicate",
        "Corrupt",
        "Crash",
        "CrashDuring",
        "Partition",
        "BrokerOutage",
    }


def test_exploration_finds_shrinks_and_replays_the_bug(tmp_path):
    """The non-idempotent charge fails, shrinks to one duplicated request with seed 0,
    and its failure file replays to the same trace."""
    result = exploration.explore(charge_three_orders, runs=300)
    assert result.failure is not None
    shrunk = exploration.shrink(charge_three_orders, result.failure)
    assert shrunk.run.plan == FaultPlan([Duplicate()])
    assert shrunk.run.seed == 0
    assert shrunk.run.schedule == ()
    assert "charged [0, 1, 1, 2]" in shrunk.error_text or "charged [0, 0" in shrunk.error_text
    path = exploration.write_failure(shrunk, tmp_path, test="t.py::test_x")
    data = exploration.load_failure(path)
    outcome, difference = exploration.replay(charge_three_orders, data)
    assert difference is None
    assert isinstance(outcome.error, AssertionError)
    assert outcome.cluster.trace.to_jsonl(messages=True) == shrunk.trace_jsonl


def test_processes_find_the_same_first_failure():
    """Two forked processes report the failing run of lowest index, as one process does."""
    one = exploration.explore(charge_three_orders, runs=60)
    two = exploration.explore(charge_three_orders, runs=60, processes=2)
    assert one.failure is not None and two.failure is not None
    assert two.failure.run.index == one.failure.run.index
    assert two.failure.trace_jsonl == one.failure.trace_jsonl


def test_a_passing_body_makes_every_run():
    """No failure: every run is made, each a fresh cluster."""
    seeds = []
    result = exploration.explore(lambda cluster: seeds.append(cluster.seed), runs=25)
    assert result.failure is None
    assert result.runs == 25
    assert len(set(seeds)) == 25


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"runs": 0}, "runs must be a whole number >= 1"),
        ({"processes": 0}, "processes must be a whole number >= 1"),
        ({"kinds": ("drop", "earthquake")}, "unknown fault kind"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigurationError, match=message):
        exploration.explore(lambda cluster: None, **options)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not a failure file"),
        ("[1, 2]", "is not a shimeji failure file"),
        (
            '{"format": 1, "seed": "x", "schedule": [-1], "trace": [], "faults": "FaultPlan([])"}',
            "seed must be an integer; schedule must be a list",
        ),
        (
            '{"format": 1, "seed": 1, "schedule": [], "trace": [], "faults": "os.system(1)"}',
            "fault plan may only call",
        ),
    ],
)
def test_hostile_failure_files_are_refused(tmp_path, content, message):
    path = tmp_path / "f.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        exploration.load_failure(path)


def test_first_difference_names_the_event_and_the_value():
    """Two traces that part say where, and which value differs."""
    base = [
        {
            "seq": i,
            "time": 0.0,
            "kind": "reply",
            "replica": "dice-1",
            "service": "dice",
            "method": "roll",
            "detail": "-> 1",
        }
        for i in range(3)
    ]
    changed = json.loads(json.dumps(base))
    changed[2]["detail"] = "-> 6"
    one = "".join(json.dumps(e) + "\n" for e in base)
    two = "".join(json.dumps(e) + "\n" for e in changed)
    text = exploration.first_difference(one, two)
    assert text.startswith("event 2 (0.000000 dice-1 reply dice.roll) is the first that differs")
    assert "detail: '-> 1' in the first run, '-> 6' in the second run" in text
    shorter = exploration.first_difference(one, "".join(json.dumps(e) + "\n" for e in base[:2]))
    assert "the traces agree for 2 events, then only the first run goes on" in shorter


class Stop(BaseException):
    """Not an Exception: exploration does not count it as a failure."""


def test_an_exception_that_is_not_a_failure_stops_every_process():
    """A BaseException in the body ends the exploration, in one process or in several."""

    def body(cluster):
        raise Stop("enough")

    with pytest.raises(Stop):
        exploration.explore(body, runs=5)
    with pytest.raises(RuntimeError, match="an exploring process stopped on Stop: enough"):
        exploration.explore(body, runs=5, processes=2)


class Ticker:
    name = "ticker"

    @timer(interval=60)
    def tick(self):
        pass


class Slow:
    name = "slow"

    @rpc
    def work(self):
        return "done"


def wait_without_timeout(cluster):
    cluster.add_service(Ticker)
    cluster.add_service(Slow)
    cluster.kill("slow-1")
    cluster.rpc_proxy(timeout=None).slow.work()  # nothing will ever answer


def test_a_run_that_would_never_end_fails_at_the_virtual_time_limit(tmp_path):
    """A call without a timeout that nothing answers, while a timer ticks, would run
    for ever: the run fails with SimulationStalled at max_virtual_seconds, and replays."""
    result = exploration.explore(wait_without_timeout, runs=3, max_virtual_seconds=600)
    assert result.failure is not None and result.runs == 1
    assert "virtual time passed 600 s, the limit of an exploring run" in (result.failure.error_text)
    path = exploration.write_failure(result.failure, tmp_path, test="t", max_virtual_seconds=600)
    outcome, difference = exploration.replay(wait_without_timeout, exploration.load_failure(path))
    assert difference is None
    assert type(outcome.error).__name__ == "SimulationStalled"
    with pytest.raises(ConfigurationError, match="max_virtual_seconds must be seconds > 0"):
        exploration.explore(wait_without_timeout, max_virtual_seconds=0)
