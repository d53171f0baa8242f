"""Exceptions on the wire, test by test after nameko's own.

Each test names the nameko test whose behaviour it checks; ``serialize``,
``deserialize``, ``safe_for_serialization`` and ``UnserializableValueError``
come from ``shimeji.exceptions``.
"""

from __future__ import annotations

import json

import pytest

import shimeji.core.exceptions as core_exceptions
from shimeji.exceptions import (
    MethodNotFound,
    RemoteError,
    UnserializableValueError,
    deserialize,
    deserialize_to_instance,
    safe_for_serialization,
    serialize,
)

OBJECT_REPR = repr(object)


class CustomError(Exception):
    pass


@pytest.fixture
def registry(monkeypatch):
    """An empty registry of exceptions rebuilt as themselves, for one test."""
    monkeypatch.setattr(core_exceptions, "_registry", {})


# follows nameko test/test_exceptions.py::test_serialize
def test_serialize():
    exc = CustomError("something went wrong")
    assert serialize(exc) == {
        "exc_type": "CustomError",
        "exc_path": f"{__name__}.CustomError",
        "exc_args": ["something went wrong"],
        "value": "something went wrong",
    }


# follows nameko test/test_exceptions.py::test_serialize_cannot_unicode
def test_serialize_cannot_unicode():
    class CannotUnicode:
        def __str__(self):
            raise Exception("boom")

    exc = CustomError(CannotUnicode())
    assert serialize(exc) == {
        "exc_type": "CustomError",
        "exc_path": f"{__name__}.CustomError",
        "exc_args": ["[__unicode__ failed]"],
        "value": "[__unicode__ failed]",
    }


# follows nameko test/test_exceptions.py::test_serialize_args
def test_serialize_args():
    exc = CustomError("something went wrong", Exception("oops"))
    assert json.dumps(serialize(exc))


# follows nameko test/test_exceptions.py::test_deserialize_to_remote_error
def test_deserialize_to_remote_error():
    deserialized = deserialize(serialize(CustomError("something went ಠ_ಠ")))
    assert type(deserialized) is RemoteError
    assert deserialized.exc_type == "CustomError"
    assert deserialized.value == "something went ಠ_ಠ"
    assert str(deserialized) == "CustomError something went ಠ_ಠ"


# follows nameko test/test_exceptions.py::test_deserialize_to_instance
@pytest.mark.usefixtures("registry")
def test_deserialize_to_instance():
    deserialize_to_instance(CustomError)
    deserialized = deserialize(serialize(CustomError("something went wrong")))
    assert type(deserialized) is CustomError
    assert str(deserialized) == "something went wrong"


# follows nameko test/test_exceptions.py::test_exception_name_clash
def test_exception_name_clash():
    class MethodNotFound(Exception):  # an application's exception of the same name
        pass

    deserialized = deserialize(serialize(MethodNotFound("application error")))
    assert type(deserialized) is RemoteError
    assert deserialized.exc_type == "MethodNotFound"
    assert deserialized.value == "application error"
    assert str(deserialized) == "MethodNotFound application error"


def test_exception_name_clash_the_frameworks_own():
    """The second half of nameko's test: the framework's MethodNotFound comes back
    as itself (shimeji's text of it names the method only, as nameko's does)."""
    deserialized = deserialize(serialize(MethodNotFound("missing")))
    assert type(deserialized) is MethodNotFound
    assert str(deserialized) == "missing"


# follows nameko test/test_exceptions.py::test_serialize_backwards_compat
def test_serialize_backwards_compat():
    data = serialize(CustomError("something went wrong"))
    # nameko < 1.5.0 sends no exc_path or exc_args
    del data["exc_path"]
    del data["exc_args"]
    deserialized = deserialize(data)
    assert type(deserialized) is RemoteError
    assert deserialized.exc_type == "CustomError"
    assert deserialized.value == "something went wrong"
    assert str(deserialized) == "CustomError something went wrong"
    # nameko < 1.1.4 sends a traceback too
    data["traceback"] = "traceback string"
    deserialized = deserialize(data)
    assert type(deserialized) is RemoteError
    assert str(deserialized) == "CustomError something went wrong"


# follows nameko test/test_exceptions.py::test_unserializable_value_error
def test_unserializable_value_error():
    exc = UnserializableValueError("value")
    assert exc.repr_value == "'value'"
    assert str(exc) == "Unserializable value: `'value'`"

    class CannotRepr:
        def __repr__(self):
            raise Exception("boom")

    exc = UnserializableValueError(CannotRepr())
    assert exc.repr_value == "[__repr__ failed]"
    assert str(exc) == "Unserializable value: `[__repr__ failed]`"


def test_unserializable_value_error_on_the_wire():
    """What a nameko peer reads: its type and path, no arguments, nameko's text
    first (shimeji adds where the value was and what to do after it)."""
    assert serialize(UnserializableValueError("value")) == {
        "exc_type": "UnserializableValueError",
        "exc_path": "nameko.exceptions.UnserializableValueError",
        "exc_args": [],
        "value": "Unserializable value: `'value'`",
    }
    placed = UnserializableValueError({1}, "the return value of s.m", "send a list instead")
    assert serialize(placed)["value"] == (
        "Unserializable value: `{1}` in the return value of s.m: send a list instead"
    )


# follows nameko test/test_exceptions.py::test_safe_for_serialization
@pytest.mark.parametrize(
    ("value", "safe_value"),
    [
        ("str", "str"),
        (object, OBJECT_REPR),
        ([object], [OBJECT_REPR]),
        ({object}, [OBJECT_REPR]),
        ({"foo": "bar"}, {"foo": "bar"}),
        ({object: None}, {OBJECT_REPR: "None"}),
        ({None: object}, {"None": OBJECT_REPR}),
        ((1, 2), ["1", "2"]),
        ([1, [2]], ["1", ["2"]]),
    ],
)
def test_safe_for_serialization(value, safe_value):
    assert safe_for_serialization(value) == safe_value


# follows nameko test/test_exceptions.py::test_safe_for_serialization_bad_str
def test_safe_for_serialization_bad_str():
    class BadStr:
        def __str__(self):
            raise Exception("boom")

    safe = safe_for_serialization(BadStr())
    assert isinstance(safe, str)
    assert "failed" in safe


def test_safe_for_serialization_of_hostile_values():
    """Beyond nameko's tests: a container holding itself, and an iterable whose
    iteration fails, still give JSON-safe text rather than an error."""
    loop: list = []
    loop.append(loop)
    assert json.dumps(safe_for_serialization(loop))

    class BadIter:
        def __iter__(self):
            raise RuntimeError("no")

        def __str__(self):
            return "bad-iter"

    assert safe_for_serialization(BadIter()) == "bad-iter"
