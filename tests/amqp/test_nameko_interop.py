"""shimeji and nameko 2.14.1 on one broker, calling each other both ways.

nameko runs from its own virtualenv (.ci/nameko-venv.sh), in separate
processes; shimeji's services and clients run in this one.
"""

from __future__ import annotations

import pytest

from shimeji.contextdata import ContextDataProvider
from shimeji.exceptions import MethodNotFound, RemoteError
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc


class CallIds(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return list(worker_ctx.call_id_stack)


class ShimejiEcho:
    name = "shimeji_echo"

    context = ContextDataProvider()
    call_ids = CallIds()
    nameko = RpcProxy("nameko_greeter")

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
