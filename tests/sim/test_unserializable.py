"""Values JSON cannot carry: the error names the user's type and the place in the
user's terms (an argument, a return value), and says what to do instead."""

from __future__ import annotations

import datetime
import decimal

import pytest

from shimeji.exceptions import RemoteError, UnserializableValueError
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster


class Orders:
    name = "orders"

    @rpc
    def get(self, order_id):
        return {"id": order_id, "when": datetime.datetime.now()}

    @rpc
    def total(self):
        return [decimal.Decimal("9.99")]


class Front:
    name = "front"
    orders = RpcProxy("orders")

    @rpc
    def forward(self):
        return self.orders.get(order_id={"placed": datetime.date.today()})


def test_a_returned_datetime_is_named_as_such_under_virtual_time():
    """datetime.now() returns freezegun's FakeDatetime in a simulation: the error says
    datetime.datetime, says where in the return value, and what to send instead."""
    with SimCluster() as cluster:
        cluster.add_service(Orders)
        with pytest.raises(RemoteError) as caught:
            cluster.rpc.orders.get(7)
    assert caught.value.exc_type == "UnserializableValueError"
    assert caught.value.value == (  # nameko's text first, then where and what to do
        "Unserializable value: `datetime.datetime(2024, 1, 1, 0, 0, 0, 1000)` in the return "
        "value of orders.get['when']: datetime.datetime is not a JSON type: "
        "send value.isoformat(), an ISO 8601 string, instead, or configure a serializer that "
        "can carry it (the serializer setting)"
    )
    assert "Fake" not in caught.value.value and "['result']" not in caught.value.value


def test_an_argument_is_named_by_position_or_keyword():
    """At the caller: 'argument 2 of service.method', 'argument name= of ...'."""
    with SimCluster() as cluster:
        cluster.add_service(Orders)
        with pytest.raises(UnserializableValueError) as caught:
            cluster.rpc.orders.get(1, {"at": datetime.datetime.now()})
        assert caught.value.where == "argument 2 of orders.get['at']"
        assert caught.value.path == ("args", 1, "at")
        assert caught.value.value.__class__.__name__ == "FakeDatetime"  # the value itself
        assert str(caught.value).startswith(
            "argument 2 of orders.get['at'] cannot be sent: datetime.datetime(2024, 1, 1, "
        )
        with pytest.raises(UnserializableValueError, match=r"^argument order_id= of orders\.get "):
            cluster.rpc.orders.get(order_id=datetime.time(12, 0))


def test_a_nested_call_and_other_types_say_what_to_do():
    """Through a service: its own call's argument is named; a Decimal gets its advice."""
    with SimCluster() as cluster:
        cluster.add_service(Orders)
        cluster.add_service(Front)
        with pytest.raises(RemoteError) as nested:
            cluster.rpc.front.forward()
        assert nested.value.value.startswith(
            "Unserializable value: `datetime.date(2024, 1, 1)` in argument order_id= of "
            "orders.get['placed']: datetime.date is not a JSON type"
        )
        assert nested.value.exc_args == []  # as nameko sends it
        with pytest.raises(RemoteError) as decimal_error:
            cluster.rpc.orders.total()
        assert decimal_error.value.value.startswith(
            "Unserializable value: `Decimal('9.99')` in the return value of orders.total[0]: "
        )
        assert "decimal.Decimal is not a JSON type: send str(value)" in decimal_error.value.value
