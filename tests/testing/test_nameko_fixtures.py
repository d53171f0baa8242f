"""The opt-in plugin of nameko's fixtures: containers, runners, configs, web_session."""

from __future__ import annotations

import json
import sys

import pytest

from shimeji.dependency_providers import Config
from shimeji.exceptions import ConfigurationError, ReplicaCrashed, SimulationStalled
from shimeji.rpc import rpc
from shimeji.testing.containers import SimContainer
from shimeji.testing.services import entrypoint_hook
from shimeji.web import http

pytest_plugins = ["pytester", "shimeji.testing.nameko_fixtures"]


class Echo:
    name = "echo"
    config = Config("GREETING")

    @rpc
    def echo(self, value):
        return value

    @rpc
    def greet(self, who):
        return f"{self.config.get('GREETING', 'hello')} {who}"

    @rpc
    def slow(self, seconds):
        import time

        time.sleep(seconds)
        return seconds

    @http("POST", "/echo")
    def http_echo(self, request):
        return 201, {"X-Seen": request.mimetype}, request.get_data(as_text=True)

    @http("GET", "/greet/<name>")
    def http_greet(self, request, name):
        return json.dumps({"hello": name, "lang": request.args.get("lang")})


def test_plugin_is_opt_in(pytester: pytest.Pytester):
    """The fixtures exist only with -p shimeji.testing.nameko_fixtures."""
    pytester.makepyfile(
        """
        def test_uses(container_factory, rabbit_config, web_session):
            assert rabbit_config["AMQP_URI"].startswith("sim://")
        """
    )
    without = pytester.runpytest("-p", "no:cacheprovider")
    without.assert_outcomes(errors=1)
    without.stdout.fnmatch_lines(["*fixture 'container_factory' not found*"])
    with_plugin = pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "shimeji.testing.nameko_fixtures"
    )
    with_plugin.assert_outcomes(passed=1)


def test_container_lifecycle(container_factory, sim_cluster):
    """A container is a replica added unstarted; start, stop and wait as nameko's."""
    container = container_factory(Echo)
    assert isinstance(container, SimContainer)
    assert container.replica.name == "echo-1" and not container.started
    assert container.service_name == "echo" and container.max_workers == 10
    container.start()
    assert container.started
    assert sim_cluster.rpc.echo.echo(5) == 5
    reply = sim_cluster.rpc.echo.slow.call_async(3)
    sim_cluster.advance(0.01)  # the request reaches the replica
    container.stop()  # graceful: the running call finishes, in virtual time
    assert reply.result() == 3 and not container.started
    container.wait()  # already stopped: returns at once
    assert "stopped" in repr(container)


def test_kill_and_wait(container_factory, sim_cluster):
    """kill() needs no waiting; kill(exc_info) makes wait() raise that error, and
    the cluster does not raise it again as it stops."""
    first = container_factory(Echo)
    first.start()
    first.kill()
    assert not first.started
    first.wait()

    second = container_factory(Echo)
    second.start()
    try:
        raise KeyError("boom")
    except KeyError:
        second.kill(sys.exc_info())
    with pytest.raises(KeyError, match="boom"):
        second.wait()
    assert sim_cluster.crashes == []


def test_wait_on_a_container_nothing_stops_stalls(container_factory):
    """wait() on a replica that nothing will stop is a stall, not a hang."""
    container = container_factory(Echo)
    container.start()
    with pytest.raises(SimulationStalled, match=r"echo-1 to stop"):
        container.wait()


def test_spawn_worker_with_nameko_signature(container_factory):
    """spawn_worker(entrypoint, args, kwargs, context_data, handle_result) as nameko's."""
    container = container_factory(Echo)
    container.start()
    entrypoint = next(e for e in container.entrypoints if e.method_name == "echo")
    seen = []

    def handle_result(worker_ctx, result, exc_info):
        seen.append((worker_ctx.context_data["user_id"], result))
        return result, exc_info

    container.spawn_worker(entrypoint, ["hi"], {}, {"user_id": "u1"}, handle_result)
    container.cluster.run_until_idle()
    assert seen == [("u1", "hi")]


def test_config_is_per_container(container_factory, sim_cluster):
    """Each container has its configuration; the cluster's clients reach both."""
    plain = container_factory(Echo)
    french = container_factory(Echo, {"GREETING": "bonjour", "max_workers": 2})
    plain.start()
    french.start()
    assert french.config["GREETING"] == "bonjour" and french.max_workers == 2
    assert plain.max_workers == 10
    greetings = [sim_cluster.rpc.echo.greet("ann") for _ in range(2)]
    assert greetings == ["hello ann", "bonjour ann"]  # two replicas, served in turn


def test_bad_configs_are_refused(container_factory):
    """A config that is no mapping, or a bad value of shimeji's own keys, is refused,
    saying why (a service's own keys ride along undeclared, as in nameko)."""
    with pytest.raises(ConfigurationError, match="is a mapping"):
        container_factory(Echo, [("GREETING", "hi")])
    with pytest.raises(ConfigurationError, match="max_workers"):
        container_factory(Echo, {"max_workers": 0})
    with pytest.raises(ConfigurationError, match="no `name`"):
        container_factory(type("Nameless", (), {}))
    idle = container_factory(type("Idle", (), {"name": "idle"}))  # as nameko: it does nothing
    idle.start()
    idle.stop()


def test_runner_factory(runner_factory, sim_cluster):
    """A runner holds a container per service class and starts, stops and kills them."""

    class Other:
        name = "other"

        @rpc
        def ping(self):
            return "pong"

    runner = runner_factory({}, Echo, Other)
    runner.add_service(Echo)  # one container per service, as nameko's
    assert runner.service_names == ["echo", "other"]
    runner.start()
    assert all(c.started for c in runner.containers)
    assert sim_cluster.rpc.other.ping() == "pong"
    runner.stop()
    runner.wait()
    assert not any(c.started for c in runner.containers)
    runner.start()  # nameko's runner cannot restart; here each replica starts afresh
    runner.kill()
    assert "echo" in repr(runner)


class Fetcher:
    name = "fetcher"

    @rpc
    def fetch(self, url):
        import urllib.request

        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.read().decode()


@pytest.mark.filterwarnings("ignore::shimeji.sim.UncontrolledEffectWarning")
def test_web_config_address_answers_on_a_real_socket(
    container_factory, web_config, rabbit_config, sim_cluster
):
    """A worker calling a route over a real socket, at web_config's address, gets
    its answer, though it blocks the simulation's thread; it is reported."""
    container_factory(Echo, web_config).start()
    container_factory(Fetcher, rabbit_config).start()
    url = f"http://{web_config['WEB_SERVER_ADDRESS']}/greet/ann?lang=fr"
    assert json.loads(sim_cluster.rpc.fetcher.fetch(url)) == {"hello": "ann", "lang": "fr"}
    assert any("came from a real socket" in line for line in sim_cluster.uncontrolled)


def test_web_session_and_config(container_factory, web_config, web_config_port, web_session):
    """web_session sends requests to the routes in virtual time, requests-style."""
    address = web_config["WEB_SERVER_ADDRESS"]
    assert list(web_config) == ["WEB_SERVER_ADDRESS"] and address == f"127.0.0.1:{web_config_port}"
    container = container_factory(Echo, web_config)
    container.start()

    response = web_session.get("/greet/ann", params={"lang": "fr"})
    assert response.status_code == 200 and response.json() == {"hello": "ann", "lang": "fr"}
    response = web_session.get(f"http://{address}/greet/bob?lang=de")
    assert response.json() == {"hello": "bob", "lang": "de"}

    response = web_session.post("/echo", data={"a": "1", "b": ["2", "3"]})
    assert response.status_code == 201
    assert response.headers["X-Seen"] == "application/x-www-form-urlencoded"
    assert response.text == "a=1&b=2&b=3"
    assert web_session.post("/echo", json={"k": 1}).text == '{"k": 1}'
    assert web_session.delete("/echo").status_code == 405
    assert web_session.get("/nowhere").status_code == 404

    with pytest.raises(TypeError, match="takes params, data, headers and json"):
        web_session.get("/greet/ann", timeout=5)


def test_web_session_without_a_replica_answers_503(container_factory, web_session):
    """A route whose replica has not started answers 503, as a front would."""
    container_factory(Echo)
    assert web_session.get("/greet/ann").status_code == 503


def test_configs(empty_config, rabbit_config):
    """empty_config is empty; rabbit_config has just AMQP_URI."""
    assert empty_config == {} and list(rabbit_config) == ["AMQP_URI"]


def test_mock_container(mock_container):
    """mock_container stands in for a ServiceContainer in unit tests of extensions."""
    provider = Config().bind(mock_container, "config")
    assert provider.get_dependency(None)["max_workers"] == 10
    assert mock_container.service_name == "service"
    with pytest.raises(AttributeError):
        mock_container.no_such_method()


def test_hook_on_a_container_crash_reports_the_cause(container_factory, sim_cluster):
    """The crash a hook raised is the test's: the cluster's report stays clean."""
    from shimeji.extensions import DependencyProvider

    class Broken(DependencyProvider):
        def worker_teardown(self, worker_ctx):
            raise OSError("disk")

    class Fragile(Echo):
        broken = Broken()

    container = container_factory(Fragile)
    container.start()
    with pytest.raises(OSError, match="disk"), entrypoint_hook(container, "echo") as echo:
        echo(1)
    assert sim_cluster.crashes == []
    other = container_factory(Fragile)
    other.start()
    sim_cluster.rpc.echo.echo(1)  # a crash the test did not see is still reported
    assert [type(c) for c in sim_cluster.crashes] == [ReplicaCrashed]
    sim_cluster.crashes.clear()


def test_determinism_check_reruns_on_a_fresh_cluster(pytester: pytest.Pytester):
    """--shimeji-check-determinism runs a test twice; the factories and web_session
    follow the fresh cluster of the second run."""
    pytester.makepyfile(
        """
        from shimeji.rpc import rpc
        from shimeji.web import http
        from shimeji.testing.services import entrypoint_hook

        class Echo:
            name = "echo"

            @rpc
            def echo(self, value):
                return value

            @http("GET", "/ping")
            def ping(self, request):
                return "pong"

        def test_twice(container_factory, runner_factory, web_session, rabbit_config):
            from shimeji.standalone import ServiceRpcProxy

            container = container_factory(Echo)
            container.start()
            with ServiceRpcProxy("echo", rabbit_config) as proxy:
                assert proxy.echo(2) == 2
            with entrypoint_hook(container, "echo") as echo:
                assert echo(1) == 1
            assert web_session.get("/ping").text == "pong"
            runner = runner_factory({}, Echo)
            runner.start()
        """
    )
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-p",
        "shimeji.testing.nameko_fixtures",
        "--shimeji-check-determinism",
    )
    result.assert_outcomes(passed=1)
