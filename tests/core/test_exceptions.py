"""Exceptions on the wire: serialize, deserialize and deserialize_to_instance."""

from __future__ import annotations

import json

from shimeji.exceptions import (
    IncorrectSignature,
    MalformedRequest,
    MethodNotFound,
    RemoteError,
    ServiceNotFound,
    deserialize,
    deserialize_to_instance,
    serialize,
)


class Custom(Exception):
    pass


@deserialize_to_instance
class Registered(Exception):
    pass


def test_serialize_is_json_safe():
    """serialize() gives exc_type, exc_path, exc_args and value, all JSON-safe."""
    data = serialize(Custom(1, {"a": object()}, (2, 3)))
    json.dumps(data)
    assert data["exc_type"] == "Custom"
    assert data["exc_path"] == f"{__name__}.Custom"
    # JSON's scalars are kept (nameko makes them text); other values as nameko makes them.
    assert data["exc_args"][0] == 1 and data["exc_args"][2] == [2, 3]
    assert data["exc_args"][1]["a"].startswith("<object object")


def test_unregistered_becomes_remote_error():
    """An unregistered class comes back as RemoteError with its details."""
    error = deserialize(serialize(Custom("bad thing")))
    assert isinstance(error, RemoteError)
    assert (error.exc_type, error.exc_args, error.value) == ("Custom", ["bad thing"], "bad thing")
    assert str(error) == "Custom bad thing"


def test_registered_comes_back_as_itself():
    """A deserialize_to_instance class comes back as an instance of itself."""
    error = deserialize(serialize(Registered("x", 2)))
    assert type(error) is Registered and error.args == ("x", 2)


def test_request_errors_are_registered_under_both_paths():
    """MethodNotFound and friends round-trip, also from nameko's own paths."""
    for cls in (MethodNotFound, IncorrectSignature, MalformedRequest):
        assert type(deserialize(serialize(cls("m")))) is cls
        nameko = {
            "exc_type": cls.__name__,
            "exc_path": f"nameko.exceptions.{cls.__name__}",
            "exc_args": ["m"],
            "value": "m",
        }
        assert type(deserialize(nameko)) is cls
    assert serialize(MethodNotFound("m"))["exc_path"] == "nameko.exceptions.MethodNotFound"
    shimeji_path = {
        "exc_type": "MethodNotFound",
        "exc_path": "shimeji.exceptions.MethodNotFound",
        "exc_args": ["m"],
        "value": "m",
    }
    assert type(deserialize(shimeji_path)) is MethodNotFound
    # As nameko: UnknownService is not rebuilt as itself, a caller up the chain gets RemoteError.
    unknown = deserialize(serialize(ServiceNotFound("svc")))
    assert type(unknown) is RemoteError
    assert (unknown.exc_type, unknown.value) == ("UnknownService", "Unknown service `svc`")


def test_remote_error_reraised_keeps_identity():
    """A RemoteError passed on by a middle service keeps the original type and path."""
    original = deserialize(serialize(Custom("deep")))
    again = deserialize(serialize(original))
    assert (again.exc_type, again.exc_path, again.value) == ("Custom", f"{__name__}.Custom", "deep")


def test_malformed_payloads_do_not_crash():
    """Garbage error payloads become errors, never exceptions in the caller's code."""
    assert isinstance(deserialize("nonsense"), Exception)
    error = deserialize({"exc_type": 5, "exc_args": "x"})
    assert isinstance(error, RemoteError) and error.exc_args == ["x"]


def test_registered_class_with_incompatible_args_falls_back():
    """A registered class that cannot take its args back becomes a RemoteError."""

    @deserialize_to_instance
    class Strict(Exception):
        def __init__(self, a, b):
            super().__init__(a, b)

    data = serialize(Strict(1, 2))
    data["exc_args"] = [1]
    assert isinstance(deserialize(data), RemoteError)
