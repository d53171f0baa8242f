"""shimeji and nameko 2.14.1 on one broker, calling each other both ways.

nameko runs from its own virtualenv (.ci/nameko-venv.sh), in separate
processes; shimeji's services and clients run in this one.
"""

from __future__ import annotations

import time

import pytest

from shimeji.contextdata import ContextDataProvider
from shimeji.events import EventDispatcher, event_handler
from shimeji.exceptions import MethodNotFound, RemoteError
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc
from shimeji.standalone import event_dispatcher
from shimeji.testing.transports import AmqpCluster

EVENTS_SEEN: list[dict] = []


class CallIds(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return list(worker_ctx.call_id_stack)


class ShimejiEcho:
    name = "shimeji_echo"

    context = ContextDataProvider()
    call_ids = CallIds()
    nameko = RpcProxy("nameko_greeter")
    dispatch = EventDispatcher()

    @rpc
    def echo(self, value):
        return value

    @rpc
    def whoami(self):
        return {"context": dict(self.context), "stack": self.call_ids}

    @rpc
    def whoami_with(self, value):
        return {"value": value, "context": dict(self.context), "stack": self.call_ids}

    @rpc
    def fail(self, why):
        raise ValueError(why)

    @rpc
    def ask_nameko(self, name):
        return self.nameko.hello(name)

    @rpc
    def happen(self, payload):
        self.dispatch("shimeji_happened", payload)
        return self.call_ids

    @event_handler("nameko_greeter", "nameko_happened")
    def on_nameko(self, payload):
        EVENTS_SEEN.append(
            {"payload": payload, "context": dict(self.context), "stack": self.call_ids}
        )

    missing = RpcProxy("no_such_service")

    @rpc
    def call_missing(self):
        return self.missing.anything()

    @rpc
    def unserializable(self):
        return {"when": object()}

    @rpc
    def nameko_fails(self):
        try:
            self.nameko.fail("from shimeji")
        except RemoteError as exc:
            return {"exc_type": exc.exc_type, "value": exc.value, "path": exc.exc_path}
        return None


pytestmark = pytest.mark.usefixtures("nameko_service")


def test_nameko_client_calls_a_shimeji_service(interop_cluster, nameko_call):
    """A nameko ClusterRpcProxy calls a shimeji service: results, context data and the
    call id stack arrive."""
    interop_cluster.add_service(ShimejiEcho)
    context = {"user_id": "u-nameko", "language": "de"}
    echo, whoami = nameko_call(
        [
            {"service": "shimeji_echo", "method": "echo", "args": [{"n": [1, 2.5, None]}]},
            {"service": "shimeji_echo", "method": "whoami", "context": context},
        ]
    )
    assert echo == {"result": {"n": [1, 2.5, None]}}
    assert whoami["result"]["context"] == context
    stack = whoami["result"]["stack"]
    assert stack[0].startswith("standalone_rpc_proxy.call.")
    assert stack[1].startswith("shimeji_echo.whoami.")


def test_shimeji_errors_reach_a_nameko_client(interop_cluster, nameko_call):
    """A shimeji service's errors reach a nameko client as nameko RemoteErrors, and its
    request errors as nameko's own MethodNotFound and IncorrectSignature."""
    interop_cluster.add_service(ShimejiEcho)
    failed, missing, wrong = nameko_call(
        [
            {"service": "shimeji_echo", "method": "fail", "args": ["no luck"]},
            {"service": "shimeji_echo", "method": "nope"},
            {"service": "shimeji_echo", "method": "echo", "args": [1, 2]},
        ]
    )
    assert failed == {"error": "RemoteError", "exc_type": "ValueError", "value": "no luck"}
    # shimeji sends its request errors under nameko's paths: a nameko client
    # raises its own classes.
    assert missing == {"error": "MethodNotFound", "value": "nope"}
    assert wrong["error"] == "IncorrectSignature"


def test_namekos_own_errors_from_a_shimeji_service(interop_cluster, nameko_call):
    """A shimeji service that calls an unknown service, or returns what JSON cannot
    carry, answers a nameko client as a nameko service would: RemoteError
    UnknownService with nameko's text, UnserializableValueError starting with it."""
    interop_cluster.add_service(ShimejiEcho)
    unknown, unserializable = nameko_call(
        [
            {"service": "shimeji_echo", "method": "call_missing"},
            {"service": "shimeji_echo", "method": "unserializable"},
        ]
    )
    assert unknown == {
        "error": "RemoteError",
        "exc_type": "UnknownService",
        "value": "Unknown service `no_such_service`",
    }
    assert unserializable["exc_type"] == "UnserializableValueError"
    assert unserializable["value"].startswith("Unserializable value: `<object object at ")


def test_a_nameko_client_calls_in_yaml(broker_uri, interop_exchange, nameko_call):
    """A nameko client configured with ``serializer: yaml`` calls a shimeji service
    that accepts YAML only (so a request in JSON would be refused): kombu's YAML
    and shimeji's read each other, the reply in the request's format."""
    config = {"rpc_exchange": interop_exchange, "serializer": "yaml"}
    with AmqpCluster(broker_uri, config) as cluster:
        cluster.add_service(ShimejiEcho)
        (echoed, failed) = nameko_call(
            [
                {
                    "service": "shimeji_echo",
                    "method": "echo",
                    "args": [{"n": [1, 2.5, None, "x"]}],
                    "config": {"serializer": "yaml"},
                },
                {
                    "service": "shimeji_echo",
                    "method": "fail",
                    "args": ["in yaml"],
                    "config": {"serializer": "yaml"},
                },
            ]
        )
    assert echoed == {"result": {"n": [1, 2.5, None, "x"]}}
    assert failed == {"error": "RemoteError", "exc_type": "ValueError", "value": "in yaml"}


def test_shimeji_client_calls_a_nameko_service(interop_cluster):
    """A shimeji client calls a nameko service; context data and call ids arrive."""
    client = interop_cluster.rpc_proxy(context_data={"user_id": "u-shimeji"})
    reply = client.nameko_greeter.hello("world")
    assert reply["greeting"] == "hello world"
    assert reply["context"] == {"user_id": "u-shimeji"}
    assert reply["stack"][0].startswith("standalone_rpc_proxy.call.")
    assert reply["stack"][1].startswith("nameko_greeter.hello.")


def test_nameko_errors_reach_a_shimeji_client(interop_cluster):
    """A nameko service's errors reach a shimeji client: RemoteError with nameko's
    fields, and nameko's MethodNotFound as shimeji's."""
    with pytest.raises(RemoteError) as caught:
        interop_cluster.rpc.nameko_greeter.fail("bad input")
    assert (caught.value.exc_type, caught.value.value) == ("ValueError", "bad input")
    assert caught.value.exc_path == "builtins.ValueError"
    with pytest.raises(MethodNotFound):
        interop_cluster.rpc.nameko_greeter.no_such_method()


def test_shimeji_service_proxy_calls_a_nameko_service(interop_cluster):
    """A shimeji service's RpcProxy calls a nameko service; context data and the
    call id stack travel through both."""
    interop_cluster.add_service(ShimejiEcho)
    client = interop_cluster.rpc_proxy(context_data={"user_id": "u-chain"})
    reply = client.shimeji_echo.ask_nameko("chain")
    assert reply["greeting"] == "hello chain"
    assert reply["context"] == {"user_id": "u-chain"}
    assert [entry.split(".")[0] for entry in reply["stack"]] == [
        "standalone_rpc_proxy",
        "shimeji_echo",
        "nameko_greeter",
    ]
    errors = client.shimeji_echo.nameko_fails()
    assert errors == {
        "exc_type": "ValueError",
        "value": "from shimeji",
        "path": "builtins.ValueError",
    }


def test_nameko_service_proxy_calls_a_shimeji_service(interop_cluster):
    """A nameko service's RpcProxy calls a shimeji service, passing context on; a
    shimeji error reaches the nameko worker as a RemoteError."""
    interop_cluster.add_service(ShimejiEcho)
    client = interop_cluster.rpc_proxy(context_data={"user_id": "u-back"})
    reply = client.nameko_greeter.via_shimeji(7)
    assert reply["value"] == 7
    assert reply["context"] == {"user_id": "u-back"}
    assert [entry.split(".")[0] for entry in reply["stack"]] == [
        "standalone_rpc_proxy",
        "nameko_greeter",
        "shimeji_echo",
    ]
    assert client.nameko_greeter.shimeji_error() == {
        "exc_type": "ValueError",
        "value": "from nameko",
    }


# -- events ------------------------------------------------------------------------------


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def events_seen():
    EVENTS_SEEN.clear()
    yield EVENTS_SEEN
    EVENTS_SEEN.clear()


def nameko_events_seen(cluster, count):
    seen: list = []

    def enough():
        seen[:] = cluster.rpc.nameko_greeter.events_seen()
        return len(seen) >= count

    wait_for(enough)
    return seen


def test_a_nameko_event_reaches_a_shimeji_handler(interop_cluster, events_seen):
    """A nameko service's EventDispatcher reaches a shimeji @event_handler, with
    the context data and the call id stack of the nameko worker."""
    interop_cluster.add_service(ShimejiEcho)
    client = interop_cluster.rpc_proxy(context_data={"user_id": "u-evt"})
    dispatcher_stack = client.nameko_greeter.emit("nameko_happened", {"n": 1})
    wait_for(lambda: events_seen)
    seen = events_seen[0]
    assert seen["payload"] == {"n": 1}
    assert seen["context"] == {"user_id": "u-evt"}
    assert seen["stack"][:-1] == dispatcher_stack
    assert seen["stack"][-1].startswith("shimeji_echo.on_nameko.")


def test_a_shimeji_event_reaches_a_nameko_handler(interop_cluster):
    """A shimeji service's EventDispatcher reaches a nameko @event_handler, with
    context data and call id stack."""
    interop_cluster.add_service(ShimejiEcho)
    before = len(interop_cluster.rpc.nameko_greeter.events_seen())
    client = interop_cluster.rpc_proxy(context_data={"user_id": "u-shimeji"})
    dispatcher_stack = client.shimeji_echo.happen({"n": 2})
    seen = nameko_events_seen(interop_cluster, before + 1)[before]
    assert seen["payload"] == {"n": 2}
    assert seen["context"] == {"user_id": "u-shimeji"}
    assert seen["stack"][:-1] == dispatcher_stack
    assert seen["stack"][-1].startswith("nameko_greeter.on_shimeji.")


def test_nameko_standalone_dispatcher_reaches_a_shimeji_handler(
    interop_cluster, nameko_dispatch, events_seen
):
    """nameko's standalone event_dispatcher (which declares no exchange) reaches
    a shimeji handler, whose start declared the exchange."""
    interop_cluster.add_service(ShimejiEcho)
    nameko_dispatch("nameko_greeter", "nameko_happened", {"n": 3})
    wait_for(lambda: events_seen)
    assert events_seen[0]["payload"] == {"n": 3}
    assert events_seen[0]["context"] == {}
    assert len(events_seen[0]["stack"]) == 1


def test_shimeji_standalone_dispatcher_reaches_a_nameko_handler(interop_cluster, broker_uri):
    """shimeji's standalone event_dispatcher reaches a nameko handler, with the
    context data it was given."""
    before = len(interop_cluster.rpc.nameko_greeter.events_seen())
    with event_dispatcher({"AMQP_URI": broker_uri}, context_data={"user_id": "u-out"}) as send:
        send("shimeji_echo", "shimeji_happened", {"n": 4})
    seen = nameko_events_seen(interop_cluster, before + 1)[before]
    assert seen["payload"] == {"n": 4}
    assert seen["context"] == {"user_id": "u-out"}
    assert seen["stack"][0].startswith("nameko_greeter.on_shimeji.")
