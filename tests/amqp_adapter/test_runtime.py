"""The threaded runtime: waiters, tasks, kills, timers and the pool's bound."""

from __future__ import annotations

import threading
import time

import pytest

from shimeji.amqp_adapter.runtime import ThreadRuntime, ThreadWaiter, WorkerKilled, lend_thread
from shimeji.exceptions import ConfigurationError


@pytest.fixture
def runtime():
    made = ThreadRuntime(4, name="test")
    yield made
    made.close()


def test_waiter_first_outcome_wins():
    """The first of set_result / set_exception wins; later ones are ignored."""
    waiter = ThreadWaiter("x")
    waiter.set_result(1)
    waiter.set_exception(ValueError("late"))
    waiter.set_result(2)
    assert waiter.done and waiter.wait() == 1


def test_waiter_raises_its_exception_to_every_waiter(runtime):
    """Every thread waiting on a waiter gets its exception."""
    waiter = runtime.new_waiter("shared")
    seen = []

    def wait():
        try:
            waiter.wait()
        except KeyError as exc:
            seen.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    waiter.set_exception(KeyError("gone"))
    for thread in threads:
        thread.join(5)
    assert len(seen) == 3


def test_racing_setters_never_fail():
    """A reply and its timeout racing from two threads settle the waiter once."""
    for _ in range(200):
        waiter = ThreadWaiter("race")
        a = threading.Thread(target=waiter.set_result, args=(1,))
        b = threading.Thread(target=waiter.set_exception, args=(TimeoutError(),))
        a.start()
        b.start()
        a.join()
        b.join()
        assert waiter.done


def test_spawn_runs_the_task(runtime):
    """spawn runs the function with its arguments on a pool thread."""
    waiter = runtime.new_waiter("result")
    task = runtime.spawn(lambda a, b: waiter.set_result(a + b), 2, 3, name="add")
    assert waiter.wait() == 5
    deadline = time.monotonic() + 5
    while not task.done and time.monotonic() < deadline:
        time.sleep(0.001)
    assert task.done


def test_a_lent_thread_takes_the_first_task_spawned_on_it(runtime):
    """While a thread is lent, the first task spawned on it waits in the slot for
    that thread to run (or to hand to the pool); later ones go to the pool."""
    ran = []
    slot = []
    lend_thread(slot)
    try:
        first = runtime.spawn(lambda: ran.append(threading.current_thread()), name="first")
        second = runtime.spawn(lambda: ran.append(threading.current_thread()), name="second")
    finally:
        lend_thread(None)
    assert [task for _, task in slot] == [first]
    deadline = time.monotonic() + 5
    while not second.done and time.monotonic() < deadline:
        time.sleep(0.001)
    assert second.done and not first.done and ran[0] is not threading.current_thread()
    first.run()  # what the lending thread does
    assert first.done and ran[1] is threading.current_thread()
    third = runtime.spawn(lambda: None, name="third")  # not lent any more: the pool
    assert [task for _, task in slot] == [first] and third is not first
    submit = slot.pop()[0]
    assert submit.__self__ is runtime._pool


def test_pool_bounds_concurrent_tasks():
    """At most max_threads tasks run at once; the rest wait their turn, in order."""
    runtime = ThreadRuntime(2, name="bounded")
    lock = threading.Lock()
    running, peak, order = [0], [0], []
    done = [runtime.new_waiter(f"t{i}") for i in range(6)]

    def work(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
            order.append(i)
        done[i].set_result(None)

    try:
        for i in range(6):
            runtime.spawn(work, i, name=f"t{i}")
        for waiter in done:
            waiter.wait()
        assert peak[0] == 2
        assert sorted(order) == list(range(6))
    finally:
        runtime.close()


def test_kill_unwinds_a_task_blocked_on_a_waiter(runtime):
    """A killed task blocked in wait() unwinds with WorkerKilled, which except
    Exception does not catch."""
    blocked = runtime.new_waiter("never set")
    outcome = runtime.new_waiter("outcome")
    started = threading.Event()

    def work():
        started.set()
        try:
            blocked.wait()
        except Exception:
            outcome.set_result("caught by except Exception")
        except WorkerKilled:
            outcome.set_result("unwound")
            raise

    task = runtime.spawn(work, name="victim")
    started.wait(5)
    time.sleep(0.05)
    task.kill()
    assert outcome.wait() == "unwound"


def test_kill_interrupts_sleep(runtime):
    """A killed task sleeping on the runtime wakes at once."""
    outcome = runtime.new_waiter("outcome")
    started = threading.Event()

    def work():
        started.set()
        began = time.monotonic()
        try:
            runtime.sleep(30)
        finally:
            outcome.set_result(time.monotonic() - began)

    task = runtime.spawn(work, name="sleeper")
    started.wait(5)
    task.kill()
    assert outcome.wait() < 5


def test_timers_fire_in_order_and_can_be_cancelled(runtime):
    """call_later runs callbacks in deadline order; a cancelled one never runs."""
    fired = []
    done = runtime.new_waiter("last")
    runtime.call_later(0.06, lambda: (fired.append("c"), done.set_result(None)))
    runtime.call_later(0.02, fired.append, "a")
    cancelled = runtime.call_later(0.03, fired.append, "x")
    runtime.call_later(0.04, fired.append, "b")
    cancelled.cancel()
    done.wait()
    assert fired == ["a", "b", "c"]


def test_now_and_ids(runtime):
    """now() is the real clock; new_id() a fresh uuid4."""
    assert abs(runtime.now() - time.time()) < 1
    ids = {runtime.new_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 36 and i[14] == "4" for i in ids)


def test_ids_are_uuid4_text_and_unique_across_batches_threads_and_forks(runtime):
    """Ids are made in batches: each is a uuid4's text form, none repeats across
    batches or threads, and a forked child never hands out its parent's."""
    import os
    import uuid

    made: list[str] = []

    def take() -> None:
        made.extend(runtime.new_id() for _ in range(700))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == len(made) == 2800
    for text in made[:300]:
        value = uuid.UUID(text)
        assert str(value) == text and value.version == 4 and value.variant == uuid.RFC_4122
    runtime.new_id()  # a batch is started: the child must not take from it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        os.write(write, " ".join(runtime.new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [runtime.new_id() for _ in range(300)]
    assert len(child) == 50 and not set(child) & set(parent)


def test_max_threads_is_checked():
    """A pool of no threads is refused with the value shown."""
    with pytest.raises(ConfigurationError, match="max_threads must be a whole number >= 1, got 0"):
        ThreadRuntime(0)
