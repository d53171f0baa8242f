"""Sensitive arguments never show in any view."""

from __future__ import annotations

import pytest

from shimeji.views import FORMATS, EventLog, Redactor, render
from shimeji.views.redaction import REDACTED, MethodRedaction
from tests.views.scenarios import Gateway, Vault, secret_cluster

SECRETS = ("hunter2-by-position", "s3cret-by-name", "4111-1111", "5500-0000")


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("canonical", [True, False])
def test_sensitive_arguments_are_redacted_in_every_view(format, canonical):
    """Passed by position, by name or nested, through a second hop: never shown."""
    log = EventLog.from_cluster(secret_cluster(), canonical_ids=canonical)
    view = render(log, format)
    for secret in SECRETS:
        assert secret not in view
    if format in ("jsonl", "html"):
        assert REDACTED in view


def test_redaction_keeps_everything_else():
    """Only the declared values are replaced; the rest of the body stays, untouched."""
    log = EventLog.from_cluster(secret_cluster(), canonical_ids=True)
    bodies = [r.message.body for r in log if r.kind == "publish" and r.target == "vault.login"]
    assert bodies == [
        {"args": ["ada", REDACTED], "kwargs": {"card": {"number": REDACTED, "exp": "12/30"}}},
        {"args": ["bob"], "kwargs": {"password": REDACTED, "card": {"number": REDACTED}}},
    ]


def test_the_redactor_copies_and_ignores_unknown_methods():
    """Redacting returns a copy; methods without declarations pass through."""
    redactor = Redactor.from_service_classes([Vault, Gateway])
    assert list(redactor.methods) == ["vault.login", "gateway.enter"]
    body = {"args": ["u", "pw", {"number": "1"}], "kwargs": {}}
    assert redactor.redact_request("vault.login", body) == {
        "args": ["u", REDACTED, {"number": REDACTED}],
        "kwargs": {},
    }
    assert body == {"args": ["u", "pw", {"number": "1"}], "kwargs": {}}
    assert redactor.redact_request("gateway.other", body) is body


def test_paths_that_do_not_match_leave_the_body_alone():
    """A path into a value of another shape, or past the arguments given, changes nothing."""
    rule = MethodRedaction(("user", "password", "card"), ("card.number", "card.0", "password"))
    assert rule.redact({"args": ["u"], "kwargs": {}}) == {"args": ["u"], "kwargs": {}}
    assert rule.redact({"args": ["u", "p", "plain"], "kwargs": {}}) == {
        "args": ["u", REDACTED, "plain"],
        "kwargs": {},
    }
    assert rule.redact({"args": ["u", "p", ["x", "y"]], "kwargs": {}})["args"][2] == [
        REDACTED,
        "y",
    ]
    assert rule.redact("not a body") == "not a body"
