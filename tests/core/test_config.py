"""Configuration: defaults, checks naming the key, YAML loading with ${VAR:default}."""

from __future__ import annotations

import pytest

from shimeji.config import RetryPolicy, Settings, load_config, redact_uri
from shimeji.exceptions import ConfigurationError


def test_defaults():
    """An empty configuration gets shimeji's defaults."""
    settings = Settings.from_config({})
    assert settings.rpc_exchange == "nameko-rpc"
    assert settings.max_workers == 10
    assert settings.prefetch_count == 10
    assert settings.parent_calls_tracked == 10
    assert settings.rpc_timeout is None
    assert settings.serializer.name == "json"
    assert list(settings.accept) == ["application/json"]
    assert settings.retry_policy == RetryPolicy(20, 0.1, 0.2, 1.0)  # about 17.5 s of retries


def test_prefetch_follows_max_workers():
    """PREFETCH_COUNT defaults to max_workers."""
    assert Settings.from_config({"max_workers": 3}).prefetch_count == 3
    assert Settings.from_config({"max_workers": 3, "PREFETCH_COUNT": 5}).prefetch_count == 5


_SPEC = {"encoder": "json.dumps", "decoder": "json.loads", "content_type": "application/x-j"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_worker": 3}, "unknown configuration key 'max_worker' (did you mean 'max_workers'?)"),
        ({"rpc_timeout": 3}, "did you mean 'RPC_TIMEOUT'?"),
        ({"max_workers": 0}, "max_workers must be a whole number >= 1; got 0"),
        ({"max_workers": "10"}, "max_workers must be a whole number >= 1; got '10'"),
        ({"max_workers": True}, "max_workers must be a whole number"),
        ({"RPC_TIMEOUT": -1}, "RPC_TIMEOUT must be a number of seconds > 0"),
        ({"RPC_TIMEOUT": "30"}, "RPC_TIMEOUT must be a number of seconds > 0"),
        (
            {"serializer": "msgpack"},
            'Please register a serializer for "msgpack" format (known serializers: json, '
            "pickle, yaml; add yours to the SERIALIZERS setting)",
        ),
        ({"ACCEPT": ["json", "nope"]}, 'Please register a serializer for "nope" format'),
        ({"ACCEPT": ["json", 3]}, "ACCEPT must list serializer names; got 3"),
        ({"SERIALIZERS": ["x"]}, "SERIALIZERS must be a mapping of serializer names"),
        ({"SERIALIZERS": {"x": "json"}}, "SERIALIZERS.x must be a mapping with encoder"),
        ({"SERIALIZERS": {"x": {"encoder": "json.dumps"}}}, "SERIALIZERS.x needs 'decoder'"),
        (
            {"SERIALIZERS": {"x": {**_SPEC, "encodr": "json.dumps"}}},
            "SERIALIZERS.x has an unknown key 'encodr'; allowed: encoder, decoder, content_type",
        ),
        (
            {"SERIALIZERS": {"x": {**_SPEC, "encoder": "dumps"}}},
            "SERIALIZERS.x.encoder must be a dotted path to a function",
        ),
        (
            {"SERIALIZERS": {"x": {**_SPEC, "encoder": "no_such_module_here.dumps"}}},
            "SERIALIZERS.x.encoder: cannot import module 'no_such_module_here'",
        ),
        (
            {"SERIALIZERS": {"x": {**_SPEC, "decoder": "json.no_such_function"}}},
            "SERIALIZERS.x.decoder: module 'json' has no attribute 'no_such_function'",
        ),
        (
            {"SERIALIZERS": {"x": {**_SPEC, "decoder": "json.__name__"}}},
            "SERIALIZERS.x.decoder 'json.__name__' is not callable",
        ),
        (
            {"SERIALIZERS": {"x": {**_SPEC, "content_type": ""}}},
            "SERIALIZERS.x.content_type must be a MIME type",
        ),
        (
            {"SERIALIZERS": {"x": {**_SPEC, "content_encoding": "klingon"}}},
            "SERIALIZERS.x.content_encoding 'klingon' is not a text encoding",
        ),
        ({"ACCEPT": "json"}, "ACCEPT must be a list of serializer names"),
        ({"serializer": "pickle", "ACCEPT": ["json"]}, "does not include the serializer 'pickle'"),
        ({"RPC_RETRY_POLICY": {"max_retries": -1}}, "max_retries must be a whole number >= 0"),
        ({"RPC_RETRY_POLICY": {"interval_strat": 1}}, "did you mean 'interval_start'?"),
        ({"RPC_RETRY_POLICY": [1, 2]}, "RPC_RETRY_POLICY must be a mapping"),
        ({"parent_calls_tracked": -1}, "parent_calls_tracked must be a whole number >= 0"),
        ({"AMQP_URI": 5}, "AMQP_URI must be an amqp:// URI"),
        ({"LOGGING": "debug"}, "LOGGING must be a logging dictConfig mapping"),
        ({"AMQP_SSL": "yes"}, "AMQP_SSL must be true/false or a mapping"),
        ({1: 2}, "configuration keys must be strings"),
    ],
)
def test_mistakes_name_the_key(config, message):
    """Each mistake is a ConfigurationError naming the key and what is expected."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_config(config)
    assert message in str(caught.value)


def test_application_keys_are_declared():
    """An application's own keys pass once declared."""
    with pytest.raises(ConfigurationError, match="DB_URI"):
        Settings.from_config({"DB_URI": "x"})
    assert Settings.from_config({"DB_URI": "x"}, extra_keys=["DB_URI"]).config["DB_URI"] == "x"


def test_retry_policy_intervals():
    """Retry waits start at interval_start, grow by interval_step, cap at interval_max."""
    policy = RetryPolicy.from_value(
        {"max_retries": 5, "interval_start": 0.1, "interval_step": 0.3, "interval_max": 0.5}
    )
    assert [round(w, 6) for w in policy.intervals()] == [0.1, 0.4, 0.5, 0.5, 0.5]
    assert list(RetryPolicy.from_value({"max_retries": 0}).intervals()) == []


def test_load_config_with_substitution(tmp_path):
    """${VAR} and ${VAR:default} are substituted; a whole ${...} takes the YAML type."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "AMQP_URI: 'amqp://${RABBIT_USER:guest}:${RABBIT_PASS}@${RABBIT_HOST:localhost}//'\n"
        "max_workers: ${WORKERS:4}\n"
        "RPC_TIMEOUT: ${TIMEOUT}\n"
        'rpc_exchange: "${EXCHANGE:12}"\n'
        "RPC_RETRY_POLICY:\n  max_retries: ${RETRIES:2}\n"
    )
    config = load_config(path, environ={"RABBIT_PASS": "s3cret", "TIMEOUT": "2.5"})
    assert config["AMQP_URI"] == "amqp://guest:s3cret@localhost//"
    assert config["max_workers"] == 4
    assert config["RPC_TIMEOUT"] == 2.5
    assert config["rpc_exchange"] == "12"  # quoted: stays a string
    assert config["RPC_RETRY_POLICY"] == {"max_retries": 2}


def test_load_config_errors(tmp_path):
    """A missing file, bad YAML, a missing variable or a bad key: one clear error each."""
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("AMQP_URI: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"bad.yaml is not valid YAML, line 2"):
        load_config(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text("AMQP_URI: ${NOT_SET_ANYWHERE}\n")
    with pytest.raises(
        ConfigurationError, match=r"missing.yaml, line 1 uses \$\{NOT_SET_ANYWHERE\}.*not set"
    ):
        load_config(missing, environ={})
    typo = tmp_path / "typo.yaml"
    typo.write_text("max_worker: 3\n")
    with pytest.raises(ConfigurationError, match=r"typo.yaml: unknown configuration key"):
        load_config(typo)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigurationError, match="must hold a mapping"):
        load_config(listed)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == {}


def test_spec_config_example_loads():
    """The specification's config.yaml example loads and is valid."""
    config = load_config("examples/config.yaml")
    settings = Settings.from_config(config)
    assert settings.rpc_timeout == 30
    assert settings.retry_policy.max_retries == 3


def test_redact_uri():
    """Passwords in URIs are replaced by ***."""
    assert redact_uri("amqp://guest:s3cret@host:5672//") == "amqp://guest:***@host:5672//"
    assert redact_uri("amqp://host//") == "amqp://host//"


def test_serializers_of_the_application():
    """SERIALIZERS declares codecs by name (nameko's shape); the serializer and ACCEPT
    may name them, and a configured name wins over a built-in one."""
    settings = Settings.from_config(
        {"SERIALIZERS": {"j2": _SPEC}, "serializer": "j2", "ACCEPT": ["j2", "yaml"]}
    )
    assert settings.serializer.name == "j2"
    assert settings.serializer.content_type == "application/x-j"
    assert settings.serializer.loads(settings.serializer.dumps({"a": 1}, "v")) == {"a": 1}
    assert sorted(settings.accept) == ["application/x-j", "application/x-yaml"]
    # Declared but not chosen: available, not accepted.
    assert list(Settings.from_config({"SERIALIZERS": {"j2": _SPEC}}).accept) == ["application/json"]


def test_an_encoder_returning_neither_text_nor_bytes_is_refused_clearly():
    settings = Settings.from_config(
        {"SERIALIZERS": {"n": {**_SPEC, "encoder": "builtins.len"}}, "serializer": "n"}
    )
    with pytest.raises(
        Exception, match="the n serializer's encoder returned int, not str or bytes"
    ):
        settings.serializer.dumps([1], "value")
