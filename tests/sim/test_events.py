"""Events on the simulator: what the broker keeps, loses and redelivers, in
virtual time, deterministically."""

from __future__ import annotations

import time

import pytest

from shimeji.core.transport import Message
from shimeji.events import BROADCAST, EventDispatcher, EventHandler, event_handler
from shimeji.exceptions import ConfigurationError
from shimeji.rpc import rpc
from shimeji.sim import SimCluster, SimulationLivelock
from shimeji.sim import bus as sim_bus

SEEN: list[tuple] = []


@pytest.fixture(autouse=True)
def clear():
    SEEN.clear()
    yield
    SEEN.clear()


class Orders:
    name = "orders"
    dispatch = EventDispatcher()

    @rpc
    def place(self, order_id):
        self.dispatch("order_placed", {"id": order_id})
        return order_id


class SlowEmail:
    """Takes 2 s per event: long enough to die in the middle of one."""

    name = "email"

    @event_handler("orders", "order_placed")
    def send(self, payload):
        time.sleep(2)
        SEEN.append(("email", payload["id"]))


class Volatile:
    """A pool handler without reliable delivery: its queue goes with its replicas."""

    name = "volatile"

    @event_handler("orders", "order_placed", reliable_delivery=False)
    def handle(self, payload):
        SEEN.append(("volatile", payload["id"]))


class Audit:
    name = "audit"

    @event_handler("orders", "order_placed", handler_type=BROADCAST, reliable_delivery=False)
    def record(self, payload):
        SEEN.append(("audit", payload["id"]))


class StableBroadcast(EventHandler):
    """A broadcast identifier that survives restarts: the replica's name."""

    @property
    def broadcast_identifier(self):
        return self.container.replica_name


class Ledger:
    name = "ledger"

    @StableBroadcast.decorator(
        "orders", "order_placed", handler_type=BROADCAST, reliable_delivery=True
    )
    def record(self, payload):
        SEEN.append(("ledger", payload["id"]))


class Hopeless:
    name = "hopeless"

    @event_handler("orders", "order_placed", requeue_on_error=True)
    def handle(self, payload):
        raise RuntimeError("never works")


def graph(cluster):
    cluster.add_service(Orders)
    cluster.add_service(SlowEmail, replicas=2)
    cluster.add_service(Audit, replicas=2)


def test_an_event_held_by_a_replica_that_dies_is_handled_by_another():
    """Reliable delivery is at-least-once: the event a killed replica was
    handling goes back to the pool queue and its sibling handles it."""
    with SimCluster(seed=1) as cluster:
        cluster.add_service(Orders)
        first, second = cluster.add_service(SlowEmail, replicas=2)
        cluster.rpc.orders.place(1)
        cluster.advance(1)
        starts = [e for e in cluster.trace.events if e.kind == "worker_start"]
        busy = next(e.replica for e in starts if e.method == "send")
        cluster.kill(busy)
        cluster.advance(5)
        assert SEEN == [("email", 1)]
        redelivered = [e for e in cluster.trace.events if e.detail == "redelivered"]
        assert [e.replica for e in redelivered] == [({first.name, second.name} - {busy}).pop()]


def test_without_reliable_delivery_events_nobody_consumes_are_lost():
    """The queue is deleted with its last consumer: what is dispatched before a
    replica comes back is lost; what comes after is handled."""
    with SimCluster(seed=1) as cluster:
        cluster.add_service(Orders)
        (replica,) = cluster.add_service(Volatile)
        cluster.rpc.orders.place(1)
        cluster.advance(1)
        cluster.kill(replica)
        cluster.rpc.orders.place(2)
        cluster.restart(replica)
        cluster.rpc.orders.place(3)
        cluster.advance(1)
        assert SEEN == [("volatile", 1), ("volatile", 3)]


def test_a_restarted_broadcast_replica_gets_a_new_queue():
    """The default broadcast identifier is new at each start: events sent to
    the old queue while the replica was down are gone with it."""
    with SimCluster(seed=1) as cluster:
        cluster.add_service(Orders)
        first, _ = cluster.add_service(Audit, replicas=2)
        old_queues = {name for name in cluster.bus.queues if name.startswith("evt-orders")}
        cluster.kill(first)
        cluster.rpc.orders.place(1)
        cluster.restart(first)
        cluster.advance(1)
        new_queues = {name for name in cluster.bus.queues if name.startswith("evt-orders")}
        assert len(old_queues) == len(new_queues) == 2
        assert old_queues != new_queues
        assert SEEN == [("audit", 1)]  # the replica that stayed up


def test_a_stable_broadcast_identifier_keeps_events_across_restarts():
    """Override broadcast_identifier and reliable delivery works for BROADCAST:
    the events dispatched while a replica was down wait for it."""
    with SimCluster(seed=1) as cluster:
        cluster.add_service(Orders)
        first, _ = cluster.add_service(Ledger, replicas=2)
        cluster.kill(first)
        cluster.rpc.orders.place(1)
        cluster.advance(1)
        assert SEEN == [("ledger", 1)]
        cluster.restart(first)
        cluster.advance(1)
        assert SEEN == [("ledger", 1), ("ledger", 1)]
        assert f"evt-orders-order_placed--ledger.record-{first.name}" in cluster.bus.queues


def test_an_event_requeued_without_end_is_a_livelock(monkeypatch):
    """A handler that always fails with requeue_on_error would spin for ever:
    the simulator stops it with SimulationLivelock naming the queue (after
    REDELIVERY_LOOP returns; fewer here, to keep the test quick)."""
    monkeypatch.setattr(sim_bus, "REDELIVERY_LOOP", 300)
    with SimCluster(seed=1) as cluster:
        cluster.add_service(Hopeless)
        cluster.dispatch("orders", "order_placed", {"id": 1})
        with pytest.raises(SimulationLivelock, match=r"evt-orders-order_placed--hopeless\.handle"):
            cluster.advance(10)


def test_a_malformed_event_is_rejected_and_the_service_serves_on():
    """An event body that cannot be decoded never reaches the handler, is not
    redelivered, and the next event is handled."""
    with SimCluster(seed=1) as cluster:
        cluster.add_service(Volatile)
        cluster.dispatch("orders", "order_placed", {"id": 1})
        connection = cluster.bus.connect("raw")
        connection.publish(
            Message(
                body=b"{not json",
                routing_key="order_placed",
                exchange="orders.events",
                content_type="application/json",
            ),
            mandatory=False,
        )
        cluster.dispatch("orders", "order_placed", {"id": 2})
        cluster.advance(1)
        assert SEEN == [("volatile", 1), ("volatile", 2)]
        bad = [e for e in cluster.trace.events if e.kind == "bad_request"]
        assert len(bad) == 1 and "cannot be decoded" in bad[0].detail


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "order_placed", {}), "service name"),
        (("orders", "", {}), "event type"),
        (("orders", 5, {}), "event type"),
    ],
)
def test_dispatch_checks_its_arguments(args, message):
    with SimCluster() as cluster, pytest.raises(ConfigurationError, match=message):
        cluster.dispatch(*args)


def test_event_handler_checks_its_arguments():
    with pytest.raises(ConfigurationError, match="handler_type"):
        event_handler("orders", "order_placed", handler_type="everyone")
    with pytest.raises(ConfigurationError, match="event type"):
        event_handler("orders", "")


def test_traces_of_an_event_graph_are_identical_run_to_run():
    """Same seed, same graph: the same trace, byte for byte."""

    def run():
        with SimCluster(seed=7) as cluster:
            graph(cluster)
            for order in range(5):
                cluster.rpc_proxy(context_data={"user": f"u{order}"}).orders.place(order)
            cluster.dispatch("orders", "order_placed", {"id": 99})
            cluster.advance(30)
            return cluster.trace.to_text()

    first, second = run(), run()
    assert first == second
    assert "order_placed" in first


def test_the_text_trace_says_which_event_came_from_where():
    with SimCluster(seed=1) as cluster:
        cluster.add_service(Orders)
        cluster.add_service(Volatile)
        cluster.rpc.orders.place(1)
        cluster.advance(1)
        text = cluster.trace.to_text()
    assert "dispatch" in text and "orders.order_placed" in text


def test_on_quorum_queues_a_hopeless_event_is_dropped_at_the_delivery_limit():
    """With RPC_QUEUE_TYPE quorum, reliable handler queues are quorum queues: an
    event redelivered more than RPC_DELIVERY_LIMIT times is dropped, not a livelock."""
    config = {"RPC_QUEUE_TYPE": "quorum", "RPC_DELIVERY_LIMIT": 3}
    with SimCluster(seed=1, config=config) as cluster:
        cluster.add_service(Hopeless)
        cluster.dispatch("orders", "order_placed", {"id": 1})
        cluster.advance(10)
        runs = [e for e in cluster.trace.filter("worker_start") if e.service == "hopeless"]
        drops = [e for e in cluster.trace.filter("drop") if "delivery limit" in (e.detail or "")]
    assert len(runs) == 4  # the first delivery and three returns
    assert len(drops) == 1
