"""Properties of events under faults: what reliable delivery promises, and that
every loss is one the fault plan caused.

A service ``orders`` dispatches ``order_placed`` from an RPC method; ``email``
(a reliable SERVICE_POOL handler, 1-3 replicas) applies each order once
however often it is delivered (an idempotent handler); ``volatile`` (a
SERVICE_POOL handler without reliable delivery, 1-2 replicas) notes them;
``audit`` (a broadcast handler without reliable delivery, 0-2 replicas)
only records.
Plans draw every fault kind, message faults aimed at requests, replies and
the events themselves.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from shimeji.events import BROADCAST, EventDispatcher, event_handler
from shimeji.exceptions import (
    MalformedReply,
    MalformedRequest,
    PublishFailed,
    RemoteError,
    RpcTimeout,
)
from shimeji.rpc import rpc
from shimeji.sim import SimCluster
from shimeji.sim.strategies import fault_plans, schedules, seeds

from .replay import recorded

ENDINGS = (RemoteError, RpcTimeout, PublishFailed, MalformedRequest, MalformedReply)
APPLIED: set[int] = set()  # email's effects: each order once
NOTED: set[int] = set()  # volatile's effects


class Orders:
    name = "orders"
    dispatch = EventDispatcher()

    @rpc
    def place(self, order_id):
        self.dispatch("order_placed", {"id": order_id})
        return order_id


class Email:
    name = "email"

    @event_handler("orders", "order_placed")
    def send(self, payload):
        APPLIED.add(payload["id"])  # idempotent: a second delivery changes nothing


class Volatile:
    """A SERVICE_POOL handler without reliable delivery: its queue goes with its
    last replica."""

    name = "volatile"

    @event_handler("orders", "order_placed", reliable_delivery=False)
    def note(self, payload):
        NOTED.add(payload["id"])


class Audit:
    name = "audit"

    @event_handler("orders", "order_placed", handler_type=BROADCAST, reliable_delivery=False)
    def record(self, payload):
        pass


@st.composite
def worlds(draw):
    email = draw(st.integers(1, 3))
    audit = draw(st.integers(0, 2))
    volatile = draw(st.integers(1, 2))
    services = {
        "orders": 1,
        "email": email,
        "volatile": volatile,
        **({"audit": audit} if audit else {}),
    }
    plan = draw(_plans(tuple(services.items())))
    return {
        "seed": draw(SEEDS),
        "email": email,
        "audit": audit,
        "volatile": volatile,
        "orders": draw(st.integers(1, 4)),
        "plan": plan,
        "schedule": draw(SCHEDULES),
    }


# Made once (per service counts) rather than at every draw.
SEEDS = seeds()
SCHEDULES = schedules()


@functools.cache
def _plans(services):
    return fault_plans(
        dict(services),
        methods={"orders": ["place"], "email": ["send"]},
        events={"orders": ["order_placed"]},
        horizon=4.0,
    )


def simulate(world):
    """Place the orders; return the ids whose place() returned, and the cluster."""
    APPLIED.clear()
    NOTED.clear()
    placed = []
    cluster = SimCluster(
        seed=world["seed"],
        config={"RPC_TIMEOUT": 3.0},
        faults=world["plan"],
        schedule=world["schedule"],
    )
    with cluster:
        cluster.add_service(Orders)
        cluster.add_service(Email, replicas=world["email"])
        cluster.add_service(Volatile, replicas=world["volatile"])
        if world["audit"]:
            cluster.add_service(Audit, replicas=world["audit"])
        client = cluster.rpc_proxy(timeout=8.0)
        for order in range(world["orders"]):
            with contextlib.suppress(*ENDINGS):
                placed.append(client.orders.place(order))
        cluster.advance(60)  # restarts happen, partitions heal, redeliveries settle
        email_alive = any(replica.alive for replica in cluster.replicas("email"))
    return placed, email_alive, cluster


def event_ids(cluster):
    """Each dispatched event's correlation id -> its order id."""
    return {
        e.correlation_id: json.loads(e.message.body)["id"]
        for e in cluster.trace.filter("dispatch")
        if e.message is not None
    }


def damaged(cluster):
    """Correlation ids of the messages a drop or corrupt fault hit."""
    return {
        e.correlation_id for e in cluster.trace.events if e.kind in ("fault_drop", "fault_corrupt")
    }


def handled_by(cluster, service):
    return Counter(
        e.correlation_id for e in cluster.trace.filter("worker_start") if e.service == service
    )


@given(worlds())
def test_reliable_delivery_loses_only_what_the_plan_destroyed(world):
    """An order whose place() returned is applied by email, unless the plan
    dropped or corrupted its event, or left no email replica alive; an event
    the plan dropped is never handled; nothing is handled that was not
    dispatched."""
    placed, email_alive, cluster = simulate(world)
    events = event_ids(cluster)
    hit = damaged(cluster)
    handled = handled_by(cluster, "email")
    assert set(handled) <= set(events)
    dropped = {e.correlation_id for e in cluster.trace.filter("fault_drop")}
    assert not set(handled) & dropped
    assert set(events.values()) >= APPLIED
    if not email_alive:
        return
    for order in placed:
        cids = [cid for cid, oid in events.items() if oid == order]
        assert cids, order  # place() returned, so it dispatched
        if all(cid in hit for cid in cids):
            continue
        assert order in APPLIED, (order, world["plan"])


def touches(fault, service):
    """Whether a fault can take a replica of ``service`` off the broker (or the
    broker itself): what can delete a queue without reliable delivery."""
    kind = type(fault).__name__
    if kind == "BrokerOutage":
        return True
    if kind in ("Crash", "Partition"):
        return fault.replica.startswith(f"{service}-")
    if kind == "CrashDuring":
        return fault.service == service
    return False


@given(worlds())
def test_without_reliable_delivery_only_the_plan_loses_events(world):
    """A handler without reliable delivery loses an event only if the plan
    destroyed it, or took the handler's replicas (or the broker) down:
    nothing else is lost."""
    placed, _, cluster = simulate(world)
    events = event_ids(cluster)
    hit = damaged(cluster)
    assert NOTED.issubset(events.values())
    if any(touches(fault, "volatile") for fault in world["plan"]):
        return
    for order in placed:
        cids = [cid for cid, oid in events.items() if oid == order]
        if all(cid in hit for cid in cids):
            continue
        assert order in NOTED, (order, world["plan"])


@given(worlds())
def test_an_event_is_handled_twice_only_under_a_plan_that_redelivers(world):
    """Without duplicates, crashes, cut connections or outages, each event is
    handled once per subscribing service (and once per broadcast replica)."""
    _, _, cluster = simulate(world)
    if world["plan"].may_redeliver:
        return
    for service in ("email", "volatile", "audit"):
        handled = handled_by(cluster, service)
        limit = world["audit"] if service == "audit" else 1
        assert max(handled.values(), default=0) <= limit, (service, handled)


@given(worlds())
def test_event_worlds_replay_byte_for_byte(world):
    _, _, first = simulate(world)
    _, _, second = simulate(world)
    assert recorded(first.trace) == recorded(second.trace)
