"""Config and the context data providers, after nameko's tests of them."""

from __future__ import annotations

import pytest

from shimeji.contextdata import AuthToken, ContextDataProvider, Language, UserAgent, UserId
from shimeji.dependency_providers import Config
from shimeji.exceptions import ConfigurationError
from shimeji.rpc import rpc
from shimeji.testing.services import entrypoint_hook
from shimeji.testing.utils import get_extension

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class ConfigService:
    name = "test_x"
    config = Config("FOO")

    @rpc
    def foo(self):
        return self.config.get("FOO")

    @rpc
    def spoil(self):
        self.config["FOO"] = "spoilt"


# follows nameko test/test_dependency_providers.py::TestConfig::test_get_config_value
def test_get_config_value(rabbit_config, container_factory):
    """Config gives the container's configuration, application keys included."""
    config = rabbit_config
    config["FOO"] = "bar"
    container = container_factory(ConfigService, config)
    container.start()
    with entrypoint_hook(container, "foo") as foo:
        assert foo() == "bar"


def test_config_is_a_copy_per_worker(container_factory):
    """A worker that changes its copy changes nothing for the next one."""
    container = container_factory(ConfigService, {"FOO": "bar"})
    container.start()
    with entrypoint_hook(container, "spoil") as spoil, entrypoint_hook(container, "foo") as foo:
        spoil()
        assert foo() == "bar"


def test_config_has_shimeji_defaults(sim_cluster):
    """Keys the configuration leaves out read as shimeji's defaults."""

    class Reader:
        name = "reader"
        config = Config()

        @rpc
        def workers(self):
            return self.config["max_workers"]

    sim_cluster.add_service(Reader)
    assert sim_cluster.rpc.reader.workers() == 10


def test_undeclared_application_keys(container_factory):
    """nameko's fixtures take any key, as nameko does; shimeji's own cluster
    refuses a key neither shimeji's nor declared, saying how to declare it."""
    from shimeji.sim import SimCluster

    class Undeclared:
        name = "undeclared"
        config = Config()

        @rpc
        def foo(self):
            return self.config.get("FOO")

    container = container_factory(Undeclared, {"FOO": "bar"})
    container.start()
    with entrypoint_hook(container, "foo") as foo:
        assert foo() == "bar"
    with (
        pytest.raises(ConfigurationError, match=r"unknown configuration key 'FOO'.*declared"),
        SimCluster(config={"FOO": "bar"}, virtual_time=False) as cluster,
    ):
        cluster.add_service(Undeclared)


def test_config_keys_must_be_names():
    """Config takes key names only."""
    with pytest.raises(ConfigurationError, match="names of configuration keys"):
        Config(3)


class CustomValue(ContextDataProvider):
    context_key = "custom"


class ContextService:
    name = "context_service"
    auth_token = AuthToken()
    language = Language()
    user_id = UserId()
    user_agent = UserAgent()
    custom_value = CustomValue()
    everything = ContextDataProvider()
    one = ContextDataProvider("custom")

    @rpc
    def read(self, attr):
        value = getattr(self, attr)
        return dict(value) if attr == "everything" else value


# follows nameko test/test_contextdata.py::test_get_custom_context_value
# follows nameko test/test_contextdata.py::test_get_unset_value
@pytest.mark.parametrize("data", [{"custom": "hello"}, {}])
def test_custom_context_value(container_factory, data):
    """A subclass with context_key gives that key's value (None when absent)."""
    container = container_factory(ContextService)
    container.start()
    dependency = get_extension(container, ContextDataProvider, attr_name="custom_value")
    assert dependency.key == "custom"
    with entrypoint_hook(container, "read", data) as read:
        assert read("custom_value") == data.get("custom")
        assert read("one") == data.get("custom")


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
def test_get_builtin_dependencies(sim_cluster, attr_name, context_key):
    """The built-in providers give their key's value, sent by a caller."""
    sim_cluster.add_service(ContextService)
    client = sim_cluster.rpc_proxy(context_data={context_key: "value"})
    assert client.context_service.read(attr_name) == "value"
    assert client.context_service.read("everything") == {context_key: "value"}


def test_bare_provider_keeps_the_mapping(container_factory):
    """A bare ContextDataProvider() still gives the whole read-only mapping."""
    container = container_factory(ContextService)
    container.start()
    with entrypoint_hook(container, "read", {"language": "fr", "user_id": "u1"}) as read:
        assert read("everything") == {"language": "fr", "user_id": "u1"}
    assert ContextService.everything.key is None


def test_context_key_must_be_a_name():
    """An empty or non-string key is refused."""
    with pytest.raises(ConfigurationError, match="non-empty string"):
        ContextDataProvider("")

    class Bad(ContextDataProvider):
        context_key = 7

    with pytest.raises(ConfigurationError, match="non-empty string"):
        Bad()
