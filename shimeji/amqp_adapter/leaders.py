"""Leader and followers: the consumer loop is a role passed between threads.

The thread that reads the consumer connection (the *leader*) hands it, when
a delivery spawned a worker (see ``lend_thread`` in ``runtime.py``), to a
thread standing by, and runs that worker itself, then stands by in turn. A
request thus reaches its worker without waiting for another thread to wake,
and a worker that blocks never stops the connection from being read.

Each thread waits on a gate of its own (a lock held until it is to lead);
at most one thread leads and one more stands by, and a thread that finds
another standing by when its worker is done leaves.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from shimeji.amqp_adapter.runtime import ThreadTask

__all__ = ["LeaderFollowers"]


class LeaderFollowers:
    """Threads that take turns at ``lead()``, one at a time.

    ``lead()`` runs on the leader and returns None when the role ends (the
    thread then ends too), or a task: it has then handed the role over
    (``hand_over``), and the thread runs the task before it stands by.
    Threads are named ``<name>-1``, ``<name>-2``...
    """

    def __init__(self, lead: Callable[[], ThreadTask | None], name: str) -> None:
        self._lead = lead
        self._name = name
        self._lock = threading.Lock()
        self._threads = itertools.count(1)
        self._dismissed = False
        #: the thread standing by and its gate, or None (read by the leader)
        self.standby: tuple[threading.Thread, threading.Lock] | None = None
        #: the thread that leads now (it changes as workers start)
        self.leader: threading.Thread
        self.leader, self._first_gate = self._new_thread()

    def _new_thread(self) -> tuple[threading.Thread, threading.Lock]:
        gate = threading.Lock()
        gate.acquire()
        thread = threading.Thread(
            target=self._follow,
            args=(gate,),
            name=f"{self._name}-{next(self._threads)}",
            daemon=True,
        )
        return thread, gate

    def start(self) -> None:
        """Start the first leader, and a thread standing by."""
        self.leader.start()
        self._first_gate.release()
        standby = self._new_thread()
        standby[0].start()
        with self._lock:
            if not self._dismissed:
                self.standby = standby
                return
        standby[1].release()  # dismissed already: it leaves

    def _follow(self, gate: threading.Lock) -> None:
        me = threading.current_thread()
        while True:
            gate.acquire()  # released when this thread is to lead
            if self.leader is not me:
                return  # dismissed while standing by
            task = self._lead()
            if task is None:
                return  # the role ended
            task.run()
            # The gate is locked again (this thread took it to lead): stand by on it.
            with self._lock:
                if self.standby is not None or self._dismissed:
                    return
                self.standby = (me, gate)

    def hand_over(self) -> None:
        """Give the role to the thread standing by, or to a new one (on the leader)."""
        with self._lock:
            standby, self.standby = self.standby, None
        if standby is None:
            standby = self._new_thread()
            standby[0].start()
        thread, gate = standby
        self.leader = thread
        gate.release()

    def dismiss(self) -> None:
        """No thread stands by from now on: the one standing by leaves, and so
        does each thread whose worker ends. (The leader leads on until
        ``lead()`` returns.)"""
        with self._lock:
            self._dismissed = True
            standby, self.standby = self.standby, None
        if standby is not None:
            standby[1].release()  # not the leader: it leaves
