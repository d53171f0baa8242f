"""Events on the simulator, test by test after nameko's ``test/test_events.py``.

Each test names the nameko test whose behaviour it checks. nameko publishes
with its management API and reads queues through it (``rabbit_manager``); the
ports dispatch with ``sim_cluster.dispatch`` (JSON, as nameko's tests
publish) and read the simulated broker's queues (``bus.queue_stats()``:
name, ready messages, consumers).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict

import pytest

from shimeji.events import (
    BROADCAST,
    SERVICE_POOL,
    SINGLETON,
    EventDispatcher,
    EventHandler,
    EventHandlerConfigurationError,
    event_handler,
)
from shimeji.testing.services import dummy, entrypoint_hook, entrypoint_waiter

pytest_plugins = ["shimeji.testing.nameko_fixtures"]

services: defaultdict[str, list] = defaultdict(list)
events: list = []


@pytest.fixture(autouse=True)
def reset_state():
    yield
    services.clear()
    events[:] = []


class HandlerService:
    """A service that records the events it handles, and each instance made."""

    name = "handlerservice"

    def __init__(self):
        self.events = []
        services[self.name].append(self)

    def handle(self, evt):
        self.events.append(evt)
        events.append(evt)


class ServicePoolHandler(HandlerService):
    @event_handler("srcservice", "eventtype", handler_type=SERVICE_POOL)
    def handle(self, evt):
        super().handle(evt)


class DoubleServicePoolHandler(HandlerService):
    @event_handler("srcservice", "eventtype", handler_type=SERVICE_POOL)
    def handle_1(self, evt):
        super().handle(evt)

    @event_handler("srcservice", "eventtype", handler_type=SERVICE_POOL)
    def handle_2(self, evt):
        super().handle(evt)


class SingletonHandler(HandlerService):
    @event_handler("srcservice", "eventtype", handler_type=SINGLETON)
    def handle(self, evt):
        super().handle(evt)


class BroadcastHandler(HandlerService):
    @event_handler("srcservice", "eventtype", handler_type=BROADCAST, reliable_delivery=False)
    def handle(self, evt):
        super().handle(evt)


class RequeueingHandler(HandlerService):
    @event_handler("srcservice", "eventtype", requeue_on_error=True)
    def handle(self, evt):
        super().handle(evt)
        raise Exception("Error")


class UnreliableHandler(HandlerService):
    @event_handler("srcservice", "eventtype", reliable_delivery=False)
    def handle(self, evt):
        super().handle(evt)


def service_factory(prefix, base):
    """A subclass of ``base`` named ``prefix``."""
    return type(prefix.title() + base.__name__, (base,), {"name": prefix})


@pytest.fixture
def start_containers(container_factory, rabbit_config):
    made_types = {}

    def make(base, prefixes):
        containers = []
        for prefix in prefixes:
            service_cls = made_types.setdefault((prefix, base), service_factory(prefix, base))
            container = container_factory(service_cls, rabbit_config)
            container.start()
            containers.append(container)
        return containers

    return make


def queue(sim_cluster, name):
    """``(ready messages, consumers)`` of a queue, or None when it does not exist."""
    for queue_name, ready, consumers in sim_cluster.bus.queue_stats():
        if queue_name == name:
            return ready, consumers
    return None


# follows nameko test/test_events.py::test_service_pooled_events
def test_service_pooled_events(sim_cluster, start_containers):
    start_containers(ServicePoolHandler, ("foo", "foo", "bar"))
    assert len(queue(sim_cluster, "evt-srcservice-eventtype--foo.handle")[1]) == 2
    assert len(queue(sim_cluster, "evt-srcservice-eventtype--bar.handle")[1]) == 1
    sim_cluster.dispatch("srcservice", "eventtype", "msg")
    time.sleep(0.1)
    assert len(events) == 2
    assert len(services["foo"]) == 1
    assert isinstance(services["foo"][0], ServicePoolHandler)
    assert services["foo"][0].events == ["msg"]
    assert len(services["bar"]) == 1
    assert services["bar"][0].events == ["msg"]


# follows nameko test/test_events.py::test_service_pooled_events_multiple_handlers
def test_service_pooled_events_multiple_handlers(sim_cluster, start_containers):
    (container,) = start_containers(DoubleServicePoolHandler, ("double",))
    assert len(queue(sim_cluster, "evt-srcservice-eventtype--double.handle_1")[1]) == 1
    assert len(queue(sim_cluster, "evt-srcservice-eventtype--double.handle_2")[1]) == 1
    with entrypoint_waiter(container, "handle_1"), entrypoint_waiter(container, "handle_2"):
        sim_cluster.dispatch("srcservice", "eventtype", "msg")
    assert len(events) == 2
    assert len(services["double"]) == 2  # one instance per worker
    assert services["double"][0].events == ["msg"]
    assert services["double"][1].events == ["msg"]


# follows nameko test/test_events.py::test_singleton_events
def test_singleton_events(sim_cluster, start_containers):
    start_containers(SingletonHandler, ("foo", "foo", "bar"))
    assert len(queue(sim_cluster, "evt-srcservice-eventtype")[1]) == 3
    sim_cluster.dispatch("srcservice", "eventtype", "msg")
    time.sleep(0.1)
    assert len(events) == 1
    assert len(services) == 1
    (lucky,) = services.values()
    assert len(lucky) == 1
    assert isinstance(lucky[0], SingletonHandler)
    assert lucky[0].events == ["msg"]


# follows nameko test/test_events.py::test_broadcast_events
def test_broadcast_events(sim_cluster, start_containers):
    (c1, c2, c3) = start_containers(BroadcastHandler, ("foo", "foo", "bar"))
    names = [
        name
        for name, _, _ in sim_cluster.bus.queue_stats()
        if name.startswith("evt-srcservice-eventtype-")
    ]
    assert len(names) == 3
    for name in names:
        assert len(queue(sim_cluster, name)[1]) == 1
    with (
        entrypoint_waiter(c1, "handle"),
        entrypoint_waiter(c2, "handle"),
        entrypoint_waiter(c3, "handle"),
    ):
        sim_cluster.dispatch("srcservice", "eventtype", "msg")
    assert len(events) == 3
    assert len(services) == 2
    assert len(services["foo"]) == 2
    assert services["foo"][0].events == ["msg"]
    assert services["foo"][1].events == ["msg"]
    assert len(services["bar"]) == 1
    assert services["bar"][0].events == ["msg"]


# follows nameko test/test_events.py::test_requeue_on_error
def test_requeue_on_error(sim_cluster, start_containers):
    (container,) = start_containers(RequeueingHandler, ("requeue",))
    assert len(queue(sim_cluster, "evt-srcservice-eventtype--requeue.handle")[1]) == 1
    counter = itertools.count(start=1)

    def entrypoint_fired_twice(worker_ctx, res, exc_info):
        return next(counter) > 1

    with entrypoint_waiter(container, "handle", callback=entrypoint_fired_twice):
        sim_cluster.dispatch("srcservice", "eventtype", "msg")
    container.stop()
    assert len(events) > 1  # received again and again, requeued each time
    assert len(services["requeue"]) > 1
    for service in services["requeue"]:
        assert service.events == ["msg"]


# follows nameko test/test_events.py::test_reliable_delivery
def test_reliable_delivery(sim_cluster, container_factory, rabbit_config):
    # nameko's test starts the second container from a new class of the same
    # name; one cluster gives a name one class, so both are of this one
    service_pool = service_factory("service-pool", ServicePoolHandler)
    container = container_factory(service_pool, rabbit_config)
    container.start()
    queue_name = "evt-srcservice-eventtype--service-pool.handle"
    assert len(queue(sim_cluster, queue_name)[1]) == 1
    with entrypoint_waiter(container, "handle"):
        sim_cluster.dispatch("srcservice", "eventtype", "msg_1")
    assert events == ["msg_1"]
    container.stop()
    assert queue(sim_cluster, queue_name) == (0, [])  # still there, nobody consuming
    sim_cluster.dispatch("srcservice", "eventtype", "msg_2")
    time.sleep(0.01)
    assert queue(sim_cluster, queue_name)[0] == 1  # kept for the next consumer
    container = container_factory(service_pool, rabbit_config)
    with entrypoint_waiter(container, "handle"):
        container.start()
    assert events == ["msg_1", "msg_2"]


# follows nameko test/test_events.py::test_unreliable_delivery
def test_unreliable_delivery(sim_cluster, start_containers):
    (c1,) = start_containers(UnreliableHandler, ("unreliable",))
    (c2,) = start_containers(ServicePoolHandler, ("keep-exchange-alive",))
    queue_name = "evt-srcservice-eventtype--unreliable.handle"
    assert len(queue(sim_cluster, queue_name)[1]) == 1
    with entrypoint_waiter(c1, "handle"), entrypoint_waiter(c2, "handle"):
        sim_cluster.dispatch("srcservice", "eventtype", "msg_1")
    assert events == ["msg_1", "msg_1"]
    assert len(services["unreliable"]) == 1
    assert services["unreliable"][0].events == ["msg_1"]
    c1.stop()
    assert queue(sim_cluster, queue_name) is None  # deleted with its last consumer
    sim_cluster.dispatch("srcservice", "eventtype", "msg_2")
    (c3,) = start_containers(UnreliableHandler, ("unreliable",))
    assert len(queue(sim_cluster, queue_name)[1]) == 1
    with entrypoint_waiter(c3, "handle"):
        sim_cluster.dispatch("srcservice", "eventtype", "msg_3")
    assert len(services["unreliable"]) == 2
    assert services["unreliable"][0].events == ["msg_1"]
    assert services["unreliable"][1].events == ["msg_3"]


class CustomEventHandler(EventHandler):
    """A handler subclass overriding ``handle_result``, as nameko users write them."""

    _calls: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._calls[:] = []

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        super().handle_result(message, worker_ctx, result, exc_info)
        self._calls.append(message)
        return result, exc_info


class CustomHandler(HandlerService):
    @CustomEventHandler.decorator("srcservice", "eventtype")
    def handle(self, evt):
        super().handle(evt)


# follows nameko test/test_events.py::test_custom_event_handler
def test_custom_event_handler(sim_cluster, start_containers, rabbit_config):
    """A custom handler subclass reads the decoded event (``message.payload``)
    and its headers from what its ``handle_result`` is given."""
    from shimeji.standalone import event_dispatcher

    (container,) = start_containers(CustomHandler, ("custom-events",))
    payload = {"custom": "data"}
    dispatch = event_dispatcher(rabbit_config)
    with entrypoint_waiter(container, "handle"):
        dispatch("srcservice", "eventtype", payload)
    (message,) = CustomEventHandler._calls
    assert message.payload == payload
    assert "nameko.call_id_stack" in message.headers


class CustomBroadcastHandler(EventHandler):
    broadcast_identifier = "testbox"


# follows nameko test/test_events.py::test_event_handler
def test_event_handler(sim_cluster, container_factory):
    """Each handler type declares nameko's queue: its name, and whether it is
    durable, exclusive to its replica, or deleted with its last consumer."""

    class Service:
        name = "destservice"

        @event_handler("srcservice", "eventtype")
        def pooled(self, evt):
            pass  # pragma: no cover

        @event_handler("srcservice", "eventtype", handler_type=BROADCAST, reliable_delivery=False)
        def broadcast(self, evt):
            pass  # pragma: no cover

        @CustomBroadcastHandler.decorator("srcservice", "eventtype", handler_type=BROADCAST)
        def custom(self, evt):
            pass  # pragma: no cover

        @event_handler("srcservice", "eventtype", handler_type=SINGLETON)
        def singleton(self, evt):
            pass  # pragma: no cover

    container = container_factory(Service)
    container.start()
    queues = sim_cluster.bus.queues
    exchange = sim_cluster.bus.exchanges["srcservice.events"]

    pooled = queues["evt-srcservice-eventtype--destservice.pooled"]
    assert (pooled.durable, pooled.auto_delete, pooled.owner) == (True, False, None)

    (broadcast,) = [
        n for n in queues if n.startswith("evt-srcservice-eventtype--destservice.broadcast-")
    ]
    identifier = broadcast.rsplit("-", 1)[1]
    assert len(identifier) == 32 and int(identifier, 16) >= 0  # a uuid's hex, as nameko's
    assert queues[broadcast].owner is not None  # exclusive
    assert queues[broadcast].auto_delete is True

    custom = queues["evt-srcservice-eventtype--destservice.custom-testbox"]
    assert (custom.owner, custom.auto_delete) == (None, False)

    singleton = queues["evt-srcservice-eventtype"]
    assert (singleton.owner, singleton.auto_delete) == (None, False)

    for name in (pooled.name, broadcast, custom.name, singleton.name):
        assert exchange.bindings_of(name) == ["eventtype"]


class TestReliableDeliveryEventHandlerConfigurationError:
    # follows nameko test/test_events.py::TestReliableDeliveryEventHandlerConfigurationError::test_raises_with_default_broadcast_identity
    def test_raises_with_default_broadcast_identity(self, container_factory):
        class Service:
            name = "destservice"

            @event_handler(
                "srcservice", "eventtype", handler_type=BROADCAST, reliable_delivery=True
            )
            def foobar(self, evt):
                pass  # pragma: no cover

        container = container_factory(Service)
        # nameko refuses it as the container is built; shimeji as it starts
        with pytest.raises(EventHandlerConfigurationError, match="default broadcast identifier"):
            container.start()

    # follows nameko test/test_events.py::TestReliableDeliveryEventHandlerConfigurationError::test_no_raise_with_custom_identity
    def test_no_raise_with_custom_identity(self, container_factory):
        class Service:
            name = "destservice"

            @CustomBroadcastHandler.decorator(
                "srcservice", "eventtype", handler_type=BROADCAST, reliable_delivery=True
            )
            def foobar(self, evt):
                pass  # pragma: no cover

        container = container_factory(Service)
        container.start()
        (handler,) = container.entrypoints
        assert handler.reliable_delivery is True


# follows nameko test/test_events.py::test_dispatch_to_rabbit
def test_dispatch_to_rabbit(sim_cluster, container_factory):
    """An event goes, as JSON, to whatever queue is bound to the source's
    exchange for its type."""

    class Service:
        name = "srcservice"
        dispatch = EventDispatcher()

        @dummy
        def send(self):
            self.dispatch("eventtype", "msg")

    container = container_factory(Service)
    container.start()

    # an exchange, no queues
    bus = sim_cluster.bus
    assert "srcservice.events" in bus.exchanges
    assert list(bus.queues) == []

    # a queue of the test's own captures the events, as nameko's test adds one
    bus.declare_queue("event-sink", auto_delete=True)
    bus.bind_queue("event-sink", "srcservice.events", "eventtype")

    with entrypoint_hook(container, "send") as send:
        send()

    sim_cluster.advance(1)
    assert [queued.message.body for queued in bus.queues["event-sink"].ready] == [b'"msg"']
