"""Finding extensions and containers in a test (nameko's ``nameko.testing.utils``).

proxy = get_extension(container, RpcProxy, target_service="calculator")
orders = get_container(runner, OrderService)
with wait_for_call(1, tracker):   # until the mock ``tracker`` has been called
    ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from shimeji.core.extensions import Extension
from shimeji.testing.waiting import check_timeout, wait_until

__all__ = ["get_container", "get_extension", "wait_for_call"]


def _extensions(container: Any) -> list[Extension]:
    extensions = getattr(container, "extensions", None)
    if extensions is None:
        inner = getattr(container, "container", None) or getattr(container, "prepared", None)
        extensions = getattr(inner, "extensions", None)
    if extensions is None:
        raise TypeError(
            f"get_extension takes a container (from container_factory or runner_factory, a "
            f"started replica, or a ServiceContainer); got {container!r}"
        )
    return list(extensions)


def get_extension(container: Any, extension_cls: type, **match_attrs: Any) -> Any:
    """The first of the container's extensions that is an ``extension_cls`` and
    whose attributes equal ``match_attrs`` (None if there is none).

    A container is anything ``entrypoint_hook`` takes."""
    for extension in _extensions(container):
        if not isinstance(extension, extension_cls):
            continue
        if all(getattr(extension, name, _MISSING) == value for name, value in match_attrs.items()):
            return extension
    return None


def get_container(runner: Any, service_cls: type) -> Any:
    """The container of ``runner`` (``runner_factory``'s, or any object with
    ``containers``) that runs ``service_cls``; None if none does."""
    for container in runner.containers:
        if container.service_cls is service_cls:
            return container
    return None


@contextlib.contextmanager
def wait_for_call(timeout: float, mock_method: Any) -> Iterator[Any]:
    """Wait until the mock ``mock_method`` has been called, then yield it.

    The wait comes before the block, as in nameko. While a simulated cluster
    runs (with or without ``virtual_time``) it runs the simulation until the
    mock is called: ``timeout`` is the simulation's seconds, after which
    ``shimeji.testing.waiting.Timeout`` (nameko's tests get
    ``eventlet.Timeout``) is raised, and ``SimulationStalled`` is raised at
    once if nothing left to run can call the mock. With no simulation
    running, ``timeout`` is real seconds, for calls from other threads.
    """
    if not hasattr(mock_method, "called"):
        raise TypeError(
            "wait_for_call(timeout, mock_method) waits for a mock (unittest.mock.Mock) to "
            f"be called; got {mock_method!r}. To wait for a call to a method of an object, "
            "use shimeji.testing.waiting.wait_for_call(obj, 'method')"
        )
    seconds = check_timeout(timeout, "wait_for_call")
    if seconds is None:
        raise ValueError("wait_for_call: timeout is seconds >= 0; got None")
    wait_until(
        lambda: bool(mock_method.called),
        seconds,
        f"a call to {mock_method!r}",
        "Start what calls the mock before wait_for_call (it waits before its block "
        "runs), or check that the code calls this very mock.",
    )
    yield mock_method


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
