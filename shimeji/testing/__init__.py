"""Testing helpers: ``worker_factory`` for unit tests, and the pytest plugin
(fixture ``sim_cluster``, option ``--shimeji-seed``)."""

from shimeji.testing.workers import worker_factory

__all__ = ["worker_factory"]
