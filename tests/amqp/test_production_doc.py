"""docs/production.md works as written: its services answer on RabbitMQ under
``shimeji run``, ``shimeji shell`` calls them, and its test passes on both
transports."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from .broker import clean_broker

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "production.md"


def named_blocks() -> dict[str, str]:
    """Code blocks of the page whose first line names a file (``# name.ext``)."""
    found = {}
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", DOC.read_text(), re.DOTALL):
        first = block.splitlines()[0]
        if first.startswith("# ") and "." in first and " " not in first[2:]:
            found[first[2:]] = block
    return found


def shell_session() -> tuple[list[str], list[str]]:
    """The shell commands the page shows, and the first line of each answer."""
    text = DOC.read_text()
    session = re.search(r"\$ shimeji shell .*?\n(.*?)```", text, re.DOTALL).group(1)
    commands, answers = [], []
    lines = session.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(">>> "):
            commands.append(line[4:])
            answers.append(lines[index + 1])
    return commands, answers


def test_the_walkthrough_runs_as_written(amqp_uri, tmp_path):
    """services.py under `shimeji run`, called from `shimeji shell`, as the page shows."""
    files = named_blocks()
    assert set(files) >= {"services.py", "config.yaml", "test_services.py"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "AMQP_URI": amqp_uri, "PYTHONUNBUFFERED": "1"}
    shown = subprocess.run(
        [sys.executable, "-m", "shimeji", "show-config", "--config", "config.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "max_workers: 10" in shown.stdout
    server = subprocess.Popen(
        [sys.executable, "-m", "shimeji", "run", "services", "--config", "config.yaml"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        lines = [server.stderr.readline(), server.stderr.readline()]
        assert lines[0].strip() == "starting services: calculator, user_service"
        assert "; serving calculator, user_service" in lines[1]
        commands, answers = shell_session()
        shell = subprocess.run(
            [
                sys.executable,
                "-m",
                "shimeji",
                "shell",
                "--config",
                "config.yaml",
                "--context",
                '{"user_id": "u-42"}',
            ],
            cwd=tmp_path,
            env=env,
            input="".join(
                f"print(repr({c}))\n" if "divide" not in c else f"{c}\n" for c in commands
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stderr
        for answer in answers:
            if answer.startswith("Traceback"):
                assert "shimeji.exceptions.RemoteError: ValueError Division by zero" in shell.stderr
            else:
                assert answer in shell.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        clean_broker(amqp_uri, "rpc-calculator", "rpc-user_service")
    # The page's test, on the broker (with the service above stopped: a test
    # refuses a service queue that another program consumes).
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_services.py",
            "--shimeji-transport=amqp",
            "--amqp-uri",
            amqp_uri,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
