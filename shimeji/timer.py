"""Timers: ``@timer(interval)`` runs a method every ``interval`` seconds.

    class Reconciler:
        name = "inventory_reconciler"

        @timer(interval=30)
        def reconcile(self):
            ...

With ``eager=True`` it also runs as the replica starts. A run that outlasts
its interval is never overlapped: the next starts when it ends.
"""

from shimeji.core.timer import Timer, timer

__all__ = ["Timer", "timer"]
