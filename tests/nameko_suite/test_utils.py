"""``shimeji.testing.utils``, test by test after nameko's ``test/testing/test_utils.py``.

nameko's tests of its RabbitMQ management helpers, ``find_free_port``,
``ResourcePipeline``, ``AnyInstanceOf`` and the deprecated
``wait_for_worker_idle`` are not ported: shimeji provides none of them
(docs/fidelity.md, "Against nameko's own tests").
"""

from __future__ import annotations

import time
from unittest.mock import Mock

import pytest

from shimeji.extensions import SharedExtension
from shimeji.rpc import Rpc, rpc
from shimeji.testing.services import once
from shimeji.testing.utils import get_container, get_extension, wait_for_call
from shimeji.testing.waiting import Timeout

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


# follows nameko test/testing/test_utils.py::test_wait_for_call
def test_wait_for_call(container_factory):
    mock = Mock()

    def call_after(seconds):
        class Caller:
            name = f"caller_{len(mock.mock_calls)}_{seconds}"

            @once()
            def go(self):
                time.sleep(seconds)
                mock.method()

        container_factory(Caller).start()

    call_after(0)
    with wait_for_call(1, mock.method) as method:
        pass
    assert method is mock.method

    mock.reset_mock()

    t0 = time.time()
    with pytest.raises(Timeout) as raised:
        call_after(1)
        with wait_for_call(0, mock.method):
            pass  # pragma: no cover
    assert str(raised.value) == "0 seconds"  # eventlet.Timeout's text
    assert time.time() == t0  # a timeout of 0 lets no virtual time pass
    assert not mock.method.called


# follows nameko test/testing/test_utils.py::test_get_extension
def test_get_extension(container_factory, rabbit_config):
    class Service:
        name = "service"

        @rpc
        def foo(self):
            pass  # pragma: no cover

        @rpc
        def bar(self):
            pass  # pragma: no cover

    container = container_factory(Service, rabbit_config)

    rpc_consumer = get_extension(container, SharedExtension)
    foo_rpc = get_extension(container, Rpc, method_name="foo")
    bar_rpc = get_extension(container, Rpc, method_name="bar")

    # nameko's set holds a QueueConsumer too: shimeji's RPC consumer (a shared
    # extension, not public) consumes itself
    assert set(container.extensions) == {rpc_consumer, foo_rpc, bar_rpc}
    assert (foo_rpc.method_name, bar_rpc.method_name) == ("foo", "bar")


# follows nameko test/testing/test_utils.py::test_get_container
def test_get_container(runner_factory, rabbit_config):
    class ServiceX:
        name = "service_x"

    class ServiceY:
        name = "service_y"

    runner = runner_factory(rabbit_config, ServiceX, ServiceY)

    assert get_container(runner, ServiceX).service_cls is ServiceX
    assert get_container(runner, ServiceY).service_cls is ServiceY
    assert get_container(runner, object) is None
