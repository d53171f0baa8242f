"""Hostile messages a client can publish, to fuzz an AMQP consumer.

- ``RawPublisher``: AMQP 0-9-1 on a plain socket (PLAIN auth, confirms), publishing raw
  exchange / routing key / property bytes / body, and riding out the broker's closes.
- ``shortstr``, ``longstr``, ``table``, ``array``, ``timestamp``, ``field_*``,
  ``nested_tables``, ``nested_arrays``, ``encode_value``: wire encodings from raw bytes.
- ``properties`` / ``raw_properties``: Basic property flags and property list.
- ``hostile_messages(rng, ...)``, ``hostile_message(kind, rng, ...)``, ``KINDS``: the cases.

Findings (RabbitMQ 3.10.8, py-amqp 5.4.2, kombu 5.7.0; every kind, seeds 0-2, consumed by
``kombu.Connection().channel()``, ``basic_consume(callback=...)``, ``drain_events``):

=========================================  ===============  ======  ===========================
kinds                                      broker           reach   py-amqp raises [where]
=========================================  ===============  ======  ===========================
body-*, ct-*, ce-* (but *-invalid-utf8),   accepts          yes     nothing
hdr-call-id-stack-*, hdr-context-* (but
nan), hdr-key-*, hdr-duplicate-*,
hdr-nested-tables-900, hdr-many-keys,
raw-tag-L, reply-to-* corr-* (but below),
rk-* (but rk-invalid-utf8), prop-expiration-zero,
prop-priority-max, prop-timestamp-max,
prop-cluster-id
ct-/ce-/reply-to-/corr-invalid-utf8,       accepts          no      UnicodeDecodeError [H]
prop-shortstrs-invalid-utf8
hdr-timestamp-year-10000                   accepts          no      ValueError [H]
hdr-timestamp-u64-max (>= 2**63 s)         accepts          no      OverflowError [H]
hdr-nested-tables/-arrays (2000+ deep)     accepts          no      RecursionError [H]
rk-invalid-utf8                            accepts          no      UnicodeDecodeError [M]
hdr-context-nan, raw-unknown-tag,          connection.close no      -
raw-tag-U, raw-table-*, raw-value-overrun, 541 INTERNAL_ERROR
raw-flags-*, raw-shortstr-overrun,
raw-trailing-garbage
raw-oversized-header                       conn. close 501  no      -
prop-user-id-mismatch, reply-to-direct,    channel.close    no      -
prop-expiration-invalid,                   406
prop-delivery-mode-odd
exchange-missing                           ch. close 404    no      -
unroutable-mandatory                       returned 312     no      -
=========================================  ===============  ======  ===========================

The broker passes invalid UTF-8 through everywhere (shortstrs, routing key, table keys and
values); it checks only the structure of tables and property lists. Delivered values: a longstr
or key that is not UTF-8 becomes ``bytes``, UTF-8-encoded surrogates a str with lone surrogates,
'T' a naive datetime, 'D' a Decimal, 'x' bytes; the last of duplicate keys wins.

[H] ``drain_events`` > method_framing ``on_frame`` > ``GenericContent.inbound_header`` >
``decode_properties_basic`` (> ``bytes_to_str`` / ``loads`` > ``_read_item``). The frame
handler still expects a content header on the channel: each later frame on it raises
``UnexpectedFrame`` ("Received frame 3|1 while expecting type: 2": the poison's body frames,
then the next method), and the next content header is taken for the poison's, so the next
message's properties and body arrive under the poison's basic.deliver (its delivery tag and
routing key); that message's own tag is never seen. ``connected`` / ``is_open`` stay True.
Nesting fails at ``sys.getrecursionlimit()`` minus the stack depth (~990 here).
[M] ``drain_events`` > ``on_frame`` > ``Connection.on_inbound_method`` >
``AbstractChannel.dispatch_method`` > ``loads`` (basic.deliver's arguments), after the whole
message was read: framing stays in step and the next message arrives intact.
Either way the callback never gets the poison, so nothing acks or rejects it: it holds a
prefetch slot until the channel closes, is requeued, and raises again in every new consumer.
"""

from __future__ import annotations

import json
import random
import select
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn
from urllib.parse import unquote, urlsplit

__all__ = [
    "KINDS",
    "BrokerClose",
    "HostileMessage",
    "PublishResult",
    "Raw",
    "RawPublisher",
    "array",
    "encode_value",
    "field_array",
    "field_bool",
    "field_bytes",
    "field_decimal",
    "field_double",
    "field_float",
    "field_int8",
    "field_int16",
    "field_int32",
    "field_int64",
    "field_longstr",
    "field_raw",
    "field_table",
    "field_timestamp",
    "field_uint8",
    "field_uint16",
    "field_uint32",
    "field_void",
    "hostile_message",
    "hostile_messages",
    "longstr",
    "nested_arrays",
    "nested_tables",
    "properties",
    "raw_properties",
    "shortstr",
    "table",
    "timestamp",
]

# -- encoding: every helper returns the wire bytes, and takes raw bytes ------------------------

#: str values are encoded as UTF-8 with ``surrogatepass``: a lone surrogate ("\ud800") becomes
#: the (invalid) UTF-8 bytes b"\xed\xa0\x80" that py-amqp decodes back into a lone surrogate.
Text = bytes | str


class Raw(bytes):
    """Bytes inserted verbatim where a value would otherwise be encoded (a lying length...)."""

    __slots__ = ()


def _bytes(value: Text) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return bytes(value)


def shortstr(value: Text, *, length: int | None = None) -> bytes:
    """An AMQP short string: one length octet, then the bytes (``length`` may lie)."""
    data = _bytes(value)
    size = len(data) if length is None else length
    if not 0 <= size <= 0xFF:
        raise ValueError(f"a shortstr length is one octet, not {size}")
    return bytes([size]) + data


def longstr(value: Text, *, length: int | None = None) -> bytes:
    """An AMQP long string: a 32-bit length, then the bytes (``length`` may lie)."""
    data = _bytes(value)
    return struct.pack(">I", len(data) if length is None else length) + data


def timestamp(seconds: int) -> bytes:
    """A 64-bit unsigned timestamp; any int is taken modulo 2**64 (-1 is the largest)."""
    return struct.pack(">Q", seconds % (1 << 64))


Pairs = Mapping[Text, bytes] | Iterable[tuple[Text, bytes]]


def table(pairs: Pairs, *, length: int | None = None) -> bytes:
    """A field table: 32-bit length, then (shortstr key, field value) pairs.

    The values are encoded field values (``field_*``, ``encode_value``); an iterable of pairs
    may repeat a key. ``length`` replaces the true length (a truncated or overrunning table).
    """
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    data = b"".join(shortstr(key) + value for key, value in items)
    return struct.pack(">I", len(data) if length is None else length) + data


def array(values: Iterable[bytes], *, length: int | None = None) -> bytes:
    """A field array: 32-bit length, then encoded field values."""
    data = b"".join(values)
    return struct.pack(">I", len(data) if length is None else length) + data


def field_raw(tag: bytes, payload: bytes = b"") -> bytes:
    """A field value of any type tag, known or not, with any payload."""
    return bytes(tag) + payload


def field_longstr(value: Text) -> bytes:
    return b"S" + longstr(value)


def field_bytes(value: bytes) -> bytes:
    """RabbitMQ's byte array ('x')."""
    return b"x" + longstr(value)


def field_bool(value: bool | int) -> bytes:
    return b"t" + struct.pack(">B", int(value) & 0xFF)


def field_int8(value: int) -> bytes:
    return b"b" + struct.pack(">b", value)


def field_uint8(value: int) -> bytes:
    return b"B" + struct.pack(">B", value)


def field_int16(value: int) -> bytes:
    """'s': a signed 16-bit int for RabbitMQ and py-amqp 5.4, a short string in the spec."""
    return b"s" + struct.pack(">h", value)


def field_uint16(value: int) -> bytes:
    return b"u" + struct.pack(">H", value)


def field_int32(value: int) -> bytes:
    return b"I" + struct.pack(">i", value)


def field_uint32(value: int) -> bytes:
    return b"i" + struct.pack(">I", value)


def field_int64(value: int) -> bytes:
    return b"l" + struct.pack(">q", value)


def field_float(value: float) -> bytes:
    return b"f" + struct.pack(">f", value)


def field_double(value: float) -> bytes:
    return b"d" + struct.pack(">d", value)


def field_decimal(scale: int, value: int) -> bytes:
    """'D': the value is ``value / 10**scale`` (scale one octet, value a signed 32-bit int)."""
    return b"D" + struct.pack(">Bi", scale, value)


def field_timestamp(seconds: int) -> bytes:
    """'T': seconds since the epoch, 64-bit unsigned (modulo 2**64: any year, or none)."""
    return b"T" + timestamp(seconds)


def field_void() -> bytes:
    return b"V"


def field_table(pairs: Pairs, *, length: int | None = None) -> bytes:
    return b"F" + table(pairs, length=length)


def field_array(values: Iterable[bytes], *, length: int | None = None) -> bytes:
    return b"A" + array(values, length=length)


def encode_value(value: object) -> bytes:
    """A field value for a plain Python value (str, bytes, bool, int, float, Decimal, None,
    dict, list/tuple); ``Raw`` is taken as an encoded field value already."""
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, str):
        return field_longstr(value)
    if isinstance(value, bytes):
        return field_bytes(value)
    if isinstance(value, bool):
        return field_bool(value)
    if isinstance(value, int):
        if -(1 << 31) <= value < (1 << 31):
            return field_int32(value)
        return field_int64(value)
    if isinstance(value, float):
        return field_double(value)
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):
            raise ValueError(f"no AMQP decimal for {value!r}")
        number = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        return field_decimal(max(-exponent, 0), number * 10 ** max(exponent, 0))
    if value is None:
        return field_void()
    if isinstance(value, Mapping):
        return field_table({_bytes(k): encode_value(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return field_array(encode_value(v) for v in value)
    raise TypeError(f"no AMQP field value for {type(value).__name__}")


def nested_tables(depth: int, leaf: bytes = b"V", key: Text = b"k") -> bytes:
    """A table field value nested ``depth`` deep, ``leaf`` (a field value) innermost."""
    value, name = leaf, shortstr(key)
    for _ in range(depth):
        value = b"F" + struct.pack(">I", len(name) + len(value)) + name + value
    return value


def nested_arrays(depth: int, leaf: bytes = b"V") -> bytes:
    """An array field value nested ``depth`` deep, ``leaf`` (a field value) innermost."""
    value = leaf
    for _ in range(depth):
        value = b"A" + struct.pack(">I", len(value)) + value
    return value


# -- Basic properties ------------------------------------------------------------------------

#: Basic property -> (flag bit, AMQP type), in property-list order.
BASIC_PROPERTIES: dict[str, tuple[int, str]] = {
    "content_type": (0x8000, "shortstr"),
    "content_encoding": (0x4000, "shortstr"),
    "headers": (0x2000, "table"),
    "delivery_mode": (0x1000, "octet"),
    "priority": (0x0800, "octet"),
    "correlation_id": (0x0400, "shortstr"),
    "reply_to": (0x0200, "shortstr"),
    "expiration": (0x0100, "shortstr"),
    "message_id": (0x0080, "shortstr"),
    "timestamp": (0x0040, "timestamp"),
    "type": (0x0020, "shortstr"),
    "user_id": (0x0010, "shortstr"),
    "app_id": (0x0008, "shortstr"),
    "cluster_id": (0x0004, "shortstr"),
}

PropertyValue = Text | int | Pairs | None


def raw_properties(flags: int | Iterable[int], payload: bytes = b"") -> bytes:
    """Property flags (one 16-bit word, or several) followed by any property-list bytes."""
    words = [flags] if isinstance(flags, int) else list(flags)
    return b"".join(struct.pack(">H", word & 0xFFFF) for word in words) + payload


def properties(
    *,
    content_type: Text | None = None,
    content_encoding: Text | None = None,
    headers: Pairs | bytes | None = None,
    delivery_mode: int | bytes | None = None,
    priority: int | bytes | None = None,
    correlation_id: Text | None = None,
    reply_to: Text | None = None,
    expiration: Text | None = None,
    message_id: Text | None = None,
    timestamp: int | bytes | None = None,
    type: Text | None = None,
    user_id: Text | None = None,
    app_id: Text | None = None,
    cluster_id: Text | None = None,
    flags: int | None = None,
    tail: bytes = b"",
) -> bytes:
    """The raw Basic property flags and property list of a content header.

    None leaves a property out. Shortstr values are bytes or str (see ``Text``), ``headers``
    is a mapping / iterable of (key, encoded field value), or ``bytes`` for an encoded table
    (with its length) inserted as is; octets and the timestamp are ints, or ``bytes`` inserted
    as is. A ``Raw`` value is always inserted as is. ``flags`` replaces the computed flag word
    (bits with no data, the continuation bit...), and ``tail`` is appended to the list.
    """
    values: dict[str, object] = {
        "content_type": content_type,
        "content_encoding": content_encoding,
        "headers": headers,
        "delivery_mode": delivery_mode,
        "priority": priority,
        "correlation_id": correlation_id,
        "reply_to": reply_to,
        "expiration": expiration,
        "message_id": message_id,
        "timestamp": timestamp,
        "type": type,
        "user_id": user_id,
        "app_id": app_id,
        "cluster_id": cluster_id,
    }
    word = 0
    parts: list[bytes] = []
    for name, (bit, kind) in BASIC_PROPERTIES.items():
        value = values[name]
        if value is None:
            continue
        word |= bit
        if isinstance(value, Raw) or (kind != "shortstr" and isinstance(value, bytes)):
            parts.append(bytes(value))
        elif kind == "shortstr":
            parts.append(shortstr(value))  # type: ignore[arg-type]
        elif kind == "table":
            parts.append(table(value))  # type: ignore[arg-type]
        elif kind == "octet":
            parts.append(struct.pack(">B", value))
        else:
            parts.append(struct.pack(">Q", int(value) % (1 << 64)))  # type: ignore[call-overload]
    return raw_properties(word if flags is None else flags, b"".join(parts) + tail)


# -- the raw publisher ---------------------------------------------------------------------

_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_END = b"\xce"
_METHOD, _HEADER, _BODY, _HEARTBEAT = 1, 2, 3, 8

_CONNECTION_START = (10, 10)
_CONNECTION_TUNE = (10, 30)
_CONNECTION_OPEN_OK = (10, 41)
_CONNECTION_CLOSE = (10, 50)
_CONNECTION_CLOSE_OK = (10, 51)
_CONNECTION_BLOCKED = (10, 60)
_CONNECTION_UNBLOCKED = (10, 61)
_CHANNEL_OPEN_OK = (20, 11)
_CHANNEL_FLOW = (20, 20)
_CHANNEL_CLOSE = (20, 40)
_CHANNEL_CLOSE_OK = (20, 41)
_BASIC_QOS_OK = (60, 11)
_BASIC_RETURN = (60, 50)
_BASIC_ACK = (60, 80)
_BASIC_NACK = (60, 120)
_CONFIRM_SELECT_OK = (85, 11)


@dataclass(frozen=True)
class BrokerClose:
    """How the broker ended a channel or a connection (``scope`` "socket": the socket died,
    ``reply_code`` 0)."""

    scope: str
    reply_code: int
    reply_text: str
    class_id: int = 0
    method_id: int = 0

    def __str__(self) -> str:
        return f"{self.scope} {self.reply_code} {self.reply_text}"


@dataclass(frozen=True)
class PublishResult:
    """What came of one publish.

    ``outcome``: "ack" / "nack" (confirm mode), "sent" (the channel was still open after a
    round trip, without confirms), "channel-closed", "connection-closed" (see ``close``).
    ``returned``: (reply code, reply text) of a ``basic.return``, for a mandatory message.
    """

    outcome: str
    close: BrokerClose | None = None
    returned: tuple[int, str] | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome in ("ack", "sent")


class _ChannelClosed(Exception):
    pass


class _ConnectionClosed(Exception):
    pass


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class RawPublisher:
    """An AMQP 0-9-1 publisher on a plain socket, that writes whatever bytes it is given.

    It connects lazily (PLAIN auth, heartbeats off), opens one channel (in confirm mode unless
    ``confirm=False``) and ``publish`` writes basic.publish, the content header and the body
    frames (split at the negotiated frame_max), then waits for the confirm (or, without
    confirms, for a basic.qos round trip). A channel or connection the broker closes is
    recorded in ``closes`` and reported in the result; the next publish reopens the channel or
    reconnects, so that a long fuzz run goes on.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5672,
        *,
        user: Text = b"guest",
        password: Text = b"guest",
        vhost: Text = b"/",
        confirm: bool = True,
        timeout: float = 10.0,
        frame_max: int = 131072,
    ) -> None:
        self.address = (host, port)
        self.user, self.password, self.vhost = _bytes(user), _bytes(password), _bytes(vhost)
        self.confirm = confirm
        self.timeout = timeout
        self.wanted_frame_max = frame_max
        self.frame_max = frame_max
        self.channel_max = 2047
        #: every close the broker made (or socket loss), in order
        self.closes: list[BrokerClose] = []
        self.connections = 0
        self.blocked: str | None = None
        self._sock: socket.socket | None = None
        self._channel = 0  # 0: no open channel
        self._last_channel = 0
        self._tag = 0
        self._confirmed: dict[int, str] = {}
        self._returned: tuple[int, str] | None = None

    @classmethod
    def from_uri(cls, uri: str, **options: object) -> RawPublisher:
        """From amqp://user:password@host:port/vhost (``//`` is the vhost "/")."""
        parts = urlsplit(uri)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 5672,
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=unquote(path) or "/",
            **options,  # type: ignore[arg-type]
        )

    def __enter__(self) -> RawPublisher:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def channel_id(self) -> int:
        """The open channel's number (0 when none is open)."""
        return self._channel

    # -- wire ------------------------------------------------------------------------------

    def send_frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        """Write one frame as is (for frames ``publish`` would not write)."""
        self._send(self._frame(frame_type, channel, payload))

    @staticmethod
    def _frame(frame_type: int, channel: int, payload: bytes) -> bytes:
        return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + _FRAME_END

    @staticmethod
    def _method(sig: tuple[int, int], args: bytes = b"") -> bytes:
        return struct.pack(">HH", *sig) + args

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise _ConnectionClosed
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._lost(f"{type(exc).__name__}: {exc}")

    def _recv_exact(self, size: int) -> bytes:
        chunks, missing = [], size
        while missing:
            if self._sock is None:
                raise _ConnectionClosed
            try:
                chunk = self._sock.recv(min(missing, 1 << 20))
            except OSError as exc:  # a timeout too: the stream may be cut inside a frame
                self._lost(f"{type(exc).__name__}: {exc}")
            if not chunk:
                self._lost("the broker closed the socket")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def _read_frame(self) -> tuple[int, int, bytes]:
        frame_type, channel, size = struct.unpack(">BHI", self._recv_exact(7))
        payload = self._recv_exact(size)
        self._recv_exact(1)
        return frame_type, channel, payload

    def _lost(self, why: str) -> NoReturn:
        self.closes.append(BrokerClose("socket", 0, why))
        self._drop()
        raise _ConnectionClosed

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
        self._channel = 0

    # -- frames from the broker ------------------------------------------------------------

    def _next_method(self) -> tuple[tuple[int, int], int, bytes]:
        """Read frames until a method frame, handle it, and return (sig, channel, args).

        A connection.close or channel.close is answered, recorded and raised."""
        while True:
            frame_type, channel, payload = self._read_frame()
            if frame_type == _METHOD and len(payload) >= 4:
                break  # skip heartbeats, and the content of returned messages
        sig: tuple[int, int] = struct.unpack(">HH", payload[:4])
        args = payload[4:]
        if sig == _CONNECTION_CLOSE:
            close = self._close_of("connection", args)
            self.closes.append(close)
            self._send(self._frame(_METHOD, 0, self._method(_CONNECTION_CLOSE_OK)))
            self._drop()
            raise _ConnectionClosed(close)
        if sig == _CONNECTION_BLOCKED:
            self.blocked = _text(args[1 : 1 + args[0]]) if args else ""
        elif sig == _CONNECTION_UNBLOCKED:
            self.blocked = None
        elif sig == _CHANNEL_CLOSE:
            close = self._close_of("channel", args)
            self.closes.append(close)
            self._send(self._frame(_METHOD, channel, self._method(_CHANNEL_CLOSE_OK)))
            if channel == self._channel:
                self._channel = 0
            raise _ChannelClosed(close)
        elif sig == _CHANNEL_FLOW:
            self._send(self._frame(_METHOD, channel, self._method((20, 21), args[:1])))
        elif sig in (_BASIC_ACK, _BASIC_NACK):
            tag, bits = struct.unpack(">QB", args[:9])
            outcome = "ack" if sig == _BASIC_ACK else "nack"
            if bits & 1:  # multiple
                for pending in range(1, tag):
                    self._confirmed.setdefault(pending, outcome)
            self._confirmed[tag] = outcome
        elif sig == _BASIC_RETURN:
            code = struct.unpack(">H", args[:2])[0]
            self._returned = (code, _text(args[3 : 3 + args[2]]))
        return sig, channel, args

    def _wait(self, wanted: tuple[int, int], channel: int) -> bytes:
        """Handle methods until ``wanted`` arrives on ``channel``; return its arguments."""
        while True:
            sig, frame_channel, args = self._next_method()
            if sig == wanted and frame_channel == channel:
                return args

    @staticmethod
    def _close_of(scope: str, args: bytes) -> BrokerClose:
        code, size = struct.unpack(">HB", args[:3])
        text = _text(args[3 : 3 + size])
        class_id, method_id = struct.unpack(">HH", args[3 + size : 7 + size] or b"\0\0\0\0")
        return BrokerClose(scope, code, text, class_id, method_id)

    # -- connection and channel ------------------------------------------------------------

    def connect(self) -> None:
        """Connect and open a channel (a no-op when one is open)."""
        if self._sock is None:
            self._handshake()
        if not self._channel:
            self._open_channel()

    def _handshake(self) -> None:
        self._sock = socket.create_connection(self.address, timeout=self.timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        self._channel = 0
        self._send(_PROTOCOL_HEADER)
        self._wait(_CONNECTION_START, 0)
        client_properties = table(
            {
                b"product": field_longstr(b"shimeji hostile publisher"),
                b"capabilities": field_table(
                    {
                        b"publisher_confirms": field_bool(True),
                        b"connection.blocked": field_bool(True),
                    }
                ),
            }
        )
        response = b"\0" + self.user + b"\0" + self.password
        start_ok = client_properties + shortstr(b"PLAIN") + longstr(response) + shortstr(b"en_US")
        self._send(self._frame(_METHOD, 0, self._method((10, 11), start_ok)))
        tune = self._wait(_CONNECTION_TUNE, 0)
        channel_max, frame_max, _heartbeat = struct.unpack(">HIH", tune[:8])
        self.channel_max = channel_max or 0xFFFF
        self.frame_max = min(frame_max or self.wanted_frame_max, self.wanted_frame_max)
        tune_ok = struct.pack(">HIH", self.channel_max, self.frame_max, 0)
        self._send(self._frame(_METHOD, 0, self._method((10, 31), tune_ok)))
        open_args = shortstr(self.vhost) + shortstr(b"") + b"\0"
        self._send(self._frame(_METHOD, 0, self._method((10, 40), open_args)))
        self._wait(_CONNECTION_OPEN_OK, 0)

    def _open_channel(self) -> None:
        number = self._last_channel = self._last_channel % self.channel_max + 1
        self._send(self._frame(_METHOD, number, self._method((20, 10), shortstr(b""))))
        self._wait(_CHANNEL_OPEN_OK, number)
        if self.confirm:
            self._send(self._frame(_METHOD, number, self._method((85, 10), b"\0")))
            self._wait(_CONFIRM_SELECT_OK, number)
        self._channel, self._tag = number, 0
        self._confirmed.clear()

    def close(self) -> None:
        """Close the connection politely (what the broker says meanwhile is ignored)."""
        if self._sock is None:
            return
        args = struct.pack(">H", 200) + shortstr(b"bye") + struct.pack(">HH", 0, 0)
        try:
            self._send(self._frame(_METHOD, 0, self._method(_CONNECTION_CLOSE, args)))
            self._wait(_CONNECTION_CLOSE_OK, 0)
        except (_ConnectionClosed, _ChannelClosed, OSError):
            pass
        self._drop()

    # -- publishing ------------------------------------------------------------------------

    def publish(
        self,
        exchange: bytes,
        routing_key: bytes,
        properties: bytes,
        body: bytes,
        mandatory: bool = False,
        *,
        immediate: bool = False,
    ) -> PublishResult:
        """Publish one message from raw parts and tell what the broker made of it.

        ``exchange`` and ``routing_key`` are the shortstr contents (at most 255 bytes);
        ``properties`` the property flags and list (see ``properties``), sent as they are.
        """
        try:
            self.connect()
            channel = self._channel
            self._returned = None
            bits = (1 if mandatory else 0) | (2 if immediate else 0)
            publish = struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key)
            frames = [
                self._frame(_METHOD, channel, self._method((60, 40), publish + bytes([bits])))
            ]
            header = struct.pack(">HHQ", 60, 0, len(body)) + properties
            frames.append(self._frame(_HEADER, channel, header))
            chunk = self.frame_max - 8
            frames += [
                self._frame(_BODY, channel, body[i : i + chunk]) for i in range(0, len(body), chunk)
            ]
            self._send(b"".join(frames))
            if self.confirm:
                self._tag += 1
                while self._tag not in self._confirmed:
                    self._next_method()
                outcome = self._confirmed.pop(self._tag)
            else:
                self._send(self._frame(_METHOD, channel, self._method((60, 10), bytes(7))))
                self._wait(_BASIC_QOS_OK, channel)
                outcome = "sent"
            return PublishResult(outcome, returned=self._returned)
        except _ChannelClosed as exc:
            return PublishResult("channel-closed", exc.args[0], self._returned)
        except _ConnectionClosed:
            return PublishResult("connection-closed", self.closes[-1] if self.closes else None)

    def poll(self) -> None:
        """Handle what the broker has sent already, without waiting (closes are recorded)."""
        try:
            while self._sock is not None and select.select([self._sock], [], [], 0)[0]:
                self._next_method()
        except (_ChannelClosed, _ConnectionClosed):
            pass


# -- hostile messages ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileMessage:
    """One hostile case: what to publish, and the name of its kind."""

    kind: str
    exchange: bytes
    routing_key: bytes
    properties: bytes
    body: bytes
    mandatory: bool = False
    note: str = ""

    def publish(self, publisher: RawPublisher) -> PublishResult:
        return publisher.publish(
            self.exchange, self.routing_key, self.properties, self.body, self.mandatory
        )


#: Unicode a consumer may choke on: bidi overrides, zero-width and BOM, control characters,
#: combining marks, astral and non-characters, format strings, path and shell junk.
UNICODE_JUNK: tuple[str, ...] = (
    "\u202e",
    "\u202d",
    "\u2066",
    "\u200b",
    "\ufeff",
    "\x00",
    "\x1b[31m",
    "\r\n",
    "\n",
    "\t",
    "\x7f",
    "\u0085",
    "\u2028",
    "e\u0301\u0301\u0301",
    "\U0001f4a9",
    "\U0010ffff",
    "\uffff",
    "\ufffd",
    "%s%n",
    "{0}{__class__}",
    "../",
    "$(id)",
    "<script>",
    "*",
    "#",
    "\u4e2d\u6587",
    "\u0130",
)
#: Byte sequences that are not UTF-8 (overlong, truncated, stray continuation, > U+10FFFF).
INVALID_UTF8: tuple[bytes, ...] = (
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc0\xaf",
    b"\xc3",
    b"\xe2\x82",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
)
#: UTF-8-encoded surrogates: invalid UTF-8 that py-amqp ("surrogatepass") decodes to a str
#: holding lone surrogates, which cannot be encoded to UTF-8 again.
SURROGATES: tuple[bytes, ...] = (b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb2\xa9")

_METHODS = (b"ping", b"echo", b"method")
_CONTEXT_KEYS = (b"nameko.language", b"nameko.user_id", b"nameko.auth_token", b"nameko.foo")
_CALL_ID_STACK = b"nameko.call_id_stack"
_YEAR_10000 = 253402300800  # 10000-01-01T00:00:00Z


def _junk(rng: random.Random, *, dots: bool = True, count: int = 3) -> bytes:
    text = "".join(rng.choice(UNICODE_JUNK) for _ in range(count))
    return _bytes(text if dots else text.replace(".", ""))


def _invalid(rng: random.Random) -> bytes:
    return rng.choice(INVALID_UTF8)


@dataclass(frozen=True)
class _Target:
    service: bytes
    reply_to: bytes
    exchange: bytes

    def headers(self, rng: random.Random, *extra: tuple[Text, bytes]) -> list[tuple[Text, bytes]]:
        """The headers of a request (a call id stack), then ``extra``."""
        call_id = b"standalone_rpc_proxy.call.%032x" % rng.getrandbits(128)
        return [(_CALL_ID_STACK, field_array([field_longstr(call_id)])), *extra]

    def request(
        self,
        kind: str,
        rng: random.Random,
        *,
        method: bytes | None = None,
        routing_key: bytes | None = None,
        body: bytes | None = None,
        raw: bytes | None = None,
        exchange: bytes | None = None,
        mandatory: bool = False,
        note: str = "",
        **props: object,
    ) -> HostileMessage:
        """A well-formed RPC request but for what the arguments replace (a property given as
        None is left out; ``raw`` replaces the whole encoded property list)."""
        if routing_key is None:
            if method is None:
                method = rng.choice(_METHODS)
            routing_key = self.service + b"." + method
        fields: dict[str, object] = {
            "content_type": b"application/json",
            "content_encoding": b"utf-8",
            "headers": self.headers(rng),
            "delivery_mode": 2,
            "correlation_id": b"%032x" % rng.getrandbits(128),
            "reply_to": self.reply_to,
        }
        fields.update(props)
        return HostileMessage(
            kind=kind,
            exchange=self.exchange if exchange is None else exchange,
            routing_key=routing_key,
            properties=properties(**fields) if raw is None else raw,  # type: ignore[arg-type]
            body=b'{"args": [], "kwargs": {}}' if body is None else body,
            mandatory=mandatory,
            note=note,
        )


_Builder = Callable[[random.Random, _Target], HostileMessage]
_BUILDERS: dict[str, _Builder] = {}


def _kind(name: str) -> Callable[[_Builder], _Builder]:
    def register(builder: _Builder) -> _Builder:
        _BUILDERS[name] = builder
        return builder

    return register


def _simple(name: str, **fixed: object) -> None:
    """A kind that is a request with some arguments fixed."""
    _BUILDERS[name] = lambda rng, t: t.request(name, rng, **fixed)  # type: ignore[arg-type]


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _header(name: str, key: Text, make: Callable[[random.Random], bytes]) -> None:
    """A kind whose request carries one more header, ``key``, made by ``make``."""

    def build(rng: random.Random, t: _Target) -> HostileMessage:
        return t.request(name, rng, headers=t.headers(rng, (key, make(rng))))

    _BUILDERS[name] = build


def _context_header(name: str, make: Callable[[random.Random], bytes]) -> None:
    _BUILDERS[name] = lambda rng, t: t.request(
        name, rng, headers=t.headers(rng, (rng.choice(_CONTEXT_KEYS), make(rng)))
    )


def _call_id_stack(name: str, make: Callable[[random.Random], bytes]) -> None:
    _BUILDERS[name] = lambda rng, t: t.request(name, rng, headers=[(_CALL_ID_STACK, make(rng))])


# bodies
_kind("body-random-bytes")(
    lambda rng, t: t.request("body-random-bytes", rng, body=rng.randbytes(rng.randint(1, 4096)))
)
_kind("body-not-json")(
    lambda rng, t: t.request(
        "body-not-json",
        rng,
        body=rng.choice(
            [b"hello", b"{", b"{'args': []}", b"[1, 2", b"\x00", b"undefined", b"\xef\xbb\xbf{}"]
        ),
    )
)
_simple("body-empty", body=b"")
_kind("body-json-list")(
    lambda rng, t: t.request("body-json-list", rng, body=rng.choice([b"[]", b"[[], {}]"]))
)
_kind("body-json-string")(
    lambda rng, t: t.request("body-json-string", rng, body=rng.choice([b'"args"', b'""']))
)
_kind("body-json-number")(
    lambda rng, t: t.request(
        "body-json-number", rng, body=rng.choice([b"5", b"-0.0", b"1e999", b"NaN", b"Infinity"])
    )
)
_simple("body-json-null", body=b"null")
_simple("body-json-true", body=b"true")
_kind("body-args-not-list")(
    lambda rng, t: t.request(
        "body-args-not-list",
        rng,
        body=_json({"args": rng.choice([5, "abc", {"a": 1}, None, True]), "kwargs": {}}),
    )
)
_kind("body-kwargs-not-dict")(
    lambda rng, t: t.request(
        "body-kwargs-not-dict",
        rng,
        body=_json({"args": [], "kwargs": rng.choice([[], 5, "abc", None, [["a", 1]]])}),
    )
)
_kind("body-missing-keys")(
    lambda rng, t: t.request(
        "body-missing-keys", rng, body=rng.choice([b"{}", b'{"args": []}', b'{"kwargs": {}}'])
    )
)
_kind("body-odd-kwargs")(
    lambda rng, t: t.request(
        "body-odd-kwargs",
        rng,
        body=_json(
            {"args": [], "kwargs": {rng.choice(["", "self", "__class__", "1x", "\u202e"]): 1}}
        ),
    )
)
_simple("body-duplicate-keys", body=b'{"args": [], "args": 5, "kwargs": {}}')
_kind("body-deep-nesting")(
    lambda rng, t: t.request(
        "body-deep-nesting",
        rng,
        body=(lambda n: b'{"args": [' + b"[" * n + b"]" * n + b'], "kwargs": {}}')(
            rng.randint(50_000, 200_000)
        ),
    )
)
_kind("body-huge-number")(
    lambda rng, t: t.request(
        "body-huge-number",
        rng,
        body=b'{"args": [' + b"9" * rng.randint(5_000, 100_000) + b'], "kwargs": {}}',
    )
)
_kind("body-invalid-utf8")(
    lambda rng, t: t.request(
        "body-invalid-utf8", rng, body=b'{"args": ["' + _invalid(rng) + b'"], "kwargs": {}}'
    )
)
_simple("body-lone-surrogate", body=b'{"args": ["\\ud800"], "kwargs": {"\\udfff": 1}}')
_kind("body-1mb")(
    lambda rng, t: t.request(
        "body-1mb",
        rng,
        body=rng.choice(
            [
                b'{"args": ["' + b"a" * (1 << 20) + b'"], "kwargs": {}}',
                rng.randbytes(1 << 20),
            ]
        ),
    )
)

# content types and encodings
_simple("ct-text-plain", content_type=b"text/plain", body=b"hello")
_simple(
    "ct-pickle",
    content_type=b"application/x-python-serialize",
    content_encoding=b"binary",
    # unpickled, this is RuntimeError("hostile pickle was unpickled"): made, not raised
    body=b"cbuiltins\nRuntimeError\n(Vhostile pickle was unpickled\ntR.",
)
_kind("ct-yaml")(
    lambda rng, t: t.request(
        "ct-yaml",
        rng,
        content_type=b"application/x-yaml",
        body=rng.choice(
            [
                b"args: []\nkwargs: {}\n",
                b'args: [!!python/object/apply:builtins.RuntimeError ["hostile yaml"]]\n'
                b"kwargs: {}\n",
                # a billion laughs: 9**8 references, harmless unless walked or re-encoded
                b"a: &a [x,x,x,x,x,x,x,x,x]\n"
                + b"".join(
                    b"%c: &%c [%s]\n" % (c, c, b",".join([b"*%c" % (c - 1)] * 9))
                    for c in range(ord("b"), ord("i"))
                )
                + b"args: [*h]\nkwargs: {}\n",
            ]
        ),
    )
)
_simple("ct-empty", content_type=b"")
_simple("ct-absent", content_type=None, content_encoding=None)
_kind("ct-invalid-utf8")(
    lambda rng, t: t.request(
        "ct-invalid-utf8", rng, content_type=b"application/" + _invalid(rng) + b"json"
    )
)
_simple("ct-surrogate", content_type=b"application/json" + SURROGATES[0])
_kind("ct-odd")(
    lambda rng, t: t.request(
        "ct-odd",
        rng,
        content_type=rng.choice(
            [
                b"application/json; charset=latin-1",
                b"APPLICATION/JSON",
                b" application/json",
                b"application/json\x00",
                b"application/x-msgpack",
                b"application/data",
                b"*/*",
                _junk(rng),
            ]
        ),
    )
)
_kind("ce-odd")(
    lambda rng, t: t.request(
        "ce-odd",
        rng,
        content_encoding=rng.choice(
            [b"binary", b"gzip", b"latin-1", b"utf-16", b"rot13", b"", _junk(rng)]
        ),
    )
)
_kind("ce-invalid-utf8")(
    lambda rng, t: t.request("ce-invalid-utf8", rng, content_encoding=b"utf-" + _invalid(rng))
)

# nameko.call_id_stack of the wrong type
_call_id_stack("hdr-call-id-stack-int", lambda rng: field_int32(rng.randint(-9, 9)))
_call_id_stack("hdr-call-id-stack-str", lambda rng: field_longstr(b"standalone_rpc_proxy.call.1"))
_call_id_stack("hdr-call-id-stack-ints", lambda rng: field_array(field_int32(i) for i in range(3)))
_call_id_stack(
    "hdr-call-id-stack-table",
    lambda rng: field_table({b"0": field_longstr(b"standalone_rpc_proxy.call.1")}),
)
_call_id_stack("hdr-call-id-stack-void", lambda rng: field_void())
_call_id_stack(
    "hdr-call-id-stack-nested",
    lambda rng: field_array([field_array([field_longstr(b"a")]), field_table({})]),
)
_call_id_stack(
    "hdr-call-id-stack-huge",
    lambda rng: field_array(field_longstr(b"c.%d" % i) for i in range(rng.randint(2000, 6000))),
)
_call_id_stack(
    "hdr-call-id-stack-junk",
    lambda rng: field_array(
        [field_longstr(_junk(rng)), field_longstr(_invalid(rng)), field_longstr(SURROGATES[0])]
    ),
)

# nameko.* context values of every type
_context_header(
    "hdr-context-table", lambda rng: field_table({b"a": field_table({b"b": field_int32(1)})})
)
_context_header("hdr-context-bytes", lambda rng: field_bytes(rng.randbytes(16)))
_context_header(
    "hdr-context-float",
    lambda rng: rng.choice([field_double(-0.0), field_double(1e308), field_float(1.5)]),
)
_context_header(
    "hdr-context-nan",
    lambda rng: rng.choice(
        [field_double(float("nan")), field_double(float("-inf")), field_float(float("inf"))]
    ),
)
_context_header("hdr-context-timestamp", lambda rng: field_timestamp(1_700_000_000))
_context_header(
    "hdr-context-decimal",
    lambda rng: rng.choice([field_decimal(2, 12345), field_decimal(255, -1)]),
)
_context_header("hdr-context-void", lambda rng: field_void())
_context_header("hdr-context-bool", lambda rng: field_bool(True))
_context_header("hdr-context-int16", lambda rng: field_int16(-2))
_context_header("hdr-context-int64", lambda rng: field_int64(-(1 << 63)))
_context_header("hdr-context-array", lambda rng: field_array([field_void(), field_int8(-1)]))
_context_header("hdr-context-invalid-utf8", lambda rng: field_longstr(b"en" + _invalid(rng)))
_context_header("hdr-context-surrogate", lambda rng: field_longstr(SURROGATES[-1]))
_context_header("hdr-context-unicode-junk", lambda rng: field_longstr(_junk(rng, count=8)))
_header("hdr-key-invalid-utf8", b"nameko." + INVALID_UTF8[0], lambda rng: field_longstr(b"v"))
_header("hdr-key-empty", b"", lambda rng: field_longstr(b"v"))
_header("hdr-duplicate-call-id-stack", _CALL_ID_STACK, lambda rng: field_int32(5))

# header values py-amqp cannot turn into Python values
_context_header(
    "hdr-timestamp-year-10000", lambda rng: field_timestamp(_YEAR_10000 + rng.randint(0, 10**9))
)
_context_header("hdr-timestamp-u64-max", lambda rng: field_timestamp(-1))
_context_header(
    "hdr-nested-tables", lambda rng: nested_tables(rng.randint(2_000, 5_000), field_int32(1))
)
_context_header(
    "hdr-nested-arrays", lambda rng: nested_arrays(rng.randint(2_000, 5_000), field_int32(1))
)
_context_header("hdr-nested-tables-900", lambda rng: nested_tables(900, field_int32(1)))
_kind("hdr-many-keys")(
    lambda rng, t: t.request(
        "hdr-many-keys",
        rng,
        headers=t.headers(rng, *((b"nameko.k%d" % i, field_void()) for i in range(5000))),
    )
)

# raw property lists that do not decode
_context_header(
    "raw-unknown-tag", lambda rng: field_raw(rng.choice([b"Z", b"?", b"\x00", b"\xff"]), b"\0" * 8)
)
_context_header("raw-tag-L", lambda rng: field_raw(b"L", struct.pack(">q", -1)))
_context_header("raw-tag-U", lambda rng: field_raw(b"U", struct.pack(">h", -1)))
_kind("raw-table-truncated")(
    lambda rng, t: t.request(
        "raw-table-truncated",
        rng,
        raw=raw_properties(0xA000, shortstr(b"application/json") + b"\0\0\0\x40" + b"\x01k"),
    )
)
_kind("raw-table-length-short")(
    lambda rng, t: t.request(
        "raw-table-length-short",
        rng,
        raw=properties(
            content_type=b"application/json",
            headers=table({b"nameko.language": field_longstr(b"en")}, length=5),
            reply_to=t.reply_to,
        ),
    )
)
_kind("raw-value-overrun")(
    lambda rng, t: t.request(
        "raw-value-overrun",
        rng,
        raw=properties(headers=Raw(b"\0\0\0\x0b" + shortstr(b"k") + b"S\x7f\xff\xff\xff" + b"abc")),
    )
)
_kind("raw-flags-no-data")(
    lambda rng, t: t.request("raw-flags-no-data", rng, raw=raw_properties(0xFFFC))
)
_kind("raw-flags-continuation")(
    lambda rng, t: t.request(
        "raw-flags-continuation",
        rng,
        raw=raw_properties([0x8001, 0x8000], shortstr(b"application/json") + shortstr(b"x")),
    )
)
_kind("raw-flags-low-bits")(
    lambda rng, t: t.request(
        "raw-flags-low-bits",
        rng,
        raw=raw_properties(0x8002, shortstr(b"application/json") + b"\0\0"),
    )
)
_kind("raw-shortstr-overrun")(
    lambda rng, t: t.request(
        "raw-shortstr-overrun", rng, raw=raw_properties(0x0200, shortstr(b"abc", length=200))
    )
)
_kind("raw-trailing-garbage")(
    lambda rng, t: t.request(
        "raw-trailing-garbage",
        rng,
        content_type=b"application/json",
        tail=rng.randbytes(rng.randint(1, 64)),
    )
)
_kind("raw-oversized-header")(
    lambda rng, t: t.request(
        "raw-oversized-header",
        rng,
        headers=t.headers(rng, (b"nameko.big", field_longstr(b"x" * 200_000))),
    )
)

# reply_to and correlation_id
_simple("reply-to-absent", reply_to=None)
_simple("reply-to-empty", reply_to=b"")
_kind("reply-to-huge")(lambda rng, t: t.request("reply-to-huge", rng, reply_to=b"r" * 255))
_kind("reply-to-invalid-utf8")(
    lambda rng, t: t.request("reply-to-invalid-utf8", rng, reply_to=t.reply_to + _invalid(rng))
)
_simple("reply-to-surrogate", reply_to=b"reply." + SURROGATES[0])
_kind("reply-to-unicode-junk")(
    lambda rng, t: t.request("reply-to-unicode-junk", rng, reply_to=_junk(rng, count=6))
)
_simple("reply-to-missing-queue", reply_to=b"hostile-nowhere")
_simple("reply-to-direct", reply_to=b"amq.rabbitmq.reply-to")
_simple("corr-absent", correlation_id=None)
_simple("corr-empty", correlation_id=b"")
_simple("corr-huge", correlation_id=b"c" * 255)
_kind("corr-invalid-utf8")(
    lambda rng, t: t.request("corr-invalid-utf8", rng, correlation_id=b"c" + _invalid(rng))
)
_simple("corr-surrogate", correlation_id=SURROGATES[1])
_kind("corr-unicode-junk")(
    lambda rng, t: t.request("corr-unicode-junk", rng, correlation_id=_junk(rng, count=6))
)

# routing keys: "<service>." + junk, so that the binding "<service>.*" still routes them
_kind("rk-unicode-junk")(
    lambda rng, t: t.request("rk-unicode-junk", rng, method=_junk(rng, dots=False))
)
_kind("rk-invalid-utf8")(
    lambda rng, t: t.request("rk-invalid-utf8", rng, method=b"m" + _invalid(rng))
)
_simple("rk-surrogate", method=SURROGATES[0])
_simple("rk-newline", method=b"ping\nINFO forged log line")
_kind("rk-control")(
    lambda rng, t: t.request(
        "rk-control", rng, method=rng.choice([b"\x00", b"ping\x00x", b"\x1b[2J", b"\x7f", b"\t"])
    )
)
_simple("rk-bidi", method="\u202egnip".encode())
_simple("rk-empty-method", method=b"")
_kind("rk-dunder")(
    lambda rng, t: t.request(
        "rk-dunder",
        rng,
        method=rng.choice([b"__init__", b"__class__", b"_private", b"__dict__", b"__del__"]),
    )
)
_kind("rk-huge")(lambda rng, t: t.request("rk-huge", rng, method=b"m" * (254 - len(t.service))))
_kind("exchange-missing")(
    lambda rng, t: t.request("exchange-missing", rng, exchange=b"hostile-missing-" + _invalid(rng))
)
_kind("unroutable-mandatory")(
    lambda rng, t: t.request(
        "unroutable-mandatory", rng, routing_key=b"hostile-nobody.ping", mandatory=True
    )
)

# other properties
_simple("prop-user-id-mismatch", user_id=b"hostile-nobody")
_kind("prop-expiration-invalid")(
    lambda rng, t: t.request(
        "prop-expiration-invalid", rng, expiration=rng.choice([b"abc", b"-1", b"1.5", b""])
    )
)
_simple("prop-expiration-zero", expiration=b"0")
_simple("prop-priority-max", priority=255)
_kind("prop-delivery-mode-odd")(
    lambda rng, t: t.request("prop-delivery-mode-odd", rng, delivery_mode=rng.choice([0, 7, 255]))
)
_simple("prop-timestamp-max", timestamp=-1)
_kind("prop-shortstrs-invalid-utf8")(
    lambda rng, t: t.request(
        "prop-shortstrs-invalid-utf8",
        rng,
        message_id=_invalid(rng),
        type=_invalid(rng),
        app_id=_invalid(rng),
    )
)
_simple("prop-cluster-id", cluster_id=b"hostile-cluster")

#: every kind ``hostile_messages`` makes
KINDS: tuple[str, ...] = tuple(_BUILDERS)


def hostile_message(
    kind: str,
    rng: random.Random,
    service: Text = "svc",
    reply_to: Text = "rpc.reply-standalone_rpc_proxy-hostile",
    exchange: Text = "nameko-rpc",
) -> HostileMessage:
    """One case of ``kind`` (one of ``KINDS``), its details drawn from ``rng``."""
    target = _Target(_bytes(service), _bytes(reply_to), _bytes(exchange))
    return _BUILDERS[kind](rng, target)


def hostile_messages(
    rng: random.Random,
    service: Text = "svc",
    reply_to: Text = "rpc.reply-standalone_rpc_proxy-hostile",
    exchange: Text = "nameko-rpc",
    *,
    count: int | None = None,
    kinds: Iterable[str] | None = None,
) -> Iterator[HostileMessage]:
    """Hostile cases for a service's consumer, reproducible from the seed of ``rng``.

    With ``count`` None: each of ``kinds`` (default ``KINDS``) once, in an order drawn from
    ``rng``; else ``count`` cases of kinds drawn at random (``count=-1``: forever). Every case
    routes to ``<service>.*`` on ``exchange`` unless its kind is about not routing.
    """
    pool = list(KINDS if kinds is None else kinds)
    if count is None:
        rng.shuffle(pool)
        for kind in pool:
            yield hostile_message(kind, rng, service, reply_to, exchange)
        return
    made = 0
    while count < 0 or made < count:
        yield hostile_message(rng.choice(pool), rng, service, reply_to, exchange)
        made += 1
