"""shimeji.compat.nameko: `import nameko...` resolving to shimeji, opt-in."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import shimeji.contextdata
import shimeji.events
import shimeji.exceptions
import shimeji.rpc
import shimeji.standalone
import shimeji.testing.utils
import shimeji.testing.waiting
import shimeji.timer
import shimeji.web
from shimeji.compat import nameko as layer
from shimeji.exceptions import ConfigurationError


@pytest.fixture
def installed():
    with layer.installed():
        yield


def test_nothing_changes_until_installed():
    assert not layer.is_installed()
    assert importlib.util.find_spec("nameko") is None or "nameko" not in sys.modules


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    ("module", "names", "source"),
    [
        ("nameko.rpc", ["rpc", "RpcProxy"], shimeji.rpc),
        ("nameko.events", ["EventDispatcher", "event_handler", "BROADCAST"], shimeji.events),
        ("nameko.timer", ["timer"], shimeji.timer),
        ("nameko.web.handlers", ["http", "HttpRequestHandler"], shimeji.web),
        ("nameko.exceptions", ["RemoteError", "BadRequest", "UnknownService"], shimeji.exceptions),
        ("nameko.contextdata", ["Language", "UserId"], shimeji.contextdata),
        ("nameko.standalone.rpc", ["ClusterRpcProxy", "ServiceRpcProxy"], shimeji.standalone),
        ("nameko.standalone.events", ["event_dispatcher"], shimeji.standalone),
        ("nameko.testing.waiting", ["wait_for_call", "WaitResult"], shimeji.testing.waiting),
        ("nameko.testing.utils", ["wait_for_call", "get_extension"], shimeji.testing.utils),
    ],
)
def test_nameko_modules_hold_shimejis_objects(module, names, source):
    imported = importlib.import_module(module)
    assert imported.__name__ == module
    for name in names:
        assert getattr(imported, name) is getattr(source, name), name
        assert name in imported.__all__


@pytest.mark.usefixtures("installed")
def test_the_rest_of_the_public_modules_import():
    from nameko.constants import AMQP_URI_CONFIG_KEY, DEFAULT_MAX_WORKERS
    from nameko.containers import ServiceContainer, WorkerContext  # noqa: F401
    from nameko.dependency_providers import Config  # noqa: F401
    from nameko.extensions import DependencyProvider, Entrypoint  # noqa: F401
    from nameko.runners import ServiceRunner, run_services  # noqa: F401
    from nameko.testing.services import entrypoint_hook, worker_factory  # noqa: F401
    from nameko.testing.utils import get_container  # noqa: F401

    assert (AMQP_URI_CONFIG_KEY, DEFAULT_MAX_WORKERS) == ("AMQP_URI", 10)


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    ("module", "words"),
    [
        ("nameko.web.websocket", "websocket hub"),
        ("nameko.messaging", "use events"),
        ("eventlet", "time.sleep"),
        ("eventlet.green", "eventlet is not supported"),
        ("nameko.cli.main", "shimeji run"),
    ],
)
def test_what_cannot_be_supported_fails_at_import_saying_so(module, words):
    with pytest.raises(ImportError, match=words) as error:
        importlib.import_module(module)
    assert module.startswith(error.value.name)  # the first of its packages that fails


@pytest.mark.usefixtures("installed")
def test_an_unknown_nameko_module_lists_what_is_provided():
    with pytest.raises(ImportError, match=r"nameko\.nope is not a nameko module.*nameko\.rpc"):
        importlib.import_module("nameko.nope")


def test_uninstall_forgets_the_modules():
    with layer.installed():
        import nameko.rpc  # noqa: F401

        assert "nameko.rpc" in sys.modules
    assert "nameko.rpc" not in sys.modules
    assert not layer.is_installed()


def test_nameko_imported_first_is_refused(tmp_path):
    """A real nameko (here a stand-in package) imported before the layer."""
    package = tmp_path / "nameko"
    package.mkdir()
    (package / "__init__.py").write_text("")
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import nameko
        from shimeji.compat import nameko as layer
        try:
            layer.install()
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("ConfigurationError nameko is imported already (nameko)")
    assert "pytest -p shimeji.compat.pytest_nameko" in done.stdout


def test_the_layer_wins_over_an_installed_nameko(tmp_path):
    """Installed first, the layer answers even where a nameko package is on the path."""
    package = tmp_path / "nameko"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('the real one')")
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from shimeji.compat import nameko as layer
        layer.install()
        from nameko.rpc import rpc
        import shimeji.rpc
        print(rpc is shimeji.rpc.rpc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


NAMEKO_SERVICE = """
from nameko.rpc import rpc, RpcProxy
from nameko.containers import ServiceContainer


class Greeter:
    name = "greeter"

    @rpc
    def hello(self, who):
        return "hello " + who


class Front:
    name = "front"
    greeter = RpcProxy("greeter")

    @rpc
    def greet(self, who):
        return self.greeter.hello(who).upper()
"""


def test_shimeji_sim_runs_nameko_code_with_the_flag(tmp_path, capsys, monkeypatch):
    from shimeji.cli import main

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "nameko_graph.py").write_text(NAMEKO_SERVICE)
    try:
        status = main(
            ["sim", str(tmp_path / "nameko_graph.py"), "--nameko", "--call", "front.greet('ann')"]
        )
        out, err = capsys.readouterr()
        assert status == 0
        assert err.strip() == "front.greet('ann') returned 'HELLO ANN'"
        assert "greeter-1" in out
    finally:
        layer.uninstall()
        sys.modules.pop("nameko_graph", None)


def test_shimeji_sim_without_the_flag_says_nameko_is_missing(tmp_path, capsys):
    from shimeji.cli import main

    (tmp_path / "nameko_graph2.py").write_text(NAMEKO_SERVICE)
    status = main(["sim", str(tmp_path / "nameko_graph2.py"), "--call", "greeter.hello('x')"])
    _, err = capsys.readouterr()
    assert status == 2
    assert "nameko" in err


def test_a_standalone_container_runs_in_a_cluster_of_its_own():
    """nameko's ServiceContainer(cls, config) outside any test fixture."""
    with layer.installed():
        from nameko.containers import ServiceContainer
        from nameko.testing.services import entrypoint_hook

        namespace: dict = {}
        exec(NAMEKO_SERVICE, namespace)
        container = ServiceContainer(namespace["Greeter"], config={})
        container.start()
        with entrypoint_hook(container, "hello") as hello:
            assert hello("bo") == "hello bo"
        container.stop()
        assert container.cluster.state == "stopped"


def test_configuration_error_message_is_precise():
    with pytest.raises(ConfigurationError, match="install shimeji's nameko layer before"):
        sys.modules["nameko"] = type(sys)("nameko")
        try:
            layer.install()
        finally:
            del sys.modules["nameko"]
