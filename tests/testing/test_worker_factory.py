"""worker_factory: a service instance for unit tests, without a cluster."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest

from shimeji.exceptions import ConfigurationError, ExtensionNotFound
from shimeji.testing import worker_factory

from ..sim.services import UserService


def test_dependencies_are_mocks_unless_given():
    """Undeclared dependencies become MagicMocks; given ones are used as they are."""
    service = worker_factory(UserService)
    assert isinstance(service.calculator_rpc, MagicMock)
    service.calculator_rpc.multiply.return_value = 30
    service.context_data = {"user_id": "me"}
    result = service.calculate_user_score("u1", 10, 3)
    assert result["score"] == 30 and result["asked_by"] == "me"
    service.calculator_rpc.multiply.assert_called_once_with(10, 3)


def test_given_dependencies():
    """A dependency given by name replaces its provider."""

    class FakeCalculator:
        def multiply(self, a, b):
            return a * b

    service = worker_factory(
        UserService, calculator_rpc=FakeCalculator(), context_data={"user_id": "x"}
    )
    assert service.calculate_user_score("u1", 4, 5)["score"] == 20


def test_unknown_dependency_is_named():
    """A dependency the class does not declare is an ExtensionNotFound naming the real ones."""
    with pytest.raises(
        ExtensionNotFound,
        match=r"no dependency named 'calculator'.*"
        r"'calculator_rpc'",
    ):
        worker_factory(UserService, calculator=object())


def test_not_a_class():
    """Something that is not a class (an instance, say) is refused, saying what to pass."""
    with pytest.raises(ConfigurationError, match="the class itself"):
        worker_factory(UserService())


# follows nameko test/testing/test_services.py::test_worker_factory
def test_a_class_without_name():
    """A class without a name (a mixin, a base of services) gets its mocks too."""

    class Mixin:
        calculator_rpc = UserService.calculator_rpc

        def double(self, value):
            return self.calculator_rpc.multiply(value, 2)

    class Plain:
        pass

    assert isinstance(worker_factory(Plain), Plain)
    service = worker_factory(Mixin)
    service.calculator_rpc.multiply.return_value = 8
    assert service.double(4) == 8
