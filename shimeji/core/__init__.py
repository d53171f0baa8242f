"""shimeji's rules of RPC: containers, workers, the wire protocol, serialization,
configuration and exceptions. Nothing here does I/O; transports and runtimes
are handed in (see ``transport`` and ``runtime``)."""

__all__: list[str] = []
