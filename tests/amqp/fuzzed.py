"""The service the hostile-message tests attack (run by ``shimeji run``)."""

from __future__ import annotations

from shimeji.rpc import rpc

__all__ = ["Fuzzed"]


class Fuzzed:
    name = "fuzzed"

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def echo(self, value=None):
        return value

    @rpc
    def method(self, *args, **kwargs):
        return len(args) + len(kwargs)
