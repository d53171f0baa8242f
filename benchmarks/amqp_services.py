"""The services the AMQP benchmark runs with ``shimeji run``.

``SHIMEJI_BENCH_SUFFIX`` is appended to their names, so that a second copy
(another checkout of shimeji, ``amqp_rpc.py --before``) can run beside them.
"""

import os

from shimeji.rpc import RpcProxy, rpc

SUFFIX = os.environ.get("SHIMEJI_BENCH_SUFFIX", "")


class Echo:
    name = f"bench_echo{SUFFIX}"

    @rpc
    def echo(self, value):
        return value


class Front:
    name = f"bench_front{SUFFIX}"

    echo_rpc = RpcProxy(f"bench_echo{SUFFIX}")

    @rpc
    def relay(self, value):
        return self.echo_rpc.echo(value)
