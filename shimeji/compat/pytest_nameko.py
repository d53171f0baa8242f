"""pytest plugin: run tests written for nameko on shimeji's simulator.

    pytest -p shimeji.compat.pytest_nameko

Loaded this way, it installs shimeji's nameko layer before any test module
is imported (``import nameko.rpc`` gives shimeji's), and brings nameko's
fixtures (``container_factory``, ``runner_factory``, ``rabbit_config``,
``web_session``, ...) backed by the simulator. It can also go in a
``conftest.py`` at the root of the tests (``pytest_plugins =
["shimeji.compat.pytest_nameko"]``) or in ``addopts``.
"""

from __future__ import annotations

from shimeji.compat import nameko

__all__ = ["pytest_plugins"]

nameko.install()

pytest_plugins = ["shimeji.testing.nameko_fixtures"]
