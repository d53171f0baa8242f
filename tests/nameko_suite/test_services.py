"""nameko's service testing tools on the simulator, test by test after nameko's own.

Each test names the nameko test whose behaviour it checks. ``ServiceRpcProxy``
and ``event_dispatcher`` come from ``shimeji.standalone`` (or are
``sim_cluster.rpc`` and ``sim_cluster.dispatch``).
"""

from __future__ import annotations

import time
from unittest.mock import Mock, call

import pytest

from shimeji.events import event_handler
from shimeji.exceptions import ExtensionNotFound, MethodNotFound
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc
from shimeji.standalone import ServiceRpcProxy, event_dispatcher
from shimeji.testing.services import (
    entrypoint_hook,
    entrypoint_waiter,
    once,
    replace_dependencies,
    restrict_entrypoints,
)
from shimeji.testing.utils import get_container
from shimeji.testing.waiting import wait_for_call

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class LanguageReporter(DependencyProvider):
    """Gives a function returning the worker's ``language`` context value."""

    def get_dependency(self, worker_ctx):
        return lambda: worker_ctx.context_data["language"]


handled = Mock()


@pytest.fixture(autouse=True)
def reset_handled():
    yield
    handled.reset_mock()


class ExampleError(Exception):
    pass


class Service:
    name = "service"

    a = RpcProxy("service_a")
    language = LanguageReporter()

    @rpc
    def working(self, value):
        return self.a.remote_method(value)

    @rpc
    def broken(self, value):
        raise ExampleError("broken")

    @event_handler("srcservice", "eventtype")
    def handle(self, msg):
        handled(msg)

    @rpc
    def get_language(self):
        return self.language()


class ServiceA:
    name = "service_a"
    b = RpcProxy("service_b")

    @rpc
    def remote_method(self, value):
        return self.b.remote_method(f"{value}-a")


class ServiceB:
    name = "service_b"
    c = RpcProxy("service_c")

    @rpc
    def remote_method(self, value):
        return self.c.remote_method(f"{value}-b")


class ServiceC:
    name = "service_c"

    @rpc
    def remote_method(self, value):
        return f"{value}-c"


ALL = (Service, ServiceA, ServiceB, ServiceC)


# follows nameko test/testing/test_services.py::test_entrypoint_hook
def test_entrypoint_hook_calls_an_event_handler(runner_factory, rabbit_config):
    """A hook runs an event handler with the event data, no event published."""
    runner = runner_factory(rabbit_config, *ALL)
    runner.start()
    container = get_container(runner, Service)

    with entrypoint_hook(container, "handle") as handle, entrypoint_waiter(container, "handle"):
        handle("msg")
    handled.assert_called_once_with("msg")


# follows nameko test/testing/test_services.py::test_entrypoint_hook_with_return
def test_entrypoint_hook_with_return(runner_factory, rabbit_config, sim_cluster):
    """The hook returns what the method returned (here through three services),
    and raises what it raised, as itself."""
    runner = runner_factory(rabbit_config, *ALL)
    runner.start()
    container = get_container(runner, Service)

    with entrypoint_hook(container, "working") as working:
        assert working("value") == "value-a-b-c"
    with entrypoint_hook(container, "broken") as broken, pytest.raises(ExampleError):
        broken("value")
    kinds = [event.kind for event in sim_cluster.trace.events if event.replica == "service-1"]
    assert "worker_start" in kinds and "reply" not in kinds  # nothing answered on the wire


# follows nameko test/testing/test_services.py::test_entrypoint_hook_context_data
@pytest.mark.parametrize("context_data", [{"language": "en"}, {"language": "fr"}])
def test_entrypoint_hook_context_data(container_factory, rabbit_config, context_data):
    """context_data reaches the worker as a caller's would."""
    container = container_factory(Service, rabbit_config)
    container.start()
    with entrypoint_hook(container, "get_language", context_data) as get_language:
        assert get_language() == context_data["language"]


# follows nameko test/testing/test_services.py::test_entrypoint_hook_dependency_not_found
def test_entrypoint_hook_dependency_not_found(container_factory, rabbit_config):
    """An unknown method is ExtensionNotFound, naming the entrypoints there are."""
    container = container_factory(Service, rabbit_config)
    container.start()
    with (
        pytest.raises(ExtensionNotFound, match=r"'nonexistent_method'.*'get_language'"),
        entrypoint_hook(container, "nonexistent_method"),
    ):
        pass  # pragma: no cover


# follows nameko test/testing/test_services.py::test_entrypoint_hook_container_dying
def test_entrypoint_hook_container_dying(container_factory, rabbit_config, sim_cluster):
    """A container that dies running the worker raises the error it died of; the
    cluster does not raise it again as it stops."""

    class DependencyError(Exception):
        pass

    class BadDependency(DependencyProvider):
        def worker_setup(self, worker_ctx):
            raise DependencyError("Boom")

    class BadService(Service):
        bad = BadDependency()

    container = container_factory(BadService, rabbit_config)
    container.start()
    with pytest.raises(DependencyError), entrypoint_hook(container, "working") as working:
        working()
    assert not container.started
    assert sim_cluster.crashes == []


# follows nameko test/testing/test_services.py::test_entrypoint_hook_timeout
def test_entrypoint_hook_timeout(container_factory, rabbit_config, sim_cluster):
    """A worker that outlasts the timeout (virtual seconds) raises
    entrypoint_waiter.Timeout with nameko's message."""

    class SlowService:
        name = "service"

        @rpc
        def long_task(self):
            time.sleep(0.1)

    container = container_factory(SlowService, rabbit_config)
    container.start()
    with (
        pytest.raises(entrypoint_waiter.Timeout) as exc_info,
        entrypoint_hook(container, "long_task", timeout=0.01) as long_task,
    ):
        long_task()
    assert str(exc_info.value) == "Timeout on service.long_task after 0.01 seconds"
    assert sim_cluster.elapsed() == pytest.approx(0.01)


def test_entrypoint_hook_on_a_stopped_container(container_factory):
    """Calling the hook before start says to start the container."""
    container = container_factory(ServiceC)
    with (
        entrypoint_hook(container, "remote_method") as method,
        pytest.raises(RuntimeError, match=r"start the container first"),
    ):
        method("x")


# follows nameko test/testing/test_services.py::test_replace_dependencies_kwargs
def test_replace_dependencies_kwargs(container_factory, rabbit_config, sim_cluster):
    """Keyword replacements inject the objects given and return nothing."""

    class Service:
        name = "service"
        foo_proxy = RpcProxy("foo_service")
        bar_proxy = RpcProxy("bar_service")
        baz_proxy = RpcProxy("baz_service")

        @rpc
        def method(self, arg):
            self.foo_proxy.remote_method(arg)

    class FakeDependency:
        def __init__(self):
            self.processed = []

        def remote_method(self, arg):
            self.processed.append(arg)

    container = container_factory(Service, rabbit_config)
    fake_foo_proxy = FakeDependency()
    replace_dependencies(container, foo_proxy=fake_foo_proxy)
    assert len([d for d in container.extensions if isinstance(d, RpcProxy)]) == 2

    assert list(replace_dependencies(container, bar_proxy=Mock(), baz_proxy=Mock())) == []
    assert not any(isinstance(d, RpcProxy) for d in container.extensions)

    container.start()
    with ServiceRpcProxy("service", rabbit_config) as service_proxy:
        service_proxy.method("msg")
    assert fake_foo_proxy.processed == ["msg"]


# follows nameko test/testing/test_services.py::test_replace_dependencies_args
def test_replace_dependencies_args(container_factory, rabbit_config, sim_cluster):
    """Names given positionally get MagicMocks: one is returned as itself,
    several as an iterator."""

    class Service:
        name = "service"
        foo_proxy = RpcProxy("foo_service")
        bar_proxy = RpcProxy("bar_service")
        baz_proxy = RpcProxy("baz_service")

        @rpc
        def method(self, arg):
            self.foo_proxy.remote_method(arg)

    container = container_factory(Service, rabbit_config)
    foo_proxy = replace_dependencies(container, "foo_proxy")
    replacements = replace_dependencies(container, "bar_proxy", "baz_proxy")
    assert len(list(replacements)) == 2
    assert not any(isinstance(d, RpcProxy) for d in container.extensions)

    container.start()
    with ServiceRpcProxy("service", rabbit_config) as service_proxy:
        service_proxy.method("msg")
    foo_proxy.remote_method.assert_called_once_with("msg")


# follows nameko test/testing/test_services.py::test_replace_dependencies_args_and_kwargs
def test_replace_dependencies_args_and_kwargs(container_factory, rabbit_config, sim_cluster):
    """Positional and keyword replacements together; the mocks come back in order."""

    class Service:
        name = "service"
        foo_proxy = RpcProxy("foo_service")
        bar_proxy = RpcProxy("bar_service")
        baz_proxy = RpcProxy("baz_service")

        @rpc
        def method(self, arg):
            self.foo_proxy.remote_method(arg)
            self.bar_proxy.bar()
            self.baz_proxy.baz()

    processed = []

    class FakeDependency:
        def remote_method(self, arg):
            processed.append(arg)

    container = container_factory(Service, rabbit_config)
    mock_bar, mock_baz = replace_dependencies(
        container, "bar_proxy", "baz_proxy", foo_proxy=FakeDependency()
    )
    container.start()
    with ServiceRpcProxy("service", rabbit_config) as service_proxy:
        service_proxy.method("msg")
    assert processed == ["msg"]
    assert mock_bar.bar.call_count == 1 and mock_baz.baz.call_count == 1


# follows nameko test/testing/test_services.py::test_replace_dependencies_in_both_args_and_kwargs_error
def test_replace_dependencies_in_both_args_and_kwargs_error(container_factory, rabbit_config):
    """One name both ways is refused."""

    class Service:
        name = "service"
        foo_proxy = RpcProxy("foo_service")
        bar_proxy = RpcProxy("bar_service")

        @rpc
        def method(self):
            pass  # pragma: no cover

    container = container_factory(Service, rabbit_config)
    with pytest.raises(RuntimeError, match="Cannot replace the same dependency"):
        replace_dependencies(container, "bar_proxy", "foo_proxy", foo_proxy="foo")


# follows nameko test/testing/test_services.py::test_replace_non_dependency
def test_replace_non_dependency(container_factory, rabbit_config):
    """A name that is no dependency (absent, or a method) is ExtensionNotFound."""

    class Service:
        name = "service"
        proxy = RpcProxy("foo_service")

        @rpc
        def method(self):
            pass  # pragma: no cover

    container = container_factory(Service, rabbit_config)
    with pytest.raises(ExtensionNotFound, match=r"\['nonexist'\].*\['proxy'\]"):
        replace_dependencies(container, "nonexist")
    with pytest.raises(ExtensionNotFound):
        replace_dependencies(container, "method")


# follows nameko test/testing/test_services.py::test_replace_dependencies_container_already_started
def test_replace_dependencies_container_already_started(container_factory, rabbit_config):
    """Replacing on a started container is refused."""

    class Service:
        name = "service"
        proxy = RpcProxy("foo_service")

        @rpc
        def method(self):
            pass  # pragma: no cover

    container = container_factory(Service, rabbit_config)
    container.start()
    with pytest.raises(RuntimeError, match="before the container is started"):
        replace_dependencies(container, "proxy")


def test_replacements_belong_to_one_container(container_factory, sim_cluster):
    """Another container of the class, and the replica restarted, keep the real
    provider (a replacement is made on one container, as nameko's)."""

    class Front:
        name = "front"
        back = RpcProxy("service_c")

        @rpc
        def relay(self, value):
            return self.back.remote_method(value)

    container_factory(ServiceC).start()
    mocked = container_factory(Front)
    back = replace_dependencies(mocked, "back")
    back.remote_method.return_value = "mocked"
    mocked.start()
    real = container_factory(Front)
    real.start()
    assert [sim_cluster.rpc.front.relay("x") for _ in range(2)] == ["mocked", "x-c"]

    sim_cluster.kill(mocked.replica)
    sim_cluster.restart(mocked.replica)
    assert [sim_cluster.rpc.front.relay("y") for _ in range(2)] == ["y-c", "y-c"]


# follows nameko test/testing/test_services.py::test_restrict_entrypoints
def test_restrict_entrypoints(container_factory, rabbit_config, sim_cluster):
    """Only the entrypoints named stay: the rpc and once on handler_one are gone."""
    method_called = Mock()

    class Service:
        name = "service"

        @rpc
        @once("assert not seen")
        def handler_one(self, arg):
            method_called(arg)  # pragma: no cover

        @event_handler("srcservice", "eventtype")
        def handler_two(self, msg):
            method_called(msg)

    container = container_factory(Service, rabbit_config)
    restrict_entrypoints(container, "handler_two")
    container.start()

    with ServiceRpcProxy("service", rabbit_config) as service_proxy:
        with pytest.raises(MethodNotFound) as exc_info:
            service_proxy.handler_one("msg")
        assert str(exc_info.value) == "handler_one"

    dispatch = event_dispatcher(rabbit_config)
    with entrypoint_waiter(container, "handler_two"):
        dispatch("srcservice", "eventtype", "msg")
    method_called.assert_called_once_with("msg")


# follows nameko test/testing/test_services.py::test_restrict_nonexistent_entrypoint
def test_restrict_nonexistent_entrypoint(container_factory, rabbit_config):
    """An unknown entrypoint is ExtensionNotFound."""
    container = container_factory(ServiceC, rabbit_config)
    with pytest.raises(ExtensionNotFound, match="nonexist"):
        restrict_entrypoints(container, "nonexist")


# follows nameko test/testing/test_services.py::test_restrict_entrypoint_container_already_started
def test_restrict_entrypoint_container_already_started(container_factory, rabbit_config):
    """Restricting a started container is refused."""
    container = container_factory(ServiceC, rabbit_config)
    container.start()
    with pytest.raises(RuntimeError, match="before the container is started"):
        restrict_entrypoints(container, "remote_method")


def test_once_runs_with_its_arguments_at_start(container_factory):
    """@once(*args, **kwargs) runs the method once, as the container starts."""
    seen = []

    class Starter:
        name = "starter"

        @once(1, b=2)
        def begin(self, a, b):
            seen.append((a, b))
            return a + b

    container = container_factory(Starter)
    with entrypoint_waiter(container, "begin") as result:
        container.start()
    assert result.get() == 3 and seen == [(1, 2)]


# follows nameko test/testing/test_services.py::test_entrypoint_waiter
def test_entrypoint_waiter(container_factory, rabbit_config, sim_cluster):
    """The waiter returns once the handler ran."""
    container = container_factory(Service, rabbit_config)
    container.start()
    dispatch = event_dispatcher(rabbit_config)
    with entrypoint_waiter(container, "handle"):
        dispatch("srcservice", "eventtype", "")
    handled.assert_called_once_with("")


# follows nameko test/testing/test_services.py::test_entrypoint_waiter_result
def test_entrypoint_waiter_result(container_factory, rabbit_config, sim_cluster):
    """result.get() gives what the handler returned."""

    class Service:
        name = "service"

        @event_handler("srcservice", "eventtype")
        def handle_event(self, msg):
            return msg.upper()

    container = container_factory(Service, rabbit_config)
    container.start()
    with entrypoint_waiter(container, "handle_event") as result:
        with pytest.raises(result.NotReady):
            result.get()
        sim_cluster.dispatch("srcservice", "eventtype", "msg")
    assert result.get() == "MSG"
    assert result.worker_ctx.args == ("msg",)


# follows nameko test/testing/test_services.py::test_entrypoint_waiter_with_callback
def test_entrypoint_waiter_with_callback(container_factory, rabbit_config, sim_cluster):
    """The callback sees every run, and the waiter ends when it returns true."""

    class Service:
        name = "service"

        @event_handler("srcservice", "eventtype")
        def handle_event(self, msg):
            return msg

    container = container_factory(Service, rabbit_config)
    container.start()
    results = []

    def cb(worker_ctx, res, exc_info):
        results.append((res, exc_info))
        return len(results) == 2

    with entrypoint_waiter(container, "handle_event", callback=cb):
        sim_cluster.dispatch("srcservice", "eventtype", "msg1")
        sim_cluster.dispatch("srcservice", "eventtype", "msg2")
    assert results == [("msg1", None), ("msg2", None)]


class Threshold:
    name = "service"
    limit = 5

    @event_handler("srcservice", "eventtype")
    def handle_event(self, msg):
        if msg > self.limit:
            raise OverflowError(msg)
        if msg < self.limit:
            raise ValueError(msg)
        return msg


# follows nameko test/testing/test_services.py::test_entrypoint_waiter_wait_for_specific_result
# follows nameko test/testing/test_services.py::test_entrypoint_waiter_wait_until_called_with_argument
# follows nameko test/testing/test_services.py::test_entrypoint_waiter_wait_until_raises
# follows nameko test/testing/test_services.py::test_entrypoint_waiter_wait_until_stops_raising
@pytest.mark.parametrize(
    ("callback", "outcome"),
    [
        (lambda ctx, res, exc_info: res == 5, 5),
        (lambda ctx, res, exc_info: ctx.args == (7,), OverflowError),
        (
            lambda ctx, res, exc_info: exc_info is not None and exc_info[0] is OverflowError,
            OverflowError,
        ),
        (lambda ctx, res, exc_info: exc_info is None, 5),
    ],
    ids=["specific-result", "called-with-argument", "until-raises", "until-stops-raising"],
)
def test_entrypoint_waiter_waits_for_the_run_the_callback_picks(
    container_factory, sim_cluster, callback, outcome
):
    """Events 0..9 run in turn; the waiter keeps the first run its callback accepts."""
    container = container_factory(Threshold)
    container.start()
    with entrypoint_waiter(container, "handle_event", callback=callback) as result:
        for count in range(10):
            sim_cluster.dispatch("srcservice", "eventtype", count)
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            result.get()
    else:
        assert result.get() == outcome


# follows nameko test/testing/test_services.py::test_entrypoint_waiter_timeout
def test_entrypoint_waiter_timeout(container_factory, rabbit_config, sim_cluster):
    """Nothing runs: Timeout after the timeout, in virtual time."""
    container = container_factory(Service, rabbit_config)
    container.start()
    with (
        pytest.raises(entrypoint_waiter.Timeout) as exc_info,
        entrypoint_waiter(container, "handle", timeout=0.01),
    ):
        pass
    assert str(exc_info.value) == "Timeout on service.handle after 0.01 seconds"
    assert sim_cluster.elapsed() == pytest.approx(0.01)


def test_entrypoint_waiter_timeout_counts_from_the_block(container_factory, sim_cluster):
    """The timeout counts from the start of the block: a block that itself takes
    longer (in virtual time) times out even if the handler then runs."""
    container = container_factory(Service)
    container.start()
    with (
        pytest.raises(entrypoint_waiter.Timeout),
        entrypoint_waiter(container, "handle", timeout=1),
    ):
        sim_cluster.advance(2)
        sim_cluster.dispatch("srcservice", "eventtype", "late")


def test_entrypoint_waiter_without_timeout_stalls_instead_of_hanging(container_factory):
    """timeout=None and nothing can run the handler: SimulationStalled, naming the wait."""
    from shimeji.exceptions import SimulationStalled

    container = container_factory(Service)
    container.start()
    with (
        pytest.raises(SimulationStalled, match=r"service\.handle to finish"),
        entrypoint_waiter(container, "handle", timeout=None),
    ):
        pass


# follows nameko test/testing/test_services.py::test_entrypoint_waiter_bad_entrypoint
def test_entrypoint_waiter_bad_entrypoint(container_factory, rabbit_config):
    """An unknown entrypoint is a RuntimeError, before the block runs."""
    container = container_factory(Service, rabbit_config)
    with (
        pytest.raises(RuntimeError, match="has no entrypoint"),
        entrypoint_waiter(container, "unknown"),
    ):
        pass  # pragma: no cover


# follows nameko test/testing/test_services.py::test_entrypoint_waiter_nested
def test_entrypoint_waiter_nested(container_factory, rabbit_config, sim_cluster):
    """Waiters on two entrypoints nest."""

    class Service:
        name = "service"

        @event_handler("srcservice", "eventtype1")
        def handle_event1(self, msg):
            handled(1)

        @event_handler("srcservice", "eventtype2")
        def handle_event2(self, msg):
            handled(2)

    container = container_factory(Service, rabbit_config)
    container.start()
    with (
        entrypoint_waiter(container, "handle_event1"),
        entrypoint_waiter(container, "handle_event2"),
    ):
        sim_cluster.dispatch("srcservice", "eventtype1", "")
        sim_cluster.dispatch("srcservice", "eventtype2", "")
    assert call(1) in handled.call_args_list and call(2) in handled.call_args_list


# follows nameko test/testing/test_services.py::test_entrypoint_waiter_duplicate
def test_entrypoint_waiter_duplicate(container_factory, rabbit_config, sim_cluster):
    """Two waiters on one entrypoint end on the same run."""

    class Service:
        name = "service"

        @event_handler("srcservice", "eventtype")
        def handle_event(self, msg):
            handled(msg)

    container = container_factory(Service, rabbit_config)
    container.start()
    with entrypoint_waiter(container, "handle_event"), entrypoint_waiter(container, "handle_event"):
        sim_cluster.dispatch("srcservice", "eventtype", "msg")
    assert handled.call_args_list == [call("msg")]


# follows nameko test/testing/test_services.py::test_entrypoint_waiter_result_teardown_race
def test_entrypoint_waiter_waits_for_teardown(container_factory, rabbit_config, sim_cluster):
    """The waiter ends after the accepted worker's teardown, not at its result."""
    tracker = Mock()

    class TrackingDependency(DependencyProvider):
        def worker_result(self, worker_ctx, result=None, exc_info=None):
            tracker.worker_result()

        def worker_teardown(self, worker_ctx):
            tracker.worker_teardown()

    class Service:
        name = "service"
        tracker = TrackingDependency()

        @event_handler("srcservice", "eventtype")
        def handle(self, msg):
            tracker.handle(msg)

    container = container_factory(Service, rabbit_config)
    container.start()
    runs = []

    def second_run(worker_ctx, res, exc_info):
        runs.append(worker_ctx)
        return len(runs) > 1

    with entrypoint_waiter(container, "handle", callback=second_run):
        # the first event, and its worker's teardown
        with wait_for_call(TrackingDependency, "worker_teardown"):
            sim_cluster.dispatch("srcservice", "eventtype", "msg")
        assert tracker.worker_teardown.call_count == 1
        assert tracker.worker_result.call_count == 1
        assert tracker.handle.call_count == 1
        sim_cluster.dispatch("srcservice", "eventtype", "msg")
    assert tracker.worker_result.call_count == 2
    assert tracker.worker_teardown.call_count == 2
    assert tracker.handle.call_count == 2
