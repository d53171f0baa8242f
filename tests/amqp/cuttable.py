"""A TCP proxy in front of the broker whose connections a test can cut."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from urllib.parse import urlsplit

__all__ = ["CuttableProxy"]


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the broker; ``cut()`` drops every connection
    and refuses new ones (the broker is unreachable) until ``restore()``."""

    def __init__(self, broker_uri: str) -> None:
        parts = urlsplit(broker_uri)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(50)
        self.port = self._server.getsockname()[1]
        self.uri = broker_uri.replace(
            parts.netloc, f"{parts.username}:{parts.password}@127.0.0.1:{self.port}"
        )
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._accepting = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._accepting:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, one: socket.socket, other: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select.select([one, other], [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        raise OSError("closed")
                    (other if sock is one else one).sendall(data)
        except OSError:
            self._close(one, other)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        self._accepting = False
        with self._lock:
            sockets, self._sockets = self._sockets, []
        self._close(*sockets)

    def restore(self) -> None:
        self._accepting = True

    def close(self) -> None:
        self.cut()
        self._close(self._server)
