"""Worker errors, their logging, and call id stacks, test by test after nameko's own.

Each test names the nameko test whose behaviour it checks. nameko's tests
patch the container's logger and compare the calls made to it; shimeji writes
the record itself (its traceback escaped), so these read the records with
``caplog`` instead: same level, same format string, same ``exc_info``.
"""

from __future__ import annotations

import logging
from unittest.mock import Mock, call, patch

import pytest

from shimeji.events import EventDispatcher, event_handler
from shimeji.exceptions import RemoteError
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc
from shimeji.standalone import ServiceRpcProxy
from shimeji.testing.services import entrypoint_hook, entrypoint_waiter
from shimeji.testing.utils import get_container
from shimeji.timer import timer

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class ExampleError(Exception):
    pass


class ExampleService:
    name = "exampleservice"

    dispatch = EventDispatcher()
    rpcproxy = RpcProxy("exampleservice")

    @rpc
    def task(self):
        return "task_result"

    @rpc
    def broken(self):
        raise ExampleError("broken")

    @rpc(expected_exceptions=ExampleError)
    def bad(self):
        raise ExampleError("bad")

    @rpc
    def proxy(self, method, *args):
        """Calls ``method`` of this same service through RPC."""
        getattr(self.rpcproxy, method)(*args)


def container_records(caplog):
    return [r for r in caplog.records if r.name == "shimeji.container"]


# follows nameko test/test_errors.py::test_error_in_worker
def test_error_in_worker(container_factory, rabbit_config, caplog):
    container = container_factory(ExampleService, rabbit_config)
    container.start()
    with entrypoint_hook(container, "broken") as broken, pytest.raises(ExampleError):
        broken()
    assert container.replica.alive  # nameko: not container._died.ready()
    (record,) = container_records(caplog)
    assert (record.levelno, record.msg) == (logging.ERROR, "error handling worker %s: %s")
    assert record.exc_info is not None and record.exc_info[0] is ExampleError


# follows nameko test/test_errors.py::test_expected_error_in_worker
def test_expected_error_in_worker(container_factory, rabbit_config, caplog):
    container = container_factory(ExampleService, rabbit_config)
    container.start()
    with entrypoint_hook(container, "bad") as bad, pytest.raises(ExampleError):
        bad()
    assert container.replica.alive
    (record,) = container_records(caplog)
    assert (record.levelno, record.msg) == (
        logging.WARNING,
        "(expected) error handling worker %s: %s",
    )
    assert record.exc_info is not None and record.exc_info[0] is ExampleError  # exc_info=True


# follows nameko test/test_errors.py::test_error_in_remote_worker
def test_error_in_remote_worker(container_factory, rabbit_config):
    container = container_factory(ExampleService, rabbit_config)
    container.start()
    with entrypoint_hook(container, "proxy") as proxy, pytest.raises(RemoteError) as exc_info:
        proxy("broken")
    assert exc_info.value.exc_type == "ExampleError"
    assert container.replica.alive


# follows nameko test/test_timers.py::test_expected_error_in_worker
def test_expected_error_in_timer_worker(container_factory, caplog):
    class Service:
        name = "service"

        @timer(1, expected_exceptions=(ExampleError,))
        def tick(self):
            raise ExampleError("boom!")

    container = container_factory(Service, {})
    with entrypoint_hook(container, "tick") as tick:
        container.start()
        with pytest.raises(ExampleError):
            tick()
    records = container_records(caplog)
    assert len(records) == 1
    assert records[0].getMessage() == (
        f"(expected) error handling worker {records[0].args[0]}: boom!"
    )


@pytest.fixture
def tracker():
    return Mock()


@pytest.fixture
def stack_logger(tracker):
    class StackLogger(DependencyProvider):
        def worker_setup(self, worker_ctx):
            tracker(worker_ctx.call_id_stack)

    return StackLogger


def without_ids(stack):
    """``parent.method`` for ``parent.method.<uuid>``: nameko's test patches ids to
    be ``0``, ``1``, ...; shimeji's come from the seed (stable, not counters)."""
    return [entry.rsplit(".", 1)[0] for entry in stack]


# follows nameko test/test_call_id_stack.py::test_call_id_stack
def test_call_id_stack(rabbit_config, runner_factory, stack_logger, tracker):
    StackLogger = stack_logger

    class Child:
        name = "child"
        stack_logger = StackLogger()

        @rpc
        def method(self):
            return 1

    class Parent:
        name = "parent"
        stack_logger = StackLogger()
        child_service = RpcProxy("child")

        @rpc
        def method(self):
            return self.child_service.method()

    class Grandparent:
        name = "grandparent"
        stack_logger = StackLogger()
        parent_service = RpcProxy("parent")

        @rpc
        def method(self):
            return self.parent_service.method()

    runner = runner_factory(rabbit_config)
    runner.add_service(Child)
    runner.add_service(Parent)
    runner.add_service(Grandparent)
    runner.start()
    container = get_container(runner, Grandparent)
    with entrypoint_hook(container, "method") as grandparent_method:
        assert grandparent_method() == 1
    stacks = [args[0] for args, _ in tracker.call_args_list]
    assert [without_ids(stack) for stack in stacks] == [
        ["grandparent.method"],
        ["grandparent.method", "parent.method"],
        ["grandparent.method", "parent.method", "child.method"],
    ]
    # each stack is its caller's, one id added
    assert stacks[1][:1] == stacks[0] and stacks[2][:2] == stacks[1]
    assert len({stack[-1] for stack in stacks}) == 3


# follows nameko test/test_call_id_stack.py::test_call_id_over_events
def test_call_id_over_events(rabbit_config, runner_factory, stack_logger, tracker):
    StackLogger = stack_logger
    one_called = Mock()
    two_called = Mock()

    class EventListeningServiceOne:
        name = "listener_one"
        stack_logger = StackLogger()

        @event_handler("event_raiser", "hello")
        def hello(self, name):
            one_called()

    class EventListeningServiceTwo:
        name = "listener_two"
        stack_logger = StackLogger()

        @event_handler("event_raiser", "hello")
        def hello(self, name):
            two_called()

    class EventRaisingService:
        name = "event_raiser"
        dispatch = EventDispatcher()
        stack_logger = StackLogger()

        @rpc
        def say_hello(self):
            self.dispatch("hello", self.name)

    runner = runner_factory(rabbit_config)
    runner.add_service(EventListeningServiceOne)
    runner.add_service(EventListeningServiceTwo)
    runner.add_service(EventRaisingService)
    runner.start()
    container = get_container(runner, EventRaisingService)
    listener1 = get_container(runner, EventListeningServiceOne)
    listener2 = get_container(runner, EventListeningServiceTwo)
    with (
        entrypoint_hook(container, "say_hello") as say_hello,
        entrypoint_waiter(listener1, "hello"),
        entrypoint_waiter(listener2, "hello"),
    ):
        say_hello()
    assert one_called.call_count == two_called.call_count == 1
    stacks = [args[0] for args, _ in tracker.call_args_list]
    assert len(stacks) == 3
    raiser = stacks[0]
    assert without_ids(raiser) == ["event_raiser.say_hello"]
    # the handlers' order is the simulation's (nameko's test allows any order)
    assert sorted(without_ids(stack) for stack in stacks[1:]) == [
        ["event_raiser.say_hello", "listener_one.hello"],
        ["event_raiser.say_hello", "listener_two.hello"],
    ]
    assert all(stack[:1] == raiser for stack in stacks[1:])
    assert tracker.call_args_list[0] == call(raiser)


class FailingDependency(DependencyProvider):
    """Raises ``Exception("error in <hook>")`` from the worker hook named
    ``failing``: what nameko's tests get by patching a provider's method."""

    def __init__(self, failing):
        self.failing = failing

    def _maybe_fail(self, hook):
        if hook == self.failing:
            raise Exception(f"error in {hook}")

    def worker_setup(self, worker_ctx):
        self._maybe_fail("worker_setup")

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        self._maybe_fail("worker_result")

    def worker_teardown(self, worker_ctx):
        self._maybe_fail("worker_teardown")


def failing_service(hook):
    class Failing(ExampleService):
        failing = FailingDependency(hook)

    return Failing


# follows nameko test/test_errors.py::test_dependency_call_lifecycle_errors
# follows nameko test/test_errors.py::test_handle_result_error
@pytest.mark.parametrize("method_name", ["worker_setup", "worker_result", "worker_teardown"])
def test_dependency_call_lifecycle_errors(container_factory, rabbit_config, method_name):
    """An error in a provider's worker hook kills the container, and
    container.wait() raises it. (nameko's test_handle_result_error does the
    same with the RPC consumer's handle_result patched to fail.)"""
    container = container_factory(failing_service(method_name), rabbit_config)
    container.start()

    with ServiceRpcProxy("exampleservice", rabbit_config) as proxy:
        # the call never gets an answer: the container dies of the error
        proxy.task.call_async()

    # the error bubbles up to container.wait()
    with pytest.raises(Exception) as exc_info:
        container.wait()
    assert str(exc_info.value) == f"error in {method_name}"


# follows nameko test/test_errors.py::test_runner_catches_container_errors
def test_runner_catches_container_errors(runner_factory, rabbit_config):
    """nameko makes the RPC consumer's handle_result fail (patched); here a
    dependency's worker_result fails, which kills the container as well."""
    runner = runner_factory(rabbit_config, failing_service("worker_result"))
    runner.start()

    with ServiceRpcProxy("exampleservice", rabbit_config) as proxy:
        proxy.task.call_async()

    # the error bubbles up to runner.wait()
    with pytest.raises(Exception, match=r"^error in worker_result$"):
        runner.wait()


class SecondService:
    name = "secondservice"

    @rpc
    def task(self):
        return "task_result"  # pragma: no cover


# follows nameko test/test_errors.py::test_graceful_stop_on_one_container_error
def test_graceful_stop_on_one_container_error(runner_factory, rabbit_config):
    failing = failing_service("worker_result")
    runner = runner_factory(rabbit_config, failing, SecondService)
    runner.start()

    second_container = get_container(runner, SecondService)
    with patch.object(second_container, "stop", wraps=second_container.stop) as stop:
        with ServiceRpcProxy("exampleservice", rabbit_config) as proxy:
            proxy.task.call_async()

        with pytest.raises(Exception, match=r"^error in worker_result$"):
            runner.wait()

        # the second service was stopped because the first was killed
        stop.assert_called_once_with()
