"""The mermaid view: its structure, and that the mermaid CLI renders it."""

from __future__ import annotations

import subprocess

import pytest

from shimeji.views import EventLog
from shimeji.views.mermaid import escape, render_mermaid
from tests.views.scenarios import (
    EXAMPLES,
    concurrent_cluster,
    example_log,
    secret_cluster,
    timeout_cluster,
)
from tests.views.tools import puppeteer_config, require_chromium, require_mmdc


def test_participants_are_the_client_and_the_replicas_that_took_part():
    """An actor per client, a participant per busy replica; idle replicas are left out."""
    lines = render_mermaid(example_log("orders")).splitlines()
    assert lines[0] == "sequenceDiagram"
    assert lines[1:6] == [
        "    actor P0 as client",
        "    participant P1 as order_service-1",
        "    participant P2 as payment_service-1",
        "    participant P3 as inventory_service-1",
        "    participant P4 as email_service-1",
    ]
    assert not any("order_db" in line for line in lines)


def test_requests_replies_and_activations():
    """Requests are solid arrows with arguments, replies dotted with results; workers activate."""
    text = render_mermaid(example_log("user_score"))
    assert "    participant P1 as user_service-1\n    participant P2 as calculator-1\n" in text
    assert '    P0->>P1: calculate_user_score("u1", 10, 3)' in text
    assert "    P1->>P2: multiply(10, 3)" in text
    assert "    P2-->>P1: 30" in text
    assert '    P1-->>P0: {"user_id": "u1", "score": 30}' in text
    body = text.splitlines()
    assert body.index("    activate P1") < body.index("    P1->>P2: multiply(10, 3)")
    reply = '    P1-->>P0: {"user_id": "u1", "score": 30}'
    assert body.index("    deactivate P1") < body.index(reply)


def test_timeouts_are_notes_and_late_replies_are_lost():
    """A timeout is a note on the caller; the reply that comes too late ends in a cross."""
    text = render_mermaid(EventLog.from_cluster(timeout_cluster(), canonical_ids=True))
    assert "    Note over P0: timeout slow.wait (c1): no reply within 1s" in text
    assert "    P1--xP0: reply dropped: late reply for slow.wait, which had timed out" in text


def _faults_log() -> EventLog:
    """A dropped request (then a timeout), a publish retried through a broker outage,
    and a request delivered twice."""
    from examples.calculator import CalculatorService
    from shimeji.exceptions import RpcTimeout
    from shimeji.sim import SimCluster
    from shimeji.sim.faults import BrokerOutage, Drop, Duplicate

    plan = [
        Drop(direction="request", service="calculator"),
        BrokerOutage(at=0.5, duration=0.6),
        Duplicate(service="calculator"),
    ]
    with SimCluster(faults=plan) as cluster:
        cluster.add_service(CalculatorService)
        rpc = cluster.rpc_proxy(timeout=1)
        with pytest.raises(RpcTimeout):
            rpc.calculator.multiply(2, 3)
        assert rpc.calculator.multiply(4, 5) == 20
    return EventLog.from_cluster(cluster, canonical_ids=True)


def test_lost_messages_retries_and_duplicates_are_drawn():
    """A lost request ends in a cross, a retry is a note, a duplicate a second arrow."""
    lines = render_mermaid(_faults_log()).splitlines()
    assert "    P0-xP2: lost: request calculator.multiply lost" in lines
    retry = "    Note over P0: retry calculator.multiply (c2): "
    assert any(line.startswith(retry) for line in lines)
    assert "    P0->>P1: multiply(4, 5)" in lines
    assert "    P0->>P1: multiply(4, 5) (redelivered)" in lines


def test_escape_keeps_statements_intact():
    """Characters that end or escape a mermaid statement become entity codes."""
    assert escape("a;b #1 <x>\nnext") == "a#59;b #35;1 #lt;x#gt; next"


LOGS = {
    **{name: (lambda name=name: example_log(name)) for name in EXAMPLES},
    "timeout": lambda: EventLog.from_cluster(timeout_cluster(), canonical_ids=True),
    "concurrent": lambda: EventLog.from_cluster(concurrent_cluster(), canonical_ids=True),
    "secret": lambda: EventLog.from_cluster(secret_cluster(), canonical_ids=True),
    "crash": lambda: EventLog.from_jsonl(_crash_log()),
    "faults": _faults_log,
}


def _crash_log() -> str:
    from examples.user_score import scenario
    from shimeji.sim import SimCluster
    from shimeji.sim.faults import CrashDuring

    with SimCluster(faults=[CrashDuring(service="calculator", method="multiply")]) as cluster:
        scenario(cluster)
    return EventLog.from_cluster(cluster, canonical_ids=True).to_jsonl()


def test_every_diagram_renders_with_the_mermaid_cli(tmp_path):
    """mmdc (mermaid's own parser and renderer, in Chromium) draws every diagram."""
    mmdc = require_mmdc()
    config = puppeteer_config(tmp_path, require_chromium())
    sources = []
    for name, build in LOGS.items():
        source = tmp_path / f"{name}.mmd"
        source.write_text(render_mermaid(build()))
        sources.append(source)
    # One mmdc run per diagram would start Chromium each time; a markdown file with
    # every diagram renders them all in one run, each to its own SVG.
    markdown = tmp_path / "all.md"
    markdown.write_text(
        "".join(f"# {s.stem}\n\n```mermaid\n{s.read_text()}```\n\n" for s in sources)
    )
    result = subprocess.run(
        [mmdc, "-p", str(config), "-i", str(markdown), "-o", str(tmp_path / "out.md")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    svgs = sorted(tmp_path.glob("out-*.svg"))
    assert len(svgs) == len(sources)
    for svg in svgs:
        text = svg.read_text()
        assert text.startswith("<svg") and 'aria-roledescription="sequence"' in text
        assert "Syntax error" not in text


def test_the_mermaid_cli_check_can_fail(tmp_path):
    """A broken diagram makes mmdc fail, so the rendering test above can fail too."""
    mmdc = require_mmdc()
    config = puppeteer_config(tmp_path, require_chromium())
    source = tmp_path / "bad.mmd"
    source.write_text("sequenceDiagram\n    P0->>P1 no colon\n")
    result = subprocess.run(
        [mmdc, "-p", str(config), "-i", str(source), "-o", str(tmp_path / "bad.svg")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("name", ["timeout", "concurrent"])
def test_activations_are_balanced(name):
    """Every deactivate follows an activate of the same participant."""
    active: dict[str, int] = {}
    for line in render_mermaid(LOGS[name]()).splitlines():
        words = line.split()
        if words[:1] == ["activate"]:
            active[words[1]] = active.get(words[1], 0) + 1
        elif words[:1] == ["deactivate"]:
            assert active.get(words[1], 0) > 0, line
            active[words[1]] -= 1
