"""RPC behaviour, stated once and run on the simulator and on RabbitMQ.

Run on RabbitMQ with ``pytest tests/conformance --shimeji-transport=amqp``.
"""

from __future__ import annotations

import pytest

from shimeji.exceptions import (
    IncorrectSignature,
    MethodNotFound,
    RemoteError,
    RpcTimeout,
    ServiceNotFound,
    UnserializableValueError,
)
from tests.conformance.services import (
    Audit,
    Calculator,
    Concurrency,
    Front,
    InsufficientFunds,
    Slow,
)


def wait_until(cluster, predicate, timeout=5.0, step=0.01):
    """Let time pass (virtual or real) until ``predicate()`` holds."""
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        cluster.advance(step)
        waited += step


# -- results -------------------------------------------------------------------------


def test_a_call_returns_the_result(cluster):
    """A call returns what the method returned."""
    cluster.add_service(Calculator)
    assert cluster.rpc.calculator.add(2, 3) == 5


def test_results_cross_as_json(cluster):
    """Tuples arrive as lists and object keys as strings, as on the wire."""
    cluster.add_service(Calculator)
    value = {"t": (1, 2), 3: "three", "nested": [{"x": None, "y": 1.5, "z": True}]}
    assert cluster.rpc.calculator.echo(value) == {
        "t": [1, 2],
        "3": "three",
        "nested": [{"x": None, "y": 1.5, "z": True}],
    }


def test_a_configured_serializer_is_used_on_the_wire(cluster_factory):
    """JSON unless configured: with ``serializer: pickle`` (and pickle in ACCEPT),
    tuples and integer keys come back as they went."""
    cluster = cluster_factory({"serializer": "pickle", "ACCEPT": ["pickle", "json"]})
    cluster.add_service(Calculator)
    value = {"t": (1, 2), 3: "three"}
    assert cluster.rpc.calculator.echo(value) == value
    assert isinstance(cluster.rpc.calculator.echo((1, 2)), tuple)


def test_keyword_arguments(cluster):
    """Keyword and extra keyword arguments reach the method."""
    cluster.add_service(Calculator)
    assert cluster.rpc.calculator.keywords(1, b=5, c=6) == {"a": 1, "b": 5, "rest": {"c": 6}}


# -- errors --------------------------------------------------------------------------


def test_remote_error_fields(cluster):
    """An exception in the method reaches the caller as RemoteError with its type,
    arguments, path and text."""
    cluster.add_service(Calculator)
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.calculator.divide(1, 0)
    error = caught.value
    assert error.exc_type == "ValueError"
    assert error.exc_args == ["Division by zero", 1]
    assert error.exc_path == "builtins.ValueError"
    assert error.value == "('Division by zero', 1)"
    assert str(error) == "ValueError ('Division by zero', 1)"


def test_unregistered_exception_arrives_as_remote_error(cluster):
    """A custom exception not registered for deserialization arrives as RemoteError."""
    cluster.add_service(Calculator)
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.calculator.fail("unregistered")
    assert caught.value.exc_type == "Unregistered"
    assert caught.value.exc_args == ["custom", {"detail": [1, 2]}]
    assert caught.value.exc_path == "tests.conformance.services.Unregistered"


def test_registered_exception_arrives_as_itself(cluster):
    """An exception registered with deserialize_to_instance arrives as itself."""
    cluster.add_service(Calculator)
    with pytest.raises(InsufficientFunds) as caught:
        cluster.rpc.calculator.fail("registered")
    assert caught.value.args == ("balance too low", 42)


def test_errors_cross_two_hops(cluster):
    """A RemoteError raised again by a middle service keeps the original identity."""
    cluster.add_service(Calculator)
    cluster.add_service(Front)
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.front.divide_via(1, 0)
    assert caught.value.exc_type == "ValueError"
    assert caught.value.exc_args == ["Division by zero", 1]


def test_method_not_found(cluster):
    """Calling a method the service does not expose raises MethodNotFound."""
    cluster.add_service(Calculator)
    with pytest.raises(MethodNotFound) as caught:
        cluster.rpc.calculator.subtract(1, 2)
    assert str(caught.value) == "subtract"


def test_incorrect_signature(cluster):
    """Arguments that do not fit the signature raise IncorrectSignature, naming them."""
    cluster.add_service(Calculator)
    with pytest.raises(IncorrectSignature, match="missing a required argument: 'b'"):
        cluster.rpc.calculator.add(1)
    with pytest.raises(IncorrectSignature, match="unexpected keyword argument 'c'"):
        cluster.rpc.calculator.add(1, 2, c=3)


def test_service_not_found_at_once(cluster):
    """A call to a service nobody serves raises ServiceNotFound at once, without a
    timeout."""
    with pytest.raises(ServiceNotFound) as caught:
        cluster.rpc.nobody_home.method()
    assert caught.value.service_name == "nobody_home"


def test_service_not_found_inside_a_service(cluster):
    """ServiceNotFound raised inside a worker (and not caught) reaches the caller as
    nameko's does: a RemoteError UnknownService with nameko's text."""
    cluster.add_service(Front)
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.front.call_missing()
    assert caught.value.exc_type == "UnknownService"
    assert caught.value.exc_path == "nameko.exceptions.UnknownService"
    assert caught.value.value == "Unknown service `no_such_service`"
    assert caught.value.exc_args == ["no_such_service"]


def test_unserializable_argument_is_refused_before_sending(cluster):
    """An argument JSON cannot carry raises UnserializableValueError naming where it is,
    and nothing is sent."""
    cluster.add_service(Calculator)
    with pytest.raises(UnserializableValueError) as caught:
        cluster.rpc.calculator.echo({"when": {1, 2}})
    assert caught.value.where == "argument 1 of calculator.echo['when']"
    assert caught.value.path == ("args", 0, "when")
    assert cluster.rpc.calculator.add(1, 1) == 2  # the client still works


def test_unserializable_result_becomes_an_error_reply(cluster):
    """A result JSON cannot carry reaches the caller as an UnserializableValueError
    RemoteError; the replica lives on."""
    cluster.add_service(Calculator)
    with pytest.raises(RemoteError) as caught:
        cluster.rpc.calculator.unserializable()
    assert caught.value.exc_type == "UnserializableValueError"
    assert "['when']" in caught.value.value
    assert cluster.rpc.calculator.add(2, 2) == 4


# -- context and call ids ----------------------------------------------------------------


def test_context_data_reaches_the_service(cluster):
    """Context data given to a client reaches the worker."""
    cluster.add_service(Audit)
    client = cluster.rpc_proxy(context_data={"user_id": "u-42", "language": "fr"})
    seen = client.audit.seen()
    assert seen["context"] == {"user_id": "u-42", "language": "fr"}
    assert seen["user_id"] == "u-42"


def test_context_data_propagates_down_the_chain(cluster):
    """Context data follows the call through a service to the next one."""
    cluster.add_service(Audit)
    cluster.add_service(Front)
    client = cluster.rpc_proxy(context_data={"user_id": "u-7", "tenant": {"id": 3}})
    seen = client.front.relay()["audit"]
    assert seen["context"] == {"user_id": "u-7", "tenant": {"id": 3}}


def test_call_id_stack_grows_along_the_chain(cluster):
    """Each hop appends its call id: standalone call, then front, then audit."""
    cluster.add_service(Audit)
    cluster.add_service(Front)
    result = cluster.rpc.front.relay()
    mine, theirs = result["mine"], result["audit"]["stack"]
    assert len(mine) == 2
    assert mine[0].startswith("standalone_rpc_proxy.call.")
    assert mine[1].startswith("front.relay.")
    assert theirs[:2] == mine
    assert theirs[2].startswith("audit.seen.")
    assert len(theirs) == 3


def test_each_standalone_call_starts_a_new_chain(cluster):
    """Two calls from one client have different origins."""
    cluster.add_service(Audit)
    first = cluster.rpc.audit.seen()["stack"]
    second = cluster.rpc.audit.seen()["stack"]
    assert first[0] != second[0]


def test_parent_calls_tracked_bounds_the_stack(cluster_factory):
    """parent_calls_tracked limits how many parent ids a worker keeps."""
    cluster = cluster_factory({"parent_calls_tracked": 1})
    cluster.add_service(Audit)
    cluster.add_service(Front)
    stack = cluster.rpc.front.relay()["audit"]["stack"]
    assert len(stack) == 2
    assert stack[0].startswith("front.relay.")


# -- asynchronous calls and timeouts ---------------------------------------------------------


def test_call_async_returns_at_once_and_results_later(cluster):
    """call_async returns an RpcReply at once; result() waits for it, twice the same."""
    cluster.add_service(Calculator, replicas=2)
    replies = [cluster.rpc.calculator.add.call_async(i, 10) for i in range(8)]
    assert [reply.result() for reply in replies] == [i + 10 for i in range(8)]
    assert replies[0].result() == 10


def test_call_async_error_raised_by_result(cluster):
    """An error of an asynchronous call is raised by result(), every time."""
    cluster.add_service(Calculator)
    reply = cluster.rpc.calculator.divide.call_async(1, 0)
    for _ in range(2):
        with pytest.raises(RemoteError):
            reply.result()


def test_parallel_calls_from_a_service(cluster):
    """A worker can run calls in parallel with call_async and gather them."""
    cluster.add_service(Calculator, replicas=2)
    cluster.add_service(Front)
    assert cluster.rpc.front.fan_out(6) == [0, 2, 4, 6, 8, 10]


def test_proxy_timeout(cluster):
    """A call with no reply within the proxy's timeout raises RpcTimeout."""
    cluster.add_service(Slow)
    client = cluster.rpc_proxy(timeout=0.2)
    with pytest.raises(RpcTimeout) as caught:
        client.slow.sleep(0.6)
    assert caught.value.service == "slow"
    assert caught.value.method == "sleep"
    assert caught.value.timeout == 0.2


def test_rpc_timeout_setting(cluster_factory):
    """RPC_TIMEOUT bounds calls that set no timeout of their own; None overrides it."""
    cluster = cluster_factory({"RPC_TIMEOUT": 0.2})
    cluster.add_service(Slow)
    with pytest.raises(RpcTimeout):
        cluster.rpc.slow.sleep(0.6)
    assert cluster.rpc_proxy(timeout=None).slow.sleep(0.3, "done")[0] == "done"


def test_late_reply_is_dropped(cluster):
    """A reply arriving after its call timed out is dropped; the client works on."""
    cluster.add_service(Slow)
    client = cluster.rpc_proxy(timeout=0.1)
    with pytest.raises(RpcTimeout):
        client.slow.sleep(0.3)
    cluster.advance(0.4)
    assert client.slow.sleep(0, "next")[0] == "next"
    assert any(event.kind == "reply_dropped" for event in cluster.trace.events)


# -- replicas, acks, redelivery ---------------------------------------------------------------


def test_round_robin_over_replicas(cluster):
    """Sequential calls are shared evenly among the replicas of a service."""
    cluster.add_service(Calculator, replicas=3)
    served = [cluster.rpc.calculator.where() for _ in range(9)]
    assert sorted(set(served)) == ["calculator-1", "calculator-2", "calculator-3"]
    assert all(served.count(name) == 3 for name in set(served))


def test_max_workers_bounds_concurrency(cluster_factory):
    """A replica runs at most max_workers calls at once; the others wait their turn."""
    cluster = cluster_factory({"max_workers": 2})
    Concurrency.running = Concurrency.peak = 0
    cluster.add_service(Concurrency)
    replies = [cluster.rpc.concurrency.hold.call_async(0.1) for _ in range(6)]
    peaks = [reply.result() for reply in replies]
    assert max(peaks) == 2


def test_reply_is_published_before_the_request_is_acked(cluster):
    """The request is acked only after its reply was published."""
    cluster.add_service(Calculator)
    client = cluster.rpc_proxy()
    reply = client.calculator.add.call_async(1, 2)
    assert reply.result() == 3
    correlation_id = reply.correlation_id
    wait_until(
        cluster,
        lambda: any(
            e.kind == "ack" and e.correlation_id == correlation_id for e in cluster.trace.events
        ),
    )
    kinds = [
        e.kind
        for e in cluster.trace.events
        if e.correlation_id == correlation_id and e.kind in ("reply", "ack")
    ]
    assert kinds == ["reply", "ack"]


def test_redelivery_after_a_replica_dies(cluster):
    """A request held by a replica that dies mid-call goes to another replica."""
    first = cluster.add_service(Slow)[0]
    reply = cluster.rpc.slow.sleep.call_async(0.3, "job")
    wait_until(
        cluster,
        lambda: any(
            e.kind == "worker_start" and e.replica == "slow-1" for e in cluster.trace.events
        ),
    )
    cluster.add_service(Slow)
    first.container.kill()
    assert reply.result() == ["job", "slow-2"]
    redelivered = [
        e
        for e in cluster.trace.events
        if e.kind == "deliver"
        and e.replica == "slow-2"
        and e.correlation_id == reply.correlation_id
    ]
    assert [e.detail for e in redelivered] == ["redelivered"]


def test_stop_lets_running_calls_finish(cluster):
    """A graceful stop lets a call in progress finish and reply."""
    cluster.add_service(Slow)
    reply = cluster.rpc.slow.sleep.call_async(0.2, "finishing")
    wait_until(cluster, lambda: any(e.kind == "worker_start" for e in cluster.trace.events))
    replica = cluster.replicas("slow")[0]
    replica.container.begin_stop()
    assert reply.result() == ["finishing", "slow-1"]
