"""Context data providers on the simulator, after nameko's ``test/test_contextdata.py``.

nameko's tests build a ``WorkerContext`` by hand and ask the provider for its
dependency; these run a worker through ``entrypoint_hook`` with the same
context data, and read what the provider gave it.
"""

from __future__ import annotations

import pytest

from shimeji.contextdata import AuthToken, ContextDataProvider, Language, UserAgent, UserId
from shimeji.rpc import rpc
from shimeji.testing.services import entrypoint_hook

pytest_plugins = ["shimeji.testing.nameko_fixtures"]

CUSTOM_CONTEXT_KEY = "custom"


class CustomValue(ContextDataProvider):
    context_key = CUSTOM_CONTEXT_KEY


class Service:
    name = "service"

    auth_token = AuthToken()
    language = Language()
    user_id = UserId()
    user_agent = UserAgent()
    custom_value = CustomValue()

    @rpc
    def read(self, attr_name):
        return getattr(self, attr_name)


@pytest.fixture
def container(container_factory):
    made = container_factory(Service, {})
    made.start()
    return made


# follows nameko test/test_contextdata.py::test_get_custom_context_value
def test_get_custom_context_value(container):
    with entrypoint_hook(container, "read", context_data={CUSTOM_CONTEXT_KEY: "hello"}) as read:
        assert read("custom_value") == "hello"


# follows nameko test/test_contextdata.py::test_get_unset_value
def test_get_unset_value(container):
    with entrypoint_hook(container, "read", context_data={}) as read:
        assert read("custom_value") is None


# follows nameko test/test_contextdata.py::test_get_builtin_dependencies
@pytest.mark.parametrize(
    ("attr_name", "context_key"),
    [
        ("auth_token", "auth_token"),
        ("language", "language"),
        ("user_id", "user_id"),
        ("user_agent", "user_agent"),
    ],
)
def test_get_builtin_dependencies(container, attr_name, context_key):
    with entrypoint_hook(container, "read", context_data={context_key: "value"}) as read:
        assert read(attr_name) == "value"
