"""Hypothesis profiles for the property tests.

``ci`` (the default) keeps property_tests/ within a few minutes on a 2-core
machine; ``thorough`` runs ten times the examples. Choose with the
environment variable ``SHIMEJI_HYPOTHESIS_PROFILE``.

Every example builds clusters of its own; virtual time's patches of the
process are kept in place for each test module (``keep_virtual_time``)
rather than made and undone by each cluster, which cost as much as a run;
and the objects alive when a module starts are kept out of the garbage
collector's way while it runs (``gc.freeze``).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from shimeji.sim.clock import keep_virtual_time

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("SHIMEJI_HYPOTHESIS_PROFILE", "ci"))


# Per module: a session-wide block would outlive this directory, and keep the
# process patched for the tests that run after these in the same session.
@pytest.fixture(autouse=True, scope="module")
def _virtual_time_kept() -> Iterator[None]:
    with keep_virtual_time():
        yield


# The collector's full collections walked every object alive when the module's
# properties start (modules, Hypothesis, the strategies) again and again, for
# the few objects each example leaves: 6 to 7% of the failure-path
# properties' time (timed through ``gc.callbacks``), about 3% once those are
# set aside (``gc.freeze``) while the module runs. What the examples make is
# collected as ever, and everything is handed back to the collector after.
@pytest.fixture(autouse=True, scope="module")
def _long_lived_objects_frozen() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
