"""Properties of HTTP through a gateway under faults.

A gateway (1..3 replicas) answers ``GET /stock/<sku>`` with one RPC to a
stock service (1..3 replicas) and turns an ``RpcTimeout`` into 504. Fault
plans of every kind are drawn against both services. Whatever the plan,
every request is answered, with a status the model allows, and a 200 is
always the right answer.
"""

from __future__ import annotations

import functools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shimeji.exceptions import RemoteError, RpcTimeout
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.faults import BrokerOutage, Corrupt, Crash, CrashDuring, FaultPlan, Partition
from shimeji.sim.strategies import fault_plans, schedules, seeds
from shimeji.web import http

from .replay import recorded

REQUESTS = 4


class Stock:
    name = "stock"

    @rpc
    def level(self, sku):
        return {"sku": sku, "level": len(sku)}


class Gateway:
    name = "gateway"
    stock = RpcProxy("stock", timeout=2)

    @http("GET", "/stock/<sku>")
    def get_stock(self, request, sku):
        try:
            return json.dumps(self.stock.level(sku))
        except RpcTimeout:
            return 504, "stock did not answer in time"
        except RemoteError as exc:
            return 502, f"stock failed: {exc.exc_type}"


@st.composite
def worlds(draw):
    replicas = {"gateway": draw(st.integers(1, 3)), "stock": draw(st.integers(1, 3))}
    plan = draw(_plans(replicas["gateway"], replicas["stock"]))
    return {
        "seed": draw(SEEDS),
        "replicas": replicas,
        "plan": plan,
        "schedule": draw(SCHEDULES),
        "skus": draw(SKUS),
    }


# Made once (per replica counts) rather than at every draw.
SEEDS = seeds()
SCHEDULES = schedules()
SKUS = st.lists(st.sampled_from(["a", "bb", "ccc"]), min_size=1, max_size=REQUESTS)


@functools.cache
def _plans(gateways, stocks):
    return fault_plans(
        {"gateway": gateways, "stock": stocks},
        methods={"gateway": ["get_stock"], "stock": ["level"]},
        clients=(),  # the test client is not on the broker: nothing to cut
        horizon=3.0,
        max_faults=3,
    )


def simulate(world):
    answers = []
    cluster = SimCluster(
        seed=world["seed"],
        config={"RPC_TIMEOUT": 2},
        faults=world["plan"],
        schedule=world["schedule"],
    )
    with cluster:
        cluster.add_service(Stock, replicas=world["replicas"]["stock"])
        cluster.add_service(Gateway, replicas=world["replicas"]["gateway"])
        for sku in world["skus"]:
            response = cluster.http.get(f"/stock/{sku}")
            answers.append((sku, response.status_code, response.text))
            cluster.advance(0.5)
    return answers, cluster


def corrupting(plan: FaultPlan) -> bool:
    """The plan corrupts messages (a call then fails with MalformedRequest or
    MalformedReply, which the route does not handle)."""
    return any(isinstance(fault, Corrupt) for fault in plan)


def unreachable(plan: FaultPlan) -> bool:
    """The plan takes the broker away from a gateway replica (an outage, or a
    partition of a gateway replica), long enough for a publish to give up."""
    return any(
        isinstance(fault, BrokerOutage)
        or (isinstance(fault, Partition) and fault.replica.startswith("gateway"))
        for fault in plan
    )


def gateway_faults(plan: FaultPlan) -> bool:
    """The plan can kill a gateway replica (the front then answers 502 or 503)."""
    return any(
        (isinstance(fault, Crash) and fault.replica.startswith("gateway"))
        or (isinstance(fault, CrashDuring) and fault.service == "gateway")
        for fault in plan
    )


@settings(max_examples=settings.default.max_examples // 2)
@given(worlds())
def test_every_request_is_answered_and_a_200_is_right(world):
    answers, _ = simulate(world)
    assert len(answers) == len(world["skus"])
    for sku, status, text in answers:
        if status == 200:
            assert json.loads(text) == {"sku": sku, "level": len(sku)}
        elif status == 500 and "Error: PublishFailed" in text:
            # the gateway could not publish its call: the broker was out of reach
            assert unreachable(world["plan"]), text
        elif "Error: Malformed" in text:
            # MalformedRequest is a BadRequest (400, as nameko answers it), a
            # MalformedReply is not (500)
            assert corrupting(world["plan"]), text
            assert status in (400, 500), (status, text)
        elif status in (502, 503) and "stock failed" not in text:
            # the front's answers: only a gateway replica dying or down explains them
            assert gateway_faults(world["plan"]), (status, text)
        else:
            assert status in (502, 504), (status, text)


@settings(max_examples=settings.default.max_examples // 5)
@given(worlds())
def test_http_runs_replay_byte_for_byte(world):
    first, one = simulate(world)
    second, two = simulate(world)
    assert first == second
    assert recorded(one.trace) == recorded(two.trace)
