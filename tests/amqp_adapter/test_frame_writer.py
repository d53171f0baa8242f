"""Frames are written as py-amqp writes them (``lean_frame_writer``), byte for byte,
without a buffer of ``frame_max`` bytes held by each connection; and a real
broker takes them.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_writer as amqp_frame_writer
from amqp.serialization import dumps

from shimeji.amqp_adapter.frames import lean_frame_writer
from shimeji.amqp_adapter.wire import connection_for
from shimeji.config import Settings


class _Sink:
    """Where a frame writer writes: the bytes of each write, in order."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))


class _Connection:
    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max
        self.bytes_sent = 0


@pytest.fixture
def channel_and_queue(amqp_uri: str) -> Any:
    """A channel on a connection of the adapter's, and a queue of the test's own
    (deleted after)."""
    conn = connection_for(Settings.from_config({"AMQP_URI": amqp_uri}))
    conn.ensure_connection(max_retries=1)
    try:
        channel = conn.channel()
        queue = f"lean-writer-{uuid.uuid4().hex}"
        channel.queue_declare(queue, auto_delete=False)
        yield conn, channel, queue
        channel.queue_delete(queue)
    finally:
        conn.release()


def _written(writer: Any, frame_max: int, *frame: Any) -> bytes:
    sink = _Sink()
    connection = _Connection(frame_max)
    writer(connection, sink)(*frame)
    assert connection.bytes_sent == 1  # heartbeat_check's count of frames sent
    return b"".join(sink.writes)


def _message(body: Any, **properties: Any) -> amqp.Message:
    return amqp.Message(body, **properties)


CASES = [
    pytest.param((8, 0, None, None, None), id="heartbeat"),
    pytest.param((1, 1, (60, 80), b"\x00\x00\x00\x00\x00\x00\x00\x07\x00", None), id="ack"),
    pytest.param((1, 1, (60, 10), "\x00\x00\x00\x00\x01", None), id="str-arguments"),
    pytest.param(
        (
            1,
            2,
            (60, 40),
            b"\x00\x00\x00\x05queue\x01",
            _message(
                b'{"args": [1]}',
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                correlation_id="c-1",
                reply_to="rpc.reply-x",
                application_headers={"nameko.call_id_stack": ["a.b.1"], "n": 3},
            ),
        ),
        id="publish",
    ),
    pytest.param((1, 3, (60, 40), b"\x00\x00\x00\x00\x00", _message(b"")), id="empty-body"),
    pytest.param((1, 3, (60, 40), b"\x00\x00\x00\x00\x00", _message("héllo")), id="str-body"),
    pytest.param(
        (1, 4, (60, 40), b"\x00\x00\x00\x00\x00", _message(bytes(range(256)) * 40)),
        id="body-over-frame-max",
    ),
    pytest.param(
        (1, 4, (60, 40), b"\x00\x00\x00\x00\x00", _message(b"x" * (4096 - 8 - 8 - 22))),
        id="body-at-frame-max",
    ),
]


@pytest.mark.parametrize("frame", CASES)
def test_the_bytes_of_py_amqps_writer(frame: tuple[Any, ...]) -> None:
    """Whatever frames py-amqp's writer makes of a method, the lean writer makes
    the same bytes (a small ``frame_max`` splits the long body in frames)."""
    ours = _written(lean_frame_writer, 4096, *frame)
    content = frame[4]
    if content is not None:  # py-amqp's writer may fill in content_encoding: start afresh
        frame = (*frame[:4], amqp.Message(content.body, **dict(content.properties)))
    theirs = _written(amqp_frame_writer, 4096, *frame)
    assert ours == theirs


def test_one_write_per_method_and_no_frame_max_buffer() -> None:
    """A method and its content go out in one write; the writer holds no
    buffer the size of ``frame_max``."""
    sink = _Sink()
    write = lean_frame_writer(_Connection(131072), sink)
    write(1, 1, (60, 40), b"\x00\x00\x00\x00\x00", _message(b"body", delivery_mode=2))
    assert len(sink.writes) == 1
    cells = [cell.cell_contents for cell in write.__closure__ or ()]
    assert not any(isinstance(cell, (bytearray, memoryview)) for cell in cells)


def test_threads_sharing_a_connection_never_interleave_frames(channel_and_queue: Any) -> None:
    """Threads publishing on one connection at once: the broker receives every
    message whole (interleaved frames would close the connection)."""
    conn, channel, queue = channel_and_queue
    bodies = [bytes([65 + n]) * (1000 + 5000 * n) for n in range(8)]

    # basic.publish written straight by the connection's frame writer (py-amqp's
    # basic_publish may also read the socket, which only one thread may do).
    arguments = dumps("Bssbb", (0, "", queue, False, False))
    write = conn.connection.frame_writer

    def publish(body: bytes) -> None:
        for _ in range(25):
            write(1, channel.channel_id, spec.Basic.Publish, arguments, amqp.Message(body))

    threads = [threading.Thread(target=publish, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received: list[bytes] = []
    while True:
        message = channel.basic_get(queue, no_ack=True)
        if message is None:
            break
        received.append(bytes(message.body))
    assert sorted(received) == sorted(body for body in bodies for _ in range(25))


def test_corked_frames_go_out_together_and_only_the_corking_threads() -> None:
    """Corked, the thread's frames are held and then sent in one write, in
    order; another thread's frames are not held."""
    sink = _Sink()
    connection = _Connection(131072)
    write = lean_frame_writer(connection, sink)
    ack_1 = (1, 1, (60, 80), b"\x00\x00\x00\x00\x00\x00\x00\x01\x00", None)
    ack_2 = (1, 1, (60, 80), b"\x00\x00\x00\x00\x00\x00\x00\x02\x00", None)
    expected = _written(lean_frame_writer, 131072, *ack_1) + _written(
        lean_frame_writer, 131072, *ack_2
    )
    write.cork()  # type: ignore[attr-defined]
    write(*ack_1)
    other = threading.Thread(target=write, args=ack_2)
    other.start()
    other.join()
    assert sink.writes == [expected[len(expected) // 2 :]]  # the other thread's, at once
    write(*ack_2)
    assert len(sink.writes) == 1
    write.uncork()  # type: ignore[attr-defined]
    assert sink.writes[1:] == [expected]
    write(*ack_1)  # uncorked: straight out
    assert len(sink.writes) == 3


def test_a_corked_connection_sends_what_it_holds_before_it_waits(
    channel_and_queue: Any,
) -> None:
    """A method that waits for its answer, written while corked, goes out before
    the connection reads (else it would wait forever), with what was held."""
    conn, channel, queue = channel_and_queue
    channel.basic_publish(amqp.Message(b"one"), exchange="", routing_key=queue)
    writer = conn.connection.frame_writer
    writer.cork()
    try:
        channel.basic_publish(amqp.Message(b"two"), exchange="", routing_key=queue)
        # queue.declare waits for declare-ok: the frames must be out by then
        # (else this would wait forever).
        channel.queue_declare(queue, passive=True)
    finally:
        writer.uncork()
    bodies: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(bodies) < 2 and time.monotonic() < deadline:
        message = channel.basic_get(queue, no_ack=True)
        if message is None:
            time.sleep(0.01)
        else:
            bodies.append(bytes(message.body))
    assert bodies == [b"one", b"two"]
