"""Connections read the socket in chunks (``ChunkedTCPTransport``), on a real broker.

A chunk may hold frames beyond the one asked for; they wait in the
transport, where ``select`` cannot see them. These tests show such frames
are there to be found (``frame_ready``), and that a consumer whose messages
arrive in bursts, and whose connection also makes round trips for commands,
receives every message.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from shimeji.amqp_adapter import AmqpTransport
from shimeji.amqp_adapter.frames import ChunkedTCPTransport, frame_ready
from shimeji.amqp_adapter.wire import connection_for
from shimeji.config import Settings
from shimeji.core.transport import Message


def test_frames_read_with_another_wait_in_the_transport(amqp_uri):
    """One read takes several deliveries; the frames it did not need are ready."""
    settings = Settings.from_config({"AMQP_URI": amqp_uri})
    queue = f"chunked-{uuid.uuid4().hex}"
    conn = connection_for(settings)
    conn.ensure_connection(max_retries=1)
    try:
        transport = conn.connection.transport
        assert isinstance(transport, ChunkedTCPTransport)
        channel = conn.channel()
        channel.queue_declare(queue, auto_delete=True)
        for number in range(20):
            channel.basic_publish(
                channel.prepare_message(str(number).encode()), exchange="", routing_key=queue
            )
        received: list[bytes] = []
        channel.basic_consume(queue, callback=lambda m: received.append(m.body), no_ack=True)
        while not received:
            conn.drain_events(timeout=5)
        # Twenty deliveries were sent together: the first read took more than
        # the first delivery, and what it kept is whole frames.
        while len(received) < 20:
            if not frame_ready(transport):
                conn.drain_events(timeout=5)  # the rest was not in the first chunk
                continue
            conn.drain_events(timeout=0)
        assert received == [str(number).encode() for number in range(20)]
        assert not frame_ready(transport)
    finally:
        conn.release()


def test_frame_ready_needs_a_whole_frame():
    """Part of a frame is not a frame: the reader must wait for the rest on the socket."""
    transport = ChunkedTCPTransport.__new__(ChunkedTCPTransport)
    frame = b"\x03\x00\x01" + (5).to_bytes(4, "big") + b"hello\xce"
    for cut in range(len(frame)):
        transport._read_buffer = frame[:cut]
        assert not transport.frame_ready()
    transport._read_buffer = frame
    assert transport.frame_ready()
    transport._read_buffer = frame + frame[:3]
    assert transport.frame_ready()


@pytest.mark.parametrize("burst", [1, 50, 400])
def test_every_message_of_a_burst_is_received(amqp_uri, burst):
    """Bursts of messages reach a consumer whose connection also runs commands
    (settling each delivery) while they arrive: none waits unseen in the transport."""
    settings = Settings.from_config({"AMQP_URI": amqp_uri})
    queue = f"chunked-burst-{uuid.uuid4().hex}"
    transport = AmqpTransport(settings, name="chunked")
    try:
        transport.declare_queue(queue, durable=False, auto_delete=True)
        seen: list[bytes] = []
        done = threading.Event()

        def on_delivery(delivery):
            seen.append(delivery.message.body)
            delivery.ack()
            if len(seen) == 3 * burst:
                done.set()

        transport.consume(queue, on_delivery, prefetch=10, label="chunked")
        for round_number in range(3):
            for number in range(burst):
                body = f"{round_number}-{number}".encode()
                transport.publish(Message(body, routing_key=queue, exchange=""), mandatory=True)
        # Not a measure of speed: a message stuck in the transport would wait
        # here for ever, or until the consumer loop's next tick.
        assert done.wait(30), f"received {len(seen)} of {3 * burst}"
        expected = [f"{r}-{n}".encode() for r in range(3) for n in range(burst)]
        assert seen == expected
    finally:
        transport.close()
