"""Call id stacks of workers, test by test after nameko's ``test/test_call_id_stack.py``.

nameko builds ``WorkerContext`` objects by hand and counts call ids from 0
(``predictable_call_ids``); here a worker runs through ``entrypoint_hook``
with the same context data, a dependency records its context, and ids are
compared without their last part, which comes from the seed. (The chains
through RPC and events, ``test_call_id_stack`` and
``test_call_id_over_events``, are in test_errors.py.)
"""

from __future__ import annotations

import pytest

from shimeji.extensions import DependencyProvider
from shimeji.testing.services import dummy, entrypoint_hook

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class Recorder(DependencyProvider):
    """Gives the worker's own context."""

    def get_dependency(self, worker_ctx):
        return worker_ctx


class FooService:
    name = "baz"
    ctx = Recorder()

    @dummy
    def bar(self):
        return self.ctx

    @dummy
    def foo(self):
        return self.ctx

    @dummy
    def long(self):
        return self.ctx


def run(container, method, stack=None):
    """The context of a worker of ``method`` called with ``stack`` as its callers."""
    data = {} if stack is None else {"call_id_stack": stack}
    with entrypoint_hook(container, method, context_data=data) as hook:
        return hook()


def without_ids(stack):
    return [call_id.rsplit(".", 1)[0] for call_id in stack]


# follows nameko test/test_call_id_stack.py::test_worker_context_gets_stack
def test_worker_context_gets_stack(container_factory):
    container = container_factory(FooService, {})
    container.start()

    context = run(container, "bar")
    assert context.call_id.startswith("baz.bar.")
    assert context.call_id_stack == [context.call_id]

    # build a stack
    second = run(container, "foo", context.call_id_stack)
    assert second.call_id.startswith("baz.foo.")
    assert second.call_id_stack == [context.call_id, second.call_id]
    assert second.call_id != context.call_id

    # a long stack (10, nameko's default for parent_calls_tracked, is kept whole)
    many_ids = [str(i) for i in range(10)]
    third = run(container, "long", many_ids)
    assert third.call_id_stack == [*many_ids, third.call_id]
    assert without_ids(third.call_id_stack[-1:]) == ["baz.long"]


# follows nameko test/test_call_id_stack.py::test_short_call_stack
def test_short_call_stack(container_factory):
    # parent_calls_tracked is nameko's PARENT_CALLS_CONFIG_KEY
    container = container_factory(FooService, {"parent_calls_tracked": 1})
    container.start()

    many_ids = [str(i) for i in range(100)]
    context = run(container, "long", many_ids)
    assert context.call_id_stack == ["99", context.call_id]


STACK = ["parent.method.1", "parent.method.2", "parent.method.3"]


class TestImmediateParentCallId:
    @pytest.fixture
    def container(self, container_factory):
        container = container_factory(FooService, {})
        container.start()
        return container

    # follows nameko test/test_call_id_stack.py::TestImmediateParentCallId::test_with_parent
    def test_with_parent(self, container):
        assert run(container, "bar", STACK).immediate_parent_call_id == "parent.method.3"

    # follows nameko test/test_call_id_stack.py::TestImmediateParentCallId::test_without_parent
    def test_without_parent(self, container):
        assert run(container, "bar").immediate_parent_call_id is None


class TestOriginCallId:
    @pytest.fixture
    def container(self, container_factory):
        container = container_factory(FooService, {})
        container.start()
        return container

    # follows nameko test/test_call_id_stack.py::TestOriginCallId::test_with_origin
    def test_with_origin(self, container):
        assert run(container, "bar", STACK).origin_call_id == "parent.method.1"

    # follows nameko test/test_call_id_stack.py::TestOriginCallId::test_without_origin
    def test_without_origin(self, container):
        assert run(container, "bar").origin_call_id is None
