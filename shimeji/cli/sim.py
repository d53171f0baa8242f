"""``shimeji sim``: run a service graph on the simulator and show what happened.

    shimeji sim examples/orders.py                       # its scenario(), as a timeline
    shimeji sim examples/calculator.py --call 'calculator.divide(1, 0)' --format mermaid
    shimeji sim examples/user_score.py --replicas calculator=3 --format html --out trace.html
    shimeji sim examples/gateway.py --call 'GET /orders/7' --header 'nameko.user_id: 42'

MODULE is a file path or a dotted module name (or ``--replay FILE`` runs a
failure file an exploring test wrote, see ``shimeji.cli.replay``). Without ``--call``, the
command runs the module's ``scenario(cluster)`` function (``--scenario``
names another one), which adds the services it needs and makes calls. With
``--call``, every service class of the module is added (one replica each,
unless ``--replicas`` says otherwise) and the one call is made; a call
``METHOD /path [body]`` is an HTTP request to the services' ``@http`` routes
(a body that parses as JSON is sent as JSON).

Exit status: 0 when everything ran and returned; 1 when the scenario or the
call ran and raised, or its HTTP answer was 4xx or 5xx (the trace is shown,
then what was raised or answered); 2 when the
command could not run as given (a module, a call, a fault plan or an option
that is wrong), before anything runs where that can be known.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from shimeji.cli import CommandError
from shimeji.cli.common import add_nameko_argument, install_nameko_layer
from shimeji.cli.loading import (
    CallSpec,
    HttpCallSpec,
    describe_exception,
    find_services,
    load_module,
    parse_call,
    parse_header,
    parse_replicas,
    signature_problems,
    signature_text,
)
from shimeji.core.events import Event
from shimeji.core.exceptions import (
    ConfigurationError,
    FaultPlanError,
    ShimejiError,
    SimulationStalled,
)
from shimeji.core.extensions import iter_entrypoints
from shimeji.core.pubsub import subscriptions
from shimeji.core.rpc import Rpc
from shimeji.core.suggest import did_you_mean
from shimeji.core.web import HttpFront
from shimeji.sim import SimCluster
from shimeji.sim.clock import real_perf_counter
from shimeji.sim.faults import FaultPlan, PlanGraph, plan_problems
from shimeji.views import FORMATS, EventLog, render
from shimeji.views.html import GENERATOR
from shimeji.views.ids import IdNamer, canonicalize

__all__ = ["Progress", "register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run services on the simulator and show the trace",
        description=plain(__doc__.split("\n\n", 1)[1]) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "module", metavar="MODULE", nargs="?", help="a .py file or a dotted module name"
    )
    parser.add_argument(
        "--replay",
        metavar="FILE",
        help="run a failure file written by an exploring test (.shimeji/failures/*.json) "
        "exactly as it failed, instead of a MODULE",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--scenario",
        metavar="NAME",
        help="the scenario function to run (default: scenario)",
    )
    what.add_argument(
        "--call",
        metavar="EXPR",
        help="make one call instead, e.g. 'calculator.multiply(6, 7)' (arguments: literals), "
        "or an HTTP request, e.g. 'GET /orders/1' or 'POST /orders {\"id\": 1}'",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header of the --call HTTP request (repeatable), e.g. 'nameko.user_id: 42'",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="RNG seed (default 0)")
    add_nameko_argument(parser)
    parser.add_argument(
        "--faults",
        metavar="PLAN",
        help="a fault plan: a Python expression (as a plan prints itself) or a file holding one",
    )
    parser.add_argument(
        "--replicas",
        action="append",
        default=[],
        metavar="SERVICE=N",
        help="run N replicas of SERVICE (repeatable)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="a shimeji configuration file (YAML), e.g. RPC_TIMEOUT"
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="the view to show (default: text)"
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write the view to FILE instead of stdout (html to a terminal: MODULE's name .html)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="text: show every event, the routine ones too (replicas starting and stopping, "
        "queues deleted)",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="text: every column (call ids too), and every value in full, however wide",
    )
    parser.add_argument(
        "--ids",
        choices=("canonical", "raw"),
        default="canonical",
        help="canonical (default): c1, calculator.multiply.1 ... in order of first "
        "appearance; raw: the UUIDs drawn from the seed",
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="show the services' log (errors with their tracebacks) on stderr",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it shows only on a terminal, for runs longer than half a second)",
    )
    parser.set_defaults(handler=run)


# -- progress ------------------------------------------------------------------------


class Progress:
    """A progress bar on a terminal, fed by the trace's events (a tracer).

    It shows calls answered out of calls made, events so far and virtual time;
    it appears only once a run has taken ``delay`` seconds of real time and is
    redrawn at most every ``interval`` seconds. It never changes what the
    simulation does: it only counts.
    """

    enabled = True

    def __init__(self, stream: TextIO, delay: float = 0.5, interval: float = 0.1) -> None:
        self.stream = stream
        self.delay = delay
        self.interval = interval
        self.cluster: SimCluster | None = None
        self.calls = 0
        self.answered = 0
        self.events = 0
        self.drawn = False
        self._started = real_perf_counter()
        self._next_draw = self._started + delay

    def emit(self, event: Event) -> None:
        kind, message = event.kind, event.message
        self.events += 1
        if kind == "publish":
            self.calls += 1
        elif kind in ("timeout", "unroutable", "publish_failed") or (
            kind == "deliver" and message is not None and message.reply_to is None
        ):
            self.answered += 1
        if self.events & 255 == 0:
            now = real_perf_counter()
            if now >= self._next_draw:
                self._next_draw = now + self.interval
                self.draw()

    def request_context(self, context_data: Mapping[str, Any], **call: Any) -> Mapping[str, Any]:
        return context_data

    def line(self, width: int = 24) -> str:
        done = min(self.answered, self.calls)
        filled = width * done // self.calls if self.calls else 0
        bar = "#" * filled + "-" * (width - filled)
        elapsed = self.cluster.elapsed() if self.cluster is not None else 0.0
        return (
            f"[{bar}] {done:,}/{self.calls:,} calls answered  {self.events:,} events  "
            f"virtual t={elapsed:.3f}s"
        )

    def draw(self) -> None:
        self.stream.write("\r" + self.line() + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


# -- running -----------------------------------------------------------------------


class CommandCluster(SimCluster):
    """A SimCluster whose replica counts ``--replicas`` overrides.

    The first time a scenario adds a service named on the command line, it
    gets the number of replicas given there, whatever the scenario asked for.
    """

    def __init__(self, *args: Any, replicas: Mapping[str, int] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.replica_overrides = dict(replicas or {})
        self.overridden: list[str] = []

    def add_service(self, service_cls: type, replicas: int = 1) -> Any:
        name = getattr(service_cls, "name", None)
        if name in self.replica_overrides and name not in self.overridden:
            self.overridden.append(name)
            replicas = self.replica_overrides[name]
        return super().add_service(service_cls, replicas)


@contextlib.contextmanager
def _service_logs(verbose: bool) -> Iterator[None]:
    """The services' log records go to stderr with -v, and nowhere otherwise: the
    trace already shows every error, and the command prints no tracebacks."""
    logger = logging.getLogger("shimeji")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


def _load_faults(spec: str) -> FaultPlan:
    """``--faults``: a file holding a plan, or the plan itself as Python (as it prints)."""
    source = "--faults"
    text = spec
    if os.path.isdir(spec):
        raise CommandError(f"--faults {spec} is a directory; give a plan, or a file holding one")
    if spec.endswith(".py") or os.path.isfile(spec):
        if not os.path.isfile(spec):
            raise CommandError(f"no such fault plan file: {spec}")
        source = spec
        text = Path(spec).read_text(encoding="utf-8")
    try:
        return FaultPlan.from_python(text)
    except ShimejiError as exc:
        raise CommandError(f"invalid fault plan ({source}): {' '.join(str(exc).split())}") from None
    except Exception as exc:
        raise CommandError(f"invalid fault plan ({source}): {describe_exception(exc)}") from None


def _load_config(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from shimeji.config import load_config

    if not Path(path).exists():
        raise CommandError(f"no such configuration file: {path}")
    if Path(path).is_dir():
        raise CommandError(f"configuration {path} is a directory, not a YAML file")
    try:
        return dict(load_config(path))
    except ShimejiError as exc:
        raise CommandError(f"configuration {path}: {' '.join(str(exc).split())}") from None
    except Exception as exc:
        raise CommandError(f"configuration {path}: {describe_exception(exc)}") from None


def plain(text: str) -> str:
    """Help text without reStructuredText markup (````--call```` reads ``--call``)."""
    return text.replace("``", "")


def _title(args: argparse.Namespace) -> str:
    what = f"--call {args.call}" if args.call else f"{args.scenario or 'scenario'}()"
    faults = " with faults" if args.faults else ""
    return f"shimeji sim {args.module} {what} --seed {args.seed}{faults}"


#: The summary's width when it does not go to a terminal (and the narrowest one).
WIDTH = 100
MIN_WIDTH = 60


def _text_width() -> int:
    if not sys.stdout.isatty():
        return WIDTH
    return max(MIN_WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse what cannot work before spending a run on it."""
    if args.format != "text":
        for flag in ("all", "wide"):
            if getattr(args, flag):
                raise CommandError(f"--{flag} applies to --format text only")
    if args.out is None and args.format == "html" and sys.stdout.isatty():
        # A page is for a browser, not for a terminal: write it to a file.
        args.out = _page_name(args.module)
        if os.path.exists(args.out) and not _written_by_shimeji(args.out):
            raise CommandError(
                f"--format html writes a page, and {args.out} exists and is not one shimeji "
                "wrote; give --out FILE"
            )
    if args.out is not None:
        directory = os.path.dirname(args.out)
        if directory and not os.path.isdir(directory):
            raise CommandError(f"cannot write {args.out}: no directory {directory}")
        if os.path.isdir(args.out):
            raise CommandError(f"cannot write {args.out}: it is a directory")


def _page_name(module: str) -> str:
    stem = Path(module).stem if module.endswith(".py") else module.rpartition(".")[2]
    return f"{stem}.html"


def _written_by_shimeji(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return GENERATOR in stream.read(2048)
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    if args.replay is not None:
        if args.module is not None or args.call or args.scenario or args.faults or args.replicas:
            raise CommandError(
                "--replay runs what the failure file says: give no MODULE, --call, --scenario, "
                "--faults or --replicas with it"
            )
        from shimeji.cli.replay import run_replay

        args.module = args.replay
        _check_options(args)
        return run_replay(args, _render, _write)
    if args.module is None:
        raise CommandError("the following arguments are required: MODULE (or --replay FILE)")
    _check_options(args)
    replicas = parse_replicas(args.replicas)
    call = parse_call(args.call) if args.call is not None else None
    headers = [parse_header(text) for text in args.header]
    if headers and not isinstance(call, HttpCallSpec):
        raise CommandError(
            "--header goes with an HTTP --call, e.g. --call 'GET /orders/1' "
            "--header 'nameko.user_id: 42'"
        )
    config = _load_config(args.config)
    faults = _load_faults(args.faults) if args.faults is not None else None
    if args.nameko:
        install_nameko_layer()
    module = load_module(args.module)
    scenario = None if call is not None else _find_scenario(module, args)
    services = find_services(module)
    if call is not None:
        _check_call_services(module, args.module, services, call, replicas)
        if isinstance(call, HttpCallSpec):
            _check_http_call(call, services, args.module)
        else:
            _check_call(call, services, args.module)
    else:
        _check_replicas_known(replicas, services, args.module)
    if faults is not None:
        clients = ("http",) if isinstance(call, HttpCallSpec) else ("client",)
        _check_faults(faults, services, replicas if call is not None else None, args, clients)

    progress = Progress(sys.stderr) if not args.no_progress and sys.stderr.isatty() else None
    try:
        cluster = CommandCluster(
            seed=args.seed, config=config, replicas=replicas, tracer=progress, faults=faults
        )
    except ShimejiError as exc:
        raise CommandError(" ".join(str(exc).split())) from None
    if progress is not None:
        progress.cluster = cluster

    failure: str | None = None  # why the scenario or a replica failed (exit status 1)
    raised = False  # the call ran and raised (exit status 1)
    outcome = ""
    module_file = getattr(module, "__file__", None)
    with _service_logs(args.verbose):
        try:
            cluster.start()
        except Exception as exc:
            raise CommandError(f"cannot start the cluster: {describe_exception(exc)}") from None
        try:
            if call is not None:
                for service_cls in services:
                    cluster.add_service(service_cls, replicas.get(service_cls.name, 1))
                if isinstance(call, HttpCallSpec):
                    outcome, raised = _make_http_call(cluster, call, headers)
                else:
                    outcome, raised = _make_call(cluster, call)
            else:
                assert scenario is not None
                scenario(cluster)
        except FaultPlanError as exc:
            with contextlib.suppress(Exception):
                cluster.stop(raise_crashes=False)
            raise CommandError(_plan_error(args, exc.problems)) from None
        except Exception as exc:
            what = (
                f"the call {call}"
                if call is not None
                else f"scenario {getattr(scenario, '__name__', 'scenario')}()"
            )
            failure = f"{what} {_raised(exc, module_file)}"
        finally:
            try:
                cluster.stop(raise_crashes=failure is None and not raised)
            except FaultPlanError as exc:
                raise CommandError(_plan_error(args, exc.problems)) from None
            except Exception as exc:
                failure = failure or f"a replica crashed: {describe_exception(exc)}"
            if progress is not None:
                progress.close()

    problem = _check_scenario_result(cluster, replicas, args.module) if call is None else None

    log = EventLog.from_cluster(cluster)
    if args.ids == "canonical":
        # The same names in the error line as in the trace.
        namer = IdNamer()
        log = EventLog(canonicalize(log.records, namer))
        failure = namer.rewrite(failure)
        outcome = namer.rewrite(outcome) or ""
    output = _render(log, args)
    _write(output, args.out, len(log), args.format)
    if outcome:
        print(outcome, file=sys.stderr)
    if problem is not None:
        raise CommandError(problem)
    if failure is not None:
        print(f"shimeji sim: error: {failure}", file=sys.stderr)
    return 1 if failure is not None or raised else 0


def _render(log: EventLog, args: argparse.Namespace) -> str:
    if args.format != "text":
        return render(log, args.format, title=_title(args))
    hints = []
    if not args.all:
        hints.append("--all shows every event.")
    if not args.wide:
        hints.append("--wide shows every column, in full.")
    return render(
        log,
        "text",
        title=_title(args),
        width=None if args.wide else (_text_width() if args.out is None else WIDTH),
        fold=not args.all,
        legend=True,
        results=True,
        detail_limit=None if args.wide else 60,
        hint=" ".join(hints),
    )


def _raised(exc: BaseException, near: str | None) -> str:
    """``raised Type: message (at file:line)`` on one line; a stall keeps its lines."""
    if isinstance(exc, SimulationStalled):
        return f"did not finish: {exc}"
    return f"raised {describe_exception(exc, near=near)}"


def _make_call(cluster: SimCluster, call: CallSpec) -> tuple[str, bool]:
    """Make the call; say what it returned or raised, and whether it raised."""
    try:
        result = cluster.rpc[call.service][call.method](*call.args, **call.kwargs)
    except ConfigurationError:
        raise  # a mistake in the command (a fault plan, say), not the call's outcome
    except SimulationStalled as exc:
        return f"{call} did not finish: {exc}", True
    except ShimejiError as exc:
        return f"{call} raised {type(exc).__name__}: {' '.join(str(exc).split())}", True
    return f"{call} returned {result!r}", False


def _make_http_call(
    cluster: SimCluster, call: HttpCallSpec, headers: list[tuple[str, str]]
) -> tuple[str, bool]:
    """Send the request; say what was answered, and whether it was an error (4xx, 5xx)."""
    try:
        response = cluster.http.request(
            call.method, call.path, headers=dict(headers), **call.request()
        )
    except SimulationStalled as exc:
        return f"{call} did not finish: {exc}", True
    body = " ".join(response.text.split())
    if len(body) > 2000:
        body = f"{body[:2000]}… ({len(response.text):,} characters)"
    answered = f"{call} answered {response.status_code}" + (f": {body}" if body else "")
    return answered, response.status_code >= 400


def _check_http_call(call: HttpCallSpec, services: list[type], spec: str) -> None:
    """A request no route of the module takes (it would be answered 404 or 405)."""
    from werkzeug.exceptions import MethodNotAllowed, NotFound
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    front = HttpFront(max_body_size=2**63)
    try:
        for service in services:
            front.add_service(service.name, service)
    except ConfigurationError as exc:
        raise CommandError(f"{spec}: {exc}") from None
    if not front.services:
        raise CommandError(
            f"--call {call} is an HTTP request, and {spec} has no @http routes; "
            "call a method instead, e.g. --call 'service.method(1)'"
        )
    builder = EnvironBuilder(path=call.path, method=call.method)
    try:
        front.match(Request(builder.get_environ()))
    except NotFound:
        raise CommandError(
            f"--call {call}: no route of {spec} matches {call.path!r}; its routes: "
            f"{', '.join(front.routes)}"
        ) from None
    except MethodNotAllowed as exc:
        allowed = ", ".join(exc.valid_methods or ())
        raise CommandError(
            f"--call {call}: {call.path} does not take {call.method} (it takes {allowed})"
        ) from None
    except Exception:  # a redirect: the request is sent and answered as given
        return


def _faults_source(args: argparse.Namespace) -> str:
    return args.faults if args.faults and os.path.isfile(args.faults) else "--faults"


def _check_faults(
    plan: FaultPlan,
    services: list[type],
    replicas: Mapping[str, int] | None,
    args: argparse.Namespace,
    clients: tuple[str, ...] = ("client",),
) -> None:
    """The plan's names against the module's services before running; with --call,
    against their replicas and the one client too. (What a scenario decides, the
    number of replicas, is checked again at its first call.)"""
    graph = PlanGraph(
        {
            service.name: tuple(name for name, _ in iter_entrypoints(service))
            for service in services
        },
        None
        if replicas is None
        else tuple(
            f"{service.name}-{index}"
            for service in services
            for index in range(1, replicas.get(service.name, 1) + 1)
        ),
        None if replicas is None else clients,
        subscriptions(services),
    )
    problems = plan_problems(plan, graph)
    if problems:
        raise CommandError(_plan_error(args, problems))


def _plan_error(args: argparse.Namespace, problems: list[str]) -> str:
    listed = (
        problems[0]
        if len(problems) == 1
        else "; ".join(f"({n}) {p}" for n, p in enumerate(problems, start=1))
    )
    return f"the fault plan ({_faults_source(args)}) can never fire: {listed}"


def _check_call(call: CallSpec, services: list[type], spec: str) -> None:
    """A call that could never work: an unknown service or method, arguments its
    signature refuses."""
    by_name = {service.name: service for service in services}
    service = by_name.get(call.service)
    if service is None:
        raise CommandError(
            f"--call names service {call.service!r}, which {spec} does not define"
            f"{did_you_mean(call.service, by_name)}; its services: {', '.join(by_name)}"
        )
    methods = [
        name for name, entrypoint in iter_entrypoints(service) if isinstance(entrypoint, Rpc)
    ]
    if call.method not in methods:
        raise CommandError(
            f"--call names method {call.method!r}, which {call.service} does not have"
            f"{did_you_mean(call.method, methods)}; its methods: {', '.join(methods)}"
        )
    function = getattr(service, call.method)
    problems = signature_problems(function, call.args, call.kwargs)
    if problems:
        raise CommandError(
            f"--call {call} does not fit {call.service}.{call.method}"
            f"{signature_text(function)}: {'; '.join(problems)}"
        )


def _check_replicas_known(replicas: Mapping[str, int], services: list[type], spec: str) -> None:
    """--replicas names services the module has (defines or imports), before the
    scenario runs: a misspelt name would otherwise show only after it ran."""
    names = [service.name for service in services]
    for name in replicas:
        if name not in names:
            raise CommandError(
                f"--replicas names {name!r}, which {spec} does not define or import"
                f"{did_you_mean(name, names)}; its services: {', '.join(names) or 'none'}"
            )


def _find_scenario(module: ModuleType, args: argparse.Namespace) -> Any:
    name = args.scenario or "scenario"
    scenario = getattr(module, name, None)
    if scenario is None:
        services = find_services(module)
        if args.scenario is None and services:
            example = _example_call(services[0])
            raise CommandError(
                f"{args.module} has no scenario() function; add `def scenario(cluster): ...` or "
                f"make one call with --call, e.g. --call {example!r}"
            )
        if not services and args.scenario is None:
            raise CommandError(
                f"no services found in {args.module} and no scenario() function: a service is "
                "a class with a `name` and at least one @rpc method"
            )
        raise CommandError(f"{args.module} defines no function {name!r}")
    if not callable(scenario):
        raise CommandError(f"{args.module}: {name} is not a function (it is {scenario!r})")
    return scenario


def _example_call(service_cls: type) -> str:
    from shimeji.core.extensions import iter_entrypoints

    methods = [name for name, _ in iter_entrypoints(service_cls)]
    return f"{service_cls.name}.{methods[0]}(...)" if methods else f"{service_cls.name}.method()"


def _check_call_services(
    module: ModuleType,
    spec: str,
    services: list[type],
    call: CallSpec,
    replicas: Mapping[str, int],
) -> None:
    if not services:
        raise CommandError(
            f"no services found in {spec}: a service is a class with a `name` and at least one "
            "@rpc method"
        )
    names = [service.name for service in services]
    seen: dict[str, type] = {}
    for service in services:
        other = seen.setdefault(service.name, service)
        if other is not service:
            raise CommandError(
                f"{spec} has two classes named {service.name!r} ({other.__qualname__} and "
                f"{service.__qualname__}); a cluster runs one class per service name"
            )
    for name in replicas:
        if name not in names:
            raise CommandError(
                f"--replicas names {name!r}, which {spec} does not define"
                f"{did_you_mean(name, names)}; its services: {', '.join(names)}"
            )


def _check_scenario_result(
    cluster: CommandCluster, replicas: Mapping[str, int], spec: str
) -> str | None:
    if not cluster.services:
        return (
            f"no services: the scenario of {spec} added none (call cluster.add_service(...) in it)"
        )
    unused = [name for name in replicas if name not in cluster.overridden]
    if unused:
        return (
            f"--replicas names {', '.join(repr(n) for n in unused)}, which the scenario never "
            f"added; it added: {', '.join(cluster.services)}"
        )
    return None


def _write(output: str, out: str | None, events: int, format: str) -> None:
    if out is None:
        sys.stdout.write(output)
        sys.stdout.flush()
        return
    try:
        directory = os.path.dirname(out)
        if directory and not os.path.isdir(directory):
            raise CommandError(f"cannot write {out}: no directory {directory}")
        with open(out, "w", encoding="utf-8") as stream:
            stream.write(output)
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    opened = " (open it in a browser)" if format == "html" else ""
    print(f"wrote the {format} view of {events} events to {out}{opened}")
