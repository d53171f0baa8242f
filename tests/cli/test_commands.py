"""The RabbitMQ subcommands' checks, which need no broker: clear one-line errors
(exit status 2) and show-config's redaction."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from shimeji.cli import main
from shimeji.cli.show_config import redact


def run_cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


APP_SERVICE = textwrap.dedent(
    """\
    from shimeji.extensions import DependencyProvider
    from shimeji.rpc import rpc


    class Database(DependencyProvider):
        config_keys = ("API_TOKEN", "DATABASE_URL")


    class Accounts:
        name = "accounts"
        db = Database()

        @rpc
        def balance(self, account):
            return 0
    """
)


def test_show_config_substitutes_and_redacts(tmp_path, capsys, monkeypatch):
    """show-config prints the configuration after ${VAR} substitution, defaults filled
    in, with the password of AMQP_URI and secret-looking values hidden; the keys of
    the application are those its services declare."""
    (tmp_path / "app_services.py").write_text(APP_SERVICE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RABBIT_PASSWORD", "pw-from-env-9")
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            AMQP_URI: amqp://svc:${RABBIT_PASSWORD}@rabbit:5672/prod
            max_workers: ${WORKERS:4}
            RPC_TIMEOUT: 30
            API_TOKEN: tok-123456
            DATABASE_URL: postgres://app:db-secret-77@db/app
            """
        )
    )
    status, out, err = run_cli(capsys, "show-config", "app_services", "--config", str(config))
    assert status == 0, err
    shown = yaml.safe_load(out)
    assert shown["AMQP_URI"] == "amqp://svc:***@rabbit:5672/prod"
    assert shown["max_workers"] == 4
    assert shown["RPC_TIMEOUT"] == 30
    assert shown["rpc_exchange"] == "nameko-rpc"
    assert shown["API_TOKEN"] == "***"
    assert shown["DATABASE_URL"] == "postgres://app:***@db/app"
    for secret in ("pw-from-env-9", "tok-123456", "db-secret-77"):
        assert secret not in out and secret not in err
    assert "# keys of the application, declared by its services: API_TOKEN, DATABASE_URL" in out


PLAIN_SERVICE = textwrap.dedent(
    """\
    from shimeji.rpc import rpc


    class Echo:
        name = "echo"

        @rpc
        def say(self, text):
            return text
    """
)


@pytest.mark.parametrize(
    ("text", "services", "accepted"),
    [
        ("max_workers: 3\n", [], True),
        ("max_worker: 3\n", [], False),
        ("API_TOKEN: x\n", [], False),
        ("API_TOKEN: x\n", ["app_services"], True),
        ("API_TOKEN: x\nOTHER_KEY: 1\n", ["app_services"], False),
        ("max_workers: lots\n", ["app_services"], False),
    ],
)
def test_show_config_and_run_agree(text, services, accepted, tmp_path, capsys, monkeypatch):
    """A file show-config accepts is one shimeji run accepts, and the other way round:
    both check it against shimeji's keys and those the services named declare (with
    none named, show-config is run with services that declare nothing). run never
    reaches a broker here: starting the runner is replaced by a stand-in."""
    import shimeji.runner

    (tmp_path / "app_services.py").write_text(APP_SERVICE)
    (tmp_path / "plain_services.py").write_text(PLAIN_SERVICE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "config.yaml"
    config.write_text(text)

    class Started(Exception):
        pass

    def start(self):
        raise Started

    monkeypatch.setattr(shimeji.runner.ServiceRunner, "start", start)
    shown, _, shown_err = run_cli(capsys, "show-config", *services, "--config", str(config))
    try:
        ran, _, ran_err = run_cli(
            capsys, "run", *(services or ["plain_services"]), "--config", str(config)
        )
    except Started:
        ran, ran_err = 0, ""  # the configuration passed; the runner was about to connect
    assert (shown == 0) == accepted, shown_err
    assert (ran == 0) == accepted, ran_err
    if not accepted:  # the same reason, in the same words
        reason = ran_err.strip().split("error: ", 1)[1]
        assert reason in shown_err
    if "max_worker:" in text:
        assert "unknown configuration key 'max_worker' (did you mean 'max_workers'?)" in shown_err
    if not accepted and not services and "unknown" in shown_err:
        assert "name the services that declare it, as for shimeji run" in shown_err


def test_show_config_broker_option_overrides(capsys):
    """--broker replaces AMQP_URI, and its password is hidden too."""
    status, out, _ = run_cli(capsys, "show-config", "--broker", "amqp://u:hush-hush@h//")
    assert status == 0
    assert yaml.safe_load(out)["AMQP_URI"] == "amqp://u:***@h//"
    assert "hush-hush" not in out


def test_show_config_reports_a_bad_value(tmp_path, capsys):
    """A mistyped shimeji key is an error naming it, in one line."""
    config = tmp_path / "bad.yaml"
    config.write_text("max_workers: lots\n")
    status, _, err = run_cli(capsys, "show-config", "--config", str(config))
    assert status == 2
    assert err.strip().splitlines() == [
        f"shimeji show-config: error: {config}: max_workers must be a whole number >= 1; got 'lots'"
    ]


def test_show_config_missing_variable(tmp_path, capsys):
    """A ${VAR} with no value and no default says which variable to set."""
    config = tmp_path / "c.yaml"
    config.write_text("AMQP_URI: ${NO_SUCH_VARIABLE_HERE}\n")
    status, _, err = run_cli(capsys, "show-config", "--config", str(config))
    assert status == 2
    assert "environment variable NO_SUCH_VARIABLE_HERE is not set" in err


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_such_module_xyz", "no module named 'no_such_module_xyz'"),
        ("examples.calculator:Nope", "module 'examples.calculator' has no 'Nope'"),
        (
            "tests.conformance.services:ReplicaName",
            "has no entrypoints: decorate at least one of its methods with @rpc",
        ),
        ("tests.cli:nothing", "has no 'nothing'"),
        ("tests/cli/__init__.py", "defines no service class"),
        ("../elsewhere.py", "no such file: ../elsewhere.py"),
        ("examples/config.yaml", "is not a Python file"),
        ("examples.calculator:", "name a class after the colon"),
    ],
)
def test_run_explains_bad_service_specs(capsys, spec, expected):
    """shimeji run names what is wrong with a module path or class, exit status 2."""
    status, _, err = run_cli(capsys, "run", spec)
    assert status == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1


def test_run_reports_an_unreachable_broker(capsys):
    """shimeji run against a closed port says so in one line, password hidden."""
    status, _, err = run_cli(
        capsys,
        "run",
        "examples.calculator",
        "--broker",
        "amqp://guest:not-shown-1@127.0.0.1:1/",
        "--log-level",
        "error",
    )
    assert status == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("shimeji run: error: cannot start:")
    assert "connection refused" in lines[-1]
    assert "amqp://guest:***@127.0.0.1:1/" in lines[-1]
    assert "not-shown-1" not in err


def test_redact_leaves_ordinary_values():
    """Only secrets are hidden: numbers, names and booleans stay."""
    assert redact({"max_workers": 3, "name": "x", "PASSWORD_MIN": None, "use_token": True}) == {
        "max_workers": 3,
        "name": "x",
        "PASSWORD_MIN": None,
        "use_token": True,
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["sim", "examples/orders.py", "--format", "x"],
            "shimeji sim: error: argument --format: invalid choice: 'x' (choose from 'text', "
            "'mermaid', 'perfetto', 'html', 'jsonl') (see 'shimeji sim --help')",
        ),
        (
            ["sim", "examples/orders.py", "--seed", "x"],
            "shimeji sim: error: argument --seed: invalid int value: 'x' (see 'shimeji sim "
            "--help')",
        ),
        (["sim"], "shimeji sim: error: the following arguments are required: MODULE"),
        ([], "shimeji: error: name a command: sim, run, shell, show-config (see 'shimeji --help')"),
        (["nope"], "shimeji: error: argument COMMAND: invalid choice: 'nope'"),
        (["run", "x", "--replicas", "two"], "shimeji run: error: argument --replicas: invalid"),
    ],
)
def test_usage_errors_are_one_line(argv, message, capsys):
    """A bad option is one line saying what is wrong and where the help is: no usage
    block before it."""
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(message)


def test_version(capsys):
    """shimeji --version prints the version."""
    import shimeji

    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"shimeji {shimeji.__version__}\n"


@pytest.mark.parametrize("command", [[], ["sim"], ["run"], ["shell"], ["show-config"]])
def test_help_texts_are_plain_text(command, capsys):
    """--help shows no reStructuredText markup (``x``, :class:, ...)."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    assert "usage: shimeji" in text
    for markup in ("``", ":class:", ":func:", ":meth:", "\n.. "):
        assert markup not in text, (markup, text)
