"""Serializers, stated once and run on the simulator and on RabbitMQ: YAML, pickle
when accepted, and the application's own (``SERIALIZERS``), for calls and events.
"""

from __future__ import annotations

import json

import pytest

from shimeji.exceptions import RemoteError, UnserializableValueError
from tests.conformance.event_services import SEEN, Email, Orders, seen
from tests.conformance.services import Calculator
from tests.conformance.test_rpc import wait_until

UPPER_JSON = {
    "upperjson": {
        "encoder": "tests.conformance.test_serialization.upperjson_encode",
        "decoder": "tests.conformance.test_serialization.upperjson_decode",
        "content_type": "application/x-upper-json",
    }
}


def upperjson_encode(value):
    """JSON written backwards (the name is nameko's test's): not JSON on the wire."""
    return json.dumps(value)[::-1]


def upperjson_decode(text):
    return json.loads(text[::-1])


@pytest.fixture(autouse=True)
def clear_seen():
    SEEN.clear()
    yield
    SEEN.clear()


def test_yaml_carries_calls_and_keeps_integer_keys(cluster_factory):
    """With ``serializer: yaml`` requests and replies are YAML: integer keys come
    back as integers (JSON would make them strings), tuples as lists."""
    cluster = cluster_factory({"serializer": "yaml"})
    cluster.add_service(Calculator)
    assert cluster.rpc.calculator.echo({"t": (1, 2), 3: "three"}) == {"t": [1, 2], 3: "three"}
    assert cluster.rpc.calculator.add(2, 3) == 5


def test_yaml_refuses_what_it_cannot_carry(cluster_factory):
    """An argument YAML cannot carry is refused before sending, naming where; a result
    becomes nameko's UnserializableValueError reply, and the replica serves on."""
    cluster = cluster_factory({"serializer": "yaml"})
    cluster.add_service(Calculator)
    with pytest.raises(UnserializableValueError) as refused:
        cluster.rpc.calculator.echo({"when": object()})
    assert refused.value.where == "argument 1 of calculator.echo['when']"
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.calculator.unserializable()
    assert caught.value.exc_type == "UnserializableValueError"
    assert caught.value.value.startswith("Unserializable value: `")
    assert cluster.rpc.calculator.add(1, 1) == 2


def test_an_application_serializer_from_the_config(cluster_factory):
    """A serializer declared in SERIALIZERS (nameko's shape) carries calls both ways."""
    cluster = cluster_factory(
        {"serializer": "upperjson", "SERIALIZERS": UPPER_JSON},
        extra_config_keys=(),
    )
    cluster.add_service(Calculator)
    assert cluster.rpc.calculator.echo("hello") == "hello"
    assert cluster.rpc.calculator.echo({"a": [1, None, True]}) == {"a": [1, None, True]}


def test_an_application_serializer_that_fails(cluster_factory):
    """Its encoder failing is an UnserializableValueError saying so."""
    cluster = cluster_factory({"serializer": "upperjson", "SERIALIZERS": UPPER_JSON})
    cluster.add_service(Calculator)
    with pytest.raises(UnserializableValueError, match="upperjson serializer's encoder failed"):
        cluster.rpc.calculator.echo({1, 2})
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.calculator.unserializable()
    assert caught.value.exc_type == "UnserializableValueError"
    assert caught.value.value.startswith("Unserializable value: `<object object at ")
    assert "in the return value of calculator.unserializable['when']: the upperjson " in (
        caught.value.value
    )


@pytest.mark.parametrize(
    "config",
    [
        {"serializer": "yaml"},
        {"serializer": "pickle"},
        {"serializer": "upperjson", "SERIALIZERS": UPPER_JSON},
    ],
    ids=["yaml", "pickle", "custom"],
)
def test_events_in_the_configured_format(cluster_factory, config):
    """Events go in the configured serializer too, context data and all."""
    cluster = cluster_factory(config)
    cluster.add_service(Orders)
    cluster.add_service(Email)
    cluster.rpc_proxy(context_data={"user_id": "u1"}).orders.place(3)
    wait_until(cluster, lambda: seen("email"))
    order, _, user, _ = seen("email")[0]
    assert (order, user) == (3, "u1")


def test_pickle_keeps_python_types(cluster_factory):
    """pickle (once chosen, it is accepted) carries tuples, sets and integer keys."""
    cluster = cluster_factory({"serializer": "pickle"})
    cluster.add_service(Calculator)
    value = {"t": (1, 2), "s": {3, 4}, 5: "five"}
    assert cluster.rpc.calculator.echo(value) == value
