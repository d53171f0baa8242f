"""Configuration: the keys shimeji understands, their defaults and their checks.

A configuration is a plain mapping (nameko's shape), usually loaded from YAML
with ``shimeji.config.load_config`` (reading files and the environment happens
there, at the edge: core does no I/O). ``Settings.from_config`` checks it once
and turns it into typed values; every mistake is a ``ConfigurationError``
naming the key.

Keys that belong to the application (read by its own dependency providers)
are declared, so that a typo in a shimeji key is never silently ignored:
pass ``extra_keys`` to ``load_config`` / ``Settings.from_config``, or list them
in a provider's ``config_keys``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from shimeji.core.exceptions import ConfigurationError
from shimeji.core.serialization import Codec, codec_by_name, codecs_from_config
from shimeji.core.suggest import did_you_mean

__all__ = [
    "DEFAULT_CONFIG",
    "FROM_CONFIG",
    "SIM_SCHEME",
    "RetryPolicy",
    "Settings",
    "check_known_keys",
    "parse_address",
    "redact_uri",
]

# Quick retries first (a dropped connection is back in a moment), then one a
# second: about 17.5 s in all, which rides through a broker restart (a few
# seconds down, then the clients' reconnection) with room to spare, and still
# fails a publish that cannot succeed well before anyone would call it hung.
# A call's timeout (RPC_TIMEOUT) cuts the retries short.
DEFAULT_RETRY_POLICY: dict[str, Any] = {
    "max_retries": 20,
    "interval_start": 0.1,
    "interval_step": 0.2,
    "interval_max": 1.0,
}

DEFAULT_CONFIG: dict[str, Any] = {
    "AMQP_URI": "amqp://guest:guest@localhost:5672//",
    "rpc_exchange": "nameko-rpc",
    "max_workers": 10,
    "parent_calls_tracked": 10,
    "serializer": "json",
    "ACCEPT": None,  # None: only the serializer
    "SERIALIZERS": {},  # serializers of the application, by name (nameko's shape)
    "HEARTBEAT": 60,
    "PREFETCH_COUNT": None,  # None: max_workers
    "RPC_TIMEOUT": None,
    "RPC_RETRY_POLICY": DEFAULT_RETRY_POLICY,
    "RPC_REPLY_QUEUE_TTL": 300,
    "RPC_QUEUE_TYPE": "classic",  # or "quorum", on a RabbitMQ cluster
    "RPC_DELIVERY_LIMIT": 10,  # quorum queues: deliveries of one request before it is dropped
    "RECONNECT_TIMEOUT": 60,  # seconds a replica tries to consume again before it gives up
    "AMQP_SSL": None,
    "TRANSPORT_OPTIONS": {},
    "LOGGING": None,
    "WEB_SERVER_ADDRESS": "0.0.0.0:8000",  # [host:]port of the HTTP entrypoints
    "WEB_MAX_BODY_SIZE": 1_048_576,  # bytes of a request body; more is answered 413
    "WEB_TIMEOUT": 10,  # seconds a client may take to send a request (then 408)
}


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How publishing retries when the broker refuses (kombu's ``ensure`` shape).

    The first retry waits ``interval_start`` seconds, each next one
    ``interval_step`` longer, never more than ``interval_max``. ``max_retries``
    None retries forever; 0 never retries.
    """

    max_retries: int | None = 20
    interval_start: float = 0.1
    interval_step: float = 0.2
    interval_max: float = 1.0

    @classmethod
    def from_value(cls, value: Any, key: str = "RPC_RETRY_POLICY") -> RetryPolicy:
        if isinstance(value, RetryPolicy):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"{key} must be a mapping with max_retries, interval_start, interval_step "
                f"and interval_max; got {value!r}"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        for name in value:
            if name not in fields:
                raise ConfigurationError(
                    f"{key} has an unknown key {name!r}{_suggest(name, fields)}; "
                    f"allowed: {', '.join(sorted(fields))}"
                )
        merged = {**DEFAULT_RETRY_POLICY, **value}
        max_retries = merged["max_retries"]
        if max_retries is not None and (not _is_int(max_retries) or max_retries < 0):
            raise ConfigurationError(
                f"{key}.max_retries must be a whole number >= 0 or null; got {max_retries!r}"
            )
        for name in ("interval_start", "interval_step", "interval_max"):
            if not _is_number(merged[name]) or merged[name] < 0:
                raise ConfigurationError(
                    f"{key}.{name} must be a number of seconds >= 0; got {merged[name]!r}"
                )
        return cls(
            max_retries=max_retries,
            interval_start=float(merged["interval_start"]),
            interval_step=float(merged["interval_step"]),
            interval_max=float(merged["interval_max"]),
        )

    def intervals(self) -> Iterator[float]:
        """The waits before each retry, in order (endless when max_retries is None)."""
        interval = self.interval_start
        count = 0
        while self.max_retries is None or count < self.max_retries:
            yield min(interval, self.interval_max)
            interval += self.interval_step
            count += 1

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A real, finite number (not a bool, not NaN, not infinite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_known_keys(config: Mapping[str, Any], extra_keys: Iterable[str] = ()) -> None:
    """Refuse a key that is neither shimeji's (``DEFAULT_CONFIG``) nor in
    ``extra_keys`` (ConfigurationError naming it)."""
    extra = set(extra_keys)
    for key in config:
        if not isinstance(key, str):
            raise ConfigurationError(f"configuration keys must be strings; got {key!r}")
        if key not in DEFAULT_CONFIG and key not in extra:
            raise ConfigurationError(
                f"unknown configuration key {key!r}{_suggest(key, DEFAULT_CONFIG)}. "
                "Keys of your own application must be declared: list them in a "
                "DependencyProvider's config_keys or pass extra_keys=[...]"
            )


def _suggest(name: str, known: Iterable[str]) -> str:
    return did_you_mean(name, known)


def _check_positive_int(key: str, value: Any, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ConfigurationError(f"{key} must be a whole number >= {minimum}; got {value!r}")
    return value


def _check_optional_seconds(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or value <= 0:
        raise ConfigurationError(f"{key} must be a number of seconds > 0, or null; got {value!r}")
    return float(value)


def _check_seconds(key: str, value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise ConfigurationError(f"{key} must be a number of seconds > 0; got {value!r}")
    return float(value)


def _check_type(key: str, value: Any, types: tuple[type, ...], what: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ConfigurationError(f"{key} must be {what}; got {value!r}")
    return value


class _FromConfig:
    def __repr__(self) -> str:
        return "FROM_CONFIG"


#: What a ``timeout=`` argument is when it is left out: ``RPC_TIMEOUT`` applies
#: (None itself means no timeout at all).
FROM_CONFIG: Any = _FromConfig()

#: The kinds of queue RPC_QUEUE_TYPE may name: nameko's (classic), or replicated.
QUEUE_TYPES = ("classic", "quorum")


#: How an AMQP_URI names a simulated cluster (``SimCluster.uri``) instead of a broker.
SIM_SCHEME = "sim://"


def _check_uri(value: Any) -> str:
    """AMQP_URI: one URI, or several to fail over between (a list, or kombu's
    ``uri;uri`` form), as one ``;``-separated string."""
    uris = value.split(";") if isinstance(value, str) else value
    if (
        not isinstance(uris, (list, tuple))
        or not uris
        or not all(isinstance(uri, str) and uri.strip() for uri in uris)
    ):
        raise ConfigurationError(
            "AMQP_URI must be an amqp:// URI, or a list of them (the nodes of a cluster, "
            f"tried in turn); got {value!r}"
        )
    if len(uris) == 1 and uris[0].strip().startswith(SIM_SCHEME):
        return uris[0].strip()  # a simulated cluster (SimCluster.uri), for standalone clients
    for uri in uris:
        scheme = uri.strip().partition("://")[0]
        if scheme not in ("amqp", "amqps", "pyamqp"):
            raise ConfigurationError(
                f"AMQP_URI {redact_uri(uri.strip())!r} must start with amqp:// or amqps:// "
                "(or sim:// for a simulated cluster in tests)"
            )
    return ";".join(uri.strip() for uri in uris)


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """The checked, typed form of a configuration mapping."""

    config: Mapping[str, Any]
    amqp_uri: str
    rpc_exchange: str
    max_workers: int
    parent_calls_tracked: int
    serializer: Codec
    accept: Mapping[str, Codec]  # by content type
    heartbeat: float
    prefetch_count: int
    rpc_timeout: float | None
    retry_policy: RetryPolicy
    reply_queue_ttl: float | None
    queue_type: str
    delivery_limit: int | None
    reconnect_timeout: float | None
    amqp_ssl: Any
    transport_options: Mapping[str, Any]
    logging: Mapping[str, Any] | None
    web_server_address: tuple[str, int] = ("0.0.0.0", 8000)
    web_max_body_size: int = 1_048_576
    web_timeout: float = 10.0

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None = None, extra_keys: Iterable[str] = ()
    ) -> Settings:
        """Check ``config`` and fill in defaults; raise ConfigurationError naming the key."""
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise ConfigurationError(
                "the configuration must be a mapping of keys to values; "
                f"got {type(config).__name__}"
            )
        check_known_keys(config, extra_keys)
        merged = {**DEFAULT_CONFIG, **config}
        max_workers = _check_positive_int("max_workers", merged["max_workers"], 1)
        configured = codecs_from_config(merged["SERIALIZERS"])
        serializer = codec_by_name(
            _check_type("serializer", merged["serializer"], (str,), "a serializer name"),
            configured,
        )
        accept_names = merged["ACCEPT"]
        if accept_names is None:
            accept_names = [serializer.name]
        if isinstance(accept_names, str) or not isinstance(accept_names, (list, tuple)):
            raise ConfigurationError(
                f"ACCEPT must be a list of serializer names; got {accept_names!r}"
            )
        accept: dict[str, Codec] = {}
        for name in accept_names:
            if not isinstance(name, str):
                raise ConfigurationError(f"ACCEPT must list serializer names; got {name!r}")
            codec = codec_by_name(name, configured)
            accept[codec.content_type] = codec
        if serializer.content_type not in accept:
            raise ConfigurationError(
                f"ACCEPT {list(accept_names)!r} does not include the serializer "
                f"{serializer.name!r}: replies in that format would be refused"
            )
        prefetch = merged["PREFETCH_COUNT"]
        prefetch = (
            max_workers if prefetch is None else _check_positive_int("PREFETCH_COUNT", prefetch, 1)
        )
        heartbeat = merged["HEARTBEAT"]
        if heartbeat is None:
            heartbeat = 0
        if not _is_number(heartbeat) or heartbeat < 0:
            raise ConfigurationError(f"HEARTBEAT must be seconds >= 0; got {heartbeat!r}")
        logging_config = merged["LOGGING"]
        if logging_config is not None:
            _check_type("LOGGING", logging_config, (Mapping,), "a logging dictConfig mapping")
        queue_type = merged["RPC_QUEUE_TYPE"]
        if queue_type not in QUEUE_TYPES:
            raise ConfigurationError(
                f"RPC_QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}; got {queue_type!r}"
            )
        delivery_limit = merged["RPC_DELIVERY_LIMIT"]
        if delivery_limit is not None:
            delivery_limit = _check_positive_int("RPC_DELIVERY_LIMIT", delivery_limit, 1)
        ssl = merged["AMQP_SSL"]
        if ssl is not None:
            _check_type("AMQP_SSL", ssl, (bool, Mapping), "true/false or a mapping of TLS options")
        return cls(
            config=merged,
            amqp_uri=_check_uri(merged["AMQP_URI"]),
            rpc_exchange=_check_type(
                "rpc_exchange", merged["rpc_exchange"], (str,), "an exchange name"
            ),
            max_workers=max_workers,
            parent_calls_tracked=_check_positive_int(
                "parent_calls_tracked", merged["parent_calls_tracked"], 0
            ),
            serializer=serializer,
            accept=accept,
            heartbeat=float(heartbeat),
            prefetch_count=prefetch,
            rpc_timeout=_check_optional_seconds("RPC_TIMEOUT", merged["RPC_TIMEOUT"]),
            retry_policy=RetryPolicy.from_value(merged["RPC_RETRY_POLICY"]),
            reply_queue_ttl=_check_optional_seconds(
                "RPC_REPLY_QUEUE_TTL", merged["RPC_REPLY_QUEUE_TTL"]
            ),
            queue_type=queue_type,
            delivery_limit=delivery_limit,
            reconnect_timeout=_check_optional_seconds(
                "RECONNECT_TIMEOUT", merged["RECONNECT_TIMEOUT"]
            ),
            amqp_ssl=ssl,
            transport_options=_check_type(
                "TRANSPORT_OPTIONS", merged["TRANSPORT_OPTIONS"] or {}, (Mapping,), "a mapping"
            ),
            logging=logging_config,
            web_server_address=parse_address(merged["WEB_SERVER_ADDRESS"]),
            web_max_body_size=_check_positive_int(
                "WEB_MAX_BODY_SIZE", merged["WEB_MAX_BODY_SIZE"], 0
            ),
            web_timeout=_check_seconds("WEB_TIMEOUT", merged["WEB_TIMEOUT"]),
        )


def parse_address(value: Any) -> tuple[str, int]:
    """``WEB_SERVER_ADDRESS`` (``[host:]port``, nameko's form; port 0: any free
    port) as ``(host, port)``."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65535 or (host and not host.strip()):
        raise ConfigurationError(
            f"WEB_SERVER_ADDRESS must be [host:]port, such as 0.0.0.0:8000 or 127.0.0.1:8080; "
            f"got {value!r}"
        )
    return host or "0.0.0.0", int(port)


def redact_uri(uri: str) -> str:
    """The URI with its password replaced by ``***``, safe for logs and errors.

    Failover lists (``amqp://a//;amqp://b//``) have every password hidden.
    """
    if ";" in uri:
        return ";".join(redact_uri(part) for part in uri.split(";"))
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc:
        return uri
    userinfo, _, hostport = netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return uri
    return f"{scheme}://{user}:***@{hostport}{slash}{path}"
