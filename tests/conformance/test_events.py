"""Events and timers, stated once and run on the simulator and on RabbitMQ.

Run on RabbitMQ with ``pytest tests/conformance --shimeji-transport=amqp``.
"""

from __future__ import annotations

import pytest

from shimeji.exceptions import (
    ConfigurationError,
    EventHandlerConfigurationError,
    UnserializableValueError,
)
from tests.conformance import event_services
from tests.conformance.event_services import (
    Asker,
    Audit,
    BadBroadcast,
    Billing,
    Careless,
    Email,
    Flaky,
    LeaderA,
    LeaderB,
    Orders,
    Ticker,
    Whoami,
    WrongSignature,
    seen,
)
from tests.conformance.test_rpc import wait_until


@pytest.fixture(autouse=True)
def clear_seen():
    event_services.SEEN.clear()
    event_services.Flaky.attempts.clear()
    yield
    event_services.SEEN.clear()


def settle(cluster, seconds=0.3):
    """Give deliveries in flight time to arrive (or, if wrongly sent, to show)."""
    cluster.advance(seconds)


# -- who gets an event ------------------------------------------------------------------


def test_a_service_pool_handles_each_event_once(cluster):
    """Three replicas share a SERVICE_POOL queue: each event is handled once."""
    cluster.add_service(Orders)
    cluster.add_service(Email, replicas=3)
    for order in range(6):
        cluster.rpc.orders.place(order)
    wait_until(cluster, lambda: len(seen("email")) >= 6)
    settle(cluster)
    assert sorted(record[0] for record in seen("email")) == list(range(6))


def test_every_subscribing_service_gets_the_event(cluster):
    """Each SERVICE_POOL subscriber has a queue of its own."""
    cluster.add_service(Orders)
    cluster.add_service(Email)
    cluster.add_service(Billing)
    cluster.rpc.orders.place(7)
    wait_until(cluster, lambda: seen("email") and seen("billing"))
    assert seen("billing") == [(7,)]


def test_broadcast_reaches_every_replica(cluster):
    """A BROADCAST handler's replicas each get every event."""
    cluster.add_service(Orders)
    cluster.add_service(Audit, replicas=3)
    cluster.rpc.orders.place(1)
    wait_until(cluster, lambda: len(seen("audit")) >= 3)
    settle(cluster)
    assert sorted(replica for _, replica in seen("audit")) == ["audit-1", "audit-2", "audit-3"]


def test_a_singleton_is_handled_once_across_services(cluster):
    """SINGLETON handlers of two services share one queue: one handles it."""
    cluster.add_service(Orders)
    cluster.add_service(LeaderA)
    cluster.add_service(LeaderB)
    for order in range(4):
        cluster.rpc.orders.place(order)
    wait_until(cluster, lambda: len(seen("singleton")) >= 4)
    settle(cluster)
    assert sorted(order for order, _ in seen("singleton")) == [0, 1, 2, 3]


def test_an_event_nobody_subscribes_to_is_dropped(cluster):
    """Dispatching with no queue bound succeeds; nobody gets the event."""
    cluster.add_service(Orders)
    assert cluster.rpc.orders.place(1)
    cluster.add_service(Email)
    settle(cluster)
    assert seen("email") == []


def test_events_wait_in_a_reliable_queue_for_a_handler(cluster):
    """With reliable delivery the pool queue outlives its replicas: an event
    dispatched while none runs is handled by the next one."""
    cluster.add_service(Orders)
    first = cluster.add_service(Email)[0]
    first.container.kill()
    cluster.rpc.orders.place(5)
    settle(cluster)
    assert seen("email") == []
    cluster.add_service(Email)
    wait_until(cluster, lambda: seen("email"))
    assert [(order, replica) for order, replica, *_ in seen("email")] == [(5, "email-2")]


def test_dispatch_from_outside_any_service(cluster):
    """cluster.dispatch publishes as the named service would, with context data."""
    cluster.add_service(Email)
    cluster.dispatch("orders", "order_placed", {"id": 9}, context_data={"user_id": "u9"})
    wait_until(cluster, lambda: seen("email"))
    order, _, user, call_ids = seen("email")[0]
    assert (order, user) == (9, "u9")
    assert len(call_ids) == 1 and call_ids[0].startswith("email.send.")


# -- what travels with it -------------------------------------------------------------------


def test_context_data_and_call_ids_follow_the_event(cluster):
    """The handler sees the dispatching worker's context data, and its call id
    stack continues the dispatcher's."""
    cluster.add_service(Orders)
    cluster.add_service(Email)
    dispatcher_ids = cluster.rpc_proxy(context_data={"user_id": "u1"}).orders.place(3)
    wait_until(cluster, lambda: seen("email"))
    order, _, user, call_ids = seen("email")[0]
    assert (order, user) == (3, "u1")
    assert call_ids[:-1] == dispatcher_ids
    assert dispatcher_ids[-1].startswith("orders.place.")
    assert call_ids[-1].startswith("email.send.")


def test_an_rpc_from_a_handler_carries_the_events_context(cluster):
    """A call made by an event handler carries the event's context data, and its
    call id stack continues through dispatcher, handler and callee."""
    cluster.add_service(Orders)
    cluster.add_service(Asker)
    cluster.add_service(Whoami)
    dispatcher_ids = cluster.rpc_proxy(context_data={"user_id": "u5"}).orders.place(5)
    wait_until(cluster, lambda: seen("asker"))
    order, told = seen("asker")[0]
    assert (order, told["user_id"]) == (5, "u5")
    assert told["stack"][: len(dispatcher_ids)] == dispatcher_ids
    assert [entry.split(".")[0] for entry in told["stack"][len(dispatcher_ids) :]] == [
        "asker",
        "whoami",
    ]


def test_unserializable_event_data_is_refused_before_sending(cluster):
    """Data the serializer cannot encode raises UnserializableValueError in the
    dispatching worker; nothing is sent."""
    cluster.add_service(Orders)
    cluster.add_service(Email)
    with pytest.raises(Exception) as raised:
        cluster.rpc.orders.place_unserializable()
    assert "UnserializableValueError" in str(raised.value)
    with pytest.raises(UnserializableValueError):
        cluster.dispatch("orders", "order_placed", {"when": object()})
    settle(cluster)
    assert seen("email") == []


# -- errors in handlers -------------------------------------------------------------------------


def test_a_failing_handler_acks_the_event(cluster):
    """Without requeue_on_error an event whose handler raises is not redelivered,
    and the service keeps handling events."""
    cluster.add_service(Careless)
    cluster.dispatch("orders", "order_placed", {"id": 1})
    cluster.dispatch("orders", "order_placed", {"id": 2})
    wait_until(cluster, lambda: len(seen("careless")) >= 2)
    settle(cluster)
    assert seen("careless") == [(1,), (2,)]


def test_requeue_on_error_redelivers_until_the_handler_succeeds(cluster):
    """With requeue_on_error a failed event goes back to its queue."""
    cluster.add_service(Flaky)
    cluster.dispatch("orders", "order_placed", {"id": 1})
    wait_until(cluster, lambda: len(seen("flaky")) >= 3)
    settle(cluster)
    assert seen("flaky") == [(1, 1), (1, 2), (1, 3)]


# -- configuration errors -------------------------------------------------------------------------


def test_broadcast_with_reliable_delivery_needs_an_identifier(cluster):
    """The default broadcast identifier cannot go with reliable delivery."""
    with pytest.raises(EventHandlerConfigurationError, match="broadcast identifier"):
        cluster.add_service(BadBroadcast)


def test_a_handler_takes_the_event_data(cluster):
    with pytest.raises(ConfigurationError, match="one argument"):
        cluster.add_service(WrongSignature)


# -- timers ---------------------------------------------------------------------------------------


def test_a_timer_ticks_at_its_interval_from_the_start(cluster, shimeji_transport):
    """A 0.5 s timer ticks 0.5 s after its replica starts, then every 0.5 s, on
    each replica (not at once: that takes ``eager=True``)."""
    cluster.add_service(Ticker, replicas=2)
    cluster.advance(1.2)
    ticks = seen("tick")
    per_replica = {name: ticks.count((name,)) for name in ("ticker-1", "ticker-2")}
    if shimeji_transport == "sim":
        assert per_replica == {"ticker-1": 2, "ticker-2": 2}
    else:
        assert all(1 <= count <= 3 for count in per_replica.values()), per_replica
