"""HTTP gateways in front of the other framework's services, through real HTTP
on one broker: nameko 2.14.1's @http calling a shimeji service, and a shimeji
@http route (served by ``shimeji run``) calling a nameko service.

nameko runs from its own virtualenv (.ci/nameko-venv.sh), in processes of its
own (tests/amqp/nameko_side.py).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from .http_client import write_config
from .processes import ServiceProcess, free_port, nameko_side
from .test_nameko_interop import ShimejiEcho


def get(port: int, method: str, path: str, body: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        got = conn.getresponse()
        return got.status, got.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def nameko_gateway(broker_uri: str, nameko_python: str, interop_exchange: str) -> Iterator[int]:
    """nameko's @http gateway (``nameko_gateway``) in its own process; its port."""
    port = free_port()
    args = ("gateway", broker_uri, interop_exchange, str(port))
    with nameko_side(nameko_python, *args, what="the nameko gateway"):
        yield port


def test_a_nameko_gateway_calls_a_shimeji_service(interop_cluster, nameko_gateway):
    """nameko's @http route calls a shimeji service over RPC: the result comes
    back in the HTTP answer, with the call id stack running through both."""
    interop_cluster.add_service(ShimejiEcho)
    status, body = get(nameko_gateway, "GET", "/whoami/seven")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["backend"]["value"] == "seven"
    assert [entry.split(".")[:2] for entry in answer["backend"]["stack"]] == [
        ["nameko_gateway", "whoami"],
        ["shimeji_echo", "whoami_with"],
    ]
    status, body = get(nameko_gateway, "POST", "/echo", json.dumps({"n": [1, 2.5, None]}).encode())
    assert (status, json.loads(body)) == (200, {"n": [1, 2.5, None]})


def test_nameko_http_takes_no_context_from_headers(interop_cluster, nameko_gateway):
    """nameko 2.14.1's @http reads no context data from ``nameko.*`` headers
    (its WebServer.context_data_from_headers gives {}): the shimeji service
    behind it sees none. (shimeji's @http does read them: see below.)"""
    interop_cluster.add_service(ShimejiEcho)
    headers = {"nameko.user_id": "u-http", "nameko.language": "fr"}
    status, body = get(nameko_gateway, "GET", "/whoami/x", headers=headers)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["gateway_context"] == {}
    assert answer["backend"]["context"] == {}


def test_a_shimeji_error_reaches_the_nameko_gateway_as_a_remote_error(
    interop_cluster, nameko_gateway
):
    """A shimeji service's error reaches nameko's route as a RemoteError, which
    nameko answers 500 with its ``Error: <type>: <message>`` body."""
    interop_cluster.add_service(ShimejiEcho)
    status, body = get(nameko_gateway, "GET", "/fail")
    assert (status, body) == (500, b"Error: RemoteError: ValueError through the gateway\n")


@pytest.fixture(scope="module")
def shimeji_gateway(
    broker_uri: str, interop_exchange: str, nameko_service, tmp_path_factory
) -> Iterator[int]:
    """``shimeji run`` serving the shimeji gateway in front of ``nameko_greeter``."""
    port = free_port()
    config = write_config(
        tmp_path_factory.mktemp("gateway") / "config.yaml", broker_uri, interop_exchange, port
    )
    process = ServiceProcess("tests.amqp.interop_gateway", config=config)
    try:
        process.wait_ready()
        yield port
    finally:
        code = process.stop()
    assert code == 0, "".join(process.lines)


@pytest.mark.parametrize("header", ["nameko.user_id", "nameko.user-id", "NAMEKO.USER_ID"])
def test_a_shimeji_gateway_calls_a_nameko_service_with_context_from_headers(
    shimeji_gateway, header
):
    """A shimeji @http route calls a nameko service over RPC; a ``nameko.*``
    request header becomes context data (``_`` or ``-``, any case: the key
    ``user_id``) and reaches the nameko worker, call id stack and all."""
    status, body = get(
        shimeji_gateway, "GET", "/hello/world", headers={header: "u-7", "nameko.language": "de"}
    )
    assert status == 200, body
    answer = json.loads(body)
    context = {"user_id": "u-7", "language": "de"}
    assert answer["gateway_context"] == context
    assert answer["backend"]["greeting"] == "hello world"
    assert answer["backend"]["context"] == context
    assert [entry.split(".")[:2] for entry in answer["backend"]["stack"]] == [
        ["shimeji_gateway", "hello"],
        ["nameko_greeter", "hello"],
    ]


def test_a_call_id_stack_header_reaches_the_nameko_service(shimeji_gateway):
    """``nameko.call_id_stack`` names the callers before the gateway."""
    headers = {"nameko.call_id_stack": '["edge.proxy.abc"]'}
    status, body = get(shimeji_gateway, "GET", "/hello/stack", headers=headers)
    assert status == 200, body
    stack = json.loads(body)["backend"]["stack"]
    assert stack[0] == "edge.proxy.abc"
    assert [entry.split(".")[0] for entry in stack[1:]] == ["shimeji_gateway", "nameko_greeter"]


def test_nameko_errors_reach_the_shimeji_gateway(shimeji_gateway):
    """A nameko service's error reaches the shimeji route as a RemoteError with
    nameko's fields. One the route lets through is answered 500, named by the
    original type: shimeji serializes a RemoteError as the error it carries,
    where nameko's route answers ``Error: RemoteError: ValueError unhandled``
    (see the nameko gateway's answer above)."""
    status, body = get(shimeji_gateway, "GET", "/fail/no%20luck")
    assert (status, json.loads(body)) == (409, {"exc_type": "ValueError", "value": "no luck"})
    status, body = get(shimeji_gateway, "GET", "/crash")
    assert (status, body) == (500, b"Error: ValueError: unhandled\n")
