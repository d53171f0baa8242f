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

import codecs as codecs_module
import dataclasses
import datetime as _dt
import decimal
import enum
import importlib
import json
import json.encoder as json_encoder
import math
import pickle
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from shimeji.core.exceptions import (
    ConfigurationError,
    UnserializableValueError,
    describe,
    safe_str,
)
from shimeji.core.quoting import escape, quote

__all__ = [
    "Codec",
    "codec_by_name",
    "codecs_from_config",
    "import_from_path",
    "path_text",
    "register_codec",
    "type_name",
    "user_type",
]


@dataclasses.dataclass(frozen=True, slots=True)
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


def _c_encoder() -> Callable[[Any, int], Any] | None:
    """The C encoder behind ``_ENCODER``, made once rather than on every
    ``encode`` (None without the C accelerator). Its ``markers`` dict (for
    reference cycles) is empty again after each encoding that succeeds."""
    if json_encoder.c_make_encoder is None:
        return None
    return json_encoder.c_make_encoder(  # type: ignore[no-any-return]
        {},
        _refuse,
        json_encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )


_C_ENCODE = _c_encoder()


def _json_dumps(value: Any, where: str) -> bytes:
    global _C_ENCODE
    encode = _C_ENCODE
    try:
        if encode is None:
            return _ENCODER.encode(value).encode()
        return "".join(encode(value, 0)).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        _C_ENCODE = _c_encoder()  # a failed encoding may leave markers behind
        raise _explain(value, where, exc) from None


def _explain(value: Any, where: str, exc: BaseException) -> UnserializableValueError:
    """Find the first value that JSON refuses and say where it is, and what to do."""
    if isinstance(exc, RecursionError):
        return UnserializableValueError(
            value, where, "it is nested too deeply to encode; flatten it before sending"
        )
    try:
        found = _find_bad(value, (), [])
    except RecursionError:
        found = None
    if found is None:
        return UnserializableValueError(value, where, str(exc))
    bad, path, reason = found
    return UnserializableValueError(
        bad, where + path_text(path), reason, path=path, shown=_shown(bad)
    )


class DictKey(str):
    """A step of a path naming a dict key itself (one JSON refuses, quoted), not its value."""


def path_text(path: tuple[Any, ...]) -> str:
    """``['when'][0]`` for the steps ``("when", 0)`` (`` key (1, 2)`` for a bad key)."""
    text = ""
    for step in path:
        text += f" key {step}" if isinstance(step, DictKey) else f"[{step!r}]"
    return text


def user_type(value: Any) -> type:
    """The type a user wrote: freezegun's stand-ins (``FakeDatetime``, while a
    simulation patches the clock) are shown as the class they stand for."""
    for cls in type(value).__mro__:
        if not cls.__module__.startswith("freezegun"):
            return cls
    return type(value)


def type_name(cls: type) -> str:
    """``datetime.datetime``; builtins by their bare name (``set``)."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _shown(value: Any) -> str:
    """The value as quoted in the error, under its user type's name."""
    shown = quote(value)
    fake = type(value)
    real = user_type(value)
    if real is not fake and shown.startswith(fake.__name__ + "("):
        shown = type_name(real) + shown[len(fake.__name__) :]
    return shown


_ADVICE = (
    ((_dt.datetime, _dt.date, _dt.time), "send value.isoformat(), an ISO 8601 string, instead"),
    ((_dt.timedelta,), "send value.total_seconds() instead"),
    ((decimal.Decimal,), "send str(value) (or float(value), if rounding is fine) instead"),
    ((uuid.UUID,), "send str(value) instead"),
    ((set, frozenset), "send a list instead (sorted(value))"),
    ((bytes, bytearray), "send text instead (value.decode(), or base64 for binary data)"),
    ((enum.Enum,), "send value.value instead"),
)


def _advice(value: Any) -> str:
    for types, advice in _ADVICE:
        if isinstance(value, types):
            return advice
    return "convert it to str, int, float, bool, None, list or dict before sending"


_SCALARS = (str, int, bool, type(None))


def _find_bad(
    value: Any, path: tuple[Any, ...], seen: list[int]
) -> tuple[Any, tuple[Any, ...], str] | None:
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return value, path, "NaN and infinity are not valid JSON: send None or a string instead"
    if isinstance(value, (list, tuple, dict)):
        if any(ident == id(value) for ident in seen):
            return value, path, "the value contains itself (a reference cycle)"
        seen.append(id(value))
        try:
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, (str, int, float, bool, type(None))):
                        return (
                            key,
                            (*path, DictKey(quote(key))),
                            "JSON object keys must be strings",
                        )
                    found = _find_bad(item, (*path, key), seen)
                    if found:
                        return found
            else:
                for index, item in enumerate(value):
                    found = _find_bad(item, (*path, index), seen)
                    if found:
                        return found
        finally:
            seen.pop()
        return None
    return (
        value,
        path,
        f"{type_name(user_type(value))} is not a JSON type: {_advice(value)}, or configure a "
        "serializer that can carry it (the serializer setting)",
    )


_SCAN = _DECODER.scan_once


def _json_loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return json.loads(body)  # JSON may also come as UTF-16 or UTF-32
    try:
        # The common case straight to the scanner: one value, nothing around it.
        value, end = _SCAN(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError):
        pass  # decoded again below, for json's own error message
    if text.startswith("\ufeff"):  # a byte order mark, as json.loads allows
        text = text[1:]
    return _DECODER.decode(text)


def _pickle_dumps(value: Any, where: str) -> bytes:
    try:
        return pickle.dumps(value, protocol=4)
    except Exception as exc:
        reason = f"pickle cannot carry it: {escape(describe(exc))}"
        raise _refused(pickle.dumps, value, where, reason) from None


_codecs: dict[str, Codec] = {}


def register_codec(codec: Codec) -> None:
    """Make a codec available by name to the ``serializer`` and ``ACCEPT`` settings."""
    _codecs[codec.name] = codec


register_codec(Codec("json", "application/json", "utf-8", _json_dumps, _json_loads))
# Available, never accepted unless ACCEPT names it: unpickling runs arbitrary code.
register_codec(
    Codec("pickle", "application/x-python-serialize", "binary", _pickle_dumps, pickle.loads)
)


def codec_by_name(name: str, configured: Mapping[str, Codec] | None = None) -> Codec:
    """The codec called ``name``: one of ``configured`` (the ``SERIALIZERS`` setting),
    else a built-in one; ConfigurationError, in nameko's words first, if none."""
    if configured and name in configured:
        return configured[name]
    try:
        return _codecs[name]
    except KeyError:
        known = ", ".join(sorted({*_codecs, *(configured or {})}))
        raise ConfigurationError(
            f'Please register a serializer for "{name}" format (known serializers: {known}; '
            "add yours to the SERIALIZERS setting)"
        ) from None


def _refused(
    dumps_one: Callable[[Any], Any], value: Any, where: str, reason: str
) -> UnserializableValueError:
    """The error for a value a codec other than JSON refused: the innermost item
    that it refuses on its own is named by its path (``['when']``), found by
    encoding the parts again (the failure path only)."""
    path: tuple[Any, ...] = ()
    bad = value
    for _ in range(50):
        if isinstance(bad, Mapping):
            items: Any = list(bad.items())
        elif isinstance(bad, (list, tuple)):
            items = list(enumerate(bad))
        else:
            break
        for key, item in items:
            try:
                dumps_one(item)
            except Exception:
                path, bad = (*path, key), item
                break
        else:
            break
    return UnserializableValueError(
        bad, where + path_text(path), reason, path=path, shown=_shown(bad)
    )


# -- YAML, where PyYAML is installed (kombu's "yaml": safe_dump and safe_load) ------

try:
    import yaml as _yaml
except ImportError:  # pragma: no cover - PyYAML is a dependency of shimeji
    _yaml = None


def _yaml_dumps(value: Any, where: str) -> bytes:
    assert _yaml is not None
    try:
        text = _yaml.safe_dump(value)
    except (_yaml.YAMLError, RecursionError, TypeError, ValueError) as exc:
        reason = (
            f"YAML cannot carry it ({escape(safe_str(exc).splitlines()[0])}): send str, "
            "int, float, bool, None, list or dict"
        )
        raise _refused(_yaml.safe_dump, value, where, reason) from None
    return text.encode("utf-8")


def _yaml_loads(body: bytes) -> Any:
    assert _yaml is not None
    return _yaml.safe_load(body.decode("utf-8"))


if _yaml is not None:
    register_codec(Codec("yaml", "application/x-yaml", "utf-8", _yaml_dumps, _yaml_loads))


# -- serializers of the application (the SERIALIZERS setting, nameko's shape) ----


def import_from_path(path: str, key: str) -> Any:
    """The object a dotted path names (``package.module.name``); ConfigurationError
    naming ``key`` when it cannot be imported."""
    if not isinstance(path, str) or "." not in path.strip("."):
        raise ConfigurationError(
            f"{key} must be a dotted path to a function, like 'myapp.codecs.encode'; "
            f"got {quote(path)}"
        )
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{key}: cannot import module {module_name!r} ({escape(safe_str(exc))}); "
            "check the path and that the module is importable"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(
            f"{key}: module {module_name!r} has no attribute {attribute!r}"
        ) from None


_SERIALIZER_KEYS = ("encoder", "decoder", "content_type", "content_encoding")


def codecs_from_config(value: Any) -> dict[str, Codec]:
    """The codecs the ``SERIALIZERS`` setting declares: ``{name: {"encoder":
    dotted path, "decoder": dotted path, "content_type": ..., "content_encoding":
    "utf-8" (the default) or "binary"}}``, as nameko reads it. The encoder takes a
    value and returns str or bytes; the decoder takes the body (str, or bytes when
    the encoding is binary) and returns the value."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            "SERIALIZERS must be a mapping of serializer names to "
            "{encoder, decoder, content_type}; got " + quote(value)
        )
    codecs: dict[str, Codec] = {}
    for name, spec in value.items():
        key = f"SERIALIZERS.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"SERIALIZERS: a serializer name must be text; got {quote(name)}"
            )
        if not isinstance(spec, Mapping):
            raise ConfigurationError(
                f"{key} must be a mapping with encoder, decoder and content_type; got "
                + quote(spec)
            )
        for field in spec:
            if field not in _SERIALIZER_KEYS:
                raise ConfigurationError(
                    f"{key} has an unknown key {quote(field)}; allowed: "
                    + ", ".join(_SERIALIZER_KEYS)
                )
        for field in ("encoder", "decoder", "content_type"):
            if field not in spec:
                raise ConfigurationError(f"{key} needs {field!r}")
        content_type = spec["content_type"]
        if not isinstance(content_type, str) or not content_type:
            raise ConfigurationError(
                f"{key}.content_type must be a MIME type such as 'application/x-mine'; got "
                + quote(content_type)
            )
        encoding = spec.get("content_encoding", "utf-8")
        if not isinstance(encoding, str):
            raise ConfigurationError(f"{key}.content_encoding must be text; got {quote(encoding)}")
        if encoding != "binary":
            try:
                codecs_module.lookup(encoding)
            except LookupError:
                raise ConfigurationError(
                    f"{key}.content_encoding {encoding!r} is not a text encoding Python knows; "
                    "use 'utf-8', or 'binary' for bytes"
                ) from None
        encoder = import_from_path(spec["encoder"], f"{key}.encoder")
        decoder = import_from_path(spec["decoder"], f"{key}.decoder")
        for field, function in (("encoder", encoder), ("decoder", decoder)):
            if not callable(function):
                raise ConfigurationError(
                    f"{key}.{field} {spec[field]!r} is not callable; name a function"
                )
        codecs[name] = Codec(
            name,
            content_type,
            encoding,
            _custom_dumps(name, encoder, encoding),
            _custom_loads(decoder, encoding),
        )
    return codecs


def _custom_dumps(
    name: str, encoder: Callable[[Any], Any], encoding: str
) -> Callable[[Any, str], bytes]:
    def dumps(value: Any, where: str) -> bytes:
        try:
            out = encoder(value)
        except Exception as exc:
            reason = f"the {name} serializer's encoder failed: {escape(describe(exc))}"
            raise _refused(encoder, value, where, reason) from None
        if isinstance(out, str):
            return out.encode("utf-8" if encoding == "binary" else encoding)
        if isinstance(out, (bytes, bytearray, memoryview)):
            return bytes(out)
        raise UnserializableValueError(
            value,
            where,
            f"the {name} serializer's encoder returned {type(out).__name__}, not str or bytes",
        )

    return dumps


def _custom_loads(decoder: Callable[[Any], Any], encoding: str) -> Callable[[bytes], Any]:
    def loads(body: bytes) -> Any:
        if encoding == "binary":
            return decoder(body)
        return decoder(body.decode(encoding))

    return loads
