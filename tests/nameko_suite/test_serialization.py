"""Serializers on the simulator, test by test after nameko's own.

Each test names the nameko test whose behaviour it checks. Where nameko sniffs
the broker with a queue of its own, these read the messages from the
cluster's trace (``publish`` and ``reply`` rows carry them).
"""

from __future__ import annotations

import json
from unittest.mock import Mock, call

import pytest
import yaml

from shimeji.events import EventDispatcher, event_handler
from shimeji.exceptions import ConfigurationError, RemoteError
from shimeji.rpc import RpcProxy, rpc
from shimeji.standalone import ServiceRpcProxy, event_dispatcher
from shimeji.testing.services import entrypoint_hook, entrypoint_waiter

pytest_plugins = ["shimeji.testing.nameko_fixtures"]

entrypoint_called = Mock()


@pytest.fixture(autouse=True)
def reset_mock():
    yield
    entrypoint_called.reset_mock()


test_data = {"hello": ("world",), 123: 456, "abc": [7, 8, 9], "foobar": 1.5}

serialized_info = {
    "json": {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "data": json.loads(json.dumps(test_data)),
    },
    "pickle": {
        "content_type": "application/x-python-serialize",
        "content_encoding": "binary",
        "data": test_data,
    },
}

unserializable = object()


def compact_json(value):
    """JSON as shimeji writes it: without kombu's spaces after ``,`` and ``:`` (the
    one change to nameko's tests here; docs/fidelity.md)."""
    return json.dumps(value, separators=(",", ":"))


class Service:
    name = "service"

    @rpc
    def echo(self, arg):
        entrypoint_called(arg)
        return arg

    @rpc
    def broken(self):
        return unserializable


def published(sim_cluster, kind=None, routing_key=None):
    """The messages of the trace's ``kind`` rows (``publish`` and ``dispatch`` unless
    given)."""
    kinds = (kind,) if kind else ("publish", "dispatch")
    messages = [row.message for row in sim_cluster.trace.events if row.kind in kinds]
    if routing_key is not None:
        messages = [m for m in messages if m.routing_key == routing_key]
    return messages


# follows nameko test/test_serialization.py::test_rpc_serialization
@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_rpc_serialization(container_factory, rabbit_config, sim_cluster, serializer):
    config = rabbit_config
    config["serializer"] = serializer
    container = container_factory(Service, config)
    container.start()
    serialized = serialized_info[serializer]
    with ServiceRpcProxy("service", rabbit_config) as proxy:
        assert proxy.echo(test_data) == serialized["data"]
        assert entrypoint_called.call_args == call(serialized["data"])
    msg = published(sim_cluster, routing_key="service.echo")[0]
    assert msg.content_type == serialized["content_type"]
    assert msg.content_encoding == serialized["content_encoding"]


# follows nameko test/test_serialization.py::test_rpc_result_serialization_error
def test_rpc_result_serialization_error(container_factory, rabbit_config):
    container = container_factory(Service, rabbit_config)
    container.start()
    with ServiceRpcProxy("service", rabbit_config) as proxy:
        with pytest.raises(RemoteError) as exc:
            proxy.broken()
        assert exc.value.exc_type == "UnserializableValueError"
        assert proxy.echo("foo") == "foo"  # later calls work


# follows nameko test/test_serialization.py::test_rpc_arg_serialization_error
def test_rpc_arg_serialization_error(container_factory, rabbit_config):
    container = container_factory(Service, rabbit_config)
    container.start()
    with ServiceRpcProxy("service", rabbit_config) as proxy:
        with pytest.raises(Exception):  # noqa: B017 - nameko's test asks no more
            proxy.echo(unserializable)
        assert proxy.echo("foo") == "foo"


# follows nameko test/test_serialization.py::test_event_serialization
@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_event_serialization(container_factory, rabbit_config, sim_cluster, serializer):
    handler_called = Mock()

    class EventService:
        name = "srcservice"
        dispatch = EventDispatcher()

        @rpc
        def dispatch_event(self, payload):
            self.dispatch("eventtype", payload)

        @event_handler("srcservice", "eventtype")
        def handle_event(self, event_data):
            handler_called(event_data)

    rabbit_config["serializer"] = serializer
    container = container_factory(EventService, rabbit_config)
    container.start()
    serialized = serialized_info[serializer]
    with (
        entrypoint_waiter(container, "handle_event"),
        entrypoint_hook(container, "dispatch_event") as dispatch_event,
    ):
        dispatch_event(test_data)
    assert handler_called.call_args == call(serialized["data"])
    msg = published(sim_cluster, routing_key="eventtype")[0]
    assert msg.content_type == serialized["content_type"]


def upperjson_encode(value):
    return json.dumps(value).upper()


def upperjson_decode(value):
    return json.loads(value.lower())


# follows nameko test/test_serialization.py::test_custom_serializer
def test_custom_serializer(container_factory, rabbit_config, sim_cluster):
    class EchoService:
        name = "service"

        @rpc
        def echo(self, arg):
            return arg

    rabbit_config["serializer"] = "upperjson"
    rabbit_config["SERIALIZERS"] = {
        "upperjson": {
            "encoder": f"{__name__}.upperjson_encode",
            "decoder": f"{__name__}.upperjson_decode",
            "content_type": "application/x-upper-json",
        }
    }
    container = container_factory(EchoService, rabbit_config)
    container.start()
    with ServiceRpcProxy("service", rabbit_config) as proxy:
        assert proxy.echo("hello") == "hello"
    msg = published(sim_cluster, "reply")[0]
    assert b'"RESULT": "HELLO"' in msg.body
    assert msg.content_type == "application/x-upper-json"


# follows nameko test/test_serialization.py::test_missing_serializers
@pytest.mark.parametrize(
    "config",
    (
        {"serializer": "unknown"},
        {"ACCEPT": ["json", "unknown"]},
        {"serializer": "json", "ACCEPT": ["json", "unknown"]},
    ),
)
def test_missing_serializers(container_factory, rabbit_config, config):
    rabbit_config.update(config)
    with pytest.raises(ConfigurationError) as exc:
        container_factory(Service, rabbit_config)
    # nameko's sentence, then the known serializers (see docs/fidelity.md)
    assert str(exc.value).startswith('Please register a serializer for "unknown" format')


# follows nameko test/test_serialization.py::test_standalone_rpc_accepts_multiple_serialization_formats
@pytest.mark.parametrize(
    ("serializer", "content_type", "encode"),
    (("json", "application/json", compact_json), ("yaml", "application/x-yaml", yaml.dump)),
)
def test_standalone_rpc_accepts_multiple_serialization_formats(
    container_factory, rabbit_config, sim_cluster, serializer, content_type, encode
):
    called = Mock()

    class EchoingService:
        name = "echoer"

        @rpc
        def echo(self, payload):
            called(payload)
            return payload

    echoer_config = {**rabbit_config, "serializer": "json", "ACCEPT": ["json", "yaml"]}
    echoer = container_factory(EchoingService, echoer_config)
    echoer.start()
    payload = {"spam": "ham"}
    proxy_config = {**rabbit_config, "serializer": serializer}
    with ServiceRpcProxy("echoer", proxy_config) as proxy:
        assert proxy.echo(payload) == payload
    msg = published(sim_cluster, routing_key="echoer.echo").pop()
    assert encode(payload) in msg.body.decode()
    assert msg.content_type == content_type
    assert called.mock_calls == [call(payload)]


# follows nameko test/test_serialization.py::test_rpc_accepts_multiple_serialization_formats
@pytest.mark.parametrize(
    ("serializer", "content_type", "encode"),
    (("json", "application/json", compact_json), ("yaml", "application/x-yaml", yaml.dump)),
)
def test_rpc_accepts_multiple_serialization_formats(
    container_factory, rabbit_config, sim_cluster, serializer, content_type, encode
):
    called = Mock()

    class ForwardingService:
        name = "forwarder"
        echoer = RpcProxy("echoer")

        @rpc
        def forward(self, payload):
            return self.echoer.echo(payload)

    class EchoingService:
        name = "echoer"

        @rpc
        def echo(self, payload):
            called(payload)
            return payload

    echoer = container_factory(
        EchoingService, {**rabbit_config, "serializer": "json", "ACCEPT": ["json", "yaml"]}
    )
    echoer.start()
    forwarder = container_factory(ForwardingService, {**rabbit_config, "serializer": serializer})
    forwarder.start()
    payload = {"spam": "ham"}
    with entrypoint_hook(forwarder, "forward") as echo:
        assert echo(payload) == payload
    msg = published(sim_cluster, routing_key="echoer.echo").pop()
    assert encode(payload) in msg.body.decode()
    assert msg.content_type == content_type
    assert called.mock_calls == [call(payload)]


# follows nameko test/test_serialization.py::test_events_accepts_multiple_serialization_formats
@pytest.mark.parametrize(
    ("serializer", "content_type", "encode"),
    (("json", "application/json", compact_json), ("yaml", "application/x-yaml", yaml.dump)),
)
def test_events_accepts_multiple_serialization_formats(
    container_factory, rabbit_config, sim_cluster, serializer, content_type, encode
):
    called = Mock()

    class PublishingService:
        name = "publisher"
        dispatch = EventDispatcher()

        @rpc
        def publish(self, payload):
            self.dispatch("event_type", payload)

    class ConsumingService:
        name = "consumer"

        @event_handler("publisher", "event_type")
        def handle_event(self, payload):
            called(payload)

    consumer = container_factory(
        ConsumingService, {**rabbit_config, "serializer": "json", "ACCEPT": ["json", "yaml"]}
    )
    consumer.start()
    publisher = container_factory(PublishingService, {**rabbit_config, "serializer": serializer})
    publisher.start()
    payload = {"spam": "ham"}
    with (
        entrypoint_waiter(consumer, "handle_event"),
        entrypoint_hook(publisher, "publish") as publish,
    ):
        publish(payload)
    msg = published(sim_cluster, routing_key="event_type").pop()
    assert encode(payload) in msg.body.decode()
    assert msg.content_type == content_type
    assert called.mock_calls == [call(payload)]


def test_a_standalone_dispatcher_sends_in_its_own_serializer(
    container_factory, rabbit_config, sim_cluster
):
    """As the proxies do: ``event_dispatcher`` given ``serializer: yaml`` sends YAML,
    which a handler accepting YAML reads."""
    called = Mock()

    class ConsumingService:
        name = "consumer"

        @event_handler("publisher", "event_type")
        def handle_event(self, payload):
            called(payload)

    consumer = container_factory(
        ConsumingService, {**rabbit_config, "serializer": "json", "ACCEPT": ["json", "yaml"]}
    )
    consumer.start()
    dispatch = event_dispatcher({**rabbit_config, "serializer": "yaml"})
    with entrypoint_waiter(consumer, "handle_event"):
        dispatch("publisher", "event_type", {"spam": (1, 2)})
    assert called.mock_calls == [call({"spam": [1, 2]})]
    msg = published(sim_cluster, routing_key="event_type").pop()
    assert msg.content_type == "application/x-yaml"
