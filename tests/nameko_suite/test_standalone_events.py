"""The standalone event dispatcher, test by test after nameko's
``test/standalone/test_event_dispatcher.py``.

Not ported: mandatory delivery and the AMQP publish options
(``TestMandatoryDelivery`` but its first test, ``TestConfigurability``),
which shimeji's ``event_dispatcher`` does not take, and ``TestSSL``
(tests/amqp covers the broker's connections). docs/fidelity.md says why.
"""

from __future__ import annotations

from unittest.mock import Mock

import pytest

from shimeji.events import event_handler
from shimeji.standalone import event_dispatcher
from shimeji.testing.services import entrypoint_waiter

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


handler_called = Mock()


class Service:
    name = "destservice"

    @event_handler("srcservice", "testevent")
    def handler(self, msg):
        handler_called(msg)


@pytest.fixture(autouse=True)
def reset():
    handler_called.reset_mock()


# follows nameko test/standalone/test_event_dispatcher.py::test_dispatch
def test_dispatch(container_factory, rabbit_config):
    container = container_factory(Service, rabbit_config)
    container.start()

    dispatch = event_dispatcher(rabbit_config)
    with entrypoint_waiter(container, "handler", timeout=1):
        dispatch("srcservice", "testevent", "msg")
    handler_called.assert_called_once_with("msg")


# follows nameko test/standalone/test_event_dispatcher.py::TestMandatoryDelivery::test_default
def test_events_are_not_mandatory(container_factory, rabbit_config, sim_cluster):
    """An event no queue is bound for is dropped without an error."""
    container = container_factory(Service, rabbit_config)
    container.start()

    dispatch = event_dispatcher(rabbit_config)
    dispatch("srcservice", "bogus", "payload")
    sim_cluster.advance(1)
    assert not handler_called.called
