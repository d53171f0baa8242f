"""nameko's testing tools on either transport: entrypoint_hook and
entrypoint_waiter take a replica of the ``cluster`` fixture.

Run on RabbitMQ with ``pytest tests/conformance --shimeji-transport=amqp``.
"""

from __future__ import annotations

import pytest

from shimeji.contextdata import ContextDataProvider
from shimeji.events import event_handler
from shimeji.rpc import rpc
from shimeji.testing.services import entrypoint_hook, entrypoint_waiter


class Toolkit:
    name = "toolkit_probe"
    context = ContextDataProvider()

    @rpc
    def whoami(self, suffix):
        return f"{self.context.get('user_id')}{suffix}"

    @rpc
    def fail(self):
        raise LookupError("nothing here")

    @event_handler("toolkit_source", "poked")
    def poked(self, payload):
        return payload["n"] * 2


def test_hook_runs_a_method_on_a_replica(cluster):
    """The hook's worker sees its context data and returns (or raises) the method's outcome."""
    cluster.add_service(Toolkit)
    replica = cluster.replica("toolkit_probe-1")
    with entrypoint_hook(replica, "whoami", {"user_id": "u1"}, timeout=10) as whoami:
        assert whoami("!") == "u1!"
    with (
        pytest.raises(LookupError, match="nothing here"),
        entrypoint_hook(replica, "fail", timeout=10) as fail,
    ):
        fail()


def test_waiter_sees_an_event_handled(cluster):
    """The waiter ends once the handler has run, and holds its result."""
    cluster.add_service(Toolkit)
    replica = cluster.replica("toolkit_probe-1")
    with entrypoint_waiter(replica, "poked", timeout=10) as result:
        cluster.dispatch("toolkit_source", "poked", {"n": 21})
    assert result.get() == 42
