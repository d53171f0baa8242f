"""Reading AMQP frames so that no message a client publishes can stop a consumer.

py-amqp decodes a delivery's method arguments and content header as the
frames arrive, and raises from deep inside ``drain_events`` when they do not
decode: a routing key, correlation id or content type that is not UTF-8, a
header timestamp past year 9999, a header table nested thousands deep, an
unknown field type. The broker passes such bytes from any publisher to every
consumer of the queue, so one hostile message would end the thread reading
the connection, go back to its queue, and do the same to the next replica.

``tolerant_frame_handler`` replaces py-amqp's frame reader (py-amqp takes it
as its ``frame_handler`` argument; ``TolerantTransport`` is kombu's py-amqp
transport with connections that use it). It reads frames exactly as py-amqp's does,
but a ``basic.deliver`` whose arguments or properties cannot be decoded is
not an error of the connection: what can be read of it is salvaged (each
property on its own; a header table is skipped by its length), the message is
marked with ``undecodable`` (why), and it is handed to its consumer's
callback like any other. The consumer settles it (shimeji rejects it and
answers the caller when a reply-to and correlation id survived), and the
connection reads on. Every other frame goes through py-amqp unchanged.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from struct import Struct, unpack_from
from struct import error as StructError
from typing import Any

import amqp
from amqp import spec
from amqp.exceptions import UnexpectedFrame
from amqp.serialization import loads
from amqp.transport import TCPTransport
from kombu.transport import pyamqp

from shimeji.core.exceptions import describe
from shimeji.core.quoting import shorten

__all__ = [
    "READ_CHUNK",
    "ChunkedTCPTransport",
    "TolerantSSLTransport",
    "TolerantTransport",
    "lean_frame_writer",
    "salvage_properties",
    "tolerant_frame_handler",
]

_CONTENT_METHODS = frozenset([spec.Basic.Return, spec.Basic.Deliver, spec.Basic.GetOk])
_HEARTBEAT = 8

# The basic class's properties, in the order of their flag bits (AMQP 0-9-1).
_PROPERTIES: tuple[tuple[str, str], ...] = tuple(amqp.Message.PROPERTIES)


def _shortstr(buf: Any, offset: int) -> tuple[bytes, int]:
    (length,) = unpack_from("B", buf, offset)
    offset += 1
    raw = bytes(buf[offset : offset + length])
    if len(raw) != length:
        raise StructError("short string runs past the end of the frame")
    return raw, offset + length


def salvage_properties(buf: Any, offset: int) -> tuple[dict[str, Any], list[str]]:
    """Decode a basic content header's properties one by one, skipping those that
    do not decode: ``(properties, problems)``.

    A short string that is not UTF-8 is left out; a header table that does not
    decode is left out whole (its length prefix says where the next property
    starts). Truncated properties end the salvage.
    """
    properties: dict[str, Any] = {}
    problems: list[str] = []
    try:
        (flags,) = unpack_from(">H", buf, offset)
        offset += 2
        for index, (name, kind) in enumerate(_PROPERTIES):
            if not flags & (1 << (15 - index)):
                continue
            if kind == "s":
                raw, offset = _shortstr(buf, offset)
                try:
                    properties[name] = raw.decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    problems.append(f"{name} is not UTF-8")
            elif kind == "F":
                (length,) = unpack_from(">I", buf, offset)
                end = offset + 4 + length
                if end > len(buf):
                    raise StructError("the header table runs past the end of the frame")
                try:
                    (table,), _ = loads("F", buf, offset)
                except Exception as exc:  # RecursionError, OverflowError, FrameSyntaxError...
                    problems.append(f"the headers cannot be decoded ({shorten(describe(exc))})")
                else:
                    properties[name] = table
                offset = end
            elif kind == "o":
                (properties[name],) = unpack_from(">B", buf, offset)
                offset += 1
            else:  # "L": the timestamp property, a plain 64-bit number
                (properties[name],) = unpack_from(">Q", buf, offset)
                offset += 8
    except StructError:
        problems.append("the properties are truncated")
    return properties, problems


def _deliver_arguments(buf: Any) -> tuple[dict[str, Any], list[str]]:
    """``basic.deliver``'s arguments (``sLbss``), a string that is not UTF-8 shown
    with backslash escapes and named in the problems."""
    problems: list[str] = []
    offset = 4  # after the class and method ids
    fields: dict[str, Any] = {}
    consumer_tag, offset = _shortstr(buf, offset)
    (fields["delivery_tag"],) = unpack_from(">Q", buf, offset)
    offset += 8
    fields["redelivered"] = bool(buf[offset] & 1)
    offset += 1
    exchange, offset = _shortstr(buf, offset)
    routing_key, offset = _shortstr(buf, offset)
    for name, raw in (
        ("consumer_tag", consumer_tag),
        ("exchange", exchange),
        ("routing_key", routing_key),
    ):
        try:
            fields[name] = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            fields[name] = raw.decode("utf-8", "backslashreplace")
            problems.append(f"its {name.replace('_', ' ')} is not UTF-8")
    return fields, problems


def _hand_over_undecodable(connection: Any, channel_id: int, message: amqp.Message) -> bool:
    """Give a delivery that py-amqp cannot decode to its consumer, marked as such."""
    problems: list[str] = list(getattr(message, "problems", ()))
    try:
        fields, more = _deliver_arguments(message.frame_args)
    except (StructError, IndexError):
        # Not even the delivery tag can be read: the frame itself is broken,
        # which only a broken broker sends. The connection cannot be trusted.
        raise UnexpectedFrame("a basic.deliver frame too short to hold its arguments") from None
    problems += more
    channel = connection.channels.get(channel_id) if connection.channels else None
    if channel is None or channel.is_closing:
        return True  # its channel is gone: the broker gives the message back
    message.channel = channel
    message.delivery_info = {
        "consumer_tag": fields["consumer_tag"],
        "delivery_tag": fields["delivery_tag"],
        "redelivered": fields["redelivered"],
        "exchange": fields["exchange"],
        "routing_key": fields["routing_key"],
    }
    message.undecodable = "; ".join(problems)
    callback = channel.callbacks.get(fields["consumer_tag"])
    if callback is None:
        channel.basic_reject(fields["delivery_tag"], requeue=False)
    else:
        callback(message)
    return True


def _arguments_problems(message: amqp.Message) -> list[str]:
    try:
        loads("sLbss", message.frame_args, 4)
    except Exception:
        return ["its arguments cannot be decoded"]
    return []


def tolerant_frame_handler(
    connection: Any, callback: Callable[[int, tuple[int, int], Any, Any], Any]
) -> Callable[[tuple[int, int, Any]], bool]:
    """A frame reader for ``amqp.Connection(frame_handler=...)`` (see the module
    docstring). Returns True when a whole method was dispatched, as py-amqp's does."""
    expected_types: dict[int, int] = {}
    partial_messages: dict[int, amqp.Message] = {}

    def complete(channel: int, message: amqp.Message) -> bool:
        if message.frame_method == spec.Basic.Deliver:
            problems = getattr(message, "problems", None)
            if problems is None:
                problems = _arguments_problems(message)
                if problems:
                    message.problems = problems
            if problems:
                return _hand_over_undecodable(connection, channel, message)
        callback(channel, message.frame_method, message.frame_args, message)
        return True

    def on_frame(frame: tuple[int, int, Any]) -> bool:
        frame_type, channel, buf = frame
        connection.bytes_recv += 1
        expected = expected_types.get(channel, 1)
        if frame_type != expected and frame_type != _HEARTBEAT:
            raise UnexpectedFrame(f"Received frame {frame_type} while expecting type: {expected}")
        if frame_type == 1:
            method_sig = unpack_from(">HH", buf, 0)
            if method_sig in _CONTENT_METHODS:
                partial_messages[channel] = amqp.Message(frame_method=method_sig, frame_args=buf)
                expected_types[channel] = 2
                return False
            callback(channel, method_sig, buf, None)
            return True
        if frame_type == 2:
            message = partial_messages[channel]
            class_id, message.body_size = unpack_from(">HxxQ", buf, 0)
            try:
                message._load_properties(class_id, buf, 12)
            except Exception as exc:
                message.properties, problems = salvage_properties(buf, 12)
                if not problems:  # decoded one by one after all: say what failed whole
                    problems = [f"its properties cannot be decoded ({shorten(describe(exc))})"]
                message.problems = [*problems, *_arguments_problems(message)]
            if message.body_size:
                expected_types[channel] = 3
                return False
            message.ready = True
        elif frame_type == 3:
            message = partial_messages[channel]
            message.inbound_body(buf)
            if not message.ready:
                return False
        else:  # a heartbeat
            return False
        expected_types[channel] = 1
        del partial_messages[channel]
        return complete(channel, message)

    return on_frame


_FRAME_HEADER = Struct(">BHI")
_METHOD_SIG = Struct(">HH")
_CONTENT_HEADER = Struct(">HHQ")
_FRAME_END = b"\xce"


def lean_frame_writer(connection: Any, transport: Any) -> Callable[..., None]:
    """A frame writer for ``amqp.Connection(frame_writer=...)``: the bytes py-amqp's
    own writes, with no buffer of ``frame_max`` bytes kept per connection.

    py-amqp's writer packs every frame into a buffer of ``frame_max`` bytes
    (128 KiB, zeroed, so resident) that each connection holds for its
    lifetime. This one joins a method's frames (method, content header, body
    frames of at most ``frame_max`` bytes each) into one string and writes it
    under a lock, as one ``sendall``: threads sharing a connection never
    interleave their frames.

    ``write_frame.cork()`` holds back what the calling thread writes from then
    on, until ``write_frame.uncork()`` sends it all in one ``sendall`` (several
    acks in one system call); ``write_frame.flush()`` sends what is held at
    once (the connection calls it before it reads: a method that waits for
    its answer must have gone out).
    """
    write = transport.write
    lock = threading.Lock()
    header = _FRAME_HEADER.pack
    method = _METHOD_SIG.pack
    content_header = _CONTENT_HEADER.pack
    end = _FRAME_END
    get_ident = threading.get_ident
    held: list[bytes] = []
    corked_by: list[int] = []  # the corking thread's id, while corked

    def write_frame(type_: int, channel: int, method_sig: Any, args: Any, content: Any) -> None:
        if type_ == 1:
            if isinstance(args, str):
                args = args.encode("utf-8")
            payload = method(*method_sig) + args
        else:  # a heartbeat
            payload = b""
        parts = [header(type_, channel, len(payload)), payload, end]
        if content is not None:
            body = content.body
            if isinstance(body, str):
                encoding = content.properties.setdefault("content_encoding", "utf-8")
                body = body.encode(encoding)
            frame = content_header(method_sig[0], 0, len(body)) + content._serialize_properties()
            parts += (header(2, channel, len(frame)), frame, end)
            size = len(body)
            chunk = connection.frame_max - 8
            if size <= chunk:
                if size:
                    parts += (header(3, channel, size), body, end)
            else:
                view = memoryview(body)
                for offset in range(0, size, chunk):
                    piece = view[offset : offset + chunk]
                    parts += (header(3, channel, len(piece)), piece, end)
        data = b"".join(parts)
        if corked_by and corked_by[0] == get_ident():
            held.append(data)
            return
        with lock:
            write(data)
            connection.bytes_sent += 1  # what heartbeat_check looks at

    def flush() -> None:
        if held and corked_by and corked_by[0] == get_ident():
            data = b"".join(held)
            held.clear()
            with lock:
                write(data)
                connection.bytes_sent += 1

    def cork() -> None:
        corked_by[:] = [get_ident()]

    def uncork() -> None:
        try:
            flush()
        finally:
            held.clear()
            corked_by.clear()

    write_frame.cork = cork  # type: ignore[attr-defined]
    write_frame.uncork = uncork  # type: ignore[attr-defined]
    write_frame.flush = flush  # type: ignore[attr-defined]
    return write_frame


#: How many bytes a read from a plain TCP connection asks the kernel for, at least.
READ_CHUNK = 16384
_RETRY_ERRNOS = frozenset([errno.EAGAIN, errno.EINTR])


class ChunkedTCPTransport(TCPTransport):  # type: ignore[misc]
    """py-amqp's TCP transport, reading the socket in chunks.

    py-amqp asks the kernel for exactly the bytes it needs next: a frame's
    header, its payload, its end octet, three system calls per frame and nine
    per message delivered. This one asks for at least ``READ_CHUNK`` bytes and
    keeps what the frame did not need for the next read, so that a delivery
    and whatever arrived with it cost one call. Bytes read that way are no
    longer visible to ``select``: whoever selects on the socket first asks
    ``frame_ready()`` (the consumer loop does).
    """

    def _connect(self, host: Any, port: Any, timeout: Any) -> None:
        # An ASCII host name goes to getaddrinfo as bytes, as the "idna" codec
        # would encode it: that codec's first use imports stringprep, whose
        # tables (a few hundred KB) would stay in every service process.
        if isinstance(host, str) and host.isascii():
            host = host.encode("ascii")
        super()._connect(host, port, timeout)

    def _read(self, n: int, initial: bool = False, _errnos: Any = _RETRY_ERRNOS) -> bytes:
        buffered = self._read_buffer
        while len(buffered) < n:
            try:
                chunk = self._quick_recv(max(n - len(buffered), READ_CHUNK))
            except OSError as exc:
                if exc.errno not in _errnos:
                    self._read_buffer = buffered  # a timeout: the next read resumes
                    raise
                if initial and self.raise_on_initial_eintr:
                    self._read_buffer = buffered
                    raise TimeoutError() from None
                continue
            except BaseException:
                self._read_buffer = buffered
                raise
            if not chunk:
                self._read_buffer = buffered
                raise OSError("Server unexpectedly closed connection")
            buffered += chunk
        self._read_buffer = buffered[n:]
        return buffered[:n]  # type: ignore[no-any-return]

    def read_frame(self, *args: Any) -> tuple[int, int, bytes]:
        """The next frame: from what was read already when it holds a whole one
        (no system call), else as py-amqp reads it."""
        buffered = self._read_buffer
        if len(buffered) >= 7:
            frame_type, channel, size = _FRAME_HEADER.unpack_from(buffered, 0)
            end = 7 + size
            if len(buffered) > end and buffered[end] == 206:
                self._read_buffer = buffered[end + 1 :]
                return frame_type, channel, buffered[7:end]
        return super().read_frame(*args)  # type: ignore[no-any-return]

    def frame_ready(self) -> bool:
        """Whether a whole frame was read from the socket already, not yet handled."""
        buffered = self._read_buffer
        return len(buffered) >= 7 and len(buffered) >= 8 + int.from_bytes(buffered[3:7], "big")


def frame_ready(transport: Any) -> bool:
    """Whether ``transport`` (py-amqp's) holds a whole frame it read but nobody handled."""
    ready = getattr(transport, "frame_ready", None)
    return ready is not None and ready()


class _TolerantConnection(pyamqp.Connection):  # type: ignore[misc]
    """kombu's py-amqp connection, reading frames with ``tolerant_frame_handler``
    (and, without TLS, with ``ChunkedTCPTransport``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["frame_handler"] = tolerant_frame_handler
        kwargs["frame_writer"] = lean_frame_writer
        super().__init__(*args, **kwargs)

    def blocking_read(self, timeout: Any = None) -> Any:
        # What this thread holds back (a corked writer) goes out before any
        # read: a method that waits for its answer must have been sent.
        flush = getattr(self._frame_writer, "flush", None)
        if flush is not None:
            flush()
        # A frame read already (``ChunkedTCPTransport``) is handled without
        # setting the socket's timeout and back: no system call at all.
        transport = self.transport
        if frame_ready(transport):
            return self.on_inbound_frame(transport.read_frame())
        return super().blocking_read(timeout)

    def Transport(
        self,
        host: str,
        connect_timeout: Any,
        ssl: Any = False,
        read_timeout: Any = None,
        write_timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        if ssl:
            return super().Transport(
                host, connect_timeout, ssl, read_timeout, write_timeout, **kwargs
            )
        return ChunkedTCPTransport(
            host,
            connect_timeout=connect_timeout,
            ssl=ssl,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            **kwargs,
        )


class TolerantTransport(pyamqp.Transport):  # type: ignore[misc]
    """kombu's ``amqp://`` transport, with connections no message can stop."""

    Connection = _TolerantConnection


class TolerantSSLTransport(pyamqp.SSLTransport):  # type: ignore[misc]
    """kombu's ``amqps://`` transport, with connections no message can stop."""

    Connection = _TolerantConnection
