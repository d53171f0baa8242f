"""The service the event benchmark runs with ``shimeji run``."""

from shimeji.events import event_handler
from shimeji.rpc import rpc


class Sink:
    """Counts the events it handles."""

    name = "bench_sink"
    handled = 0

    @event_handler("bench_source", "tick")
    def on_tick(self, payload):
        Sink.handled += 1

    @rpc
    def count(self):
        return Sink.handled
