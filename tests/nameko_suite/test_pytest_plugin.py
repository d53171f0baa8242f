"""The nameko fixtures, test by test after nameko's ``test/testing/test_pytest_plugin.py``.

nameko runs the fixture tests in a pytest of their own (``testdir``) so
that it can count the broker connections left afterwards; on the simulator
there are none to count, and the tests run as they are. The tests of
nameko's command line options, its eventlet monkey-patching warning and its
broker-bound fixtures (``rabbit_manager``, ``get_message_from_queue``,
``fast_teardown``, ``predictable_call_ids``, ``websocket``) are not ported:
shimeji has none of them (docs/fidelity.md, "Testing tools against nameko").
"""

from __future__ import annotations

import socket

import pytest

from shimeji.rpc import rpc
from shimeji.standalone import ServiceRpcProxy
from shimeji.web import http

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class ServiceX:
    name = "x"

    @rpc
    def method(self):
        return "OK"


# follows nameko test/testing/test_pytest_plugin.py::test_empty_config
def test_empty_config(empty_config):
    assert empty_config == {}


# follows nameko test/testing/test_pytest_plugin.py::test_container_factory
def test_container_factory(container_factory, rabbit_config):
    container = container_factory(ServiceX, rabbit_config)
    container.start()

    with ServiceRpcProxy("x", rabbit_config) as proxy:
        assert proxy.method() == "OK"


# follows nameko test/testing/test_pytest_plugin.py::test_runner_factory
def test_runner_factory(runner_factory, rabbit_config):
    runner = runner_factory(rabbit_config, ServiceX)
    runner.start()

    with ServiceRpcProxy("x", rabbit_config) as proxy:
        assert proxy.method() == "OK"


# follows nameko test/testing/test_pytest_plugin.py::test_web_config
@pytest.mark.filterwarnings("ignore::shimeji.sim.UncontrolledEffectWarning")  # the connection
def test_web_config(web_config, web_config_port):
    # nameko binds a socket to the address to show it is free for its server;
    # here the fixture's real listener holds it already, and a client connects
    host, _, port = web_config["WEB_SERVER_ADDRESS"].rpartition(":")
    assert host and int(port) == web_config_port
    with socket.create_connection((host, web_config_port), timeout=30):
        pass


# follows nameko test/testing/test_pytest_plugin.py::test_web_session
def test_web_session(web_config, container_factory, web_session):
    class Service:
        name = "web"

        @http("GET", "/foo")
        def method(self, request):
            return "OK"

    container = container_factory(Service, web_config)
    container.start()

    assert web_session.get("/foo").status_code == 200
