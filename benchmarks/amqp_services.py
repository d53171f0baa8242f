"""The services the AMQP benchmark runs with ``shimeji run``."""

from shimeji.rpc import RpcProxy, rpc


class Echo:
    name = "bench_echo"

    @rpc
    def echo(self, value):
        return value


class Front:
    name = "bench_front"

    echo_rpc = RpcProxy("bench_echo")

    @rpc
    def relay(self, value):
        return self.echo_rpc.echo(value)
