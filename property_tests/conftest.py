"""Hypothesis profiles for the property tests.

``ci`` (the default) keeps property_tests/ within a few minutes on a 2-core
machine; ``thorough`` runs ten times the examples. Choose with the
environment variable ``SHIMEJI_HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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
