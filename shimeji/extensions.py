"""Write your own entrypoints and dependency providers (nameko's extension model).

A ``DependencyProvider`` supplies a service attribute per worker and sees each
worker's lifecycle (``worker_setup``, ``worker_result``, ``worker_teardown``);
``self.container.config`` holds the configuration. See docs/architecture.md.
"""

from shimeji.core.container import WorkerContext
from shimeji.core.extensions import DependencyProvider, Entrypoint, Extension, SharedExtension

__all__ = ["DependencyProvider", "Entrypoint", "Extension", "SharedExtension", "WorkerContext"]
