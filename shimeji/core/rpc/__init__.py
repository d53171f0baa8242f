"""RPC: the ``@rpc`` entrypoint, the ``RpcProxy`` dependency and the client.

- ``server``: ``Rpc`` (behind ``@rpc``) and the ``RpcConsumer`` of a replica's
  queue: checking requests, spawning workers, replying, acking;
- ``client``: ``RpcClient``, one reply queue, requests matched to their
  replies, timeouts, and publishing again what the broker may have lost;
- ``proxies``: what callers hold: ``RpcProxy`` (a dependency),
  ``StandaloneProxy`` (a client outside any service), ``ServiceProxy``,
  ``MethodProxy``.

Publish retries are ``shimeji.core.retry``'s.
"""

from shimeji.core.rpc.client import RpcClient, RpcReply
from shimeji.core.rpc.proxies import (
    MethodProxy,
    ReplyListener,
    RpcProxy,
    ServiceProxy,
    StandaloneProxy,
    resolve_timeout,
)
from shimeji.core.rpc.server import Rpc, RpcConsumer, rpc

__all__ = [
    "MethodProxy",
    "ReplyListener",
    "Rpc",
    "RpcClient",
    "RpcConsumer",
    "RpcProxy",
    "RpcReply",
    "ServiceProxy",
    "StandaloneProxy",
    "resolve_timeout",
    "rpc",
]
