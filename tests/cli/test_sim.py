"""``shimeji sim``: running a module on the simulator from the command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shimeji.cli import main
from shimeji.cli.loading import parse_call
from shimeji.cli.sim import Progress
from shimeji.core.events import KINDS
from shimeji.testing.golden import assert_golden

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
#: What `shimeji sim` prints by default (the summary), per example.
SIM_GOLDEN = GOLDEN / "sim"
EXAMPLES = (
    "calculator",
    "user_score",
    "orders",
    "order_errors",
    "audit",
    "timeouts",
    "notifications",
    "gateway",
)


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["sim", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_an_example_alone_prints_its_timeline(capsys):
    """`shimeji sim examples/orders.py` prints the order-processing timeline, exit 0:
    within 100 columns, routine events folded away, a legend, and the scenario's
    call with its whole result at the end."""
    status, out, err = run("examples/orders.py", capsys=capsys)
    assert (status, err) == (0, "")
    assert_golden(out, SIM_GOLDEN / "orders.txt")
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    routine = [name for name, kind in KINDS.items() if kind.routine]
    assert routine and not any(f"  {name}  " in line for line in lines for name in routine)
    assert "16 routine events not shown: queue_deleted, replica_start, replica_stop." in out
    assert "--all shows every event." in out and "--wide shows every column, in full." in out
    legend = lines.index(
        "Legend. time: virtual seconds; corr: the correlation id a request and its reply share."
    )
    assert lines[legend + 1] == "  publish       " + KINDS["publish"].about
    results = lines.index("Calls made by clients, and what each returned, in full:")
    assert lines[results + 1] == "c1  order_service.process_order_parallel("
    assert '         "email_sent": true' in lines[results:]
    for step in (
        "process_order_parallel",
        "payment_service-1",
        "inventory_service-1",
        "email_service-1",
    ):
        assert step in out


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_summary_of_each_example(name, capsys):
    """The default output of `shimeji sim examples/<name>.py` is kept in
    tests/golden/sim (regenerate with SHIMEJI_UPDATE_GOLDEN=1), and fits 100 columns."""
    status, out, _ = run(f"examples/{name}.py", capsys=capsys)
    assert status == 0
    assert_golden(out, SIM_GOLDEN / f"{name}.txt")
    assert max(len(line) for line in out.splitlines()) <= 100


def test_all_and_wide_show_everything(capsys):
    """--all --wide is the full timeline: every event, every column, nothing cut."""
    status, out, _ = run("examples/orders.py", "--all", "--wide", capsys=capsys)
    assert status == 0
    timeline = out.split("\n\n")[0].splitlines()
    full = (GOLDEN / "orders.txt").read_text().splitlines()
    assert len(timeline) == len(full)  # the header and every event
    assert [line[:120] for line in timeline] == [line[:120] for line in full]
    assert any(len(line) > 200 for line in timeline)  # the reply, whole
    (last,) = [line for line in timeline if "reply from order_service-1:" in line]
    assert last.endswith('"email_sent": true}')
    assert "not shown" not in out
    assert "call: the call id of the worker that took the step" in " ".join(out.split())


def test_the_summary_is_as_wide_as_the_terminal(capsys, monkeypatch):
    """On a terminal, the summary takes the terminal's width; on a very narrow one,
    its last column keeps a readable minimum."""
    import os
    import shutil

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    for columns in (80, 120, 40):
        monkeypatch.setattr(
            shutil, "get_terminal_size", lambda *a, c=columns: os.terminal_size((c, 24))
        )
        status, out, _ = run("examples/orders.py", capsys=capsys)
        assert status == 0
        timeline = [line for line in out.splitlines() if line[:1] in ("0", " ")]
        widest = max(len(line) for line in timeline)
        if columns >= 80:
            assert widest == columns
        else:
            assert widest < 80 and all(line.endswith("…") or len(line) < 80 for line in timeline)


def test_the_command_is_installed_and_exits_0():
    """The console entry point runs as a process."""
    done = subprocess.run(
        [sys.executable, "-m", "shimeji", "sim", "examples/calculator.py", "--format", "jsonl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no progress bar, and no service logs
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))


def test_a_dotted_module_name_works_too(capsys):
    """MODULE may be a module importable from the current directory."""
    status, out, _ = run("examples.orders", capsys=capsys)
    assert status == 0 and out == (SIM_GOLDEN / "orders.txt").read_text()


@pytest.mark.parametrize("format", ["text", "mermaid", "jsonl", "perfetto", "html"])
def test_every_format_can_be_written_to_a_file(format, tmp_path, capsys):
    """--out writes the view and says so on stdout."""
    target = tmp_path / f"trace.{format}"
    status, out, _ = run(
        "examples/user_score.py", "--format", format, "--out", str(target), capsys=capsys
    )
    assert status == 0
    events = len((GOLDEN / "user_score.txt").read_text().splitlines()) - 1
    opened = " (open it in a browser)" if format == "html" else ""
    assert out == f"wrote the {format} view of {events} events to {target}{opened}\n"
    text = target.read_text()
    assert {
        "text": "    time  replica",
        "mermaid": "sequenceDiagram\n",
        "jsonl": '{"seq": 0,',
        "perfetto": '{"displayTimeUnit"',
        "html": "<!DOCTYPE html>",
    }[format] in text[:40]


def test_a_single_call_uses_every_service_of_the_module(capsys):
    """--call adds the module's services and reports what the call returned."""
    status, out, err = run(
        "examples/user_score.py",
        "--call",
        "user_service.calculate_user_score('u9', 2, multiplier=-4)",
        capsys=capsys,
    )
    assert status == 0
    assert err == (
        "user_service.calculate_user_score('u9', 2, multiplier=-4) returned "
        "{'user_id': 'u9', 'score': -8}\n"
    )
    assert "calculator-1    deliver" in out and "user_service-1  deliver" in out
    assert 'c1  user_service.calculate_user_score("u9", 2, multiplier=-4)\n    -> {' in out


def test_a_failing_call_is_shown_and_exits_1(capsys):
    """A call that ran and raised remotely is shown, trace and all, with exit status 1."""
    status, out, err = run(
        "examples/calculator.py",
        "--call",
        "calculator.divide(1, 0)",
        "--format",
        "mermaid",
        capsys=capsys,
    )
    assert status == 1
    assert err == "calculator.divide(1, 0) raised RemoteError: ValueError Division by zero\n"
    assert "P1-->>P0: ValueError: Division by zero" in out


def test_replicas_override_what_the_scenario_asks(capsys):
    """--replicas calculator=4 gives the scenario four calculators instead of two."""
    status, out, _ = run(
        "examples/user_score.py", "--replicas", "calculator=4", "--all", capsys=capsys
    )
    assert status == 0
    assert "calculator-4    replica_start" in out
    assert "calculator-5" not in out


def test_seed_and_raw_ids(capsys):
    """--ids raw shows the UUIDs drawn from --seed; two seeds give two sets of ids."""
    raw = ("examples/calculator.py", "--ids", "raw", "--wide")
    _, seed_0, _ = run(*raw, capsys=capsys)
    _, seed_1, _ = run(*raw, "--seed", "1", capsys=capsys)
    _, again_1, _ = run(*raw, "--seed", "1", capsys=capsys)
    assert seed_0 != seed_1 and seed_1 == again_1
    assert "standalone_rpc_proxy.call.1 " not in seed_0
    assert "standalone_rpc_proxy.call.e3e70682 " in seed_0


def test_a_fault_plan_as_python_or_as_a_file(tmp_path, capsys):
    """--faults takes the Python a plan prints, inline or in a file."""
    plan = 'FaultPlan([CrashDuring(service="calculator", method="multiply")])'
    status, inline, _ = run("examples/user_score.py", "--faults", plan, capsys=capsys)
    assert status == 0
    assert "fault_crash" in inline and "(redelivered)" in inline
    assert_golden(inline, SIM_GOLDEN / "crash_redelivery.txt")
    path = tmp_path / "plan.py"
    path.write_text(plan + "\n")
    status, from_file, _ = run("examples/user_score.py", "--faults", str(path), capsys=capsys)
    assert (status, from_file) == (0, inline)


def write(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(code)
    return str(path)


SERVICE = textwrap.dedent(
    """
    from shimeji.rpc import rpc

    class Echo:
        name = "echo"

        @rpc
        def say(self, text):
            return text
    """
)
RAISES = SERVICE + "\ndef scenario(cluster):\n    cluster.add_service(Echo)\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["examples/nope.py"], "no such file: examples/nope.py"),
        (["nope.module"], "no module named 'nope.module'; give a file path"),
        (["examples/config.yaml"], "examples/config.yaml is not a Python file"),
        (["no/such/dir/"], "no such file: no/such/dir/"),
        (
            ["examples/calculator.py", "--scenario", "other"],
            "examples/calculator.py defines no function 'other'",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.divide(1, x)"],
            "invalid --call 'calculator.divide(1, x)': argument 2 'x' is not a literal",
        ),
        (
            ["examples/calculator.py", "--call", "calculator"],
            "invalid --call 'calculator': expected service.method(arguments)",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(1,"],
            "invalid --call 'calculator.add(1,': not a Python call expression",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(*x)"],
            "invalid --call 'calculator.add(*x)': *x is not allowed",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(**x)"],
            "invalid --call 'calculator.add(**x)': **x is not allowed",
        ),
        (
            ["examples/calculator.py", "--call", "f(1).add(2)"],
            "invalid --call 'f(1).add(2)': 'f(1)' is not a service name",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(__import__('os'))"],
            "argument 1 \"__import__('os')\" is not a literal",
        ),
        (
            ["examples/calculator.py", "--replicas", "calculator"],
            "invalid --replicas 'calculator': expected SERVICE=N",
        ),
        (
            ["examples/calculator.py", "--replicas", "calculator=0"],
            "invalid --replicas 'calculator=0': the number of replicas must be a whole number >= 1",
        ),
        (["examples/calculator.py", "--replicas", "a b=2"], "invalid --replicas 'a b=2': service"),
        (
            ["examples/calculator.py", "--replicas", "x=1", "--replicas", "x=2"],
            "--replicas names 'x' twice",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(1, 2)", "--replicas", "calc=2"],
            "--replicas names 'calc', which examples/calculator.py does not define (did you "
            "mean 'calculator'?); its services: calculator",
        ),
        (
            ["examples/calculator.py", "--replicas", "ghost=2"],
            "--replicas names 'ghost', which examples/calculator.py does not define or import; "
            "its services: calculator",
        ),
        (
            ["examples/orders.py", "--replicas", "paymentservice=2"],
            "--replicas names 'paymentservice', which examples/orders.py does not define or "
            "import (did you mean 'payment_service'?)",
        ),
        (
            ["examples/calculator.py", "--faults", "Explode()"],
            "invalid fault plan (--faults): fault plan may only call",
        ),
        (
            ["examples/calculator.py", "--faults", "missing_plan.py"],
            "no such fault plan file: missing_plan.py",
        ),
        (
            ["examples/calculator.py", "--config", "missing.yaml"],
            "no such configuration file: missing.yaml",
        ),
        (
            ["examples/calculator.py", "--out", "no/such/dir/trace.txt"],
            "cannot write no/such/dir/trace.txt: no directory no/such/dir",
        ),
        (["examples/calculator.py", "--out", "examples"], "cannot write examples: it is a"),
        (["examples/calculator.py", "--faults", "examples"], "--faults examples is a directory"),
        (["examples/calculator.py", "--config", "examples"], "configuration examples is a dir"),
        (
            [
                "examples/calculator.py",
                "--call",
                "calculator.add(1, 2)",
                "--faults",
                "Crash(replica='calculator')",
            ],
            "the fault plan (--faults) can never fire: Crash(replica='calculator') names "
            "replica 'calculator', which the cluster does not have (did you mean "
            "'calculator-1'?); it has: calculator-1",
        ),
        (
            ["examples/orders.py", "--faults", 'Drop(service="paymnt_service")'],
            "the fault plan (--faults) can never fire: Drop(service='paymnt_service') names "
            "service 'paymnt_service', which the cluster does not run (did you mean "
            "'payment_service'?); it runs: order_service, payment_service,",
        ),
        (
            [
                "examples/user_score.py",
                "--faults",
                "CrashDuring(service='calculator', method='mul')",
            ],
            "names method 'mul', which calculator does not have (did you mean 'multiply'?); "
            "its methods: add, divide, multiply",
        ),
        (
            # The scenario decides how many replicas: checked at its first call.
            ["examples/user_score.py", "--faults", "Crash(replica='calculator-5')"],
            "the fault plan (--faults) can never fire: Crash(replica='calculator-5') names "
            "replica 'calculator-5', which the cluster does not have (did you mean "
            "'calculator-2'?); it has: calculator-1, calculator-2, user_service-1",
        ),
        (
            ["examples/calculator.py", "--call", "calculater.add(1, 2)"],
            "--call names service 'calculater', which examples/calculator.py does not define "
            "(did you mean 'calculator'?); its services: calculator",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.multipy(6, 7)"],
            "--call names method 'multipy', which calculator does not have (did you mean "
            "'multiply'?); its methods: add, divide, multiply",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.multiply(1, 2, 3, c=4, d=5)"],
            "--call calculator.multiply(1, 2, 3, c=4, d=5) does not fit "
            "calculator.multiply(a, b): 3 positional arguments given, and it takes 2; "
            "unexpected keyword arguments 'c', 'd'",
        ),
        (
            [
                "examples/user_score.py",
                "--call",
                "user_service.calculate_user_score('u', 1, multiplyer=2)",
            ],
            "--call user_service.calculate_user_score('u', 1, multiplyer=2) does not fit "
            "user_service.calculate_user_score(user_id, base_score, multiplier): unexpected "
            "keyword argument 'multiplyer' (did you mean 'multiplier'?); missing argument "
            "'multiplier'",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.multiply()"],
            "--call calculator.multiply() does not fit calculator.multiply(a, b): missing "
            "arguments 'a', 'b'",
        ),
        (
            [
                "examples/user_score.py",
                "--call",
                "user_service.calculate_user_score('u9', 2, base_score=None)",
            ],
            "does not fit user_service.calculate_user_score(user_id, base_score, multiplier): "
            "'base_score' given twice, by position and by name; missing argument 'multiplier'",
        ),
        (
            ["examples/calculator.py", "--format", "mermaid", "--wide"],
            "--wide applies to --format text only",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
    """Each mistake is one precise line on stderr, exit status 2, no traceback, and
    nothing on stdout: what could never work is refused before anything runs."""
    status, out, err = run(*argv, capsys=capsys)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("shimeji sim: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("code", "argv", "message"),
    [
        (
            "import not_a_module_anywhere\n",
            [],
            "importing {path} failed: ModuleNotFoundError: No module named 'not_a_module_anywhere'",
        ),
        ("def broken(:\n", [], "{path} has a syntax error at {path}:1"),
        (
            "raise RuntimeError('boom at import')\n",
            [],
            "importing {path} failed: RuntimeError: boom at import (at {path}:1)",
        ),
        ("X = 1\n", [], "no services found in {path} and no scenario() function"),
        ("X = 1\n", ["--call", "echo.say('hi')"], "no services found in {path}"),
        (
            SERVICE,
            [],
            "{path} has no scenario() function; add `def scenario(cluster): ...` or "
            "make one call with --call, e.g. --call 'echo.say(...)'",
        ),
        (
            SERVICE + "\ndef scenario(cluster):\n    pass\n",
            [],
            "no services: the scenario of {path} added none",
        ),
        (SERVICE + "\nscenario = 3\n", [], "{path}: scenario is not a function"),
        (
            RAISES + "    raise ValueError('the scenario\\nfails')\n",
            [],
            "scenario scenario() raised ValueError: the scenario fails (at {path}:13)",
        ),
        (
            RAISES + "    cluster.rpc.echo.say(1, 2)\n",
            [],
            "scenario scenario() raised IncorrectSignature: say(text): too many positional "
            "arguments (at {path}:13)",
        ),
    ],
)
def test_problems_in_the_module_are_one_line(code, argv, message, tmp_path, capsys):
    """Import errors, missing services: one line, status 2; a scenario that ran and
    raised: one line too, status 1."""
    path = write(tmp_path, "mod_under_test.py", code)
    sys.modules.pop("mod_under_test", None)
    status, _, err = run(path, *argv, capsys=capsys)
    sys.modules.pop("mod_under_test", None)
    assert status == (1 if "raised" in message else 2)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message.format(path=path) in err


def test_a_scenario_that_raises_still_shows_its_trace(tmp_path, capsys):
    """The trace up to the failure is printed before the error line."""
    code = RAISES + '    cluster.rpc.echo.say("before")\n    raise KeyError("after")\n'
    path = write(tmp_path, "mod_raises.py", code)
    sys.modules.pop("mod_raises", None)
    status, out, err = run(path, capsys=capsys)
    assert status == 1
    assert 'say("before")' in out
    assert "raised KeyError: 'after'" in err


def test_parse_call_reads_literals_only():
    """Arguments are literals, read without evaluating anything."""
    call = parse_call("a.b.method(1, -2.5, 'x', [1, (2, 3)], {'k': None}, flag=True)")
    assert (call.service, call.method) == ("a.b", "method")
    assert call.args == (1, -2.5, "x", [1, (2, 3)], {"k": None})
    assert call.kwargs == {"flag": True}


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_counts_calls_and_clears_itself():
    """The bar shows answered/made calls and events, and erases itself at the end."""
    from shimeji.core.events import Event
    from shimeji.core.transport import Message

    stream = FakeTerminal()
    progress = Progress(stream, delay=0.0, interval=0.0)
    request = Message(b"{}", "a.b", reply_to="r", correlation_id="c")
    reply = Message(b"{}", "r", correlation_id="c")
    for _ in range(128):
        progress.emit(Event(kind="publish", replica="client", message=request))
        progress.emit(Event(kind="deliver", replica="client", message=reply))
    assert progress.line().startswith("[########################] 128/128 calls answered")
    assert "256 events" in stream.getvalue()
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    """Captured stderr is not a terminal: nothing but errors goes there."""
    status, _, err = run("examples/orders.py", capsys=capsys)
    assert status == 0 and err == ""


def test_a_stalled_scenario_says_what_waits_line_by_line(capsys):
    """A stall is a short story, one line per thing that waits, not one long line;
    the trace comes first, the status is 1 (the scenario ran)."""
    status, out, err = run(
        "examples/user_score.py",
        "--faults",
        'Drop(direction="reply", service="calculator")',
        capsys=capsys,
    )
    assert status == 1
    assert "fault_drop" in out
    assert err.splitlines() == [
        "shimeji sim: error: scenario scenario() did not finish: the simulation stalled at "
        "t=0.002000s: the test waits for a reply from user_service.calculate_user_score to "
        "client, and nothing left to run can ever bring it.",
        "What waits, and for what:",
        "  - client waits for a reply from user_service.calculate_user_score (correlation id "
        "c1), sent at t=0.000000s",
        "  - user_service-1, running user_service.calculate_user_score.1, waits for a reply "
        "from calculator.multiply (correlation id c2), sent at t=0.001000s",
        "To fix it:",
        "  - give the call a timeout (rpc_proxy(timeout=...) or RPC_TIMEOUT): it then raises "
        "RpcTimeout;",
        "  - or look for a lost message (a fault plan), a replica calling itself with too few "
        "workers",
        "    (max_workers), or a service that is not running.",
    ]


def test_a_call_that_never_came_back_exits_1(capsys):
    """--call on a lost reply: the outcome says it did not finish, exit status 1."""
    status, _, err = run(
        "examples/calculator.py",
        "--call",
        "calculator.add(1, 2)",
        "--faults",
        "Drop(direction='reply')",
        capsys=capsys,
    )
    assert status == 1
    assert err.startswith("calculator.add(1, 2) did not finish: the simulation stalled at ")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_html_for_a_terminal_goes_to_a_file(tmp_path, capsys, monkeypatch):
    """--format html without --out on a terminal writes MODULE.html (never dumps the
    page), again over its own page, but not over a file shimeji did not write."""
    import shutil

    shutil.copy(ROOT / "examples" / "calculator.py", tmp_path / "calc_page.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    for _ in range(2):
        status, out, _ = run("calc_page.py", "--format", "html", capsys=capsys)
        assert status == 0
        assert out.startswith("wrote the html view of ")
        assert out.endswith(" events to calc_page.html (open it in a browser)\n")
    assert (tmp_path / "calc_page.html").read_text().startswith("<!DOCTYPE html>")
    (tmp_path / "calc_page.html").write_text("my own notes\n")
    status, out, err = run("calc_page.py", "--format", "html", capsys=capsys)
    assert (status, out) == (2, "")
    assert "calc_page.html exists and is not one shimeji wrote; give --out FILE" in err
    assert (tmp_path / "calc_page.html").read_text() == "my own notes\n"
    sys.modules.pop("calc_page", None)


def test_html_to_a_pipe_is_the_page(capsys):
    """Piped (not a terminal), the page goes to stdout as before."""
    status, out, _ = run("examples/calculator.py", "--format", "html", capsys=capsys)
    assert status == 0 and out.startswith("<!DOCTYPE html>")


def test_an_http_call_sends_one_request_to_the_routes(capsys):
    """--call 'GET /path' is a request to the module's @http routes, with --header:
    its answer is said on stderr; the request, its RPC calls and the answer are in
    the trace; the header reaches the services behind the gateway as context data."""
    status, out, err = run(
        "examples/gateway.py",
        "--call",
        "GET /orders/7",
        "--header",
        "nameko.user_id: 42",
        "--all",
        "--wide",
        capsys=capsys,
    )
    assert status == 0
    assert err.startswith("GET /orders/7 answered 200: {")
    assert '"tracking": "T7"' in err
    assert "c1  GET /orders/7  (gateway.get_order)" in out
    (request,) = [line for line in out.splitlines() if " publish " in line and "http " in line]
    assert "GET /orders/7" in request
    for step in ("order_db-1", "customer_service-1", "shipping_service-1"):
        assert f"reply from {step}" in out


def test_an_http_call_with_a_body_and_an_error_answer(capsys):
    """A JSON body is sent as JSON; a 4xx answer is exit status 1, the trace shown."""
    status, out, err = run(
        "examples/gateway.py", "--call", 'POST /orders {"order_id": 8}', capsys=capsys
    )
    assert status == 1
    assert err.strip() == (
        "POST /orders answered 400: Error: BadRequest: the order lacks payment_info, "
        "items, customer_email"
    )
    assert '{"order_id": 8}' in out
    status, out, err = run("examples/gateway.py", "--call", "POST /orders not json", capsys=capsys)
    assert status == 1
    assert "the body must be a JSON order" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["examples/gateway.py", "--call", "GET /nope"],
            "--call GET /nope: no route of examples/gateway.py matches '/nope'; its routes: "
            "GET /orders/<int:order_id>, POST /orders",
        ),
        (
            ["examples/gateway.py", "--call", "DELETE /orders"],
            "--call DELETE /orders: /orders does not take DELETE (it takes POST)",
        ),
        (
            ["examples/gateway.py", "--call", "FETCH /orders"],
            "invalid --call 'FETCH /orders': 'FETCH' is not an HTTP method",
        ),
        (
            ["examples/orders.py", "--call", "GET /orders/1"],
            "--call GET /orders/1 is an HTTP request, and examples/orders.py has no @http routes",
        ),
        (
            ["examples/gateway.py", "--call", "gateway.get_order(1)", "--header", "a: b"],
            "--header goes with an HTTP --call",
        ),
        (
            ["examples/gateway.py", "--call", "GET /orders/1", "--header", "no colon"],
            "invalid --header 'no colon': expected 'Name: value'",
        ),
        (
            ["examples/gateway.py", "--call", "GET /orders/1", "--header", "bad name: x"],
            "invalid --header 'bad name: x'",
        ),
    ],
)
def test_http_calls_that_could_never_work_are_refused_before_running(argv, message, capsys):
    """An unknown route, a method the route does not take, a word that is no HTTP
    method, a module without routes, a malformed header: exit 2, one line, no trace."""
    status, out, err = run(*argv, capsys=capsys)
    assert (status, out) == (2, "")
    assert err.startswith(f"shimeji sim: error: {message}"), err
    assert len(err.strip().splitlines()) == 1
