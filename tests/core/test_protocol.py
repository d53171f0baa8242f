"""The wire protocol's names and bodies."""

from __future__ import annotations

import pytest

from shimeji.core import protocol
from shimeji.core.serialization import codec_by_name
from shimeji.exceptions import MalformedRequest, RemoteError

JSON = codec_by_name("json")


def test_names():
    """Queue, binding, routing key and reply queue names follow nameko."""
    assert protocol.service_queue_name("calculator") == "rpc-calculator"
    assert protocol.service_binding_key("calculator") == "calculator.*"
    assert protocol.request_routing_key("calculator", "add") == "calculator.add"
    assert protocol.split_routing_key("a.b.add") == ("a.b", "add")
    assert protocol.reply_queue_name("svc", "id") == "rpc.reply-svc-id"


def test_bodies():
    """Requests are {args, kwargs}; replies {result, error}."""
    body = protocol.encode_request(JSON, (1, 2), {"c": 3})
    assert JSON.loads(body) == {"args": [1, 2], "kwargs": {"c": 3}}
    assert protocol.decode_request(JSON, body) == ([1, 2], {"c": 3})
    assert protocol.decode_reply(JSON, protocol.encode_reply(JSON, 5, None)) == (5, None)
    result, error = protocol.decode_reply(JSON, protocol.encode_reply(JSON, None, KeyError("k")))
    assert result is None and isinstance(error, RemoteError) and error.exc_type == "KeyError"


def test_reply_with_unserializable_result_becomes_error():
    """encode_reply turns an unserializable result into an error reply."""
    _, error = protocol.decode_reply(JSON, protocol.encode_reply(JSON, {1, 2}, None))
    assert error.exc_type == "UnserializableValueError"


def test_headers():
    """Context data goes in nameko.-prefixed headers, with the call id stack."""
    headers = protocol.headers_from_context({"user_id": "u"}, ["a.b.1"])
    assert headers == {"nameko.user_id": "u", "nameko.call_id_stack": ["a.b.1"]}
    assert protocol.context_from_headers({**headers, "other": 1}) == ({"user_id": "u"}, ["a.b.1"])
    assert protocol.context_from_headers(None) == ({}, [])
    with pytest.raises(MalformedRequest, match="must be a table"):
        protocol.context_from_headers(["x"])
    with pytest.raises(MalformedRequest, match="must be a list of call id strings"):
        protocol.context_from_headers({"nameko.call_id_stack": [1]})


def test_service_names():
    """Service names must be usable in routing keys."""
    assert protocol.validate_service_name("orders_v2-eu") is None
    assert protocol.validate_service_name("a.b") is None
    for bad in ("", "a b", "a*", "a#", "a..b", 3, None):
        assert protocol.validate_service_name(bad)
