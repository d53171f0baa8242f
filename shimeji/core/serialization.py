"""Codecs: how message bodies become bytes and back.

Both transports carry bytes produced here, so a value that cannot cross
RabbitMQ fails the same way in the simulator. JSON is the default and the only
codec accepted unless the configuration says otherwise.

JSON rules (the same as on the wire of any JSON peer): tuples become lists,
object keys become strings; NaN and infinities are refused because other JSON
peers cannot read them; anything else that is not a JSON type is refused with
the path to the offending value.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable
from typing import Any

import attrs

from shimeji.core.exceptions import ConfigurationError, UnserializableValueError

__all__ = ["Codec", "codec_by_name", "register_codec"]


@attrs.frozen
class Codec:
    """A named serializer with its AMQP content type."""

    name: str
    content_type: str
    content_encoding: str
    dumps: Callable[[Any, str], bytes]  # (value, where) -> bytes
    loads: Callable[[bytes], Any]


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON type")


# Made once: json.dumps and json.loads build a new encoder or look for the text
# encoding on every call, which costs more than encoding a small message.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=_refuse)
_DECODER = json.JSONDecoder()


def _json_dumps(value: Any, where: str) -> bytes:
    try:
        return _ENCODER.encode(value).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise _explain(value, where, exc) from None


def _explain(value: Any, where: str, exc: BaseException) -> UnserializableValueError:
    """Find the first value that JSON refuses and say where it is."""
    if isinstance(exc, RecursionError):
        return UnserializableValueError(
            value, where, "it is nested too deeply to encode; flatten it before sending"
        )
    try:
        found = _find_bad(value, where, [])
    except RecursionError:
        found = None
    if found is None:
        return UnserializableValueError(value, where, str(exc))
    bad, path, reason = found
    return UnserializableValueError(bad, path, reason)


_SCALARS = (str, int, bool, type(None))


def _find_bad(value: Any, path: str, seen: list[int]) -> tuple[Any, str, str] | None:
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return value, path, "NaN and infinity are not valid JSON; send None or a string"
    if isinstance(value, (list, tuple, dict)):
        if any(ident == id(value) for ident in seen):
            return value, path, "the value contains itself (a reference cycle)"
        seen.append(id(value))
        try:
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, (str, int, float, bool, type(None))):
                        return key, f"{path} key {key!r}", "JSON object keys must be strings"
                    found = _find_bad(item, f"{path}[{key!r}]", seen)
                    if found:
                        return found
            else:
                for index, item in enumerate(value):
                    found = _find_bad(item, f"{path}[{index}]", seen)
                    if found:
                        return found
        finally:
            seen.pop()
        return None
    return (
        value,
        path,
        f"{type(value).__name__} is not a JSON type; convert it to str, int, float, bool, "
        "None, list or dict before sending",
    )


def _json_loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return json.loads(body)  # JSON may also come as UTF-16 or UTF-32
    if text.startswith("\ufeff"):  # a byte order mark, as json.loads allows
        text = text[1:]
    return _DECODER.decode(text)


def _pickle_dumps(value: Any, where: str) -> bytes:
    try:
        return pickle.dumps(value, protocol=4)
    except Exception as exc:
        raise UnserializableValueError(value, where, str(exc)) from None


_codecs: dict[str, Codec] = {}


def register_codec(codec: Codec) -> None:
    """Make a codec available by name to the ``serializer`` and ``ACCEPT`` settings."""
    _codecs[codec.name] = codec


register_codec(Codec("json", "application/json", "utf-8", _json_dumps, _json_loads))
# Available, never accepted unless ACCEPT names it: unpickling runs arbitrary code.
register_codec(
    Codec("pickle", "application/x-python-serialize", "binary", _pickle_dumps, pickle.loads)
)


def codec_by_name(name: str) -> Codec:
    try:
        return _codecs[name]
    except KeyError:
        known = ", ".join(sorted(_codecs))
        raise ConfigurationError(
            f"unknown serializer {name!r}; known serializers: {known}"
        ) from None
