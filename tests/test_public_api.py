"""The public modules are thin, declare __all__, and export what users import."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import shimeji

PUBLIC = {
    "shimeji.rpc": {"rpc", "RpcProxy", "ServiceRpc", "RpcReply"},
    "shimeji.exceptions": {
        "RemoteError",
        "ServiceNotFound",
        "UnknownService",
        "MethodNotFound",
        "IncorrectSignature",
        "MalformedRequest",
        "BadRequest",
        "RpcTimeout",
        "UnserializableValueError",
        "ConfigurationError",
        "ContainerBeingKilled",
        "SimulationStalled",
        "FaultPlanError",
        "deserialize_to_instance",
        "serialize",
        "deserialize",
    },
    "shimeji.contextdata": {"ContextDataProvider", "Language", "UserId", "UserAgent", "AuthToken"},
    "shimeji.extensions": {"Extension", "Entrypoint", "DependencyProvider", "SharedExtension"},
    "shimeji.sim": {"SimCluster", "SimulationStalled"},
    "shimeji.testing": {"worker_factory"},
    "shimeji.config": {"load_config"},
    "shimeji.dependency_providers": {"Config"},
    "shimeji.testing.services": {
        "entrypoint_hook",
        "entrypoint_waiter",
        "replace_dependencies",
        "restrict_entrypoints",
        "once",
        "worker_factory",
    },
    "shimeji.testing.utils": {"get_extension", "get_container", "wait_for_call"},
    "shimeji.testing.waiting": {"wait_for_call", "WaitResult", "Timeout"},
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_public_names(module_name):
    """Each public module's __all__ holds the documented names, all importable."""
    module = importlib.import_module(module_name)
    assert PUBLIC[module_name] <= set(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_every_module_declares_all():
    """Every module of the package declares __all__."""
    missing = []
    for info in pkgutil.walk_packages(shimeji.__path__, "shimeji."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        if not isinstance(getattr(module, "__all__", None), (list, tuple)):
            missing.append(info.name)
    assert missing == []


def test_aliases():
    """ServiceRpc and UnknownService are the nameko-era names of the same classes."""
    from shimeji.exceptions import ServiceNotFound, UnknownService
    from shimeji.rpc import RpcProxy, ServiceRpc

    assert ServiceRpc is RpcProxy and UnknownService is ServiceNotFound


def test_core_and_sim_never_import_kombu():
    """The rules and the simulator never depend on the broker library."""
    import pathlib
    import re
    import subprocess
    import sys

    root = pathlib.Path(shimeji.__file__).parent
    pattern = re.compile(r"^\s*(import|from)\s+(kombu|amqp)\b", re.MULTILINE)
    for folder in ("core", "sim"):
        for path in (root / folder).rglob("*.py"):
            assert not pattern.search(path.read_text()), path
    # Elsewhere too, kombu and py-amqp are imported only inside the adapter.
    outside = [
        path.relative_to(root)
        for path in sorted(root.rglob("*.py"))
        if "amqp_adapter" not in path.parts and pattern.search(path.read_text())
    ]
    assert outside == []
    probe = (
        "import sys, shimeji.sim, shimeji.rpc, shimeji.testing; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kombu', 'amqp')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
