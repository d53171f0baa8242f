"""RPC on the simulator, test by test after nameko's own ``test/test_rpc.py``.

Each test names the nameko test whose behaviour it checks. nameko's tests of
its consumer and reply listener internals (mocked queue consumers, patched
``handle_message``) have no counterpart here; its toxiproxy tests are ported
on simulated partitions in ``test_disconnections.py`` (docs/fidelity.md,
"Against nameko's own tests").
"""

from __future__ import annotations

import re

import pytest

from shimeji.events import event_handler
from shimeji.exceptions import (
    IncorrectSignature,
    MethodNotFound,
    RemoteError,
    UnknownService,
)
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc
from shimeji.standalone import ServiceRpcProxy
from shimeji.testing.services import entrypoint_hook

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class ExampleError(Exception):
    pass


hello = object()
translations = {"en": {hello: "hello"}, "fr": {hello: "bonjour"}}


class Translator(DependencyProvider):
    def get_dependency(self, worker_ctx):
        def translate(value):
            return translations[worker_ctx.data["language"]][value]

        return translate


class ExampleService:
    name = "exampleservice"

    translate = Translator()
    example_rpc = RpcProxy("exampleservice")
    unknown_rpc = RpcProxy("unknown_service")

    @rpc
    def task_a(self, *args, **kwargs):
        return "result_a"

    @rpc
    def task_b(self, *args, **kwargs):
        return "result_b"

    @rpc
    def call_async(self):
        res1 = self.example_rpc.task_a.call_async()
        res2 = self.example_rpc.task_b.call_async()
        res3 = self.example_rpc.echo.call_async()
        return [res2.result(), res1.result(), res3.result()]

    @rpc
    def call_unknown(self):
        return self.unknown_rpc.any_method()

    @rpc
    def echo(self, *args, **kwargs):
        return args, kwargs

    @rpc
    def say_hello(self):
        return self.translate(hello)

    # nameko's takes no argument (it would fail once an event came); shimeji
    # refuses such a handler when the service is added (docs/fidelity.md)
    @event_handler("srcservice", "eventtype")
    def async_task(self, payload):
        pass  # pragma: no cover

    @rpc
    def raises(self):
        raise ExampleError("error")


@pytest.fixture
def container(container_factory, rabbit_config):
    made = container_factory(ExampleService, rabbit_config)
    made.start()
    return made


# follows nameko test/test_rpc.py::test_rpc_args_kwargs
def test_rpc_args_kwargs(container):
    with entrypoint_hook(container, "echo") as echo:
        assert echo() == ((), {})
        assert echo("a", "b") == (("a", "b"), {})
        assert echo(foo="bar") == ((), {"foo": "bar"})
        assert echo("arg", kwarg="kwarg") == (("arg",), {"kwarg": "kwarg"})


# follows nameko test/test_rpc.py::test_rpc_context_data
def test_rpc_context_data(container):
    context_data = {"language": "en", "auth_token": "123456789"}
    with entrypoint_hook(container, "say_hello", context_data) as say_hello:
        assert say_hello() == "hello"
    context_data["language"] = "fr"
    with entrypoint_hook(container, "say_hello", context_data) as say_hello:
        assert say_hello() == "bonjour"


# follows nameko test/test_rpc.py::test_rpc_headers
def test_rpc_headers(container, rabbit_config, sim_cluster):
    context_data = {"language": "en", "otherheader": "othervalue"}
    with ServiceRpcProxy("exampleservice", rabbit_config, context_data) as proxy:
        proxy.say_hello()
    (delivered,) = [
        row.message
        for row in sim_cluster.trace.filter("deliver")
        if row.message.routing_key == "exampleservice.say_hello"
    ]
    headers = dict(delivered.headers)
    # nameko patches call ids to count from 0; shimeji's come from the seed
    (call_id,) = headers.pop("nameko.call_id_stack")
    assert re.fullmatch(r"standalone_rpc_proxy\.call\.[0-9a-f-]{36}", call_id)
    assert headers == {"nameko.language": "en", "nameko.otherheader": "othervalue"}


# follows nameko test/test_rpc.py::test_rpc_existing_method
def test_rpc_existing_method(container, rabbit_config):
    with ServiceRpcProxy("exampleservice", rabbit_config) as proxy:
        assert proxy.task_a() == "result_a"
        assert proxy.task_b() == "result_b"


# follows nameko test/test_rpc.py::test_async_rpc
def test_async_rpc(container):
    with entrypoint_hook(container, "call_async") as call_async:
        assert call_async() == ["result_b", "result_a", [[], {}]]


class SignatureService:
    name = "service"

    @rpc
    def no_args(self):
        pass

    @rpc
    def args_only(self, a):
        pass

    @rpc
    def kwargs_only(self, a=None):
        pass

    @rpc
    def star_args(self, *args):
        pass

    @rpc
    def star_kwargs(self, **kwargs):
        pass

    @rpc
    def args_star_args(self, a, *args):
        pass

    @rpc
    def args_star_kwargs(self, a, **kwargs):
        pass


# follows nameko test/test_rpc.py::test_rpc_incorrect_signature
@pytest.mark.parametrize(
    ("method_name", "args", "kwargs", "is_valid_call"),
    [
        ("no_args", (), {}, True),
        ("no_args", ("bad arg",), {}, False),
        ("args_only", ("arg",), {}, True),
        ("args_only", (), {"a": "arg"}, True),
        ("args_only", (), {"arg": "arg"}, False),
        ("kwargs_only", ("a",), {}, True),
        ("kwargs_only", (), {"a": "arg"}, True),
        ("kwargs_only", (), {"arg": "arg"}, False),
        ("star_args", ("a", "b"), {}, True),
        ("star_args", (), {"c": "c"}, False),
        ("star_kwargs", (), {"c": "c"}, True),
        ("star_kwargs", ("a", "b"), {}, False),
        ("args_star_args", ("a",), {}, True),
        ("args_star_args", ("a", "b"), {}, True),
        ("args_star_args", (), {}, False),
        ("args_star_args", (), {"c": "c"}, False),
        ("args_star_kwargs", ("a",), {}, True),
        ("args_star_kwargs", ("a", "b"), {}, False),
        ("args_star_kwargs", ("a", "b"), {"c": "c"}, False),
        ("args_star_kwargs", (), {}, False),
    ],
)
def test_rpc_incorrect_signature(
    container_factory, rabbit_config, method_name, args, kwargs, is_valid_call
):
    container_factory(SignatureService, rabbit_config).start()
    with ServiceRpcProxy("service", rabbit_config) as proxy:
        method = getattr(proxy, method_name)
        if not is_valid_call:
            with pytest.raises(IncorrectSignature):
                method(*args, **kwargs)
        else:
            method(*args, **kwargs)  # no raise


# follows nameko test/test_rpc.py::test_rpc_missing_method
def test_rpc_missing_method(container, rabbit_config):
    with (
        ServiceRpcProxy("exampleservice", rabbit_config) as proxy,
        pytest.raises(MethodNotFound) as exc_info,
    ):
        proxy.task_c()
    assert str(exc_info.value) == "task_c"


# follows nameko test/test_rpc.py::test_rpc_method_that_raises
def test_rpc_method_that_raises(container, rabbit_config):
    with (
        ServiceRpcProxy("exampleservice", rabbit_config) as proxy,
        pytest.raises(RemoteError) as exc_info,
    ):
        proxy.raises()
    assert exc_info.value.exc_type == "ExampleError"


# follows nameko test/test_rpc.py::test_rpc_unknown_service
def test_rpc_unknown_service(container, rabbit_config):
    with ServiceRpcProxy("exampleservice", rabbit_config) as proxy:
        assert proxy.task_a()
        with pytest.raises(RemoteError) as exc_info:
            proxy.call_unknown()
    assert exc_info.value.exc_type == "UnknownService"
    assert exc_info.value.value == "Unknown service `unknown_service`"


# follows nameko test/test_rpc.py::test_rpc_unknown_service_standalone
def test_rpc_unknown_service_standalone(rabbit_config, sim_cluster):
    with (
        ServiceRpcProxy("unknown_service", rabbit_config) as proxy,
        pytest.raises(UnknownService) as exc_info,
    ):
        proxy.anything()
    assert exc_info.value._service_name == "unknown_service"
