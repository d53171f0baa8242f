"""RPC results and errors through the simulator, as a caller sees them."""

from __future__ import annotations

import logging

import pytest

from shimeji.core.protocol import decode_reply
from shimeji.core.serialization import codec_by_name
from shimeji.core.transport import Message
from shimeji.exceptions import (
    BadRequest,
    ConfigurationError,
    IncorrectSignature,
    MalformedRequest,
    MethodNotFound,
    RemoteError,
    ServiceNotFound,
    UnknownService,
    UnserializableValueError,
)
from shimeji.sim import SimCluster

from .services import CalculatorService, InsufficientFunds, UserService


@pytest.fixture
def cluster(sim_cluster):
    sim_cluster.add_service(CalculatorService, replicas=2)
    return sim_cluster


def test_result_round_trips(cluster):
    """A call returns the method's result."""
    assert cluster.rpc.calculator.add(2, 3) == 5
    assert cluster.rpc["calculator"].multiply(6, 7) == 42


def test_values_are_really_serialized(cluster):
    """Tuples come back as lists, like on the wire."""
    assert cluster.rpc.calculator.echo((1, (2, 3))) == [1, [2, 3]]
    assert cluster.rpc.calculator.echo({"a": [None, True, 1.5]}) == {"a": [None, True, 1.5]}


def test_keyword_arguments(cluster):
    """Positional, keyword, *args and **kwargs all cross the wire."""
    assert cluster.rpc.calculator.kw(1, 3, 4, 5, c=6, d=7) == [1, 3, [4, 5], 6, {"d": 7}]
    assert cluster.rpc.calculator.add(a=1, b=2) == 3


def test_nested_call(cluster):
    """A service calls another through RpcProxy."""
    cluster.add_service(UserService)
    result = cluster.rpc.user_service.calculate_user_score("u1", 10, 3)
    assert result["score"] == 30


def test_remote_error_fields(cluster):
    """A worker's exception arrives as RemoteError with type, args, path and value."""
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.calculator.divide(1, 0)
    error = caught.value
    assert error.exc_type == "ValueError"
    assert error.exc_args == ["Division by zero"]
    assert error.exc_path == "builtins.ValueError"
    assert error.value == "Division by zero"
    assert str(error) == "ValueError Division by zero"


def test_registered_exception_comes_back_as_itself(cluster):
    """Classes marked deserialize_to_instance are rebuilt at the caller."""
    with pytest.raises(InsufficientFunds) as caught:
        cluster.rpc.calculator.pay(10)
    assert caught.value.args == (10, "short by 5")


def test_method_not_found(cluster):
    """An unknown method raises MethodNotFound, whose str() is the method name."""
    with pytest.raises(MethodNotFound) as caught:
        cluster.rpc.calculator.subtract(1, 2)
    assert str(caught.value) == "subtract"
    assert isinstance(caught.value, BadRequest)
    assert cluster.rpc.calculator.add(1, 1) == 2  # the service keeps working


def test_incorrect_signature(cluster):
    """Arguments that do not fit the method raise IncorrectSignature."""
    with pytest.raises(IncorrectSignature, match="missing a required argument: 'b'"):
        cluster.rpc.calculator.add(1)
    with pytest.raises(IncorrectSignature, match="unexpected keyword argument 'z'"):
        cluster.rpc.calculator.add(1, 2, z=3)
    with pytest.raises(IncorrectSignature, match="too many positional arguments"):
        cluster.rpc.calculator.add(1, 2, 3)
    assert cluster.rpc.calculator.add(1, 1) == 2


def test_service_not_found_is_immediate(cluster):
    """An unknown service raises ServiceNotFound at once (unroutable), not a timeout."""
    start = cluster.now()
    with pytest.raises(ServiceNotFound) as caught:
        cluster.rpc.nowhere.method()
    assert isinstance(caught.value, UnknownService)
    assert caught.value.service_name == "nowhere"
    assert "nowhere" in str(caught.value)
    assert cluster.now() == start
    assert cluster.trace.filter("unroutable")


def test_unserializable_argument_raises_before_sending(cluster):
    """An argument JSON cannot carry fails at the caller and nothing is published."""
    before = len(cluster.trace.filter("publish"))
    with pytest.raises(UnserializableValueError) as caught:
        cluster.rpc.calculator.echo({"when": {1, 2}})
    assert str(caught.value).startswith("argument 1 of calculator.echo['when'] cannot be sent")
    assert "set is not a JSON type: send a list instead" in str(caught.value)
    assert len(cluster.trace.filter("publish")) == before


def test_unserializable_result_is_a_remote_error(cluster, caplog):
    """A result JSON cannot carry reaches the caller as RemoteError(UnserializableValueError)."""
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.calculator.unserializable()
    assert caught.value.exc_type == "UnserializableValueError"
    assert "object is not a JSON type" in caught.value.value
    assert cluster.rpc.calculator.add(2, 2) == 4


def test_nan_is_refused(cluster):
    """NaN is not JSON; it is refused with where it was."""
    with pytest.raises(
        UnserializableValueError, match=r"^argument 1 of calculator\.echo cannot be sent: nan; "
    ):
        cluster.rpc.calculator.echo(float("nan"))


def test_expected_exceptions_log_warning_others_error(cluster, caplog):
    """As nameko: expected_exceptions log '(expected) error handling worker ...' at
    WARNING, others 'error handling worker ...' at ERROR, both with their traceback."""
    caplog.set_level(logging.DEBUG, logger="shimeji")
    with pytest.raises(RemoteError):
        cluster.rpc.calculator.divide(1, 0)
    with pytest.raises(RemoteError):
        cluster.rpc.calculator.explode()
    records = [r for r in caplog.records if r.name.startswith("shimeji.container")]
    divide = [r for r in records if "divide" in r.getMessage()]
    explode = [r for r in records if "explode" in r.getMessage()]
    assert [r.levelno for r in divide] == [logging.WARNING]
    assert divide[0].exc_info is not None and divide[0].exc_info[0] is ValueError
    assert divide[0].getMessage() == (
        f"(expected) error handling worker {divide[0].args[0]}: Division by zero"
    )
    assert "Traceback" in logging.Formatter().format(divide[0])
    assert explode[0].getMessage().startswith("error handling worker <WorkerContext ")
    assert [r.levelno for r in explode] == [logging.ERROR]
    assert explode[0].exc_info is not None and explode[0].exc_info[0] is KeyError


def _raw_request(
    cluster,
    body: bytes,
    *,
    content_type="application/json",
    headers=None,
    routing_key="calculator.add",
):
    """Publish a hand-made request and return the decoded error reply."""
    waiter = cluster.scheduler.new_waiter("raw reply")
    correlation_id = "raw-" + str(len(cluster.trace))

    def on_reply(delivery):
        waiter.set_result(delivery.message)

    cluster.bus.declare_queue("raw-replies", durable=False)
    cluster.bus.bind_queue("raw-replies", "nameko-rpc", "raw-replies")
    consumer = cluster.bus.consume("raw-replies", on_reply, prefetch=0, label="raw", auto_ack=True)
    cluster.bus.publish(
        Message(
            body=body,
            routing_key=routing_key,
            exchange="nameko-rpc",
            content_type=content_type,
            headers=headers or {},
            correlation_id=correlation_id,
            reply_to="raw-replies",
        ),
        mandatory=True,
    )
    reply = waiter.wait()
    consumer.close()
    return decode_reply(codec_by_name("json"), reply.body)


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "expected"),
    [
        (b'{"args": [1, 2]}', "application/json", None, "lacks 'kwargs'"),
        (b'{"kwargs": {}}', "application/json", None, "lacks 'args'"),
        (b"not json", "application/json", None, "cannot be decoded as json"),
        (b"[1, 2]", "application/json", None, "must be a mapping"),
        (b'{"args": 1, "kwargs": {}}', "application/json", None, "'args' must be a list"),
        (b"\x80\x04K\x01.", "application/x-python-serialize", None, "is not accepted"),
        (b'{"args": [1, 2], "kwargs": {}}', "text/plain", None, "is not accepted"),
        (
            b'{"args": [1, 2], "kwargs": {}}',
            "application/json",
            {"nameko.call_id_stack": "not-a-list"},
            "must be a list of call id strings",
        ),
    ],
)
def test_malformed_requests_get_an_error_reply(cluster, body, content_type, headers, expected):
    """Bad input reaching a replica gets a MalformedRequest reply; the service lives on."""
    result, error = _raw_request(cluster, body, content_type=content_type, headers=headers)
    assert result is None
    assert isinstance(error, MalformedRequest)
    assert expected in str(error)
    assert cluster.rpc.calculator.add(1, 2) == 3
    assert all(r.alive for r in cluster.replicas("calculator"))


def test_unknown_method_raw(cluster):
    """A raw request for an unknown method gets MethodNotFound."""
    _, error = _raw_request(cluster, b'{"args": [], "kwargs": {}}', routing_key="calculator.nope")
    assert isinstance(error, MethodNotFound)


def test_request_without_reply_to_runs_and_is_acked(cluster):
    """A request nobody waits for still runs, and is acked."""
    cluster.bus.publish(
        Message(
            body=b'{"args": [1, 2], "kwargs": {}}',
            routing_key="calculator.add",
            exchange="nameko-rpc",
            correlation_id="fire-and-forget",
        ),
        mandatory=True,
    )
    cluster.run_until_idle()
    assert cluster.trace.filter("worker_end", method="add")
    assert cluster.trace.filter("ack", correlation_id="fire-and-forget")
    assert not cluster.trace.filter("reply", correlation_id="fire-and-forget")


def test_calls_before_start_fail_clearly():
    """Using a cluster that is not running says how to start it."""
    cluster = SimCluster()
    with pytest.raises(RuntimeError, match="Use `with SimCluster"):
        cluster.rpc.calculator.add(1, 2)


@pytest.mark.parametrize("name", ["", "a.add", "add*", "ad d", 3])
def test_impossible_method_names_are_refused(cluster, name):
    """A method name that cannot be a routing key word is refused before sending."""
    with pytest.raises(ConfigurationError, match="cannot be a method name"):
        cluster.rpc.calculator[name]()
