"""``wait_for_call`` and ``WaitResult``, test by test after nameko's
``test/testing/test_waiting.py``.

nameko's use cases count in a thread of their own; here they run twice: in
threads with no simulation running (real time, as nameko's), and in a
service on the simulator, where the wait runs the simulation in virtual
time.
"""

from __future__ import annotations

import contextlib
import sys
import time
from threading import Thread
from unittest.mock import ANY, Mock, call, patch

import pytest

from shimeji.testing.waiting import WaitResult, wait_for_call
from shimeji.timer import timer

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


@pytest.fixture
def forever():
    """True until the test ends: threads counting for ever stop then."""
    flag = [True]
    yield flag
    flag.pop()


@pytest.fixture(params=["thread", "simulator"])
def run_forever(request, forever):
    """Calls ``step()`` again and again: in a real thread with no simulation
    running, or from a service's timer every virtual millisecond."""

    def start(step):
        if request.param == "thread":

            def loop():
                while forever:
                    step()
                    time.sleep(0)

            Thread(target=loop, daemon=True).start()
            return

        class Stepper:
            name = "stepper"

            @timer(0.001)
            def tick(self):
                step()

        request.getfixturevalue("container_factory")(Stepper).start()

    return start


class Counter:
    value = 0

    def count(self):
        self.value += 1
        return self.value


class TestPatchWaitUseCases:
    # follows nameko test/testing/test_waiting.py::TestPatchWaitUseCases::test_wait_for_specific_result
    def test_wait_for_specific_result(self, run_forever):
        counter = Counter()

        def cb(args, kwargs, res, exc_info):
            return res == 10

        with wait_for_call(counter, "count", callback=cb) as result:
            run_forever(counter.count)

        assert result.get() == 10

    # follows nameko test/testing/test_waiting.py::TestPatchWaitUseCases::test_wait_until_called_with_argument
    def test_wait_until_called_with_argument(self, run_forever):
        class CounterWithSet:
            value = 0

            def set(self, value):
                self.value = value
                return self.value

        counter = CounterWithSet()

        def cb(args, kwargs, res, exc_info):
            return args == (10,)

        with wait_for_call(counter, "set", callback=cb) as result:
            run_forever(lambda: counter.set(counter.value + 1))

        assert result.get() == 10

    # follows nameko test/testing/test_waiting.py::TestPatchWaitUseCases::test_wait_until_raises
    def test_wait_until_raises(self, run_forever):
        class LimitExceeded(Exception):
            pass

        class CounterWithLimit(Counter):
            limit = 10

            def count(self):
                value = super().count()
                if value >= self.limit:
                    raise LimitExceeded(self.limit)
                return value

        counter = CounterWithLimit()

        def step():
            with contextlib.suppress(LimitExceeded):
                counter.count()

        def cb(args, kwargs, res, exc_info):
            return exc_info is not None

        with wait_for_call(counter, "count", callback=cb) as result:
            run_forever(step)

        with pytest.raises(LimitExceeded):
            result.get()

    # follows nameko test/testing/test_waiting.py::TestPatchWaitUseCases::test_wait_until_stops_raising
    def test_wait_until_stops_raising(self, run_forever):
        class ThresholdNotReached(Exception):
            pass

        class CounterWithThreshold(Counter):
            threshold = 10

            def count(self):
                value = super().count()
                if value < self.threshold:
                    raise ThresholdNotReached(self.threshold)
                return value

        counter = CounterWithThreshold()

        def step():
            with contextlib.suppress(ThresholdNotReached):
                counter.count()

        def cb(args, kwargs, res, exc_info):
            return exc_info is None

        with wait_for_call(counter, "count", callback=cb) as result:
            run_forever(step)

        assert result.get() == 10


class Echo:
    def proxy(self, arg):
        return self.upper(arg)

    def upper(self, arg):
        return arg.upper()

    def nothing(self):
        return None


class EchoError(Exception):
    pass


class TestPatchWait:
    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_direct
    def test_direct(self):
        echo = Echo()
        with wait_for_call(echo, "upper"):
            assert echo.upper("hello") == "HELLO"

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_indirect
    def test_indirect(self):
        echo = Echo()
        with wait_for_call(echo, "upper"):
            assert echo.proxy("hello") == "HELLO"

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_patch_class
    def test_patch_class(self):
        class Local(Echo):
            pass

        echo = Local()
        with wait_for_call(Local, "upper"):
            assert echo.upper("hello") == "HELLO"

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_result
    def test_result(self):
        echo = Echo()
        with wait_for_call(echo, "upper") as result:
            res = echo.upper("hello")
        assert result.get() == res

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_result_not_ready
    def test_result_not_ready(self):
        echo = Echo()
        with wait_for_call(echo, "upper") as result:
            with pytest.raises(result.NotReady):
                result.get()
            res = echo.upper("hello")
        assert result.get() == res

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_result_is_none
    def test_result_is_none(self):
        echo = Echo()
        with wait_for_call(echo, "nothing") as result:
            res = echo.nothing()
        assert res is None
        assert result.get() is None
        assert result.has_result is True

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_wrapped_method_raises
    def test_wrapped_method_raises(self):
        class Failing:
            def error(self):
                raise EchoError("error!")

        failing = Failing()
        with wait_for_call(failing, "error"), pytest.raises(EchoError):
            failing.error()

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_result_get_raises
    def test_result_get_raises(self):
        class Failing:
            def error(self):
                raise EchoError("error!")

        failing = Failing()
        with wait_for_call(failing, "error") as result:
            with pytest.raises(EchoError):
                failing.error()
            with pytest.raises(EchoError):
                result.get()

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_callback
    def test_callback(self):
        echo = Echo()
        callback = Mock(return_value=True)
        with wait_for_call(echo, "upper", callback):
            res = echo.upper("hello")
            assert res == "HELLO"
        assert callback.call_args_list == [call(("hello",), {}, res, None)]

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_callback_multiple_calls
    def test_callback_multiple_calls(self):
        class Numbered:
            count = 0

            def upper(self, arg):
                self.count += 1
                return f"{arg.upper()}-{self.count}"

        echo = Numbered()
        callback = Mock(side_effect=[False, True])
        with wait_for_call(echo, "upper", callback) as result:
            res1 = echo.upper("hello")
            assert res1 == "HELLO-1"
            res2 = echo.upper("hello")
            assert res2 == "HELLO-2"
        assert callback.call_args_list == [
            call(("hello",), {}, res1, None),
            call(("hello",), {}, res2, None),
        ]
        assert result.get() == res2

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_callback_with_exception
    def test_callback_with_exception(self):
        exc = EchoError("error!")

        class Failing:
            def error(self):
                raise exc

        failing = Failing()
        callback = Mock(return_value=True)
        with wait_for_call(failing, "error", callback), pytest.raises(EchoError):
            failing.error()
        assert callback.call_args_list == [call((), {}, None, (EchoError, exc, ANY))]

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_callback_with_exception_multiple_calls
    def test_callback_with_exception_multiple_calls(self):
        exc = EchoError("error!")

        class Failing:
            def error(self):
                raise exc

        failing = Failing()
        callback = Mock(side_effect=[False, True])
        with wait_for_call(failing, "error", callback):
            with pytest.raises(EchoError):
                failing.error()
            with pytest.raises(EchoError):
                failing.error()
        assert callback.call_args_list == [
            call((), {}, None, (EchoError, exc, ANY)),
            call((), {}, None, (EchoError, exc, ANY)),
        ]

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_with_new_thread
    def test_with_new_thread(self):
        class Threaded(Echo):
            def proxy(self, arg):
                Thread(target=self.upper, args=(arg,)).start()

        echo = Threaded()
        callback = Mock(return_value=True)
        with wait_for_call(echo, "upper", callback):
            assert echo.proxy("hello") is None
        assert callback.call_args_list == [call(("hello",), {}, "HELLO", None)]

    # follows nameko test/testing/test_waiting.py::TestPatchWait::test_target_as_mock
    def test_target_as_mock(self):
        class Klass:
            def __init__(self):
                self.attr = "value"

            def method(self):
                return self.attr.upper()

        instance = Klass()
        with patch.object(instance, "attr") as patched_attr:
            with wait_for_call(patched_attr, "upper"):
                instance.method()
            assert patched_attr.upper.called
            assert instance.attr.upper.called


@pytest.fixture
def exc_info():
    try:
        raise EchoError("whoops")
    except EchoError:
        return sys.exc_info()


class TestWaitResult:
    # follows nameko test/testing/test_waiting.py::TestWaitResult::test_has_result
    def test_has_result(self):
        result = WaitResult()
        assert result.has_result is False
        result.send("ok", None)
        assert result.has_result is True

    # follows nameko test/testing/test_waiting.py::TestWaitResult::test_has_exception
    def test_has_exception(self, exc_info):
        result = WaitResult()
        assert result.has_result is False
        result.send(None, exc_info)
        assert result.has_result is True

    # follows nameko test/testing/test_waiting.py::TestWaitResult::test_send_multiple_times
    def test_send_multiple_times(self):
        result = WaitResult()
        result.send(1, None)
        result.send(2, None)
        assert result.get() == 1

    # follows nameko test/testing/test_waiting.py::TestWaitResult::test_get_result_multiple_times
    def test_get_result_multiple_times(self):
        result = WaitResult()
        result.send(1, None)
        assert result.get() == 1
        assert result.get() == 1

    # follows nameko test/testing/test_waiting.py::TestWaitResult::test_get_raises
    def test_get_raises(self, exc_info):
        result = WaitResult()
        result.send(1, exc_info)
        with pytest.raises(EchoError):
            result.get()
